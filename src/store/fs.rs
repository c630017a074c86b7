//! The local-directory backend: one file per object under a root directory.
//! Creates are atomic and write-once: temp file, fsync, hard link, fsync dir.

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{ByteStream, ObjectKey, ObjectMeta, ObjectStore, StoreError};

/// Objects as files under `root`; the key's segments are the path.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
    durable: Arc<DurableDirs>,
}

/// Objects up to this size are read on the calling thread: a small file in
/// the page cache reads faster than a hand-off to the blocking pool. Larger
/// ones (audio) are read on the blocking pool.
const INLINE_READ_MAX: u64 = 64 * 1024;

/// Directories under the root whose own entry this process has made durable
/// (it synced every directory above them after they existed). A create into
/// one of them syncs that directory alone instead of the whole chain up to
/// the root: one fsync fewer per level. Bounded: past `LIMIT` entries it
/// starts again empty, which only costs the syncs it saved.
#[derive(Debug, Default)]
struct DurableDirs(Mutex<HashSet<PathBuf>>);

impl DurableDirs {
    const LIMIT: usize = 65_536;

    fn contains(&self, dir: &Path) -> bool {
        self.0.lock().map(|d| d.contains(dir)).unwrap_or(false)
    }

    fn insert_all(&self, dirs: Vec<PathBuf>) {
        if let Ok(mut d) = self.0.lock() {
            if d.len() + dirs.len() > Self::LIMIT {
                d.clear();
            }
            d.extend(dirs);
        }
    }

    fn forget(&self, dir: &Path) {
        if let Ok(mut d) = self.0.lock() {
            d.remove(dir);
        }
    }
}

impl FsStore {
    /// Opens (and creates if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(FsStore {
            root,
            durable: Arc::default(),
        })
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Creates `key` from `source`: refused at once when the key is
    /// [`taken`], else written on the blocking pool.
    async fn create_from(&self, key: &ObjectKey, source: Source) -> Result<(), StoreError> {
        let path = self.path_of(key.as_str());
        if taken(&path) {
            return Err(StoreError::AlreadyExists(key.clone()));
        }
        let root = self.root.clone();
        let durable = self.durable.clone();
        let key = key.clone();
        blocking(&key.to_string(), move || {
            create_blocking(&root, &durable, &path, &key, source)
        })
        .await
    }
}

fn io_err(key: &str) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        key: key.to_owned(),
        source,
    }
}

/// Joins a blocking task, turning a panic or cancellation into an I/O error.
async fn blocking<T: Send + 'static>(
    key: &str,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io_err(key)(std::io::Error::other(e.to_string())))?
}

/// Whether an object is already stored at `path`. A create whose key is
/// taken is refused by this lookup, on the calling thread, before any byte is
/// written or the blocking pool is asked: a replayed fact costs a lookup, not
/// a hand-off and a synced temp file. The hard link in `create_blocking`
/// stays the check that counts when two creates race.
fn taken(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Where the bytes of a create come from.
enum Source {
    Memory(Bytes),
    File(PathBuf),
}

fn create_blocking(
    root: &Path,
    durable: &DurableDirs,
    path: &Path,
    key: &ObjectKey,
    source: Source,
) -> Result<(), StoreError> {
    let k = key.as_str();
    let dir = path
        .parent()
        .ok_or_else(|| io_err(k)(std::io::Error::other("key has no parent")))?;
    // Checked again here (see `taken`): the key may have been created since.
    if taken(path) {
        return Err(StoreError::AlreadyExists(key.clone()));
    }
    // Directories this create makes (or makes again after a purge, maybe by
    // another process) have entries in their parents that no one has synced
    // yet: only a directory that was already there can end the sync climb.
    let existed = dir.ancestors().find(|d| d.is_dir()).unwrap_or(root);
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let tmp = dir.join(format!(".tmp-{}", hex::encode(suffix)));
    let result = (|| {
        let mut f = temp_file_in(dir, &tmp).map_err(io_err(k))?;
        match source {
            Source::Memory(bytes) => f.write_all(&bytes).map_err(io_err(k))?,
            Source::File(from) => {
                let mut input = std::fs::File::open(&from).map_err(io_err(k))?;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = input.read(&mut buf).map_err(io_err(k))?;
                    if n == 0 {
                        break;
                    }
                    f.write_all(&buf[..n]).map_err(io_err(k))?;
                }
            }
        }
        f.sync_all().map_err(io_err(k))?;
        // A hard link fails if the target exists: that is the write-once check,
        // and the object appears whole because its bytes were synced first.
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                Err(StoreError::AlreadyExists(key.clone()))
            }
            Err(e) => Err(io_err(k)(e)),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result?;
    // Sync the directory, so the new entry survives a power loss, and the
    // ones above it up to the root, so directories created for this key do
    // too; a directory this process already made durable ends the climb.
    let sync = |d: &Path| {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(io_err(k))
    };
    sync(dir)?;
    let mut made_durable = Vec::new();
    let mut at = dir;
    while at != root && !(existed.starts_with(at) && durable.contains(at)) {
        let Some(parent) = at.parent().filter(|p| p.starts_with(root)) else {
            break;
        };
        sync(parent)?;
        made_durable.push(at.to_path_buf());
        at = parent;
    }
    durable.insert_all(made_durable);
    Ok(())
}

/// Creates the temp file `tmp` in `dir`, making `dir` first. A purge removes
/// directories it empties; one removed between the two steps is made again.
fn temp_file_in(dir: &Path, tmp: &Path) -> std::io::Result<std::fs::File> {
    let mut attempts = 0;
    loop {
        std::fs::create_dir_all(dir)?;
        match std::fs::File::create_new(tmp) {
            Err(e) if e.kind() == ErrorKind::NotFound && attempts < 3 => attempts += 1,
            other => return other,
        }
    }
}

/// Removes `path`, then each parent directory it leaves empty, up to `root`.
fn purge_blocking(
    root: &Path,
    durable: &DurableDirs,
    path: &Path,
    key: &str,
) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(key)(e)),
    }
    let mut at = path.parent();
    while let Some(dir) = at {
        // Fails when the directory is not empty (or gone): then stop.
        if dir == root || !dir.starts_with(root) || std::fs::remove_dir(dir).is_err() {
            break;
        }
        durable.forget(dir);
        at = dir.parent();
    }
    Ok(())
}

fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<ObjectKey>, StoreError> {
    // Walk from the deepest directory the prefix names, then filter by the full prefix.
    let dir_part = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let start = if dir_part.is_empty() {
        root.to_path_buf()
    } else {
        root.join(dir_part)
    };
    let mut out = Vec::new();
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(prefix)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(prefix))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue; // temp files of creates in flight
            }
            let path = entry.path();
            if entry.file_type().map_err(io_err(prefix))?.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                let rel = rel
                    .to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "/");
                if rel.starts_with(prefix) {
                    if let Ok(key) = ObjectKey::new(rel) {
                        out.push(key);
                    }
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

#[async_trait]
impl ObjectStore for FsStore {
    async fn create(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), StoreError> {
        self.create_from(key, Source::Memory(bytes)).await
    }

    async fn create_file(&self, key: &ObjectKey, from: &Path) -> Result<(), StoreError> {
        self.create_from(key, Source::File(from.to_path_buf()))
            .await
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, StoreError> {
        // A stat of one path: on the calling thread, like a small read.
        match std::fs::metadata(self.path_of(key.as_str())) {
            Ok(m) if m.is_file() => Ok(Some(ObjectMeta { size: m.len() })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(key.as_str())(e)),
        }
    }

    async fn read_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<Option<ByteStream>, StoreError> {
        let mut file = match tokio::fs::File::open(self.path_of(key.as_str())).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(key.as_str())(e)),
        };
        file.seek(std::io::SeekFrom::Start(range.start))
            .await
            .map_err(io_err(key.as_str()))?;
        let len = range.end.saturating_sub(range.start);
        Ok(Some(Box::pin(ReaderStream::with_capacity(
            file.take(len),
            64 * 1024,
        ))))
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.path_of(key.as_str())).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(key.as_str())(e)),
        }
    }

    async fn purge(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let path = self.path_of(key.as_str());
        let root = self.root.clone();
        let durable = self.durable.clone();
        let k = key.to_string();
        blocking(&key.to_string(), move || {
            purge_blocking(&root, &durable, &path, &k)
        })
        .await
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<Bytes>, StoreError> {
        let k = key.as_str();
        let file = match std::fs::File::open(self.path_of(k)) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(k)(e)),
        };
        let size = file.metadata().map_err(io_err(k))?.len();
        let read = move |mut file: std::fs::File| {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            file.read_to_end(&mut bytes).map(|_| Bytes::from(bytes))
        };
        if size <= INLINE_READ_MAX {
            return read(file).map(Some).map_err(io_err(k));
        }
        let key = k.to_owned();
        blocking(k, move || read(file).map(Some).map_err(io_err(&key))).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>, StoreError> {
        let root = self.root.clone();
        let p = prefix.to_owned();
        blocking(prefix, move || list_blocking(&root, &p)).await
    }

    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract;

    fn store() -> (tempfile::TempDir, FsStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn the_local_directory_meets_the_store_contract() {
        let (_dir, store) = store();
        contract::run_all(std::sync::Arc::new(store)).await;
    }

    #[tokio::test]
    async fn a_purge_removes_the_file_and_the_directories_it_empties() {
        let (dir, store) = store();
        let a = ObjectKey::new("records/x/audio/v1.json").unwrap();
        let b = ObjectKey::new("records/y.json").unwrap();
        store.create(&a, Bytes::from_static(b"1")).await.unwrap();
        store.create(&b, Bytes::from_static(b"2")).await.unwrap();
        store.purge(&a).await.unwrap();
        assert!(!dir.path().join("records/x").exists());
        assert!(dir.path().join("records/y.json").exists());
        store.purge(&a).await.unwrap();
        store.purge(&b).await.unwrap();
        assert!(!dir.path().join("records").exists());
        assert!(dir.path().exists(), "the root stays");
        // A create into a purged directory makes it again.
        store.create(&a, Bytes::from_static(b"3")).await.unwrap();
        assert_eq!(store.get(&a).await.unwrap().unwrap(), "3");
    }

    #[tokio::test]
    async fn no_temp_file_is_left_after_a_refused_create() {
        let (dir, store) = store();
        let key = ObjectKey::new("a/b").unwrap();
        store.create(&key, Bytes::from_static(b"1")).await.unwrap();
        assert!(store.create(&key, Bytes::from_static(b"2")).await.is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["b"]);
    }
}
