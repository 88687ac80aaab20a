//! SQLite through rusqlite: opening connections with the platform's pragmas, the pool of
//! read-only connections, and running one [`Sql`] statement on a connection.
//!
//! Statements run inline on the calling task. The entity engine's statements take
//! microseconds; handing each one to another thread (as sqlx does, per statement) cost two
//! context switches and most of the CPU under load, while running it where the request
//! already is costs nothing extra. Prepared statements are cached per connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::DataError;
use crate::entity::sql::{Arg, Cell, Sql, SqlType};

/// Prepared statements kept per connection: the entity engine's statement shapes of a
/// busy installation (a few per entity and action), with room for list filters.
const STATEMENT_CACHE: usize = 256;

/// WAL pages after which the writer checkpoints by itself: a safety net, should the
/// background checkpointer fall behind (64 MiB of 4 KiB pages).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 16384;

/// What a connection is for; each opens with its own flags and pragmas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // The writer and the checkpointer move to rusqlite next.
pub(crate) enum Role {
    /// The one writer: creates the file, turns WAL on.
    Writer,
    /// The writer of a dry run, which must not write: read-only.
    DryRunWriter,
    /// A reader of the pool: read-only.
    Reader,
    /// The background checkpointer: writes only the WAL back into the file.
    Checkpointer,
}

/// Opens `path` for `role`.
pub(crate) fn open(
    path: &Path,
    role: Role,
    busy_timeout: Duration,
) -> Result<Connection, rusqlite::Error> {
    let flags = match role {
        Role::Writer => {
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        }
        Role::Checkpointer => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        Role::DryRunWriter | Role::Reader => {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        }
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    pragma(&conn, "foreign_keys = ON")?;
    pragma(&conn, "synchronous = NORMAL")?;
    // Pages are read through a memory map (no read syscall per page) and each connection
    // caches up to 16 MiB of pages beyond what the map serves.
    pragma(&conn, "mmap_size = 1073741824")?;
    pragma(&conn, "cache_size = -16384")?;
    match role {
        Role::Writer => {
            pragma(&conn, "journal_mode = WAL")?;
            pragma(
                &conn,
                &format!("wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}"),
            )?;
        }
        Role::Reader | Role::DryRunWriter => pragma(&conn, "query_only = ON")?,
        Role::Checkpointer => {}
    }
    Ok(conn)
}

/// Runs `PRAGMA {setting}`, reading and ignoring the row some pragmas answer with.
fn pragma(conn: &Connection, setting: &str) -> Result<(), rusqlite::Error> {
    let mut stmt = conn.prepare(&format!("PRAGMA {setting}"))?;
    let mut rows = stmt.raw_query();
    while rows.next()?.is_some() {}
    Ok(())
}

/// Binds `args` to `stmt`'s parameters: `$n` and `?n` take the n-th argument, an
/// anonymous `?` the argument at its position. A `$n` parameter's index is the order of
/// its first occurrence, not n, so each is looked up by its name.
fn bind(stmt: &mut rusqlite::Statement<'_>, args: &[Arg]) -> Result<(), rusqlite::Error> {
    for index in 1..=stmt.parameter_count() {
        let position = match stmt.parameter_name(index) {
            Some(name) => name
                .get(1..)
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_owned()))?,
            None => index,
        };
        let Some(arg) = args.get(position - 1) else {
            return Err(rusqlite::Error::InvalidParameterCount(position, args.len()));
        };
        match arg {
            Arg::Text(v) => stmt.raw_bind_parameter(index, v.as_deref())?,
            Arg::Int(v) => stmt.raw_bind_parameter(index, *v)?,
            Arg::Bool(v) => stmt.raw_bind_parameter(index, *v)?,
        }
    }
    Ok(())
}

/// Runs `sql` on `conn`; returns the rows it changed.
pub(crate) fn execute(conn: &Connection, sql: &Sql) -> Result<u64, DataError> {
    // A prepared statement holds only the first statement of a text; a script without
    // arguments (DDL, a generated migration) runs statement by statement instead.
    if sql.args.is_empty() && sql.text.trim_end().trim_end_matches(';').contains(';') {
        execute_batch(conn, &sql.text)?;
        return Ok(conn.changes());
    }
    let mut stmt = conn.prepare_cached(&sql.text)?;
    bind(&mut stmt, &sql.args)?;
    if stmt.column_count() == 0 {
        return Ok(stmt.raw_execute()? as u64);
    }
    // A statement that answers rows (`RETURNING`, a pragma): step through them.
    let readonly = stmt.readonly();
    let mut rows = stmt.raw_query();
    while rows.next()?.is_some() {}
    drop(rows);
    Ok(if readonly { 0 } else { conn.changes() })
}

/// Runs `sql` on `conn` and reads each row's columns as `types` say.
pub(crate) fn fetch(
    conn: &Connection,
    sql: &Sql,
    types: &[SqlType],
) -> Result<Vec<Vec<Cell>>, DataError> {
    let mut stmt = conn.prepare_cached(&sql.text)?;
    bind(&mut stmt, &sql.args)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(types.len());
        for (i, ty) in types.iter().enumerate() {
            cells.push(cell(row, i, *ty)?);
        }
        out.push(cells);
    }
    Ok(out)
}

/// Runs a script of statements without arguments (a migration).
pub fn execute_batch(conn: &Connection, script: &str) -> Result<(), DataError> {
    conn.execute_batch(script)?;
    Ok(())
}

