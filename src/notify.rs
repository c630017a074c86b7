//! Outcome callbacks: when a request ends, its outcome is POSTed as JSON to the
//! request's `callback_url`, retried with backoff, in the background.

use std::time::Duration;

use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::confirmations::{ConfirmationRequest, OutcomeFact, Status};

/// Sends outcome callbacks.
#[derive(Clone)]
pub struct Notifier {
    client: reqwest::Client,
    attempts: u32,
    first_backoff: Duration,
}

impl Notifier {
    /// A notifier that tries each callback `attempts` times.
    pub fn new(attempts: u32) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Notifier {
            client,
            attempts,
            first_backoff: Duration::from_millis(500),
        }
    }

    /// Posts the outcome of `request` in the background, if it has a callback URL.
    pub fn outcome(&self, request: &ConfirmationRequest, fact: &OutcomeFact) {
        let Some(url) = request.callback_url.clone() else {
            return;
        };
        let body = json!({
            "id": request.id,
            "confirmation_number": request.confirmation_number,
            "account_id": request.account_id,
            "kind": request.kind,
            "status": Status::from(fact.outcome),
            "at": fact.at.format(&Rfc3339).unwrap_or_default(),
        });
        let this = self.clone();
        let id = request.id.clone();
        tokio::spawn(async move {
            let mut backoff = this.first_backoff;
            for attempt in 1..=this.attempts {
                match this.client.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        tracing::info!(confirmation = %id, attempt, "outcome callback delivered");
                        return;
                    }
                    Ok(r) => {
                        tracing::warn!(confirmation = %id, attempt, status = r.status().as_u16(), "outcome callback refused")
                    }
                    Err(e) => {
                        tracing::warn!(confirmation = %id, attempt, error = %e, "outcome callback failed")
                    }
                }
                if attempt < this.attempts {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
            tracing::error!(confirmation = %id, attempts = this.attempts, "outcome callback given up; the outcome stays readable at GET /v1/confirmations/{{id}}");
        });
    }
}
