//! The audit log: one write-once, signed, sealed entry per access to
//! evidence, written before anything is served, under `audit/<yyyy>/<mm>/<dd>/`.
//!
//! An entry says who (the key's role and name), what (an action, the route and
//! the record), when, from where and why. Ids sort by time, so listing a day's
//! prefix gives its entries in order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::confirmations::{checked_key, RepoError};
use crate::evidence::objects::Evidence;
use crate::store::ObjectKey;

/// `schema` of every audit entry.
pub const AUDIT_SCHEMA: &str = "callproof.audit-entry.v1";

/// Who acted: an API key's role and name, or a command run on the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Actor {
    /// agent, compliance, admin, or `operator` for a command that holds the signing key.
    pub role: String,
    /// The key's name, or the operating-system user of a command.
    pub name: String,
}

/// One access to evidence, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEntry {
    /// [`AUDIT_SCHEMA`].
    pub schema: String,
    /// Sortable id: 20 digits of Unix nanoseconds, `-`, 8 random hex digits.
    pub id: String,
    /// When the access was asked for.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who asked.
    pub actor: Actor,
    /// What was done, e.g. `records.search`, `records.read`, `records.audio`,
    /// `records.playback`, `records.export`, `records.verify`, `records.hold`,
    /// `records.release`, `records.purge`, `audit.read`.
    pub action: String,
    /// Method and route template, e.g. `GET /v1/records/{id}/audio`.
    pub route: String,
    /// The record concerned, if one.
    pub record_id: Option<String>,
    /// The client's address (from `X-Forwarded-For` only behind a trusted proxy).
    pub client: Option<String>,
    /// Why, as the caller said.
    pub reason: Option<String>,
    /// Search filters, with phone numbers replaced by a keyed hash.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filters: BTreeMap<String, String>,
}

impl AuditEntry {
    /// A new entry at `at` with a fresh id; the caller fills in the rest.
    pub fn new(at: OffsetDateTime, actor: Actor, action: &str, route: &str) -> AuditEntry {
        let nanos = at.unix_timestamp_nanos().max(0);
        let nonce: u32 = rand::random();
        AuditEntry {
            schema: AUDIT_SCHEMA.to_owned(),
            id: format!("{nanos:020}-{nonce:08x}"),
            at,
            actor,
            action: action.to_owned(),
            route: route.to_owned(),
            record_id: None,
            client: None,
            reason: None,
            filters: BTreeMap::new(),
        }
    }

    /// Where this entry lives.
    pub fn key(&self) -> Result<ObjectKey, RepoError> {
        let d = self.at.date();
        checked_key(format!(
            "audit/{:04}/{:02}/{:02}/{}.json",
            d.year(),
            u8::from(d.month()),
            d.day(),
            self.id
        ))
    }
}

/// Where the entry with id `id` lives (its id says when it was written), or
/// `None` for what is not an entry id.
pub fn entry_key(id: &str) -> Option<ObjectKey> {
    let b = id.as_bytes();
    let well_formed = b.len() == 29
        && b[..20].iter().all(u8::is_ascii_digit)
        && b[20] == b'-'
        && b[21..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    if !well_formed {
        return None;
    }
    let nanos: i128 = id.get(..20)?.parse().ok()?;
    let d = OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()?
        .date();
    ObjectKey::new(format!(
        "audit/{:04}/{:02}/{:02}/{id}.json",
        d.year(),
        u8::from(d.month()),
        d.day()
    ))
    .ok()
}

/// Writes `entry` as evidence (announced, signed, once). An error means
/// nothing may be served.
pub async fn write(evidence: &Evidence, entry: &AuditEntry) -> Result<(), RepoError> {
    let key = entry.key()?;
    if !evidence.create_json(&key, entry, None).await? {
        return Err(RepoError::Corrupt {
            key: key.to_string(),
            reason: "an audit entry with this id exists already".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_under_their_day_and_sort_by_time() {
        let actor = Actor {
            role: "compliance".into(),
            name: "desk".into(),
        };
        let t = time::macros::datetime!(2026-12-01 09:30 UTC);
        let a = AuditEntry::new(t, actor.clone(), "records.read", "GET /v1/records/{id}");
        let b = AuditEntry::new(
            t + time::Duration::seconds(1),
            actor,
            "records.read",
            "GET /v1/records/{id}",
        );
        let ka = a.key().expect("key");
        assert_eq!(entry_key(&a.id), Some(ka.clone()));
        assert_eq!(entry_key("../../etc/passwd"), None);
        assert!(ka.as_str().starts_with("audit/2026/12/01/"), "{ka}");
        assert!(ka.as_str() < b.key().expect("key").as_str());
    }
}
