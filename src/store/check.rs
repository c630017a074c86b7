//! What a store really guarantees and accepts, found by probing it: write-once,
//! every kind of operation ingest uses, Object Lock and versioning. Run at start-up
//! and by `callproof store check`; the answer decides whether `serve` may start.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use rand::RngCore;
use serde::Serialize;
use sha2::Digest;

use super::s3::{answer_of, S3Store};
use super::{ObjectKey, ObjectStore, StoreError};

/// One probed property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "snake_case")]
pub enum Probe {
    /// The store does it.
    Yes,
    /// The store does not; what was seen.
    No(String),
    /// The probe could not tell; why.
    Unknown(String),
}

impl Probe {
    /// True only for a confirmed yes.
    pub fn is_yes(&self) -> bool {
        matches!(self, Probe::Yes)
    }
}

/// Everything the check found.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    /// The backend, in words.
    pub store: String,
    /// A second create of a key is refused.
    pub conditional_create: Probe,
    /// Of several concurrent creates of one key, exactly one wins.
    pub concurrent_create: Probe,
    /// Object Lock retention is enforced (a retained object cannot be deleted).
    pub object_lock: Probe,
    /// Bucket versioning is on (a deleted or overwritten object stays recoverable).
    pub versioning: Probe,
    /// Every kind of operation ingest performs, tried the way it performs them.
    pub operations: Operations,
}

/// The operations a recording goes through, each tried once on real bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operations {
    /// A file of a few MiB stored in one streamed upload, as a recording below
    /// the multipart threshold is.
    pub streamed_upload: Probe,
    /// A file stored in parts of the configured size, as a long recording is;
    /// absent where the backend has no parts (a local directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multipart_upload: Option<Probe>,
    /// Ranges of both files (across a part boundary, clamped at the end, and
    /// whole, hashed), as replay and the check of an existing object read them.
    pub ranged_read: Probe,
    /// Listing a prefix and deleting what was listed, as the job queue does.
    pub list_and_delete: Probe,
}

impl Operations {
    fn each(&self) -> Vec<(&'static str, &Probe)> {
        let mut all = vec![("streamed upload", &self.streamed_upload)];
        if let Some(p) = &self.multipart_upload {
            all.push(("multipart upload", p));
        }
        all.push(("ranged read", &self.ranged_read));
        all.push(("list and delete", &self.list_and_delete));
        all
    }
}

impl StoreReport {
    /// Write-once holds only when both create probes said yes.
    pub fn write_once(&self) -> bool {
        self.conditional_create.is_yes() && self.concurrent_create.is_yes()
    }

    /// Every operation ingest uses worked. No setting starts callproof on a
    /// store where one did not: its recordings could never be stored.
    pub fn usable(&self) -> bool {
        self.operations.each().iter().all(|(_, p)| p.is_yes())
    }

    /// Why the store cannot be used, naming every operation that failed.
    pub fn unusable(&self) -> Option<String> {
        let failed: Vec<String> = self
            .operations
            .each()
            .into_iter()
            .filter(|(_, p)| !p.is_yes())
            .map(|(name, p)| format!("{name}: {}", show(p)))
            .collect();
        (!failed.is_empty()).then(|| {
            format!(
                "{} cannot store recordings as callproof does: {}. Use a store that accepts these \
                 operations, or fix what its answer names, and run `callproof store check` again",
                self.store,
                failed.join("; ")
            )
        })
    }

    /// What an operator loses without write-once, for the refusal message.
    pub fn risk(&self) -> String {
        format!(
            "{} cannot guarantee write-once (conditional create: {}; concurrent create: {}). \
             Two instances could then overwrite each other's evidence, and a replayed webhook \
             could replace a stored fact",
            self.store,
            show(&self.conditional_create),
            show(&self.concurrent_create)
        )
    }
}

fn show(p: &Probe) -> String {
    match p {
        Probe::Yes => "yes".into(),
        Probe::No(why) => format!("no ({why})"),
        Probe::Unknown(why) => format!("unknown ({why})"),
    }
}

/// Rounds of the concurrent-create race on a remote store.
pub const RACE_ROUNDS: usize = 10;

/// Size of the streamed-upload probe: a few MiB, as a short call's recording.
pub const STREAMED_PROBE_BYTES: u64 = 3 * 1024 * 1024;

/// The multipart probe's last part: the file is one configured part and this.
const MULTIPART_TAIL_BYTES: u64 = 1024 * 1024;

