//! `GET /v1/records/{id}/export` (compliance): the evidence bundle of a
//! record's newest version as one zip, given a reason in `X-Callproof-Reason`;
//! and `POST /v1/records/{id}/export-grant`, which answers a short-lived URL of
//! it for a browser, which can send neither key nor reason on a download.
//!
//! The zip is built into a scratch file before the answer starts (so a
//! problem found on the way is an error status, never a cut zip) and then
//! streamed; its build is not bound by the request timeout, only by
//! [`BUILD_LIMIT`].

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio_util::io::ReaderStream;

use super::audit::{audited, Access};
use super::client::ClientAddr;
use super::extract::{Compliance, Key, KeyUnlessGrant};
use super::playback::{self, Grant, GrantKind};
use super::{ApiError, AppState};
use crate::auth::{Caller, Role};
use crate::domain::ConfirmationId;
use crate::evidence::audit::{entry_key, AuditEntry};
use crate::evidence::bundle::{self, BundleError, Sources};
use crate::evidence::objects::read_signed;

/// Longest time building one bundle may take (hours of audio from S3 take minutes).
pub const BUILD_LIMIT: Duration = Duration::from_secs(30 * 60);

/// `?t=`: an export grant from `POST /v1/records/{id}/export-grant`.
#[derive(Debug, Default, Deserialize)]
pub struct ExportQuery {
    t: Option<String>,
}

/// The JSON body of `POST /v1/records/{id}/export-grant`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    reason: Option<String>,
}

/// Route of the grant's audit entry, which the download's entry names.
const GRANT_ROUTE: &str = "POST /v1/records/{id}/export-grant";

/// `POST /v1/records/{id}/export-grant` (compliance): writes a
/// `records.export` audit entry with the reason (`{"reason": "..."}` as
/// `application/json`, or `X-Callproof-Reason`) and answers `{"url",
/// "expires_at", "audit_id"}`: the export route with a grant that needs no key
/// and no reason until `CALLPROOF_PLAYBACK_URL_SECS` have passed.
pub async fn grant(
    State(s): State<AppState>,
    key: Key<Compliance>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: GrantBody = if body.iter().all(u8::is_ascii_whitespace) {
        GrantBody::default()
    } else {
        playback::json_body(&headers, &body)?
    };
    let id: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let access = Access::new("records.export", GRANT_ROUTE)
        .record(id.as_str())
        .reason_required()
        .body_reason(body.reason.as_deref());
    let entry = audited(&s, &key.caller, access, &headers, client).await?;
    let version = *s
        .records
        .versions(&id)
        .await?
        .last()
        .ok_or(ApiError::NotFound)?;
    let grant = Grant {
        record_id: id.to_string(),
        version,
        original: false,
        audit_id: entry.id,
        expires: 0,
        kind: GrantKind::Export,
        session: None,
        session_expires: None,
        session_key: None,
        session_role: None,
    };
    Ok(Json(playback::issue(&s, &key, grant)))
}

/// Who asked for an export grant and why, from its signed audit entry.
async fn granted_by(s: &AppState, grant: &Grant) -> Result<(Caller, String), ApiError> {
    let unreadable = || {
        tracing::error!(audit = %grant.audit_id, record = %grant.record_id, "the audit entry of an export URL is missing, unsigned or not an export grant; nothing was served");
        ApiError::Unavailable(
            "the audit entry of this export URL cannot be read: ask for a new URL with POST /v1/records/{id}/export-grant".into(),
        )
    };
    let key = entry_key(&grant.audit_id).ok_or_else(unreadable)?;
    let (bytes, sig) = read_signed(s.store.as_ref(), &key)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or_else(unreadable)?;
    let ours = sig.is_some_and(|sig| s.evidence.signer().public().verifies(&bytes, &sig));
    let entry: AuditEntry = serde_json::from_slice(&bytes).map_err(|_| unreadable())?;
    let role = Role::ALL
        .into_iter()
        .find(|r| r.as_str() == entry.actor.role);
    match (ours, role, entry.reason) {
        (true, Some(role), Some(reason))
            if entry.action == "records.export"
                && entry.route == GRANT_ROUTE
                && entry.record_id.as_deref() == Some(grant.record_id.as_str()) =>
        {
            Ok((
                Caller {
                    role,
                    key_name: entry.actor.name,
                },
                reason,
            ))
        }
        _ => Err(unreadable()),
    }
}

/// `GET /v1/records/{id}/export` (compliance, `X-Callproof-Reason`): the
/// bundle of the newest version. With `?t=` from an export grant it needs
/// neither key nor reason: it is audited as `records.export` under the
/// grant's caller and reason, naming the grant's entry in `filters.grant`.
pub async fn export(
    State(s): State<AppState>,
    key: KeyUnlessGrant<Compliance>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let (caller, entry) = if let Some(token) = &q.t {
        let grant = match playback::verify(
            &s.credentials.token_secret,
            token,
            &id,
            GrantKind::Export,
            OffsetDateTime::now_utc(),
        ) {
            Ok(g) => g,
            Err(e) => return Ok(e.into_response()),
        };
        if let Err(refused) = super::ui::grant_session_alive(&s, &grant).await {
            return Ok(refused);
        }
        let (caller, reason) = granted_by(&s, &grant).await?;
        let access = Access::new("records.export", "GET /v1/records/{id}/export")
            .record(&grant.record_id)
            .reason_required()
            .body_reason(Some(&reason))
            .filter("grant", &grant.audit_id);
        // The grant's reason, not one a header of this request might give.
        let entry = audited(&s, &caller, access, &HeaderMap::new(), client).await?;
        (caller, entry)
    } else {
        let caller = key.key()?.caller;
        let parsed: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
        let access = Access::new("records.export", "GET /v1/records/{id}/export")
            .record(parsed.as_str())
            .reason_required();
        let entry = audited(&s, &caller, access, &headers, client).await?;
        (caller, entry)
    };
    let id: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let public = s.evidence.signer().public().clone();
    let sources = Sources {
        store: &s.store,
        own: &public,
        trust: &s.trust,
    };
    let scratch = s.config.data_dir.join("work").join("exports");
    let built = tokio::time::timeout(BUILD_LIMIT, bundle::build(&sources, &id, &scratch)).await;
    let bundle = match built {
        Ok(Ok(b)) => b,
        Ok(Err(BundleError::NotFound)) => return Err(ApiError::NotFound),
        Ok(Err(BundleError::Evidence(why))) => {
            tracing::error!(record = %id, problem = %why, "a record was not exported: its stored evidence does not check out");
            return Ok((StatusCode::CONFLICT, Json(json!({ "error": why }))).into_response());
        }
        Ok(Err(BundleError::Internal(e))) => return Err(ApiError::Internal(e)),
        Err(_) => {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "building the bundle of {id} took longer than {} s",
                BUILD_LIMIT.as_secs()
            )))
        }
    };
    tracing::info!(role = %caller.role, key = %caller.key_name, record = %id, version = bundle.version, seal = ?bundle.seal, bytes = bundle.size, audit = %entry.id, "record exported");
    let file = tokio::fs::File::from_std(bundle.file);
    Response::builder()
        .header(header::CONTENT_TYPE, "application/zip")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{id}.zip\""),
        )
        .header(header::CONTENT_LENGTH, bundle.size)
        .body(Body::from_stream(ReaderStream::with_capacity(
            file,
            64 * 1024,
        )))
        .map_err(|e| ApiError::Internal(e.into()))
}
