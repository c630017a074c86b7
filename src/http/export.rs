//! `GET /v1/records/{id}/export` (compliance): the evidence bundle of a
//! record's newest version as one zip, given a reason in `X-Callproof-Reason`.
//!
//! The zip is built into a scratch file before the answer starts (so a
//! problem found on the way is an error status, never a cut zip) and then
//! streamed; its build is not bound by the request timeout, only by
//! [`BUILD_LIMIT`].

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio_util::io::ReaderStream;

use super::audit::{audited, Access};
use super::client::ClientAddr;
use super::extract::{Compliance, Key};
use super::{ApiError, AppState};
use crate::domain::ConfirmationId;
use crate::evidence::bundle::{self, BundleError, Sources};

/// Longest time building one bundle may take (hours of audio from S3 take minutes).
pub const BUILD_LIMIT: Duration = Duration::from_secs(30 * 60);

/// `GET /v1/records/{id}/export` (compliance): the bundle of the newest version.
pub async fn export(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Compliance>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let access = Access::new("records.export", "GET /v1/records/{id}/export")
        .record(id.as_str())
        .reason_required();
    let entry = audited(&s, &caller, access, &headers, client).await?;
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
