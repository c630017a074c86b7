//! The audit log: every replay, read and search through the server is an
//! entry with who, what, when, from where and why, written before anything is served.
//!
//! Replays need a reason; playback URLs serve ranges without a key and are one
//! entry each; phone numbers never appear in the log; a log that cannot be
//! written stops everything; `X-Forwarded-For` counts only from trusted proxies.

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use callproof::server::Application;
use callproof::store::{ByteStream, ObjectKey, ObjectMeta, ObjectStore, StoreError};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::helpers::*;

/// The name the compliance key of the tests is known by (it is configured without one).
fn compliance_name() -> String {
    callproof::auth::derived_key_name(COMPLIANCE_KEY)
}

/// One page of `GET /v1/audit?{query}` as the admin, checked against its schema.
async fn audit_page(app: &TestApp, query: &str) -> Value {
    let resp = app
        .get_with(&format!("/v1/audit?{query}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(resp.status().as_u16(), 200, "GET /v1/audit?{query}");
    let page: Value = resp.json().await.expect("JSON");
    assert_valid_against("audit-list.v1.schema.json", &page);
    for e in page["entries"].as_array().expect("entries") {
        assert_valid_against("audit-entry.v1.schema.json", e);
    }
    page
}

/// Every entry matching `query`, newest first, following `next_cursor` with pages of `limit`.
async fn audit_entries(app: &TestApp, query: &str, limit: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = format!("{query}&limit={limit}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let page = audit_page(app, &q).await;
        let entries = page["entries"].as_array().expect("entries");
        assert!(entries.len() <= limit);
        all.extend(entries.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

/// The entries of `action` about `record`.
async fn actions(app: &TestApp, record: &str, action: &str) -> Vec<Value> {
    audit_entries(app, &format!("record={record}"), 1000)
        .await
        .into_iter()
        .filter(|e| e["action"] == action)
        .collect()
}

/// A compliance GET of `path` with `reason` in `X-Callproof-Reason`, if any.
async fn get_for(app: &TestApp, path: &str, reason: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(COMPLIANCE_KEY);
    if let Some(r) = reason {
        req = req.header("x-callproof-reason", r);
    }
    req.send().await.expect("request sent")
}

fn archival(r: &Value) -> &Value {
    r["recording"]["audio"]
        .as_array()
        .expect("audio")
        .iter()
        .find(|a| a["role"] == "archival")
        .expect("archival audio")
}

#[tokio::test]
async fn a_replay_is_audited_with_its_reason_and_one_without_a_reason_serves_nothing() {
    let app = spawn_app().await;
    let (id, record) = app.recorded_call(&["press:1"]).await;
    let audio = format!("/v1/records/{id}/audio");

    let resp = get_for(&app, &audio, Some("dispute D-118 from the account holder")).await;
    assert_eq!(resp.status().as_u16(), 200);
    let bytes = resp.bytes().await.expect("audio");
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        archival(&record)["sha256"].as_str().expect("sha256")
    );

    let replays = actions(&app, &id, "records.audio").await;
    assert_eq!(replays.len(), 1, "{replays:#?}");
    let e = &replays[0];
    assert_eq!(e["reason"], "dispute D-118 from the account holder");
    assert_eq!(e["actor"]["role"], "compliance");
    assert_eq!(e["actor"]["name"], compliance_name().as_str());
    assert_eq!(e["record_id"], id.as_str());
    assert_eq!(e["client"], "127.0.0.1");
    assert_eq!(e["route"], "GET /v1/records/{id}/audio");
    // Stored write-once under its day, with its signature beside it.
    let at = OffsetDateTime::parse(
        e["at"].as_str().expect("at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    let day = format!(
        "audit/{:04}/{:02}/{:02}/{}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        e["id"].as_str().expect("id")
    );
    let stored: Vec<String> = app
        .store
        .list(&day)
        .await
        .expect("list")
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    assert!(stored.contains(&format!("{day}.json")), "{stored:?}");
    assert!(
        stored.iter().any(|k| k.ends_with(".sig")),
        "signed: {stored:?}"
    );
    let as_stored: Value = serde_json::from_slice(
        &app.store
            .get(&ObjectKey::new(format!("{day}.json")).expect("key"))
            .await
            .expect("get")
            .expect("stored"),
    )
    .expect("JSON");
    assert_eq!(&as_stored, e, "GET /v1/audit answers entries as stored");

    // No reason, a blank one, one on two lines: 400, no audio, no entry.
    for reason in [None, Some("   "), Some("a\tb")] {
        let resp = get_for(&app, &audio, reason).await;
        assert_eq!(resp.status().as_u16(), 400, "{reason:?}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body: Value = resp.json().await.expect("a JSON error, not audio");
        if reason.is_none() {
            assert!(
                body["error"]
                    .as_str()
                    .expect("error")
                    .contains("X-Callproof-Reason"),
                "{body}"
            );
        }
    }
    assert_eq!(actions(&app, &id, "records.audio").await.len(), 1);

    // Record reads are audited too, without a reason; refusals are not.
    let reads = actions(&app, &id, "records.read").await.len();
    assert!(app.record(&id, None).await.is_some());
    app.versions(&id).await;
    assert_eq!(actions(&app, &id, "records.read").await.len(), reads + 2);
    assert_eq!(
        app.get_with(&audio, Some(AGENT_KEY))
            .await
            .status()
            .as_u16(),
        403
    );
    assert_eq!(app.get_with(&audio, None).await.status().as_u16(), 401);
    assert_eq!(actions(&app, &id, "records.audio").await.len(), 1);

    // Pages are newest first, disjoint, and add up to the whole list.
    let whole = audit_entries(&app, &format!("record={id}"), 1000).await;
    let paged = audit_entries(&app, &format!("record={id}"), 2).await;
    assert_eq!(paged, whole);
    let ids: Vec<&str> = whole.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

    // Reading the log is audited: the admin's own read is the newest entry of its key.
    let mine = audit_page(&app, &format!("key={ADMIN_KEY_NAME}&limit=1")).await;
    assert_eq!(mine["entries"][0]["action"], "audit.read");
    assert_eq!(mine["entries"][0]["filters"]["key"], ADMIN_KEY_NAME);
    // Only admins read it; bad filters are named.
    for key in [COMPLIANCE_KEY, AGENT_KEY] {
        assert_eq!(
            app.get_with("/v1/audit", Some(key)).await.status().as_u16(),
            403
        );
    }
    let resp = app
        .get_with("/v1/audit?record=x&from=yesterday&limit=0", Some(ADMIN_KEY))
        .await;
    assert_eq!(resp.status().as_u16(), 422);
    let body: Value = resp.json().await.expect("JSON");
    for field in ["record", "from", "limit"] {
        assert!(body["fields"][field].is_string(), "{body}");
    }
    // A time window: nothing before the record existed, all of it up to now.
    let before = audit_page(&app, &format!("record={id}&to=2020-01-01")).await;
    assert_eq!(before["entries"].as_array().unwrap().len(), 0);
    let today = OffsetDateTime::now_utc().date();
    let window = audit_entries(&app, &format!("record={id}&from={today}&to={today}"), 1000).await;
    assert_eq!(window.len(), whole.len());
}

#[tokio::test]
async fn a_playback_url_serves_ranges_without_a_key_until_it_expires_as_one_audit_entry() {
    let app = spawn_with(Options {
        extra: vec![("CALLPROOF_PLAYBACK_URL_SECS", "4".into())],
        ..Options::default()
    })
    .await;
    let (id, record) = app.recorded_call(&["press:1"]).await;
    let path = format!("/v1/records/{id}/playback");

    // No reason: 400, no entry.
    let resp = app
        .post_json(&path, Some(COMPLIANCE_KEY), &serde_json::json!({}))
        .await;
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.expect("JSON");
    assert!(
        body["error"].as_str().unwrap().contains("\"reason\""),
        "{body}"
    );
    assert_eq!(
        app.post_json(
            &path,
            Some(AGENT_KEY),
            &serde_json::json!({"reason": "curious"})
        )
        .await
        .status()
        .as_u16(),
        403
    );
    assert!(actions(&app, &id, "records.playback").await.is_empty());

    // A browser form sends the reason in the body.
    let resp = app
        .post_json(
            &path,
            Some(COMPLIANCE_KEY),
            &serde_json::json!({"reason": "listening for complaint C-9"}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let answer: Value = resp.json().await.expect("JSON");
    assert_valid_against("playback-url.v1.schema.json", &answer);
    let url = answer["url"].as_str().expect("url").to_owned();
    assert!(url.starts_with(&app.base), "{url}");

    // The player asks for ranges, with no key and no reason.
    let a = archival(&record);
    let stored = app
        .store
        .get(&ObjectKey::new(a["key"].as_str().unwrap()).unwrap())
        .await
        .unwrap()
        .expect("archival stored");
    let player = reqwest::Client::new();
    for (range, want) in [
        ("bytes=0-99", 0..100),
        ("bytes=100-4195", 100..4196),
        ("bytes=-44", stored.len() - 44..stored.len()),
    ] {
        let resp = player
            .get(&url)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 206, "{range}");
        assert_eq!(resp.bytes().await.unwrap(), stored.slice(want), "{range}");
    }
    let whole = player.get(&url).send().await.unwrap();
    assert_eq!(whole.status().as_u16(), 200);
    assert_eq!(whole.bytes().await.unwrap(), stored);

    // One playback, one entry, whatever the ranges.
    let playbacks = actions(&app, &id, "records.playback").await;
    assert_eq!(playbacks.len(), 1, "{playbacks:#?}");
    assert_eq!(playbacks[0]["reason"], "listening for complaint C-9");
    assert_eq!(playbacks[0]["id"], answer["audit_id"]);
    assert_eq!(playbacks[0]["client"], "127.0.0.1");
    assert!(actions(&app, &id, "records.audio").await.is_empty());

    // An altered grant, or one moved to another record, is refused.
    let (prefix, token) = url.split_once("?t=").unwrap();
    let (payload, tag) = token.split_once('.').unwrap();
    let flipped = if tag.starts_with('A') { "B" } else { "A" };
    let other = callproof::domain::ConfirmationId::generate();
    for bad in [
        format!("{prefix}?t={payload}.{flipped}{}", &tag[1..]),
        format!("{prefix}?t={}.{tag}", &payload[1..]),
        format!("{prefix}?t=nonsense"),
        url.replace(&id, other.as_str()),
    ] {
        let resp = player.get(&bad).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{bad}");
        assert_eq!(resp.headers()["content-type"], "application/json");
    }

    // The header works as well as the body; each playback is its own entry.
    let resp = app
        .client
        .post(format!("{}{path}?original=true", app.base))
        .bearer_auth(COMPLIANCE_KEY)
        .header("x-callproof-reason", "original bytes for the regulator")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let original: Value = resp.json().await.unwrap();
    let got = player
        .get(original["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.headers()["x-content-sha256"],
        record["recording"]["audio"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["role"] == "original")
            .unwrap()["sha256"]
            .as_str()
            .unwrap()
    );
    assert_eq!(actions(&app, &id, "records.playback").await.len(), 2);

    // After it expires, the URL is refused.
    let expires = OffsetDateTime::parse(
        answer["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let wait = (expires - OffsetDateTime::now_utc()).whole_milliseconds() + 1100;
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
    let resp = player
        .get(&url)
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn a_search_by_phone_leaves_no_phone_number_in_the_audit_log() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    assert!(created["id"].is_string());
    let digits = "5551230001";
    for body in [
        json!({"phone": "+15551230001", "account_id": "ACC-1001"}),
        json!({"phone": "+15551230001", "kind": "billing"}),
    ] {
        let resp = app
            .post_json("/v1/records/search", Some(COMPLIANCE_KEY), &body)
            .await;
        assert_eq!(resp.status().as_u16(), 200, "{body}");
    }
    // A phone number given where none belongs is hashed all the same.
    let resp = get_for(&app, "/v1/records?account_id=%2B15551230001", None).await;
    assert_eq!(resp.status().as_u16(), 200);
    let searches: Vec<Value> = audit_entries(&app, &format!("key={}", compliance_name()), 100)
        .await
        .into_iter()
        .filter(|e| e["action"] == "records.search")
        .collect();
    assert_eq!(searches.len(), 3, "{searches:#?}");
    // Newest first.
    let hashed = searches[0]["filters"]["account_id"].as_str().unwrap();
    let phone_a = searches[1]["filters"]["phone"].as_str().unwrap();
    let phone_b = searches[2]["filters"]["phone"].as_str().unwrap();
    assert!(phone_a.starts_with("hmac-sha256:"), "{phone_a}");
    assert_eq!(
        phone_a, phone_b,
        "one number, one hash: searches can be matched"
    );
    assert_eq!(hashed, phone_a);
    assert_eq!(searches[1]["filters"]["kind"], "billing");
    assert_eq!(searches[2]["filters"]["account_id"], "ACC-1001");
    assert_eq!(searches[0]["record_id"], Value::Null);

    // Not in any stored byte under audit/: entries, signatures, anything.
    let keys = app.store.list("audit/").await.expect("list");
    assert!(keys.len() >= 6, "{keys:?}");
    for key in keys {
        let bytes = app.store.get(&key).await.expect("get").expect("stored");
        assert!(
            !bytes.windows(digits.len()).any(|w| w == digits.as_bytes()),
            "{key} holds the phone number"
        );
    }
}

/// A store that refuses every create under `audit/` while `refuse` is set.
struct RefuseAudit {
    inner: Arc<dyn ObjectStore>,
    refuse: Arc<AtomicBool>,
}

impl RefuseAudit {
    fn check(&self, key: &ObjectKey) -> Result<(), StoreError> {
        if self.refuse.load(Ordering::SeqCst) && key.as_str().starts_with("audit/") {
            return Err(StoreError::Io {
                key: key.to_string(),
                source: std::io::Error::other("the audit prefix refuses writes"),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for RefuseAudit {
    async fn create(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), StoreError> {
        self.check(key)?;
        self.inner.create(key, bytes).await
    }
    async fn create_retained(
        &self,
        key: &ObjectKey,
        bytes: Bytes,
        until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.check(key)?;
        self.inner.create_retained(key, bytes, until).await
    }
    async fn create_file(&self, key: &ObjectKey, path: &Path) -> Result<(), StoreError> {
        self.check(key)?;
        self.inner.create_file(key, path).await
    }
    async fn create_file_retained(
        &self,
        key: &ObjectKey,
        path: &Path,
        until: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        self.check(key)?;
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
        self.inner.delete(key).await
    }
    fn describe(&self) -> String {
        format!("{} (refusing audit writes)", self.inner.describe())
    }
}

#[tokio::test]
async fn when_the_audit_log_cannot_be_written_nothing_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let env = test_env(dir.path(), Options::default()).await;
    let refuse = Arc::new(AtomicBool::new(false));
    let flag = refuse.clone();
    let app = Application::build_wrapped(test_config(dir.path(), &env), move |inner| {
        Arc::new(RefuseAudit {
            inner,
            refuse: flag,
        })
    })
    .await
    .expect("server builds");
    let app = TestApp::serve(app, dir.path());
    let (id, _) = app.recorded_call(&["press:1"]).await;

    refuse.store(true, Ordering::SeqCst);
    for path in [
        format!("/v1/records/{id}"),
        format!("/v1/records/{id}/versions"),
        format!("/v1/records/{id}/audio"),
        "/v1/records?kind=billing".to_owned(),
    ] {
        let resp = get_for(&app, &path, Some("dispute D-5")).await;
        assert_eq!(resp.status().as_u16(), 503, "{path}");
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("the audit log cannot be written; nothing was served"),
            "{body}"
        );
        assert!(!text.contains(&id), "{path} served something: {text}");
    }
    let resp = app
        .post_json(
            &format!("/v1/records/{id}/playback"),
            Some(COMPLIANCE_KEY),
            &serde_json::json!({"reason": "dispute D-5"}),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 503);
    assert!(!resp.text().await.unwrap().contains("/audio?t="));
    assert_eq!(
        app.get_with("/v1/audit", Some(ADMIN_KEY))
            .await
            .status()
            .as_u16(),
        503
    );

    // Once the log takes writes again, so does everything else.
    refuse.store(false, Ordering::SeqCst);
    assert!(app.record(&id, None).await.is_some());
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let newest_search = async |app: &TestApp| -> Value {
        let page = audit_page(app, &format!("key={}&limit=1", compliance_name())).await;
        let e = page["entries"][0].clone();
        assert_eq!(e["action"], "records.search");
        e
    };
    let search = async |app: &TestApp, forwarded: &str| {
        let resp = app
            .client
            .get(format!("{}/v1/records", app.base))
            .bearer_auth(COMPLIANCE_KEY)
            .header("x-forwarded-for", forwarded)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    };

    // Nobody trusted: the header is the client's own say-so, and ignored.
    let app = spawn_app().await;
    search(&app, "203.0.113.9").await;
    assert_eq!(newest_search(&app).await["client"], "127.0.0.1");

    // Loopback trusted as the proxy: the right-most untrusted address counts,
    // not what the client put first.
    let app = spawn_with(Options {
        extra: vec![("CALLPROOF_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8".into())],
        ..Options::default()
    })
    .await;
    search(&app, "198.51.100.1, 203.0.113.9, 10.1.2.3").await;
    assert_eq!(newest_search(&app).await["client"], "203.0.113.9");

    // A setting that is not an address or block is refused at start, by name.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("callproof.toml");
    std::fs::write(&file, "").unwrap();
    let err = callproof::config::Config::load(
        Some(&file),
        &[("CALLPROOF_TRUSTED_PROXIES".into(), "10.0.0.0/40".into())],
        &[],
    )
    .expect_err("refused");
    assert!(
        err.to_string().contains("CALLPROOF_TRUSTED_PROXIES"),
        "{err}"
    );
}
