//! The webhooks' screens of the desk: the tenant's webhooks, and per webhook the log of
//! its deliveries (status, attempt, response code, duration, time) with a Redeliver
//! button on each. The generic pages of the `webhook` entity link here too.
//!
//! Like every desk page, these are clients of the API in the same process: they call the
//! webhooks routes as the signed-in user, so a user without `webhooks.manage` (in a
//! tenant whose policies add none, anyone but a System Manager) gets the API's refusal.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use cortex::desk::form::{FormData, url_encode};
use cortex::desk::{Answer, Desk, DeskLayer, DeskLink, DeskRequest, Session};
use prefiq_http::{HttpState, RouteSet};
use serde_json::{Value, json};

use crate::routes::MANAGE;

/// Deliveries one page shows.
const PAGE_DELIVERIES: u32 = 50;

/// Webhooks one page shows.
const PAGE_WEBHOOKS: u32 = 50;

/// Characters of a delivery's error the log shows.
const ERROR_CHARS: usize = 200;

macro_rules! try_page {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

/// What webhooks adds to the desk.
pub fn layer() -> DeskLayer {
    DeskLayer {
        module: "webhooks".into(),
        templates: vec![
            ("webhooks/index.html", include_str!("../desk/index.html")),
            (
                "webhooks/deliveries.html",
                include_str!("../desk/deliveries.html"),
            ),
            (
                "entity/webhook/form.html",
                include_str!("../desk/webhook_form.html"),
            ),
            (
                "entity/webhook/list.html",
                include_str!("../desk/webhook_list.html"),
            ),
        ],
        assets: vec![],
        links: vec![DeskLink {
            section: "webhooks".into(),
            label: "Webhooks and deliveries".into(),
            href: "/app/webhooks".into(),
            action: Some(MANAGE.into()),
        }],
    }
}

/// The routes of the webhooks' screens.
pub fn routes() -> RouteSet {
    RouteSet::new("webhooks")
        .get("/app/webhooks", index)
        .get("/app/webhooks/{id}", deliveries)
        .post(
            "/app/webhooks/{id}/deliveries/{delivery}/redeliver",
            redeliver,
        )
}

/// The page that takes the place of one the API refused or could not answer.
fn refused(state: &HttpState, desk: &Desk, session: &Session, answer: &Answer) -> Response {
    let title = if answer.status == StatusCode::FORBIDDEN {
        "Not allowed"
    } else {
        "Not shown"
    };
    session.message(state, desk, answer.status, title, &answer.message())
}

/// A time the API gives as RFC 3339, as the desk shows it: to the second, in UTC.
fn time_view(text: &str) -> Value {
    match text.parse::<jiff::Timestamp>() {
        Ok(time) => json!({
            "iso": time.to_string(),
            "text": time.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }),
        Err(_) => json!({ "iso": text, "text": text }),
    }
}

/// `GET /app/webhooks`: the tenant's webhooks, each with a link to its deliveries.
pub async fn index(
    State(state): State<HttpState>,
    request: DeskRequest,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let cursor = query.get("cursor").unwrap_or("").trim();
    let mut uri = format!("/api/v1/webhooks?limit={PAGE_WEBHOOKS}");
    if !cursor.is_empty() {
        uri.push_str(&format!("&cursor={}", url_encode(cursor)));
    }
    let answer = session.call(&state, Method::GET, &uri, None).await;
    if !answer.ok() {
        return refused(&state, &desk, &session, &answer);
    }
    let hooks: Vec<Value> = answer
        .body
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|hook| {
            let id = hook.get("id").and_then(Value::as_str).unwrap_or("");
            let events: Vec<&str> = hook
                .get("events")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            json!({
                "url": hook.get("url"),
                "events": events.join(", "),
                "status": hook.get("status"),
                "description": hook.get("description"),
                "href": format!("/app/webhooks/{}", url_encode(id)),
                "record_href": format!("/app/e/webhook/{}", url_encode(id)),
            })
        })
        .collect();
    let next = answer
        .body
        .get("next_cursor")
        .and_then(Value::as_str)
        .map(|c| format!("/app/webhooks?cursor={}", url_encode(c)));
    session.render(
        &state,
        &desk,
        StatusCode::OK,
        "webhooks/index.html",
        json!({
            "title": "Webhooks",
            "webhooks": hooks,
            "next": next,
            "first": (!cursor.is_empty()).then_some("/app/webhooks"),
        }),
    )
}

/// What the deliveries page says besides the log: a notice, or a problem and the status
/// it is shown with.
struct Outcome {
    status: StatusCode,
    notice: Option<String>,
    job_href: Option<String>,
    problem: Option<String>,
}

