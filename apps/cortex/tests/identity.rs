//! Tenants, logins and bearer tokens through the HTTP stack, on SQLite and (when
//! configured) PostgreSQL: a token is bound to its tenant, forged, tampered, `alg=none`
//! and expired tokens are refused, repeated failures lock the account, and suspending a
//! tenant stops its tokens.
#![allow(clippy::unwrap_used)]

mod common;

use common::{boot, boot_with};

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cortex::throttle::PAIR_LOCK_AFTER;
use prefiq_auth::{AccessClaims, SigningKey};
use prefiq_data::testing::{TestDatabase, databases};
use serde_json::json;

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[tokio::test]
async fn tenants_logins_and_tokens_on_backends() {
    for db in databases("cortex identity").await {
        let api = boot(&db).await;
        let identity = api.identity();
        identity
            .create_tenant("acme", "Admin@Acme.test", "correct horse")
            .await
            .unwrap();
        identity
            .create_tenant("globex", "admin@globex.test", "battery staple")
            .await
            .unwrap();
        let again = identity
            .create_tenant("acme", "x@acme.test", "correct horse")
            .await
            .unwrap_err();
        assert_eq!(again.to_string(), "tenant `acme` already exists");
        let names: Vec<String> = identity
            .tenants()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["acme", "globex"]);

        // A login gives a token that acts in its own tenant only.
        let (status, session) = api.login("acme", "admin@acme.test", "correct horse").await;
        assert_eq!(status, StatusCode::OK, "{} {session}", db.url);
        let token = session["access_token"].as_str().unwrap().to_owned();
        let bearer = format!("Bearer {token}");
        let (status, created) = api
            .call(
                "POST",
                "/api/v1/resources/todo",
                &[("authorization", &bearer)],
                Some(json!({"description": "from a token"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert!(created["created_by"].is_string(), "{created}");
        let (status, page) = api
            .call(
                "GET",
                "/api/v1/resources/todo",
                &[("authorization", &bearer)],
                None,
            )
            .await;
        assert_eq!(
            (status, page["data"].as_array().map(Vec::len)),
            (StatusCode::OK, Some(1))
        );
        let (status, problem) = api
            .call(
                "GET",
                "/api/v1/resources/todo",
                &[("authorization", &bearer), ("x-tenant", "globex")],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{} {problem}", db.url);

        // The tenant may come from the host name: a login, and the token checked against it.
        let (status, by_host) = api
            .call(
                "POST",
                "/api/v1/auth/login",
                &[("host", "acme.localhost:4949")],
                Some(json!({"email": "admin@acme.test", "password": "correct horse"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{by_host}");
        for (host, tenant, expected) in [
            ("acme.localhost", None, StatusCode::OK),
            ("globex.localhost", None, StatusCode::FORBIDDEN),
            ("acme.localhost", Some("globex"), StatusCode::BAD_REQUEST),
        ] {
            let mut headers = vec![("authorization", bearer.as_str()), ("host", host)];
            headers.extend(tenant.map(|t| ("x-tenant", t)));
            let (status, body) = api
                .call("GET", "/api/v1/resources/todo", &headers, None)
                .await;
            assert_eq!(status, expected, "{host} {tenant:?}: {body}");
        }

        // Refresh tokens rotate; a reused one revokes its whole login; logout ends it.
        let refresh = |token: &str| json!({"refresh_token": token});
        let first = session["refresh_token"].as_str().unwrap().to_owned();
        let (status, second) = api
            .call("POST", "/api/v1/auth/refresh", &[], Some(refresh(&first)))
            .await;
        assert_eq!(status, StatusCode::OK, "{second}");
        let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(second_refresh, first);
        assert_ne!(second["access_token"], session["access_token"]);
        let (status, problem) = api
            .call("POST", "/api/v1/auth/refresh", &[], Some(refresh(&first)))
            .await;
        assert_eq!(
            (status, problem["detail"].as_str()),
            (
                StatusCode::UNAUTHORIZED,
                Some(
                    "the refresh token was already used; every token of this login is now revoked"
                )
            )
        );
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/auth/refresh",
                &[],
                Some(refresh(&second_refresh)),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "the family was not revoked"
        );
        let (_, fresh) = api.login("acme", "admin@acme.test", "correct horse").await;
        let fresh_refresh = fresh["refresh_token"].as_str().unwrap().to_owned();
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/auth/refresh",
                &[("x-tenant", "globex")],
                Some(refresh(&fresh_refresh)),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "a refresh token works in its tenant only"
        );
        for _ in 0..2 {
            let (status, _) = api
                .call(
                    "POST",
                    "/api/v1/auth/logout",
                    &[],
                    Some(refresh(&fresh_refresh)),
                )
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/auth/refresh",
                &[],
                Some(refresh(&fresh_refresh)),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "logout did not revoke");
        // A logout also ends the user's access tokens at once; its other logins renew
        // theirs with their own refresh tokens.
        let (status, _) = api
            .call(
                "GET",
                "/api/v1/resources/todo",
                &[("authorization", &bearer)],
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "an access token outlived a logout"
        );
        let bearer = api.bearer("acme", "admin@acme.test", "correct horse").await;
        for body in [
            json!({"refresh_token": "nope"}),
            json!({"refresh_token": "x".repeat(500)}),
        ] {
            let (status, _) = api
                .call("POST", "/api/v1/auth/refresh", &[], Some(body))
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }

        // A password change checks the current password and ends other sessions' refreshes.
        let (_, other_session) = api.login("acme", "admin@acme.test", "correct horse").await;
        let change =
            |current: &str, new: &str| json!({"current_password": current, "new_password": new});
        for (body, expected) in [
            (change("wrong horse", "new horse!"), StatusCode::FORBIDDEN),
            (
                change("correct horse", "short"),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ] {
            let (status, problem) = api
                .call(
                    "POST",
                    "/api/v1/auth/password",
                    &[("authorization", &bearer)],
                    Some(body),
                )
                .await;
            assert_eq!(status, expected, "{problem}");
        }
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/auth/password",
                &[("x-tenant", "acme")],
                Some(change("correct horse", "new horse!")),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/auth/password",
                &[("authorization", &bearer)],
                Some(change("correct horse", "new horse!")),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = api.login("acme", "admin@acme.test", "correct horse").await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "the old password still works"
        );
        let (status, _) = api.refresh(&[], &other_session["refresh_token"]).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "another session survived the change"
        );
        let (status, _) = api
            .call(
                "GET",
                "/api/v1/resources/todo",
                &[("authorization", &bearer)],
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "an access token outlived the change"
        );
        let bearer = api.bearer("acme", "admin@acme.test", "new horse!").await;
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/auth/password",
                &[("authorization", &bearer)],
                Some(change("new horse!", "correct horse")),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let bearer = api.bearer("acme", "admin@acme.test", "correct horse").await;

        // With identity installed, X-Tenant alone is not trusted.
        let (status, problem) = api
            .call(
                "GET",
                "/api/v1/resources/todo",
                &[("x-tenant", "acme")],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
        let (_, document) = api
            .call("GET", "/api/v1/openapi.json", &[("x-tenant", "acme")], None)
            .await;
        assert!(document["paths"]["/api/v1/resources/todo"].is_object());

        // OWASP API1: another tenant's token cannot reach this tenant's record by its id.
        let (status, session) = api
            .login("globex", "admin@globex.test", "battery staple")
            .await;
        assert_eq!(status, StatusCode::OK, "{session}");
        let other = format!("Bearer {}", session["access_token"].as_str().unwrap());
        let path = format!("/api/v1/resources/todo/{}", created["id"].as_str().unwrap());
        for method in ["GET", "PATCH", "DELETE"] {
            let body = (method == "PATCH").then(|| json!({"description": "taken over"}));
            let (status, problem) = api
                .call(method, &path, &[("authorization", &other)], body)
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {problem}");
        }
        // OWASP API3: the tenant cannot be mass-assigned, and system columns sent along
        // (clients echo records back) are ignored, never stored.
        let (status, problem) = api
            .call(
                "POST",
                "/api/v1/resources/todo",
                &[("authorization", &other)],
                Some(json!({"description": "x", "tenant_id": "acme"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["pointer"], "/tenant_id", "{problem}");
        let (status, stored) = api
            .call(
                "POST",
                "/api/v1/resources/todo",
                &[("authorization", &other)],
                Some(json!({"description": "x", "docstatus": 1, "version": 7, "created_by": "someone"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{stored}");
        assert_eq!(
            (&stored["docstatus"], &stored["version"]),
            (&json!(0), &json!(1)),
            "{stored}"
        );
        assert_ne!(stored["created_by"], "someone", "{stored}");
        let (_, page) = api
            .call(
                "GET",
                "/api/v1/resources/todo",
                &[("authorization", &bearer)],
                None,
            )
            .await;
        assert_eq!(page["data"][0]["description"], "from a token", "{page}");

        // Refused credentials: each a 401 problem that says why, and nothing read.
        let key = api.key();
        let claims = |tenant: &str, exp: i64| AccessClaims {
            iss: String::new(),
            sub: "someone".into(),
            tenant: tenant.into(),
            roles: vec![],
            attrs: Default::default(),
            iat: now() - 3600,
            nbf: now() - 3600,
            exp,
            jti: "j".into(),
            epoch: 0,
        };
        let expired = key.issue(claims("acme", now() - 600));
        let stranger = SigningKey::from_seed(&[9u8; 32], "codexion")
            .unwrap()
            .issue(claims("acme", now() + 600));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims("globex", now() + 600)).unwrap())
        );
        let (head, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let tampered = format!(
            "{head}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims("globex", now() + 600)).unwrap())
        );
        for (credential, detail) in [
            (format!("Bearer {expired}"), "the token has expired"),
            (
                format!("Bearer {stranger}"),
                "the token was signed by an unknown key",
            ),
            (
                format!("Bearer {none}"),
                "the token's algorithm `none` is not accepted",
            ),
            (
                format!("Bearer {tampered}"),
                "the token's signature is invalid",
            ),
            (
                "Basic YWRtaW46YWRtaW4=".to_owned(),
                "the Authorization header must be `Bearer <token>`",
            ),
            (
                "Bearer ".to_owned(),
                "the Authorization header must be `Bearer <token>`",
            ),
        ] {
            let (status, problem) = api
                .call(
                    "GET",
                    "/api/v1/resources/todo",
                    &[("authorization", &credential)],
                    None,
                )
                .await;
            assert_eq!(
                (status, problem["detail"].as_str()),
                (StatusCode::UNAUTHORIZED, Some(detail)),
                "{credential}"
            );
        }

        // Wrong passwords, unknown users and unknown tenants read the same.
        for (tenant, email, password) in [
            ("acme", "admin@acme.test", "wrong horse"),
            ("acme", "nobody@acme.test", "correct horse"),
            ("initech", "admin@acme.test", "correct horse"),
            ("globex", "admin@acme.test", "correct horse"),
        ] {
            let (status, problem) = api.login(tenant, email, password).await;
            assert_eq!(
                (status, problem["detail"].as_str()),
                (
                    StatusCode::UNAUTHORIZED,
                    Some("the email or password is wrong")
                ),
                "{tenant} {email}"
            );
        }
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/auth/login",
                &[("x-tenant", "acme")],
                Some(json!({"email": "a"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        // Repeated failures from one address lock that address out of the account, even
        // against the right password, with the answer of a wrong one (`lockout.rs` has
        // the rest).
        for _ in 0..PAIR_LOCK_AFTER {
            api.login("globex", "admin@globex.test", "wrong").await;
        }
        let (status, problem) = api
            .login("globex", "admin@globex.test", "battery staple")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{} {problem}", db.url);
        assert_eq!(
            problem["detail"], "the email or password is wrong",
            "{problem}"
        );

        // A suspended tenant's tokens stop working at once, and its users cannot log in.
        let (_, late) = api.login("acme", "admin@acme.test", "correct horse").await;
        identity.set_status("acme", "suspended").await.unwrap();
        let (status, _) = api.refresh(&[], &late["refresh_token"]).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "a suspended tenant refreshed"
        );
        let (status, _) = api
            .call(
                "GET",
                "/api/v1/resources/todo",
                &[("authorization", &bearer)],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = api.login("acme", "admin@acme.test", "correct horse").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(identity.set_status("initech", "active").await.is_err());

        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}

#[tokio::test]
async fn logins_are_rate_limited_per_address_and_tenant() {
    let db = TestDatabase::sqlite().unwrap();
    let api = boot_with(&db, &[("PREFIQ__SERVER__LOGIN_RATE_LIMIT_PER_MINUTE", "2")]).await;
    api.identity()
        .create_tenant("acme", "admin@acme.test", "correct horse")
        .await
        .unwrap();
    for _ in 0..2 {
        let (status, _) = api.login("acme", "admin@acme.test", "wrong horse").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The third attempt is refused before the password is even looked at.
    let (status, problem) = api.login("acme", "admin@acme.test", "correct horse").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    // Another tenant counts apart.
    let (status, _) = api
        .login("globex", "admin@acme.test", "correct horse")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    api.app.shutdown().await.unwrap();
}

/// Regression: refused credentials were answered before the rate-limit layer and never
/// counted, so forged tokens could be tried without limit.
#[tokio::test]
async fn forged_tokens_are_rate_limited_too() {
    let db = TestDatabase::sqlite().unwrap();
    let api = boot_with(&db, &[("PREFIQ__SERVER__RATE_LIMIT_PER_MINUTE", "3")]).await;
    api.identity()
        .create_tenant("acme", "admin@acme.test", "correct horse")
        .await
        .unwrap();
    let (_, session) = api.login("acme", "admin@acme.test", "correct horse").await;
    let bearer = format!("Bearer {}", session["access_token"].as_str().unwrap());
    let forged = format!("{bearer}x");
    for _ in 0..3 {
        let (status, _) = api
            .call(
                "GET",
                "/api/v1/resources/todo",
                &[("authorization", &forged)],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, problem) = api
        .call(
            "GET",
            "/api/v1/resources/todo",
            &[("authorization", &forged)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    // The address's spent window does not lock out a valid token, which counts per user.
    let (status, _) = api
        .call(
            "GET",
            "/api/v1/resources/todo",
            &[("authorization", &bearer)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    api.app.shutdown().await.unwrap();
}
