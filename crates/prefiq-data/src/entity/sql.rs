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
pub enum Conn<'a> {
    /// SQLite.
    Sqlite(&'a mut sqlx::SqliteConnection),
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
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs a statement; returns the rows it affected.
    pub async fn execute(&mut self, sql: &Sql) -> Result<u64, DataError> {
        Ok(match self {
            Conn::Sqlite(c) => bind_all!(sqlx::query(&sql.text), &sql.args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
            Conn::Postgres(c) => bind_all!(sqlx::query(&sql.text), &sql.args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
        })
    }

    /// Runs a query and reads each row's columns as `types` say.
    pub async fn fetch(
        &mut self,
        sql: &Sql,
        types: &[SqlType],
    ) -> Result<Vec<Vec<Cell>>, DataError> {
        let mut out = Vec::new();
        match self {
            Conn::Sqlite(c) => {
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
