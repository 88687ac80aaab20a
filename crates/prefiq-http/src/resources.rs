//! The generated REST resources: `/api/v1/resources/{entity}` for every entity.

// Handlers answer errors with a `Problem` by value; the error path is the cold one and a
// box would only move the allocation.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prefiq::Context;
use prefiq_data::DataError;
use prefiq_data::entity::Entities;

use crate::openapi::SchemaMode;
use prefiq_data::entity::repo::{ListQuery, RepoError, Repository, TenantScope};
use serde_json::{Value, json};

use crate::{HttpState, Problem, RouteSet};

/// Longest `fields` or `filters` parameter, in bytes.
const MAX_PARAM_BYTES: usize = 64 * 1024;

/// The routes of the generated resources.
pub fn routes() -> RouteSet {
    RouteSet::new(crate::BUILTIN)
        .get("/api/v1/resources/{entity}", list)
        .post("/api/v1/resources/{entity}", create)
        .get("/api/v1/resources/{entity}/{id}", read)
        .patch("/api/v1/resources/{entity}/{id}", update)
        .delete("/api/v1/resources/{entity}/{id}", delete)
        .post("/api/v1/resources/{entity}/{id}/{action}", act)
        .get("/api/v1/openapi.json", openapi_json)
        .get("/api/v1/customize/{entity}/fields", list_custom_fields)
        .post("/api/v1/customize/{entity}/fields", add_custom_field)
        .delete(
            "/api/v1/customize/{entity}/fields/{name}",
            remove_custom_field,
        )
        .get("/api/v1/schema/{entity}", entity_schema)
        .get("/api/v1/customize/entities", list_runtime_entities)
        .post("/api/v1/customize/entities", create_runtime_entity)
}

/// How a runtime entity is shown: its name, its resource and its whole schema (without
/// the name of its table, which is the server's business).
fn runtime_entity_json(schema: &prefiq_data::entity::EntitySchema) -> Value {
    let mut shown = json!(schema);
    if let Some(object) = shown.as_object_mut() {
        object.remove("table");
    }
    json!({
        "name": schema.name,
        "label": schema.label,
        "resource": format!("/api/v1/resources/{}", schema.name),
        "schema": shown,
    })
}

/// The entities this tenant created at run time.
async fn list_runtime_entities(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    query_params(query, &[])?;
    let (repository, scope) = parts(&state, &context)?;
    let data: Vec<Value> = repository
        .runtime_entities(&scope)
        .iter()
        .map(|s| runtime_entity_json(s))
        .collect();
    Ok(axum::Json(json!({ "data": data })).into_response())
}

