//! Leases on shared work: which instance works on a job, and until when.
//! Each renewal is a new write-once object, so two instances can never both hold one.
//!
//! A lease lives under `jobs/leases/<name>/<generation>.json`. Taking or
//! renewing writes generation `n + 1` with `create`; of two instances racing
//! for the same generation exactly one wins (on a store that guarantees
//! write-once, see `store check`). A lease whose holder stopped renewing it is
//! taken over once it expires. Instances compare expiry times by their own
//! clocks, so those must agree to well within the lease time.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::confirmations::{checked_key, create_json, read_json, RepoError};
use crate::store::{ObjectKey, ObjectStore};

/// One generation of a lease, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseFact {
    /// The instance holding it.
    pub owner: String,
    /// Counts up from 1 with every take and renewal.
    pub generation: u64,
    /// When this generation was written.
    #[serde(with = "time::serde::rfc3339")]
    pub taken_at: OffsetDateTime,
    /// After this, another instance may take the work over.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What [`Leases::take`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// This instance holds the lease now.
    Held(LeaseFact),
    /// Another instance holds it.
    Busy(LeaseFact),
}

/// Leases of one instance; cheap to clone.
#[derive(Clone)]
pub struct Leases {
    store: Arc<dyn ObjectStore>,
    owner: String,
    ttl: Duration,
}

fn prefix(name: &str) -> String {
    format!("jobs/leases/{name}/")
}

fn generation_key(name: &str, generation: u64) -> Result<ObjectKey, RepoError> {
    checked_key(format!("{}{generation:020}.json", prefix(name)))
}

/// The newest generation of the lease on `name` in `store`, if any.
/// A generation that does not read, or whose name is not its number, was not
/// written by callproof and is skipped (logged), so it cannot block the lease.
pub async fn current(store: &dyn ObjectStore, name: &str) -> Result<Option<LeaseFact>, RepoError> {
    let keys = store.list(&prefix(name)).await?;
    newest_of(store, name, &keys).await
}

