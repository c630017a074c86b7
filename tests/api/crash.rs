//! A crash at every write: a whole call runs on a store that stops taking
//! writes after the Nth, for every N; after a restart each call ends settled.
//!
//! The server that "crashes" keeps running but can no longer change anything,
//! as a dead process could not; a second server on the same data directory
//! then has only the store to go on. For every N the call must end with an
//! outcome and exactly one record (a call whose claim never landed ends
//! `expired`, with none), no job or marker left behind, and its callback sent.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use callproof::server::Application;
use callproof::store::{ByteStream, ObjectKey, ObjectMeta, ObjectStore, StoreError};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::helpers::*;

/// A store that takes the first `limit` writes and refuses every later one.
struct CrashAfter {
    inner: Arc<dyn ObjectStore>,
    limit: usize,
    writes: Arc<AtomicUsize>,
}

impl CrashAfter {
    /// Audit entries (and the markers announcing them) are written by the
    /// test's own reads of the record, not by the call: they pass uncounted.
    fn audit_write(&self, key: &ObjectKey, bytes: &[u8]) -> bool {
        key.as_str().starts_with("audit/")
            || (key.as_str().starts_with("seal/pending/")
                && bytes.starts_with(br#"{"key":"audit/"#))
    }

    fn write(&self, key: &str) -> Result<(), StoreError> {
        if self.writes.fetch_add(1, Ordering::SeqCst) < self.limit {
            Ok(())
        } else {
            Err(StoreError::Io {
                key: key.to_owned(),
                source: std::io::Error::other("the process crashed before this write"),
            })
        }
    }
}

#[async_trait]
impl ObjectStore for CrashAfter {
    async fn create(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), StoreError> {
        if !self.audit_write(key, &bytes) {
            self.write(key.as_str())?;
        }
        self.inner.create(key, bytes).await
    }
    async fn create_retained(
        &self,
        key: &ObjectKey,
        bytes: Bytes,
        until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if !self.audit_write(key, &bytes) {
            self.write(key.as_str())?;
        }
        self.inner.create_retained(key, bytes, until).await
    }
    async fn create_file(&self, key: &ObjectKey, path: &Path) -> Result<(), StoreError> {
        self.write(key.as_str())?;
        self.inner.create_file(key, path).await
    }
    async fn create_file_retained(
        &self,
        key: &ObjectKey,
        path: &Path,
        until: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        self.write(key.as_str())?;
        self.inner.create_file_retained(key, path, until).await
    }
    async fn get(&self, key: &ObjectKey) -> Result<Option<Bytes>, StoreError> {
        self.inner.get(key).await
    }
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.head(key).await
    }
    async fn read_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<Option<ByteStream>, StoreError> {
        self.inner.read_range(key, range).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.write(key.as_str())?;
        self.inner.delete(key).await
    }
    fn describe(&self) -> String {
        format!(
            "{} (crashing after {} writes)",
            self.inner.describe(),
            self.limit
        )
    }
}

/// A callback receiver that only counts deliveries per confirmation.
type Deliveries = Arc<std::sync::Mutex<Vec<Value>>>;

async fn receiver() -> (u16, Deliveries) {
    use axum::routing::post;
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(v): axum::Json<Value>| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, got)
}

fn settings(port: u16) -> Vec<(&'static str, String)> {
    vec![
        (
            "CALLPROOF_CALLBACK_ALLOWED_HOSTS",
            format!("127.0.0.1:{port}"),
        ),
        ("CALLPROOF_CALLBACK_RETRY_SECS", "1,1,1,1,1".into()),
        ("CALLPROOF_CONFIRMATION_TTL_SECS", "3".into()),
        ("CALLPROOF_FLOW_STEP_TTL_SECS", "2".into()),
        ("CALLPROOF_WEBHOOK_DEADLINE_SECS", "1".into()),
        ("CALLPROOF_RECORDING_WAIT_SECS", "2".into()),
        ("CALLPROOF_RECORDING_RETRY_BASE_MS", "100".into()),
        ("CALLPROOF_JOB_LEASE_SECS", "1".into()),
    ]
}

