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
