//! The stock reports, as JSON or (with `format=csv`) CSV:
//!
//! - `GET /api/v1/stock/reports/stock-balance` (`company`, `as_of`): per item and
//!   warehouse, the quantity held and its value at the end of `as_of` (today when
//!   absent), summed from the stock ledger in one grouped query. Reversals of cancelled
//!   entries are summed too and cancel what they reverse exactly;
//! - `GET /api/v1/stock/reports/stock-ledger` (`company`, `from`, `to`, `item`,
//!   `warehouse`): the stock ledger's rows in posting order, each a movement, a
//!   reversal or a repost.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use prefiq::{Context, ErrorKind, KernelError};
use prefiq_auth::authz::{CedarAuthorizer, Resource};
use prefiq_data::entity::repo::{RepoError, Repository, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};
use prefiq_data::entity::value::{currency_scale, format_scaled};
use prefiq_http::{HttpState, Problem};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::entry::{invalid, rows_by_id};

/// Reading the stock reports.
pub const READ_REPORTS: &str = "stock.read_reports";

/// The columns of the stock balance's CSV.
pub const BALANCE_FIELDS: &[&str] = &[
    "item",
    "item_code",
    "item_name",
    "warehouse",
    "warehouse_name",
    "qty",
    "value",
];

/// A report's query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    company: String,
    as_of: Option<String>,
    format: Option<String>,
}

/// The codes and names of the items and warehouses a report's rows name.
pub(crate) struct Names {
    items: HashMap<String, Vec<Option<String>>>,
    warehouses: HashMap<String, Vec<Option<String>>>,
}

impl Names {
    /// Reads the items' codes and names and the warehouses' names of `pairs`.
    pub(crate) async fn of<'a>(
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<Names, RepoError> {
        let (item_ids, warehouse_ids): (Vec<&str>, Vec<&str>) = pairs.unzip();
        Ok(Names {
            items: rows_by_id(conn, scope, "item", &["item_code", "item_name"], &item_ids).await?,
            warehouses: rows_by_id(
                conn,
                scope,
                "warehouse",
                &["warehouse_name"],
                &warehouse_ids,
            )
            .await?,
        })
    }

    /// An item's code (`k` 0) or name (1).
    pub(crate) fn item(&self, id: &str, k: usize) -> String {
        cell(&self.items, id, k)
    }

    /// A warehouse's name.
    pub(crate) fn warehouse(&self, id: &str) -> String {
        cell(&self.warehouses, id, 0)
    }

    /// Where a row of the item and warehouse goes: by item code, then warehouse name.
    pub(crate) fn order(&self, item: &str, warehouse: &str) -> (String, String) {
        (self.item(item, 0), self.warehouse(warehouse))
    }
}

fn cell(map: &HashMap<String, Vec<Option<String>>>, id: &str, k: usize) -> String {
    map.get(id)
        .and_then(|r| r.get(k).cloned().flatten())
        .unwrap_or_default()
}

/// The caller's scope when it may do `action` on its tenant.
#[allow(clippy::result_large_err)]
pub(crate) async fn allowed(
    state: &HttpState,
    context: &Context,
    action: &str,
) -> Result<TenantScope, Problem> {
    if context.principal.is_none() {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Unauthenticated,
            "sign in first: send `Authorization: Bearer <token>`",
        )));
    }
    let scope = TenantScope::new(context).map_err(Problem::from)?;
    let authorizer = state
        .services
        .get::<CedarAuthorizer>("stock routes")
        .map_err(Problem::from)?;
    let decision = authorizer.decide(&scope, action, Resource::Tenant).await;
    if !decision.allowed {
        return Err(Problem::new(axum::http::StatusCode::FORBIDDEN)
            .with_detail(format!(
                "the action `{action}` on the tenant is not granted"
            ))
            .with_action(action));
    }
    Ok(scope)
}

