//! Inputs that used to be ignored, or taken in part, and are now refused naming what is
//! wrong: query parameters a route does not take or that are given twice, and JSON bodies
//! that give a key twice.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Api, boot, first_error};
use prefiq_data::testing::databases;
use serde_json::json;

/// Sends `body` to `method path` as `acme` and compares the status and the first error's
/// pointer and code with `expected`.
async fn check(
    api: &Api,
    method: &str,
    path: &str,
    body: &str,
    expected: (StatusCode, &str, &str),
) {
    let (status, problem) = api.raw(method, path, &[("x-tenant", "acme")], body).await;
    let (status, pointer, code) = first_error(status, &problem);
    assert_eq!(
        (status, pointer.as_str(), code.as_str()),
        expected,
        "{} {method} {path} {body}: {problem}",
        api.url
    );
}

#[tokio::test]
async fn unknown_and_repeated_query_parameters_are_refused() {
    for db in databases("prefiq-http query parameters").await {
        let api = boot(&db, &[]).await;
        let (status, todo) = api
            .call(
                "POST",
                "/api/v1/resources/todo",
                "acme",
                Some(&json!({"description": "x"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{todo}");
        let one = format!("/api/v1/resources/todo/{}", todo["id"].as_str().unwrap());
        let bad = StatusCode::BAD_REQUEST;
        let unknown = |pointer| (bad, pointer, "unknown_parameter");
        let repeated = |pointer| (bad, pointer, "repeated_parameter");
        for (method, path, expected) in [
            (
                "GET",
                "/api/v1/resources/todo?offset=-5".to_owned(),
                unknown("/offset"),
            ),
            (
                "GET",
                "/api/v1/resources/todo?offset=10&limit=5".to_owned(),
                unknown("/offset"),
            ),
            (
                "GET",
                "/api/v1/resources/todo?page=2".to_owned(),
                unknown("/page"),
            ),
            (
                "GET",
                "/api/v1/resources/todo?limt=5".to_owned(),
                unknown("/limt"),
            ),
            (
                "GET",
                "/api/v1/resources/todo?limit=5&limit=500".to_owned(),
                repeated("/limit"),
            ),
            (
                "GET",
                "/api/v1/resources/todo?total=true&total=false".to_owned(),
                repeated("/total"),
            ),
            ("GET", format!("{one}?fields=x"), unknown("/fields")),
            ("DELETE", format!("{one}?force=true"), unknown("/force")),
            (
                "GET",
                "/api/v1/schema/todo?mode=read&mode=create".to_owned(),
                repeated("/mode"),
            ),
            (
                "GET",
                "/api/v1/schema/todo?modes=read".to_owned(),
                unknown("/modes"),
            ),
            (
                "GET",
                "/api/v1/openapi.json?tenant=globex".to_owned(),
                unknown("/tenant"),
            ),
            (
                "GET",
                "/api/v1/customize/todo/fields?all=1".to_owned(),
                unknown("/all"),
            ),
            (
                "GET",
                "/api/v1/customize/entities?all=1".to_owned(),
                unknown("/all"),
            ),
        ] {
            check(&api, method, &path, "", expected).await;
        }
        for (method, path, body, pointer) in [
            (
                "POST",
                "/api/v1/resources/todo?dry_run=1".to_owned(),
                r#"{"description": "y"}"#,
                "/dry_run",
            ),
            (
                "PATCH",
                format!("{one}?merge=deep"),
                r#"{"estimate": 3}"#,
                "/merge",
            ),
            ("POST", format!("{one}/submit?now=1"), "", "/now"),
        ] {
            check(&api, method, &path, body, unknown(pointer)).await;
        }
        // Nothing was written by a refused call: the record is unchanged.
        let (_, read) = api.call("GET", &one, "acme", None).await;
        assert_eq!(
            (read["estimate"].clone(), read["version"].clone()),
            (json!(null), json!(1))
        );
        // The parameters the routes take still work.
        let (status, page) = api
            .call(
                "GET",
                "/api/v1/resources/todo?limit=1&total=true&fields=%5B%22id%22%5D",
                "acme",
                None,
            )
            .await;
        assert_eq!(
            (status, page["total"].clone()),
            (StatusCode::OK, json!(1)),
            "{page}"
        );
        let (status, _) = api
            .call("GET", "/api/v1/schema/todo?mode=create", "acme", None)
            .await;
        assert_eq!(status, StatusCode::OK);
        drop(api);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn json_bodies_with_repeated_keys_are_refused_on_every_route() {
    for db in databases("prefiq-http repeated JSON keys").await {
        let api = boot(&db, &[]).await;
        let (_, todo) = api
            .call(
                "POST",
                "/api/v1/resources/todo",
                "acme",
                Some(&json!({"description": "x"})),
            )
            .await;
        let one = format!("/api/v1/resources/todo/{}", todo["id"].as_str().unwrap());
        let repeated = |pointer| (StatusCode::BAD_REQUEST, pointer, "duplicate_key");
        for (method, path, body, expected) in [
            (
                "POST",
                "/api/v1/resources/todo",
                r#"{"description": "a", "description": "b"}"#,
                repeated("/description"),
            ),
            (
                "PATCH",
                one.as_str(),
                r#"{"estimate": 1, "estimate": 1000}"#,
                repeated("/estimate"),
            ),
            (
                "POST",
                "/api/v1/customize/todo/fields",
                r#"{"name": "cf_a", "type": "int", "type": "data"}"#,
                repeated("/type"),
            ),
            (
                "POST",
                "/api/v1/customize/entities",
                r#"{"name": "boat", "fields": [{"name": "hull", "type": "data", "name": "keel"}]}"#,
                repeated("/fields/0/name"),
            ),
            // A module's own route gets the same check without doing anything.
            (
                "POST",
                "/demo/echo",
                r#"{"value": 1, "value": 2}"#,
                repeated("/value"),
            ),
        ] {
            check(&api, method, path, body, expected).await;
        }
        // The same key in different objects is fine, and so is a body that is not JSON.
        let (status, echoed) = api
            .raw("POST", "/demo/echo", &[], r#"{"value": {"value": 2}}"#)
            .await;
        assert_eq!((status, echoed), (StatusCode::OK, json!({"value": 2})));
        let (status, _) = api.raw("POST", "/demo/echo", &[], "value=1&value=2").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "a form body is the handler's business"
        );
        // Nothing was written by the refused calls.
        let (_, read) = api.call("GET", &one, "acme", None).await;
        assert_eq!(read["version"], 1, "{read}");
        let (_, page) = api
            .call("GET", "/api/v1/resources/todo", "acme", None)
            .await;
        assert_eq!(page["data"].as_array().map(Vec::len), Some(1), "{page}");
        let (_, fields) = api
            .call("GET", "/api/v1/customize/todo/fields", "acme", None)
            .await;
        assert_eq!(fields["data"], json!([]));
        drop(api);
        db.cleanup().await;
    }
}

/// The refusals are part of the contract: their problem details, snapshotted (the same on
/// every backend).
#[tokio::test]
async fn refusals_are_problem_details() {
    for db in databases("prefiq-http refusal bodies").await {
        let api = boot(&db, &[]).await;
        let (_, todo) = api
            .call(
                "POST",
                "/api/v1/resources/todo",
                "acme",
                Some(&json!({"description": "x"})),
            )
            .await;
        let one = format!("/api/v1/resources/todo/{}", todo["id"].as_str().unwrap());
        let acme = [("x-tenant", "acme")];
        for (name, method, path, headers, body) in [
            (
                "unknown_parameter",
                "GET",
                "/api/v1/resources/todo?offset=-5",
                &acme[..],
                "",
            ),
            (
                "repeated_parameter",
                "GET",
                "/api/v1/resources/todo?limit=1&limit=2",
                &acme[..],
                "",
            ),
            (
                "duplicate_key",
                "POST",
                "/api/v1/resources/todo",
                &acme[..],
                r#"{"description": "a", "description": "b"}"#,
            ),
            (
                "stale_if_match",
                "PATCH",
                one.as_str(),
                &[("x-tenant", "acme"), ("if-match", "\"9\"")][..],
                r#"{"estimate": 1}"#,
            ),
            (
                "reserved_entity_name",
                "POST",
                "/api/v1/customize/entities",
                &acme[..],
                r#"{"name": "sqlite_master", "fields": [{"name": "x", "type": "int"}]}"#,
            ),
            (
                "malformed_x_tenant",
                "GET",
                "/api/v1/resources/todo",
                &[("x-tenant", "ACME")][..],
                "",
            ),
            (
                "repeated_x_tenant",
                "GET",
                "/api/v1/resources/todo",
                &[("x-tenant", "acme"), ("x-tenant", "globex")][..],
                "",
            ),
        ] {
            let (status, mut problem) = api.raw(method, path, headers, body).await;
            problem["trace_id"] = json!("[trace_id]");
            insta::assert_json_snapshot!(
                name,
                json!({"status": status.as_u16(), "problem": problem})
            );
        }
        drop(api);
        db.cleanup().await;
    }
}
