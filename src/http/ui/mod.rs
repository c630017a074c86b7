//! The replay page `/ui/`: its files compiled into the binary, sign-in and
//! sign-out, the session cookie's rules on API requests, and the security headers of every answer.
//!
//! A compliance or admin key is posted once to `POST /ui/session` and
//! exchanged for a signed session cookie ([`session`]). API requests may
//! then carry the cookie instead of a bearer key ([`authenticate`], called by
//! [`super::extract::Key`]) if they also carry `Sec-Fetch-Site: same-origin`
//! or `X-Callproof-UI: 1`, and, when they change something, `Origin` equal to
//! the public URL's origin: another site can make a browser send the cookie,
//! but not these.

pub mod session;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use time::OffsetDateTime;

use super::client::ClientAddr;
use super::playback::{Grant, GrantError};
use super::{ApiError, AppState};
use crate::auth::{Caller, KeyRing, Role};
use crate::domain::ConfirmationId;
use crate::evidence::objects::Evidence;
use session::{Session, SessionError, SessionKey, Signouts};

/// The page, its script and its style, as built into the binary.
const INDEX_HTML: &str = include_str!("../../../ui/index.html");
const APP_JS: &str = include_str!("../../../ui/app.js");
const APP_CSS: &str = include_str!("../../../ui/app.css");

/// The Content-Security-Policy of every answer: only the page's own script,
/// style and media, no inline script, no framing, and DOM sinks closed to
/// strings (Trusted Types with no policy).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// The header the page sends on every API request.
pub const UI_HEADER: &str = "x-callproof-ui";

/// Cookie name over plain http (development).
pub const COOKIE_NAME: &str = "callproof_session";
/// Cookie name over https: `__Host-` makes browsers require `Secure`,
/// `Path=/` and no `Domain`, so a sibling site cannot plant one.
pub const SECURE_COOKIE_NAME: &str = "__Host-callproof_session";

/// Sessions and the settings of the page, shared by every request.
pub struct Ui {
    key: SessionKey,
    secure: bool,
    origin: String,
    session_secs: u64,
    idle_secs: u64,
    /// Sign-out facts and the short cache of "not signed out".
    pub signouts: Signouts,
}

/// The origin (`scheme://host[:port]`) of a public URL, as a browser sends it in `Origin`.
pub fn origin_of(public_base: &str) -> String {
    match url::Url::parse(public_base) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => public_base.trim_end_matches('/').to_owned(),
    }
}

impl Ui {
    /// The page's sessions for a server reached at `public_base`.
    /// Sessions last `session_secs` at most and end after `idle_secs` unused.
    pub fn new(
        token_secret: &str,
        public_base: &str,
        session_secs: u64,
        idle_secs: u64,
        evidence: Evidence,
    ) -> Ui {
        Ui {
            key: SessionKey::derive(token_secret),
            secure: public_base.starts_with("https://"),
            origin: origin_of(public_base),
            session_secs,
            idle_secs,
            signouts: Signouts::new(evidence),
        }
    }

