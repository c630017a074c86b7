//! Identity facts in the store: the secret MACs a request keeps until it ends,
//! numbered write-once attempt slots, the inbound lookups and caller signals.
//!
//! Layout: `identity/<id>/secret.json` (bookkeeping, deleted at the end),
//! `identity/<id>/attempts/<nn>.json` (write-once, MAC'd), `lookup/phone/<tag>/<id>`
//! and `lookup/account/<tag>/<id>` (markers), `identity-signals/<caller tag>/<id>-<nn>.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::{IdentityKeys, IdentityMethod, NewIdentity};
use crate::confirmations::{
    checked_key, create_json, digest_id, read_json, ConfirmationRequest, RepoError,
};
use crate::domain::{ConfirmationId, PhoneNumber};
use crate::store::{ObjectKey, ObjectStore, StoreError};

/// How long a failed check counts in a caller ID's signal.
pub const SIGNAL_DAYS: i64 = 30;

/// What a request's check needs, kept until the request ends. No secret in
/// clear: each is a MAC under the identity secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretFact {
    /// The check.
    pub method: IdentityMethod,
    /// One MAC per secret: the PIN, the code, or each knowledge answer in order.
    pub macs: Vec<String>,
    /// The knowledge questions' prompts, in order (not secret; heard before the check).
    #[serde(default)]
    pub prompts: Vec<String>,
    /// Until when a one-time code is accepted.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub code_expires_at: Option<OffsetDateTime>,
    /// The lookup markers written for the request, removed with this fact.
    pub markers: Vec<String>,
}

impl SecretFact {
    /// The purpose label of secret `n`.
    pub fn purpose(&self, n: usize) -> String {
        match self.method {
            IdentityMethod::Kba => format!("kba/{n}"),
            m => m.as_str().to_owned(),
        }
    }
}

/// Forgets the secrets and lookups of request `id`, once its outcome is
/// stored (or it expired): the lookup markers first, then the MACs that list
/// them. Runs again harmlessly; the lookup also clears what it finds ended.
pub async fn forget(store: &dyn ObjectStore, id: &ConfirmationId) -> Result<(), RepoError> {
    let secret = key(format!("identity/{id}/secret.json"))?;
    let Some(fact) = read_json::<SecretFact>(store, &secret).await? else {
        return Ok(());
    };
    for m in &fact.markers {
        store.delete(&key(m.clone())?).await?;
    }
    store.delete(&secret).await?;
    Ok(())
}

/// How one attempt at a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    /// Every answer matched.
    Pass,
    /// Some answer did not match (or came late, or was partial).
    Fail,
}

impl AttemptResult {
    fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Pass => "pass",
            AttemptResult::Fail => "fail",
        }
    }
}

/// One numbered attempt: write-once, so a provider retry counts once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptFact {
    /// Slot number, from 1.
    pub slot: u32,
    /// Digest of the call's CallSid.
    pub call: String,
    /// The step of the call the attempt answered.
    pub step: u32,
    /// The check's method.
    pub method: IdentityMethod,
    /// The verdict.
    pub result: AttemptResult,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// MAC over all of the above and the request id, under the attempt key:
    /// a slot written by anyone without the identity secret does not count.
    pub mac: String,
}

/// What taking an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// This call's step already has its slot: the first verdict stands.
    Replayed(AttemptFact),
    /// A new slot with this verdict.
    Taken(AttemptFact),
    /// Every slot is used: no comparison was made.
    NoSlot,
    /// Another call passed this request's check within the pass window.
    PassedElsewhere,
}

/// The identity facts of every request.
#[derive(Clone)]
pub struct IdentityStore {
    store: Arc<dyn ObjectStore>,
    keys: IdentityKeys,
    max_tries: u32,
    pass_window: Duration,
}

fn key(text: String) -> Result<ObjectKey, RepoError> {
    checked_key(text)
}

