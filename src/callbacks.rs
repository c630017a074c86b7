//! Outcome callbacks: a durable job per request with a `callback_url`, delivered
//! as a JSON event signed the Standard Webhooks way, retried on a schedule, parked at its end.
//!
//! The job is stored before the request itself, so no crash can lose it; it
//! waits (no failure counted) until the request has an outcome or expires.
//! The event is built from write-once facts only, so every attempt sends the
//! same bytes under the same `webhook-id`, and receivers deduplicate on it.
//! Each attempt checks the URL again: no internal address unless allowed, no
//! redirects, https only in production.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::confirmations::{digest_id, ConfirmationRequest, Confirmations, RepoError};
use crate::domain::{ChangeKind, ConfirmationId, ConfirmationNumber};
use crate::jobs::{jitter, Handler, JobKind, Progress, Queue};
use crate::metrics::Metrics;
use crate::netguard::{self, AllowList, Refusal};

/// Every event type a callback can carry: `confirmation.` and the outcome.
pub const EVENT_TYPES: &[&str] = &[
    "confirmation.confirmed",
    "confirmation.declined",
    "confirmation.no_answer",
    "confirmation.transferred_to_agent",
    "confirmation.abandoned",
    "confirmation.expired",
    "confirmation.locked",
    "confirmation.disputed",
];

/// The job id of a request's outcome callback.
pub fn job_id(id: &ConfirmationId) -> String {
    digest_id(&format!("callback:{id}"))
}

/// A queued outcome callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallbackJob {
    /// The request whose outcome is sent.
    pub confirmation_id: ConfirmationId,
    /// When it was queued (with the request).
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// The body of an outcome callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackEvent {
    /// Unique per event and the same on every attempt; equal to `webhook-id`.
    pub id: String,
    /// One of [`EVENT_TYPES`].
    #[serde(rename = "type")]
    pub event_type: String,
    /// The request.
    pub confirmation_id: ConfirmationId,
    /// The number the caller heard.
    pub confirmation_number: ConfirmationNumber,
    /// The account in the client's systems.
    pub account_id: String,
    /// What the change is.
    pub kind: ChangeKind,
    /// How it ended: an outcome, or `expired`.
    pub outcome: String,
    /// When it ended (for `expired`: when the request expired).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// The signing secret: `whsec_` followed by base64 of the HMAC key.
#[derive(Clone)]
pub struct CallbackSecret(Vec<u8>);

impl std::fmt::Debug for CallbackSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackSecret(<hidden>)")
    }
}

impl CallbackSecret {
    /// Parses `whsec_<base64>`; the key must be 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let b64 = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or("start it with whsec_ followed by base64")?;
        let key = BASE64
            .decode(b64)
            .map_err(|_| "the part after whsec_ is not base64")?;
        if !(24..=64).contains(&key.len()) {
            return Err("use a key of 24 to 64 bytes (32 random bytes, base64-encoded)".into());
        }
        Ok(CallbackSecret(key))
    }

    /// A new random secret, as text.
    pub fn generate() -> String {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        format!("whsec_{}", BASE64.encode(key))
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).unwrap_or_else(|_| {
            // HMAC takes keys of any length; this cannot fail.
            unreachable!("HMAC-SHA256 accepts any key length")
        });
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// Callback settings, from [`crate::config::Config`].
#[derive(Debug, Clone)]
pub struct CallbackSettings {
    /// Signs every delivery.
    pub secret: CallbackSecret,
    /// Delay before each retry; after the last, the job is parked.
    pub schedule: Vec<Duration>,
    /// Hosts that may be internal addresses.
    pub allowed: AllowList,
    /// Refuse plain http (production).
    pub https_only: bool,
    /// Time limit of one delivery.
    pub timeout: Duration,
}

/// Outcome callbacks; cheap to clone.
#[derive(Clone)]
pub struct Callbacks(Arc<Inner>);

struct Inner {
    confirmations: Confirmations,
    queue: Queue,
    http: reqwest::Client,
    settings: CallbackSettings,
    metrics: Arc<Metrics>,
}

impl Callbacks {
    /// Callbacks delivered through a client that resolves only as the settings allow.
    pub fn new(
        confirmations: Confirmations,
        queue: Queue,
        settings: CallbackSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let http = netguard::guarded_client(&settings.allowed, settings.timeout)?;
        Ok(Callbacks(Arc::new(Inner {
            confirmations,
            queue,
            http,
            settings,
            metrics,
        })))
    }

    /// Checks a `callback_url` given at creation: http(s), https in
    /// production, and not an internal address unless its host is allowed.
    pub async fn check_url(&self, text: &str) -> Result<(), String> {
        let url = Url::parse(text).map_err(|_| "use an http:// or https:// URL with a host")?;
        self.check_scheme(&url).map_err(|e| e.to_string())?;
        if self.0.settings.allowed.allows(&url) {
            return Ok(());
        }
        netguard::check_resolved(&url, &AllowList::default())
            .await
            .map_err(|e| match e {
                Refusal::Internal(_) => format!(
                    "{e}: callproof does not send callbacks inside its network; list the host in CALLPROOF_CALLBACK_ALLOWED_HOSTS if it must"
                ),
                other => other.to_string(),
            })
    }

