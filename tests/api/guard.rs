//! What callproof refuses to connect to: recording URLs off the media allow
//! list, callbacks of another provider account, callback URLs inside the network.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

/// A loopback listener that only counts the connections made to it.
struct Counter {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Counter {
    async fn start() -> Counter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        Counter { port, accepted }
    }
}

async fn metric(app: &TestApp, line: &str) -> bool {
    let text = app.get_with("/metrics", None).await.text().await.unwrap();
    text.lines().any(|l| l == line)
}

#[tokio::test]
async fn a_recording_url_off_the_media_hosts_or_of_another_account_is_refused_unfetched() {
    let media = speech_media("RE00000000000000000000000000000001").await;
    let media_host = media
        .recording_url
        .split('/')
        .take(3)
        .collect::<Vec<_>>()
        .join("/");
    let counter = Counter::start().await;
    let app = spawn_with(Options {
        extra: vec![
            ("CALLPROOF_MEDIA_HOSTS", media_host.clone()),
            ("CALLPROOF_RECORDING_WAIT_SECS", "1".into()),
            ("CALLPROOF_SWEEP_INTERVAL_SECS", "1".into()),
        ],
        ..Options::default()
    })
    .await;
    let started = app.start_call(CALL).await;
    assert_eq!(app.press(&started.answer, CALL, "1").await.status(), 200);

    // Another loopback port: allowed in development by default, but not by this list.
    let elsewhere = format!(
        "http://127.0.0.1:{}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE9",
        counter.port
    );
    let sid = "RE00000000000000000000000000000009";
    let r = app
        .webhook(
            &started.callback,
            &recording_params(CALL, sid, &elsewhere),
            AUTH_TOKEN,
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("host not allowed"));

    // The allowed host, but not this account's recording: another account's
    // path, a query that would swallow the extension, a user in the URL.
    let good = media.recording_url.clone();
    let media_sid = "RE00000000000000000000000000000001";
    for url in [
        good.replace(ACCOUNT_SID, "AC99999999999999999999999999999999"),
        format!("{good}?x="),
        good.replace("http://", "http://me:pw@"),
        media_host.clone() + "/2010-04-01/Accounts.json",
    ] {
        let r = app
            .webhook(
                &started.callback,
                &recording_params(CALL, media_sid, &url),
                AUTH_TOKEN,
            )
            .await;
        assert_eq!(r.status().as_u16(), 403, "{url}");
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("not a recording URL of this account"));
    }

    // A signed callback naming another provider account.
    let mut params = recording_params(CALL, sid, &media.recording_url);
    params[0] = ("AccountSid", "AC99999999999999999999999999999999");
    let r = app.webhook(&started.callback, &params, AUTH_TOKEN).await;
    assert_eq!(r.status().as_u16(), 403);

    assert_eq!(app.stored("jobs/recordings/").await, 0, "no job for either");
    assert!(
        metric(
            &app,
            "callproof_recordings_refused_total{reason=\"host\"} 1"
        )
        .await
    );
    assert!(
        metric(
            &app,
            "callproof_recordings_refused_total{reason=\"account\"} 1"
        )
        .await
    );
    assert!(
        metric(
            &app,
            "callproof_recordings_refused_total{reason=\"shape\"} 4"
        )
        .await
    );
    // The record gives the real reason, not "no recording arrived".
    let record = app
        .wait_record(&started.id, |r| r["status"] == "incomplete")
        .await;
    let reason = record["incomplete_reason"].as_str().unwrap();
    // The newest refusal stands: the last callbacks had a bad shape.
    assert!(
        reason.contains("recording refused: not a recording URL of this account"),
        "{reason}"
    );
    let refused = app
        .store
        .list(&format!("confirmations/{}/refused/", started.id))
        .await
        .unwrap();
    assert_eq!(refused.len(), 2, "one reason per refused recording");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(counter.accepted.load(Ordering::SeqCst), 0, "no connection");
    assert_eq!(media.requests(), 0, "nothing fetched");
}

