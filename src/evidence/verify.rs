//! Verification: walks the seal chain and the stored evidence in both
//! directions and names precisely what is wrong, object by object.
//!
//! From the chain: every seal is signed by a key in force for it and names
//! its predecessor's hash; every object it lists exists with that hash, or is
//! covered by a signed tombstone. From the store: every evidence object is
//! listed in a seal with its hash or is still announced by a marker; every
//! record version matches its path, is signed by a key trusted for the seal
//! that lists it, and every audio object it lists hashes as it says.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::confirmations::{checked_key, RepoError};
use crate::evidence::keys::{pem_blocks, PublicKey};
use crate::evidence::objects::{
    is_evidence, marker_key, sha256_hex, signature_key, EVIDENCE_PREFIXES, MARKER_PREFIX,
};
use crate::evidence::seal::{seal_key, seal_numbers, Head, Seal, NO_PREVIOUS};
use crate::evidence::tombstone::{tombstone_key, Tombstone};
use crate::evidence::trust::{
    statement_old_signature_key, KeyRanges, KeyStatement, Rotation, Trust,
};
use crate::record::{is_unsigned_v1, ConfirmationRecord};
use crate::store::ObjectStore;

/// What a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Evidence was changed, deleted or forged (exit 1).
    Problem,
    /// A state worth knowing that is not an evidence problem: not sealed
    /// yet, written before signing, purged under retention.
    State,
}

/// One thing verification found, about one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Problem or state.
    pub severity: Severity,
    /// The object (store key) or seal it is about.
    pub object: String,
    /// What is wrong or what state it is in, in words.
    pub detail: String,
}

/// What to verify.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Everything in the store.
    All,
    /// One record: its versions, audio, holds and tombstone.
    Record(String),
}

impl Scope {
    fn prefixes(&self) -> Vec<String> {
        match self {
            Scope::All => EVIDENCE_PREFIXES.iter().map(|p| (*p).to_owned()).collect(),
            Scope::Record(id) => vec![
                format!("records/{id}/"),
                format!("holds/{id}/"),
                format!("tombstones/{id}.json"),
            ],
        }
    }

    fn contains(&self, key: &str) -> bool {
        self.prefixes().iter().any(|p| key.starts_with(p.as_str()))
    }
}

/// How much was checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Seals walked.
    pub seals: u64,
    /// Evidence objects checked (record versions, holds, tombstones, audit entries, statements).
    pub objects: u64,
    /// Record versions among them.
    pub record_versions: u64,
    /// Audio objects hashed.
    pub audio: u64,
}

/// The answer of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `ok` when no problem was found, `problems` otherwise.
    pub status: &'static str,
    /// The record verified, for one record.
    pub record_id: Option<String>,
    /// `purged` when the record was purged under retention, else `present`
    /// (or `not_found` when nothing of it exists); for one record.
    pub record_state: Option<&'static str>,
    /// The newest seal found.
    pub head: Head,
    /// What the chain proves: consistent, and complete only up to a head kept outside.
    pub completeness: String,
    /// How much was checked.
    pub checked: Counts,
    /// Every problem and state, problems first.
    pub findings: Vec<Finding>,
}

impl Report {
    /// True when any finding is a problem.
    pub fn has_problems(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Problem)
    }
}

/// A head someone kept: `N:HASH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedHead {
    /// Seal number.
    pub seal: u64,
    /// Its hex SHA-256.
    pub sha256: String,
}

impl std::str::FromStr for ExpectedHead {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, h) = s
            .split_once(':')
            .ok_or("give the head as N:SHA256, as GET /v1/seals/head answers it")?;
        let seal = n
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{n} is not a seal number"))?;
        let sha256 = h.trim().to_ascii_lowercase();
        if seal == 0 || sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("give the head as N:SHA256 with N from 1 and 64 hex digits".into());
        }
        Ok(ExpectedHead { seal, sha256 })
    }
}

/// Where a listed object was sealed.
#[derive(Debug, Clone)]
struct Listed {
    sha256: String,
    seal: u64,
    backfill: bool,
}

struct Verifier<'a> {
    store: &'a dyn ObjectStore,
    findings: Vec<Finding>,
    counts: Counts,
    progress: &'a (dyn Fn(u64, u64) + Send + Sync),
}

