//! The stock ledger: `stock_ledger_entry`, an append-only table made by the module's
//! migration, one row per line and warehouse a submitted stock entry moves.
//!
//! A row holds the item, warehouse, posting date (and its day number), the voucher and
//! line it comes from, the quantity change (thousandths), the incoming rate (minor units
//! per unit, on rows that bring stock in), and the valuation rate, quantity and stock
//! value after it, with the value it moved. Nothing updates or deletes a row: a cancel
//! appends reversing rows (`is_reversal = 1`) of the same date that move back exactly
//! what the voucher moved. Posting order is the day, then the row's key.
//!
//! A backdated movement does not change the rows after it: repost rows (`adjusts` =
//! the key of the row they correct, quantity change zero) add the corrections of their
//! values ([`crate::repost`]). A reversal's figures after it are those before the row it
//! reverses, as that row was first written.
//!
//! A bin (item and warehouse) is valued by replaying its rows in posting order through
//! [`crate::valuation::Bin`], each with its value as reposts left it, leaving out the
//! rows of cancelled vouchers and their reversals (which cancel out exactly). The stock
//! value at a date is the sum of `stock_value_change` up to it, reversals and reposts
//! included.

use prefiq::Migration;
use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};

use crate::valuation::{Bin, Method, Movement};

/// The migration that makes the stock ledger, after the module's entity tables.
pub fn migration() -> Migration {
    Migration::per_backend(
        "0001_stock_ledger",
        include_str!("ledger_sqlite.sql"),
        include_str!("ledger_postgres.sql"),
    )
}

/// The migration that keeps the stock ledger's monthly totals, for the stock balance.
pub fn month_migration() -> Migration {
    Migration::per_backend(
        "0004_stock_ledger_month",
        include_str!("month_sqlite.sql"),
        include_str!("month_postgres.sql"),
    )
}

/// One row of the stock ledger, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// The company id.
    pub company: String,
    /// The item id.
    pub item: String,
    /// The warehouse id.
    pub warehouse: String,
    /// `YYYY-MM-DD`.
    pub posting_date: String,
    /// Days since 1970-01-01.
    pub day: i64,
    /// The voucher's type (`Stock Entry`, `Delivery Note`, `Purchase Receipt`).
    pub voucher_type: String,
    /// The voucher's id.
    pub voucher_id: String,
    /// The index of the voucher's line.
    pub voucher_line: i64,
    /// It reverses a row of a cancelled voucher.
    pub is_reversal: bool,
    /// The batch it moves, for an item that has batches.
    pub batch: Option<String>,
    /// A repost row: the key of the row whose value it corrects (its quantity change is
    /// zero, its value change the correction).
    pub adjusts: Option<i64>,
    /// Thousandths in (positive) or out (negative).
    pub qty_change: i64,
    /// Minor units per unit of what came in; zero on rows that take stock out.
    pub incoming_rate: i64,
    /// The valuation rate after the row.
    pub valuation_rate: i64,
    /// Thousandths held after the row.
    pub qty_after: i64,
    /// The stock value after the row, minor units.
    pub stock_value_after: i64,
    /// The value the row moved: positive in, negative out.
    pub stock_value_change: i64,
}

fn text(value: &str) -> Arg {
    Arg::Text(Some(value.to_owned()))
}

fn int(value: i64) -> Arg {
    Arg::Int(Some(value))
}

/// Appends rows, in the caller's transaction.
pub async fn append(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    rows: &[LedgerRow],
    now: &str,
) -> Result<(), RepoError> {
    for chunk in rows.chunks(200) {
        let mut sql = Sql::default();
        let mut values = Vec::with_capacity(chunk.len());
        for r in chunk {
            let cells = [
                sql.arg(text(scope.tenant())),
                sql.arg(text(&r.company)),
                sql.arg(text(&r.item)),
                sql.arg(text(&r.warehouse)),
                sql.arg(text(&r.posting_date)),
                sql.arg(int(r.day)),
                sql.arg(text(&r.voucher_type)),
                sql.arg(text(&r.voucher_id)),
                sql.arg(int(r.voucher_line)),
                sql.arg(int(i64::from(r.is_reversal))),
                sql.arg(Arg::Int(r.adjusts)),
                sql.arg(int(r.qty_change)),
                sql.arg(int(r.incoming_rate)),
                sql.arg(int(r.valuation_rate)),
                sql.arg(int(r.qty_after)),
                sql.arg(int(r.stock_value_after)),
                sql.arg(int(r.stock_value_change)),
                sql.arg(text(now)),
                sql.arg(Arg::Text(r.batch.clone())),
            ];
            values.push(format!("({})", cells.join(", ")));
        }
        sql.text = format!(
            "INSERT INTO stock_ledger_entry (tenant_id, company, item, warehouse, posting_date, day, voucher_type, voucher_id, voucher_line, is_reversal, adjusts, qty_change, incoming_rate, valuation_rate, qty_after, stock_value_after, stock_value_change, created_at, batch) VALUES {}",
            values.join(", ")
        );
        conn.execute(&sql).await?;
    }
    Ok(())
}

