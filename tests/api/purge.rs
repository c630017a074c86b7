//! Legal holds and purge under retention: the hold routes, and `callproof
//! records purge` run as an operator runs it, on the server's data directory.
//!
//! The purge takes the hidden flag `--now` (refused in production) so that a
//! one-day retention can be passed without waiting: the store is real, only
//! the time retention is compared with is two days on. The purge tests pick
//! the local store themselves: on the S3 pass's Object Lock bucket the
//! retained objects cannot be deleted before the real day is over, which is
//! the point of Object Lock; `purge_on_s3_*` cover S3 on a versioned bucket.

use std::path::Path;
use std::process::Output;

use callproof::store::ObjectKey;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_callproof");

/// Settings of the purge tests: the local store, one day for `communication`.
fn purge_options() -> Options {
    Options {
        extra: vec![
            ("CALLPROOF_STORE", "fs".into()),
            ("CALLPROOF_RETENTION_BY_KIND", "communication=1".into()),
        ],
        ..Options::default()
    }
}

fn request_of(kind: &str) -> Value {
    let mut body = billing_request();
    body["kind"] = kind.into();
    body
}

/// A confirmation of `kind` with a complete record made by a simulated call.
async fn recorded(app: &TestApp, kind: &str) -> String {
    let created = app.create(&request_of(kind)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    app.call_with_recording(
        created["transfer_url"].as_str().unwrap(),
        &["press:1"],
        fixture("speech-8k-pcm16.wav"),
    )
    .await;
    app.wait_record(&id, complete).await;
    id
}

/// Runs `callproof records purge` with the settings of the server on `data_dir`.
async fn purge(data_dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    let later = (OffsetDateTime::now_utc() + time::Duration::days(2))
        .format(&Rfc3339)
        .unwrap();
    tokio::process::Command::new(BIN)
        .args([
            "records",
            "purge",
            "--reason",
            "retention ended",
            "--now",
            &later,
        ])
        .args(args)
        .arg("--config")
        .arg(data_dir.join("test-callproof.toml"))
        .current_dir(data_dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("CALLPROOF_LOG", "warn")
        .env("USER", "dana-ops")
        .output()
        .await
        .expect("callproof runs")
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn all_keys(app: &TestApp) -> Vec<String> {
    app.store
        .list("")
        .await
        .expect("store lists")
        .into_iter()
        .map(|k| k.as_str().to_owned())
        .collect()
}

/// Keys that name `id` in their path.
async fn keys_naming(app: &TestApp, id: &str) -> Vec<String> {
    all_keys(app)
        .await
        .into_iter()
        .filter(|k| k.contains(id))
        .collect()
}

/// Whether `key`, holding `bytes`, may still name the purged `id`: its
/// tombstone and signature, the seals and audit entries (which must stay),
/// and the markers announcing those to the sealer.
fn may_name_purged(id: &str, key: &str, bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    key.starts_with(&format!("tombstones/{id}."))
        || key.starts_with("seals/")
        || key.starts_with("audit/")
        || (key.starts_with("seal/pending/")
            && (text.contains(&format!("tombstones/{id}.json")) || text.contains("\"audit/")))
}

/// Every stored object whose key or bytes name `id` and that may not.
async fn naming(app: &TestApp, id: &str) -> Vec<String> {
    let mut out = Vec::new();
    for k in app.store.list("").await.unwrap() {
        let bytes = app.store.get(&k).await.unwrap().unwrap_or_default();
        let names = k.as_str().contains(id) || String::from_utf8_lossy(&bytes).contains(id);
        if names && !may_name_purged(id, k.as_str(), &bytes) {
            out.push(k.as_str().to_owned());
        }
    }
    out
}

async fn hold_request(
    app: &TestApp,
    method: reqwest::Method,
    id: &str,
    key: &str,
    reason: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .request(method, format!("{}/v1/records/{id}/hold", app.base))
        .bearer_auth(key);
    if let Some(r) = reason {
        req = req.header("X-Callproof-Reason", r);
    }
    req.send().await.expect("request sent")
}

/// Holds (`PUT`) or releases (`DELETE`) as the admin; checks the answer's schema.
async fn set_hold(app: &TestApp, id: &str, hold: bool) -> Value {
    let method = if hold {
        reqwest::Method::PUT
    } else {
        reqwest::Method::DELETE
    };
    let resp = hold_request(app, method, id, ADMIN_KEY, Some("litigation 2026-117")).await;
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_valid_against("hold-state.v1.schema.json", &v);
    v
}

/// The hold facts stored for `id` (not their signatures).
async fn hold_facts(app: &TestApp, id: &str) -> Vec<String> {
    app.store
        .list(&format!("holds/{id}/"))
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.ends_with(".json"))
        .collect()
}

#[tokio::test]
async fn holds_need_an_admin_key_and_a_reason_and_are_write_once_facts() {
    let app = spawn_with(purge_options()).await;
    let id = app.create(&billing_request()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = reqwest::Method::PUT;
    let delete = reqwest::Method::DELETE;
    for (method, key, reason, status) in [
        (put.clone(), COMPLIANCE_KEY, Some("why"), 403),
        (delete.clone(), COMPLIANCE_KEY, Some("why"), 403),
        (put.clone(), AGENT_KEY, Some("why"), 403),
        (put.clone(), ADMIN_KEY, None, 400),
        (put.clone(), ADMIN_KEY, Some("   "), 400),
        (delete.clone(), ADMIN_KEY, None, 400),
    ] {
        let resp = hold_request(&app, method.clone(), &id, key, reason).await;
        assert_eq!(
            resp.status().as_u16(),
            status,
            "{method} as {key} with {reason:?}"
        );
    }
    assert!(
        hold_facts(&app, &id).await.is_empty(),
        "a refusal writes nothing"
    );
    let unknown = callproof::domain::ConfirmationId::generate().to_string();
    let resp = hold_request(&app, put.clone(), &unknown, ADMIN_KEY, Some("why")).await;
    assert_eq!(resp.status().as_u16(), 404);
    assert!(hold_facts(&app, &unknown).await.is_empty());

    // Releasing what was never held writes nothing.
    let v = set_hold(&app, &id, false).await;
    assert_eq!(v["state"], "none");
    assert_eq!(v["held"], false);
    let v = set_hold(&app, &id, true).await;
    assert_eq!(v["state"], "held");
    assert_eq!(v["held"], true);
    assert_eq!(v["current"]["n"], 1);
    assert_eq!(v["current"]["actor"]["role"], "admin");
    assert_eq!(v["current"]["actor"]["name"], ADMIN_KEY_NAME);
    assert_eq!(v["current"]["reason"], "litigation 2026-117");
    // Holding a held record answers its state and writes nothing.
    let again = set_hold(&app, &id, true).await;
    assert_eq!(again["current"], v["current"]);
    assert_eq!(
        hold_facts(&app, &id).await,
        [format!("holds/{id}/0001.json")]
    );
    let v = set_hold(&app, &id, false).await;
    assert_eq!(v["state"], "released");
    assert_eq!(v["current"]["n"], 2);
    set_hold(&app, &id, false).await;
    assert_eq!(
        hold_facts(&app, &id).await,
        [
            format!("holds/{id}/0001.json"),
            format!("holds/{id}/0002.json")
        ]
    );

    // Compliance reads the state; every fact is stored as the schema says,
    // signed beside itself, and cannot be written again.
    let resp = app
        .get_with(&format!("/v1/records/{id}/hold"), Some(COMPLIANCE_KEY))
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let read: Value = resp.json().await.unwrap();
    assert_valid_against("hold-state.v1.schema.json", &read);
    assert_eq!(read["facts"].as_array().unwrap().len(), 2);
    assert_eq!(read["problems"], serde_json::json!([]));
    assert_eq!(
        app.get_with(&format!("/v1/records/{id}/hold"), Some(AGENT_KEY))
            .await
            .status()
            .as_u16(),
        403
    );
    let key = ObjectKey::new(format!("holds/{id}/0001.json")).unwrap();
    let (bytes, sig) = callproof::evidence::objects::read_signed(app.store.as_ref(), &key)
        .await
        .unwrap()
        .expect("stored");
    let fact: Value = serde_json::from_slice(&bytes).unwrap();
    assert_valid_against("hold.v1.schema.json", &fact);
    assert_eq!(fact["state"], "held");
    let signer =
        callproof::evidence::keys::SigningKey::from_file(&app.data_dir.join("dev-signing-key.pem"))
            .unwrap();
    assert!(signer
        .public()
        .verifies(&bytes, &sig.expect("a signature beside the fact")));
    assert!(app
        .store
        .create(&key, bytes::Bytes::from_static(b"{}"))
        .await
        .is_err());
}

#[tokio::test]
async fn purge_deletes_exactly_what_is_past_retention_and_not_held_behind_a_signed_tombstone() {
    let app = spawn_with(purge_options()).await;
    let env = test_env(&app.data_dir, purge_options()).await;
    // past: purged. held: kept. released: held, then released, so purged.
    // recent: a kind kept seven years. unanswered: a request no call took.
    let (past, held, released, recent) = tokio::join!(
        recorded(&app, "communication"),
        recorded(&app, "communication"),
        recorded(&app, "communication"),
        recorded(&app, "billing"),
    );
    let unanswered = app.create(&request_of("communication")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    set_hold(&app, &held, true).await;
    set_hold(&app, &released, true).await;
    set_hold(&app, &released, false).await;
    let purged = [&past, &released, &unanswered];
    let kept = [&held, &recent];

    // A dry run names exactly those and writes nothing.
    let busy = |k: &String| k.starts_with("jobs/leases/") || k.starts_with("seal");
    let before: Vec<String> = all_keys(&app)
        .await
        .into_iter()
        .filter(|k| !busy(k))
        .collect();
    let out = purge(&app.data_dir, &env, &["--dry-run"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    for id in purged {
        assert!(
            stdout.contains(&format!("would purge {id}")),
            "{}",
            text(&out)
        );
        assert!(stdout.contains(&format!("  confirmations/{id}/request.json")));
    }
    for id in kept {
        assert!(
            !stdout.contains(id.as_str()),
            "{id} must not be purged: {}",
            text(&out)
        );
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("kept {held}: on hold")));
    let after: Vec<String> = all_keys(&app)
        .await
        .into_iter()
        .filter(|k| !busy(k))
        .collect();
    assert_eq!(before, after, "a dry run writes and deletes nothing");

    // Keep copies of some of what `past` stores, to stage an interrupted purge below.
    let store_dir = app.data_dir.join("store");
    let staged: Vec<(String, Vec<u8>)> = keys_naming(&app, &past)
        .await
        .into_iter()
        .filter(|k| k.starts_with("records/") || k.ends_with("request.json"))
        .map(|k| {
            let bytes = std::fs::read(store_dir.join(&k)).unwrap();
            (k, bytes)
        })
        .collect();
    assert_eq!(
        staged.len(),
        3,
        "request, record version, signature: {staged:?}"
    );
    let call_mapping: Vec<String> = keys_naming(&app, &past)
        .await
        .into_iter()
        .filter(|k| k.starts_with("calls/"))
        .collect();
    assert_eq!(call_mapping.len(), 1, "the call maps back to the request");

    let out = purge(&app.data_dir, &env, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let signer =
        callproof::evidence::keys::SigningKey::from_file(&app.data_dir.join("dev-signing-key.pem"))
            .unwrap();
    for id in purged {
        assert!(
            stdout.contains(&format!("purged {id}  kind communication")),
            "{}",
            text(&out)
        );
        // Nothing of it is left but its tombstone and the tombstone's signature.
        let left = keys_naming(&app, id).await;
        assert_eq!(left.len(), 2, "{id}: {left:?}");
        assert!(left.contains(&format!("tombstones/{id}.json")), "{left:?}");
        assert!(
            left.iter()
                .all(|k| k.starts_with(&format!("tombstones/{id}."))),
            "{left:?}"
        );
        assert_eq!(
            naming(&app, id).await,
            Vec::<String>::new(),
            "{id}: nothing names it"
        );
        assert!(!store_dir.join("confirmations").join(id.as_str()).exists());
        assert!(!store_dir.join("records").join(id.as_str()).exists());
        // The tombstone is signed and lists exactly what was deleted.
        let key = ObjectKey::new(format!("tombstones/{id}.json")).unwrap();
        let (bytes, sig) = callproof::evidence::objects::read_signed(app.store.as_ref(), &key)
            .await
            .unwrap()
            .expect("a tombstone");
        assert!(signer.public().verifies(&bytes, &sig.expect("signed")));
        let tombstone: Value = serde_json::from_slice(&bytes).unwrap();
        assert_valid_against("tombstone.v1.schema.json", &tombstone);
        assert_eq!(tombstone["record_id"], id.as_str());
        assert_eq!(tombstone["kind"], "communication");
        assert_eq!(tombstone["retention_days"], 1);
        assert_eq!(tombstone["actor"]["name"], "dana-ops");
        assert_eq!(tombstone["reason"], "retention ended");
        let listed: Vec<&str> = tombstone["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key"].as_str().unwrap())
            .collect();
        for k in &listed {
            assert!(
                app.store
                    .get(&ObjectKey::new(*k).unwrap())
                    .await
                    .unwrap()
                    .is_none(),
                "{k} is listed, so it is deleted"
            );
            assert!(stdout.contains(&format!("  {k}\n")), "{k} printed");
        }
        assert!(listed.contains(&format!("confirmations/{id}/request.json").as_str()));
        if *id != unanswered {
            for wanted in ["records/", "/audio/", "/events/", "calls/"] {
                assert!(
                    listed.iter().any(|k| k.contains(wanted)),
                    "{wanted} in {listed:?}"
                );
            }
        }
        // The purge is in the audit log.
        let mut audited = false;
        for k in app.store.list("audit/").await.unwrap() {
            if !k.as_str().ends_with(".json") {
                continue;
            }
            let e: Value =
                serde_json::from_slice(&app.store.get(&k).await.unwrap().unwrap()).unwrap();
            audited |= e["action"] == "records.purge" && e["record_id"] == id.as_str();
        }
        assert!(audited, "{id}: an audit entry");
    }
    let released_tombstone: Value = serde_json::from_slice(
        &app.store
            .get(&ObjectKey::new(format!("tombstones/{released}.json")).unwrap())
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert!(released_tombstone["objects"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["key"] == format!("holds/{released}/0002.json").as_str()));
    for id in kept {
        assert!(app.record(id, None).await.is_some(), "{id} is kept");
        assert!(app
            .store
            .get(&ObjectKey::new(format!("confirmations/{id}/request.json")).unwrap())
            .await
            .unwrap()
            .is_some());
        assert!(!stdout.contains(id.as_str()));
    }
    assert_eq!(hold_facts(&app, &held).await.len(), 1, "the hold stays");
    assert!(app.stored("tombstones/").await > 0);

    // Once sealed, the whole store verifies clean, and a purged record
    // verifies as purged under retention, never as missing.
    app.seal_all().await;
    let report = app.verify_all().await;
    assert!(!report.has_problems(), "{:?}", report.findings);
    let resp = app
        .compliance_get(&format!("/v1/records/{released}/verify"), None)
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let one: Value = resp.json().await.unwrap();
    assert_eq!(one["status"], "ok", "{one}");
    assert_eq!(one["record_state"], "purged", "{one}");
    let today = time::OffsetDateTime::now_utc().date().to_string();
    assert!(
        one["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("purged under retention on ")
                    && d.len() == "purged under retention on ".len() + today.len())),
        "{one}"
    );

    // A purge interrupted after its tombstone: some listed objects are still
    // stored (put back here), and an object the tombstone does not list
    // appeared since. Running purge again deletes exactly the listed ones.
    for (k, bytes) in &staged {
        let path = store_dir.join(k);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    let stranger = format!("confirmations/{past}/note.json");
    app.store
        .create(
            &ObjectKey::new(stranger.clone()).unwrap(),
            bytes::Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    let out = purge(&app.data_dir, &env, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(&format!("purged {past}  kind communication"))
            && stdout.contains("3 object(s)  (finishing an interrupted purge)"),
        "{}",
        text(&out)
    );
    for (k, _) in &staged {
        assert!(stdout.contains(&format!("  {k}\n")), "{}", text(&out));
    }
    let mut left = keys_naming(&app, &past).await;
    left.retain(|k| !k.starts_with("tombstones/"));
    assert_eq!(
        left,
        std::slice::from_ref(&stranger),
        "only what the tombstone does not list is left"
    );
    // Purged before, with something it does not list: left alone and said.
    // And a store writer removes the sealed hold of `held`: it stays held.
    std::fs::remove_dir_all(store_dir.join("holds").join(held.as_str())).unwrap();
    let out = purge(&app.data_dir, &env, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&stranger), "{}", text(&out));
    assert!(
        stderr.contains(&format!("kept {held}: on hold"))
            && stderr.contains(&format!(
                "holds/{held}/0001.json is listed in a seal and missing"
            )),
        "{}",
        text(&out)
    );
    assert!(app
        .store
        .get(&ObjectKey::new(stranger).unwrap())
        .await
        .unwrap()
        .is_some());
    for id in kept {
        assert!(app.record(id, None).await.is_some(), "{id} is still kept");
    }
}

#[tokio::test]
async fn purge_refuses_a_data_directory_without_the_servers_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(BIN)
        .args([
            "records",
            "purge",
            "--dry-run",
            "--reason",
            "x",
            "--data-dir",
        ])
        .arg(dir.path())
        .current_dir(dir.path())
        .env("CALLPROOF_STORE", "fs")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "could not act: exit 2");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no signing key"),
        "{}",
        text(&out)
    );
    assert!(
        !dir.path().join("dev-signing-key.pem").exists(),
        "no key is made"
    );
}

/// A store on `bucket` of the moto server at `endpoint`, under the prefix the
/// test servers use, to look at objects as S3 keeps them.
async fn raw_s3(endpoint: &str, bucket: &str) -> callproof::store::s3::S3Store {
    let mut settings = crate::s3::settings(endpoint, bucket);
    settings.prefix = "calls/".into();
    callproof::store::s3::S3Store::connect(settings).await
}

#[tokio::test]
async fn on_s3_with_object_lock_a_version_written_while_held_gets_the_legal_hold() {
    use aws_sdk_s3::types::ObjectLockLegalHoldStatus;
    let server = crate::s3::start_moto();
    crate::s3::bucket(&server.endpoint, "late", true).await;
    let mut opts = crate::s3::s3_options(&server.endpoint, "late");
    opts.extra
        .push(("CALLPROOF_RECORDING_WAIT_SECS", "1".into()));
    opts.extra
        .push(("CALLPROOF_SWEEP_INTERVAL_SECS", "1".into()));
    let app = spawn_with(opts).await;
    let s = app.start_call(CALL).await;
    app.press(&s.answer, CALL, "1").await;
    app.wait_record(&s.id, |r| r["status"] == "incomplete")
        .await;
    set_hold(&app, &s.id, true).await;
    // The recording arrives late: version 2 is written while the record is held.
    let sid = "RE77777777777777777777777777777777";
    let media = speech_media(sid).await;
    app.webhook(
        &s.callback,
        &recording_params(CALL, sid, &media.recording_url),
        AUTH_TOKEN,
    )
    .await;
    let second = app.wait_record(&s.id, complete).await;
    assert_eq!(second["version"], 2);
    let s3 = raw_s3(&server.endpoint, "late").await;
    let v2 = format!("records/{}/v0002.json", s.id);
    let mut status = None;
    for _ in 0..50 {
        status = s3
            .client()
            .get_object_legal_hold()
            .bucket("late")
            .key(s3.full_key(&v2))
            .send()
            .await
            .ok()
            .and_then(|out| out.legal_hold().and_then(|h| h.status().cloned()));
        if status == Some(ObjectLockLegalHoldStatus::On) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, Some(ObjectLockLegalHoldStatus::On), "{v2}");
}

#[tokio::test]
async fn on_s3_with_object_lock_a_hold_sets_the_legal_hold_and_a_release_clears_it() {
    use aws_sdk_s3::types::ObjectLockLegalHoldStatus;
    let server = crate::s3::start_moto();
    crate::s3::bucket(&server.endpoint, "held", true).await;
    let app = spawn_with(crate::s3::s3_options(&server.endpoint, "held")).await;
    let id = recorded(&app, "billing").await;
    let s3 = raw_s3(&server.endpoint, "held").await;
    let mut keys = app.store.list(&format!("records/{id}/")).await.unwrap();
    keys.extend(
        app.store
            .list(&format!("confirmations/{id}/audio/"))
            .await
            .unwrap(),
    );
    assert_eq!(
        keys.len(),
        5,
        "a version, its signature, two audio objects, the result: {keys:?}"
    );
    let status = |key: ObjectKey| {
        let s3 = s3.clone();
        async move {
            match s3
                .client()
                .get_object_legal_hold()
                .bucket("held")
                .key(s3.full_key(key.as_str()))
                .send()
                .await
            {
                Ok(out) => out.legal_hold().and_then(|h| h.status().cloned()),
                Err(_) => None,
            }
        }
    };
    for k in &keys {
        assert_ne!(
            status(k.clone()).await,
            Some(ObjectLockLegalHoldStatus::On),
            "{k}"
        );
    }
    set_hold(&app, &id, true).await;
    for k in &keys {
        assert_eq!(
            status(k.clone()).await,
            Some(ObjectLockLegalHoldStatus::On),
            "{k}"
        );
    }
    set_hold(&app, &id, false).await;
    for k in &keys {
        assert_eq!(
            status(k.clone()).await,
            Some(ObjectLockLegalHoldStatus::Off),
            "{k}"
        );
    }
}

#[tokio::test]
async fn purge_on_s3_removes_every_version_and_leaves_no_delete_marker() {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let server = crate::s3::start_moto();
    let bucket = crate::s3::bucket(&server.endpoint, "versioned", false).await;
    bucket
        .client()
        .put_bucket_versioning()
        .bucket("versioned")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning on");
    let mut opts = crate::s3::s3_options(&server.endpoint, "versioned");
    opts.extra
        .push(("CALLPROOF_RETENTION_BY_KIND", "communication=1".into()));
    let app = spawn_with(opts.clone()).await;
    let env = test_env(&app.data_dir, opts).await;
    let id = recorded(&app, "communication").await;
    let s3 = raw_s3(&server.endpoint, "versioned").await;
    // A second version of the request (its bytes again), as a restore would leave one.
    let request_key = format!("confirmations/{id}/request.json");
    let bytes = app
        .store
        .get(&ObjectKey::new(request_key.clone()).unwrap())
        .await
        .unwrap()
        .unwrap();
    let request = s3.full_key(&request_key);
    s3.client()
        .put_object()
        .bucket("versioned")
        .key(&request)
        .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
        .send()
        .await
        .expect("overwrite");
    let versions = |s3: callproof::store::s3::S3Store| async move {
        let listed = s3
            .client()
            .list_object_versions()
            .bucket("versioned")
            .prefix("calls/")
            .send()
            .await
            .expect("versions listed");
        let mut keys: Vec<String> = listed
            .versions()
            .iter()
            .filter_map(|v| v.key())
            .chain(listed.delete_markers().iter().filter_map(|m| m.key()))
            .map(str::to_owned)
            .collect();
        keys.sort();
        keys
    };
    let before = versions(s3.clone()).await;
    assert_eq!(
        before.iter().filter(|k| **k == request).count(),
        2,
        "two versions of the request"
    );
    let out = purge(&app.data_dir, &env, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("purged {id}")),
        "{}",
        text(&out)
    );
    // Every version left, read back: none names the purged request but
    // its tombstone, the seals, audit entries and their markers.
    let listed = s3
        .client()
        .list_object_versions()
        .bucket("versioned")
        .prefix("calls/")
        .send()
        .await
        .expect("versions listed");
    for m in listed.delete_markers() {
        let k = m.key().unwrap();
        assert!(!k.contains(id.as_str()), "a delete marker names it: {k}");
    }
    for v in listed.versions() {
        let k = v.key().unwrap();
        let bytes = s3
            .client()
            .get_object()
            .bucket("versioned")
            .key(k)
            .set_version_id(v.version_id().map(str::to_owned))
            .send()
            .await
            .expect("version read")
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        let key = k.strip_prefix("calls/").unwrap();
        let names =
            key.contains(id.as_str()) || String::from_utf8_lossy(&bytes).contains(id.as_str());
        assert!(
            !names || may_name_purged(&id, key, &bytes),
            "{key} (version {:?}) still names {id}",
            v.version_id()
        );
    }
    let left: Vec<String> = versions(s3)
        .await
        .into_iter()
        .filter(|k| k.contains(id.as_str()))
        .collect();
    assert!(
        left.iter()
            .all(|k| k.starts_with(&format!("calls/tombstones/{id}."))),
        "no version and no delete marker of anything purged: {left:?}"
    );
    assert_eq!(left.len(), 2, "the tombstone and its signature: {left:?}");
}

#[tokio::test]
async fn a_store_writer_cannot_steer_purge_to_evidence_in_retention() {
    let app = spawn_with(purge_options()).await;
    let env = test_env(&app.data_dir, purge_options()).await;
    // victim: a billing record, kept for years. bait: kept years too, but a
    // store writer rewrites its record to say its retention is over and to
    // list the victim's record version as its audio.
    let (victim, bait) = tokio::join!(recorded(&app, "billing"), recorded(&app, "billing"));
    app.seal_all().await;
    let victim_key = format!("records/{victim}/v0001.json");
    let bait_key = ObjectKey::new(format!("records/{bait}/v0001.json")).unwrap();
    let mut forged: Value =
        serde_json::from_slice(&app.store.get(&bait_key).await.unwrap().unwrap()).unwrap();
    forged["retention"]["retain_until"] = "2020-01-01T00:00:00Z".into();
    forged["recording"]["audio"][0]["key"] = victim_key.clone().into();
    app.store.delete(&bait_key).await.unwrap();
    app.store
        .create(
            &bait_key,
            bytes::Bytes::from(serde_json::to_vec_pretty(&forged).unwrap()),
        )
        .await
        .unwrap();
    // Its request (bookkeeping, unsigned) is back-dated by ten years too.
    let request = ObjectKey::new(format!("confirmations/{bait}/request.json")).unwrap();
    let mut old: Value =
        serde_json::from_slice(&app.store.get(&request).await.unwrap().unwrap()).unwrap();
    old["created_at"] = "2015-01-01T00:00:00Z".into();
    app.store.delete(&request).await.unwrap();
    app.store
        .create(
            &request,
            bytes::Bytes::from(serde_json::to_vec(&old).unwrap()),
        )
        .await
        .unwrap();

    let out = purge(&app.data_dir, &env, &[]).await;
    let all = text(&out);
    assert!(
        all.contains(&bait) && all.contains("does not verify"),
        "the forged record is named and left alone: {all}"
    );
    for id in [&victim, &bait] {
        assert!(
            app.store
                .get(&ObjectKey::new(format!("confirmations/{id}/request.json")).unwrap())
                .await
                .unwrap()
                .is_some(),
            "{id} is kept: {all}"
        );
    }
    assert!(app
        .store
        .get(&ObjectKey::new(victim_key).unwrap())
        .await
        .unwrap()
        .is_some());
    assert_eq!(app.stored("tombstones/").await, 0, "{all}");

    // A seal deleted from the middle of the chain: purge refuses to judge holds on it.
    app.recorded_call(&["press:1"]).await;
    app.seal_all().await;
    app.store
        .delete(&ObjectKey::new(format!("seals/{:020}.json", 1)).unwrap())
        .await
        .unwrap();
    let out = purge(&app.data_dir, &env, &[]).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("the seal chain is broken"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn a_hold_reason_may_come_as_json_in_any_language() {
    let app = spawn_with(purge_options()).await;
    let id = app.create(&billing_request()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A browser cannot put this in a header; the page sends it as JSON.
    let reason = "litige n° 2026-119 — révision des données";
    let resp = app
        .client
        .put(format!("{}/v1/records/{id}/hold", app.base))
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({ "reason": reason }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let facts = hold_facts(&app, &id).await;
    assert_eq!(facts.len(), 1);
    let key = callproof::store::ObjectKey::new(facts[0].as_str()).unwrap();
    let fact: Value = serde_json::from_slice(&app.store.get(&key).await.unwrap().unwrap()).unwrap();
    assert_eq!(fact["reason"], reason);
    // A body that is not JSON is refused as such, before anything is written.
    let resp = app
        .client
        .delete(format!("{}/v1/records/{id}/hold", app.base))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("reason=x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    assert_eq!(hold_facts(&app, &id).await.len(), 1);
}