impl Verifier<'_> {
    fn problem(&mut self, object: &str, detail: String) {
        self.findings.push(Finding {
            severity: Severity::Problem,
            object: object.to_owned(),
            detail,
        });
    }

    fn state(&mut self, object: &str, detail: String) {
        self.findings.push(Finding {
            severity: Severity::State,
            object: object.to_owned(),
            detail,
        });
    }
}

/// Verifies `scope` in `store` with the keys `trust` names, against a head
/// someone kept when given. An object not sealed `grace` after the time it
/// states is a problem: sealing stopped, or was stopped. `Err` means it could
/// not check (exit 2).
/// `progress(done, total)` is called as objects are checked.
pub async fn verify(
    store: &dyn ObjectStore,
    trust: &Trust,
    scope: &Scope,
    expect: Option<&ExpectedHead>,
    grace: std::time::Duration,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<Report, RepoError> {
    let now = time::OffsetDateTime::now_utc();
    let grace = time::Duration::try_from(grace).unwrap_or(time::Duration::HOUR);
    let mut v = Verifier {
        store,
        findings: Vec::new(),
        counts: Counts::default(),
        progress,
    };
    // Order matters: the store's objects, then the markers, then the chain. An
    // object sealed between these reads is then seen either with its marker or in the chain.
    let mut stored: BTreeSet<String> = BTreeSet::new();
    for prefix in scope.prefixes() {
        for k in store.list(&prefix).await? {
            if is_evidence(k.as_str()) {
                stored.insert(k.as_str().to_owned());
            }
        }
    }
    let markers: BTreeSet<String> = store
        .list(MARKER_PREFIX)
        .await?
        .into_iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    let (ranges, listed, head) = walk_chain(&mut v, trust, expect).await?;

    // Tombstones cover what they list, when signed by a trusted key.
    let mut purged: HashMap<String, String> = HashMap::new();
    let tombstone_keys: Vec<String> = match scope {
        Scope::All => stored
            .iter()
            .filter(|k| k.starts_with("tombstones/"))
            .cloned()
            .collect(),
        Scope::Record(id) => vec![tombstone_key(id)?.as_str().to_owned()],
    };
    for tk in &tombstone_keys {
        let k = checked_key(tk.clone())?;
        let Some(bytes) = store.get(&k).await? else {
            continue;
        };
        let sig = store.get(&signature_key(&k, &bytes)?).await?;
        let seal = listed.get(tk).map(|l| l.seal);
        let sealed_as_stored = listed
            .get(tk)
            .is_none_or(|l| l.sha256 == sha256_hex(&bytes));
        match (serde_json::from_slice::<Tombstone>(&bytes), sig) {
            (Ok(t), Some(sig))
                if signed_by_any(&ranges, &bytes, &sig, seal)
                    && sealed_as_stored
                    && *tk == tombstone_key(&t.record_id)?.as_str() =>
            {
                let date = t.purged_at.date().to_string();
                for o in &t.objects {
                    // A tombstone speaks only for its own record's objects.
                    if belongs_to(&o.key, &t.record_id) {
                        purged.insert(o.key.clone(), date.clone());
                    } else if is_evidence(&o.key) {
                        v.problem(
                            tk,
                            format!("tombstone of {} lists {}, which is not its record's: it does not cover it", t.record_id, o.key),
                        );
                    }
                }
            }
            _ => v.problem(
                tk,
                "tombstone is not signed by a trusted key, is not the one sealed, or is not at its record's path: it covers nothing".into(),
            ),
        }
    }

    let mut keys: BTreeSet<String> = stored.clone();
    keys.extend(listed.keys().filter(|k| scope.contains(k)).cloned());
    let total = keys.len() as u64;
    let mut audio_checked: BTreeSet<String> = BTreeSet::new();
    let mut purged_dates: BTreeSet<String> = BTreeSet::new();
    for (done, key) in keys.iter().enumerate() {
        (v.progress)(done as u64, total);
        v.counts.objects += 1;
        let k = checked_key(key.clone())?;
        let bytes = if stored.contains(key) {
            store.get(&k).await?
        } else {
            None
        };
        let entry = listed.get(key);
        let Some(bytes) = bytes else {
            match (entry, purged.get(key)) {
                (_, Some(date)) => {
                    purged_dates.insert(date.clone());
                }
                (Some(e), None) => v.problem(
                    key,
                    format!(
                        "listed in seal {} but missing from the store: deleted",
                        e.seal
                    ),
                ),
                (None, None) => {}
            }
            continue;
        };
        let digest = sha256_hex(&bytes);
        match entry {
            Some(e) if e.sha256 != digest => v.problem(
                key,
                format!(
                    "changed since seal {}: its SHA-256 is {digest}, the seal lists {}",
                    e.seal, e.sha256
                ),
            ),
            Some(_) => {}
            None if markers.contains(marker_key(key)?.as_str()) => match stated_time(&bytes) {
                Some(at) if at + grace < now => v.problem(
                    key,
                    format!("written at {at} and still not sealed: sealing stopped or was stopped (is a server running, and does GET /v1/status show a seal_alarm?)"),
                ),
                _ => v.state(key, "not yet sealed (announced; the next seal lists it)".into()),
            },
            None => v.problem(
                key,
                "in no seal and announced by no marker: written outside callproof, or its marker was deleted"
                    .into(),
            ),
        }
        let seal = entry.map(|e| e.seal);
        let sig = store.get(&signature_key(&k, &bytes)?).await?;
        if key.starts_with("records/") {
            v.counts.record_versions += 1;
            check_version(&mut v, key, &bytes, sig.as_deref(), entry, &ranges);
            if let Ok(rec) = serde_json::from_slice::<ConfirmationRecord>(&bytes) {
                for a in rec.recording.iter().flat_map(|r| r.audio.iter()) {
                    if audio_checked.insert(a.key.clone()) {
                        check_audio(&mut v, &a.key, &a.sha256, key, &purged).await?;
                    }
                }
            }
        } else {
            if let Some(why) = misplaced(key, &bytes) {
                v.problem(key, why);
            }
            match sig {
                Some(sig) if signed_by_any(&ranges, &bytes, &sig, seal) => {}
                Some(_) => v.problem(
                    key,
                    "signature invalid, or by a key not trusted for the seal that lists it".into(),
                ),
                None => v.problem(key, "has no signature".into()),
            }
        }
    }
    (v.progress)(total, total);
    for date in &purged_dates {
        let object = match scope {
            Scope::Record(id) => format!("records/{id}/"),
            Scope::All => "tombstones/".to_owned(),
        };
        v.state(&object, format!("purged under retention on {date}"));
    }

    let record_state = match scope {
        Scope::All => None,
        Scope::Record(id) => Some(if !purged.is_empty() {
            "purged"
        } else if keys
            .iter()
            .any(|k| k.starts_with(&format!("records/{id}/")))
        {
            "present"
        } else {
            "not_found"
        }),
    };
    let chain_broken = v
        .findings
        .iter()
        .any(|f| f.severity == Severity::Problem && f.object.starts_with("seals/"));
    let completeness = match expect {
        _ if chain_broken => "chain broken: see the seal problems".to_owned(),
        Some(e) => format!(
            "chain consistent and complete up to seal {} kept outside callproof",
            e.seal
        ),
        None => "chain consistent; completeness unproven without a head kept outside callproof (--expect-head N:SHA256)".to_owned(),
    };
    v.findings.sort_by_key(|f| f.severity != Severity::Problem);
    Ok(Report {
        status: if v.has_problems() { "problems" } else { "ok" },
        record_id: match scope {
            Scope::All => None,
            Scope::Record(id) => Some(id.clone()),
        },
        record_state,
        head,
        completeness,
        checked: v.counts,
        findings: v.findings,
    })
}

impl Verifier<'_> {
    fn has_problems(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Problem)
    }
}

