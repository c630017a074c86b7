//! The API's one error type: each variant picks its status and public message
//! in one `match`; causes of internal failures are logged, never sent.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::confirmations::RepoError;

/// An API request that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No key, or a key that is not configured (401).
    #[error("missing or unknown API key")]
    Unauthorized,
    /// A valid key of a role that may not do this (403).
    #[error("this API key's role may not do this")]
    Forbidden,
    /// A replay page session that is not (or no longer) accepted (401); the
    /// message says why and to sign in again.
    #[error("{0}")]
    SessionEnded(String),
    /// A request refused for where it came from or how it was sent (403),
    /// e.g. a cookie request without the page's headers; the message says what to send.
    #[error("{0}")]
    Refused(String),
    /// A body of another type than the route reads (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Nothing under that id (404).
    #[error("not found")]
    NotFound,
    /// The body is not JSON (400).
    #[error("{0}")]
    BadRequest(String),
    /// The body is JSON but some fields are wrong (422): path -> what to do.
    #[error("invalid fields")]
    Invalid(BTreeMap<String, String>),
    /// Nothing may be served because something callproof must do first
    /// failed (503), e.g. writing the audit entry; the message says what.
    #[error("{0}")]
    Unavailable(String),
    /// Something failed inside callproof (500); the cause is logged.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "missing or unknown API key: send Authorization: Bearer <key>"}),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                json!({"error": "this API key's role may not use this endpoint"}),
            ),
            ApiError::SessionEnded(msg) => (StatusCode::UNAUTHORIZED, json!({"error": msg})),
            ApiError::Refused(msg) => (StatusCode::FORBIDDEN, json!({"error": msg})),
            ApiError::UnsupportedMediaType(msg) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, json!({"error": msg}))
            }
            ApiError::NotFound => (StatusCode::NOT_FOUND, json!({"error": "not found"})),
            ApiError::BadRequest(msg) => (StatusCode::BAD_REQUEST, json!({"error": msg})),
            ApiError::Invalid(fields) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "some fields are invalid", "fields": fields}),
            ),
            ApiError::Unavailable(msg) => (StatusCode::SERVICE_UNAVAILABLE, json!({"error": msg})),
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "internal error; it has been logged"}),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}
