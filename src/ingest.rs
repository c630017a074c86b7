//! Recording ingest and record completion. A recording callback becomes a
//! durable job (write-once, keyed by RecordingSid) before it is answered; a
//! worker downloads, transcodes off the runtime, stores the audio and a result,
//! and completes the record. A sweeper writes `incomplete` records for
//! recordings that never came and ends flows whose caller went silent.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Semaphore};

use crate::audio::{self, AudioError, TranscodeOptions};
use crate::confirmations::{
    create_json, digest_id, read_json, Confirmations, Outcome, OutcomeFact, RepoError, Written,
};
use crate::domain::ConfirmationId;
use crate::lease::{Leases, Take};
use crate::notify::Notifier;
use crate::provider::RecordingEvent;
use crate::record::{
    self, AudioObject, AudioRole, DecodePart, RecordFacts, RecordingResult, Records,
};
use crate::store::{delete_all, ObjectKey, ObjectStore, StoreError};

/// Which format to ask the provider for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingFormat {
    /// The provider's WAV: lossless, channels kept.
    Wav,
    /// The provider's MP3: smaller downloads.
    Mp3,
}

impl RecordingFormat {
    /// The extension appended to `RecordingUrl`.
    pub fn extension(self) -> &'static str {
        match self {
            RecordingFormat::Wav => "wav",
            RecordingFormat::Mp3 => "mp3",
        }
    }
}

/// Ingest settings, from [`crate::config::Config`].
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Format asked of the provider.
    pub format: RecordingFormat,
    /// Largest recording accepted.
    pub max_bytes: u64,
    /// Time limit of one download attempt.
    pub download_timeout: Duration,
    /// Download attempts before the job fails this time and waits for the next sweep.
    pub attempts: u32,
    /// First retry delay; doubles each time, up to 30 s.
    pub retry_base: Duration,
    /// Archival sample rate; `None` keeps the source's.
    pub sample_rate: Option<u32>,
    /// Recordings ingested at once.
    pub concurrency: usize,
    /// How long after the outcome a missing recording makes the record incomplete.
    pub recording_wait: Duration,
    /// How often the sweeper runs.
    pub sweep_interval: Duration,
    /// How long a job stays leased to this instance without renewal.
    pub lease_ttl: Duration,
    /// Failed attempts after which a job is parked.
    pub park_after: u32,
    /// How long an unanswered question keeps a flow open (its token's life).
    pub flow_step_ttl: Duration,
    /// Extra time for an answer verified just before its token expired.
    pub flow_grace: Duration,
    /// Provider account SID and auth token, for the media download.
    pub account_sid: String,
    /// See `account_sid`.
    pub auth_token: String,
    /// Scratch directory for downloads and transcodes.
    pub work_dir: PathBuf,
    /// Days kept per kind.
    pub retention: crate::config::Retention,
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

/// Ingest of recordings and completion of records; cheap to clone.
#[derive(Clone)]
pub struct Ingest(Arc<Inner>);

struct Inner {
    store: Arc<dyn ObjectStore>,
    confirmations: Confirmations,
    records: Records,
    notifier: Notifier,
    settings: IngestSettings,
    http: reqwest::Client,
    queue: mpsc::UnboundedSender<String>,
    slots: Arc<Semaphore>,
    in_flight: std::sync::Mutex<HashSet<String>>,
    metrics: Arc<crate::metrics::Metrics>,
    leases: Leases,
}

/// Removes a job from the in-flight set when its processing ends, however it ends.
struct InFlight<'a>(&'a Inner, String);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.0.in_flight.lock() {
            set.remove(&self.1);
        }
    }
}

/// Where queued recording jobs live.
const QUEUED: &str = "jobs/recordings/";
/// Where parked recording jobs live.
const PARKED: &str = "jobs/parked/";

fn job_key(digest: &str) -> ObjectKey {
    ObjectKey::new(format!("{QUEUED}{digest}.json")).unwrap_or_else(|e| panic!("{e}"))
}

fn parked_key(digest: &str) -> ObjectKey {
    ObjectKey::new(format!("{PARKED}{digest}.json")).unwrap_or_else(|e| panic!("{e}"))
}

