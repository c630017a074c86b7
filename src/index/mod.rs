//! The search index: a derived, rebuildable table of what search needs, one
//! row per record, following the store (see `docs/replay-and-index-design.md`).
//!
//! The index decides which records a search answers; the store decides what
//! they say. Rows move only forward (a higher version, a newer hold fact), so
//! the order in which updates arrive does not matter.

pub mod contract;
pub mod follow;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

/// The lease an instance with an embedded SQLite index holds on an S3 store.
pub const SQLITE_LEASE: &str = "index-sqlite-owner";

/// Opens the index at a `postgres://` URL.
pub async fn open_url(url: &str) -> Result<std::sync::Arc<dyn SearchIndex>, IndexError> {
    Ok(std::sync::Arc::new(
        postgres::PostgresIndex::connect(url).await?,
    ))
}

/// A time as the index stores it: nanoseconds since 1970 (saturating).
fn nanos(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

/// [`nanos`] read back.
fn time_of(n: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A generation number as the index stores it (saturating).
fn generation_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What the index keeps of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The record (confirmation) id.
    pub record_id: String,
    /// The newest version indexed.
    pub version: u32,
    /// Hex SHA-256 of that version's stored bytes.
    pub sha256: String,
    /// The request's account.
    pub account_id: String,
    /// The confirmation number.
    pub confirmation_number: String,
    /// HMAC of the customer's E.164 number (see [`PhoneKey`]).
    pub phone_hmac: String,
    /// Kind of change.
    pub kind: String,
    /// Outcome.
    pub outcome: String,
    /// `complete` or `incomplete`.
    pub status: String,
    /// The agent who asked.
    pub agent_id: String,
    /// When the request was made: the search order.
    pub requested_at: OffsetDateTime,
    /// Number of the newest hold fact taken into account (0: none).
    pub hold_n: u32,
    /// Whether the record is on hold.
    pub held: bool,
    /// Whether a tombstone purged it: every other field is then cleared
    /// (empty text, version 0) but `requested_at`, which keeps its place.
    pub purged: bool,
}

/// One change the indexer found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A record version (its hold fields are ignored).
    Record(Box<Row>),
    /// Hold fact `n` of a record: held or released.
    Hold {
        /// The record.
        record_id: String,
        /// The fact's number; only a higher one moves the row.
        n: u32,
        /// Held after this fact.
        held: bool,
    },
    /// A tombstone: the row is cleared down to its id and never comes back.
    Purged {
        /// The record.
        record_id: String,
    },
}

/// The seal an index has read up to: its number and the hex SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealMark {
    /// The seal's number (0: none read).
    pub seal: u64,
    /// Hex SHA-256 of its bytes (empty for seal 0).
    pub sha256: String,
}

impl SealMark {
    /// Nothing read yet.
    pub fn none() -> SealMark {
        SealMark {
            seal: 0,
            sha256: String::new(),
        }
    }

    /// The form kept in the index's meta table: `N:sha256`.
    pub fn to_meta(&self) -> String {
        format!("{}:{}", self.seal, self.sha256)
    }

    /// Reads [`SealMark::to_meta`]; `None` for anything else.
    pub fn from_meta(text: &str) -> Option<SealMark> {
        let (n, sha) = text.split_once(':')?;
        Some(SealMark {
            seal: n.parse().ok()?,
            sha256: sha.to_owned(),
        })
    }
}

/// What an index says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexState {
    /// The generation searches read; 0 when the index was never built.
    pub generation: u64,
    /// The last seal the current generation has read.
    pub last_seal: SealMark,
    /// [`PhoneKey::fingerprint`] of the secret the current generation was built with.
    pub phone_fingerprint: Option<String>,
}

/// An index failure, named for the operator.
#[derive(Debug, thiserror::Error)]
#[error("search index: {0}")]
pub struct IndexError(pub String);

