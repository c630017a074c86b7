//! Durable storage of every fact callproof keeps, behind one `ObjectStore` trait.
//! Backends: a local directory (`fs`, the default); S3 joins behind the same trait.

pub mod check;
pub mod contract;
mod fs;
mod key;
pub mod s3;

use std::ops::Range;
use std::path::Path;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use time::OffsetDateTime;

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

/// A stream of an object's bytes, read as it is sent.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// What the store knows of an object without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
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

    /// Like [`ObjectStore::create`], and the store keeps the object at least
    /// until `retain_until` where it can enforce that (S3 Object Lock); others ignore it.
    async fn create_retained(
        &self,
        key: &ObjectKey,
        bytes: Bytes,
        retain_until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let _ = retain_until;
        self.create(key, bytes).await
    }

    /// Like [`ObjectStore::create_file`], with retention as in [`ObjectStore::create_retained`].
    async fn create_file_retained(
        &self,
        key: &ObjectKey,
        path: &Path,
        retain_until: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let _ = retain_until;
        self.create_file(key, path).await
    }

    /// Writes the contents of a local file under `key`, write-once and atomic
    /// like [`ObjectStore::create`], streaming: memory does not grow with the size.
    async fn create_file(&self, key: &ObjectKey, path: &Path) -> Result<(), StoreError>;

    /// The object's size, or `None` when there is none under `key`.
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, StoreError>;

    /// Streams bytes `range` (end exclusive, clamped to the object) of an
    /// object, or `None` when there is none under `key`.
    async fn read_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<Option<ByteStream>, StoreError>;

    /// Lists the keys that start with `prefix`, in lexical order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>, StoreError>;

    /// Removes a bookkeeping object (a job or a marker); never used on evidence.
    /// Removing a missing key is not an error.
    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError>;

    /// One line for logs: which backend, where.
    fn describe(&self) -> String;
}

/// Removes every bookkeeping object under `prefix` (a job's failures, a lease's generations).
pub async fn delete_all(store: &dyn ObjectStore, prefix: &str) -> Result<(), StoreError> {
    for k in store.list(prefix).await? {
        store.delete(&k).await?;
    }
    Ok(())
}
