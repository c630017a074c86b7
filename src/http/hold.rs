//! Legal hold routes: `PUT` and `DELETE /v1/records/{id}/hold` (admin, with a
//! reason) write a hold or release fact; `GET` (compliance) answers the hold state.
//!
//! Where the store enforces Object Lock, a hold also sets the S3 legal hold
//! on the record's versions, signatures and audio before its fact is
//! written, and a release clears it after; repeating either applies it again.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use bytes::Bytes;
use serde_json::Value;
use time::OffsetDateTime;

use super::audit::{audited, Access};
use super::client::ClientAddr;
use super::extract::{Admin, Compliance, Key};
use super::playback::ReasonBody;
use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::domain::ConfirmationId;
use crate::evidence::audit::Actor;
use crate::evidence::hold::{apply_legal_hold, read_holds, set_hold, HoldState};
use crate::evidence::objects::read_signed;
use crate::evidence::tombstone::tombstone_key;
use crate::evidence::verify::trusted_keys;

/// The id of a record callproof knows (a request or a record version is
/// stored, and it was not purged); 404 otherwise.
async fn known(s: &AppState, id: &str) -> Result<ConfirmationId, ApiError> {
    let id: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
    // Only a tombstone signed by a trusted key means purged: an unsigned one
    // put into the store must not keep an admin from holding the record.
    let purged = match read_signed(s.store.as_ref(), &tombstone_key(id.as_str())?)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
    {
        None => false,
        Some((bytes, sig)) => {
            let keys = trusted_keys(s.store.as_ref(), &s.trust).await?;
            let signed = sig.is_some_and(|sig| keys.iter().any(|k| k.verifies(&bytes, &sig)));
            if !signed {
                tracing::error!(record = %id, "a tombstone without a valid signature is stored for this record: it was not written by callproof; the record is treated as not purged");
            }
            signed
        }
    };
    let request = s.confirmations.request(&id).await?.is_some();
    let record = !s.records.versions(&id).await?.is_empty();
    if purged || !(request || record) {
        return Err(ApiError::NotFound);
    }
    Ok(id)
}

/// Sets or clears the Object Lock legal hold of the record's objects where
/// the store check found Object Lock; returns how many objects.
async fn legal_hold(s: &AppState, id: &ConfirmationId, on: bool) -> Result<usize, ApiError> {
    if !s.store_report.object_lock.is_yes() {
        return Ok(0);
    }
    apply_legal_hold(s.store.as_ref(), id, on)
        .await
        .map_err(|e| ApiError::Internal(e.into()))
}

fn actor(caller: &Caller) -> Actor {
    Actor {
        role: caller.role.as_str().to_owned(),
        name: caller.key_name.clone(),
    }
}

async fn change(
    s: &AppState,
    caller: &Caller,
    id: &str,
    reason: &str,
    state: HoldState,
) -> Result<Json<Value>, ApiError> {
    let id = known(s, id).await?;
    // The lock goes on before the hold fact and comes off after the release
    // fact, so a crash in between leaves the record protected, never exposed.
    let mut objects = 0;
    if state == HoldState::Held {
        objects = legal_hold(s, &id, true).await?;
    }
    let keys = trusted_keys(s.store.as_ref(), &s.trust).await?;
    let (history, wrote) = set_hold(
        &s.evidence,
        &keys,
        id.as_str(),
        state,
        &actor(caller),
        reason,
        OffsetDateTime::now_utc(),
    )
    .await?;
    if state == HoldState::Released && !history.held() {
        objects = legal_hold(s, &id, false).await?;
    }
    tracing::info!(role = %caller.role, key = %caller.key_name, record = %id, state = state.as_str(), wrote, legal_holds = objects, "record hold changed");
    Ok(Json(history.answer(id.as_str())))
}

/// `PUT /v1/records/{id}/hold` (admin, `X-Callproof-Reason` or `{"reason"}`
/// as a JSON body): holds the record.
pub async fn hold(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Admin>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = ReasonBody::read(&headers, &body)?;
    let reason = audited_change(
        &s,
        &caller,
        &id,
        ("records.hold", "PUT"),
        (&headers, body.reason.as_deref()),
        client,
    )
    .await?;
    change(&s, &caller, &id, &reason, HoldState::Held).await
}

/// Audits a hold or release before anything is written; answers the reason.
async fn audited_change(
    s: &AppState,
    caller: &Caller,
    id: &str,
    (action, method): (&str, &str),
    (headers, body_reason): (&HeaderMap, Option<&str>),
    client: ClientAddr,
) -> Result<String, ApiError> {
    let id: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let route = format!("{method} /v1/records/{{id}}/hold");
    let access = Access::new(action, &route)
        .record(id.as_str())
        .reason_required()
        .body_reason(body_reason);
    let entry = audited(s, caller, access, headers, client).await?;
    Ok(entry.reason.unwrap_or_default())
}

/// `DELETE /v1/records/{id}/hold` (admin, `X-Callproof-Reason`): releases it.
pub async fn release(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Admin>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = ReasonBody::read(&headers, &body)?;
    let reason = audited_change(
        &s,
        &caller,
        &id,
        ("records.release", "DELETE"),
        (&headers, body.reason.as_deref()),
        client,
    )
    .await?;
    change(&s, &caller, &id, &reason, HoldState::Released).await
}

/// `GET /v1/records/{id}/hold` (compliance or admin): the hold state and every fact.
pub async fn show(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Compliance>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let parsed: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let access = Access::new("records.read", "GET /v1/records/{id}/hold").record(parsed.as_str());
    audited(&s, &caller, access, &headers, client).await?;
    let id = known(&s, &id).await?;
    let keys = trusted_keys(s.store.as_ref(), &s.trust).await?;
    let history = read_holds(s.store.as_ref(), &keys, id.as_str()).await?;
    tracing::info!(role = %caller.role, key = %caller.key_name, record = %id, "record hold read");
    Ok(Json(history.answer(id.as_str())))
}
