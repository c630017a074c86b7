//! The replay page's server side: sign-in with a compliance or admin key for a
//! signed session cookie, the rules cookie requests are held to, sign-out as evidence,
//! the security headers, the waveform and export URLs.
//!
//! Each attacker of docs/replay-and-index-design.md has a test here: another
//! site (cross-site GETs and POSTs, forms, framing), someone at the browser
//! later (after sign-out, expiry, idleness, a removed key), a compliance key
//! holder (acting as admin by editing the cookie, a waveform instead of a
//! reason), and a store writer (a sign-out fact is signed and sealed).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::*;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The origin of a test server's public URL.
fn origin(app: &TestApp) -> String {
    app.base.clone()
}

/// Posts the sign-in form to `url` with `key` (and `next`), from `origin`.
async fn post_sign_in(
    url: &str,
    key: &str,
    origin: Option<&str>,
    next: Option<&str>,
) -> reqwest::Response {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("key", key);
    if let Some(n) = next {
        form.append_pair("next", n);
    }
    let mut req = browser()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.finish());
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.expect("sign-in sent")
}

/// The `Set-Cookie` header of an answer that sets one.
fn set_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("set-cookie")
        .map(|v| v.to_str().expect("text").to_owned())
}

/// `name=value` of a `Set-Cookie` header, as a browser sends it back.
fn pair(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .expect("a pair")
        .trim()
        .to_owned()
}

/// Signs in with `key`; the cookie to send back (`callproof_session=…`).
async fn sign_in(app: &TestApp, key: &str) -> String {
    let resp = post_sign_in(
        &format!("{}/ui/session", app.base),
        key,
        Some(&origin(app)),
        None,
    )
    .await;
    assert_eq!(resp.status().as_u16(), 303, "sign-in");
    pair(&set_cookie(&resp).expect("a cookie"))
}

/// The session payload a cookie carries (not checked: for finding the sid).
fn payload(cookie: &str) -> Value {
    let value = cookie.split_once('=').expect("name=value").1;
    let (p, _) = value.split_once('.').expect("payload.mac");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("base64")).expect("JSON")
}

/// A GET as the page sends it: the cookie and `X-Callproof-UI: 1`.
async fn page_get(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    browser()
        .get(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .header("x-callproof-ui", "1")
        .send()
        .await
        .expect("request sent")
}

/// A JSON POST as the page sends it: cookie, page header, own Origin.
async fn page_post(app: &TestApp, path: &str, cookie: &str, body: &Value) -> reqwest::Response {
    browser()
        .post(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .header("x-callproof-ui", "1")
        .header("origin", origin(app))
        .json(body)
        .send()
        .await
        .expect("request sent")
}

/// Audit entries (newest first) of `record`, or of everything, as the admin reads them.
async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    let resp = app
        .get_with(&format!("/v1/audit?{query}&limit=1000"), Some(ADMIN_KEY))
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let page: Value = resp.json().await.expect("JSON");
    page["entries"].as_array().expect("entries").clone()
}

async fn error_of(resp: reqwest::Response) -> String {
    let body: Value = resp.json().await.expect("JSON error");
    body["error"].as_str().expect("an error message").to_owned()
}

#[tokio::test]
async fn a_compliance_or_admin_key_signs_in_for_a_strict_http_only_browser_session_cookie() {
    let app = spawn_app().await;
    let url = format!("{}/ui/session", app.base);
    let resp = post_sign_in(&url, COMPLIANCE_KEY, Some(&origin(&app)), None).await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], "/ui/");
    let cookie = set_cookie(&resp).expect("a cookie");
    assert!(cookie.starts_with("callproof_session="), "{cookie}");
    for flag in ["; Path=/", "; HttpOnly", "; SameSite=Strict"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    // A browser-session cookie; not Secure over plain http.
    assert!(!cookie.contains("Max-Age") && !cookie.contains("Expires"));
    assert!(!cookie.contains("Secure"));
    assert!(
        !cookie.contains(COMPLIANCE_KEY),
        "the key is not in the cookie"
    );
    let cookie = pair(&cookie);
    let p = payload(&cookie);
    assert_eq!(p["role"], "compliance");
    assert_eq!(p["name"], callproof::auth::derived_key_name(COMPLIANCE_KEY));
    assert_eq!(p["sid"].as_str().expect("sid").len(), 32);

    // Every sign-in is a new session (no fixation).
    let again = sign_in(&app, COMPLIANCE_KEY).await;
    assert_ne!(payload(&again)["sid"], p["sid"]);

    // GET /ui/session says who and until when, with the page's header ...
    let resp = page_get(&app, "/ui/session", &cookie).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        set_cookie(&resp).is_some_and(|c| c.starts_with("callproof_session=")),
        "an accepted session's cookie is re-issued with its new last use"
    );
    let me: Value = resp.json().await.expect("JSON");
    assert_valid_against("ui-session.v1.schema.json", &me);
    assert_eq!(me["role"], "compliance");
    // ... or with Sec-Fetch-Site: same-origin, and not from another site.
    for (site, want) in [
        ("same-origin", 200),
        ("cross-site", 403),
        ("same-site", 403),
    ] {
        let resp = browser()
            .get(&url)
            .header("cookie", &cookie)
            .header("sec-fetch-site", site)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), want, "Sec-Fetch-Site: {site}");
    }
    // No cookie: 401.
    let resp = browser()
        .get(&url)
        .header("x-callproof-ui", "1")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 401);

    // An admin key signs in as itself; `next` is followed only on the page.
    let id = "0123456789abcdef0123456789abcdef";
    let resp = post_sign_in(
        &url,
        ADMIN_KEY,
        Some(&origin(&app)),
        Some(&format!("/ui/records/{id}")),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        resp.headers()["location"],
        format!("/ui/records/{id}").as_str()
    );
    let admin = pair(&set_cookie(&resp).expect("cookie"));
    let me: Value = page_get(&app, "/ui/session", &admin)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["name"], ADMIN_KEY_NAME);
    for next in [
        "https://evil.example/ui/",
        "//evil.example/ui/",
        "/ui/../v1/keys",
        "/v1/records",
    ] {
        let resp = post_sign_in(&url, ADMIN_KEY, Some(&origin(&app)), Some(next)).await;
        assert_eq!(resp.headers()["location"], "/ui/", "next={next}");
    }
}