fn probe_prefix() -> String {
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("probe/{}/", hex::encode(b))
}

fn key(s: String) -> ObjectKey {
    ObjectKey::new(s).unwrap_or_else(|e| panic!("{e}"))
}

/// A probe that failed with `e`: `No` when the store answered (it refuses),
/// `Unknown` when it did not (it may be down).
fn failed(what: &str, e: &StoreError) -> Probe {
    match e.answer() {
        Some(a) if a.answered() => Probe::No(format!("{what}: {e}")),
        _ => Probe::Unknown(format!("{what}: {e}")),
    }
}

/// Probes conditional create and `rounds` rounds of a `racers`-way create race,
/// under `prefix`.
pub async fn probe_writes(
    store: Arc<dyn ObjectStore>,
    racers: usize,
    rounds: usize,
    prefix: &str,
) -> (Probe, Probe) {
    let once = key(format!("{prefix}once"));
    let conditional = match store.create(&once, Bytes::from_static(b"first")).await {
        Err(e) => Probe::Unknown(format!("the first create failed: {e}")),
        Ok(()) => match store.create(&once, Bytes::from_static(b"second")).await {
            Err(StoreError::AlreadyExists(_)) => match store.get(&once).await {
                Ok(Some(b)) if b.as_ref() == b"first" => Probe::Yes,
                Ok(other) => Probe::No(format!(
                    "the refused create still changed the object ({other:?})"
                )),
                Err(e) => Probe::Unknown(format!("reading back failed: {e}")),
            },
            Ok(()) => {
                Probe::No("a second create of the same key succeeded: the store overwrites".into())
            }
            Err(e) => Probe::Unknown(format!("the second create failed oddly: {e}")),
        },
    };
    // Racing stores are not racy every time: one round can serialise by luck,
    // so any of several rounds with more than one winner settles it.
    let mut concurrent = Probe::Yes;
    let mut raced = Vec::new();
    for round in 0..rounds {
        let race = key(format!("{prefix}race-{round}"));
        raced.push(race.clone());
        let tasks: Vec<_> = (0..racers)
            .map(|i| {
                let store = store.clone();
                let race = race.clone();
                tokio::spawn(
                    async move { store.create(&race, Bytes::from(format!("racer {i}"))).await },
                )
            })
            .collect();
        let (mut wins, mut odd) = (0, Vec::new());
        for t in tasks {
            match t.await {
                Ok(Ok(())) => wins += 1,
                Ok(Err(StoreError::AlreadyExists(_))) => {}
                Ok(Err(e)) => odd.push(e.to_string()),
                Err(e) => odd.push(e.to_string()),
            }
        }
        concurrent = match (wins, odd.is_empty()) {
            (1, true) => continue,
            (n, true) => Probe::No(format!(
                "{n} of {racers} concurrent creates of one key succeeded (round {} of {rounds})",
                round + 1
            )),
            (_, false) => Probe::Unknown(format!("some creates failed: {}", odd.join("; "))),
        };
        break;
    }
    for k in raced {
        let _ = store.delete(&k).await;
    }
    for k in [once] {
        let _ = store.delete(&k).await;
    }
    (conditional, concurrent)
}

/// The byte at `offset` of a probe file: varied, so a misplaced range shows.
fn probe_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ offset as u8
}

fn probe_bytes(range: std::ops::Range<u64>) -> Vec<u8> {
    range.map(probe_byte).collect()
}

/// Writes a probe file of `size` bytes, piece by piece; returns its SHA-256 (hex).
async fn write_probe_file(path: &Path, size: u64) -> std::io::Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut hasher = sha2::Sha256::new();
        let mut offset = 0;
        while offset < size {
            let piece = probe_bytes(offset..size.min(offset + 64 * 1024));
            hasher.update(&piece);
            file.write_all(&piece)?;
            offset += piece.len() as u64;
        }
        file.flush()?;
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Stores a probe file of `size` bytes with `create_file` and checks the size
/// the store reports; returns the key and the file's SHA-256 when it worked.
async fn probe_upload(
    store: &dyn ObjectStore,
    dir: &Path,
    k: ObjectKey,
    size: u64,
) -> (Probe, Option<(ObjectKey, u64, String)>) {
    let path = dir.join(k.as_str().replace('/', "_"));
    let sha = match write_probe_file(&path, size).await {
        Ok(sha) => sha,
        Err(e) => {
            return (
                Probe::Unknown(format!("cannot write a probe file: {e}")),
                None,
            )
        }
    };
    let probe = match store.create_file(&k, &path).await {
        Err(e) => failed(&format!("uploading {size} bytes"), &e),
        Ok(()) => match store.head(&k).await {
            Ok(Some(m)) if m.size == size => Probe::Yes,
            Ok(Some(m)) => Probe::No(format!(
                "{size} bytes were uploaded, the store holds {}",
                m.size
            )),
            Ok(None) => Probe::No("the uploaded object is not there".into()),
            Err(e) => failed("reading the uploaded object's size", &e),
        },
    };
    let _ = tokio::fs::remove_file(&path).await;
    let done = probe.is_yes().then_some((k, size, sha));
    (probe, done)
}

