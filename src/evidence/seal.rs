//! Seals: every `seal_secs` the instance holding the seal lease lists each
//! evidence object announced since the last seal in a signed, chained seal.
//!
//! Seal N is `seals/<N:020>.json`, written once after its signature; it names
//! the SHA-256 of seal N-1, so a deleted or changed seal breaks the chain, and
//! lists each object's SHA-256, so a deleted or changed object is found. The
//! first seal of a store is a backfill seal listing every evidence object
//! already there (records written before signing may be unsigned only there).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::confirmations::{checked_key, create_bytes_retained, read_json, RepoError};
use crate::evidence::keys::PublicKey;
use crate::evidence::objects::{
    is_evidence, marker_key, sha256_hex, signature_key, Evidence, Marker, EVIDENCE_PREFIXES,
    MARKER_PREFIX,
};
use crate::evidence::trust::{statement_key, statement_old_signature_key, KeyStatement};
use crate::jobs::lease::{Leases, Take};
use crate::store::{ObjectKey, ObjectStore};

/// `schema` of every seal.
pub const SEAL_SCHEMA: &str = "callproof.seal.v1";

/// `previous` of seal 1.
pub const NO_PREVIOUS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Objects listed in one seal at most; more go into the next one at once.
pub const MAX_OBJECTS_PER_SEAL: usize = 10_000;

/// The lease the sealing instance holds.
const LEASE: &str = "seal";

/// One object as a seal lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SealedObject {
    /// Its key.
    pub key: String,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// An object that was announced and never stored within the grace period:
/// a crash between announcing and writing it, or a deletion before it was sealed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AnnouncedMissing {
    /// Its key.
    pub key: String,
    /// When it was announced.
    #[serde(with = "time::serde::rfc3339")]
    pub announced_at: OffsetDateTime,
}

/// A seal, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Seal {
    /// [`SEAL_SCHEMA`].
    pub schema: String,
    /// Its number, from 1.
    pub seal: u64,
    /// Hex SHA-256 of seal N-1's bytes; [`NO_PREVIOUS`] for seal 1.
    pub previous: String,
    /// When it was made (the server's clock).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Fingerprint of the key that signed it.
    pub signing_key: String,
    /// True for the first seal, which lists what was stored before sealing began.
    pub backfill: bool,
    /// The objects it lists.
    pub objects: Vec<SealedObject>,
    /// Objects announced and never stored.
    pub missing: Vec<AnnouncedMissing>,
    /// Reserved for an RFC 3161 timestamp token over the previous seal's hash.
    pub timestamp: Option<serde_json::Value>,
}

/// The newest seal: what an outside party keeps to catch truncation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Head {
    /// Its number; 0 when nothing was sealed yet.
    pub seal: u64,
    /// Hex SHA-256 of its bytes; `None` when nothing was sealed yet.
    pub sha256: Option<String>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
}

/// Where seal `n` lives.
pub fn seal_key(n: u64) -> Result<ObjectKey, RepoError> {
    checked_key(format!("seals/{n:020}.json"))
}

