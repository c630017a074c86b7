//! Confirmation requests and the facts of their calls, kept as write-once
//! objects: request, call claim, one consent event per question, one outcome.
//!
//! Status is derived from which facts exist, never stored, so two instances
//! can never disagree about it and a replayed webhook can never add a fact twice.

use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::domain::{
    ChangeItem, ChangeKind, ConfirmationId, ConfirmationNumber, Locale, PhoneNumber,
};
use crate::flow::consent::ConsentLabel;
use crate::identity::{IdentityCheck, IdentityMethod, PausedSpan};
use crate::store::{ObjectKey, ObjectStore, StoreError};

mod cache;
pub use cache::FactCache;

/// The customer the confirmation is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Name as the agent gave it; spoken in the greeting.
    pub name: String,
    /// The customer's phone number.
    pub phone: PhoneNumber,
}

/// A confirmation request as an agent created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmationRequest {
    /// Server-made id.
    pub id: ConfirmationId,
    /// The number the caller hears on consent.
    pub confirmation_number: ConfirmationNumber,
    /// The customer's account in the client's systems.
    pub account_id: String,
    /// What the change is.
    pub kind: ChangeKind,
    /// The changed fields; sensitive values are already masked.
    pub change: Vec<ChangeItem>,
    /// Who is asked.
    pub customer: Customer,
    /// The agent who asked.
    pub agent_id: String,
    /// Name of the API key that created the request; `None` on requests
    /// stored before keys had names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_key: Option<String>,
    /// Language of the call.
    pub locale: Locale,
    /// Where the outcome is POSTed, if anywhere.
    pub callback_url: Option<String>,
    /// When the request was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// After this the transfer URL no longer starts a call.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The identity check the caller passes before any change is confirmed;
    /// its secret is never here (see [`crate::identity`]).
    #[serde(default, skip_serializing_if = "IdentityMethod::is_none")]
    pub identity: IdentityMethod,
}

/// The call that took the request: the first call to reach the transfer URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallClaim {
    /// Provider's call id.
    pub call_sid: String,
    /// Caller number, masked.
    pub from_masked: Option<String>,
    /// When the flow started: for an inbound call, when callproof answered
    /// it and started the recording, so offsets into the recording hold.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// How the call reached the flow: `transfer` (an agent's transfer URL) or
    /// `inbound` (the inbound number). Absent on claims stored before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leg: Option<String>,
    /// Whether the presented caller ID is the request's customer phone: a
    /// signal, not a proof (caller IDs can be spoofed). `None`: withheld.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_id_matches: Option<bool>,
    /// The provider's caller ID attestation (`StirVerstat`), when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stir_verstat: Option<String>,
    /// The identity check this call passed or failed, when the request has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityCheck>,
    /// Spans of the recording paused while secrets were entered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paused: Vec<PausedSpan>,
}

/// How the caller answered one question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// Keypad digits.
    Dtmf,
    /// A speech transcript.
    Speech,
    /// Nothing before the timeout.
    None,
}

/// One answer to one consent question: the evidence of what was asked and heard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentEvent {
    /// Answer number within the call, from 0.
    pub step: u32,
    /// The id of the script question answered (`prompts/<locale>/<kind>.toml`);
    /// `None` on answers stored before confirmations asked scripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_id: Option<String>,
    /// Exactly what the caller heard before answering.
    pub question: String,
    /// Which inputs the question accepted: `dtmf speech` or `dtmf`.
    pub accepted_input: String,
    /// How the caller answered.
    pub input_type: InputType,
    /// Keypad digits, if any.
    pub digits: Option<String>,
    /// Speech transcript, if any.
    pub transcript: Option<String>,
    /// Recogniser confidence for the transcript, as the provider sent it.
    pub confidence: Option<f64>,
    /// How callproof understood the answer.
    pub label: ConsentLabel,
    /// The call it was given on.
    pub call_sid: String,
    /// When the answer arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// How a confirmation call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The caller consented.
    Confirmed,
    /// The caller refused.
    Declined,
    /// No usable answer after every retry.
    NoAnswer,
    /// The caller went to a human agent.
    TransferredToAgent,
    /// The caller hung up before answering.
    Abandoned,
    /// No call took the request before it expired. Written only when the
    /// request's outcome callback needs it settled; never has a record.
    Expired,
    /// The caller failed the identity check on every try; an agent who has
    /// checked the customer makes a new request.
    Locked,
    /// The caller refused and said the request was not theirs; the change is
    /// not made and the business follows up.
    Disputed,
}