/// Reads `range` of a probe object and compares it with what was uploaded.
async fn expect_range(
    store: &dyn ObjectStore,
    k: &ObjectKey,
    range: std::ops::Range<u64>,
    size: u64,
) -> Result<(), Probe> {
    let what = format!("reading bytes {}..{} of {k}", range.start, range.end);
    let mut stream = match store.read_range(k, range.clone()).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(Probe::No(format!("{what}: the object is not there"))),
        Err(e) => return Err(failed(&what, &e)),
    };
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => got.extend_from_slice(&c),
            Err(e) => return Err(Probe::Unknown(format!("{what}: the body broke off: {e}"))),
        }
    }
    let want = probe_bytes(range.start..range.end.min(size));
    if got == want {
        Ok(())
    } else {
        Err(Probe::No(format!(
            "{what}: {} bytes came back, not the {} stored there",
            got.len(),
            want.len()
        )))
    }
}

/// Reads a whole probe object as ranges are read (streamed) and compares hashes.
async fn expect_whole(store: &dyn ObjectStore, k: &ObjectKey, sha: &str) -> Result<(), Probe> {
    let what = format!("reading all of {k}");
    let mut stream = match store.read_range(k, 0..u64::MAX).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(Probe::No(format!("{what}: the object is not there"))),
        Err(e) => return Err(failed(&what, &e)),
    };
    let mut hasher = sha2::Sha256::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => hasher.update(&c),
            Err(e) => return Err(Probe::Unknown(format!("{what}: the body broke off: {e}"))),
        }
    }
    let got = hex::encode(hasher.finalize());
    if got == sha {
        Ok(())
    } else {
        Err(Probe::No(format!(
            "{what}: SHA-256 {got} came back, {sha} was stored"
        )))
    }
}

/// Tries every kind of operation ingest performs, under `prefix`: a streamed
/// upload, a multipart upload through `multipart` (a store whose threshold is
/// below `multipart_size`) where there is one, ranged reads, listing, deleting.
pub async fn probe_operations(
    store: &dyn ObjectStore,
    multipart: Option<(&dyn ObjectStore, u64, u64)>,
    prefix: &str,
) -> Operations {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            let why = Probe::Unknown(format!("cannot make a temporary directory: {e}"));
            return Operations {
                streamed_upload: why.clone(),
                multipart_upload: multipart.map(|_| why.clone()),
                ranged_read: why.clone(),
                list_and_delete: why,
            };
        }
    };
    let (streamed_upload, streamed) = probe_upload(
        store,
        dir.path(),
        key(format!("{prefix}streamed.bin")),
        STREAMED_PROBE_BYTES,
    )
    .await;
    let (multipart_upload, parted, boundary) = match multipart {
        Some((parts_store, size, boundary)) => {
            let (p, done) = probe_upload(
                parts_store,
                dir.path(),
                key(format!("{prefix}multipart.bin")),
                size,
            )
            .await;
            (Some(p), done, boundary)
        }
        None => (None, None, 0),
    };
    let ranged_read = if streamed.is_none() && parted.is_none() {
        Probe::Unknown("nothing was uploaded to read".into())
    } else {
        let mut result = Ok(());
        if let Some((k, size, sha)) = &streamed {
            let mid = size / 2;
            result = result
                .and(expect_range(store, k, mid - 100_000..mid + 100_000, *size).await)
                .and(expect_range(store, k, size - 10..size + 1000, *size).await)
                .and(expect_whole(store, k, sha).await);
        }
        if let (Ok(()), Some((k, size, sha))) = (&result, &parted) {
            result = expect_range(store, k, boundary - 1000..boundary + 1000, *size)
                .await
                .and(expect_whole(store, k, sha).await);
        }
        match result {
            Ok(()) => Probe::Yes,
            Err(p) => p,
        }
    };
    let uploaded: Vec<ObjectKey> = [&streamed, &parted]
        .into_iter()
        .flatten()
        .map(|(k, _, _)| k.clone())
        .collect();
    let list_and_delete = probe_list_and_delete(store, prefix, &uploaded).await;
    Operations {
        streamed_upload,
        multipart_upload,
        ranged_read,
        list_and_delete,
    }
}