#[tokio::test]
async fn agent_keys_unknown_keys_and_other_sites_cannot_sign_in() {
    let app = spawn_app().await;
    let url = format!("{}/ui/session", app.base);
    let resp = post_sign_in(&url, AGENT_KEY, Some(&origin(&app)), None).await;
    assert_eq!(resp.status().as_u16(), 403);
    assert!(set_cookie(&resp).is_none());
    let msg = error_of(resp).await;
    assert!(
        msg.contains("agent keys cannot sign in") && msg.contains("compliance or admin"),
        "{msg}"
    );
    let resp = post_sign_in(&url, "not-a-configured-key-0001", Some(&origin(&app)), None).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert!(set_cookie(&resp).is_none());

    // A form another site posts (login CSRF), or one without an Origin.
    for o in [None, Some("null"), Some("https://evil.example")] {
        let resp = post_sign_in(&url, COMPLIANCE_KEY, o, None).await;
        assert_eq!(resp.status().as_u16(), 403, "Origin {o:?}");
        assert!(set_cookie(&resp).is_none());
    }
    // The key comes as a form, never as JSON or in the URL.
    let resp = browser()
        .post(&url)
        .header("origin", origin(&app))
        .json(&json!({"key": COMPLIANCE_KEY}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 415);
    let resp = browser()
        .post(format!("{url}?key={COMPLIANCE_KEY}"))
        .header("origin", origin(&app))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 400);
    assert!(set_cookie(&resp).is_none());
}

#[tokio::test]
async fn the_cookie_stands_for_its_key_on_the_api_only_with_the_page_headers_and_origin() {
    let app = spawn_app().await;
    let (id, _) = app.recorded_call(&["press:1"]).await;
    let cookie = sign_in(&app, COMPLIANCE_KEY).await;
    let name = callproof::auth::derived_key_name(COMPLIANCE_KEY);

    // Reads with the page's header, audited under the key's role and name.
    for path in [
        "/v1/records".to_owned(),
        format!("/v1/records/{id}"),
        format!("/v1/records/{id}/versions"),
        format!("/v1/records/{id}/verify"),
        format!("/v1/records/{id}/hold"),
    ] {
        let resp = page_get(&app, &path, &cookie).await;
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    let resp = browser()
        .get(format!("{}/v1/records/{id}/audio", app.base))
        .header("cookie", &cookie)
        .header("x-callproof-ui", "1")
        .header("x-callproof-reason", "listening from the page")
        .header("range", "bytes=0-9")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 206);
    let searches: Vec<Value> = audit(&app, &format!("key={name}"))
        .await
        .into_iter()
        .filter(|e| e["action"] == "records.search")
        .collect();
    assert_eq!(searches.len(), 1, "{searches:#?}");
    assert_eq!(searches[0]["actor"]["role"], "compliance");
    assert_eq!(searches[0]["actor"]["name"], name.as_str());

    // The same cookie without the header, as an <img> or a link from another site sends it.
    let resp = browser()
        .get(format!("{}/v1/records", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 403);
    assert!(error_of(resp).await.contains("X-Callproof-UI: 1"));
    let entries_before = audit(&app, &format!("key={name}")).await.len();

    // A playback from the page: header, own Origin, JSON.
    let path = format!("/v1/records/{id}/playback");
    let resp = page_post(&app, &path, &cookie, &json!({"reason": "page replay"})).await;
    assert_eq!(resp.status().as_u16(), 200);
    let answer: Value = resp.json().await.expect("JSON");
    assert_valid_against("playback-url.v1.schema.json", &answer);
    // Without Origin, with "null" or another site's, or as a form: refused, nothing audited.
    for o in [None, Some("null"), Some("https://evil.example")] {
        let mut req = browser()
            .post(format!("{}{path}", app.base))
            .header("cookie", &cookie)
            .header("x-callproof-ui", "1")
            .json(&json!({"reason": "csrf"}));
        if let Some(o) = o {
            req = req.header("origin", o);
        }
        let resp = req.send().await.expect("sent");
        assert_eq!(resp.status().as_u16(), 403, "Origin {o:?}");
    }
    let resp = browser()
        .post(format!("{}{path}", app.base))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .header("origin", origin(&app))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("reason=csrf")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 415);
    let after: Vec<Value> = audit(&app, &format!("key={name}")).await;
    assert_eq!(
        after.len(),
        entries_before + 1,
        "only the page's own playback was audited"
    );
    assert!(after.iter().all(|e| e["reason"] != "csrf"));

    // A compliance session is not an admin: no hold. (Sent as the page sends
    // every change, with a JSON body: a cookie request must say it is JSON
    // unless it says it has no body.)
    let resp = browser()
        .put(format!("{}/v1/records/{id}/hold", app.base))
        .header("cookie", &cookie)
        .header("x-callproof-ui", "1")
        .header("origin", origin(&app))
        .header("x-callproof-reason", "trying")
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 403);
    // An admin session can hold, from the page.
    let admin = sign_in(&app, ADMIN_KEY).await;
    let resp = browser()
        .put(format!("{}/v1/records/{id}/hold", app.base))
        .header("cookie", &admin)
        .header("x-callproof-ui", "1")
        .header("origin", origin(&app))
        .header("x-callproof-reason", "dispute D-1 from the page")
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let holds: Vec<Value> = audit(&app, &format!("record={id}"))
        .await
        .into_iter()
        .filter(|e| e["action"] == "records.hold")
        .collect();
    assert_eq!(holds[0]["actor"]["name"], ADMIN_KEY_NAME);
    // The session does not open the agent API.
    let resp = page_post(&app, "/v1/confirmations", &admin, &billing_request()).await;
    assert_eq!(resp.status().as_u16(), 401);

    // The playback route reads a body only as JSON, from key holders too.
    let resp = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(COMPLIANCE_KEY)
        .header("content-type", "text/plain")
        .body(r#"{"reason": "typed as text"}"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 415);
}

