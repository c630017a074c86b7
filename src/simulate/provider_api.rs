//! The provider REST API as the simulator serves it: Twilio's
//! `Recordings/Twilio.CURRENT` resource, pausing and resuming a call's recording.
//!
//! A call is known here from its first webhook ([`ProviderApi::place`]) to its
//! end; the spans it was paused are kept so the recording served after the
//! call is silent there, as Twilio's `PauseBehavior=silence` makes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;
use tokio::net::TcpListener;

/// A span of the recording that was paused, as offsets from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PausedSpan {
    /// When the pause took effect.
    pub from: Duration,
    /// When the recording resumed (or the call ended).
    pub to: Duration,
}

/// How a pause or resume request of a call fails, for testing a server's
/// handling of an unhelpful provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFailure {
    /// The request is answered with this HTTP status and Twilio's error JSON;
    /// the recording is not changed.
    Status(u16),
    /// The request is never answered (the server's time limit ends it); the
    /// recording is not changed.
    NoAnswer,
}

/// One request the server made about the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    /// The `Status` asked for: `paused` or `in-progress`.
    pub status: String,
    /// The `PauseBehavior` sent, if any.
    pub pause_behavior: Option<String>,
    /// The HTTP status answered (0: none, the request was left unanswered).
    pub answered: u16,
}

#[derive(Debug)]
struct CallState {
    pause_failure: Option<ApiFailure>,
    resume_failure: Option<ApiFailure>,
    /// The recording's SID and when it started.
    recording: Option<(String, Instant, OffsetDateTime)>,
    paused_since: Option<Duration>,
    spans: Vec<PausedSpan>,
    requests: Vec<ApiRequest>,
}

#[derive(Debug)]
struct Inner {
    user: String,
    password: String,
    calls: Mutex<HashMap<String, CallState>>,
}

impl Inner {
    fn with_call<R>(&self, call_sid: &str, f: impl FnOnce(&mut CallState) -> R) -> Option<R> {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.get_mut(call_sid).map(f)
    }
}

struct Running {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running provider REST API; cheap to clone, stopped when the last clone goes.
#[derive(Clone)]
pub struct ProviderApi {
    url: String,
    inner: Arc<Inner>,
    _running: Arc<Running>,
}

impl std::fmt::Debug for ProviderApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderApi")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ProviderApi {
    /// Serves the API on a free loopback port.
    pub async fn start(account_sid: &str, auth_token: &str) -> std::io::Result<ProviderApi> {
        ProviderApi::bind(([127, 0, 0, 1], 0).into(), account_sid, auth_token).await
    }

    /// Serves the API on `addr`, for requests authenticated as `account_sid`:`auth_token`.
    pub async fn bind(
        addr: std::net::SocketAddr,
        account_sid: &str,
        auth_token: &str,
    ) -> std::io::Result<ProviderApi> {
        let inner = Arc::new(Inner {
            user: account_sid.to_owned(),
            password: auth_token.to_owned(),
            calls: Mutex::new(HashMap::new()),
        });
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Calls/{call}/Recordings/{file}",
                post(update),
            )
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ProviderApi {
            url: format!("http://{addr}"),
            inner,
            _running: Arc::new(Running { task }),
        })
    }

    /// The base URL: the server's `CALLPROOF_PROVIDER_API_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Makes `call_sid` known as a call in progress, with no recording yet.
    pub fn place(
        &self,
        call_sid: &str,
        pause_failure: Option<ApiFailure>,
        resume_failure: Option<ApiFailure>,
    ) -> PlacedCall {
        let mut calls = self.inner.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.insert(
            call_sid.to_owned(),
            CallState {
                pause_failure,
                resume_failure,
                recording: None,
                paused_since: None,
                spans: Vec::new(),
                requests: Vec::new(),
            },
        );
        PlacedCall {
            inner: self.inner.clone(),
            call_sid: call_sid.to_owned(),
        }
    }
}

