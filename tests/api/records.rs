//! The voice confirmation record: real recordings through whole calls, stored,
//! transcoded, checked with ffmpeg, served with ranges, searched, versioned.

use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::*;

fn archival(r: &Value) -> &Value {
    r["recording"]["audio"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["role"] == "archival")
        .expect("archival audio")
}

/// One call per fixture format; each record is complete, valid, and its audio
/// matches the source in channels and duration (checked by ffprobe too).
#[tokio::test]
async fn every_fixture_format_is_stored_and_decodes_to_the_source_duration() {
    let app = spawn_app().await;
    let mp3_app = spawn_with(Options {
        extra: vec![("CALLPROOF_RECORDING_FORMAT", "mp3".into())],
        ..Options::default()
    })
    .await;
    for (name, app) in [
        ("speech-8k-pcm16.wav", &app),
        ("speech-8k-ulaw.wav", &app),
        ("speech-8k-alaw.wav", &app),
        ("speech-8k-dual.wav", &app),
        ("speech-8k.mp3", &mp3_app),
    ] {
        let source = manifest(name);
        let created = app.create(&billing_request()).await;
        let id = created["id"].as_str().unwrap();
        let report = app
            .call_with_recording(
                created["transfer_url"].as_str().unwrap(),
                &["press:1"],
                fixture(name),
            )
            .await;
        assert_eq!(
            report.media_fetches, 1,
            "{name}: the server fetched the recording once"
        );
        let record = app.wait_record(id, complete).await;
        assert_valid_record(&record);
        let a = archival(&record);
        assert_eq!(a["format"], "wav", "{name}");
        assert_eq!(a["codec"], "pcm_s16le", "{name}");
        assert_eq!(a["channels"], source["channels"], "{name}");
        let want = source["duration_secs"].as_f64().unwrap();
        let got = a["duration_secs"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 0.05,
            "{name}: archival {got} s vs source {want} s"
        );

        // The bytes served are the bytes hashed, and ffmpeg reads the same duration.
        let resp = app
            .compliance_get(&format!("/v1/records/{id}/audio"), None)
            .await;
        assert_eq!(resp.status().as_u16(), 200);
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            a["sha256"].as_str().unwrap(),
            "{name}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archival.wav");
        std::fs::write(&path, &bytes).unwrap();
        let decoded = ffmpeg_decoded_secs(
            &path,
            a["channels"].as_u64().unwrap(),
            a["sample_rate"].as_u64().unwrap(),
        );
        assert!(
            (decoded - want).abs() <= 0.05,
            "{name}: ffmpeg decodes {decoded} s vs source {want} s"
        );

        let original = app
            .compliance_get(&format!("/v1/records/{id}/audio?original=true"), None)
            .await
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            original,
            fixture(name),
            "{name}: the provider's bytes are kept as they came"
        );
    }
}

#[tokio::test]
async fn consent_offsets_fall_inside_the_recording() {
    let app = spawn_app().await;
    let (_, record) = app
        .recorded_call(&["say:repeat", "say:yes I confirm"])
        .await;
    let duration = archival(&record)["duration_secs"].as_f64().unwrap();
    let events = record["consent_events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    let rfc = &time::format_description::well_known::Rfc3339;
    let started =
        time::OffsetDateTime::parse(record["recording"]["started_at"].as_str().unwrap(), rfc)
            .unwrap();
    for e in events {
        let offset = e["offset_secs"].as_f64().expect("an offset");
        assert!(
            (0.0..=duration).contains(&offset),
            "offset {offset} outside 0..{duration}"
        );
        // Measured from the recording's start, not the call's or the epoch.
        let at = time::OffsetDateTime::parse(e["at"].as_str().unwrap(), rfc).unwrap();
        assert!(
            (offset - (at - started).as_seconds_f64()).abs() < 0.002,
            "offset {offset} for {e}"
        );
    }
    assert!(events[1]["offset_secs"].as_f64() >= events[0]["offset_secs"].as_f64());
    assert_eq!(record["outcome"]["status"], "confirmed");
    assert_eq!(
        record["confirmation"]["customer_phone_masked"],
        "+*******0001"
    );
    assert!(!record.to_string().contains("4111111111111111"));
    assert!(
        record["call"]["ended_at"].is_string(),
        "the call status callback gave the end time"
    );
}

#[tokio::test]
async fn the_audio_endpoint_serves_byte_ranges() {
    let app = spawn_app().await;
    let (id, _) = app.recorded_call(&["press:1"]).await;
    let path = format!("/v1/records/{id}/audio");
    let whole = app.compliance_get(&path, None).await;
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let whole = whole.bytes().await.unwrap();
    let size = whole.len();

    let part = app.compliance_get(&path, Some("bytes=100-199")).await;
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-199/{size}").as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), whole.slice(100..200));

    let tail = app.compliance_get(&path, Some("bytes=-44")).await;
    assert_eq!(tail.status().as_u16(), 206);
    assert_eq!(tail.bytes().await.unwrap(), whole.slice(size - 44..));

    let open = app
        .compliance_get(&path, Some(&format!("bytes={}-", size - 10)))
        .await;
    assert_eq!(open.bytes().await.unwrap(), whole.slice(size - 10..));

    let beyond = app
        .compliance_get(&path, Some(&format!("bytes={size}-")))
        .await;
    assert_eq!(beyond.status().as_u16(), 416);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{size}").as_str()
    );
}

