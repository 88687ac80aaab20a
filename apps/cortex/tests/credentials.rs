//! Password reset by mail, API keys and the platform administrator's API, through the
//! HTTP stack on SQLite and (when configured) PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Api, boot};
use prefiq::FileMailer;
use prefiq_data::testing::databases;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

async fn bearer(api: &Api, tenant: &str, email: &str, password: &str) -> String {
    let (status, body) = api.login(tenant, email, password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    format!("Bearer {}", body["access_token"].as_str().unwrap())
}

/// The reset token of the newest mail to `to`, waiting for the background send.
async fn reset_token(api: &Api, to: &str, count: usize) -> String {
    let path = api.root.join("data/mail/outbox.jsonl");
    for _ in 0..200 {
        let mails: Vec<_> = FileMailer::read_all(&path)
            .unwrap()
            .into_iter()
            .filter(|m| m.to == to)
            .collect();
        if mails.len() >= count {
            let body = &mails[count - 1].body;
            let token = body.split("once):\n\n").nth(1).unwrap();
            return token.lines().next().unwrap().to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no mail to {to}");
}

async fn reset(api: &Api, email: &str) -> StatusCode {
    api.call(
        "POST",
        "/api/v1/auth/password/reset",
        &[("x-tenant", "acme")],
        Some(json!({ "email": email })),
    )
    .await
    .0
}

async fn confirm(api: &Api, token: &str, password: &str) -> (StatusCode, Value) {
    api.call(
        "POST",
        "/api/v1/auth/password/reset/confirm",
        &[("x-tenant", "acme")],
        Some(json!({"token": token, "new_password": password})),
    )
    .await
}

#[tokio::test]
async fn password_reset_api_keys_and_the_platform_api_on_backends() {
    for db in databases("credentials over HTTP").await {
        let api = boot(&db).await;
        let identity = api.identity();
        identity
            .create_tenant("acme", "admin@acme.test", PASSWORD)
            .await
            .unwrap();

        // Password reset: the same answer for a stranger; one mail, one use.
        assert_eq!(reset(&api, "nobody@acme.test").await, StatusCode::ACCEPTED);
        assert_eq!(reset(&api, "not an email").await, StatusCode::ACCEPTED);
        assert_eq!(reset(&api, "Admin@Acme.test").await, StatusCode::ACCEPTED);
        let token = reset_token(&api, "admin@acme.test", 1).await;
        let (status, body) = confirm(&api, "not-the-token", "a new password").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, body) = confirm(&api, &token, "short").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, body) = confirm(&api, &token, "a new password").await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, _) = confirm(&api, &token, "yet another one").await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "a reset token works once"
        );
        assert_eq!(
            api.login("acme", "admin@acme.test", PASSWORD).await.0,
            StatusCode::UNAUTHORIZED
        );
        let admin = bearer(&api, "acme", "admin@acme.test", "a new password").await;
        // Another tenant's reset token does not work here.
        identity
            .create_tenant("globex", "admin@globex.test", PASSWORD)
            .await
            .unwrap();
        api.call(
            "POST",
            "/api/v1/auth/password/reset",
            &[("x-tenant", "globex")],
            Some(json!({"email": "admin@globex.test"})),
        )
        .await;
        let theirs = reset_token(&api, "admin@globex.test", 1).await;
        assert_eq!(
            confirm(&api, &theirs, "taking over acme").await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );

        // API keys: made with a session, shown once, used as a bearer, listed, revoked.
        let (status, made) = api
            .call(
                "POST",
                "/api/v1/auth/api-keys",
                &[("authorization", &admin)],
                Some(json!({"name": "ci"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        let key = format!("Bearer {}", made["key"].as_str().unwrap());
        let id = made["id"].as_str().unwrap().to_owned();
        let (status, _) = api
            .call(
                "GET",
                "/api/v1/resources/todo",
                &[("authorization", &key)],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = api
            .call(
                "POST",
                "/api/v1/auth/api-keys",
                &[("authorization", &key)],
                Some(json!({"name": "minted by a key"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (_, listed) = api
            .call(
                "GET",
                "/api/v1/auth/api-keys",
                &[("authorization", &admin)],
                None,
            )
            .await;
        assert_eq!(listed["data"][0]["id"], id.as_str());
        assert!(listed["data"][0]["last_used_at"].is_string(), "{listed}");
        assert!(listed["data"][0].get("key").is_none());
        // A key narrowed to no roles may read (All) but not update.
        let (_, narrow) = api
            .call(
                "POST",
                "/api/v1/auth/api-keys",
                &[("authorization", &admin)],
                Some(json!({"name": "read only", "roles": []})),
            )
            .await;
        let narrow = format!("Bearer {}", narrow["key"].as_str().unwrap());
        let (_, todo) = api
            .call(
                "POST",
                "/api/v1/resources/todo",
                &[("authorization", &admin)],
                Some(json!({"description": "d"})),
            )
            .await;
        let todo = format!("/api/v1/resources/todo/{}", todo["id"].as_str().unwrap());
        let (status, body) = api
            .call(
                "PATCH",
                &todo,
                &[("authorization", &narrow)],
                Some(json!({"status": "Closed"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["action"], "update");
        let (status, body) = api
            .call(
                "POST",
                "/api/v1/auth/api-keys",
                &[("authorization", &admin)],
                Some(json!({"name": "wider", "roles": ["Accountant"]})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        // Wrong secrets and malformed keys are refused; a revoked key stops at once.
        let forged = format!("Bearer pk_{id}_{}", "A".repeat(43));
        for bad in [forged.as_str(), "Bearer pk_", "Bearer pk_zz_zz"] {
            let (status, _) = api
                .call(
                    "GET",
                    "/api/v1/resources/todo",
                    &[("authorization", bad)],
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}");
        }
        let (status, _) = api
            .call(
                "DELETE",
                &format!("/api/v1/auth/api-keys/{id}"),
                &[("authorization", &admin)],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = api
            .call(
                "GET",
                "/api/v1/resources/todo",
                &[("authorization", &key)],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // The platform API: only System Managers of the platform tenant.
        let (status, body) = api
            .call(
                "GET",
                "/api/v1/platform/tenants",
                &[("authorization", &admin)],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["action"], "platform.manage_tenants");
        identity
            .create_tenant("platform", "root@platform.test", PASSWORD)
            .await
            .unwrap();
        let root = bearer(&api, "platform", "root@platform.test", PASSWORD).await;
        let (status, body) = api
            .call(
                "POST",
                "/api/v1/platform/tenants",
                &[("authorization", &root)],
                Some(json!({"name": "initech", "admin_email": "admin@initech.test", "admin_password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (_, listed) = api
            .call(
                "GET",
                "/api/v1/platform/tenants",
                &[("authorization", &root)],
                None,
            )
            .await;
        let names: Vec<&str> = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["acme", "globex", "initech", "platform"]);
        let initech = bearer(&api, "initech", "admin@initech.test", PASSWORD).await;
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/platform/tenants/initech/suspend",
                &[("authorization", &root)],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = api
            .call(
                "GET",
                "/api/v1/resources/todo",
                &[("authorization", &initech)],
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "a suspended tenant's tokens stop"
        );
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/platform/tenants/platform/suspend",
                &[("authorization", &root)],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/platform/tenants/nope/resume",
                &[("authorization", &root)],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        db.cleanup().await;
    }
}
