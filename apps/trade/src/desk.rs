//! The trade screens of the desk:
//!
//! - "Make" buttons on submitted quotations, orders and invoices (`Make sales order`,
//!   `Make invoice`, `Make payment`, `Make return`), which create the draft through
//!   `POST /api/v1/trade/{entity}/{id}/make/{target}` as the user and open it;
//! - a print view of every selling and buying document (`/app/trade/print/{entity}/{id}`),
//!   HTML with a printing style sheet and the grand total in words;
//! - the reports (ageing, registers, gross profit) with their CSV, and reconciliation:
//!   the suggested matches of advances and invoices, applied with one button.
//!
//! Every figure comes from the API, called in process as the signed-in user.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use cortex::desk::form::{FormData, url_encode};
use cortex::desk::{DeskLayer, DeskLink, DeskRequest};
use prefiq_http::{HttpState, RouteSet};
use serde_json::{Value, json};

use crate::reconcile::RECONCILE;
use crate::reports::READ_REPORTS;

/// The documents that print, and what is made from each (the button's label and target).
const MAKES: &[(&str, &[(&str, &str)])] = &[
    ("quotation", &[("Make sales order", "sales_order")]),
    ("sales_order", &[("Make invoice", "sales_invoice")]),
    ("purchase_order", &[("Make invoice", "purchase_invoice")]),
    (
        "sales_invoice",
        &[
            ("Make payment", "payment_entry"),
            ("Make credit note", "sales_invoice"),
        ],
    ),
    (
        "purchase_invoice",
        &[
            ("Make payment", "payment_entry"),
            ("Make debit note", "purchase_invoice"),
        ],
    ),
];

/// The report pages: path segment, API report, title, whether it is dated by `as_of`.
const REPORTS: &[(&str, &str, bool)] = &[
    ("receivable-ageing", "Accounts receivable ageing", true),
    ("payable-ageing", "Accounts payable ageing", true),
    ("sales-register", "Sales register", false),
    ("purchase-register", "Purchase register", false),
    ("gross-profit", "Gross profit by item", false),
];

/// The most lines whose item names a print view looks up.
const ITEM_NAMES_MAX: usize = 200;

/// What trade adds to the desk.
pub fn layer() -> DeskLayer {
    let link = |label: &str, href: &str, action: &str| DeskLink {
        section: "trade".into(),
        label: label.into(),
        href: href.into(),
        action: Some(action.into()),
    };
    let mut links: Vec<DeskLink> = REPORTS
        .iter()
        .map(|(path, title, _)| link(title, &format!("/app/trade/reports/{path}"), READ_REPORTS))
        .collect();
    links.push(link(
        "Payment reconciliation",
        "/app/trade/reconciliation",
        RECONCILE,
    ));
    let form = include_str!("../desk/document_form.html");
    DeskLayer {
        module: "trade".into(),
        templates: vec![
            ("trade/document_form.html", form),
            ("entity/quotation/form.html", form),
            ("entity/sales_order/form.html", form),
            ("entity/purchase_order/form.html", form),
            ("entity/sales_invoice/form.html", form),
            ("entity/purchase_invoice/form.html", form),
            ("trade/print.html", include_str!("../desk/print.html")),
            ("trade/report.html", include_str!("../desk/report.html")),
            (
                "trade/reconciliation.html",
                include_str!("../desk/reconciliation.html"),
            ),
        ],
        assets: vec![("trade-print.css", include_str!("../desk/print.css"))],
        links,
    }
}

/// The routes of the trade screens.
pub fn routes() -> RouteSet {
    RouteSet::new("trade")
        .post("/app/trade/make/{entity}/{id}/{target}", make)
        .get("/app/trade/print/{entity}/{id}", print)
        .get("/app/trade/reports/{report}", report)
        .get("/app/trade/reconciliation", reconciliation)
        .post("/app/trade/reconciliation", reconcile)
}

