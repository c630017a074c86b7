//! The store operations of one reference call, counted from the server's own
//! metrics: the figure the hot path's changes are held to.

use std::collections::BTreeMap;

use crate::helpers::*;

/// Store operations per kind and result, from `/metrics`.
async fn store_ops(app: &TestApp) -> BTreeMap<String, u64> {
    let text = app
        .get_with("/metrics", None)
        .await
        .text()
        .await
        .expect("metrics text");
    let mut ops = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("callproof_store_seconds_count{") else {
            continue;
        };
        let (labels, n) = rest.split_once("} ").expect("a count line");
        let op = labels
            .split(',')
            .find_map(|l| l.strip_prefix("op=\""))
            .and_then(|o| o.strip_suffix('"'))
            .expect("an op label");
        let result = labels
            .split(',')
            .find_map(|l| l.strip_prefix("result=\""))
            .and_then(|o| o.strip_suffix('"'))
            .expect("a result label");
        *ops.entry(format!("{op} {result}")).or_default() += n.parse::<u64>().expect("a count");
    }
    ops
}

fn difference(
    after: &BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// A reference call (the transfer, one repeat, a yes, the status and
/// recording callbacks, the record) costs at most this many store operations
/// on the local directory, with the sealer, the index catch-up and the
/// sweeper idle.
const REFERENCE_CALL_OPS: u64 = 52;

#[tokio::test]
async fn a_reference_call_costs_no_more_store_operations_than_counted() {
    if std::env::var_os("TEST_S3_ENDPOINT").is_some() {
        // The count is the same on S3; the local pass holds it.
        return;
    }
    let app = spawn_with(Options {
        extra: vec![
            ("CALLPROOF_SEAL_SECS", "3600".into()),
            ("CALLPROOF_INDEX_CATCHUP_SECS", "3600".into()),
            ("CALLPROOF_SWEEP_INTERVAL_SECS", "3600".into()),
        ],
        ..Options::default()
    })
    .await;
    let created = app.create(&billing_request()).await;
    let id = created["id"].as_str().expect("an id").to_owned();
    // Background work that runs once at start has had its turn.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = store_ops(&app).await;
    app.call_with_recording(
        created["transfer_url"].as_str().expect("a transfer URL"),
        &["press:9", "press:1"],
        fixture("speech-8k-ulaw.wav"),
    )
    .await;
    // Watched on the directory itself, so the watching adds no operation
    // (a compliance read of the record would add its audit entry).
    let store = app.data_dir.join("store");
    let first_version = store.join(format!("records/{id}/v0001.json"));
    let jobs = store.join("jobs/recordings");
    wait_until(
        "the record is written and its job removed",
        30,
        async || {
            first_version.exists()
                && std::fs::read_dir(&jobs).map_or(true, |mut d| d.next().is_none())
        },
    )
    .await;
    let ops = difference(&store_ops(&app).await, &before);
    let record = app.wait_record(&id, complete).await;
    assert_eq!(record["outcome"]["status"], "confirmed", "{record}");
    let total: u64 = ops.values().sum();
    println!("store operations of the reference call: {total} {ops:?}");
    assert!(
        total <= REFERENCE_CALL_OPS,
        "the reference call took {total} store operations, more than {REFERENCE_CALL_OPS}: {ops:?}"
    );
}