#[tokio::test]
async fn a_truncated_recording_is_kept_and_the_record_says_it_did_not_decode() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let id = created["id"].as_str().unwrap();
    app.call_with_recording(
        created["transfer_url"].as_str().unwrap(),
        &["press:1"],
        fixture("truncated.wav"),
    )
    .await;
    let record = app.wait_record(id, |r| r["recording"].is_object()).await;
    assert_valid_record(&record);
    assert_eq!(record["status"], "incomplete");
    assert!(
        record["incomplete_reason"]
            .as_str()
            .unwrap()
            .contains("did not decode"),
        "{record}"
    );
    let decode = &record["recording"]["decode"];
    assert_eq!(decode["ok"], false);
    assert!(
        decode["error"].as_str().unwrap().contains("truncated"),
        "{decode}"
    );
    assert!(
        decode["frames_promised"].as_u64().unwrap() > decode["frames_decoded"].as_u64().unwrap()
    );
    let audio = record["recording"]["audio"].as_array().unwrap();
    assert_eq!(audio.len(), 1);
    assert_eq!(audio[0]["role"], "original");
    let original = app
        .compliance_get(&format!("/v1/records/{id}/audio?original=true"), None)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(original, fixture("truncated.wav"));
    assert_eq!(
        hex::encode(Sha256::digest(&original)),
        audio[0]["sha256"].as_str().unwrap()
    );
    assert_eq!(
        app.compliance_get(&format!("/v1/records/{id}/audio"), None)
            .await
            .status()
            .as_u16(),
        404
    );
}

/// Starts a call by hand; returns (id, answer URL, recording callback URL).
async fn started(app: &TestApp) -> (String, String, String) {
    let s = app.start_call(CALL).await;
    (s.id, s.answer, s.callback)
}