/// True when `key` is one of record `id`'s own objects (its versions, holds or
/// confirmation facts and audio), the only ones its tombstone may speak for.
pub fn belongs_to(key: &str, id: &str) -> bool {
    ["records", "holds", "confirmations"]
        .iter()
        .any(|p| key.starts_with(&format!("{p}/{id}/")))
}

/// The time an evidence object states it was made (`created_at`, `at` or `purged_at`).
fn stated_time(bytes: &[u8]) -> Option<time::OffsetDateTime> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let text = ["created_at", "at", "purged_at"]
        .iter()
        .find_map(|f| v.get(*f)?.as_str())?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// Why an evidence object other than a record version is not where its
/// contents say it belongs (a copy of another signed object), if it is not.
fn misplaced(key: &str, bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Some(format!("not readable JSON: {e}")),
    };
    let expected = if key.starts_with("audit/") {
        serde_json::from_value::<crate::evidence::audit::AuditEntry>(v)
            .ok()
            .and_then(|e| e.key().ok())
            .map(|k| k.as_str().to_owned())
    } else if key.starts_with("holds/") {
        (|| {
            let id = v.get("record_id")?.as_str()?;
            let n = v.get("n")?.as_u64()?;
            Some(format!("holds/{id}/{n:04}.json"))
        })()
    } else if key.starts_with("tombstones/") {
        (|| Some(format!("tombstones/{}.json", v.get("record_id")?.as_str()?)))()
    } else if key.starts_with("ui/signouts/") {
        (|| Some(format!("ui/signouts/{}.json", v.get("sid")?.as_str()?)))()
    } else if key.starts_with("keys/statements/") {
        (|| {
            let fp = v.get("new_key")?.get("fingerprint")?.as_str()?;
            Some(format!("keys/statements/{fp}.json"))
        })()
    } else {
        return None;
    };
    match expected {
        Some(e) if e == key => None,
        Some(e) => Some(format!(
            "its contents belong at {e}: a signed object copied under another name"
        )),
        None => Some("its contents do not say where it belongs".into()),
    }
}

