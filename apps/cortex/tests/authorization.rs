//! Authorization through the HTTP stack, on SQLite and (when configured) PostgreSQL: the
//! permission matrix of a plain user and an administrator as data, admin routes called by
//! a plain user (OWASP API5), tenant policies added through the API (and refused with the
//! validator's message), roles that do not exist refused, and `authz/explain`.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Api, boot};
use prefiq_data::testing::databases;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

async fn token(api: &Api, tenant: &str, email: &str) -> String {
    api.bearer(tenant, email, PASSWORD).await
}

/// A call: method, path, body.
type Call<'a> = (&'a str, &'a str, Option<Value>);
/// What a call should answer: the status, and for a refusal the action it names.
type Expected<'a> = (StatusCode, Option<&'a str>);

/// One call of the matrix: who calls what, and the status (and refused action) expected.
async fn check(
    api: &Api,
    who: &str,
    (method, path, body): Call<'_>,
    expected: Expected<'_>,
) -> Value {
    let (status, response) = api
        .call(method, path, &[("authorization", who)], body)
        .await;
    assert_eq!(status, expected.0, "{method} {path}: {response}");
    if let Some(action) = expected.1 {
        assert_eq!(response["action"], action, "{method} {path}: {response}");
        assert_eq!(response["status"], 403);
        assert!(
            response["detail"].as_str().unwrap().contains(action),
            "{response}"
        );
    }
    response
}