/// The numbers of every stored seal, ascending.
pub async fn seal_numbers(store: &dyn ObjectStore) -> Result<Vec<u64>, RepoError> {
    let mut out: Vec<u64> = store
        .list("seals/")
        .await?
        .iter()
        .filter_map(|k| k.file_name().strip_suffix(".json")?.parse().ok())
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// The newest seal's number and bytes, if any.
pub async fn head_bytes(store: &dyn ObjectStore) -> Result<Option<(u64, Bytes)>, RepoError> {
    for n in seal_numbers(store).await?.into_iter().rev() {
        if let Some(b) = store.get(&seal_key(n)?).await? {
            return Ok(Some((n, b)));
        }
    }
    Ok(None)
}

/// The newest seal as [`Head`].
pub async fn head(store: &dyn ObjectStore) -> Result<Head, RepoError> {
    Ok(match head_bytes(store).await? {
        None => Head {
            seal: 0,
            sha256: None,
            at: None,
        },
        Some((n, bytes)) => Head {
            seal: n,
            sha256: Some(sha256_hex(&bytes)),
            at: serde_json::from_slice::<Seal>(&bytes).ok().map(|s| s.at),
        },
    })
}

/// Sealer settings.
#[derive(Debug, Clone)]
pub struct SealSettings {
    /// How often pending objects are sealed.
    pub interval: Duration,
    /// How long an announced object may stay unstored before a seal lists it as missing.
    pub grace: Duration,
}

/// The sealer; cheap to clone.
#[derive(Clone)]
pub struct Sealer(Arc<Inner>);

struct Inner {
    evidence: Evidence,
    leases: Leases,
    settings: SealSettings,
    /// Keys whose signatures the sealer accepts on what it lists: its own, a
    /// previous signing key, and the configured trusted keys.
    accepted: Vec<PublicKey>,
    highest_seen: AtomicU64,
    alarm: Mutex<Option<String>>,
}

/// What one sealing pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealed {
    /// Another instance holds the seal lease.
    NotLeader,
    /// Nothing was waiting.
    Nothing,
    /// This instance wrote seal `seal` listing `objects` objects.
    Wrote {
        /// The seal's number.
        seal: u64,
        /// Hex SHA-256 of its bytes.
        sha256: String,
        /// How many objects it lists.
        objects: usize,
    },
    /// Another instance wrote the seal this one was about to write.
    Lost,
}

