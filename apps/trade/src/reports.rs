//! The trade reports, as JSON or (with `format=csv`) CSV, every amount in the company's
//! currency (documents in another currency converted at the rate they were booked at):
//!
//! - `GET /api/v1/trade/reports/receivable-ageing` and `payable-ageing`
//!   (`company`, `as_of`): per party, what is outstanding by days past due (0-30, 31-60,
//!   61-90, over 90; not yet due counts as 0-30), less unallocated advances;
//! - `GET /api/v1/trade/reports/sales-register` and `purchase-register` (`company`,
//!   `from`, `to`): one row per submitted invoice;
//! - `GET /api/v1/trade/reports/gross-profit` (`company`, `from`, `to`): per item, what
//!   was sold (net of returns) against its cost at the average price it was bought at.
//!   The inventory app will replace that cost by the cost of goods sold of stock items.
//!
//! Each is one grouped query per table, so ageing over 100,000 invoices reads them once
//! and converts a handful of groups.

use std::collections::{BTreeMap, HashMap};

use accounting::money::{RATE_ONE, convert_currency};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use prefiq::Context;
use prefiq_data::entity::repo::{RepoError, Repository, TenantScope};
use prefiq_data::entity::sql::{Conn, Sql, SqlType};
use prefiq_data::entity::value::{currency_scale, format_scaled};
use prefiq_http::{HttpState, Problem};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::figures::InvoiceKind;
use crate::routes::allowed;
use crate::rows::{cell_text, invalid, rows_by_id, text_arg};

/// Reading the trade reports.
pub const READ_REPORTS: &str = "trade.read_reports";

/// The most rows a register answers: past it, narrow the dates.
pub const REGISTER_ROWS_MAX: usize = 100_000;

/// The index of open sales invoices the receivable ageing reads: only submitted invoices
/// with something outstanding, their columns in the order the report groups by, so the
/// report reads the index alone and sorts nothing. Portable SQL (a partial index).
const SALES_OPEN_INDEX: &str = "CREATE INDEX IF NOT EXISTS sales_invoice__open ON sales_invoice (tenant_id, company, customer, outstanding_amount_currency, exchange_rate, due_date, posting_date, outstanding_amount) WHERE docstatus = 1 AND outstanding_amount <> 0 AND deleted_at IS NULL;";

/// The same for purchase invoices and the payable ageing.
const PURCHASE_OPEN_INDEX: &str = "CREATE INDEX IF NOT EXISTS purchase_invoice__open ON purchase_invoice (tenant_id, company, supplier, outstanding_amount_currency, exchange_rate, due_date, posting_date, outstanding_amount) WHERE docstatus = 1 AND outstanding_amount <> 0 AND deleted_at IS NULL;";

/// The migration of the invoice module (selling or buying) that makes its open-invoices
/// index, after its entity tables.
pub fn open_invoices_index(kind: InvoiceKind) -> prefiq::Migration {
    match kind {
        InvoiceKind::Sales => {
            prefiq::Migration::portable("0001_open_invoices_index", SALES_OPEN_INDEX)
        }
        InvoiceKind::Purchase => {
            prefiq::Migration::portable("0001_open_invoices_index", PURCHASE_OPEN_INDEX)
        }
    }
}

/// Contributes the open-invoices index as a migration of tenant data too, so that in
/// `database` tenancy every tenant's database has it.
pub fn register_open_invoices_index(
    cx: &mut prefiq::RegisterContext<'_>,
    module: &str,
    kind: InvoiceKind,
) {
    cx.services.contribute(std::sync::Arc::new(
        prefiq_data::tenants::TenantDataMigrations {
            module: module.to_owned(),
            migrations: vec![open_invoices_index(kind)],
        },
    ));
}

/// A report's query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    company: String,
    as_of: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

fn date(value: Option<&str>, field: &str) -> Result<Option<jiff::civil::Date>, RepoError> {
    value
        .map(|v| {
            v.parse::<jiff::civil::Date>().map_err(|_| {
                invalid(
                    format!("/{field}"),
                    "wrong_type",
                    format!("`{field}` is a date such as 2026-12-31"),
                )
            })
        })
        .transpose()
}

