//! The PostgreSQL index (`postgres://…`): the rows of [`super::Row`] by
//! generation in a database that many servers share, as [`super::sqlite`] does.
//!
//! Same tables, order and forward-only upserts as SQLite. What differs is
//! that several servers write at once, so every transaction first locks the
//! `generation` row of `meta` (shared for `apply`, exclusive for a generation
//! change) and `apply` writes its rows in one fixed order (by record id), so
//! two writers wait for each other instead of deadlocking; the last seal is
//! moved under a row lock, so the highest one wins.
//!
//! TLS is not supported yet: connections are in clear (`NoTls`), and a URL
//! asking for TLS (`sslmode=require`, `verify-ca`, `verify-full`) is refused
//! rather than connected in clear. Reach the server over loopback, a private
//! network or a tunnel.
//!
//! A few connections (at most [`CONNECTIONS`]) are kept; one that died is
//! dropped after its error is reported, and the next call connects afresh.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::try_join_all;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Statement};

use super::{
    generation_of, nanos, time_of, Change, Cursor, Filter, IndexError, IndexState, Page, Row,
    SealMark, SearchIndex,
};

/// Connections one index keeps at most.
pub const CONNECTIONS: usize = 4;

/// Prepared statements one connection keeps; past that it forgets them all.
const STATEMENTS: usize = 256;

/// Changes sent in one pipelined burst inside a transaction.
const BURST: usize = 500;

/// The advisory lock taken while creating the tables: `CREATE TABLE IF NOT
/// EXISTS` run by two servers at once can collide in the type catalog.
const SCHEMA_LOCK: i64 = 0x6361_6c6c_7072_6f66; // "callprof"

/// Record ids and filter columns compare byte by byte (`COLLATE "C"`), as
/// SQLite's default collation does, so both backends page in one order.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS records (
    generation BIGINT NOT NULL,
    record_id TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    sha256 TEXT COLLATE "C" NOT NULL,
    account_id TEXT COLLATE "C" NOT NULL,
    confirmation_number TEXT COLLATE "C" NOT NULL,
    phone_hmac TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    outcome TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL,
    agent_id TEXT COLLATE "C" NOT NULL,
    requested_at BIGINT NOT NULL,
    purged BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (generation, record_id)
);
CREATE TABLE IF NOT EXISTS holds (
    generation BIGINT NOT NULL,
    record_id TEXT COLLATE "C" NOT NULL,
    hold_n BIGINT NOT NULL,
    held BOOLEAN NOT NULL,
    PRIMARY KEY (generation, record_id)
);
CREATE TABLE IF NOT EXISTS meta (name TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS records_by_time ON records (generation, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS records_by_account ON records (generation, account_id, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS records_by_phone ON records (generation, phone_hmac, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS records_by_number_time ON records (generation, confirmation_number, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS records_by_kind ON records (generation, kind, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS records_by_outcome ON records (generation, outcome, requested_at DESC, record_id DESC);
CREATE INDEX IF NOT EXISTS records_by_agent ON records (generation, agent_id, requested_at DESC, record_id DESC);
-- The rows every transaction locks exist from the start: 'generation' 0
-- and 'last_seal' none read the same as missing rows do in SQLite.
INSERT INTO meta (name, value) VALUES ('generation', '0'), ('last_seal', '0:')
    ON CONFLICT (name) DO NOTHING;
"#;

const LOCK_GENERATION_SHARED: &str = "SELECT value FROM meta WHERE name = 'generation' FOR SHARE";
const LOCK_GENERATION: &str = "SELECT value FROM meta WHERE name = 'generation' FOR UPDATE";
const LOCK_LAST_SEAL: &str = "SELECT value FROM meta WHERE name = 'last_seal' FOR UPDATE";
const SET_META: &str = "INSERT INTO meta (name, value) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE SET value = excluded.value";
const STATE: &str = "SELECT name, value FROM meta
     WHERE name IN ('generation', 'last_seal', 'phone_fingerprint')";
const DROP_OTHER_RECORDS: &str = "DELETE FROM records WHERE generation <> $1";
const DROP_OTHER_HOLDS: &str = "DELETE FROM holds WHERE generation <> $1";

const UPSERT_RECORD: &str =
    "INSERT INTO records (generation, record_id, version, sha256, account_id,
         confirmation_number, phone_hmac, kind, outcome, status, agent_id, requested_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT (generation, record_id) DO UPDATE SET
         version = excluded.version, sha256 = excluded.sha256,
         account_id = excluded.account_id,
         confirmation_number = excluded.confirmation_number,
         phone_hmac = excluded.phone_hmac, kind = excluded.kind,
         outcome = excluded.outcome, status = excluded.status,
         agent_id = excluded.agent_id, requested_at = excluded.requested_at
     WHERE excluded.version > records.version AND NOT records.purged";

const UPSERT_HOLD: &str =
    "INSERT INTO holds (generation, record_id, hold_n, held) VALUES ($1, $2, $3, $4)
     ON CONFLICT (generation, record_id) DO UPDATE SET
         hold_n = excluded.hold_n, held = excluded.held
     WHERE excluded.hold_n > holds.hold_n";

// A purged record keeps its id and place in time, nothing else.
const PURGE: &str = "INSERT INTO records (generation, record_id, version, sha256, account_id,
         confirmation_number, phone_hmac, kind, outcome, status, agent_id,
         requested_at, purged)
     VALUES ($1, $2, 0, '', '', '', '', '', '', '', '', 0, true)
     ON CONFLICT (generation, record_id) DO UPDATE SET
         version = 0, sha256 = '', account_id = '', confirmation_number = '',
         phone_hmac = '', kind = '', outcome = '', status = '', agent_id = '',
         purged = true";

fn parse_generation(value: Option<String>) -> u64 {
    value.and_then(|g| g.parse().ok()).unwrap_or(0)
}

/// An error and its causes on one line (tokio-postgres keeps the server's
/// message in the cause).
fn chain(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string().replace('\n', "; "));
        cause = c.source();
    }
    if e.is_closed() {
        text.push_str(" (the connection to PostgreSQL was lost; the next call reconnects)");
    }
    text
}

/// The `sslmode` a connection string asks for, in URL or `key=value` form.
fn ssl_mode(url: &str) -> Option<String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let parsed = url::Url::parse(url).ok()?;
        let mode = parsed
            .query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.into_owned());
        return mode;
    }
    url.split_whitespace().find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == "sslmode").then(|| v.trim().trim_matches('\'').to_owned())
    })
}