#[tokio::test]
async fn recordings_past_the_limit_per_call_are_refused() {
    let app = spawn_with(Options {
        extra: vec![("CALLPROOF_MAX_RECORDINGS_PER_CALL", "1".into())],
        ..Options::default()
    })
    .await;
    let started = app.start_call(CALL).await;
    assert_eq!(app.press(&started.answer, CALL, "1").await.status(), 200);
    let first = speech_media("RE00000000000000000000000000000001").await;
    let second = speech_media("RE00000000000000000000000000000002").await;
    let send = |sid: &'static str, media: &callproof::simulate::media::MediaServer| {
        let (app, cb, url) = (&app, started.callback.clone(), media.recording_url.clone());
        async move {
            app.webhook(&cb, &recording_params(CALL, sid, &url), AUTH_TOKEN)
                .await
                .status()
                .as_u16()
        }
    };
    let (one, two) = (
        "RE00000000000000000000000000000001",
        "RE00000000000000000000000000000002",
    );
    assert_eq!(send(one, &first).await, 204);
    // The same recording again is a repeat, not a second recording.
    assert_eq!(send(one, &first).await, 204);
    assert_eq!(send(two, &second).await, 403);
    let record = app.wait_record(&started.id, complete).await;
    assert_eq!(
        record["recording"]["recording_sid"],
        "RE00000000000000000000000000000001"
    );
    assert_eq!(second.requests(), 0);
}

#[tokio::test]
async fn callback_urls_inside_the_network_are_refused_unless_allowed() {
    let app = spawn_with(Options {
        extra: vec![("CALLPROOF_CALLBACK_ALLOWED_HOSTS", "127.0.0.1:9".into())],
        ..Options::default()
    })
    .await;
    for url in [
        "http://127.0.0.1/hook",
        "http://127.0.0.1:8080/hook",
        "https://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/hook",
        "https://[fd00::1]/hook",
        "http://localhost:9/hook",
    ] {
        let mut body = billing_request();
        body["callback_url"] = json!(url);
        let resp = app
            .post_json("/v1/confirmations", Some(AGENT_KEY), &body)
            .await;
        assert_eq!(resp.status().as_u16(), 422, "{url}");
        let answer: serde_json::Value = resp.json().await.unwrap();
        let why = answer["fields"]["callback_url"]
            .as_str()
            .unwrap_or_default();
        assert!(why.contains("internal address"), "{url}: {answer}");
    }
    let mut body = billing_request();
    body["callback_url"] = json!("http://127.0.0.1:9/hook");
    let created = app.create(&body).await;
    assert_eq!(app.stored("jobs/callbacks/").await, 1, "{created}");
}

/// A media host on loopback that answers every request with a redirect to `to`.
async fn redirecting(to: String) -> (String, Arc<AtomicUsize>) {
    use axum::routing::get;
    let hits = Arc::new(AtomicUsize::new(0));
    let count = hits.clone();
    let app = axum::Router::new().fallback(get(move || {
        let (to, count) = (to.clone(), count.clone());
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            (
                axum::http::StatusCode::FOUND,
                [(axum::http::header::LOCATION, to)],
            )
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), hits)
}

#[tokio::test]
async fn redirects_are_not_followed_to_plain_http_or_internal_addresses() {
    let counter = Counter::start().await;
    for to in [
        format!("http://127.0.0.1:{}/elsewhere.wav", counter.port),
        format!("https://127.0.0.1:{}/elsewhere.wav", counter.port),
        "https://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        let (media_host, hits) = redirecting(to.clone()).await;
        let app = spawn_with(Options {
            extra: vec![
                ("CALLPROOF_MEDIA_HOSTS", media_host.clone()),
                ("CALLPROOF_RECORDING_DOWNLOAD_ATTEMPTS", "1".into()),
                ("CALLPROOF_JOB_PARK_AFTER_FAILURES", "1".into()),
            ],
            ..Options::default()
        })
        .await;
        let started = app.start_call(CALL).await;
        assert_eq!(app.press(&started.answer, CALL, "1").await.status(), 200);
        let sid = "RE00000000000000000000000000000001";
        let url = format!("{media_host}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}");
        let r = app
            .webhook(
                &started.callback,
                &recording_params(CALL, sid, &url),
                AUTH_TOKEN,
            )
            .await;
        assert_eq!(r.status().as_u16(), 204, "the allowed host is accepted");
        wait_until("the job is parked", 20, async || {
            app.stored("jobs/parked/").await == 1
        })
        .await;
        let jobs: serde_json::Value = app
            .get_with("/v1/jobs", Some(COMPLIANCE_KEY))
            .await
            .json()
            .await
            .unwrap();
        let error = jobs["jobs"][0]["last_error"].as_str().unwrap().to_owned();
        assert!(error.contains("not fetched: a redirect"), "{to}: {error}");
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "{to}: the allowed host once"
        );
        app.stop().await;
    }
    assert_eq!(counter.accepted.load(Ordering::SeqCst), 0, "no connection");
}