fn check_format(format: Option<&str>) -> Result<(), RepoError> {
    match format {
        None | Some("json" | "csv") => Ok(()),
        Some(other) => Err(invalid(
            "/format",
            "unknown_format",
            format!("`format` is `json` or `csv`, not `{other}`"),
        )),
    }
}

fn answer(report: Value, format: Option<&str>, fields: &[&str]) -> Response {
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

/// Converts `amount` of `currency` at `rate` (the stored rate when `None`) into `base`.
struct Converter {
    base: String,
    fallback: HashMap<String, i64>,
}

impl Converter {
    async fn new(
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        company: &str,
    ) -> Result<(Converter, String), RepoError> {
        let Some(company) = accounting::ledger::load_company(conn, scope, company).await? else {
            return Err(invalid(
                "/company",
                "unknown",
                format!("there is no company `{company}`"),
            ));
        };
        Ok((
            Converter {
                base: company.base_currency,
                fallback: HashMap::new(),
            },
            company.id,
        ))
    }

    async fn convert(
        &mut self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        amount: i64,
        currency: &str,
        rate: Option<i64>,
        date: &str,
    ) -> Result<i64, RepoError> {
        if currency == self.base || currency.is_empty() {
            return Ok(amount);
        }
        let rate = match rate {
            Some(rate) => rate,
            None => match self.fallback.get(currency) {
                Some(rate) => *rate,
                None => {
                    let rate =
                        accounting::ledger::load_rate(conn, scope, currency, &self.base, date)
                            .await?
                            .map_or(RATE_ONE, |(r, _)| r);
                    self.fallback.insert(currency.to_owned(), rate);
                    rate
                }
            },
        };
        Ok(convert_currency(amount, currency, rate, &self.base).unwrap_or(0))
    }

    fn money(&self, amount: i64) -> String {
        format_scaled(amount, currency_scale(&self.base))
    }
}

/// The names of these parties.
async fn party_names(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: InvoiceKind,
    ids: &[&str],
) -> Result<HashMap<String, String>, RepoError> {
    let name = format!("{}_name", kind.party());
    Ok(rows_by_id(conn, scope, kind.party(), &[&name], ids)
        .await?
        .into_iter()
        .map(|(id, r)| (id, r.into_iter().next().flatten().unwrap_or_default()))
        .collect())
}

/// The ageing report of `kind`'s invoices as of `as_of`.
pub async fn ageing(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: InvoiceKind,
    company: &str,
    as_of: jiff::civil::Date,
) -> Result<Value, RepoError> {
    let (mut converter, company) = Converter::new(conn, scope, company).await?;
    let bound = |days: i64| {
        as_of
            .checked_sub(jiff::Span::new().days(days))
            .unwrap_or(as_of)
            .to_string()
    };
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let c = sql.arg(text_arg(&company));
    let (d30, d60, d90) = (
        sql.arg(text_arg(&bound(30))),
        sql.arg(text_arg(&bound(60))),
        sql.arg(text_arg(&bound(90))),
    );
    let day = sql.arg(text_arg(&as_of.to_string()));
    let due = "CAST(COALESCE(due_date, posting_date) AS TEXT)";
    // One row per party, currency and rate, its buckets summed by condition: with the
    // selling and buying apps' index of open invoices (whose columns lead with these) the
    // rows come grouped, and nothing is sorted.
    sql.text = format!(
        "SELECT {party}, outstanding_amount_currency, CAST(exchange_rate AS TEXT), \
         CAST(SUM(CASE WHEN {due} >= {d30} THEN outstanding_amount ELSE 0 END) AS TEXT), \
         CAST(SUM(CASE WHEN {due} < {d30} AND {due} >= {d60} THEN outstanding_amount ELSE 0 END) AS TEXT), \
         CAST(SUM(CASE WHEN {due} < {d60} AND {due} >= {d90} THEN outstanding_amount ELSE 0 END) AS TEXT), \
         CAST(SUM(CASE WHEN {due} < {d90} THEN outstanding_amount ELSE 0 END) AS TEXT) FROM {entity} \
         WHERE tenant_id = {tenant} AND company = {c} AND docstatus = 1 AND outstanding_amount <> 0 AND deleted_at IS NULL AND CAST(posting_date AS TEXT) <= {day} \
         GROUP BY {party}, outstanding_amount_currency, exchange_rate",
        party = kind.party(),
        entity = kind.entity(),
    );
    let rows = conn.fetch(&sql, &[SqlType::Text; 7]).await?;
    let as_of_text = as_of.to_string();
    // party -> [four buckets, advances]
    let mut parties: BTreeMap<String, [i64; 5]> = BTreeMap::new();
    for r in rows {
        let party = cell_text(&r, 0).unwrap_or_default();
        let currency = cell_text(&r, 1).unwrap_or_default();
        let rate = cell_text(&r, 2).and_then(|r| r.parse().ok());
        for bucket in 0..4 {
            let amount = cell_text(&r, 3 + bucket)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            if amount != 0 {
                let converted = converter
                    .convert(conn, scope, amount, &currency, rate, &as_of_text)
                    .await?;
                parties.entry(party.clone()).or_default()[bucket] += converted;
            }
        }
    }
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let c = sql.arg(text_arg(&company));
    let t = sql.arg(text_arg(kind.party_type()));
    let day = sql.arg(text_arg(&as_of.to_string()));
    sql.text = format!(
        "SELECT party, currency, CAST(exchange_rate AS TEXT), CAST(SUM(unallocated_amount) AS TEXT) FROM payment_entry \
         WHERE tenant_id = {tenant} AND company = {c} AND party_type = {t} AND docstatus = 1 AND unallocated_amount > 0 AND deleted_at IS NULL AND CAST(posting_date AS TEXT) <= {day} \
         GROUP BY 1, 2, 3"
    );
    for r in conn.fetch(&sql, &[SqlType::Text; 4]).await? {
        let party = cell_text(&r, 0).unwrap_or_default();
        let currency = cell_text(&r, 1).unwrap_or_default();
        let rate = cell_text(&r, 2).and_then(|r| r.parse().ok());
        let amount = cell_text(&r, 3).and_then(|a| a.parse().ok()).unwrap_or(0);
        let converted = converter
            .convert(conn, scope, amount, &currency, rate, &as_of_text)
            .await?;
        parties.entry(party).or_default()[4] += converted;
    }
    parties.retain(|_, v| v.iter().any(|a| *a != 0));
    let ids: Vec<&str> = parties.keys().map(String::as_str).collect();
    let names = party_names(conn, scope, kind, &ids).await?;
    let mut totals = [0i64; 5];
    let rows: Vec<Value> = parties
        .iter()
        .map(|(party, v)| {
            for (t, a) in totals.iter_mut().zip(v) {
                *t += a;
            }
            let outstanding: i64 = v[..4].iter().sum();
            json!({
                "party": party,
                "party_name": names.get(party).cloned().unwrap_or_default(),
                "range_0_30": converter.money(v[0]),
                "range_31_60": converter.money(v[1]),
                "range_61_90": converter.money(v[2]),
                "range_over_90": converter.money(v[3]),
                "outstanding": converter.money(outstanding),
                "advances": converter.money(v[4]),
                "balance": converter.money(outstanding - v[4]),
            })
        })
        .collect();
    let outstanding: i64 = totals[..4].iter().sum();
    Ok(json!({
        "company": company,
        "currency": converter.base,
        "as_of": as_of_text,
        "party_type": kind.party_type(),
        "rows": rows,
        "totals": {
            "range_0_30": converter.money(totals[0]),
            "range_31_60": converter.money(totals[1]),
            "range_61_90": converter.money(totals[2]),
            "range_over_90": converter.money(totals[3]),
            "outstanding": converter.money(outstanding),
            "advances": converter.money(totals[4]),
            "balance": converter.money(outstanding - totals[4]),
        },
    }))
}

/// The columns of the ageing CSV.
pub const AGEING_FIELDS: &[&str] = &[
    "party",
    "party_name",
    "range_0_30",
    "range_31_60",
    "range_61_90",
    "range_over_90",
    "outstanding",
    "advances",
    "balance",
];

/// The columns of the registers' CSV.
pub const REGISTER_FIELDS: &[&str] = &[
    "name",
    "posting_date",
    "party",
    "party_name",
    "currency",
    "net_total",
    "tax_total",
    "grand_total",
    "outstanding_amount",
    "exchange_rate",
    "base_net_total",
    "base_grand_total",
];

fn date_filter(
    sql: &mut Sql,
    column: &str,
    from: Option<jiff::civil::Date>,
    to: Option<jiff::civil::Date>,
) -> String {
    let mut out = String::new();
    if let Some(from) = from {
        let p = sql.arg(text_arg(&from.to_string()));
        out.push_str(&format!(" AND CAST({column} AS TEXT) >= {p}"));
    }
    if let Some(to) = to {
        let p = sql.arg(text_arg(&to.to_string()));
        out.push_str(&format!(" AND CAST({column} AS TEXT) <= {p}"));
    }
    out
}

/// The sales or purchase register.
pub async fn register(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: InvoiceKind,
    company: &str,
    from: Option<jiff::civil::Date>,
    to: Option<jiff::civil::Date>,
) -> Result<Value, RepoError> {
    let (mut converter, company) = Converter::new(conn, scope, company).await?;
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let c = sql.arg(text_arg(&company));
    let dates = date_filter(&mut sql, "posting_date", from, to);
    sql.text = format!(
        "SELECT id, name, CAST(posting_date AS TEXT), {party}, currency, CAST(net_total AS TEXT), CAST(tax_total AS TEXT), CAST(grand_total AS TEXT), CAST(outstanding_amount AS TEXT), CAST(exchange_rate AS TEXT) FROM {entity} \
         WHERE tenant_id = {tenant} AND company = {c} AND docstatus = 1 AND deleted_at IS NULL{dates} ORDER BY posting_date, name LIMIT {}",
        REGISTER_ROWS_MAX + 1,
        party = kind.party(),
        entity = kind.entity(),
    );
    let rows = conn.fetch(&sql, &[SqlType::Text; 10]).await?;
    if rows.len() > REGISTER_ROWS_MAX {
        return Err(invalid(
            "/from",
            "too_many_rows",
            format!("the register has more than {REGISTER_ROWS_MAX} invoices: narrow the dates"),
        ));
    }
    let parties: Vec<String> = rows.iter().filter_map(|r| cell_text(r, 3)).collect();
    let mut unique: Vec<&str> = parties.iter().map(String::as_str).collect();
    unique.sort_unstable();
    unique.dedup();
    let names = party_names(conn, scope, kind, &unique).await?;
    let mut out = Vec::with_capacity(rows.len());
    let (mut net, mut grand) = (0i64, 0i64);
    for r in &rows {
        let text = |i: usize| cell_text(r, i).unwrap_or_default();
        let int = |i: usize| text(i).parse::<i64>().unwrap_or(0);
        let currency = text(4);
        let scale = currency_scale(&currency);
        let rate = cell_text(r, 9).and_then(|r| r.parse().ok());
        let base_net = converter
            .convert(conn, scope, int(5), &currency, rate, &text(2))
            .await?;
        let base_grand = converter
            .convert(conn, scope, int(7), &currency, rate, &text(2))
            .await?;
        net += base_net;
        grand += base_grand;
        out.push(json!({
            "id": text(0),
            "name": text(1),
            "posting_date": text(2),
            "party": text(3),
            "party_name": names.get(&text(3)).cloned().unwrap_or_default(),
            "currency": currency,
            "net_total": format_scaled(int(5), scale),
            "tax_total": format_scaled(int(6), scale),
            "grand_total": format_scaled(int(7), scale),
            "outstanding_amount": format_scaled(int(8), scale),
            "exchange_rate": rate.map(|r| format_scaled(r, 9)),
            "base_net_total": converter.money(base_net),
            "base_grand_total": converter.money(base_grand),
        }));
    }
    Ok(json!({
        "company": company,
        "currency": converter.base,
        "rows": out,
        "totals": {"base_net_total": converter.money(net), "base_grand_total": converter.money(grand)},
    }))
}

/// Quantity (thousandths) and net amount in company currency per item of `kind`'s
/// submitted invoice lines.
async fn lines_by_item(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    converter: &mut Converter,
    kind: InvoiceKind,
    company: &str,
    from: Option<jiff::civil::Date>,
    to: Option<jiff::civil::Date>,
) -> Result<BTreeMap<String, (i64, i64)>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let c = sql.arg(text_arg(company));
    let dates = date_filter(&mut sql, "i.posting_date", from, to);
    let entity = kind.entity();
    sql.text = format!(
        "SELECT l.item, i.currency, CAST(i.exchange_rate AS TEXT), CAST(SUM(l.qty) AS TEXT), CAST(SUM(l.net_amount) AS TEXT), CAST(MAX(i.posting_date) AS TEXT) \
         FROM {entity}_line l JOIN {entity} i ON i.tenant_id = l.tenant_id AND i.id = l.parent_id \
         WHERE l.tenant_id = {tenant} AND i.company = {c} AND i.docstatus = 1 AND i.deleted_at IS NULL{dates} GROUP BY 1, 2, 3"
    );
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in conn.fetch(&sql, &[SqlType::Text; 6]).await? {
        let item = cell_text(&r, 0).unwrap_or_default();
        let currency = cell_text(&r, 1).unwrap_or_default();
        let rate = cell_text(&r, 2).and_then(|r| r.parse().ok());
        let qty: i64 = cell_text(&r, 3).and_then(|a| a.parse().ok()).unwrap_or(0);
        let amount: i64 = cell_text(&r, 4).and_then(|a| a.parse().ok()).unwrap_or(0);
        let day = cell_text(&r, 5).unwrap_or_default();
        let converted = converter
            .convert(conn, scope, amount, &currency, rate, &day)
            .await?;
        let entry = out.entry(item).or_default();
        entry.0 += qty;
        entry.1 += converted;
    }
    Ok(out)
}