/// `GET /app/webhooks/{id}`: the webhook's deliveries, newest first (`before` pages back).
pub async fn deliveries(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let mut outcome = Outcome {
        status: StatusCode::OK,
        notice: None,
        job_href: None,
        problem: None,
    };
    if let Some(delivery) = query.get("redelivered") {
        let job = query.get("job").and_then(|j| j.parse::<i64>().ok());
        outcome.notice = Some(match job {
            Some(job) => format!("Delivery {delivery} is queued to be sent again, as job {job}."),
            None => format!("Delivery {delivery} is queued to be sent again."),
        });
        // The job's page is the System Manager's (see cortex's jobs pages).
        if session
            .principal
            .roles
            .iter()
            .any(|r| r == prefiq_auth::authz::ADMINISTRATOR)
        {
            outcome.job_href = job.map(|job| format!("/app/admin/jobs/{job}"));
        }
    }
    let before = match query.get("before").map(str::parse::<i64>) {
        None => None,
        Some(Ok(before)) => Some(before),
        Some(Err(_)) => {
            return session.message(
                &state,
                &desk,
                StatusCode::BAD_REQUEST,
                "Not shown",
                "`before` is the number of a delivery.",
            );
        }
    };
    deliveries_page(&state, &desk, &session, &id, before, outcome).await
}

async fn deliveries_page(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    id: &str,
    before: Option<i64>,
    outcome: Outcome,
) -> Response {
    let base = format!("/app/webhooks/{}", url_encode(id));
    let mut uri = format!(
        "/api/v1/webhooks/{}/deliveries?limit={PAGE_DELIVERIES}",
        url_encode(id)
    );
    if let Some(before) = before {
        uri.push_str(&format!("&before={before}"));
    }
    // The deliveries route checks `webhooks.manage` and that the webhook exists, so it
    // goes first: a refused user sees the refusal, not the record's own error.
    let log = session.call(state, Method::GET, &uri, None).await;
    if !log.ok() {
        return refused(state, desk, session, &log);
    }
    let record = session
        .call(
            state,
            Method::GET,
            &format!("/api/v1/resources/webhook/{}", url_encode(id)),
            None,
        )
        .await;
    if !record.ok() {
        return refused(state, desk, session, &record);
    }
    let rows: Vec<Value> = log
        .body
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|d| {
            let number = d.get("id").and_then(Value::as_i64).unwrap_or_default();
            let error = d.get("error").and_then(Value::as_str).map(|e| {
                let mut short: String = e.chars().take(ERROR_CHARS).collect();
                if short.len() < e.len() {
                    short.push('…');
                }
                short
            });
            json!({
                "id": number,
                "event": d.get("event"),
                "event_id": d.get("event_id"),
                "attempt": d.get("attempt"),
                "status": d.get("status"),
                "response_code": d.get("response_code"),
                "duration_ms": d.get("duration_ms"),
                "error": error,
                "time": time_view(d.get("created_at").and_then(Value::as_str).unwrap_or("")),
                "redeliver": format!("{base}/deliveries/{number}/redeliver"),
            })
        })
        .collect();
    let next = log
        .body
        .get("next_before")
        .and_then(Value::as_i64)
        .map(|b| format!("{base}?before={b}"));
    let hook = &record.body;
    let events: Vec<&str> = hook
        .get("events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    session.render(
        state,
        desk,
        outcome.status,
        "webhooks/deliveries.html",
        json!({
            "title": format!("Deliveries to {}", hook.get("url").and_then(Value::as_str).unwrap_or(id)),
            "webhook": {
                "id": id,
                "url": hook.get("url"),
                "events": events.join(", "),
                "status": hook.get("status"),
                "failing_since": hook.get("failing_since"),
                "record_href": format!("/app/e/webhook/{}", url_encode(id)),
            },
            "deliveries": rows,
            "next": next,
            "first": before.is_some().then_some(base),
            "notice": outcome.notice,
            "job_href": outcome.job_href,
            "problem": outcome.problem,
        }),
    )
}

/// `POST /app/webhooks/{id}/deliveries/{delivery}/redeliver`: sends the delivery's event
/// again (as a new job), then back to the log.
pub async fn redeliver(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path((id, delivery)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (desk, session, _) = try_page!(request.open_form(&state, &body).await);
    let answer = session
        .call(
            &state,
            Method::POST,
            &format!(
                "/api/v1/webhooks/{}/deliveries/{}/redeliver",
                url_encode(&id),
                url_encode(&delivery)
            ),
            None,
        )
        .await;
    if answer.ok() {
        let mut to = format!(
            "/app/webhooks/{}?redelivered={}",
            url_encode(&id),
            url_encode(&delivery)
        );
        if let Some(job) = answer.body.get("job").and_then(Value::as_i64) {
            to.push_str(&format!("&job={job}"));
        }
        return session.redirect(&to);
    }
    // Shown beside the log; a user refused, or a webhook that is not there, gets the
    // log's own refusal instead.
    let outcome = Outcome {
        status: answer.status,
        notice: None,
        job_href: None,
        problem: Some(answer.message()),
    };
    deliveries_page(&state, &desk, &session, &id, None, outcome).await
}
