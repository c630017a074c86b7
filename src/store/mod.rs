//! Durable storage of every fact callproof keeps, behind one `ObjectStore` trait.
//! Backends: a local directory (`fs`, the default); S3 joins behind the same trait.

mod fs;
mod key;

use async_trait::async_trait;
use bytes::Bytes;

pub use fs::FsStore;
pub use key::ObjectKey;

/// Why a store operation failed. Callers branch on `AlreadyExists`; the rest is reported.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write-once create found the key already there; nothing was written.
    #[error("object {0} already exists and is write-once")]
    AlreadyExists(ObjectKey),
    /// The backend failed; the message names the key and the cause.
    #[error("storage failed for {key}: {source}")]
    Io {
        /// The key the operation was for.
        key: String,
        /// What the backend said.
        #[source]
        source: std::io::Error,
    },
}

/// A store of immutable objects under server-made keys.
///
/// Every fact is written once with [`ObjectStore::create`]; nothing is ever
/// overwritten, so a later fact is a new object beside the old one.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Writes `bytes` under `key` unless the key exists, atomically: a reader
    /// sees the whole object or none. Returns `AlreadyExists` if it was there.
    async fn create(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), StoreError>;

    /// Reads a whole object, or `None` when there is none under `key`.
    async fn get(&self, key: &ObjectKey) -> Result<Option<Bytes>, StoreError>;

    /// Lists the keys that start with `prefix`, in lexical order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>, StoreError>;

    /// One line for logs: which backend, where.
    fn describe(&self) -> String;
}
