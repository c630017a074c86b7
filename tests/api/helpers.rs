//! `spawn_app()` starts callproof exactly as `serve` does, on port 0, with its
//! own data directory; helpers create requests, place calls and sign webhooks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use callproof::config::Config;
use callproof::flow::token::TokenSigner;
use callproof::provider::signature;
use callproof::server::Application;
use callproof::simulate::{self, Answer, CallReport, Simulation};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const AGENT_KEY: &str = "agent-key-for-tests-0001";
pub const COMPLIANCE_KEY: &str = "compliance-key-for-tests-0001";
/// An admin key, configured with the name [`ADMIN_KEY_NAME`].
pub const ADMIN_KEY: &str = "admin-key-for-tests-0001";
pub const ADMIN_KEY_NAME: &str = "ops-desk";
pub const AUTH_TOKEN: &str = "0123456789abcdef0123456789abcdef";
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TOKEN_SECRET: &str = "token-secret-for-tests-0123456789abcdef";
/// The reason `compliance_get` gives for every access.
pub const TEST_REASON: &str = "integration test of the compliance API";
/// Signs outcome callbacks in tests: `whsec_` and base64 of 32 bytes.
pub const CALLBACK_SECRET: &str = "whsec_Y2FsbGJhY2stc2VjcmV0LWZvci10ZXN0cy0wMDAwMDE=";

pub struct TestApp {
    /// The public URL: where webhooks and API calls go.
    pub base: String,
    /// Where this instance itself listens (the public URL may be a proxy's).
    pub local: String,
    pub data_dir: PathBuf,
    /// The server's store (a local directory, or a bucket when TEST_S3_ENDPOINT is set).
    pub store: std::sync::Arc<dyn callproof::store::ObjectStore>,
    pub client: reqwest::Client,
    /// The server's sealer, when it runs in this process.
    pub sealer: Option<callproof::evidence::seal::Sealer>,
    _tmp: Option<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Options for a test server.
#[derive(Default, Clone)]
pub struct Options {
    pub agent_number: Option<&'static str>,
    pub extra: Vec<(&'static str, String)>,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(opts: Options) -> TestApp {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_path_buf();
    let mut app = spawn_in(&dir, opts).await;
    app._tmp = Some(tmp);
    app
}

/// The settings of a test server on `data_dir`: test credentials, then
/// `opts`; in the S3 pass of scripts/test, a bucket of its own (kept for this
/// data directory) on the moto server that pass started.
pub async fn test_env(data_dir: &Path, opts: Options) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("CALLPROOF_LISTEN".into(), "127.0.0.1:0".into()),
        ("CALLPROOF_DATA_DIR".into(), data_dir.display().to_string()),
        ("CALLPROOF_TWILIO_ACCOUNT_SID".into(), ACCOUNT_SID.into()),
        ("CALLPROOF_TWILIO_AUTH_TOKEN".into(), AUTH_TOKEN.into()),
        (
            "CALLPROOF_API_KEYS".into(),
            format!(
                "agent:{AGENT_KEY},compliance:{COMPLIANCE_KEY},admin:{ADMIN_KEY_NAME}:{ADMIN_KEY}"
            ),
        ),
        ("CALLPROOF_TOKEN_SECRET".into(), TOKEN_SECRET.into()),
        ("CALLPROOF_CALLBACK_SECRET".into(), CALLBACK_SECRET.into()),
        // Instances sharing one index must share its phone secret.
        (
            "CALLPROOF_INDEX_PHONE_SECRET".into(),
            "test-index-phone-secret-0123456789abcdef".into(),
        ),
        (
            "CALLPROOF_IDENTITY_SECRET".into(),
            "test-identity-secret-0123456789abcdef".into(),
        ),
        ("CALLPROOF_MAX_BODY_BYTES".into(), "16384".into()),
        // A server stopped in a test leaves its job leases behind; the next
        // one takes them over after this.
        ("CALLPROOF_JOB_LEASE_SECS".into(), "3".into()),
    ];
    if let Some(n) = opts.agent_number {
        env.push(("CALLPROOF_AGENT_NUMBER".into(), n.into()));
    }
    let chose_store = opts.extra.iter().any(|(k, _)| *k == "CALLPROOF_STORE");
    for (k, v) in opts.extra {
        env.push((k.into(), v));
    }
    if let (Ok(endpoint), false) = (std::env::var("TEST_S3_ENDPOINT"), chose_store) {
        let marker = data_dir.join("test-bucket");
        let name = match std::fs::read_to_string(&marker) {
            Ok(n) => n,
            Err(_) => {
                let n = format!("t-{}", callproof::domain::ConfirmationId::generate());
                crate::s3::bucket(&endpoint, &n, true).await;
                std::fs::write(&marker, &n).expect("bucket marker");
                n
            }
        };
        for (k, v) in crate::s3::s3_options(&endpoint, &name).extra {
            env.push((k.into(), v));
        }
    }
    env
}