fn signed_by_any(ranges: &KeyRanges, bytes: &[u8], sig: &[u8], seal: Option<u64>) -> bool {
    ranges.ranges().iter().any(|r| {
        r.key.verifies(bytes, sig)
            && match seal {
                Some(n) => r.covers_object(n),
                None => r.until.is_none(),
            }
    })
}

/// A record version: its path matches its contents, and its signature holds
/// by a key trusted for the seal that lists it.
fn check_version(
    v: &mut Verifier<'_>,
    key: &str,
    bytes: &[u8],
    sig: Option<&[u8]>,
    entry: Option<&Listed>,
    ranges: &KeyRanges,
) {
    let rec = match serde_json::from_slice::<ConfirmationRecord>(bytes) {
        Ok(r) => r,
        Err(e) => {
            v.problem(key, format!("not a readable record: {e}"));
            return;
        }
    };
    let expected = format!("records/{}/v{:04}.json", rec.record_id, rec.version);
    let supersedes_ok = rec.supersedes == rec.version.checked_sub(1).filter(|p| *p > 0);
    if expected != key || !supersedes_ok {
        v.problem(
            key,
            format!(
                "its contents say record {} version {} (superseding {:?}): a version replayed under another path",
                rec.record_id, rec.version, rec.supersedes
            ),
        );
    }
    if is_unsigned_v1(bytes) {
        if entry.is_some_and(|e| e.backfill) {
            v.state(key, "unsigned (written before signing)".into());
        } else {
            v.problem(
                key,
                "unsigned, and not in the backfill seal: its signature was removed".into(),
            );
        }
        return;
    }
    let Some(fp) = rec.signing_key.as_deref() else {
        v.problem(key, "names no signing key".into());
        return;
    };
    let Some(sig) = sig else {
        v.problem(
            key,
            format!("has no signature of these bytes (it names key {fp})"),
        );
        return;
    };
    if let Err(why) = ranges.check_object(fp, bytes, sig, entry.map(|e| e.seal)) {
        v.problem(key, why);
    }
}

/// An audio object hashes as the record says.
async fn check_audio(
    v: &mut Verifier<'_>,
    key: &str,
    expected: &str,
    record_key: &str,
    purged: &HashMap<String, String>,
) -> Result<(), RepoError> {
    v.counts.audio += 1;
    let k = checked_key(key.to_owned())?;
    let Some(mut stream) = v.store.read_range(&k, 0..u64::MAX).await? else {
        if !purged.contains_key(key) {
            v.problem(key, format!("audio listed by {record_key} is missing"));
        }
        return Ok(());
    };
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            RepoError::Store(crate::store::StoreError::Io {
                key: key.to_owned(),
                source: e,
            })
        })?;
        hasher.update(&chunk);
    }
    let digest = hex::encode(hasher.finalize());
    if digest != expected {
        v.problem(
            key,
            format!("audio changed: its SHA-256 is {digest}, {record_key} lists {expected}"),
        );
    }
    Ok(())
}

