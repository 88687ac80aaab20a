//! The CRM's page of the desk: the pipeline report as a table, with its filters, and a
//! link to it on the home page for those who may read the CRM's reports. Every figure
//! comes from the pipeline API, called in process as the signed-in user.

use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use cortex::desk::form::{FormData, url_encode};
use cortex::desk::{DeskLayer, DeskLink, DeskRequest};
use prefiq_http::{HttpState, RouteSet};
use serde_json::{Value, json};

use crate::routes::READ_REPORTS;

/// What the CRM adds to the desk.
pub fn layer() -> DeskLayer {
    DeskLayer {
        module: "crm".into(),
        templates: vec![
            ("crm/pipeline.html", include_str!("../desk/pipeline.html")),
            (
                "entity/lead/form.html",
                include_str!("../desk/lead_form.html"),
            ),
        ],
        assets: vec![],
        links: vec![DeskLink {
            section: "crm".into(),
            label: "Sales pipeline".into(),
            href: "/app/crm/pipeline".into(),
            action: Some(READ_REPORTS.into()),
        }],
    }
}

/// The routes of the CRM's pages.
pub fn routes() -> RouteSet {
    RouteSet::new("crm")
        .get("/app/crm/pipeline", pipeline)
        .post("/app/crm/leads/{id}/convert", convert)
}

/// A date the user typed, kept only when it is one (`YYYY-MM-DD`).
fn date_param(form: &FormData, name: &str) -> String {
    form.get(name)
        .map(str::trim)
        .filter(|d| d.len() == 10 && accounting::dates::parse(d).is_some())
        .unwrap_or("")
        .to_owned()
}

/// `GET /app/crm/pipeline?company=&from=&to=`: the pipeline of a company. The company is
/// chosen from those the user may read, or typed by name or abbreviation when the user
/// may read none (selling roles need not read companies to see their pipeline).
pub async fn pipeline(
    State(state): State<HttpState>,
    request: DeskRequest,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session) = match request.open(&state).await {
        Ok(open) => open,
        Err(response) => return response,
    };
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let listed = session
        .call(
            &state,
            Method::GET,
            "/api/v1/resources/company?limit=100&fields=%5B%22id%22%2C%22company_name%22%5D&order_by=company_name%20asc",
            None,
        )
        .await;
    let companies: Vec<Value> = if listed.ok() {
        listed
            .body
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let asked = query.get("company").map(str::trim).unwrap_or("");
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
    let (from, to) = (date_param(&query, "from"), date_param(&query, "to"));
    let (status, report, error) = if company.is_empty() {
        (StatusCode::OK, Value::Null, Value::Null)
    } else {
        let mut uri = format!(
            "/api/v1/crm/reports/pipeline?company={}",
            url_encode(&company)
        );
        for (name, value) in [("from", &from), ("to", &to)] {
            if !value.is_empty() {
                uri.push_str(&format!("&{name}={}", url_encode(value)));
            }
        }
        let answer = session.call(&state, Method::GET, &uri, None).await;
        if answer.ok() {
            (StatusCode::OK, answer.body, Value::Null)
        } else {
            (answer.status, Value::Null, json!(answer.message()))
        }
    };
    session.render(
        &state,
        &desk,
        status,
        "crm/pipeline.html",
        json!({
            "title": "Sales pipeline",
            "companies": companies,
            "company": company,
            "from": from,
            "to": to,
            "report": report,
            "error": error,
        }),
    )
}

/// `POST /app/crm/leads/{id}/convert`: converts the lead through the API as the user,
/// into a customer with the company's first receivable account in the company's
/// currency, and opens the customer.
pub async fn convert(
    State(state): State<HttpState>,
    request: DeskRequest,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (desk, session, _form) = match request.open_form(&state, &body).await {
        Ok(open) => open,
        Err(response) => return response,
    };
    let lead = session
        .call(
            &state,
            Method::GET,
            &format!("/api/v1/resources/lead/{}", url_encode(&id)),
            None,
        )
        .await;
    if !lead.ok() {
        return session.message(&state, &desk, lead.status, "Not converted", &lead.message());
    }
    let company = lead.body["company"].as_str().unwrap_or_default();
    let filters = json!([
        ["company", "=", company],
        ["account_type", "=", "Receivable"],
        ["is_group", "=", false]
    ])
    .to_string();
    let receivable = session
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
    let account = receivable.body["data"][0]["id"].clone();
    let answer = session
        .call(
            &state,
            Method::POST,
            &format!("/api/v1/crm/leads/{}/convert", url_encode(&id)),
            Some(&json!({"customer": {"receivable_account": account}})),
        )
        .await;
    if !answer.ok() {
        let detail: Vec<String> = answer
            .field_errors()
            .into_iter()
            .map(|(pointer, message)| format!("{message} ({pointer})"))
            .collect();
        let text = if detail.is_empty() {
            answer.message()
        } else {
            detail.join("; ")
        };
        return session.message(&state, &desk, answer.status, "Not converted", &text);
    }
    let customer = answer.body["customer"]["id"].as_str().unwrap_or_default();
    session.redirect(&format!("/app/e/customer/{}", url_encode(customer)))
}
