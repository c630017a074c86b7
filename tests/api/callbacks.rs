//! Outcome callbacks as a client's receiver sees them: signed the Standard
//! Webhooks way (checked with the reference library), retried, kept across a SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use callproof::simulate::CallEnd;
use serde_json::{json, Value};

use crate::helpers::*;

/// The Python with `standardwebhooks` that scripts/test installs.
fn python() -> PathBuf {
    std::env::var_os("TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        panic!("the callback tests verify deliveries with Python's standardwebhooks: run scripts/test, which installs it, or set TEST_PYTHON to a python that has it")
    })
}

/// `tests/fixtures/webhook-receiver.py` on a loopback port.
pub(crate) struct Receiver {
    child: Child,
    pub(crate) port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// Starts a receiver on `port` (0: any) that answers 500 to the first `fail_first` requests.
    pub(crate) fn start(port: u16, fail_first: usize) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("deliveries.jsonl");
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/webhook-receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["--secret", CALLBACK_SECRET, "--out"])
            .arg(&out)
            .args([
                "--port",
                &port.to_string(),
                "--fail-first",
                &fail_first.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the receiver starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the receiver said {line:?}"));
        Receiver {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    /// Every request it got, in order.
    fn deliveries(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub(crate) fn verified(&self) -> Vec<Value> {
        self.deliveries()
            .into_iter()
            .filter(|d| d["verified"] == true)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn allowing(port: u16, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut v = vec![
        (
            "CALLPROOF_CALLBACK_ALLOWED_HOSTS",
            format!("127.0.0.1:{port}"),
        ),
        ("CALLPROOF_SWEEP_INTERVAL_SECS", "1".into()),
    ];
    v.extend(extra.iter().map(|(k, val)| (*k, val.to_string())));
    v
}

fn with_callback(port: u16) -> Value {
    let mut body = billing_request();
    body["callback_url"] = json!(format!("http://127.0.0.1:{port}/hooks/callproof"));
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outcome_callback_arrives_signed_after_the_receiver_fails_twice() {
    let receiver = Receiver::start(0, 2);
    let app = spawn_with(Options {
        extra: allowing(receiver.port, &[("CALLPROOF_CALLBACK_RETRY_SECS", "1,1,1")]),
        ..Options::default()
    })
    .await;
    let created = app.create(&with_callback(receiver.port)).await;
    app.call(created["transfer_url"].as_str().unwrap(), &["press:1"])
        .await;
    wait_until("a verified delivery", 30, async || {
        !receiver.verified().is_empty()
    })
    .await;
    let all = receiver.deliveries();
    assert_eq!(all.len(), 3, "{all:#?}");
    assert_eq!(all[0]["verified"], Value::Null, "answered 500");
    assert_eq!(all[1]["verified"], Value::Null, "answered 500");
    assert_eq!(all[2]["verified"], true, "{all:#?}");
    // One event: the same id and bytes every time, a fresh timestamp each attempt.
    assert!(all.iter().all(|d| d["webhook_id"] == all[0]["webhook_id"]));
    assert!(all.iter().all(|d| d["body"] == all[0]["body"]));
    let ts = |d: &Value| {
        d["webhook_timestamp"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    assert!(ts(&all[2]) > ts(&all[0]), "{all:#?}");
    let event: Value = serde_json::from_str(all[2]["body"].as_str().unwrap()).unwrap();
    assert_eq!(event["id"], all[2]["webhook_id"]);
    assert_eq!(event["type"], "confirmation.confirmed");
    assert_eq!(event["outcome"], "confirmed");
    assert_eq!(event["confirmation_id"], created["id"]);
    assert_eq!(event["confirmation_number"], created["confirmation_number"]);
    assert_eq!(event["account_id"], "ACC-1001");
    assert_eq!(event["kind"], "billing");
    assert!(event["at"].as_str().unwrap().ends_with('Z'));
    wait_until("the callback job is done", 10, async || {
        app.stored("jobs/callbacks/").await == 0 && app.stored("jobs/failures/").await == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outcome_callback_survives_a_sigkill_between_outcome_and_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::s3::free_port();
    let env = test_env(
        dir.path(),
        Options {
            extra: allowing(
                port,
                &[("CALLPROOF_CALLBACK_RETRY_SECS", "1,1,1,1,1,1,1,1,1,1")],
            ),
            ..Options::default()
        },
    )
    .await;
    let (server, app) = crate::cli::serve_attached(dir.path(), &env).await;
    let created = app.create(&with_callback(port)).await;
    app.call(created["transfer_url"].as_str().unwrap(), &["press:2"])
        .await;
    // Nobody listens yet: the first attempt fails and is noted.
    wait_until("a failed delivery", 20, async || {
        app.stored("jobs/failures/").await > 0
    })
    .await;
    drop(server); // SIGKILL: nothing in memory survives
    let receiver = Receiver::start(port, 0);
    let (_server, _app) = crate::cli::serve_attached(dir.path(), &env).await;
    wait_until("a verified delivery after the restart", 30, async || {
        !receiver.verified().is_empty()
    })
    .await;
    let verified = receiver.verified();
    assert_eq!(verified.len(), 1, "{verified:#?}");
    let event: Value = serde_json::from_str(verified[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(event["type"], "confirmation.declined");
    assert_eq!(event["confirmation_id"], created["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_expires_uncalled_sends_confirmation_expired() {
    let receiver = Receiver::start(0, 0);
    let app = spawn_with(Options {
        extra: allowing(receiver.port, &[("CALLPROOF_CONFIRMATION_TTL_SECS", "1")]),
        ..Options::default()
    })
    .await;
    let created = app.create(&with_callback(receiver.port)).await;
    wait_until("the expiry event", 20, async || {
        !receiver.verified().is_empty()
    })
    .await;
    let event: Value =
        serde_json::from_str(receiver.verified()[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(event["type"], "confirmation.expired");
    assert_eq!(event["outcome"], "expired");
    assert_eq!(event["at"], created["expires_at"]);
    // Expiry is a settled outcome now: a call arriving later cannot end it otherwise.
    let resp = app.reach_transfer(&created, CALL).await;
    assert_eq!(resp.status().as_u16(), 200);
    let xml = resp.text().await.unwrap();
    assert!(!xml.contains("<Gather"), "no question after expiry: {xml}");
    let view = app.confirmation(created["id"].as_str().unwrap()).await;
    assert_eq!(view["status"], "expired");
    assert_eq!(view["outcome"]["outcome"], "expired");
    assert!(view["call"].is_null());
    assert_eq!(app.stored("records/").await, 0, "no call, no record");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_who_says_the_request_is_not_theirs_ends_it_disputed_with_a_signed_callback() {
    let receiver = Receiver::start(0, 0);
    let app = spawn_with(Options {
        extra: allowing(receiver.port, &[]),
        ..Options::default()
    })
    .await;
    let mut ids = Vec::new();
    for answer in ["say:that's not me@0.85", "press:2"] {
        let created = app.create(&with_callback(receiver.port)).await;
        let report = app
            .call_with_recording(
                created["transfer_url"].as_str().expect("transfer url"),
                &[answer],
                fixture("speech-8k-pcm16.wav"),
            )
            .await;
        assert_eq!(report.end, CallEnd::ServerHungUp, "{answer}");
        ids.push((created, heard(&report)));
    }
    let (created, heard) = &ids[0];
    let id = created["id"].as_str().expect("id");
    let declined = ids[1].0["id"].as_str().expect("id");
    assert!(
        heard.contains("We've noted that you did not request this change."),
        "{heard}"
    );
    assert!(!heard.contains("confirmation number is"), "{heard}");

    let view = app.confirmation(id).await;
    assert_eq!(view["status"], "disputed", "{view}");
    assert_eq!(view["outcome"]["outcome"], "disputed");
    assert_eq!(view["events"][0]["transcript"], "that's not me");
    assert_eq!(view["events"][0]["label"], "dispute");
    assert_eq!(app.confirmation(declined).await["status"], "declined");

    // The record (checked against the published schema as it is read) says so.
    let record = app.wait_record(id, complete).await;
    assert_valid_record(&record);
    assert_eq!(record["outcome"]["status"], "disputed");
    assert_eq!(record["consent_events"][0]["label"], "dispute");
    assert_eq!(record["consent_events"][0]["input_type"], "speech");
    let versions = app.versions(id).await;
    assert_eq!(versions["versions"][0]["outcome"], "disputed", "{versions}");
    app.wait_record(declined, complete).await;

    // The outcome filter finds it, and only it.
    for (outcome, want) in [("disputed", id), ("declined", declined)] {
        let resp = app
            .compliance_get(&format!("/v1/records?outcome={outcome}"), None)
            .await;
        assert_eq!(resp.status().as_u16(), 200, "{outcome}");
        let page: Value = resp.json().await.expect("search JSON");
        assert_valid_against("record-search.v1.schema.json", &page);
        let found: Vec<&str> = page["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter_map(|r| r["record_id"].as_str())
            .collect();
        assert_eq!(found, [want], "outcome={outcome}: {page}");
        assert_eq!(page["records"][0]["outcome"], outcome);
    }

    wait_until("both signed callbacks", 30, async || {
        receiver.verified().len() >= 2
    })
    .await;
    let events: Vec<Value> = receiver
        .verified()
        .iter()
        .map(|d| {
            let event: Value =
                serde_json::from_str(d["body"].as_str().expect("body")).expect("event JSON");
            assert_eq!(event["id"], d["webhook_id"], "{d}");
            event
        })
        .collect();
    let disputed: Vec<&Value> = events
        .iter()
        .filter(|e| e["confirmation_id"] == created["id"])
        .collect();
    assert_eq!(disputed.len(), 1, "{events:#?}");
    assert_eq!(disputed[0]["type"], "confirmation.disputed");
    assert_eq!(disputed[0]["outcome"], "disputed");
    assert_eq!(
        disputed[0]["confirmation_number"],
        created["confirmation_number"]
    );
    assert!(
        events
            .iter()
            .any(|e| e["confirmation_id"] == declined && e["type"] == "confirmation.declined"),
        "{events:#?}"
    );
}
