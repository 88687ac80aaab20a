//! Connections: SQLite (a writer and a reader pool, through rusqlite) or a PostgreSQL pool.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use prefiq::config::{DatabaseConfig, redact_url_password};
use prefiq::{Backend, BootMode};
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::DataError;
use crate::entity::sql::{Conn, Sql};
use crate::sqlite::Role;

/// A parsed `database.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file, resolved against the config root.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH`, `sqlite:PATH` or `postgres(ql)://...`; a relative SQLite path
    /// is taken relative to `root`.
    pub fn parse(url: &str, root: &Path) -> Result<Self, DataError> {
        let invalid = |message: &str| DataError::InvalidUrl {
            url: redact_url_password(url),
            message: message.to_owned(),
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| invalid("use sqlite://PATH or postgres://..."))?;
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(invalid(
                "an in-memory or empty path cannot be shared by the writer and the readers; name a file",
            ));
        }
        Ok(DatabaseUrl::Sqlite(root.join(path)))
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL for messages, password hidden.
    pub fn display(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => redact_url_password(url),
        }
    }
}

/// SQLite as the platform uses it: every write through one connection, reads from a pool.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    /// Group commit on the single writer connection, which it owns. SQLite allows one
    /// writer at a time; queuing writers here instead of in `busy_timeout` keeps write
    /// latency predictable.
    pub batcher: crate::batch::WriteBatcher,
    /// Read-only connections.
    pub readers: crate::sqlite::Readers,
    /// The database file.
    pub path: PathBuf,
    /// The background WAL checkpointer (none in a dry run).
    checkpointer: Option<Arc<Checkpointer>>,
}

/// Copies the WAL back into the database file from a connection of its own, so the
/// `fsync` of a checkpoint never stalls a commit on the writer.
#[derive(Debug)]
struct Checkpointer {
    stop: tokio::sync::Notify,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// How often the checkpointer runs.
const CHECKPOINT_INTERVAL_MS: u64 = 250;

/// WAL pages (16 MiB of 4 KiB pages) from which, once they are all copied into the
/// database, the writer is asked to restart the log (see `WriteBatcher::restart_wal`).
const WAL_RESTART_PAGES: i64 = 4096;

impl Checkpointer {
    fn start(conn: rusqlite::Connection, batcher: crate::batch::WriteBatcher) -> Arc<Self> {
        let checkpointer = Arc::new(Checkpointer {
            stop: tokio::sync::Notify::new(),
            task: std::sync::Mutex::new(None),
        });
        let me = checkpointer.clone();
        let task = tokio::spawn(async move {
            let interval = Duration::from_millis(CHECKPOINT_INTERVAL_MS);
            let mut conn = Some(conn);
            loop {
                tokio::select! {
                    () = me.stop.notified() => break,
                    () = tokio::time::sleep(interval) => {}
                }
                let Some(owned) = conn.take() else { break };
                // PASSIVE never blocks the writer or readers; what it cannot copy now it
                // copies next time. It may fsync, so it runs off the async workers.
                let ran = tokio::task::spawn_blocking(move || {
                    // (busy, pages in the log, pages copied into the database)
                    let result = owned.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
                    });
                    (owned, result)
                })
                .await;
                match ran {
                    Ok((owned, result)) => {
                        match result {
                            Err(error) => {
                                tracing::warn!(target: "prefiq::data", %error, "WAL checkpoint failed");
                            }
                            Ok((log, copied)) if log >= WAL_RESTART_PAGES && copied >= log => {
                                if let Err(error) = batcher.restart_wal().await {
                                    tracing::warn!(target: "prefiq::data", %error, "restarting the WAL failed");
                                }
                            }
                            Ok(_) => {}
                        }
                        conn = Some(owned);
                    }
                    Err(error) => {
                        tracing::warn!(target: "prefiq::data", %error, "WAL checkpointer stopped");
                        break;
                    }
                }
            }
        });
        if let Ok(mut slot) = checkpointer.task.lock() {
            *slot = Some(task);
        }
        checkpointer
    }

    async fn stop(&self) {
        self.stop.notify_one();
        let task = self.task.lock().ok().and_then(|mut slot| slot.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// A connected database.
#[derive(Debug, Clone)]
pub enum Database {
    /// Embedded SQLite.
    Sqlite(SqliteDatabase),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// A writing connection outside a transaction (see [`Database::writer`]).
#[derive(Debug)]
pub enum Writing {
    /// SQLite's writer, taken from the group commit between batches.
    Sqlite(crate::batch::Alone),
    /// A connection of the PostgreSQL pool.
    Postgres(PoolConnection<Postgres>),
}

impl Writing {
    /// The connection.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Writing::Sqlite(alone) => Conn::Sqlite(alone.conn()),
            Writing::Postgres(pooled) => Conn::Postgres(pooled),
        }
    }

    /// Gives the connection back, committing the transaction SQLite's writer runs in and
    /// reporting a failed commit (dropping it commits too, but can only log the failure).
    /// PostgreSQL statements here commit one by one.
    pub fn commit(self) -> Result<(), DataError> {
        match self {
            Writing::Sqlite(alone) => Ok(alone.commit()?),
            Writing::Postgres(_) => Ok(()),
        }
    }
}

/// A reading connection (see [`Database::reader`]).
#[derive(Debug)]
pub enum Reading {
    /// A read-only SQLite connection of the reader pool.
    Sqlite(crate::sqlite::Reader),
    /// A connection of the PostgreSQL pool.
    Postgres(PoolConnection<Postgres>),
}

impl Reading {
    /// The connection.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Reading::Sqlite(reader) => Conn::Sqlite(reader),
            Reading::Postgres(pooled) => Conn::Postgres(pooled),
        }
    }
}

