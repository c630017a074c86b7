//! The durable job queue: recording ingests and outcome callbacks are jobs in the
//! store, worked on under a lease, retried on a schedule, parked when they fail too often.
//!
//! A job of kind `k` with id `i` is the object `jobs/<k's dir>/<i>.json`, written
//! once before anyone is told it exists. A worker takes the job's lease (see
//! [`lease`]), reads the job and hands it to the kind's [`Handler`]. Success
//! removes the job, its failure notes and its lease; a failure is noted under
//! `jobs/failures/<i>/`; after the kind's retry schedule runs out the job moves to
//! `jobs/parked/<i>.json` until an operator retries it. Every move creates the
//! new object before deleting the old one, so a crash leaves a job in two places,
//! never in none. Any instance may work on any job: the queue lives in the store.

pub mod lease;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{mpsc, Semaphore};

use crate::confirmations::{checked_key, create_json, read_json, RepoError};
use crate::domain::ConfirmationId;
use crate::metrics::Metrics;
use crate::store::{delete_all, ObjectKey, ObjectStore};
use lease::{LeaseFact, Leases, Take};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Download, transcode and store one call recording.
    Recording,
    /// Deliver one signed outcome event to a request's `callback_url`.
    Callback,
}

impl JobKind {
    /// Every kind.
    pub const ALL: [JobKind; 2] = [JobKind::Recording, JobKind::Callback];

    /// Where queued jobs of this kind live.
    pub fn queued_prefix(self) -> &'static str {
        match self {
            JobKind::Recording => "jobs/recordings/",
            JobKind::Callback => "jobs/callbacks/",
        }
    }

    /// The kind's name in logs, metrics and `GET /v1/jobs`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Recording => "recording",
            JobKind::Callback => "callback",
        }
    }
}

/// Where parked jobs of every kind live.
const PARKED: &str = "jobs/parked/";

fn job_key(kind: JobKind, id: &str) -> Result<ObjectKey, RepoError> {
    checked_key(format!("{}{id}.json", kind.queued_prefix()))
}

fn parked_key(id: &str) -> Result<ObjectKey, RepoError> {
    checked_key(format!("{PARKED}{id}.json"))
}

fn failures_prefix(id: &str) -> String {
    format!("jobs/failures/{id}/")
}

fn job_id(k: &ObjectKey) -> Option<&str> {
    k.file_name().strip_suffix(".json")
}

/// What every job body holds besides what its kind needs.
#[derive(Debug, Clone, Deserialize)]
struct Envelope {
    confirmation_id: ConfirmationId,
    #[serde(with = "time::serde::rfc3339")]
    received_at: OffsetDateTime,
}

/// A job that failed too often, set aside with its reason until an operator retries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParkedJob {
    /// Its kind; jobs parked before kinds existed were recordings.
    #[serde(default = "recording_kind")]
    pub kind: JobKind,
    /// The job as it was queued.
    pub job: serde_json::Value,
    /// Failed attempts when it was parked.
    pub failures: usize,
    /// The last failure.
    pub reason: String,
    /// When it was parked.
    #[serde(with = "time::serde::rfc3339")]
    pub parked_at: OffsetDateTime,
}

fn recording_kind() -> JobKind {
    JobKind::Recording
}

/// One noted failure of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FailureNote {
    confirmation_id: ConfirmationId,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    error: String,
}

/// A job as operators see it (`GET /v1/jobs`, `callproof jobs list`).
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    /// The job's id: a hex digest.
    pub id: String,
    /// What it does: `recording` or `callback`.
    pub kind: JobKind,
    /// `queued` (being worked on, waiting, or retried) or `parked` (waits for `callproof jobs retry`).
    pub state: &'static str,
    /// The confirmation the job belongs to.
    pub confirmation_id: ConfirmationId,
    /// When the job was queued (for a recording: when its callback arrived).
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
    pub lease: Option<LeaseFact>,
}

/// The failure notes of a job, oldest first.
async fn failures_of(store: &dyn ObjectStore, id: &str) -> Result<Vec<FailureNote>, RepoError> {
    let mut out = Vec::new();
    for k in store.list(&failures_prefix(id)).await? {
        if let Some(n) = read_json::<FailureNote>(store, &k).await? {
            out.push(n);
        }
    }
    Ok(out)
}

