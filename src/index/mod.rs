//! The search index: a derived, rebuildable table of what search needs, one
//! row per record, following the store (see `docs/replay-and-index-design.md`).
//!
//! The index decides which records a search answers; the store decides what
//! they say. Rows move only forward (a higher version, a newer hold fact), so
//! the order in which updates arrive does not matter.

pub mod sqlite;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

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
