//! The evidence bundle: one zip of a record's newest version, its signature,
//! the public key, the audio, the seal that lists it, SHA256SUMS and VERIFY.txt.
//!
//! The bundle is built from the store into an unnamed scratch file (removed by
//! the operating system when it is closed, even after a crash), so memory does
//! not grow with the audio; audio is streamed into it and hashed on the way.
//! Nothing is bundled that would fail its own checks: the server verifies the
//! signatures and hashes first and refuses ([`BundleError::Evidence`]) otherwise.

pub mod download;
mod verify;

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::confirmations::{checked_key, RepoError};
use crate::domain::ConfirmationId;
use crate::evidence::keys::{pem_blocks, PublicKey};
use crate::evidence::objects::{sha256_hex, signature_key};
use crate::evidence::seal::{seal_key, seal_numbers, Seal};
use crate::evidence::trust::{statement_old_signature_key, KeyStatement, Trust};
use crate::record::{AudioRole, ConfirmationRecord, Records};
use crate::store::{ObjectKey, ObjectStore};

/// Why a bundle was not made.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// No record under that id.
    #[error("no such record")]
    NotFound,
    /// The stored evidence does not check out, so a bundle would fail its own
    /// checks; the message says what and what to do.
    #[error("{0}")]
    Evidence(String),
    /// The store or the scratch directory failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<RepoError> for BundleError {
    fn from(e: RepoError) -> Self {
        BundleError::Internal(e.into())
    }
}

impl From<crate::store::StoreError> for BundleError {
    fn from(e: crate::store::StoreError) -> Self {
        BundleError::Internal(e.into())
    }
}

/// Where a bundle's evidence comes from.
pub struct Sources<'a> {
    /// The store.
    pub store: &'a Arc<dyn ObjectStore>,
    /// The server's own signing key's public half.
    pub own: &'a PublicKey,
    /// The keys configuration trusts.
    pub trust: &'a Trust,
}

/// A built bundle: an unnamed scratch file, read from its start.
#[derive(Debug)]
pub struct Bundle {
    /// The zip; the file has no name, so it goes when it is closed.
    pub file: std::fs::File,
    /// Its size in bytes.
    pub size: u64,
    /// The record version bundled.
    pub version: u32,
    /// The seal that lists it, when it is sealed.
    pub seal: Option<u64>,
    /// Names of the files in the zip, in order.
    pub files: Vec<String>,
}

/// One audio file to bundle.
#[derive(Debug, Clone)]
struct AudioEntry {
    /// Name in the zip.
    name: String,
    /// Store key.
    key: ObjectKey,
    /// Hex SHA-256 the record states.
    sha256: String,
    /// Size the record states.
    size: u64,
}

/// The seal part of a bundle.
#[derive(Debug, Clone)]
struct SealPart {
    number: u64,
    at: OffsetDateTime,
    bytes: Bytes,
    signature: Bytes,
    /// The seal's key when it is not the record's (after a rotation).
    other_key: Option<PublicKey>,
}

/// Everything a bundle holds but the audio bytes, and what VERIFY.txt says.
#[derive(Debug, Clone)]
struct Plan {
    record_id: String,
    version: u32,
    record_key: String,
    record: Bytes,
    signature: Bytes,
    key: PublicKey,
    audio: Vec<AudioEntry>,
    seal: Option<SealPart>,
    /// When the version was written: the time of every file in the zip, so
    /// that two exports of the same sealed version are the same bytes.
    created_at: OffsetDateTime,
}

/// Builds the bundle of record `id`'s newest version in an unnamed file under `scratch`.
pub async fn build(
    src: &Sources<'_>,
    id: &ConfirmationId,
    scratch: &Path,
) -> Result<Bundle, BundleError> {
    let plan = plan(src, id).await?;
    tokio::fs::create_dir_all(scratch).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot create the scratch directory {}: {e}",
            scratch.display()
        )
    })?;
    let file = tempfile::tempfile_in(scratch).map_err(|e| {
        anyhow::anyhow!("cannot create a scratch file in {}: {e}", scratch.display())
    })?;
    let store = src.store.clone();
    let rt = tokio::runtime::Handle::current();
    let version = plan.version;
    let seal = plan.seal.as_ref().map(|s| s.number);
    let built = tokio::task::spawn_blocking(move || write_zip(&rt, store.as_ref(), &plan, file))
        .await
        .map_err(|e| anyhow::anyhow!("building the bundle stopped: {e}"))??;
    Ok(Bundle {
        file: built.0,
        size: built.1,
        version,
        seal,
        files: built.2,
    })
}