/// The stock balance of a company's items per warehouse at the end of `as_of`.
pub async fn stock_balance(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &str,
    as_of: jiff::civil::Date,
) -> Result<Value, RepoError> {
    let Some(company) = accounting::ledger::load_company(conn, scope, company).await? else {
        return Err(invalid(
            "/company",
            "unknown",
            format!("there is no company `{company}`"),
        ));
    };
    let day = accounting::ledger::store::day_number(&as_of.to_string()).unwrap_or(i64::MAX);
    // After the company's latest row, its totals; before, the months before as_of's
    // from their totals and its month's rows up to it.
    let mut latest = Sql::default();
    let lt = latest.arg(Arg::Text(Some(scope.tenant().to_owned())));
    let lc = latest.arg(Arg::Text(Some(company.id.clone())));
    latest.text = format!(
        "SELECT CAST(COALESCE(MAX(last_day), 0) AS BIGINT) FROM stock_ledger_total WHERE tenant_id = {lt} AND company = {lc}"
    );
    let last_day = conn
        .fetch(&latest, &[SqlType::Int])
        .await?
        .first()
        .and_then(|r| r.first().and_then(Cell::as_int))
        .unwrap_or(i64::MAX);
    let mut sql = Sql::default();
    let tenant = sql.arg(Arg::Text(Some(scope.tenant().to_owned())));
    let c = sql.arg(Arg::Text(Some(company.id.clone())));
    sql.text = if day >= last_day {
        format!(
            "SELECT item, warehouse, qty, value FROM stock_ledger_total WHERE tenant_id = {tenant} AND company = {c}"
        )
    } else {
        let month = i64::from(as_of.year()) * 12 + i64::from(as_of.month()) - 1;
        let first = accounting::ledger::store::day_number(&as_of.first_of_month().to_string())
            .unwrap_or(i64::MIN);
        let d = sql.arg(Arg::Int(Some(day)));
        let m = sql.arg(Arg::Int(Some(month)));
        let f = sql.arg(Arg::Int(Some(first)));
        format!(
            "SELECT item, warehouse, CAST(SUM(qty) AS BIGINT), CAST(SUM(value) AS BIGINT) FROM (SELECT item, warehouse, qty, value FROM stock_ledger_month WHERE tenant_id = {tenant} AND company = {c} AND month < {m} UNION ALL SELECT item, warehouse, qty_change, stock_value_change FROM stock_ledger_entry WHERE tenant_id = {tenant} AND company = {c} AND day >= {f} AND day <= {d}) t GROUP BY item, warehouse"
        )
    };
    let rows = conn
        .fetch(
            &sql,
            &[SqlType::Text, SqlType::Text, SqlType::Int, SqlType::Int],
        )
        .await?;
    let text = |r: &[Cell], i: usize| match r.get(i) {
        Some(Cell::Text(t)) => t.clone(),
        _ => String::new(),
    };
    let mut figures: Vec<(String, String, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                text(r, 0),
                text(r, 1),
                r.get(2).and_then(Cell::as_int).unwrap_or(0),
                r.get(3).and_then(Cell::as_int).unwrap_or(0),
            )
        })
        .filter(|(_, _, qty, value)| *qty != 0 || *value != 0)
        .collect();
    let names = Names::of(
        conn,
        scope,
        figures.iter().map(|f| (f.0.as_str(), f.1.as_str())),
    )
    .await?;
    figures.sort_by_key(|f| names.order(&f.0, &f.1));
    let scale = currency_scale(&company.base_currency);
    let (mut total_qty, mut total_value) = (0i64, 0i64);
    let out: Vec<Value> = figures
        .iter()
        .map(|(item, warehouse, qty, value)| {
            total_qty = total_qty.saturating_add(*qty);
            total_value = total_value.saturating_add(*value);
            json!({
                "item": item,
                "item_code": names.item(item, 0),
                "item_name": names.item(item, 1),
                "warehouse": warehouse,
                "warehouse_name": names.warehouse(warehouse),
                "qty": format_scaled(*qty, 3),
                "value": format_scaled(*value, scale),
            })
        })
        .collect();
    Ok(json!({
        "company": company.id,
        "currency": company.base_currency,
        "as_of": as_of.to_string(),
        "rows": out,
        "total_value": format_scaled(total_value, scale),
    }))
}

