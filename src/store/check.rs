//! What a store really guarantees, found by probing it: conditional create,
//! a concurrent create race, Object Lock and versioning. Run at start-up and by
//! `callproof store check`; the answer decides whether `serve` may start.

use std::sync::Arc;

use bytes::Bytes;
use rand::RngCore;
use serde::Serialize;

use super::s3::S3Store;
use super::{ObjectKey, ObjectStore, StoreError};

/// One probed property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "snake_case")]
pub enum Probe {
    /// The store does it.
    Yes,
    /// The store does not; what was seen.
    No(String),
    /// The probe could not tell; why.
    Unknown(String),
}

impl Probe {
    /// True only for a confirmed yes.
    pub fn is_yes(&self) -> bool {
        matches!(self, Probe::Yes)
    }
}

/// Everything the check found.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    /// The backend, in words.
    pub store: String,
    /// A second create of a key is refused.
    pub conditional_create: Probe,
    /// Of several concurrent creates of one key, exactly one wins.
    pub concurrent_create: Probe,
    /// Object Lock retention is enforced (a retained object cannot be deleted).
    pub object_lock: Probe,
    /// Bucket versioning is on (a deleted or overwritten object stays recoverable).
    pub versioning: Probe,
}

impl StoreReport {
    /// Write-once holds only when both create probes said yes.
    pub fn write_once(&self) -> bool {
        self.conditional_create.is_yes() && self.concurrent_create.is_yes()
    }

    /// What an operator loses without write-once, for the refusal message.
    pub fn risk(&self) -> String {
        format!(
            "{} cannot guarantee write-once (conditional create: {}; concurrent create: {}). \
             Two instances could then overwrite each other's evidence, and a replayed webhook \
             could replace a stored fact",
            self.store,
            show(&self.conditional_create),
            show(&self.concurrent_create)
        )
    }
}

fn show(p: &Probe) -> String {
    match p {
        Probe::Yes => "yes".into(),
        Probe::No(why) => format!("no ({why})"),
        Probe::Unknown(why) => format!("unknown ({why})"),
    }
}

/// Rounds of the concurrent-create race on a remote store.
pub const RACE_ROUNDS: usize = 10;

fn probe_prefix() -> String {
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("probe/{}/", hex::encode(b))
}