#[tokio::test]
async fn a_signed_out_session_and_its_playback_urls_are_refused_and_the_sign_out_is_sealed_evidence(
) {
    let app = spawn_app().await;
    let (id, _) = app.recorded_call(&["press:1"]).await;
    let cookie = sign_in(&app, COMPLIANCE_KEY).await;
    let sid = payload(&cookie)["sid"].as_str().expect("sid").to_owned();
    let resp = page_post(
        &app,
        &format!("/v1/records/{id}/playback"),
        &cookie,
        &json!({"reason": "before signing out"}),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let audio_url = resp.json::<Value>().await.expect("JSON")["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let resp = page_post(
        &app,
        &format!("/v1/records/{id}/export-grant"),
        &cookie,
        &json!({"reason": "before signing out"}),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let export_url = resp.json::<Value>().await.expect("JSON")["url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert_eq!(
        browser()
            .get(&audio_url)
            .header("range", "bytes=0-9")
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16(),
        206
    );

    // Another site cannot sign the user out.
    let signout = format!("{}/ui/session/signout", app.base);
    for o in [None, Some("https://evil.example")] {
        let mut req = browser().post(&signout).header("cookie", &cookie);
        if let Some(o) = o {
            req = req.header("origin", o);
        }
        assert_eq!(req.send().await.expect("sent").status().as_u16(), 403);
    }
    assert_eq!(
        page_get(&app, "/v1/records", &cookie)
            .await
            .status()
            .as_u16(),
        200
    );

    let resp = browser()
        .post(&signout)
        .header("cookie", &cookie)
        .header("origin", origin(&app))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], "/ui/");
    let cleared = set_cookie(&resp).expect("the cookie is cleared");
    assert!(cleared.starts_with("callproof_session=;") && cleared.contains("Max-Age=0"));

    // Someone at the browser later, with the old cookie: nothing.
    for path in [
        "/v1/records".to_owned(),
        format!("/v1/records/{id}"),
        "/ui/session".to_owned(),
    ] {
        let resp = page_get(&app, &path, &cookie).await;
        assert_eq!(resp.status().as_u16(), 401, "{path}");
        assert!(
            set_cookie(&resp).is_none(),
            "no cookie re-issued for {path}"
        );
        assert!(error_of(resp).await.contains("signed out"));
    }
    let resp = browser().get(&audio_url).send().await.expect("sent");
    assert_eq!(
        resp.status().as_u16(),
        403,
        "playback URL of the ended session"
    );
    assert!(error_of(resp).await.contains("session"));
    let resp = browser().get(&export_url).send().await.expect("sent");
    assert_eq!(
        resp.status().as_u16(),
        403,
        "export URL of the ended session"
    );

    // The sign-out is a signed fact, sealed like all evidence.
    let key = callproof::store::ObjectKey::new(format!("ui/signouts/{sid}.json")).expect("key");
    let fact: Value = serde_json::from_slice(
        &app.store
            .get(&key)
            .await
            .expect("store reads")
            .expect("the sign-out fact is stored"),
    )
    .expect("JSON");
    assert_valid_against("ui-signout.v1.schema.json", &fact);
    assert_eq!(fact["sid"], sid.as_str());
    app.seal_all().await;
    let report = app.verify_all().await;
    assert_eq!(report.status, "ok", "{report:#?}");
    // A store writer who deletes it to revive the session is seen by verification.
    app.store.delete(&key).await.expect("deleted");
    let report = app.verify_all().await;
    assert_eq!(report.status, "problems");
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.object == key.as_str() && f.detail.contains("deleted")),
        "{report:#?}"
    );
}

