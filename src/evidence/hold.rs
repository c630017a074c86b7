//! Legal holds: write-once, signed, sealed facts `holds/<id>/<n:04>.json`
//! beside a record, the newest of which says whether it is held, and the S3 legal hold.
//!
//! A record version never changes, so a hold is not written into it: each
//! hold or release is a new fact numbered after the last. A fact counts only
//! with a valid signature by a trusted key and contents that match its path;
//! anything else is a problem, and a record with problems counts as held, so
//! a store writer can never release a record by planting or removing facts.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::confirmations::{checked_key, RepoError};
use crate::domain::ConfirmationId;
use crate::evidence::audit::Actor;
use crate::evidence::keys::PublicKey;
use crate::evidence::objects::{read_signed, sha256_hex, Evidence};
use crate::store::{ObjectKey, ObjectStore, StoreError};

/// `schema` of every hold fact.
pub const HOLD_SCHEMA: &str = "callproof.hold.v1";

/// What a hold fact says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldState {
    /// The record may not be purged.
    Held,
    /// An earlier hold ended.
    Released,
}

impl HoldState {
    /// Its name in facts and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldState::Held => "held",
            HoldState::Released => "released",
        }
    }
}

/// One hold or release, as stored at `holds/<record_id>/<n:04>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldFact {
    /// [`HOLD_SCHEMA`].
    pub schema: String,
    /// The record (confirmation) held.
    pub record_id: String,
    /// Its number, from 1; the newest decides.
    pub n: u32,
    /// Held or released.
    pub state: HoldState,
    /// Who: the admin key's role and name.
    pub actor: Actor,
    /// Why, as the admin said (`X-Callproof-Reason`).
    pub reason: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Where the hold facts of `id` live.
pub fn holds_prefix(id: &str) -> String {
    format!("holds/{id}/")
}

/// Where hold fact `n` of `id` lives.
pub fn hold_key(id: &str, n: u32) -> Result<ObjectKey, RepoError> {
    checked_key(format!("{}{n:04}.json", holds_prefix(id)))
}

/// The number of a hold fact's key, if it names one.
fn number_of(key: &ObjectKey) -> Option<u32> {
    key.file_name().strip_suffix(".json")?.parse().ok()
}

/// One stored hold fact, checked.
#[derive(Debug, Clone)]
pub struct StoredHold {
    /// Its key.
    pub key: ObjectKey,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// The fact, when it parses and matches its path.
    pub fact: Option<HoldFact>,
    /// True when its signature holds by a trusted key.
    pub signed: bool,
}

/// Every hold fact of a record, oldest first, and what is wrong with them.
#[derive(Debug, Clone, Default)]
pub struct HoldHistory {
    /// The facts, by number.
    pub facts: Vec<StoredHold>,
    /// Facts that do not count, each named with why: unsigned, badly signed,
    /// unreadable, or stored under another record's or number's path.
    pub problems: Vec<String>,
}

impl HoldHistory {
    /// The newest fact that counts.
    pub fn current(&self) -> Option<&HoldFact> {
        self.facts
            .iter()
            .rev()
            .find(|f| f.signed)
            .and_then(|f| f.fact.as_ref())
    }

    /// `held`, `released`, or `none` when no fact counts.
    pub fn state(&self) -> &'static str {
        self.current().map_or("none", |f| f.state.as_str())
    }

    /// True when the record may not be purged: its newest fact says held,
    /// or some fact does not count (a store writer may have hidden a hold).
    pub fn held(&self) -> bool {
        !self.problems.is_empty() || self.current().is_some_and(|f| f.state == HoldState::Held)
    }

    /// The highest number stored, counting facts that do not count.
    fn last_number(&self) -> u32 {
        self.facts
            .iter()
            .filter_map(|f| number_of(&f.key))
            .max()
            .unwrap_or(0)
    }

    /// The answer of the hold routes: `{record_id, held, state, current, facts, problems}`.
    pub fn answer(&self, id: &str) -> serde_json::Value {
        serde_json::json!({
            "record_id": id,
            "held": self.held(),
            "state": self.state(),
            "current": self.current(),
            "facts": self.facts.iter().filter_map(|f| f.fact.as_ref()).collect::<Vec<_>>(),
            "problems": self.problems,
        })
    }
}

/// Reads and checks every hold fact of `id`; a fact counts when one of
/// `keys` signed it and it names `id` and its own number.
pub async fn read_holds(
    store: &dyn ObjectStore,
    keys: &[PublicKey],
    id: &str,
) -> Result<HoldHistory, RepoError> {
    let mut history = HoldHistory::default();
    let mut listed: Vec<ObjectKey> = store
        .list(&holds_prefix(id))
        .await?
        .into_iter()
        .filter(|k| k.as_str().ends_with(".json"))
        .collect();
    listed.sort_by_key(|k| number_of(k).unwrap_or(u32::MAX));
    for key in listed {
        // Listed a moment ago; gone now only if someone removed it.
        let Some((bytes, sig)) = read_signed(store, &key).await? else {
            history.problems.push(format!("{key}: listed, then gone"));
            continue;
        };
        let signed = sig.is_some_and(|s| keys.iter().any(|k| k.verifies(&bytes, &s)));
        let fact = match serde_json::from_slice::<HoldFact>(&bytes) {
            Ok(f)
                if f.schema == HOLD_SCHEMA && f.record_id == id && Some(f.n) == number_of(&key) =>
            {
                Some(f)
            }
            Ok(_) => {
                history.problems.push(format!(
                    "{key}: names another record, number or schema than its path"
                ));
                None
            }
            Err(e) => {
                history.problems.push(format!("{key}: unreadable: {e}"));
                None
            }
        };
        if !signed {
            history.problems.push(format!(
                "{key}: no valid signature by a trusted key (written by someone other than callproof?)"
            ));
        }
        history.facts.push(StoredHold {
            sha256: sha256_hex(&bytes),
            key,
            fact,
            signed,
        });
    }
    Ok(history)
}

