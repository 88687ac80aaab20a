//! A statement with its arguments, run the same way on SQLite and PostgreSQL.

use prefiq::Backend;
use sqlx::Row;
use tracing::Instrument;

use crate::DataError;

/// How an argument or a selected column is typed in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    /// TEXT.
    Text,
    /// INTEGER / BIGINT.
    Int,
    /// BOOLEAN (INTEGER on SQLite).
    Bool,
    /// BLOB / BYTEA.
    Bytes,
}

/// One bound argument; `None` is a NULL of that type (PostgreSQL needs the type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// Text.
    Text(Option<String>),
    /// Integer.
    Int(Option<i64>),
    /// Boolean.
    Bool(Option<bool>),
    /// Bytes.
    Bytes(Option<Vec<u8>>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(Some(v))
    }
}

impl From<&[u8]> for Arg {
    fn from(v: &[u8]) -> Self {
        Arg::Bytes(Some(v.to_vec()))
    }
}

/// A read column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// NULL.
    Null,
    /// Text.
    Text(String),
    /// Integer.
    Int(i64),
    /// Boolean.
    Bool(bool),
    /// Bytes.
    Bytes(Vec<u8>),
}

impl Cell {
    /// The text, if this is text.
    pub fn into_text(self) -> Option<String> {
        match self {
            Cell::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The integer, if this is one (a boolean as 0 or 1).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Cell::Int(n) => Some(*n),
            Cell::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The boolean, if this is one (an integer is true when not 0).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Cell::Bool(b) => Some(*b),
            Cell::Int(n) => Some(*n != 0),
            _ => None,
        }
    }

    /// The bytes, if these are bytes.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Cell::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// SQL text with `$1`-style placeholders, and its arguments.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    /// The statement.
    pub text: String,
    /// Its arguments, in placeholder order.
    pub args: Vec<Arg>,
}

impl Sql {
    /// A statement with its arguments.
    pub fn new(text: impl Into<String>, args: Vec<Arg>) -> Self {
        Sql {
            text: text.into(),
            args,
        }
    }

    /// Appends an argument and returns its placeholder.
    pub fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }
}

/// A connection of either backend, inside or outside a transaction.
///
/// On SQLite a statement runs inline on the calling task (see [`crate::sqlite`]): the
/// methods stay `async` so that one statement shape runs on both backends.
pub enum Conn<'a> {
    /// SQLite.
    Sqlite(&'a mut rusqlite::Connection),
    /// PostgreSQL.
    Postgres(&'a mut sqlx::PgConnection),
}

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Text(v) => query.bind(v.as_deref()),
                Arg::Int(v) => query.bind(*v),
                Arg::Bool(v) => query.bind(*v),
                Arg::Bytes(v) => query.bind(v.as_deref()),
            };
        }
        query
    }};
}

macro_rules! read_row {
    ($row:expr, $types:expr) => {{
        let row = $row;
        let mut cells = Vec::with_capacity($types.len());
        for (i, ty) in $types.iter().enumerate() {
            let cell = match ty {
                SqlType::Text => row
                    .try_get::<Option<String>, _>(i)?
                    .map_or(Cell::Null, Cell::Text),
                SqlType::Int => match row.try_get::<Option<i64>, _>(i) {
                    Ok(value) => value.map_or(Cell::Null, Cell::Int),
                    // An `integer` (int4) column, such as the ledger's day numbers.
                    Err(sqlx::Error::ColumnDecode { .. }) => row
                        .try_get::<Option<i32>, _>(i)?
                        .map_or(Cell::Null, |v| Cell::Int(i64::from(v))),
                    Err(e) => Err::<Cell, _>(e)?,
                },
                SqlType::Bool => row
                    .try_get::<Option<bool>, _>(i)?
                    .map_or(Cell::Null, Cell::Bool),
                SqlType::Bytes => row
                    .try_get::<Option<Vec<u8>>, _>(i)?
                    .map_or(Cell::Null, Cell::Bytes),
            };
            cells.push(cell);
        }
        cells
    }};
}

