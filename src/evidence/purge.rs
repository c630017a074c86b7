//! Purge under retention: finds the confirmations past their retention and
//! not on hold, and deletes everything stored for them behind a signed, sealed tombstone.
//!
//! One confirmation is purged in the order of ARCHITECTURE.md's rule: an
//! audit entry, then the tombstone `tombstones/<id>.json` listing every
//! object with its SHA-256 and size (announced, signed, written once), then,
//! once a seal lists the tombstone, the deletion of exactly those objects
//! (every S3 version). A purge stopped anywhere is finished by running it
//! again: a validly signed tombstone whose objects partly remain has exactly
//! the remaining listed objects deleted, after retention and holds are checked
//! again; nothing it does not list is ever deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::{Config, Retention};
use crate::confirmations::{checked_key, read_json, ConfirmationRequest, RepoError};
use crate::domain::{ChangeKind, ConfirmationId};
use crate::evidence::audit::{self, Actor, AuditEntry};
use crate::evidence::hold::{holds_prefix, read_holds, HoldState};
use crate::evidence::keys::PublicKey;
use crate::evidence::objects::{is_evidence, marker_key, read_signed, Evidence};
use crate::evidence::seal::{seal_key, seal_numbers, Seal, SealSettings, SealedObject, Sealer};
use crate::evidence::tombstone::{tombstone_key, Tombstone, TOMBSTONE_SCHEMA};
use crate::jobs::lease::Leases;
use crate::record::ConfirmationRecord;
use crate::store::{ObjectKey, ObjectStore};

/// The action audit entries of a purge carry.
pub const AUDIT_ACTION: &str = "records.purge";

/// The route audit entries of a purge name: the command, not an HTTP route.
pub const AUDIT_ROUTE: &str = "callproof records purge";

/// The lease the sealer holds (`seal.rs` takes it under this name).
const SEAL_LEASE: &str = "seal";

/// What one purge run is asked to do.
#[derive(Debug, Clone)]
pub struct PurgeOptions {
    /// The time retention is compared with (now, unless testing).
    pub now: OffsetDateTime,
    /// Only report what would be deleted; write and delete nothing.
    pub dry_run: bool,
    /// Why, for the audit entries and tombstones.
    pub reason: String,
    /// Who runs it.
    pub actor: Actor,
    /// How long to wait for the seal that lists the tombstones.
    pub seal_wait: Duration,
}

/// The store, keys and settings a purge works with.
pub struct Purger {
    evidence: Evidence,
    /// Keys whose signatures count on holds and tombstones.
    keys: Vec<PublicKey>,
    /// The same keys, as verification takes them.
    trust: crate::evidence::trust::Trust,
    /// How long evidence may wait for its seal (see [`Config::seal_grace`]).
    grace: std::time::Duration,
    retention: Retention,
    sealer: Sealer,
    leases: Leases,
}

/// One confirmation purged (or, in a dry run, to be purged).
#[derive(Debug, Clone)]
pub struct Purged {
    /// The confirmation id.
    pub id: String,
    /// Its kind of change.
    pub kind: String,
    /// When its retention ended.
    pub retain_until: OffsetDateTime,
    /// The keys deleted (or to be deleted), in deletion order.
    pub objects: Vec<String>,
    /// True when an earlier, interrupted purge wrote its tombstone.
    pub finished_earlier_purge: bool,
}

/// What a purge run found and did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Confirmations purged (in a dry run: that would be).
    pub purged: Vec<Purged>,
    /// Past retention but on hold (or with hold facts that do not count), with why.
    pub held: Vec<(String, Vec<String>)>,
    /// Confirmations still in retention.
    pub in_retention: usize,
    /// Confirmations purged before, nothing of them left but the tombstone.
    pub already_purged: usize,
    /// Confirmations left alone because something is wrong, with what.
    pub problems: Vec<(String, String)>,
    /// Tombstones written whose seal did not come in time: run purge again.
    pub awaiting_seal: Vec<String>,
}

/// A confirmation to purge: what the tombstone lists, and what remains of it.
#[derive(Debug, Clone)]
struct Plan {
    id: ConfirmationId,
    kind: String,
    retention_days: u32,
    retain_until: OffsetDateTime,
    objects: Vec<SealedObject>,
    /// Set when a tombstone was already stored (an interrupted purge).
    earlier: bool,
    /// The tombstone stored for it, once written or read.
    tombstone: Option<Tombstone>,
}

