//! The plugins API of a tenant — list the installed plugins, enable (with settings) and
//! disable one, which needs the action `plugins.manage` — and the routes plugins serve
//! under `/api/v1/plugins/{name}/…`, for any signed-in user of a tenant that enabled them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use prefiq::{Context, ErrorKind, KernelError};
use prefiq_auth::authz::{CedarAuthorizer, Resource, refusal};
use prefiq_data::entity::repo::TenantScope;
use prefiq_http::{HttpState, Problem};
use prefiq_plugin::manifest::RouteSpec;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::PluginsError;
use crate::dispatch::guarded;
use crate::host::RepositoryHost;
use crate::service::Plugins;

/// Managing a tenant's plugins.
pub const MANAGE: &str = "plugins.manage";

/// The largest request body handed to a plugin's route.
pub const MAX_ROUTE_BODY_BYTES: usize = 1024 * 1024;

// Problems are returned by value on the cold error path, as in prefiq-http's handlers,
// hence the `result_large_err` allowances below.

/// Request headers a plugin's route sees; credentials never reach it.
const FORWARDED_HEADERS: &[&str] = &["accept", "accept-language", "content-type", "user-agent"];

#[allow(clippy::result_large_err)]
fn services(state: &HttpState) -> Result<(Arc<Plugins>, Arc<RepositoryHost>), Problem> {
    let plugins = state
        .services
        .get::<Plugins>("plugins routes")
        .map_err(Problem::from)?;
    let host = state
        .services
        .get::<RepositoryHost>("plugins routes")
        .map_err(Problem::from)?;
    Ok((plugins, host))
}

#[allow(clippy::result_large_err)]
fn signed_in(context: &Context) -> Result<TenantScope, Problem> {
    if context.principal.is_none() {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Unauthenticated,
            "sign in first: send `Authorization: Bearer <token>`",
        )));
    }
    TenantScope::new(context).map_err(Problem::from)
}

#[allow(clippy::result_large_err)]
async fn manager(state: &HttpState, context: &Context) -> Result<TenantScope, Problem> {
    let scope = signed_in(context)?;
    let authorizer = state
        .services
        .get::<CedarAuthorizer>("plugins routes")
        .map_err(Problem::from)?;
    let decision = authorizer.decide(&scope, MANAGE, Resource::Tenant).await;
    if !decision.allowed {
        return Err(Problem::new(StatusCode::FORBIDDEN)
            .with_detail(refusal(MANAGE, "the tenant", &decision))
            .with_action(MANAGE));
    }
    Ok(scope)
}