    /// The cookie's name: [`SECURE_COOKIE_NAME`] when the public URL is https.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure {
            SECURE_COOKIE_NAME
        } else {
            COOKIE_NAME
        }
    }

    fn cookie(&self, value: &str, clear: bool) -> HeaderValue {
        let mut text = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict",
            self.cookie_name()
        );
        if self.secure {
            text.push_str("; Secure");
        }
        if clear {
            text.push_str("; Max-Age=0");
        }
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The session cookie values a request carries (a browser may send more than one).
    fn cookies<'a>(&self, headers: &'a HeaderMap) -> Vec<&'a str> {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// 403 unless `Origin` is the public URL's origin (missing or `null` refused).
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            Some(o) if o == self.origin => Ok(()),
            _ => Err(ApiError::Refused(format!(
                "this request must come from the replay page at {}/ui/: its Origin header is missing, null or another site's",
                self.origin
            ))),
        }
    }

    /// Whether `session` is still accepted at `now`: within its lifetime and
    /// idle timeout, its key configured with the same role, not signed out.
    /// Answers who it acts as: the key's role and name as configured.
    async fn alive(
        &self,
        keys: &KeyRing,
        session: &Session,
        now: OffsetDateTime,
    ) -> Result<Caller, ApiError> {
        let ended = |e: SessionError| ApiError::SessionEnded(e.to_string());
        session.check_times(now, self.idle_secs).map_err(ended)?;
        let caller = session
            .key_digest_bytes()
            .and_then(|d| keys.by_digest(&d))
            .filter(|c| c.role == session.role)
            .ok_or(ended(SessionError::KeyRemoved))?;
        self.not_signed_out(&session.sid).await?;
        self.key_not_ended(&session.key_digest, session.iat).await?;
        Ok(caller)
    }

    /// Refuses a session of key `key_digest` signed in at `iat` (Unix
    /// seconds) when an admin ended the key's sessions at or after it.
    async fn key_not_ended(&self, key_digest: &str, iat: i64) -> Result<(), ApiError> {
        match self.signouts.key_ended_at(key_digest).await {
            Ok(Some(at)) if iat <= at => {
                Err(ApiError::SessionEnded(SessionError::KeyEnded.to_string()))
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "whether an admin ended a key's replay page sessions could not be read from the store; the request was refused");
                Err(ApiError::Unavailable(
                    "the store did not say whether this key's sessions were ended, so nothing was served: try again later; the server log says why".into(),
                ))
            }
        }
    }

    async fn not_signed_out(&self, sid: &str) -> Result<(), ApiError> {
        match self.signouts.signed_out(sid).await {
            Ok(false) => Ok(()),
            Ok(true) => Err(ApiError::SessionEnded(SessionError::SignedOut.to_string())),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "whether a replay page session was signed out could not be read from the store; the request was refused");
                Err(ApiError::Unavailable(
                    "the store did not say whether this session was signed out, so nothing was served: try again later; the server log says why".into(),
                ))
            }
        }
    }
}

/// True for methods that change something.
fn changes_state(method: &Method) -> bool {
    [Method::POST, Method::PUT, Method::DELETE, Method::PATCH].contains(method)
}

/// True unless the request says it has no body: `Content-Length: 0`, no
/// `Transfer-Encoding`, no `Content-Type`. A request without a length (HTTP/2
/// may send a body without one) or with a type must say it is JSON.
fn may_have_body(headers: &HeaderMap) -> bool {
    let said_empty = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "0");
    !said_empty
        || headers.contains_key(header::TRANSFER_ENCODING)
        || headers.contains_key(header::CONTENT_TYPE)
}

/// The session a request's cookie carries, when it has one and every rule
/// holds; `Ok(None)` when it carries no session cookie. The rules, in order:
/// `Sec-Fetch-Site: same-origin` or `X-Callproof-UI: 1` (403); for POST, PUT
/// and DELETE, `Origin` equal to the public URL's origin (403) and
/// `Content-Type: application/json` unless the request says it has no body
/// (`Content-Length: 0` and no `Content-Type`) (415); a cookie callproof signed
/// (401), within its lifetime and idle timeout (401), of a key still
/// configured with that role (401), not signed out (401; 503 when the store
/// cannot say). An accepted session's cookie is re-issued with this request
/// as its last use.
pub async fn authenticate(
    s: &AppState,
    parts: &mut Parts,
) -> Result<Option<(Caller, Session)>, ApiError> {
    let ui = &s.ui;
    let values = ui.cookies(&parts.headers);
    if values.is_empty() {
        return Ok(None);
    }
    let h = &parts.headers;
    let same_origin = h
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"same-origin");
    let from_page = h.get(UI_HEADER).is_some_and(|v| v.as_bytes() == b"1");
    if !same_origin && !from_page {
        return Err(ApiError::Refused(
            "a request with the replay page's session cookie must carry Sec-Fetch-Site: same-origin or X-Callproof-UI: 1: open the page at /ui/ and continue from there".into(),
        ));
    }
    if changes_state(&parts.method) {
        ui.check_origin(h)?;
        if may_have_body(h) && !super::extract::is_json(h) {
            return Err(ApiError::UnsupportedMediaType(
                "a request from the replay page sends its body as JSON with Content-Type: application/json".into(),
            ));
        }
    }
    let mut opened = Err(SessionError::Invalid);
    for v in values {
        opened = ui.key.open(v);
        if opened.is_ok() {
            break;
        }
    }
    let session = opened.map_err(|e| ApiError::SessionEnded(e.to_string()))?;
    let caller = ui
        .alive(&s.keys, &session, OffsetDateTime::now_utc())
        .await?;
    if let Some(refresh) = parts.extensions.get::<Refresh>() {
        refresh.put(session.clone());
    }
    Ok(Some((caller, session)))
}

