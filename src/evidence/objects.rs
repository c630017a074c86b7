//! Evidence objects: every one is announced to the sealer, signed and then
//! written once, in that order; and where each kind of evidence lives.
//!
//! An evidence object `P.json` has its Ed25519 signature beside it at
//! `P.<first 16 hex digits of the SHA-256 of the object's bytes>.sig`, and a
//! marker `seal/pending/<hex SHA-256 of the key>.json` that tells the sealer
//! to list it in the next seal. The marker is written first and the object
//! last, so a crash leaves a marker or a signature without an object (which
//! prove nothing) and never an object the sealer was not told about.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::confirmations::{checked_key, create_bytes_retained, RepoError};
use crate::evidence::keys::SigningKey;
use crate::store::{ObjectKey, ObjectStore, StoreError};

/// Key prefixes of every kind of evidence object; seals list what is under them.
pub const EVIDENCE_PREFIXES: &[&str] = &[
    "records/",
    "holds/",
    "tombstones/",
    "audit/",
    "keys/statements/",
    "ui/signouts/",
    "ui/epochs/",
];

/// Where markers of objects waiting for a seal live.
pub const MARKER_PREFIX: &str = "seal/pending/";

/// True when `key` names an evidence object (not its signature).
pub fn is_evidence(key: &str) -> bool {
    key.ends_with(".json") && EVIDENCE_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where the signature of `bytes`, stored under `key`, lives: `P.json`
/// becomes `P.<first 16 hex digits of the bytes' SHA-256>.sig`. Named by what
/// it signs, so racing writers never leave one name with two signatures.
pub fn signature_key(key: &ObjectKey, bytes: &[u8]) -> Result<ObjectKey, RepoError> {
    let stem = key.as_str().strip_suffix(".json").unwrap_or(key.as_str());
    checked_key(format!("{stem}.{}.sig", &sha256_hex(bytes)[..16]))
}

/// The marker that announces `key` to the sealer.
pub fn marker_key(key: &str) -> Result<ObjectKey, RepoError> {
    checked_key(format!(
        "{MARKER_PREFIX}{}.json",
        sha256_hex(key.as_bytes())
    ))
}

/// A marker: the object to list in the next seal, and when it was announced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Marker {
    /// The evidence object's key.
    pub key: String,
    /// When the writer announced it.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Told of every evidence object a writer stores (the search index follows them).
#[async_trait::async_trait]
pub trait WriteListener: Send + Sync + 'static {
    /// `bytes` were just stored under `key`; must not fail the write.
    async fn written(&self, key: &ObjectKey, bytes: &Bytes);
}

/// Writes evidence objects: announced, signed, then stored once.
#[derive(Clone)]
pub struct Evidence {
    store: Arc<dyn ObjectStore>,
    signer: Arc<SigningKey>,
    listener: Option<Arc<dyn WriteListener>>,
}

impl Evidence {
    /// Evidence in `store`, signed by `signer`.
    pub fn new(store: Arc<dyn ObjectStore>, signer: Arc<SigningKey>) -> Self {
        Evidence {
            store,
            signer,
            listener: None,
        }
    }

