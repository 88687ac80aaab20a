//! The Codexion data layer.
//!
//! It connects to the configured database — embedded SQLite through rusqlite (one writer
//! connection and a pool of readers, WAL, `synchronous=NORMAL`, foreign keys on) or
//! PostgreSQL through sqlx — applies each module's migrations in module order with a
//! checksum per migration, and stores per-tenant configuration overrides. [`DatabaseProvider`] binds all of it into the kernel.

pub mod audit;
pub mod audit_sequencer;
pub mod batch;
mod database;
pub mod entity;
pub mod jobs;
mod migrate;
pub mod outbox;
mod provider;
pub mod sqlite;
mod tenant_config;
pub mod tenants;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transfer;

pub use database::{
    Database, DatabaseHandle, DatabaseUrl, Reading, SqliteDatabase, Transaction, Writing,
    begin_postgres,
};
pub use migrate::{SYSTEM_MODULE, SqlMigrationRunner, system_migrations};
pub use provider::DatabaseProvider;
pub use tenant_config::SqlTenantConfigStore;

/// An error from the data layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The database URL is not usable.
    #[error("invalid database url `{url}`: {message}")]
    InvalidUrl {
        /// The URL with its password redacted.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The database could not be reached or opened.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The URL with its password redacted.
        url: String,
        /// The driver's message.
        message: String,
    },
    /// The database has not been connected (a dry run on a database that does not exist yet).
    #[error("the database is not connected")]
    NotConnected,
    /// A statement failed.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A SQLite statement failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No connection became free within `database.acquire_timeout_ms`.
    #[error(
        "no database connection became free within {waited_ms} ms (database.acquire_timeout_ms)"
    )]
    AcquireTimeout {
        /// How long the caller waited.
        waited_ms: u64,
    },
    /// A group commit failed (the driver's message).
    #[error("database error: {0}")]
    Batch(std::sync::Arc<str>),
}

impl From<DataError> for prefiq::KernelError {
    fn from(error: DataError) -> Self {
        let kind = match &error {
            DataError::InvalidUrl { .. } => prefiq::ErrorKind::Invalid,
            DataError::Sql(_) | DataError::Sqlite(_) | DataError::Batch(_) => {
                prefiq::ErrorKind::Internal
            }
            DataError::Connect { .. }
            | DataError::NotConnected
            | DataError::AcquireTimeout { .. } => prefiq::ErrorKind::Unavailable,
        };
        prefiq::KernelError::service(kind, error)
    }
}

impl DataError {
    /// Whether a unique index or primary key refused the statement (SQLite's
    /// `SQLITE_CONSTRAINT_UNIQUE` or `_PRIMARYKEY`, PostgreSQL's `23505`).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DataError::Sql(sqlx::Error::Database(db)) => db.is_unique_violation(),
            DataError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            _ => false,
        }
    }

    /// The database's own message (SQLite's `UNIQUE constraint failed: t.c`), if the
    /// database refused the statement.
    pub fn database_message(&self) -> Option<&str> {
        match self {
            DataError::Sql(sqlx::Error::Database(db)) => Some(db.message()),
            DataError::Sqlite(rusqlite::Error::SqliteFailure(_, message)) => message.as_deref(),
            _ => None,
        }
    }

    /// The constraint the database names (PostgreSQL; SQLite names none).
    pub fn constraint(&self) -> Option<&str> {
        match self {
            DataError::Sql(sqlx::Error::Database(db)) => db.constraint(),
            _ => None,
        }
    }
}