/// Creates a whole entity for this tenant: table (through a recorded migration), REST
/// resource and OpenAPI schema.
async fn create_runtime_entity(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<Response, Problem> {
    query_params(query, &[])?;
    let (repository, scope) = parts(&state, &context)?;
    let schema = repository.create_entity(&scope, &json_body(&body)?).await?;
    let mut response = (
        StatusCode::CREATED,
        axum::Json(runtime_entity_json(&schema)),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/resources/{}", schema.name)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The OpenAPI document: the generated part and every module's description of its routes;
/// with a tenant (`X-Tenant`), each entity's `custom` property lists that tenant's custom
/// fields.
async fn openapi_json(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    query_params(query, &[])?;
    let entities = state
        .services
        .get::<Entities>("prefiq-http openapi")
        .map_err(Problem::from)?;
    // Each tenant's document shows its own runtime entities and no one else's.
    let tenant = trusted_tenant(&state, &context);
    let registry = entities.registry().visible_to(tenant);
    let mut document = crate::openapi::openapi_document(&registry, env!("CARGO_PKG_VERSION"));
    let descriptions = state.services.all::<crate::openapi::ApiDescription>();
    crate::openapi::merge_descriptions(&mut document, descriptions.iter().map(|d| d.as_ref()))
        .map_err(|e| Problem::from(prefiq::KernelError::service(prefiq::ErrorKind::Internal, e)))?;
    if tenant.is_some() {
        let (repository, scope) = parts(&state, &context)?;
        for schema in registry.all().filter(|s| !s.child) {
            let fields = repository.custom_fields(&scope, &schema.name).await?;
            if fields.is_empty() {
                continue;
            }
            let components = &mut document["components"]["schemas"];
            for (component, mode) in [
                (schema.name.clone(), SchemaMode::Read),
                (format!("{}_create", schema.name), SchemaMode::Create),
                (format!("{}_update", schema.name), SchemaMode::Update),
            ] {
                if let Some(record) = components.get_mut(&component) {
                    crate::openapi::with_custom_fields(record, &fields, &registry, mode);
                }
            }
        }
    }
    Ok(axum::Json(document).into_response())
}

async fn list_custom_fields(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<Vec<(String, String)>>,
    Path(entity): Path<String>,
) -> Result<Response, Problem> {
    query_params(query, &[])?;
    let (repository, scope) = parts(&state, &context)?;
    if repository
        .registry()
        .get_for(Some(scope.tenant()), &entity)
        .is_none_or(|s| s.child)
    {
        return Err(RepoError::UnknownEntity(entity).into());
    }
    let fields = repository.custom_fields(&scope, &entity).await?;
    Ok(axum::Json(json!({"data": fields})).into_response())
}

async fn add_custom_field(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<Vec<(String, String)>>,
    Path(entity): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    query_params(query, &[])?;
    let (repository, scope) = parts(&state, &context)?;
    let field = repository
        .add_custom_field(&scope, &entity, &json_body(&body)?)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(field)).into_response())
}

async fn remove_custom_field(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<Vec<(String, String)>>,
    Path((entity, name)): Path<(String, String)>,
) -> Result<Response, Problem> {
    query_params(query, &[])?;
    let (repository, scope) = parts(&state, &context)?;
    repository
        .remove_custom_field(&scope, &entity, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn entity_schema(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(entity): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let params = query_params(query, &["mode"])?;
    let entities = state
        .services
        .get::<Entities>("prefiq-http schema")
        .map_err(Problem::from)?;
    let registry = entities
        .registry()
        .visible_to(trusted_tenant(&state, &context));
    let schema = registry
        .get(&entity)
        .filter(|s| !s.child)
        .ok_or_else(|| Problem::from(RepoError::UnknownEntity(entity.clone())))?;
    let mode = match params.get("mode").map(String::as_str) {
        None | Some("read") => SchemaMode::Read,
        Some("create") => SchemaMode::Create,
        Some("update") => SchemaMode::Update,
        Some(_) => {
            return Err(bad_request(
                "/mode",
                "invalid_option",
                "mode is read, create or update",
            ));
        }
    };
    let mut body = crate::openapi::entity_json_schema(schema, &registry, mode);
    // The tenant's custom fields are part of its records (and of what it may write).
    if trusted_tenant(&state, &context).is_some() {
        let (repository, scope) = parts(&state, &context)?;
        let fields = repository.custom_fields(&scope, &entity).await?;
        crate::openapi::with_custom_fields(&mut body, &fields, &registry, mode);
    }
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/schema+json"),
    );
    Ok(response)
}

impl From<RepoError> for Problem {
    fn from(error: RepoError) -> Self {
        let errors = |items: Value| Some(items);
        match error {
            RepoError::NoTenant => Problem::new(StatusCode::BAD_REQUEST)
                .with_detail("a tenant is required: send the X-Tenant header"),
            e @ (RepoError::UnknownEntity(_) | RepoError::NotFound { .. }) => {
                Problem::new(StatusCode::NOT_FOUND).with_detail(e.to_string())
            }
            RepoError::Invalid(items) => {
                let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY).with_detail(match items
                    .as_slice()
                {
                    [one] => one.message.clone(),
                    _ => format!("{} problems with the input", items.len()),
                });
                p.errors = errors(json!(items));
                p
            }
            RepoError::Unique(item) => {
                let mut p = Problem::new(StatusCode::CONFLICT).with_detail(item.message.clone());
                p.errors = errors(json!([item]));
                p
            }
            e @ RepoError::VersionConflict { .. } => {
                Problem::new(StatusCode::CONFLICT).with_detail(e.to_string())
            }
            ref e @ RepoError::Referenced { ref references, .. } => {
                let detail = e.to_string();
                let items: Vec<Value> = references
                    .iter()
                    .map(|r| {
                        json!({
                            "pointer": "",
                            "code": "referenced",
                            "message": format!("{} {} links to it in `{}`", r.entity, r.name, r.field),
                            "entity": r.entity,
                            "id": r.id,
                            "name": r.name,
                            "field": r.field,
                        })
                    })
                    .collect();
                let mut p = Problem::new(StatusCode::CONFLICT).with_detail(detail);
                p.errors = errors(Value::Array(items));
                p
            }
            // RFC 9110 §13.1.1: an `If-Match` that no longer matches.
            e @ RepoError::PreconditionFailed { .. } => {
                Problem::new(StatusCode::PRECONDITION_FAILED).with_detail(e.to_string())
            }
            // A hook that could not run (a plugin that trapped or ran out of its budget):
            // the write did not happen, and the problem names the hook.
            e @ RepoError::HookFailed { .. } => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE).with_detail(e.to_string())
            }
            RepoError::Rejected { message, .. } => {
                let mut p =
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY).with_detail(message.clone());
                p.errors = errors(
                    json!([{"pointer": hook_pointer(&message), "code": "rejected", "message": message}]),
                );
                p
            }
            RepoError::Forbidden { action, reason } => Problem::new(StatusCode::FORBIDDEN)
                .with_detail(reason)
                .with_action(action),
            RepoError::Database(DataError::NotConnected | DataError::Connect { .. }) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE)
                    .with_detail("the database is not available")
            }
            e => {
                tracing::error!(target: "prefiq::http", error = %e, "repository failure");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

fn bad_request(pointer: &str, code: &str, message: impl Into<String>) -> Problem {
    let message = message.into();
    let mut p = Problem::new(StatusCode::BAD_REQUEST).with_detail(message.clone());
    p.errors = Some(json!([{"pointer": pointer, "code": code, "message": message}]));
    p
}

/// The tenant a request may act in: with an identity module installed, only a token's
/// (the `X-Tenant` header alone is not trusted); without one, the header's.
fn trusted_tenant<'c>(state: &HttpState, context: &'c Context) -> Option<&'c str> {
    (state.authenticator.is_none() || context.user.is_some())
        .then_some(context.tenant.as_deref())
        .flatten()
}

