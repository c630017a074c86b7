//! Keeping the search index in step with the store: a row right after each
//! record version, hold fact or tombstone is written, and a catch-up that reads
//! every seal after the index's last one and every object still awaiting a seal.
//!
//! The store is the source of truth: only objects signed by a trusted key (or
//! listed unsigned in the backfill seal) become rows, and a seal whose hash no
//! longer matches what the index read (a restored store, a changed index)
//! makes the index rebuild itself into a new generation.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::try_join_all;
use tokio::sync::{Mutex, RwLock};

use super::{Change, IndexError, IndexState, PhoneKey, Row, SealMark, SearchIndex};
use crate::confirmations::ConfirmationRequest;
use crate::domain::ConfirmationId;
use crate::evidence::hold::{HoldFact, HoldState};
use crate::evidence::keys::PublicKey;
use crate::evidence::objects::{read_signed, sha256_hex, signature_key, Marker, MARKER_PREFIX};
use crate::evidence::seal::{seal_key, Seal, NO_PREVIOUS};
use crate::evidence::tombstone::Tombstone;
use crate::evidence::trust::Trust;
use crate::jobs::lease::{Leases, Take};
use crate::record::{is_unsigned_v1, ConfirmationRecord};
use crate::store::{ObjectKey, ObjectStore};

/// One rebuild of the index at a time per store: the lease on it lasts this
/// long past its last renewal (each seal read renews it).
pub const REBUILD_LEASE: &str = "index-rebuild";
const REBUILD_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// Pending objects indexed in one transaction.
const APPLY_BATCH: usize = 1000;

/// Objects read at once from the store while following seals.
const READ_AHEAD: usize = 16;

fn no_progress(_: u64) {}

/// What one catch-up did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// Seals read.
    pub seals: u64,
    /// Changes applied (rows written or moved).
    pub changes: usize,
    /// Whether the index was rebuilt into a new generation first.
    pub rebuilt: bool,
}

/// Follows the store into a [`SearchIndex`].
pub struct Indexer {
    store: Arc<dyn ObjectStore>,
    index: Arc<dyn SearchIndex>,
    phones: PhoneKey,
    trust: Trust,
    keys: RwLock<Vec<PublicKey>>,
    /// Markers whose objects were applied, and to which generation.
    pending_done: Mutex<(u64, HashSet<String>)>,
    running: Mutex<()>,
    lease: Option<Leases>,
    lease_lost: AtomicBool,
    rebuilds: Leases,
}

/// The kind of evidence object a key names, with what its path says.
enum Named {
    Version { id: String, version: u32 },
    Hold { id: String, n: u32 },
    Tombstone { id: String },
}

fn named(key: &str) -> Option<Named> {
    let parts: Vec<&str> = key.split('/').collect();
    let number = |file: &str, prefix: &str| -> Option<u32> {
        file.strip_prefix(prefix)?
            .strip_suffix(".json")?
            .parse()
            .ok()
    };
    match parts.as_slice() {
        ["records", id, file] => Some(Named::Version {
            id: (*id).to_owned(),
            version: number(file, "v")?,
        }),
        ["holds", id, file] => Some(Named::Hold {
            id: (*id).to_owned(),
            n: number(file, "")?,
        }),
        ["tombstones", file] => Some(Named::Tombstone {
            id: file.strip_suffix(".json")?.to_owned(),
        }),
        _ => None,
    }
}

/// Whether the index follows objects under `key` (record versions, holds, tombstones).
pub fn followed(key: &str) -> bool {
    named(key).is_some()
}