async fn probe_list_and_delete(store: &dyn ObjectStore, prefix: &str, keys: &[ObjectKey]) -> Probe {
    let marker = key(format!("{prefix}listed/marker"));
    if let Err(e) = store.create(&marker, Bytes::from_static(b"{}")).await {
        return failed("creating an object to list", &e);
    }
    match store.list(prefix).await {
        Ok(listed) => {
            if let Some(missing) = keys.iter().chain([&marker]).find(|k| !listed.contains(k)) {
                return Probe::No(format!("listing {prefix} did not show {missing}"));
            }
        }
        Err(e) => return failed(&format!("listing {prefix}"), &e),
    }
    for k in keys.iter().chain([&marker]) {
        if let Err(e) = store.delete(k).await {
            return failed(&format!("deleting {k}"), &e);
        }
    }
    match store.head(&marker).await {
        Ok(None) => {}
        Ok(Some(_)) => return Probe::No(format!("{marker} is still there after its delete")),
        Err(e) => return failed("reading a deleted object", &e),
    }
    match store.delete(&marker).await {
        Ok(()) => Probe::Yes,
        Err(e) => failed("deleting a missing object", &e),
    }
}

/// Probes a local directory: writes and every operation ingest performs.
pub async fn check_fs(store: Arc<dyn ObjectStore>) -> StoreReport {
    let prefix = probe_prefix();
    let (conditional_create, concurrent_create) = probe_writes(store.clone(), 8, 1, &prefix).await;
    let operations = probe_operations(store.as_ref(), None, &prefix).await;
    StoreReport {
        store: store.describe(),
        conditional_create,
        concurrent_create,
        object_lock: Probe::No(
            "a local directory has no Object Lock; retention is stated, not enforced".into(),
        ),
        versioning: Probe::No("a local directory keeps no versions".into()),
        operations,
    }
}

/// Probes an S3 bucket: writes, every operation ingest performs (with the
/// configured part size), Object Lock and versioning; then removes its probes.
pub async fn check_s3(store: &S3Store, racers: usize) -> StoreReport {
    let prefix = probe_prefix();
    let shared: Arc<dyn ObjectStore> = Arc::new(store.clone());
    let (conditional_create, concurrent_create) =
        probe_writes(shared, racers, RACE_ROUNDS, &prefix).await;
    // One part of the configured size and a short last one: the smallest file
    // that goes through the same multipart upload a long recording does.
    let part = store.settings().part_size;
    let parts = store.with_multipart_threshold(part);
    let operations = probe_operations(
        store,
        Some((&parts, part + MULTIPART_TAIL_BYTES, part)),
        &prefix,
    )
    .await;
    let s = store.settings();
    let client = store.client();
    let versioning = match client
        .get_bucket_versioning()
        .bucket(&s.bucket)
        .send()
        .await
    {
        Ok(v) => match v.status() {
            Some(aws_sdk_s3::types::BucketVersioningStatus::Enabled) => Probe::Yes,
            Some(other) => Probe::No(format!("versioning is {}", other.as_str())),
            None => Probe::No("versioning was never enabled".into()),
        },
        Err(e) => Probe::Unknown(format!("GetBucketVersioning {}", answer_of(&e).summary())),
    };
    let object_lock = probe_object_lock(store, &prefix).await;
    purge(store, &prefix).await;
    StoreReport {
        store: store.describe(),
        conditional_create,
        concurrent_create,
        object_lock,
        versioning,
        operations,
    }
}