/// A write transaction (see [`Database::begin`]); dropped without
/// [`commit`](Transaction::commit), it rolls back.
#[derive(Debug)]
pub enum Transaction {
    /// A SQLite transaction of its own on the writer (a `solo` member of the group commit).
    Sqlite(crate::batch::Ticket),
    /// A PostgreSQL transaction.
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Transaction {
    /// The transaction's connection.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Transaction::Sqlite(ticket) => Conn::Sqlite(ticket.conn()),
            Transaction::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), DataError> {
        match self {
            Transaction::Sqlite(ticket) => match ticket.commit().await {
                crate::batch::Outcome::Committed => Ok(()),
                crate::batch::Outcome::Failed(message) => Err(DataError::Batch(message)),
                crate::batch::Outcome::Retry => Err(DataError::Batch(
                    "a transaction alone on the writer was asked to retry".into(),
                )),
            },
            Transaction::Postgres(tx) => Ok(tx.commit().await?),
        }
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), DataError> {
        match self {
            Transaction::Sqlite(ticket) => {
                ticket.abort().await;
                Ok(())
            }
            Transaction::Postgres(tx) => Ok(tx.rollback().await?),
        }
    }
}

impl Database {
    /// Connects as `config` says. In `DryRun`, a SQLite file that does not exist yet is not
    /// created: the result is `Ok(None)`, and the file is opened read-only if it exists.
    pub async fn connect(
        config: &DatabaseConfig,
        root: &Path,
        mode: BootMode,
    ) -> Result<Option<Database>, DataError> {
        let url = DatabaseUrl::parse(&config.url, root)?;
        let connect_error = |message: String| DataError::Connect {
            url: url.display(),
            message,
        };
        let acquire_timeout = Duration::from_millis(config.acquire_timeout_ms);
        match &url {
            DatabaseUrl::Sqlite(path) => {
                let dry_run = mode == BootMode::DryRun;
                if dry_run && !path.exists() {
                    return Ok(None);
                }
                if let Some(parent) = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty() && !dry_run)
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        connect_error(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                let busy_timeout = Duration::from_millis(config.busy_timeout_ms);
                // In a dry run nothing may write, so the "writer" is read-only too.
                let role = if dry_run {
                    Role::DryRunWriter
                } else {
                    Role::Writer
                };
                let writer = crate::sqlite::open(path, role, busy_timeout)
                    .map_err(|e| connect_error(e.to_string()))?;
                let readers = crate::sqlite::Readers::new(
                    path,
                    config.max_connections,
                    busy_timeout,
                    acquire_timeout,
                );
                let batcher = crate::batch::WriteBatcher::new(writer, busy_timeout);
                let checkpointer = if dry_run {
                    None
                } else {
                    let conn = crate::sqlite::open(path, Role::Checkpointer, busy_timeout)
                        .map_err(|e| connect_error(e.to_string()))?;
                    Some(Checkpointer::start(conn, batcher.clone()))
                };
                Ok(Some(Database::Sqlite(SqliteDatabase {
                    batcher,
                    readers,
                    path: path.clone(),
                    checkpointer,
                })))
            }
            DatabaseUrl::Postgres(raw) => {
                let options =
                    PgConnectOptions::from_str(raw).map_err(|e| connect_error(e.to_string()))?;
                let pool = PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(options)
                    .await
                    .map_err(|e| connect_error(e.to_string()))?;
                Ok(Some(Database::Postgres(pool)))
            }
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Database::Sqlite(_) => Backend::Sqlite,
            Database::Postgres(_) => Backend::Postgres,
        }
    }

