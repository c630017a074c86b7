//! Tombstones: the signed, sealed fact that a confirmation was purged under
//! retention, listing every object deleted, so verification says "purged", not "missing".

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::confirmations::{checked_key, RepoError};
use crate::evidence::audit::Actor;
use crate::evidence::seal::SealedObject;
use crate::store::ObjectKey;

/// `schema` of every tombstone.
pub const TOMBSTONE_SCHEMA: &str = "callproof.tombstone.v1";

/// A purged confirmation, as stored at `tombstones/<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tombstone {
    /// [`TOMBSTONE_SCHEMA`].
    pub schema: String,
    /// The confirmation (and record) id.
    pub record_id: String,
    /// Its kind of change, whose retention applied.
    pub kind: String,
    /// Days it was retained.
    pub retention_days: u32,
    /// Retention ended at this time.
    #[serde(with = "time::serde::rfc3339")]
    pub retain_until: OffsetDateTime,
    /// When the purge was decided.
    #[serde(with = "time::serde::rfc3339")]
    pub purged_at: OffsetDateTime,
    /// Who purged.
    pub actor: Actor,
    /// Why.
    pub reason: String,
    /// Every object deleted, with its SHA-256 and size as it was.
    pub objects: Vec<SealedObject>,
}

/// Where the tombstone of `record_id` lives.
pub fn tombstone_key(record_id: &str) -> Result<ObjectKey, RepoError> {
    checked_key(format!("tombstones/{record_id}.json"))
}
