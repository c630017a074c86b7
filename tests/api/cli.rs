//! The binary as people use it: `serve` on the defaults with generated
//! development credentials, `simulate` against it, SIGTERM, production
//! refusals, `consent classify` over the labelled corpus, and `audio transcode` on the fixtures.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_callproof");

pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `callproof serve` in `dir` and waits for its "listening" line.
fn serve(dir: &std::path::Path) -> (Server, String) {
    serve_with(dir, &[])
}

/// [`serve_with`] from async code, with a [`TestApp`] on the running server.
pub async fn serve_attached(
    dir: &std::path::Path,
    env: &[(String, String)],
) -> (Server, crate::helpers::TestApp) {
    let (server, _) = tokio::task::block_in_place(|| serve_with(dir, env));
    let base = format!("http://{}", server.address);
    let app = crate::helpers::TestApp::attach(&base, dir, env).await;
    (server, app)
}

/// Starts `callproof serve` in `dir` with the settings `env` and JSON logs;
/// returns once it is listening, with what it logged until then.
pub fn serve_with(dir: &std::path::Path, env: &[(String, String)]) -> (Server, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir)
        .env_remove("CALLPROOF_DATA_DIR")
        .env("CALLPROOF_LISTEN", "127.0.0.1:0")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("CALLPROOF_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("callproof serve starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let keep = log.clone();
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            if let Ok(mut l) = keep.lock() {
                l.push_str(&line);
                l.push('\n');
            }
            if line.contains("\"listening\"") {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let _ = tx.send((
                    v["fields"]["address"].as_str().unwrap().to_owned(),
                    all.clone(),
                ));
            }
        }
    });
    let (address, early) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("serve reports listening");
    (
        Server {
            child,
            address,
            log,
        },
        early,
    )
}