/// Refuses a grant issued to a session that has ended (expired or signed
/// out) or whose key is no longer configured with the role it had when the
/// grant was issued (a grant that does not name its key included); grants
/// issued to a key pass.
pub async fn grant_session_alive(s: &AppState, grant: &Grant) -> Result<(), Response> {
    let Some(sid) = &grant.session else {
        return Ok(());
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if grant.session_expires.is_none_or(|exp| now >= exp) {
        return Err(GrantError::SessionEnded.into_response());
    }
    let configured = grant
        .session_key
        .as_deref()
        .and_then(|d| hex::decode(d).ok())
        .and_then(|d| <[u8; 32]>::try_from(d).ok())
        .and_then(|d| s.keys.by_digest(&d))
        .zip(grant.session_role)
        .is_some_and(|(caller, role)| caller.role == role);
    if !configured {
        return Err(GrantError::KeyRemoved.into_response());
    }
    // A grant issued before an admin ended its key's sessions ends with them.
    let issued = grant
        .expires
        .saturating_sub(i64::try_from(s.config.playback_url_secs).unwrap_or(i64::MAX));
    let alive = match s.ui.not_signed_out(sid).await {
        Ok(()) => match &grant.session_key {
            Some(digest) => s.ui.key_not_ended(digest, issued).await,
            None => Ok(()),
        },
        Err(e) => Err(e),
    };
    match alive {
        Ok(()) => Ok(()),
        Err(ApiError::SessionEnded(_)) => Err(GrantError::SessionEnded.into_response()),
        Err(e) => Err(e.into_response()),
    }
}

/// `POST /v1/ui/keys/{name}/end-sessions` (admin, with a reason in
/// `X-Callproof-Reason` or `{"reason"}`): ends every replay page session the
/// key named `name` signed in before now, on every instance within
/// [`session::SIGNOUT_CACHE`], by writing its next epoch as signed evidence.
/// Answers the epoch as stored.
pub async fn end_key_sessions(
    State(s): State<AppState>,
    key: super::extract::Key<super::extract::Admin>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<session::Epoch>, ApiError> {
    let body = super::playback::ReasonBody::read(&headers, &body)?;
    let access =
        super::audit::Access::new("ui.end_sessions", "POST /v1/ui/keys/{name}/end-sessions")
            .filter("key", &name)
            .reason_required()
            .body_reason(body.reason.as_deref());
    let entry = super::audit::audited(&s, &key.caller, access, &headers, client).await?;
    let Some((digest, _)) = s.keys.by_name(&name) else {
        return Err(ApiError::NotFound);
    };
    let actor = crate::evidence::audit::Actor {
        role: key.caller.role.as_str().to_owned(),
        name: key.caller.key_name.clone(),
    };
    let epoch =
        s.ui.signouts
            .end_key_sessions(
                &hex::encode(digest),
                &name,
                actor,
                entry.reason.as_deref().unwrap_or_default(),
                OffsetDateTime::now_utc(),
            )
            .await?;
    tracing::info!(key = %name, epoch = epoch.n, by = %key.caller.key_name, "every replay page session of a key ended");
    Ok(Json(epoch))
}

/// Where the session a request was accepted with is left for [`headers`] to re-issue.
#[derive(Clone, Default)]
struct Refresh(Arc<Mutex<Option<Session>>>);

impl Refresh {
    fn put(&self, session: Session) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(session);
        }
    }

    fn take(&self) -> Option<Session> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// Wraps every route: re-issues the cookie of a session a request was
/// accepted with (its idle time starts again), and sets the security headers
/// on every answer, page or API.
pub async fn headers(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let refresh = Refresh::default();
    req.extensions_mut().insert(refresh.clone());
    let mut response = next.run(req).await;
    if let Some(session) = refresh.take() {
        if response.status() != StatusCode::UNAUTHORIZED {
            let seen = Session {
                last_seen: OffsetDateTime::now_utc().unix_timestamp(),
                ..session
            };
            let cookie = s.ui.cookie(&s.ui.key.seal(&seen), false);
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if s.ui.secure {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000"),
        );
    }
    response
}

/// The page's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/records/{id}", get(record_page))
        .route("/ui/app.js", get(app_js))
        .route("/ui/app.css", get(app_css))
        .route("/ui/session", get(session_info).post(sign_in))
        .route("/ui/session/signout", post(sign_out))
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX_HTML)
}