/// The condition that keeps the movements of live vouchers: not their repost rows, and
/// nothing of cancelled vouchers and their reversals.
const LIVE: &str = "e.is_reversal = 0 AND e.adjusts IS NULL AND NOT EXISTS (SELECT 1 FROM stock_ledger_entry r WHERE r.tenant_id = e.tenant_id AND r.voucher_id = e.voucher_id AND r.is_reversal = 1)";

/// A row's value as reposts left it: its own and its repost rows' corrections.
const VALUE: &str = "e.stock_value_change + COALESCE((SELECT SUM(a.stock_value_change) FROM stock_ledger_entry a WHERE a.tenant_id = e.tenant_id AND a.adjusts = e.seq), 0)";

/// A live movement of a bin, with its value as reposts left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinRow {
    /// The row's key.
    pub seq: i64,
    /// The company id.
    pub company: String,
    /// `YYYY-MM-DD`.
    pub posting_date: String,
    /// Its day number.
    pub day: i64,
    /// The voucher's type.
    pub voucher_type: String,
    /// The voucher's id.
    pub voucher_id: String,
    /// The voucher's line.
    pub voucher_line: i64,
    /// Thousandths in or out.
    pub qty_change: i64,
    /// The value it moves now.
    pub value: i64,
}

/// The live movements of a bin in posting order, up to `up_to_day` when given.
pub async fn bin_rows(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    item: &str,
    warehouse: &str,
    up_to_day: Option<i64>,
) -> Result<Vec<BinRow>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let i = sql.arg(text(item));
    let w = sql.arg(text(warehouse));
    let bound = match up_to_day {
        Some(day) => format!(" AND e.day <= {}", sql.arg(int(day))),
        None => String::new(),
    };
    // One pass over the bin's index: its repost rows summed per corrected row, and the
    // vouchers it has reversals of (a reversal is in the bin of the row it reverses).
    let bin = |t: &str| format!("{t}tenant_id = {tenant} AND {t}item = {i} AND {t}warehouse = {w}");
    sql.text = format!(
        "SELECT e.seq, e.company, e.posting_date, e.day, e.voucher_id, e.voucher_line, e.qty_change, CAST(e.stock_value_change + COALESCE(a.total, 0) AS BIGINT), e.voucher_type FROM stock_ledger_entry e LEFT JOIN (SELECT adjusts, SUM(stock_value_change) AS total FROM stock_ledger_entry WHERE {} AND adjusts IS NOT NULL GROUP BY adjusts) a ON a.adjusts = e.seq WHERE {}{bound} AND e.is_reversal = 0 AND e.adjusts IS NULL AND e.voucher_id NOT IN (SELECT voucher_id FROM stock_ledger_entry WHERE {} AND is_reversal = 1) ORDER BY e.day, e.seq",
        bin(""),
        bin("e."),
        bin("")
    );
    use SqlType::{Int, Text};
    let rows = conn
        .fetch(&sql, &[Int, Text, Text, Int, Text, Int, Int, Int, Text])
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let n = |i: usize| r.get(i).and_then(Cell::as_int).unwrap_or(0);
            let t = |i: usize| match r.get(i) {
                Some(Cell::Text(s)) => s.clone(),
                _ => String::new(),
            };
            BinRow {
                seq: n(0),
                company: t(1),
                posting_date: t(2),
                day: n(3),
                voucher_type: t(8),
                voucher_id: t(4),
                voucher_line: n(5),
                qty_change: n(6),
                value: n(7),
            }
        })
        .collect())
}

/// The movement a row replays as.
pub fn movement_of(qty_change: i64, value: i64) -> Option<Movement> {
    if qty_change > 0 {
        Some(Movement::Receipt {
            qty: qty_change,
            value,
        })
    } else if qty_change < 0 {
        Some(Movement::Issue { qty: -qty_change })
    } else {
        None
    }
}

/// The bin of an item in a warehouse as its live rows up to `up_to_day` (all when
/// `None`) leave it.
pub async fn load_bin(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    item: &str,
    warehouse: &str,
    rule: (Method, bool),
    up_to_day: Option<i64>,
) -> Result<Bin, RepoError> {
    // History is replayed as it was written: a shortfall an item allowed then is not
    // refused now.
    let mut bin = Bin::new(rule.0, true);
    for row in bin_rows(conn, scope, item, warehouse, up_to_day).await? {
        let Some(movement) = movement_of(row.qty_change, row.value) else {
            continue;
        };
        bin.apply(movement).map_err(|e| {
            crate::entry::invalid(
                "/lines",
                "overflow",
                format!("the stock ledger of the item cannot be replayed: {e}"),
            )
        })?;
    }
    bin.set_allow_negative(rule.1);
    Ok(bin)
}

