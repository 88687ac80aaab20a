//! Which tables hold a tenant's rows, what their columns are, and the triggers an import
//! suspends.

use sqlx::Row as _;

use super::{TransferError, quote};
use crate::entity::sql::Conn;

/// A stored column (generated columns are left out: the database computes them).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type: PostgreSQL's `udt_name` (`int8`, `jsonb`, …) or SQLite's declared type.
    #[serde(rename = "type")]
    pub ty: String,
}

/// A base table, its stored columns and its primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// The table.
    pub name: String,
    /// Its stored columns, in order.
    pub columns: Vec<Column>,
    /// The primary key's columns (empty when it has none); reads are ordered by them.
    pub key: Vec<String>,
    /// PostgreSQL: identity columns `GENERATED ALWAYS` (an insert of their value needs
    /// `OVERRIDING SYSTEM VALUE`).
    pub always_identity: bool,
}

impl TableInfo {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Every base table with a `tenant_id` column, by name (views, virtual tables and their
/// shadow tables have none, or are not base tables).
pub async fn tenant_tables(conn: &mut Conn<'_>) -> Result<Vec<TableInfo>, TransferError> {
    let names: Vec<String> = match conn {
        Conn::Sqlite(c) => {
            let mut statement = c.prepare(
                "SELECT m.name FROM sqlite_master m WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
                 AND m.sql NOT LIKE 'CREATE VIRTUAL TABLE%' \
                 AND EXISTS (SELECT 1 FROM pragma_table_xinfo(m.name) x WHERE x.name = 'tenant_id' AND x.hidden = 0) \
                 ORDER BY m.name",
            )?;
            statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<_, _>>()?
        }
        Conn::Postgres(c) => sqlx::query_scalar::<_, String>(
            "SELECT c.table_name::text FROM information_schema.columns c \
             JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
             AND c.column_name = 'tenant_id' AND c.is_generated = 'NEVER' ORDER BY 1",
        )
        .fetch_all(&mut **c)
        .await?,
    };
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        if let Some(table) = table_info(conn, &name).await? {
            tables.push(table);
        }
    }
    Ok(tables)
}

/// The base table `name`, if it exists.
pub async fn table_info(
    conn: &mut Conn<'_>,
    name: &str,
) -> Result<Option<TableInfo>, TransferError> {
    let mut table = TableInfo {
        name: name.to_owned(),
        columns: Vec::new(),
        key: Vec::new(),
        always_identity: false,
    };
    match conn {
        Conn::Sqlite(c) => {
            let exists: i64 = c.query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |row| row.get(0),
            )?;
            if exists == 0 {
                return Ok(None);
            }
            let mut statement = c.prepare(
                "SELECT name, type, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid",
            )?;
            let mut keyed: Vec<(i64, String)> = Vec::new();
            let rows = statement.query_map([name], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })?;
            for row in rows {
                let (column, ty, pk, hidden) = row?;
                // 1: a virtual table's hidden column; 2 and 3: generated columns.
                if hidden != 0 {
                    continue;
                }
                if pk > 0 {
                    keyed.push((pk, column.clone()));
                }
                table.columns.push(Column { name: column, ty });
            }
            keyed.sort();
            table.key = keyed.into_iter().map(|(_, c)| c).collect();
        }
        Conn::Postgres(c) => {
            let rows = sqlx::query(
                "SELECT column_name::text, udt_name::text, is_generated::text, COALESCE(identity_generation::text, '') \
                 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 \
                 ORDER BY ordinal_position",
            )
            .bind(name)
            .fetch_all(&mut **c)
            .await?;
            if rows.is_empty() {
                return Ok(None);
            }
            for row in rows {
                let generated: String = row.try_get(2)?;
                if generated != "NEVER" {
                    continue;
                }
                let identity: String = row.try_get(3)?;
                table.always_identity |= identity == "ALWAYS";
                table.columns.push(Column {
                    name: row.try_get(0)?,
                    ty: row.try_get(1)?,
                });
            }
            table.key = sqlx::query_scalar::<_, String>(
                "SELECT a.attname::text FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
                 WHERE i.indrelid = to_regclass(quote_ident($1)) AND i.indisprimary \
                 ORDER BY array_position(i.indkey::int2[], a.attnum)",
            )
            .bind(name)
            .fetch_all(&mut **c)
            .await?;
        }
    }
    Ok(Some(table))
}

/// Triggers an import took out of the way, to be put back before it commits.
#[derive(Debug, Default)]
pub struct SuspendedTriggers {
    /// SQLite: the dropped triggers' `CREATE TRIGGER` statements.
    sqlite: Vec<String>,
    /// PostgreSQL: the tables whose user triggers are disabled.
    postgres: Vec<String>,
}

impl SuspendedTriggers {
    /// The triggers (SQLite) or tables (PostgreSQL) suspended.
    pub fn len(&self) -> usize {
        self.sqlite.len() + self.postgres.len()
    }