/// Removes every version of the probes under `prefix`, so a versioned bucket
/// keeps no copies of them (a retained probe stays until its minute is over).
/// Stores without versions answer with an error here; their deletes were enough.
async fn purge(store: &S3Store, prefix: &str) {
    let s = store.settings();
    let client = store.client();
    let Ok(listed) = client
        .list_object_versions()
        .bucket(&s.bucket)
        .prefix(store.full_key(prefix))
        .send()
        .await
    else {
        return;
    };
    let versions = listed
        .versions()
        .iter()
        .map(|v| (v.key(), v.version_id()))
        .chain(
            listed
                .delete_markers()
                .iter()
                .map(|m| (m.key(), m.version_id())),
        );
    for (k, v) in versions {
        if let (Some(k), Some(v)) = (k, v) {
            let _ = client
                .delete_object()
                .bucket(&s.bucket)
                .key(k)
                .version_id(v)
                .send()
                .await;
        }
    }
}

async fn probe_object_lock(store: &S3Store, prefix: &str) -> Probe {
    let s = store.settings();
    let client = store.client();
    match client
        .get_object_lock_configuration()
        .bucket(&s.bucket)
        .send()
        .await
    {
        Ok(c) => {
            let enabled = c
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .is_some_and(|e| e.as_str() == "Enabled");
            if !enabled {
                return Probe::No("the bucket has no Object Lock configuration".into());
            }
        }
        Err(e) => {
            return Probe::No(format!(
                "no Object Lock configuration (GetObjectLockConfiguration {})",
                answer_of(&e).summary()
            ))
        }
    }
    // Configured is not enforced: retain a probe object for a minute and try to delete it.
    let k = key(format!("{prefix}locked"));
    let until = time::OffsetDateTime::now_utc() + time::Duration::MINUTE;
    if let Err(e) = store
        .create_retained(&k, Bytes::from_static(b"locked"), until)
        .await
    {
        return Probe::Unknown(format!("a retained write failed: {e}"));
    }
    let full = store.full_key(k.as_str());
    let version = match client
        .head_object()
        .bucket(&s.bucket)
        .key(&full)
        .send()
        .await
    {
        Ok(h) => h.version_id().map(str::to_owned),
        Err(e) => {
            return Probe::Unknown(format!(
                "cannot read the probe back: HeadObject {}",
                answer_of(&e).summary()
            ))
        }
    };
    let mut delete = client.delete_object().bucket(&s.bucket).key(&full);
    if let Some(v) = &version {
        delete = delete.version_id(v);
    }
    match delete.send().await {
        Err(_) => Probe::Yes,
        Ok(_) => {
            let still_there = client
                .head_object()
                .bucket(&s.bucket)
                .key(&full)
                .send()
                .await
                .is_ok();
            if still_there && version.is_none() {
                Probe::Unknown(
                    "the delete hid the object behind a marker; retention unclear".into(),
                )
            } else {
                Probe::No("a retained object could be deleted: retention is ignored".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FsStore;

    #[tokio::test]
    async fn a_local_directory_passes_every_probe_and_keeps_none_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::open(dir.path()).unwrap());
        let report = check_fs(store.clone()).await;
        assert!(report.write_once(), "{report:?}");
        assert!(report.usable(), "{report:?}");
        assert_eq!(report.unusable(), None);
        assert_eq!(report.operations.multipart_upload, None);
        assert!(store
            .list("probe/")
            .await
            .unwrap()
            .iter()
            .all(|k| { !k.as_str().ends_with(".bin") && !k.as_str().contains("/listed/") }));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["operations"]["streamed_upload"]["result"], "yes");
        assert!(json["operations"].get("multipart_upload").is_none());
    }

    #[test]
    fn an_unusable_store_names_each_failed_operation_and_the_answer() {
        let report = StoreReport {
            store: "S3 bucket b".into(),
            conditional_create: Probe::Yes,
            concurrent_create: Probe::Yes,
            object_lock: Probe::No("none".into()),
            versioning: Probe::No("none".into()),
            operations: Operations {
                streamed_upload: Probe::No(
                    "PutObject answered HTTP 400 InvalidRequest: \"Invalid payload signature\""
                        .into(),
                ),
                multipart_upload: Some(Probe::Yes),
                ranged_read: Probe::Unknown("nothing was uploaded to read".into()),
                list_and_delete: Probe::Yes,
            },
        };
        assert!(!report.usable());
        let why = report.unusable().unwrap();
        assert!(
            why.starts_with("S3 bucket b cannot store recordings"),
            "{why}"
        );
        assert!(
            why.contains("streamed upload: no (PutObject answered HTTP 400 InvalidRequest"),
            "{why}"
        );
        assert!(why.contains("ranged read: unknown"), "{why}");
        assert!(!why.contains("multipart upload"), "{why}");
    }
}