pub fn test_config(data_dir: &Path, env: &[(String, String)]) -> Config {
    // An empty file, so a developer's ./callproof.toml never leaks into tests.
    let file = data_dir.join("test-callproof.toml");
    std::fs::write(&file, "").expect("config file");
    Config::load(Some(&file), env, &[]).expect("test config")
}

/// Starts a server on `data_dir`, which may hold an earlier server's data.
pub async fn spawn_in(data_dir: &Path, opts: Options) -> TestApp {
    let env = test_env(data_dir, opts).await;
    let app = Application::build(test_config(data_dir, &env))
        .await
        .expect("server builds");
    TestApp::serve(app, data_dir)
}

impl TestApp {
    /// Runs a built server on its data directory `data_dir` until stopped.
    pub fn serve(app: Application, data_dir: &Path) -> TestApp {
        let base = app.public_base().to_owned();
        let local = format!("http://{}", app.address());
        let store = app.state().store.clone();
        let sealer = Some(app.state().sealer.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            base,
            local,
            data_dir: data_dir.to_path_buf(),
            store,
            client: reqwest::Client::new(),
            sealer,
            _tmp: None,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }
}

impl TestApp {
    /// Seals everything announced so far, as the sealer does every
    /// `seal_secs`; returns the head.
    pub async fn seal_all(&self) -> callproof::evidence::seal::Head {
        self.try_seal_all().await.expect("sealing works");
        callproof::evidence::seal::head(self.store.as_ref())
            .await
            .expect("head reads")
    }

    /// [`TestApp::seal_all`] that reports a failure instead of panicking.
    pub async fn try_seal_all(&self) -> Result<(), String> {
        use callproof::evidence::seal::Sealed;
        let sealer = self
            .sealer
            .as_ref()
            .expect("the sealer of a server in this process");
        for _ in 0..100 {
            match sealer
                .seal_once(time::OffsetDateTime::now_utc())
                .await
                .map_err(|e| e.to_string())?
            {
                Sealed::Nothing => return Ok(()),
                Sealed::NotLeader => tokio::time::sleep(Duration::from_millis(100)).await,
                Sealed::Wrote { .. } | Sealed::Lost => {}
            }
        }
        Err("sealing did not finish in 100 passes".into())
    }

