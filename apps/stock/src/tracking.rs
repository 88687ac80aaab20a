//! Batches and serial numbers.
//!
//! - An item with `has_batch_no` moves by batch: each of its lines names a `batch` of
//!   that item, not disabled and not past its expiry on the line's posting date
//!   (`/lines/{i}/batch`, code `expired`). The stock ledger's rows carry the batch, and
//!   an issue may not take more of a batch than the warehouse holds of it (code
//!   `batch_short`) unless the item allows negative stock. Valuation stays per item and
//!   warehouse.
//! - An item with `has_serial_no` lists one serial number per unit (`serial_nos`,
//!   separated by commas or new lines). `stock_serial` keeps where each is: a receipt
//!   puts it into its warehouse (refused while it is in one, code `in_stock`), an issue
//!   or delivery takes it out of the line's source (refused when it is not there, code
//!   `delivered` when it left already), a transfer moves it. Cancelling moves it back.
//! - Lines of items without them name neither (code `not_allowed`).

use std::collections::{HashMap, HashSet};

use prefiq_data::entity::repo::{FieldError, RepoError, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};
use serde_json::Value;

use crate::entry::{Line, invalid};
use crate::rows::{rows_by_id, text_arg};
use crate::valuation::QTY_SCALE;

/// The most serial numbers one line lists.
pub const SERIALS_MAX: usize = 1_000;

/// The migration that adds batches to the stock ledger and makes the serial table.
pub fn migration() -> prefiq::Migration {
    prefiq::Migration::per_backend(
        "0003_stock_tracking",
        include_str!("tracking_sqlite.sql"),
        include_str!("tracking_postgres.sql"),
    )
}

