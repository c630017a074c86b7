//! The embedded SQLite index (`data_dir/index.sqlite3`): the rows of
//! [`super::Row`], forward-only upserts, and keyset-paged search.
//!
//! Calls block; the server runs them off the async runtime.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use time::OffsetDateTime;

use super::{Cursor, Filter, Page, Row};

/// An index failure, named for the operator.
#[derive(Debug, thiserror::Error)]
#[error("search index: {0}")]
pub struct IndexError(String);

impl From<rusqlite::Error> for IndexError {
    fn from(e: rusqlite::Error) -> Self {
        IndexError(e.to_string())
    }
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA secure_delete = ON;
CREATE TABLE IF NOT EXISTS records (
    record_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    account_id TEXT NOT NULL,
    confirmation_number TEXT NOT NULL,
    phone_hmac TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    requested_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS holds (
    record_id TEXT PRIMARY KEY,
    hold_n INTEGER NOT NULL,
    held INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS by_time ON records (requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS by_account ON records (account_id, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS by_phone ON records (phone_hmac, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS by_number ON records (confirmation_number);
CREATE INDEX IF NOT EXISTS by_kind ON records (kind, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS by_outcome ON records (outcome, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS by_agent ON records (agent_id, requested_at DESC, record_id DESC);
";

/// The SQLite index.
pub struct SqliteIndex {
    conn: Mutex<Connection>,
}

fn nanos(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn time_of(n: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl SqliteIndex {
    /// Opens (creating when missing) the index file at `path`.
    pub fn open(path: &Path) -> Result<SqliteIndex, IndexError> {
        let conn = Connection::open(path)
            .map_err(|e| IndexError(format!("cannot open {}: {e}", path.display())))?;
        Self::with(conn)
    }

    /// An index in memory, for tests and benches.
    pub fn in_memory() -> Result<SqliteIndex, IndexError> {
        Self::with(Connection::open_in_memory()?)
    }

    fn with(conn: Connection) -> Result<SqliteIndex, IndexError> {
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteIndex {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, IndexError> {
        self.conn
            .lock()
            .map_err(|_| IndexError("a previous index call panicked".into()))
    }

    /// Indexes `row`'s record fields unless a version at least as new is
    /// indexed already; its hold fields go through [`SqliteIndex::set_hold`].
    pub fn upsert(&self, row: &Row) -> Result<(), IndexError> {
        self.conn()?.execute(
            "INSERT INTO records (record_id, version, sha256, account_id, confirmation_number,
                 phone_hmac, kind, outcome, status, agent_id, requested_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT(record_id) DO UPDATE SET
                 version = excluded.version, sha256 = excluded.sha256,
                 account_id = excluded.account_id,
                 confirmation_number = excluded.confirmation_number,
                 phone_hmac = excluded.phone_hmac, kind = excluded.kind,
                 outcome = excluded.outcome, status = excluded.status,
                 agent_id = excluded.agent_id, requested_at = excluded.requested_at
             WHERE excluded.version > records.version",
            params![
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
        Ok(())
    }

    /// Records hold fact `n` of `record_id` unless a newer one is recorded.
    pub fn set_hold(&self, record_id: &str, n: u32, held: bool) -> Result<(), IndexError> {
        self.conn()?.execute(
            "INSERT INTO holds (record_id, hold_n, held) VALUES (?1, ?2, ?3)
             ON CONFLICT(record_id) DO UPDATE SET hold_n = excluded.hold_n, held = excluded.held
             WHERE excluded.hold_n > holds.hold_n",
            params![record_id, n, held],
        )?;
        Ok(())
    }

    /// A stored setting of the index itself (the last seal read, the phone secret's fingerprint).
    pub fn meta(&self, name: &str) -> Result<Option<String>, IndexError> {
        Ok(self
            .conn()?
            .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Sets a stored setting of the index.
    pub fn set_meta(&self, name: &str, value: &str) -> Result<(), IndexError> {
        self.conn()?.execute(
            "INSERT INTO meta (name, value) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            params![name, value],
        )?;
        Ok(())
    }

    /// Rows matching `filter`, newest request first (ties by id, descending),
    /// starting after `after`, at most `limit`.
    pub fn search(
        &self,
        filter: &Filter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, IndexError> {
        let mut sql = String::from(
            "SELECT r.record_id, r.version, r.sha256, r.account_id, r.confirmation_number,
                    r.phone_hmac, r.kind, r.outcome, r.status, r.agent_id, r.requested_at,
                    COALESCE(h.hold_n, 0), COALESCE(h.held, 0)
             FROM records r LEFT JOIN holds h ON h.record_id = r.record_id WHERE 1 = 1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
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
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows: Vec<Row> = stmt
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
                })
            })?
            .collect::<Result<_, _>>()?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| Cursor {
                requested_at: r.requested_at,
                record_id: r.record_id.clone(),
            })
        } else {
            None
        };
        Ok(Page { rows, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, version: u32, minute: i64, account: &str) -> Row {
        Row {
            record_id: id.into(),
            version,
            sha256: format!("{version:064}"),
            account_id: account.into(),
            confirmation_number: format!("CN-{id}"),
            phone_hmac: "p".into(),
            kind: "billing".into(),
            outcome: if version > 1 {
                "confirmed"
            } else {
                "no_answer"
            }
            .into(),
            status: "complete".into(),
            agent_id: "agent-7".into(),
            requested_at: OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(minute),
            hold_n: 0,
            held: false,
        }
    }

    #[test]
    fn rows_only_move_forward_whatever_order_updates_arrive_in() {
        let ix = SqliteIndex::in_memory().expect("index");
        ix.upsert(&row("a", 2, 1, "acc")).expect("upsert");
        ix.upsert(&row("a", 1, 1, "acc"))
            .expect("an older version changes nothing");
        let page = ix.search(&Filter::default(), None, 10).expect("search");
        assert_eq!(page.rows.len(), 1);
        assert_eq!(page.rows[0].version, 2);
        assert_eq!(page.rows[0].outcome, "confirmed");
        ix.set_hold("a", 2, false).expect("release");
        ix.set_hold("a", 1, true)
            .expect("an older hold changes nothing");
        let held = Filter {
            held: Some(true),
            ..Filter::default()
        };
        assert!(ix.search(&held, None, 10).expect("search").rows.is_empty());
        ix.set_hold("a", 3, true).expect("hold");
        assert_eq!(ix.search(&held, None, 10).expect("search").rows.len(), 1);
    }

    #[test]
    fn pages_follow_a_stable_order_and_filters_combine() {
        let ix = SqliteIndex::in_memory().expect("index");
        // Two rows share a request time: the id breaks the tie.
        for (id, minute, account) in [("a", 1, "x"), ("b", 2, "y"), ("c", 2, "x"), ("d", 3, "x")] {
            ix.upsert(&row(id, 1, minute, account)).expect("upsert");
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = ix
                .search(&Filter::default(), after.as_ref(), 2)
                .expect("search");
            seen.extend(page.rows.iter().map(|r| r.record_id.clone()));
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, ["d", "c", "b", "a"]);
        let x_since_2 = Filter {
            account_id: Some("x".into()),
            from: Some(OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(2)),
            ..Filter::default()
        };
        let ids: Vec<String> = ix
            .search(&x_since_2, None, 10)
            .expect("search")
            .rows
            .into_iter()
            .map(|r| r.record_id)
            .collect();
        assert_eq!(ids, ["d", "c"]);
        ix.set_meta("last_seal", "7").expect("meta");
        assert_eq!(ix.meta("last_seal").expect("meta").as_deref(), Some("7"));
    }
}
