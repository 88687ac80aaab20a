//! Connections: SQLite (a writer and a reader pool) or a PostgreSQL pool.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use prefiq::config::{DatabaseConfig, redact_url_password};
use prefiq::{Backend, BootMode};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::DataError;

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
    /// The single writer connection. SQLite allows one writer at a time; queuing writers
    /// here instead of in `busy_timeout` keeps write latency predictable.
    pub writer: SqlitePool,
    /// Read-only connections.
    pub readers: SqlitePool,
    /// Read-only rusqlite connections: the entity engine's reads run on them inline.
    pub read_pool: crate::sqlite::Readers,
    /// Group commit for the entity engine's writes on `writer`.
    pub batcher: crate::batch::WriteBatcher,
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

/// WAL pages after which the writer checkpoints by itself: a safety net, should the
/// background checkpointer fall behind (64 MiB of 4 KiB pages).
const WAL_AUTOCHECKPOINT_PAGES: &str = "16384";

impl Checkpointer {
    fn start(pool: SqlitePool) -> Arc<Self> {
        let checkpointer = Arc::new(Checkpointer {
            stop: tokio::sync::Notify::new(),
            task: std::sync::Mutex::new(None),
        });
        let me = checkpointer.clone();
        let task = tokio::spawn(async move {
            let interval = Duration::from_millis(CHECKPOINT_INTERVAL_MS);
            loop {
                tokio::select! {
                    () = me.stop.notified() => break,
                    () = tokio::time::sleep(interval) => {}
                }
                // PASSIVE never blocks the writer or readers; what it cannot copy now it
                // copies next time.
                if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(target: "prefiq::data", %error, "WAL checkpoint failed");
                }
            }
            pool.close().await;
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

impl Database {
    /// Connects as `config` says. In `DryRun`, a SQLite file that does not exist yet is not
    /// created: the result is `Ok(None)`, and the file is opened read-only if it exists.
    pub async fn connect(
        config: &DatabaseConfig,
        root: &Path,
        mode: BootMode,
    ) -> Result<Option<Database>, DataError> {
        let url = DatabaseUrl::parse(&config.url, root)?;
        let connect_error = |e: sqlx::Error| DataError::Connect {
            url: url.display(),
            message: e.to_string(),
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
                    std::fs::create_dir_all(parent).map_err(|e| DataError::Connect {
                        url: url.display(),
                        message: format!("cannot create {}: {e}", parent.display()),
                    })?;
                }
                let base = SqliteConnectOptions::new()
                    .filename(path)
                    .busy_timeout(Duration::from_millis(config.busy_timeout_ms))
                    .foreign_keys(true)
                    .synchronous(SqliteSynchronous::Normal)
                    // Pages are read through a memory map (no read syscall per page) and each
                    // connection caches up to 16 MiB of pages beyond what the map serves.
                    .pragma("mmap_size", "1073741824")
                    .pragma("cache_size", "-16384");
                let writer_options = base
                    .clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES);
                // In a dry run nothing may write, so the "writer" is read-only too.
                let writer_options = if dry_run {
                    base.clone().read_only(true)
                } else {
                    writer_options
                };
                // An embedded database cannot drop a connection the way a server can, so the
                // pools skip sqlx's ping before every acquire: it costs a round trip to the
                // connection's worker thread on each query.
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(0)
                    .test_before_acquire(false)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(writer_options)
                    .await
                    .map_err(connect_error)?;
                let readers = SqlitePoolOptions::new()
                    .max_connections(config.max_connections)
                    .min_connections(0)
                    .test_before_acquire(false)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(base.clone().read_only(true))
                    .await
                    .map_err(connect_error)?;
                let checkpointer = if dry_run {
                    None
                } else {
                    let pool = SqlitePoolOptions::new()
                        .max_connections(1)
                        .min_connections(0)
                        .test_before_acquire(false)
                        .acquire_timeout(acquire_timeout)
                        .connect_with(base)
                        .await
                        .map_err(connect_error)?;
                    Some(Checkpointer::start(pool))
                };
                let read_pool = crate::sqlite::Readers::new(
                    path,
                    config.max_connections,
                    Duration::from_millis(config.busy_timeout_ms),
                    acquire_timeout,
                );
                Ok(Some(Database::Sqlite(SqliteDatabase {
                    batcher: crate::batch::WriteBatcher::new(writer.clone()),
                    writer,
                    readers,
                    read_pool,
                    path: path.clone(),
                    checkpointer,
                })))
            }
            DatabaseUrl::Postgres(raw) => {
                let options = PgConnectOptions::from_str(raw).map_err(connect_error)?;
                let pool = PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
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

    /// Runs `SELECT 1` on a reading connection.
    pub async fn ping(&self) -> Result<(), DataError> {
        match self {
            Database::Sqlite(db) => {
                sqlx::query("SELECT 1").execute(&db.readers).await?;
            }
            Database::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Closes every connection, letting in-flight statements finish.
    pub async fn close(&self) {
        match self {
            Database::Sqlite(db) => {
                if let Some(checkpointer) = &db.checkpointer {
                    checkpointer.stop().await;
                }
                db.readers.close().await;
                db.read_pool.close();
                db.batcher.close().await;
                db.writer.close().await;
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