/// `/ui/records/{id}`: the page (its script shows the record); 404 for what is not a record id.
async fn record_page(Path(id): Path<String>) -> Response {
    if id.parse::<ConfirmationId>().is_err() {
        return (StatusCode::NOT_FOUND, "not a record id").into_response();
    }
    index().await
}

async fn app_js() -> Response {
    file("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    file("text/css; charset=utf-8", APP_CSS)
}

/// `next` when it is a path on the page itself (`/ui/…`, no `..`, no
/// backslash, no other host); the page's start otherwise.
fn safe_next(next: Option<&str>) -> &str {
    let Some(next) = next else {
        return "/ui/";
    };
    let path = next.split(['?', '#']).next().unwrap_or_default();
    let ok = next.starts_with("/ui/")
        && next.len() <= 2048
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_".contains(&b))
        && !path.contains("//");
    if ok {
        next
    } else {
        "/ui/"
    }
}

/// `POST /ui/session`: a form (`application/x-www-form-urlencoded`) with the
/// API key in `key` and, optionally, the page path to go on to in `next`.
/// A compliance or admin key is answered 303 to `next` (or `/ui/`) with a new
/// session cookie; an unknown key 401; an agent key 403; a post from another
/// origin 403.
async fn sign_in(
    State(s): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.ui.check_origin(&headers)?;
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(ApiError::UnsupportedMediaType(
            "post the sign-in form as application/x-www-form-urlencoded with the API key in the field key".into(),
        ));
    }
    let (mut key, mut next) = (None, None);
    for (name, value) in form_urlencoded::parse(&body) {
        match name.as_ref() {
            "key" => key = Some(value.trim().to_owned()),
            "next" => next = Some(value.into_owned()),
            _ => {}
        }
    }
    let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
        ApiError::BadRequest("enter a compliance or admin API key in the field key".into())
    })?;
    let Some(caller) = s.keys.role_of(&key) else {
        tracing::warn!(client = ?client.0, "replay page sign-in with an unknown API key refused");
        return Err(ApiError::SessionEnded(
            "this API key is not configured: check it and sign in again".into(),
        ));
    };
    if caller.role == Role::Agent {
        tracing::warn!(key = %caller.key_name, client = ?client.0, "replay page sign-in with an agent key refused");
        return Err(ApiError::Refused(
            "agent keys cannot sign in to the replay page: sign in with a compliance or admin API key".into(),
        ));
    }
    let session = Session::new(
        &KeyRing::digest(&key),
        caller.role,
        &caller.key_name,
        OffsetDateTime::now_utc(),
        s.ui.session_secs,
    );
    tracing::info!(role = %caller.role, key = %caller.key_name, client = ?client.0, session = %&session.sid[..8], "signed in to the replay page");
    let location = safe_next(next.as_deref());
    Ok((
        StatusCode::SEE_OTHER,
        [
            (
                header::LOCATION,
                HeaderValue::from_str(location)
                    .unwrap_or_else(|_| HeaderValue::from_static("/ui/")),
            ),
            (
                header::SET_COOKIE,
                s.ui.cookie(&s.ui.key.seal(&session), false),
            ),
        ],
    )
        .into_response())
}

