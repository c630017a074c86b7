//! Recording ingest: a recording callback becomes a durable recording job
//! (write-once, keyed by RecordingSid) before it is answered; the job archives the audio.
//!
//! [`Ingest::accept`] refuses recordings from hosts that are not allowed and
//! more than `max_per_call` recordings of one call; [`Ingest`] is the
//! [`Handler`] of recording jobs: it archives the recording (see `archive`),
//! stores its result and completes the record.

mod archive;
pub mod fetch;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::confirmations::{
    checked_key, create_json, digest_id, read_json, Confirmations, RepoError,
};
use crate::domain::ConfirmationId;
use crate::jobs::{Handler, JobKind, Progress, Queue};
use crate::metrics::Metrics;
use crate::netguard::Refusal;
use crate::provider::{RecordingEvent, RecordingFormat};
use crate::record::complete::Completion;
use crate::record::repo::RefusedRecording;
use crate::record::Records;
use crate::store::ObjectStore;
use fetch::Fetcher;

/// Ingest settings, from [`crate::config::Config`].
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Format asked of the provider.
    pub format: RecordingFormat,
    /// Archival sample rate; `None` keeps the source's.
    pub sample_rate: Option<u32>,
    /// Recordings ingested at once.
    pub concurrency: usize,
    /// Failed attempts after which a job is parked.
    pub park_after: u32,
    /// Recordings accepted per call at most.
    pub max_per_call: u32,
    /// Scratch directory for downloads and transcodes.
    pub work_dir: PathBuf,
    /// Object Lock mode when the store enforces retention; `None` when it cannot.
    pub lock: Option<crate::store::s3::LockMode>,
}

/// A recording waiting to be ingested.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordingJob {
    /// The confirmation the recording belongs to.
    pub confirmation_id: ConfirmationId,
    /// The provider's callback, as received.
    pub event: RecordingEvent,
    /// When the callback arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// What became of a recording callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// A new job was queued.
    Queued,
    /// The recording was already queued or stored.
    Duplicate,
    /// Refused: nothing will be fetched; the reason is kept for the record.
    Refused {
        /// `host` (not on the media allow list), `shape` (not this account's
        /// recording URL) or `count` (too many for the call).
        cause: &'static str,
        /// Why, as the record says it.
        reason: String,
    },
}

/// Refusal reasons kept per confirmation at most.
const MAX_REFUSALS_KEPT: usize = 8;

/// One accepted recording of a call: slot `n` of `max_per_call`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RecordingSlot {
    recording: String,
}

/// Recording ingest; cheap to clone.
#[derive(Clone)]
pub struct Ingest(Arc<Inner>);

struct Inner {
    store: Arc<dyn ObjectStore>,
    confirmations: Confirmations,
    records: Records,
    completion: Completion,
    queue: Queue,
    fetch: Fetcher,
    settings: IngestSettings,
    metrics: Arc<Metrics>,
}

