//! The bin cache: `stock_bin` keeps each item and warehouse's state after all its live
//! stock ledger rows (quantity, value, rate and FIFO queue), with the last posting day
//! it has seen and the valuation method it was valued by.
//!
//! A submit that posts on or after that day values from the cached state, so its cost
//! does not grow with the bin's history. Anything else replays the ledger: a backdated
//! movement, a bin with no row here (data from before the cache, or a dropped table), or
//! a method that changed. Every write that changes a bin writes its state back in the
//! same transaction, so the cache never disagrees with the ledger it is derived from; the
//! ledger stays the record, and the cache can be dropped and rebuilt by replaying it.

use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};

use crate::valuation::{Bin, BinState, Method};

/// A bin as cached.
#[derive(Debug, Clone)]
pub struct CachedBin {
    /// The method it was valued by.
    pub method: Option<Method>,
    /// The latest posting day among the rows it has seen.
    pub last_day: i64,
    /// Its state after them.
    pub state: BinState,
}

fn text(value: &str) -> Arg {
    Arg::Text(Some(value.to_owned()))
}

/// The cached state of a bin, if there is a readable one.
pub async fn load(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    item: &str,
    warehouse: &str,
) -> Result<Option<CachedBin>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let i = sql.arg(text(item));
    let w = sql.arg(text(warehouse));
    sql.text = format!(
        "SELECT method, last_day, qty, value, rate, layers FROM stock_bin WHERE tenant_id = {tenant} AND item = {i} AND warehouse = {w}"
    );
    use SqlType::{Int, Text};
    let rows = conn.fetch(&sql, &[Text, Int, Int, Int, Int, Text]).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let t = |k: usize| match row.get(k) {
        Some(Cell::Text(s)) => s.as_str(),
        _ => "",
    };
    let n = |k: usize| row.get(k).and_then(Cell::as_int).unwrap_or(0);
    // A queue that does not read back is treated as no cache: the ledger is replayed.
    let Some(layers) = BinState::parse_layers(t(5)) else {
        return Ok(None);
    };
    Ok(Some(CachedBin {
        method: Method::of(Some(t(0))),
        last_day: n(1),
        state: BinState {
            qty: n(2),
            value: n(3),
            rate: n(4),
            layers,
        },
    }))
}

/// Writes a bin's state after all its live rows, `last_day` the latest of their days.
pub async fn store(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    (item, warehouse, company): (&str, &str, &str),
    method: Method,
    last_day: i64,
    bin: &Bin,
) -> Result<(), RepoError> {
    let state = bin.state();
    let mut sql = Sql::default();
    let cells = [
        sql.arg(text(scope.tenant())),
        sql.arg(text(item)),
        sql.arg(text(warehouse)),
        sql.arg(text(company)),
        sql.arg(text(method.name())),
        sql.arg(Arg::Int(Some(last_day))),
        sql.arg(Arg::Int(Some(state.qty))),
        sql.arg(Arg::Int(Some(state.value))),
        sql.arg(Arg::Int(Some(state.rate))),
        sql.arg(text(&state.layers_text())),
    ];
    sql.text = format!(
        "INSERT INTO stock_bin (tenant_id, item, warehouse, company, method, last_day, qty, value, rate, layers) VALUES ({}) ON CONFLICT (tenant_id, item, warehouse) DO UPDATE SET company = excluded.company, method = excluded.method, last_day = excluded.last_day, qty = excluded.qty, value = excluded.value, rate = excluded.rate, layers = excluded.layers",
        cells.join(", ")
    );
    conn.execute(&sql).await?;
    Ok(())
}

/// Drops a bin's cached state: it has no live rows left.
pub async fn forget(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    item: &str,
    warehouse: &str,
) -> Result<(), RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let i = sql.arg(text(item));
    let w = sql.arg(text(warehouse));
    sql.text = format!(
        "DELETE FROM stock_bin WHERE tenant_id = {tenant} AND item = {i} AND warehouse = {w}"
    );
    conn.execute(&sql).await?;
    Ok(())
}

/// The migration that makes the bin cache, after the stock ledger's.
pub fn migration() -> prefiq::Migration {
    prefiq::Migration::per_backend(
        "0002_stock_bin",
        include_str!("bin_sqlite.sql"),
        include_str!("bin_postgres.sql"),
    )
}