/// The newest readable generation among `keys`, the listing of `name`'s lease.
async fn newest_of(
    store: &dyn ObjectStore,
    name: &str,
    keys: &[ObjectKey],
) -> Result<Option<LeaseFact>, RepoError> {
    for k in keys.iter().rev() {
        let named = k
            .file_name()
            .strip_suffix(".json")
            .and_then(|g| g.parse::<u64>().ok());
        match read_json::<LeaseFact>(store, k).await {
            Ok(Some(f)) if named == Some(f.generation) => return Ok(Some(f)),
            Ok(None) => continue,
            Ok(Some(_)) | Err(RepoError::Corrupt { .. }) => {
                tracing::error!(lease = name, key = %k, "a lease generation callproof did not write is ignored");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

impl Leases {
    /// Leases held as `owner`, each valid for `ttl` after it is taken or renewed.
    pub fn new(store: Arc<dyn ObjectStore>, owner: String, ttl: Duration) -> Self {
        Leases { store, owner, ttl }
    }

    /// A name for this process that tells operators which machine it is.
    pub fn instance_name() -> String {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".to_owned());
        let nonce: u32 = rand::random();
        format!("{host}-{}-{nonce:08x}", std::process::id())
    }

    /// This instance's name in the leases it writes.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// How long a lease lasts without renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The newest generation of the lease on `name`, if any.
    pub async fn current(&self, name: &str) -> Result<Option<LeaseFact>, RepoError> {
        current(self.store.as_ref(), name).await
    }

    /// Takes the lease on `name`, or renews it if this instance holds it.
    /// Another instance's lease is respected until it expires.
    pub async fn take(&self, name: &str, now: OffsetDateTime) -> Result<Take, RepoError> {
        let current = self.current(name).await?;
        let ttl = time::Duration::try_from(self.ttl).unwrap_or(time::Duration::MINUTE);
        if let Some(fact) = &current {
            // No instance grants a lease longer than its lease time: one that
            // claims more (written by someone else into the store) is void.
            let plausible = fact.expires_at <= now + ttl * 2;
            if !plausible {
                tracing::error!(lease = name, owner = %fact.owner, expires_at = %fact.expires_at, "a lease claims to last far longer than any instance grants: it was not written by callproof; taking it over");
            }
            if fact.owner != self.owner && fact.expires_at > now && plausible {
                return Ok(Take::Busy(fact.clone()));
            }
        }
        let generation = match &current {
            None => 1,
            Some(f) => f
                .generation
                .checked_add(1)
                .ok_or_else(|| RepoError::Corrupt {
                    key: format!("{}{}", prefix(name), f.generation),
                    reason: "the lease generation cannot grow further: remove the lease's objects"
                        .into(),
                })?,
        };
        let fact = LeaseFact {
            owner: self.owner.clone(),
            generation,
            taken_at: now,
            expires_at: now + ttl,
        };
        let key = generation_key(name, generation)?;
        if create_json(self.store.as_ref(), &key, &fact).await? {
            self.forget_before(name, generation).await;
            Ok(Take::Held(fact))
        } else {
            // Another instance wrote this generation first: it holds the lease.
            match read_json::<LeaseFact>(self.store.as_ref(), &key).await? {
                Some(winner) if winner.owner == self.owner => Ok(Take::Held(winner)),
                Some(winner) => Ok(Take::Busy(winner)),
                None => Ok(Take::Busy(fact)),
            }
        }
    }

    /// Removes the generations of `name` older than `generation - 1`, so a
    /// lease renewed for hours keeps two objects, not one per renewal. The
    /// previous one stays: a reader listing just before this create still finds it.
    async fn forget_before(&self, name: &str, generation: u64) {
        if generation < 3 {
            return;
        }
        let Ok(keys) = self.store.list(&prefix(name)).await else {
            return;
        };
        for k in keys {
            let old = k
                .file_name()
                .strip_suffix(".json")
                .and_then(|g| g.parse::<u64>().ok())
                .is_some_and(|g| g + 1 < generation);
            if old {
                if let Err(e) = self.store.delete(&k).await {
                    tracing::debug!(key = %k, error = %e, "cannot remove an old lease generation; the next renewal tries again");
                }
            }
        }
    }

    /// Removes every generation of the lease on `name` once its work is done,
    /// if this instance still holds it; a lease another instance took over is theirs.
    /// Only the generations listed are removed: one another instance wrote
    /// after the listing is theirs.
    pub async fn release(&self, name: &str) -> Result<(), RepoError> {
        let store = self.store.as_ref();
        let keys = store.list(&prefix(name)).await?;
        match newest_of(store, name, &keys).await? {
            Some(f) if f.owner == self.owner => {
                for k in &keys {
                    store.delete(k).await?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FsStore;

    fn leases(store: &Arc<dyn ObjectStore>, owner: &str) -> Leases {
        Leases::new(store.clone(), owner.to_owned(), Duration::from_secs(60))
    }

    fn fs_store() -> (tempfile::TempDir, Arc<dyn ObjectStore>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::open(dir.path()).expect("open store"));
        (dir, store)
    }

    #[tokio::test]
    async fn a_held_lease_is_busy_for_others_until_it_expires() {
        let (_dir, store) = fs_store();
        let (a, b) = (leases(&store, "a"), leases(&store, "b"));
        let t0 = OffsetDateTime::now_utc();
        assert!(matches!(a.take("job", t0).await.unwrap(), Take::Held(f) if f.generation == 1));
        match b
            .take("job", t0 + time::Duration::seconds(59))
            .await
            .unwrap()
        {
            Take::Busy(f) => assert_eq!(f.owner, "a"),
            other => panic!("b took a live lease: {other:?}"),
        }
        // a renews; b must wait for the renewed expiry.
        let renewed = t0 + time::Duration::seconds(30);
        assert!(
            matches!(a.take("job", renewed).await.unwrap(), Take::Held(f) if f.generation == 2)
        );
        assert!(matches!(
            b.take("job", t0 + time::Duration::seconds(61))
                .await
                .unwrap(),
            Take::Busy(_)
        ));
        // After the renewed lease expires, b takes over and a has lost it.
        let later = renewed + time::Duration::seconds(61);
        assert!(
            matches!(b.take("job", later).await.unwrap(), Take::Held(f) if f.generation == 3 && f.owner == "b")
        );
        assert!(matches!(a.take("job", later).await.unwrap(), Take::Busy(f) if f.owner == "b"));
        let kept = store.list("jobs/leases/job/").await.unwrap().len();
        assert_eq!(kept, 2, "renewals keep the newest two generations, not all");
        b.release("job").await.unwrap();
        assert_eq!(a.current("job").await.unwrap(), None);
    }

    #[tokio::test]
    async fn of_eight_racing_instances_one_takes_the_lease() {
        let (_dir, store) = fs_store();
        let now = OffsetDateTime::now_utc();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let l = leases(&store, &format!("i{i}"));
            tasks.push(tokio::spawn(async move { l.take("job", now).await }));
        }
        let mut held = 0;
        for t in tasks {
            if matches!(t.await.unwrap().unwrap(), Take::Held(_)) {
                held += 1;
            }
        }
        assert_eq!(held, 1);
    }
}
