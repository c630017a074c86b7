//! S3 backends on real S3-compatible servers started here on loopback: moto's
//! server (conditional create, Object Lock) and s3s-fs (signatures, checksums).
//! The store contract runs on both, skipping only what each one's store check
//! says it lacks; a whole call runs on S3; a store that ignores `If-None-Match`
//! is refused; fronts that refuse checksum trailers or multipart uploads, as
//! some stores do, show uploads working without trailers and the refusal named.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callproof::store::check::{self, Probe};
use callproof::store::s3::{LockMode, S3Settings, S3Store};
use callproof::store::{contract, ObjectStore};
use serde_json::Value;

use crate::helpers::*;

pub const ACCESS_KEY: &str = "AKCALLPROOFTEST";
pub const SECRET_KEY: &str = "SKCALLPROOFTESTSECRET";

/// An S3-compatible server process, stopped on drop.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tool installed by `scripts/test`: from its environment variable, else PATH.
fn tool(env: &str, name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} is needed for the S3 tests: run scripts/test, which installs it, or set {env}"
        )
    })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_for(port: u16, child: &mut Child, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{name} exited at start: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not listen on {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts moto's S3 server.
pub fn start_moto() -> S3Server {
    let port = free_port();
    let mut child = Command::new(tool("MOTO_SERVER_BIN", "moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    wait_for(port, &mut child, "moto_server");
    S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        _dir: None,
    }
}

/// Starts s3s-fs on a temporary directory.
pub fn start_s3s_fs() -> S3Server {
    let port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let child = spawn_s3s_fs(port, dir.path());
    S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        _dir: Some(dir),
    }
}

fn spawn_s3s_fs(port: u16, dir: &std::path::Path) -> Child {
    let mut child = Command::new(tool("S3S_FS_BIN", "s3s-fs"))
        .args([
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3s-fs starts");
    wait_for(port, &mut child, "s3s-fs");
    child
}

impl S3Server {
    /// Stops the server process, as an outage does; s3s-fs keeps its data on disk.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts s3s-fs again on the same port and directory.
    pub fn start_again(&mut self) {
        let dir = self
            ._dir
            .as_ref()
            .expect("only s3s-fs keeps its data across a restart");
        let port: u16 = self
            .endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("endpoint port");
        self.child = spawn_s3s_fs(port, dir.path());
    }
}

pub fn settings(endpoint: &str, bucket: &str) -> S3Settings {
    S3Settings {
        bucket: bucket.into(),
        prefix: "callproof/".into(),
        region: "us-east-1".into(),
        endpoint: Some(endpoint.into()),
        path_style: true,
        sse: None,
        lock_mode: LockMode::Governance,
        multipart_threshold: 6 * 1024 * 1024,
        part_size: 5 * 1024 * 1024,
        credentials: Some((ACCESS_KEY.into(), SECRET_KEY.into())),
    }
}

/// Creates a bucket (with Object Lock when asked) and returns a store on it.
pub async fn bucket(endpoint: &str, name: &str, object_lock: bool) -> S3Store {
    let store = S3Store::connect(settings(endpoint, name)).await;
    let mut create = store.client().create_bucket().bucket(name);
    if object_lock {
        create = create.object_lock_enabled_for_bucket(true);
    }
    create
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {name}: {e:?}"));
    store
}

/// The search-index settings of a server on `bucket`. Every instance on a
/// bucket must share one index: with `TEST_POSTGRES_URL` (scripts/test
/// starts PostgreSQL) a database of the bucket's own there; without it the
/// embedded SQLite index, which allows one instance per bucket.
pub fn index_options(endpoint: &str, bucket: &str) -> Vec<(&'static str, String)> {
    let Ok(url) = std::env::var("TEST_POSTGRES_URL") else {
        return vec![("CALLPROOF_INDEX_SINGLE_INSTANCE", "true".into())];
    };
    // One database per bucket of one S3 server: the same bucket name on
    // another server (another test, another pass) is another store.
    let server: String = endpoint.chars().filter(char::is_ascii_digit).collect();
    let db = format!(
        "cp_{}_{server}",
        bucket.replace('-', "_").to_ascii_lowercase()
    );
    // CREATE DATABASE has no IF NOT EXISTS: a second instance finds it made.
    let out = std::process::Command::new("psql")
        .arg(&url)
        .args(["-v", "ON_ERROR_STOP=1", "-qc"])
        .arg(format!("CREATE DATABASE {db}"))
        .output()
        .unwrap_or_else(|e| panic!("psql, to make the test index database: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("already exists"),
        "CREATE DATABASE {db}: {stderr}"
    );
    let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
    vec![("CALLPROOF_INDEX_URL", format!("{base}/{db}"))]
}

/// The environment that puts a test server on a bucket.
pub fn s3_options(endpoint: &str, bucket: &str) -> Options {
    let mut extra = index_options(endpoint, bucket);
    extra.extend(vec![
        ("CALLPROOF_STORE", "s3".into()),
        ("CALLPROOF_S3_BUCKET", bucket.into()),
        ("CALLPROOF_S3_ENDPOINT", endpoint.into()),
        ("CALLPROOF_S3_PATH_STYLE", "true".into()),
        ("CALLPROOF_S3_PREFIX", "calls".into()),
        ("CALLPROOF_S3_ACCESS_KEY_ID", ACCESS_KEY.into()),
        ("CALLPROOF_S3_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        // moto is not reliably atomic under concurrent creates (see the
        // contract test); each test runs one instance per bucket.
        ("CALLPROOF_S3_ACCEPT_OVERWRITE_RISK", "true".into()),
    ]);
    Options {
        extra,
        ..Options::default()
    }
}

/// Runs the contract on a store, the concurrent-create race only where the
/// store check found it holds; says what was skipped and why.
async fn contract_as_checked(name: &str, store: S3Store, report: &check::StoreReport) {
    let shared: Arc<dyn ObjectStore> = Arc::new(store);
    let s = shared.as_ref();
    contract::created_objects_read_back(s).await;
    contract::a_second_create_is_refused_and_keeps_the_first_bytes(s).await;
    contract::listing_filters_by_prefix_in_order(s).await;
    contract::file_creates_stream_and_are_write_once(s).await;
    contract::ranged_reads_return_exactly_the_range(s).await;
    contract::delete_removes_bookkeeping_objects(s).await;
    match &report.concurrent_create {
        Probe::Yes => contract::exactly_one_concurrent_create_wins(shared.clone(), 8).await,
        other => eprintln!("skipped on {name}: the concurrent-create check, which its store check answered {other:?}"),
    }
}

#[tokio::test]
async fn moto_refuses_second_creates_enforces_object_lock_and_meets_the_contract() {
    let server = start_moto();
    let store = bucket(&server.endpoint, "contract", true).await;
    let report = check::check_s3(&store, 8).await;
    assert_eq!(report.conditional_create, Probe::Yes, "{report:?}");
    assert_eq!(report.object_lock, Probe::Yes, "{report:?}");
    // moto lets exactly one of eight concurrent creates win most rounds, but
    // not every round under load: the check decides, the contract follows it.
    assert!(
        !matches!(report.concurrent_create, Probe::Unknown(_)),
        "{report:?}"
    );
    // Purge removes every version; moto keeps versions where asked.
    contract::purge_leaves_no_version_of_an_object(&store).await;
    contract_as_checked("moto", store, &report).await;
}

#[tokio::test]
async fn s3s_fs_meets_the_contract_where_its_store_check_says_it_can() {
    let server = start_s3s_fs();
    let store = bucket(&server.endpoint, "contract", false).await;
    let report = check::check_s3(&store, 8).await;
    assert_eq!(report.conditional_create, Probe::Yes, "{report:?}");
    assert!(
        !report.object_lock.is_yes(),
        "s3s-fs has no Object Lock: {report:?}"
    );
    contract_as_checked("s3s-fs", store, &report).await;
}

#[tokio::test]
async fn signatures_are_checked_by_s3s_fs_so_wrong_keys_are_refused() {
    let server = start_s3s_fs();
    bucket(&server.endpoint, "signed", false).await;
    let mut wrong = settings(&server.endpoint, "signed");
    wrong.credentials = Some((ACCESS_KEY.into(), "not-the-secret".into()));
    let store = S3Store::connect(wrong).await;
    let key = callproof::store::ObjectKey::new("probe/x").unwrap();
    let err = store
        .create(&key, bytes::Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("403") || err.to_string().to_lowercase().contains("signature"),
        "{err}"
    );
}

#[tokio::test]
async fn a_whole_call_runs_on_s3_and_its_audio_streams_back_with_ranges() {
    let server = start_moto();
    bucket(&server.endpoint, "evidence", true).await;
    let app = spawn_with(s3_options(&server.endpoint, "evidence")).await;
    let ready: Value = app
        .get_with("/v1/status", Some(ADMIN_KEY))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(
        ready["store"]["conditional_create"]["result"], "yes",
        "{ready}"
    );
    assert_eq!(ready["store"]["object_lock"]["result"], "yes", "{ready}");

    let created = app.create(&billing_request()).await;
    let id = created["id"].as_str().unwrap();
    app.call_with_recording(
        created["transfer_url"].as_str().unwrap(),
        &["press:1"],
        fixture("speech-8k-dual.wav"),
    )
    .await;
    let record = app.wait_record(id, |r| r["status"] == "complete").await;
    assert_valid_record(&record);
    assert_eq!(
        record["retention"]["enforced_by"], "s3_object_lock",
        "{record}"
    );
    let archival = record["recording"]["audio"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["role"] == "archival")
        .unwrap();
    assert_eq!(archival["channels"], 2);
    let whole = app
        .compliance_get(&format!("/v1/records/{id}/audio"), None)
        .await
        .bytes()
        .await
        .unwrap();
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&whole)),
        archival["sha256"].as_str().unwrap()
    );
    let part = app
        .compliance_get(&format!("/v1/records/{id}/audio"), Some("bytes=1000-1999"))
        .await;
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.bytes().await.unwrap(), whole.slice(1000..2000));
    // Nothing was written to the local store.
    assert!(!app.data_dir.join("store/records").exists());
}

/// An S3 endpoint that forwards to `upstream` but drops `If-None-Match`, so
/// every create overwrites: how Garage 2.5 was measured to behave.
async fn ignoring_if_none_match(upstream: String) -> String {
    front(upstream, |_| None, &["if-none-match"]).await.0
}

fn binary_env(endpoint: &str, bucket: &str, data_dir: &std::path::Path) -> Vec<(String, String)> {
    // Everything but the override, which each run below sets or leaves out itself.
    let mut env: Vec<(String, String)> = s3_options(endpoint, bucket)
        .extra
        .into_iter()
        .filter(|(k, _)| *k != "CALLPROOF_S3_ACCEPT_OVERWRITE_RISK")
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.push(("CALLPROOF_DATA_DIR".into(), data_dir.display().to_string()));
    env.push(("CALLPROOF_LISTEN".into(), "127.0.0.1:0".into()));
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_ignores_if_none_match_is_reported_and_refused_without_the_override() {
    let server = start_moto();
    let plain = bucket(&server.endpoint, "lenient", false).await;
    let lenient_endpoint = ignoring_if_none_match(server.endpoint.clone()).await;
    let lenient = S3Store::connect(settings(&lenient_endpoint, "lenient")).await;
    let report = check::check_s3(&lenient, 8).await;
    assert!(
        matches!(report.conditional_create, Probe::No(_)),
        "{report:?}"
    );
    assert!(!report.write_once());
    drop(plain);

    let dir = tempfile::tempdir().unwrap();
    let env = binary_env(&lenient_endpoint, "lenient", dir.path());
    let bin = env!("CARGO_BIN_EXE_callproof");
    let run = |args: &'static [&'static str], extra: Option<(&'static str, &'static str)>| {
        let mut cmd = std::process::Command::new(bin);
        cmd.args(args)
            .current_dir(dir.path())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some((k, v)) = extra {
            cmd.env(k, v);
        }
        cmd
    };
    let out = tokio::task::spawn_blocking({
        let mut cmd = run(&["store", "check"], None);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "store check must fail: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["conditional_create"]["result"], "no", "{printed}");

    let out = tokio::task::spawn_blocking({
        let mut cmd = run(&["serve"], None);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot guarantee write-once")
            && stderr.contains("CALLPROOF_S3_ACCEPT_OVERWRITE_RISK"),
        "{stderr}"
    );

    // With the override it starts, and says what is at risk.
    let mut child = run(
        &["serve"],
        Some(("CALLPROOF_S3_ACCEPT_OVERWRITE_RISK", "true")),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut seen = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("listening") {
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.contains("listening"), "{lines}");
    assert!(lines.contains("run exactly one instance"), "{lines}");
}

/// What a front answers instead of forwarding: status, S3 error code, message.
type Refusal = (u16, &'static str, &'static str);

/// An S3 endpoint that forwards to `upstream` (Host and every size kept, so
/// signatures and HEAD answers still hold), without the request headers named
/// in `drop`, except requests `refuse` answers itself, as a store without some
/// feature does. Returns its URL and how many requests it refused.
async fn front(
    upstream: String,
    refuse: fn(&axum::http::request::Parts) -> Option<Refusal>,
    drop: &'static [&'static str],
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::body::{to_bytes, Body};
    use axum::extract::Request;
    use axum::response::Response;
    use std::sync::atomic::Ordering;
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = refused.clone();
    let client = reqwest::Client::builder()
        // A fresh connection for every request: an upstream that closes an
        // idle connection never makes a forwarded request fail.
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let app = axum::Router::new().fallback(move |req: Request| {
        let (client, upstream, count) = (client.clone(), upstream.clone(), count.clone());
        async move {
            let (parts, body) = req.into_parts();
            if let Some((status, code, message)) = refuse(&parts) {
                // Read the body first, as a store does: answering mid-upload
                // resets the connection, and the client would retry.
                let _ = to_bytes(body, usize::MAX).await;
                count.fetch_add(1, Ordering::SeqCst);
                let xml = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><Resource>{}</Resource><Region>garage</Region></Error>",
                    parts.uri.path()
                );
                return Response::builder()
                    .status(status)
                    .header("content-type", "application/xml")
                    .body(Body::from(xml))
                    .expect("response");
            }
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
                .to_owned();
            let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
            let mut forward = client.request(parts.method, format!("{upstream}{path}"));
            for (name, value) in &parts.headers {
                // The body is forwarded whole, so nothing is left to continue.
                let n = name.as_str();
                if !matches!(n, "content-length" | "expect") && !drop.contains(&n) {
                    forward = forward.header(name, value);
                }
            }
            let Ok(resp) = forward.body(body).send().await else {
                return Response::builder()
                    .status(502)
                    .body(Body::empty())
                    .expect("response");
            };
            let mut out = Response::builder().status(resp.status());
            for (name, value) in resp.headers() {
                if !matches!(name.as_str(), "transfer-encoding" | "connection") {
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
    (format!("http://{addr}"), refused)
}

/// Garage 2.5's answer to a body sent as `aws-chunked` with a checksum trailer.
fn refuse_streaming_trailers(parts: &axum::http::request::Parts) -> Option<Refusal> {
    let h = &parts.headers;
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let streamed = h.contains_key("x-amz-trailer")
        || header("content-encoding").contains("aws-chunked")
        || header("x-amz-content-sha256").starts_with("STREAMING-");
    streamed.then_some((400, "InvalidRequest", "Invalid payload signature"))
}

fn refuse_multipart(parts: &axum::http::request::Parts) -> Option<Refusal> {
    let query = parts.uri.query().unwrap_or("");
    query
        .split('&')
        .any(|q| q == "uploads" || q == "uploads=")
        .then_some((
            501,
            "NotImplemented",
            "Multipart uploads are not implemented here",
        ))
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_work_on_a_store_that_refuses_streaming_checksum_trailers() {
    let server = start_s3s_fs();
    bucket(&server.endpoint, "trailers", false).await;
    let (endpoint, refused) = front(server.endpoint.clone(), refuse_streaming_trailers, &[]).await;

    // The refusal is real: the SDK's default upload of a file (a streamed body
    // with a checksum trailer) is turned away, with the store's answer.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    std::fs::write(&path, vec![7u8; 3 * 1024 * 1024]).unwrap();
    let default_client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "test",
            ))
            .build(),
    );
    let refused_upload = default_client
        .put_object()
        .bucket("trailers")
        .key("default.bin")
        .body(
            aws_sdk_s3::primitives::ByteStream::from_path(&path)
                .await
                .unwrap(),
        )
        .send()
        .await;
    let err = refused_upload.expect_err("the front refuses streamed trailers");
    let answer = callproof::store::s3::answer_of(&err);
    assert_eq!(answer.status, Some(400), "{answer:?}");
    assert_eq!(answer.message.as_deref(), Some("Invalid payload signature"));
    assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 1);

    // callproof's uploads carry their SHA-256 as a header: nothing is refused.
    let store = S3Store::connect(settings(&endpoint, "trailers")).await;
    let report = check::check_s3(&store, 8).await;
    assert!(report.usable(), "{report:?}");
    assert_eq!(report.operations.streamed_upload, Probe::Yes);
    assert_eq!(report.operations.multipart_upload, Some(Probe::Yes));
    assert_eq!(report.operations.ranged_read, Probe::Yes);
    let shared: Arc<dyn ObjectStore> = Arc::new(store);
    contract::file_creates_stream_and_are_write_once(shared.as_ref()).await;
    contract::ranged_reads_return_exactly_the_range(shared.as_ref()).await;
    assert_eq!(
        refused.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "callproof sent a streamed checksum trailer"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_refuses_multipart_uploads_is_named_with_its_answer_and_refused() {
    let server = start_moto();
    bucket(&server.endpoint, "noparts", false).await;
    let (endpoint, refused) = front(server.endpoint.clone(), refuse_multipart, &[]).await;
    let store = S3Store::connect(settings(&endpoint, "noparts")).await;
    let report = check::check_s3(&store, 8).await;
    assert_eq!(report.operations.streamed_upload, Probe::Yes, "{report:?}");
    let Some(Probe::No(why)) = &report.operations.multipart_upload else {
        panic!("multipart must be reported refused: {report:?}");
    };
    assert!(
        why.contains("CreateMultipartUpload answered HTTP 501 NotImplemented")
            && why.contains("does not implement")
            && why.contains("Multipart uploads are not implemented here"),
        "{why}"
    );
    assert!(!report.usable());
    assert!(refused.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    // `store check` says so and fails; `serve` refuses even with the override.
    let dir = tempfile::tempdir().unwrap();
    let env = binary_env(&endpoint, "noparts", dir.path());
    let bin = env!("CARGO_BIN_EXE_callproof");
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(bin);
        cmd.args(args)
            .current_dir(dir.path())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("CALLPROOF_S3_ACCEPT_OVERWRITE_RISK", "true");
        cmd
    };
    let mut check_cmd = run(&["store", "check"]);
    let out = tokio::task::spawn_blocking(move || check_cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed["operations"]["multipart_upload"]["result"], "no",
        "{printed}"
    );
    assert_eq!(
        printed["operations"]["streamed_upload"]["result"], "yes",
        "{printed}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot store recordings") && stderr.contains("HTTP 501"),
        "{stderr}"
    );
    let mut serve_cmd = run(&["serve"]);
    let out = tokio::task::spawn_blocking(move || serve_cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("multipart upload: no") && stderr.contains("NotImplemented"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_store_error_carries_the_stores_status_code_and_message() {
    let server = start_moto();
    let store = S3Store::connect(settings(&server.endpoint, "no-such-bucket")).await;
    let key = callproof::store::ObjectKey::new("confirmations/x/request.json").unwrap();
    let err = store
        .create(&key, bytes::Bytes::from_static(b"{}"))
        .await
        .unwrap_err();
    let answer = err.answer().cloned().unwrap_or_default();
    assert_eq!(answer.status, Some(404), "{err}");
    assert_eq!(answer.code.as_deref(), Some("NoSuchBucket"), "{err}");
    let line = err.to_string();
    assert!(
        line.contains("confirmations/x/request.json")
            && line.contains("PutObject answered HTTP 404 NoSuchBucket")
            && line.contains("create the bucket"),
        "{line}"
    );
    // No answer at all says so, and where to look.
    let port = free_port();
    let gone = S3Store::connect(settings(&format!("http://127.0.0.1:{port}"), "x")).await;
    let err = gone.head(&key).await.unwrap_err();
    let answer = err.answer().cloned().unwrap_or_default();
    assert_eq!(answer.status, None, "{err}");
    assert!(
        err.to_string().contains("HeadObject got no answer")
            && err.to_string().contains("reachable"),
        "{err}"
    );
}
