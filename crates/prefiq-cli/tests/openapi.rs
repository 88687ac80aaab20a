//! The served OpenAPI document of the whole installation (every compiled-in module)
//! against the routes its router serves: neither may have what the other lacks.
//!
//! Only the desk's HTML pages (`/app` and below) are not API and are left out of the
//! document on purpose; every other route, the probes included, must be described.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::Request;
use prefiq::{BootMode, BootOptions, BootedApp, ConfigOptions};
use prefiq_http::HttpAssembler;
use serde_json::Value;
use tower::ServiceExt;

/// Whether a served path is one of the desk's HTML pages, which are not API.
fn is_desk_page(path: &str) -> bool {
    path == "/app" || path.starts_with("/app/")
}

struct Installation {
    app: BootedApp,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

async fn installation() -> Installation {
    let dir = tempfile::tempdir().unwrap();
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(dir.path().to_path_buf()),
        vars: Some(vec![("PREFIQ__LOG__LEVEL".into(), "warn".into())]),
        ..Default::default()
    };
    let app = prefiq_cli::installation()
        .unwrap()
        .boot(options)
        .await
        .unwrap();
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    Installation {
        app,
        router,
        _dir: dir,
    }
}

impl Installation {
    /// Every route the router serves, as `METHOD /path`.
    fn served(&self) -> Vec<(String, String)> {
        let assembler = self
            .app
            .resolver("openapi test")
            .get::<HttpAssembler>()
            .unwrap();
        assembler
            .routes()
            .into_iter()
            .map(|r| (r.method, r.path))
            .collect()
    }

    async fn document(&self) -> Value {
        let response = self
            .router
            .clone()
            .oneshot(
                Request::get("/api/v1/openapi.json")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }
}

/// Every operation of the document, as (METHOD, path).
fn described(document: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if method != "parameters" {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// Whether the router's pattern `route` serves the document's `path`: literal segments
/// are equal, and a route parameter (`{entity}`) serves any segment, such as the
/// document's `todo` of one generated resource or its own `{id}`.
fn serves(route: &str, path: &str) -> bool {
    let route: Vec<&str> = route.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    route.len() == path.len()
        && route
            .iter()
            .zip(&path)
            .all(|(r, p)| r.starts_with('{') || r == p)
}

fn check_serves(route: &str, path: &str, expected: bool) {
    assert_eq!(serves(route, path), expected, "{route} serves {path}");
}

#[test]
fn route_patterns_match_described_paths() {
    check_serves("/api/v1/users", "/api/v1/users", true);
    check_serves("/api/v1/users/{id}", "/api/v1/users/{id}", true);
    check_serves("/api/v1/resources/{entity}", "/api/v1/resources/todo", true);
    check_serves(
        "/api/v1/resources/{entity}/{id}/{action}",
        "/api/v1/resources/journal_entry/{id}/submit",
        true,
    );
    check_serves("/api/v1/users", "/api/v1/users/{id}", false);
    check_serves("/api/v1/users/{id}", "/api/v1/users", false);
    check_serves("/api/v1/settings", "/api/v1/setting", false);
    // A described literal never stands for a route's literal of another name.
    check_serves("/api/v1/audit/verify", "/api/v1/audit/{x}", false);
}

#[tokio::test]
async fn openapi_lists_every_served_route() {
    let installation = installation().await;
    let document = installation.document().await;
    let described = described(&document);
    let served = installation.served();
    assert!(served.len() > 40, "{served:?}");
    let missing: Vec<String> = served
        .iter()
        .filter(|(_, path)| !is_desk_page(path))
        .filter(|(method, route)| {
            !described
                .iter()
                .any(|(m, path)| m == method && serves(route, path))
        })
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(
        missing.is_empty(),
        "served routes the OpenAPI document does not describe (describe them in the module's openapi/*.yaml):\n{}",
        missing.join("\n")
    );
    // And the other way round: nothing is described that is not served.
    let phantom: Vec<String> = described
        .iter()
        .filter(|(method, path)| {
            !served
                .iter()
                .any(|(m, route)| m == method && serves(route, path))
        })
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(
        phantom.is_empty(),
        "operations of the OpenAPI document that no route serves:\n{}",
        phantom.join("\n")
    );
    // The desk's pages are the only routes left out.
    assert!(described.iter().all(|(_, path)| !is_desk_page(path)));
}

/// Every `$ref` under `value`, with where it is.
fn refs<'v>(value: &'v Value, at: String, out: &mut Vec<(String, &'v str)>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("$ref", Value::String(target)) => out.push((at.clone(), target)),
                    _ => refs(item, format!("{at}/{key}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                refs(item, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// `value`, or what its `$ref` points at.
fn resolve<'d>(document: &'d Value, value: &'d Value) -> &'d Value {
    match value["$ref"].as_str() {
        Some(target) => document.pointer(&target[1..]).unwrap(),
        None => value,
    }
}

#[tokio::test]
async fn every_operation_has_schemas_and_problem_responses() {
    let installation = installation().await;
    let document = installation.document().await;
    let mut found = Vec::new();
    refs(&document, String::new(), &mut found);
    for (at, target) in &found {
        let resolved = target
            .strip_prefix('#')
            .and_then(|pointer| document.pointer(pointer));
        assert!(resolved.is_some(), "{at}: {target} does not resolve");
    }
    let mut ids = BTreeSet::new();
    for (method, path) in described(&document) {
        let what = format!("{method} {path}");
        let operation = &document["paths"][&path][method.to_lowercase()];
        let id = operation["operationId"].as_str().unwrap();
        assert!(
            ids.insert(id.to_owned()),
            "{what}: duplicate operationId {id}"
        );
        assert!(operation["summary"].is_string(), "{what}: no summary");
        let responses = operation["responses"].as_object().unwrap();
        let success: Vec<&String> = responses.keys().filter(|s| s.starts_with('2')).collect();
        assert!(!success.is_empty(), "{what}: no success response");
        for status in success {
            // A success answers a body described by a schema, or none (204, 202).
            let response = resolve(&document, &responses[status]);
            if let Some(content) = response["content"].as_object() {
                assert!(
                    content.values().all(|c| c["schema"].is_object()),
                    "{what} {status}: content without a schema"
                );
            } else {
                assert!(
                    ["202", "204"].contains(&status.as_str()),
                    "{what} {status}: no body described"
                );
            }
        }
        for (status, response) in responses.iter().filter(|(s, _)| s.starts_with('4')) {
            let response = resolve(&document, response);
            assert_eq!(
                response["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{what} {status}"
            );
        }
        // Whatever takes a body says what the body is.
        if ["POST", "PUT", "PATCH"].contains(&method.as_str())
            && let Some(body) = operation.get("requestBody")
        {
            assert!(
                body["content"]["application/json"]["schema"].is_object(),
                "{what}: a request body without a schema"
            );
        }
        if path.starts_with("/api/") && !path.ends_with("/openapi.json") {
            assert!(responses.contains_key("429"), "{what}: no 429 (rate limit)");
        }
    }
}

/// The policies every compiled-in module's schemas and grants generate validate strictly
/// against the Cedar schema they make (compiling a tenant's model leaves that check out,
/// for the speed of a first request).
#[tokio::test]
async fn the_generated_policies_of_every_module_validate() {
    let installation = installation().await;
    let authorizer = installation
        .app
        .resolver("policy test")
        .get::<prefiq_auth::authz::CedarAuthorizer>()
        .unwrap();
    let model = authorizer.candidate_model("acme", &[]).unwrap();
    model.check_generated().unwrap();
}