/// The columns of the gross profit CSV.
pub const GROSS_PROFIT_FIELDS: &[&str] = &[
    "item",
    "item_name",
    "qty",
    "revenue",
    "average_cost",
    "cost",
    "gross_profit",
    "margin_percent",
    "cost_basis",
];

/// Gross profit by item: revenue of the period against its quantity at the average
/// price the item was bought at up to the period's end.
pub async fn gross_profit(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &str,
    from: Option<jiff::civil::Date>,
    to: Option<jiff::civil::Date>,
) -> Result<Value, RepoError> {
    gross_profit_costed(conn, scope, company, from, to, &HashMap::new()).await
}

/// Gross profit by item with the cost of the items in `costs` (minor units of the
/// company's currency, such as the stock ledger's cost of goods sold of the period)
/// instead of their average purchase price; each row says which basis it used.
pub async fn gross_profit_costed(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &str,
    from: Option<jiff::civil::Date>,
    to: Option<jiff::civil::Date>,
    costs: &HashMap<String, i64>,
) -> Result<Value, RepoError> {
    let (mut converter, company) = Converter::new(conn, scope, company).await?;
    let sold = lines_by_item(
        conn,
        scope,
        &mut converter,
        InvoiceKind::Sales,
        &company,
        from,
        to,
    )
    .await?;
    let bought = lines_by_item(
        conn,
        scope,
        &mut converter,
        InvoiceKind::Purchase,
        &company,
        None,
        to,
    )
    .await?;
    let ids: Vec<&str> = sold.keys().map(String::as_str).collect();
    let names: HashMap<String, String> = rows_by_id(conn, scope, "item", &["item_name"], &ids)
        .await?
        .into_iter()
        .map(|(id, r)| (id, r.into_iter().next().flatten().unwrap_or_default()))
        .collect();
    let scale = currency_scale(&converter.base);
    let (mut revenue_total, mut cost_total) = (0i64, 0i64);
    let rows: Vec<Value> = sold
        .iter()
        .map(|(item, (qty, revenue))| {
            // The average unit cost, in minor units per unit, times the quantity sold;
            // in i128 so that neither product overflows, rounded half away from zero.
            let (bought_qty, bought_amount) = match costs.get(item) {
                // The given cost is what the quantity sold cost: its average is that.
                Some(cost) => (*qty, *cost),
                None => bought.get(item).copied().unwrap_or((0, 0)),
            };
            let cost = if bought_qty > 0 {
                let numerator = i128::from(bought_amount) * i128::from(*qty);
                let denominator = i128::from(bought_qty);
                let rounded =
                    (2 * numerator + numerator.signum() * denominator) / (2 * denominator);
                i64::try_from(rounded).unwrap_or(0)
            } else {
                0
            };
            let average = if bought_qty > 0 {
                let n = i128::from(bought_amount) * 1000;
                i64::try_from((2 * n + i128::from(bought_qty)) / (2 * i128::from(bought_qty)))
                    .unwrap_or(0)
            } else {
                0
            };
            revenue_total += revenue;
            cost_total += cost;
            let profit = revenue - cost;
            let margin = if *revenue != 0 {
                format_scaled(
                    i64::try_from(i128::from(profit) * 10_000 / i128::from(*revenue)).unwrap_or(0),
                    2,
                )
            } else {
                "0.00".into()
            };
            json!({
                "item": item,
                "item_name": names.get(item).cloned().unwrap_or_default(),
                "qty": format_scaled(*qty, 3),
                "revenue": format_scaled(*revenue, scale),
                "average_cost": format_scaled(average, scale),
                "cost": format_scaled(cost, scale),
                "gross_profit": format_scaled(profit, scale),
                "margin_percent": margin,
                "cost_basis": if costs.contains_key(item) {
                    "cost of goods sold"
                } else {
                    "average purchase price"
                },
            })
        })
        .collect();
    Ok(json!({
        "company": company,
        "currency": converter.base,
        "rows": rows,
        "totals": {
            "revenue": format_scaled(revenue_total, scale),
            "cost": format_scaled(cost_total, scale),
            "gross_profit": format_scaled(revenue_total - cost_total, scale),
        },
    }))
}