/// Whether the bin has live rows posted after `day`, or (with `after_seq`) on `day` after
/// that row.
pub async fn later_rows(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    item: &str,
    warehouse: &str,
    day: i64,
    after_seq: Option<i64>,
) -> Result<bool, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let i = sql.arg(text(item));
    let w = sql.arg(text(warehouse));
    let d = sql.arg(int(day));
    let same_day = match after_seq {
        Some(seq) => format!(" OR (e.day = {d} AND e.seq > {})", sql.arg(int(seq))),
        None => String::new(),
    };
    sql.text = format!(
        "SELECT 1 FROM stock_ledger_entry e WHERE e.tenant_id = {tenant} AND e.item = {i} AND e.warehouse = {w} AND (e.day > {d}{same_day}) AND {LIVE} LIMIT 1"
    );
    Ok(!conn.fetch(&sql, &[SqlType::Int]).await?.is_empty())
}

/// A voucher's own rows (not reversals or reposts) with their keys, in the order
/// written; each row's value change is as reposts left it.
pub async fn voucher_rows(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    voucher_id: &str,
) -> Result<Vec<(i64, LedgerRow)>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let v = sql.arg(text(voucher_id));
    sql.text = format!(
        "SELECT e.seq, e.company, e.item, e.warehouse, e.posting_date, e.day, e.voucher_type, e.voucher_line, e.qty_change, e.incoming_rate, e.valuation_rate, e.qty_after, e.stock_value_after, CAST({VALUE} AS BIGINT), e.batch FROM stock_ledger_entry e WHERE e.tenant_id = {tenant} AND e.voucher_id = {v} AND e.is_reversal = 0 AND e.adjusts IS NULL ORDER BY e.seq"
    );
    use SqlType::{Int, Text};
    let types = [
        Int, Text, Text, Text, Text, Int, Text, Int, Int, Int, Int, Int, Int, Int, Text,
    ];
    let rows = conn.fetch(&sql, &types).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let n = |i: usize| r.get(i).and_then(Cell::as_int).unwrap_or(0);
            let t = |i: usize| match r.get(i) {
                Some(Cell::Text(s)) => s.clone(),
                _ => String::new(),
            };
            (
                n(0),
                LedgerRow {
                    company: t(1),
                    item: t(2),
                    warehouse: t(3),
                    posting_date: t(4),
                    day: n(5),
                    voucher_type: t(6),
                    voucher_id: voucher_id.to_owned(),
                    voucher_line: n(7),
                    is_reversal: false,
                    batch: match r.get(14) {
                        Some(Cell::Text(b)) => Some(b.clone()),
                        _ => None,
                    },
                    adjusts: None,
                    qty_change: n(8),
                    incoming_rate: n(9),
                    valuation_rate: n(10),
                    qty_after: n(11),
                    stock_value_after: n(12),
                    stock_value_change: n(13),
                },
            )
        })
        .collect())
}

/// Whether the voucher's rows were reversed already.
pub async fn reversed(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    voucher_id: &str,
) -> Result<bool, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let v = sql.arg(text(voucher_id));
    sql.text = format!(
        "SELECT 1 FROM stock_ledger_entry WHERE tenant_id = {tenant} AND voucher_id = {v} AND is_reversal = 1 LIMIT 1"
    );
    Ok(!conn.fetch(&sql, &[SqlType::Int]).await?.is_empty())
}

/// The reversing row of `row`: it moves back exactly what `row` moved (reposts
/// included), and leaves the bin as it was before `row`.
pub fn reversal_of(row: &LedgerRow) -> LedgerRow {
    let qty_after = row.qty_after - row.qty_change;
    let stock_value_after = row.stock_value_after - row.stock_value_change;
    let valuation_rate = if qty_after > 0 {
        crate::valuation::div_round(
            i128::from(stock_value_after) * i128::from(crate::valuation::QTY_SCALE),
            i128::from(qty_after),
        )
        .unwrap_or(row.valuation_rate)
    } else {
        row.valuation_rate
    };
    LedgerRow {
        is_reversal: true,
        qty_change: -row.qty_change,
        incoming_rate: 0,
        valuation_rate,
        qty_after,
        stock_value_after,
        stock_value_change: -row.stock_value_change,
        ..row.clone()
    }
}
