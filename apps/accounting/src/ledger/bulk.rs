//! Rows of one table written in bulk: multi-row `INSERT`s of anonymous parameters on
//! SQLite, `COPY` on PostgreSQL.
//!
//! A [`Bulk`] is filled where the rows are made (the import's parser thread) and run where
//! the connection is (the writer), so building statement text and arguments costs the
//! writer nothing.

use std::fmt::Write as _;

use prefiq::Backend;
use prefiq_data::entity::repo::RepoError;
use prefiq_data::entity::sql::{Arg, Conn, Sql};

use super::invalid;

/// The most rows one multi-row `INSERT` carries. With the widest table the ledger writes
/// (27 columns) that is 27,000 parameters, under SQLite's limit of 32,766; every full
/// statement has the same text, so the driver prepares it once.
const ROWS_PER_INSERT: usize = 1_000;

/// Rows of one table, ready for the backend they were made for.
#[derive(Debug)]
pub struct Bulk {
    table: &'static str,
    columns: &'static [&'static str],
    backend: Backend,
    /// Rows pushed so far.
    rows: usize,
    /// SQLite: the arguments of the rows not yet in a statement.
    args: Vec<Arg>,
    /// SQLite: the statements made so far.
    statements: Vec<Sql>,
    /// PostgreSQL: the rows in `COPY`'s text format.
    copy: String,
}

impl Bulk {
    /// An empty set of rows of `table` with these `columns`, for `backend`.
    pub fn new(backend: Backend, table: &'static str, columns: &'static [&'static str]) -> Bulk {
        Bulk {
            table,
            columns,
            backend,
            rows: 0,
            args: Vec::new(),
            statements: Vec::new(),
            copy: String::new(),
        }
    }

    /// The number of rows pushed.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was pushed.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Adds one row: one argument per column, in the columns' order.
    pub fn push(&mut self, row: impl IntoIterator<Item = Arg>) {
        self.rows += 1;
        match self.backend {
            Backend::Postgres => {
                for (i, arg) in row.into_iter().enumerate() {
                    if i > 0 {
                        self.copy.push('\t');
                    }
                    copy_value(&mut self.copy, &arg);
                }
                self.copy.push('\n');
            }
            Backend::Sqlite => {
                self.args.extend(row);
                if self.args.len() == ROWS_PER_INSERT * self.columns.len() {
                    self.seal();
                }
            }
        }
    }

    /// Turns the rows not yet in a statement into one.
    fn seal(&mut self) {
        let width = self.columns.len();
        let rows = self.args.len() / width.max(1);
        if rows == 0 {
            return;
        }
        let mut text = format!(
            "INSERT INTO {} ({}) VALUES ",
            self.table,
            self.columns.join(", ")
        );
        let tuple = format!("({})", vec!["?"; width].join(","));
        text.reserve(rows * (tuple.len() + 1));
        for i in 0..rows {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&tuple);
        }
        self.statements.push(Sql {
            text,
            args: std::mem::take(&mut self.args),
        });
    }

    /// Writes the rows on `conn`, in the caller's transaction. Returns how many.
    ///
    /// On PostgreSQL the rows are copied into a temporary table first and inserted from
    /// there, because `COPY FROM` refuses tables under row-level security, and the insert
    /// from the copy is still held to the tenant by the table's policy.
    pub async fn run(mut self, conn: &mut Conn<'_>) -> Result<u64, RepoError> {
        if self.rows == 0 {
            return Ok(0);
        }
        let columns = self.columns.join(", ");
        match conn {
            Conn::Postgres(pg) => {
                let staging = format!("bulk_{}", self.table);
                let statement = |text: String| Sql {
                    text,
                    args: Vec::new(),
                };
                Conn::Postgres(pg)
                    .execute(&statement(format!(
                        "CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {} INCLUDING DEFAULTS INCLUDING IDENTITY) ON COMMIT DROP",
                        self.table
                    )))
                    .await?;
                let mut copy = pg
                    .copy_in_raw(&format!("COPY {staging} ({columns}) FROM STDIN"))
                    .await
                    .map_err(|e| RepoError::Database(e.into()))?;
                copy.send(self.copy.as_bytes())
                    .await
                    .map_err(|e| RepoError::Database(e.into()))?;
                copy.finish()
                    .await
                    .map_err(|e| RepoError::Database(e.into()))?;
                for text in [
                    format!(
                        "INSERT INTO {} ({columns}) SELECT {columns} FROM {staging}",
                        self.table
                    ),
                    format!("TRUNCATE {staging}"),
                ] {
                    Conn::Postgres(pg).execute(&statement(text)).await?;
                }
            }
            _ => {
                self.seal();
                for sql in &self.statements {
                    // `?` parameters already: nothing for `execute_bulk` to rewrite.
                    conn.execute(sql).await?;
                }
            }
        }
        u64::try_from(self.rows).map_err(|_| invalid("", "overflow", "too many rows"))
    }
}

/// Appends one value in `COPY`'s text format: `\N` for NULL, `t`/`f` for booleans, and
/// backslash, tab, line feed and carriage return escaped in text.
fn copy_value(out: &mut String, arg: &Arg) {
    match arg {
        Arg::Text(None) | Arg::Int(None) | Arg::Bool(None) | Arg::Bytes(None) => {
            out.push_str("\\N");
        }
        // bytea's hex form, its backslash escaped as COPY's text format wants.
        Arg::Bytes(Some(bytes)) => {
            out.push_str("\\\\x");
            for b in bytes {
                let _ = write!(out, "{b:02x}");
            }
        }
        Arg::Int(Some(i)) => {
            let _ = write!(out, "{i}");
        }
        Arg::Bool(Some(b)) => out.push(if *b { 't' } else { 'f' }),
        Arg::Text(Some(text)) => {
            for c in text.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_copy_reads_specially() {
        let mut out = String::new();
        for arg in [
            Arg::Text(Some("a\tb\\c\nd\re".into())),
            Arg::Text(None),
            Arg::Int(Some(-5)),
            Arg::Bool(Some(true)),
            Arg::Bytes(Some(vec![0x0a, 0xff])),
            Arg::Bytes(None),
        ] {
            copy_value(&mut out, &arg);
            out.push('|');
        }
        assert_eq!(out, "a\\tb\\\\c\\nd\\re|\\N|-5|t|\\\\x0aff|\\N|");
    }

    #[test]
    fn sqlite_rows_become_statements_of_at_most_a_thousand_rows() {
        let mut bulk = Bulk::new(Backend::Sqlite, "t", &["a", "b"]);
        for i in 0..2_500 {
            bulk.push([Arg::Int(Some(i)), Arg::Text(None)]);
        }
        bulk.seal();
        let rows: Vec<usize> = bulk.statements.iter().map(|s| s.args.len() / 2).collect();
        assert_eq!(rows, [1_000, 1_000, 500]);
        assert!(
            bulk.statements[0]
                .text
                .starts_with("INSERT INTO t (a, b) VALUES (?,?),(?,?)")
        );
        assert_eq!(bulk.len(), 2_500);
    }
}