#[tokio::test]
async fn a_duplicate_recording_callback_leaves_one_record() {
    let app = spawn_app().await;
    let (id, answer, callback) = started(&app).await;
    app.press(&answer, CALL, "1").await;
    let sid = "RE55555555555555555555555555555555";
    let server = speech_media(sid).await;
    let params = recording_params(CALL, sid, &server.recording_url);
    let (a, b) = tokio::join!(
        app.webhook(&callback, &params, AUTH_TOKEN),
        app.webhook(&callback, &params, AUTH_TOKEN)
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (204, 204));
    app.wait_record(&id, complete).await;
    // And once more after it is stored.
    assert_eq!(
        app.webhook(&callback, &params, AUTH_TOKEN)
            .await
            .status()
            .as_u16(),
        204
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.wait_record(&id, complete).await;
    assert_eq!(app.version_numbers(&id).await, [1]);
    assert_eq!(server.fetches(), 1, "the recording was downloaded once");
    assert_exactly_these_records(&app, &[id]).await;
}

#[tokio::test]
async fn a_recording_that_arrives_before_the_flow_finishes_completes_the_record() {
    let app = spawn_app().await;
    let (id, answer, callback) = started(&app).await;
    let sid = "RE66666666666666666666666666666666";
    let server = speech_media(sid).await;
    assert_eq!(
        app.webhook(
            &callback,
            &recording_params(CALL, sid, &server.recording_url),
            AUTH_TOKEN
        )
        .await
        .status()
        .as_u16(),
        204
    );
    // Let the recording be stored while the caller has not answered yet.
    wait_until("the recording is fetched", 20, async || {
        server.fetches() > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.compliance_get(&format!("/v1/records/{id}"), None)
            .await
            .status()
            .as_u16(),
        404,
        "no record before the outcome"
    );
    app.press(&answer, CALL, "2").await;
    let record = app.wait_record(&id, complete).await;
    assert_eq!(record["outcome"]["status"], "declined");
    assert_eq!(record["version"], 1);
    assert_exactly_these_records(&app, &[id]).await;
}

#[tokio::test]
async fn a_recording_that_arrives_long_after_makes_a_new_version_of_an_incomplete_record() {
    let app = spawn_with(Options {
        extra: vec![
            ("CALLPROOF_RECORDING_WAIT_SECS", "1".into()),
            ("CALLPROOF_SWEEP_INTERVAL_SECS", "1".into()),
        ],
        ..Options::default()
    })
    .await;
    let (id, answer, callback) = started(&app).await;
    app.press(&answer, CALL, "1").await;
    let first = app.wait_record(&id, |r| r["status"] == "incomplete").await;
    assert!(
        first["incomplete_reason"]
            .as_str()
            .unwrap()
            .contains("no recording arrived"),
        "{first}"
    );
    assert!(first["recording"].is_null());

    let sid = "RE77777777777777777777777777777777";
    let server = speech_media(sid).await;
    assert_eq!(
        app.webhook(
            &callback,
            &recording_params(CALL, sid, &server.recording_url),
            AUTH_TOKEN
        )
        .await
        .status()
        .as_u16(),
        204
    );
    let second = app.wait_record(&id, complete).await;
    assert_valid_record(&second);
    assert_eq!(second["version"], 2);
    assert_eq!(second["supersedes"], 1);
    let kept = app.record(&id, Some(1)).await.expect("version 1");
    assert_eq!(kept, first, "the first version is kept, never overwritten");

    // The list of versions says what each one is and how to check its bytes.
    let versions = app.versions(&id).await;
    assert_eq!(versions["record_id"], id.as_str());
    assert_eq!(versions["latest"], 2);
    let list = versions["versions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        (
            &list[0]["version"],
            &list[0]["status"],
            &list[0]["has_audio"]
        ),
        (&json!(1), &json!("incomplete"), &json!(false))
    );
    assert_eq!(list[0]["superseded_by"], 2);
    assert_eq!(list[0]["supersedes"], Value::Null);
    assert_eq!(list[0]["incomplete_reason"], first["incomplete_reason"]);
    assert_eq!(
        (
            &list[1]["version"],
            &list[1]["status"],
            &list[1]["has_audio"]
        ),
        (&json!(2), &json!("complete"), &json!(true))
    );
    assert_eq!(list[1]["supersedes"], 1);
    assert_eq!(list[1]["superseded_by"], Value::Null);
    assert_eq!(list[1]["created_at"], second["created_at"]);
    for (entry, version) in list.iter().zip([1u32, 2]) {
        let resp = app
            .compliance_get(&format!("/v1/records/{id}?version={version}"), None)
            .await;
        assert_eq!(
            resp.headers()["x-content-sha256"],
            entry["sha256"].as_str().unwrap()
        );
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(bytes.len() as u64, entry["byte_size"].as_u64().unwrap());
        assert_eq!(hex::encode(Sha256::digest(&bytes)), entry["sha256"]);
    }
    assert!(
        app.record(&id, Some(3)).await.is_none(),
        "a version never written is 404"
    );
}

#[tokio::test]
async fn a_record_answer_is_exactly_what_the_schema_allows() {
    let app = spawn_app().await;
    // `record` checks the schema and the stored bytes; here also that nothing
    // beyond the record's own members is added to the answer.
    let (_, record) = app.recorded_call(&["press:1"]).await;
    let mut members: Vec<&str> = record
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    assert_eq!(
        members,
        [
            "call",
            "confirmation",
            "consent_events",
            "created_at",
            "incomplete_reason",
            "outcome",
            "record_id",
            "recording",
            "retention",
            "schema",
            "signing_key",
            "status",
            "supersedes",
            "version",
        ]
    );
    assert_eq!(
        record["confirmation"]["created_by_key"],
        callproof::auth::derived_key_name(AGENT_KEY),
        "the record names the key that asked"
    );
    let unknown = callproof::domain::ConfirmationId::generate();
    assert_eq!(
        app.compliance_get(&format!("/v1/records/{unknown}/versions"), None)
            .await
            .status()
            .as_u16(),
        404
    );
}

#[tokio::test]
async fn a_flow_whose_caller_went_silent_is_abandoned_by_the_sweeper() {
    let app = spawn_with(Options {
        extra: vec![
            ("CALLPROOF_FLOW_STEP_TTL_SECS", "1".into()),
            ("CALLPROOF_SWEEP_INTERVAL_SECS", "1".into()),
        ],
        ..Options::default()
    })
    .await;
    let (id, _answer, _callback) = started(&app).await;
    wait_until("the flow is abandoned", 75, async || {
        app.confirmation(&id).await["status"] == "abandoned"
    })
    .await;
}

#[tokio::test]
async fn compliance_endpoints_refuse_missing_keys_and_agent_keys() {
    let app = spawn_app().await;
    let id = callproof::domain::ConfirmationId::generate();
    for path in [
        "/v1/records".to_owned(),
        format!("/v1/records/{id}"),
        format!("/v1/records/{id}/audio"),
        format!("/v1/records/{id}/versions"),
        format!("/v1/records/{id}/export"),
    ] {
        assert_eq!(
            app.get_with(&path, None).await.status().as_u16(),
            401,
            "{path}"
        );
        assert_eq!(
            app.get_with(&path, Some("unknown-key-unknown-key"))
                .await
                .status()
                .as_u16(),
            401,
            "{path}"
        );
        assert_eq!(
            app.get_with(&path, Some(AGENT_KEY)).await.status().as_u16(),
            403,
            "{path}"
        );
    }
}

#[tokio::test]
async fn records_are_found_by_each_filter_and_paged() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for (account, kind, answer) in [
        ("ACC-1", "billing", "press:1"),
        ("ACC-2", "plan", "press:2"),
        ("ACC-1", "contact", "press:1"),
    ] {
        let mut body = billing_request();
        body["account_id"] = json!(account);
        body["kind"] = json!(kind);
        let created = app.create(&body).await;
        let id = created["id"].as_str().unwrap().to_owned();
        app.call_with_recording(
            created["transfer_url"].as_str().unwrap(),
            &[answer],
            fixture("speech-8k-ulaw.wav"),
        )
        .await;
        app.wait_record(&id, complete).await;
        ids.push((
            id,
            created["confirmation_number"].as_str().unwrap().to_owned(),
        ));
    }
    let list = |q: String| {
        let app = &app;
        async move {
            let resp = app.compliance_get(&format!("/v1/records?{q}"), None).await;
            assert_eq!(resp.status().as_u16(), 200, "{q}");
            let v: Value = resp.json().await.unwrap();
            assert_valid_against("record-search.v1.schema.json", &v);
            v
        }
    };
    let found = |v: &Value| {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["record_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        found(&list("account_id=ACC-1".into()).await),
        [ids[2].0.clone(), ids[0].0.clone()]
    );
    assert_eq!(found(&list("kind=plan".into()).await), [ids[1].0.clone()]);
    assert_eq!(
        found(&list("outcome=declined".into()).await),
        [ids[1].0.clone()]
    );
    assert_eq!(
        found(&list(format!("confirmation_number={}", ids[0].1)).await),
        [ids[0].0.clone()]
    );
    let by_phone = |phone: &'static str| {
        let app = &app;
        async move {
            let resp = app
                .post_json(
                    "/v1/records/search",
                    Some(COMPLIANCE_KEY),
                    &json!({ "phone": phone }),
                )
                .await;
            assert_eq!(resp.status().as_u16(), 200, "{phone}");
            let v: Value = resp.json().await.unwrap();
            assert_valid_against("record-search.v1.schema.json", &v);
            v
        }
    };
    assert_eq!(found(&by_phone("+15551230001").await).len(), 3);
    assert!(found(&by_phone("+15559999999").await).is_empty());
    // A phone number in a URL is refused, with the route to use instead.
    let refused = app
        .compliance_get("/v1/records?phone=%2B15551230001", None)
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    let why: Value = refused.json().await.unwrap();
    assert!(why.to_string().contains("POST /v1/records/search"), "{why}");
    let agent = app
        .get_with("/v1/records?account_id=ACC-1", Some(AGENT_KEY))
        .await;
    assert_eq!(agent.status().as_u16(), 403);
    assert_eq!(found(&list("agent_id=agent-nobody".into()).await).len(), 0);
    assert_eq!(found(&list("status=complete".into()).await).len(), 3);
    assert_eq!(found(&list("held=false".into()).await).len(), 3);
    assert!(found(&list("held=true".into()).await).is_empty());
    let today = time::OffsetDateTime::now_utc().date();
    assert_eq!(
        found(&list(format!("from={today}&to={today}")).await).len(),
        3
    );
    assert!(found(&list("to=2020-01-01".into()).await).is_empty());

    // Pages of one, following next_cursor, give each record once, newest first.
    let mut seen = Vec::new();
    let mut q = "limit=1".to_owned();
    loop {
        let page = list(q.clone()).await;
        seen.extend(found(&page));
        match page["next_cursor"].as_str() {
            Some(c) => q = format!("limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, [ids[2].0.clone(), ids[1].0.clone(), ids[0].0.clone()]);

    let bad = app
        .compliance_get("/v1/records?kind=upgrade&limit=9999", None)
        .await;
    assert_eq!(bad.status().as_u16(), 422);
}

#[tokio::test]
async fn media_that_fails_at_first_is_retried_until_it_is_stored() {
    let app = spawn_with(Options {
        extra: vec![("CALLPROOF_RECORDING_RETRY_BASE_MS", "50".into())],
        ..Options::default()
    })
    .await;
    let mut ids = Vec::new();
    for (i, (fail_count, status)) in [(1usize, 404u16), (3, 500)].into_iter().enumerate() {
        let call = format!("CA{i:032}");
        let started = app.start_call(&call).await;
        app.press(&started.answer, &call, "1").await;
        let sid = format!("RE{i:032}");
        let server = speech_media(&sid).await;
        // 404 right after the callback is normal; 500s are an outage.
        server.fail_next(fail_count, status);
        app.webhook(
            &started.callback,
            &recording_params(&call, &sid, &server.recording_url),
            AUTH_TOKEN,
        )
        .await;
        let record = app.wait_record(&started.id, complete).await;
        assert_eq!(record["version"], 1);
        assert_eq!(
            server.requests(),
            fail_count + 1,
            "{fail_count} × HTTP {status}, then the recording"
        );
        assert_eq!(server.fetches(), 1);
        ids.push(started.id);
    }
    assert_exactly_these_records(&app, &ids).await;
}

#[tokio::test]
async fn a_recording_over_the_size_cap_is_refused_and_the_record_says_why() {
    let app = spawn_with(Options {
        extra: vec![
            ("CALLPROOF_RECORDING_MAX_BYTES", "1000".into()),
            ("CALLPROOF_RECORDING_WAIT_SECS", "1".into()),
            ("CALLPROOF_SWEEP_INTERVAL_SECS", "1".into()),
        ],
        ..Options::default()
    })
    .await;
    let (id, answer, callback) = started(&app).await;
    app.press(&answer, CALL, "1").await;
    let sid = "RE99999999999999999999999999999999";
    let server = speech_media(sid).await;
    let r = app
        .webhook(
            &callback,
            &recording_params(CALL, sid, &server.recording_url),
            AUTH_TOKEN,
        )
        .await;
    assert_eq!(r.status().as_u16(), 204);
    let record = app.wait_record(&id, |r| r["status"] == "incomplete").await;
    let reason = record["incomplete_reason"].as_str().unwrap();
    assert!(reason.contains("CALLPROOF_RECORDING_MAX_BYTES"), "{reason}");
    assert!(record["recording"].is_null());
}

#[tokio::test]
async fn a_recording_job_left_by_a_stopped_server_is_finished_by_the_next_one() {
    let app = spawn_with(Options {
        extra: vec![("CALLPROOF_RECORDING_DOWNLOAD_ATTEMPTS", "1".into())],
        ..Options::default()
    })
    .await;
    let (id, answer, callback) = started(&app).await;
    app.press(&answer, CALL, "1").await;
    let sid = "RE12121212121212121212121212121212";
    let server = speech_media(sid).await;
    server.fail_next(1_000_000, 503);
    app.webhook(
        &callback,
        &recording_params(CALL, sid, &server.recording_url),
        AUTH_TOKEN,
    )
    .await;
    wait_until("a download attempt", 20, async || server.requests() > 0).await;
    let data_dir = app.data_dir.clone();
    let store = app.store.clone();
    let tmp = app.stop().await;
    let jobs = || async { store.list("jobs/recordings/").await.unwrap().len() };
    assert_eq!(jobs().await, 1, "the job outlives the server");

    server.fail_next(0, 503);
    let app = spawn_in(&data_dir, Options::default()).await;
    let record = app.wait_record(&id, complete).await;
    assert_eq!(record["version"], 1);
    wait_until("the job is removed once done", 10, async || {
        jobs().await == 0
    })
    .await;
    drop(tmp);
}

#[tokio::test]
async fn metrics_count_webhooks_outcomes_ingest_and_store_latency() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let id = created["id"].as_str().unwrap();
    app.call_with_recording(
        created["transfer_url"].as_str().unwrap(),
        &["press:1"],
        fixture("speech-8k-ulaw.wav"),
    )
    .await;
    app.wait_record(id, complete).await;
    let forged = app
        .webhook(
            &format!("{}/voice/status", app.base),
            &[("CallSid", "CA1")],
            "wrong-token-wrong-token-wrong-00",
        )
        .await;
    assert_eq!(forged.status().as_u16(), 403);

    let resp = app.get_with("/metrics", None).await;
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    for line in [
        "callproof_webhooks_total{route=\"/voice/start\",status=\"200\"} 1",
        "callproof_webhooks_total{route=\"/voice/answer\",status=\"200\"} 1",
        "callproof_webhooks_total{route=\"/voice/recording\",status=\"204\"} 1",
        "callproof_webhooks_total{route=\"/voice/status\",status=\"403\"} 1",
        "callproof_outcomes_total{outcome=\"confirmed\"} 1",
        "callproof_jobs_total{kind=\"recording\",state=\"accepted\"} 1",
        "callproof_jobs_total{kind=\"recording\",state=\"stored\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    let creates = text
        .lines()
        .find(|l| l.starts_with("callproof_store_seconds_count{op=\"create\",result=\"ok\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("store create latencies");
    assert!(creates >= 5, "{creates} creates timed");
}

#[tokio::test]
async fn a_call_end_reported_after_the_record_gets_a_version_that_states_it() {
    let app = spawn_app().await;
    let call = format!("CA{:032}", 77);
    let started = app.start_call(&call).await;
    app.press(&started.answer, &call, "1").await;
    // The recording callback comes first this time: the record is written
    // before anyone knows when the call ended.
    let sid = format!("RE{:032}", 77);
    let server = speech_media(&sid).await;
    app.webhook(
        &started.callback,
        &recording_params(&call, &sid, &server.recording_url),
        AUTH_TOKEN,
    )
    .await;
    let first = app.wait_record(&started.id, complete).await;
    assert_eq!(first["version"], 1);
    assert!(first["call"]["ended_at"].is_null(), "{}", first["call"]);

    let status_url = format!("{}/voice/status", app.base);
    let status_params = [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", call.as_str()),
        ("CallStatus", "completed"),
    ];
    let ended = || app.webhook(&status_url, &status_params, AUTH_TOKEN);
    assert_eq!(ended().await.status().as_u16(), 204);
    let second = app.wait_record(&started.id, |r| r["version"] == 2).await;
    assert!(second["call"]["ended_at"].is_string(), "{}", second["call"]);
    assert_eq!(second["supersedes"], 1);
    assert_eq!(
        second["recording"], first["recording"],
        "the same recording"
    );
    // Told again, nothing more is written.
    assert_eq!(ended().await.status().as_u16(), 204);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.version_numbers(&started.id).await, [1, 2]);
}
