//! The HTTP surface: the router, the shared state and the handlers for the
//! agent API (`/v1/confirmations`), the provider webhooks (`/voice/*`), health and status;
//! the replay page `/ui/` is in [`ui`].

mod api;
pub mod audit;
pub mod client;
mod error;
mod evidence;
mod export;
pub mod extract;
mod hold;
mod inbound;
mod jobs;
mod playback;
mod records;
pub mod ui;
mod voice;
pub(crate) mod waveform;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::KeyRing;
use crate::callbacks::Callbacks;
use crate::config::Config;
use crate::confirmations::Confirmations;
use crate::credentials::Credentials;
use crate::flow::consent::Classifier;
use crate::flow::prompts::Prompts;
use crate::flow::token::TokenSigner;
use crate::flow::{ANSWER_PATH, RECORDING_PATH, START_PATH, STATUS_PATH};
use crate::ingest::Ingest;
use crate::jobs::Queue;
use crate::record::complete::Completion;
use crate::record::Records;
use crate::store::check::StoreReport;
use crate::sweeper::Sweeper;

pub use error::ApiError;
use extract::{Admin, Key};

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

/// The handles behind [`AppState`].
pub struct Shared {
    /// Settings.
    pub config: Config,
    /// Resolved secrets; the plain API keys are not among them (see `keys`).
    pub credentials: Credentials,
    /// API keys, hashed, with their roles and names.
    pub keys: KeyRing,
    /// Requests and call facts.
    pub confirmations: Confirmations,
    /// What inbound callers hear before a request is theirs.
    pub inbound: crate::flow::inbound::InboundPrompts,
    /// Identity checks: secret MACs, attempt slots, inbound lookups.
    pub identity: crate::identity::store::IdentityStore,
    /// Prompt templates.
    pub prompts: Prompts,
    /// What the store was found to guarantee at start-up.
    pub store_report: StoreReport,
    /// Counters and latencies for `/metrics`.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Speech answer classifier.
    pub classifier: Classifier,
    /// Flow token signer.
    pub signer: TokenSigner,
    /// Public base URL, no trailing slash.
    pub public_base: String,
    /// Writes evidence objects, signed by the signing key.
    pub evidence: crate::evidence::objects::Evidence,
    /// Seals evidence every `seal_secs`.
    pub sealer: crate::evidence::seal::Sealer,
    /// The keys verification trusts by configuration.
    pub trust: crate::evidence::trust::Trust,
    /// The search index and what keeps it in step with the store.
    pub indexer: std::sync::Arc<crate::index::follow::Indexer>,
    /// Waveforms drawn at once ([`waveform::CONCURRENT`] permits).
    pub waveforms: tokio::sync::Semaphore,
    /// The store every fact, record and job lives in.
    pub store: std::sync::Arc<dyn crate::store::ObjectStore>,
    /// Recording callbacks become recording jobs.
    pub ingest: Ingest,
    /// Outcome callbacks: queued with each request, sent when it ends.
    pub callbacks: Callbacks,
    /// Record versions, written as facts complete.
    pub completion: Completion,
    /// Records and recording results.
    pub records: Records,
    /// The durable job queue.
    pub queue: Queue,
    /// Finishes what crashes and silent callers leave half done.
    pub sweeper: Sweeper,
    /// Replay page sessions and sign-outs.
    pub ui: ui::Ui,
    /// Pauses and resumes call recordings through the provider's REST API.
    pub recording_control: crate::provider::api::RecordingControl,
    /// The last store probe that failed, for `GET /v1/status`.
    pub last_probe_failure: std::sync::Mutex<Option<ProbeFailure>>,
}