    /// The writing connection, outside a transaction: SQLite's one writer (waiting for
    /// the group commit's open batch to commit), or a PostgreSQL pool connection.
    pub async fn writer(&self) -> Result<Writing, DataError> {
        Ok(match self {
            Database::Sqlite(db) => Writing::Sqlite(db.batcher.alone().await?),
            Database::Postgres(pool) => Writing::Postgres(pool.acquire().await?),
        })
    }

    /// A reading connection: SQLite's reader pool, or a PostgreSQL pool connection.
    pub async fn reader(&self) -> Result<Reading, DataError> {
        Ok(match self {
            Database::Sqlite(db) => Reading::Sqlite(db.readers.acquire().await?),
            Database::Postgres(pool) => Reading::Postgres(pool.acquire().await?),
        })
    }

    /// A write transaction of its own. On SQLite it runs on the writer between group
    /// commits and is never asked to retry, so its body may do more than touch the
    /// database.
    pub async fn begin(&self) -> Result<Transaction, DataError> {
        Ok(match self {
            Database::Sqlite(db) => Transaction::Sqlite(db.batcher.enter(true).await?),
            Database::Postgres(pool) => Transaction::Postgres(begin_postgres(pool).await?),
        })
    }

    /// Runs `SELECT 1` on a reading connection.
    pub async fn ping(&self) -> Result<(), DataError> {
        self.reader()
            .await?
            .conn()
            .execute(&Sql::new("SELECT 1", vec![]))
            .await?;
        Ok(())
    }

    /// Closes every connection, letting in-flight statements finish.
    pub async fn close(&self) {
        match self {
            Database::Sqlite(db) => {
                if let Some(checkpointer) = &db.checkpointer {
                    checkpointer.stop().await;
                }
                db.readers.close();
                db.batcher.close().await;
            }
            Database::Postgres(pool) => pool.close().await,
        }
    }
}

/// The database as a service: bound at register (no I/O), connected at boot.
#[derive(Debug)]
pub struct DatabaseHandle {
    url: DatabaseUrl,
    database: OnceLock<Database>,
}

impl DatabaseHandle {
    /// A handle for `url`, not yet connected.
    pub fn new(url: DatabaseUrl) -> Self {
        DatabaseHandle {
            url,
            database: OnceLock::new(),
        }
    }

    /// A handle for a database that is already connected.
    pub fn connected(url: DatabaseUrl, database: Database) -> Self {
        let handle = Self::new(url);
        let _ = handle.database.set(database);
        handle
    }

    /// The configured backend, known before connecting.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// The configured URL.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The connected database.
    pub fn get(&self) -> Result<&Database, DataError> {
        self.database.get().ok_or(DataError::NotConnected)
    }

    /// Stores the connection made at boot. A second call keeps the first connection.
    pub fn set(&self, database: Database) {
        let _ = self.database.set(database);
    }
}

/// Begins a PostgreSQL transaction in a task of its own. A caller dropped while `BEGIN` is
/// in flight (a client that hangs up mid-request) must not hand the connection back to
/// the pool inside a transaction nobody will end: sqlx 0.8 arms its rollback-on-drop only
/// after `BEGIN` is answered (transact-rs/sqlx#4393), and the next borrower's statements
/// would then run, uncommitted, inside that transaction. The task sees the `BEGIN`
/// through; when its caller is gone it drops the transaction, which rolls back.
pub async fn begin_postgres(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
    let pool = pool.clone();
    match tokio::spawn(async move { pool.begin().await }).await {
        Ok(begun) => begun,
        Err(stopped) => Err(sqlx::Error::Protocol(format!(
            "the task beginning a transaction stopped: {stopped}"
        ))),
    }
}
