//! The desk's pages: login, home, the list, form and history of every entity, and the
//! tenant's jobs and the installation's schedules.

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

mod history;
mod jobs;
mod list;
mod record_actions;
mod record_form;
mod schedules;
mod session;

pub use history::*;
pub use jobs::{job_act, job_detail, jobs_list};
pub use list::*;
pub use record_actions::*;
pub use record_form::*;
pub use schedules::*;
pub use session::*;

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
    // The queue pages are the System Manager's, in an installation that runs jobs.
    if jobs::administers(&session) && state.services.contains::<prefiq_worker::Jobs>() {
        admin.push(json!({ "label": "Jobs", "href": "/app/admin/jobs" }));
        admin.push(json!({ "label": "Schedules", "href": "/app/admin/schedules" }));
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