/// A URL another instance answered, on `app`.
fn on(app: &TestApp, url: &str) -> String {
    let path = url.find("/v1/").expect("an API URL");
    format!("{}{}", app.base, &url[path..])
}

#[tokio::test]
async fn a_session_ends_when_its_key_is_removed_or_changes_role_and_lives_on_another_instance() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let app = spawn_in(tmp.path(), Options::default()).await;
    let compliance = sign_in(&app, COMPLIANCE_KEY).await;
    let admin = sign_in(&app, ADMIN_KEY).await;
    // A playback URL issued to the compliance session, an export URL to the admin one.
    let (id, _) = app.recorded_call(&["press:1"]).await;
    let resp = page_post(
        &app,
        &format!("/v1/records/{id}/playback"),
        &compliance,
        &json!({"reason": "before the key is removed"}),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let audio_url = resp.json::<Value>().await.expect("JSON")["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let resp = page_post(
        &app,
        &format!("/v1/records/{id}/export-grant"),
        &admin,
        &json!({"reason": "before the key changes role"}),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let export_url = resp.json::<Value>().await.expect("JSON")["url"]
        .as_str()
        .expect("url")
        .to_owned();
    app.stop().await;

    // Another instance with the same secret and keys accepts both, and their URLs.
    let app = spawn_in(tmp.path(), Options::default()).await;
    for c in [&compliance, &admin] {
        assert_eq!(
            page_get(&app, "/ui/session", c).await.status().as_u16(),
            200
        );
    }
    let resp = browser()
        .get(on(&app, &audio_url))
        .header("range", "bytes=0-9")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 206);
    let resp = browser()
        .get(on(&app, &export_url))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    app.stop().await;

    // The compliance key removed, the admin key now only compliance.
    let keys = format!("agent:{AGENT_KEY},compliance:{ADMIN_KEY_NAME}:{ADMIN_KEY}");
    let app = spawn_in(
        tmp.path(),
        Options {
            extra: vec![("CALLPROOF_API_KEYS", keys)],
            ..Options::default()
        },
    )
    .await;
    for c in [&compliance, &admin] {
        let resp = page_get(&app, "/v1/records", c).await;
        assert_eq!(resp.status().as_u16(), 401);
        assert!(error_of(resp).await.contains("no longer configured"));
    }
    // Nor do the URLs issued to those sessions work, long before they expire.
    for url in [&audio_url, &export_url] {
        let resp = browser()
            .get(on(&app, url))
            .header("range", "bytes=0-9")
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 403, "{url}");
        assert!(error_of(resp).await.contains("no longer configured"));
    }
    // Signing in again gives the key's new role.
    let again = sign_in(&app, ADMIN_KEY).await;
    assert_eq!(payload(&again)["role"], "compliance");
    app.stop().await;
}

