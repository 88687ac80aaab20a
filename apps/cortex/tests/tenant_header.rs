//! The tenant a login or a token-carrying request names with `X-Tenant`: a malformed or
//! repeated header is a 400 that says so (it used to be ignored: a login asked to "send the
//! X-Tenant header", a request with a token was served with the token's tenant).
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::boot;
use prefiq_data::testing::databases;
use serde_json::json;

#[tokio::test]
async fn x_tenant_of_another_case_or_repeated_is_refused_on_login_and_with_a_token() {
    for db in databases("cortex X-Tenant").await {
        let api = boot(&db).await;
        let identity = api.identity();
        identity
            .create_tenant("globex", "admin@globex.test", "battery staple")
            .await
            .unwrap();
        identity
            .create_tenant("acme", "admin@acme.test", "correct horse")
            .await
            .unwrap();
        let bearer = api
            .bearer("globex", "admin@globex.test", "battery staple")
            .await;
        let credentials = json!({"email": "admin@globex.test", "password": "battery staple"});
        let login = |headers: Vec<(&'static str, &'static str)>| {
            let credentials = credentials.clone();
            let api = &api;
            async move {
                api.call("POST", "/api/v1/auth/login", &headers, Some(credentials))
                    .await
            }
        };
        let bad = StatusCode::BAD_REQUEST;
        for (headers, status, says) in [
            (vec![("x-tenant", "GLOBEX")], bad, "not a tenant name"),
            (vec![("x-tenant", "globex,acme")], bad, "not a tenant name"),
            (
                vec![("x-tenant", "globex"), ("x-tenant", "acme")],
                bad,
                "repeated",
            ),
            // No header at all is still the login's own answer.
            (
                vec![],
                StatusCode::UNPROCESSABLE_ENTITY,
                "send the X-Tenant header",
            ),
        ] {
            let (got, problem) = login(headers.clone()).await;
            assert_eq!(got, status, "{headers:?}: {problem}");
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(
                detail.contains(says),
                "{headers:?}: `{detail}` does not say `{says}`"
            );
        }
        assert_eq!(login(vec![("x-tenant", "globex")]).await.0, StatusCode::OK);
        // With globex's token: globex's data, or a refusal; never globex's data for a
        // request that named something else.
        let todos = "/api/v1/resources/todo";
        for (tenant, status) in [
            (vec!["globex"], StatusCode::OK),
            (vec!["acme"], StatusCode::FORBIDDEN),
            (vec!["ACME"], bad),
            (vec!["GLOBEX"], bad),
            (vec!["globex,acme"], bad),
            (vec!["globex", "acme"], bad),
            (vec!["acme", "globex"], bad),
        ] {
            let mut headers = vec![("authorization", bearer.as_str())];
            headers.extend(tenant.iter().map(|t| ("x-tenant", *t)));
            let (got, body) = api.call("GET", todos, &headers, None).await;
            assert_eq!(got, status, "X-Tenant {tenant:?}: {body}");
        }
        drop(api);
        db.cleanup().await;
    }
}