/// Starts a server on `dir` whose store takes `limit` writes (all when `None`).
async fn start(
    dir: &Path,
    port: u16,
    sweep_secs: u64,
    limit: Option<usize>,
) -> (TestApp, Arc<AtomicUsize>) {
    let mut extra = settings(port);
    extra.push(("CALLPROOF_SWEEP_INTERVAL_SECS", sweep_secs.to_string()));
    let env = test_env(
        dir,
        Options {
            extra,
            ..Options::default()
        },
    )
    .await;
    let writes = Arc::new(AtomicUsize::new(0));
    let counted = writes.clone();
    let app = Application::build_wrapped(test_config(dir, &env), move |inner| {
        Arc::new(CrashAfter {
            inner,
            limit: limit.unwrap_or(usize::MAX),
            writes: counted,
        })
    })
    .await
    .expect("server builds");
    (TestApp::serve(app, dir), writes)
}

/// The reference call, by hand-signed webhooks: request with a callback,
/// transfer, "1", the recording callback, the call's end. Statuses are not
/// checked: after the crash point the server answers apologies and 503s.
async fn reference_call(app: &TestApp, port: u16, media: &str) -> Option<String> {
    let mut body = billing_request();
    body["callback_url"] = json!(format!("http://127.0.0.1:{port}/hook"));
    let resp = app
        .post_json("/v1/confirmations", Some(AGENT_KEY), &body)
        .await;
    if resp.status().as_u16() != 201 {
        return None;
    }
    let created: Value = resp.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let resp = app.reach_transfer(&created, CALL).await;
    let xml = resp.text().await.unwrap_or_default();
    let Ok(doc) = callproof::simulate::doc::parse(&xml) else {
        return Some(id);
    };
    let callback = doc
        .children
        .first()
        .and_then(|s| s.children.first())
        .and_then(|r| r.attr("recordingStatusCallback"))
        .map(str::to_owned);
    let answer = doc
        .children
        .iter()
        .find(|v| v.name == "Gather")
        .and_then(|g| g.attr("action"))
        .map(str::to_owned);
    if let Some(answer) = answer {
        app.press(&answer, CALL, "1").await;
    }
    if let Some(callback) = callback {
        let sid = "RE00000000000000000000000000000001";
        app.webhook(&callback, &recording_params(CALL, sid, media), AUTH_TOKEN)
            .await;
    }
    let status = format!("{}/voice/status", app.base);
    app.webhook(
        &status,
        &call_params(CALL, &[("CallStatus", "completed")]),
        AUTH_TOKEN,
    )
    .await;
    Some(id)
}

