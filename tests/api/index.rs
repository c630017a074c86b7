//! The search index on a real server: rebuilt from the store it gives the
//! same answers, it catches up with objects written without it, and a changed
//! row never changes what a search shows.

use std::path::Path;
use std::time::{Duration, Instant};

use callproof::evidence::hold::HoldState;
use serde_json::{json, Value};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_callproof");

/// Three recorded calls on two accounts; answers their ids, newest last.
async fn recorded_calls(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for (account, answer) in [
        ("ACC-1", "press:1"),
        ("ACC-2", "press:2"),
        ("ACC-1", "press:1"),
    ] {
        let mut body = billing_request();
        body["account_id"] = json!(account);
        let created = app.create(&body).await;
        let id = created["id"].as_str().unwrap().to_owned();
        app.call_with_recording(
            created["transfer_url"].as_str().unwrap(),
            &[answer],
            fixture("speech-8k-ulaw.wav"),
        )
        .await;
        app.wait_record(&id, complete).await;
        ids.push(id);
    }
    ids
}

/// Every page of a search (GET with `query`, or POST with `body`), as
/// record ids with their versions and states.
async fn answers(app: &TestApp, query: &str, body: Option<Value>) -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let resp = match &body {
            Some(b) => {
                let mut b = b.clone();
                b["limit"] = json!(1);
                if let Some(c) = &cursor {
                    b["cursor"] = json!(c);
                }
                app.post_json("/v1/records/search", Some(COMPLIANCE_KEY), &b)
                    .await
            }
            None => {
                let c = cursor
                    .as_ref()
                    .map(|c| format!("&cursor={c}"))
                    .unwrap_or_default();
                app.compliance_get(&format!("/v1/records?limit=1&{query}{c}"), None)
                    .await
            }
        };
        assert_eq!(resp.status().as_u16(), 200, "{query} {body:?}");
        let page: Value = resp.json().await.unwrap();
        assert_valid_against("record-search.v1.schema.json", &page);
        for r in page["records"].as_array().unwrap() {
            out.push((
                r["record_id"].as_str().unwrap().to_owned(),
                r["version"].clone(),
                r["state"].clone(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

async fn hold(app: &TestApp, id: &str) {
    let resp = app
        .client
        .put(format!("{}/v1/records/{id}/hold", app.base))
        .bearer_auth(ADMIN_KEY)
        .header("X-Callproof-Reason", "litigation 2026-117")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

/// The searches compared before and after a rebuild.
async fn every_search(app: &TestApp) -> Vec<Vec<(String, Value, Value)>> {
    vec![
        answers(app, "", None).await,
        answers(app, "account_id=ACC-1", None).await,
        answers(app, "outcome=declined", None).await,
        answers(app, "held=true", None).await,
        answers(app, "", Some(json!({"phone": "+15551230001"}))).await,
        answers(
            app,
            "",
            Some(json!({"phone": "+15551230001", "held": false})),
        )
        .await,
        // The page sends every filter as text, as a query string has it.
        answers(
            app,
            "",
            Some(json!({"phone": "+15551230001", "held": "false", "limit": "1"})),
        )
        .await,
    ]
}

/// Runs `callproof index rebuild` with the settings of the test server on
/// `dir` (the local store: see [`on_sqlite`]); answers its output and its
/// stderr as text.
async fn rebuild_command(dir: &Path) -> (std::process::Output, String) {
    let env = test_env(dir, on_sqlite()).await;
    let out = tokio::process::Command::new(BIN)
        .args(["index", "rebuild", "--data-dir"])
        .arg(dir)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

fn remove_index(dir: &Path) {
    for name in ["index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"] {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove {name}: {e}"),
        }
    }
}

/// The local store, whatever store the test run gives other tests: these
/// tests work on the embedded SQLite index file itself.
fn on_sqlite() -> Options {
    Options {
        extra: vec![("CALLPROOF_STORE", "fs".into())],
        ..Options::default()
    }
}

#[tokio::test]
async fn deleting_the_index_and_rebuilding_it_gives_the_same_search_answers() {
    let app = spawn_with(on_sqlite()).await;
    let ids = recorded_calls(&app).await;
    hold(&app, &ids[0]).await;
    app.seal_all().await;
    let before = every_search(&app).await;
    assert_eq!(before[0].len(), 3, "{before:?}");
    assert_eq!(before[1].len(), 2);
    assert_eq!(before[2], [(ids[1].clone(), json!(1), json!("ok"))]);
    assert_eq!(before[3].len(), 1, "one record held");
    assert_eq!(before[4].len(), 3);
    assert_eq!(before[5].len(), 2);
    assert_eq!(before[6], before[5]);
    let dir = app.data_dir.clone();
    let tmp = app.stop().await;

    // The command rebuilds the deleted index from the store.
    remove_index(&dir);
    let (out, stderr) = rebuild_command(&dir).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("rebuilt SQLite index"), "{stderr}");
    let app = spawn_in(&dir, on_sqlite()).await;
    assert_eq!(every_search(&app).await, before);
    app.stop().await;

    // A server that finds no index builds one from the store at start.
    remove_index(&dir);
    let app = spawn_in(&dir, on_sqlite()).await;
    assert_eq!(every_search(&app).await, before);
    app.stop().await;
    drop(tmp);
}

#[tokio::test]
async fn an_object_written_past_the_index_is_found_by_the_catch_up() {
    let app = spawn_with(Options {
        extra: vec![("CALLPROOF_INDEX_CATCHUP_SECS", "1".into())],
        ..Options::default()
    })
    .await;
    let ids = recorded_calls(&app).await;
    assert!(answers(&app, "held=true", None).await.is_empty());

    // A hold written by another writer (another instance, or this one
    // crashing before its row): only the store knows of it.
    let key =
        callproof::evidence::keys::SigningKey::from_file(&app.data_dir.join("dev-signing-key.pem"))
            .unwrap();
    let public = vec![key.public().clone()];
    let evidence =
        callproof::evidence::objects::Evidence::new(app.store.clone(), std::sync::Arc::new(key));
    callproof::evidence::hold::set_hold(
        &evidence,
        &public,
        &ids[1],
        HoldState::Held,
        &callproof::evidence::audit::Actor {
            role: "admin".into(),
            name: "elsewhere".into(),
        },
        "litigation 2026-118",
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let held = answers(&app, "held=true", None).await;
        if !held.is_empty() {
            assert_eq!(held, [(ids[1].clone(), json!(1), json!("ok"))]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the catch-up never indexed the hold"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Once sealed, the index reads the seal and says it is up to date.
    let head = app.seal_all().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let page: Value = app
            .compliance_get("/v1/records", None)
            .await
            .json()
            .await
            .unwrap();
        if page["index_seal"] == json!(head.seal) {
            assert_eq!(page["head"], json!(head.seal));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the index never read seal {}: {page}",
            head.seal
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_changed_index_row_never_changes_what_search_shows() {
    let app = spawn_with(on_sqlite()).await;
    let ids = recorded_calls(&app).await;
    let db = rusqlite::Connection::open(app.data_dir.join("index.sqlite3")).unwrap();
    // Someone with the index file points a row at another account and
    // another version's hash.
    db.execute(
        "UPDATE records SET account_id = 'ACC-9' WHERE record_id = ?1",
        [&ids[0]],
    )
    .unwrap();
    db.execute(
        "UPDATE records SET sha256 = ?2 WHERE record_id = ?1",
        [&ids[1], &"0".repeat(64)],
    )
    .unwrap();
    // The record read from the store does not match the filter: not shown.
    assert!(answers(&app, "account_id=ACC-9", None).await.is_empty());
    // Nor does a phone, a hold or a purge the index alone claims.
    db.execute(
        "UPDATE records SET phone_hmac = 'forged' WHERE record_id = ?1",
        [&ids[0]],
    )
    .unwrap();
    db.execute(
        "INSERT INTO holds (generation, record_id, hold_n, held)
         SELECT generation, record_id, 99, 1 FROM records WHERE record_id = ?1",
        [&ids[2]],
    )
    .unwrap();
    assert!(answers(&app, "held=true", None).await.is_empty());
    let by_phone = answers(&app, "", Some(json!({"phone": "+15551230001"}))).await;
    assert_eq!(by_phone.len(), 2, "{by_phone:?}");
    db.execute(
        "UPDATE records SET purged = 1 WHERE record_id = ?1",
        [&ids[0]],
    )
    .unwrap();
    // A record whose bytes differ from what was indexed is named, not shown.
    let all = answers(&app, "", None).await;
    let state = |id: &str| all.iter().find(|r| r.0 == id).map(|r| r.2.clone());
    assert_eq!(state(&ids[1]), Some(json!("evidence_problem")));
    assert_eq!(
        state(&ids[0]),
        Some(json!("evidence_problem")),
        "purged in the index, but no tombstone in the store"
    );
    assert_eq!(state(&ids[2]), Some(json!("ok")));

    // A record deleted from the store stays in search as missing.
    let version =
        callproof::store::ObjectKey::new(format!("records/{}/v0001.json", ids[2])).unwrap();
    app.store.delete(&version).await.unwrap();
    let all = answers(&app, "", None).await;
    assert!(
        all.contains(&(ids[2].clone(), Value::Null, json!("missing"))),
        "{all:?}"
    );
}

/// The settings of a server on `bucket` of `s3` with the embedded SQLite
/// index (whatever index the test run would give it), on `dir`.
async fn sqlite_on_s3(
    s3: &crate::s3::S3Server,
    bucket: &str,
    dir: &Path,
    single: bool,
) -> Result<callproof::server::Application, String> {
    let mut opts = crate::s3::s3_options(&s3.endpoint, bucket);
    opts.extra
        .retain(|(k, _)| !k.starts_with("CALLPROOF_INDEX_"));
    if single {
        opts.extra
            .push(("CALLPROOF_INDEX_SINGLE_INSTANCE", "true".into()));
    }
    let env = test_env(dir, opts).await;
    callproof::server::Application::build(test_config(dir, &env))
        .await
        .map_err(|e| format!("{e:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn on_s3_the_embedded_index_needs_the_single_instance_promise_and_holds_the_bucket() {
    let s3 = crate::s3::start_moto();
    crate::s3::bucket(&s3.endpoint, "sqlite", true).await;
    let first_dir = tempfile::tempdir().unwrap();
    let refused = sqlite_on_s3(&s3, "sqlite", first_dir.path(), false)
        .await
        .err()
        .expect("SQLite on S3 without the promise is refused");
    assert!(refused.contains("CALLPROOF_INDEX_URL"), "{refused}");
    assert!(
        refused.contains("CALLPROOF_INDEX_SINGLE_INSTANCE"),
        "{refused}"
    );

    let first = sqlite_on_s3(&s3, "sqlite", first_dir.path(), true)
        .await
        .expect("one instance with its SQLite index starts");
    // A second instance, with an index file of its own, is refused while
    // the first holds the bucket's lease.
    let second_dir = tempfile::tempdir().unwrap();
    let refused = sqlite_on_s3(&s3, "sqlite", second_dir.path(), true)
        .await
        .err()
        .expect("a second instance with its own SQLite index is refused");
    assert!(refused.contains("another instance"), "{refused}");
    assert!(refused.contains("CALLPROOF_INDEX_URL"), "{refused}");
    // The first restarts on its own data directory: the lease is its index file's.
    drop(first);
    sqlite_on_s3(&s3, "sqlite", first_dir.path(), true)
        .await
        .expect("the same index file restarts at once");
}

#[tokio::test]
async fn a_seal_planted_in_the_store_puts_nothing_in_search() {
    let app = spawn_with(Options {
        extra: vec![("CALLPROOF_INDEX_CATCHUP_SECS", "1".into())],
        ..Options::default()
    })
    .await;
    let ids = recorded_calls(&app).await;
    let head = app.seal_all().await;
    // A store writer plants an unsigned format-1 record of another account
    // and a "backfill" seal after the head that lists it with its hash.
    let real_key = format!("records/{}/v0001.json", ids[0]);
    let real = app
        .store
        .get(&callproof::store::ObjectKey::new(real_key.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    let planted_id = callproof::domain::ConfirmationId::generate().to_string();
    let mut record: Value = serde_json::from_slice(&real).unwrap();
    record["schema"] = json!("callproof.confirmation-record.v1");
    record["signing_key"] = Value::Null;
    record["record_id"] = json!(planted_id);
    record["confirmation"]["id"] = json!(planted_id);
    record["confirmation"]["account_id"] = json!("ACC-PLANTED");
    let bytes = serde_json::to_vec_pretty(&record).unwrap();
    let planted_key = format!("records/{planted_id}/v0001.json");
    let put = |key: String, bytes: Vec<u8>| {
        let store = app.store.clone();
        async move {
            store
                .create(
                    &callproof::store::ObjectKey::new(key.as_str()).unwrap(),
                    bytes.into(),
                )
                .await
                .unwrap()
        }
    };
    put(planted_key.clone(), bytes.clone()).await;
    let seal = json!({
        "schema": "callproof.seal.v1",
        "seal": head.seal + 1,
        "previous": head.sha256,
        "at": "2026-12-01T00:00:00Z",
        "signing_key": "0".repeat(64),
        "backfill": true,
        "objects": [{
            "key": planted_key,
            "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            "size": bytes.len(),
        }],
        "missing": [],
        "timestamp": null,
    });
    put(
        format!("seals/{:020}.json", head.seal + 1),
        serde_json::to_vec_pretty(&seal).unwrap(),
    )
    .await;
    // Catch-ups run every second: give them several.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        answers(&app, "account_id=ACC-PLANTED", None)
            .await
            .is_empty(),
        "a planted record was indexed"
    );
    let status: Value = app
        .get_with("/v1/status", Some(ADMIN_KEY))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["index"]["last_seal"],
        json!(head.seal),
        "the index stops before the unsigned seal: {status}"
    );
    assert_eq!(answers(&app, "", None).await.len(), 3);
}

#[tokio::test]
async fn a_rebuild_waits_for_another_rebuild_of_the_same_store() {
    let app = spawn_with(on_sqlite()).await;
    recorded_calls(&app).await;
    let dir = app.data_dir.clone();
    let store = app.store.clone();
    let tmp = app.stop().await;
    // Another process is rebuilding: it holds the store's rebuild lease.
    let other =
        callproof::jobs::lease::Leases::new(store, "other-host-1".into(), Duration::from_secs(300));
    other
        .take(
            callproof::index::follow::REBUILD_LEASE,
            time::OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let (out, stderr) = rebuild_command(&dir).await;
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("other-host-1"), "{stderr}");
    assert!(
        stderr.contains("is rebuilding the search index"),
        "{stderr}"
    );
    drop(tmp);
}