impl Conn<'_> {
    /// The backend.
    pub fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs a statement; returns the rows it affected.
    pub async fn execute(&mut self, sql: &Sql) -> Result<u64, DataError> {
        let span = statement_span(self.backend(), &sql.text);
        Ok(match self {
            Conn::Sqlite(c) => {
                let _entered = span.enter();
                crate::sqlite::execute(c, sql)?
            }
            Conn::Postgres(c) => bind_all!(sqlx::query(&sql.text), &sql.args)
                .execute(&mut **c)
                .instrument(span)
                .await?
                .rows_affected(),
        })
    }

    /// Runs a statement of many parameters (a multi-row insert): on SQLite its `$n`
    /// placeholders become anonymous `?` with the arguments repeated in order, because
    /// SQLite finds a named or numbered parameter by a linear scan of the names, which
    /// makes binding thousands of them quadratic. The text must hold no `$` of its own.
    pub async fn execute_bulk(&mut self, sql: &Sql) -> Result<u64, DataError> {
        match self {
            Conn::Sqlite(_) => {
                let positional = positional(sql);
                self.execute(&positional).await
            }
            Conn::Postgres(_) => self.execute(sql).await,
        }
    }

    /// [`Conn::fetch`] for a statement of many parameters (a multi-row insert with
    /// `RETURNING`), with [`Conn::execute_bulk`]'s rewrite on SQLite.
    pub async fn fetch_bulk(
        &mut self,
        sql: &Sql,
        types: &[SqlType],
    ) -> Result<Vec<Vec<Cell>>, DataError> {
        match self {
            Conn::Sqlite(_) => {
                let positional = positional(sql);
                self.fetch(&positional, types).await
            }
            Conn::Postgres(_) => self.fetch(sql, types).await,
        }
    }

    /// Runs a script of statements without arguments (a migration): SQLite's
    /// `execute_batch`, PostgreSQL's simple query protocol.
    pub async fn execute_script(&mut self, script: &str) -> Result<(), DataError> {
        let span = statement_span(self.backend(), script);
        match self {
            Conn::Sqlite(c) => {
                let _entered = span.enter();
                crate::sqlite::execute_batch(c, script)
            }
            Conn::Postgres(c) => Ok(raw_script(c, script).instrument(span).await?),
        }
    }

    /// Runs a query and returns its first row, read as `types` say.
    pub async fn fetch_optional(
        &mut self,
        sql: &Sql,
        types: &[SqlType],
    ) -> Result<Option<Vec<Cell>>, DataError> {
        Ok(self.fetch(sql, types).await?.into_iter().next())
    }

    /// Runs a query and reads each row's columns as `types` say.
    pub async fn fetch(
        &mut self,
        sql: &Sql,
        types: &[SqlType],
    ) -> Result<Vec<Vec<Cell>>, DataError> {
        let mut out = Vec::new();
        let span = statement_span(self.backend(), &sql.text);
        match self {
            Conn::Sqlite(c) => {
                let _entered = span.enter();
                return crate::sqlite::fetch(c, sql, types);
            }
            Conn::Postgres(c) => {
                for row in bind_all!(sqlx::query(&sql.text), &sql.args)
                    .fetch_all(&mut **c)
                    .instrument(span)
                    .await?
                {
                    out.push(read_row!(&row, types));
                }
            }
        }
        Ok(out)
    }
}

/// The longest statement text a span carries; a bulk insert's is cut (on a character
/// boundary) so that one span stays small.
const MAX_SPAN_SQL: usize = 2048;

/// The span of one statement (only while trace export is on, and inside an operation's
/// span): the backend and the text, which holds placeholders, never values. Its duration
/// is the statement's.
fn statement_span(backend: Backend, text: &str) -> tracing::Span {
    // Outside any span (the relay's and the job runner's polling) a statement is no
    // operation's part, and a trace of its own each would bury the ones that are.
    if !prefiq::telemetry::enabled() || tracing::Span::current().is_none() {
        return tracing::Span::none();
    }
    let mut end = text.len().min(MAX_SPAN_SQL);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let verb = text
        .split_whitespace()
        .next()
        .unwrap_or("SQL")
        .to_ascii_uppercase();
    tracing::info_span!(
        "sql",
        otel.name = verb.as_str(),
        otel.kind = "client",
        db.system.name = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        },
        db.query.text = &text[..end],
    )
}

/// Runs a script on PostgreSQL. A plain function returning a boxed future, so that the
/// futures that call it stay `Send` for every lifetime (sqlx's executor bounds otherwise
/// confuse the compiler).
fn raw_script<'c>(
    conn: &'c mut sqlx::PgConnection,
    script: &'c str,
) -> futures_util::future::BoxFuture<'c, Result<(), sqlx::Error>> {
    Box::pin(async move {
        // A query without arguments runs through the simple query protocol, which takes
        // several statements.
        sqlx::Executor::execute(conn, script).await?;
        Ok(())
    })
}

/// `sql` with every `$n` replaced by `?` and the arguments in the order they occur.
fn positional(sql: &Sql) -> Sql {
    let bytes = sql.text.as_bytes();
    let mut text = String::with_capacity(sql.text.len());
    let mut args = Vec::with_capacity(sql.args.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            let start = i + 1;
            let mut end = start;
            while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            let n: usize = sql.text[start..end].parse().unwrap_or(0);
            if let Some(arg) = n.checked_sub(1).and_then(|k| sql.args.get(k)) {
                text.push_str(&sql.text[copied..i]);
                text.push('?');
                args.push(arg.clone());
                copied = end;
            }
            i = end;
        } else {
            i += 1;
        }
    }
    text.push_str(&sql.text[copied..]);
    Sql { text, args }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_placeholders_become_positional_in_order() {
        let sql = Sql {
            text: "INSERT INTO t VALUES ($1, $2, $1), ($3, $2, $1)".into(),
            args: vec![Arg::Int(Some(1)), Arg::Int(Some(2)), Arg::Int(Some(3))],
        };
        let got = positional(&sql);
        assert_eq!(got.text, "INSERT INTO t VALUES (?, ?, ?), (?, ?, ?)");
        let ints: Vec<i64> = got
            .args
            .iter()
            .map(|a| match a {
                Arg::Int(Some(v)) => *v,
                _ => 0,
            })
            .collect();
        assert_eq!(ints, vec![1, 2, 1, 3, 2, 1]);
    }
}
