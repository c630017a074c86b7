//! The embedded SQLite index (`data_dir/index.sqlite3`): the rows of
//! [`super::Row`] by generation, forward-only changes, keyset-paged search.
//!
//! rusqlite blocks; every call runs on the blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};

use super::{
    generation_of, nanos, time_of, Change, Cursor, Filter, IndexError, IndexState, Page, Row,
    SealMark, SearchIndex,
};

impl From<rusqlite::Error> for IndexError {
    fn from(e: rusqlite::Error) -> Self {
        IndexError(e.to_string())
    }
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA secure_delete = ON;
PRAGMA busy_timeout = 30000;
CREATE TABLE IF NOT EXISTS records (
    generation INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    account_id TEXT NOT NULL,
    confirmation_number TEXT NOT NULL,
    phone_hmac TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    purged INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (generation, record_id)
);
CREATE TABLE IF NOT EXISTS holds (
    generation INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    hold_n INTEGER NOT NULL,
    held INTEGER NOT NULL,
    PRIMARY KEY (generation, record_id)
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS by_time ON records (generation, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS by_account ON records (generation, account_id, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS by_phone ON records (generation, phone_hmac, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS by_number_time ON records (generation, confirmation_number, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS by_kind ON records (generation, kind, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS by_outcome ON records (generation, outcome, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS by_agent ON records (generation, agent_id, requested_at DESC, record_id DESC);
";

/// The SQLite index.
#[derive(Clone)]
pub struct SqliteIndex {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

fn meta(tx: &Connection, name: &str) -> Result<Option<String>, IndexError> {
    Ok(tx
        .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?)
}

fn set_meta(tx: &Connection, name: &str, value: &str) -> Result<(), IndexError> {
    tx.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        params![name, value],
    )?;
    Ok(())
}

fn current(tx: &Connection) -> Result<u64, IndexError> {
    Ok(meta(tx, "generation")?
        .and_then(|g| g.parse().ok())
        .unwrap_or(0))
}

fn change(tx: &Transaction<'_>, generation: i64, change: &Change) -> Result<(), IndexError> {
    match change {
        Change::Record(row) => {
            tx.execute(
                "INSERT INTO records (generation, record_id, version, sha256, account_id,
                     confirmation_number, phone_hmac, kind, outcome, status, agent_id, requested_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT(generation, record_id) DO UPDATE SET
                     version = excluded.version, sha256 = excluded.sha256,
                     account_id = excluded.account_id,
                     confirmation_number = excluded.confirmation_number,
                     phone_hmac = excluded.phone_hmac, kind = excluded.kind,
                     outcome = excluded.outcome, status = excluded.status,
                     agent_id = excluded.agent_id, requested_at = excluded.requested_at
                 WHERE excluded.version > records.version AND records.purged = 0",
                params![
                    generation,
                    row.record_id,
                    row.version,
                    row.sha256,
                    row.account_id,
                    row.confirmation_number,
                    row.phone_hmac,
                    row.kind,
                    row.outcome,
                    row.status,
                    row.agent_id,
                    nanos(row.requested_at),
                ],
            )?;
        }
        Change::Hold { record_id, n, held } => {
            tx.execute(
                "INSERT INTO holds (generation, record_id, hold_n, held) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(generation, record_id) DO UPDATE SET
                     hold_n = excluded.hold_n, held = excluded.held
                 WHERE excluded.hold_n > holds.hold_n",
                params![generation, record_id, n, held],
            )?;
        }
        Change::Purged { record_id } => {
            // A purged record keeps its id and place in time, nothing else.
            tx.execute(
                "INSERT INTO records (generation, record_id, version, sha256, account_id,
                     confirmation_number, phone_hmac, kind, outcome, status, agent_id,
                     requested_at, purged)
                 VALUES (?1, ?2, 0, '', '', '', '', '', '', '', '', 0, 1)
                 ON CONFLICT(generation, record_id) DO UPDATE SET
                     version = 0, sha256 = '', account_id = '', confirmation_number = '',
                     phone_hmac = '', kind = '', outcome = '', status = '', agent_id = '',
                     purged = 1",
                params![generation, record_id],
            )?;
        }
    }
    Ok(())
}

impl SqliteIndex {
    /// Opens (creating when missing) the index file at `path`.
    pub fn open(path: &Path) -> Result<SqliteIndex, IndexError> {
        let conn = Connection::open(path)
            .map_err(|e| IndexError(format!("cannot open {}: {e}", path.display())))?;
        Self::with(conn, Some(path.to_owned()))
    }

    /// An index in memory, for tests and benches.
    pub fn in_memory() -> Result<SqliteIndex, IndexError> {
        Self::with(Connection::open_in_memory()?, None)
    }

    fn with(conn: Connection, path: Option<PathBuf>) -> Result<SqliteIndex, IndexError> {
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteIndex {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// A random id kept in this index file, made at its first use: the
    /// owner name of the lease that keeps a second instance off an S3 store.
    pub async fn instance_id(&self) -> Result<String, IndexError> {
        self.run(|conn| {
            if let Some(id) = meta(conn, "instance_id")? {
                return Ok(id);
            }
            let id = hex::encode(rand::random::<[u8; 16]>());
            set_meta(conn, "instance_id", &id)?;
            Ok(id)
        })
        .await
    }

    async fn run<T, F>(&self, work: F) -> Result<T, IndexError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, IndexError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| IndexError("a previous index call panicked".into()))?;
            work(&mut conn)
        })
        .await
        .map_err(|e| IndexError(format!("index call failed: {e}")))?
    }
}

fn search(
    conn: &Connection,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Page, IndexError> {
    let generation = generation_of(current(conn)?);
    let mut sql = String::from(
        "SELECT r.record_id, r.version, r.sha256, r.account_id, r.confirmation_number,
                r.phone_hmac, r.kind, r.outcome, r.status, r.agent_id, r.requested_at,
                COALESCE(h.hold_n, 0), COALESCE(h.held, 0), r.purged
         FROM records r LEFT JOIN holds h
             ON h.generation = r.generation AND h.record_id = r.record_id
         WHERE r.generation = ?",
    );
    let mut args: Vec<rusqlite::types::Value> = vec![generation.into()];
    let mut text = |sql: &mut String, column: &str, value: &Option<String>| {
        if let Some(v) = value {
            sql.push_str(&format!(" AND r.{column} = ?"));
            args.push(v.clone().into());
        }
    };
    text(&mut sql, "account_id", &filter.account_id);
    text(&mut sql, "phone_hmac", &filter.phone_hmac);
    text(&mut sql, "confirmation_number", &filter.confirmation_number);
    text(&mut sql, "kind", &filter.kind);
    text(&mut sql, "outcome", &filter.outcome);
    text(&mut sql, "status", &filter.status);
    text(&mut sql, "agent_id", &filter.agent_id);
    if let Some(t) = filter.from {
        sql.push_str(" AND r.requested_at >= ?");
        args.push(nanos(t).into());
    }
    if let Some(t) = filter.to {
        sql.push_str(" AND r.requested_at < ?");
        args.push(nanos(t).into());
    }
    if let Some(held) = filter.held {
        sql.push_str(" AND COALESCE(h.held, 0) = ?");
        args.push(i64::from(held).into());
    }
    if let Some(c) = after {
        sql.push_str(" AND (r.requested_at < ? OR (r.requested_at = ? AND r.record_id < ?))");
        args.push(nanos(c.requested_at).into());
        args.push(nanos(c.requested_at).into());
        args.push(c.record_id.clone().into());
    }
    sql.push_str(" ORDER BY r.requested_at DESC, r.record_id DESC LIMIT ?");
    args.push(
        i64::try_from(limit.saturating_add(1))
            .unwrap_or(i64::MAX)
            .into(),
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows: Vec<Row> = stmt
        .query_map(params_from_iter(args), |r| {
            Ok(Row {
                record_id: r.get(0)?,
                version: r.get(1)?,
                sha256: r.get(2)?,
                account_id: r.get(3)?,
                confirmation_number: r.get(4)?,
                phone_hmac: r.get(5)?,
                kind: r.get(6)?,
                outcome: r.get(7)?,
                status: r.get(8)?,
                agent_id: r.get(9)?,
                requested_at: time_of(r.get(10)?),
                hold_n: r.get(11)?,
                held: r.get::<_, i64>(12)? != 0,
                purged: r.get::<_, i64>(13)? != 0,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Page::of(rows, limit))
}

#[async_trait]
impl SearchIndex for SqliteIndex {
    async fn state(&self) -> Result<IndexState, IndexError> {
        self.run(|conn| {
            Ok(IndexState {
                generation: current(conn)?,
                last_seal: meta(conn, "last_seal")?
                    .and_then(|m| SealMark::from_meta(&m))
                    .unwrap_or_else(SealMark::none),
                phone_fingerprint: meta(conn, "phone_fingerprint")?,
            })
        })
        .await
    }

    async fn apply(
        &self,
        generation: u64,
        changes: &[Change],
        seal: Option<&SealMark>,
    ) -> Result<(), IndexError> {
        let changes = changes.to_vec();
        let seal = seal.cloned();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let g = generation_of(generation);
            for c in &changes {
                change(&tx, g, c)?;
            }
            if let Some(seal) = seal {
                let last = meta(&tx, "last_seal")?
                    .and_then(|m| SealMark::from_meta(&m))
                    .unwrap_or_else(SealMark::none);
                if current(&tx)? == generation && seal.seal > last.seal {
                    set_meta(&tx, "last_seal", &seal.to_meta())?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn search(
        &self,
        filter: &Filter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, IndexError> {
        let filter = filter.clone();
        let after = after.cloned();
        self.run(move |conn| search(conn, &filter, after.as_ref(), limit))
            .await
    }

    async fn start_generation(&self) -> Result<u64, IndexError> {
        self.run(|conn| {
            let tx = conn.transaction()?;
            let now = current(&tx)?;
            let g = generation_of(now);
            tx.execute("DELETE FROM records WHERE generation <> ?1", [g])?;
            tx.execute("DELETE FROM holds WHERE generation <> ?1", [g])?;
            tx.commit()?;
            Ok(now + 1)
        })
        .await
    }

    async fn switch_generation(
        &self,
        generation: u64,
        seal: &SealMark,
        phone_fingerprint: &str,
    ) -> Result<(), IndexError> {
        let seal = seal.clone();
        let fingerprint = phone_fingerprint.to_owned();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let g = generation_of(generation);
            set_meta(&tx, "generation", &generation.to_string())?;
            set_meta(&tx, "last_seal", &seal.to_meta())?;
            set_meta(&tx, "phone_fingerprint", &fingerprint)?;
            tx.execute("DELETE FROM records WHERE generation <> ?1", [g])?;
            tx.execute("DELETE FROM holds WHERE generation <> ?1", [g])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(p) => format!("SQLite index at {}", p.display()),
            None => "SQLite index in memory".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sqlite_index_meets_the_contract() {
        super::super::contract::run_all(&SqliteIndex::in_memory().expect("index")).await;
    }

    #[tokio::test]
    async fn the_index_file_keeps_its_rows_across_opens() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("index.sqlite3");
        let ix = SqliteIndex::open(&path).expect("open");
        let g = ix.start_generation().await.expect("generation");
        ix.apply(
            g,
            &[Change::Record(Box::new(super::super::contract::row(
                "a", 1, 1, "x",
            )))],
            None,
        )
        .await
        .expect("apply");
        ix.switch_generation(
            g,
            &SealMark {
                seal: 3,
                sha256: "ab".into(),
            },
            "fp",
        )
        .await
        .expect("switch");
        drop(ix);
        let again = SqliteIndex::open(&path).expect("reopen");
        let state = again.state().await.expect("state");
        assert_eq!(state.generation, g);
        assert_eq!(state.last_seal.seal, 3);
        assert_eq!(state.phone_fingerprint.as_deref(), Some("fp"));
        let page = again
            .search(&Filter::default(), None, 10)
            .await
            .expect("search");
        assert_eq!(page.rows.len(), 1);
    }
}
