//! Record completion: deciding when the facts of a confirmation call for the
//! next record version, and writing it; what happens once an outcome is stored.
//!
//! Whichever of the outcome, a stored recording or the sweeper sees the facts
//! complete writes the version; two writers racing for one version lose
//! nothing, since versions are write-once and the loser re-reads.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::{build, RecordFacts, Records, RetentionPart};
use crate::config::Retention;
use crate::confirmations::{ConfirmationRequest, Confirmations, Outcome, OutcomeFact, RepoError};
use crate::domain::ConfirmationId;
use crate::evidence::objects::Evidence;
use crate::jobs::{job_statuses, JobKind, Queue};
use crate::metrics::Metrics;

/// Completion settings, from [`crate::config::Config`].
#[derive(Debug, Clone)]
pub struct CompletionSettings {
    /// How long after the outcome a missing recording makes the record incomplete.
    pub recording_wait: Duration,
    /// Days kept per kind.
    pub retention: Retention,
    /// Object Lock mode when the store enforces retention; `None` when it cannot.
    pub lock: Option<crate::store::s3::LockMode>,
}

/// Writes record versions; cheap to clone.
#[derive(Clone)]
pub struct Completion(Arc<Inner>);

struct Inner {
    confirmations: Confirmations,
    records: Records,
    queue: Queue,
    settings: CompletionSettings,
    metrics: Arc<Metrics>,
    evidence: Evidence,
}

impl Completion {
    /// Completion over the same store as `confirmations` and `records`.
    pub fn new(
        confirmations: Confirmations,
        records: Records,
        queue: Queue,
        settings: CompletionSettings,
        metrics: Arc<Metrics>,
        evidence: Evidence,
    ) -> Self {
        Completion(Arc::new(Inner {
            confirmations,
            records,
            queue,
            settings,
            metrics,
            evidence,
        }))
    }

    /// How long a missing recording is waited for.
    pub fn recording_wait(&self) -> Duration {
        self.0.settings.recording_wait
    }

    /// The retention of a request's record and audio.
    pub fn retention_of(&self, request: &ConfirmationRequest) -> RetentionPart {
        let s = &self.0.settings;
        let days = s.retention.days(request.kind);
        RetentionPart {
            days,
            retain_until: request.created_at + time::Duration::days(i64::from(days)),
            enforced_by: if s.lock.is_some() {
                "s3_object_lock"
            } else {
                "none"
            }
            .to_owned(),
            mode: s.lock.map(|m| m.as_str().to_ascii_lowercase()),
        }
    }

    /// Why a confirmation's recording is not stored yet: refused, or a job
    /// for it still running or parked.
    async fn pending_reason(&self, id: &ConfirmationId) -> Result<Option<String>, RepoError> {
        // A job for an accepted recording says more than a refused callback.
        let jobs = job_statuses(self.0.records.store().as_ref(), Some(id)).await?;
        let Some(job) = jobs.iter().find(|j| j.kind == JobKind::Recording) else {
            return Ok(self.0.records.refusals(id).await?.pop().map(|r| r.reason));
        };
        Ok(Some(match (job.state, &job.last_error) {
            ("parked", Some(err)) => format!(
                "the recording callback arrived, but storing the recording failed {} times and the job is parked until `callproof jobs retry`: {err}",
                job.failures
            ),
            (_, Some(err)) => format!("the recording callback arrived, but storing the recording has failed so far: {err}"),
            (_, None) => "the recording callback arrived, and storing the recording is still in progress".to_owned(),
        }))
    }

