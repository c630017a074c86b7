//! Evidence routes: the public keys and the seal head anyone with a key may
//! keep, and the verification of one record (compliance or admin).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::audit::{audited, Access};
use super::client::ClientAddr;
use super::extract::{AnyRole, Compliance, Key};
use super::{ApiError, AppState};
use crate::domain::ConfirmationId;
use crate::evidence::seal;
use crate::evidence::verify::{self, Scope};

/// `GET /v1/keys` (any key): every public key callproof's evidence may carry
/// (the signing key, the keys configuration trusts, and keys linked to them by
/// rotation statements in the seal chain), with fingerprints and the seals
/// each is in force for. Trust comes from comparing fingerprints with the ones
/// the operator publishes, not from this answer.
pub async fn keys(State(s): State<AppState>, _: Key<AnyRole>) -> Result<Json<Value>, ApiError> {
    let own = s.evidence.signer().public().fingerprint();
    let ranges = verify::key_ranges(s.store.as_ref(), &s.trust).await?;
    let mut keys: Vec<Value> = ranges
        .ranges()
        .iter()
        .map(|r| {
            let fp = r.key.fingerprint();
            json!({
                "fingerprint": fp,
                "public_key_pem": r.key.pem(),
                "signs_new_records": fp == own,
                "from_seal": r.from,
                "until_seal": r.until,
            })
        })
        .collect();
    keys.sort_by_key(|k| !k["signs_new_records"].as_bool().unwrap_or(false));
    Ok(Json(json!({ "keys": keys })))
}

/// `GET /v1/seals/head` (any key): the newest seal's number and SHA-256, for
/// an outside party to keep and later pass to `records verify --expect-head`.
pub async fn seals_head(
    State(s): State<AppState>,
    _: Key<AnyRole>,
) -> Result<Json<seal::Head>, ApiError> {
    Ok(Json(seal::head(s.store.as_ref()).await?))
}

/// `GET /v1/records/{id}/verify` (compliance or admin): the verification
/// report of one record; `status` is `ok` or `problems`.
pub async fn verify_record(
    State(s): State<AppState>,
    Key { caller, .. }: Key<Compliance>,
    client: ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<verify::Report>, ApiError> {
    let id: ConfirmationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let access = Access::new("records.verify", "GET /v1/records/{id}/verify").record(id.as_str());
    audited(&s, &caller, access, &headers, client).await?;
    let noop = |_: u64, _: u64| {};
    let report = verify::verify(
        s.store.as_ref(),
        &s.trust,
        &Scope::Record(id.to_string()),
        None,
        s.config.seal_grace(),
        &noop,
    )
    .await?;
    if report.record_state == Some("not_found") && !report.has_problems() {
        return Err(ApiError::NotFound);
    }
    tracing::info!(key = %caller.key_name, record = %id, status = report.status, "record verified");
    Ok(Json(report))
}
