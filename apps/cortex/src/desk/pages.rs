//! The desk's pages: login, home, and the list, form and history of every entity.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use prefiq::InstalledModules;
use prefiq_data::entity::EntitySchema;
use prefiq_data::entity::repo::{EntityAuthorizer, Repository};
use prefiq_data::entity::schema::{FieldDef, FieldKind};
use prefiq_http::HttpState;
use serde_json::{Map, Value, json};

use super::form::{self, FormData, title_field, url_encode};
use super::{
    CSRF_COOKIE, Desk, DeskRequest, REFRESH_COOKIE, SESSION_COOKIE, Session, USER_COOKIE, desk,
    random_token,
};

/// Columns a generated list shows besides the name.
const LIST_COLUMNS: usize = 5;

/// Characters of a long text a list cell shows.
const LIST_TEXT_CHARS: usize = 80;

/// Rows a list page shows unless asked for another size.
const PAGE_ROWS: u32 = 20;

/// Most ids a bulk action takes at once.
const MAX_BULK: usize = 200;

/// Most records the history page shows.
const HISTORY_LIMIT: u32 = 200;

macro_rules! try_page {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

/// A `next` target that stays on this site's desk.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/app") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_owned()
        }
        _ => "/app".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Login, logout, static files

/// `GET /app/login`.
pub async fn login_page(
    State(state): State<HttpState>,
    request: DeskRequest,
    RawQuery(query): RawQuery,
) -> Response {
    let desk = try_page!(desk(&state));
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    login_form(
        &state,
        &desk,
        &request,
        StatusCode::OK,
        &safe_next(query.get("next")),
        "",
        "",
    )
}

