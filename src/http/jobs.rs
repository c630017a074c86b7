//! The operators' view of recording ingest: `GET /v1/jobs` lists queued and
//! parked recording jobs with their failures, reasons and leases.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::extract::{Compliance, Key};
use super::{ApiError, AppState};
use crate::jobs::job_statuses;

/// Every recording job not yet done: `queued` ones are being worked on or
/// retried each sweep; `parked` ones wait for `callproof jobs retry`.
pub async fn list(State(s): State<AppState>, _: Key<Compliance>) -> Result<Json<Value>, ApiError> {
    let jobs = job_statuses(s.store.as_ref(), None).await?;
    let parked = jobs.iter().filter(|j| j.state == "parked").count();
    Ok(Json(json!({
        "queued": jobs.len() - parked,
        "parked": parked,
        "jobs": jobs,
    })))
}