/// Walks every seal: numbering, `previous`, signatures by keys in force.
/// Answers the key ranges, what each seal lists, and the head.
async fn walk_chain(
    v: &mut Verifier<'_>,
    trust: &Trust,
    expect: Option<&ExpectedHead>,
) -> Result<(KeyRanges, HashMap<String, Listed>, Head), RepoError> {
    let store = v.store;
    let numbers = seal_numbers(store).await?;
    type Stored = (bytes::Bytes, Option<bytes::Bytes>, Option<Seal>);
    let mut seals: BTreeMap<u64, Stored> = BTreeMap::new();
    for n in &numbers {
        let k = seal_key(*n)?;
        if let Some(bytes) = store.get(&k).await? {
            let sig = store.get(&signature_key(&k, &bytes)?).await?;
            let parsed = serde_json::from_slice::<Seal>(&bytes).ok();
            seals.insert(*n, (bytes, sig, parsed));
        }
    }
    // Rotations first: which keys are in force for which seals.
    let mut rotations = Vec::new();
    for (n, (_, _, seal)) in &seals {
        let Some(seal) = seal else { continue };
        for o in seal
            .objects
            .iter()
            .filter(|o| o.key.starts_with("keys/statements/"))
        {
            if let Some(r) = read_rotation(store, &o.key, &o.sha256, *n).await? {
                rotations.push(r);
            }
        }
    }
    let known = published_keys(store).await?;
    let ranges = KeyRanges::build(trust, &known, &rotations);

    let mut listed: HashMap<String, Listed> = HashMap::new();
    let last = numbers.last().copied().unwrap_or(0);
    let mut previous: Option<(u64, String)> = None;
    for n in 1..=last {
        v.counts.seals += 1;
        let name = format!("seals/{n:020}.json");
        let Some((bytes, sig, parsed)) = seals.get(&n) else {
            v.problem(
                &name,
                format!(
                    "seal {n} is missing: the chain is broken between seals {} and {}",
                    n.saturating_sub(1),
                    n + 1
                ),
            );
            previous = None;
            continue;
        };
        let digest = sha256_hex(bytes);
        let Some(seal) = parsed else {
            v.problem(&name, format!("seal {n} is not a readable seal"));
            previous = Some((n, digest));
            continue;
        };
        if seal.seal != n {
            v.problem(
                &name,
                format!(
                    "seal {n} says it is seal {}: a seal copied under another number",
                    seal.seal
                ),
            );
        }
        match (&previous, n) {
            (_, 1) if seal.previous != NO_PREVIOUS => v.problem(
                &name,
                "seal 1 names a previous seal: seals before it were deleted or it was forged".into(),
            ),
            (Some((p, hash)), _) if *p == n - 1 && seal.previous != *hash => v.problem(
                &name,
                format!("the chain is broken between seals {} and {n}: seal {n} names a different seal {}", n - 1, n - 1),
            ),
            _ => {}
        }
        match sig {
            Some(sig) if ranges.seal_signer(n, bytes, sig).is_some() => {}
            Some(_) => v.problem(
                &name,
                format!(
                    "seal {n}: signature invalid, or by key {} which is not trusted for it",
                    seal.signing_key
                ),
            ),
            None => v.problem(&name, format!("seal {n} has no signature")),
        }
        for o in &seal.objects {
            if let Some(earlier) = listed.get(&o.key) {
                if earlier.sha256 != o.sha256 {
                    v.problem(
                        &o.key,
                        format!("sealed in seal {} and again in seal {n} with other bytes: it was replaced after it was sealed", earlier.seal),
                    );
                    continue;
                }
            }
            listed.insert(
                o.key.clone(),
                Listed {
                    sha256: o.sha256.clone(),
                    seal: n,
                    backfill: seal.backfill,
                },
            );
        }
        for m in &seal.missing {
            v.state(
                &m.key,
                format!(
                    "announced at {} and never stored (a crash between announcing and writing it, or deleted before seal {n})",
                    m.announced_at
                ),
            );
        }
        previous = Some((n, digest));
    }
    let head = match seals.get(&last) {
        Some((bytes, _, seal)) => Head {
            seal: last,
            sha256: Some(sha256_hex(bytes)),
            at: seal.as_ref().map(|s| s.at),
        },
        None => Head {
            seal: last,
            sha256: None,
            at: None,
        },
    };
    if let Some(e) = expect {
        let name = format!("seals/{:020}.json", e.seal);
        match seals.get(&e.seal) {
            _ if last < e.seal => v.problem(
                &name,
                format!("the head is older than expected: the stored chain ends at seal {last}, but seal {} was kept; the newest seals and what they list were deleted", e.seal),
            ),
            Some((bytes, _, _)) if sha256_hex(bytes) != e.sha256 => v.problem(
                &name,
                format!("seal {} differs from the one kept (SHA-256 {}): the chain was rewritten", e.seal, sha256_hex(bytes)),
            ),
            _ => {}
        }
    }
    Ok((ranges, listed, head))
}

