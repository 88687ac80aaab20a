//! `GET /api/v1/stock/reports/gross-profit` (`company`, `from`, `to`, `format`): trade's
//! gross profit by item, with the real cost of goods sold of stock items: what the
//! stock ledger's delivery-note rows of the period cost (FIFO or moving average, with
//! their reposts, and cancelled deliveries netting out). Items without deliveries in
//! the period keep trade's average purchase price; each row names its basis.
//!
//! Revenue is invoiced in the period and cost delivered in it, so an order delivered
//! in one period and invoiced in the next counts its cost and revenue apart.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use prefiq::Context;
use prefiq_data::entity::repo::{RepoError, Repository, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};
use prefiq_http::{HttpState, Problem};
use serde::Deserialize;

use crate::entry::invalid;
use crate::reports::{READ_REPORTS, allowed, answer, check_format, date};
use crate::voucher::DELIVERY_NOTE;

/// The query of the gross profit report.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfitQuery {
    company: String,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

/// What the delivery notes of the period cost, per item, in minor units.
pub async fn cost_of_goods_sold(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &str,
    (from, to): (Option<jiff::civil::Date>, Option<jiff::civil::Date>),
) -> Result<HashMap<String, i64>, RepoError> {
    let day = |d: Option<jiff::civil::Date>| {
        d.and_then(|d| accounting::ledger::store::day_number(&d.to_string()))
    };
    let mut sql = Sql::default();
    let tenant = sql.arg(Arg::Text(Some(scope.tenant().to_owned())));
    let c = sql.arg(Arg::Text(Some(company.to_owned())));
    let v = sql.arg(Arg::Text(Some(DELIVERY_NOTE.voucher_type.to_owned())));
    let mut bounds = String::new();
    if let Some(from) = day(from) {
        bounds.push_str(&format!(" AND day >= {}", sql.arg(Arg::Int(Some(from)))));
    }
    if let Some(to) = day(to) {
        bounds.push_str(&format!(" AND day <= {}", sql.arg(Arg::Int(Some(to)))));
    }
    sql.text = format!(
        "SELECT item, CAST(-SUM(stock_value_change) AS BIGINT) FROM stock_ledger_entry WHERE tenant_id = {tenant} AND company = {c} AND voucher_type = {v}{bounds} GROUP BY item"
    );
    let rows = conn.fetch(&sql, &[SqlType::Text, SqlType::Int]).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match (r.first(), r.get(1).and_then(Cell::as_int)) {
            (Some(Cell::Text(item)), Some(cost)) => Some((item.clone(), cost)),
            _ => None,
        })
        .collect())
}

/// `GET /api/v1/stock/reports/gross-profit`.
pub async fn gross_profit_report(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<ProfitQuery>,
) -> Result<Response, Problem> {
    let scope = allowed(&state, &context, READ_REPORTS).await?;
    check_format(query.format.as_deref())?;
    let from = date(query.from.as_deref(), "from")?;
    let to = date(query.to.as_deref(), "to")?;
    let repository = state
        .services
        .get::<Repository>("stock reports")
        .map_err(Problem::from)?;
    let company = query.company.clone();
    let s = scope.clone();
    let report = repository
        .read(
            &scope,
            Box::new(move |conn| {
                let (s, company) = (s.clone(), company.clone());
                Box::pin(async move {
                    let Some(found) = accounting::ledger::load_company(conn, &s, &company).await?
                    else {
                        return Err(invalid(
                            "/company",
                            "unknown",
                            format!("there is no company `{company}`"),
                        ));
                    };
                    let costs = cost_of_goods_sold(conn, &s, &found.id, (from, to)).await?;
                    trade::reports::gross_profit_costed(conn, &s, &found.id, from, to, &costs).await
                })
            }),
        )
        .await
        .map_err(Problem::from)?;
    Ok(answer(
        report,
        query.format.as_deref(),
        trade::reports::GROSS_PROFIT_FIELDS,
    ))
}