fn key(s: String) -> ObjectKey {
    ObjectKey::new(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Probes conditional create and `rounds` rounds of a `racers`-way create race.
pub async fn probe_writes(
    store: Arc<dyn ObjectStore>,
    racers: usize,
    rounds: usize,
) -> (Probe, Probe) {
    let prefix = probe_prefix();
    let once = key(format!("{prefix}once"));
    let conditional = match store.create(&once, Bytes::from_static(b"first")).await {
        Err(e) => Probe::Unknown(format!("the first create failed: {e}")),
        Ok(()) => match store.create(&once, Bytes::from_static(b"second")).await {
            Err(StoreError::AlreadyExists(_)) => match store.get(&once).await {
                Ok(Some(b)) if b.as_ref() == b"first" => Probe::Yes,
                Ok(other) => Probe::No(format!(
                    "the refused create still changed the object ({other:?})"
                )),
                Err(e) => Probe::Unknown(format!("reading back failed: {e}")),
            },
            Ok(()) => {
                Probe::No("a second create of the same key succeeded: the store overwrites".into())
            }
            Err(e) => Probe::Unknown(format!("the second create failed oddly: {e}")),
        },
    };
    // Racing stores are not racy every time: one round can serialise by luck,
    // so any of several rounds with more than one winner settles it.
    let mut concurrent = Probe::Yes;
    let mut raced = Vec::new();
    for round in 0..rounds {
        let race = key(format!("{prefix}race-{round}"));
        raced.push(race.clone());
        let tasks: Vec<_> = (0..racers)
            .map(|i| {
                let store = store.clone();
                let race = race.clone();
                tokio::spawn(
                    async move { store.create(&race, Bytes::from(format!("racer {i}"))).await },
                )
            })
            .collect();
        let (mut wins, mut odd) = (0, Vec::new());
        for t in tasks {
            match t.await {
                Ok(Ok(())) => wins += 1,
                Ok(Err(StoreError::AlreadyExists(_))) => {}
                Ok(Err(e)) => odd.push(e.to_string()),
                Err(e) => odd.push(e.to_string()),
            }
        }
        concurrent = match (wins, odd.is_empty()) {
            (1, true) => continue,
            (n, true) => Probe::No(format!(
                "{n} of {racers} concurrent creates of one key succeeded (round {} of {rounds})",
                round + 1
            )),
            (_, false) => Probe::Unknown(format!("some creates failed: {}", odd.join("; "))),
        };
        break;
    }
    for k in raced {
        let _ = store.delete(&k).await;
    }
    for k in [once] {
        let _ = store.delete(&k).await;
    }
    (conditional, concurrent)
}

/// Probes an S3 bucket: writes, Object Lock and versioning.
pub async fn check_s3(store: &S3Store, racers: usize) -> StoreReport {
    let shared: Arc<dyn ObjectStore> = Arc::new(store.clone());
    let (conditional_create, concurrent_create) = probe_writes(shared, racers, RACE_ROUNDS).await;
    let s = store.settings();
    let client = store.client();
    let versioning = match client
        .get_bucket_versioning()
        .bucket(&s.bucket)
        .send()
        .await
    {
        Ok(v) => match v.status() {
            Some(aws_sdk_s3::types::BucketVersioningStatus::Enabled) => Probe::Yes,
            Some(other) => Probe::No(format!("versioning is {}", other.as_str())),
            None => Probe::No("versioning was never enabled".into()),
        },
        Err(e) => Probe::Unknown(format!("{e}")),
    };
    let object_lock = probe_object_lock(store).await;
    StoreReport {
        store: store.describe(),
        conditional_create,
        concurrent_create,
        object_lock,
        versioning,
    }
}

async fn probe_object_lock(store: &S3Store) -> Probe {
    let s = store.settings();
    let client = store.client();
    match client
        .get_object_lock_configuration()
        .bucket(&s.bucket)
        .send()
        .await
    {
        Ok(c) => {
            let enabled = c
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .is_some_and(|e| e.as_str() == "Enabled");
            if !enabled {
                return Probe::No("the bucket has no Object Lock configuration".into());
            }
        }
        Err(e) => {
            return Probe::No(format!(
                "no Object Lock configuration ({})",
                e.into_service_error()
            ))
        }
    }
    // Configured is not enforced: retain a probe object for a minute and try to delete it.
    let k = key(format!("{}locked", probe_prefix()));
    let until = time::OffsetDateTime::now_utc() + time::Duration::MINUTE;
    if let Err(e) = store
        .create_retained(&k, Bytes::from_static(b"locked"), until)
        .await
    {
        return Probe::Unknown(format!("a retained write failed: {e}"));
    }
    let full = store.full_key(k.as_str());
    let version = match client
        .head_object()
        .bucket(&s.bucket)
        .key(&full)
        .send()
        .await
    {
        Ok(h) => h.version_id().map(str::to_owned),
        Err(e) => return Probe::Unknown(format!("cannot read the probe back: {e}")),
    };
    let mut delete = client.delete_object().bucket(&s.bucket).key(&full);
    if let Some(v) = &version {
        delete = delete.version_id(v);
    }
    match delete.send().await {
        Err(_) => Probe::Yes,
        Ok(_) => {
            let still_there = client
                .head_object()
                .bucket(&s.bucket)
                .key(&full)
                .send()
                .await
                .is_ok();
            if still_there && version.is_none() {
                Probe::Unknown(
                    "the delete hid the object behind a marker; retention unclear".into(),
                )
            } else {
                Probe::No("a retained object could be deleted: retention is ignored".into())
            }
        }
    }
}