#[tokio::test]
async fn sessions_end_after_their_lifetime_and_after_idle_time_and_use_keeps_them_alive() {
    let idle = spawn_with(Options {
        extra: vec![("CALLPROOF_UI_IDLE_SECS", "2".into())],
        ..Options::default()
    })
    .await;
    let first = sign_in(&idle, COMPLIANCE_KEY).await;
    // Used every half second, the re-issued cookie outlives the idle time.
    let mut current = first.clone();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let resp = page_get(&idle, "/ui/session", &current).await;
        assert_eq!(resp.status().as_u16(), 200);
        current = pair(&set_cookie(&resp).expect("re-issued"));
    }
    // The cookie as first issued, unused for 4 s, has ended.
    let resp = page_get(&idle, "/ui/session", &first).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert!(error_of(resp).await.contains("without use"));

    let short = spawn_with(Options {
        extra: vec![("CALLPROOF_UI_SESSION_SECS", "2".into())],
        ..Options::default()
    })
    .await;
    let cookie = sign_in(&short, COMPLIANCE_KEY).await;
    let resp = page_get(&short, "/v1/records", &cookie).await;
    assert_eq!(resp.status().as_u16(), 200);
    let mut current = pair(&set_cookie(&resp).expect("re-issued"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let resp = page_get(&short, "/v1/records", &current).await;
    if resp.status().as_u16() == 200 {
        current = pair(&set_cookie(&resp).expect("re-issued"));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // However active, it ends at its absolute lifetime.
    let resp = page_get(&short, "/v1/records", &current).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert!(error_of(resp).await.contains("expired"));
}

#[tokio::test]
async fn a_tampered_or_foreign_cookie_is_refused() {
    let app = spawn_app().await;
    let cookie = sign_in(&app, COMPLIANCE_KEY).await;
    let (name, value) = cookie.split_once('=').expect("pair");
    let (p, mac) = value.split_once('.').expect("payload.mac");

    // The payload made admin (or made to last longer), the MAC kept.
    let mut forged = payload(&cookie);
    forged["role"] = json!("admin");
    forged["exp"] = json!(forged["exp"].as_i64().expect("exp") + 86_400);
    let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("JSON"));
    // Signed under the token secret itself, as playback grants are.
    let grant_mac = {
        use hmac::{Hmac, Mac};
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(TOKEN_SECRET.as_bytes()).expect("key");
        m.update(p.as_bytes());
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    };
    for bad in [
        format!("{name}={forged}.{mac}"),
        format!("{name}={p}.{}", &mac[2..]),
        format!("{name}={p}.{grant_mac}"),
        format!("{name}={p}"),
        format!("{name}=garbage"),
    ] {
        let resp = page_get(&app, "/v1/records", &bad).await;
        assert_eq!(resp.status().as_u16(), 401, "{bad}");
        assert!(error_of(resp).await.contains("not valid"));
    }
    assert_eq!(
        page_get(&app, "/v1/records", &cookie)
            .await
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn the_waveform_of_a_dual_channel_call_has_both_channels_at_most_2000_peaks_and_is_audited() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let id = created["id"].as_str().expect("id").to_owned();
    app.call_with_recording(
        created["transfer_url"].as_str().expect("url"),
        &["press:1"],
        fixture("speech-8k-dual.wav"),
    )
    .await;
    app.wait_record(&id, complete).await;

    // However many peaks are asked for, the server's resolution.
    let path = format!("/v1/records/{id}/waveform?peaks=100000");
    let resp = app.get_with(&path, Some(COMPLIANCE_KEY)).await;
    assert_eq!(resp.status().as_u16(), 200);
    let w: Value = resp.json().await.expect("JSON");
    assert_valid_against("waveform.v1.schema.json", &w);
    let channels = w["channels"].as_array().expect("channels");
    assert_eq!(channels.len(), 2, "both channels of a dual-channel call");
    for c in channels {
        let peaks = c.as_array().expect("peaks");
        assert_eq!(peaks.len(), 2000);
        assert!(
            peaks.iter().any(|p| p.as_f64().expect("number") > 0.05),
            "speech is not silence"
        );
    }
    assert_eq!(w["sample_rate"], 8000);
    let want = manifest("speech-8k-dual.wav")["duration_secs"]
        .as_f64()
        .expect("duration");
    let got = w["duration_secs"].as_f64().expect("duration");
    assert!((got - want).abs() < 0.05, "{got} vs {want}");

    // Its own audit action, no reason needed; agents may not.
    let entries: Vec<Value> = audit(&app, &format!("record={id}"))
        .await
        .into_iter()
        .filter(|e| e["action"] == "records.waveform")
        .collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["reason"], Value::Null);
    assert_eq!(
        app.get_with(&path, Some(AGENT_KEY)).await.status().as_u16(),
        403
    );
    // The page reads it with its session.
    let cookie = sign_in(&app, COMPLIANCE_KEY).await;
    let resp = page_get(&app, &format!("/v1/records/{id}/waveform"), &cookie).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<Value>().await.expect("JSON"), w);
}

#[tokio::test]
async fn an_export_url_downloads_the_bundle_without_a_key_and_audits_the_reason() {
    let app = spawn_app().await;
    let (id, _) = app.recorded_call(&["press:1"]).await;
    let path = format!("/v1/records/{id}/export-grant");

    // No reason, or a form: refused, nothing audited.
    let resp = app.post_json(&path, Some(COMPLIANCE_KEY), &json!({})).await;
    assert_eq!(resp.status().as_u16(), 400);
    let resp = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(COMPLIANCE_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("reason=x")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 415);
    assert_eq!(
        app.post_json(&path, Some(AGENT_KEY), &json!({"reason": "r"}))
            .await
            .status()
            .as_u16(),
        403
    );
    let exports = |all: Vec<Value>| -> Vec<Value> {
        all.into_iter()
            .filter(|e| e["action"] == "records.export")
            .collect()
    };
    assert!(exports(audit(&app, &format!("record={id}")).await).is_empty());

    let reason = "subpoena S-42 from the regulator";
    let resp = app
        .post_json(&path, Some(COMPLIANCE_KEY), &json!({"reason": reason}))
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let answer: Value = resp.json().await.expect("JSON");
    assert_valid_against("export-url.v1.schema.json", &answer);
    let url = answer["url"].as_str().expect("url").to_owned();

    // A download with no key and no reason, as a browser makes it.
    let resp = browser().get(&url).send().await.expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let zip = resp.bytes().await.expect("zip");
    assert!(zip.starts_with(b"PK"), "a zip");
    let keyed = app
        .compliance_get(&format!("/v1/records/{id}/export"), None)
        .await;
    assert_eq!(keyed.status().as_u16(), 200);
    assert_eq!(
        keyed.bytes().await.expect("zip").len(),
        zip.len(),
        "the same bundle as the keyed export"
    );

    let entries = exports(audit(&app, &format!("record={id}")).await);
    let granted: Vec<&Value> = entries
        .iter()
        .filter(|e| e["route"] == "POST /v1/records/{id}/export-grant")
        .collect();
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0]["id"], answer["audit_id"]);
    assert_eq!(granted[0]["reason"], reason);
    let downloads: Vec<&Value> = entries
        .iter()
        .filter(|e| e["filters"]["grant"] == answer["audit_id"])
        .collect();
    assert_eq!(downloads.len(), 1, "{entries:#?}");
    assert_eq!(downloads[0]["reason"], reason);
    assert_eq!(downloads[0]["route"], "GET /v1/records/{id}/export");
    assert_eq!(
        downloads[0]["actor"]["name"],
        callproof::auth::derived_key_name(COMPLIANCE_KEY)
    );

    // The grant opens the bundle only: not the audio, not another record.
    let token = url.split_once("?t=").expect("token").1;
    let resp = browser()
        .get(format!("{}/v1/records/{id}/audio?t={token}", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 403);
    let resp = browser()
        .get(format!(
            "{}/v1/records/ffffffffffffffffffffffffffffffff/export?t={token}",
            app.base
        ))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 403);
}