fn failures_prefix(digest: &str) -> String {
    format!("jobs/failures/{digest}/")
}

/// A job that failed too often, set aside with its reason until an operator retries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParkedJob {
    /// The job as it was queued.
    pub job: RecordingJob,
    /// Failed attempts when it was parked.
    pub failures: usize,
    /// The last failure.
    pub reason: String,
    /// When it was parked.
    #[serde(with = "time::serde::rfc3339")]
    pub parked_at: OffsetDateTime,
}

/// A recording job as operators see it (`GET /v1/jobs`, `callproof jobs list`).
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    /// The job's id: a digest of the RecordingSid.
    pub id: String,
    /// `queued` (being worked on or retried) or `parked` (waits for `callproof jobs retry`).
    pub state: &'static str,
    /// The confirmation the recording belongs to.
    pub confirmation_id: ConfirmationId,
    /// When the recording callback arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Failed attempts so far.
    pub failures: usize,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When it was parked, if it is.
    #[serde(with = "time::serde::rfc3339::option")]
    pub parked_at: Option<OffsetDateTime>,
    /// The instance working on it and until when its lease runs, if one holds it.
    pub lease: Option<crate::lease::LeaseFact>,
}

fn job_id(k: &ObjectKey) -> Option<&str> {
    k.file_name().strip_suffix(".json")
}

/// The last failure noted for a job, and how many there are.
async fn failures_of(
    store: &dyn ObjectStore,
    digest: &str,
) -> Result<(usize, Option<String>), RepoError> {
    let failures = store.list(&failures_prefix(digest)).await?;
    let last = match failures.last() {
        Some(f) => read_json::<serde_json::Value>(store, f)
            .await?
            .and_then(|v| v["error"].as_str().map(str::to_owned)),
        None => None,
    };
    Ok((failures.len(), last))
}

/// Every queued and parked recording job, queued first; only those of
/// confirmation `of` when given.
pub async fn job_statuses(
    store: &dyn ObjectStore,
    of: Option<&ConfirmationId>,
) -> Result<Vec<JobStatus>, RepoError> {
    let wanted = |id: &ConfirmationId| of.is_none_or(|o| o == id);
    let mut out = Vec::new();
    for k in store.list(QUEUED).await? {
        let (Some(id), Some(job)) = (job_id(&k), read_json::<RecordingJob>(store, &k).await?)
        else {
            continue;
        };
        if !wanted(&job.confirmation_id) {
            continue;
        }
        let (failures, last_error) = failures_of(store, id).await?;
        let lease = crate::lease::current(store, id).await?;
        out.push(JobStatus {
            id: id.to_owned(),
            state: "queued",
            confirmation_id: job.confirmation_id,
            received_at: job.received_at,
            failures,
            last_error,
            parked_at: None,
            lease,
        });
    }
    for k in store.list(PARKED).await? {
        let (Some(id), Some(p)) = (job_id(&k), read_json::<ParkedJob>(store, &k).await?) else {
            continue;
        };
        if !wanted(&p.job.confirmation_id) {
            continue;
        }
        out.push(JobStatus {
            id: id.to_owned(),
            state: "parked",
            confirmation_id: p.job.confirmation_id,
            received_at: p.job.received_at,
            failures: p.failures,
            last_error: Some(p.reason),
            parked_at: Some(p.parked_at),
            lease: None,
        });
    }
    Ok(out)
}

/// Queues parked jobs again, with their failure count reset: those named in
/// `ids`, or all when `ids` is empty. Returns the ids queued; an id that is not
/// parked is an error naming it.
pub async fn retry_parked(store: &dyn ObjectStore, ids: &[String]) -> anyhow::Result<Vec<String>> {
    let parked: Vec<String> = store
        .list(PARKED)
        .await?
        .iter()
        .filter_map(|k| job_id(k).map(str::to_owned))
        .collect();
    let chosen: Vec<String> = if ids.is_empty() {
        parked
    } else {
        for id in ids {
            if !parked.contains(id) {
                anyhow::bail!("no parked job {id}: `callproof jobs list` shows the parked ones");
            }
        }
        ids.to_vec()
    };
    for id in &chosen {
        let Some(p) = read_json::<ParkedJob>(store, &parked_key(id)).await? else {
            continue; // retried by someone else meanwhile
        };
        // The job is queued again before anything is removed, so a crash
        // in between leaves it queued (and still listed as parked), never lost.
        create_json(store, &job_key(id), &p.job).await?;
        delete_all(store, &failures_prefix(id)).await?;
        store.delete(&parked_key(id)).await?;
    }
    Ok(chosen)
}