/// Where an index is, for logs and errors: host, port, database and user,
/// never the password; and that the connection is not encrypted.
fn describe_config(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    };
    let user = config.get_user().unwrap_or("(default user)");
    let db = config.get_dbname().unwrap_or(user);
    format!("PostgreSQL index at {hosts}/{db} as {user} (without TLS: not supported yet)")
}

/// One connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    /// `sql` prepared on this connection, once.
    async fn statement(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await?;
        if self.statements.len() >= STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

struct Inner {
    config: Config,
    about: String,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

/// The PostgreSQL index. Clones share their connections.
#[derive(Clone)]
pub struct PostgresIndex {
    inner: Arc<Inner>,
}

/// A connection lent to one call; back to the idle ones when dropped, unless it died.
struct Lease<'a> {
    inner: &'a Inner,
    conn: Option<Conn>,
    _permit: SemaphorePermit<'a>,
}

impl Lease<'_> {
    fn conn(&mut self) -> Result<&mut Conn, IndexError> {
        self.conn
            .as_mut()
            .ok_or_else(|| IndexError("a PostgreSQL connection was used after its return".into()))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.client.is_closed() {
                if let Ok(mut idle) = self.inner.idle.lock() {
                    idle.push(conn);
                }
            }
        }
    }
}