async fn assert_security_headers(resp: &reqwest::Response, https: bool) {
    let h = resp.headers();
    let what = resp.url().path().to_owned();
    assert_eq!(h["content-security-policy"], CSP, "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["cache-control"], "no-store", "{what}");
    assert_eq!(h.contains_key("strict-transport-security"), https, "{what}");
}

#[tokio::test]
async fn every_page_and_api_answer_carries_the_security_headers() {
    let app = spawn_app().await;
    let c = browser();
    for (path, content_type) in [
        ("/ui/", "text/html; charset=utf-8"),
        (
            "/ui/records/0123456789abcdef0123456789abcdef",
            "text/html; charset=utf-8",
        ),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
    ] {
        let resp = c
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], content_type, "{path}");
        assert_security_headers(&resp, false).await;
    }
    let page = c
        .get(format!("{}/ui/", app.base))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    let script = c
        .get(format!("{}/ui/app.js", app.base))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    assert!(page.contains("API key"), "the sign-in field is labelled");
    assert!(
        page.contains("/ui/session") || script.contains("/ui/session"),
        "the page signs in at /ui/session"
    );
    let resp = c
        .get(format!("{}/ui", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.headers()["location"], "/ui/");
    let resp = c
        .get(format!("{}/ui/records/..%2f..%2fv1%2fkeys", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 404);
    assert_security_headers(&resp, false).await;

    // API answers, good and refused.
    let resp = app.get_with("/v1/records", Some(COMPLIANCE_KEY)).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_security_headers(&resp, false).await;
    let resp = app.get_with("/v1/records", None).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert_security_headers(&resp, false).await;
    let resp = app.get_with("/healthz", None).await;
    assert_security_headers(&resp, false).await;

    // Behind an https public URL: a __Host- cookie marked Secure, and HSTS.
    let public = "https://callproof.test";
    let tls = spawn_with(Options {
        extra: vec![("CALLPROOF_PUBLIC_URL", public.into())],
        ..Options::default()
    })
    .await;
    let resp = post_sign_in(
        &format!("{}/ui/session", tls.local),
        COMPLIANCE_KEY,
        Some(public),
        None,
    )
    .await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_security_headers(&resp, true).await;
    let cookie = set_cookie(&resp).expect("cookie");
    assert!(cookie.starts_with("__Host-callproof_session="), "{cookie}");
    assert!(cookie.contains("; Secure") && cookie.contains("; Path=/"));
    assert!(!cookie.contains("Domain"));
    let resp = c
        .get(format!("{}/ui/session", tls.local))
        .header("cookie", pair(&cookie))
        .header("x-callproof-ui", "1")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    assert_security_headers(&resp, true).await;
    // The plain name is not the session there.
    let plain = pair(&cookie).replacen("__Host-", "", 1);
    let resp = c
        .get(format!("{}/ui/session", tls.local))
        .header("cookie", plain)
        .header("x-callproof-ui", "1")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn a_sign_out_on_one_instance_is_refused_by_another_within_five_seconds() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let public = "http://callproof.test";
    let opts = Options {
        extra: vec![("CALLPROOF_PUBLIC_URL", public.into())],
        ..Options::default()
    };
    let a = spawn_in(tmp.path(), opts.clone()).await;
    let b = spawn_in(tmp.path(), opts).await;
    let resp = post_sign_in(
        &format!("{}/ui/session", a.local),
        COMPLIANCE_KEY,
        Some(public),
        None,
    )
    .await;
    assert_eq!(resp.status().as_u16(), 303);
    let cookie = pair(&set_cookie(&resp).expect("cookie"));
    let ask = |base: String, cookie: String| async move {
        browser()
            .get(format!("{base}/ui/session"))
            .header("cookie", cookie)
            .header("x-callproof-ui", "1")
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16()
    };
    // Instance b accepts a's session (and now believes it is not signed out).
    assert_eq!(ask(b.local.clone(), cookie.clone()).await, 200);

    let resp = browser()
        .post(format!("{}/ui/session/signout", a.local))
        .header("cookie", &cookie)
        .header("origin", public)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 303);
    let signed_out = std::time::Instant::now();
    assert_eq!(ask(a.local.clone(), cookie.clone()).await, 401);
    // b may go on believing its cache for up to 5 s, not longer.
    loop {
        let status = ask(b.local.clone(), cookie.clone()).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            signed_out.elapsed() < Duration::from_millis(5500),
            "instance b still accepts the session {:?} after sign-out",
            signed_out.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_sign_out_that_cannot_be_written_is_an_error_and_the_session_stays() {
    // The local store, whatever the test pass, so a file can stand in the way.
    let app = spawn_with(Options {
        extra: vec![("CALLPROOF_STORE", "fs".into())],
        ..Options::default()
    })
    .await;
    let cookie = sign_in(&app, COMPLIANCE_KEY).await;
    let sid = payload(&cookie)["sid"].as_str().expect("sid").to_owned();
    // A file where the facts' directory must go: the store cannot write one.
    let store = app.data_dir.join("store");
    assert!(store.is_dir(), "the local store");
    std::fs::create_dir_all(store.join("ui")).expect("ui directory");
    std::fs::write(store.join("ui/signouts"), b"in the way").expect("blocking file");
    let resp = browser()
        .post(format!("{}/ui/session/signout", app.base))
        .header("cookie", &cookie)
        .header("origin", origin(&app))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 503);
    assert!(set_cookie(&resp).is_none(), "the cookie is not cleared");
    assert!(error_of(resp).await.contains("still signed in"));
    let key = callproof::store::ObjectKey::new(format!("ui/signouts/{sid}.json")).expect("key");
    assert!(
        !matches!(app.store.get(&key).await, Ok(Some(_))),
        "no fact was written"
    );
}

#[tokio::test]
async fn playback_and_export_urls_neither_need_nor_refresh_the_session_cookie() {
    let app = spawn_app().await;
    let (id, _) = app.recorded_call(&["press:1"]).await;
    let cookie = sign_in(&app, COMPLIANCE_KEY).await;
    let mut urls = Vec::new();
    for (route, reason) in [("playback", "replay"), ("export-grant", "export")] {
        let resp = page_post(
            &app,
            &format!("/v1/records/{id}/{route}"),
            &cookie,
            &json!({ "reason": reason }),
        )
        .await;
        assert_eq!(resp.status().as_u16(), 200, "{route}");
        urls.push(
            resp.json::<Value>().await.expect("JSON")["url"]
                .as_str()
                .expect("url")
                .to_owned(),
        );
    }
    // As an <audio> element asks for range after range: the cookie comes
    // along, and the session's idle time must not start again.
    for _ in 0..3 {
        let resp = browser()
            .get(&urls[0])
            .header("cookie", &cookie)
            .header("sec-fetch-site", "same-origin")
            .header("range", "bytes=0-9")
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 206);
        assert!(
            set_cookie(&resp).is_none(),
            "no cookie re-issued by a range request"
        );
    }
    let resp = browser()
        .get(&urls[1])
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        set_cookie(&resp).is_none(),
        "no cookie re-issued by a download"
    );
    // The grant decides: a cookie that would be refused does not stand in the way.
    let resp = browser()
        .get(&urls[0])
        .header("cookie", "callproof_session=garbage")
        .header("range", "bytes=0-9")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 206);
    // Without a grant the cookie is the key, and its use is a use of the session.
    let resp = browser()
        .get(format!("{}/v1/records/{id}/audio", app.base))
        .header("cookie", &cookie)
        .header("x-callproof-ui", "1")
        .header("x-callproof-reason", "listening from the page")
        .header("range", "bytes=0-9")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 206);
    assert!(set_cookie(&resp).is_some());
}