#[tokio::test]
async fn the_permission_matrix_holds_through_the_api_on_backends() {
    for db in databases("authorization over HTTP").await {
        let api = boot(&db).await;
        let identity = api.identity();
        identity
            .create_tenant("acme", "admin@acme.test", PASSWORD)
            .await
            .unwrap();
        identity
            .create_tenant("globex", "admin@globex.test", PASSWORD)
            .await
            .unwrap();
        let admin = token(&api, "acme", "admin@acme.test").await;
        let created = check(
            &api,
            &admin,
            (
                "POST",
                "/api/v1/users",
                Some(json!({"email": "clerk@acme.test", "password": PASSWORD, "roles": [], "attributes": {"department": "Sales"}})),
            ),
            (StatusCode::CREATED, None),
        )
        .await;
        let clerk_id = created["id"].as_str().unwrap().to_owned();
        let plain = token(&api, "acme", "clerk@acme.test").await;
        let todo = check(
            &api,
            &admin,
            (
                "POST",
                "/api/v1/resources/todo",
                Some(json!({"description": "the admin's"})),
            ),
            (StatusCode::CREATED, None),
        )
        .await;
        let todo = format!("/api/v1/resources/todo/{}", todo["id"].as_str().unwrap());
        let users = format!("/api/v1/users/{clerk_id}");
        let forbidden = |action| (StatusCode::FORBIDDEN, Some(action));
        let ok = (StatusCode::OK, None);
        // todo.yaml: `System Manager: [read, create, update, delete]`, `All: [read, create]`.
        #[rustfmt::skip]
        let matrix: Vec<(&str, Call<'_>, Expected<'_>)> = vec![
            (&plain, ("GET", "/api/v1/resources/todo", None), ok),
            (&plain, ("GET", &todo, None), ok),
            (&plain, ("POST", "/api/v1/resources/todo", Some(json!({"description": "mine"}))), (StatusCode::CREATED, None)),
            (&plain, ("PATCH", &todo, Some(json!({"status": "Closed"}))), forbidden("update")),
            (&plain, ("DELETE", &todo, None), forbidden("delete")),
            // The route refuses before it reads the body or looks the row up: a refused
            // caller learns nothing from validation errors or from 404s.
            (&plain, ("PATCH", &todo, Some(json!({"no_such_field": 1}))), forbidden("update")),
            (&plain, ("DELETE", "/api/v1/resources/todo/no-such-id", None), forbidden("delete")),
            (&plain, ("POST", "/api/v1/customize/entities", Some(json!({"name": "gadget", "fields": [{"name": "a", "type": "data"}]}))), forbidden("customize")),
            // OWASP API5: the administrator's routes called by a plain user.
            (&plain, ("GET", "/api/v1/users", None), forbidden("cortex.manage_users")),
            (&plain, ("POST", "/api/v1/users", Some(json!({"email": "x@acme.test", "password": PASSWORD}))), forbidden("cortex.manage_users")),
            (&plain, ("PATCH", &users, Some(json!({"roles": ["System Manager"]}))), forbidden("cortex.manage_users")),
            (&plain, ("GET", "/api/v1/authz/policies", None), forbidden("cortex.manage_policies")),
            (&plain, ("POST", "/api/v1/authz/policies", Some(json!({"id": "open", "text": "permit (principal, action, resource);"}))), forbidden("cortex.manage_policies")),
            (&plain, ("DELETE", "/api/v1/authz/policies/open", None), forbidden("cortex.manage_policies")),
            // The administrator may do all of it.
            (&admin, ("PATCH", &todo, Some(json!({"status": "Closed"}))), ok),
            (&admin, ("GET", "/api/v1/users", None), ok),
            (&admin, ("GET", "/api/v1/authz/policies", None), ok),
        ];
        for (who, call, expected) in matrix {
            check(&api, who, call, expected).await;
        }
        // The plain user's attempt to promote itself changed nothing.
        let (_, listed) = api
            .call("GET", "/api/v1/users", &[("authorization", &admin)], None)
            .await;
        let clerk = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == clerk_id.as_str())
            .unwrap();
        assert_eq!(clerk["roles"], json!([]));
        assert_eq!(clerk["attributes"], json!({"department": "Sales"}));

        // A policy that fails validation is refused with the validator's message.
        let refused = check(
            &api,
            &admin,
            (
                "POST",
                "/api/v1/authz/policies",
                Some(json!({"id": "bad", "text": "forbid (principal, action, resource is todo) when { resource.colour == \"red\" };"})),
            ),
            (StatusCode::UNPROCESSABLE_ENTITY, None),
        )
        .await;
        assert!(
            refused["detail"].as_str().unwrap().contains("colour"),
            "{refused}"
        );
        // A valid forbid applies at once: plain users may no longer create todos.
        let policy = "forbid (principal, action == Action::\"create\", resource is todo)\nunless { principal in Role::\"System Manager\" };";
        check(
            &api,
            &admin,
            (
                "POST",
                "/api/v1/authz/policies",
                Some(json!({"id": "managers-create", "text": policy})),
            ),
            (StatusCode::CREATED, None),
        )
        .await;
        let denied = check(
            &api,
            &plain,
            (
                "POST",
                "/api/v1/resources/todo",
                Some(json!({"description": "not any more"})),
            ),
            forbidden("create"),
        )
        .await;
        assert!(
            denied["detail"]
                .as_str()
                .unwrap()
                .contains("managers-create"),
            "{denied}"
        );
        let explained = check(
            &api,
            &plain,
            (
                "GET",
                "/api/v1/authz/explain?action=create&entity=todo",
                None,
            ),
            ok,
        )
        .await;
        assert_eq!(explained["decision"], "deny");
        assert_eq!(explained["policies"][0]["id"], "managers-create");
        assert_eq!(explained["policies"][0]["effect"], "forbid");
        let read_explained = check(
            &api,
            &plain,
            (
                "GET",
                &format!(
                    "/api/v1/authz/explain?action=read&entity=todo&id={}",
                    todo.rsplit('/').next().unwrap()
                ),
                None,
            ),
            ok,
        )
        .await;
        assert_eq!(read_explained["decision"], "allow");
        assert_eq!(read_explained["policies"][0]["id"], "todo/All");
        check(
            &api,
            &admin,
            ("DELETE", "/api/v1/authz/policies/managers-create", None),
            (StatusCode::NO_CONTENT, None),
        )
        .await;
        check(
            &api,
            &plain,
            (
                "POST",
                "/api/v1/resources/todo",
                Some(json!({"description": "again"})),
            ),
            (StatusCode::CREATED, None),
        )
        .await;

        // Another tenant's administrator reaches nothing of acme's.
        let other = token(&api, "globex", "admin@globex.test").await;
        let (status, _) = api
            .call(
                "GET",
                &todo,
                &[("authorization", &other), ("x-tenant", "acme")],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        check(
            &api,
            &other,
            ("GET", &todo, None),
            (StatusCode::NOT_FOUND, None),
        )
        .await;
        let (_, their_users) = api
            .call("GET", "/api/v1/users", &[("authorization", &other)], None)
            .await;
        assert_eq!(their_users["data"].as_array().unwrap().len(), 1);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn unknown_roles_are_refused_on_backends() {
    for db in databases("authorization unknown roles").await {
        let api = boot(&db).await;
        api.identity()
            .create_tenant("acme", "admin@acme.test", PASSWORD)
            .await
            .unwrap();
        let admin = token(&api, "acme", "admin@acme.test").await;
        let user = |email: &str, roles: Value| json!({"email": email, "password": PASSWORD, "roles": roles});
        let created = check(
            &api,
            &admin,
            (
                "POST",
                "/api/v1/users",
                Some(user("clerk@acme.test", json!([]))),
            ),
            (StatusCode::CREATED, None),
        )
        .await;
        let path = format!("/api/v1/users/{}", created["id"].as_str().unwrap());
        let invalid = (StatusCode::UNPROCESSABLE_ENTITY, None);
        // The roles known here: `System Manager` (todo.yaml's `All` is everyone, not a role).
        #[rustfmt::skip]
        let cases: Vec<(Call<'_>, Expected<'_>, Option<&str>)> = vec![
            (("POST", "/api/v1/users", Some(user("god@acme.test", json!(["Platform God"])))), invalid, Some("Platform God")),
            (("POST", "/api/v1/users", Some(user("all@acme.test", json!(["All"])))), invalid, Some("All")),
            (("PATCH", &path, Some(json!({"roles": ["System Manager", "Platform God"]}))), invalid, Some("Platform God")),
            (("POST", "/api/v1/auth/api-keys", Some(json!({"name": "k", "roles": ["Platform God"]}))), invalid, Some("Platform God")),
            (("POST", "/api/v1/users", Some(user("second@acme.test", json!(["System Manager"])))), (StatusCode::CREATED, None), None),
            (("PATCH", &path, Some(json!({"roles": ["System Manager"]}))), (StatusCode::NO_CONTENT, None), None),
            (("POST", "/api/v1/auth/api-keys", Some(json!({"name": "k", "roles": ["System Manager"]}))), (StatusCode::CREATED, None), None),
        ];
        for (call, expected, named) in cases {
            let what = format!("{} {}", call.0, call.1);
            let response = check(&api, &admin, call, expected).await;
            if let Some(role) = named {
                let detail = response["detail"].as_str().unwrap_or_default();
                assert!(
                    detail.contains(&format!("role `{role}` does not exist")),
                    "{what}: {response}"
                );
            }
        }
        // Nothing refused was stored.
        let (_, listed) = api
            .call("GET", "/api/v1/users", &[("authorization", &admin)], None)
            .await;
        let emails: Vec<&str> = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap())
            .collect();
        assert_eq!(
            emails,
            ["admin@acme.test", "clerk@acme.test", "second@acme.test"]
        );
        db.cleanup().await;
    }
}
