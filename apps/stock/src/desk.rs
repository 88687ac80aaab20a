//! The stock screens of the desk: a page per stock report (stock balance, stock ledger,
//! stock ageing, items below their reorder level, gross profit with the real cost of
//! goods sold), with its filters and its CSV. Warehouses, stock entries, delivery notes,
//! purchase receipts, batches and reorder levels are the desk's own entity forms.
//!
//! Every figure comes from the API, called in process as the signed-in user, so a
//! report the user may not read is refused here as it is there.

use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use cortex::desk::form::{FormData, url_encode};
use cortex::desk::{DeskLayer, DeskLink, DeskRequest};
use prefiq_http::{HttpState, RouteSet};
use serde_json::{Value, json};

use crate::reports::READ_REPORTS;

/// A report page: its path segment, title, the filters it takes and its columns.
struct ReportPage {
    path: &'static str,
    title: &'static str,
    keys: &'static [&'static str],
    columns: &'static [&'static str],
}

/// The report pages.
const REPORTS: &[ReportPage] = &[
    ReportPage {
        path: "stock-balance",
        title: "Stock balance",
        keys: &["as_of"],
        columns: crate::reports::BALANCE_FIELDS,
    },
    ReportPage {
        path: "stock-ledger",
        title: "Stock ledger",
        keys: &["from", "to"],
        columns: crate::reports::LEDGER_FIELDS,
    },
    ReportPage {
        path: "stock-ageing",
        title: "Stock ageing",
        keys: &["as_of"],
        columns: crate::ageing::AGEING_FIELDS,
    },
    ReportPage {
        path: "below-reorder",
        title: "Items below their reorder level",
        keys: &[],
        columns: crate::reorder::BELOW_FIELDS,
    },
    ReportPage {
        path: "gross-profit",
        title: "Gross profit by item (cost of goods sold)",
        keys: &["from", "to"],
        columns: trade::reports::GROSS_PROFIT_FIELDS,
    },
];

/// What stock adds to the desk: its report pages' links and template.
pub fn layer() -> DeskLayer {
    DeskLayer {
        module: "stock".into(),
        templates: vec![("stock/report.html", include_str!("../desk/report.html"))],
        assets: Vec::new(),
        links: REPORTS
            .iter()
            .map(|r| DeskLink {
                section: "stock".into(),
                label: r.title.into(),
                href: format!("/app/stock/reports/{}", r.path),
                action: Some(READ_REPORTS.into()),
            })
            .collect(),
    }
}

/// The desk routes of stock.
pub fn routes() -> RouteSet {
    RouteSet::new("stock-desk").get("/app/stock/reports/{report}", report)
}

/// `GET /app/stock/reports/{report}?company=&as_of=&from=&to=`.
pub async fn report(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session) = match request.open(&state).await {
        Ok(open) => open,
        Err(response) => return response,
    };
    let Some(page) = REPORTS.iter().find(|r| r.path == name) else {
        return session.message(
            &state,
            &desk,
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such report.",
        );
    };
    let form = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let (companies, company) = trade::desk::companies(&state, &session, &form).await;
    let mut params = vec![format!("company={}", url_encode(&company))];
    let mut filters = serde_json::Map::new();
    for key in page.keys {
        if let Some(value) = form.get(key).map(str::trim).filter(|v| v.len() == 10) {
            params.push(format!("{key}={}", url_encode(value)));
            filters.insert((*key).into(), json!(value));
        }
    }
    let query = params.join("&");
    let answer = session
        .call(
            &state,
            Method::GET,
            &format!("/api/v1/stock/reports/{name}?{query}"),
            None,
        )
        .await;
    let (status, problem) = if answer.ok() {
        (StatusCode::OK, None)
    } else {
        (answer.status, Some(answer.message()))
    };
    let rows: Vec<Vec<Value>> = answer.body["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| page.columns.iter().map(|c| r[*c].clone()).collect())
        .collect();
    session.render(
        &state,
        &desk,
        status,
        "stock/report.html",
        json!({
            "title": page.title,
            "company": company,
            "companies": companies,
            "keys": page.keys,
            "filters": filters,
            "problem": problem,
            "columns": page.columns.iter().map(|c| c.replace('_', " ")).collect::<Vec<_>>(),
            "rows": rows,
            "currency": answer.body["currency"],
            "csv": format!("/api/v1/stock/reports/{name}?{query}&format=csv"),
        }),
    )
}