/// The buttons a submitted `entity` shows: `(label, target)`.
pub fn makes(entity: &str) -> &'static [(&'static str, &'static str)] {
    MAKES
        .iter()
        .find(|(e, _)| *e == entity)
        .map_or(&[], |(_, makes)| makes)
}

/// `POST /app/trade/make/{entity}/{id}/{target}`: makes the draft and opens it. A payment
/// is made into the company's first bank account; the user changes it on the draft.
pub async fn make(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path((entity, id, target)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let (desk, session, form) = match request.open_form(&state, &body).await {
        Ok(open) => open,
        Err(response) => return response,
    };
    if !makes(&entity).iter().any(|(_, t)| *t == target) {
        return session.message(
            &state,
            &desk,
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("A {target} is not made from a {entity}."),
        );
    }
    let mut draft = json!({});
    // The form may date the draft; it is dated today otherwise.
    if let Some(date) = form
        .get("posting_date")
        .map(str::trim)
        .filter(|d| d.parse::<jiff::civil::Date>().is_ok())
    {
        draft["posting_date"] = json!(date);
    }
    if target == "payment_entry" {
        let source = session
            .call(
                &state,
                Method::GET,
                &format!("/api/v1/resources/{entity}/{}", url_encode(&id)),
                None,
            )
            .await;
        let company = source.body["company"].as_str().unwrap_or_default();
        let filters = json!([
            ["company", "=", company],
            ["account_type", "=", "Bank"],
            ["is_group", "=", false]
        ])
        .to_string();
        let banks = session
            .call(
                &state,
                Method::GET,
                &format!(
                    "/api/v1/resources/account?limit=1&order_by=account_path%20asc&filters={}",
                    url_encode(&filters)
                ),
                None,
            )
            .await;
        if let Some(bank) = banks.body["data"][0]["id"].as_str() {
            draft["account"] = json!(bank);
        }
    }
    let answer = session
        .call(
            &state,
            Method::POST,
            &format!("/api/v1/trade/{entity}/{}/make/{target}", url_encode(&id)),
            Some(&draft),
        )
        .await;
    if !answer.ok() {
        let detail = answer
            .field_errors()
            .into_iter()
            .map(|(pointer, message)| format!("{message} ({pointer})"))
            .collect::<Vec<_>>();
        let text = if detail.is_empty() {
            answer.message()
        } else {
            detail.join("; ")
        };
        return session.message(&state, &desk, answer.status, "Not made", &text);
    }
    let made = answer.body["id"].as_str().unwrap_or_default();
    session.redirect(&format!("/app/e/{target}/{}", url_encode(made)))
}

/// A decimal string's whole part in words and its minor part as a fraction, as invoices
/// and cheques write an amount: "One thousand one hundred ninety and 00/100 EUR".
pub fn amount_in_words(amount: &str, currency: &str) -> String {
    let negative = amount.starts_with('-');
    let digits = amount.trim_start_matches('-');
    let (whole, minor) = digits.split_once('.').unwrap_or((digits, ""));
    let whole: i64 = whole.parse().unwrap_or(0);
    let words = num2words::Num2Words::new(whole)
        .to_words()
        .unwrap_or_else(|_| whole.to_string());
    // US cheque style: "one hundred ninety", so that the one "and" joins the cents.
    let mut words = words.replace(',', "").replace(" and ", " ");
    if let Some(first) = words.get(..1) {
        words = first.to_uppercase() + words.get(1..).unwrap_or_default();
    }
    let minor = if minor.is_empty() {
        String::new()
    } else {
        format!(" and {minor}/1{}", "0".repeat(minor.len()))
    };
    format!(
        "{}{words}{minor} {currency}",
        if negative { "Minus " } else { "" }
    )
}

/// `GET /app/trade/print/{entity}/{id}`: the document as it prints.
pub async fn print(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path((entity, id)): Path<(String, String)>,
) -> Response {
    let (desk, session) = match request.open(&state).await {
        Ok(open) => open,
        Err(response) => return response,
    };
    if makes(&entity).is_empty() {
        return session.message(
            &state,
            &desk,
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("A {entity} does not print here."),
        );
    }
    let doc = session
        .call(
            &state,
            Method::GET,
            &format!("/api/v1/resources/{entity}/{}", url_encode(&id)),
            None,
        )
        .await;
    if !doc.ok() {
        return session.message(&state, &desk, doc.status, "Not found", &doc.message());
    }
    let mut doc = doc.body;
    // Lines print the item's name when they have no description of their own.
    let mut names: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
    if let Some(lines) = doc.get_mut("lines").and_then(Value::as_array_mut) {
        for line in lines.iter_mut().take(ITEM_NAMES_MAX) {
            let item = line["item"].as_str().unwrap_or_default().to_owned();
            if line["description"].as_str().is_some_and(|d| !d.is_empty()) || item.is_empty() {
                continue;
            }
            if !names.contains_key(&item) {
                let answer = session
                    .call(
                        &state,
                        Method::GET,
                        &format!("/api/v1/resources/item/{}", url_encode(&item)),
                        None,
                    )
                    .await;
                names.insert(item.clone(), answer.body["item_name"].clone());
            }
            line["description"] = names[&item].clone();
        }
    }
    let (party_entity, party_label) = if doc.get("customer").is_some() {
        ("customer", "customer_name")
    } else {
        ("supplier", "supplier_name")
    };
    let party_id = doc[party_entity].as_str().unwrap_or_default();
    let party = session
        .call(
            &state,
            Method::GET,
            &format!("/api/v1/resources/{party_entity}/{}", url_encode(party_id)),
            None,
        )
        .await;
    let company = session
        .call(
            &state,
            Method::GET,
            &format!(
                "/api/v1/resources/company/{}",
                url_encode(doc["company"].as_str().unwrap_or_default())
            ),
            None,
        )
        .await;
    let grand = doc["grand_total"]["amount"].as_str().unwrap_or("0");
    let currency = doc["currency"].as_str().unwrap_or_default();
    let title = entity
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ");
    session.render(
        &state,
        &desk,
        StatusCode::OK,
        "trade/print.html",
        json!({
            "title": format!("{title} {}", doc["name"].as_str().unwrap_or_default()),
            "kind": title,
            "doc": doc,
            "party_name": party.body.get(party_label).cloned().unwrap_or(Value::Null),
            "company_name": company.body.get("company_name").cloned().unwrap_or(Value::Null),
            "in_words": amount_in_words(grand, currency),
            "back": format!("/app/e/{entity}/{}", url_encode(&id)),
        }),
    )
}

/// The companies the user may read, and the one the form names (else the first).
pub async fn companies(
    state: &HttpState,
    session: &cortex::desk::Session,
    form: &FormData,
) -> (Vec<Value>, String) {
    let answer = session
        .call(
            state,
            Method::GET,
            "/api/v1/resources/company?limit=100&fields=%5B%22id%22%2C%22company_name%22%5D&order_by=company_name%20asc",
            None,
        )
        .await;
    let companies: Vec<Value> = answer.body["data"].as_array().cloned().unwrap_or_default();
    let company = form
        .get("company")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            companies
                .first()
                .and_then(|c| c["id"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (companies, company)
}

/// `GET /app/trade/reports/{report}?company=&as_of=&from=&to=`.
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
    let Some((_, title, dated)) = REPORTS.iter().find(|(p, _, _)| *p == name) else {
        return session.message(
            &state,
            &desk,
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such report.",
        );
    };
    let form = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let (companies, company) = companies(&state, &session, &form).await;
    let mut params = vec![format!("company={}", url_encode(&company))];
    let keys: &[&str] = if *dated { &["as_of"] } else { &["from", "to"] };
    let mut filters = serde_json::Map::new();
    for key in keys {
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
            &format!("/api/v1/trade/reports/{name}?{query}"),
            None,
        )
        .await;
    let (status, problem) = if answer.ok() {
        (StatusCode::OK, None)
    } else {
        (answer.status, Some(answer.message()))
    };
    let columns: &[&str] = match name.as_str() {
        "receivable-ageing" | "payable-ageing" => crate::reports::AGEING_FIELDS,
        "gross-profit" => crate::reports::GROSS_PROFIT_FIELDS,
        _ => crate::reports::REGISTER_FIELDS,
    };
    let rows: Vec<Vec<Value>> = answer.body["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| columns.iter().map(|c| r[*c].clone()).collect())
        .collect();
    let totals: Vec<Value> = columns
        .iter()
        .map(|c| {
            answer.body["totals"]
                .get(*c)
                .cloned()
                .unwrap_or(Value::Null)
        })
        .collect();
    session.render(
        &state,
        &desk,
        status,
        "trade/report.html",
        json!({
            "title": title,
            "path": name,
            "company": company,
            "companies": companies,
            "dated": dated,
            "filters": filters,
            "problem": problem,
            "columns": columns.iter().map(|c| c.replace('_', " ")).collect::<Vec<_>>(),
            "rows": rows,
            "totals": totals,
            "currency": answer.body["currency"],
            "csv": format!("/api/v1/trade/reports/{name}?{query}&format=csv"),
        }),
    )
}

/// `GET /app/trade/reconciliation?company=&party_type=`: the suggested matches.
pub async fn reconciliation(
    State(state): State<HttpState>,
    request: DeskRequest,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session) = match request.open(&state).await {
        Ok(open) => open,
        Err(response) => return response,
    };
    let form = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    reconciliation_page(&state, &desk, &session, &form, None).await
}

async fn reconciliation_page(
    state: &HttpState,
    desk: &cortex::desk::Desk,
    session: &cortex::desk::Session,
    form: &FormData,
    notice: Option<String>,
) -> Response {
    let (companies, company) = companies(state, session, form).await;
    let party_type = match form.get("party_type") {
        Some("Supplier") => "Supplier",
        _ => "Customer",
    };
    let answer = session
        .call(
            state,
            Method::GET,
            &format!(
                "/api/v1/trade/reconciliation?company={}&party_type={party_type}",
                url_encode(&company)
            ),
            None,
        )
        .await;
    let (status, problem) = if answer.ok() {
        (StatusCode::OK, None)
    } else {
        (answer.status, Some(answer.message()))
    };
    session.render(
        state,
        desk,
        status,
        "trade/reconciliation.html",
        json!({
            "title": "Payment reconciliation",
            "company": company,
            "companies": companies,
            "party_type": party_type,
            "problem": problem,
            "notice": notice,
            "payments": answer.body["payments"],
            "invoices": answer.body["invoices"],
            "suggestions": answer.body["suggestions"],
            "suggestions_json": answer.body["suggestions"].to_string(),
        }),
    )
}

/// `POST /app/trade/reconciliation`: applies the suggestions shown (as they were shown:
/// the form carries them), all or none.
pub async fn reconcile(
    State(state): State<HttpState>,
    request: DeskRequest,
    body: Bytes,
) -> Response {
    let (desk, session, form) = match request.open_form(&state, &body).await {
        Ok(open) => open,
        Err(response) => return response,
    };
    let allocations: Value = form
        .get("allocations")
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or(Value::Null);
    let answer = session
        .call(
            &state,
            Method::POST,
            "/api/v1/trade/reconciliation",
            Some(&json!({"allocations": allocations})),
        )
        .await;
    let notice = if answer.ok() {
        format!(
            "{} allocations applied.",
            answer.body["data"].as_array().map_or(0, Vec::len)
        )
    } else {
        format!("Nothing applied: {}", answer.message())
    };
    reconciliation_page(&state, &desk, &session, &form, Some(notice)).await
}