fn parts(
    state: &HttpState,
    context: &Context,
) -> Result<(std::sync::Arc<Repository>, TenantScope), Problem> {
    if state.authenticator.is_some() && context.user.is_none() {
        return Err(Problem::new(StatusCode::UNAUTHORIZED).with_detail(
            "sign in first: send `Authorization: Bearer <token>` (POST /api/v1/auth/login)",
        ));
    }
    let repository = state
        .services
        .get::<Repository>("prefiq-http resources")
        .map_err(Problem::from)?;
    let scope = TenantScope::new(context).map_err(Problem::from)?;
    Ok((repository, scope))
}

/// The query parameters of `/api/v1/resources/{entity}`.
const LIST_PARAMETERS: &[&str] = &["fields", "filters", "order_by", "limit", "cursor", "total"];

/// The query parameters of a route that takes those in `allowed`, by name. A parameter the
/// route does not take, or one given twice, is a 400 naming it: ignoring it would answer
/// something else than what was asked (`offset=50` would return the first page again).
fn query_params(
    given: Vec<(String, String)>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, Problem> {
    let mut params = HashMap::with_capacity(given.len());
    for (name, value) in given {
        if !allowed.contains(&name.as_str()) {
            let takes = match allowed {
                [] => "this route takes no query parameters".to_owned(),
                _ => format!("this route takes {}", allowed.join(", ")),
            };
            let paging = if matches!(name.as_str(), "offset" | "page" | "skip" | "start") {
                "; pages continue with `cursor` (the previous page's `next_cursor`)"
            } else {
                ""
            };
            let shown: String = name.chars().take(64).collect();
            return Err(bad_request(
                &format!("/{shown}"),
                "unknown_parameter",
                format!("unknown query parameter `{shown}`: {takes}{paging}"),
            ));
        }
        if params.contains_key(&name) {
            return Err(bad_request(
                &format!("/{name}"),
                "repeated_parameter",
                format!("the query parameter `{name}` is given more than once"),
            ));
        }
        params.insert(name, value);
    }
    Ok(params)
}

fn json_body(body: &Bytes) -> Result<Value, Problem> {
    serde_json::from_slice(body)
        .map_err(|e| bad_request("", "invalid_json", format!("the body is not JSON: {e}")))
}

fn json_param(params: &HashMap<String, String>, name: &str) -> Result<Option<Value>, Problem> {
    // An empty value (`?fields=`) is the same as leaving the parameter out.
    let Some(text) = params.get(name).filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    if text.len() > MAX_PARAM_BYTES {
        return Err(bad_request(
            &format!("/{name}"),
            "too_long",
            format!("`{name}` is longer than {MAX_PARAM_BYTES} bytes"),
        ));
    }
    serde_json::from_str(text).map(Some).map_err(|e| {
        bad_request(
            &format!("/{name}"),
            "invalid_json",
            format!("`{name}` is not JSON: {e}"),
        )
    })
}

async fn list(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(entity): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let params = query_params(query, LIST_PARAMETERS)?;
    let (repository, scope) = parts(&state, &context)?;
    repository.check_route(&scope, &entity, "read").await?;
    let fields = match json_param(&params, "fields")? {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                bad_request(
                    "/fields",
                    "wrong_type",
                    "`fields` is a JSON array of field names",
                )
            })?,
        Some(_) => {
            return Err(bad_request(
                "/fields",
                "wrong_type",
                "`fields` is a JSON array of field names",
            ));
        }
    };
    // An empty `limit=` is not a number either: refused like any other non-number.
    let limit =
        match params.get("limit") {
            None => None,
            Some(text) => Some(text.parse::<u32>().map_err(|_| {
                bad_request("/limit", "wrong_type", "`limit` is a positive integer")
            })?),
        };
    let query = ListQuery {
        fields,
        filters: json_param(&params, "filters")?,
        order_by: params
            .get("order_by")
            .filter(|t| !t.trim().is_empty())
            .cloned(),
        limit,
        cursor: params.get("cursor").filter(|t| !t.is_empty()).cloned(),
        total: match params.get("total").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(bad_request(
                    "/total",
                    "wrong_type",
                    "`total` is `true` or `false`",
                ));
            }
        },
    };
    let page = repository.list(&scope, &entity, &query).await?;
    Ok(axum::Json(page).into_response())
}

