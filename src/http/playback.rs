//! Playback URLs: `POST /v1/records/{id}/playback` audits one replay with its
//! reason and answers a short-lived signed URL of the audio route, for players that send no key.
//!
//! A browser's `<audio>` element can send neither an API key nor a reason
//! header, and asks for many ranges as it plays and seeks. The URL carries
//! a grant, HMAC-signed under a key derived from the token secret, that
//! names the record, its version, which audio, the audit entry and the
//! expiry; the audio route serves any range of exactly that audio until then.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::audit::{audited, Access};
use super::client::ClientAddr;
use super::extract::{Compliance, Key};
use super::{ApiError, AppState};
use crate::domain::ConfirmationId;
use crate::record::AudioRole;

/// Domain label of playback grants, so their MACs mean nothing elsewhere.
const CONTEXT: &[u8] = b"callproof/playback-url/v1.";

/// What a playback URL allows: one audio object of one record version, until `expires`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The record.
    #[serde(rename = "r")]
    pub record_id: String,
    /// The record version whose audio it is.
    #[serde(rename = "v")]
    pub version: u32,
    /// The provider's original bytes rather than the archival WAV.
    #[serde(rename = "o")]
    pub original: bool,
    /// The audit entry of the playback.
    #[serde(rename = "a")]
    pub audit_id: String,
    /// Expiry, Unix seconds.
    #[serde(rename = "e")]
    pub expires: i64,
}

impl Grant {
    /// Which audio object it names.
    pub fn role(&self) -> AudioRole {
        if self.original {
            AudioRole::Original
        } else {
            AudioRole::Archival
        }
    }
}

/// Why a playback URL is refused; every case answers 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Not a grant, altered, or signed with another secret.
    #[error(
        "this playback URL is not valid: ask for a new one with POST /v1/records/{{id}}/playback"
    )]
    Invalid,
    /// Past its expiry.
    #[error(
        "this playback URL has expired: ask for a new one with POST /v1/records/{{id}}/playback"
    )]
    Expired,
}

impl IntoResponse for GrantError {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            Json(json!({"error": self.to_string()})),
        )
            .into_response()
    }
}

fn mac(secret: &str, payload: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(CONTEXT);
    mac.update(payload.as_bytes());
    mac
}

/// Encodes and signs a grant under `secret`: `<base64url JSON>.<base64url MAC>`.
pub fn sign(secret: &str, grant: &Grant) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(grant).unwrap_or_default());
    let tag = mac(secret, &payload).finalize().into_bytes();
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Checks a grant's MAC, that it is for `record_id`, and that it has not
/// expired at `now`.
pub fn verify(
    secret: &str,
    text: &str,
    record_id: &str,
    now: OffsetDateTime,
) -> Result<Grant, GrantError> {
    let (payload, tag) = text.split_once('.').ok_or(GrantError::Invalid)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| GrantError::Invalid)?;
    mac(secret, payload)
        .verify_slice(&tag)
        .map_err(|_| GrantError::Invalid)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| GrantError::Invalid)?;
    let grant: Grant = serde_json::from_slice(&json).map_err(|_| GrantError::Invalid)?;
    if grant.record_id != record_id {
        return Err(GrantError::Invalid);
    }
    if now.unix_timestamp() >= grant.expires {
        return Err(GrantError::Expired);
    }
    Ok(grant)
}

/// `version=N` and `original=true`, as on the audio route.
#[derive(Debug, Default, Deserialize)]
pub struct PlaybackQuery {
    version: Option<u32>,
    original: Option<bool>,
}

/// The optional JSON body: the reason, for clients that cannot set headers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaybackBody {
    reason: Option<String>,
}

/// `POST /v1/records/{id}/playback` (compliance): writes one
/// `records.playback` audit entry with the reason (`X-Callproof-Reason`, or
/// `{"reason": "..."}` as the body) and answers `{"url", "expires_at",
/// "audit_id"}`: the audio route with a grant that needs no key and no reason.
pub async fn create(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Compliance>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PlaybackQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: PlaybackBody = if body.iter().all(u8::is_ascii_whitespace) {
        PlaybackBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!(
                r#"the body is not JSON like {{"reason": "..."}}: {e}"#
            ))
        })?
    };
    let id: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let id = id.to_string();
    let original = q.original.unwrap_or(false);
    let version = q.version.map(|v| v.to_string());
    let mut access = Access::new("records.playback", "POST /v1/records/{id}/playback")
        .record(&id)
        .reason_required()
        .body_reason(body.reason.as_deref());
    if let Some(v) = &version {
        access = access.filter("version", v);
    }
    if original {
        access = access.filter("original", "true");
    }
    let entry = audited(&s, &caller, access, &headers, client).await?;
    let record = super::records::load(&s, &id, q.version).await?;
    let grant = Grant {
        record_id: id.clone(),
        version: record.version,
        original,
        audit_id: entry.id.clone(),
        expires: 0,
    };
    record
        .recording
        .as_ref()
        .and_then(|rec| rec.audio.iter().find(|a| a.role == grant.role()))
        .ok_or(ApiError::NotFound)?;
    let expires_at = OffsetDateTime::now_utc()
        + time::Duration::seconds(i64::try_from(s.config.playback_url_secs).unwrap_or(i64::MAX));
    let grant = Grant {
        expires: expires_at.unix_timestamp(),
        ..grant
    };
    let token = sign(&s.credentials.token_secret, &grant);
    Ok(Json(json!({
        "url": format!("{}/v1/records/{id}/audio?t={token}", s.public_base),
        "expires_at": expires_at.replace_nanosecond(0).unwrap_or(expires_at).format(&Rfc3339).unwrap_or_default(),
        "audit_id": entry.id,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires: i64) -> Grant {
        Grant {
            record_id: "0123456789abcdef0123456789abcdef".into(),
            version: 2,
            original: false,
            audit_id: "01796083000000000000-0a1b2c3d".into(),
            expires,
        }
    }

    #[test]
    fn a_grant_verifies_until_it_expires_and_only_for_its_record() {
        let now = OffsetDateTime::now_utc();
        let g = grant(now.unix_timestamp() + 60);
        let t = sign("secret", &g);
        assert_eq!(verify("secret", &t, &g.record_id, now), Ok(g.clone()));
        assert_eq!(
            verify(
                "secret",
                &t,
                &g.record_id,
                now + time::Duration::seconds(61)
            ),
            Err(GrantError::Expired)
        );
        assert_eq!(
            verify("secret", &t, "ffffffffffffffffffffffffffffffff", now),
            Err(GrantError::Invalid)
        );
        assert_eq!(
            verify("another", &t, &g.record_id, now),
            Err(GrantError::Invalid)
        );
    }

    #[test]
    fn an_altered_grant_is_invalid() {
        let now = OffsetDateTime::now_utc();
        let g = grant(now.unix_timestamp() + 60);
        let t = sign("secret", &g);
        let (payload, tag) = t.split_once('.').expect("two parts");
        // The same grant made original, with the old MAC.
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Grant {
                original: true,
                ..g.clone()
            })
            .expect("json"),
        );
        for bad in [
            format!("{forged}.{tag}"),
            format!("{payload}.{}", &tag[1..]),
            payload.to_owned(),
            String::new(),
        ] {
            assert_eq!(
                verify("secret", &bad, &g.record_id, now),
                Err(GrantError::Invalid),
                "{bad}"
            );
        }
    }
}