/// The final fact of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeFact {
    /// How it ended.
    pub outcome: Outcome,
    /// The call it ended on.
    pub call_sid: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Where a request stands, derived from its facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, no call yet.
    Pending,
    /// A call is in the flow.
    InProgress,
    /// See [`Outcome::Confirmed`].
    Confirmed,
    /// See [`Outcome::Declined`].
    Declined,
    /// See [`Outcome::NoAnswer`].
    NoAnswer,
    /// See [`Outcome::TransferredToAgent`].
    TransferredToAgent,
    /// See [`Outcome::Abandoned`].
    Abandoned,
    /// No call came before `expires_at`.
    Expired,
    /// See [`Outcome::Locked`].
    Locked,
    /// See [`Outcome::Disputed`].
    Disputed,
}

impl Outcome {
    /// Every outcome, in a stable order.
    pub const ALL: [Outcome; 8] = [
        Outcome::Confirmed,
        Outcome::Declined,
        Outcome::NoAnswer,
        Outcome::TransferredToAgent,
        Outcome::Abandoned,
        Outcome::Expired,
        Outcome::Locked,
        Outcome::Disputed,
    ];

    /// True when a call reached this outcome, so it has a record; only
    /// `expired` never does.
    pub fn has_record(self) -> bool {
        self != Outcome::Expired
    }

    /// The outcome's name in records, metrics and callback event types.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Confirmed => "confirmed",
            Outcome::Declined => "declined",
            Outcome::NoAnswer => "no_answer",
            Outcome::TransferredToAgent => "transferred_to_agent",
            Outcome::Abandoned => "abandoned",
            Outcome::Expired => "expired",
            Outcome::Locked => "locked",
            Outcome::Disputed => "disputed",
        }
    }
}

impl From<Outcome> for Status {
    fn from(o: Outcome) -> Status {
        match o {
            Outcome::Confirmed => Status::Confirmed,
            Outcome::Declined => Status::Declined,
            Outcome::NoAnswer => Status::NoAnswer,
            Outcome::TransferredToAgent => Status::TransferredToAgent,
            Outcome::Abandoned => Status::Abandoned,
            Outcome::Expired => Status::Expired,
            Outcome::Locked => Status::Locked,
            Outcome::Disputed => Status::Disputed,
        }
    }
}

/// A request with every fact known about it.
#[derive(Debug, Clone)]
pub struct ConfirmationView {
    /// The request.
    pub request: ConfirmationRequest,
    /// The call that took it.
    pub call: Option<CallClaim>,
    /// Answers in question order.
    pub events: Vec<ConsentEvent>,
    /// The end, if reached.
    pub outcome: Option<OutcomeFact>,
}

impl ConfirmationView {
    /// The status at `now`.
    pub fn status(&self, now: OffsetDateTime) -> Status {
        match (&self.outcome, &self.call) {
            (Some(o), _) => o.outcome.into(),
            (None, Some(_)) => Status::InProgress,
            (None, None) if now >= self.request.expires_at => Status::Expired,
            (None, None) => Status::Pending,
        }
    }
}

/// The result of a write-once fact: ours, or the one already there.
#[derive(Debug, Clone, PartialEq)]
pub enum Written<T> {
    /// Our fact was stored.
    New(T),
    /// Another fact was there first; it is returned and ours was dropped.
    Existing(T),
}

impl<T> Written<T> {
    /// The fact now stored, whoever wrote it.
    pub fn into_inner(self) -> T {
        match self {
            Written::New(t) | Written::Existing(t) => t,
        }
    }