/// Every queued and parked job, queued first (by kind); only those of
/// confirmation `of` when given.
pub async fn job_statuses(
    store: &dyn ObjectStore,
    of: Option<&ConfirmationId>,
) -> Result<Vec<JobStatus>, RepoError> {
    let wanted = |id: &ConfirmationId| of.is_none_or(|o| o == id);
    let mut out = Vec::new();
    for kind in JobKind::ALL {
        for k in store.list(kind.queued_prefix()).await? {
            let (Some(id), Some(job)) = (job_id(&k), read_json::<Envelope>(store, &k).await?)
            else {
                continue;
            };
            if !wanted(&job.confirmation_id) {
                continue;
            }
            let failures = failures_of(store, id).await?;
            out.push(JobStatus {
                id: id.to_owned(),
                kind,
                state: "queued",
                confirmation_id: job.confirmation_id,
                received_at: job.received_at,
                failures: failures.len(),
                last_error: failures.last().map(|f| f.error.clone()),
                parked_at: None,
                lease: lease::current(store, id).await?,
            });
        }
    }
    for k in store.list(PARKED).await? {
        let (Some(id), Some(p)) = (job_id(&k), read_json::<ParkedJob>(store, &k).await?) else {
            continue;
        };
        let Ok(env) = serde_json::from_value::<Envelope>(p.job.clone()) else {
            continue;
        };
        if !wanted(&env.confirmation_id) {
            continue;
        }
        out.push(JobStatus {
            id: id.to_owned(),
            kind: p.kind,
            state: "parked",
            confirmation_id: env.confirmation_id,
            received_at: env.received_at,
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
        let Some(p) = read_json::<ParkedJob>(store, &parked_key(id)?).await? else {
            continue; // retried by someone else meanwhile
        };
        // The job is queued again before anything is removed, so a crash
        // in between leaves it queued (and still listed as parked), never lost.
        create_json(store, &job_key(p.kind, id)?, &p.job).await?;
        delete_all(store, &failures_prefix(id)).await?;
        store.delete(&parked_key(id)?).await?;
    }
    Ok(chosen)
}

/// What became of one attempt at a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Finished: the job is removed.
    Done,
    /// Not ready yet (say, a callback whose outcome is not known): left queued,
    /// no failure counted; tried again at the next sweep.
    NotYet,
}

/// Does the work of one kind of job.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Works on job `id`, whose stored body is `body`. An error counts as a failure.
    async fn run(&self, id: &str, body: Bytes) -> anyhow::Result<Progress>;

    /// After `failures` failed attempts, how long to wait before the next one;
    /// `None` parks the job. Zero means at the next sweep.
    fn retry_after(&self, failures: usize) -> Option<Duration>;

    /// Jobs of this kind worked on at once by one instance.
    fn concurrency(&self) -> usize;
}

/// A job named by kind and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct JobRef {
    kind: JobKind,
    id: String,
}

/// The queue of one instance; cheap to clone.
#[derive(Clone)]
pub struct Queue(Arc<Inner>);

struct Inner {
    store: Arc<dyn ObjectStore>,
    leases: Leases,
    metrics: Arc<Metrics>,
    tx: mpsc::UnboundedSender<JobRef>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<JobRef>>>,
    /// Jobs dispatched on this instance and not yet finished: each job is
    /// waiting or running at most once, however often it is dispatched.
    dispatched: Mutex<HashMap<String, Dispatch>>,
    /// Jobs with a retry timer running: at most one each.
    timers: Mutex<HashSet<String>>,
}

/// Where a dispatched job stands on this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dispatch {
    /// Waiting for a slot of its kind.
    Waiting,
    /// Being attempted.
    Running,
    /// Being attempted, and dispatched again meanwhile: it runs once more.
    RunningAgain,
}