    /// Verifies the whole store with the development signing key of the data
    /// directory, as `callproof records verify --all` does.
    pub async fn verify_all(&self) -> callproof::evidence::verify::Report {
        let key = callproof::evidence::keys::SigningKey::from_file(
            &self.data_dir.join("dev-signing-key.pem"),
        )
        .expect("the development signing key");
        let trust =
            callproof::evidence::trust::Trust::configured(Some(key.public()), None).expect("trust");
        let noop = |_: u64, _: u64| {};
        callproof::evidence::verify::verify(
            self.store.as_ref(),
            &trust,
            &callproof::evidence::verify::Scope::All,
            None,
            std::time::Duration::from_secs(3600),
            &noop,
        )
        .await
        .expect("verification runs")
    }
}

impl TestApp {
    /// A handle on a server running elsewhere (a `callproof serve` process)
    /// at `base`, with the settings `env`, for its API and its store.
    pub async fn attach(base: &str, data_dir: &Path, env: &[(String, String)]) -> TestApp {
        let config = test_config(data_dir, env);
        let store = callproof::server::connect_store(&config)
            .await
            .expect("store opens");
        TestApp {
            base: base.trim_end_matches('/').to_owned(),
            local: base.trim_end_matches('/').to_owned(),
            data_dir: data_dir.to_path_buf(),
            store,
            client: reqwest::Client::new(),
            sealer: None,
            _tmp: None,
            shutdown: None,
            handle: None,
        }
    }
}

/// The request body the agent API documents.
pub fn billing_request() -> Value {
    json!({
        "account_id": "ACC-1001",
        "kind": "billing",
        "change": [{"field": "card_number", "label": "card on file",
                    "before": "4111111111111111", "after": "5500005555555559", "sensitive": true}],
        "customer": {"name": "Dana Reyes", "phone": "+15551230001"},
        "agent_id": "agent-7",
        "locale": "en-US"
    })
}

impl TestApp {
    /// Stops the server gracefully and waits for it; keeps the data.
    pub async fn stop(mut self) -> Option<TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server ran");
        }
        self._tmp.take()
    }

    pub async fn post_json(
        &self,
        path: &str,
        key: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut req = self.client.post(format!("{}{path}", self.base)).json(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get_with(&self, path: &str, key: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send().await.expect("request sent")
    }

    /// Creates a request as an agent; returns the 201 body.
    pub async fn create(&self, body: &Value) -> Value {
        let resp = self
            .post_json("/v1/confirmations", Some(AGENT_KEY), body)
            .await;
        assert_eq!(
            resp.status().as_u16(),
            201,
            "create failed: {}",
            resp.text().await.unwrap_or_default()
        );
        resp.json().await.expect("json")
    }

    /// Reads a request as an agent.
    pub async fn confirmation(&self, id: &str) -> Value {
        let resp = self
            .get_with(&format!("/v1/confirmations/{id}"), Some(AGENT_KEY))
            .await;
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.expect("json")
    }

    pub fn simulation(&self, transfer_url: &str, answers: &[&str]) -> Simulation {
        Simulation {
            answers: answers
                .iter()
                .map(|a| a.parse::<Answer>().expect("answer"))
                .collect(),
            ..Simulation::transfer(transfer_url, ACCOUNT_SID, AUTH_TOKEN)
        }
    }

    /// Places a simulated call with scripted answers.
    pub async fn call(&self, transfer_url: &str, answers: &[&str]) -> CallReport {
        simulate::run(&self.simulation(transfer_url, answers), &mut |_| {})
            .await
            .expect("simulated call runs")
    }

    /// POSTs a form webhook signed with `token` (the real auth token unless forging).
    pub async fn webhook(
        &self,
        url: &str,
        params: &[(&str, &str)],
        token: &str,
    ) -> reqwest::Response {
        self.send_signed(url, url, params, token).await
    }

    /// POSTs a form webhook to `send_to`, signed for the public URL `url`, as a
    /// load balancer delivers it to one instance; returns the HTTP status.
    pub async fn webhook_signed_for(
        &self,
        send_to: &str,
        url: &str,
        params: &[(&str, &str)],
    ) -> u16 {
        self.send_signed(send_to, url, params, AUTH_TOKEN)
            .await
            .status()
            .as_u16()
    }

    async fn send_signed(
        &self,
        send_to: &str,
        url: &str,
        params: &[(&str, &str)],
        token: &str,
    ) -> reqwest::Response {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let sig = signature::compute(token, url, &params);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        self.client
            .post(send_to)
            .header("X-Twilio-Signature", sig)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("webhook sent")
    }

    pub fn signer(&self) -> TokenSigner {
        TokenSigner::new(TOKEN_SECRET)
    }
}

/// All the text a caller heard, joined.
pub fn heard(report: &CallReport) -> String {
    report.heard.join(" | ")
}

/// The action URL of the first `<Gather>` in a TwiML document.
pub fn gather_action(xml: &str) -> String {
    let doc = simulate::doc::parse(xml).expect("TwiML");
    doc.children
        .iter()
        .find(|v| v.name == "Gather")
        .and_then(|g| g.attr("action"))
        .unwrap_or_else(|| panic!("no Gather in {xml}"))
        .to_owned()
}

/// A committed audio fixture's bytes.
pub fn fixture(name: &str) -> bytes::Bytes {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio")
        .join(name);
    bytes::Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// The manifest entry of a fixture.
pub fn manifest(name: &str) -> Value {
    let text = include_str!("../fixtures/audio/manifest.json");
    let all: Value = serde_json::from_str(text).expect("manifest");
    all[name].clone()
}

impl TestApp {
    /// Places a call that serves `recording` as its recording.
    pub async fn call_with_recording(
        &self,
        transfer_url: &str,
        answers: &[&str],
        recording: bytes::Bytes,
    ) -> CallReport {
        let mut sim = self.simulation(transfer_url, answers);
        sim.recording = Some(recording);
        simulate::run(&sim, &mut |_| {})
            .await
            .expect("simulated call runs")
    }

    /// Creates the documented request, places a call answering `answers` whose
    /// recording is the speech fixture, and waits for the complete record;
    /// returns the confirmation id and the record.
    pub async fn recorded_call(&self, answers: &[&str]) -> (String, Value) {
        let created = self.create(&billing_request()).await;
        let id = created["id"].as_str().unwrap().to_owned();
        self.call_with_recording(
            created["transfer_url"].as_str().unwrap(),
            answers,
            fixture("speech-8k-pcm16.wav"),
        )
        .await;
        let record = self.wait_record(&id, complete).await;
        (id, record)
    }

    /// Waits until the record exists and `pred` holds; returns it. The bound
    /// is 30 s on a local directory and 120 s in the S3 pass, where every
    /// server of the pass shares one moto process on the same two cores.
    pub async fn wait_record(&self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let secs = if std::env::var_os("TEST_S3_ENDPOINT").is_some() {
            120
        } else {
            30
        };
        self.wait_record_for(id, secs, pred).await
    }

    /// Waits up to `secs` until the record exists and `pred` holds; returns it.
    pub async fn wait_record_for(
        &self,
        id: &str,
        secs: u64,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let seen = self.record(id, None).await;
            if let Some(v) = &seen {
                if pred(v) {
                    return v.clone();
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "record {id} not as expected within {secs} s; last seen: {}",
                seen.map(|v| format!(
                    "version {} status {} incomplete_reason {} outcome {}",
                    v["version"], v["status"], v["incomplete_reason"], v["outcome"]
                ))
                .unwrap_or_else(|| "no record".into())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /v1/records/{id}` (or `?version=N`) as the compliance role: `None`
    /// on 404. Every answer is checked to be the stored version byte for
    /// byte, with its digest in `X-Content-SHA256`, and valid against the
    /// published schema.
    pub async fn record(&self, id: &str, version: Option<u32>) -> Option<Value> {
        let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
        let resp = self
            .get_with(&format!("/v1/records/{id}{query}"), Some(COMPLIANCE_KEY))
            .await;
        match resp.status().as_u16() {
            404 => return None,
            200 => {}
            other => panic!("GET /v1/records/{id}{query}: HTTP {other}"),
        }
        assert_eq!(resp.headers()["content-type"], "application/json");
        let digest = resp.headers()["x-content-sha256"]
            .to_str()
            .expect("digest header")
            .to_owned();
        let bytes = resp.bytes().await.expect("record body");
        let v: Value = serde_json::from_slice(&bytes).expect("record JSON");
        assert_valid_record(&v);
        let number = v["version"].as_u64().expect("a version number");
        if let Some(asked) = version {
            assert_eq!(number, u64::from(asked), "the version asked for");
        }
        let key = callproof::store::ObjectKey::new(format!("records/{id}/v{number:04}.json"))
            .expect("record key");
        let stored = self
            .store
            .get(&key)
            .await
            .expect("store reads")
            .expect("the version served is stored");
        assert_eq!(bytes, stored, "the record is served byte for byte");
        assert_eq!(
            digest,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
        );
        Some(v)
    }

    /// `GET /v1/records/{id}/versions` as the compliance role, checked
    /// against its published schema.
    pub async fn versions(&self, id: &str) -> Value {
        let resp = self
            .get_with(&format!("/v1/records/{id}/versions"), Some(COMPLIANCE_KEY))
            .await;
        assert_eq!(resp.status().as_u16(), 200, "versions of {id}");
        let v: Value = resp.json().await.expect("versions JSON");
        assert_valid_against("record-versions.v1.schema.json", &v);
        v
    }

    /// The version numbers of a record, oldest first.
    pub async fn version_numbers(&self, id: &str) -> Vec<u64> {
        self.versions(id).await["versions"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|e| e["version"].as_u64().expect("a number"))
            .collect()
    }

    /// Downloads bytes with optional headers as the compliance role, giving
    /// [`TEST_REASON`] as the reason (audio needs one).
    pub async fn compliance_get(&self, path: &str, range: Option<&str>) -> reqwest::Response {
        let mut req = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(COMPLIANCE_KEY)
            .header("x-callproof-reason", TEST_REASON);
        if let Some(r) = range {
            req = req.header("range", r);
        }
        req.send().await.expect("request sent")
    }
}

/// Duration of an audio file as ffmpeg decodes it, sample by sample (not
/// what a header says): decoded 16-bit bytes / (2 × channels × rate).
pub fn ffmpeg_decoded_secs(path: &Path, channels: u64, rate: u64) -> f64 {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "s16le", "-acodec", "pcm_s16le", "-"])
        .output()
        .unwrap_or_else(|e| {
            panic!("ffmpeg is needed (apt-get install -y ffmpeg; scripts/test installs it): {e}")
        });
    assert!(
        out.status.success(),
        "ffmpeg failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.len() as f64 / (2 * channels * rate) as f64
}

/// Checks a record against the committed JSON Schema.
/// Checks a record against the published schema it names (v1 before signing, v2 since).
pub fn assert_valid_record(record: &Value) {
    let schema = match record["schema"].as_str() {
        Some("callproof.confirmation-record.v1") => "confirmation-record.v1.schema.json",
        _ => "confirmation-record.v2.schema.json",
    };
    assert_valid_against(schema, record);
}

/// Resolves `$ref`s between the published schemas from `recordings-schema/`.
struct PublishedSchemas;

impl jsonschema::Retrieve for PublishedSchemas {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri
            .as_str()
            .strip_prefix("https://schemas.callproof.dev/")
            .ok_or_else(|| format!("{uri} is not a published callproof schema"))?;
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("recordings-schema")
            .join(name);
        Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
    }
}

/// Checks `value` against `recordings-schema/<schema>`, formats included.
pub fn assert_valid_against(schema: &str, value: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("recordings-schema")
        .join(schema);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("schema file"))
        .expect("schema JSON");
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .with_retriever(PublishedSchemas)
        .build(&schema)
        .expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{} does not match {}: {errors:#?}",
        value,
        path.display()
    );
}

/// The CallSid of calls driven by hand-signed webhooks.
pub const CALL: &str = "CA11111111111111111111111111111111";

/// The parameters the provider sends with every webhook of `call`, plus `extra`.
pub fn call_params<'a>(call: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", call),
        ("CallStatus", "in-progress"),
        ("From", "+15551230001"),
    ];
    p.extend_from_slice(extra);
    p
}

/// A request whose call was started by hand.
pub struct Started {
    /// The confirmation id.
    pub id: String,
    /// The first question's action URL.
    pub answer: String,
    /// The recording status callback URL.
    pub callback: String,
}

impl TestApp {
    /// Creates the documented request and sends `call` to its transfer URL.
    pub async fn start_call(&self, call: &str) -> Started {
        let created = self.create(&billing_request()).await;
        self.transfer(&created, call).await
    }

    /// The provider sends `call` to the transfer URL of the request `created`
    /// (the 201 body); the answer, whatever it is.
    pub async fn reach_transfer(&self, created: &Value, call: &str) -> reqwest::Response {
        self.webhook(
            created["transfer_url"].as_str().unwrap(),
            &call_params(call, &[]),
            AUTH_TOKEN,
        )
        .await
    }

    /// Sends `call` to the transfer URL of the request `created` (the 201 body).
    pub async fn transfer(&self, created: &Value, call: &str) -> Started {
        let resp = self.reach_transfer(created, call).await;
        assert_eq!(resp.status().as_u16(), 200);
        let xml = resp.text().await.unwrap();
        let doc = callproof::simulate::doc::parse(&xml).unwrap();
        let callback = doc.children[0].children[0]
            .attr("recordingStatusCallback")
            .unwrap_or_else(|| panic!("the flow did not start: {xml}"))
            .to_owned();
        Started {
            id: created["id"].as_str().unwrap().to_owned(),
            answer: gather_action(&xml),
            callback,
        }
    }
}

/// A recording status callback's parameters for `call`.
pub fn recording_params<'a>(call: &'a str, sid: &'a str, url: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", call),
        ("RecordingSid", sid),
        ("RecordingUrl", url),
        ("RecordingStatus", "completed"),
        ("RecordingDuration", "3"),
        ("RecordingChannels", "1"),
        ("RecordingStartTime", "Mon, 23 Nov 2026 06:00:00 +0000"),
    ]
}

impl TestApp {
    /// Keys stored under `prefix`, whichever backend holds them.
    pub async fn stored(&self, prefix: &str) -> usize {
        self.store.list(prefix).await.expect("store lists").len()
    }
}

impl TestApp {
    /// The caller of `call` presses `digits` at the question whose action is `answer`.
    pub async fn press(&self, answer: &str, call: &str, digits: &str) -> reqwest::Response {
        self.webhook(
            answer,
            &[
                ("AccountSid", ACCOUNT_SID),
                ("CallSid", call),
                ("Digits", digits),
            ],
            AUTH_TOKEN,
        )
        .await
    }
}

/// An HTTP reverse proxy on loopback: each request goes to the next of its
/// upstreams in turn, without the request headers named in `drop`. It stands
/// in for a load balancer (or a store that ignores a header).
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    upstreams: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    served: std::sync::Arc<std::sync::Mutex<Vec<(usize, String)>>>,
}

impl Proxy {
    /// Listens at once; requests before [`Proxy::route_to`] get 502.
    pub async fn start(drop: &'static [&'static str]) -> Proxy {
        use axum::body::{to_bytes, Body};
        use axum::extract::Request;
        use axum::response::Response;
        use std::sync::{Arc, Mutex};
        let upstreams: Arc<Mutex<Vec<String>>> = Arc::default();
        let served: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
        let client = reqwest::Client::builder()
            // A fresh connection for every request: an upstream that closes an
            // idle connection never makes a forwarded request fail.
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let (ups, log) = (upstreams.clone(), served.clone());
        let app = axum::Router::new().fallback(move |req: Request| {
            let (client, ups, log) = (client.clone(), ups.clone(), log.clone());
            async move {
                let (parts, body) = req.into_parts();
                let path = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
                    .to_owned();
                let picked = {
                    let ups = ups.lock().unwrap();
                    let mut log = log.lock().unwrap();
                    if ups.is_empty() {
                        None
                    } else {
                        let i = log.len() % ups.len();
                        log.push((i, path.clone()));
                        Some(ups[i].clone())
                    }
                };
                let Some(upstream) = picked else {
                    return Response::builder().status(502).body(Body::empty()).unwrap();
                };
                let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
                let mut forward = client.request(parts.method, format!("{upstream}{path}"));
                for (name, value) in &parts.headers {
                    let n = name.as_str();
                    if !matches!(n, "host" | "content-length") && !drop.contains(&n) {
                        forward = forward.header(name, value);
                    }
                }
                let Ok(resp) = forward.body(body).send().await else {
                    return Response::builder().status(502).body(Body::empty()).unwrap();
                };
                let mut out = Response::builder().status(resp.status());
                for (name, value) in resp.headers() {
                    if !matches!(
                        name.as_str(),
                        "transfer-encoding" | "content-length" | "connection"
                    ) {
                        out = out.header(name, value);
                    }
                }
                out.body(Body::from(resp.bytes().await.unwrap_or_default()))
                    .expect("response")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Proxy {
            url: format!("http://{addr}"),
            upstreams,
            served,
        }
    }

    /// Sends requests to these base URLs, in turn.
    pub fn route_to(&self, upstreams: Vec<String>) {
        *self.upstreams.lock().unwrap() = upstreams;
    }

    /// Every request so far: which upstream took it, and its path.
    pub fn served(&self) -> Vec<(usize, String)> {
        self.served.lock().unwrap().clone()
    }
}

/// True for a record whose recording is stored and decoded.
pub fn complete(r: &Value) -> bool {
    r["status"] == "complete"
}

/// Records expected = records stored, no duplicates: exactly one record
/// version and one stored recording for each of `ids`, nothing else, and no
/// job left queued or parked (waits up to 30 s for the last jobs to go).
pub async fn assert_exactly_these_records(app: &TestApp, ids: &[String]) {
    for id in ids {
        app.wait_record(id, complete).await;
        assert_eq!(
            app.version_numbers(id).await,
            [1],
            "{id}: one record version"
        );
    }
    wait_until(
        "recording jobs gone after their records were written",
        30,
        async || app.stored("jobs/recordings/").await == 0,
    )
    .await;
    assert_eq!(app.stored("jobs/parked/").await, 0, "no job parked");
    let mut stored: Vec<String> = app
        .store
        .list("records/")
        .await
        .expect("store lists")
        .iter()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.ends_with(".json"))
        .collect();
    let mut expected: Vec<String> = ids
        .iter()
        .map(|id| format!("records/{id}/v0001.json"))
        .collect();
    stored.sort();
    expected.sort();
    assert_eq!(stored, expected, "records expected = records stored");
    for id in ids {
        let results = app
            .store
            .list(&format!("confirmations/{id}/audio/"))
            .await
            .expect("store lists")
            .iter()
            .filter(|k| k.file_name() == "result.json")
            .count();
        assert_eq!(results, 1, "{id}: one stored recording");
    }
}

/// Polls `cond` every 100 ms until it holds; fails naming `what` after `secs`.
pub async fn wait_until(what: &str, secs: u64, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The speech fixture served as recording `sid` by a media server of its own.
pub async fn speech_media(sid: &str) -> callproof::simulate::media::MediaServer {
    use callproof::simulate::media::{MediaFormat, MediaServer};
    MediaServer::start(
        ACCOUNT_SID,
        AUTH_TOKEN,
        sid,
        fixture("speech-8k-pcm16.wav"),
        MediaFormat::Wav,
    )
    .await
    .expect("media server")
}