    /// The fact now stored, borrowed.
    pub fn stored(&self) -> &T {
        match self {
            Written::New(t) | Written::Existing(t) => t,
        }
    }
}

/// Failure of the repository: the store failed or holds something unreadable.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored object does not parse: a bug or damage, named by key.
    #[error("stored object {key} is unreadable: {reason}")]
    Corrupt {
        /// The object.
        key: String,
        /// The parse error.
        reason: String,
    },
}

/// Request and call facts over an [`ObjectStore`], with a bounded copy of
/// the write-once ones this process has seen (see [`FactCache`]).
#[derive(Clone)]
pub struct Confirmations {
    store: Arc<dyn ObjectStore>,
    facts: Arc<FactCache>,
}

fn key(s: String) -> ObjectKey {
    // Every key here is built from server-made ids and hex digests, which
    // always form valid keys; a failure is a programming error.
    ObjectKey::new(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Writes `value` as JSON under `k`, once; `false` when the key was already taken.
pub(crate) async fn create_json<T: Serialize>(
    store: &dyn ObjectStore,
    k: &ObjectKey,
    value: &T,
) -> Result<bool, RepoError> {
    create_json_retained(store, k, value, None).await
}

/// [`create_json`], retained until `retain_until` where the store enforces retention.
pub(crate) async fn create_json_retained<T: Serialize>(
    store: &dyn ObjectStore,
    k: &ObjectKey,
    value: &T,
    retain_until: Option<OffsetDateTime>,
) -> Result<bool, RepoError> {
    let bytes = to_json(k, value)?;
    create_bytes_retained(store, k, Bytes::from(bytes), retain_until).await
}

/// `value` as the JSON stored under `k`.
fn to_json<T: Serialize>(k: &ObjectKey, value: &T) -> Result<Vec<u8>, RepoError> {
    serde_json::to_vec_pretty(value).map_err(|e| RepoError::Corrupt {
        key: k.to_string(),
        reason: e.to_string(),
    })
}

/// The JSON `bytes` stored under `k`, parsed.
fn from_json<T: DeserializeOwned>(k: &ObjectKey, bytes: &[u8]) -> Result<T, RepoError> {
    serde_json::from_slice(bytes).map_err(|e| RepoError::Corrupt {
        key: k.to_string(),
        reason: e.to_string(),
    })
}

/// Writes `bytes` under `k`, once, retained until `retain_until` where the
/// store enforces retention; `false` when the key was already taken.
pub(crate) async fn create_bytes_retained(
    store: &dyn ObjectStore,
    k: &ObjectKey,
    bytes: Bytes,
    retain_until: Option<OffsetDateTime>,
) -> Result<bool, RepoError> {
    let result = match retain_until {
        Some(until) => store.create_retained(k, bytes, until).await,
        None => store.create(k, bytes).await,
    };
    match result {
        Ok(()) => Ok(true),
        Err(StoreError::AlreadyExists(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The key `text`, or an error naming it: for keys built from stored ids that
/// could, if damaged, not form a valid key.
pub(crate) fn checked_key(text: String) -> Result<ObjectKey, RepoError> {
    ObjectKey::new(&text).map_err(|e| RepoError::Corrupt {
        key: text,
        reason: e.to_string(),
    })
}

/// Reads the JSON object under `k`, or `None` when there is none.
pub(crate) async fn read_json<T: DeserializeOwned>(
    store: &dyn ObjectStore,
    k: &ObjectKey,
) -> Result<Option<T>, RepoError> {
    match store.get(k).await? {
        None => Ok(None),
        Some(b) => from_json(k, &b).map(Some),
    }
}

/// Hex SHA-256 of provider-given text, so provider ids never become paths.
pub fn digest_id(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..20])
}

impl Confirmations {
    /// A repository over `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Confirmations {
            store,
            facts: Arc::new(FactCache::disabled()),
        }
    }

    /// The same repository, keeping copies of write-once facts in `facts`.
    pub fn with_fact_cache(self, facts: FactCache) -> Self {
        Confirmations {
            facts: Arc::new(facts),
            ..self
        }
    }

    fn prefix(id: &ConfirmationId) -> String {
        format!("confirmations/{id}/")
    }

    async fn create<T: Serialize>(&self, k: ObjectKey, value: &T) -> Result<bool, RepoError> {
        create_json(self.store.as_ref(), &k, value).await
    }

    async fn read<T: DeserializeOwned>(&self, k: &ObjectKey) -> Result<Option<T>, RepoError> {
        read_json(self.store.as_ref(), k).await
    }

    /// Reads the write-once fact under `k`: the kept copy when there is one,
    /// else the store's, which is then kept.
    async fn fact<T>(&self, k: &ObjectKey) -> Result<Option<T>, RepoError>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        if let Some(kept) = self.facts.get::<T>(k.as_str()) {
            return Ok(Some(T::clone(&kept)));
        }
        let Some(bytes) = self.store.get(k).await? else {
            return Ok(None);
        };
        let value: T = from_json(k, &bytes)?;
        self.facts
            .insert(k.as_str(), Arc::new(value.clone()), bytes.len());
        Ok(Some(value))
    }

    /// Creates the write-once fact `value` under `k`, keeping a copy once it
    /// is stored; `false` when the key was already taken.
    async fn create_fact<T>(&self, k: &ObjectKey, value: &T) -> Result<bool, RepoError>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let bytes = to_json(k, value)?;
        let len = bytes.len();
        let created =
            create_bytes_retained(self.store.as_ref(), k, Bytes::from(bytes), None).await?;
        if created {
            self.facts.insert(k.as_str(), Arc::new(value.clone()), len);
        }
        Ok(created)
    }

    /// Creates a write-once fact, or returns the one already there (the kept
    /// copy when there is one: the store is not asked again).
    async fn create_or_existing<T>(&self, k: ObjectKey, value: T) -> Result<Written<T>, RepoError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        if let Some(kept) = self.facts.get::<T>(k.as_str()) {
            return Ok(Written::Existing(T::clone(&kept)));
        }
        if self.create_fact(&k, &value).await? {
            return Ok(Written::New(value));
        }
        let existing = self.fact(&k).await?.ok_or_else(|| RepoError::Corrupt {
            key: k.to_string(),
            reason: "reported as existing but not readable".into(),
        })?;
        Ok(Written::Existing(existing))
    }

    /// Stores a new request.
    pub async fn create_request(&self, request: &ConfirmationRequest) -> Result<(), RepoError> {
        let k = key(format!("{}request.json", Self::prefix(&request.id)));
        if self.create_fact(&k, request).await? {
            Ok(())
        } else {
            Err(StoreError::AlreadyExists(k).into())
        }
    }

    /// The request alone, or `None`.
    pub async fn request(
        &self,
        id: &ConfirmationId,
    ) -> Result<Option<ConfirmationRequest>, RepoError> {
        let k = key(format!("{}request.json", Self::prefix(id)));
        // Every webhook loads its request first: asking the store whether it
        // is still there (a lookup, not a read) stops a request purged by
        // another process from being served, or written to, from copies.
        if let Some(kept) = self.facts.get::<ConfirmationRequest>(k.as_str()) {
            if self.store.head(&k).await?.is_none() {
                self.facts.forget_prefix(&Self::prefix(id));
                return Ok(None);
            }
            return Ok(Some(ConfirmationRequest::clone(&kept)));
        }
        self.fact(&k).await
    }

    /// The request with every fact, or `None`.
    pub async fn view(&self, id: &ConfirmationId) -> Result<Option<ConfirmationView>, RepoError> {
        let Some(request) = self.request(id).await? else {
            return Ok(None);
        };
        let p = Self::prefix(id);
        let call = self.fact(&key(format!("{p}call.json"))).await?;
        let outcome = self.outcome(id).await?;
        let mut events = Vec::new();
        for k in self.store.list(&format!("{p}events/")).await? {
            if let Some(e) = self.fact::<ConsentEvent>(&k).await? {
                events.push(e);
            }
        }
        events.sort_by_key(|e| e.step);
        Ok(Some(ConfirmationView {
            request,
            call,
            events,
            outcome,
        }))
    }

    /// The outcome, if the request has one.
    pub async fn outcome(&self, id: &ConfirmationId) -> Result<Option<OutcomeFact>, RepoError> {
        self.fact(&key(format!("{}outcome.json", Self::prefix(id))))
            .await
    }

    /// Claims the request for a call; the first call wins for good. The call
    /// is mapped back to the request whenever it holds the claim, so a mapping
    /// lost to a crash is written again when the provider retries.
    pub async fn claim_call(
        &self,
        id: &ConfirmationId,
        claim: CallClaim,
    ) -> Result<Written<CallClaim>, RepoError> {
        let call_sid = claim.call_sid.clone();
        let call_key = key(format!("{}call.json", Self::prefix(id)));
        // The open-flow marker comes first, so no crash can leave a claimed
        // call that the sweeper does not know to end; made again if it went.
        self.create(key(format!("open/{id}")), &Marker {}).await?;
        let written = self.create_or_existing(call_key, claim).await?;
        if written.stored().call_sid == call_sid {
            let map = key(format!("calls/{}/{id}.json", digest_id(&call_sid)));
            let mapping = CallMapping {
                confirmation_id: id.clone(),
            };
            // The mapping's content is its key's: one stored, by anyone, is this one.
            if !self.facts.contains(map.as_str()) {
                self.create(map.clone(), &mapping).await?;
                self.facts.insert(map.as_str(), Arc::new(mapping), 0);
            }
        }
        Ok(written)
    }

    /// The call that took the request, if any.
    pub async fn call(&self, id: &ConfirmationId) -> Result<Option<CallClaim>, RepoError> {
        self.fact(&key(format!("{}call.json", Self::prefix(id))))
            .await
    }

    /// Every request a provider call held (a call an agent sends through the
    /// flow twice holds two).
    pub async fn by_call_sid(&self, call_sid: &str) -> Result<Vec<ConfirmationId>, RepoError> {
        let mut ids = Vec::new();
        for k in self
            .store
            .list(&format!("calls/{}/", digest_id(call_sid)))
            .await?
        {
            if let Some(m) = self.read::<CallMapping>(&k).await? {
                ids.push(m.confirmation_id);
            }
        }
        Ok(ids)
    }

    /// Records the answer to question `event.step`; a replay gets the first answer back.
    pub async fn add_event(
        &self,
        id: &ConfirmationId,
        event: ConsentEvent,
    ) -> Result<Written<ConsentEvent>, RepoError> {
        let k = key(format!("{}events/{:04}.json", Self::prefix(id), event.step));
        self.create_or_existing(k, event).await
    }

    /// The answers stored so far, in step order. A step's answer token is
    /// given only once the step before it is answered, so the answers are
    /// steps 0, 1, 2, … without a gap: they are read until the first missing
    /// one, each from the kept copies when there are some, and no listing is made.
    pub async fn answers(&self, id: &ConfirmationId) -> Result<Vec<ConsentEvent>, RepoError> {
        let mut events = Vec::new();
        for step in 0u32.. {
            match self.event(id, step).await? {
                Some(e) => events.push(e),
                None => break,
            }
        }
        Ok(events)
    }

    /// The answer to question `step`, if one was stored.
    pub async fn event(
        &self,
        id: &ConfirmationId,
        step: u32,
    ) -> Result<Option<ConsentEvent>, RepoError> {
        self.fact(&key(format!("{}events/{step:04}.json", Self::prefix(id))))
            .await
    }

    /// Sets the outcome once; a later attempt gets the first outcome back.
    pub async fn set_outcome(
        &self,
        id: &ConfirmationId,
        fact: OutcomeFact,
    ) -> Result<Written<OutcomeFact>, RepoError> {
        // The record-due marker comes first, so no crash can leave an outcome
        // that the sweeper does not know needs a record.
        self.create(key(format!("pending/records/{id}")), &Marker {})
            .await?;
        let written = self
            .create_or_existing(key(format!("{}outcome.json", Self::prefix(id))), fact)
            .await?;
        self.close_flow(id).await?;
        // The request has ended: its check's secrets and lookups go.
        crate::identity::store::forget(self.store.as_ref(), id).await?;
        Ok(written)
    }

    /// Settles a request that no call took before `expires_at` as `expired`,
    /// once; a claim or outcome that won the race is returned instead. An
    /// outcome is write-once, so a late call finds the request settled.
    pub async fn expire(
        &self,
        request: &ConfirmationRequest,
    ) -> Result<Written<OutcomeFact>, RepoError> {
        let fact = OutcomeFact {
            outcome: Outcome::Expired,
            call_sid: None,
            at: request.expires_at,
        };
        let written = self
            .create_or_existing(
                key(format!("{}outcome.json", Self::prefix(&request.id))),
                fact,
            )
            .await?;
        crate::identity::store::forget(self.store.as_ref(), &request.id).await?;
        Ok(written)
    }

    /// Keeps when the provider reported the call over; the first report stands.
    pub async fn mark_ended(
        &self,
        id: &ConfirmationId,
        at: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let k = key(format!("{}ended.json", Self::prefix(id)));
        self.create(k, &CallEnded { at }).await.map(|_| ())
    }

    /// When the provider reported the call over, if it did.
    pub async fn ended_at(&self, id: &ConfirmationId) -> Result<Option<OffsetDateTime>, RepoError> {
        let e: Option<CallEnded> = self
            .fact(&key(format!("{}ended.json", Self::prefix(id))))
            .await?;
        Ok(e.map(|e| e.at))
    }

    async fn marker_ids(&self, prefix: &str) -> Result<Vec<ConfirmationId>, RepoError> {
        Ok(self
            .store
            .list(prefix)
            .await?
            .iter()
            .filter_map(|k| k.file_name().parse().ok())
            .collect())
    }

    async fn unmark(&self, k: String) -> Result<(), RepoError> {
        self.store.delete(&key(k)).await.map_err(Into::into)
    }

    /// Requests whose call is in the flow without an outcome (as far as known).
    pub async fn open_flows(&self) -> Result<Vec<ConfirmationId>, RepoError> {
        self.marker_ids("open/").await
    }

    /// Drops the open-flow marker of a request.
    pub async fn close_flow(&self, id: &ConfirmationId) -> Result<(), RepoError> {
        self.unmark(format!("open/{id}")).await
    }

    /// Requests with an outcome whose first record is not yet written.
    pub async fn records_due(&self) -> Result<Vec<ConfirmationId>, RepoError> {
        self.marker_ids("pending/records/").await
    }

    /// Drops the record-due marker of a request.
    pub async fn record_written(&self, id: &ConfirmationId) -> Result<(), RepoError> {
        self.unmark(format!("pending/records/{id}")).await
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CallEnded {
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
}

#[derive(Debug, Serialize, Deserialize)]
struct Marker {}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CallMapping {
    confirmation_id: ConfirmationId,
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration as StdDuration;

    use time::Duration;

    use super::*;
    use crate::domain::ChangeItem;
    use crate::identity::IdentityMethod;
    use crate::store::FsStore;

    /// A plan change for Dana, checked by `identity`, open for 30 minutes.
    pub(crate) fn sample_request(identity: IdentityMethod) -> ConfirmationRequest {
        let now = OffsetDateTime::now_utc();
        ConfirmationRequest {
            id: ConfirmationId::generate(),
            confirmation_number: ConfirmationNumber::generate(),
            account_id: "ACC-48213907".into(),
            kind: ChangeKind::Plan,
            change: vec![
                ChangeItem::new(0, "plan", None, Some("Basic"), Some("Plus"), false).unwrap(),
            ],
            customer: Customer {
                name: "Dana".into(),
                phone: "+15551230001".parse().unwrap(),
            },
            agent_id: "agent-7".into(),
            created_by_key: None,
            locale: Locale::EnUs,
            callback_url: None,
            created_at: now,
            expires_at: now + Duration::minutes(30),
            identity,
        }
    }

    fn request() -> ConfirmationRequest {
        sample_request(IdentityMethod::None)
    }

    fn claim(call_sid: &str) -> CallClaim {
        CallClaim {
            call_sid: call_sid.into(),
            from_masked: None,
            started_at: OffsetDateTime::now_utc(),
            leg: Some("transfer".into()),
            caller_id_matches: None,
            stir_verstat: None,
            identity: None,
            paused: Vec::new(),
        }
    }

    fn cached(dir: &std::path::Path) -> Confirmations {
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::open(dir).unwrap());
        Confirmations::new(store)
            .with_fact_cache(FactCache::new(1 << 20, StdDuration::from_secs(600)))
    }

    #[tokio::test]
    async fn a_request_purged_by_another_process_is_not_served_from_copies() {
        let dir = tempfile::tempdir().unwrap();
        let c = cached(dir.path());
        let r = request();
        c.create_request(&r).await.unwrap();
        c.claim_call(&r.id, claim("CA1")).await.unwrap();
        assert_eq!(c.request(&r.id).await.unwrap().as_ref(), Some(&r));
        // Another process (callproof purge) removes the request's objects.
        std::fs::remove_dir_all(dir.path().join(format!("confirmations/{}", r.id))).unwrap();
        assert_eq!(c.request(&r.id).await.unwrap(), None);
        assert_eq!(
            c.call(&r.id).await.unwrap(),
            None,
            "its claim's copy went too"
        );
    }

    #[tokio::test]
    async fn a_claim_known_from_a_copy_still_restores_a_missing_open_flow_marker() {
        let dir = tempfile::tempdir().unwrap();
        let c = cached(dir.path());
        let r = request();
        c.create_request(&r).await.unwrap();
        assert!(matches!(
            c.claim_call(&r.id, claim("CA1")).await.unwrap(),
            Written::New(_)
        ));
        let marker = dir.path().join(format!("open/{}", r.id));
        std::fs::remove_file(&marker).unwrap();
        let again = c.claim_call(&r.id, claim("CA1")).await.unwrap();
        assert!(matches!(again, Written::Existing(ref k) if k.call_sid == "CA1"));
        assert!(marker.exists(), "the open-flow marker is made again");
        // A second call still loses to the first, from the copy.
        let other = c.claim_call(&r.id, claim("CA2")).await.unwrap();
        assert!(matches!(other, Written::Existing(ref k) if k.call_sid == "CA1"));
    }

    #[tokio::test]
    async fn answers_are_read_by_step_and_agree_with_the_full_view() {
        let dir = tempfile::tempdir().unwrap();
        let c = cached(dir.path());
        let r = request();
        c.create_request(&r).await.unwrap();
        c.claim_call(&r.id, claim("CA1")).await.unwrap();
        for step in 0..3 {
            let e = ConsentEvent {
                step,
                question_id: Some(format!("q{step}")),
                question: "Do you agree?".into(),
                accepted_input: "dtmf speech".into(),
                input_type: InputType::Dtmf,
                digits: Some("1".into()),
                transcript: None,
                confidence: None,
                label: ConsentLabel::Affirm,
                call_sid: "CA1".into(),
                at: OffsetDateTime::now_utc(),
            };
            c.add_event(&r.id, e).await.unwrap();
        }
        // A second repository without copies reads the same from the store.
        let fresh = Confirmations::new(Arc::new(FsStore::open(dir.path()).unwrap()));
        let view = fresh.view(&r.id).await.unwrap().unwrap();
        assert_eq!(c.answers(&r.id).await.unwrap(), view.events);
        assert_eq!(fresh.answers(&r.id).await.unwrap(), view.events);
        assert_eq!(view.events.len(), 3);
    }
}
