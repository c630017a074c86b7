//! Playback URLs: `POST /v1/records/{id}/playback` audits one replay with its
//! reason and answers a short-lived signed URL of the audio route, for players that send no key;
//! and the signed grant behind them, which export URLs share.
//!
//! A browser's `<audio>` element can send neither an API key nor a reason
//! header, and asks for many ranges as it plays and seeks. The URL carries
//! a grant, HMAC-signed under a key derived from the token secret, that
//! names the record, its version, which audio, the audit entry and the
//! expiry; the audio route serves any range of exactly that audio until then.
//! A grant issued to a replay page session also names the session and its
//! key, and works only while the session is alive and the key configured with its role.

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
use crate::auth::Role;
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
    /// What it serves: audio (the default, and every grant issued before
    /// there were others) or the evidence bundle.
    #[serde(rename = "k", default, skip_serializing_if = "GrantKind::is_audio")]
    pub kind: GrantKind,
    /// The replay page session it was issued to, which must still be alive
    /// when the URL is used; `None` for a grant issued to an API key.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// That session's end, Unix seconds.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub session_expires: Option<i64>,
    /// Hex SHA-256 of the API key that session signed in with, which must
    /// still be configured, with [`Grant::session_role`], when the URL is used.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// That key's role when the grant was issued.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub session_role: Option<Role>,
}

/// What a grant lets its URL serve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantKind {
    /// The record's audio, any range (`GET /v1/records/{id}/audio?t=`).
    #[default]
    Audio,
    /// The evidence bundle (`GET /v1/records/{id}/export?t=`).
    Export,
}

impl GrantKind {
    fn is_audio(&self) -> bool {
        *self == GrantKind::Audio
    }
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
        "this URL is not valid: ask for a new one with POST /v1/records/{{id}}/playback (audio) or POST /v1/records/{{id}}/export-grant (the evidence bundle)"
    )]
    Invalid,
    /// Past its expiry.
    #[error(
        "this URL has expired: ask for a new one with POST /v1/records/{{id}}/playback (audio) or POST /v1/records/{{id}}/export-grant (the evidence bundle)"
    )]
    Expired,
    /// Issued to a replay page session that has ended since.
    #[error("the replay page session this URL was issued to has ended: sign in again at /ui/")]
    SessionEnded,
    /// Issued to a replay page session whose API key has since been removed
    /// from configuration or changed role.
    #[error("the API key of the replay page session this URL was issued to is no longer configured with its role: sign in again at /ui/")]
    KeyRemoved,
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

/// Checks a grant's MAC, that it is a `kind` grant for `record_id`, and that
/// it has not expired at `now`. Whether its session is alive is the caller's
/// check ([`super::ui::grant_session_alive`]).
pub fn verify(
    secret: &str,
    text: &str,
    record_id: &str,
    kind: GrantKind,
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
    if grant.record_id != record_id || grant.kind != kind {
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

/// The optional JSON body: the reason, for clients that cannot set headers
/// (a browser cannot put text other than ASCII in one).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReasonBody {
    pub(super) reason: Option<String>,
}

impl ReasonBody {
    /// An empty body, or `{"reason": …}` sent as JSON.
    pub(super) fn read(headers: &HeaderMap, body: &[u8]) -> Result<ReasonBody, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            Ok(ReasonBody::default())
        } else {
            json_body(headers, body)
        }
    }
}

/// `POST /v1/records/{id}/playback` (compliance): writes one
/// `records.playback` audit entry with the reason (`X-Callproof-Reason`, or
/// `{"reason": "..."}` as a body sent as `Content-Type: application/json`)
/// and answers `{"url", "expires_at", "audit_id"}`: the audio route with a
/// grant that needs no key and no reason.
pub async fn create(
    State(s): State<AppState>,
    key: Key<Compliance>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PlaybackQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = ReasonBody::read(&headers, &body)?;
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
    let entry = audited(&s, &key.caller, access, &headers, client).await?;
    let record = super::records::load(&s, &id, q.version).await?;
    let grant = Grant {
        record_id: id.clone(),
        version: record.version,
        original,
        audit_id: entry.id.clone(),
        expires: 0,
        kind: GrantKind::Audio,
        session: None,
        session_expires: None,
        session_key: None,
        session_role: None,
    };
    record
        .recording
        .as_ref()
        .and_then(|rec| rec.audio.iter().find(|a| a.role == grant.role()))
        .ok_or(ApiError::NotFound)?;
    Ok(Json(issue(&s, &key, grant)))
}

