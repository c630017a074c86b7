//! The sweeper: every `sweep_interval` it finishes what webhooks and crashes
//! left half done, so no call is left without an outcome, a record or its jobs.
//!
//! One pass: flows whose last question expired unanswered end `abandoned`;
//! records due (an outcome without a first record) are written once their
//! recording is in or the wait for it is over; markers whose fact never landed
//! are cleared; every queued job is tried again.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::confirmations::{Confirmations, Outcome, OutcomeFact, RepoError, Written};
use crate::jobs::Queue;
use crate::record::complete::Completion;
use crate::record::Records;

/// Sweeper settings, from [`crate::config::Config`].
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// How often the sweeper runs.
    pub interval: Duration,
    /// How long an unanswered question keeps a flow open (its token's life).
    pub flow_step_ttl: Duration,
    /// Extra time for an answer verified just before its token expired.
    pub flow_grace: Duration,
}

/// The sweeper; cheap to clone.
#[derive(Clone)]
pub struct Sweeper(Arc<Inner>);

struct Inner {
    confirmations: Confirmations,
    records: Records,
    completion: Completion,
    queue: Queue,
    settings: SweepSettings,
}

impl Sweeper {
    /// A sweeper over the server's facts, records and jobs.
    pub fn new(
        confirmations: Confirmations,
        records: Records,
        completion: Completion,
        queue: Queue,
        settings: SweepSettings,
    ) -> Self {
        Sweeper(Arc::new(Inner {
            confirmations,
            records,
            completion,
            queue,
            settings,
        }))
    }

    /// Runs a pass every interval, for as long as the process runs.
    pub fn start(&self) {
        let sweeper = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(sweeper.0.settings.interval);
            loop {
                tick.tick().await;
                if let Err(e) = sweeper.sweep(OffsetDateTime::now_utc()).await {
                    tracing::error!(error = %e, "sweep failed; it runs again next interval");
                }
            }
        });
    }

    /// One pass of the sweeper at `now`.
    pub async fn sweep(&self, now: OffsetDateTime) -> Result<(), RepoError> {
        self.silent_flows(now).await?;
        self.records_due(now).await?;
        self.0.queue.sweep().await
    }

    /// Ends flows whose last question can no longer be answered.
    async fn silent_flows(&self, now: OffsetDateTime) -> Result<(), RepoError> {
        let c = &self.0.confirmations;
        let s = &self.0.settings;
        let open_for = time::Duration::try_from(s.flow_step_ttl + s.flow_grace)
            .unwrap_or(time::Duration::HOUR);
        for id in c.open_flows().await? {
            if c.outcome(&id).await?.is_some() {
                c.close_flow(&id).await?;
                continue;
            }
            let Some(view) = c.view(&id).await? else {
                // The marker of a request that was never stored.
                c.close_flow(&id).await?;
                continue;
            };
            // A flow opened by a claim that did not land (a crash between the
            // marker and the claim) counts from the request's expiry.
            let last = view
                .events
                .iter()
                .map(|e| e.at)
                .chain(view.call.as_ref().map(|c| c.started_at))
                .max();
            let silent_since = match last {
                Some(t) => t,
                None if view.request.expires_at <= now => view.request.expires_at,
                None => continue,
            };
            if silent_since + open_for > now {
                continue;
            }
            if view.call.is_none() {
                // No call ever held it: nothing to end; the request expires as requested.
                c.close_flow(&id).await?;
                continue;
            }
            // No answer token for this flow is valid any more: nobody can answer.
            let fact = OutcomeFact {
                outcome: Outcome::Abandoned,
                call_sid: view.call.as_ref().map(|c| c.call_sid.clone()),
                at: now,
            };
            if let Written::New(f) = c.set_outcome(&id, fact).await? {
                tracing::info!(confirmation = %id, "flow went silent past its last question: abandoned");
                self.0.completion.outcome_settled(&view.request, &f);
            }
        }
        Ok(())
    }

    /// Writes first records that are due; clears markers whose outcome never landed.
    async fn records_due(&self, now: OffsetDateTime) -> Result<(), RepoError> {
        let c = &self.0.confirmations;
        let wait = time::Duration::try_from(self.0.completion.recording_wait())
            .unwrap_or(time::Duration::HOUR);
        // Due markers are listed before open flows: a flow's marker is made
        // before any outcome of it and removed only after its outcome, so a
        // due marker whose outcome is missing and whose flow is not open
        // announced an outcome that will never land.
        let due = c.records_due().await?;
        let open: std::collections::HashSet<_> = c.open_flows().await?.into_iter().collect();
        for id in due {
            if self.0.records.latest(&id).await?.is_some() {
                c.record_written(&id).await?;
                continue;
            }
            let Some(outcome) = c.outcome(&id).await? else {
                if !open.contains(&id) {
                    // The outcome this marker announced never landed and no
                    // flow can bring one: nothing is due.
                    tracing::info!(confirmation = %id, "record-due marker without an outcome or an open flow: cleared");
                    c.record_written(&id).await?;
                }
                continue;
            };
            // A recording may be stored already (its completion was lost to a crash).
            let written = self.0.completion.complete(&id, false).await?.is_some();
            if written || outcome.at + wait <= now {
                if !written {
                    self.0.completion.complete(&id, true).await?;
                }
                c.record_written(&id).await?;
            }
        }
        Ok(())
    }
}
