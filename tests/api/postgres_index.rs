//! The PostgreSQL search index on a real PostgreSQL server (`TEST_POSTGRES_URL`,
//! set by scripts/test): the shared contract, and several servers on one database.
//!
//! Each test makes a database of its own on that server, so runs never see
//! each other's rows.

use std::time::Duration;

use callproof::index::contract;
use callproof::index::postgres::PostgresIndex;
use callproof::index::{Change, Filter, SealMark, SearchIndex};
use tokio_postgres::NoTls;

/// The server the tests use: a role that may create databases.
fn server_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "TEST_POSTGRES_URL is needed for the PostgreSQL index tests: run scripts/test, \
             which starts a PostgreSQL cluster on loopback and sets it, or set it to \
             postgres://USER:PASSWORD@127.0.0.1:PORT/DATABASE for a role with CREATEDB"
        )
    })
}

async fn admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&server_url(), NoTls)
        .await
        .expect("connect to TEST_POSTGRES_URL");
    tokio::spawn(connection);
    client
}

/// A fresh database on the test server, dropped by [`TestDatabase::remove`].
struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    async fn new() -> TestDatabase {
        let name = format!("callproof_test_{:016x}", rand::random::<u64>());
        admin()
            .await
            // A linguistic default collation, under which 'B' sorts after
            // 'a': the index must still order ids byte by byte.
            .batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en'"
            ))
            .await
            .expect("create a test database (the role needs CREATEDB)");
        let mut url =
            url::Url::parse(&server_url()).expect("TEST_POSTGRES_URL is a postgres:// URL");
        url.set_path(&format!("/{name}"));
        TestDatabase {
            name,
            url: url.to_string(),
        }
    }

    async fn connect(&self) -> PostgresIndex {
        PostgresIndex::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"))
    }

    /// Server processes serving this database.
    async fn backends(&self) -> i64 {
        admin()
            .await
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&self.name],
            )
            .await
            .expect("count backends")
            .get(0)
    }

    async fn remove(self) {
        admin()
            .await
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .expect("drop the test database");
    }
}

fn mark(n: u64) -> SealMark {
    SealMark {
        seal: n,
        sha256: format!("{n:064x}"),
    }
}

async fn ids(ix: &PostgresIndex, filter: &Filter) -> Vec<String> {
    ix.search(filter, None, 100)
        .await
        .unwrap_or_else(|e| panic!("search: {e}"))
        .rows
        .into_iter()
        .map(|r| r.record_id)
        .collect()
}

#[tokio::test]
async fn the_postgres_index_meets_the_contract() {
    let db = TestDatabase::new().await;
    let ix = db.connect().await;
    let password = url::Url::parse(&db.url)
        .expect("url")
        .password()
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        password.is_empty() || !ix.describe().contains(&password),
        "describe() shows the password"
    );
    contract::run_all(&ix).await;
    // Ids compare byte by byte, as in SQLite: 'B' (0x42) < 'a' (0x61) < 'é'.
    let g = ix.state().await.expect("state").generation;
    let rows: Vec<Change> = ["a", "B", "é", "_"]
        .into_iter()
        .map(|id| Change::Record(Box::new(contract::row(id, 1, 7, "bytes"))))
        .collect();
    ix.apply(g, &rows, None).await.expect("apply");
    let bytes = Filter {
        account_id: Some("bytes".into()),
        ..Filter::default()
    };
    assert_eq!(ids(&ix, &bytes).await, ["é", "a", "_", "B"]);
    drop(ix);
    db.remove().await;
}