/// Sends `head` (request line and headers, no blank line) to `app` as raw
/// HTTP/1.1 with no body, and answers the status.
async fn raw_status(app: &TestApp, head: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = app
        .base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connects");
    let text = format!("{head}\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(text.as_bytes()).await.expect("written");
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP answer: {answer}"))
}

#[tokio::test]
async fn a_session_request_that_changes_something_is_json_unless_it_says_it_has_no_body() {
    let app = spawn_app().await;
    let (id, _) = app.recorded_call(&["press:1"]).await;
    let cookie = sign_in(&app, COMPLIANCE_KEY).await;
    let common = format!(
        "POST /v1/records/{id}/playback HTTP/1.1\r\nCookie: {cookie}\r\nX-Callproof-UI: 1\r\nOrigin: {}\r\nX-Callproof-Reason: raw request",
        origin(&app)
    );
    // A type other than JSON, or no length at all: refused before anything is audited.
    for extra in [
        "\r\nContent-Type: text/plain",
        "\r\nContent-Type: application/x-www-form-urlencoded",
        "",
        "\r\nContent-Type: text/plain\r\nContent-Length: 0",
    ] {
        assert_eq!(
            raw_status(&app, &format!("{common}{extra}")).await,
            415,
            "{extra:?}"
        );
    }
    let name = callproof::auth::derived_key_name(COMPLIANCE_KEY);
    assert!(audit(&app, &format!("key={name}"))
        .await
        .iter()
        .all(|e| e["action"] != "records.playback"));
    // Saying it has no body, or sending JSON, it is served.
    for extra in [
        "\r\nContent-Length: 0",
        "\r\nContent-Type: application/json\r\nContent-Length: 0",
    ] {
        assert_eq!(
            raw_status(&app, &format!("{common}{extra}")).await,
            200,
            "{extra:?}"
        );
    }
}

/// Replaces an object's bytes, as a store writer can (delete, then write).
async fn overwrite(app: &TestApp, key: &str, bytes: Vec<u8>) {
    let key = callproof::store::ObjectKey::new(key).expect("key");
    app.store.delete(&key).await.expect("delete");
    app.store.create(&key, bytes.into()).await.expect("write");
}

#[tokio::test]
async fn a_waveform_is_drawn_only_from_the_audio_the_record_names() {
    let app = spawn_app().await;
    let created = app.create(&billing_request()).await;
    let id = created["id"].as_str().expect("id").to_owned();
    app.call_with_recording(
        created["transfer_url"].as_str().expect("url"),
        &["press:1"],
        fixture("speech-8k-dual.wav"),
    )
    .await;
    let record = app.wait_record(&id, complete).await;
    let archival = record["recording"]["audio"]
        .as_array()
        .expect("audio")
        .iter()
        .find(|a| a["role"] == "archival")
        .expect("an archival WAV")
        .clone();
    assert_eq!(archival["channels"], 2);
    let key = archival["key"].as_str().expect("key").to_owned();
    let path = format!("/v1/records/{id}/waveform");
    let original = app
        .store
        .get(&callproof::store::ObjectKey::new(key.as_str()).expect("key"))
        .await
        .expect("store reads")
        .expect("the WAV is stored")
        .to_vec();
    let fmt = original
        .windows(4)
        .position(|w| w == b"fmt ")
        .expect("a fmt chunk");
    let with_channels = |n: u16| {
        let mut b = original.clone();
        b[fmt + 10..fmt + 12].copy_from_slice(&n.to_le_bytes());
        b
    };
    let mut quieter = original.clone();
    let last = quieter.len() - 2;
    quieter[last] ^= 0x40;
    // A store writer changes two bytes to claim 65535 channels, claims one,
    // or changes a sample: an evidence problem, never a timeline.
    for (what, bytes, says) in [
        ("65535 channels", with_channels(65535), "65535 channels"),
        ("one channel", with_channels(1), "1 channel"),
        ("a changed sample", quieter, "differs from the record"),
    ] {
        overwrite(&app, &key, bytes).await;
        let resp = app.get_with(&path, Some(COMPLIANCE_KEY)).await;
        assert_eq!(resp.status().as_u16(), 409, "{what}");
        let error = error_of(resp).await;
        assert!(error.contains(says), "{what}: {error}");
        assert!(
            error.contains("callproof records verify"),
            "{what}: {error}"
        );
    }
    overwrite(&app, &key, original).await;
    let resp = app.get_with(&path, Some(COMPLIANCE_KEY)).await;
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn an_admin_ends_every_session_of_a_key_and_the_urls_issued_to_them() {
    let app = spawn_app().await;
    let (id, _) = app.recorded_call(&["press:1"]).await;
    let cookie = sign_in(&app, COMPLIANCE_KEY).await;
    let resp = page_post(
        &app,
        &format!("/v1/records/{id}/playback"),
        &cookie,
        &json!({"reason": "before the key's sessions end"}),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let audio_url = resp.json::<Value>().await.expect("JSON")["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let name = callproof::auth::derived_key_name(COMPLIANCE_KEY);
    let end = |key: &'static str, reason: Option<&'static str>, name: String| {
        let app = &app;
        async move {
            let mut req = app
                .client
                .post(format!("{}/v1/ui/keys/{name}/end-sessions", app.base))
                .bearer_auth(key);
            if let Some(r) = reason {
                req = req.header("x-callproof-reason", r);
            }
            req.send().await.expect("request sent")
        }
    };
    // Admins only, with a reason, for a configured key.
    assert_eq!(
        end(COMPLIANCE_KEY, Some("x"), name.clone())
            .await
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        end(ADMIN_KEY, None, name.clone()).await.status().as_u16(),
        400
    );
    assert_eq!(
        end(ADMIN_KEY, Some("x"), "no-such-key".into())
            .await
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        page_get(&app, "/v1/records", &cookie)
            .await
            .status()
            .as_u16(),
        200
    );

    let resp = end(ADMIN_KEY, Some("laptop reported stolen"), name.clone()).await;
    assert_eq!(resp.status().as_u16(), 200);
    let epoch: Value = resp.json().await.expect("JSON");
    assert_valid_against("ui-epoch.v1.schema.json", &epoch);
    assert_eq!(epoch["key_name"], name.as_str());
    assert_eq!(epoch["n"], 1);
    assert_eq!(epoch["actor"]["name"], ADMIN_KEY_NAME);
    let digest = hex::encode(callproof::auth::KeyRing::digest(COMPLIANCE_KEY));
    let stored = app
        .store
        .get(&callproof::store::ObjectKey::new(format!("ui/epochs/{digest}/0001.json")).unwrap())
        .await
        .unwrap()
        .expect("the epoch is stored");
    assert_eq!(serde_json::from_slice::<Value>(&stored).unwrap(), epoch);

    // The session and the URL issued to it end; the key itself still works.
    let resp = page_get(&app, "/v1/records", &cookie).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert!(error_of(resp).await.contains("an admin ended"));
    let resp = browser()
        .get(&audio_url)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert!(!resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        app.compliance_get("/v1/records", None)
            .await
            .status()
            .as_u16(),
        200
    );
    // A sign-in after the epoch is a new session.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = sign_in(&app, COMPLIANCE_KEY).await;
    assert_eq!(
        page_get(&app, "/v1/records", &again)
            .await
            .status()
            .as_u16(),
        200
    );

    let entries = audit(&app, "").await;
    let ended = entries
        .iter()
        .find(|e| e["action"] == "ui.end_sessions" && e["reason"] == "laptop reported stolen")
        .expect("audited with its reason");
    assert_eq!(ended["filters"]["key"], name.as_str());
    app.seal_all().await;
    let report = app.verify_all().await;
    assert!(!report.has_problems(), "{report:?}");
}