impl Sealer {
    /// A sealer writing with `evidence`'s key, accepting objects signed by `accepted` too.
    pub fn new(
        evidence: Evidence,
        leases: Leases,
        settings: SealSettings,
        accepted: Vec<PublicKey>,
    ) -> Self {
        let mut keys = vec![evidence.signer().public().clone()];
        for k in accepted {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        Sealer(Arc::new(Inner {
            evidence,
            leases,
            settings,
            accepted: keys,
            highest_seen: AtomicU64::new(0),
            alarm: Mutex::new(None),
        }))
    }

    /// What is wrong with the chain as this instance saw it, if anything.
    pub fn alarm(&self) -> Option<String> {
        self.0.alarm.lock().ok().and_then(|a| a.clone())
    }

    fn raise(&self, why: String) {
        tracing::error!(alarm = %why, "the seal chain needs an operator");
        if let Ok(mut a) = self.0.alarm.lock() {
            *a = Some(why);
        }
    }

    /// Seals every interval, for as long as the process runs.
    pub fn start(&self) {
        let sealer = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(sealer.0.settings.interval);
            loop {
                tick.tick().await;
                // A full seal is followed at once by the next.
                loop {
                    match sealer.seal_once(OffsetDateTime::now_utc()).await {
                        Ok(Sealed::Wrote { objects, .. }) if objects >= MAX_OBJECTS_PER_SEAL => {
                            continue
                        }
                        Ok(_) => break,
                        Err(e) => {
                            tracing::error!(error = %e, "sealing failed; pending objects are sealed next interval");
                            break;
                        }
                    }
                }
            }
        });
    }

    fn signature_ok(&self, bytes: &[u8], sig: Option<&Bytes>) -> bool {
        sig.is_some_and(|s| self.0.accepted.iter().any(|k| k.verifies(bytes, s)))
    }

    /// One pass at `now`: when this instance holds the seal lease and objects
    /// wait, writes the next seal and then removes the markers it lists.
    pub async fn seal_once(&self, now: OffsetDateTime) -> Result<Sealed, RepoError> {
        let inner = &self.0;
        let store = inner.evidence.store().as_ref();
        if let Take::Busy(_) = inner.leases.take(LEASE, now).await? {
            return Ok(Sealed::NotLeader);
        }
        let own = inner.evidence.signer().public().fingerprint();
        let head = head_bytes(store).await?;
        let seen = inner.highest_seen.load(Ordering::Relaxed);
        let (n, previous) = match &head {
            None if seen > 0 => {
                self.raise(format!("no seal is stored, but seal {seen} was seen before: every seal was deleted; sealing stops until an operator restarts callproof (a new backfill seal would bless whatever is stored now)"));
                return Ok(Sealed::Nothing);
            }
            None => (1, NO_PREVIOUS.to_owned()),
            Some((n, bytes)) => {
                if *n < seen {
                    self.raise(format!("the newest seal is {n}, but seal {seen} was seen before: seals were deleted or the store was restored; sealing stops until an operator restarts callproof"));
                    return Ok(Sealed::Nothing);
                }
                let sig = store.get(&signature_key(&seal_key(*n)?, bytes)?).await?;
                if !self.signature_ok(bytes, sig.as_ref()) {
                    self.raise(format!("seal {n} is not signed by a key this instance trusts: it was written by someone else, or this instance runs with a key no rotation statement introduced (set CALLPROOF_PREVIOUS_SIGNING_KEY_FILE to the key that signed it for one restart)"));
                    return Ok(Sealed::Nothing);
                }
                let signer = serde_json::from_slice::<Seal>(bytes)
                    .map(|s| s.signing_key)
                    .unwrap_or_default();
                if signer != own && !self.introduced(&signer).await? {
                    self.raise(format!("seal {n} is signed by key {signer} and this instance signs with {own}, and no rotation statement links them; set CALLPROOF_PREVIOUS_SIGNING_KEY_FILE to the previous key for one restart"));
                    return Ok(Sealed::Nothing);
                }
                inner.highest_seen.fetch_max(*n, Ordering::Relaxed);
                (n + 1, sha256_hex(bytes))
            }
        };
        let mut markers: Vec<(ObjectKey, Option<Marker>)> = Vec::new();
        for k in store.list(MARKER_PREFIX).await? {
            let m = read_json::<Marker>(store, &k).await.unwrap_or(None);
            markers.push((k, m));
        }
        // Key statements first, so a rotation is never left for a later seal.
        markers.sort_by_key(|(_, m)| {
            m.as_ref()
                .is_none_or(|m| !m.key.starts_with("keys/statements/"))
        });
        let mut candidates: Vec<(String, Option<OffsetDateTime>)> = Vec::new();
        if head.is_none() {
            for prefix in EVIDENCE_PREFIXES {
                for k in store.list(prefix).await? {
                    if is_evidence(k.as_str()) {
                        candidates.push((k.as_str().to_owned(), None));
                    }
                }
            }
        }
        for (_, m) in &markers {
            if let Some(m) = m {
                if !candidates.iter().any(|(k, _)| *k == m.key) {
                    candidates.push((m.key.clone(), Some(m.at)));
                }
            }
        }
        let grace = time::Duration::try_from(inner.settings.grace).unwrap_or(time::Duration::HOUR);
        let (mut objects, mut missing, mut refused) = (Vec::new(), Vec::new(), 0usize);
        for (key, announced) in candidates {
            // The backfill seal lists everything stored before sealing began.
            if head.is_some() && objects.len() + missing.len() >= MAX_OBJECTS_PER_SEAL {
                break;
            }
            if !is_evidence(&key) {
                refused += 1;
                tracing::error!(key = %key, "a marker names an object outside the evidence prefixes; it is not sealed");
                continue;
            }
            let k = checked_key(key.clone())?;
            match store.get(&k).await? {
                None => {
                    if let Some(at) = announced.filter(|at| *at + grace < now) {
                        missing.push(AnnouncedMissing {
                            key,
                            announced_at: at,
                        });
                    }
                }
                Some(bytes) => {
                    let sig = store.get(&signature_key(&k, &bytes)?).await?;
                    let unsigned_before_signing = head.is_none()
                        && key.starts_with("records/")
                        && crate::record::is_unsigned_v1(&bytes);
                    if !unsigned_before_signing && !self.signature_ok(&bytes, sig.as_ref()) {
                        refused += 1;
                        tracing::error!(key = %key, "not sealed: it has no valid signature by a key this instance trusts (written by someone other than callproof?); verification reports it");
                        continue;
                    }
                    objects.push(SealedObject {
                        sha256: sha256_hex(&bytes),
                        size: bytes.len() as u64,
                        key,
                    });
                }
            }
        }
        if objects.is_empty() && missing.is_empty() {
            if refused > 0 {
                tracing::warn!(refused, "objects are waiting that cannot be sealed");
            }
            return Ok(Sealed::Nothing);
        }
        let seal = Seal {
            schema: SEAL_SCHEMA.to_owned(),
            seal: n,
            previous,
            at: now,
            signing_key: own,
            backfill: head.is_none(),
            objects,
            missing,
            timestamp: None,
        };
        let key = seal_key(n)?;
        let bytes = serde_json::to_vec_pretty(&seal).map_err(|e| RepoError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        let signature = Bytes::from(inner.evidence.signer().sign(&bytes));
        create_bytes_retained(store, &signature_key(&key, &bytes)?, signature, None).await?;
        let sha256 = sha256_hex(&bytes);
        if !create_bytes_retained(store, &key, Bytes::from(bytes), None).await? {
            // Another instance wrote seal n: it must be signed by a key we accept.
            if let Some(winner) = store.get(&key).await? {
                let sig = store.get(&signature_key(&key, &winner)?).await?;
                if !self.signature_ok(&winner, sig.as_ref()) {
                    self.raise(format!("seal {n} was written by someone else: its signature is not by a trusted key"));
                }
            }
            return Ok(Sealed::Lost);
        }
        inner.highest_seen.fetch_max(n, Ordering::Relaxed);
        let listed: Vec<&str> = seal
            .objects
            .iter()
            .map(|o| o.key.as_str())
            .chain(seal.missing.iter().map(|m| m.key.as_str()))
            .collect();
        // The markers that named what this seal lists, whatever their file names.
        let mut done: Vec<ObjectKey> = Vec::new();
        for key in &listed {
            done.push(marker_key(key)?);
        }
        for (k, m) in &markers {
            if m.as_ref().is_some_and(|m| listed.contains(&m.key.as_str())) && !done.contains(k) {
                done.push(k.clone());
            }
        }
        for m in &done {
            if let Err(e) = store.delete(m).await {
                tracing::warn!(marker = %m, error = %e, "cannot remove a marker after sealing; the object is listed again next seal");
            }
        }
        tracing::info!(seal = n, sha256 = %sha256, objects = seal.objects.len(), missing = seal.missing.len(), "sealed; keep this head outside callproof to catch truncation");
        Ok(Sealed::Wrote {
            seal: n,
            sha256,
            objects: seal.objects.len(),
        })
    }

    /// True when a valid statement signed by `old` introduces this instance's key.
    async fn introduced(&self, old: &str) -> Result<bool, RepoError> {
        let store = self.0.evidence.store().as_ref();
        let own = self.0.evidence.signer().public().fingerprint();
        let key = statement_key(&own)?;
        let Some(bytes) = store.get(&key).await? else {
            return Ok(false);
        };
        let new_sig = store.get(&signature_key(&key, &bytes)?).await?;
        let old_sig = store
            .get(&statement_old_signature_key(&key, &bytes)?)
            .await?;
        let (Some(new_sig), Some(old_sig)) = (new_sig, old_sig) else {
            return Ok(false);
        };
        Ok(KeyStatement::check(&bytes, &new_sig, &old_sig)
            .is_some_and(|(o, n)| o.fingerprint() == old && n.fingerprint() == own))
    }
}
