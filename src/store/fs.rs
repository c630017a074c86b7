//! The local-directory backend: one file per object under a root directory.
//! Creates are atomic and write-once: temp file, fsync, hard link, fsync dir.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use rand::RngCore;

use super::{ObjectKey, ObjectStore, StoreError};

/// Objects as files under `root`; the key's segments are the path.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// Opens (and creates if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(FsStore { root })
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
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

fn create_blocking(path: &Path, key: &ObjectKey, bytes: &[u8]) -> Result<(), StoreError> {
    let k = key.as_str();
    let dir = path
        .parent()
        .ok_or_else(|| io_err(k)(std::io::Error::other("key has no parent")))?;
    std::fs::create_dir_all(dir).map_err(io_err(k))?;
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let tmp = dir.join(format!(".tmp-{}", hex::encode(suffix)));
    let result = (|| {
        let mut f = std::fs::File::create_new(&tmp).map_err(io_err(k))?;
        f.write_all(bytes).map_err(io_err(k))?;
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
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(k))
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
        let path = self.path_of(key.as_str());
        let key = key.clone();
        blocking(&key.to_string(), move || {
            create_blocking(&path, &key, &bytes)
        })
        .await
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<Bytes>, StoreError> {
        match tokio::fs::read(self.path_of(key.as_str())).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(key.as_str())(e)),
        }
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
    use std::sync::Arc;

    fn key(s: &str) -> ObjectKey {
        ObjectKey::new(s).unwrap()
    }

    #[tokio::test]
    async fn a_created_object_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        store
            .create(&key("a/b.json"), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(
            store.get(&key("a/b.json")).await.unwrap().unwrap(),
            Bytes::from_static(b"{}")
        );
        assert!(store.get(&key("a/missing")).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_second_create_is_refused_and_keeps_the_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        store
            .create(&key("x"), Bytes::from_static(b"first"))
            .await
            .unwrap();
        let err = store
            .create(&key("x"), Bytes::from_static(b"second"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
        assert_eq!(
            store.get(&key("x")).await.unwrap().unwrap(),
            Bytes::from_static(b"first")
        );
    }

    #[tokio::test]
    async fn exactly_one_of_many_concurrent_creates_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FsStore::open(dir.path()).unwrap());
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .create(&key("race/one"), Bytes::from(format!("{i}")))
                        .await
                })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => wins += 1,
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(wins, 1);
        assert_eq!(
            store.list("race/").await.unwrap().len(),
            1,
            "no temp file may be listed"
        );
    }

    #[tokio::test]
    async fn listing_filters_by_prefix_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        for k in ["c/2", "c/1", "c/sub/3", "d/1", "cx/1"] {
            store.create(&key(k), Bytes::new()).await.unwrap();
        }
        let listed: Vec<_> = store
            .list("c/")
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(listed, ["c/1", "c/2", "c/sub/3"]);
        assert!(store.list("nothing/").await.unwrap().is_empty());
    }
}
