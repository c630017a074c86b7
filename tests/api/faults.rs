//! Faults that must lose and duplicate nothing: a server killed with SIGKILL
//! mid-job, the S3 server stopped during a burst, two instances sharing one
//! bucket behind a load balancer. Each ends with records expected = records stored.

use std::time::{Duration, Instant};

use callproof::simulate::media::MediaServer;
use serde_json::{json, Value};

use crate::helpers::*;

/// A call answered "1" by hand, with its recording on a media server of its own.
struct Answered {
    started: Started,
    call: String,
    sid: String,
    media: MediaServer,
}

impl Answered {
    /// Starts call number `i` on a new request, confirms it, and serves its recording.
    async fn new(app: &TestApp, i: usize) -> Answered {
        let created = app.create(&billing_request()).await;
        Answered::confirm(app, &created, format!("CA{i:032}"), format!("RE{i:032}")).await
    }

    /// Sends `call` to the request `created`, confirms it, and serves recording `sid`.
    async fn confirm(app: &TestApp, created: &Value, call: String, sid: String) -> Answered {
        let started = app.transfer(created, &call).await;
        let r = app.press(&started.answer, &call, "1").await;
        assert_eq!(r.status().as_u16(), 200);
        let media = speech_media(&sid).await;
        Answered {
            started,
            call,
            sid,
            media,
        }
    }

    /// Sends the recording status callback; returns the HTTP status.
    async fn recording_callback(&self, app: &TestApp) -> u16 {
        app.webhook(
            &self.started.callback,
            &recording_params(&self.call, &self.sid, &self.media.recording_url),
            AUTH_TOKEN,
        )
        .await
        .status()
        .as_u16()
    }
}

/// `n` calls confirmed whose recording jobs are all retrying their downloads,
/// because the provider's media is not ready yet.
async fn retrying(app: &TestApp, n: usize) -> Vec<Answered> {
    let mut calls = Vec::new();
    for i in 0..n {
        let c = Answered::new(app, i).await;
        c.media.fail_next(1_000_000, 503);
        assert_eq!(c.recording_callback(app).await, 204);
        calls.push(c);
    }
    wait_until("every job tried its download", 30, async || {
        calls.iter().all(|c| c.media.requests() > 0)
    })
    .await;
    calls
}

