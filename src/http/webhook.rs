//! Provider webhook checks: parse the body (400 when malformed), then verify
//! `X-Twilio-Signature` against the public URL (403 when missing or wrong).

use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::provider::signature::{self, SIGNATURE_HEADER};
use crate::provider::Params;

/// Why a webhook was refused before anything changed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body could not be read as the provider's format (400).
    #[error("malformed webhook body: {0}")]
    Malformed(String),
    /// The signature or the flow token is missing, wrong or expired (403).
    #[error("webhook refused: {0}")]
    Forbidden(String),
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let status = match self {
            WebhookError::Malformed(_) => StatusCode::BAD_REQUEST,
            WebhookError::Forbidden(_) => StatusCode::FORBIDDEN,
        };
        tracing::warn!(status = status.as_u16(), reason = %self, "webhook refused");
        (status, self.to_string()).into_response()
    }
}

/// The URL the provider signed: the public base plus the path and query it requested.
fn signed_url(state: &AppState, uri: &Uri) -> String {
    let pq = uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or_else(|| uri.path());
    format!("{}{pq}", state.public_base)
}

/// Parses and verifies a webhook, returning its parameters.
pub fn verify(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Params, WebhookError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let params = if is_json {
        json_params(body)?
    } else {
        form_params(body)?
    };
    let sig = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| WebhookError::Forbidden(format!("no {SIGNATURE_HEADER} header")))?;
    let url = signed_url(state, uri);
    let token = &state.credentials.twilio_auth_token;
    let ok = if is_json {
        signature::verify_json_body(token, &url, body, sig)
    } else {
        signature::verify_form(token, &url, &params.0, sig)
    };
    if ok {
        Ok(params)
    } else {
        Err(WebhookError::Forbidden(format!(
            "{SIGNATURE_HEADER} does not match; check that CALLPROOF_PUBLIC_URL is the URL the provider calls"
        )))
    }
}

fn form_params(body: &[u8]) -> Result<Params, WebhookError> {
    signature::parse_form(body)
        .map(Params)
        .map_err(|e| WebhookError::Malformed(e.to_string()))
}

fn json_params(body: &[u8]) -> Result<Params, WebhookError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("JSON body: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| WebhookError::Malformed("JSON body is not an object".into()))?;
    Ok(Params(
        obj.iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect(),
    ))
}

/// The flow token from the `t` query parameter, or empty.
pub fn query_token(uri: &Uri) -> String {
    uri.query()
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "t")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default()
}