/// The columns of the stock ledger's CSV.
pub const LEDGER_FIELDS: &[&str] = &[
    "seq",
    "posting_date",
    "kind",
    "voucher_type",
    "voucher_id",
    "voucher_line",
    "item",
    "warehouse",
    "qty_change",
    "incoming_rate",
    "valuation_rate",
    "qty_after",
    "stock_value_after",
    "stock_value_change",
];

/// The most rows the stock ledger answers: past it, narrow the dates.
pub const LEDGER_ROWS_MAX: usize = 100_000;

/// The stock ledger report's query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    company: String,
    from: Option<String>,
    to: Option<String>,
    item: Option<String>,
    warehouse: Option<String>,
    format: Option<String>,
}

/// The stock ledger of a company between two dates (inclusive), in posting order,
/// optionally of one item and one warehouse: every row, reversals and reposts too.
pub async fn stock_ledger(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    query: &LedgerQuery,
    from: Option<jiff::civil::Date>,
    to: Option<jiff::civil::Date>,
) -> Result<Value, RepoError> {
    let Some(company) = accounting::ledger::load_company(conn, scope, &query.company).await? else {
        return Err(invalid(
            "/company",
            "unknown",
            format!("there is no company `{}`", query.company),
        ));
    };
    let day = |d: Option<jiff::civil::Date>| {
        d.and_then(|d| accounting::ledger::store::day_number(&d.to_string()))
    };
    let mut sql = Sql::default();
    let tenant = sql.arg(Arg::Text(Some(scope.tenant().to_owned())));
    let c = sql.arg(Arg::Text(Some(company.id.clone())));
    let mut filters = String::new();
    if let Some(from) = day(from) {
        filters.push_str(&format!(" AND day >= {}", sql.arg(Arg::Int(Some(from)))));
    }
    if let Some(to) = day(to) {
        filters.push_str(&format!(" AND day <= {}", sql.arg(Arg::Int(Some(to)))));
    }
    for (column, value) in [("item", &query.item), ("warehouse", &query.warehouse)] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            let v = sql.arg(Arg::Text(Some(value.to_owned())));
            filters.push_str(&format!(" AND {column} = {v}"));
        }
    }
    let limit = sql.arg(Arg::Int(Some(
        i64::try_from(LEDGER_ROWS_MAX + 1).unwrap_or(i64::MAX),
    )));
    sql.text = format!(
        "SELECT seq, posting_date, is_reversal, adjusts, voucher_type, voucher_id, voucher_line, item, warehouse, qty_change, incoming_rate, valuation_rate, qty_after, stock_value_after, stock_value_change FROM stock_ledger_entry WHERE tenant_id = {tenant} AND company = {c}{filters} ORDER BY day, seq LIMIT {limit}"
    );
    use SqlType::{Int, Text};
    let types = [
        Int, Text, Int, Int, Text, Text, Int, Text, Text, Int, Int, Int, Int, Int, Int,
    ];
    let rows = conn.fetch(&sql, &types).await?;
    if rows.len() > LEDGER_ROWS_MAX {
        return Err(invalid(
            "/to",
            "too_many_rows",
            format!("more than {LEDGER_ROWS_MAX} rows; narrow the dates"),
        ));
    }
    let scale = currency_scale(&company.base_currency);
    let out: Vec<Value> = rows
        .iter()
        .map(|r| {
            let n = |i: usize| r.get(i).and_then(Cell::as_int);
            let t = |i: usize| match r.get(i) {
                Some(Cell::Text(s)) => s.clone(),
                _ => String::new(),
            };
            let money = |i: usize| format_scaled(n(i).unwrap_or(0), scale);
            let kind = if n(2) == Some(1) {
                "reversal"
            } else if n(3).is_some() {
                "repost"
            } else {
                "movement"
            };
            json!({
                "seq": n(0),
                "posting_date": t(1),
                "kind": kind,
                "adjusts": n(3),
                "voucher_type": t(4),
                "voucher_id": t(5),
                "voucher_line": n(6),
                "item": t(7),
                "warehouse": t(8),
                "qty_change": format_scaled(n(9).unwrap_or(0), 3),
                "incoming_rate": money(10),
                "valuation_rate": money(11),
                "qty_after": format_scaled(n(12).unwrap_or(0), 3),
                "stock_value_after": money(13),
                "stock_value_change": money(14),
            })
        })
        .collect();
    Ok(json!({
        "company": company.id,
        "currency": company.base_currency,
        "rows": out,
    }))
}

