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
            // A log that restarts is cut back to this size, not kept at its largest.
            pragma(&conn, "journal_size_limit = 67108864")?;
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
/// anonymous `?` the next argument after those the text's earlier anonymous parameters
/// took (`*anonymous` of them). A `$n` parameter's index is the order of its first
/// occurrence, not n, so each is looked up by its name.
fn bind(
    stmt: &mut rusqlite::Statement<'_>,
    args: &[Arg],
    anonymous: &mut usize,
) -> Result<(), rusqlite::Error> {
    for index in 1..=stmt.parameter_count() {
        let position = match stmt.parameter_name(index) {
            Some(name) => name
                .get(1..)
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_owned()))?,
            None => {
                *anonymous += 1;
                *anonymous
            }
        };
        let Some(arg) = args.get(position - 1) else {
            return Err(rusqlite::Error::InvalidParameterCount(position, args.len()));
        };
        match arg {
            Arg::Text(v) => stmt.raw_bind_parameter(index, v.as_deref())?,
            Arg::Int(v) => stmt.raw_bind_parameter(index, *v)?,
            Arg::Bool(v) => stmt.raw_bind_parameter(index, *v)?,
            Arg::Bytes(v) => stmt.raw_bind_parameter(index, v.as_deref())?,
        }
    }
    Ok(())
}

/// The statements of `text`, split at the semicolons that end them (not those inside
/// quotes or comments). A prepared statement holds only the first statement of a text,
/// and the entity engine sends several as one (a row, its outbox event and its audit
/// record), with their arguments numbered across all of them.
fn statements(text: &str) -> Vec<&str> {
    if !text.contains(';') {
        return vec![text];
    }
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
            }
            b'[' => {
                while i < bytes.len() && bytes[i] != b']' {
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&text[start.min(text.len())..]);
    out.retain(|s| !s.trim().is_empty());
    out
}

/// Whether `text` must run as a script: a trigger's body holds semicolons of its own.
fn is_script(text: &str) -> bool {
    text.len() >= 14
        && text
            .as_bytes()
            .windows(14)
            .any(|w| w.eq_ignore_ascii_case(b"CREATE TRIGGER"))
}

/// Runs every statement of `sql` on `conn`, calling `row` for each row they answer.
fn run(
    conn: &Connection,
    sql: &Sql,
    mut row: impl FnMut(&rusqlite::Row<'_>) -> Result<(), rusqlite::Error>,
) -> Result<u64, DataError> {
    if sql.args.is_empty() && sql.text.contains(';') && is_script(&sql.text) {
        execute_batch(conn, &sql.text)?;
        return Ok(conn.changes());
    }
    let mut changed = 0;
    let mut anonymous = 0;
    for text in statements(&sql.text) {
        let mut stmt = conn.prepare_cached(text)?;
        bind(&mut stmt, &sql.args, &mut anonymous)?;
        if stmt.column_count() == 0 {
            changed += stmt.raw_execute()? as u64;
            continue;
        }
        let readonly = stmt.readonly();
        let mut rows = stmt.raw_query();
        while let Some(r) = rows.next()? {
            row(r)?;
        }
        drop(rows);
        if !readonly {
            changed += conn.changes();
        }
    }
    Ok(changed)
}

/// Runs `sql` (one statement or several) on `conn`; returns the rows it changed.
pub(crate) fn execute(conn: &Connection, sql: &Sql) -> Result<u64, DataError> {
    run(conn, sql, |_| Ok(()))
}

/// Runs `sql` on `conn` and reads each row's columns as `types` say.
pub(crate) fn fetch(
    conn: &Connection,
    sql: &Sql,
    types: &[SqlType],
) -> Result<Vec<Vec<Cell>>, DataError> {
    let mut out = Vec::new();
    run(conn, sql, |row| {
        let mut cells = Vec::with_capacity(types.len());
        for (i, ty) in types.iter().enumerate() {
            cells.push(cell(row, i, *ty)?);
        }
        out.push(cells);
        Ok(())
    })?;
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
        (SqlType::Bytes, ValueRef::Blob(bytes) | ValueRef::Text(bytes)) => {
            Cell::Bytes(bytes.to_vec())
        }
        (SqlType::Int, ValueRef::Integer(n)) => Cell::Int(n),
        (SqlType::Bool, ValueRef::Integer(n)) => Cell::Bool(n != 0),
        (SqlType::Int | SqlType::Bool | SqlType::Bytes, other) => return Err(wrong(other)),
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
        self.conn
            .as_ref()
            .expect("a reader holds its connection until dropped")
    }
}

impl std::ops::DerefMut for Reader {
    #[allow(clippy::expect_used)]
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
            .as_mut()
            .expect("a reader holds its connection until dropped")
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
        let conn = open(
            &dir.path().join("t.db"),
            Role::Writer,
            Duration::from_secs(1),
        )
        .unwrap();
        execute(
            &conn,
            &sql("CREATE TABLE t (a TEXT, b INTEGER, c INTEGER)", vec![]),
        )
        .unwrap();
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
        let returned = execute(&conn, &sql("UPDATE t SET b = b + 1 RETURNING b", vec![])).unwrap();
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
        // Several statements with arguments numbered across them, and a `;` in a literal.
        let changed = execute(
            &conn,
            &sql(
                "INSERT INTO u (v) VALUES ($2); INSERT INTO w (v) VALUES ($1 || ';'); INSERT INTO u (v) VALUES (?)",
                vec![Arg::Text(Some("a".into())), Arg::Text(Some("b".into()))],
            ),
        )
        .unwrap();
        assert_eq!(changed, 3);
        let rows = fetch(
            &conn,
            &sql("SELECT v FROM u UNION ALL SELECT v FROM w", vec![]),
            &[SqlType::Text],
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                vec![Cell::Text("b".into())],
                vec![Cell::Text("a".into())],
                vec![Cell::Text("a;".into())]
            ]
        );
        assert_eq!(
            statements("SELECT ';' -- a; b\n; /* ; */ SELECT \"x;\""),
            vec!["SELECT ';' -- a; b\n", " /* ; */ SELECT \"x;\""]
        );
    }
}