/// Column `i` of `row` as `ty`. A BOOLEAN is an INTEGER on SQLite; a number read as text
/// is its decimal form.
fn cell(row: &rusqlite::Row<'_>, i: usize, ty: SqlType) -> Result<Cell, rusqlite::Error> {
    let value = row.get_ref(i)?;
    let wrong = |value: ValueRef<'_>| {
        rusqlite::Error::InvalidColumnType(i, format!("column {i}"), value.data_type())
    };
    Ok(match (ty, value) {
        (_, ValueRef::Null) => Cell::Null,
        (SqlType::Text, ValueRef::Text(bytes) | ValueRef::Blob(bytes)) => {
            Cell::Text(String::from_utf8(bytes.to_vec()).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    i,
                    value.data_type(),
                    Box::new(e.utf8_error()),
                )
            })?)
        }
        (SqlType::Text, ValueRef::Integer(n)) => Cell::Text(n.to_string()),
        (SqlType::Text, ValueRef::Real(f)) => Cell::Text(f.to_string()),
        (SqlType::Int, ValueRef::Integer(n)) => Cell::Int(n),
        (SqlType::Bool, ValueRef::Integer(n)) => Cell::Bool(n != 0),
        (SqlType::Int | SqlType::Bool, other) => return Err(wrong(other)),
    })
}

/// A bounded pool of read-only connections, opened on first use and kept.
#[derive(Debug, Clone)]
pub struct Readers {
    inner: Arc<ReadersInner>,
}

#[derive(Debug)]
struct ReadersInner {
    path: PathBuf,
    busy_timeout: Duration,
    acquire_timeout: Duration,
    /// One permit per connection that may be open; a waiting reader queues here.
    permits: Arc<Semaphore>,
    /// Connections not in use.
    idle: std::sync::Mutex<Vec<Connection>>,
}

impl Readers {
    /// A pool of at most `size` readers of `path`.
    pub(crate) fn new(
        path: &Path,
        size: u32,
        busy_timeout: Duration,
        acquire_timeout: Duration,
    ) -> Self {
        Readers {
            inner: Arc::new(ReadersInner {
                path: path.to_owned(),
                busy_timeout,
                acquire_timeout,
                permits: Arc::new(Semaphore::new(size.max(1) as usize)),
                idle: std::sync::Mutex::default(),
            }),
        }
    }

    /// A reader, waiting at most `database.acquire_timeout_ms` for one to be free.
    pub async fn acquire(&self) -> Result<Reader, DataError> {
        let timeout = self.inner.acquire_timeout;
        let permit = tokio::time::timeout(timeout, self.inner.permits.clone().acquire_owned())
            .await
            .map_err(|_| DataError::AcquireTimeout {
                waited_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            })?
            .map_err(|_| DataError::NotConnected)?;
        let idle = self.inner.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => open(&self.inner.path, Role::Reader, self.inner.busy_timeout)?,
        };
        Ok(Reader {
            conn: Some(conn),
            pool: self.inner.clone(),
            _permit: permit,
        })
    }

    /// Closes the idle connections and refuses new acquires; readers in use close when
    /// they are given back.
    pub(crate) fn close(&self) {
        self.inner.permits.close();
        if let Ok(mut idle) = self.inner.idle.lock() {
            idle.clear();
        }
    }
}

/// A read-only connection out of [`Readers`], given back when dropped.
#[derive(Debug)]
pub struct Reader {
    conn: Option<Connection>,
    pool: Arc<ReadersInner>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Reader {
    type Target = Connection;

    #[allow(clippy::expect_used)]
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("a reader holds its connection until dropped")
    }
}

impl std::ops::DerefMut for Reader {
    #[allow(clippy::expect_used)]
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("a reader holds its connection until dropped")
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // A connection left inside a transaction (a body that began one and failed) would
        // pin an old snapshot of the database; it is closed instead of kept.
        if let Some(conn) = self.conn.take()
            && conn.is_autocommit()
            && !self.pool.permits.is_closed()
            && let Ok(mut idle) = self.pool.idle.lock()
        {
            idle.push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sql(text: &str, args: Vec<Arg>) -> Sql {
        Sql {
            text: text.into(),
            args,
        }
    }

    #[test]
    fn numbered_parameters_bind_by_number_not_by_first_occurrence() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("t.db"), Role::Writer, Duration::from_secs(1)).unwrap();
        execute(&conn, &sql("CREATE TABLE t (a TEXT, b INTEGER, c INTEGER)", vec![])).unwrap();
        let insert = sql(
            "INSERT INTO t (b, a, c) VALUES ($2, $1, $3)",
            vec![
                Arg::Text(Some("x".into())),
                Arg::Int(Some(7)),
                Arg::Bool(Some(true)),
            ],
        );
        assert_eq!(execute(&conn, &insert).unwrap(), 1);
        let rows = fetch(
            &conn,
            &sql(
                "SELECT a, b, c FROM t WHERE b = $2 AND a = $1",
                vec![Arg::Text(Some("x".into())), Arg::Int(Some(7))],
            ),
            &[SqlType::Text, SqlType::Int, SqlType::Bool],
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![vec![Cell::Text("x".into()), Cell::Int(7), Cell::Bool(true)]]
        );
        let returned = execute(
            &conn,
            &sql("UPDATE t SET b = b + 1 RETURNING b", vec![]),
        )
        .unwrap();
        assert_eq!(returned, 1);
        assert!(execute(&conn, &sql("SELECT $1, $2", vec![Arg::Int(None)])).is_err());
        execute(
            &conn,
            &sql("CREATE TABLE u (v TEXT); CREATE TABLE w (v TEXT);", vec![]),
        )
        .unwrap();
        let tables = fetch(
            &conn,
            &sql(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('u', 'w')",
                vec![],
            ),
            &[SqlType::Int],
        )
        .unwrap();
        assert_eq!(tables, vec![vec![Cell::Int(2)]]);
    }
}
