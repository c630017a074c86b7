//! The inbound number end to end: the server as a process with its logs kept,
//! the simulator dialling in and serving the provider REST API that pauses the recording.

use std::time::Duration;

use serde_json::{json, Value};

use callproof::simulate::provider_api::{ApiFailure, ProviderApi};
use callproof::simulate::{self, CallEnd, CallReport, CallStart};

use crate::cli::Server;
use crate::helpers::*;

/// The agent number every inbound test server sends callers to.
const AGENT: &str = "+15550001111";
/// The customer phone of the requests, and the caller ID of calls found by it.
const CUSTOMER: &str = "+15551230001";
/// A caller ID that is no customer's.
const STRANGER: &str = "+15550009999";
/// The PIN of the requests: eight digits, so a chance match cannot hide a leak.
const PIN: &str = "48213907";
/// What each keypad digit takes the simulated caller: long enough that a
/// paused span is a measurable stretch of the recording.
const KEY_PRESS: Duration = Duration::from_millis(120);

struct Inbound {
    server: Server,
    app: TestApp,
    api: ProviderApi,
    _dir: tempfile::TempDir,
}

/// `callproof serve` with debug logs, an agent number and the simulator's
/// provider REST API; `extra` settings on top.
async fn start(extra: Vec<(&'static str, String)>) -> Inbound {
    let api = ProviderApi::start(ACCOUNT_SID, AUTH_TOKEN)
        .await
        .expect("provider API starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = vec![
        ("CALLPROOF_PROVIDER_API_URL", api.url().to_owned()),
        ("CALLPROOF_LOG", "callproof=debug,info".to_owned()),
    ];
    settings.extend(extra);
    let env = test_env(
        dir.path(),
        Options {
            agent_number: Some(AGENT),
            extra: settings,
        },
    )
    .await;
    let (server, app) = crate::cli::serve_attached(dir.path(), &env).await;
    Inbound {
        server,
        app,
        api,
        _dir: dir,
    }
}

impl Inbound {
    /// An inbound call from `from` answering `answers`.
    async fn call(&self, from: &str, answers: &[&str], pause: Option<ApiFailure>) -> CallReport {
        let url = format!("{}/voice/incoming", self.app.base);
        let mut sim = self.app.simulation(&url, answers);
        sim.start = CallStart::Inbound {
            url,
            stir_verstat: Some("TN-Validation-Passed-A".into()),
        };
        sim.from = from.to_owned();
        sim.provider_api = Some(self.api.clone());
        sim.pause_failure = pause;
        sim.key_press = KEY_PRESS;
        simulate::run(&sim, &mut |_| {})
            .await
            .expect("simulated call runs")
    }

    /// Fails if `secret` appears in the server's log, in any stored object,
    /// in any file of its data directory, or in `answers`.
    async fn assert_nowhere(&self, secret: &str, answers: &[&str]) {
        assert!(
            !self.server.log().contains(secret),
            "the log holds a secret"
        );
        let keys = self.app.store.list("").await.expect("store lists");
        assert!(!keys.is_empty());
        for key in keys {
            let Some(bytes) = self.app.store.get(&key).await.expect("store reads") else {
                continue;
            };
            assert!(
                !contains(&bytes, secret),
                "stored object {} holds a secret",
                key.as_str()
            );
        }
        for entry in walkdir(self.app.data_dir.as_path()) {
            let bytes = std::fs::read(&entry).unwrap_or_default();
            assert!(
                !contains(&bytes, secret),
                "{} holds a secret",
                entry.display()
            );
        }
        for a in answers {
            assert!(!a.contains(secret), "an API answer holds a secret: {a}");
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn request(identity: Value, account_id: &str) -> Value {
    let mut body = billing_request();
    body["identity"] = identity;
    body["account_id"] = json!(account_id);
    body
}

/// What was heard before the identity check passed, and after.
fn split_at_verified(report: &CallReport) -> (String, String) {
    let all = heard(report);
    match all.find("you are verified") {
        Some(i) => (all[..i].to_owned(), all[i..].to_owned()),
        None => (all, String::new()),
    }
}

/// Nothing of the request: the customer's name, the change, its number.
fn assert_says_nothing_of(text: &str, created: &Value) {
    for word in [
        "Dana",
        "Reyes",
        "card",
        created["confirmation_number"].as_str().expect("number"),
    ] {
        assert!(
            !text.contains(word),
            "{word:?} was heard before the check: {text}"
        );
    }
}

/// The archival WAV of a record, as samples.
async fn archival_samples(app: &TestApp, id: &str) -> (u32, Vec<i32>) {
    let resp = app
        .compliance_get(&format!("/v1/records/{id}/audio"), None)
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let bytes = resp.bytes().await.expect("audio");
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).expect("WAV");
    let spec = reader.spec();
    assert_eq!(spec.channels, 1);
    let samples = reader
        .into_samples::<i32>()
        .map(|s| s.expect("sample"))
        .collect();
    (spec.sample_rate, samples)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_found_by_caller_id_passes_a_pin_check_confirms_and_no_pin_is_kept() {
    let t = start(Vec::new()).await;
    let created = t
        .app
        .create(&request(json!({"method": "pin", "pin": PIN}), "ACC-1001"))
        .await;
    assert!(created.get("one_time_code").is_none(), "{created}");
    let id = created["id"].as_str().expect("id").to_owned();

    let report = t
        .call(
            CUSTOMER,
            &["press:1", &format!("press:{PIN}#"), "press:1"],
            None,
        )
        .await;
    let (before, after) = split_at_verified(&report);
    assert!(!after.is_empty(), "never verified: {}", heard(&report));
    assert!(before.contains("This call is recorded"), "{before}");
    assert!(before.contains("PIN"), "{before}");
    assert_says_nothing_of(&before, &created);
    assert!(after.to_lowercase().contains("card on file"), "{after}");
    assert!(!heard(&report).contains(PIN));

    // The recording was paused while the PIN was keyed in, and resumed.
    let asked: Vec<_> = report
        .api_requests
        .iter()
        .map(|r| (r.status.as_str(), r.pause_behavior.as_deref(), r.answered))
        .collect();
    assert_eq!(
        asked,
        [("paused", Some("silence"), 200), ("in-progress", None, 200)]
    );
    assert_eq!(report.paused_spans.len(), 1);
    let sim_span = report.paused_spans[0];
    assert!(sim_span.to - sim_span.from >= KEY_PRESS * 8);

    let confirmation = t.app.confirmation(&id).await;
    assert_eq!(confirmation["status"], "confirmed", "{confirmation}");
    let record = t.app.wait_record(&id, complete).await;
    let call = &record["call"];
    assert_eq!(call["leg"], "inbound");
    assert_eq!(call["caller_id_matches"], true);
    assert_eq!(call["stir_verstat"], "TN-Validation-Passed-A");
    assert_eq!(call["identity"]["method"], "pin");
    assert_eq!(call["identity"]["result"], "passed");
    assert_eq!(call["identity"]["tries"], 1);
    let spans = call["paused"].as_array().expect("paused spans");
    assert_eq!(spans.len(), 1, "{call}");
    assert_eq!(spans[0]["why"], "pin");
    let from_ms = spans[0]["from_ms"].as_u64().expect("from_ms");
    let to_ms = spans[0]["to_ms"].as_u64().expect("to_ms");
    // The server's span is the simulator's, to the width of a webhook.
    let near = |a: u64, b: Duration| (a as i64 - b.as_millis() as i64).abs() <= 250;
    assert!(near(from_ms, sim_span.from), "{from_ms} vs {sim_span:?}");
    assert!(near(to_ms, sim_span.to), "{to_ms} vs {sim_span:?}");

    // The archived audio is silent over the span and sound on both sides,
    // and the consent answer's offset still points after it.
    let (rate, samples) = archival_samples(&t.app, &id).await;
    let at = |ms: u64| (ms * u64::from(rate) / 1000) as usize;
    let margin = 60;
    let inside = &samples[at(from_ms + margin)..at(to_ms - margin)];
    assert!(inside.iter().all(|s| *s == 0), "sound in the paused span");
    assert!(samples[..at(from_ms - margin)].iter().any(|s| *s != 0));
    assert!(samples[at(to_ms + margin)..].iter().any(|s| *s != 0));
    let events = record["consent_events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{record}");
    let offset_ms = (events[0]["offset_secs"].as_f64().expect("offset") * 1000.0) as u64;
    assert!(
        offset_ms >= to_ms,
        "answer at {offset_ms} ms, pause ended {to_ms} ms"
    );
    // The offset counts from the provider's RecordingStartTime, which has
    // whole seconds (RFC 2822): it may run up to a second past the audio's
    // end when the answer came in the recording's last moments.
    assert!(
        at(offset_ms) <= samples.len() + rate as usize,
        "answer at {offset_ms} ms, audio of {} samples at {rate} Hz",
        samples.len()
    );
    assert_valid_record(&record);

    let answers = [
        created.to_string(),
        confirmation.to_string(),
        record.to_string(),
        t.app
            .get_with("/v1/identity/signals", Some(COMPLIANCE_KEY))
            .await
            .text()
            .await
            .expect("signals"),
    ];
    let answers: Vec<&str> = answers.iter().map(String::as_str).collect();
    t.assert_nowhere(PIN, &answers).await;
    // The secret's MAC and the caller-ID lookup went with the request; what
    // stays under identity/ is the write-once attempt, which holds no secret.
    let left = t
        .app
        .store
        .list(&format!("identity/{id}/"))
        .await
        .expect("lists");
    let left: Vec<&str> = left.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        left,
        [format!("identity/{id}/attempts/01.json")],
        "{left:?}"
    );
    let lookups = t.app.store.list("lookup/").await.expect("lists");
    assert!(lookups.is_empty(), "{lookups:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_found_by_account_number_passes_a_one_time_code_and_confirms() {
    let t = start(Vec::new()).await;
    let created = t
        .app
        .create(&request(json!({"method": "otp"}), "ACC-5550-1234"))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let code = created["one_time_code"]
        .as_str()
        .expect("one_time_code")
        .to_owned();
    assert_eq!(code.len(), 8);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    assert!(created["one_time_code_expires_at"].is_string());
    // Returned once: reading the request again does not show it.
    let again = t.app.confirmation(&id).await;
    assert!(!again.to_string().contains(&code), "{again}");

    // Not the customer's phone: the account number finds the request.
    let report = t
        .call(
            STRANGER,
            &[
                "press:1",
                "press:55501234#",
                &format!("press:{code}#"),
                "press:1",
            ],
            None,
        )
        .await;
    let (before, after) = split_at_verified(&report);
    assert!(before.contains("account number"), "{before}");
    assert!(before.contains("code"), "{before}");
    assert_says_nothing_of(&before, &created);
    assert!(after.to_lowercase().contains("card on file"), "{after}");
    assert_eq!(t.app.confirmation(&id).await["status"], "confirmed");
    let record = t.app.wait_record(&id, complete).await;
    assert_eq!(record["call"]["identity"]["method"], "otp");
    assert_eq!(record["call"]["identity"]["result"], "passed");
    assert_eq!(record["call"]["caller_id_matches"], false);
    assert!(!record["call"]["paused"]
        .as_array()
        .expect("spans")
        .is_empty());
    let answers = [created.to_string(), again.to_string(), record.to_string()];
    // The 201 answer is the one place the code may be.
    t.assert_nowhere(
        &code,
        &answers[1..].iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_wrong_pins_lock_the_confirmation_send_the_caller_to_an_agent_and_keep_a_record() {
    let receiver = crate::callbacks::Receiver::start(0, 0);
    let t = start(crate::callbacks::allowing(receiver.port, &[])).await;
    let mut body = request(json!({"method": "pin", "pin": PIN}), "ACC-1001");
    body["callback_url"] = json!(format!(
        "http://127.0.0.1:{}/hooks/callproof",
        receiver.port
    ));
    let created = t.app.create(&body).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let wrong = ["press:11112222#", "press:33334444#", "press:55556666#"];
    let report = t
        .call(CUSTOMER, &["press:1", wrong[0], wrong[1], wrong[2]], None)
        .await;
    assert_eq!(report.end, CallEnd::Dialed(AGENT.into()));
    let all = heard(&report);
    assert!(!all.contains("you are verified"), "{all}");
    assert_says_nothing_of(&all, &created);
    assert_eq!(all.matches("That did not match").count(), 2, "{all}");

    assert_eq!(t.app.confirmation(&id).await["status"], "locked");
    let record = t.app.wait_record(&id, complete).await;
    assert_eq!(record["outcome"]["status"], "locked");
    assert_eq!(record["call"]["identity"]["result"], "failed");
    assert_eq!(record["call"]["identity"]["tries"], 3);
    assert!(record["consent_events"]
        .as_array()
        .expect("events")
        .is_empty());
    assert_valid_record(&record);

    wait_until("the signed locked callback", 30, async || {
        !receiver.verified().is_empty()
    })
    .await;
    let event: Value = serde_json::from_str(receiver.verified()[0]["body"].as_str().expect("body"))
        .expect("event");
    assert_eq!(event["type"], "confirmation.locked");
    assert_eq!(event["confirmation_id"], created["id"]);

    // The caller ID's failures are counted, masked, for compliance staff.
    let signals: Value = t
        .app
        .get_with("/v1/identity/signals", Some(COMPLIANCE_KEY))
        .await
        .json()
        .await
        .expect("signals");
    let callers = signals["callers"].as_array().expect("callers");
    assert_eq!(callers.len(), 1, "{signals}");
    assert_eq!(callers[0]["failed_checks"], 3, "{signals}");
    assert_eq!(callers[0]["requests"], 1, "{signals}");
    assert_valid_against("identity-signals.v1.schema.json", &signals);
    assert!(!signals.to_string().contains(CUSTOMER));
    let metrics = t
        .app
        .get_with("/metrics", None)
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains(r#"callproof_identity_checks_total{method="pin",result="fail"} 3"#),
        "{metrics}"
    );
    for w in wrong {
        let digits = w.trim_start_matches("press:").trim_end_matches('#');
        t.assert_nowhere(digits, &[&signals.to_string(), &record.to_string()])
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pause_the_provider_refuses_sends_the_caller_to_an_agent_before_any_secret_is_asked() {
    let t = start(Vec::new()).await;
    let created = t
        .app
        .create(&request(json!({"method": "pin", "pin": PIN}), "ACC-1001"))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let report = t
        .call(
            CUSTOMER,
            &["press:1", &format!("press:{PIN}#")],
            Some(ApiFailure::Status(400)),
        )
        .await;
    assert_eq!(report.end, CallEnd::Dialed(AGENT.into()));
    let all = heard(&report);
    assert!(!all.contains("PIN"), "the PIN was asked for: {all}");
    assert_says_nothing_of(&all, &created);
    assert!(report.paused_spans.is_empty());
    // The request is untouched: an agent can still take it.
    let c = t.app.confirmation(&id).await;
    assert_eq!(c["status"], "pending", "{c}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_pin_opens_the_customers_pending_requests_and_the_caller_chooses_which_to_confirm() {
    let t = start(Vec::new()).await;
    let pin = json!({"method": "pin", "pin": PIN});
    let billing = t.app.create(&request(pin.clone(), "ACC-1001")).await;
    let mut body = request(pin, "ACC-1001");
    body["kind"] = json!("contact");
    body["change"] = json!([
        {"field": "email_address", "before": "a@example.com", "after": "b@example.com"}
    ]);
    let contact = t.app.create(&body).await;
    // The same account, another PIN: this PIN does not open it.
    let other_pin = "73920518";
    let mut body = request(json!({"method": "pin", "pin": other_pin}), "ACC-1001");
    body["kind"] = json!("plan");
    let plan = t.app.create(&body).await;
    let id = |v: &Value| v["id"].as_str().expect("id").to_owned();

    let report = t
        .call(
            CUSTOMER,
            &["press:1", &format!("press:{PIN}#"), "press:2", "press:1"],
            None,
        )
        .await;
    let (before, after) = split_at_verified(&report);
    assert!(!after.is_empty(), "never verified: {}", heard(&report));
    assert_says_nothing_of(&before, &billing);
    assert!(!before.contains("example.com"), "{before}");
    assert!(!before.contains("contact"), "{before}");
    assert!(after.contains("You have 2 changes to confirm"), "{after}");
    assert!(
        after.contains("For the change of your billing details, press 1."),
        "{after}"
    );
    assert!(
        after.contains("For the change of your contact details, press 2."),
        "{after}"
    );
    assert!(!after.contains("your plan"), "{after}");
    assert!(after.contains("b@example.com"), "{after}");
    assert_eq!(after.matches("you are verified").count(), 1, "{after}");

    // The chosen one confirmed, with its own pass on record; the others wait.
    assert_eq!(
        t.app.confirmation(&id(&contact)).await["status"],
        "confirmed"
    );
    assert_eq!(t.app.confirmation(&id(&billing)).await["status"], "pending");
    assert_eq!(t.app.confirmation(&id(&plan)).await["status"], "pending");
    let record = t.app.wait_record(&id(&contact), complete).await;
    assert_eq!(record["call"]["identity"]["method"], "pin");
    assert_eq!(record["call"]["identity"]["result"], "passed");
    assert_eq!(record["call"]["identity"]["tries"], 1);
    assert_eq!(record["consent_events"].as_array().map(Vec::len), Some(1));
    assert_valid_record(&record);
    let plan_attempts = t
        .app
        .store
        .list(&format!("identity/{}/attempts/", id(&plan)))
        .await
        .expect("lists");
    assert!(plan_attempts.is_empty(), "{plan_attempts:?}");
    t.assert_nowhere(PIN, &[]).await;
    t.assert_nowhere(other_pin, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn knowledge_answers_pass_a_check_and_are_kept_nowhere() {
    let t = start(Vec::new()).await;
    let (first, second) = ("94107215", "19850612");
    let created = t
        .app
        .create(&request(
            json!({"method": "kba", "questions": [
                {"prompt": "the ZIP code and suite on the account", "answer": first},
                {"prompt": "your date of birth as year, month and day", "answer": second}
            ]}),
            "ACC-1001",
        ))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let report = t
        .call(
            CUSTOMER,
            &[
                "press:1",
                &format!("press:{first}#"),
                &format!("press:{second}#"),
                "press:1",
            ],
            None,
        )
        .await;
    let (before, after) = split_at_verified(&report);
    assert!(!after.is_empty(), "never verified: {}", heard(&report));
    assert!(
        before.contains("Please enter the ZIP code and suite on the account"),
        "{before}"
    );
    assert!(before.contains("your date of birth"), "{before}");
    assert_says_nothing_of(&before, &created);
    assert_eq!(t.app.confirmation(&id).await["status"], "confirmed");
    let record = t.app.wait_record(&id, complete).await;
    assert_eq!(record["call"]["identity"]["method"], "kba");
    assert_eq!(record["call"]["identity"]["result"], "passed");
    assert_eq!(record["call"]["identity"]["tries"], 1);
    assert_eq!(record["call"]["paused"][0]["why"], "kba");
    assert_valid_record(&record);
    let answers = [created.to_string(), record.to_string()];
    let answers: Vec<&str> = answers.iter().map(String::as_str).collect();
    t.assert_nowhere(first, &answers).await;
    t.assert_nowhere(second, &answers).await;
    assert!(!heard(&report).contains(first));
}