/// `GET /api/v1/plugins`: every installed plugin, with whether it is enabled for the
/// caller's tenant, the tenant's settings and what the plugin may do.
pub async fn list(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
) -> Result<Json<Value>, Problem> {
    let scope = manager(&state, &context).await?;
    let (plugins, _) = services(&state)?;
    let snapshot = plugins.state();
    let data: Vec<Value> = snapshot
        .installed
        .values()
        .map(|p| {
            let m = &p.manifest;
            let choice = snapshot
                .choices
                .iter()
                .find(|c| c.tenant == scope.tenant() && c.plugin == m.name);
            json!({
                "name": m.name,
                "version": m.version.to_string(),
                "description": m.description,
                "publisher": m.publisher,
                "digest": p.digest,
                "signer": p.signer,
                "installed_at": p.installed_at,
                "enabled": choice.is_some_and(|c| c.enabled),
                "config": choice.map(|c| Value::Object(c.config.clone())).unwrap_or(json!({})),
                "config_schema": m.config,
                "capabilities": m.capabilities,
            })
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnableRequest {
    #[serde(default)]
    config: Option<Map<String, Value>>,
}

/// `POST /api/v1/plugins/{name}/enable`, with optional `{"config": {…}}`.
pub async fn enable(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let scope = manager(&state, &context).await?;
    let (plugins, _) = services(&state)?;
    let request: EnableRequest = if body.is_empty() {
        EnableRequest::default()
    } else {
        prefiq_http::json_object(&body).map_err(|e| {
            Problem::new(StatusCode::BAD_REQUEST)
                .with_detail(format!("the body must be {{\"config\": {{…}}}}: {e}"))
        })?
    };
    plugins
        .enable(scope.tenant(), &name, request.config, scope.user())
        .await
        .map_err(problem)?;
    tracing::info!(target: "plugins", tenant = scope.tenant(), plugin = %name, "plugin enabled");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/plugins/{name}/disable`.
pub async fn disable(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    let scope = manager(&state, &context).await?;
    let (plugins, _) = services(&state)?;
    plugins
        .disable(scope.tenant(), &name, scope.user())
        .await
        .map_err(problem)?;
    tracing::info!(target: "plugins", tenant = scope.tenant(), plugin = %name, "plugin disabled");
    Ok(StatusCode::NO_CONTENT)
}

/// A service error as a problem.
pub fn problem(e: PluginsError) -> Problem {
    let status = match &e {
        PluginsError::NotFound(_) => StatusCode::NOT_FOUND,
        PluginsError::Conflict(_) | PluginsError::Incompatible(_) => StatusCode::CONFLICT,
        PluginsError::Plugin(prefiq_plugin::PluginError::Config(_)) | PluginsError::Invalid(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        PluginsError::Plugin(prefiq_plugin::PluginError::Call { .. }) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Problem::new(status).with_detail(e.to_string())
}

/// Whether `spec` (with `{name}` segments) matches `path`; the parameters it binds.
pub fn match_route(spec: &RouteSpec, method: &str, path: &str) -> Option<BTreeMap<String, String>> {
    if spec.method != method {
        return None;
    }
    let wanted: Vec<&str> = spec.path.trim_matches('/').split('/').collect();
    let given: Vec<&str> = path.trim_matches('/').split('/').collect();
    if wanted.len() != given.len() {
        return None;
    }
    let mut params = BTreeMap::new();
    for (w, g) in wanted.iter().zip(&given) {
        match w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
            Some(param) if !g.is_empty() => {
                params.insert(param.to_owned(), (*g).to_owned());
            }
            _ if w == g => {}
            _ => return None,
        }
    }
    Some(params)
}

/// A plugin's route: `/api/v1/plugins/{name}/{*path}`, any method the plugin declared.
pub async fn serve(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    method: Method,
    Path((name, path)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let scope = signed_in(&context)?;
    let (plugins, host) = services(&state)?;
    let snapshot = plugins.state();
    let not_found = || {
        Problem::new(StatusCode::NOT_FOUND).with_detail(format!(
            "plugin {name} is not enabled for this tenant, or serves no {method} /{path}"
        ))
    };
    let active = snapshot
        .active_for(scope.tenant())
        .iter()
        .find(|a| a.installed.manifest.name == name)
        .ok_or_else(not_found)?;
    let path = format!("/{path}");
    let (spec, params) = active
        .installed
        .manifest
        .capabilities
        .routes
        .iter()
        .find_map(|spec| match_route(spec, method.as_str(), &path).map(|p| (spec, p)))
        .ok_or_else(not_found)?;
    if let Some(requires) = &spec.requires {
        let refused = || {
            Problem::new(StatusCode::FORBIDDEN)
                .with_detail(format!(
                    "this route of {name} needs `{}` on {}, which is not permitted for you",
                    requires.action, requires.entity
                ))
                .with_action(requires.action.clone())
        };
        let repository = plugins.repository().map_err(problem)?;
        let schema = repository
            .schema(&scope, &requires.entity)
            .await
            .map_err(|_| refused())?;
        let authorizer = state
            .services
            .get::<CedarAuthorizer>("plugins routes")
            .map_err(Problem::from)?;
        // The entity as a whole: a grant that depends on a row's fields does not count.
        let decision = authorizer
            .decide(
                &scope,
                &requires.action,
                Resource::Record {
                    schema: &schema,
                    id: "",
                    doc: None,
                },
            )
            .await;
        if !decision.allowed {
            return Err(refused());
        }
    }
    if body.len() > MAX_ROUTE_BODY_BYTES {
        return Err(
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE).with_detail(format!(
                "a plugin route takes at most {MAX_ROUTE_BODY_BYTES} bytes"
            )),
        );
    }
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Problem::new(StatusCode::BAD_REQUEST).with_detail(format!("the body is not JSON: {e}"))
        })?
    };
    let forwarded: Map<String, Value> = FORWARDED_HEADERS
        .iter()
        .filter_map(|h| {
            headers
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .map(|v| ((*h).to_owned(), json!(v)))
        })
        .collect();
    let request = json!({
        "method": method.as_str(),
        "path": path,
        "params": params,
        "query": query,
        "headers": forwarded,
        "body": body,
        "user": scope.user(),
    })
    .to_string();
    let context = plugins.call_context(active, scope.tenant(), scope.trace_id());
    let answer = guarded(
        &plugins,
        scope.tenant(),
        &name,
        active.installed.plugin.route(host, context, &request),
    )
    .await
    .map_err(|e| problem(PluginsError::Plugin(e)))?;
    response_of(&name, &answer)
}

/// The HTTP response a plugin's answer describes: `{"status","headers","body"}`.
#[allow(clippy::result_large_err)]
fn response_of(plugin: &str, answer: &str) -> Result<Response, Problem> {
    let bad = |why: &str| {
        Problem::new(StatusCode::BAD_GATEWAY).with_detail(format!(
            "plugin {plugin} answered a response that is not valid: {why}"
        ))
    };
    let answer: Value = serde_json::from_str(answer).map_err(|_| bad("not JSON"))?;
    let status = answer
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .filter(|s| s.as_u16() >= 200)
        .ok_or_else(|| bad("`status` must be an HTTP status of 200 or more"))?;
    let mut response = match answer.get("body") {
        Some(Value::String(text)) => Response::new(Body::from(text.clone())),
        Some(Value::Null) | None => Response::new(Body::empty()),
        Some(body) => {
            let mut r = Response::new(Body::from(body.to_string()));
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
    };
    *response.status_mut() = status;
    if let Some(Value::Object(headers)) = answer.get("headers") {
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            // A plugin sets its content's headers, never the platform's.
            if lower.starts_with("access-control-")
                || lower == "set-cookie"
                || lower.starts_with("x-codexion")
            {
                continue;
            }
            let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(lower.as_str()),
                value.as_str().map(HeaderValue::from_str),
            ) else {
                return Err(bad("a header name or value is not valid"));
            };
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: (&str, &str), request: (&str, &str), expected: Option<&[(&str, &str)]>) {
        let spec = RouteSpec {
            method: spec.0.into(),
            path: spec.1.into(),
            requires: None,
        };
        let got = match_route(&spec, request.0, request.1);
        let expected = expected.map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        });
        assert_eq!(got, expected, "{spec:?} {request:?}");
    }

    #[test]
    fn routes_match_by_method_and_segments() {
        check(("GET", "/policy"), ("GET", "/policy"), Some(&[]));
        check(("GET", "/policy"), ("POST", "/policy"), None);
        check(("GET", "/policy"), ("GET", "/policy/x"), None);
        check(
            ("GET", "/items/{id}"),
            ("GET", "/items/42"),
            Some(&[("id", "42")]),
        );
        check(("GET", "/items/{id}"), ("GET", "/items/"), None);
        check(
            ("GET", "/a/{x}/b/{y}"),
            ("GET", "/a/1/b/2"),
            Some(&[("x", "1"), ("y", "2")]),
        );
        check(("GET", "/a/{x}/b"), ("GET", "/a/1/c"), None);
    }
}