impl IdentityStore {
    /// Identity facts in `store`, MAC'd under `keys`, at most `max_tries`
    /// attempts. A pass keeps other calls out for `pass_window`: as long as
    /// the passing call's signed steps last, so it can claim the request (a
    /// caller who chose another of the requests the pass opened leaves it
    /// reachable afterwards; the claim itself is once-only whatever the window).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        keys: IdentityKeys,
        max_tries: u32,
        pass_window: Duration,
    ) -> Self {
        IdentityStore {
            store,
            keys,
            max_tries,
            pass_window,
        }
    }

    /// The keys.
    pub fn keys(&self) -> &IdentityKeys {
        &self.keys
    }

    /// Wrong answers a request takes before it locks.
    pub fn max_tries(&self) -> u32 {
        self.max_tries
    }

    fn secret_key(id: &ConfirmationId) -> Result<ObjectKey, RepoError> {
        key(format!("identity/{id}/secret.json"))
    }

    /// Keeps the check of a new request, before the request itself is stored
    /// (announce, then write): its MACs and its lookup markers. Returns the
    /// one-time code to answer once, for `otp`.
    pub async fn register(
        &self,
        request: &ConfirmationRequest,
        new: NewIdentity,
        code_expires_at: OffsetDateTime,
    ) -> Result<Option<String>, RepoError> {
        let id = &request.id;
        let (macs, prompts, code) = match new {
            NewIdentity::None => return Ok(None),
            NewIdentity::Pin(pin) => (vec![self.keys.secret_mac(id, "pin", &pin)], vec![], None),
            NewIdentity::Otp => {
                let code = super::one_time_code();
                (
                    vec![self.keys.secret_mac(id, "otp", &code)],
                    vec![],
                    Some(code),
                )
            }
            NewIdentity::Kba(qs) => {
                let macs = qs
                    .iter()
                    .enumerate()
                    .map(|(n, (_, a))| self.keys.secret_mac(id, &format!("kba/{n}"), a))
                    .collect();
                (macs, qs.into_iter().map(|(p, _)| p).collect(), None)
            }
        };
        let mut markers = vec![format!(
            "lookup/phone/{}/{id}",
            self.keys.phone_tag(&request.customer.phone)
        )];
        if let Some(tag) = self.keys.account_tag(&request.account_id) {
            markers.push(format!("lookup/account/{tag}/{id}"));
        }
        let fact = SecretFact {
            method: request.identity,
            macs,
            prompts,
            code_expires_at: code.as_ref().map(|_| code_expires_at),
            markers: markers.clone(),
        };
        create_json(self.store.as_ref(), &Self::secret_key(id)?, &fact).await?;
        for m in markers {
            match self.store.create(&key(m)?, Bytes::new()).await {
                Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(code)
    }

    /// The check of a pending request, or `None` once it ended.
    pub async fn secret(&self, id: &ConfirmationId) -> Result<Option<SecretFact>, RepoError> {
        read_json(self.store.as_ref(), &Self::secret_key(id)?).await
    }

    /// Forgets the secrets and lookups of a request that ended (see [`forget`]).
    pub async fn end(&self, id: &ConfirmationId) -> Result<(), RepoError> {
        forget(self.store.as_ref(), id).await
    }

    async fn ids_under(&self, prefix: String) -> Result<Vec<ConfirmationId>, RepoError> {
        let mut ids: Vec<ConfirmationId> = self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|k| k.file_name().parse().ok())
            .collect();
        ids.sort_by(|a: &ConfirmationId, b| a.as_str().cmp(b.as_str()));
        ids.dedup();
        Ok(ids)
    }

    /// Requests whose customer phone is `phone` (candidates: the caller checks
    /// each is still pending).
    pub async fn by_phone(&self, phone: &PhoneNumber) -> Result<Vec<ConfirmationId>, RepoError> {
        self.ids_under(format!("lookup/phone/{}/", self.keys.phone_tag(phone)))
            .await
    }

    /// Requests whose account id has exactly the digits `digits`.
    pub async fn by_account_digits(&self, digits: &str) -> Result<Vec<ConfirmationId>, RepoError> {
        match self.keys.account_tag(digits) {
            Some(tag) => self.ids_under(format!("lookup/account/{tag}/")).await,
            None => Ok(Vec::new()),
        }
    }

    fn attempt_mac(&self, id: &ConfirmationId, a: &AttemptFact) -> String {
        let slot = a.slot.to_string();
        let step = a.step.to_string();
        let at = a.at.unix_timestamp().to_string();
        self.keys.attempt_mac(&[
            id.as_str(),
            &slot,
            &a.call,
            &step,
            a.method.as_str(),
            a.result.as_str(),
            &at,
        ])
    }

    /// Every attempt whose MAC holds, in slot order; forged ones are left out
    /// and logged.
    pub async fn attempts(&self, id: &ConfirmationId) -> Result<Vec<AttemptFact>, RepoError> {
        let mut out = Vec::new();
        let mut keys = self.store.list(&format!("identity/{id}/attempts/")).await?;
        keys.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        for k in keys {
            let Some(a) = read_json::<AttemptFact>(self.store.as_ref(), &k).await? else {
                continue;
            };
            let expected = self.attempt_mac(id, &a);
            let named = format!("identity/{id}/attempts/{:02}.json", a.slot);
            if !bool::from(subtle::ConstantTimeEq::ct_eq(
                expected.as_bytes(),
                a.mac.as_bytes(),
            )) || k.as_str() != named
            {
                tracing::warn!(confirmation = %id, key = %k, "identity attempt with a MAC that does not hold; ignored");
                continue;
            }
            out.push(a);
        }
        Ok(out)
    }

    /// Takes the next attempt slot of request `id` for step `step` of call
    /// `call_sid`, with the verdict `compare` gives. A repeat of the same
    /// call's step returns the first verdict; no comparison is made once the
    /// slots are used or another call passed. A verdict that loses the race
    /// for the last slot is dropped, so at most `max_tries` comparisons count.
    pub async fn attempt(
        &self,
        id: &ConfirmationId,
        call_sid: &str,
        step: u32,
        method: IdentityMethod,
        at: OffsetDateTime,
        compare: impl FnOnce() -> bool,
    ) -> Result<Attempt, RepoError> {
        let call = digest_id(call_sid);
        let mut compare = Some(compare);
        let mut verdict = None;
        let (mut last_top, mut skip) = (0u32, 0u32);
        for _ in 0..2 * self.max_tries + 2 {
            let existing = self.attempts(id).await?;
            if let Some(a) = existing.iter().find(|a| a.call == call && a.step == step) {
                return Ok(Attempt::Replayed(a.clone()));
            }
            if existing.iter().any(|a| {
                a.result == AttemptResult::Pass && a.call != call && at < a.at + self.pass_window
            }) {
                return Ok(Attempt::PassedElsewhere);
            }
            if existing.len() as u32 >= self.max_tries {
                return Ok(Attempt::NoSlot);
            }
            // A key whose object is no valid attempt (written without the
            // identity secret) is stepped over: it takes no try of the caller's.
            let top = existing.iter().map(|a| a.slot).max().unwrap_or(0);
            if top != last_top {
                (last_top, skip) = (top, 0);
            }
            let slot = top + 1 + skip;
            let result = *verdict.get_or_insert_with(|| {
                if compare.take().is_some_and(|f| f()) {
                    AttemptResult::Pass
                } else {
                    AttemptResult::Fail
                }
            });
            let mut fact = AttemptFact {
                slot,
                call: call.clone(),
                step,
                method,
                result,
                at,
                mac: String::new(),
            };
            fact.mac = self.attempt_mac(id, &fact);
            let k = key(format!("identity/{id}/attempts/{slot:02}.json"))?;
            if create_json(self.store.as_ref(), &k, &fact).await? {
                return Ok(Attempt::Taken(fact));
            }
            // Taken meanwhile: by another call's valid attempt (the next
            // listing shows it) or by an object that is none (stepped over).
            skip += 1;
        }
        Ok(Attempt::NoSlot)
    }

    /// Counts a failed check against the caller ID it came from, for
    /// `SIGNAL_DAYS`.
    pub async fn signal_failure(
        &self,
        from: Option<&PhoneNumber>,
        id: &ConfirmationId,
        slot: u32,
        at: OffsetDateTime,
    ) -> Result<u32, RepoError> {
        let tag = self.keys.caller_tag(from);
        let k = key(format!("identity-signals/{tag}/{id}-{slot:02}.json"))?;
        let fact = Signal {
            masked: from.map(PhoneNumber::masked),
            at,
            until: at + Duration::days(SIGNAL_DAYS),
        };
        create_json(self.store.as_ref(), &k, &fact).await?;
        // Distinct requests this caller ID failed a check of: one listing of
        // its own prefix, expired signals included until `signals` sweeps them.
        let mut requests = BTreeSet::new();
        for k in self.store.list(&format!("identity-signals/{tag}/")).await? {
            if let Some(name) = k.as_str().rsplit('/').next() {
                requests.insert(name.rsplit_once('-').map_or(name, |(id, _)| id).to_owned());
            }
        }
        Ok(requests.len() as u32)
    }

    /// Caller IDs with the most failed checks still counting at `now`, across
    /// requests, at most `limit`; expired signals are removed on the way.
    pub async fn signals(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<CallerSignal>, RepoError> {
        let mut by_tag: BTreeMap<String, (CallerSignal, BTreeSet<String>)> = BTreeMap::new();
        for k in self.store.list("identity-signals/").await? {
            let Some(s) = read_json::<Signal>(self.store.as_ref(), &k).await? else {
                continue;
            };
            if s.until <= now {
                self.store.delete(&k).await?;
                continue;
            }
            let mut parts = k
                .as_str()
                .trim_start_matches("identity-signals/")
                .split('/');
            let (Some(tag), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            let request = name.rsplit_once('-').map(|(id, _)| id).unwrap_or(name);
            let (e, requests) = by_tag.entry(tag.to_owned()).or_insert_with(|| {
                let signal = CallerSignal {
                    caller: tag.to_owned(),
                    masked: s.masked.clone(),
                    failed_checks: 0,
                    requests: 0,
                    last_at: s.at,
                };
                (signal, BTreeSet::new())
            });
            e.failed_checks += 1;
            e.last_at = e.last_at.max(s.at);
            requests.insert(request.to_owned());
            e.requests = requests.len() as u32;
        }
        let by_tag: BTreeMap<String, CallerSignal> =
            by_tag.into_iter().map(|(k, (v, _))| (k, v)).collect();
        let mut all: Vec<CallerSignal> = by_tag.into_values().collect();
        all.sort_by(|a, b| {
            b.failed_checks
                .cmp(&a.failed_checks)
                .then(b.last_at.cmp(&a.last_at))
        });
        all.truncate(limit);
        Ok(all)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Signal {
    masked: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    until: OffsetDateTime,
}

/// Failed identity checks from one caller ID, across requests.
#[derive(Debug, Clone, Serialize)]
pub struct CallerSignal {
    /// The caller ID's keyed hash (`withheld` for withheld numbers).
    pub caller: String,
    /// The caller ID, masked.
    pub masked: Option<String>,
    /// Failed checks still counting.
    pub failed_checks: u32,
    /// Distinct requests this caller failed a check of.
    pub requests: u32,
    /// The latest.
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FsStore;

    fn setup(dir: &std::path::Path) -> (Arc<dyn ObjectStore>, IdentityStore) {
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::open(dir).unwrap());
        let keys = IdentityKeys::new("an-identity-secret-of-some-length-0123456789");
        (
            store.clone(),
            IdentityStore::new(store, keys, 3, Duration::minutes(15)),
        )
    }

    fn request(identity: IdentityMethod) -> ConfirmationRequest {
        crate::confirmations::tests::sample_request(identity)
    }

    async fn everything(store: &Arc<dyn ObjectStore>) -> String {
        let mut all = String::new();
        for k in store.list("").await.unwrap() {
            all.push_str(k.as_str());
            if let Some(b) = store.get(&k).await.unwrap() {
                all.push_str(&String::from_utf8_lossy(&b));
            }
        }
        all
    }

    #[tokio::test]
    async fn a_pin_is_kept_only_as_a_mac_found_by_phone_and_account_and_forgotten_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids) = setup(dir.path());
        let r = request(IdentityMethod::Pin);
        let code = ids
            .register(&r, NewIdentity::Pin("48213907".into()), r.expires_at)
            .await
            .unwrap();
        assert_eq!(code, None);
        let all = everything(&store).await;
        assert!(
            !all.contains("48213907") && !all.contains("5551230001"),
            "{all}"
        );
        assert_eq!(
            ids.by_phone(&r.customer.phone).await.unwrap(),
            vec![r.id.clone()]
        );
        // The account's digits, whatever letters surround them.
        assert_eq!(
            ids.by_account_digits("48213907").await.unwrap(),
            vec![r.id.clone()]
        );
        assert!(ids.by_account_digits("4821390").await.unwrap().is_empty());
        let fact = ids.secret(&r.id).await.unwrap().unwrap();
        assert!(ids
            .keys()
            .secret_matches(&r.id, "pin", "48213907", &fact.macs[0]));
        forget(store.as_ref(), &r.id).await.unwrap();
        assert!(ids.secret(&r.id).await.unwrap().is_none());
        assert!(ids.by_phone(&r.customer.phone).await.unwrap().is_empty());
        assert!(ids.by_account_digits("48213907").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_one_time_code_is_answered_once_and_stored_as_a_mac() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids) = setup(dir.path());
        let r = request(IdentityMethod::Otp);
        let code = ids
            .register(&r, NewIdentity::Otp, r.expires_at)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(code.len(), 8);
        assert!(!everything(&store).await.contains(&code));
        let fact = ids.secret(&r.id).await.unwrap().unwrap();
        assert_eq!(fact.code_expires_at, Some(r.expires_at));
        assert!(ids
            .keys()
            .secret_matches(&r.id, "otp", &code, &fact.macs[0]));
    }

    #[tokio::test]
    async fn attempts_count_once_per_step_and_stop_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (_, ids) = setup(dir.path());
        let id = ConfirmationId::generate();
        let at = OffsetDateTime::now_utc();
        let m = IdentityMethod::Pin;
        let a1 = ids.attempt(&id, "CA1", 1, m, at, || false).await.unwrap();
        assert!(matches!(&a1, Attempt::Taken(a) if a.slot == 1 && a.result == AttemptResult::Fail));
        // A provider retry of the same step: the first verdict, no new slot,
        // and no comparison (a right answer now changes nothing).
        let again = ids.attempt(&id, "CA1", 1, m, at, || true).await.unwrap();
        assert!(
            matches!(&again, Attempt::Replayed(a) if a.slot == 1 && a.result == AttemptResult::Fail)
        );
        ids.attempt(&id, "CA1", 2, m, at, || false).await.unwrap();
        let third = ids.attempt(&id, "CA1", 3, m, at, || false).await.unwrap();
        assert!(matches!(&third, Attempt::Taken(a) if a.slot == 3));
        let mut compared = false;
        let none = ids
            .attempt(&id, "CA1", 4, m, at, || {
                compared = true;
                true
            })
            .await
            .unwrap();
        assert_eq!(none, Attempt::NoSlot);
        assert!(!compared, "no comparison once every slot is used");
        assert_eq!(ids.attempts(&id).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_forged_pass_does_not_count_and_a_pass_shuts_out_other_calls() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids) = setup(dir.path());
        let id = ConfirmationId::generate();
        let at = OffsetDateTime::now_utc();
        // A store writer adds a passing slot without the identity secret.
        let forged = AttemptFact {
            slot: 1,
            call: digest_id("CAattacker"),
            step: 1,
            method: IdentityMethod::Pin,
            result: AttemptResult::Pass,
            at,
            mac: "00".repeat(32),
        };
        let k = key(format!("identity/{id}/attempts/01.json")).unwrap();
        create_json(store.as_ref(), &k, &forged).await.unwrap();
        assert!(ids.attempts(&id).await.unwrap().is_empty());
        // It takes slot 2, as slot 1 is taken, and passes.
        let a = ids
            .attempt(&id, "CAcustomer", 1, IdentityMethod::Pin, at, || true)
            .await
            .unwrap();
        assert!(matches!(&a, Attempt::Taken(f) if f.slot == 2 && f.result == AttemptResult::Pass));
        let other = ids
            .attempt(&id, "CAother", 1, IdentityMethod::Pin, at, || true)
            .await
            .unwrap();
        assert_eq!(other, Attempt::PassedElsewhere);
        // Once the passing call's steps have expired, its pass keeps no one
        // out: another call takes the last slot.
        let later = ids
            .attempt(
                &id,
                "CAother",
                1,
                IdentityMethod::Pin,
                at + Duration::minutes(16),
                || true,
            )
            .await
            .unwrap();
        assert!(matches!(&later, Attempt::Taken(f) if f.slot == 3));
    }

    #[tokio::test]
    async fn failures_are_counted_per_caller_id_across_requests() {
        let dir = tempfile::tempdir().unwrap();
        let (_, ids) = setup(dir.path());
        let at = OffsetDateTime::now_utc();
        let bad: PhoneNumber = "+15550001111".parse().unwrap();
        for _ in 0..2 {
            let id = ConfirmationId::generate();
            ids.signal_failure(Some(&bad), &id, 1, at).await.unwrap();
            ids.signal_failure(Some(&bad), &id, 2, at).await.unwrap();
        }
        // The third request this caller ID fails makes three.
        let third = ids
            .signal_failure(Some(&bad), &ConfirmationId::generate(), 1, at)
            .await
            .unwrap();
        assert_eq!(third, 3);
        ids.signal_failure(None, &ConfirmationId::generate(), 1, at)
            .await
            .unwrap();
        let top = ids.signals(at, 10).await.unwrap();
        assert_eq!(top.len(), 2);
        assert_eq!((top[0].failed_checks, top[0].requests), (5, 3));
        assert_eq!(top[0].masked.as_deref(), Some(bad.masked().as_str()));
        assert_eq!(top[1].caller, "withheld");
        // After the window they no longer count, and are removed.
        let later = at + Duration::days(SIGNAL_DAYS) + Duration::seconds(1);
        assert!(ids.signals(later, 10).await.unwrap().is_empty());
    }
}