fn login_form(
    state: &HttpState,
    desk: &Desk,
    request: &DeskRequest,
    status: StatusCode,
    next: &str,
    email: &str,
    error: &str,
) -> Response {
    // The login form needs a CSRF token before there is a session (bound to the old
    // session when the browser still has one, as the form's check will expect).
    let csrf = request.expected_csrf(desk).unwrap_or_else(random_token);
    let fresh =
        super::cookie_value(&request.headers, CSRF_COOKIE).as_deref() != Some(csrf.as_str());
    let context = json!({
        "app_name": state.config.app.name,
        "csrf": csrf,
        "next": next,
        "email": email,
        "tenant": request.tenant_hint(),
        "error": (!error.is_empty()).then_some(error),
    });
    let mut response = desk.render(request.tenant_hint(), status, "login.html", &context);
    if fresh
        && let Ok(value) = HeaderValue::from_str(&desk.cookie(CSRF_COOKIE, &csrf, 30 * 24 * 3600))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `POST /app/login`: signs in through `POST /api/v1/auth/login`.
pub async fn login(State(state): State<HttpState>, request: DeskRequest, body: Bytes) -> Response {
    let desk = try_page!(desk(&state));
    let form = FormData::parse(&body).unwrap_or_default();
    try_page!(request.check_form(&desk, &form));
    let next = safe_next(form.get("next"));
    let email = form.get("email").unwrap_or("").trim().to_owned();
    let password = form.get("password").unwrap_or("");
    let tenant = match request.tenant_hint() {
        Some(t) => t.to_owned(),
        None => form.get("tenant").unwrap_or("").trim().to_ascii_lowercase(),
    };
    if tenant.is_empty() || email.is_empty() || password.is_empty() {
        return login_form(
            &state,
            &desk,
            &request,
            StatusCode::UNPROCESSABLE_ENTITY,
            &next,
            &email,
            "Enter your organisation, email and password.",
        );
    }
    let answer = request
        .call_anonymous(
            &state,
            Method::POST,
            "/api/v1/auth/login",
            request.tenant_hint().is_none().then_some(tenant.as_str()),
            Some(&json!({ "email": email, "password": password })),
        )
        .await;
    let (Some(access), Some(refresh)) = (
        answer.body.get("access_token").and_then(Value::as_str),
        answer.body.get("refresh_token").and_then(Value::as_str),
    ) else {
        let message = if answer.status == StatusCode::TOO_MANY_REQUESTS {
            answer.message()
        } else if answer.status.is_client_error() {
            "The email or password is wrong, or the account is locked for a while.".to_owned()
        } else {
            answer.message()
        };
        return login_form(
            &state,
            &desk,
            &request,
            if answer.status.is_success() {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                answer.status
            },
            &next,
            &email,
            &message,
        );
    };
    let refresh_s = answer
        .body
        .get("refresh_expires_in")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    let mut response = Redirect::to(&next).into_response();
    for cookie in [
        desk.cookie(SESSION_COOKIE, access, refresh_s),
        desk.cookie(REFRESH_COOKIE, refresh, refresh_s),
        desk.cookie(USER_COOKIE, &url_encode(&email), refresh_s),
        // The new session's CSRF token; the login form's is spent.
        desk.cookie(CSRF_COOKIE, &desk.csrf_token(refresh), refresh_s),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// `POST /app/logout`: revokes the refresh token's family and clears the cookies.
pub async fn logout(State(state): State<HttpState>, request: DeskRequest, body: Bytes) -> Response {
    let desk = try_page!(desk(&state));
    let form = FormData::parse(&body).unwrap_or_default();
    try_page!(request.check_form(&desk, &form));
    if let Some(refresh) = super::cookie_value(&request.headers, REFRESH_COOKIE) {
        let _ = request
            .call_anonymous(
                &state,
                Method::POST,
                "/api/v1/auth/logout",
                None,
                Some(&json!({ "refresh_token": refresh })),
            )
            .await;
    }
    let mut response = Redirect::to("/app/login").into_response();
    for name in [SESSION_COOKIE, REFRESH_COOKIE, USER_COOKIE] {
        if let Ok(value) = HeaderValue::from_str(&desk.cookie(name, "", 0)) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// `GET /app/static/{file}`: a layered static file (the tenant's theme first).
pub async fn asset(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(file): Path<String>,
) -> Response {
    let desk = try_page!(desk(&state));
    let mut tenant = request.tenant_hint().map(str::to_owned);
    if tenant.is_none()
        && let (Some(token), Some(authenticator)) = (
            super::cookie_value(&request.headers, SESSION_COOKIE),
            state.authenticator.as_ref(),
        )
    {
        tenant = authenticator
            .authenticate(&token)
            .await
            .ok()
            .map(|p| p.tenant);
    }
    let Some(bytes) = desk.renderer().asset(tenant.as_deref(), &file) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let etag = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(&bytes);
        format!(
            "\"{}\"",
            digest[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    };
    if request
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let content_type = match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

// ---------------------------------------------------------------------------------------
// Home

/// `GET /app`: the modules and pages the user may use.
pub async fn home(State(state): State<HttpState>, request: DeskRequest) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    let Ok(repository) = state.services.get::<Repository>("cortex desk") else {
        return session.message(
            &state,
            &desk,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "The entity engine is not available.",
        );
    };
    let registry = repository.registry().visible_to(Some(session.tenant()));
    let modules = state
        .services
        .get::<InstalledModules>("cortex desk")
        .ok()
        .map(|m| m.list().to_vec())
        .unwrap_or_default();
    let mut sections: Vec<Value> = Vec::new();
    let mut seen = Vec::new();
    for module in &modules {
        let mut entities = Vec::new();
        for schema in registry
            .all()
            .filter(|s| s.module == module.name && !s.child)
        {
            seen.push(schema.name.clone());
            if session.may_on(&state, schema, "read", None).await {
                entities.push(
                    json!({ "label": schema.label, "href": format!("/app/e/{}", schema.name) }),
                );
            }
        }
        let mut links = Vec::new();
        for link in desk.links.iter().filter(|l| l.section == module.name) {
            let allowed = match &link.action {
                Some(action) => session.may(&state, action).await,
                None => true,
            };
            if allowed {
                links.push(json!({ "label": link.label, "href": link.href }));
            }
        }
        if !entities.is_empty() || !links.is_empty() {
            sections.push(json!({
                "name": module.name,
                "description": module.description,
                "links": links,
                "entities": entities,
            }));
        }
    }
    // A tenant's own entities, made at run time, are a section of their own.
    let mut own = Vec::new();
    for schema in registry
        .all()
        .filter(|s| !s.child && !seen.contains(&s.name))
    {
        if session.may_on(&state, schema, "read", None).await {
            own.push(json!({ "label": schema.label, "href": format!("/app/e/{}", schema.name) }));
        }
    }
    if !own.is_empty() {
        sections.push(json!({ "name": "custom", "description": "Entities made for this organisation.", "links": [], "entities": own }));
    }
    let mut admin = Vec::new();
    for (action, label, href) in [
        (crate::access::MANAGE_USERS, "Users", "/app/admin/users"),
        (
            crate::access::MANAGE_POLICIES,
            "Roles and policies",
            "/app/admin/roles",
        ),
        (
            crate::settings::MANAGE_SETTINGS,
            "Settings",
            "/app/admin/settings",
        ),
        (crate::audit::READ_AUDIT, "Audit log", "/app/audit"),
    ] {
        if session.may(&state, action).await {
            admin.push(json!({ "label": label, "href": href }));
        }
    }
    session.render(
        &state,
        &desk,
        StatusCode::OK,
        "home.html",
        json!({ "title": "Home", "sections": sections, "admin": admin }),
    )
}

// ---------------------------------------------------------------------------------------
// Schemas and link titles

async fn schema_of(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    entity: &str,
) -> Result<(Arc<Repository>, Arc<EntitySchema>, Arc<Vec<FieldDef>>), Response> {
    let not_found = || {
        session.message(
            state,
            desk,
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("There is no entity called “{entity}”."),
        )
    };
    let repository = state
        .services
        .get::<Repository>("cortex desk")
        .map_err(|_| not_found())?;
    let scope = session.scope().ok_or_else(not_found)?;
    let schema = repository
        .schema(&scope, entity)
        .await
        .map_err(|_| not_found())?;
    let custom = repository
        .custom_fields(&scope, entity)
        .await
        .unwrap_or_default();
    Ok((repository, schema, custom))
}

/// The titles of linked rows, by target entity and id, in one list call per target.
async fn link_titles(
    state: &HttpState,
    session: &Session,
    repository: &Repository,
    wanted: BTreeMap<String, Vec<String>>,
) -> HashMap<(String, String), String> {
    let mut titles = HashMap::new();
    let registry = repository.registry().visible_to(Some(session.tenant()));
    for (target, mut ids) in wanted {
        ids.sort();
        ids.dedup();
        ids.truncate(500);
        let Some(schema) = registry.get(&target) else {
            continue;
        };
        let title = title_field(schema);
        let uri = format!(
            "/api/v1/resources/{target}?limit=500&fields={}&filters={}",
            url_encode(&json!(["id", title]).to_string()),
            url_encode(&json!([["id", "in", ids]]).to_string())
        );
        let answer = session.call(state, Method::GET, &uri, None).await;
        for row in answer
            .body
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(id), Some(text)) = (
                row.get("id").and_then(Value::as_str),
                row.get(&title).and_then(Value::as_str),
            ) {
                titles.insert((target.clone(), id.to_owned()), text.to_owned());
            }
        }
    }
    titles
}

/// The id of the `target` row that `text` names: its id, or its exact title.
async fn resolve_link(
    state: &HttpState,
    session: &Session,
    repository: &Repository,
    target: &str,
    text: &str,
) -> Result<String, String> {
    let registry = repository.registry().visible_to(Some(session.tenant()));
    let Some(schema) = registry.get(target) else {
        return Err(format!("`{target}` is not an entity"));
    };
    let title = title_field(schema);
    let uri = format!(
        "/api/v1/resources/{target}?limit=2&fields={}&filters={}",
        url_encode(&json!(["id"]).to_string()),
        url_encode(&json!([[title, "=", text]]).to_string())
    );
    let answer = session.call(state, Method::GET, &uri, None).await;
    let rows = answer
        .body
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match rows.len() {
        1 => Ok(rows[0]
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()),
        0 => {
            let by_id = session
                .call(
                    state,
                    Method::GET,
                    &format!("/api/v1/resources/{target}/{}", url_encode(text)),
                    None,
                )
                .await;
            if by_id.ok() {
                Ok(text.to_owned())
            } else {
                Err(format!("no {} is called “{text}”", schema.label))
            }
        }
        _ => Err(format!(
            "several of {} are called “{text}”; pick one from the suggestions",
            schema.label
        )),
    }
}

/// Record `id` of `entity` as the API shows it to the session's user, or the page that
/// says why it cannot be shown.
async fn fetch_record(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    entity: &str,
    id: &str,
) -> Result<Map<String, Value>, Response> {
    let answer = session
        .call(
            state,
            Method::GET,
            &format!("/api/v1/resources/{entity}/{}", url_encode(id)),
            None,
        )
        .await;
    if !answer.ok() {
        return Err(session.message(state, desk, answer.status, "Not shown", &answer.message()));
    }
    Ok(form::fields_of(&answer.body))
}

// ---------------------------------------------------------------------------------------
// Lists

/// The fields a list shows: up to five scalar fields.
fn list_columns(schema: &EntitySchema) -> Vec<&FieldDef> {
    schema
        .fields
        .iter()
        .filter(|f| !matches!(f.kind, FieldKind::Table { .. } | FieldKind::Json) && !f.pii)
        .take(LIST_COLUMNS)
        .collect()
}

/// `GET /app/e/{entity}`: a page of rows with filters, sort, count and paging.
pub async fn list(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(entity): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    render_list(&state, &desk, &session, &entity, &query, None).await
}

pub(super) async fn render_list(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    entity: &str,
    query: &FormData,
    notice: Option<Value>,
) -> Response {
    let (repository, schema, _) = try_page!(schema_of(state, desk, session, entity).await);
    let columns = list_columns(&schema);
    let title = title_field(&schema);
    // Filters: text fields match a part, the others the whole value.
    let mut filters = Vec::new();
    let mut filter_views = Vec::new();
    let mut kept = Vec::new();
    for field in &columns {
        let value = query.get(&format!("f.{}", field.name)).unwrap_or("").trim();
        if !value.is_empty() {
            kept.push(format!("f.{}={}", field.name, url_encode(value)));
            let condition = match &field.kind {
                FieldKind::Data | FieldKind::Email => {
                    json!([field.name, "like", format!("%{value}%")])
                }
                FieldKind::Bool => json!([field.name, "=", value == "true"]),
                FieldKind::Int => match value.parse::<i64>() {
                    Ok(n) => json!([field.name, "=", n]),
                    Err(_) => json!([field.name, "=", value]),
                },
                _ => json!([field.name, "=", value]),
            };
            filters.push(condition);
        }
        let mut view = json!({
            "name": field.name,
            "input": format!("f.{}", field.name),
            "dom_id": format!("filter-{}", field.name),
            "label": field.label,
            "value": value,
            "kind": match &field.kind {
                FieldKind::Select { .. } => "select",
                FieldKind::Bool => "bool",
                FieldKind::Date => "date",
                _ => "text",
            },
        });
        if let FieldKind::Select { options } = &field.kind {
            view["options"] = json!(options);
        }
        filter_views.push(view);
    }
    let search = query.get("q").unwrap_or("").trim();
    if !search.is_empty() {
        kept.push(format!("q={}", url_encode(search)));
        filters.push(json!([title, "like", format!("%{search}%")]));
    }
    let sort = query
        .get("sort")
        .filter(|s| *s == "name" || *s == "modified_at" || columns.iter().any(|c| c.name == *s))
        .unwrap_or("modified_at");
    let dir = if query.get("dir") == Some("asc") {
        "asc"
    } else {
        "desc"
    };
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<u32>().ok())
        .filter(|l| (1..=500).contains(l))
        .unwrap_or(PAGE_ROWS);
    let mut uri = format!(
        "/api/v1/resources/{entity}?total=true&limit={limit}&order_by={}",
        url_encode(&format!("{sort} {dir}"))
    );
    if !filters.is_empty() {
        uri.push_str(&format!(
            "&filters={}",
            url_encode(&Value::Array(filters).to_string())
        ));
    }
    let cursor = query.get("cursor").filter(|c| !c.is_empty());
    if let Some(cursor) = cursor {
        uri.push_str(&format!("&cursor={}", url_encode(cursor)));
    }
    let answer = session.call(state, Method::GET, &uri, None).await;
    if !answer.ok() {
        return session.message(state, desk, answer.status, "Not shown", &answer.message());
    }
    let rows = answer
        .body
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in &rows {
        for field in &columns {
            if let (FieldKind::Link { target }, Some(id)) =
                (&field.kind, row.get(&field.name).and_then(Value::as_str))
            {
                wanted
                    .entry(target.clone())
                    .or_default()
                    .push(id.to_owned());
            }
        }
    }
    let titles = link_titles(state, session, &repository, wanted).await;
    let row_views: Vec<Value> = rows
        .iter()
        .map(|row| {
            let id = row.get("id").and_then(Value::as_str).unwrap_or("");
            let cells: Vec<Value> = columns
                .iter()
                .map(|field| {
                    let value = row.get(&field.name).unwrap_or(&Value::Null);
                    let text = match (&field.kind, value.as_str()) {
                        (FieldKind::Link { target }, Some(linked)) => titles
                            .get(&(target.clone(), linked.to_owned()))
                            .cloned()
                            .unwrap_or_else(|| linked.to_owned()),
                        // A long text is cut in the list; the form shows all of it.
                        (FieldKind::Text, _) => {
                            let text = form::display(value);
                            match text.char_indices().nth(LIST_TEXT_CHARS) {
                                Some((at, _)) => format!("{}…", &text[..at]),
                                None => text,
                            }
                        }
                        _ => form::display(value),
                    };
                    json!({ "text": text, "numeric": matches!(field.kind, FieldKind::Int | FieldKind::Decimal { .. } | FieldKind::Money) })
                })
                .collect();
            json!({
                "id": id,
                "name": row.get("name").and_then(Value::as_str).unwrap_or(id),
                "href": format!("/app/e/{entity}/{}", url_encode(id)),
                "status": status_label(&schema, row.get("docstatus")),
                "cells": cells,
            })
        })
        .collect();
    let base = kept.join("&");
    let sort_links: Vec<Value> = std::iter::once(("name", "Name".to_owned()))
        .chain(columns.iter().map(|c| (c.name.as_str(), c.label.clone())))
        .map(|(name, label)| {
            let next_dir = if sort == name && dir == "asc" { "desc" } else { "asc" };
            json!({
                "label": label,
                "href": format!("/app/e/{entity}?{base}{}sort={name}&dir={next_dir}", if base.is_empty() { "" } else { "&" }),
                "sorted": (sort == name).then_some(if dir == "asc" { "ascending" } else { "descending" }),
            })
        })
        .collect();
    let next = answer
        .body
        .get("next_cursor")
        .and_then(Value::as_str)
        .map(|c| {
            format!(
                "/app/e/{entity}?{base}{}sort={sort}&dir={dir}&limit={limit}&cursor={}",
                if base.is_empty() { "" } else { "&" },
                url_encode(c)
            )
        });
    let total = answer.body.get("total").and_then(Value::as_u64);
    let can_create = session.may_on(state, &schema, "create", None).await;
    let can_delete = session.may_on(state, &schema, "delete", None).await;
    let can_submit = schema.submittable && session.may_on(state, &schema, "submit", None).await;
    let template = format!("entity/{entity}/list.html");
    let template = if desk.renderer().has_template(&template) {
        template
    } else {
        "list.html".to_owned()
    };
    session.render(
        state,
        desk,
        StatusCode::OK,
        &template,
        json!({
            "title": schema.label,
            "entity": entity,
            "label": schema.label,
            "columns": sort_links,
            "filters": filter_views,
            "search": search,
            "rows": row_views,
            "total": total,
            "total_more": total.is_some_and(|t| t > prefiq_data::entity::repo::MAX_TOTAL),
            "shown": rows.len(),
            "next": next,
            "first": cursor.map(|_| format!("/app/e/{entity}?{base}{}sort={sort}&dir={dir}&limit={limit}", if base.is_empty() { "" } else { "&" })),
            "can_create": can_create,
            "bulk": { "delete": can_delete, "submit": can_submit, "any": can_delete || can_submit },
            "notice": notice,
        }),
    )
}

/// A record's `docstatus` (0 draft, 1 submitted, 2 cancelled).
fn docstatus(status: Option<&Value>) -> i64 {
    match status {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => match s.as_str() {
            "submitted" | "1" => 1,
            "cancelled" | "2" => 2,
            _ => 0,
        },
        _ => 0,
    }
}

fn status_label(schema: &EntitySchema, status: Option<&Value>) -> Option<&'static str> {
    schema.submittable.then(|| match docstatus(status) {
        1 => "Submitted",
        2 => "Cancelled",
        _ => "Draft",
    })
}

/// `POST /app/e/{entity}`: a bulk action (`submit` or `delete`) on the selected rows.
pub async fn bulk(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(entity): Path<String>,
    body: Bytes,
) -> Response {
    let (desk, session, form) = try_page!(request.open_form(&state, &body).await);
    let action = form.get("bulk").unwrap_or("");
    let ids = form.all("ids");
    if ids.is_empty() {
        return render_list(
            &state,
            &desk,
            &session,
            &entity,
            &FormData::default(),
            Some(json!({"kind": "error", "text": "Select at least one row first."})),
        )
        .await;
    }
    if ids.len() > MAX_BULK {
        return render_list(&state, &desk, &session, &entity, &FormData::default(), Some(json!({"kind": "error", "text": format!("Select at most {MAX_BULK} rows at a time.")}))).await;
    }
    let mut done = 0;
    let mut failed = Vec::new();
    for id in &ids {
        let path = format!("/api/v1/resources/{entity}/{}", url_encode(id));
        let answer = match action {
            "delete" => session.call(&state, Method::DELETE, &path, None).await,
            "submit" => {
                session
                    .call(&state, Method::POST, &format!("{path}/submit"), None)
                    .await
            }
            _ => {
                return session.message(
                    &state,
                    &desk,
                    StatusCode::BAD_REQUEST,
                    "Unknown action",
                    "Choose delete or submit.",
                );
            }
        };
        if answer.ok() {
            done += 1;
        } else {
            failed.push(format!("{id}: {}", answer.message()));
        }
    }
    let verb = if action == "delete" {
        "Deleted"
    } else {
        "Submitted"
    };
    let notice = json!({
        "kind": if failed.is_empty() { "ok" } else { "error" },
        "text": format!("{verb} {done} of {}.", ids.len()),
        "details": failed,
    });
    render_list(
        &state,
        &desk,
        &session,
        &entity,
        &FormData::default(),
        Some(notice),
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Forms

/// What a field's input shows.
#[derive(Debug, Clone, Default)]
struct Shown {
    value: String,
    currency: String,
    checked: bool,
    link_id: String,
}

fn shown_from_record(
    field: &FieldDef,
    value: &Value,
    titles: &HashMap<(String, String), String>,
) -> Shown {
    let mut shown = Shown {
        value: form::input_value(&field.kind, value),
        ..Shown::default()
    };
    match &field.kind {
        FieldKind::Money => {
            shown.currency = value
                .get("currency")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
        }
        FieldKind::Bool => shown.checked = value == &Value::Bool(true),
        FieldKind::Link { target } => {
            if let Some(id) = value.as_str() {
                shown.link_id = id.to_owned();
                shown.value = titles
                    .get(&(target.clone(), id.to_owned()))
                    .cloned()
                    .unwrap_or_else(|| id.to_owned());
            }
        }
        _ => {}
    }
    shown
}

fn shown_from_form(field: &FieldDef, form: &FormData, name: &str) -> Shown {
    Shown {
        value: form.get(name).unwrap_or("").to_owned(),
        currency: form
            .get(&format!("{name}.currency"))
            .unwrap_or("")
            .to_owned(),
        checked: form.get(name).is_some() && matches!(field.kind, FieldKind::Bool),
        link_id: if form.get(&format!("{name}.was")) == form.get(name) {
            form.get(&format!("{name}.id")).unwrap_or("").to_owned()
        } else {
            String::new()
        },
    }
}

fn field_view(
    field: &FieldDef,
    input: String,
    shown: &Shown,
    error: Option<&String>,
    read_only: bool,
) -> Value {
    let mut view = form::field_view(field, &input, read_only);
    view["value"] = json!(shown.value);
    view["currency"] = json!(shown.currency);
    view["checked"] = json!(shown.checked);
    view["link_id"] = json!(shown.link_id);
    view["error"] = json!(error);
    view
}

/// A form being shown: where its values come from.
enum Source<'a> {
    /// A stored record (or, for a new one, its defaults).
    Record(&'a Map<String, Value>),
    /// A submitted form, shown again with its errors.
    Form(&'a FormData, &'a BTreeMap<String, Vec<usize>>),
}

struct FormPage<'a> {
    entity: &'a str,
    schema: &'a EntitySchema,
    custom: &'a [FieldDef],
    /// The stored record; `None` for a new one.
    record: Option<&'a Map<String, Value>>,
    source: Source<'a>,
    errors: BTreeMap<String, String>,
    problem: Option<String>,
    notice: Option<String>,
    status: StatusCode,
}

#[allow(clippy::too_many_lines)]
async fn render_form(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    repository: &Repository,
    page: FormPage<'_>,
) -> Response {
    let registry = repository.registry().visible_to(Some(session.tenant()));
    let hidden_and_locked = match (
        session.scope(),
        state
            .services
            .get::<prefiq_auth::authz::CedarAuthorizer>("cortex desk"),
    ) {
        (Some(scope), Ok(authorizer)) => authorizer.field_access(&scope, page.schema),
        _ => Default::default(),
    };
    let docstatus = page.record.map_or(0, |r| docstatus(r.get("docstatus")));
    let editable = docstatus == 0
        && match page.record {
            Some(record) => {
                session
                    .may_on(state, page.schema, "update", Some(record))
                    .await
            }
            None => session.may_on(state, page.schema, "create", None).await,
        };
    // Titles of every linked row the record shows, fetched once per target.
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Source::Record(record) = &page.source {
        for field in page.schema.fields.iter().chain(page.custom) {
            match &field.kind {
                FieldKind::Link { target } => {
                    if let Some(id) = record.get(&field.name).and_then(Value::as_str) {
                        wanted
                            .entry(target.clone())
                            .or_default()
                            .push(id.to_owned());
                    }
                }
                FieldKind::Table { entity } => {
                    let Some(child) = registry.get(entity) else {
                        continue;
                    };
                    for row in record
                        .get(&field.name)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        for cf in &child.fields {
                            if let (FieldKind::Link { target }, Some(id)) =
                                (&cf.kind, row.get(&cf.name).and_then(Value::as_str))
                            {
                                wanted
                                    .entry(target.clone())
                                    .or_default()
                                    .push(id.to_owned());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let titles = link_titles(state, session, repository, wanted).await;
    let mut fields = Vec::new();
    let mut tables = Vec::new();
    for field in &page.schema.fields {
        if hidden_and_locked.hidden.contains(&field.name) {
            continue;
        }
        let locked = !editable || hidden_and_locked.read_only.contains(&field.name);
        if let FieldKind::Table { entity } = &field.kind {
            let Some(child) = registry.get(entity) else {
                continue;
            };
            let columns: Vec<&FieldDef> = child
                .fields
                .iter()
                .filter(|f| !matches!(f.kind, FieldKind::Table { .. }))
                .collect();
            let mut rows = Vec::new();
            let make_row = |i: usize, values: &dyn Fn(&FieldDef, &str) -> Shown| -> Value {
                let cells: Vec<Value> = columns
                    .iter()
                    .map(|cf| {
                        let input = format!("t.{}.{i}.{}", field.name, cf.name);
                        let shown = values(cf, &input);
                        let pointer = format!("/{}/{i}/{}", field.name, cf.name);
                        field_view(cf, input, &shown, page.errors.get(&pointer), locked)
                    })
                    .collect();
                json!({ "index": i, "cells": cells, "error": page.errors.get(&format!("/{}/{i}", field.name)) })
            };
            match &page.source {
                Source::Record(record) => {
                    let stored = record
                        .get(&field.name)
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    for (i, row) in stored.iter().enumerate() {
                        rows.push(make_row(i, &|cf, _| {
                            shown_from_record(
                                cf,
                                row.get(&cf.name).unwrap_or(&Value::Null),
                                &titles,
                            )
                        }));
                    }
                    if rows.is_empty() && editable {
                        rows.push(make_row(0, &|cf, _| {
                            shown_from_record(
                                cf,
                                cf.default.as_ref().unwrap_or(&Value::Null),
                                &titles,
                            )
                        }));
                    }
                }
                Source::Form(submitted, row_map) => {
                    for (shown_index, form_index) in
                        row_map.get(&field.name).into_iter().flatten().enumerate()
                    {
                        rows.push(make_row(shown_index, &|cf, _| {
                            shown_from_form(
                                cf,
                                submitted,
                                &format!("t.{}.{form_index}.{}", field.name, cf.name),
                            )
                        }));
                    }
                }
            }
            // Totals of money and decimal columns, as the page's script keeps them.
            let totals: Vec<Value> = columns
                .iter()
                .filter(|cf| matches!(cf.kind, FieldKind::Money))
                .map(|cf| {
                    let sum: f64 = 0.0_f64
                        + rows
                            .iter()
                            .filter_map(|r| {
                                r["cells"]
                                    .as_array()?
                                    .iter()
                                    .find(|c| c["name"] == json!(cf.name))?["value"]
                                    .as_str()?
                                    .trim()
                                    .parse::<f64>()
                                    .ok()
                            })
                            .sum::<f64>();
                    json!({ "name": cf.name, "label": cf.label, "total": format!("{sum:.2}") })
                })
                .collect();
            let template_row = make_row(0, &|cf, _| {
                shown_from_record(cf, cf.default.as_ref().unwrap_or(&Value::Null), &titles)
            });
            tables.push(json!({
                "name": field.name,
                "label": field.label,
                "columns": columns.iter().map(|c| json!({"name": c.name, "label": c.label, "required": c.required, "type": c.kind.type_name()})).collect::<Vec<_>>(),
                "rows": rows,
                "template": template_row,
                "totals": totals,
                "error": page.errors.get(&format!("/{}", field.name)),
                "editable": !locked,
            }));
            continue;
        }
        let input = format!("f.{}", field.name);
        let shown = match &page.source {
            Source::Record(record) => shown_from_record(
                field,
                record.get(&field.name).unwrap_or(&Value::Null),
                &titles,
            ),
            Source::Form(submitted, _) => shown_from_form(field, submitted, &input),
        };
        let error = page.errors.get(&format!("/{}", field.name));
        fields.push(field_view(field, input, &shown, error, locked));
    }
    let mut custom_views = Vec::new();
    for field in page.custom {
        let input = format!("c.{}", field.name);
        let shown = match &page.source {
            Source::Record(record) => shown_from_record(
                field,
                record
                    .get("custom")
                    .and_then(|c| c.get(&field.name))
                    .unwrap_or(&Value::Null),
                &titles,
            ),
            Source::Form(submitted, _) => shown_from_form(field, submitted, &input),
        };
        let error = page.errors.get(&format!("/custom/{}", field.name));
        custom_views.push(field_view(field, input, &shown, error, !editable));
    }
    // Buttons by status and permission: what the API would refuse is not offered.
    let mut actions = Vec::new();
    if let Some(record) = page.record {
        let may = |action: &'static str| async move {
            session
                .may_on(state, page.schema, action, Some(record))
                .await
        };
        if docstatus == 0 && page.schema.submittable && may("submit").await {
            actions.push(json!({ "action": "submit", "label": "Submit", "primary": true }));
        }
        if docstatus == 1 && may("cancel").await {
            actions.push(json!({ "action": "cancel", "label": "Cancel", "danger": true }));
        }
        if docstatus == 2 && may("amend").await {
            actions.push(json!({ "action": "amend", "label": "Amend" }));
        }
        if docstatus != 1 && may("delete").await {
            actions.push(json!({ "action": "delete", "label": "Delete", "danger": true }));
        }
    }
    let id = page
        .record
        .and_then(|r| r.get("id"))
        .and_then(Value::as_str);
    let name = page
        .record
        .and_then(|r| r.get("name"))
        .and_then(Value::as_str);
    let template = format!("entity/{}/form.html", page.entity);
    let template = if desk.renderer().has_template(&template) {
        template
    } else {
        "form.html".to_owned()
    };
    let mut summary: Vec<Value> = page
        .errors
        .iter()
        .map(|(pointer, message)| json!({ "pointer": pointer, "message": message, "dom_id": pointer_dom_id(pointer) }))
        .collect();
    summary.truncate(50);
    session.render(
        state,
        desk,
        page.status,
        &template,
        json!({
            "title": match name { Some(n) => format!("{} {n}", page.schema.label), None => format!("New {}", page.schema.label) },
            "entity": page.entity,
            "label": page.schema.label,
            "id": id,
            "name": name,
            "is_new": page.record.is_none(),
            "action": match id { Some(id) => format!("/app/e/{}/{}", page.entity, url_encode(id)), None => format!("/app/e/{}/new", page.entity) },
            "version": page.record.and_then(|r| r.get("version")).cloned(),
            "status": page.record.and_then(|r| status_label(page.schema, r.get("docstatus"))),
            "editable": editable,
            "fields": fields,
            "custom": custom_views,
            "tables": tables,
            "actions": actions,
            "problem": page.problem,
            "errors": summary,
            "notice": page.notice,
            "amended_from": page.record.and_then(|r| r.get("amended_from")).and_then(Value::as_str),
            "record": page.record,
        }),
    )
}

/// The `id` of the input a pointer names (`/lines/1/account` → `t-lines-1-account`).
fn pointer_dom_id(pointer: &str) -> String {
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [field] => form::dom_id(&format!("f.{field}")),
        ["custom", field] => form::dom_id(&format!("c.{field}")),
        [table, row, field] => form::dom_id(&format!("t.{table}.{row}.{field}")),
        _ => String::new(),
    }
}

/// `GET /app/e/{entity}/new`: a blank form with the schema's defaults and any
/// `?field=value` from the link that led here.
pub async fn new_form(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(entity): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    let (repository, schema, custom) = try_page!(schema_of(&state, &desk, &session, &entity).await);
    if !session.may_on(&state, &schema, "create", None).await {
        return session.message(
            &state,
            &desk,
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!("You may not create {}.", schema.label),
        );
    }
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let mut defaults = Map::new();
    for field in &schema.fields {
        if let Some(value) = query.get(&field.name) {
            defaults.insert(field.name.clone(), json!(value));
        } else if let Some(value) = &field.default {
            defaults.insert(field.name.clone(), value.clone());
        }
    }
    render_form(
        &state,
        &desk,
        &session,
        &repository,
        FormPage {
            entity: &entity,
            schema: &schema,
            custom: &custom,
            record: None,
            source: Source::Record(&defaults),
            errors: BTreeMap::new(),
            problem: None,
            notice: None,
            status: StatusCode::OK,
        },
    )
    .await
}

/// The rows of each child table a submitted form has (blank ones left out), after an
/// "add row" or "remove row" button.
fn submitted_rows(
    schema: &EntitySchema,
    form: &FormData,
) -> Result<BTreeMap<String, Vec<usize>>, String> {
    let mut rows = BTreeMap::new();
    for field in &schema.fields {
        if let FieldKind::Table { .. } = field.kind {
            let mut indexes: Vec<usize> = form::table_rows(form, &field.name)?
                .into_iter()
                .filter(|i| !form::row_is_blank(form, &field.name, *i))
                .collect();
            if form
                .get("_remove_row")
                .and_then(|v| v.rsplit_once('.'))
                .is_some_and(|(t, _)| t == field.name)
            {
                let shown: Option<usize> = form
                    .get("_remove_row")
                    .and_then(|v| v.rsplit_once('.'))
                    .and_then(|(_, i)| i.parse().ok());
                if let Some(i) = shown {
                    indexes.retain(|x| *x != i);
                }
            }
            if form.get("_add_row") == Some(field.name.as_str()) {
                // A fresh index past every submitted one: its inputs are empty.
                indexes.push(usize::MAX / 2);
            }
            rows.insert(field.name.clone(), indexes);
        }
    }
    Ok(rows)
}

#[allow(clippy::too_many_arguments)]
/// The request body a submitted form makes, with the form's own errors (bad numbers,
/// unknown link titles) by pointer.
async fn body_from_form(
    state: &HttpState,
    session: &Session,
    repository: &Repository,
    schema: &EntitySchema,
    custom: &[FieldDef],
    form: &FormData,
    rows: &BTreeMap<String, Vec<usize>>,
    creating: bool,
) -> (Map<String, Value>, BTreeMap<String, String>) {
    let registry = repository.registry().visible_to(Some(session.tenant()));
    let fallback = default_currency(state, session, repository, schema, form).await;
    let filled;
    let form = match &fallback {
        Some(currency) => {
            filled = form.with_default_currency(currency);
            &filled
        }
        None => form,
    };
    let mut body = Map::new();
    let mut errors = BTreeMap::new();
    for field in &schema.fields {
        if field.read_only {
            continue;
        }
        if let FieldKind::Table { entity } = &field.kind {
            let Some(child) = registry.get(entity) else {
                continue;
            };
            let Some(indexes) = rows.get(&field.name) else {
                continue;
            };
            let mut out = Vec::new();
            for (shown, index) in indexes.iter().enumerate() {
                let mut row = Map::new();
                for cf in child.fields.iter().filter(|f| !f.read_only) {
                    let name = format!("t.{}.{index}.{}", field.name, cf.name);
                    let pointer = format!("/{}/{shown}/{}", field.name, cf.name);
                    match read_value(state, session, repository, cf, form, &name).await {
                        Ok(Some(Value::Null)) | Ok(None) => {}
                        Ok(Some(value)) => {
                            row.insert(cf.name.clone(), value);
                        }
                        Err(message) => {
                            errors.insert(pointer, message);
                        }
                    }
                }
                out.push(Value::Object(row));
            }
            body.insert(field.name.clone(), Value::Array(out));
            continue;
        }
        let name = format!("f.{}", field.name);
        match read_value(state, session, repository, field, form, &name).await {
            Ok(None) => {}
            Ok(Some(Value::Null)) if creating => {}
            Ok(Some(value)) => {
                body.insert(field.name.clone(), value);
            }
            Err(message) => {
                errors.insert(format!("/{}", field.name), message);
            }
        }
    }
    let mut custom_values = Map::new();
    for field in custom {
        let name = format!("c.{}", field.name);
        match read_value(state, session, repository, field, form, &name).await {
            Ok(None) => {}
            Ok(Some(Value::Null)) if creating => {}
            Ok(Some(value)) => {
                custom_values.insert(field.name.clone(), value);
            }
            Err(message) => {
                errors.insert(format!("/custom/{}", field.name), message);
            }
        }
    }
    if !custom_values.is_empty() {
        body.insert("custom".into(), Value::Object(custom_values));
    }
    (body, errors)
}

/// The currency an amount without one takes: the first currency given anywhere in the
/// form, else the currency of the document's company (an ERP's "company currency").
async fn default_currency(
    state: &HttpState,
    session: &Session,
    repository: &Repository,
    schema: &EntitySchema,
    form: &FormData,
) -> Option<String> {
    if let Some(given) = form.currency_given() {
        return Some(given);
    }
    let Some(FieldKind::Link { target }) = schema.field("company").map(|f| &f.kind) else {
        return None;
    };
    let company = read_value(
        state,
        session,
        repository,
        schema.field("company")?,
        form,
        "f.company",
    )
    .await
    .ok()
    .flatten()?;
    let answer = session
        .call(
            state,
            Method::GET,
            &format!(
                "/api/v1/resources/{target}/{}",
                url_encode(company.as_str()?)
            ),
            None,
        )
        .await;
    answer
        .body
        .get("currency")
        .and_then(Value::as_str)
        .filter(|c| c.len() == 3)
        .map(str::to_owned)
}

async fn read_value(
    state: &HttpState,
    session: &Session,
    repository: &Repository,
    field: &FieldDef,
    form: &FormData,
    name: &str,
) -> Result<Option<Value>, String> {
    if let FieldKind::Link { target } = &field.kind {
        let Some(text) = form.get(name).map(str::trim) else {
            return Ok(None);
        };
        if text.is_empty() {
            return Ok(Some(Value::Null));
        }
        // Unchanged since the page was shown: the id it was shown with.
        if form.get(&format!("{name}.was")) == Some(text)
            && let Some(id) = form.get(&format!("{name}.id")).filter(|id| !id.is_empty())
        {
            return Ok(Some(json!(id)));
        }
        return resolve_link(state, session, repository, target, text)
            .await
            .map(|id| Some(json!(id)));
    }
    let prefix = name.strip_suffix(field.name.as_str()).unwrap_or("");
    form::read_field(field, form, prefix)
}

/// Whether the form only asked for a row to be added or removed.
fn is_row_edit(form: &FormData) -> bool {
    form.get("_add_row").is_some() || form.get("_remove_row").is_some()
}

/// `POST /app/e/{entity}/new`: creates the record through the API.
pub async fn create(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(entity): Path<String>,
    body: Bytes,
) -> Response {
    let (desk, session, submitted) = try_page!(request.open_form(&state, &body).await);
    let (repository, schema, custom) = try_page!(schema_of(&state, &desk, &session, &entity).await);
    save_or_show(
        &state,
        &desk,
        &session,
        &repository,
        &entity,
        &schema,
        &custom,
        None,
        &submitted,
    )
    .await
}

/// `POST /app/e/{entity}/{id}`: saves a draft through the API.
pub async fn save(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path((entity, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (desk, session, submitted) = try_page!(request.open_form(&state, &body).await);
    let (repository, schema, custom) = try_page!(schema_of(&state, &desk, &session, &entity).await);
    let record = try_page!(fetch_record(&state, &desk, &session, &entity, &id).await);
    save_or_show(
        &state,
        &desk,
        &session,
        &repository,
        &entity,
        &schema,
        &custom,
        Some(&record),
        &submitted,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn save_or_show(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    repository: &Repository,
    entity: &str,
    schema: &EntitySchema,
    custom: &[FieldDef],
    record: Option<&Map<String, Value>>,
    submitted: &FormData,
) -> Response {
    let rows = match submitted_rows(schema, submitted) {
        Ok(rows) => rows,
        Err(message) => {
            return session.message(
                state,
                desk,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not saved",
                &message,
            );
        }
    };
    let show_again =
        |errors: BTreeMap<String, String>, problem: Option<String>, status: StatusCode| FormPage {
            entity,
            schema,
            custom,
            record,
            source: Source::Form(submitted, &rows),
            errors,
            problem,
            notice: None,
            status,
        };
    if is_row_edit(submitted) {
        return render_form(
            state,
            desk,
            session,
            repository,
            show_again(BTreeMap::new(), None, StatusCode::OK),
        )
        .await;
    }
    let (body, errors) = body_from_form(
        state,
        session,
        repository,
        schema,
        custom,
        submitted,
        &rows,
        record.is_none(),
    )
    .await;
    if !errors.is_empty() {
        let page = show_again(
            errors,
            Some("Some fields need attention.".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        return render_form(state, desk, session, repository, page).await;
    }
    let answer = match record.and_then(|r| r.get("id")).and_then(Value::as_str) {
        None => {
            session
                .call(
                    state,
                    Method::POST,
                    &format!("/api/v1/resources/{entity}"),
                    Some(&Value::Object(body)),
                )
                .await
        }
        Some(id) => {
            let mut extra = Vec::new();
            if let Some(version) = submitted.get("_version").filter(|v| !v.is_empty()) {
                extra.push(("if-match", format!("\"{version}\"")));
            }
            session
                .call_with(
                    state,
                    Method::PATCH,
                    &format!("/api/v1/resources/{entity}/{}", url_encode(id)),
                    Some(&Value::Object(body)),
                    &extra,
                )
                .await
        }
    };
    if answer.ok() {
        let id = answer.body.get("id").and_then(Value::as_str).unwrap_or("");
        return session.redirect(&format!("/app/e/{entity}/{}?saved=1", url_encode(id)));
    }
    let errors: BTreeMap<String, String> = answer.field_errors().into_iter().collect();
    let page = show_again(errors, Some(answer.message()), answer.status);
    render_form(state, desk, session, repository, page).await
}

/// `GET /app/e/{entity}/{id}`.
pub async fn view(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path((entity, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    let (repository, schema, custom) = try_page!(schema_of(&state, &desk, &session, &entity).await);
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let notice = match query.get("saved").or(query.get("done")) {
        Some("1") => Some("Saved.".to_owned()),
        Some("submit") => Some("Submitted.".to_owned()),
        Some("cancel") => Some("Cancelled.".to_owned()),
        Some("amend") => {
            Some("This is the amended draft; the cancelled original is kept.".to_owned())
        }
        _ => None,
    };
    show_record(
        &state,
        &desk,
        &session,
        &repository,
        &entity,
        &schema,
        &custom,
        &id,
        None,
        BTreeMap::new(),
        notice,
        StatusCode::OK,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn show_record(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    repository: &Repository,
    entity: &str,
    schema: &EntitySchema,
    custom: &[FieldDef],
    id: &str,
    problem: Option<String>,
    errors: BTreeMap<String, String>,
    notice: Option<String>,
    status: StatusCode,
) -> Response {
    let record = try_page!(fetch_record(state, desk, session, entity, id).await);
    render_form(
        state,
        desk,
        session,
        repository,
        FormPage {
            entity,
            schema,
            custom,
            record: Some(&record),
            source: Source::Record(&record),
            errors,
            problem,
            notice,
            status,
        },
    )
    .await
}

/// `POST /app/e/{entity}/{id}/do/{action}`: submit, cancel, amend or delete.
pub async fn act(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path((entity, id, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let (desk, session, _) = try_page!(request.open_form(&state, &body).await);
    let (repository, schema, custom) = try_page!(schema_of(&state, &desk, &session, &entity).await);
    let path = format!("/api/v1/resources/{entity}/{}", url_encode(&id));
    let answer = match action.as_str() {
        "submit" | "cancel" | "amend" => {
            session
                .call(&state, Method::POST, &format!("{path}/{action}"), None)
                .await
        }
        "delete" => session.call(&state, Method::DELETE, &path, None).await,
        _ => {
            return session.message(
                &state,
                &desk,
                StatusCode::NOT_FOUND,
                "Unknown action",
                "Use submit, cancel, amend or delete.",
            );
        }
    };
    if !answer.ok() {
        let status = answer.status;
        let errors = answer.field_errors().into_iter().collect();
        return show_record(
            &state,
            &desk,
            &session,
            &repository,
            &entity,
            &schema,
            &custom,
            &id,
            Some(answer.message()),
            errors,
            None,
            status,
        )
        .await;
    }
    match action.as_str() {
        "delete" => session.redirect(&format!("/app/e/{entity}")),
        "amend" => {
            let new_id = answer.body.get("id").and_then(Value::as_str).unwrap_or(&id);
            session.redirect(&format!(
                "/app/e/{entity}/{}?done=amend",
                url_encode(new_id)
            ))
        }
        other => session.redirect(&format!("/app/e/{entity}/{}?done={other}", url_encode(&id))),
    }
}

// ---------------------------------------------------------------------------------------
// History, search, audit

/// `GET /app/e/{entity}/{id}/history`: the record's audit records with field diffs.
pub async fn history(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path((entity, id)): Path<(String, String)>,
) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    let (_, schema, _) = try_page!(schema_of(&state, &desk, &session, &entity).await);
    let record = try_page!(fetch_record(&state, &desk, &session, &entity, &id).await);
    let answer = session
        .call(
            &state,
            Method::GET,
            &format!(
                "/api/v1/audit?entity={entity}&id={}&limit={HISTORY_LIMIT}",
                url_encode(&id)
            ),
            None,
        )
        .await;
    let refused = (!answer.ok()).then(|| answer.message());
    let entries: Vec<Value> = answer
        .body
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|entry| {
            let changes: Vec<Value> = entry
                .get("changes")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(field, change)| {
                    let label = schema
                        .field(field)
                        .map_or(field.as_str(), |f| f.label.as_str());
                    json!({
                        "field": label,
                        "before": change.get("before").map(form::display),
                        "after": change.get("after").map(form::display),
                    })
                })
                .collect();
            json!({
                "seq": entry.get("seq"),
                "time": entry.get("time"),
                "actor": entry.get("actor"),
                "action": entry.get("action"),
                "changes": changes,
            })
        })
        .collect();
    let name = record
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(&id)
        .to_owned();
    session.render(
        &state,
        &desk,
        StatusCode::OK,
        "history.html",
        json!({
            "title": format!("History of {name}"),
            "entity": entity,
            "label": schema.label,
            "id": id,
            "name": name,
            "entries": entries,
            "refused": refused,
        }),
    )
}

/// `GET /app/search/{entity}?q=…`: up to 20 rows whose title contains `q`, as JSON
/// `[{"id", "title"}]`, for a link input's suggestions.
pub async fn search(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(entity): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let desk = try_page!(desk(&state));
    let Ok(session) = request.session(&state, &desk).await else {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!([]))).into_response();
    };
    let Ok(repository) = state.services.get::<Repository>("cortex desk") else {
        return axum::Json(json!([])).into_response();
    };
    let registry = repository.registry().visible_to(Some(session.tenant()));
    let Some(schema) = registry.get(&entity) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!([]))).into_response();
    };
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let text: String = query
        .get("q")
        .unwrap_or("")
        .trim()
        .chars()
        .take(140)
        .collect();
    let title = title_field(schema);
    let mut filters = vec![json!([title, "like", format!("%{text}%")])];
    // Suggestions stay in the form's company when the target has one.
    if let Some(company) = query.get("company").filter(|c| !c.is_empty())
        && schema.field("company").is_some()
    {
        filters.push(json!(["company", "=", company]));
    }
    let uri = format!(
        "/api/v1/resources/{entity}?limit=20&order_by={}&fields={}&filters={}",
        url_encode(&format!("{title} asc")),
        url_encode(&json!(["id", title]).to_string()),
        url_encode(&Value::Array(filters).to_string())
    );
    let answer = session.call(&state, Method::GET, &uri, None).await;
    let found: Vec<Value> = answer
        .body
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|row| json!({ "id": row.get("id"), "title": row.get(&title) }))
        .collect();
    let mut response = axum::Json(found).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    session.finish(response)
}

/// `GET /app/audit`: the audit log's verification status and its latest records.
pub async fn audit_status(State(state): State<HttpState>, request: DeskRequest) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    let verify = session
        .call(&state, Method::GET, "/api/v1/audit/verify", None)
        .await;
    if verify.status == StatusCode::FORBIDDEN || verify.status == StatusCode::UNAUTHORIZED {
        return session.message(
            &state,
            &desk,
            verify.status,
            "Not allowed",
            &verify.message(),
        );
    }
    let checkpoint = session
        .call(&state, Method::GET, "/api/v1/audit/checkpoint", None)
        .await;
    let recent = session
        .call(&state, Method::GET, "/api/v1/audit?limit=50", None)
        .await;
    let entries: Vec<Value> = recent
        .body
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            json!({
                "seq": e.get("seq"),
                "time": e.get("time"),
                "actor": e.get("actor"),
                "action": e.get("action"),
                "entity": e.get("entity"),
                "id": e.get("id"),
                "href": match (e.get("entity").and_then(Value::as_str), e.get("id").and_then(Value::as_str)) {
                    (Some(entity), Some(id)) => Some(format!("/app/e/{entity}/{}/history", url_encode(id))),
                    _ => None,
                },
            })
        })
        .collect();
    session.render(
        &state,
        &desk,
        StatusCode::OK,
        "audit.html",
        json!({
            "title": "Audit log",
            "verified": verify.ok(),
            "report": verify.body,
            "problem": (!verify.ok()).then(|| verify.message()),
            "checkpoint": checkpoint.ok().then_some(checkpoint.body),
            "entries": entries,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(next: Option<&str>, expected: &str) {
        assert_eq!(safe_next(next), expected, "{next:?}");
    }

    #[test]
    fn login_returns_only_to_the_desk() {
        check(Some("/app/e/account"), "/app/e/account");
        check(Some("https://evil.example/app"), "/app");
        check(Some("//evil.example"), "/app");
        check(Some("/app\\@evil"), "/app");
        check(Some("/api/v1/users"), "/app");
        check(None, "/app");
    }

    #[test]
    fn pointers_name_their_inputs() {
        assert_eq!(pointer_dom_id("/title"), "f-title");
        assert_eq!(pointer_dom_id("/lines/1/account"), "t-lines-1-account");
        assert_eq!(pointer_dom_id("/custom/colour"), "c-colour");
        assert_eq!(pointer_dom_id(""), "f-");
    }
}