/// Why one recording could not be fetched.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("the provider refused the credentials (HTTP {0}): check CALLPROOF_TWILIO_ACCOUNT_SID and CALLPROOF_TWILIO_AUTH_TOKEN")]
    Refused(u16),
    #[error("the recording is larger than CALLPROOF_RECORDING_MAX_BYTES ({0} bytes)")]
    TooLarge(u64),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("{0}")]
    Transport(String),
    #[error("cannot write the download: {0}")]
    Io(#[from] std::io::Error),
}

impl FetchError {
    fn retryable(&self) -> bool {
        match self {
            FetchError::Status(s) => *s == 404 || *s == 408 || *s == 429 || *s >= 500,
            FetchError::Transport(_) => true,
            FetchError::Refused(_) | FetchError::TooLarge(_) | FetchError::Io(_) => false,
        }
    }
}

impl Ingest {
    /// Creates the ingest; call [`Ingest::start`] to run its worker and sweeper.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        confirmations: Confirmations,
        notifier: Notifier,
        settings: IngestSettings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> (Ingest, mpsc::UnboundedReceiver<String>) {
        let (queue, rx) = mpsc::unbounded_channel();
        let http = reqwest::Client::builder()
            .timeout(settings.download_timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let leases = Leases::new(store.clone(), Leases::instance_name(), settings.lease_ttl);
        tracing::info!(instance = %leases.owner(), "recording jobs are leased under this instance name");
        let inner = Inner {
            leases,
            records: Records::new(store.clone()),
            store,
            confirmations,
            notifier,
            settings,
            http,
            queue,
            slots,
            in_flight: std::sync::Mutex::new(HashSet::new()),
            metrics,
        };
        (Ingest(Arc::new(inner)), rx)
    }

    /// The records, for readers.
    pub fn records(&self) -> &Records {
        &self.0.records
    }

    /// Runs the worker and the sweeper, and queues every job left from before.
    pub fn start(&self, mut rx: mpsc::UnboundedReceiver<String>) {
        let worker = self.clone();
        tokio::spawn(async move {
            while let Some(digest) = rx.recv().await {
                let Ok(permit) = worker.0.slots.clone().acquire_owned().await else {
                    break;
                };
                let w = worker.clone();
                tokio::spawn(async move {
                    if let Err(e) = w.process(&digest).await {
                        tracing::error!(job = %digest, error = %e, "recording job failed; it stays queued and is retried at the next sweep");
                    }
                    drop(permit);
                });
            }
        });
        let sweeper = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(sweeper.0.settings.sweep_interval);
            loop {
                tick.tick().await;
                if let Err(e) = sweeper.sweep(OffsetDateTime::now_utc()).await {
                    tracing::error!(error = %e, "sweep failed; it runs again next interval");
                }
            }
        });
        // Scratch files left by a stopped process belong to no job in flight.
        let _ = std::fs::remove_dir_all(&self.0.settings.work_dir);
        let resumer = self.clone();
        tokio::spawn(async move {
            match resumer.0.store.list(QUEUED).await {
                Ok(keys) => {
                    if !keys.is_empty() {
                        tracing::info!(
                            jobs = keys.len(),
                            "resuming recording jobs left from before"
                        );
                    }
                    for k in keys {
                        if let Some(d) = k.file_name().strip_suffix(".json") {
                            let _ = resumer.0.queue.send(d.to_owned());
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot list recording jobs"),
            }
        });
    }

    /// Persists a recording job (once per RecordingSid) and queues it.
    /// Returns `false` for a repeated callback.
    pub async fn accept(
        &self,
        id: &ConfirmationId,
        event: RecordingEvent,
        now: OffsetDateTime,
    ) -> Result<bool, RepoError> {
        let digest = digest_id(&event.recording_sid);
        let job = RecordingJob {
            confirmation_id: id.clone(),
            event,
            received_at: now,
        };
        let bytes = serde_json::to_vec_pretty(&job).map_err(|e| RepoError::Corrupt {
            key: job_key(&digest).to_string(),
            reason: e.to_string(),
        })?;
        let done = self
            .0
            .records
            .result(id, &job.event.recording_sid)
            .await?
            .is_some();
        if done {
            return Ok(false);
        }
        match self
            .0
            .store
            .create(&job_key(&digest), Bytes::from(bytes))
            .await
        {
            Ok(()) => {
                self.0
                    .metrics
                    .inc("callproof_ingest_jobs_total", &[("state", "accepted")]);
                let _ = self.0.queue.send(digest);
                Ok(true)
            }
            Err(StoreError::AlreadyExists(_)) => {
                self.0
                    .metrics
                    .inc("callproof_ingest_jobs_total", &[("state", "duplicate")]);
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn process(&self, digest: &str) -> anyhow::Result<()> {
        let claimed = self
            .0
            .in_flight
            .lock()
            .map(|mut set| set.insert(digest.to_owned()))
            .unwrap_or(false);
        if !claimed {
            return Ok(()); // already being processed here
        }
        let _guard = InFlight(&self.0, digest.to_owned());
        let leases = &self.0.leases;
        if let Take::Busy(holder) = leases.take(digest, OffsetDateTime::now_utc()).await? {
            tracing::debug!(job = %digest, holder = %holder.owner, until = %holder.expires_at, "recording job is leased to another instance");
            return Ok(());
        }
        let result = tokio::select! {
            r = self.work(digest) => r,
            holder = self.keep_lease(digest) => {
                tracing::warn!(job = %digest, holder = %holder.owner, "another instance took this recording job over; stopping here");
                return Ok(());
            }
        };
        if let Err(e) = leases.release(digest).await {
            tracing::warn!(job = %digest, error = %e, "cannot release the job's lease; it expires on its own");
        }
        result
    }

    /// Renews the lease on a job while it is worked on; returns the holder if
    /// another instance took it over (because renewals failed for a whole lease time).
    async fn keep_lease(&self, digest: &str) -> crate::lease::LeaseFact {
        let every = (self.0.leases.ttl() / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            match self.0.leases.take(digest, OffsetDateTime::now_utc()).await {
                Ok(Take::Held(_)) => {}
                Ok(Take::Busy(holder)) => return holder,
                Err(e) => {
                    tracing::warn!(job = %digest, error = %e, "cannot renew the job's lease; trying again")
                }
            }
        }
    }

    async fn work(&self, digest: &str) -> anyhow::Result<()> {
        let k = job_key(digest);
        // Read under the lease: a job done or parked meanwhile is gone.
        let Some(job) = read_json::<RecordingJob>(self.0.store.as_ref(), &k).await? else {
            return Ok(());
        };
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
            let result = match self.ingest(&job).await {
                Ok(r) => r,
                Err(e) => {
                    self.0
                        .metrics
                        .inc("callproof_ingest_jobs_total", &[("state", "failed")]);
                    self.note_failure(digest, &job, &e).await;
                    return Err(e);
                }
            };
            self.0.records.write_result(id, &result).await?;
            self.0
                .metrics
                .inc("callproof_ingest_jobs_total", &[("state", "stored")]);
            tracing::info!(confirmation = %id, decoded = result.decode.ok, "recording stored");
        }
        // The job goes only once the record has been attempted, so a crash in
        // between leaves the job to run again, never a stored but unrecorded recording.
        self.complete(id, false).await?;
        self.0.store.delete(&k).await?;
        delete_all(self.0.store.as_ref(), &failures_prefix(digest)).await?;
        Ok(())
    }

    /// Keeps each failure of a job, for the record's reason and the logs, and
    /// parks the job once it has failed `park_after` times.
    async fn note_failure(&self, digest: &str, job: &RecordingJob, e: &anyhow::Error) {
        let now = OffsetDateTime::now_utc();
        let reason = format!("{e:#}");
        let note = serde_json::json!({
            "confirmation_id": job.confirmation_id,
            "at": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "error": reason,
        });
        let stamp = now.unix_timestamp_nanos();
        let store = self.0.store.as_ref();
        if let Ok(k) = ObjectKey::new(format!("{}{stamp}.json", failures_prefix(digest))) {
            if let Err(err) = store.create(&k, Bytes::from(note.to_string())).await {
                tracing::error!(error = %err, "cannot keep the failure of a recording job");
                return;
            }
        }
        let failures = match store.list(&failures_prefix(digest)).await {
            Ok(f) => f.len(),
            Err(_) => return,
        };
        if failures < self.0.settings.park_after as usize {
            return;
        }
        let parked = ParkedJob {
            job: job.clone(),
            failures,
            reason,
            parked_at: now,
        };
        // Parked first, then unqueued: a crash in between leaves it in both, never in neither.
        let moved = match create_json(store, &parked_key(digest), &parked).await {
            Ok(_) => store
                .delete(&job_key(digest))
                .await
                .map_err(RepoError::from),
            Err(e) => Err(e),
        };
        match moved {
            Ok(()) => {
                self.0
                    .metrics
                    .inc("callproof_ingest_jobs_total", &[("state", "parked")]);
                tracing::error!(job = %digest, confirmation = %job.confirmation_id, failures, reason = %parked.reason, "recording job parked after failing too often; fix the cause, then run `callproof jobs retry`");
            }
            Err(err) => {
                tracing::error!(job = %digest, error = %err, "cannot park a failing recording job; it stays queued")
            }
        }
    }

    /// Why a confirmation's recording is not stored yet, if a job for it exists.
    async fn pending_reason(&self, id: &ConfirmationId) -> Result<Option<String>, RepoError> {
        let jobs = job_statuses(self.0.store.as_ref(), Some(id)).await?;
        let Some(job) = jobs.first() else {
            return Ok(None);
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

    async fn transcode(
        &self,
        original: &Path,
        archival: &Path,
    ) -> Result<audio::TranscodeReport, AudioError> {
        let opts = TranscodeOptions {
            sample_rate: self.0.settings.sample_rate,
        };
        let (inp, out) = (original.to_path_buf(), archival.to_path_buf());
        match tokio::task::spawn_blocking(move || audio::transcode_file(&inp, &out, &opts)).await {
            Ok(r) => r,
            // A decoder that panics on these bytes has failed to decode them.
            Err(e) => Err(AudioError::Decode(format!(
                "the decoder failed on this file ({e})"
            ))),
        }
    }

    async fn ingest(&self, job: &RecordingJob) -> anyhow::Result<RecordingResult> {
        let s = &self.0.settings;
        tokio::fs::create_dir_all(&s.work_dir).await?;
        let tmp = tempfile::tempdir_in(&s.work_dir)?;
        let result = self.ingest_in(job, tmp.path()).await;
        // Large scratch files are removed off the async runtime.
        let _ = tokio::task::spawn_blocking(move || drop(tmp)).await;
        result
    }

    async fn ingest_in(&self, job: &RecordingJob, dir: &Path) -> anyhow::Result<RecordingResult> {
        let ext = self.0.settings.format.extension();
        let original = dir.join(format!("original.{ext}"));
        let archival = dir.join("archival.wav");
        let url = format!("{}.{ext}", job.event.recording_url);
        self.download_with_retries(&url, &original).await?;
        let mut transcoded = self.transcode(&original, &archival).await;
        if matches!(transcoded, Err(AudioError::Truncated { .. })) {
            // A short file may be a cut download rather than a short recording: fetch it once more.
            tracing::warn!(confirmation = %job.confirmation_id, "recording shorter than its header; downloading it again");
            self.download_with_retries(&url, &original).await?;
            transcoded = self.transcode(&original, &archival).await;
        }
        if let (Ok(report), Some(d)) = (&transcoded, job.event.duration_secs) {
            if report.source.duration_secs + 1.0 < d as f64 {
                transcoded = Err(AudioError::Decode(format!(
                    "decoded {:.3} s of audio, but the provider reported {d} s: the file looks cut short",
                    report.source.duration_secs
                )));
            }
        }
        if let Err(AudioError::Io(e)) = &transcoded {
            // A local problem (disk full, permissions), not a property of the recording: retry later.
            anyhow::bail!("transcoding failed on this machine: {e}");
        }

        let prefix = record::repo_audio_prefix(&job.confirmation_id, &job.event.recording_sid);
        let retain_until = match (
            self.0.settings.lock,
            self.0.confirmations.request(&job.confirmation_id).await?,
        ) {
            (Some(_), Some(request)) => Some(self.retention_of(&request).retain_until),
            _ => None,
        };
        let (orig_sha, orig_size) = {
            let path = original.clone();
            tokio::task::spawn_blocking(move || audio::hash_file(&path)).await??
        };
        let original_key =
            ObjectKey::new(format!("{prefix}original.{ext}")).map_err(anyhow::Error::msg)?;
        self.put_file(&original_key, &original, &orig_sha, retain_until)
            .await?;
        let (decode, audio) = match transcoded {
            Ok(report) => {
                let archival_key =
                    ObjectKey::new(format!("{prefix}archival.wav")).map_err(anyhow::Error::msg)?;
                self.put_file(
                    &archival_key,
                    &archival,
                    &report.archival.sha256,
                    retain_until,
                )
                .await?;
                (
                    DecodePart {
                        ok: true,
                        error: None,
                        frames_promised: report.frames_promised,
                        frames_decoded: Some(report.source.frames),
                    },
                    vec![
                        AudioObject::from_facts(
                            AudioRole::Original,
                            original_key.to_string(),
                            &report.source,
                        ),
                        AudioObject::from_facts(
                            AudioRole::Archival,
                            archival_key.to_string(),
                            &report.archival,
                        ),
                    ],
                )
            }
            Err(e) => {
                tracing::warn!(confirmation = %job.confirmation_id, error = %e, "recording did not decode; keeping the provider's bytes as they came");
                let (promised, decoded) = match &e {
                    AudioError::Truncated { promised, decoded } => {
                        (Some(*promised), Some(*decoded))
                    }
                    _ => (None, None),
                };
                let mut head = [0u8; 16];
                let n = match tokio::fs::File::open(&original).await {
                    Ok(mut f) => tokio::io::AsyncReadExt::read(&mut f, &mut head)
                        .await
                        .unwrap_or(0),
                    Err(_) => 0,
                };
                (
                    DecodePart {
                        ok: false,
                        error: Some(e.to_string()),
                        frames_promised: promised,
                        frames_decoded: decoded,
                    },
                    vec![AudioObject {
                        role: AudioRole::Original,
                        key: original_key.to_string(),
                        format: audio::sniff_format(&head[..n])
                            .unwrap_or("unknown")
                            .to_owned(),
                        codec: None,
                        sample_rate: None,
                        channels: None,
                        duration_secs: None,
                        byte_size: orig_size,
                        sha256: orig_sha,
                    }],
                )
            }
        };
        Ok(RecordingResult {
            recording_sid: job.event.recording_sid.clone(),
            start_time: job.event.start_time.clone(),
            provider_duration_secs: job.event.duration_secs,
            decode,
            audio,
            stored_at: OffsetDateTime::now_utc(),
        })
    }

    /// Stores a local file write-once. An object already there from an earlier,
    /// interrupted attempt counts as stored only if its bytes hash the same.
    async fn put_file(
        &self,
        key: &ObjectKey,
        path: &Path,
        sha256: &str,
        retain_until: Option<OffsetDateTime>,
    ) -> anyhow::Result<()> {
        match self
            .0
            .store
            .create_file_retained(key, path, retain_until)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::AlreadyExists(_)) => {
                let stored = self.stored_sha256(key).await?;
                if stored == sha256 {
                    Ok(())
                } else {
                    anyhow::bail!(
                        "{key} is already stored with other bytes (sha256 {stored}, now {sha256}); nothing was overwritten"
                    )
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn stored_sha256(&self, key: &ObjectKey) -> anyhow::Result<String> {
        use sha2::Digest;
        let mut stream = self
            .0
            .store
            .read_range(key, 0..u64::MAX)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{key} vanished"))?;
        let mut hasher = sha2::Sha256::new();
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk?);
        }
        Ok(hex::encode(hasher.finalize()))
    }

    async fn download_with_retries(&self, url: &str, to: &Path) -> anyhow::Result<()> {
        let s = &self.0.settings;
        let mut delay = s.retry_base;
        for attempt in 1..=s.attempts {
            match self.download(url, to).await {
                Ok(bytes) => {
                    tracing::info!(attempt, bytes, "recording downloaded");
                    return Ok(());
                }
                Err(e) if e.retryable() && attempt < s.attempts => {
                    tracing::warn!(attempt, error = %e, retry_in_ms = delay.as_millis() as u64, "recording download failed; retrying");
                    self.0
                        .metrics
                        .inc("callproof_recording_download_retries_total", &[]);
                    tokio::time::sleep(jitter(delay)).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "downloading the recording failed after {attempt} attempts: {e}"
                    ))
                }
            }
        }
        anyhow::bail!("no download attempts configured (CALLPROOF_RECORDING_DOWNLOAD_ATTEMPTS)")
    }

    async fn download(&self, url: &str, to: &Path) -> Result<u64, FetchError> {
        let s = &self.0.settings;
        let resp = self
            .0
            .http
            .get(url)
            .basic_auth(&s.account_sid, Some(&s.auth_token))
            .send()
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(FetchError::Refused(status));
        }
        if status != 200 {
            return Err(FetchError::Status(status));
        }
        if resp.content_length().is_some_and(|n| n > s.max_bytes) {
            return Err(FetchError::TooLarge(s.max_bytes));
        }
        let mut file = tokio::fs::File::create(to).await?;
        let mut stream = resp.bytes_stream();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| FetchError::Transport(e.to_string()))?;
            total += chunk.len() as u64;
            if total > s.max_bytes {
                return Err(FetchError::TooLarge(s.max_bytes));
            }
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        Ok(total)
    }

    /// The retention of a request's record and audio.
    fn retention_of(
        &self,
        request: &crate::confirmations::ConfirmationRequest,
    ) -> record::RetentionPart {
        let days = self.0.settings.retention.days(request.kind);
        record::RetentionPart {
            days,
            retain_until: request.created_at + time::Duration::days(i64::from(days)),
            enforced_by: if self.0.settings.lock.is_some() {
                "s3_object_lock"
            } else {
                "none"
            }
            .to_owned(),
            mode: self
                .0
                .settings
                .lock
                .map(|m| m.as_str().to_ascii_lowercase()),
        }
    }

    /// Writes the next record version if the facts call for one: the flow has
    /// finished and a recording result is new, or (`force`) the wait for the
    /// recording is over. Returns the version written.
    pub async fn complete(
        &self,
        id: &ConfirmationId,
        force: bool,
    ) -> Result<Option<u32>, RepoError> {
        // A lost race with another writer is retried with the next version.
        for _ in 0..3 {
            let Some(view) = self.0.confirmations.view(id).await? else {
                return Ok(None);
            };
            let Some(outcome) = view.outcome.clone() else {
                return Ok(None);
            };
            let results = self.0.records.results(id).await?;
            let recording = results.last();
            let latest = self.0.records.latest(id).await?;
            let already = |sid: &str| {
                latest
                    .as_ref()
                    .and_then(|l| l.recording.as_ref())
                    .is_some_and(|r| r.recording_sid == sid)
            };
            match (recording, &latest) {
                (None, Some(_)) => return Ok(None),
                (None, None) if !force => return Ok(None),
                (Some(rec), Some(_)) if already(&rec.recording_sid) => return Ok(None),
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
                ended_at: self.0.confirmations.ended_at(id).await?,
                recording,
                waited_secs: self.0.settings.recording_wait.as_secs(),
                pending: pending.as_deref(),
                retention: &retention,
            };
            let rec = record::build(&facts, version, OffsetDateTime::now_utc());
            let enforce = self.0.settings.lock.map(|_| retention.retain_until);
            if self.0.records.write(&rec, enforce).await? {
                tracing::info!(confirmation = %id, version, status = ?rec.status, "record written");
                return Ok(Some(version));
            }
        }
        Ok(None)
    }

    /// One pass of the sweeper at `now`.
    pub async fn sweep(&self, now: OffsetDateTime) -> Result<(), RepoError> {
        let c = &self.0.confirmations;
        for id in c.open_flows().await? {
            if c.outcome(&id).await?.is_some() {
                c.close_flow(&id).await?;
                continue;
            }
            let Some(view) = c.view(&id).await? else {
                continue;
            };
            let last = view
                .events
                .iter()
                .map(|e| e.at)
                .chain(view.call.as_ref().map(|c| c.started_at))
                .max();
            let open_for = self.0.settings.flow_step_ttl + self.0.settings.flow_grace;
            let open_for = time::Duration::try_from(open_for).unwrap_or(time::Duration::HOUR);
            if last.is_some_and(|t| t + open_for <= now) {
                // No answer token for this flow is valid any more: nobody can answer.
                let fact = OutcomeFact {
                    outcome: Outcome::Abandoned,
                    call_sid: view.call.as_ref().map(|c| c.call_sid.clone()),
                    at: now,
                };
                if let Written::New(f) = c.set_outcome(&id, fact).await? {
                    tracing::info!(confirmation = %id, "flow went silent past its last question: abandoned");
                    self.outcome_settled(&view.request, &f);
                }
                c.close_flow(&id).await?;
            }
        }
        let wait = time::Duration::try_from(self.0.settings.recording_wait)
            .unwrap_or(time::Duration::HOUR);
        for id in c.records_due().await? {
            if self.0.records.latest(&id).await?.is_some() {
                c.record_written(&id).await?;
                continue;
            }
            let Some(outcome) = c.outcome(&id).await? else {
                continue;
            };
            // A recording may be stored already (its completion was lost to a crash).
            let written = self.complete(&id, false).await?.is_some();
            if written || outcome.at + wait <= now {
                if !written {
                    self.complete(&id, true).await?;
                }
                c.record_written(&id).await?;
            }
        }
        // Jobs that failed are tried again each sweep; those in flight are skipped.
        let queued = self.0.store.list(QUEUED).await?;
        for k in &queued {
            if let Some(d) = job_id(k) {
                let _ = self.0.queue.send(d.to_owned());
            }
        }
        let parked = self.0.store.list(PARKED).await?.len();
        let m = &self.0.metrics;
        m.set(
            "callproof_ingest_jobs",
            &[("state", "queued")],
            queued.len() as u64,
        );
        m.set(
            "callproof_ingest_jobs",
            &[("state", "parked")],
            parked as u64,
        );
        Ok(())
    }

    /// Called once an outcome is stored: notify, and complete the record if
    /// the recording is already in.
    pub fn outcome_settled(
        &self,
        request: &crate::confirmations::ConfirmationRequest,
        fact: &OutcomeFact,
    ) {
        let outcome = serde_json::to_value(fact.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.0
            .metrics
            .inc("callproof_outcomes_total", &[("outcome", &outcome)]);
        self.0.notifier.outcome(request, fact);
        let this = self.clone();
        let id = request.id.clone();
        tokio::spawn(async move {
            if let Err(e) = this.complete(&id, false).await {
                tracing::error!(confirmation = %id, error = %e, "completing the record failed; the sweeper tries again");
            }
        });
    }
}

/// `d` plus up to a quarter more, so retries from many jobs spread out.
fn jitter(d: Duration) -> Duration {
    use rand::Rng;
    let extra = rand::thread_rng().gen_range(0..=d.as_millis() as u64 / 4);
    d + Duration::from_millis(extra)
}