/// A search index backend. Rows live in generations: searches read the
/// current one; a rebuild fills a new one and switches to it at once, so
/// searches keep answering from the old one meanwhile.
#[async_trait]
pub trait SearchIndex: Send + Sync + 'static {
    /// The current generation, its last seal and its phone-secret fingerprint.
    async fn state(&self) -> Result<IndexState, IndexError>;

    /// Applies `changes` to `generation` in one transaction, each moving
    /// its row only forward. With `seal`, also moves the generation's last
    /// seal to it, when that generation is current and `seal` is newer.
    async fn apply(
        &self,
        generation: u64,
        changes: &[Change],
        seal: Option<&SealMark>,
    ) -> Result<(), IndexError>;

    /// Rows of the current generation matching `filter`, newest request
    /// first (ties by id, descending), after `after`, at most `limit`.
    async fn search(
        &self,
        filter: &Filter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, IndexError>;

    /// Starts a new generation for a rebuild: drops the rows of every
    /// generation but the current one and answers the new number.
    async fn start_generation(&self) -> Result<u64, IndexError>;

    /// Makes `generation` current, read up to `seal` with the phone secret
    /// of `phone_fingerprint`, in one transaction, and drops the older rows.
    async fn switch_generation(
        &self,
        generation: u64,
        seal: &SealMark,
        phone_fingerprint: &str,
    ) -> Result<(), IndexError>;

    /// One line for logs: which backend, where (no password).
    fn describe(&self) -> String;
}

/// Search filters; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this account.
    pub account_id: Option<String>,
    /// Only this phone number's HMAC.
    pub phone_hmac: Option<String>,
    /// Only this confirmation number.
    pub confirmation_number: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this agent.
    pub agent_id: Option<String>,
    /// Requested at or after.
    pub from: Option<OffsetDateTime>,
    /// Requested before.
    pub to: Option<OffsetDateTime>,
    /// Only held (or only not held) records.
    pub held: Option<bool>,
}

/// Where a page ends: the last row's order key. The next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The last row's request time.
    pub requested_at: OffsetDateTime,
    /// The last row's id.
    pub record_id: String,
}

/// One page of a search, newest request first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The rows.
    pub rows: Vec<Row>,
    /// Where the next page starts, when there may be one.
    pub next: Option<Cursor>,
}

impl Page {
    /// A page of at most `limit` from `rows`, fetched as `limit + 1` so that
    /// one more row means a next page, which starts after the last one kept.
    pub fn of(mut rows: Vec<Row>, limit: usize) -> Page {
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| Cursor {
                requested_at: r.requested_at,
                record_id: r.record_id.clone(),
            })
        } else {
            None
        };
        Page { rows, next }
    }
}

/// Keys phone numbers for the index: an HMAC under a secret from
/// configuration, so an index reader learns no number (numbers are short
/// enough that a plain hash falls to enumeration).
#[derive(Clone)]
pub struct PhoneKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for PhoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneKey(<hidden>)")
    }
}

impl PhoneKey {
    /// A key from the configured secret.
    pub fn new(secret: &[u8]) -> Self {
        PhoneKey {
            secret: secret.to_vec(),
        }
    }

    fn mac(&self, label: &str, text: &str) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            // HMAC takes keys of any length.
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The index form of an E.164 number.
    pub fn phone(&self, e164: &str) -> String {
        self.mac("callproof.index.phone", e164)
    }

    /// What the index keeps to tell whether it was made with this secret.
    pub fn fingerprint(&self) -> String {
        self.mac("callproof.index.secret", "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_keys_depend_on_the_secret_and_hide_the_number() {
        let a = PhoneKey::new(b"secret-a");
        let b = PhoneKey::new(b"secret-b");
        assert_eq!(a.phone("+14155550123"), a.phone("+14155550123"));
        assert_ne!(a.phone("+14155550123"), b.phone("+14155550123"));
        assert_ne!(a.phone("+14155550123"), a.phone("+14155550124"));
        assert!(!a.phone("+14155550123").contains("4155550123"));
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert!(!format!("{a:?}").contains("secret"));
    }
}
