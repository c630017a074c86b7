//! Benchmark of record search at scale: the search index behind `GET
//! /v1/records` against the scan it replaced, on one store, in one run.

// Run with `cargo bench --bench search` (100 000 records; set
// CALLPROOF_BENCH_RECORDS for another count). A real server on loopback
// writes synthetic records through its own evidence writer (marker,
// signature, object, index row), as ingest does; then each search is timed
// over HTTP as a compliance user runs it (the audit entry included), and the
// scan that answered searches before the index (list every record, read its
// newest version, filter, sort) is timed on the same store. Every search's
// answer is checked against the scan's, so a wrong index fails the run.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use callproof::config::Config;
use callproof::domain::{ConfirmationId, ConfirmationNumber};
use callproof::record::ConfirmationRecord;
use callproof::server::Application;
use futures_util::future::try_join_all;
use serde_json::Value;
use time::OffsetDateTime;

const EXAMPLE: &str = include_str!("../recordings-schema/examples/06-complete-signed.v2.json");
const COMPLIANCE_KEY: &str = "bench-compliance-key-0123456789";
/// Searches timed per query.
const SAMPLES: usize = 25;
/// Records written at once.
const WRITERS: usize = 32;

fn settings(dir: &Path) -> Vec<(String, String)> {
    [
        ("CALLPROOF_LISTEN", "127.0.0.1:0".to_owned()),
        ("CALLPROOF_DATA_DIR", dir.display().to_string()),
        (
            "CALLPROOF_TWILIO_ACCOUNT_SID",
            "AC00000000000000000000000000000000".into(),
        ),
        (
            "CALLPROOF_TWILIO_AUTH_TOKEN",
            "bench-auth-token-0123456789abcdef".into(),
        ),
        (
            "CALLPROOF_API_KEYS",
            format!("compliance:bench:{COMPLIANCE_KEY}"),
        ),
        (
            "CALLPROOF_TOKEN_SECRET",
            "bench-token-secret-0123456789abcdef0123".into(),
        ),
        ("CALLPROOF_LOG_FORMAT", "json".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Record `i` of the synthetic set: ten accounts, two kinds, one per minute.
fn synthetic(template: &ConfirmationRecord, i: usize) -> ConfirmationRecord {
    let mut r = template.clone();
    let id = ConfirmationId::generate();
    r.record_id = id.clone();
    r.confirmation.id = id;
    r.confirmation.confirmation_number = ConfirmationNumber::generate();
    r.confirmation.account_id = format!("ACC-{:04}", i % 10);
    r.confirmation.agent_id = format!("agent-{}", i % 7);
    r.confirmation.requested_at = OffsetDateTime::UNIX_EPOCH
        + time::Duration::days(20_000)
        + time::Duration::minutes(i as i64);
    if i % 2 == 1 {
        r.confirmation.kind = "plan".parse().unwrap_or(r.confirmation.kind);
    }
    r
}

fn median_and_p99(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    (ms(samples[samples.len() / 2]), ms(p99))
}

fn main() -> ExitCode {
    let count: usize = std::env::var("CALLPROOF_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(run(count))
}

async fn run(count: usize) -> ExitCode {
    let base_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target"))
        .join("bench-search");
    let _ = std::fs::remove_dir_all(&base_dir);
    std::fs::create_dir_all(&base_dir).expect("bench directory");
    let dir = base_dir.as_path();
    let file = dir.join("bench.toml");
    std::fs::write(&file, "").expect("config file");
    let config = Config::load(Some(&file), &settings(dir), &[]).expect("bench settings");
    let app = Application::build(config).await.expect("server builds");
    let template: ConfirmationRecord = serde_json::from_str(EXAMPLE).expect("the example record");

    println!("writing {count} records through the server's evidence writer ({WRITERS} at once)");
    let started = Instant::now();
    let state = app.state().clone();
    let mut next = 0;
    while next < count {
        let batch: Vec<_> = (next..(next + WRITERS).min(count))
            .map(|i| {
                let state = state.clone();
                let r = synthetic(&template, i);
                async move { state.records.write(&r, None, &state.evidence).await }
            })
            .collect();
        try_join_all(batch).await.expect("records written");
        next += WRITERS;
        if next % 10_000 < WRITERS {
            println!(
                "  {}/{count} in {:.0} s",
                next.min(count),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let write_secs = started.elapsed().as_secs_f64();
    println!(
        "written in {write_secs:.1} s ({:.0} records/s, each indexed as written)",
        count as f64 / write_secs
    );

    let started = Instant::now();
    let (seals, rows) = state.indexer.rebuild(&|_| {}).await.expect("index rebuilt");
    println!(
        "index rebuilt from the store in {:.1} s ({seals} seals, {rows} rows)",
        started.elapsed().as_secs_f64()
    );

    let base = format!("http://{}", app.address());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    // The queries, each with the scan filter that must give the same answer.
    type Keep = Box<dyn Fn(&ConfirmationRecord) -> bool + Sync>;
    let mut queries: Vec<(String, Keep)> = vec![
        ("".into(), Box::new(|_| true)),
        (
            "account_id=ACC-0003".into(),
            Box::new(|r| r.confirmation.account_id == "ACC-0003"),
        ),
        (
            "kind=plan&agent_id=agent-3".into(),
            Box::new(|r| {
                r.confirmation.agent_id == "agent-3" && r.confirmation.kind.to_string() == "plan"
            }),
        ),
    ];
    // A confirmation number from the newest page: the narrowest search.
    let first = search(&client, &format!("{base}/v1/records?limit=1")).await;
    let number = first["records"][0]["confirmation_number"]
        .as_str()
        .expect("a record")
        .to_owned();
    let wanted = number.clone();
    queries.push((
        format!("confirmation_number={number}"),
        Box::new(move |r| r.confirmation.confirmation_number.to_string() == wanted),
    ));

    let mut failed = false;
    println!("\n| search | index p50 | index p99 | scan | scan / index |");
    println!("|---|---:|---:|---:|---:|");
    for (query, keep) in &queries {
        let mut samples = Vec::new();
        let mut answer = Vec::new();
        for _ in 0..SAMPLES {
            let t = Instant::now();
            let page = search(&client, &format!("{base}/v1/records?limit=50&{query}")).await;
            samples.push(t.elapsed());
            answer = page["records"]
                .as_array()
                .expect("records")
                .iter()
                .map(|r| r["record_id"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>();
        }
        let (p50, p99) = median_and_p99(samples);
        let t = Instant::now();
        let expected = scan(&state, keep.as_ref()).await;
        let scan_ms = t.elapsed().as_secs_f64() * 1000.0;
        let label = if query.is_empty() {
            "(none)"
        } else {
            query.as_str()
        };
        println!(
            "| `{label}` | {p50:.1} ms | {p99:.1} ms | {scan_ms:.0} ms | {:.0}× |",
            scan_ms / p50
        );
        if answer != expected {
            eprintln!(
                "the index answered {answer:?} where the scan found {expected:?} for `{label}`"
            );
            failed = true;
        }
    }
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&base_dir);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One search over HTTP as a compliance user.
async fn search(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(url)
        .bearer_auth(COMPLIANCE_KEY)
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("search answer")
}

/// The search the index replaced, as `GET /v1/records` ran it: every record
/// listed, its newest version read, filtered, sorted newest first.
async fn scan(
    state: &callproof::http::AppState,
    keep: &(dyn Fn(&ConfirmationRecord) -> bool + Sync),
) -> Vec<String> {
    let records = &state.records;
    let mut found = Vec::new();
    for id in records.ids().await.expect("list records") {
        if let Some(r) = records.latest(&id).await.expect("read a record") {
            if keep(&r) {
                found.push(r);
            }
        }
    }
    found.sort_by_key(|r| {
        (
            -r.confirmation.requested_at.unix_timestamp_nanos(),
            r.record_id.to_string(),
        )
    });
    found
        .into_iter()
        .take(50)
        .map(|r| r.record_id.to_string())
        .collect()
}