impl Indexer {
    /// An indexer of `store` into `index`, trusting the keys `trust` names
    /// (and those the seal chain's rotation statements link to them).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        index: Arc<dyn SearchIndex>,
        phones: PhoneKey,
        trust: Trust,
    ) -> Indexer {
        let store_for_leases = store.clone();
        Indexer {
            store,
            index,
            phones,
            trust,
            keys: RwLock::new(Vec::new()),
            pending_done: Mutex::new((0, HashSet::new())),
            running: Mutex::new(()),
            lease: None,
            lease_lost: AtomicBool::new(false),
            rebuilds: Leases::new(store_for_leases, Leases::instance_name(), REBUILD_LEASE_TTL),
        }
    }

    /// The same indexer, renewing `lease` (see [`super::SQLITE_LEASE`]) before each catch-up.
    pub fn with_lease(mut self, lease: Option<Leases>) -> Self {
        self.lease = lease;
        self
    }

    /// The index searches read.
    pub fn index(&self) -> &Arc<dyn SearchIndex> {
        &self.index
    }

    /// The key phone numbers are searched by.
    pub fn phones(&self) -> &PhoneKey {
        &self.phones
    }

    /// The index's state, with the reason searches must not use it, if any.
    pub async fn usable(&self) -> Result<IndexState, IndexError> {
        if self.lease_lost.load(Ordering::Relaxed) {
            return Err(IndexError("another instance holds the SQLite index lease on this bucket, so this instance's index no longer sees every write: run one instance, or give every instance one PostgreSQL index with CALLPROOF_INDEX_URL".into()));
        }
        let state = self.index.state().await?;
        if state.generation == 0 {
            return Err(IndexError(
                "the search index is being built from the store; try again in a moment".into(),
            ));
        }
        if state.phone_fingerprint.as_deref() != Some(self.phones.fingerprint().as_str()) {
            return Err(IndexError(
                "the search index was built with another CALLPROOF_INDEX_PHONE_SECRET; run `callproof index rebuild` with the secret this server uses".into(),
            ));
        }
        Ok(state)
    }

    /// Indexes an evidence object just written by this server (best effort:
    /// a failure is logged, and the catch-up brings the row later).
    pub async fn index_written(&self, key: &ObjectKey, bytes: &Bytes) {
        if !followed(key.as_str()) {
            return;
        }
        let result = async {
            let state = self.index.state().await?;
            if state.generation == 0 {
                return Ok(());
            }
            if let Some(change) = self.change(key.as_str(), bytes).await? {
                self.index.apply(state.generation, &[change], None).await?;
            }
            Ok::<(), IndexError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(key = %key, error = %e, "search index not updated for a new object; the next catch-up will add it");
        }
    }

    /// The keys this indexer trusts, read from the seal chain once and kept.
    pub async fn trusted_keys(&self) -> Result<Vec<PublicKey>, IndexError> {
        let known = self.keys.read().await.clone();
        if !known.is_empty() {
            return Ok(known);
        }
        let fresh = crate::evidence::verify::trusted_keys(self.store.as_ref(), &self.trust)
            .await
            .map_err(|e| IndexError(format!("cannot read the trusted keys: {e}")))?;
        *self.keys.write().await = fresh.clone();
        Ok(fresh)
    }

    async fn trusted(&self, bytes: &[u8], sig: Option<&Bytes>) -> Result<bool, IndexError> {
        let Some(sig) = sig else {
            return Ok(false);
        };
        if self
            .keys
            .read()
            .await
            .iter()
            .any(|k| k.verifies(bytes, sig))
        {
            return Ok(true);
        }
        // A key this indexer has not seen yet: a rotation since it last looked.
        let fresh = crate::evidence::verify::trusted_keys(self.store.as_ref(), &self.trust)
            .await
            .map_err(|e| IndexError(format!("cannot read the trusted keys: {e}")))?;
        let ok = fresh.iter().any(|k| k.verifies(bytes, sig));
        *self.keys.write().await = fresh;
        Ok(ok)
    }

    /// The change a stored, trusted object makes, checked against its path.
    async fn change(&self, key: &str, bytes: &Bytes) -> Result<Option<Change>, IndexError> {
        let Some(name) = named(key) else {
            return Ok(None);
        };
        let corrupt = |what: &str| {
            tracing::warn!(
                key,
                "{what}: not indexed; `callproof records verify --all` names the problem"
            );
            Ok(None)
        };
        match name {
            Named::Version { id, version } => {
                let Ok(record) = serde_json::from_slice::<ConfirmationRecord>(bytes) else {
                    return corrupt("a record version that does not parse");
                };
                if record.record_id.to_string() != id || record.version != version {
                    return corrupt("a record version stored under another record's path");
                }
                Ok(Some(Change::Record(Box::new(
                    self.row(&record, bytes).await?,
                ))))
            }
            Named::Hold { id, n } => {
                let fact = serde_json::from_slice::<HoldFact>(bytes).ok();
                match fact {
                    Some(f) if f.record_id == id && f.n == n => Ok(Some(Change::Hold {
                        record_id: id,
                        n,
                        held: f.state == HoldState::Held,
                    })),
                    // A hold fact that does not count holds, as in evidence.
                    _ => Ok(Some(Change::Hold {
                        record_id: id,
                        n,
                        held: true,
                    })),
                }
            }
            Named::Tombstone { id } => match serde_json::from_slice::<Tombstone>(bytes) {
                Ok(t) if t.record_id == id => Ok(Some(Change::Purged { record_id: id })),
                _ => corrupt("a tombstone that does not parse or names another record"),
            },
        }
    }

    async fn row(&self, record: &ConfirmationRecord, bytes: &[u8]) -> Result<Row, IndexError> {
        let c = &record.confirmation;
        let text = |v: serde_json::Result<serde_json::Value>| {
            v.ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        // The record keeps only the masked number; the request has the whole one.
        let request_key =
            ObjectKey::new(format!("confirmations/{}/request.json", record.record_id))
                .map_err(|e| IndexError(e.to_string()))?;
        let phone_hmac = match self.store.get(&request_key).await {
            Ok(Some(b)) => serde_json::from_slice::<ConfirmationRequest>(&b)
                .map(|r| self.phones.phone(r.customer.phone.as_str()))
                .unwrap_or_default(),
            Ok(None) => String::new(),
            Err(e) => return Err(IndexError(format!("cannot read {request_key}: {e}"))),
        };
        Ok(Row {
            record_id: record.record_id.to_string(),
            version: record.version,
            sha256: sha256_hex(bytes),
            account_id: c.account_id.clone(),
            confirmation_number: c.confirmation_number.to_string(),
            phone_hmac,
            kind: text(serde_json::to_value(c.kind)),
            outcome: text(serde_json::to_value(record.outcome.status)),
            status: text(serde_json::to_value(record.status)),
            agent_id: c.agent_id.clone(),
            requested_at: c.requested_at,
            hold_n: 0,
            held: false,
            purged: false,
        })
    }

    /// Reads `key` and its signature and answers its change when it is
    /// trusted: signed by a trusted key, or an unsigned format-1 record
    /// listed in the backfill seal (`backfill`). `sealed_sha256`, the hash a
    /// seal lists for it, must match the bytes read.
    async fn read_change(
        &self,
        key: &str,
        sealed_sha256: Option<&str>,
        backfill: bool,
    ) -> Result<Option<Change>, IndexError> {
        if !followed(key) {
            return Ok(None);
        }
        let k = ObjectKey::new(key).map_err(|e| IndexError(e.to_string()))?;
        let Some((bytes, sig)) = read_signed(self.store.as_ref(), &k)
            .await
            .map_err(|e| IndexError(format!("cannot read {key}: {e}")))?
        else {
            tracing::warn!(key, "a sealed object is missing from the store: not indexed; `callproof records verify --all` reports it");
            return Ok(None);
        };
        let as_sealed = sealed_sha256.is_none_or(|h| h == sha256_hex(&bytes));
        let signed = as_sealed && self.trusted(&bytes, sig.as_ref()).await?;
        let format_one =
            as_sealed && backfill && key.starts_with("records/") && is_unsigned_v1(&bytes);
        if !signed && !format_one {
            if key.starts_with("holds/") {
                // A hold fact that does not count still holds (see `evidence::hold`).
                return self.change(key, &bytes).await.map(|c| match c {
                    Some(Change::Hold { record_id, n, .. }) => Some(Change::Hold {
                        record_id,
                        n,
                        held: true,
                    }),
                    other => other,
                });
            }
            let why = if as_sealed {
                "an object not signed by a trusted key"
            } else {
                "an object changed since it was sealed"
            };
            tracing::warn!(
                key,
                "{why}: not indexed; `callproof records verify --all` reports it"
            );
            return Ok(None);
        }
        self.change(key, &bytes).await
    }

    /// Seal `n`, checked before anything it lists is indexed: its number, its
    /// link to `previous` (the seal before it), and its signature by a
    /// trusted key. `None` when there is no seal `n`.
    async fn checked_seal(
        &self,
        n: u64,
        previous: &SealMark,
    ) -> Result<Option<(Seal, SealMark)>, IndexError> {
        let Some((seal, mark, bytes)) = self.seal_bytes(n).await? else {
            return Ok(None);
        };
        let refuse = |why: String| {
            Err(IndexError(format!(
                "seal {n} {why}: the search index stops before it; `callproof records verify --all` names the problem"
            )))
        };
        if seal.seal != n {
            return refuse(format!("says it is seal {}", seal.seal));
        }
        let linked = if n == 1 {
            seal.previous == NO_PREVIOUS
        } else {
            previous.seal + 1 == n && seal.previous == previous.sha256
        };
        if !linked {
            return refuse("does not link to the seal before it".into());
        }
        let key = seal_key(n).map_err(|e| IndexError(e.to_string()))?;
        let sig_key = signature_key(&key, &bytes).map_err(|e| IndexError(e.to_string()))?;
        let sig = self
            .store
            .get(&sig_key)
            .await
            .map_err(|e| IndexError(format!("cannot read {sig_key}: {e}")))?;
        if !self.trusted(&bytes, sig.as_ref()).await? {
            return refuse("is not signed by a trusted key".into());
        }
        Ok(Some((seal, mark)))
    }

    /// Seal `n`, its hash and bytes, or `None` when there is none.
    async fn seal_bytes(&self, n: u64) -> Result<Option<(Seal, SealMark, Bytes)>, IndexError> {
        let key = seal_key(n).map_err(|e| IndexError(e.to_string()))?;
        let Some(bytes) = self
            .store
            .get(&key)
            .await
            .map_err(|e| IndexError(format!("cannot read {key}: {e}")))?
        else {
            return Ok(None);
        };
        let seal: Seal = serde_json::from_slice(&bytes)
            .map_err(|e| IndexError(format!("{key} does not parse: {e}")))?;
        let mark = SealMark {
            seal: n,
            sha256: sha256_hex(&bytes),
        };
        Ok(Some((seal, mark, bytes)))
    }

    /// Seal `n` and its hash, or `None` when there is none.
    async fn seal(&self, n: u64) -> Result<Option<(Seal, SealMark)>, IndexError> {
        Ok(self.seal_bytes(n).await?.map(|(s, m, _)| (s, m)))
    }

    /// The changes of every followed object a seal lists.
    async fn seal_changes(&self, seal: &Seal) -> Result<Vec<Change>, IndexError> {
        let listed: Vec<(&str, &str)> = seal
            .objects
            .iter()
            .filter(|o| followed(&o.key))
            .map(|o| (o.key.as_str(), o.sha256.as_str()))
            .collect();
        // Only the first seal is a backfill seal, whatever a seal says.
        let backfill = seal.backfill && seal.seal == 1;
        let mut changes = Vec::new();
        for chunk in listed.chunks(READ_AHEAD) {
            let reads: Vec<_> = chunk
                .iter()
                .map(|(k, sha)| self.read_change(k, Some(sha), backfill))
                .collect();
            changes.extend(try_join_all(reads).await?.into_iter().flatten());
        }
        Ok(changes)
    }

    /// Applies every seal after `from` to `generation`, moving its last seal
    /// with each; answers the last seal read and the changes applied.
    async fn follow_seals(
        &self,
        generation: u64,
        from: SealMark,
        move_mark: bool,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(SealMark, u64, usize), IndexError> {
        // Following into a generation that is not current is a rebuild.
        let rebuilding = !move_mark;
        let mut mark = from;
        let mut seals = 0;
        let mut applied = 0;
        while let Some((seal, next)) = self.checked_seal(mark.seal + 1, &mark).await? {
            self.renew_lease().await?;
            if rebuilding {
                self.take_rebuild_lease().await?;
            }
            let changes = self.seal_changes(&seal).await?;
            applied += changes.len();
            self.index
                .apply(generation, &changes, move_mark.then_some(&next))
                .await?;
            mark = next;
            seals += 1;
            progress(mark.seal);
        }
        Ok((mark, seals, applied))
    }

    /// Indexes every object announced and not yet sealed (once each).
    async fn follow_pending(&self, generation: u64) -> Result<usize, IndexError> {
        let markers = self
            .store
            .list(MARKER_PREFIX)
            .await
            .map_err(|e| IndexError(format!("cannot list {MARKER_PREFIX}: {e}")))?;
        let mut guard = self.pending_done.lock().await;
        // Markers applied to another generation (before a rebuild here or in
        // another process) are applied again to this one.
        if guard.0 != generation {
            *guard = (generation, HashSet::new());
        }
        let done = &mut guard.1;
        let listed: HashSet<String> = markers.iter().map(|k| k.as_str().to_owned()).collect();
        done.retain(|k| listed.contains(k));
        let mut changes = Vec::new();
        let mut taken = Vec::new();
        let mut applied = 0;
        for marker in markers {
            if done.contains(marker.as_str()) {
                continue;
            }
            let Some(bytes) = self
                .store
                .get(&marker)
                .await
                .map_err(|e| IndexError(format!("cannot read {marker}: {e}")))?
            else {
                continue;
            };
            let Ok(m) = serde_json::from_slice::<Marker>(&bytes) else {
                continue;
            };
            if !followed(&m.key) {
                done.insert(marker.as_str().to_owned());
                continue;
            }
            let k = ObjectKey::new(m.key.as_str()).map_err(|e| IndexError(e.to_string()))?;
            // Announced, not yet written (or never will be): look again next time.
            if self
                .store
                .head(&k)
                .await
                .map_err(|e| IndexError(format!("cannot read {k}: {e}")))?
                .is_none()
            {
                continue;
            }
            if let Some(c) = self.read_change(&m.key, None, false).await? {
                changes.push(c);
            }
            taken.push(marker.as_str().to_owned());
            // Many pending objects (a large store before its first seal)
            // go in in batches, so memory stays small and progress is kept.
            if taken.len() >= APPLY_BATCH {
                self.index.apply(generation, &changes, None).await?;
                applied += changes.len();
                changes.clear();
                done.extend(taken.drain(..));
            }
        }
        self.index.apply(generation, &changes, None).await?;
        done.extend(taken);
        Ok(applied + changes.len())
    }

    /// Renews the SQLite index lease, where there is one; a lost lease makes
    /// searches answer 503 until it is held again.
    async fn renew_lease(&self) -> Result<(), IndexError> {
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        match lease
            .take(super::SQLITE_LEASE, time::OffsetDateTime::now_utc())
            .await
        {
            Ok(Take::Held(_)) => {
                self.lease_lost.store(false, Ordering::Relaxed);
                Ok(())
            }
            Ok(Take::Busy(other)) => {
                self.lease_lost.store(true, Ordering::Relaxed);
                Err(IndexError(format!("another instance ({}) took the SQLite index lease on this bucket: this instance's index no longer sees every write; run one instance, or use CALLPROOF_INDEX_URL", other.owner)))
            }
            Err(e) => Err(IndexError(format!(
                "cannot renew the SQLite index lease: {e}"
            ))),
        }
    }

    /// Brings the index up to the store: rebuilds it when it was never built
    /// or no longer matches the seal chain, then reads every new seal and
    /// every object awaiting one.
    pub async fn catch_up(&self) -> Result<CatchUp, IndexError> {
        let _one = self.running.lock().await;
        self.renew_lease().await?;
        let state = self.index.state().await?;
        let fingerprint = self.phones.fingerprint();
        if state.generation > 0 && state.phone_fingerprint.as_deref() != Some(fingerprint.as_str())
        {
            return Err(IndexError("the search index was built with another CALLPROOF_INDEX_PHONE_SECRET; run `callproof index rebuild` with the secret this server uses".into()));
        }
        let stale = if state.generation == 0 {
            Some("it was never built".to_owned())
        } else if state.last_seal.seal > 0 {
            match self.seal(state.last_seal.seal).await? {
                None => Some(format!("seal {} it read is gone from the store", state.last_seal.seal)),
                Some((_, m)) if m.sha256 != state.last_seal.sha256 => Some(format!(
                    "seal {} in the store differs from the one it read (a restored store, or a changed index)",
                    state.last_seal.seal
                )),
                Some(_) => None,
            }
        } else {
            None
        };
        if let Some(why) = stale {
            tracing::warn!(index = %self.index.describe(), "rebuilding the search index: {why}");
            let (seals, changes) = self.rebuild_locked(&no_progress).await?;
            return Ok(CatchUp {
                seals,
                changes,
                rebuilt: true,
            });
        }
        let (_, seals, mut changes) = self
            .follow_seals(state.generation, state.last_seal, true, &no_progress)
            .await?;
        changes += self.follow_pending(state.generation).await?;
        Ok(CatchUp {
            seals,
            changes,
            rebuilt: false,
        })
    }

    /// Rebuilds the index from the store into a new generation, while
    /// searches keep reading the current one; `progress` gets each seal read.
    /// Answers the seals read and the rows written.
    pub async fn rebuild(
        &self,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(u64, usize), IndexError> {
        let _one = self.running.lock().await;
        self.rebuild_locked(progress).await
    }

    /// Takes (or renews) the store's rebuild lease: a second rebuild of the
    /// same index would drop the first one's new generation as it starts.
    async fn take_rebuild_lease(&self) -> Result<(), IndexError> {
        match self
            .rebuilds
            .take(REBUILD_LEASE, time::OffsetDateTime::now_utc())
            .await
        {
            Ok(Take::Held(_)) => Ok(()),
            Ok(Take::Busy(other)) => Err(IndexError(format!(
                "another process ({}) is rebuilding the search index, until {} at the latest; wait for it to finish",
                other.owner, other.expires_at
            ))),
            Err(e) => Err(IndexError(format!("cannot take the rebuild lease: {e}"))),
        }
    }

    async fn rebuild_locked(
        &self,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(u64, usize), IndexError> {
        self.take_rebuild_lease().await?;
        let result = self.rebuild_leased(progress).await;
        if let Err(e) = self.rebuilds.release(REBUILD_LEASE).await {
            tracing::warn!(error = %e, "cannot release the rebuild lease; it expires by itself");
        }
        result
    }

    async fn rebuild_leased(
        &self,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(u64, usize), IndexError> {
        let generation = self.index.start_generation().await?;
        let (mark, seals, mut changes) = self
            .follow_seals(generation, SealMark::none(), false, progress)
            .await?;
        changes += self.follow_pending(generation).await?;
        self.index
            .switch_generation(generation, &mark, &self.phones.fingerprint())
            .await?;
        tracing::info!(index = %self.index.describe(), generation, seals, rows = changes, last_seal = mark.seal, "search index rebuilt from the store");
        Ok((seals, changes))
    }

    /// Runs [`Indexer::catch_up`] now and then every `every` until the task is dropped.
    pub fn start(self: &Arc<Self>, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match me.catch_up().await {
                    Ok(c) if c.seals > 0 || c.changes > 0 => {
                        tracing::debug!(
                            seals = c.seals,
                            changes = c.changes,
                            rebuilt = c.rebuilt,
                            "search index caught up"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "search index catch-up failed; retrying"),
                }
                tokio::time::sleep(every).await;
            }
        })
    }

    /// Whether the record `id` still parses as an id (rows from an index are
    /// not trusted to hold one).
    pub fn record_id(id: &str) -> Option<ConfirmationId> {
        id.parse().ok()
    }
}

#[async_trait::async_trait]
impl crate::evidence::objects::WriteListener for Indexer {
    async fn written(&self, key: &ObjectKey, bytes: &Bytes) {
        self.index_written(key, bytes).await;
    }
}