/// A JSON body of type `T`, sent as `Content-Type: application/json` (415
/// otherwise, so a form another site posts is never read as one).
pub(super) fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    if !super::extract::is_json(headers) {
        return Err(ApiError::UnsupportedMediaType(
            "send the body as JSON with Content-Type: application/json".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            r#"the body is not JSON like {{"reason": "..."}}: {e}"#
        ))
    })
}

/// Signs `grant` with the expiry `playback_url_secs` from now, bound to the
/// caller's session if it is one, and answers `{"url", "expires_at",
/// "audit_id"}` for the route its kind serves.
pub(super) fn issue<R: super::extract::NeedsRole>(
    s: &AppState,
    key: &Key<R>,
    grant: Grant,
) -> Value {
    let expires_at = OffsetDateTime::now_utc()
        + time::Duration::seconds(i64::try_from(s.config.playback_url_secs).unwrap_or(i64::MAX));
    let grant = Grant {
        expires: expires_at.unix_timestamp(),
        session: key.session.as_ref().map(|x| x.sid.clone()),
        session_expires: key.session.as_ref().map(|x| x.exp),
        session_key: key.session.as_ref().map(|x| x.key_digest.clone()),
        session_role: key.session.as_ref().map(|x| x.role),
        ..grant
    };
    let token = sign(&s.credentials.token_secret, &grant);
    let route = match grant.kind {
        GrantKind::Audio => "audio",
        GrantKind::Export => "export",
    };
    json!({
        "url": format!("{}/v1/records/{}/{route}?t={token}", s.public_base, grant.record_id),
        "expires_at": expires_at.replace_nanosecond(0).unwrap_or(expires_at).format(&Rfc3339).unwrap_or_default(),
        "audit_id": grant.audit_id,
    })
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
            kind: GrantKind::Audio,
            session: None,
            session_expires: None,
            session_key: None,
            session_role: None,
        }
    }

    #[test]
    fn a_grant_verifies_until_it_expires_and_only_for_its_record() {
        let now = OffsetDateTime::now_utc();
        let g = grant(now.unix_timestamp() + 60);
        let t = sign("secret", &g);
        assert_eq!(
            verify("secret", &t, &g.record_id, GrantKind::Audio, now),
            Ok(g.clone())
        );
        assert_eq!(
            verify(
                "secret",
                &t,
                &g.record_id,
                GrantKind::Audio,
                now + time::Duration::seconds(61)
            ),
            Err(GrantError::Expired)
        );
        assert_eq!(
            verify(
                "secret",
                &t,
                "ffffffffffffffffffffffffffffffff",
                GrantKind::Audio,
                now
            ),
            Err(GrantError::Invalid)
        );
        assert_eq!(
            verify("another", &t, &g.record_id, GrantKind::Audio, now),
            Err(GrantError::Invalid)
        );
    }

    #[test]
    fn an_audio_grant_is_no_export_grant_and_back() {
        let now = OffsetDateTime::now_utc();
        let audio = grant(now.unix_timestamp() + 60);
        let export = Grant {
            kind: GrantKind::Export,
            session: Some("0123456789abcdef0123456789abcdef".into()),
            session_expires: Some(now.unix_timestamp() + 600),
            ..audio.clone()
        };
        let (a, x) = (sign("secret", &audio), sign("secret", &export));
        assert_eq!(
            verify("secret", &a, &audio.record_id, GrantKind::Export, now),
            Err(GrantError::Invalid)
        );
        assert_eq!(
            verify("secret", &x, &audio.record_id, GrantKind::Audio, now),
            Err(GrantError::Invalid)
        );
        assert_eq!(
            verify("secret", &x, &audio.record_id, GrantKind::Export, now),
            Ok(export)
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
                verify("secret", &bad, &g.record_id, GrantKind::Audio, now),
                Err(GrantError::Invalid),
                "{bad}"
            );
        }
    }
}