    /// Whether nothing was suspended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a trigger's text writes into one of `tables` (so the rows it would derive come
/// with the import, and running it would count them twice).
fn derives_into(body: &str, tables: &[String]) -> bool {
    let body = body.to_ascii_lowercase();
    tables.iter().any(|t| {
        let t = t.to_ascii_lowercase();
        ["insert into ", "update ", "delete from "]
            .iter()
            .any(|verb| body.contains(&format!("{verb}{t}")))
    })
}

/// In the caller's transaction, suspends the insert triggers on `tables` that write into
/// `tables` (rows the import brings itself): on SQLite they are dropped (DDL is
/// transactional there, so a failed import brings them back with the rollback), on
/// PostgreSQL `ALTER TABLE … DISABLE TRIGGER USER` (the table owner may do it; no
/// superuser is needed, unlike `session_replication_role`). Triggers that keep something
/// else (a full-text index over a table) keep running.
pub async fn suspend_triggers(
    conn: &mut Conn<'_>,
    tables: &[String],
) -> Result<SuspendedTriggers, TransferError> {
    let mut suspended = SuspendedTriggers::default();
    match conn {
        Conn::Sqlite(c) => {
            let mut found: Vec<(String, String, String)> = Vec::new();
            {
                let mut statement = c.prepare(
                    "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name",
                )?;
                let rows = statement.query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })?;
                for row in rows {
                    found.push(row?);
                }
            }
            for (name, table, sql) in found {
                let head = sql
                    .to_ascii_uppercase()
                    .split(" ON ")
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if tables.contains(&table) && head.contains("INSERT") && derives_into(&sql, tables)
                {
                    c.execute_batch(&format!("DROP TRIGGER {}", quote(&name)))?;
                    suspended.sqlite.push(sql);
                }
            }
        }
        Conn::Postgres(c) => {
            // tgtype bit 2 is INSERT.
            let rows = sqlx::query(
                "SELECT c.relname::text, p.prosrc FROM pg_trigger t \
                 JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid \
                 WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND (t.tgtype & 4) <> 0 \
                 AND c.relnamespace = to_regnamespace(current_schema())",
            )
            .fetch_all(&mut **c)
            .await?;
            for row in rows {
                let table: String = row.try_get(0)?;
                let body: String = row.try_get(1)?;
                if tables.contains(&table)
                    && derives_into(&body, tables)
                    && !suspended.postgres.contains(&table)
                {
                    sqlx::raw_sql(&format!(
                        "ALTER TABLE {} DISABLE TRIGGER USER",
                        quote(&table)
                    ))
                    .execute(&mut **c)
                    .await?;
                    suspended.postgres.push(table);
                }
            }
        }
    }
    Ok(suspended)
}

/// Puts back what [`suspend_triggers`] took out, in the same transaction.
pub async fn restore_triggers(
    conn: &mut Conn<'_>,
    suspended: SuspendedTriggers,
) -> Result<(), TransferError> {
    match conn {
        Conn::Sqlite(c) => {
            for sql in &suspended.sqlite {
                c.execute_batch(sql)?;
            }
        }
        Conn::Postgres(c) => {
            for table in &suspended.postgres {
                sqlx::raw_sql(&format!("ALTER TABLE {} ENABLE TRIGGER USER", quote(table)))
                    .execute(&mut **c)
                    .await?;
            }
        }
    }
    Ok(())
}

/// PostgreSQL: moves the sequences of `table`'s serial and identity columns past the
/// largest value now stored, since the import wrote their values itself. SQLite keeps
/// `AUTOINCREMENT` counters past explicit values by itself.
pub async fn bump_sequences(conn: &mut Conn<'_>, table: &TableInfo) -> Result<(), TransferError> {
    let Conn::Postgres(c) = conn else {
        return Ok(());
    };
    for column in &table.columns {
        let sequence: Option<String> =
            sqlx::query_scalar("SELECT pg_get_serial_sequence(quote_ident($1), $2)")
                .bind(&table.name)
                .bind(&column.name)
                .fetch_one(&mut **c)
                .await?;
        if let Some(sequence) = sequence {
            let sql = format!(
                "SELECT setval($1, GREATEST((SELECT MAX({col}) FROM {table}), (SELECT last_value FROM {sequence})))",
                col = quote(&column.name),
                table = quote(&table.name),
            );
            sqlx::query(&sql).bind(&sequence).execute(&mut **c).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_derives_into_a_table_only_when_it_writes_there() {
        let tables = vec![
            "stock_ledger_entry".to_owned(),
            "stock_ledger_month".to_owned(),
        ];
        assert!(derives_into(
            "CREATE TRIGGER x AFTER INSERT ON stock_ledger_entry BEGIN INSERT INTO stock_ledger_month VALUES (1); END",
            &tables
        ));
        assert!(!derives_into(
            "CREATE TRIGGER y AFTER INSERT ON memory_meta BEGIN INSERT INTO memory_fts VALUES (1); END",
            &tables
        ));
    }
}