    fn check_scheme(&self, url: &Url) -> Result<(), Refusal> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if !self.0.settings.https_only => Ok(()),
            "http" => Err(Refusal::NotHttps),
            _ => Err(Refusal::NotHttp),
        }
    }

    /// Queues the outcome callback of a request about to be stored; it waits
    /// for the outcome. Does nothing for a request without a `callback_url`.
    pub async fn enqueue(&self, request: &ConfirmationRequest) -> Result<(), RepoError> {
        if request.callback_url.is_none() {
            return Ok(());
        }
        let job = CallbackJob {
            confirmation_id: request.id.clone(),
            received_at: request.created_at,
        };
        self.0
            .queue
            .enqueue(JobKind::Callback, &job_id(&request.id), &job)
            .await?;
        Ok(())
    }

    /// The event of a request, once it has ended.
    async fn event(
        &self,
        request: &ConfirmationRequest,
        now: OffsetDateTime,
    ) -> Result<Option<CallbackEvent>, RepoError> {
        let c = &self.0.confirmations;
        let fact = match c.outcome(&request.id).await? {
            Some(o) => o,
            // Expiry is settled as a write-once outcome before it is sent, so
            // a call that claims the request meanwhile cannot end otherwise.
            None if now >= request.expires_at && c.call(&request.id).await?.is_none() => {
                c.expire(request).await?.into_inner()
            }
            None => return Ok(None),
        };
        let (outcome, at) = (fact.outcome.as_str().to_owned(), fact.at);
        let event_type = format!("confirmation.{outcome}");
        Ok(Some(CallbackEvent {
            id: format!("evt_{}", digest_id(&format!("{}:{event_type}", request.id))),
            event_type,
            confirmation_id: request.id.clone(),
            confirmation_number: request.confirmation_number.clone(),
            account_id: request.account_id.clone(),
            kind: request.kind,
            outcome,
            at,
        }))
    }

    /// Posts `body` once, signed with a fresh timestamp.
    async fn post(&self, url: &Url, event_id: &str, body: &[u8]) -> anyhow::Result<()> {
        self.check_scheme(url)?;
        // Checked again at every delivery: a URL accepted under an older,
        // wider CALLPROOF_CALLBACK_ALLOWED_HOSTS is not sent.
        netguard::check_target(url, &self.0.settings.allowed)?;
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature = self.0.settings.secret.sign(event_id, timestamp, body);
        let resp = self
            .0
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            anyhow::bail!("the receiver answered HTTP {status}; callbacks do not follow redirects, so give the final URL as callback_url")
        } else {
            anyhow::bail!("the receiver answered HTTP {status}")
        }
    }
}

#[async_trait]
impl Handler for Callbacks {
    async fn run(&self, _id: &str, body: Bytes) -> anyhow::Result<Progress> {
        let job: CallbackJob = serde_json::from_slice(&body)
            .map_err(|e| anyhow::anyhow!("a callback job does not parse: {e}"))?;
        let now = OffsetDateTime::now_utc();
        let Some(request) = self.0.confirmations.request(&job.confirmation_id).await? else {
            // The job is written just before its request; a request still
            // missing a minute later was never stored, and nothing is owed.
            if job.received_at + time::Duration::MINUTE < now {
                tracing::warn!(confirmation = %job.confirmation_id, "callback job of a request that was never stored: dropped");
                return Ok(Progress::Done);
            }
            return Ok(Progress::NotYet);
        };
        let Some(url) = request.callback_url.as_deref() else {
            return Ok(Progress::Done);
        };
        let Some(event) = self.event(&request, now).await? else {
            return Ok(Progress::NotYet);
        };
        let url = Url::parse(url).map_err(|e| anyhow::anyhow!("callback_url: {e}"))?;
        let body = serde_json::to_vec(&event)?;
        self.post(&url, &event.id, &body).await?;
        self.0.metrics.inc(
            "callproof_jobs_total",
            &[("kind", JobKind::Callback.as_str()), ("state", "delivered")],
        );
        tracing::info!(confirmation = %request.id, event = %event.id, r#type = %event.event_type, "outcome callback delivered");
        Ok(Progress::Done)
    }

    fn retry_after(&self, failures: usize) -> Option<Duration> {
        let schedule = &self.0.settings.schedule;
        failures
            .checked_sub(1)
            .and_then(|i| schedule.get(i))
            .map(|d| jitter(*d))
    }

    fn concurrency(&self) -> usize {
        8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The worked example of the Standard Webhooks specification.
        let secret = CallbackSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_must_be_whsec_base64_of_a_real_key() {
        assert!(CallbackSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(CallbackSecret::parse("whsec_not base64!").is_err());
        assert!(CallbackSecret::parse("whsec_c2hvcnQ=").is_err());
        assert!(CallbackSecret::parse(&CallbackSecret::generate()).is_ok());
    }

    #[test]
    fn every_outcome_has_an_event_type() {
        use crate::confirmations::Outcome;
        for o in Outcome::ALL {
            let t = format!("confirmation.{}", o.as_str());
            assert!(EVENT_TYPES.contains(&t.as_str()), "{t}");
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        assert_eq!(
            EVENT_TYPES.len(),
            Outcome::ALL.len(),
            "no event without an outcome"
        );
    }
}