/// Which report a route answers.
#[derive(Debug, Clone, Copy)]
enum Report {
    Ageing(InvoiceKind),
    Register(InvoiceKind),
    GrossProfit,
}

async fn run(
    state: HttpState,
    context: Context,
    query: ReportQuery,
    report: Report,
) -> Result<Response, Problem> {
    let scope = allowed(&state, &context, READ_REPORTS).await?;
    check_format(query.format.as_deref()).map_err(Problem::from)?;
    let as_of = date(query.as_of.as_deref(), "as_of")
        .map_err(Problem::from)?
        .unwrap_or_else(|| jiff::Zoned::now().date());
    let from = date(query.from.as_deref(), "from").map_err(Problem::from)?;
    let to = date(query.to.as_deref(), "to").map_err(Problem::from)?;
    let repository = state
        .services
        .get::<Repository>("trade reports")
        .map_err(Problem::from)?;
    let company = query.company.clone();
    let s = scope.clone();
    let value = repository
        .read(
            &scope,
            Box::new(move |conn| {
                let (s, company) = (s.clone(), company.clone());
                Box::pin(async move {
                    match report {
                        Report::Ageing(kind) => ageing(conn, &s, kind, &company, as_of).await,
                        Report::Register(kind) => {
                            register(conn, &s, kind, &company, from, to).await
                        }
                        Report::GrossProfit => gross_profit(conn, &s, &company, from, to).await,
                    }
                })
            }),
        )
        .await
        .map_err(Problem::from)?;
    let fields = match report {
        Report::Ageing(_) => AGEING_FIELDS,
        Report::Register(_) => REGISTER_FIELDS,
        Report::GrossProfit => GROSS_PROFIT_FIELDS,
    };
    Ok(answer(value, query.format.as_deref(), fields))
}

macro_rules! report_route {
    ($(#[$doc:meta])* $name:ident, $report:expr) => {
        $(#[$doc])*
        pub async fn $name(
            State(state): State<HttpState>,
            Extension(context): Extension<Context>,
            Query(query): Query<ReportQuery>,
        ) -> Result<Response, Problem> {
            run(state, context, query, $report).await
        }
    };
}

report_route!(
    /// `GET /api/v1/trade/reports/receivable-ageing`.
    receivable_ageing,
    Report::Ageing(InvoiceKind::Sales)
);
report_route!(
    /// `GET /api/v1/trade/reports/payable-ageing`.
    payable_ageing,
    Report::Ageing(InvoiceKind::Purchase)
);
report_route!(
    /// `GET /api/v1/trade/reports/sales-register`.
    sales_register,
    Report::Register(InvoiceKind::Sales)
);
report_route!(
    /// `GET /api/v1/trade/reports/purchase-register`.
    purchase_register,
    Report::Register(InvoiceKind::Purchase)
);
report_route!(
    /// `GET /api/v1/trade/reports/gross-profit`.
    gross_profit_report,
    Report::GrossProfit
);
