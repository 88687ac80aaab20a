//! Moving one tenant's rows between installations: the database half of
//! `prefiq tenant export` and `prefiq tenant import` (the file format and the order of
//! the work are the CLI's).
//!
//! The tables are found, not listed: every base table with a `tenant_id` column holds
//! tenant rows ([`tenant_tables`]), so a table a module adds later is moved without a line
//! here. Rows are read as JSON objects (column → value; a blob as `{"$base64": …}`) in
//! chunks of [`CHUNK_ROWS`] inside one read snapshot per database ([`Snapshot`]), and
//! written back in one transaction per database with each value cast to the target
//! column's type ([`insert_rows`]). Triggers that would derive rows the import also
//! brings (the stock ledger's monthly totals) are suspended for the transaction
//! ([`suspend_triggers`]); the ones that keep something the import does not bring (the
//! memory items' full-text index) keep running, so that stays consistent by itself.

mod rows;
mod runtime;
mod schema;

pub use rows::{Row, insert_rows, read_chunk};
pub use runtime::{create_runtime_entity, runtime_snapshots};
pub use schema::{
    Column, SuspendedTriggers, TableInfo, bump_sequences, restore_triggers, suspend_triggers,
    table_info, tenant_tables,
};

use crate::DataError;
use crate::database::{Database, Reading};
use crate::entity::sql::Conn;

/// Rows read or written per statement: bounds the memory a table of any size takes.
pub const CHUNK_ROWS: usize = 500;

/// Why moving rows failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The database refused or failed.
    #[error(transparent)]
    Database(#[from] DataError),
    /// A row or a table does not fit the target (a column it does not have, a value that
    /// is not a row).
    #[error("table `{table}`: {message}")]
    Table {
        /// The table.
        table: String,
        /// What does not fit.
        message: String,
    },
}

impl From<sqlx::Error> for TransferError {
    fn from(e: sqlx::Error) -> Self {
        TransferError::Database(DataError::Sql(e))
    }
}

impl From<rusqlite::Error> for TransferError {
    fn from(e: rusqlite::Error) -> Self {
        TransferError::Database(DataError::Sqlite(e))
    }
}

/// A read snapshot of one database: every chunk of every table read through it sees the
/// same committed state (SQLite: one read transaction on a reader connection;
/// PostgreSQL: a `REPEATABLE READ, READ ONLY` transaction with the tenant set, so
/// row-level security lets the rows through for a connecting user it applies to).
pub struct Snapshot {
    inner: SnapshotInner,
}

enum SnapshotInner {
    Sqlite(Reading),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Snapshot {
    /// Opens a snapshot of `database` for reading `tenant`'s rows.
    pub async fn open(database: &Database, tenant: &str) -> Result<Snapshot, TransferError> {
        match database {
            Database::Sqlite(_) => {
                let mut reading = database.reader().await?;
                if let Conn::Sqlite(c) = reading.conn() {
                    c.execute_batch("BEGIN")?;
                }
                Ok(Snapshot {
                    inner: SnapshotInner::Sqlite(reading),
                })
            }
            Database::Postgres(pool) => {
                let mut tx = crate::database::begin_postgres(pool).await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await?;
                enter(&mut Conn::Postgres(&mut tx), tenant).await?;
                Ok(Snapshot {
                    inner: SnapshotInner::Postgres(tx),
                })
            }
        }
    }

    /// The snapshot's connection.
    pub fn conn(&mut self) -> Conn<'_> {
        match &mut self.inner {
            SnapshotInner::Sqlite(reading) => reading.conn(),
            SnapshotInner::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    /// Ends the snapshot.
    pub async fn close(self) -> Result<(), TransferError> {
        match self.inner {
            SnapshotInner::Sqlite(mut reading) => {
                if let Conn::Sqlite(c) = reading.conn() {
                    c.execute_batch("COMMIT")?;
                }
                Ok(())
            }
            SnapshotInner::Postgres(tx) => Ok(tx.commit().await?),
        }
    }
}

/// Sets PostgreSQL's tenant for the rest of the transaction (row-level security's
/// `prefiq.tenant`), as the connecting user: the import writes tables the application
/// role may not (and suspends triggers, which only the owner may). Nothing on SQLite.
pub async fn enter(conn: &mut Conn<'_>, tenant: &str) -> Result<(), TransferError> {
    if let Conn::Postgres(c) = conn {
        sqlx::query("SELECT set_config($1, $2, true)")
            .bind(crate::entity::ddl::TENANT_SETTING)
            .bind(tenant)
            .execute(&mut **c)
            .await?;
    }
    Ok(())
}

/// Quotes an identifier for either backend (both take `"…"` with `""` inside).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
