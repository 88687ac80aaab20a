//! The Codexion data layer.
//!
//! It connects to the configured database — embedded SQLite (one writer connection and a
//! pool of readers, WAL, `synchronous=NORMAL`, foreign keys on) or PostgreSQL — applies each
//! module's migrations in module order with a checksum per migration, and stores per-tenant
//! configuration overrides. [`DatabaseProvider`] binds all of it into the kernel.

pub mod audit;
pub mod audit_sequencer;
pub mod batch;
mod database;
pub mod entity;
mod migrate;
mod provider;
mod tenant_config;
pub mod tenants;
#[cfg(feature = "testing")]
pub mod testing;

pub use database::{Database, DatabaseHandle, DatabaseUrl, SqliteDatabase};
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
    /// A group commit failed (the driver's message).
    #[error("database error: {0}")]
    Batch(std::sync::Arc<str>),
}

impl From<DataError> for prefiq::KernelError {
    fn from(error: DataError) -> Self {
        let kind = match &error {
            DataError::InvalidUrl { .. } => prefiq::ErrorKind::Invalid,
            DataError::Sql(_) | DataError::Batch(_) => prefiq::ErrorKind::Internal,
            DataError::Connect { .. } | DataError::NotConnected => prefiq::ErrorKind::Unavailable,
        };
        prefiq::KernelError::service(kind, error)
    }
}