/// Reads and checks everything but the audio bytes.
async fn plan(src: &Sources<'_>, id: &ConfirmationId) -> Result<Plan, BundleError> {
    let store = src.store.as_ref();
    let records = Records::new(src.store.clone());
    let version = *records
        .versions(id)
        .await?
        .last()
        .ok_or(BundleError::NotFound)?;
    let record_key = checked_key(format!("records/{id}/v{version:04}.json"))?;
    let bytes = records
        .version_bytes(id, version)
        .await?
        .ok_or(BundleError::NotFound)?;
    let record: ConfirmationRecord = serde_json::from_slice(&bytes).map_err(|e| {
        BundleError::Evidence(format!(
            "{record_key} does not parse as a record ({e}); it was changed after it was written: run verification on it"
        ))
    })?;
    if record.record_id != *id || record.version != version {
        return Err(BundleError::Evidence(format!(
            "{record_key} says it is version {} of record {}: it was copied from elsewhere; run verification on it",
            record.version, record.record_id
        )));
    }
    let Some(fingerprint) = record.signing_key.clone() else {
        return Err(BundleError::Evidence(format!(
            "version {version} of record {id} was written before callproof signed records and carries no signature; a bundle needs a signed version"
        )));
    };
    let signature = store
        .get(&signature_key(&record_key, &bytes)?)
        .await?
        .ok_or_else(|| {
            BundleError::Evidence(format!(
                "{record_key} has no signature beside it; run verification on it"
            ))
        })?;
    let key = trusted_key(src, &fingerprint).await?.ok_or_else(|| {
        BundleError::Evidence(format!(
            "{record_key} is signed by key {fingerprint}, which this server does not trust; add its fingerprint to CALLPROOF_TRUSTED_KEYS if it is a key of yours"
        ))
    })?;
    if !key.verifies(&bytes, &signature) {
        return Err(BundleError::Evidence(format!(
            "the signature of {record_key} does not hold by key {fingerprint}: the record or its signature was changed; run verification on it"
        )));
    }
    let audio = audio_entries(&record)?;
    let seal = find_seal(src, &record_key, &sha256_hex(&bytes), &key).await?;
    Ok(Plan {
        record_id: id.to_string(),
        version,
        record_key: record_key.as_str().to_owned(),
        record: bytes,
        signature,
        key,
        audio,
        seal,
        created_at: record.created_at,
    })
}

/// The audio the record lists, with their names in the zip:
/// `audio/<role>.<ext>` for one recording, `audio/<n>/<role>.<ext>` for several.
fn audio_entries(record: &ConfirmationRecord) -> Result<Vec<AudioEntry>, BundleError> {
    let Some(recording) = &record.recording else {
        return Ok(Vec::new());
    };
    // A recording's objects share the key's folder; number the folders in order.
    let mut folders: Vec<&str> = Vec::new();
    for a in &recording.audio {
        let folder = a.key.rsplit_once('/').map_or("", |(f, _)| f);
        if !folders.contains(&folder) {
            folders.push(folder);
        }
    }
    let mut out: Vec<AudioEntry> = Vec::new();
    for a in &recording.audio {
        let folder = a.key.rsplit_once('/').map_or("", |(f, _)| f);
        let dir = match folders.iter().position(|f| *f == folder) {
            Some(n) if folders.len() > 1 => format!("audio/{}/", n + 1),
            _ => "audio/".to_owned(),
        };
        let file = match a.role {
            AudioRole::Archival => "archival.wav".to_owned(),
            AudioRole::Original => {
                let ext: String = a
                    .format
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect();
                let ext = if ext.is_empty() || ext == "unknown" {
                    "bin".to_owned()
                } else {
                    ext
                };
                format!("original.{ext}")
            }
        };
        let name = format!("{dir}{file}");
        if out.iter().any(|e| e.name == name) {
            return Err(BundleError::Evidence(format!(
                "record {} lists two audio objects that would both be {name}; run verification on it",
                record.record_id
            )));
        }
        let sha256 = a.sha256.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BundleError::Evidence(format!(
                "record {} states no usable SHA-256 for {}",
                record.record_id, a.key
            )));
        }
        out.push(AudioEntry {
            name,
            key: checked_key(a.key.clone())?,
            sha256,
            size: a.byte_size,
        });
    }
    Ok(out)
}

