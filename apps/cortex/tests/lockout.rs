//! Failed logins, through the HTTP stack on SQLite and (when configured) PostgreSQL: a
//! locked account and an unknown email get the same answer, and an attacker guessing from
//! one address locks out only itself, never the real user signing in from another; and
//! guessing the current password with a stolen session is throttled too.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::{Api, boot_with};
use cortex::throttle::{ADDRESS_LOCK_AFTER, PAIR_LOCK_AFTER};
use prefiq_data::testing::databases;
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";
const ATTACKER: &str = "203.0.113.66";
const OWNER: &str = "198.51.100.7";

/// A login to `acme` from `address`: the status and the problem's title, status and
/// detail (what a client sees; the trace ids differ by design).
async fn login(api: &Api, address: &str, email: &str, password: &str) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method("POST")
        .uri("/api/v1/auth/login")
        .header("content-type", "application/json")
        .header("x-tenant", "acme")
        .body(Body::from(
            json!({"email": email, "password": password}).to_string(),
        ))
        .unwrap();
    let socket: SocketAddr = format!("{address}:40000").parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(socket));
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let seen = if status.is_success() {
        json!("signed in")
    } else {
        json!({"title": body["title"], "status": body["status"], "detail": body["detail"]})
    };
    (status, seen)
}

async fn installation(db: &prefiq_data::testing::TestDatabase) -> Api {
    // The per-minute limit of credential routes is not what these tests are about.
    let api = boot_with(
        db,
        &[("PREFIQ__SERVER__LOGIN_RATE_LIMIT_PER_MINUTE", "100000")],
    )
    .await;
    api.identity()
        .create_tenant("acme", "ann@acme.test", PASSWORD)
        .await
        .unwrap();
    api
}

#[tokio::test]
async fn locked_and_unknown_accounts_answer_alike_on_backends() {
    for db in databases("cortex lockout answers").await {
        let api = installation(&db).await;
        for _ in 0..PAIR_LOCK_AFTER {
            login(&api, ATTACKER, "ann@acme.test", "guess").await;
            login(&api, ATTACKER, "nobody@acme.test", "guess").await;
        }
        let wrong = login(&api, ATTACKER, "ann@acme.test", "guess").await;
        let unknown = login(&api, ATTACKER, "nobody@acme.test", "guess").await;
        // The right password of a locked pair reads as a wrong one.
        let locked = login(&api, ATTACKER, "ann@acme.test", PASSWORD).await;
        let fresh_unknown = login(&api, OWNER, "nobody-else@acme.test", "guess").await;
        assert_eq!(wrong.0, StatusCode::UNAUTHORIZED, "{}", wrong.1);
        for (name, seen) in [
            ("unknown email", &unknown),
            ("locked account", &locked),
            ("unknown email, first try", &fresh_unknown),
        ] {
            assert_eq!(seen, &wrong, "{name}");
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn attacker_cannot_lock_out_the_real_user_on_backends() {
    for db in databases("cortex lockout owner").await {
        let api = installation(&db).await;
        for _ in 0..PAIR_LOCK_AFTER + 2 {
            let (status, _) = login(&api, ATTACKER, "ann@acme.test", "guess").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let cases = [
            (ATTACKER, StatusCode::UNAUTHORIZED),
            (OWNER, StatusCode::OK),
            // A success from the owner's address does not unlock the attacker's.
            (ATTACKER, StatusCode::UNAUTHORIZED),
        ];
        for (address, expected) in cases {
            let (status, seen) = login(&api, address, "ann@acme.test", PASSWORD).await;
            assert_eq!(status, expected, "from {address}: {seen}");
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn address_guessing_at_many_accounts_is_locked_out_on_backends() {
    for db in databases("cortex lockout address").await {
        let api = installation(&db).await;
        for i in 0..ADDRESS_LOCK_AFTER {
            login(&api, ATTACKER, &format!("user{i}@acme.test"), "guess").await;
        }
        for (address, expected) in [
            (ATTACKER, StatusCode::UNAUTHORIZED),
            (OWNER, StatusCode::OK),
        ] {
            let (status, seen) = login(&api, address, "ann@acme.test", PASSWORD).await;
            assert_eq!(status, expected, "from {address}: {seen}");
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn password_change_guesses_are_throttled_on_backends() {
    for db in databases("cortex lockout password change").await {
        let api = installation(&db).await;
        let bearer = api.bearer("acme", "ann@acme.test", PASSWORD).await;
        let change = |current: &str| json!({"current_password": current, "new_password": "stolen and changed"});
        for _ in 0..PAIR_LOCK_AFTER {
            let (status, _) = api
                .call(
                    "POST",
                    "/api/v1/auth/password",
                    &[("authorization", &bearer)],
                    Some(change("guess")),
                )
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN);
        }
        // Even the right current password is refused now; the password is unchanged.
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/auth/password",
                &[("authorization", &bearer)],
                Some(change(PASSWORD)),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = login(&api, OWNER, "ann@acme.test", PASSWORD).await;
        assert_eq!(status, StatusCode::OK);
        db.cleanup().await;
    }
}
