//! The contract every `ObjectStore` backend meets, as runnable checks: the
//! local directory runs them in unit tests, S3-compatible stores in integration tests.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;

use super::{ObjectKey, ObjectStore, StoreError};

fn key(s: &str) -> ObjectKey {
    ObjectKey::new(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Reads a whole stream into memory (for checks on small objects).
pub async fn collect(mut stream: super::ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("stream failed: {e}")));
    }
    out
}

/// Runs every check, each under its own prefix so backends can share a bucket.
pub async fn run_all(shared: Arc<dyn ObjectStore>) {
    let store = shared.as_ref();
    created_objects_read_back(store).await;
    a_second_create_is_refused_and_keeps_the_first_bytes(store).await;
    listing_filters_by_prefix_in_order(store).await;
    file_creates_stream_and_are_write_once(store).await;
    ranged_reads_return_exactly_the_range(store).await;
    delete_removes_bookkeeping_objects(store).await;
    purge_leaves_no_version_of_an_object(store).await;
    exactly_one_concurrent_create_wins(shared.clone(), 8).await;
}

/// `create` then `get` and `head` give the bytes back; a missing key is `None`.
pub async fn created_objects_read_back(store: &dyn ObjectStore) {
    store
        .create(&key("contract/read/a.json"), Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert_eq!(
        store
            .get(&key("contract/read/a.json"))
            .await
            .unwrap()
            .unwrap(),
        Bytes::from_static(b"{}")
    );
    assert_eq!(
        store
            .head(&key("contract/read/a.json"))
            .await
            .unwrap()
            .unwrap()
            .size,
        2
    );
    assert!(store
        .get(&key("contract/read/missing"))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .head(&key("contract/read/missing"))
        .await
        .unwrap()
        .is_none());
}

/// Write-once: the second create of a key fails with `AlreadyExists` and changes nothing.
pub async fn a_second_create_is_refused_and_keeps_the_first_bytes(store: &dyn ObjectStore) {
    let k = key("contract/once/x");
    store
        .create(&k, Bytes::from_static(b"first"))
        .await
        .unwrap();
    let err = store
        .create(&k, Bytes::from_static(b"second"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    assert_eq!(
        store.get(&k).await.unwrap().unwrap(),
        Bytes::from_static(b"first")
    );
}

/// Exactly one of `n` concurrent creates of one key wins.
pub async fn exactly_one_concurrent_create_wins(store: Arc<dyn ObjectStore>, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create(&key("contract/race/one"), Bytes::from(format!("{i}")))
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap_or_else(|e| panic!("{e}")) {
            Ok(()) => wins += 1,
            Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        wins, 1,
        "write-once must let exactly one concurrent create win"
    );
    assert_eq!(store.list("contract/race/").await.unwrap().len(), 1);
}

/// `list` returns every key under a prefix, sorted, and nothing else.
pub async fn listing_filters_by_prefix_in_order(store: &dyn ObjectStore) {
    for k in [
        "contract/list/c/2",
        "contract/list/c/1",
        "contract/list/c/sub/3",
        "contract/list/d/1",
        "contract/list/cx/1",
    ] {
        store.create(&key(k), Bytes::new()).await.unwrap();
    }
    let listed: Vec<_> = store
        .list("contract/list/c/")
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(
        listed,
        [
            "contract/list/c/1",
            "contract/list/c/2",
            "contract/list/c/sub/3"
        ]
    );
    assert!(store
        .list("contract/list/nothing/")
        .await
        .unwrap()
        .is_empty());
}

/// `create_file` stores a file's bytes whole, both a file of 3 MB (one
/// streamed upload on S3) and one of 12 MB (more than one S3 part), and is
/// write-once for both.
pub async fn file_creates_stream_and_are_write_once(store: &dyn ObjectStore) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (name, size) in [("small", 3_000_000u32), ("blob", 12_000_000)] {
        let path = dir.path().join(name);
        let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let k = key(&format!("contract/file/{name}.bin"));
        store.create_file(&k, &path).await.unwrap();
        assert_eq!(
            store.head(&k).await.unwrap().unwrap().size,
            bytes.len() as u64
        );
        assert_eq!(store.get(&k).await.unwrap().unwrap().as_ref(), &bytes[..]);
        let err = store.create_file(&k, &path).await.unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    }
}

/// `read_range` returns exactly the asked bytes, clamped at the end.
pub async fn ranged_reads_return_exactly_the_range(store: &dyn ObjectStore) {
    let k = key("contract/range/digits");
    store
        .create(&k, Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    let mid = collect(store.read_range(&k, 2..5).await.unwrap().unwrap()).await;
    assert_eq!(mid, b"234");
    let tail = collect(store.read_range(&k, 7..100).await.unwrap().unwrap()).await;
    assert_eq!(tail, b"789");
    assert!(store
        .read_range(&key("contract/range/missing"), 0..1)
        .await
        .unwrap()
        .is_none());
}

/// `delete` removes an object and is quiet about missing ones.
pub async fn delete_removes_bookkeeping_objects(store: &dyn ObjectStore) {
    let k = key("contract/delete/job");
    store.create(&k, Bytes::from_static(b"j")).await.unwrap();
    store.delete(&k).await.unwrap();
    assert!(store.get(&k).await.unwrap().is_none());
    store.delete(&k).await.unwrap();
    store
        .create(&k, Bytes::from_static(b"again"))
        .await
        .unwrap();
}

/// `purge` removes an object for good: no version of it is left, also of
/// one deleted as bookkeeping and created again before; the newest version
/// is read until then. Purging a missing key is not an error.
pub async fn purge_leaves_no_version_of_an_object(store: &dyn ObjectStore) {
    let gone = key("contract/purge/gone");
    let kept = key("contract/purge/kept");
    store.create(&gone, Bytes::from_static(b"1")).await.unwrap();
    store.delete(&gone).await.unwrap();
    store.create(&gone, Bytes::from_static(b"2")).await.unwrap();
    store.create(&kept, Bytes::from_static(b"k")).await.unwrap();
    assert_eq!(
        store.get_newest_version(&gone).await.unwrap().unwrap(),
        Bytes::from_static(b"2")
    );
    store.purge(&gone).await.unwrap();
    assert!(store.get(&gone).await.unwrap().is_none());
    assert!(store.get_newest_version(&gone).await.unwrap().is_none());
    assert_eq!(
        store.list_versions("contract/purge/").await.unwrap(),
        vec![kept.clone()]
    );
    store.purge(&gone).await.unwrap();
    assert_eq!(
        store.get(&kept).await.unwrap().unwrap(),
        Bytes::from_static(b"k")
    );
}