/// The public key `fingerprint`, when the server may hand it over: its own
/// key, a key configuration trusts, or a key linked to one of those by a
/// rotation statement signed by both. A key merely found in the store is not
/// enough: a store writer can put one there.
async fn trusted_key(
    src: &Sources<'_>,
    fingerprint: &str,
) -> Result<Option<PublicKey>, BundleError> {
    if src.own.fingerprint() == fingerprint {
        return Ok(Some(src.own.clone()));
    }
    if let Some(k) = src
        .trust
        .keys()
        .iter()
        .find(|k| k.fingerprint() == fingerprint)
    {
        return Ok(Some(k.clone()));
    }
    let store = src.store.as_ref();
    // Keys whose bytes the store holds, trusted only as below.
    let mut known: Vec<PublicKey> = Vec::new();
    let pem_key = checked_key(format!("keys/public/{fingerprint}.pem"))?;
    if let Some(pem) = store.get(&pem_key).await? {
        let text = String::from_utf8_lossy(&pem);
        for der in pem_blocks(&text, "PUBLIC KEY").unwrap_or_default() {
            if let Ok(k) = PublicKey::from_der(&der) {
                known.push(k);
            }
        }
    }
    let mut links: Vec<(PublicKey, PublicKey)> = Vec::new();
    for k in store.list("keys/statements/").await? {
        if !k.as_str().ends_with(".json") {
            continue;
        }
        let Some(bytes) = store.get(&k).await? else {
            continue;
        };
        let new_sig = store.get(&signature_key(&k, &bytes)?).await?;
        let old_sig = store.get(&statement_old_signature_key(&k, &bytes)?).await?;
        if let (Some(n), Some(o)) = (new_sig, old_sig) {
            if let Some(pair) = KeyStatement::check(&bytes, &n, &o) {
                links.push(pair);
            }
        }
    }
    let mut trusted: Vec<PublicKey> = vec![src.own.clone()];
    trusted.extend(src.trust.keys().iter().cloned());
    for k in known
        .iter()
        .chain(links.iter().flat_map(|(o, n)| [o, n]))
        .filter(|k| src.trust.trusts(&k.fingerprint()))
    {
        if !trusted.contains(k) {
            trusted.push(k.clone());
        }
    }
    loop {
        let mut grew = false;
        for (old, new) in &links {
            let (a, b) = (trusted.contains(old), trusted.contains(new));
            if a != b {
                trusted.push(if a { new.clone() } else { old.clone() });
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    Ok(trusted.into_iter().find(|k| k.fingerprint() == fingerprint))
}

/// The newest seal that lists `record_key` with `sha256`, checked: its
/// signature must hold by a key the server may hand over.
async fn find_seal(
    src: &Sources<'_>,
    record_key: &ObjectKey,
    sha256: &str,
    record_signer: &PublicKey,
) -> Result<Option<SealPart>, BundleError> {
    let store = src.store.as_ref();
    for n in seal_numbers(store).await?.into_iter().rev() {
        let key = seal_key(n)?;
        let Some(bytes) = store.get(&key).await? else {
            continue;
        };
        let seal: Seal = match serde_json::from_slice(&bytes) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(seal = n, error = %e, "a seal does not parse; verification reports it");
                continue;
            }
        };
        if !seal
            .objects
            .iter()
            .any(|o| o.key == record_key.as_str() && o.sha256 == sha256)
        {
            continue;
        }
        let problem = |why: &str| {
            BundleError::Evidence(format!(
                "seal {n} lists {record_key}, but {why}; run verification on the chain"
            ))
        };
        let signature = store
            .get(&signature_key(&key, &bytes)?)
            .await?
            .ok_or_else(|| problem("it has no signature beside it"))?;
        let signer = trusted_key(src, &seal.signing_key)
            .await?
            .ok_or_else(|| problem("it is signed by a key this server does not trust"))?;
        if !signer.verifies(&bytes, &signature) {
            return Err(problem("its signature does not hold"));
        }
        return Ok(Some(SealPart {
            number: n,
            at: seal.at,
            bytes,
            signature,
            other_key: (signer != *record_signer).then_some(signer),
        }));
    }
    Ok(None)
}

/// A time as the zip format keeps it (1980 to 2107, two-second steps).
fn zip_time(t: OffsetDateTime) -> DateTime {
    DateTime::from_date_and_time(
        u16::try_from(t.year()).unwrap_or(1980),
        t.month().into(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
    .unwrap_or_default()
}

/// Writes the zip into `file`: the small files, the audio streamed from the
/// store and hashed on the way, then SHA256SUMS. Runs on a blocking thread.
fn write_zip(
    rt: &tokio::runtime::Handle,
    store: &dyn ObjectStore,
    plan: &Plan,
    file: std::fs::File,
) -> Result<(std::fs::File, u64, Vec<String>), BundleError> {
    let io = |e: std::io::Error| BundleError::Internal(anyhow::anyhow!("writing the bundle: {e}"));
    let zerr = |e: zip::result::ZipError| {
        BundleError::Internal(anyhow::anyhow!("writing the bundle: {e}"))
    };
    let small = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(zip_time(plan.created_at))
        .unix_permissions(0o644);
    let mut zip = ZipWriter::new(std::io::BufWriter::new(file));
    let mut sums: Vec<(String, String)> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (name, bytes) in verify::small_files(plan) {
        zip.start_file(name.as_str(), small).map_err(zerr)?;
        zip.write_all(&bytes).map_err(io)?;
        sums.push((sha256_hex(&bytes), name.clone()));
        names.push(name);
    }
    for a in &plan.audio {
        // Audio is compressed little; it goes in as it is.
        let opts = small
            .compression_method(CompressionMethod::Stored)
            .large_file(a.size >= u64::from(u32::MAX));
        zip.start_file(a.name.as_str(), opts).map_err(zerr)?;
        let mut stream = rt
            .block_on(store.read_range(&a.key, 0..u64::MAX))?
            .ok_or_else(|| {
                BundleError::Evidence(format!(
                    "the record lists {}, which is not in the store; run verification on the record",
                    a.key
                ))
            })?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = rt.block_on(stream.next()) {
            let chunk = chunk.map_err(|e| anyhow::anyhow!("reading {}: {e}", a.key))?;
            hasher.update(&chunk);
            zip.write_all(&chunk).map_err(io)?;
        }
        let got = hex::encode(hasher.finalize());
        if got != a.sha256 {
            return Err(BundleError::Evidence(format!(
                "{} hashes to {got}, but the record states {}: the audio was changed; run verification on the record",
                a.key, a.sha256
            )));
        }
        sums.push((got, a.name.clone()));
        names.push(a.name.clone());
    }
    let text: String = sums
        .iter()
        .map(|(sha, name)| format!("{sha}  {name}\n"))
        .collect();
    zip.start_file("SHA256SUMS", small).map_err(zerr)?;
    zip.write_all(text.as_bytes()).map_err(io)?;
    names.push("SHA256SUMS".to_owned());
    let mut file = zip
        .finish()
        .map_err(zerr)?
        .into_inner()
        .map_err(|e| io(e.into_error()))?;
    let size = file.seek(SeekFrom::End(0)).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok((file, size, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> ConfirmationRecord {
        serde_json::from_str(include_str!(
            "../../recordings-schema/examples/06-complete-signed.v2.json"
        ))
        .expect("the example is a record")
    }

    fn names(r: &ConfirmationRecord) -> Vec<String> {
        audio_entries(r)
            .expect("entries")
            .into_iter()
            .map(|e| e.name)
            .collect()
    }

    #[test]
    fn one_recording_sits_in_audio_and_several_are_numbered() {
        let mut r = example();
        assert_eq!(names(&r), ["audio/original.wav", "audio/archival.wav"]);
        let rec = r.recording.as_mut().expect("recording");
        let mut second = rec.audio.clone();
        for a in &mut second {
            a.key = a.key.replace("/audio/11cada5d", "/audio/22cada5d");
        }
        second[0].format = "mp3".into();
        rec.audio.extend(second);
        assert_eq!(
            names(&r),
            [
                "audio/1/original.wav",
                "audio/1/archival.wav",
                "audio/2/original.mp3",
                "audio/2/archival.wav"
            ]
        );
        r.recording.as_mut().expect("recording").audio[0].sha256 = "not a hash".into();
        assert!(matches!(audio_entries(&r), Err(BundleError::Evidence(_))));
    }
}
