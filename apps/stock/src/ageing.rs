//! Stock ageing: per item and warehouse, the quantity held at the end of a date split by
//! how long ago it came into the warehouse (0–30, 31–60, 61–90 and over 90 days), by
//! first in, first out: the bin's live movements up to the date ([`ledger::bin_rows`])
//! replay through a queue of (day received, quantity); an issue takes from the oldest.
//! Stock transferred in counts from the day of the transfer. Also the average age of
//! what is held, weighted by quantity, and its value.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use prefiq::Context;
use prefiq_data::entity::repo::Repository;
use prefiq_http::{HttpState, Problem};
use serde::Deserialize;

use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};
use prefiq_data::entity::value::{currency_scale, format_scaled};
use serde_json::{Value, json};

use crate::reports::Names;
use crate::rows::{invalid, text_arg};
use crate::{ledger, reports};

/// The upper bounds (days, inclusive) of the age buckets but the last.
pub const BUCKETS: [i64; 3] = [30, 60, 90];

/// The columns of the stock ageing's CSV.
pub const AGEING_FIELDS: &[&str] = &[
    "item",
    "item_code",
    "item_name",
    "warehouse",
    "warehouse_name",
    "qty",
    "range_0_30",
    "range_31_60",
    "range_61_90",
    "range_over_90",
    "average_age",
    "value",
];

/// What a bin holds at a date, by age.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ageing {
    /// Thousandths held (negative when more was issued than received).
    pub qty: i64,
    /// Thousandths in each bucket: 0–30, 31–60, 61–90, over 90 days.
    pub buckets: [i64; 4],
    /// The quantity-weighted average age in tenths of a day (zero when nothing is held).
    pub average_age_tenths: i64,
}

/// Ages what a bin holds on `as_of_day` after `movements` (day, thousandths in or out)
/// in posting order, first in first out. An issue past what is held leaves a shortfall
/// that the next receipts fill first.
pub fn age(movements: impl IntoIterator<Item = (i64, i64)>, as_of_day: i64) -> Ageing {
    let mut layers: VecDeque<(i64, i64)> = VecDeque::new();
    let mut shortfall = 0i64;
    for (day, change) in movements {
        if change > 0 {
            let filled = change.min(shortfall);
            shortfall -= filled;
            let rest = change - filled;
            if rest > 0 {
                layers.push_back((day, rest));
            }
        } else {
            let mut wanted = change.saturating_neg();
            while wanted > 0 {
                let Some(front) = layers.front_mut() else {
                    shortfall = shortfall.saturating_add(wanted);
                    break;
                };
                let taken = front.1.min(wanted);
                front.1 -= taken;
                wanted -= taken;
                if front.1 == 0 {
                    layers.pop_front();
                }
            }
        }
    }
    let mut out = Ageing::default();
    let (mut held, mut weighted) = (0i128, 0i128);
    for (day, qty) in &layers {
        let age = as_of_day.saturating_sub(*day).max(0);
        let bucket = BUCKETS.iter().position(|b| age <= *b).unwrap_or(3);
        out.buckets[bucket] = out.buckets[bucket].saturating_add(*qty);
        held = held.saturating_add(i128::from(*qty));
        weighted = weighted.saturating_add(i128::from(*qty).saturating_mul(i128::from(age)));
    }
    out.qty = i64::try_from(held)
        .unwrap_or(i64::MAX)
        .saturating_sub(shortfall);
    if held > 0 {
        // Tenths, rounded half up.
        let tenths = weighted
            .saturating_mul(20)
            .saturating_add(held)
            .checked_div(held.saturating_mul(2))
            .unwrap_or(0);
        out.average_age_tenths = i64::try_from(tenths).unwrap_or(i64::MAX);
    }
    out
}

