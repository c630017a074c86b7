//! Durable storage of every fact callproof keeps, behind one `ObjectStore` trait,
//! and its error type. Backends: a local directory (`fs`, the default) and S3 (`s3`).

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
    /// A local failure (the directory store, or reading the file to upload).
    #[error("storage failed for {key}: {source}")]
    Io {
        /// The key the operation was for.
        key: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A remote store refused the operation, or did not answer it.
    #[error("storage failed for {key}: {op} {answer}")]
    Remote {
        /// The key (or prefix) the operation was for.
        key: String,
        /// The store's name for the operation (`PutObject`, `UploadPart`, ...).
        op: &'static str,
        /// What the store answered.
        answer: StoreAnswer,
    },
}

impl StoreError {
    /// The store's answer, when a remote store gave one.
    pub fn answer(&self) -> Option<&StoreAnswer> {
        match self {
            StoreError::Remote { answer, .. } => Some(answer),
            _ => None,
        }
    }
}

/// A remote store's own answer to a failed operation, kept whole for logs and reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreAnswer {
    /// The HTTP status, when the store answered.
    pub status: Option<u16>,
    /// The store's error code (`NoSuchBucket`, `InvalidRequest`, ...).
    pub code: Option<String>,
    /// The store's message, or the start of its body when it sent no code.
    pub message: Option<String>,
    /// Why there was no answer (timeout, connection refused), when there was none.
    pub no_answer: Option<String>,
}

impl StoreAnswer {
    /// True when the store itself answered, as opposed to a timeout or a lost connection.
    pub fn answered(&self) -> bool {
        self.status.is_some()
    }

    /// What an operator can do about it.
    fn hint(&self) -> &'static str {
        match (self.status, self.code.as_deref()) {
            (None, _) => "check that the store is running and reachable at its endpoint",
            (Some(_), Some("NoSuchBucket")) => "create the bucket or correct CALLPROOF_S3_BUCKET",
            (Some(401 | 403), _) => {
                "check the access key and secret, and that they may use this bucket"
            }
            (Some(501), _) => "the store does not implement this operation",
            (Some(s), _) if s >= 500 => "the store failed on its side; its own log says why",
            (Some(s), _) if s < 400 => "callproof could not read this answer",
            (Some(_), _) => {
                "the store refuses the request as callproof sends it; `callproof store check` names every operation it refuses"
            }
        }
    }

    /// The answer alone, without advice: `answered HTTP 404 NoSuchKey: "..."`.
    pub fn summary(&self) -> String {
        match self.status {
            Some(status) => {
                let mut out = format!("answered HTTP {status}");
                if let Some(code) = &self.code {
                    out.push(' ');
                    out.push_str(code);
                }
                if let Some(message) = &self.message {
                    out.push_str(&format!(": {message:?}"));
                }
                out
            }
            None => format!(
                "got no answer: {}",
                self.no_answer.as_deref().unwrap_or("unknown cause")
            ),
        }
    }
}

impl std::fmt::Display for StoreAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.summary(), self.hint())
    }
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

    /// Removes an object for good, as a purge under retention does: every
    /// stored version of it where the store keeps versions (S3), never
    /// leaving a delete marker in its place. Removing a missing key is not an
    /// error. Stores that keep no versions delete it.
    async fn purge(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.delete(key).await
    }

    /// Keys under `prefix` of which any version is stored: every current
    /// object and, where the store keeps versions (S3), keys whose only
    /// versions are earlier ones behind a delete marker, as removed
    /// bookkeeping leaves them. Stores without versions list.
    async fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectKey>, StoreError> {
        self.list(prefix).await
    }

    /// The newest stored version of an object, also one a delete marker
    /// hides; `None` when no version is stored. Stores without versions get.
    async fn get_newest_version(&self, key: &ObjectKey) -> Result<Option<Bytes>, StoreError> {
        self.get(key).await
    }

    /// Sets (`on`) or clears an S3 Object Lock legal hold on the object's
    /// current version. Callers use it only where the store check found
    /// Object Lock, as with retention; stores without it keep nothing.
    async fn set_legal_hold(&self, key: &ObjectKey, on: bool) -> Result<(), StoreError> {
        let _ = (key, on);
        Ok(())
    }

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