/// `callproof_jobs_total{kind="recording",state="failed"}` from `/metrics`.
async fn failed_jobs(app: &TestApp) -> u64 {
    let text = app.get_with("/metrics", None).await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("callproof_jobs_total{kind=\"recording\",state=\"failed\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_with_sigkill_mid_jobs_finishes_them_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let env = test_env(
        dir.path(),
        Options {
            extra: vec![
                ("CALLPROOF_RECORDING_RETRY_BASE_MS", "200".into()),
                ("CALLPROOF_INGEST_CONCURRENCY", "4".into()),
                ("CALLPROOF_SWEEP_INTERVAL_SECS", "1".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    let (server, app) = crate::cli::serve_attached(dir.path(), &env).await;
    let calls = retrying(&app, 4).await;
    assert_eq!(app.stored("jobs/recordings/").await, 4);
    drop(server); // SIGKILL: no shutdown, no lease released
    for c in &calls {
        c.media.fail_next(0, 503);
    }
    let (server, app) = crate::cli::serve_attached(dir.path(), &env).await;
    let ids: Vec<String> = calls.iter().map(|c| c.started.id.clone()).collect();
    assert_exactly_these_records(&app, &ids).await;
    for c in &calls {
        assert_eq!(c.media.fetches(), 1, "each recording downloaded once");
    }
    assert!(
        server.log().contains("resuming jobs left from before"),
        "{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_s3_server_stopped_for_30_seconds_during_a_burst_loses_and_duplicates_nothing() {
    let mut s3 = crate::s3::start_s3s_fs();
    crate::s3::bucket(&s3.endpoint, "outage", false).await;
    let mut opts = crate::s3::s3_options(&s3.endpoint, "outage");
    opts.extra.extend([
        ("CALLPROOF_RECORDING_RETRY_BASE_MS", "500".into()),
        ("CALLPROOF_INGEST_CONCURRENCY", "4".into()),
        ("CALLPROOF_SWEEP_INTERVAL_SECS", "1".into()),
        ("CALLPROOF_WEBHOOK_DEADLINE_SECS", "3".into()),
    ]);
    let app = spawn_with(opts).await;

    // A burst: four calls confirmed, their recordings' jobs retrying while the
    // provider's media is not ready; two more requests waiting for their calls.
    let calls = retrying(&app, 4).await;
    let waiting: Vec<Value> = vec![
        app.create(&billing_request()).await,
        app.create(&billing_request()).await,
    ];

    s3.stop();
    let outage = Instant::now();
    // The media comes back while the store is down: downloads succeed, writes fail.
    for c in &calls {
        c.media.fail_next(0, 503);
    }
    let ready = app.get_with("/readyz", None).await;
    assert_eq!(
        ready.status().as_u16(),
        503,
        "readyz reports the store down"
    );
    // Callers transferred now hear an apology; nothing of theirs is stored.
    for (i, w) in waiting.iter().enumerate() {
        let call = format!("CB{i:032}");
        let r = app
            .webhook(
                w["transfer_url"].as_str().unwrap(),
                &call_params(&call, &[]),
                AUTH_TOKEN,
            )
            .await;
        assert_eq!(r.status().as_u16(), 200);
        let xml = r.text().await.unwrap();
        assert!(
            !xml.contains("<Record"),
            "no flow starts without the store: {xml}"
        );
    }
    wait_until("every job downloaded its recording", 30, async || {
        calls.iter().all(|c| c.media.fetches() > 0)
    })
    .await;
    wait_until("every job failed to store its recording", 30, async || {
        failed_jobs(&app).await >= 4
    })
    .await;
    let rest = Duration::from_secs(30).saturating_sub(outage.elapsed());
    tokio::time::sleep(rest).await;
    s3.start_again();
    wait_until("readyz reports the store back", 30, async || {
        app.get_with("/readyz", None).await.status().as_u16() == 200
    })
    .await;

    // The two customers are transferred again, and confirm.
    let mut ids: Vec<String> = calls.iter().map(|c| c.started.id.clone()).collect();
    for (i, w) in waiting.iter().enumerate() {
        let c = Answered::confirm(&app, w, format!("CC{i:032}"), format!("RF{i:032}")).await;
        assert_eq!(c.recording_callback(&app).await, 204);
        app.wait_record(&c.started.id, complete).await;
        ids.push(c.started.id);
    }
    assert_exactly_these_records(&app, &ids).await;
}

/// Two instances on one bucket (moto, started here) behind a round-robin
/// proxy that is their public URL, so consecutive requests alternate.
async fn two_instances(s3: &crate::s3::S3Server, bucket: &str) -> (Proxy, TestApp, TestApp) {
    crate::s3::bucket(&s3.endpoint, bucket, true).await;
    let proxy = Proxy::start(&[]).await;
    let mut opts = crate::s3::s3_options(&s3.endpoint, bucket);
    opts.extra.extend([
        ("CALLPROOF_PUBLIC_URL", proxy.url.clone()),
        ("CALLPROOF_SWEEP_INTERVAL_SECS", "1".into()),
    ]);
    let a = spawn_with(opts.clone()).await;
    let b = spawn_with(opts).await;
    proxy.route_to(vec![a.local.clone(), b.local.clone()]);
    assert_eq!(a.base, proxy.url);
    (proxy, a, b)
}

/// Which instances served the requests whose path starts with `prefix`.
fn instances_serving(proxy: &Proxy, prefix: &str) -> Vec<usize> {
    proxy
        .served()
        .into_iter()
        .filter(|(_, path)| path.starts_with(prefix))
        .map(|(i, _)| i)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_on_one_bucket_with_alternating_webhooks_keep_one_record_per_call() {
    let s3 = crate::s3::start_moto();
    let (proxy, a, _b) = two_instances(&s3, "pair").await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let created = a.create(&billing_request()).await;
        let report = a
            .call(created["transfer_url"].as_str().unwrap(), &["1"])
            .await;
        assert!(heard(&report).contains("confirmed"), "{}", heard(&report));
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let voice = instances_serving(&proxy, "/voice/");
    assert!(
        voice.contains(&0) && voice.contains(&1),
        "both instances answered webhooks: {voice:?}"
    );
    assert_exactly_these_records(&a, &ids).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_on_one_bucket_and_one_postgres_index_find_each_others_records() {
    assert!(
        std::env::var("TEST_POSTGRES_URL").is_ok(),
        "this test needs PostgreSQL: run scripts/test, which starts one, or set TEST_POSTGRES_URL"
    );
    let s3 = crate::s3::start_moto();
    let (_proxy, a, b) = two_instances(&s3, "search").await;
    let mut ids = Vec::new();
    for app in [&a, &b, &a, &b] {
        let created = app.create(&billing_request()).await;
        app.call(created["transfer_url"].as_str().unwrap(), &["1"])
            .await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        a.wait_record(id, complete).await;
    }
    for (name, app) in [("a", &a), ("b", &b)] {
        let status: Value = app
            .get_with("/v1/status", Some(ADMIN_KEY))
            .await
            .json()
            .await
            .unwrap();
        assert!(
            status["index"]["backend"]
                .as_str()
                .unwrap()
                .starts_with("PostgreSQL"),
            "{status}"
        );
        let page: Value = app
            .post_json(
                "/v1/records/search",
                Some(COMPLIANCE_KEY),
                &json!({"phone": "+15551230001"}),
            )
            .await
            .json()
            .await
            .unwrap();
        let mut found: Vec<String> = page["records"]
            .as_array()
            .unwrap_or_else(|| panic!("instance {name}: {page}"))
            .iter()
            .map(|r| {
                assert_eq!(r["state"], "ok", "{r}");
                r["record_id"].as_str().unwrap().to_owned()
            })
            .collect();
        found.sort();
        let mut all = ids.clone();
        all.sort();
        assert_eq!(found, all, "instance {name} finds every record: {page}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_recording_callback_at_one_instance_twice_and_at_two_at_once_stores_once() {
    let s3 = crate::s3::start_moto();
    let (proxy, a, b) = two_instances(&s3, "twice").await;
    let c = Answered::new(&a, 0).await;
    c.media.fail_next(2, 404); // not ready at first, as is normal
    let (x, y) = tokio::join!(c.recording_callback(&a), c.recording_callback(&a));
    assert_eq!((x, y), (204, 204));
    let took = instances_serving(&proxy, "/voice/recording");
    assert_eq!(took.len(), 2);
    assert_ne!(
        took[0], took[1],
        "the two callbacks reached different instances"
    );
    // The same callback again, straight at one instance, twice at once.
    let params = recording_params(&c.call, &c.sid, &c.media.recording_url);
    let direct = c.started.callback.replace(&proxy.url, &b.local);
    let (x, y) = tokio::join!(
        b.webhook_signed_for(&direct, &c.started.callback, &params),
        b.webhook_signed_for(&direct, &c.started.callback, &params)
    );
    assert_eq!((x, y), (204, 204));
    assert_exactly_these_records(&a, std::slice::from_ref(&c.started.id)).await;
}

#[tokio::test]
async fn a_job_that_keeps_failing_is_parked_with_its_reason_and_retried_on_request() {
    let app = spawn_with(Options {
        extra: vec![
            ("CALLPROOF_RECORDING_DOWNLOAD_ATTEMPTS", "1".into()),
            ("CALLPROOF_JOB_PARK_AFTER_FAILURES", "3".into()),
            ("CALLPROOF_SWEEP_INTERVAL_SECS", "1".into()),
            // Long enough for three failures a sweep apart to park the job first.
            ("CALLPROOF_RECORDING_WAIT_SECS", "8".into()),
        ],
        ..Options::default()
    })
    .await;
    let c = Answered::new(&app, 0).await;
    c.media.fail_next(1_000_000, 500);
    assert_eq!(c.recording_callback(&app).await, 204);

    let record = app
        .wait_record(&c.started.id, |r| {
            r["incomplete_reason"]
                .as_str()
                .is_some_and(|s| s.contains("parked"))
        })
        .await;
    let reason = record["incomplete_reason"].as_str().unwrap();
    assert!(
        reason.contains("3 times") && reason.contains("HTTP 500"),
        "{reason}"
    );
    let jobs: Value = app
        .get_with("/v1/jobs", Some(COMPLIANCE_KEY))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (jobs["queued"].as_u64(), jobs["parked"].as_u64()),
        (Some(0), Some(1))
    );
    let job = &jobs["jobs"][0];
    assert_eq!(job["state"], "parked");
    assert_eq!(job["failures"], 3);
    assert_eq!(job["confirmation_id"], c.started.id.as_str());
    assert!(job["last_error"].as_str().unwrap().contains("HTTP 500"));
    assert_eq!(c.media.requests(), 3, "not tried again once parked");
    let agent = app.get_with("/v1/jobs", Some(AGENT_KEY)).await;
    assert_eq!(agent.status().as_u16(), 403);
    wait_until("the parked gauge", 10, async || {
        let text = app.get_with("/metrics", None).await.text().await.unwrap();
        text.contains("callproof_jobs{kind=\"recording\",state=\"parked\"} 1")
    })
    .await;

    // The operator fixes the cause and retries: the record gets its recording as v2.
    c.media.fail_next(0, 500);
    let id = jobs["jobs"][0]["id"].as_str().unwrap().to_owned();
    let queued = callproof::jobs::retry_parked(app.store.as_ref(), &[])
        .await
        .unwrap();
    assert_eq!(queued, vec![id]);
    app.wait_record(&c.started.id, complete).await;
    assert_eq!(app.version_numbers(&c.started.id).await, [1, 2]);
    assert_eq!(app.stored("jobs/parked/").await, 0);
    assert_eq!(app.stored("jobs/failures/").await, 0);
}