#[tokio::test]
async fn servers_sharing_a_database_see_each_others_rows_and_the_highest_seal_stays() {
    let db = TestDatabase::new().await;
    // Starting together: both create the tables, neither fails.
    let (a, b, c) = tokio::join!(db.connect(), db.connect(), db.connect());
    drop(c);
    let g = a.start_generation().await.expect("start");
    a.switch_generation(g, &SealMark::none(), "fp")
        .await
        .expect("switch");
    assert_eq!(b.state().await.expect("state").generation, g);

    a.apply(
        g,
        &[Change::Record(Box::new(contract::row("x", 1, 1, "acc")))],
        None,
    )
    .await
    .expect("apply on a");
    assert_eq!(ids(&b, &Filter::default()).await, ["x"]);
    b.apply(
        g,
        &[
            Change::Record(Box::new(contract::row("y", 1, 2, "acc"))),
            Change::Hold {
                record_id: "x".into(),
                n: 1,
                held: true,
            },
        ],
        None,
    )
    .await
    .expect("apply on b");
    assert_eq!(ids(&a, &Filter::default()).await, ["y", "x"]);
    let held = Filter {
        held: Some(true),
        ..Filter::default()
    };
    assert_eq!(ids(&a, &held).await, ["x"]);

    // Forty applies at once, half through each server, seals out of order,
    // each writing the same ten rows in a different order.
    let ids_of =
        |i: usize| -> Vec<String> { (0..10).map(|k| format!("r{}", (k + i) % 10)).collect() };
    let mut tasks = Vec::new();
    for step in 0..40u64 {
        let i = (step * 17) % 40 + 1;
        let ix = if i % 2 == 0 { a.clone() } else { b.clone() };
        let mut changes: Vec<Change> = ids_of(i as usize)
            .iter()
            .map(|id| Change::Record(Box::new(contract::row(id, i as u32, 3, "many"))))
            .collect();
        changes.push(Change::Hold {
            record_id: format!("r{}", i % 10),
            n: i as u32,
            held: i % 3 == 0,
        });
        tasks.push(tokio::spawn(async move {
            ix.apply(g, &changes, Some(&mark(i))).await
        }));
    }
    for t in tasks {
        t.await
            .expect("apply task")
            .unwrap_or_else(|e| panic!("a concurrent apply failed: {e}"));
    }
    for ix in [&a, &b] {
        assert_eq!(ix.state().await.expect("state").last_seal, mark(40));
    }
    let many = Filter {
        account_id: Some("many".into()),
        ..Filter::default()
    };
    let page = b.search(&many, None, 100).await.expect("search");
    assert_eq!(page.rows.len(), 10);
    for row in &page.rows {
        assert_eq!(row.version, 40, "{} kept its newest version", row.record_id);
        let k: u32 = row.record_id[1..].parse().expect("r<k>");
        // Hold facts for r<k> came from i = k, k+10, k+20, k+30 (k = 0: 10..40).
        let newest = if k == 0 { 40 } else { k + 30 };
        assert_eq!(
            (row.hold_n, row.held),
            (newest, newest % 3 == 0),
            "{}",
            row.record_id
        );
    }
    // Seals alone, out of order, through both servers at once (no row
    // writes to wait on): the highest stays.
    for round in 0..3u64 {
        let base = 40 + round * 40;
        let mut tasks = Vec::new();
        for step in 0..40u64 {
            let n = base + (step * 17) % 40 + 1;
            let ix = if step % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                ix.apply(g, &[], Some(&mark(n))).await
            }));
        }
        for t in tasks {
            t.await.expect("apply task").expect("apply a seal");
        }
        assert_eq!(a.state().await.expect("state").last_seal, mark(base + 40));
    }
    // A seal behind the mark does not move it back.
    a.apply(g, &[], Some(&mark(39))).await.expect("apply");
    assert_eq!(b.state().await.expect("state").last_seal, mark(160));
    drop((a, b));
    db.remove().await;
}

#[tokio::test]
async fn a_lost_connection_is_reported_and_the_next_call_reconnects() {
    let db = TestDatabase::new().await;
    let ix = db.connect().await;
    let g = ix.start_generation().await.expect("start");
    ix.switch_generation(g, &mark(1), "fp")
        .await
        .expect("switch");
    assert!(db.backends().await >= 1);
    admin()
        .await
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&db.name],
        )
        .await
        .expect("terminate the index's connections");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while db.backends().await > 0 {
        assert!(std::time::Instant::now() < deadline, "backends did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first call may fail with the lost connection; the one after it connects again.
    let state = match ix.state().await {
        Ok(s) => s,
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("PostgreSQL index at"), "{text}");
            ix.state()
                .await
                .unwrap_or_else(|e| panic!("no reconnect: {e}"))
        }
    };
    assert_eq!((state.generation, state.last_seal), (g, mark(1)));
    assert!(db.backends().await >= 1, "the index connected again");
    drop(ix);
    db.remove().await;
}