/// Writes a fact saying `state` for `id`, unless the newest fact says so
/// already. Returns the history afterwards and whether a fact was written.
/// A create lost to another writer re-reads and tries the next number.
pub async fn set_hold(
    evidence: &Evidence,
    keys: &[PublicKey],
    id: &str,
    state: HoldState,
    actor: &Actor,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(HoldHistory, bool), RepoError> {
    for _ in 0..16 {
        let history = read_holds(evidence.store().as_ref(), keys, id).await?;
        if history.current().map(|f| f.state) == Some(state)
            || (state == HoldState::Released && history.current().is_none())
        {
            return Ok((history, false));
        }
        let n = history
            .last_number()
            .checked_add(1)
            .ok_or_else(|| RepoError::Corrupt {
                key: format!("holds/{id}/"),
                reason: "a hold fact numbered 4294967295 is stored, which callproof never writes: the store was written by someone else".into(),
            })?;
        let fact = HoldFact {
            schema: HOLD_SCHEMA.to_owned(),
            record_id: id.to_owned(),
            n,
            state,
            actor: actor.clone(),
            reason: reason.to_owned(),
            at: now,
        };
        if evidence.create_json(&hold_key(id, n)?, &fact, None).await? {
            let history = read_holds(evidence.store().as_ref(), keys, id).await?;
            return Ok((history, true));
        }
    }
    Err(RepoError::Corrupt {
        key: holds_prefix(id),
        reason: "sixteen hold facts were written by others while this one was tried; try again"
            .into(),
    })
}

/// The objects an S3 Object Lock legal hold covers: every record version and
/// its signature, and every audio object with its result.
pub async fn legal_hold_keys(
    store: &dyn ObjectStore,
    id: &ConfirmationId,
) -> Result<Vec<ObjectKey>, StoreError> {
    let mut keys = store.list(&format!("records/{id}/")).await?;
    keys.extend(store.list(&format!("confirmations/{id}/audio/")).await?);
    Ok(keys)
}

/// Sets (`on`) or clears the Object Lock legal hold on every object
/// [`legal_hold_keys`] names; returns how many.
pub async fn apply_legal_hold(
    store: &dyn ObjectStore,
    id: &ConfirmationId,
    on: bool,
) -> Result<usize, StoreError> {
    let keys = legal_hold_keys(store, id).await?;
    for k in &keys {
        store.set_legal_hold(k, on).await?;
    }
    Ok(keys.len())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn evidence() -> (tempfile::TempDir, Evidence) {
        crate::evidence::objects::test_evidence()
    }

    fn admin() -> Actor {
        Actor {
            role: "admin".into(),
            name: "ops".into(),
        }
    }

    #[tokio::test]
    async fn hold_and_release_are_numbered_facts_and_repeats_write_nothing() {
        let (_dir, ev) = evidence();
        let keys = vec![ev.signer().public().clone()];
        let now = OffsetDateTime::now_utc();
        let actor = admin();
        let set = |state| set_hold(&ev, &keys, "r1", state, &actor, "litigation", now);
        let (h, wrote) = set(HoldState::Released).await.expect("release");
        assert!(!wrote, "releasing what was never held writes nothing");
        assert_eq!(h.state(), "none");
        let (h, wrote) = set(HoldState::Held).await.expect("hold");
        assert!(wrote);
        assert!(h.held());
        assert_eq!(h.current().map(|f| f.n), Some(1));
        let (_, wrote) = set(HoldState::Held).await.expect("hold again");
        assert!(!wrote, "holding a held record writes nothing");
        let (h, wrote) = set(HoldState::Released).await.expect("release");
        assert!(wrote);
        assert!(!h.held());
        assert_eq!(h.state(), "released");
        assert_eq!(h.current().map(|f| f.n), Some(2));
        let stored: Vec<String> = ev
            .store()
            .list("holds/r1/")
            .await
            .expect("list")
            .iter()
            .filter(|k| k.as_str().ends_with(".json"))
            .map(|k| k.as_str().to_owned())
            .collect();
        assert_eq!(stored, ["holds/r1/0001.json", "holds/r1/0002.json"]);
    }

    #[tokio::test]
    async fn a_planted_release_counts_as_a_hold() {
        let (_dir, ev) = evidence();
        let keys = vec![ev.signer().public().clone()];
        let now = OffsetDateTime::now_utc();
        set_hold(&ev, &keys, "r1", HoldState::Held, &admin(), "why", now)
            .await
            .expect("hold");
        // A store writer adds a release without a valid signature.
        let fact = HoldFact {
            schema: HOLD_SCHEMA.into(),
            record_id: "r1".into(),
            n: 2,
            state: HoldState::Released,
            actor: admin(),
            reason: "forged".into(),
            at: now,
        };
        ev.store()
            .create(
                &hold_key("r1", 2).expect("key"),
                Bytes::from(serde_json::to_vec(&fact).expect("json")),
            )
            .await
            .expect("plant");
        let h = read_holds(ev.store().as_ref(), &keys, "r1")
            .await
            .expect("read");
        assert_eq!(h.state(), "held", "the unsigned release does not count");
        assert!(h.held());
        assert_eq!(h.problems.len(), 1, "{:?}", h.problems);
    }
}
