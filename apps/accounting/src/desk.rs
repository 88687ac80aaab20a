//! The accounting screens of the desk: the chart of accounts as a tree with balances, the
//! trial balance, balance sheet and profit and loss with drill-down to the general ledger,
//! an income and expense chart drawn on the server as SVG, and a journal entry form that
//! keeps running debit and credit totals. Every figure comes from the reports API, called
//! in process as the signed-in user.

use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use cortex::desk::form::{FormData, url_encode};
use std::sync::Arc;

use cortex::desk::{Desk, DeskLayer, DeskLink, DeskRequest, Session};
use prefiq_http::{HttpState, RouteSet};
use serde_json::{Value, json};

use crate::routes::READ_REPORTS;

macro_rules! try_page {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

/// What accounting adds to the desk.
pub fn layer() -> DeskLayer {
    let link = |label: &str, href: &str| DeskLink {
        section: "accounting".into(),
        label: label.into(),
        href: href.into(),
        action: Some(READ_REPORTS.into()),
    };
    DeskLayer {
        module: "accounting".into(),
        templates: vec![
            ("accounting/chart.html", include_str!("../desk/chart.html")),
            (
                "accounting/filters.html",
                include_str!("../desk/filters.html"),
            ),
            (
                "accounting/report.html",
                include_str!("../desk/report.html"),
            ),
            (
                "accounting/ledger.html",
                include_str!("../desk/ledger.html"),
            ),
            (
                "entity/journal_entry/form.html",
                include_str!("../desk/journal_entry_form.html"),
            ),
        ],
        assets: vec![],
        links: vec![
            link("Chart of accounts", "/app/accounting/chart"),
            link("Trial balance", "/app/accounting/trial-balance"),
            link("Balance sheet", "/app/accounting/balance-sheet"),
            link("Profit and loss", "/app/accounting/profit-and-loss"),
            link("General ledger", "/app/accounting/general-ledger"),
        ],
    }
}

/// The routes of the accounting screens.
pub fn routes() -> RouteSet {
    RouteSet::new("accounting")
        .get("/app/accounting/chart", chart)
        .get("/app/accounting/trial-balance", trial_balance)
        .get("/app/accounting/balance-sheet", balance_sheet)
        .get("/app/accounting/profit-and-loss", profit_and_loss)
        .get("/app/accounting/general-ledger", general_ledger)
}

/// The report's filters: the company (by default the first the user may read) and dates.
struct Filters {
    company: String,
    companies: Vec<Value>,
    from: String,
    to: String,
    account: String,
}

impl Filters {
    /// The query string that keeps these filters (for drill-down links).
    fn query(&self) -> String {
        let mut parts = vec![format!("company={}", url_encode(&self.company))];
        if !self.from.is_empty() {
            parts.push(format!("from={}", url_encode(&self.from)));
        }
        if !self.to.is_empty() {
            parts.push(format!("to={}", url_encode(&self.to)));
        }
        parts.join("&")
    }

    fn context(&self) -> Value {
        json!({
            "company": self.company,
            "companies": self.companies,
            "from": self.from,
            "to": self.to,
            "account": self.account,
            "query": self.query(),
        })
    }
}

/// A date the user typed, kept only when it has the shape `YYYY-MM-DD`.
fn date_param(form: &FormData, name: &str) -> String {
    form.get(name)
        .map(str::trim)
        .filter(|d| d.len() == 10 && crate::dates::parse(d).is_some())
        .unwrap_or("")
        .to_owned()
}

async fn filters(
    state: &HttpState,
    session: &Session,
    query: &FormData,
) -> Result<Filters, String> {
    let answer = session
        .call(
            state,
            Method::GET,
            "/api/v1/resources/company?limit=100&fields=%5B%22id%22%2C%22company_name%22%2C%22currency%22%5D&order_by=company_name%20asc",
            None,
        )
        .await;
    if !answer.ok() {
        return Err(answer.message());
    }
    let companies: Vec<Value> = answer
        .body
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let asked = query.get("company").unwrap_or("").trim();
    let company = if asked.is_empty() {
        companies
            .first()
            .and_then(|c| c.get("id"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    } else {
        asked.to_owned()
    };
    if company.is_empty() {
        return Err("There is no company yet. Create one under Accounting › Company first.".into());
    }
    Ok(Filters {
        company,
        companies,
        from: date_param(query, "from"),
        to: date_param(query, "to"),
        account: query.get("account").unwrap_or("").trim().to_owned(),
    })
}

/// Calls report `name` with the filters.
async fn report(
    state: &HttpState,
    session: &Session,
    name: &str,
    f: &Filters,
    extra: &str,
) -> Result<Value, (StatusCode, String)> {
    let uri = format!("/api/v1/accounting/reports/{name}?{}{extra}", f.query());
    let answer = session.call(state, Method::GET, &uri, None).await;
    if answer.ok() {
        Ok(answer.body)
    } else {
        Err((answer.status, answer.message()))
    }
}

/// A signed amount (`"-12.50"`) as a number, for sums and the chart.
fn amount(value: &Value) -> f64 {
    value
        .as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// `debit − credit` of two amounts, shown as `Dr x` / `Cr x`.
fn side(debit: &Value, credit: &Value) -> String {
    let net = amount(debit) - amount(credit);
    if net.abs() < 0.000_001 {
        "0.00".into()
    } else if net > 0.0 {
        format!("Dr {net:.2}")
    } else {
        format!("Cr {:.2}", -net)
    }
}

/// Nests trial-balance rows (pre-order, each with its depth) into a tree.
fn nest(rows: &[Value], filters: &Filters) -> Vec<Value> {
    fn take(rows: &[Value], at: &mut usize, depth: u64, filters: &Filters) -> Vec<Value> {
        let mut out = Vec::new();
        while *at < rows.len() {
            let row = &rows[*at];
            let row_depth = row.get("depth").and_then(Value::as_u64).unwrap_or(0);
            if row_depth < depth {
                break;
            }
            *at += 1;
            let children = take(rows, at, row_depth + 1, filters);
            let id = row.get("account").and_then(Value::as_str).unwrap_or("");
            out.push(json!({
                "id": id,
                "name": row.get("account_name"),
                "path": row.get("account_path"),
                "root_type": row.get("root_type"),
                "is_group": row.get("is_group"),
                "balance": side(&row["closing_debit"], &row["closing_credit"]),
                "href": format!("/app/e/account/{}", url_encode(id)),
                "ledger": format!("/app/accounting/general-ledger?{}&account={}", filters.query(), url_encode(id)),
                "children": children,
            }));
        }
        out
    }
    let mut at = 0;
    take(rows, &mut at, 0, filters)
}

/// The parts of a report page: the desk, the session, the filters and report `name` from
/// the API, or the page that takes its place (sign-in, no company yet, a refusal).
async fn report_page(
    state: &HttpState,
    request: &DeskRequest,
    query: Option<String>,
    title: &str,
    name: &str,
) -> Result<(Arc<Desk>, Session, Filters, Value), Response> {
    let (desk, session) = request.open(state).await?;
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let f = match filters(state, &session, &query).await {
        Ok(f) => f,
        Err(message) => return Err(session.message(state, &desk, StatusCode::OK, title, &message)),
    };
    let extra = if name == "general-ledger" && !f.account.is_empty() {
        format!("&account={}", url_encode(&f.account))
    } else {
        String::new()
    };
    match report(state, &session, name, &f, &extra).await {
        Ok(report) => Ok((desk, session, f, report)),
        Err((status, message)) => Err(session.message(state, &desk, status, title, &message)),
    }
}

/// `GET /app/accounting/chart`: the chart of accounts as an expandable tree.
pub async fn chart(
    State(state): State<HttpState>,
    request: DeskRequest,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session, f, tb) = try_page!(
        report_page(
            &state,
            &request,
            query,
            "Chart of accounts",
            "trial-balance"
        )
        .await
    );
    let rows = tb
        .get("rows")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    session.render(
        &state,
        &desk,
        StatusCode::OK,
        "accounting/chart.html",
        json!({
            "title": "Chart of accounts",
            "filters": f.context(),
            "currency": tb.get("currency"),
            "tree": nest(&rows, &f),
            "action": "/app/accounting/chart",
        }),
    )
}

/// `GET /app/accounting/trial-balance`.
pub async fn trial_balance(
    State(state): State<HttpState>,
    request: DeskRequest,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session, f, tb) =
        try_page!(report_page(&state, &request, query, "Trial balance", "trial-balance").await);
    let fields = [
        "opening_debit",
        "opening_credit",
        "debit",
        "credit",
        "closing_debit",
        "closing_credit",
    ];
    let rows: Vec<Value> = tb
        .get("rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let id = r.get("account").and_then(Value::as_str).unwrap_or("");
            json!({
                "label": r.get("account_name"),
                "path": r.get("account_path"),
                "depth": r.get("depth"),
                "group": r.get("is_group"),
                "href": format!("/app/accounting/general-ledger?{}&account={}", f.query(), url_encode(id)),
                "values": fields.iter().map(|k| r.get(*k).cloned().unwrap_or(Value::Null)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let totals: Vec<Value> = fields
        .iter()
        .map(|k| tb["totals"].get(*k).cloned().unwrap_or(Value::Null))
        .collect();
    session.render(
        &state,
        &desk,
        StatusCode::OK,
        "accounting/report.html",
        json!({
            "title": "Trial balance",
            "filters": f.context(),
            "currency": tb.get("currency"),
            "period": format!("{} to {}", tb.get("from").and_then(Value::as_str).unwrap_or(""), tb.get("to").and_then(Value::as_str).unwrap_or("")),
            "columns": ["Opening Dr", "Opening Cr", "Debit", "Credit", "Closing Dr", "Closing Cr"],
            "rows": rows,
            "totals": totals,
            "action": "/app/accounting/trial-balance",
            "show_from": true,
        }),
    )
}

/// The rows of a statement (balance sheet or P&L) with their drill-down links.
fn statement_rows(report: &Value, f: &Filters) -> Vec<Value> {
    report
        .get("rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let id = r.get("account").and_then(Value::as_str).unwrap_or("");
            json!({
                "label": r.get("account_name"),
                "path": r.get("account_path"),
                "depth": r.get("depth"),
                "group": r.get("is_group"),
                "href": format!("/app/accounting/general-ledger?{}&account={}", f.query(), url_encode(id)),
                "values": r.get("values"),
            })
        })
        .collect()
}

/// A statement's column names (one per period) and its summary per column.
fn columns_and_summary(report: &Value) -> (Vec<Value>, Vec<Value>) {
    let columns = report
        .get("columns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| c.get("name").cloned().unwrap_or(Value::Null))
        .collect();
    let summary = report
        .get("summary")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    (columns, summary)
}

/// `GET /app/accounting/balance-sheet`.
pub async fn balance_sheet(
    State(state): State<HttpState>,
    request: DeskRequest,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session, f, bs) =
        try_page!(report_page(&state, &request, query, "Balance sheet", "balance-sheet").await);
    let (columns, summary) = columns_and_summary(&bs);
    let totals: Vec<Value> = summary
        .iter()
        .map(|s| s.get("total_assets").cloned().unwrap_or(Value::Null))
        .collect();
    session.render(
        &state,
        &desk,
        StatusCode::OK,
        "accounting/report.html",
        json!({
            "title": "Balance sheet",
            "filters": f.context(),
            "currency": bs.get("currency"),
            "columns": columns,
            "rows": statement_rows(&bs, &f),
            "summary": summary.iter().map(|s| json!([
                ["Total assets", s.get("total_assets")],
                ["Total liabilities", s.get("total_liabilities")],
                ["Total equity", s.get("total_equity")],
                ["Profit not yet closed", s.get("provisional_profit")],
                ["Liabilities and equity", s.get("total_liabilities_and_equity")],
            ])).collect::<Vec<_>>(),
            "balanced": summary.iter().all(|s| s.get("balanced") == Some(&Value::Bool(true))),
            "totals_label": "Total assets",
            "totals": totals,
            "action": "/app/accounting/balance-sheet",
            "show_from": false,
        }),
    )
}

/// Income and expense by period as an SVG bar chart, drawn here so that no script is
/// needed (and none is allowed by the page's policy to draw it).
pub fn income_expense_svg(
    labels: &[String],
    income: &[f64],
    expense: &[f64],
    currency: &str,
) -> String {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 260.0;
    const TOP: f64 = 20.0;
    const BOTTOM: f64 = 40.0;
    const LEFT: f64 = 70.0;
    let plot = HEIGHT - TOP - BOTTOM;
    let max = income
        .iter()
        .chain(expense)
        .fold(0.0_f64, |m, v| m.max(v.abs()))
        .max(1.0);
    let n = labels.len().max(1) as f64;
    let slot = (WIDTH - LEFT - 10.0) / n;
    let bar = (slot * 0.35).min(30.0);
    let esc = cortex::desk::form::escape;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"chart-title chart-desc\" class=\"bars\"><title id=\"chart-title\">Income and expense by month</title><desc id=\"chart-desc\">Bars of income and expense in {} for each period; the table below gives the figures.</desc>",
        esc(currency)
    );
    for i in 0..=4 {
        let value = max * f64::from(i) / 4.0;
        let y = TOP + plot - plot * f64::from(i) / 4.0;
        svg.push_str(&format!(
            "<line x1=\"{LEFT}\" x2=\"{WIDTH}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d0d7de\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#57606a\">{value:.0}</text>",
            LEFT - 6.0,
            y + 4.0
        ));
    }
    for (i, label) in labels.iter().enumerate() {
        let x = LEFT + slot * i as f64 + slot / 2.0;
        for (j, (values, colour, name)) in [
            (income, "#1a7f37", "Income"),
            (expense, "#b42318", "Expense"),
        ]
        .iter()
        .enumerate()
        {
            let v = values.get(i).copied().unwrap_or(0.0).abs();
            let h = plot * v / max;
            let bx = x - bar + bar * j as f64;
            svg.push_str(&format!(
                "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"{colour}\"><title>{name} {}: {v:.2}</title></rect>",
                TOP + plot - h,
                esc(label)
            ));
        }
        svg.push_str(&format!(
            "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#1b1f24\">{}</text>",
            HEIGHT - BOTTOM + 16.0,
            esc(label)
        ));
    }
    svg.push_str(&format!(
        "<rect x=\"{LEFT}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"#1a7f37\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">Income</text><rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"#b42318\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">Expense</text></svg>",
        HEIGHT - 14.0,
        LEFT + 14.0,
        HEIGHT - 5.0,
        LEFT + 80.0,
        HEIGHT - 14.0,
        LEFT + 94.0,
        HEIGHT - 5.0
    ));
    svg
}

/// `GET /app/accounting/profit-and-loss`: the statement by month and its chart.
pub async fn profit_and_loss(
    State(state): State<HttpState>,
    request: DeskRequest,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session, f, pl) = try_page!(
        report_page(
            &state,
            &request,
            query,
            "Profit and loss",
            "profit-and-loss"
        )
        .await
    );
    let (columns, summary) = columns_and_summary(&pl);
    let labels: Vec<String> = summary
        .iter()
        .map(|s| {
            s.get("column")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let income: Vec<f64> = summary.iter().map(|s| amount(&s["total_income"])).collect();
    let expense: Vec<f64> = summary
        .iter()
        .map(|s| amount(&s["total_expense"]))
        .collect();
    let currency = pl.get("currency").and_then(Value::as_str).unwrap_or("");
    let svg = income_expense_svg(&labels, &income, &expense, currency);
    session.render(
        &state,
        &desk,
        StatusCode::OK,
        "accounting/report.html",
        json!({
            "title": "Profit and loss",
            "filters": f.context(),
            "currency": currency,
            "columns": columns,
            "rows": statement_rows(&pl, &f),
            "summary": summary.iter().map(|s| json!([
                ["Income", s.get("total_income")],
                ["Expense", s.get("total_expense")],
                ["Net profit", s.get("net_profit")],
            ])).collect::<Vec<_>>(),
            "totals_label": "Net profit",
            "totals": summary.iter().map(|s| s.get("net_profit").cloned().unwrap_or(Value::Null)).collect::<Vec<_>>(),
            "chart": svg,
            "action": "/app/accounting/profit-and-loss",
            "show_from": true,
        }),
    )
}

/// `GET /app/accounting/general-ledger`: the postings of an account (or all), with the
/// running balance, each linked to its journal entry.
pub async fn general_ledger(
    State(state): State<HttpState>,
    request: DeskRequest,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session, f, gl) =
        try_page!(report_page(&state, &request, query, "General ledger", "general-ledger").await);
    let rows: Vec<Value> = gl
        .get("rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let entry = r.get("journal_entry").and_then(Value::as_str).unwrap_or("");
            json!({
                "date": r.get("posting_date"),
                "account": r.get("account_path"),
                "entry": r.get("journal_entry_name"),
                "href": format!("/app/e/journal_entry/{}", url_encode(entry)),
                "debit": r.get("debit"),
                "credit": r.get("credit"),
                "balance": r.get("balance"),
                "party": r.get("party"),
                "remark": r.get("remark"),
                "foreign": (r.get("currency") != gl.get("currency")).then(|| format!("{} {} / {}", r.get("currency").and_then(Value::as_str).unwrap_or(""), r.get("debit_in_currency").and_then(Value::as_str).unwrap_or(""), r.get("credit_in_currency").and_then(Value::as_str).unwrap_or(""))),
            })
        })
        .collect();
    let account_label = if f.account.is_empty() {
        None
    } else {
        let answer = session
            .call(
                &state,
                Method::GET,
                &format!("/api/v1/resources/account/{}", url_encode(&f.account)),
                None,
            )
            .await;
        answer
            .body
            .get("account_path")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    session.render(
        &state,
        &desk,
        StatusCode::OK,
        "accounting/ledger.html",
        json!({
            "title": match &account_label { Some(a) => format!("General ledger: {a}"), None => "General ledger".to_owned() },
            "filters": f.context(),
            "currency": gl.get("currency"),
            "opening": gl.get("opening"),
            "closing": gl.get("closing"),
            "total_debit": gl.get("total_debit"),
            "total_credit": gl.get("total_credit"),
            "truncated": gl.get("truncated"),
            "rows": rows,
            "action": "/app/accounting/general-ledger",
            "show_from": true,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_escapes_labels_and_scales_to_the_largest_bar() {
        let svg = income_expense_svg(
            &["<b>Jan</b>".into(), "Feb".into()],
            &[100.0, 50.0],
            &[25.0, 0.0],
            "USD",
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("&lt;b&gt;Jan&lt;/b&gt;"));
        assert!(!svg.contains("<b>"));
        // The tallest bar fills the plot (200 units high).
        assert!(svg.contains("height=\"200.0\" fill=\"#1a7f37\""), "{svg}");
        assert!(svg.contains("height=\"50.0\" fill=\"#b42318\""), "{svg}");
    }

    #[test]
    fn sides_of_a_balance() {
        assert_eq!(side(&json!("10.00"), &json!("2.50")), "Dr 7.50");
        assert_eq!(side(&json!("1.00"), &json!("3.00")), "Cr 2.00");
        assert_eq!(side(&json!("1.00"), &json!("1.00")), "0.00");
        assert_eq!(side(&Value::Null, &Value::Null), "0.00");
    }
}