/// A store probe that failed: when, and what the store said.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeFailure {
    /// When the probe ran.
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    /// The error, as the store reported it.
    pub error: String,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The router with every route and the body-size and time limits.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    let voice = Router::new()
        .route(START_PATH, post(voice::start))
        .route(ANSWER_PATH, post(voice::answer))
        .route(STATUS_PATH, post(voice::status))
        .route(RECORDING_PATH, post(voice::recording))
        .route(crate::flow::inbound::INCOMING_PATH, post(inbound::incoming))
        .route(crate::flow::inbound::INBOUND_PATH, post(inbound::step))
        .route(
            crate::flow::inbound::INBOUND_RECORDING_PATH,
            post(inbound::recording),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_webhooks,
        ));
    Router::new()
        .merge(voice)
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/status", get(status))
        .route("/v1/confirmations", post(api::create_confirmation))
        .route("/v1/confirmations/{id}", get(api::get_confirmation))
        .route("/v1/jobs", get(jobs::list))
        .route("/v1/identity/signals", get(inbound::signals))
        .route("/v1/keys", get(evidence::keys))
        .route("/v1/seals/head", get(evidence::seals_head))
        .route("/v1/records/{id}/verify", get(evidence::verify_record))
        .route("/v1/records", get(records::list))
        .route("/v1/records/search", post(records::search_post))
        .route(
            "/v1/ui/keys/{name}/end-sessions",
            post(ui::end_key_sessions),
        )
        .route("/v1/records/{id}", get(records::show))
        .route("/v1/records/{id}/versions", get(records::versions))
        .route("/v1/records/{id}/audio", get(records::audio))
        .route("/v1/records/{id}/playback", post(playback::create))
        .route("/v1/records/{id}/export-grant", post(export::grant))
        .route("/v1/audit", get(audit::list))
        .route(
            "/v1/records/{id}/hold",
            get(hold::show).put(hold::hold).delete(hold::release),
        )
        .merge(ui::routes())
        .layer(DefaultBodyLimit::max(limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        // Added after the timeout: a bundle is built whole before its first
        // byte is sent, and a waveform reads the whole recording, which for
        // long audio takes longer (see export::BUILD_LIMIT, waveform::COMPUTE_LIMIT).
        .route("/v1/records/{id}/export", get(export::export))
        .route("/v1/records/{id}/waveform", get(waveform::waveform))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ui::headers,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Counts every provider webhook by route and status.
async fn count_webhooks(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req.uri().path().to_owned();
    let response = next.run(req).await;
    s.metrics.inc(
        "callproof_webhooks_total",
        &[("route", &route), ("status", response.status().as_str())],
    );
    response
}

/// Prometheus metrics, text exposition format.
async fn metrics(
    State(s): State<AppState>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Asks the store for a listing now; on failure notes it for `GET /v1/status`.
async fn probe_store(s: &AppState) -> Result<(), ProbeFailure> {
    let probe = tokio::time::timeout(Duration::from_secs(3), s.store.list("probe/ready/")).await;
    let error = match probe {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 3 s".to_owned(),
    };
    let failure = ProbeFailure {
        at: time::OffsetDateTime::now_utc(),
        error,
    };
    tracing::warn!(error = %failure.error, "store probe failed: not ready");
    if let Ok(mut last) = s.last_probe_failure.lock() {
        *last = Some(failure.clone());
    }
    Err(failure)
}

/// Ready when the store answers now. Unauthenticated, so it says only
/// `ready` or `not ready`: the cause goes to the log and to `GET /v1/status`.
async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match probe_store(&s).await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "not ready"})),
        ),
    }
}

/// `GET /v1/status` (admin): readiness with its cause, the start-up store
/// check, and the last store probe that failed.
async fn status(
    State(s): State<AppState>,
    key: Key<Admin>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = key.caller;
    let now = probe_store(&s).await;
    let last = s
        .last_probe_failure
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    tracing::info!(key = %caller.key_name, "status read");
    let index = match s.indexer.usable().await {
        Ok(state) => serde_json::json!({
            "backend": s.indexer.index().describe(),
            "generation": state.generation,
            "last_seal": state.last_seal.seal,
            "problem": null,
        }),
        Err(e) => serde_json::json!({
            "backend": s.indexer.index().describe(),
            "generation": null,
            "last_seal": null,
            "problem": e.to_string(),
        }),
    };
    Ok(Json(serde_json::json!({
        "index": index,
        "status": if now.is_ok() { "ready" } else { "not ready" },
        "error": now.err().map(|f| f.error),
        "store": s.store_report,
        "write_once": s.store_report.write_once(),
        "last_probe_failure": last,
        "seal_alarm": s.sealer.alarm(),
    })))
}