/// Ends a job's attempt on this instance, however it ends (a panic included):
/// it is dispatched once more if that was asked for meanwhile.
struct Finished<'a>(&'a Queue, JobRef);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        let again = match self.0 .0.dispatched.lock() {
            Ok(mut d) => match d.remove(&self.1.id) {
                Some(Dispatch::RunningAgain) => {
                    d.insert(self.1.id.clone(), Dispatch::Waiting);
                    true
                }
                _ => false,
            },
            Err(_) => false,
        };
        if again {
            let _ = self.0 .0.tx.send(self.1.clone());
        }
    }
}

/// The handlers of a running queue, one per kind.
type Handlers = HashMap<JobKind, (Arc<dyn Handler>, Arc<Semaphore>)>;

impl Queue {
    /// This instance's leases, for other work shared between instances.
    pub fn leases(&self) -> &Leases {
        &self.0.leases
    }

    /// A queue over `store` whose leases last `lease_ttl` without renewal.
    pub fn new(store: Arc<dyn ObjectStore>, lease_ttl: Duration, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let leases = Leases::new(store.clone(), Leases::instance_name(), lease_ttl);
        tracing::info!(instance = %leases.owner(), "jobs are leased under this instance name");
        Queue(Arc::new(Inner {
            store,
            leases,
            metrics,
            tx,
            rx: Mutex::new(Some(rx)),
            dispatched: Mutex::new(HashMap::new()),
            timers: Mutex::new(HashSet::new()),
        }))
    }

