//! Archiving one recording: download it, transcode it off the runtime to
//! archival WAV, hash both files, and store them write-once with their retention.

use std::path::Path;

use futures_util::StreamExt;
use time::OffsetDateTime;

use super::{Ingest, RecordingJob};
use crate::audio::{self, AudioError, TranscodeOptions};
use crate::record::{self, AudioObject, AudioRole, DecodePart, RecordingResult};
use crate::store::{ObjectKey, StoreError};

impl Ingest {
    async fn transcode(
        &self,
        original: &Path,
        archival: &Path,
    ) -> Result<audio::TranscodeReport, AudioError> {
        let opts = TranscodeOptions {
            sample_rate: self.0.settings.sample_rate,
        };
        let (inp, out) = (original.to_path_buf(), archival.to_path_buf());
        match tokio::task::spawn_blocking(move || audio::transcode_file(&inp, &out, &opts)).await {
            Ok(r) => r,
            // A decoder that panics on these bytes has failed to decode them.
            Err(e) => Err(AudioError::Decode(format!(
                "the decoder failed on this file ({e})"
            ))),
        }
    }

    pub(super) async fn archive(&self, job: &RecordingJob) -> anyhow::Result<RecordingResult> {
        let s = &self.0.settings;
        tokio::fs::create_dir_all(&s.work_dir).await?;
        let tmp = tempfile::tempdir_in(&s.work_dir)?;
        let result = self.ingest_in(job, tmp.path()).await;
        // Large scratch files are removed off the async runtime.
        let _ = tokio::task::spawn_blocking(move || drop(tmp)).await;
        result
    }

    async fn ingest_in(&self, job: &RecordingJob, dir: &Path) -> anyhow::Result<RecordingResult> {
        let ext = self.0.settings.format.extension();
        let original = dir.join(format!("original.{ext}"));
        let archival = dir.join("archival.wav");
        // Checked again: a job queued before a setting changed fetches nothing it now may not.
        let url = self
            .0
            .fetch
            .media_url(&job.event, self.0.settings.format)
            .map_err(|e| anyhow::anyhow!("recording refused: {e}"))?;
        self.0.fetch.download_with_retries(&url, &original).await?;
        let mut transcoded = self.transcode(&original, &archival).await;
        if matches!(transcoded, Err(AudioError::Truncated { .. })) {
            // A short file may be a cut download rather than a short recording: fetch it once more.
            tracing::warn!(confirmation = %job.confirmation_id, "recording shorter than its header; downloading it again");
            self.0.fetch.download_with_retries(&url, &original).await?;
            transcoded = self.transcode(&original, &archival).await;
        }
        if let (Ok(report), Some(d)) = (&transcoded, job.event.duration_secs) {
            if report.source.duration_secs + 1.0 < d as f64 {
                transcoded = Err(AudioError::Decode(format!(
                    "decoded {:.3} s of audio, but the provider reported {d} s: the file looks cut short",
                    report.source.duration_secs
                )));
            }
        }
        if let Err(AudioError::Io(e)) = &transcoded {
            // A local problem (disk full, permissions), not a property of the recording: retry later.
            anyhow::bail!("transcoding failed on this machine: {e}");
        }

        let prefix = record::repo_audio_prefix(&job.confirmation_id, &job.event.recording_sid);
        let retain_until = match (
            self.0.settings.lock,
            self.0.confirmations.request(&job.confirmation_id).await?,
        ) {
            (Some(_), Some(request)) => Some(self.0.completion.retention_of(&request).retain_until),
            _ => None,
        };
        // A transcode hashed the original from the handle it decoded; only a file that did not
        // decode is hashed here.
        let (orig_sha, orig_size) = match &transcoded {
            Ok(report) => (report.source.sha256.clone(), report.source.byte_size),
            Err(_) => {
                let path = original.clone();
                tokio::task::spawn_blocking(move || audio::hash_file(&path)).await??
            }
        };
        let original_key =
            ObjectKey::new(format!("{prefix}original.{ext}")).map_err(anyhow::Error::msg)?;
        self.put_file(&original_key, &original, &orig_sha, retain_until)
            .await?;
        let (decode, audio) = match transcoded {
            Ok(report) => {
                let archival_key =
                    ObjectKey::new(format!("{prefix}archival.wav")).map_err(anyhow::Error::msg)?;
                self.put_file(
                    &archival_key,
                    &archival,
                    &report.archival.sha256,
                    retain_until,
                )
                .await?;
                (
                    DecodePart {
                        ok: true,
                        error: None,
                        frames_promised: report.frames_promised,
                        frames_decoded: Some(report.source.frames),
                    },
                    vec![
                        AudioObject::from_facts(
                            AudioRole::Original,
                            original_key.to_string(),
                            &report.source,
                        ),
                        AudioObject::from_facts(
                            AudioRole::Archival,
                            archival_key.to_string(),
                            &report.archival,
                        ),
                    ],
                )
            }
            Err(e) => {
                tracing::warn!(confirmation = %job.confirmation_id, error = %e, "recording did not decode; keeping the provider's bytes as they came");
                let (promised, decoded) = match &e {
                    AudioError::Truncated { promised, decoded } => {
                        (Some(*promised), Some(*decoded))
                    }
                    _ => (None, None),
                };
                let mut head = [0u8; 16];
                let n = match tokio::fs::File::open(&original).await {
                    Ok(mut f) => tokio::io::AsyncReadExt::read(&mut f, &mut head)
                        .await
                        .unwrap_or(0),
                    Err(_) => 0,
                };
                (
                    DecodePart {
                        ok: false,
                        error: Some(e.to_string()),
                        frames_promised: promised,
                        frames_decoded: decoded,
                    },
                    vec![AudioObject {
                        role: AudioRole::Original,
                        key: original_key.to_string(),
                        format: audio::sniff_format(&head[..n])
                            .unwrap_or("unknown")
                            .to_owned(),
                        codec: None,
                        sample_rate: None,
                        channels: None,
                        duration_secs: None,
                        byte_size: orig_size,
                        sha256: orig_sha,
                    }],
                )
            }
        };
        Ok(RecordingResult {
            recording_sid: job.event.recording_sid.clone(),
            start_time: job.event.start_time.clone(),
            provider_duration_secs: job.event.duration_secs,
            decode,
            audio,
            stored_at: OffsetDateTime::now_utc(),
        })
    }

    /// Stores a local file write-once. An object already there from an earlier,
    /// interrupted attempt counts as stored only if its bytes hash the same.
    async fn put_file(
        &self,
        key: &ObjectKey,
        path: &Path,
        sha256: &str,
        retain_until: Option<OffsetDateTime>,
    ) -> anyhow::Result<()> {
        match self
            .0
            .store
            .create_file_retained(key, path, retain_until)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::AlreadyExists(_)) => {
                let stored = self.stored_sha256(key).await?;
                if stored == sha256 {
                    Ok(())
                } else {
                    anyhow::bail!(
                        "{key} is already stored with other bytes (sha256 {stored}, now {sha256}); nothing was overwritten"
                    )
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn stored_sha256(&self, key: &ObjectKey) -> anyhow::Result<String> {
        use sha2::Digest;
        let mut stream = self
            .0
            .store
            .read_range(key, 0..u64::MAX)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{key} vanished"))?;
        let mut hasher = sha2::Sha256::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            // Hashing runs off the runtime, like every other hash of audio.
            hasher = tokio::task::spawn_blocking(move || {
                hasher.update(&chunk);
                hasher
            })
            .await?;
        }
        Ok(hex::encode(hasher.finalize()))
    }
}