/// What to do with one confirmation.
enum Decision {
    Purge(Box<Plan>),
    InRetention,
    Held(Vec<String>),
    AlreadyPurged,
    Problem(String),
}

/// What every confirmation shares, read once per run.
#[derive(Default)]
struct Index {
    /// Keys listed in any seal under `holds/` or `tombstones/`, with their SHA-256.
    sealed: HashMap<String, String>,
    /// The highest seal number read.
    last_seal: u64,
    /// Call mappings `calls/<digest>/<id>.json`, by id.
    calls: HashMap<String, Vec<ObjectKey>>,
    /// Job objects (queued, parked, failures, leases), by confirmation id.
    jobs: HashMap<String, Vec<ObjectKey>>,
}

fn actor_of_env() -> Actor {
    let name = std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "operator".to_owned());
    Actor {
        role: "operator".to_owned(),
        name,
    }
}

/// Hex SHA-256 and size of a stored object, streamed (audio can be large);
/// `None` when it is not there.
async fn hash_object(
    store: &dyn ObjectStore,
    key: &ObjectKey,
) -> Result<Option<(String, u64)>, RepoError> {
    let Some(mut stream) = store.read_range(key, 0..u64::MAX).await? else {
        // Bookkeeping removed earlier may leave versions behind a delete marker (S3).
        return Ok(store
            .get_newest_version(key)
            .await?
            .map(|b| (hex::encode(Sha256::digest(&b)), b.len() as u64)));
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RepoError::Corrupt {
            key: key.to_string(),
            reason: format!("reading it broke off: {e}"),
        })?;
        size += chunk.len() as u64;
        // Off the runtime, like every other hash of audio.
        hasher = tokio::task::spawn_blocking(move || {
            hasher.update(&chunk);
            hasher
        })
        .await
        .map_err(|e| RepoError::Corrupt {
            key: key.to_string(),
            reason: format!("hashing failed: {e}"),
        })?;
    }
    Ok(Some((hex::encode(hasher.finalize()), size)))
}

/// The id a key under `prefix` names in its second segment.
fn id_of(key: &ObjectKey) -> Option<ConfirmationId> {
    let second = key.as_str().split('/').nth(1)?;
    second.strip_suffix(".json").unwrap_or(second).parse().ok()
}

/// `held since <time> by <role> <name>: <reason>`.
fn held_since(f: &crate::evidence::hold::HoldFact) -> String {
    let at = f.at.format(&Rfc3339).unwrap_or_else(|_| f.at.to_string());
    format!(
        "held since {at} by {} {}: {}",
        f.actor.role, f.actor.name, f.reason
    )
}

/// The order objects are deleted in: what makes callproof come back first
/// (jobs, markers), then call mappings and facts, then records, then holds.
fn deletion_rank(key: &str) -> u8 {
    if ["jobs/", "open/", "pending/", "seal/"]
        .iter()
        .any(|p| key.starts_with(p))
    {
        0
    } else if key.starts_with("calls/") {
        1
    } else if key.starts_with("confirmations/") {
        2
    } else if key.starts_with("records/") {
        3
    } else {
        4
    }
}

impl Purger {
    /// A purger over `evidence`'s store, trusting `keys` (the signing key's
    /// public key first), sealing with `seal` settings under `leases`.
    pub fn new(
        evidence: Evidence,
        keys: Vec<PublicKey>,
        retention: Retention,
        leases: Leases,
        seal: SealSettings,
    ) -> Self {
        let mut trust = crate::evidence::trust::Trust::default();
        for k in &keys {
            trust.add(k.clone());
        }
        let grace = seal.grace;
        let sealer = Sealer::new(evidence.clone(), leases.clone(), seal, keys.clone());
        Purger {
            evidence,
            keys,
            trust,
            grace,
            retention,
            sealer,
            leases,
        }
    }

    fn store(&self) -> &dyn ObjectStore {
        self.evidence.store().as_ref()
    }

    fn signed_by_trusted(&self, bytes: &[u8], sig: Option<&bytes::Bytes>) -> bool {
        sig.is_some_and(|s| self.keys.iter().any(|k| k.verifies(bytes, s)))
    }

