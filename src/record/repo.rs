//! Where records and recording results live in the store: versions under
//! `records/<id>/vNNNN.json`, results under `confirmations/<id>/audio/<rec>/`.

use std::sync::Arc;

use bytes::Bytes;

use super::{ConfirmationRecord, RecordingResult};
use time::OffsetDateTime;

use crate::confirmations::{create_json, digest_id, read_json, RepoError};
use crate::domain::ConfirmationId;
use crate::evidence::objects::{signature_key, Evidence};
use crate::store::{ObjectKey, ObjectStore};

/// Records and recording results over an [`ObjectStore`].
#[derive(Clone)]
pub struct Records {
    store: Arc<dyn ObjectStore>,
}

fn key(s: String) -> ObjectKey {
    // Built from server-made ids and digests only.
    ObjectKey::new(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Key prefix of one recording's audio objects.
pub fn audio_prefix(id: &ConfirmationId, recording_sid: &str) -> String {
    format!("confirmations/{id}/audio/{}/", digest_id(recording_sid))
}

impl Records {
    /// Records over `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Records { store }
    }

    /// The store, for audio reads.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        k: &ObjectKey,
    ) -> Result<Option<T>, RepoError> {
        read_json(self.store.as_ref(), k).await
    }

    /// Stored version numbers of a record, ascending.
    pub async fn versions(&self, id: &ConfirmationId) -> Result<Vec<u32>, RepoError> {
        let mut out: Vec<u32> = self
            .store
            .list(&format!("records/{id}/"))
            .await?
            .iter()
            .filter_map(|k| {
                k.file_name()
                    .strip_prefix('v')?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// One version of a record.
    pub async fn version(
        &self,
        id: &ConfirmationId,
        version: u32,
    ) -> Result<Option<ConfirmationRecord>, RepoError> {
        self.read(&key(format!("records/{id}/v{version:04}.json")))
            .await
    }

    /// One version of a record exactly as stored: the bytes that were written
    /// once and that a reader can hash and compare.
    pub async fn version_bytes(
        &self,
        id: &ConfirmationId,
        version: u32,
    ) -> Result<Option<Bytes>, RepoError> {
        Ok(self
            .store
            .get(&key(format!("records/{id}/v{version:04}.json")))
            .await?)
    }

    /// The newest version of a record.
    pub async fn latest(
        &self,
        id: &ConfirmationId,
    ) -> Result<Option<ConfirmationRecord>, RepoError> {
        match self.versions(id).await?.last() {
            Some(v) => self.version(id, *v).await,
            None => Ok(None),
        }
    }

    /// Announces, signs and writes a record version once (see
    /// [`Evidence::create`]); `false` when that version already exists.
    pub async fn write(
        &self,
        record: &ConfirmationRecord,
        retain_until: Option<OffsetDateTime>,
        evidence: &Evidence,
    ) -> Result<bool, RepoError> {
        let k = key(format!(
            "records/{}/v{:04}.json",
            record.record_id, record.version
        ));
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| RepoError::Corrupt {
            key: k.to_string(),
            reason: e.to_string(),
        })?;
        evidence.create(&k, Bytes::from(bytes), retain_until).await
    }

    /// The stored signature of a version's `bytes`, if there is one.
    pub async fn signature(
        &self,
        id: &ConfirmationId,
        version: u32,
        bytes: &[u8],
    ) -> Result<Option<Bytes>, RepoError> {
        let k = key(format!("records/{id}/v{version:04}.json"));
        Ok(self.store.get(&signature_key(&k, bytes)?).await?)
    }

    /// Ids of every record, in id order.
    pub async fn ids(&self) -> Result<Vec<ConfirmationId>, RepoError> {
        let mut ids: Vec<ConfirmationId> = self
            .store
            .list("records/")
            .await?
            .iter()
            .filter_map(|k| k.as_str().split('/').nth(1)?.parse().ok())
            .collect();
        ids.dedup();
        Ok(ids)
    }

    /// The stored result of one recording, if ingest finished it.
    pub async fn result(
        &self,
        id: &ConfirmationId,
        recording_sid: &str,
    ) -> Result<Option<RecordingResult>, RepoError> {
        self.read(&key(format!(
            "{}result.json",
            audio_prefix(id, recording_sid)
        )))
        .await
    }

    /// Every stored recording result of a confirmation, oldest first.
    pub async fn results(&self, id: &ConfirmationId) -> Result<Vec<RecordingResult>, RepoError> {
        let mut out = Vec::new();
        for k in self
            .store
            .list(&format!("confirmations/{id}/audio/"))
            .await?
        {
            if k.file_name() == "result.json" {
                if let Some(r) = self.read::<RecordingResult>(&k).await? {
                    out.push(r);
                }
            }
        }
        out.sort_by_key(|r| r.stored_at);
        Ok(out)
    }

    /// Stores the result of one recording once; `false` when it was already there.
    pub async fn write_result(
        &self,
        id: &ConfirmationId,
        result: &RecordingResult,
    ) -> Result<bool, RepoError> {
        let k = key(format!(
            "{}result.json",
            audio_prefix(id, &result.recording_sid)
        ));
        create_json(self.store.as_ref(), &k, result).await
    }

    /// Keeps why a recording of `id` was refused (nothing of it was fetched), once per recording.
    pub async fn refuse(
        &self,
        id: &ConfirmationId,
        recording_sid: &str,
        refused: &RefusedRecording,
    ) -> Result<bool, RepoError> {
        let k = key(format!(
            "confirmations/{id}/refused/{}.json",
            digest_id(recording_sid)
        ));
        create_json(self.store.as_ref(), &k, refused).await
    }

    /// Why recordings of `id` were refused, oldest first.
    pub async fn refusals(&self, id: &ConfirmationId) -> Result<Vec<RefusedRecording>, RepoError> {
        let mut out = Vec::new();
        for k in self
            .store
            .list(&format!("confirmations/{id}/refused/"))
            .await?
        {
            if let Some(r) = self.read::<RefusedRecording>(&k).await? {
                out.push(r);
            }
        }
        out.sort_by_key(|r| r.at);
        Ok(out)
    }
}

/// Why a recording was refused, kept beside the confirmation so its record says so.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RefusedRecording {
    /// Why, in words for the record.
    pub reason: String,
    /// When the callback arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}