/// A rotation statement listed in seal `n`, when its bytes are the sealed ones and both keys signed it.
async fn read_rotation(
    store: &dyn ObjectStore,
    key: &str,
    sha256: &str,
    n: u64,
) -> Result<Option<Rotation>, RepoError> {
    let k = checked_key(key.to_owned())?;
    let Some(bytes) = store.get(&k).await? else {
        return Ok(None);
    };
    if sha256_hex(&bytes) != sha256 {
        return Ok(None);
    }
    let new_sig = store.get(&signature_key(&k, &bytes)?).await?;
    let old_sig = store.get(&statement_old_signature_key(&k, &bytes)?).await?;
    let (Some(new_sig), Some(old_sig)) = (new_sig, old_sig) else {
        return Ok(None);
    };
    Ok(
        KeyStatement::check(&bytes, &new_sig, &old_sig).map(|(old, new)| Rotation {
            old,
            new,
            seal: n,
        }),
    )
}

/// Public keys published in the store (`keys/public/<fingerprint>.pem`):
/// their bytes, trusted only when configuration names their fingerprint.
pub async fn published_keys(store: &dyn ObjectStore) -> Result<Vec<PublicKey>, RepoError> {
    let mut out = Vec::new();
    for k in store.list("keys/public/").await? {
        let Some(bytes) = store.get(&k).await? else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for der in pem_blocks(&text, "PUBLIC KEY").unwrap_or_default() {
            if let Ok(key) = PublicKey::from_der(&der) {
                out.push(key);
            }
        }
    }
    Ok(out)
}

/// The chain walked on its own: the keys in force and the problems found.
async fn chain_only(
    store: &dyn ObjectStore,
    trust: &Trust,
    expect: Option<&ExpectedHead>,
) -> Result<(KeyRanges, Vec<Finding>), RepoError> {
    let noop = |_: u64, _: u64| {};
    let mut v = Verifier {
        store,
        findings: Vec::new(),
        counts: Counts::default(),
        progress: &noop,
    };
    let ranges = walk_chain(&mut v, trust, expect).await?.0;
    Ok((ranges, v.findings))
}

/// The keys in force along the stored chain, for `GET /v1/keys`.
pub async fn key_ranges(store: &dyn ObjectStore, trust: &Trust) -> Result<KeyRanges, RepoError> {
    Ok(chain_only(store, trust, None).await?.0)
}

/// The problems of the seal chain alone (signatures, numbering, links, and a
/// kept head), for commands that must not act on a broken chain (purge).
pub async fn chain_problems(
    store: &dyn ObjectStore,
    trust: &Trust,
    expect: Option<&ExpectedHead>,
) -> Result<Vec<Finding>, RepoError> {
    Ok(chain_only(store, trust, expect)
        .await?
        .1
        .into_iter()
        .filter(|f| f.severity == Severity::Problem)
        .collect())
}

/// Every key trusted along the stored chain: configuration's, keys published
/// under a configured fingerprint, and keys linked to them by rotations, for
/// checking signatures outside a full verification (holds, purge).
pub async fn trusted_keys(
    store: &dyn ObjectStore,
    trust: &Trust,
) -> Result<Vec<PublicKey>, RepoError> {
    Ok(key_ranges(store, trust)
        .await?
        .ranges()
        .iter()
        .map(|r| r.key.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_heads_parse_or_say_how() {
        let h: ExpectedHead = format!("7:{}", "AB".repeat(32)).parse().expect("parses");
        assert_eq!(h.seal, 7);
        assert_eq!(h.sha256, "ab".repeat(32));
        assert!("7"
            .parse::<ExpectedHead>()
            .unwrap_err()
            .contains("N:SHA256"));
        assert!("0:00".parse::<ExpectedHead>().is_err());
    }
}