    /// Reads seals after `index.last_seal`, noting what they list under
    /// `holds/` and `tombstones/`.
    async fn read_seals(&self, index: &mut Index) -> Result<(), RepoError> {
        for n in seal_numbers(self.store()).await? {
            if n <= index.last_seal {
                continue;
            }
            let Some(seal) = read_json::<Seal>(self.store(), &seal_key(n)?).await? else {
                continue;
            };
            for o in seal.objects {
                if o.key.starts_with("holds/") || o.key.starts_with("tombstones/") {
                    index.sealed.insert(o.key, o.sha256);
                }
            }
            index.last_seal = n;
        }
        Ok(())
    }

    async fn build_index(&self) -> Result<Index, RepoError> {
        let store = self.store();
        let mut index = Index::default();
        self.read_seals(&mut index).await?;
        for k in store.list_versions("calls/").await? {
            if let Some(id) = k.file_name().strip_suffix(".json") {
                index
                    .calls
                    .entry(id.to_owned())
                    .or_default()
                    .push(k.clone());
            }
        }
        for job in crate::jobs::job_statuses(store, None).await? {
            let mut keys = vec![if job.state == "parked" {
                checked_key(format!("jobs/parked/{}.json", job.id))?
            } else {
                checked_key(format!("{}{}.json", job.kind.queued_prefix(), job.id))?
            }];
            keys.extend(store.list(&format!("jobs/failures/{}/", job.id)).await?);
            keys.extend(store.list(&format!("jobs/leases/{}/", job.id)).await?);
            index
                .jobs
                .entry(job.confirmation_id.to_string())
                .or_default()
                .extend(keys);
        }
        Ok(index)
    }

    /// Every confirmation id the store names: requests, records, holds, tombstones.
    async fn ids(&self) -> Result<BTreeSet<ConfirmationId>, RepoError> {
        let mut ids = BTreeSet::new();
        for prefix in ["confirmations/", "records/", "holds/", "tombstones/"] {
            for k in self.store().list(prefix).await? {
                if let Some(id) = id_of(&k) {
                    ids.insert(id);
                }
            }
        }
        Ok(ids)
    }

    /// The kind and retention of `id`: the later of what its record versions
    /// state and what its request and today's settings give; `None` with
    /// neither a request nor a record.
    async fn retention_of(
        &self,
        id: &ConfirmationId,
    ) -> Result<Option<(ChangeKind, u32, OffsetDateTime)>, RepoError> {
        let store = self.store();
        let request: Option<ConfirmationRequest> = read_json(
            store,
            &checked_key(format!("confirmations/{id}/request.json"))?,
        )
        .await?;
        let mut best: Option<(ChangeKind, u32, OffsetDateTime)> = request.map(|r| {
            let days = self.retention.days(r.kind);
            (
                r.kind,
                days,
                r.created_at + time::Duration::days(i64::from(days)),
            )
        });
        for k in store.list(&format!("records/{id}/")).await? {
            if !k.as_str().ends_with(".json") {
                continue;
            }
            let Some(r) = read_json::<ConfirmationRecord>(store, &k).await? else {
                continue;
            };
            let later = best
                .as_ref()
                .is_none_or(|(_, _, until)| r.retention.retain_until > *until);
            if later {
                best = Some((
                    r.confirmation.kind,
                    r.retention.days,
                    r.retention.retain_until,
                ));
            }
        }
        Ok(best)
    }

