//! Revocation takes effect at once: an access token stops working the moment its user
//! logs out, changes or resets the password, is disabled, or has its roles or attributes
//! changed — even a token already verified and cached — and another replica sees it within
//! a second. API keys of a disabled user and the desk's sessions stop too. On SQLite and
//! (when configured) PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::browser::Browser;
use common::{Api, boot};
use prefiq::FileMailer;
use prefiq_data::testing::databases;
use serde_json::{Value, json};

const ADMIN: &str = "admin@acme.test";
const CLERK: &str = "clerk@acme.test";
const PASSWORD: &str = "correct horse battery";

/// A tenant `acme` with its administrator and a clerk; the clerk's id.
async fn tenant(api: &Api) -> String {
    api.identity()
        .create_tenant("acme", ADMIN, PASSWORD)
        .await
        .unwrap();
    clerk(api, CLERK).await
}

/// A new user of `acme` with a role and an attribute; its id.
async fn clerk(api: &Api, email: &str) -> String {
    let attributes = serde_json::from_value(json!({"department": "sales"})).unwrap();
    api.identity()
        .create_user("acme", email, PASSWORD, &["Clerk".to_owned()], &attributes)
        .await
        .unwrap()
        .id
}

/// What a signed-in user may always do: list its own API keys.
async fn whoami(api: &Api, bearer: &str) -> StatusCode {
    api.call(
        "GET",
        "/api/v1/auth/api-keys",
        &[("authorization", bearer)],
        None,
    )
    .await
    .0
}

