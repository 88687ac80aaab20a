//! A statement with its arguments, run the same way on SQLite and PostgreSQL.

use prefiq::Backend;
use sqlx::Row;

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
    /// SQLite through sqlx: the writer, until it moves to rusqlite.
    #[doc(hidden)]
    SqliteSqlx(&'a mut sqlx::SqliteConnection),
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
                SqlType::Int => row
                    .try_get::<Option<i64>, _>(i)?
                    .map_or(Cell::Null, Cell::Int),
                SqlType::Bool => row
                    .try_get::<Option<bool>, _>(i)?
                    .map_or(Cell::Null, Cell::Bool),
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
            Conn::Sqlite(_) | Conn::SqliteSqlx(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs a statement; returns the rows it affected.
    pub async fn execute(&mut self, sql: &Sql) -> Result<u64, DataError> {
        Ok(match self {
            Conn::Sqlite(c) => crate::sqlite::execute(c, sql)?,
            Conn::SqliteSqlx(c) => bind_all!(sqlx::query(&sql.text), &sql.args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
            Conn::Postgres(c) => bind_all!(sqlx::query(&sql.text), &sql.args)
                .execute(&mut **c)
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
            Conn::Sqlite(_) | Conn::SqliteSqlx(_) => {
                let positional = positional(sql);
                self.execute(&positional).await
            }
            Conn::Postgres(_) => self.execute(sql).await,
        }
    }

    /// Runs a query and reads each row's columns as `types` say.
    pub async fn fetch(
        &mut self,
        sql: &Sql,
        types: &[SqlType],
    ) -> Result<Vec<Vec<Cell>>, DataError> {
        let mut out = Vec::new();
        match self {
            Conn::Sqlite(c) => return crate::sqlite::fetch(c, sql, types),
            Conn::SqliteSqlx(c) => {
                for row in bind_all!(sqlx::query(&sql.text), &sql.args)
                    .fetch_all(&mut **c)
                    .await?
                {
                    out.push(read_row!(&row, types));
                }
            }
            Conn::Postgres(c) => {
                for row in bind_all!(sqlx::query(&sql.text), &sql.args)
                    .fetch_all(&mut **c)
                    .await?
                {
                    out.push(read_row!(&row, types));
                }
            }
        }
        Ok(out)
    }
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