/// The serial numbers a line lists: split on commas and new lines, trimmed.
pub(crate) fn serials_of(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_str)
        .map(|text| {
            text.split([',', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an item moves by batch and by serial number.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tracking {
    pub(crate) batches: bool,
    pub(crate) serials: bool,
}

/// The checks of batches and serial numbers that need no stock: each refusal is added
/// to `errors`.
pub(crate) async fn check_lines(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    lines: &[Line],
    tracking: &HashMap<String, Tracking>,
    posting_date: &str,
    errors: &mut Vec<FieldError>,
) -> Result<(), RepoError> {
    let batch_ids: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.batch.as_deref())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let batches = rows_by_id(
        conn,
        scope,
        "batch",
        &["item", "expiry_date", "disabled", "batch_id"],
        &batch_ids,
    )
    .await?;
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for line in lines {
        let i = line.index;
        let rule = tracking.get(&line.item).copied().unwrap_or_default();
        let mut refuse = |field: &str, code: &'static str, message: String| {
            errors.push(FieldError {
                pointer: format!("/lines/{i}/{field}"),
                code,
                message,
            });
        };
        match (&line.batch, rule.batches) {
            (None, true) => refuse(
                "batch",
                "required",
                "the item moves by batch: name the batch".into(),
            ),
            (Some(_), false) => refuse("batch", "not_allowed", "the item has no batches".into()),
            (Some(batch), true) => {
                let cell = |k: usize| batches.get(batch).and_then(|r| r.get(k).cloned().flatten());
                let name = cell(3).unwrap_or_else(|| batch.clone());
                if !batches.contains_key(batch) {
                    refuse("batch", "unknown", "there is no such batch".into());
                } else if cell(0).as_deref() != Some(line.item.as_str()) {
                    refuse(
                        "batch",
                        "other_item",
                        format!("batch {name} is of another item"),
                    );
                } else if cell(2).is_some_and(|d| d == "1" || d == "true") {
                    refuse("batch", "disabled", format!("batch {name} is disabled"));
                } else if let Some(expiry) = cell(1).filter(|e| e.as_str() < posting_date) {
                    refuse(
                        "batch",
                        "expired",
                        format!("batch {name} expired on {expiry}, before {posting_date}"),
                    );
                }
            }
            (None, false) => {}
        }
        if !rule.serials {
            if !line.serials.is_empty() {
                refuse(
                    "serial_nos",
                    "not_allowed",
                    "the item has no serial numbers".into(),
                );
            }
            continue;
        }
        let count = i64::try_from(line.serials.len()).unwrap_or(i64::MAX);
        if line.serials.len() > SERIALS_MAX || count.saturating_mul(QTY_SCALE) != line.qty {
            refuse(
                "serial_nos",
                "count",
                format!(
                    "list one serial number per unit: {} for this quantity (at most {SERIALS_MAX})",
                    line.qty as f64 / QTY_SCALE as f64
                ),
            );
            continue;
        }
        for serial in &line.serials {
            if !seen.insert((line.item.as_str(), serial.as_str())) {
                refuse(
                    "serial_nos",
                    "twice",
                    format!("serial number {serial} is listed twice"),
                );
            }
        }
    }
    Ok(())
}

fn text(value: &str) -> Arg {
    text_arg(value)
}

/// Refuses an outgoing line that takes more of its batch than its source holds, unless
/// `allow_negative` says which items may.
pub(crate) async fn check_batch_stock(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    lines: &[Line],
    allow_negative: &HashMap<String, bool>,
) -> Result<(), RepoError> {
    let mut taken: HashMap<(&str, &str, &str), i64> = HashMap::new();
    for line in lines {
        let i = line.index;
        let (Some(batch), Some(source)) = (&line.batch, &line.source) else {
            continue;
        };
        if allow_negative.get(&line.item).copied().unwrap_or(false) {
            continue;
        }
        let key = (line.item.as_str(), source.as_str(), batch.as_str());
        let before = match taken.get(&key) {
            Some(held) => *held,
            None => batch_held(conn, scope, key).await?,
        };
        if before < line.qty {
            return Err(invalid(
                format!("/lines/{i}/batch"),
                "batch_short",
                format!(
                    "the warehouse holds {} of the batch, less than {}",
                    before as f64 / QTY_SCALE as f64,
                    line.qty as f64 / QTY_SCALE as f64
                ),
            ));
        }
        taken.insert(key, before - line.qty);
    }
    Ok(())
}

/// What a warehouse holds of a batch now, by its live rows.
async fn batch_held(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    (item, warehouse, batch): (&str, &str, &str),
) -> Result<i64, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let (i, w, b) = (
        sql.arg(text(item)),
        sql.arg(text(warehouse)),
        sql.arg(text(batch)),
    );
    sql.text = format!(
        "SELECT CAST(COALESCE(SUM(e.qty_change), 0) AS BIGINT) FROM stock_ledger_entry e WHERE e.tenant_id = {tenant} AND e.item = {i} AND e.warehouse = {w} AND e.batch = {b} AND e.adjusts IS NULL"
    );
    // Reversals are included: a cancelled voucher's rows and theirs cancel out.
    Ok(conn
        .fetch(&sql, &[SqlType::Int])
        .await?
        .first()
        .and_then(|r| r.first().and_then(Cell::as_int))
        .unwrap_or(0))
}

/// Moves each line's serial numbers: out of its source and into its target on submit
/// (`undo` false), back on cancel (`undo` true).
pub(crate) async fn move_serials(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    voucher: &str,
    lines: &[Line],
    undo: bool,
) -> Result<(), RepoError> {
    for line in lines {
        let i = line.index;
        let (from, to) = if undo {
            (line.target.as_deref(), line.source.as_deref())
        } else {
            (line.source.as_deref(), line.target.as_deref())
        };
        for serial in &line.serials {
            let mut sql = Sql::default();
            let tenant = sql.arg(text(scope.tenant()));
            let (item, s, v) = (
                sql.arg(text(&line.item)),
                sql.arg(text(serial)),
                sql.arg(text(voucher)),
            );
            let target = sql.arg(Arg::Text(to.map(str::to_owned)));
            sql.text = match from {
                Some(from) => {
                    let f = sql.arg(text(from));
                    format!(
                        "UPDATE stock_serial SET warehouse = {target}, voucher_id = {v} WHERE tenant_id = {tenant} AND item = {item} AND serial_no = {s} AND warehouse = {f}"
                    )
                }
                None => format!(
                    "INSERT INTO stock_serial (tenant_id, item, serial_no, warehouse, voucher_id) VALUES ({tenant}, {item}, {s}, {target}, {v}) ON CONFLICT (tenant_id, item, serial_no) DO UPDATE SET warehouse = excluded.warehouse, voucher_id = excluded.voucher_id WHERE stock_serial.warehouse IS NULL"
                ),
            };
            if conn.execute(&sql).await? == 1 || undo {
                continue;
            }
            let pointer = format!("/lines/{i}/serial_nos");
            return Err(
                match (from, where_is(conn, scope, &line.item, serial).await?) {
                    (None, _) => invalid(
                        pointer,
                        "in_stock",
                        format!("serial number {serial} is in stock already"),
                    ),
                    (Some(_), Some(None)) => invalid(
                        pointer,
                        "delivered",
                        format!("serial number {serial} has left stock already"),
                    ),
                    (Some(_), _) => invalid(
                        pointer,
                        "not_in_warehouse",
                        format!("serial number {serial} is not in the warehouse"),
                    ),
                },
            );
        }
    }
    Ok(())
}

/// Where a serial number is: `None` when it was never received, `Some(None)` when it
/// has left stock.
async fn where_is(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    item: &str,
    serial: &str,
) -> Result<Option<Option<String>>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let (i, s) = (sql.arg(text(item)), sql.arg(text(serial)));
    sql.text = format!(
        "SELECT warehouse FROM stock_serial WHERE tenant_id = {tenant} AND item = {i} AND serial_no = {s}"
    );
    let rows = conn.fetch(&sql, &[SqlType::Text]).await?;
    Ok(rows.first().map(|r| match r.first() {
        Some(Cell::Text(w)) => Some(w.clone()),
        _ => None,
    }))
}
