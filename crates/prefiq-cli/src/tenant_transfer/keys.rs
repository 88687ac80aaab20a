//! Integer keys unique across an installation rather than per tenant (the ledger's
//! `ledger_key.key`, `ledger_batch.batch` and `ledger_posting.seq`, the stock ledger's
//! `seq`, memory items' `key`): an imported tenant's keys may already be taken in the
//! target by its other tenants. When they might be, every key of the table, and every
//! column that holds one, moves up by the same amount, past the target's largest key, so
//! order and references stay as they were.

use std::collections::BTreeMap;

use prefiq_data::entity::sql::{Cell, Conn, Sql, SqlType};
use prefiq_data::transfer::{TableInfo, quote};
use serde_json::Value;

use super::{CliError, Placement, RowReader, Unpacked, data};

/// The columns of other tables (or the same one) that hold a table's global key, by the
/// key's table. A table keyed by one integer column that is not listed here still moves
/// its own keys; what holds them must be listed for it to follow.
const REFERENCES: &[(&str, &[(&str, &str)])] = &[
    (
        "ledger_key",
        &[
            ("ledger_posting", "company"),
            ("ledger_posting", "account"),
            ("ledger_posting", "period"),
            ("ledger_posting", "base"),
            ("ledger_posting", "currency"),
        ],
    ),
    ("ledger_batch", &[("ledger_posting", "batch")]),
    ("stock_ledger_entry", &[("stock_ledger_entry", "adjusts")]),
    ("memory_meta", &[("memory_cold", "key")]),
];

/// How much each (table, column) moves; absent means not at all.
pub(super) type Shifts = BTreeMap<(String, String), i64>;

/// The table's global key: its primary key when that is one integer column other than
/// `tenant_id`.
fn global_key(table: &TableInfo) -> Option<&str> {
    let [key] = table.key.as_slice() else {
        return None;
    };
    let column = table.column(key)?;
    (key != "tenant_id" && column.ty.to_ascii_lowercase().contains("int")).then_some(key.as_str())
}

/// The first cell of the first row `sql` answers, if any.
async fn first_cell(conn: &mut Conn<'_>, sql: Sql, ty: SqlType) -> Result<Option<Cell>, CliError> {
    Ok(conn
        .fetch(&sql, &[ty])
        .await
        .map_err(data)?
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next()))
}

/// The largest key the target holds (or has handed out) in `table.column`. On
/// PostgreSQL the column's sequence says it, since row-level security hides the other
/// tenants' rows from this transaction.
async fn target_max(conn: &mut Conn<'_>, table: &str, column: &str) -> Result<i64, CliError> {
    let largest = first_cell(
        conn,
        Sql::new(
            format!("SELECT MAX({}) FROM {}", quote(column), quote(table)),
            vec![],
        ),
        SqlType::Int,
    )
    .await?
    .and_then(|cell| cell.as_int())
    .unwrap_or(0);
    if let Conn::Postgres(_) = conn {
        let sequence = first_cell(
            conn,
            Sql::new(
                "SELECT pg_get_serial_sequence(quote_ident($1), $2)",
                vec![table.into(), column.into()],
            ),
            SqlType::Text,
        )
        .await?
        .and_then(Cell::into_text);
        if let Some(sequence) = sequence {
            // A sequence not yet used holds its start with `is_called` false.
            let handed_out = first_cell(
                conn,
                Sql::new(
                    format!(
                        "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {sequence}"
                    ),
                    vec![],
                ),
                SqlType::Int,
            )
            .await?
            .and_then(|cell| cell.as_int())
            .unwrap_or(0);
            return Ok(largest.max(handed_out));
        }
    }
    Ok(largest)
}

/// The shifts for the tables placed in one database, read in its import transaction.
pub(super) async fn shifts(
    conn: &mut Conn<'_>,
    unpacked: &Unpacked,
    placements: &[&Placement<'_>],
) -> Result<Shifts, CliError> {
    let mut out = Shifts::new();
    for placement in placements {
        let Some(key) = global_key(&placement.table) else {
            continue;
        };
        let mut smallest: Option<i64> = None;
        let mut reader = RowReader::open(unpacked, placement.member)?;
        loop {
            let rows = reader.chunk()?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                if let Some(n) = row.get(key).and_then(Value::as_i64) {
                    smallest = Some(smallest.map_or(n, |s| s.min(n)));
                }
            }
        }
        let Some(smallest) = smallest else {
            continue;
        };
        let largest = target_max(conn, &placement.table.name, key).await?;
        if largest < smallest {
            continue;
        }
        let shift = largest - smallest + 1;
        out.insert((placement.table.name.clone(), key.to_owned()), shift);
        for (table, columns) in REFERENCES {
            if *table == placement.table.name {
                for (holder, column) in *columns {
                    out.insert(((*holder).to_owned(), (*column).to_owned()), shift);
                }
            }
        }
    }
    Ok(out)
}

/// Moves the keys of `row` (of `table`) as `shifts` say.
pub(super) fn apply(shifts: &Shifts, table: &str, row: &mut serde_json::Map<String, Value>) {
    for ((t, column), shift) in shifts {
        if t != table {
            continue;
        }
        if let Some(value) = row.get_mut(column)
            && let Some(n) = value.as_i64()
        {
            *value = Value::from(n + shift);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn a_shift_moves_the_key_and_every_column_that_holds_it() {
        let mut shifts = Shifts::new();
        shifts.insert(("ledger_key".into(), "key".into()), 10);
        shifts.insert(("ledger_posting".into(), "account".into()), 10);
        let mut posting = json!({"seq": 1, "account": 2, "company": 3})
            .as_object()
            .cloned()
            .unwrap();
        apply(&shifts, "ledger_posting", &mut posting);
        assert_eq!(
            json!(posting),
            json!({"seq": 1, "account": 12, "company": 3})
        );
        let mut key = json!({"key": 2, "id": "x"}).as_object().cloned().unwrap();
        apply(&shifts, "ledger_key", &mut key);
        assert_eq!(key["key"], 12);
    }

    #[test]
    fn only_a_single_integer_key_other_than_the_tenant_is_global() {
        let table = |key: &[&str], ty: &str| TableInfo {
            name: "t".into(),
            columns: vec![
                prefiq_data::transfer::Column {
                    name: "tenant_id".into(),
                    ty: "TEXT".into(),
                },
                prefiq_data::transfer::Column {
                    name: "seq".into(),
                    ty: ty.into(),
                },
            ],
            key: key.iter().map(|k| (*k).to_owned()).collect(),
            always_identity: false,
        };
        assert_eq!(global_key(&table(&["seq"], "INTEGER")), Some("seq"));
        assert_eq!(global_key(&table(&["seq"], "int8")), Some("seq"));
        assert_eq!(global_key(&table(&["seq"], "TEXT")), None);
        assert_eq!(global_key(&table(&["tenant_id", "seq"], "INTEGER")), None);
    }
}