/// What the store holds of one call once everything has settled.
async fn settled(app: &TestApp, id: &str, deliveries: &Deliveries) -> Result<(), String> {
    let left = |p: &'static str| async move { (p, app.stored(p).await) };
    for (prefix, n) in [
        left("open/").await,
        left("pending/").await,
        left("jobs/recordings/").await,
        left("jobs/callbacks/").await,
        left("jobs/parked/").await,
        left("jobs/failures/").await,
    ] {
        if n > 0 {
            return Err(format!("{n} object(s) left under {prefix}"));
        }
    }
    let view = app.confirmation(id).await;
    let claimed = !view["call"].is_null();
    let records = app.stored("records/").await;
    if !claimed {
        let delivered = deliveries
            .lock()
            .map(|d| {
                d.iter()
                    .any(|e| e["confirmation_id"] == id && e["type"] == "confirmation.expired")
            })
            .unwrap_or(false);
        return match (view["status"].as_str(), records) {
            (Some("expired"), 0) if delivered => Ok(()),
            (Some("expired"), 0) => Err("expired, but no confirmation.expired callback".into()),
            (status, n) => Err(format!(
                "unclaimed call: status {status:?}, {n} record objects"
            )),
        };
    }
    if view["outcome"].is_null() {
        return Err("a claimed call without an outcome".into());
    }
    let foreign = app
        .store
        .list("records/")
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|k| !k.as_str().starts_with(&format!("records/{id}/")))
        .count();
    if foreign > 0 {
        return Err(format!("{foreign} record objects of another confirmation"));
    }
    let delivered = deliveries
        .lock()
        .map(|d| d.iter().any(|e| e["confirmation_id"] == id))
        .unwrap_or(false);
    if !delivered {
        return Err("no outcome callback delivered".into());
    }
    let versions = app.version_numbers(id).await;
    if versions.first() != Some(&1) {
        return Err(format!("record versions {versions:?}"));
    }
    let record = app.record(id, None).await.ok_or("no record")?;
    let stored_audio = app.stored(&format!("confirmations/{id}/audio/")).await > 0;
    if stored_audio && record["status"] != "complete" {
        return Err(format!(
            "audio stored but the record says {}",
            record["status"]
        ));
    }
    // Everything written is sealed, and the evidence verifies.
    app.try_seal_all().await?;
    let pending = app.stored("seal/pending/").await;
    if pending > 0 {
        return Err(format!(
            "{pending} evidence object(s) announced and not sealed"
        ));
    }
    let report = app.verify_all().await;
    if report.has_problems() {
        return Err(format!("verification: {:?}", report.findings));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_at_any_write_of_a_whole_call_is_repaired_after_a_restart() {
    let (port, deliveries) = receiver().await;
    let media = speech_media("RE00000000000000000000000000000001").await;
    // First the whole call without a crash, to count its writes.
    let dir = tempfile::tempdir().unwrap();
    let (app, writes) = start(dir.path(), port, 1, None).await;
    let id = reference_call(&app, port, &media.recording_url)
        .await
        .expect("created");
    app.wait_record(&id, complete).await;
    // The crash points include sealing what the call wrote.
    app.seal_all().await;
    wait_settled(&app, &id, &deliveries, "the reference call").await;
    let total = writes.load(Ordering::SeqCst);
    eprintln!("a whole call wrote {total} objects; crashing before each of them");
    app.stop().await;
    assert!(total > 20, "a whole call writes more than {total} objects");

    // Then a crash before each write, four runs at a time.
    let crash_points: Vec<usize> = (0..total).collect();
    for batch in crash_points.chunks(4) {
        let url = &media.recording_url;
        let runs = batch.iter().map(|&n| crash_run(n, port, url, &deliveries));
        futures_util::future::join_all(runs).await;
    }
}

async fn crash_run(n: usize, port: u16, media: &str, deliveries: &Deliveries) {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    let (crashing, _) = start(&dir, port, 3600, Some(n)).await;
    let id = reference_call(&crashing, port, media).await;
    // A crash can come while sealing, too.
    let _ = crashing.try_seal_all().await;
    crashing.stop().await;
    let (app, _) = start(&dir, port, 1, None).await;
    let Some(id) = id else {
        // The request itself was never acknowledged: nothing may be left half done.
        wait_until(
            &format!("crash at write {n}: nothing left"),
            90,
            async || app.stored("records/").await == 0 && app.stored("open/").await == 0,
        )
        .await;
        app.stop().await;
        return;
    };
    wait_settled(&app, &id, deliveries, &format!("crash at write {n}")).await;
    app.stop().await;
}

/// Waits up to 60 s for [`settled`]; fails with what is still unsettled.
async fn wait_settled(app: &TestApp, id: &str, deliveries: &Deliveries, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match settled(app, id, deliveries).await {
            Ok(()) => return,
            Err(why) if std::time::Instant::now() > deadline => panic!("{what}: {why}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