    /// The same writer, telling `listener` of every object it stores.
    pub fn with_listener(mut self, listener: Arc<dyn WriteListener>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key that signs what this writes.
    pub fn signer(&self) -> &Arc<SigningKey> {
        &self.signer
    }

    /// Announces `key` to the sealer (idempotent: an existing marker stays).
    pub async fn announce(&self, key: &ObjectKey, now: OffsetDateTime) -> Result<(), RepoError> {
        let marker = Marker {
            key: key.as_str().to_owned(),
            at: now,
        };
        let bytes = serde_json::to_vec(&marker).map_err(|e| RepoError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        create_bytes_retained(
            self.store.as_ref(),
            &marker_key(key.as_str())?,
            Bytes::from(bytes),
            None,
        )
        .await?;
        Ok(())
    }

    /// Stores `bytes` under the evidence key `key`, once: marker, signature,
    /// object. `false` when the object was already there (by an earlier
    /// attempt or another writer); the caller reads it if it needs to know whose.
    pub async fn create(
        &self,
        key: &ObjectKey,
        bytes: Bytes,
        retain_until: Option<OffsetDateTime>,
    ) -> Result<bool, RepoError> {
        debug_assert!(is_evidence(key.as_str()), "{key} is not an evidence key");
        self.announce(key, OffsetDateTime::now_utc()).await?;
        let sig_key = signature_key(key, &bytes)?;
        let signature = Bytes::from(self.signer.sign(&bytes));
        if !create_bytes_retained(
            self.store.as_ref(),
            &sig_key,
            signature.clone(),
            retain_until,
        )
        .await?
        {
            // Ed25519 is deterministic: the same bytes by the same key give
            // the same signature. Anything else was put there by someone else.
            let found = self.store.get(&sig_key).await?;
            if found.as_ref() != Some(&signature) {
                tracing::error!(key = %sig_key, "a signature already stored under this name is not ours: the store was written by someone other than callproof");
                return Err(RepoError::Corrupt {
                    key: sig_key.to_string(),
                    reason: "a different signature is stored under this name".into(),
                });
            }
        }
        let created =
            create_bytes_retained(self.store.as_ref(), key, bytes.clone(), retain_until).await?;
        if created {
            if let Some(l) = &self.listener {
                l.written(key, &bytes).await;
            }
        }
        Ok(created)
    }

    /// [`Evidence::create`] of `value` as pretty JSON; `false` when taken.
    pub async fn create_json<T: Serialize>(
        &self,
        key: &ObjectKey,
        value: &T,
        retain_until: Option<OffsetDateTime>,
    ) -> Result<bool, RepoError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| RepoError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        self.create(key, Bytes::from(bytes), retain_until).await
    }
}

/// Reads an evidence object and its signature, if both are stored.
pub async fn read_signed(
    store: &dyn ObjectStore,
    key: &ObjectKey,
) -> Result<Option<(Bytes, Option<Bytes>)>, StoreError> {
    let Some(bytes) = store.get(key).await? else {
        return Ok(None);
    };
    let sig = match signature_key(key, &bytes) {
        Ok(k) => store.get(&k).await?,
        Err(_) => None,
    };
    Ok(Some((bytes, sig)))
}

/// Evidence over a fresh local store with a new key, for unit tests.
#[cfg(test)]
pub(crate) fn test_evidence() -> (tempfile::TempDir, Evidence) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn ObjectStore> =
        Arc::new(crate::store::FsStore::open(dir.path()).expect("store"));
    let pem = SigningKey::generate_pem().expect("key");
    let signer = Arc::new(SigningKey::from_pem(&pem).expect("key"));
    (dir, Evidence::new(store, signer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence() -> (tempfile::TempDir, Evidence) {
        test_evidence()
    }

    #[tokio::test]
    async fn an_object_is_announced_and_signed_beside_itself() {
        let (_dir, ev) = evidence();
        let key = ObjectKey::new("holds/x/0001.json").expect("key");
        assert!(ev
            .create(&key, Bytes::from_static(b"{}"), None)
            .await
            .expect("create"));
        let marker: Marker = serde_json::from_slice(
            &ev.store()
                .get(&marker_key(key.as_str()).expect("key"))
                .await
                .expect("get")
                .expect("marker stored"),
        )
        .expect("marker parses");
        assert_eq!(marker.key, "holds/x/0001.json");
        let (bytes, sig) = read_signed(ev.store().as_ref(), &key)
            .await
            .expect("read")
            .expect("stored");
        let sig = sig.expect("signature stored");
        assert!(ev.signer().public().verifies(&bytes, &sig));
        assert!(signature_key(&key, &bytes)
            .expect("key")
            .as_str()
            .starts_with("holds/x/0001."));
        // A second create of the same key is not a new object.
        assert!(!ev
            .create(&key, Bytes::from_static(b"{}"), None)
            .await
            .expect("create"));
    }

    #[tokio::test]
    async fn a_foreign_signature_under_our_name_is_refused() {
        let (_dir, ev) = evidence();
        let key = ObjectKey::new("holds/x/0001.json").expect("key");
        let sig_key = signature_key(&key, b"{}").expect("key");
        ev.store()
            .create(&sig_key, Bytes::from(vec![0u8; 64]))
            .await
            .expect("plant");
        assert!(ev
            .create(&key, Bytes::from_static(b"{}"), None)
            .await
            .is_err());
        assert!(ev.store().get(&key).await.expect("get").is_none());
    }

    #[test]
    fn only_json_under_evidence_prefixes_is_evidence() {
        assert!(is_evidence("records/a/v0001.json"));
        assert!(is_evidence("audit/2026/12/01/x.json"));
        assert!(is_evidence(
            "ui/signouts/0123456789abcdef0123456789abcdef.json"
        ));
        assert!(!is_evidence("records/a/v0001.0123456789abcdef.sig"));
        assert!(!is_evidence("confirmations/a/request.json"));
        assert!(!is_evidence("keys/public/ab.pem"));
    }
}