async fn create(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<Vec<(String, String)>>,
    Path(entity): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    query_params(query, &[])?;
    let (repository, scope) = parts(&state, &context)?;
    repository.check_route(&scope, &entity, "create").await?;
    let record = repository
        .create(&scope, &entity, json_body(&body)?)
        .await?;
    let mut response = (StatusCode::CREATED, axum::Json(&record)).into_response();
    if let Some(id) = record.get("id").and_then(Value::as_str)
        && let Ok(location) = HeaderValue::from_str(&format!("/api/v1/resources/{entity}/{id}"))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(with_etag(response, &record))
}

fn with_etag(mut response: Response, record: &Value) -> Response {
    if let Some(version) = record.get("version").and_then(Value::as_i64)
        && let Ok(value) = HeaderValue::from_str(&format!("\"{version}\""))
    {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

async fn read(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<Vec<(String, String)>>,
    Path((entity, id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    query_params(query, &[])?;
    let (repository, scope) = parts(&state, &context)?;
    repository.check_route(&scope, &entity, "read").await?;
    let record = repository.get(&scope, &entity, &id).await?;
    Ok(with_etag(axum::Json(&record).into_response(), &record))
}

/// `If-Match: "3"` (or `3`, or `W/"3"`) → 3; `*` (any current version) is the same as no
/// `If-Match`.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text.is_empty() || text == "*" {
        return Ok(None);
    }
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse::<i64>().map(Some).map_err(|_| {
        bad_request(
            "",
            "invalid_if_match",
            "If-Match holds the record's version, such as \"3\"",
        )
    })
}

async fn update(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<Vec<(String, String)>>,
    Path((entity, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    query_params(query, &[])?;
    let (repository, scope) = parts(&state, &context)?;
    repository.check_route(&scope, &entity, "update").await?;
    let expected = if_match(&headers)?;
    let record = repository
        .update(&scope, &entity, &id, json_body(&body)?, expected)
        .await?;
    Ok(with_etag(axum::Json(&record).into_response(), &record))
}

async fn delete(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<Vec<(String, String)>>,
    Path((entity, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    query_params(query, &[])?;
    let (repository, scope) = parts(&state, &context)?;
    repository.check_route(&scope, &entity, "delete").await?;
    let expected = if_match(&headers)?;
    repository.delete_at(&scope, &entity, &id, expected).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn act(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<Vec<(String, String)>>,
    Path((entity, id, action)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    query_params(query, &[])?;
    let (repository, scope) = parts(&state, &context)?;
    if matches!(action.as_str(), "submit" | "cancel" | "amend") {
        repository.check_route(&scope, &entity, &action).await?;
    }
    let expected = if_match(&headers)?;
    let record = match action.as_str() {
        "submit" => repository.submit_at(&scope, &entity, &id, expected).await?,
        "cancel" => repository.cancel_at(&scope, &entity, &id, expected).await?,
        "amend" => {
            let record = repository.amend_at(&scope, &entity, &id, expected).await?;
            return Ok(with_etag(
                (StatusCode::CREATED, axum::Json(&record)).into_response(),
                &record,
            ));
        }
        other => {
            return Err(Problem::new(StatusCode::NOT_FOUND).with_detail(format!(
                "unknown action `{other}`; use submit, cancel or amend"
            )));
        }
    };
    Ok(with_etag(axum::Json(&record).into_response(), &record))
}

/// The JSON pointer a hook's refusal names: a message such as `/lines/0/account: …`
/// starts with it; any other message is about the whole document (`""`).
fn hook_pointer(message: &str) -> &str {
    match message.split_once(": ") {
        Some((pointer, _))
            if pointer.starts_with('/') && !pointer.contains(char::is_whitespace) =>
        {
            pointer
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_names_its_pointer_at_the_start_of_its_message() {
        for (message, pointer) in [
            (
                "/receivable_account: not a Receivable account",
                "/receivable_account",
            ),
            ("/lines/0/rate: from 0 to 100", "/lines/0/rate"),
            ("the period is closed", ""),
            ("/not a pointer: x", ""),
            ("", ""),
        ] {
            assert_eq!(hook_pointer(message), pointer, "{message}");
        }
    }
}