    /// Why `id` is on hold, or nothing when it is not. Hold facts listed in
    /// `tombstone` (checked when it was written) are taken as they were then;
    /// any other must be a validly signed, newest-released history, and every
    /// sealed hold fact must still be stored or be listed in the tombstone.
    async fn hold_reasons(
        &self,
        id: &ConfirmationId,
        index: &Index,
        tombstone: Option<&Tombstone>,
    ) -> Result<Vec<String>, RepoError> {
        let history = read_holds(self.store(), &self.keys, id.as_str()).await?;
        let listed: HashMap<&str, &str> = tombstone
            .map(|t| {
                t.objects
                    .iter()
                    .map(|o| (o.key.as_str(), o.sha256.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        let mut why = Vec::new();
        let stored: HashMap<&str, &str> = history
            .facts
            .iter()
            .map(|f| (f.key.as_str(), f.sha256.as_str()))
            .collect();
        let prefix = holds_prefix(id.as_str());
        for (key, sha) in index.sealed.iter().filter(|(k, _)| k.starts_with(&prefix)) {
            match stored.get(key.as_str()) {
                Some(s) if s == sha => {}
                Some(_) => why.push(format!("{key} differs from what seal lists")),
                None if listed.get(key.as_str()) == Some(&sha.as_str()) => {}
                None => why.push(format!(
                    "{key} is listed in a seal and missing: a hold may have been removed"
                )),
            }
        }
        // Facts the tombstone does not list came after it was written.
        let newer: Vec<_> = history
            .facts
            .iter()
            .filter(|f| listed.get(f.key.as_str()) != Some(&f.sha256.as_str()))
            .collect();
        if tombstone.is_none() {
            why.extend(history.problems.iter().cloned());
            if let Some(f) = history.current().filter(|f| f.state == HoldState::Held) {
                why.push(held_since(f));
            }
        } else {
            for f in &newer {
                match (&f.fact, f.signed) {
                    (Some(_), true) => {}
                    _ => why.push(format!(
                        "{}: a hold fact written after the tombstone does not count",
                        f.key
                    )),
                }
            }
            let newest = newer.iter().rev().find_map(|f| f.fact.as_ref());
            if let Some(f) = newest.filter(|f| f.state == HoldState::Held) {
                why.push(held_since(f));
            }
        }
        Ok(why)
    }

    /// Every key stored for `id`, in deletion order: its facts, record
    /// versions, holds, call mappings, markers and jobs, each also when only
    /// earlier versions of it are left (a versioned store keeps them).
    async fn keys_of(
        &self,
        id: &ConfirmationId,
        index: &Index,
    ) -> Result<Vec<ObjectKey>, RepoError> {
        let store = self.store();
        let mut keys: BTreeSet<ObjectKey> = BTreeSet::new();
        for prefix in [
            format!("confirmations/{id}/"),
            format!("records/{id}/"),
            holds_prefix(id.as_str()),
        ] {
            keys.extend(store.list_versions(&prefix).await?);
        }
        let mut names = vec![format!("open/{id}"), format!("pending/records/{id}")];
        // Jobs are named by digests: of each recording (its audio directory
        // and its slot name it) and of the outcome callback.
        let mut jobs: BTreeSet<String> = BTreeSet::new();
        jobs.insert(crate::callbacks::job_id(id));
        for k in &keys {
            let parts: Vec<&str> = k.as_str().split('/').collect();
            if let ["confirmations", _, "audio", digest, ..] = parts.as_slice() {
                jobs.insert((*digest).to_owned());
            }
            if let ["confirmations", _, "recordings", _] = parts.as_slice() {
                if let Some(b) = store.get_newest_version(k).await? {
                    if let Some(d) = serde_json::from_slice::<serde_json::Value>(&b)
                        .ok()
                        .and_then(|v| v["recording"].as_str().map(str::to_owned))
                    {
                        jobs.insert(d);
                    }
                }
            }
        }
        for job in &jobs {
            names.push(format!("jobs/recordings/{job}.json"));
            names.push(format!("jobs/callbacks/{job}.json"));
            names.push(format!("jobs/parked/{job}.json"));
            names.push(format!("jobs/failures/{job}/"));
            names.push(format!("jobs/leases/{job}/"));
        }
        // The markers that announced its evidence to the sealer.
        for k in &keys {
            if is_evidence(k.as_str()) {
                names.push(marker_key(k.as_str())?.as_str().to_owned());
            }
        }
        for name in names {
            let exact = !name.ends_with('/');
            for k in store.list_versions(&name).await? {
                if !exact || k.as_str() == name {
                    keys.insert(k);
                }
            }
        }
        keys.extend(index.calls.get(id.as_str()).into_iter().flatten().cloned());
        keys.extend(index.jobs.get(id.as_str()).into_iter().flatten().cloned());
        // Audio a record names, wherever it is (today always under the request).
        for k in store.list(&format!("records/{id}/")).await? {
            if !k.as_str().ends_with(".json") {
                continue;
            }
            if let Ok(Some(r)) = read_json::<ConfirmationRecord>(store, &k).await {
                for a in r.recording.iter().flat_map(|rec| rec.audio.iter()) {
                    // Only this confirmation's own audio, whatever a record says.
                    if !crate::evidence::verify::belongs_to(&a.key, id.as_str()) {
                        continue;
                    }
                    if let Ok(key) = ObjectKey::new(&a.key) {
                        if store.head(&key).await?.is_some() {
                            keys.insert(key);
                        }
                    }
                }
            }
        }
        let mut keys: Vec<ObjectKey> = keys.into_iter().collect();
        keys.sort_by(|a, b| {
            (deletion_rank(a.as_str()), a.as_str()).cmp(&(deletion_rank(b.as_str()), b.as_str()))
        });
        Ok(keys)
    }

    /// The stored tombstone of `id`, if one is stored; an error string when
    /// it does not count (unsigned, unreadable, another record's).
    async fn tombstone(
        &self,
        id: &ConfirmationId,
    ) -> Result<Option<Result<Tombstone, String>>, RepoError> {
        let key = tombstone_key(id.as_str())?;
        let Some((bytes, sig)) = read_signed(self.store(), &key).await? else {
            return Ok(None);
        };
        if !self.signed_by_trusted(&bytes, sig.as_ref()) {
            return Ok(Some(Err(format!(
                "{key} has no valid signature by a trusted key: nothing is deleted on its word"
            ))));
        }
        Ok(Some(match serde_json::from_slice::<Tombstone>(&bytes) {
            Ok(t) if t.schema == TOMBSTONE_SCHEMA && t.record_id == id.as_str() => Ok(t),
            Ok(_) => Err(format!("{key} names another record or schema")),
            Err(e) => Err(format!("{key} is unreadable: {e}")),
        }))
    }

    /// What to do with `id` at `now`.
    async fn decide(
        &self,
        id: &ConfirmationId,
        index: &Index,
        now: OffsetDateTime,
    ) -> Result<Decision, RepoError> {
        let retention = self.retention_of(id).await?;
        if let Some(stored) = self.tombstone(id).await? {
            let t = match stored {
                Ok(t) => t,
                Err(why) => return Ok(Decision::Problem(why)),
            };
            let mut remaining = Vec::new();
            for o in &t.objects {
                let stored = self.store().list_versions(&o.key).await?;
                if stored.iter().any(|k| k.as_str() == o.key) {
                    remaining.push(o.clone());
                }
            }
            if remaining.is_empty() {
                let listed: BTreeSet<&str> = t.objects.iter().map(|o| o.key.as_str()).collect();
                let unlisted: Vec<String> = self
                    .keys_of(id, index)
                    .await?
                    .into_iter()
                    .map(|k| k.as_str().to_owned())
                    .filter(|k| !listed.contains(k.as_str()))
                    .collect();
                if !unlisted.is_empty() {
                    return Ok(Decision::Problem(format!(
                        "purged before, but objects its tombstone does not list are stored since: {}; they are left alone",
                        unlisted.join(", ")
                    )));
                }
                return Ok(Decision::AlreadyPurged);
            }
            // Retention and holds again: what remains says so too.
            if t.retain_until > now || retention.is_some_and(|(_, _, until)| until > now) {
                return Ok(Decision::Problem(format!(
                    "its tombstone says retained until {}, and it is still in retention at {now}: nothing is deleted",
                    t.retain_until
                )));
            }
            let why = self.hold_reasons(id, index, Some(&t)).await?;
            if !why.is_empty() {
                return Ok(Decision::Held(why));
            }
            remaining.sort_by(|a, b| {
                (deletion_rank(&a.key), &a.key).cmp(&(deletion_rank(&b.key), &b.key))
            });
            return Ok(Decision::Purge(Box::new(Plan {
                id: id.clone(),
                kind: t.kind.clone(),
                retention_days: t.retention_days,
                retain_until: t.retain_until,
                objects: remaining,
                earlier: true,
                tombstone: Some(t),
            })));
        }
        let Some((kind, days, until)) = retention else {
            return Ok(Decision::Problem(
                "no request and no record: its retention cannot be told, so nothing is deleted"
                    .into(),
            ));
        };
        if until > now {
            return Ok(Decision::InRetention);
        }
        let why = self.hold_reasons(id, index, None).await?;
        if !why.is_empty() {
            return Ok(Decision::Held(why));
        }
        // Its retention is read from its record versions: they must be the
        // signed, sealed ones, not ones a store writer put there.
        let noop = |_: u64, _: u64| {};
        let checked = crate::evidence::verify::verify(
            self.store(),
            &self.trust,
            &crate::evidence::verify::Scope::Record(id.to_string()),
            None,
            self.grace,
            &noop,
        )
        .await?;
        if let Some(f) = checked
            .findings
            .iter()
            .find(|f| f.severity == crate::evidence::verify::Severity::Problem)
        {
            return Ok(Decision::Problem(format!(
                "its evidence does not verify ({}: {}), so its retention cannot be trusted and nothing is deleted; see `callproof records verify {id}`",
                f.object, f.detail
            )));
        }
        let mut objects = Vec::new();
        for key in self.keys_of(id, index).await? {
            let (sha256, size) = match hash_object(self.store(), &key).await? {
                Some(found) => found,
                // Only delete markers are left of it (S3): no bytes.
                None if self
                    .store()
                    .list_versions(key.as_str())
                    .await?
                    .contains(&key) =>
                {
                    (hex::encode(Sha256::digest(b"")), 0)
                }
                None => continue,
            };
            objects.push(SealedObject {
                key: key.as_str().to_owned(),
                sha256,
                size,
            });
        }
        Ok(Decision::Purge(Box::new(Plan {
            id: id.clone(),
            kind: kind.to_string(),
            retention_days: days,
            retain_until: until,
            objects,
            earlier: false,
            tombstone: None,
        })))
    }

    /// Writes the audit entry and the tombstone of `plan`. A tombstone stored
    /// meanwhile by another run is used instead, if it counts.
    async fn write_tombstone(
        &self,
        plan: &mut Plan,
        opts: &PurgeOptions,
    ) -> Result<Result<(), String>, RepoError> {
        let mut entry = AuditEntry::new(
            OffsetDateTime::now_utc(),
            opts.actor.clone(),
            AUDIT_ACTION,
            AUDIT_ROUTE,
        );
        entry.record_id = Some(plan.id.to_string());
        entry.reason = Some(opts.reason.clone());
        audit::write(&self.evidence, &entry).await?;
        if plan.tombstone.is_some() {
            return Ok(Ok(()));
        }
        let tombstone = Tombstone {
            schema: TOMBSTONE_SCHEMA.to_owned(),
            record_id: plan.id.to_string(),
            kind: plan.kind.clone(),
            retention_days: plan.retention_days,
            retain_until: plan.retain_until,
            purged_at: opts.now,
            actor: opts.actor.clone(),
            reason: opts.reason.clone(),
            objects: plan.objects.clone(),
        };
        let key = tombstone_key(plan.id.as_str())?;
        if self.evidence.create_json(&key, &tombstone, None).await? {
            plan.tombstone = Some(tombstone);
            return Ok(Ok(()));
        }
        // Another run wrote it first: delete only what that one lists.
        match self.tombstone(&plan.id).await? {
            Some(Ok(t)) => {
                let listed: BTreeSet<&str> = t.objects.iter().map(|o| o.key.as_str()).collect();
                plan.objects.retain(|o| listed.contains(o.key.as_str()));
                plan.earlier = true;
                plan.tombstone = Some(t);
                Ok(Ok(()))
            }
            Some(Err(why)) => Ok(Err(why)),
            None => Ok(Err(format!("{key} was taken and then gone"))),
        }
    }

    /// Seals until every key of `wanted` is listed in a seal or `wait` has
    /// passed: this process seals when no server holds the seal lease, and
    /// otherwise waits for the server's seal.
    async fn await_seal(
        &self,
        index: &mut Index,
        wanted: &BTreeSet<String>,
        wait: Duration,
    ) -> Result<(), RepoError> {
        let deadline = Instant::now() + wait;
        let mut sealed_here = false;
        loop {
            self.read_seals(index).await?;
            if wanted.iter().all(|k| index.sealed.contains_key(k)) || Instant::now() >= deadline {
                break;
            }
            match self.sealer.seal_once(OffsetDateTime::now_utc()).await {
                Ok(crate::evidence::seal::Sealed::Wrote { .. }) => {
                    sealed_here = true;
                    continue;
                }
                Ok(crate::evidence::seal::Sealed::Nothing) => sealed_here = true,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sealing failed; waiting for a seal"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if sealed_here {
            // Hand the seal lease back so a running server seals at its next interval.
            if let Err(e) = self.leases.release(SEAL_LEASE).await {
                tracing::warn!(error = %e, "cannot release the seal lease; a server takes it over when it expires");
            }
        }
        Ok(())
    }

    /// Deletes the objects of `plan` (every version), then the seal markers
    /// still naming evidence among them. Returns the keys deleted.
    async fn delete(&self, plan: &Plan) -> Result<Vec<String>, RepoError> {
        let store = self.store();
        let mut deleted = Vec::with_capacity(plan.objects.len());
        for o in &plan.objects {
            let key = checked_key(o.key.clone())?;
            store.purge(&key).await?;
            deleted.push(o.key.clone());
        }
        Ok(deleted)
    }

    /// Runs one purge at `opts.now`; `progress` counts confirmations examined
    /// and then objects deleted.
    pub async fn run(
        &self,
        opts: &PurgeOptions,
        progress: &indicatif::ProgressBar,
    ) -> Result<Report, RepoError> {
        let mut report = Report::default();
        // Holds and tombstones are judged against the seal chain: never on a broken one.
        let broken =
            crate::evidence::verify::chain_problems(self.store(), &self.trust, None).await?;
        if !broken.is_empty() {
            let list: Vec<String> = broken
                .iter()
                .map(|f| format!("{}: {}", f.object, f.detail))
                .collect();
            report.problems.push((
                "seals/".into(),
                format!(
                    "the seal chain is broken, so holds cannot be trusted and nothing is purged: {}; run `callproof records verify --all`",
                    list.join("; ")
                ),
            ));
            return Ok(report);
        }
        let mut index = self.build_index().await?;
        let ids = self.ids().await?;
        progress.set_length(ids.len() as u64);
        progress.set_message("examining");
        let mut plans: Vec<Plan> = Vec::new();
        for id in &ids {
            match self.decide(id, &index, opts.now).await {
                Ok(Decision::Purge(plan)) => plans.push(*plan),
                Ok(Decision::InRetention) => report.in_retention += 1,
                Ok(Decision::AlreadyPurged) => report.already_purged += 1,
                Ok(Decision::Held(why)) => report.held.push((id.to_string(), why)),
                Ok(Decision::Problem(why)) => report.problems.push((id.to_string(), why)),
                Err(e) => report.problems.push((id.to_string(), e.to_string())),
            }
            progress.inc(1);
        }
        if opts.dry_run {
            report.purged = plans
                .iter()
                .map(|p| purged(p, p.objects.iter().map(|o| o.key.clone()).collect()))
                .collect();
            return Ok(report);
        }
        let mut written = Vec::new();
        for mut plan in plans {
            match self.write_tombstone(&mut plan, opts).await {
                Ok(Ok(())) => written.push(plan),
                Ok(Err(why)) => report.problems.push((plan.id.to_string(), why)),
                Err(e) => report.problems.push((plan.id.to_string(), e.to_string())),
            }
        }
        let wanted: BTreeSet<String> = written
            .iter()
            .filter_map(|p| tombstone_key(p.id.as_str()).ok())
            .map(|k| k.as_str().to_owned())
            .collect();
        progress.set_message("waiting for the seal listing the tombstones");
        self.await_seal(&mut index, &wanted, opts.seal_wait).await?;
        progress.set_position(0);
        progress.set_length(written.iter().map(|p| p.objects.len() as u64).sum());
        progress.set_message("deleting");
        for plan in written {
            let key = tombstone_key(plan.id.as_str())?;
            if !index.sealed.contains_key(key.as_str()) {
                report.awaiting_seal.push(plan.id.to_string());
                continue;
            }
            // A hold placed while the tombstone waited for its seal still counts.
            let why = match &plan.tombstone {
                Some(t) => self.hold_reasons(&plan.id, &index, Some(t)).await?,
                None => vec!["its tombstone was not read back".into()],
            };
            if !why.is_empty() {
                report.held.push((plan.id.to_string(), why));
                continue;
            }
            match self.delete(&plan).await {
                Ok(keys) => {
                    progress.inc(keys.len() as u64);
                    report.purged.push(purged(&plan, keys));
                }
                Err(e) => report.problems.push((
                    plan.id.to_string(),
                    format!("deleting failed: {e}; run purge again to finish"),
                )),
            }
        }
        Ok(report)
    }
}

fn purged(plan: &Plan, objects: Vec<String>) -> Purged {
    Purged {
        id: plan.id.to_string(),
        kind: plan.kind.clone(),
        retain_until: plan.retain_until,
        objects,
        finished_earlier_purge: plan.earlier,
    }
}

/// A purger with the settings `serve` runs with: the same store, signing
/// key, trusted keys, retention, seal interval and lease time.
pub async fn from_config(config: &Config) -> anyhow::Result<Purger> {
    let store: Arc<dyn ObjectStore> = crate::server::connect_store(config).await?;
    let (signer, generated) = crate::credentials::signing_key(config)?;
    if let Some(path) = generated {
        // A new key signs nothing the server wrote: this is the wrong data directory.
        let _ = std::fs::remove_file(&path);
        anyhow::bail!(
            "no signing key at {}: purge signs with the server's key; give the data directory `serve` uses (--data-dir) or CALLPROOF_SIGNING_KEY_FILE",
            path.display()
        );
    }
    let signer = Arc::new(signer);
    let public = signer.public().clone();
    let mut trust =
        crate::evidence::trust::Trust::configured(Some(&public), config.trusted_keys.as_deref())
            .map_err(|e| anyhow::anyhow!("CALLPROOF_TRUSTED_KEYS: {e}"))?;
    if let Some(path) = &config.previous_signing_key_file {
        trust.add(
            crate::evidence::keys::SigningKey::from_file(path)?
                .public()
                .clone(),
        );
    }
    // Keys linked by rotations too: hold facts signed before a rotation still count.
    let keys = crate::evidence::verify::trusted_keys(store.as_ref(), &trust).await?;
    let lease_ttl = Duration::from_secs(config.job_lease_secs);
    let interval = Duration::from_secs(config.seal_secs);
    let leases = Leases::new(store.clone(), Leases::instance_name(), lease_ttl);
    Ok(Purger::new(
        Evidence::new(store, signer),
        keys,
        config.retention.clone(),
        leases,
        SealSettings {
            interval,
            grace: config.seal_grace(),
        },
    ))
}

/// `callproof records purge`: runs a purge with `serve`'s settings, prints
/// each confirmation purged (or, with `dry_run`, to be purged) and a summary.
/// Exit 1 when something was left because it is wrong or not yet sealed.
pub async fn command(
    config: &Config,
    dry_run: bool,
    reason: &str,
    now: Option<OffsetDateTime>,
) -> anyhow::Result<ExitCode> {
    let reason = reason.trim();
    if reason.is_empty() {
        anyhow::bail!("--reason must say why (it goes into every tombstone and audit entry)");
    }
    if now.is_some() && config.environment == crate::config::Environment::Production {
        anyhow::bail!("--now is for tests and is refused in production");
    }
    let purger = from_config(config).await?;
    let interval = Duration::from_secs(config.seal_secs);
    let opts = PurgeOptions {
        now: now.unwrap_or_else(OffsetDateTime::now_utc),
        dry_run,
        reason: reason.to_owned(),
        actor: actor_of_env(),
        seal_wait: 2 * interval + Duration::from_secs(config.job_lease_secs + 10),
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>12} {bar:40} {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = purger.run(&opts, &bar).await?;
    bar.finish_and_clear();
    print_report(&report, dry_run);
    Ok(
        if report.problems.is_empty() && report.awaiting_seal.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

fn print_report(report: &Report, dry_run: bool) {
    let date = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_else(|_| t.to_string());
    let verb = if dry_run { "would purge" } else { "purged" };
    for p in &report.purged {
        println!(
            "{verb} {}  kind {}  retained until {}  {} object(s){}",
            p.id,
            p.kind,
            date(p.retain_until),
            p.objects.len(),
            if p.finished_earlier_purge {
                "  (finishing an interrupted purge)"
            } else {
                ""
            }
        );
        for k in &p.objects {
            println!("  {k}");
        }
    }
    for (id, why) in &report.held {
        eprintln!("kept {id}: on hold");
        for w in why {
            eprintln!("  {w}");
        }
    }
    for (id, why) in &report.problems {
        eprintln!("left {id}: {why}");
    }
    for id in &report.awaiting_seal {
        eprintln!("left {id}: its tombstone is written but no seal lists it yet; run purge again once a seal is written (CALLPROOF_SEAL_SECS)");
    }
    let objects: usize = report.purged.iter().map(|p| p.objects.len()).sum();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &report.purged {
        *by_kind.entry(p.kind.as_str()).or_default() += 1;
    }
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    eprintln!(
        "{} {} confirmation(s), {objects} object(s){}; {} on hold, {} in retention, {} purged before, {} left with problems{}",
        if dry_run { "would purge" } else { "purged" },
        report.purged.len(),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        },
        report.held.len(),
        report.in_retention,
        report.already_purged,
        report.problems.len(),
        if dry_run { "; nothing was written or deleted" } else { "" },
    );
}