/// A call the API knows, until [`PlacedCall::end`].
#[derive(Debug)]
pub struct PlacedCall {
    inner: Arc<Inner>,
    call_sid: String,
}

impl PlacedCall {
    /// The call's recording started: from now it can be paused.
    pub fn recording_started(&self, recording_sid: &str, at: Instant, at_utc: OffsetDateTime) {
        self.inner.with_call(&self.call_sid, |c| {
            c.recording = Some((recording_sid.to_owned(), at, at_utc));
        });
    }

    /// The call ended at `at`: a pause still open ends there. Returns the
    /// paused spans and the requests made, and forgets the call.
    pub fn end(self, at: Instant) -> (Vec<PausedSpan>, Vec<ApiRequest>) {
        let mut calls = self.inner.calls.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut call) = calls.remove(&self.call_sid) else {
            return (Vec::new(), Vec::new());
        };
        if let (Some(from), Some((_, started, _))) = (call.paused_since.take(), &call.recording) {
            call.spans.push(PausedSpan {
                from,
                to: at.saturating_duration_since(*started),
            });
        }
        (call.spans, call.requests)
    }
}

/// Twilio's error answer.
fn error(status: StatusCode, code: u64, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({
            "code": code,
            "message": message,
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

fn authorized(inner: &Inner, headers: &HeaderMap) -> bool {
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", inner.user, inner.password));
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .is_some_and(|v| v.trim() == expected)
}

fn rfc2822(at: OffsetDateTime) -> String {
    at.format(&Rfc2822).unwrap_or_default()
}

async fn update(
    State(inner): State<Arc<Inner>>,
    Path((account, call, file)): Path<(String, String, String)>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !authorized(&inner, &headers) || account != inner.user {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    if file != "Twilio.CURRENT.json" {
        return error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        );
    }
    let wanted = form.get("Status").cloned().unwrap_or_default();
    let behavior = form.get("PauseBehavior").cloned();
    let now = Instant::now();
    let verdict = inner.with_call(&call, |c| {
        let failure = match wanted.as_str() {
            "paused" => c.pause_failure,
            "in-progress" => c.resume_failure,
            _ => None,
        };
        let (answered, body) = match (&c.recording, failure) {
            (_, Some(ApiFailure::NoAnswer)) => (0, None),
            (_, Some(ApiFailure::Status(s))) => (s, None),
            (None, None) => (404, None),
            (Some((sid, started, started_utc)), None) => {
                let offset = now.saturating_duration_since(*started);
                match wanted.as_str() {
                    "paused" if c.paused_since.is_none() => c.paused_since = Some(offset),
                    "in-progress" => {
                        if let Some(from) = c.paused_since.take() {
                            c.spans.push(PausedSpan { from, to: offset });
                        }
                    }
                    _ => {}
                }
                let updated = *started_utc + offset;
                (
                    200,
                    Some(serde_json::json!({
                        "sid": sid,
                        "account_sid": account,
                        "call_sid": call,
                        "status": wanted,
                        "start_time": rfc2822(*started_utc),
                        "date_updated": rfc2822(updated),
                    })),
                )
            }
        };
        let valid = matches!(wanted.as_str(), "paused" | "in-progress");
        let answered = if valid { answered } else { 400 };
        c.requests.push(ApiRequest {
            status: wanted.clone(),
            pause_behavior: behavior.clone(),
            answered,
        });
        (answered, body)
    });
    match verdict {
        None => error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        ),
        Some((0, _)) => {
            // Never answered: the server's time limit ends the request.
            tokio::time::sleep(Duration::from_secs(600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Some((400, _)) => error(
            StatusCode::BAD_REQUEST,
            21217,
            "Status must be paused or in-progress",
        ),
        Some((200, Some(body))) => Json(body).into_response(),
        Some((status, _)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(status, 20500, "The recording could not be updated")
        }
    }
}