/// `GET /ui/session`: `{role, name, expires_at}` of the request's session
/// (with the same rules as any cookie request), or 401.
async fn session_info(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (mut parts, _) = req.into_parts();
    match authenticate(&s, &mut parts).await? {
        Some((caller, session)) => Ok(Json(json!({
            "role": caller.role,
            "name": caller.key_name,
            "expires_at": session.expires_at(),
        }))
        .into_response()),
        None => Err(ApiError::SessionEnded(
            "not signed in: sign in at /ui/ with a compliance or admin API key".into(),
        )),
    }
}

/// `POST /ui/session/signout` (from the page's origin): writes the sign-out
/// fact of the request's session, clears the cookie and answers 303 to
/// `/ui/`; 503, and the session still signed in, when the fact cannot be written.
async fn sign_out(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    s.ui.check_origin(&headers)?;
    let now = OffsetDateTime::now_utc();
    for value in s.ui.cookies(&headers) {
        let Ok(session) = s.ui.key.open(value) else {
            continue;
        };
        if session.exp <= now.unix_timestamp() {
            continue;
        }
        if let Err(e) = s.ui.signouts.sign_out(&session, now).await {
            tracing::error!(error = %format!("{e:#}"), key = %session.name, "a replay page sign-out could not be written");
            return Err(ApiError::Unavailable(
                "the sign-out could not be written, so this session is still signed in: try again; the server log says why".into(),
            ));
        }
        tracing::info!(role = %session.role, key = %session.name, session = %&session.sid[..8], "signed out of the replay page");
    }
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, HeaderValue::from_static("/ui/")),
            (header::SET_COOKIE, s.ui.cookie("", true)),
        ],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_page() {
        assert_eq!(safe_next(None), "/ui/");
        assert_eq!(
            safe_next(Some("/ui/records/0123456789abcdef0123456789abcdef")),
            "/ui/records/0123456789abcdef0123456789abcdef"
        );
        assert_eq!(
            safe_next(Some("/ui/?account=ACC-1&from=2026-11-01")),
            "/ui/?account=ACC-1&from=2026-11-01"
        );
        for bad in [
            "https://evil.example/ui/",
            "//evil.example/ui/",
            "/ui//evil.example",
            "/\\evil.example",
            "/ui/\\evil",
            "/ui/../v1/records",
            "/ui/%2e%2e/v1",
            "/v1/records",
            "/ui/\r\nSet-Cookie: x",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad:?}");
        }
    }

    #[test]
    fn the_origin_is_scheme_host_and_port_of_the_public_url() {
        assert_eq!(
            origin_of("https://callproof.example.com"),
            "https://callproof.example.com"
        );
        assert_eq!(
            origin_of("https://callproof.example.com:443/base"),
            "https://callproof.example.com"
        );
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn over_https_the_cookie_is_secure_and_host_only() {
        let (_dir, ev) = crate::evidence::objects::test_evidence();
        let ui = Ui::new("s", "https://callproof.example.com", 60, 30, ev.clone());
        let c = ui.cookie("v", false);
        assert_eq!(
            c.to_str().expect("text"),
            "__Host-callproof_session=v; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        let plain = Ui::new("s", "http://127.0.0.1:8080", 60, 30, ev);
        let c = plain.cookie("v", false);
        assert_eq!(
            c.to_str().expect("text"),
            "callproof_session=v; Path=/; HttpOnly; SameSite=Strict"
        );
        assert!(!c.to_str().expect("text").contains("Max-Age"));
        assert!(plain
            .cookie("", true)
            .to_str()
            .expect("text")
            .ends_with("; Max-Age=0"));
    }

    #[test]
    fn the_compiled_in_page_has_no_inline_script() {
        assert!(
            !INDEX_HTML.contains("<script>"),
            "inline script would be refused by the CSP"
        );
        assert!(INDEX_HTML.contains("/ui/app.js"));
    }

    #[test]
    fn the_outcome_filter_offers_every_outcome_a_record_can_have() {
        let start = APP_JS.find("const OUTCOMES = {").expect("the outcome list");
        let end = start + APP_JS[start..].find("};").expect("its end");
        let listed = &APP_JS[start..end];
        for o in crate::confirmations::Outcome::ALL {
            let entry = format!("\n    {}: '", o.as_str());
            assert_eq!(
                listed.contains(&entry),
                o.has_record(),
                "{} in the page's outcome filter",
                o.as_str()
            );
        }
    }
}