impl PostgresIndex {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`
    /// or `key=value` pairs) and creates the tables when missing.
    pub async fn connect(url: &str) -> Result<PostgresIndex, IndexError> {
        let no_tls = |mode: &str| {
            IndexError(format!(
                "the PostgreSQL URL asks for TLS (sslmode={mode}), which callproof's \
                 PostgreSQL index does not support yet, and it will not connect in clear \
                 instead: reach PostgreSQL over loopback, a private network or a tunnel \
                 and remove sslmode from the URL (or set sslmode=disable)"
            ))
        };
        // Checked before parsing too: tokio-postgres does not read verify-*.
        if let Some(mode) = ssl_mode(url) {
            if matches!(
                mode.to_ascii_lowercase().as_str(),
                "require" | "verify-ca" | "verify-full"
            ) {
                return Err(no_tls(&mode));
            }
        }
        let mut config = Config::from_str(url).map_err(|e| {
            IndexError(format!(
                "the PostgreSQL URL cannot be read ({}): write it as \
                 postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                chain(&e)
            ))
        })?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(no_tls("require"));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("callproof-index");
        }
        let about = describe_config(&config);
        let index = PostgresIndex {
            inner: Arc::new(Inner {
                config,
                about,
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(CONNECTIONS),
            }),
        };
        index.create_tables().await?;
        Ok(index)
    }

    /// The current generation, read under `lock` (a statement locking the
    /// `generation` meta row) within `tx`.
    async fn locked_generation(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        lock: &tokio_postgres::Statement,
    ) -> Result<u64, IndexError> {
        let current = tx
            .query_opt(lock, &[])
            .await
            .map_err(|e| self.fail("cannot lock the generation", &e))?
            .map(|r| r.try_get::<_, String>(0))
            .transpose()
            .map_err(|e| self.fail("cannot read the generation", &e))?;
        Ok(parse_generation(current))
    }

    fn fail(&self, what: &str, e: &tokio_postgres::Error) -> IndexError {
        IndexError(format!("{}: {what}: {}", self.inner.about, chain(e)))
    }

    async fn open(&self) -> Result<Conn, IndexError> {
        let (client, connection) = self.inner.config.connect(NoTls).await.map_err(|e| {
            IndexError(format!(
                "{}: cannot connect: {}; check the index URL and that PostgreSQL is up",
                self.inner.about,
                chain(&e)
            ))
        })?;
        let about = self.inner.about.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(index = %about, error = %chain(&e),
                    "the search index lost its PostgreSQL connection; the next call reconnects");
            }
        });
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    /// A live connection: an idle one, else a new one.
    async fn lease(&self) -> Result<Lease<'_>, IndexError> {
        let permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| IndexError("the PostgreSQL index was closed".into()))?;
        let idle = loop {
            let next = self.inner.idle.lock().ok().and_then(|mut idle| idle.pop());
            match next {
                Some(conn) if conn.client.is_closed() => continue,
                other => break other,
            }
        };
        let conn = match idle {
            Some(conn) => conn,
            None => self.open().await?,
        };
        Ok(Lease {
            inner: &self.inner,
            conn: Some(conn),
            _permit: permit,
        })
    }

    async fn create_tables(&self) -> Result<(), IndexError> {
        let mut lease = self.lease().await?;
        let conn = lease.conn()?;
        let tx = conn
            .client
            .transaction()
            .await
            .map_err(|e| self.fail("cannot begin", &e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await
            .map_err(|e| self.fail("cannot lock the schema", &e))?;
        tx.batch_execute(SCHEMA).await.map_err(|e| {
            self.fail(
                "cannot create the index tables (the role needs to own the database \
                 or hold CREATE on its schema)",
                &e,
            )
        })?;
        tx.commit()
            .await
            .map_err(|e| self.fail("cannot create the index tables", &e))
    }

    /// In one transaction: locks the `generation` row (for a generation
    /// change), reads the current generation and drops the rows of every other.
    async fn new_generation(
        &self,
        switch: Option<(u64, &SealMark, &str)>,
    ) -> Result<u64, IndexError> {
        let mut lease = self.lease().await?;
        let conn = lease.conn()?;
        let prepare = |e| self.fail("cannot prepare", &e);
        let lock = conn.statement(LOCK_GENERATION).await.map_err(prepare)?;
        let set = conn.statement(SET_META).await.map_err(prepare)?;
        let drop_records = conn.statement(DROP_OTHER_RECORDS).await.map_err(prepare)?;
        let drop_holds = conn.statement(DROP_OTHER_HOLDS).await.map_err(prepare)?;
        let tx = conn
            .client
            .transaction()
            .await
            .map_err(|e| self.fail("cannot begin", &e))?;
        let current = self.locked_generation(&tx, &lock).await?;
        let keep = match switch {
            Some((generation, seal, fingerprint)) => {
                let g = generation.to_string();
                let mark = seal.to_meta();
                for (name, value) in [
                    ("generation", g.as_str()),
                    ("last_seal", mark.as_str()),
                    ("phone_fingerprint", fingerprint),
                ] {
                    tx.execute(&set, &[&name, &value])
                        .await
                        .map_err(|e| self.fail("cannot switch generations", &e))?;
                }
                generation
            }
            None => current,
        };
        let keep_g = generation_of(keep);
        tx.execute(&drop_records, &[&keep_g])
            .await
            .map_err(|e| self.fail("cannot drop old rows", &e))?;
        tx.execute(&drop_holds, &[&keep_g])
            .await
            .map_err(|e| self.fail("cannot drop old holds", &e))?;
        tx.commit()
            .await
            .map_err(|e| self.fail("cannot commit a generation change", &e))?;
        Ok(current)
    }
}

/// The order `apply` writes rows in: by record id, records before holds, so
/// that concurrent writers take row locks in one order and never deadlock.
/// The sort is stable, so changes to one row keep their order.
fn lock_order(change: &Change) -> (&str, u8) {
    match change {
        Change::Record(row) => (row.record_id.as_str(), 0),
        Change::Purged { record_id } => (record_id.as_str(), 0),
        Change::Hold { record_id, .. } => (record_id.as_str(), 1),
    }
}

#[async_trait]
impl SearchIndex for PostgresIndex {
    async fn state(&self) -> Result<IndexState, IndexError> {
        let mut lease = self.lease().await?;
        let conn = lease.conn()?;
        let st = conn
            .statement(STATE)
            .await
            .map_err(|e| self.fail("cannot prepare", &e))?;
        let rows = conn
            .client
            .query(&st, &[])
            .await
            .map_err(|e| self.fail("cannot read the index state", &e))?;
        let mut meta = HashMap::new();
        for r in &rows {
            let name: String = r.try_get(0).map_err(|e| self.fail("bad meta row", &e))?;
            let value: String = r.try_get(1).map_err(|e| self.fail("bad meta row", &e))?;
            meta.insert(name, value);
        }
        Ok(IndexState {
            generation: parse_generation(meta.remove("generation")),
            last_seal: meta
                .get("last_seal")
                .and_then(|m| SealMark::from_meta(m))
                .unwrap_or_else(SealMark::none),
            phone_fingerprint: meta.remove("phone_fingerprint"),
        })
    }

    async fn apply(
        &self,
        generation: u64,
        changes: &[Change],
        seal: Option<&SealMark>,
    ) -> Result<(), IndexError> {
        let g = generation_of(generation);
        let mut lease = self.lease().await?;
        let conn = lease.conn()?;
        let prepare = |e| self.fail("cannot prepare", &e);
        let lock = conn
            .statement(LOCK_GENERATION_SHARED)
            .await
            .map_err(prepare)?;
        let record = conn.statement(UPSERT_RECORD).await.map_err(prepare)?;
        let hold = conn.statement(UPSERT_HOLD).await.map_err(prepare)?;
        let purge = conn.statement(PURGE).await.map_err(prepare)?;
        let lock_seal = conn.statement(LOCK_LAST_SEAL).await.map_err(prepare)?;
        let set = conn.statement(SET_META).await.map_err(prepare)?;
        let mut ordered: Vec<&Change> = changes.iter().collect();
        ordered.sort_by(|a, b| lock_order(a).cmp(&lock_order(b)));
        let tx = conn
            .client
            .transaction()
            .await
            .map_err(|e| self.fail("cannot begin", &e))?;
        // Shared: applies run side by side; a generation change waits for them.
        let current = self.locked_generation(&tx, &lock).await?;
        for burst in ordered.chunks(BURST) {
            // Sent in order, one after another, without waiting for each answer.
            let writes = burst.iter().map(|c| {
                let tx = &tx;
                let (record, hold, purge) = (&record, &hold, &purge);
                async move {
                    match c {
                        Change::Record(row) => {
                            let version = i64::from(row.version);
                            let at = nanos(row.requested_at);
                            tx.execute(
                                record,
                                &[
                                    &g,
                                    &row.record_id,
                                    &version,
                                    &row.sha256,
                                    &row.account_id,
                                    &row.confirmation_number,
                                    &row.phone_hmac,
                                    &row.kind,
                                    &row.outcome,
                                    &row.status,
                                    &row.agent_id,
                                    &at,
                                ],
                            )
                            .await
                        }
                        Change::Hold { record_id, n, held } => {
                            let n = i64::from(*n);
                            tx.execute(hold, &[&g, record_id, &n, held]).await
                        }
                        Change::Purged { record_id } => tx.execute(purge, &[&g, record_id]).await,
                    }
                }
            });
            try_join_all(writes)
                .await
                .map_err(|e| self.fail("cannot write index rows", &e))?;
        }
        if let Some(seal) = seal {
            if current == generation {
                // Locked: of two servers moving it at once, the higher seal stays.
                let last = tx
                    .query_opt(&lock_seal, &[])
                    .await
                    .map_err(|e| self.fail("cannot lock the last seal", &e))?
                    .map(|r| r.try_get::<_, String>(0))
                    .transpose()
                    .map_err(|e| self.fail("cannot read the last seal", &e))?
                    .and_then(|m| SealMark::from_meta(&m))
                    .unwrap_or_else(SealMark::none);
                if seal.seal > last.seal {
                    tx.execute(&set, &[&"last_seal", &seal.to_meta()])
                        .await
                        .map_err(|e| self.fail("cannot move the last seal", &e))?;
                }
            }
        }
        tx.commit()
            .await
            .map_err(|e| self.fail("cannot commit index rows", &e))
    }

    async fn search(
        &self,
        filter: &Filter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, IndexError> {
        let (sql, args) = search_query(filter, after, limit);
        let mut lease = self.lease().await?;
        let conn = lease.conn()?;
        let st = conn
            .statement(&sql)
            .await
            .map_err(|e| self.fail("cannot prepare a search", &e))?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as _).collect();
        let found = conn
            .client
            .query(&st, &params)
            .await
            .map_err(|e| self.fail("cannot search", &e))?;
        let mut rows = Vec::with_capacity(found.len());
        for r in &found {
            rows.push(read_row(r).map_err(|e| IndexError(format!("{}: {e}", self.inner.about)))?);
        }
        Ok(Page::of(rows, limit))
    }

    async fn start_generation(&self) -> Result<u64, IndexError> {
        let current = self.new_generation(None).await?;
        Ok(current + 1)
    }

    async fn switch_generation(
        &self,
        generation: u64,
        seal: &SealMark,
        phone_fingerprint: &str,
    ) -> Result<(), IndexError> {
        self.new_generation(Some((generation, seal, phone_fingerprint)))
            .await
            .map(|_| ())
    }

    fn describe(&self) -> String {
        self.inner.about.clone()
    }
}

type Arg = Box<dyn ToSql + Sync + Send>;

/// The search statement for `filter` and its arguments: one statement, so
/// the current generation and its rows come from one snapshot.
fn search_query(filter: &Filter, after: Option<&Cursor>, limit: usize) -> (String, Vec<Arg>) {
    let mut sql = String::from(
        "SELECT r.record_id, r.version, r.sha256, r.account_id, r.confirmation_number,
                r.phone_hmac, r.kind, r.outcome, r.status, r.agent_id, r.requested_at,
                COALESCE(h.hold_n, 0), COALESCE(h.held, false), r.purged
         FROM records r LEFT JOIN holds h
             ON h.generation = r.generation AND h.record_id = r.record_id
         WHERE r.generation = COALESCE((SELECT CASE WHEN value ~ '^[+]?[0-9]{1,18}$'
                                                    THEN value::bigint ELSE 0 END
                                        FROM meta WHERE name = 'generation'), 0)",
    );
    let mut args: Vec<Arg> = Vec::new();
    let mut push = |sql: &mut String, condition: &str, arg: Arg| {
        args.push(arg);
        sql.push_str(&condition.replace('?', &format!("${}", args.len())));
    };
    for (column, value) in [
        ("account_id", &filter.account_id),
        ("phone_hmac", &filter.phone_hmac),
        ("confirmation_number", &filter.confirmation_number),
        ("kind", &filter.kind),
        ("outcome", &filter.outcome),
        ("status", &filter.status),
        ("agent_id", &filter.agent_id),
    ] {
        if let Some(v) = value {
            push(
                &mut sql,
                &format!(" AND r.{column} = ?"),
                Box::new(v.clone()),
            );
        }
    }
    if let Some(t) = filter.from {
        push(&mut sql, " AND r.requested_at >= ?", Box::new(nanos(t)));
    }
    if let Some(t) = filter.to {
        push(&mut sql, " AND r.requested_at < ?", Box::new(nanos(t)));
    }
    if let Some(held) = filter.held {
        push(&mut sql, " AND COALESCE(h.held, false) = ?", Box::new(held));
    }
    if let Some(c) = after {
        push(
            &mut sql,
            " AND (r.requested_at, r.record_id) < (?",
            Box::new(nanos(c.requested_at)),
        );
        push(
            &mut sql,
            ", ? COLLATE \"C\")",
            Box::new(c.record_id.clone()),
        );
    }
    let limit = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    push(
        &mut sql,
        " ORDER BY r.requested_at DESC, r.record_id DESC LIMIT ?",
        Box::new(limit),
    );
    (sql, args)
}

fn read_row(r: &tokio_postgres::Row) -> Result<Row, String> {
    let text = |i: usize| r.try_get::<_, String>(i).map_err(|e| chain(&e));
    let small = |i: usize| -> Result<u32, String> {
        let n: i64 = r.try_get(i).map_err(|e| chain(&e))?;
        u32::try_from(n).map_err(|_| format!("column {i} holds {n}, out of range"))
    };
    let flag = |i: usize| r.try_get::<_, bool>(i).map_err(|e| chain(&e));
    Ok(Row {
        record_id: text(0)?,
        version: small(1)?,
        sha256: text(2)?,
        account_id: text(3)?,
        confirmation_number: text(4)?,
        phone_hmac: text(5)?,
        kind: text(6)?,
        outcome: text(7)?,
        status: text(8)?,
        agent_id: text(9)?,
        requested_at: time_of(r.try_get(10).map_err(|e| chain(&e))?),
        hold_n: small(11)?,
        held: flag(12)?,
        purged: flag(13)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ssl_mode_is_read_from_either_form_of_url() {
        assert_eq!(
            ssl_mode("postgres://u:p@h:5/db?sslmode=require").as_deref(),
            Some("require")
        );
        assert_eq!(
            ssl_mode("postgresql://h/db?application_name=x&sslmode=verify-full").as_deref(),
            Some("verify-full")
        );
        assert_eq!(
            ssl_mode("host=h user=u sslmode=verify-ca dbname=db").as_deref(),
            Some("verify-ca")
        );
        assert_eq!(ssl_mode("postgres://u:p@h:5/db"), None);
    }

    #[tokio::test]
    async fn a_url_asking_for_tls_is_refused_before_connecting() {
        for url in [
            "postgres://user:hunter2@127.0.0.1:1/db?sslmode=require",
            "postgres://user:hunter2@127.0.0.1:1/db?sslmode=verify-full",
            "host=127.0.0.1 port=1 user=user password=hunter2 sslmode=verify-ca",
            "postgres://user:hunter2@a:1,b:2/db?sslmode=require",
        ] {
            let Err(e) = PostgresIndex::connect(url).await else {
                panic!("{url} was accepted");
            };
            let text = e.to_string();
            assert!(text.contains("does not support yet"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("cannot connect"), "{text}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named_without_the_password() {
        // Port 1 on loopback: nothing listens there.
        let Err(e) = PostgresIndex::connect("postgres://user:hunter2@127.0.0.1:1/db").await else {
            panic!("connected to nothing");
        };
        let text = e.to_string();
        assert!(text.contains("cannot connect"), "{text}");
        assert!(text.contains("127.0.0.1:1/db as user"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn the_description_names_the_place_but_never_the_password() {
        let config = Config::from_str("postgres://idx:hunter2@db.internal:6543/search")
            .expect("a valid URL");
        let about = describe_config(&config);
        assert_eq!(
            about,
            "PostgreSQL index at db.internal:6543/search as idx (without TLS: not supported yet)"
        );
        let config = Config::from_str("host=a,b port=1,2 user=u password=hunter2 dbname=d")
            .expect("valid pairs");
        let about = describe_config(&config);
        assert!(about.contains("a:1,b:2/d as u"), "{about}");
        assert!(!about.contains("hunter2"));
    }

    #[test]
    fn searches_number_their_arguments_in_order() {
        let filter = Filter {
            account_id: Some("acc".into()),
            held: Some(true),
            ..Filter::default()
        };
        let cursor = Cursor {
            requested_at: time::OffsetDateTime::UNIX_EPOCH,
            record_id: "r".into(),
        };
        let (sql, args) = search_query(&filter, Some(&cursor), 10);
        assert_eq!(args.len(), 5);
        assert!(sql.contains("r.account_id = $1"), "{sql}");
        assert!(sql.contains("COALESCE(h.held, false) = $2"), "{sql}");
        assert!(
            sql.contains("(r.requested_at, r.record_id) < ($3, $4 COLLATE \"C\")"),
            "{sql}"
        );
        assert!(sql.ends_with("LIMIT $5"), "{sql}");
    }
}