/// A login of `email`: its bearer header value and its refresh token.
async fn session(api: &Api, email: &str, password: &str) -> (String, String) {
    let (status, body) = api.login("acme", email, password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        format!("Bearer {}", body["access_token"].as_str().unwrap()),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// The reset token of the newest mail to `to`, waiting for the background send.
async fn reset_token(api: &Api, to: &str) -> String {
    let path = api.root.join("data/mail/outbox.jsonl");
    for _ in 0..200 {
        if let Some(mail) = FileMailer::read_all(&path)
            .unwrap_or_default()
            .into_iter()
            .rfind(|m| m.to == to)
        {
            let token = mail.body.split("once):\n\n").nth(1).unwrap();
            return token.lines().next().unwrap().to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no mail to {to}");
}

/// What ends the clerk's tokens.
#[derive(Debug, Clone, Copy)]
enum Revocation {
    Logout,
    PasswordChange,
    PasswordReset,
    Disable,
    RolesRemoved,
    AttributesChanged,
}

/// Does `what` to the clerk, as the clerk (its own session) or as the administrator.
async fn revoke(
    api: &Api,
    what: Revocation,
    (clerk, email): (&str, &str),
    bearer: &str,
    refresh: &str,
) {
    let admin = session(api, ADMIN, PASSWORD).await.0;
    let patch = |body: Value| async {
        api.call(
            "PATCH",
            &format!("/api/v1/users/{clerk}"),
            &[("authorization", admin.as_str())],
            Some(body),
        )
        .await
    };
    let (status, body) = match what {
        Revocation::Logout => {
            api.call(
                "POST",
                "/api/v1/auth/logout",
                &[],
                Some(json!({ "refresh_token": refresh })),
            )
            .await
        }
        Revocation::PasswordChange => {
            api.call(
                "POST",
                "/api/v1/auth/password",
                &[("authorization", bearer)],
                Some(
                    json!({"current_password": PASSWORD, "new_password": "another long password"}),
                ),
            )
            .await
        }
        Revocation::PasswordReset => {
            let (status, _) = api
                .call(
                    "POST",
                    "/api/v1/auth/password/reset",
                    &[("x-tenant", "acme")],
                    Some(json!({ "email": email })),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED);
            let token = reset_token(api, email).await;
            api.call(
                "POST",
                "/api/v1/auth/password/reset/confirm",
                &[("x-tenant", "acme")],
                Some(json!({"token": token, "new_password": "another long password"})),
            )
            .await
        }
        Revocation::Disable => patch(json!({"status": "disabled"})).await,
        Revocation::RolesRemoved => patch(json!({"roles": []})).await,
        Revocation::AttributesChanged => patch(json!({"attributes": {"department": "hr"}})).await,
    };
    assert!(status.is_success(), "{what:?}: {status} {body}");
}

/// A new clerk's token works, `what` happens, and the same token — verified and cached
/// already — is refused on the very next request.
async fn check(api: &Api, what: Revocation) {
    let email = format!("{what:?}@acme.test").to_ascii_lowercase();
    let id = clerk(api, &email).await;
    let (bearer, refresh) = session(api, &email, PASSWORD).await;
    assert_eq!(whoami(api, &bearer).await, StatusCode::OK, "{what:?}");
    revoke(api, what, (&id, &email), &bearer, &refresh).await;
    let (status, problem) = api
        .call(
            "GET",
            "/api/v1/auth/api-keys",
            &[("authorization", &bearer)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what:?}: {problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("revoked"),
        "{what:?}: {problem}"
    );
}

#[tokio::test]
async fn token_stops_working_after_revocation_on_backends() {
    for db in databases("cortex revocation").await {
        let api = boot(&db).await;
        tenant(&api).await;
        for what in [
            Revocation::Logout,
            Revocation::PasswordChange,
            Revocation::PasswordReset,
            Revocation::Disable,
            Revocation::RolesRemoved,
            Revocation::AttributesChanged,
        ] {
            check(&api, what).await;
        }
        // A disabled user cannot sign in again either.
        let (status, _) = api.login("acme", "disable@acme.test", PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn administrator_cannot_reenable_itself_with_its_old_token_on_backends() {
    for db in databases("cortex revocation admin").await {
        let api = boot(&db).await;
        tenant(&api).await;
        // A second administrator, so the first may take its own role away.
        let second = api
            .identity()
            .create_user(
                "acme",
                "second@acme.test",
                PASSWORD,
                &["System Manager".to_owned()],
                &serde_json::Map::new(),
            )
            .await
            .unwrap();
        let (status, body) = api.login("acme", "second@acme.test", PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
        let path = format!("/api/v1/users/{}", second.id);
        let (status, body) = api
            .call(
                "PATCH",
                &path,
                &[("authorization", &bearer)],
                Some(json!({"roles": [], "status": "disabled"})),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, body) = api
            .call(
                "PATCH",
                &path,
                &[("authorization", &bearer)],
                Some(json!({"roles": ["System Manager"], "status": "active"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let user = api
            .identity()
            .users("acme")
            .await
            .unwrap()
            .into_iter()
            .find(|u| u.id == second.id)
            .unwrap();
        assert_eq!((user.status.as_str(), user.roles.len()), ("disabled", 0));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn api_key_stops_when_its_user_is_disabled_on_backends() {
    for db in databases("cortex revocation keys").await {
        let api = boot(&db).await;
        let clerk = tenant(&api).await;
        let (bearer, _) = session(&api, CLERK, PASSWORD).await;
        let (status, key) = api
            .call(
                "POST",
                "/api/v1/auth/api-keys",
                &[("authorization", &bearer)],
                Some(json!({"name": "script"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        let key = format!("Bearer {}", key["key"].as_str().unwrap());
        assert_eq!(whoami(&api, &key).await, StatusCode::OK);
        api.identity()
            .update_user("acme", &clerk, None, None, Some("disabled"))
            .await
            .unwrap();
        assert_eq!(whoami(&api, &key).await, StatusCode::UNAUTHORIZED);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn desk_session_ends_when_its_user_is_disabled_on_backends() {
    for db in databases("cortex revocation desk").await {
        let api = boot(&db).await;
        let clerk = tenant(&api).await;
        let browser = Browser::new(&api, "acme");
        browser.login(CLERK, PASSWORD).await;
        assert_eq!(browser.get("/app").await.status, StatusCode::OK);
        api.identity()
            .update_user("acme", &clerk, None, None, Some("disabled"))
            .await
            .unwrap();
        let page = browser.get("/app").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert!(
            page.location().starts_with("/app/login"),
            "{}",
            page.location()
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn revocation_reaches_another_replica_within_a_second_on_backends() {
    for db in databases("cortex revocation replicas").await {
        let first = boot(&db).await;
        let second = boot(&db).await;
        tenant(&first).await;
        let (bearer, refresh) = session(&first, CLERK, PASSWORD).await;
        // The second replica verifies the token and caches what it knows.
        assert_eq!(whoami(&second, &bearer).await, StatusCode::OK);
        let (status, _) = first
            .call(
                "POST",
                "/api/v1/auth/logout",
                &[],
                Some(json!({ "refresh_token": refresh })),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(whoami(&first, &bearer).await, StatusCode::UNAUTHORIZED);
        tokio::time::sleep(
            cortex::authenticate::SESSION_CACHE_TTL + std::time::Duration::from_millis(50),
        )
        .await;
        assert_eq!(whoami(&second, &bearer).await, StatusCode::UNAUTHORIZED);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn probes_answer_whatever_credential_they_carry_on_backends() {
    for db in databases("cortex_probe_credentials").await {
        let api = boot(&db).await;
        tenant(&api).await;
        let (bearer, refresh) = session(&api, CLERK, PASSWORD).await;
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/auth/logout",
                &[],
                Some(json!({"refresh_token": refresh})),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(whoami(&api, &bearer).await, StatusCode::UNAUTHORIZED);
        // A load balancer's probe is about the process: a revoked or made-up token sent
        // along with it is not looked at.
        for credential in [bearer.as_str(), "Bearer nonsense", "Basic Zm9vOmJhcg=="] {
            for probe in ["/healthz", "/readyz", "/metrics"] {
                let (status, _) = api
                    .call("GET", probe, &[("authorization", credential)], None)
                    .await;
                assert_eq!(status, StatusCode::OK, "{probe} with {credential}");
            }
        }
    }
}
