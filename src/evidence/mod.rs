//! Evidence a third party can check: the signing key and the keys trusted to
//! have signed records (see `docs/evidence-design.md` for the whole design).

pub mod audit;
pub mod bundle;
pub mod hold;
pub mod keys;
pub mod objects;
pub mod purge;
pub mod seal;
pub mod tombstone;
pub mod trust;
pub mod verify;

/// An evidence problem found while acting on evidence (a record that does not
/// check out), as distinct from failing to act at all: commands exit 1 for
/// this and 2 for anything else.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EvidenceProblem(pub String);