#[test]
fn serve_on_the_defaults_generates_credentials_once_and_a_simulated_call_confirms() {
    let dir = tempfile::tempdir().unwrap();
    let (server, stderr) = serve(dir.path());
    assert!(
        stderr.contains("WARNING: development credentials were generated"),
        "{stderr}"
    );
    let creds_path = dir.path().join("data/dev-credentials.toml");
    let creds: toml::Table = std::fs::read_to_string(&creds_path)
        .unwrap()
        .parse()
        .unwrap();
    let agent_key = creds["api_keys"]
        .as_str()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .strip_prefix("agent:")
        .unwrap()
        .to_owned();

    let body = serde_json::json!({"account_id":"ACC-1001","kind":"billing","change":[{"field":"card_number","label":"card on file","before":"4111111111111111","after":"5500005555555559","sensitive":true}],"customer":{"name":"Dana Reyes","phone":"+15551230001"},"agent_id":"agent-7","locale":"en-US"});
    let created: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("http://{}/v1/confirmations", server.address))
        .bearer_auth(&agent_key)
        .json(&body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let out = Command::new(BIN)
        .args([
            "simulate",
            created["transfer_url"].as_str().unwrap(),
            "--answer",
            "yes I confirm",
            "--no-input",
        ])
        .current_dir(dir.path())
        .env_remove("CALLPROOF_DATA_DIR")
        .env_remove("CALLPROOF_TWILIO_AUTH_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("caller says \"yes I confirm\""), "{stdout}");
    assert!(stdout.contains("Your confirmation number is"), "{stdout}");
    assert!(
        stdout.contains("call ended: the server hung up"),
        "{stdout}"
    );

    // Compliance staff find the record and fetch its audio, hash-checked.
    let id = created["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let out = Command::new(BIN)
            .args([
                "records",
                "--server",
                &format!("http://{}", server.address),
                "list",
                "--json",
            ])
            .current_dir(dir.path())
            .env_remove("CALLPROOF_DATA_DIR")
            .env_remove("CALLPROOF_API_KEY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("\"complete\"") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no complete record listed: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(listed.contains(id), "{listed}");
    let out = Command::new(BIN)
        .args([
            "records",
            "--server",
            &format!("http://{}", server.address),
            "fetch",
            id,
            "-o",
            "call.wav",
            "--reason",
            "dispute D-118 from the account holder",
        ])
        .current_dir(dir.path())
        .env_remove("CALLPROOF_DATA_DIR")
        .env_remove("CALLPROOF_API_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("sha256 matches the record"));
    let wav = std::fs::read(dir.path().join("call.wav")).unwrap();
    assert!(wav.starts_with(b"RIFF"));

    // The replay is in the audit log with its reason; an admin reads it with
    // `audit list` (the development admin key by default).
    let out = Command::new(BIN)
        .args([
            "audit",
            "--server",
            &format!("http://{}", server.address),
            "list",
            "--record",
            id,
            "--limit",
            "1",
            "--all",
            "--json",
        ])
        .current_dir(dir.path())
        .env_remove("CALLPROOF_DATA_DIR")
        .env_remove("CALLPROOF_API_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(entries.len() >= 2, "every page followed: {entries:#?}");
    let replays: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["action"] == "records.audio")
        .collect();
    assert_eq!(replays.len(), 1, "{entries:#?}");
    assert_eq!(
        replays[0]["reason"],
        "dispute D-118 from the account holder"
    );
    assert_eq!(replays[0]["actor"]["role"], "compliance");
    assert_eq!(replays[0]["client"], "127.0.0.1");
    // `fetch` sends the reason with its read of the record too.
    assert!(entries
        .iter()
        .any(|e| e["action"] == "records.read"
            && e["reason"] == "dispute D-118 from the account holder"));
    // Without --reason, fetch does not even ask.
    let out = Command::new(BIN)
        .args([
            "records",
            "--server",
            &format!("http://{}", server.address),
            "fetch",
            id,
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--reason"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `records show` prints the record exactly as stored; the versions go to stderr.
    let out = Command::new(BIN)
        .args([
            "records",
            "--server",
            &format!("http://{}", server.address),
            "show",
            id,
        ])
        .current_dir(dir.path())
        .env_remove("CALLPROOF_DATA_DIR")
        .env_remove("CALLPROOF_API_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stored = std::fs::read(
        dir.path()
            .join(format!("data/store/records/{id}/v0001.json")),
    )
    .unwrap();
    assert_eq!(out.stdout, stored, "records show prints the stored bytes");
    crate::helpers::assert_valid_record(&serde_json::from_slice(&out.stdout).unwrap());
    assert!(stderr.contains("version 1 of versions 1;"), "{stderr}");

    // The JSON logs of the whole run: one object per line, and never the
    // customer's phone number or a card number.
    let log = server.log();
    let json_lines: Vec<&str> = log.lines().filter(|l| l.starts_with('{')).collect();
    assert!(json_lines.len() >= 5, "{log}");
    for line in &json_lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
    }
    assert!(
        log.contains("consent answer") && log.contains("record written"),
        "{log}"
    );
    for secret in ["5551230001", "4111111111111111", "5500005555555559"] {
        assert!(!log.contains(secret), "the log holds {secret}:\n{log}");
    }

    // A second start reuses the file and does not print the secrets again.
    drop(server);
    let (_again, stderr) = serve(dir.path());
    assert!(
        !stderr.contains("WARNING: development credentials were generated"),
        "{stderr}"
    );
    assert!(stderr.contains("using development credentials"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _) = serve(dir.path());
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server still running 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn production_refuses_development_credentials_a_missing_or_http_url_and_a_shared_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--production"])
        .current_dir(dir.path())
        .env("CALLPROOF_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("production refuses development credentials"),
        "{stderr}"
    );
    assert!(!dir.path().join("data/dev-credentials.toml").exists());

    // Production with every other secret set, the callback secret if asked, and `url`.
    let production = |url: Option<&str>, token_secret: &str, callback_secret: bool| {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .current_dir(dir.path())
            .env("CALLPROOF_ENV", "production")
            .env("CALLPROOF_LISTEN", "127.0.0.1:0")
            .env("CALLPROOF_TWILIO_ACCOUNT_SID", "AC1")
            .env("CALLPROOF_TWILIO_AUTH_TOKEN", "t".repeat(32))
            .env("CALLPROOF_API_KEYS", format!("agent:{}", "k".repeat(20)))
            .env("CALLPROOF_TOKEN_SECRET", token_secret);
        if let Some(url) = url {
            cmd.env("CALLPROOF_PUBLIC_URL", url);
        }
        if callback_secret {
            cmd.env("CALLPROOF_CALLBACK_SECRET", crate::helpers::CALLBACK_SECRET)
                .env("CALLPROOF_INDEX_PHONE_SECRET", "i".repeat(40))
                .env("CALLPROOF_IDENTITY_SECRET", "d".repeat(40));
        }
        cmd.output().unwrap()
    };
    let out = production(None, &"s".repeat(40), false);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CALLPROOF_CALLBACK_SECRET"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CALLPROOF_INDEX_PHONE_SECRET"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CALLPROOF_IDENTITY_SECRET"));
    let out = production(None, &"s".repeat(40), true);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CALLPROOF_PUBLIC_URL"));

    // An http public URL, and a token secret that is the provider's token, are refused too.
    let out = production(Some("http://cp.example.com"), &"s".repeat(40), true);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refuses the http public URL"), "{stderr}");
    // Everything set but the signing key: production will not sign with a made-up one.
    let out = production(Some("https://cp.example.com"), &"s".repeat(40), true);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CALLPROOF_SIGNING_KEY_FILE"), "{stderr}");
    assert!(!dir.path().join("data/dev-signing-key.pem").exists());
    let out = production(Some("https://cp.example.com"), &"t".repeat(32), true);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CALLPROOF_TOKEN_SECRET equal to CALLPROOF_TWILIO_AUTH_TOKEN"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&"t".repeat(32)),
        "the secret is not echoed"
    );
}

#[test]
fn a_bad_setting_stops_serve_with_a_message_naming_it() {
    let out = Command::new(BIN)
        .arg("serve")
        .env("CALLPROOF_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CALLPROOF_LISTEN"));
}

#[test]
fn serve_help_documents_every_setting() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for s in callproof::config::SETTINGS {
        assert!(help.contains(s.env), "--help lacks {}", s.env);
        assert!(readme.contains(s.env), "README lacks {}", s.env);
    }
}

/// Runs `consent classify` over every corpus row of one locale and kind.
#[test]
fn consent_classify_gives_an_accepted_label_for_every_corpus_row() {
    let corpus = include_str!("../data/consent-utterances.tsv");
    let rows: Vec<Vec<&str>> = corpus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("locale\t") && !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    assert!(rows.len() > 80, "corpus has {} rows", rows.len());
    let mut failures = Vec::new();
    for locale in ["en-US", "es-US"] {
        for kind in ["termination", "update"] {
            let subset: Vec<_> = rows
                .iter()
                .filter(|r| r[0] == locale && r[1] == kind)
                .collect();
            let input: String = subset
                .iter()
                .map(|r| format!("{}\t{}\n", r[2], r[3]))
                .collect();
            let mut child = Command::new(BIN)
                .args(["consent", "classify", "--locale", locale, "--kind", kind])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            let labels: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            assert_eq!(labels.len(), subset.len());
            for (row, label) in subset.iter().zip(&labels) {
                if !row[4].split('|').any(|ok| ok == label) {
                    failures.push(format!("{row:?} -> {label}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn consent_classify_marks_unreadable_lines_and_fails() {
    let mut child = Command::new(BIN)
        .args([
            "consent", "classify", "--locale", "en-US", "--kind", "billing",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"yes\t0.9\nno confidence here\nyes\thigh\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "affirm\ninvalid\ninvalid\n"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("line 3"),
        "{stderr}"
    );
}

#[test]
fn jobs_list_shows_a_parked_job_and_jobs_retry_queues_it_again() {
    use callproof::ingest::RecordingJob;
    use callproof::provider::RecordingEvent;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let job = RecordingJob {
        confirmation_id: callproof::domain::ConfirmationId::generate(),
        event: RecordingEvent {
            call_sid: "CA0".into(),
            recording_sid: "RE0".into(),
            recording_url: "http://127.0.0.1:9/none".into(),
            status: "completed".into(),
            duration_secs: Some(3),
            channels: Some(1),
            start_time: None,
            account_sid: None,
        },
        received_at: time::OffsetDateTime::now_utc(),
    };
    // A job parked before jobs had kinds: no `kind` member.
    let parked = serde_json::json!({
        "job": job,
        "failures": 10,
        "reason": "downloading the recording failed after 8 attempts: HTTP 500",
        "parked_at": "2026-11-30T10:00:00Z",
    });
    std::fs::create_dir_all(store.join("jobs/parked")).unwrap();
    std::fs::write(
        store.join("jobs/parked/abc123.json"),
        serde_json::to_vec(&parked).unwrap(),
    )
    .unwrap();
    let jobs = |args: &[&str]| {
        Command::new(BIN)
            .arg("jobs")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = jobs(&["list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["id"], "abc123");
    assert_eq!(line["state"], "parked");
    assert_eq!(line["kind"], "recording");
    assert_eq!(line["failures"], 10);
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 queued, 1 parked"));

    let out = jobs(&["retry", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no parked job nope"));

    let out = jobs(&["retry", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "abc123");
    assert!(!store.join("jobs/parked/abc123.json").exists());
    let queued: RecordingJob =
        serde_json::from_slice(&std::fs::read(store.join("jobs/recordings/abc123.json")).unwrap())
            .unwrap();
    assert_eq!(queued.event.recording_sid, "RE0");
}

/// The `sha256` lines `audio transcode` printed: the input's, then the output's.
fn printed_hashes(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("sha256 "))
        .map(str::to_owned)
        .collect()
}

fn sha256_of(path: &std::path::Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn audio_transcode_prints_the_hashes_of_both_files_and_writes_a_wav_of_the_source() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio");
    let dir = tempfile::tempdir().unwrap();
    // (fixture, --sample-rate, channels, source rate, source seconds from manifest.json)
    for (name, rate, channels, source_rate, seconds) in [
        ("speech-8k-dual.wav", None, 2u16, 8000u32, 3.007250),
        ("speech-8k-ulaw.wav", None, 1, 8000, 2.851250),
        ("speech-8k.mp3", Some(16000u32), 1, 8000, 2.879000),
    ] {
        let input = fixtures.join(name);
        let output = dir.path().join(format!("{name}.wav"));
        let mut cmd = Command::new(BIN);
        cmd.args(["audio", "transcode"])
            .arg(&input)
            .arg("-o")
            .arg(&output);
        if let Some(rate) = rate {
            cmd.args(["--sample-rate", &rate.to_string()]);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            printed_hashes(&stdout),
            [sha256_of(&input), sha256_of(&output)],
            "{name}: {stdout}"
        );
        let out_rate = rate.unwrap_or(source_rate);
        assert!(
            stdout.contains(&format!("{out_rate} Hz, {channels} channel(s)")),
            "{name}: {stdout}"
        );

        let reader = hound::WavReader::open(&output).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (channels, out_rate, 16),
            "{name}"
        );
        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
        let frames = u64::from(reader.duration());
        let decoded = reader
            .into_samples::<i16>()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(decoded.len() as u64, frames * u64::from(channels), "{name}");
        let lasts = frames as f64 / f64::from(out_rate);
        assert!(
            (lasts - seconds).abs() <= 0.050,
            "{name}: the output lasts {lasts:.4} s, the source {seconds:.4} s"
        );
        assert!(
            stdout.contains(&format!("{lasts:.3} s")),
            "{name}: {stdout}"
        );
    }

    // The JSON report holds the same facts.
    let output = dir.path().join("json.wav");
    let out = Command::new(BIN)
        .args(["audio", "transcode", "--json", "-o"])
        .arg(&output)
        .arg(fixtures.join("speech-8k-pcm16.wav"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: callproof::audio::TranscodeReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.archival.sha256, sha256_of(&output));
    assert_eq!(
        report.source.sha256,
        sha256_of(&fixtures.join("speech-8k-pcm16.wav"))
    );
}

#[test]
fn audio_transcode_of_a_missing_or_unreadable_input_says_why_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("recording.wav");
    std::fs::write(&page, "<html><body>404 Not Found</body></html>").unwrap();
    let output = dir.path().join("out.wav");
    for (input, says) in [
        (dir.path().join("never-downloaded.wav"), "give the path"),
        (dir.path().to_path_buf(), "is not a file"),
        (page.clone(), "HTML"),
    ] {
        let out = Command::new(BIN)
            .args(["audio", "transcode"])
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", input.display());
        assert!(stderr.contains(says), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("recording.wav")]);

    let out = Command::new(BIN)
        .args(["audio", "transcode", "--sample-rate", "1000", "-o"])
        .arg(&output)
        .arg(&page)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sample-rate"));
}