    /// Writes the next record version if the facts call for one: the flow has
    /// finished and a recording result is new, the call's end arrived after
    /// the newest version was written, or (`force`) the wait for the
    /// recording is over. Returns the version written.
    pub async fn complete(
        &self,
        id: &ConfirmationId,
        force: bool,
    ) -> Result<Option<u32>, RepoError> {
        let (c, records) = (&self.0.confirmations, &self.0.records);
        // A lost race with another writer is retried with the next version.
        for _ in 0..3 {
            let Some(view) = c.view(id).await? else {
                return Ok(None);
            };
            let Some(outcome) = view.outcome.clone() else {
                return Ok(None);
            };
            if outcome.outcome == Outcome::Expired {
                // No call took the request: there is no call to record.
                return Ok(None);
            }
            let results = records.results(id).await?;
            let recording = results.last();
            let latest = records.latest(id).await?;
            let already = |sid: &str| {
                latest
                    .as_ref()
                    .and_then(|l| l.recording.as_ref())
                    .is_some_and(|r| r.recording_sid == sid)
            };
            // The call's end reported after a version was written (the
            // provider's callbacks come in any order) is news of its own.
            let ended_at = c.ended_at(id).await?;
            let end_is_new = ended_at.is_some()
                && latest
                    .as_ref()
                    .and_then(|l| l.call.as_ref())
                    .is_some_and(|call| call.ended_at.is_none());
            match (recording, &latest) {
                (None, Some(_)) if !end_is_new => return Ok(None),
                (None, None) if !force => return Ok(None),
                (Some(rec), Some(_)) if already(&rec.recording_sid) && !end_is_new => {
                    return Ok(None)
                }
                _ => {}
            }
            let version = latest.as_ref().map_or(1, |l| l.version + 1);
            let pending = match recording {
                None => self.pending_reason(id).await?,
                Some(_) => None,
            };
            let retention = self.retention_of(&view.request);
            let facts = RecordFacts {
                view: &view,
                outcome: &outcome,
                ended_at,
                recording,
                waited_secs: self.0.settings.recording_wait.as_secs(),
                pending: pending.as_deref(),
                retention: &retention,
                signing_key: &self.0.evidence.signer().public().fingerprint(),
            };
            let rec = build(&facts, version, OffsetDateTime::now_utc());
            let enforce = self.0.settings.lock.map(|_| retention.retain_until);
            if records.write(&rec, enforce, &self.0.evidence).await? {
                tracing::info!(confirmation = %id, version, status = ?rec.status, "record written");
                self.legal_hold_if_held(id).await;
                return Ok(Some(version));
            }
        }
        Ok(None)
    }

    /// Where the bucket has Object Lock and the record is on hold, a version
    /// written now gets the legal hold too (with its signature and audio). A
    /// hold fact this key cannot check counts as held: locking is the safe side.
    async fn legal_hold_if_held(&self, id: &ConfirmationId) {
        if self.0.settings.lock.is_none() {
            return;
        }
        let store = self.0.records.store().as_ref();
        let keys = [self.0.evidence.signer().public().clone()];
        let held = match crate::evidence::hold::read_holds(store, &keys, id.as_str()).await {
            Ok(h) => h.held(),
            Err(e) => {
                tracing::error!(confirmation = %id, error = %e, "cannot read the record's holds; its new version gets no legal hold until the hold is applied again (PUT /v1/records/{{id}}/hold)");
                return;
            }
        };
        if held {
            if let Err(e) = crate::evidence::hold::apply_legal_hold(store, id, true).await {
                tracing::error!(confirmation = %id, error = %e, "the record is on hold but its new version could not get the S3 legal hold; apply it again with PUT /v1/records/{{id}}/hold");
            }
        }
    }

    /// Called once an outcome is stored: counts it, sends its callback, and
    /// completes the record if the recording is already in. Each also happens
    /// without this call (the sweep), so a crash here loses nothing.
    pub fn outcome_settled(&self, request: &ConfirmationRequest, fact: &OutcomeFact) {
        self.0.metrics.inc(
            "callproof_outcomes_total",
            &[("outcome", fact.outcome.as_str())],
        );
        if request.callback_url.is_some() {
            self.0
                .queue
                .dispatch(JobKind::Callback, &crate::callbacks::job_id(&request.id));
        }
        let this = self.clone();
        let id = request.id.clone();
        tokio::spawn(async move {
            if let Err(e) = this.complete(&id, false).await {
                tracing::error!(confirmation = %id, error = %e, "completing the record failed; the sweeper tries again");
            }
        });
    }
}