#[allow(clippy::result_large_err)]
pub(crate) fn check_format(format: Option<&str>) -> Result<(), Problem> {
    if matches!(format, None | Some("json" | "csv")) {
        Ok(())
    } else {
        Err(Problem::from(invalid(
            "/format",
            "unknown_format",
            "`format` is `json` or `csv`",
        )))
    }
}

#[allow(clippy::result_large_err)]
pub(crate) fn date(value: Option<&str>, field: &str) -> Result<Option<jiff::civil::Date>, Problem> {
    value
        .map(|text| {
            text.parse::<jiff::civil::Date>().map_err(|_| {
                Problem::from(invalid(
                    format!("/{field}"),
                    "wrong_type",
                    format!("`{field}` is a date such as 2026-12-31"),
                ))
            })
        })
        .transpose()
}

pub(crate) fn answer(report: Value, format: Option<&str>, fields: &[&str]) -> Response {
    if format == Some("csv") {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            accounting::reports::to_csv(&report, fields),
        )
            .into_response()
    } else {
        Json(report).into_response()
    }
}

/// `GET /api/v1/stock/reports/stock-balance`.
pub async fn stock_balance_report(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, Problem> {
    let scope = allowed(&state, &context, READ_REPORTS).await?;
    check_format(query.format.as_deref())?;
    let as_of = date(query.as_of.as_deref(), "as_of")?.unwrap_or_else(|| jiff::Zoned::now().date());
    let repository = state
        .services
        .get::<Repository>("stock reports")
        .map_err(Problem::from)?;
    let s = scope.clone();
    let company = query.company.clone();
    let report = repository
        .read(
            &scope,
            Box::new(move |conn| {
                let (s, company) = (s.clone(), company.clone());
                Box::pin(async move { stock_balance(conn, &s, &company, as_of).await })
            }),
        )
        .await
        .map_err(Problem::from)?;
    Ok(answer(report, query.format.as_deref(), BALANCE_FIELDS))
}

/// `GET /api/v1/stock/reports/stock-ledger`.
pub async fn stock_ledger_report(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<LedgerQuery>,
) -> Result<Response, Problem> {
    let scope = allowed(&state, &context, READ_REPORTS).await?;
    check_format(query.format.as_deref())?;
    let from = date(query.from.as_deref(), "from")?;
    let to = date(query.to.as_deref(), "to")?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(Problem::from(invalid(
            "/from",
            "after_to",
            "`from` is on or before `to`",
        )));
    }
    let repository = state
        .services
        .get::<Repository>("stock reports")
        .map_err(Problem::from)?;
    let s = scope.clone();
    let format = query.format.clone();
    let query = Arc::new(query);
    let report = repository
        .read(
            &scope,
            Box::new(move |conn| {
                let (s, query) = (s.clone(), query.clone());
                Box::pin(async move { stock_ledger(conn, &s, &query, from, to).await })
            }),
        )
        .await
        .map_err(Problem::from)?;
    Ok(answer(report, format.as_deref(), LEDGER_FIELDS))
}