impl Ingest {
    /// The ingest of recordings; it works once the queue is started with it.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        confirmations: Confirmations,
        completion: Completion,
        queue: Queue,
        fetch: Fetcher,
        settings: IngestSettings,
        metrics: Arc<Metrics>,
    ) -> Ingest {
        Ingest(Arc::new(Inner {
            records: Records::new(store.clone()),
            store,
            confirmations,
            completion,
            queue,
            fetch,
            settings,
            metrics,
        }))
    }

    /// Scratch files left by a stopped process belong to no job in flight.
    pub fn clear_scratch(&self) {
        let _ = std::fs::remove_dir_all(&self.0.settings.work_dir);
    }

    fn count(&self, state: &str) {
        self.0.metrics.inc(
            "callproof_jobs_total",
            &[("kind", JobKind::Recording.as_str()), ("state", state)],
        );
    }

    /// Keeps why a recording of `id` was refused, once per recording.
    async fn refuse(
        &self,
        id: &ConfirmationId,
        event: &RecordingEvent,
        cause: &'static str,
        reason: String,
        now: OffsetDateTime,
    ) -> Result<Accepted, RepoError> {
        // A few reasons are enough for the record; a flood of refused
        // callbacks for one call adds nothing to the store.
        if self.0.records.refusals(id).await?.len() < MAX_REFUSALS_KEPT {
            let refused = RefusedRecording {
                reason: reason.clone(),
                at: now,
            };
            self.0
                .records
                .refuse(id, &event.recording_sid, &refused)
                .await?;
        }
        self.0
            .metrics
            .inc("callproof_recordings_refused_total", &[("reason", cause)]);
        Ok(Accepted::Refused { cause, reason })
    }

    /// Takes a recording slot of the call for this recording: the one it
    /// already has, or the next free one; `None` when every slot is taken.
    async fn slot(&self, id: &ConfirmationId, digest: &str) -> Result<Option<u32>, RepoError> {
        let store = self.0.store.as_ref();
        let prefix = format!("confirmations/{id}/recordings/");
        // Racing callbacks of one call retry on the slot another one took.
        for _ in 0..=self.0.settings.max_per_call {
            let taken = store.list(&prefix).await?;
            for (n, k) in taken.iter().enumerate() {
                if read_json::<RecordingSlot>(store, k)
                    .await?
                    .is_some_and(|s| s.recording == digest)
                {
                    return Ok(Some(n as u32 + 1));
                }
            }
            let next = taken.len() as u32 + 1;
            if next > self.0.settings.max_per_call {
                return Ok(None);
            }
            let k = checked_key(format!("{prefix}{next:04}.json"))?;
            let slot = RecordingSlot {
                recording: digest.to_owned(),
            };
            if create_json(store, &k, &slot).await? {
                return Ok(Some(next));
            }
        }
        Ok(None)
    }

    /// Checks a recording callback, then persists its job (once per
    /// RecordingSid) and queues it. The job is stored before the callback is
    /// answered, so an accepted recording is never lost.
    pub async fn accept(
        &self,
        id: &ConfirmationId,
        event: RecordingEvent,
        now: OffsetDateTime,
    ) -> Result<Accepted, RepoError> {
        if let Err(e) = self.0.fetch.media_url(&event, self.0.settings.format) {
            let host = reqwest::Url::parse(&event.recording_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "(none)".to_owned());
            let cause = match e {
                Refusal::Shape(_) => "shape",
                _ => "host",
            };
            tracing::warn!(confirmation = %id, host = %host, reason = %e, "recording refused: its URL may not be fetched (CALLPROOF_MEDIA_HOSTS); nothing was fetched");
            return self
                .refuse(
                    id,
                    &event,
                    cause,
                    format!("recording refused: {e} ({host})"),
                    now,
                )
                .await;
        }
        let digest = digest_id(&event.recording_sid);
        if self
            .0
            .records
            .result(id, &event.recording_sid)
            .await?
            .is_some()
        {
            self.count("duplicate");
            return Ok(Accepted::Duplicate);
        }
        if self.slot(id, &digest).await?.is_none() {
            let max = self.0.settings.max_per_call;
            tracing::warn!(confirmation = %id, max, "recording refused: the call already has CALLPROOF_MAX_RECORDINGS_PER_CALL recordings");
            return self
                .refuse(
                    id,
                    &event,
                    "count",
                    format!("recording refused: more than {max} recordings for one call"),
                    now,
                )
                .await;
        }
        let job = RecordingJob {
            confirmation_id: id.clone(),
            event,
            received_at: now,
        };
        if self
            .0
            .queue
            .enqueue(JobKind::Recording, &digest, &job)
            .await?
        {
            self.count("accepted");
            Ok(Accepted::Queued)
        } else {
            self.count("duplicate");
            Ok(Accepted::Duplicate)
        }
    }
}

#[async_trait]
impl Handler for Ingest {
    async fn run(&self, _id: &str, body: Bytes) -> anyhow::Result<Progress> {
        let job: RecordingJob = serde_json::from_slice(&body)
            .map_err(|e| anyhow::anyhow!("a recording job does not parse: {e}"))?;
        let id = &job.confirmation_id;
        if self
            .0
            .records
            .result(id, &job.event.recording_sid)
            .await?
            .is_none()
        {
            if job.event.status != "completed" {
                tracing::warn!(confirmation = %id, status = %job.event.status, "recording callback without a completed recording");
            }
            let result = self.archive(&job).await?;
            self.0.records.write_result(id, &result).await?;
            self.count("stored");
            tracing::info!(confirmation = %id, decoded = result.decode.ok, "recording stored");
        }
        // The job goes only once the record has been attempted, so a crash in
        // between leaves the job to run again, never a stored but unrecorded recording.
        self.0.completion.complete(id, false).await?;
        Ok(Progress::Done)
    }

    fn retry_after(&self, failures: usize) -> Option<std::time::Duration> {
        // Retried at every sweep until parked.
        (failures < self.0.settings.park_after as usize).then_some(std::time::Duration::ZERO)
    }

    fn concurrency(&self) -> usize {
        self.0.settings.concurrency
    }
}