/// The stock ageing report of a company at the end of `as_of`, optionally of one item or
/// one warehouse.
pub async fn stock_ageing(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &str,
    as_of: jiff::civil::Date,
    item: Option<&str>,
    warehouse: Option<&str>,
) -> Result<Value, RepoError> {
    let Some(company) = accounting::ledger::load_company(conn, scope, company).await? else {
        return Err(invalid(
            "/company",
            "unknown",
            format!("there is no company `{company}`"),
        ));
    };
    let day = accounting::ledger::store::day_number(&as_of.to_string()).unwrap_or(i64::MAX);
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let c = sql.arg(text_arg(&company.id));
    let d = sql.arg(Arg::Int(Some(day)));
    let mut filters = String::new();
    for (column, value) in [("item", item), ("warehouse", warehouse)] {
        if let Some(value) = value {
            let v = sql.arg(text_arg(value));
            filters.push_str(&format!(" AND {column} = {v}"));
        }
    }
    sql.text = format!(
        "SELECT DISTINCT item, warehouse FROM stock_ledger_entry WHERE tenant_id = {tenant} AND company = {c} AND day <= {d}{filters}"
    );
    let bins = conn.fetch(&sql, &[SqlType::Text, SqlType::Text]).await?;
    let text = |r: &[Cell], i: usize| match r.get(i) {
        Some(Cell::Text(t)) => t.clone(),
        _ => String::new(),
    };
    let mut figures = Vec::with_capacity(bins.len());
    for bin in &bins {
        let (item, warehouse) = (text(bin, 0), text(bin, 1));
        let rows = ledger::bin_rows(conn, scope, &item, &warehouse, Some(day)).await?;
        let value: i64 = rows.iter().map(|r| r.value).sum();
        let ageing = age(rows.iter().map(|r| (r.day, r.qty_change)), day);
        if ageing.qty != 0 || value != 0 {
            figures.push((item, warehouse, ageing, value));
        }
    }
    let names = Names::of(
        conn,
        scope,
        figures.iter().map(|f| (f.0.as_str(), f.1.as_str())),
    )
    .await?;
    figures.sort_by_key(|f| names.order(&f.0, &f.1));
    let scale = currency_scale(&company.base_currency);
    let mut total_value = 0i64;
    let rows: Vec<Value> = figures
        .iter()
        .map(|(item, warehouse, ageing, value)| {
            total_value = total_value.saturating_add(*value);
            let q = |v: i64| format_scaled(v, 3);
            json!({
                "item": item,
                "item_code": names.item(item, 0),
                "item_name": names.item(item, 1),
                "warehouse": warehouse,
                "warehouse_name": names.warehouse(warehouse),
                "qty": q(ageing.qty),
                "range_0_30": q(ageing.buckets[0]),
                "range_31_60": q(ageing.buckets[1]),
                "range_61_90": q(ageing.buckets[2]),
                "range_over_90": q(ageing.buckets[3]),
                "average_age": format_scaled(ageing.average_age_tenths, 1),
                "value": format_scaled(*value, scale),
            })
        })
        .collect();
    Ok(json!({
        "company": company.id,
        "currency": company.base_currency,
        "as_of": as_of.to_string(),
        "rows": rows,
        "total_value": format_scaled(total_value, scale),
    }))
}

/// The stock ageing's query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeingQuery {
    company: String,
    as_of: Option<String>,
    item: Option<String>,
    warehouse: Option<String>,
    format: Option<String>,
}

/// `GET /api/v1/stock/reports/stock-ageing`.
pub async fn stock_ageing_report(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<AgeingQuery>,
) -> Result<Response, Problem> {
    let scope = reports::allowed(&state, &context, reports::READ_REPORTS).await?;
    reports::check_format(query.format.as_deref())?;
    let as_of = reports::date(query.as_of.as_deref(), "as_of")?
        .unwrap_or_else(|| jiff::Zoned::now().date());
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
                let (s, q) = (s.clone(), query.clone());
                Box::pin(async move {
                    let filter = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
                    let (item, warehouse) = (filter(&q.item), filter(&q.warehouse));
                    stock_ageing(
                        conn,
                        &s,
                        &q.company,
                        as_of,
                        item.as_deref(),
                        warehouse.as_deref(),
                    )
                    .await
                })
            }),
        )
        .await
        .map_err(Problem::from)?;
    Ok(reports::answer(report, format.as_deref(), AGEING_FIELDS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(movements: &[(i64, i64)], as_of: i64, expected: (i64, [i64; 4], i64)) {
        let got = age(movements.iter().copied(), as_of);
        assert_eq!(
            (got.qty, got.buckets, got.average_age_tenths),
            expected,
            "{movements:?} at {as_of}"
        );
    }

    #[test]
    fn ages_first_in_first_out() {
        // Nothing held.
        check(&[], 100, (0, [0; 4], 0));
        // One receipt 10 days ago.
        check(&[(90, 5000)], 100, (5000, [5000, 0, 0, 0], 100));
        // The bucket bounds: 30, 31, 60, 61, 90, 91 days.
        check(&[(70, 1000)], 100, (1000, [1000, 0, 0, 0], 300));
        check(&[(69, 1000)], 100, (1000, [0, 1000, 0, 0], 310));
        check(&[(40, 1000)], 100, (1000, [0, 1000, 0, 0], 600));
        check(&[(39, 1000)], 100, (1000, [0, 0, 1000, 0], 610));
        check(&[(10, 1000)], 100, (1000, [0, 0, 1000, 0], 900));
        check(&[(9, 1000)], 100, (1000, [0, 0, 0, 1000], 910));
        // An issue takes the oldest first.
        check(
            &[(0, 4000), (50, 3000), (90, 2000), (95, -5000)],
            100,
            (4000, [2000, 2000, 0, 0], 300),
        );
        // A shortfall is filled by the next receipt.
        check(
            &[(0, 1000), (10, -3000), (20, 5000)],
            100,
            (3000, [0, 0, 3000, 0], 800),
        );
        check(&[(0, 1000), (10, -3000)], 100, (-2000, [0; 4], 0));
        // Average age rounds to a tenth: (1×10 + 2×11) / 3 = 10.67.
        check(&[(90, 1000), (89, 2000)], 100, (3000, [3000, 0, 0, 0], 107));
    }
}