    /// The store the jobs live in.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.0.store
    }

    /// Stores a job write-once and tells this instance's worker. Returns
    /// `false` when a job with this id was already queued.
    pub async fn enqueue<T: Serialize>(
        &self,
        kind: JobKind,
        id: &str,
        job: &T,
    ) -> Result<bool, RepoError> {
        let fresh = create_json(self.0.store.as_ref(), &job_key(kind, id)?, job).await?;
        if fresh {
            self.dispatch(kind, id);
        }
        Ok(fresh)
    }

    /// Asks this instance's worker to try a queued job now; a job already
    /// waiting is not queued twice, and one running runs once more after.
    pub fn dispatch(&self, kind: JobKind, id: &str) {
        let send = match self.0.dispatched.lock() {
            Ok(mut d) => match d.get(id).copied() {
                None => {
                    d.insert(id.to_owned(), Dispatch::Waiting);
                    true
                }
                Some(Dispatch::Running) => {
                    d.insert(id.to_owned(), Dispatch::RunningAgain);
                    false
                }
                Some(Dispatch::Waiting | Dispatch::RunningAgain) => false,
            },
            Err(_) => false,
        };
        if send {
            let _ = self.0.tx.send(JobRef {
                kind,
                id: id.to_owned(),
            });
        }
    }

    /// Runs the worker with one handler per kind, and queues every job left from before.
    pub fn start(&self, handlers: Vec<(JobKind, Arc<dyn Handler>)>) {
        let Some(mut rx) = self.0.rx.lock().ok().and_then(|mut r| r.take()) else {
            tracing::error!("the job queue was started twice; the second start is ignored");
            return;
        };
        let handlers: Arc<Handlers> = Arc::new(
            handlers
                .into_iter()
                .map(|(k, h)| {
                    let slots = Arc::new(Semaphore::new(h.concurrency().max(1)));
                    (k, (h, slots))
                })
                .collect(),
        );
        let worker = self.clone();
        let hs = handlers.clone();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let Some((handler, slots)) = hs.get(&job.kind) else {
                    continue;
                };
                // Each job waits for a slot of its own kind in its own task,
                // so a kind whose slots are all busy never holds up another.
                let (w, h, slots) = (worker.clone(), handler.clone(), slots.clone());
                tokio::spawn(async move {
                    let _finished = Finished(&w, job.clone());
                    let Ok(_permit) = slots.acquire_owned().await else {
                        return;
                    };
                    if let Ok(mut d) = w.0.dispatched.lock() {
                        if d.get(&job.id) == Some(&Dispatch::Waiting) {
                            d.insert(job.id.clone(), Dispatch::Running);
                        }
                    }
                    if let Err(e) = w.attempt(&job, h.as_ref()).await {
                        tracing::error!(kind = job.kind.as_str(), job = %job.id, error = %e, "job failed; it stays queued and is tried again");
                    }
                });
            }
        });
        let resumer = self.clone();
        tokio::spawn(async move {
            match resumer.queued().await {
                Ok(jobs) if !jobs.is_empty() => {
                    tracing::info!(jobs = jobs.len(), "resuming jobs left from before");
                    for j in jobs {
                        resumer.dispatch(j.kind, &j.id);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot list queued jobs"),
            }
        });
    }

    async fn queued(&self) -> Result<Vec<JobRef>, RepoError> {
        let mut out = Vec::new();
        for kind in JobKind::ALL {
            for k in self.0.store.list(kind.queued_prefix()).await? {
                if let Some(id) = job_id(&k) {
                    out.push(JobRef {
                        kind,
                        id: id.to_owned(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// One sweep: every queued job is tried again (each waits out its own
    /// retry delay), and the queue gauges are set.
    pub async fn sweep(&self) -> Result<(), RepoError> {
        let queued = self.queued().await?;
        for kind in JobKind::ALL {
            let n = queued.iter().filter(|j| j.kind == kind).count();
            self.0.metrics.set(
                "callproof_jobs",
                &[("kind", kind.as_str()), ("state", "queued")],
                n as u64,
            );
        }
        for j in &queued {
            self.dispatch(j.kind, &j.id);
        }
        let parked = self.0.store.list(PARKED).await?;
        let mut by_kind: HashMap<JobKind, u64> = HashMap::new();
        for k in &parked {
            if let Some(p) = read_json::<ParkedJob>(self.0.store.as_ref(), k).await? {
                *by_kind.entry(p.kind).or_default() += 1;
            }
        }
        for kind in JobKind::ALL {
            self.0.metrics.set(
                "callproof_jobs",
                &[("kind", kind.as_str()), ("state", "parked")],
                by_kind.get(&kind).copied().unwrap_or(0),
            );
        }
        Ok(())
    }

    /// One attempt at a job: skipped when it is in flight here, leased to
    /// another instance, or still waiting out its retry delay.
    async fn attempt(&self, job: &JobRef, handler: &dyn Handler) -> anyhow::Result<()> {
        let store = self.0.store.as_ref();
        let failures = failures_of(store, &job.id).await?;
        if let (Some(last), Some(wait)) = (failures.last(), handler.retry_after(failures.len())) {
            let due = last.at + time::Duration::try_from(wait).unwrap_or(time::Duration::ZERO);
            let now = OffsetDateTime::now_utc();
            if due > now {
                self.redispatch_at(job, due - now);
                return Ok(());
            }
        }
        let leases = &self.0.leases;
        if let Take::Busy(holder) = leases.take(&job.id, OffsetDateTime::now_utc()).await? {
            tracing::debug!(job = %job.id, holder = %holder.owner, until = %holder.expires_at, "job is leased to another instance");
            return Ok(());
        }
        let result = tokio::select! {
            r = self.work(job, handler, failures.len()) => r,
            holder = self.keep_lease(&job.id) => {
                tracing::warn!(job = %job.id, holder = %holder.owner, "another instance took this job over; stopping here");
                return Ok(());
            }
        };
        if let Err(e) = leases.release(&job.id).await {
            tracing::warn!(job = %job.id, error = %e, "cannot release the job's lease; it expires on its own");
        }
        result
    }

    /// Tells this instance's worker to try `job` again after `wait`; the sweep
    /// tries it anyway, so a restart loses nothing.
    fn redispatch_at(&self, job: &JobRef, wait: time::Duration) {
        let Ok(wait) = Duration::try_from(wait) else {
            return;
        };
        let fresh = self
            .0
            .timers
            .lock()
            .map(|mut t| t.insert(job.id.clone()))
            .unwrap_or(false);
        if !fresh {
            return; // one timer per job is enough
        }
        let this = self.clone();
        let job = job.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Ok(mut t) = this.0.timers.lock() {
                t.remove(&job.id);
            }
            this.dispatch(job.kind, &job.id);
        });
    }

    /// Renews the lease on a job while it is worked on; returns the holder if
    /// another instance took it over (because renewals failed for a whole lease time).
    async fn keep_lease(&self, id: &str) -> LeaseFact {
        let every = (self.0.leases.ttl() / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            match self.0.leases.take(id, OffsetDateTime::now_utc()).await {
                Ok(Take::Held(_)) => {}
                Ok(Take::Busy(holder)) => return holder,
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "cannot renew the job's lease; trying again")
                }
            }
        }
    }

    async fn work(&self, job: &JobRef, handler: &dyn Handler, failed: usize) -> anyhow::Result<()> {
        let store = self.0.store.as_ref();
        let k = job_key(job.kind, &job.id)?;
        // Read under the lease: a job done or parked meanwhile is gone.
        let Some(body) = store.get(&k).await? else {
            return Ok(());
        };
        match handler.run(&job.id, body.clone()).await {
            Ok(Progress::NotYet) => Ok(()),
            Ok(Progress::Done) => {
                // The job goes only after its work is done, so a crash in
                // between runs it again; handlers make a second run harmless.
                store.delete(&k).await?;
                // Failures are noted under the job's lease, and this attempt
                // has held it since it listed none: nothing to remove.
                if failed > 0 {
                    delete_all(store, &failures_prefix(&job.id)).await?;
                }
                Ok(())
            }
            Err(e) => {
                self.0.metrics.inc(
                    "callproof_jobs_total",
                    &[("kind", job.kind.as_str()), ("state", "failed")],
                );
                self.note_failure(job, handler, &body, failed + 1, &e).await;
                Err(e)
            }
        }
    }

    /// Keeps each failure of a job, for reasons and logs, and parks the job
    /// once its handler's schedule runs out.
    async fn note_failure(
        &self,
        job: &JobRef,
        handler: &dyn Handler,
        body: &Bytes,
        failures: usize,
        e: &anyhow::Error,
    ) {
        let now = OffsetDateTime::now_utc();
        let reason = format!("{e:#}");
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            tracing::error!(job = %job.id, "a queued job is not JSON; it is left as it is");
            return;
        };
        let Ok(env) = serde_json::from_value::<Envelope>(value.clone()) else {
            tracing::error!(job = %job.id, "a queued job names no confirmation; it is left as it is");
            return;
        };
        let note = FailureNote {
            confirmation_id: env.confirmation_id.clone(),
            at: now,
            error: reason.clone(),
        };
        let store = self.0.store.as_ref();
        let stamp = now.unix_timestamp_nanos();
        let noted = match checked_key(format!("{}{stamp}.json", failures_prefix(&job.id))) {
            Ok(k) => create_json(store, &k, &note).await,
            Err(e) => Err(e),
        };
        if let Err(err) = noted {
            tracing::error!(error = %err, "cannot keep the failure of a job");
            return;
        }
        if let Some(wait) = handler.retry_after(failures) {
            if !wait.is_zero() {
                self.redispatch_at(job, time::Duration::try_from(wait).unwrap_or_default());
            }
            return;
        }
        let parked = ParkedJob {
            kind: job.kind,
            job: value,
            failures,
            reason,
            parked_at: now,
        };
        // Parked first, then unqueued: a crash in between leaves it in both, never in neither.
        let moved = async {
            create_json(store, &parked_key(&job.id)?, &parked).await?;
            store.delete(&job_key(job.kind, &job.id)?).await?;
            Ok::<(), RepoError>(())
        }
        .await;
        match moved {
            Ok(()) => {
                self.0.metrics.inc(
                    "callproof_jobs_total",
                    &[("kind", job.kind.as_str()), ("state", "parked")],
                );
                tracing::error!(kind = job.kind.as_str(), job = %job.id, confirmation = %env.confirmation_id, failures, reason = %parked.reason, "job parked after failing too often; fix the cause, then run `callproof jobs retry`");
            }
            Err(err) => {
                tracing::error!(job = %job.id, error = %err, "cannot park a failing job; it stays queued")
            }
        }
    }
}

/// `d` plus up to a quarter more, so retries from many jobs spread out.
pub fn jitter(d: Duration) -> Duration {
    use rand::Rng;
    let extra = rand::thread_rng().gen_range(0..=d.as_millis() as u64 / 4);
    d + Duration::from_millis(extra)
}
