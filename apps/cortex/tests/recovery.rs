//! An installation cannot lock itself out, and `prefiq tenant recover` gets a locked-out
//! tenant back, on SQLite and (when configured) PostgreSQL: the last active System Manager
//! cannot be disabled or lose its role, a policy that would deny administrators the
//! policy routes is refused, and recovery removes the tenant's policies, restores an
//! administrator and is in the audit log.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Api, boot};
use prefiq_auth::TenantPolicy;
use prefiq_data::testing::databases;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
const ADMIN: &str = "admin@acme.test";

/// A recovery: the email and password given, and a line of what it prints or a part of
/// its error.
type RecoverCase<'a> = (Option<&'a str>, Option<&'a str>, Result<&'a str, &'a str>);

/// A tenant `acme` and its administrator's id.
async fn tenant(api: &Api) -> String {
    let identity = api.identity();
    identity
        .create_tenant("acme", ADMIN, PASSWORD)
        .await
        .unwrap();
    identity.users("acme").await.unwrap()[0].id.clone()
}

async fn call(
    api: &Api,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    api.call(method, path, &[("authorization", bearer)], body)
        .await
}

#[tokio::test]
async fn last_administrator_cannot_disable_itself_or_drop_its_role_on_backends() {
    for db in databases("cortex recovery last admin").await {
        let api = boot(&db).await;
        let admin = tenant(&api).await;
        let path = format!("/api/v1/users/{admin}");
        let conflict = StatusCode::CONFLICT;
        for (change, expected) in [
            (json!({"status": "disabled"}), conflict),
            (json!({"roles": []}), conflict),
            (
                json!({"roles": ["System Manager"], "status": "disabled"}),
                conflict,
            ),
            // A change that keeps the administrator is fine.
            (
                json!({"attributes": {"department": "it"}}),
                StatusCode::NO_CONTENT,
            ),
        ] {
            let bearer = api.bearer("acme", ADMIN, PASSWORD).await;
            let (status, problem) = call(&api, "PATCH", &path, &bearer, Some(change.clone())).await;
            assert_eq!(status, expected, "{change}: {problem}");
            if status == conflict {
                assert!(
                    problem["detail"]
                        .as_str()
                        .unwrap()
                        .contains("without an active System Manager"),
                    "{problem}"
                );
            }
        }
        // With a second administrator, the first may step down.
        let bearer = api.bearer("acme", ADMIN, PASSWORD).await;
        let (status, body) = call(
            &api,
            "POST",
            "/api/v1/users",
            &bearer,
            Some(json!({"email": "second@acme.test", "password": PASSWORD, "roles": ["System Manager"]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = call(
            &api,
            "PATCH",
            &path,
            &bearer,
            Some(json!({"roles": [], "status": "disabled"})),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let user = api.identity().users("acme").await.unwrap();
        let first = user.iter().find(|u| u.id == admin).unwrap();
        assert_eq!(first.status, "disabled");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn policy_denying_administrators_the_policy_routes_is_refused_on_backends() {
    for db in databases("cortex recovery policies").await {
        let api = boot(&db).await;
        let admin = tenant(&api).await;
        let bearer = api.bearer("acme", ADMIN, PASSWORD).await;
        let invalid = StatusCode::UNPROCESSABLE_ENTITY;
        let cases = [
            ("everything", "forbid(principal, action, resource);".to_owned(), invalid),
            (
                "policies",
                r#"forbid(principal, action == Action::"cortex.manage_policies", resource);"#.to_owned(),
                invalid,
            ),
            (
                "me",
                format!(r#"forbid(principal == User::"{admin}", action, resource);"#),
                invalid,
            ),
            (
                "admins-only-delete",
                r#"forbid(principal, action == Action::"delete", resource) unless { principal in Role::"System Manager" };"#.to_owned(),
                StatusCode::CREATED,
            ),
        ];
        for (id, text, expected) in &cases {
            let (status, body) = call(
                &api,
                "POST",
                "/api/v1/authz/policies",
                &bearer,
                Some(json!({"id": id, "text": text})),
            )
            .await;
            assert_eq!(status, *expected, "{id}: {body}");
            if status == invalid {
                assert!(
                    body["detail"]
                        .as_str()
                        .unwrap()
                        .contains("could not be removed"),
                    "{body}"
                );
            }
        }
        let (status, listed) = call(&api, "GET", "/api/v1/authz/policies", &bearer, None).await;
        assert_eq!(status, StatusCode::OK);
        let ids: Vec<&str> = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["admins-only-delete"]);
        let (status, _) = call(
            &api,
            "DELETE",
            "/api/v1/authz/policies/admins-only-delete",
            &bearer,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn tenant_recover_restores_an_administrator_and_removes_policies_on_backends() {
    for db in databases("cortex recovery recover").await {
        let api = boot(&db).await;
        let identity = api.identity();
        let first = tenant(&api).await;
        // Lock the tenant out as a database edited by hand (or a release without the
        // guards) could: the only administrator disabled, a forbid-everything policy.
        identity
            .create_user(
                "acme",
                "second@acme.test",
                PASSWORD,
                &["System Manager".to_owned()],
                &serde_json::Map::new(),
            )
            .await
            .unwrap();
        identity
            .update_user("acme", &first, Some(&[]), None, Some("disabled"))
            .await
            .unwrap();
        identity
            .add_policy(
                "acme",
                &TenantPolicy {
                    id: "lockout".into(),
                    text: "forbid(principal, action, resource);".into(),
                },
            )
            .await
            .unwrap();
        let bearer = api.bearer("acme", "second@acme.test", PASSWORD).await;
        let (status, _) = call(
            &api,
            "DELETE",
            "/api/v1/authz/policies/lockout",
            &bearer,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "locked out");

        // Naming the disabled first administrator: re-enabled, given the role back.
        let recovery = identity
            .recover_tenant("acme", Some(ADMIN), None)
            .await
            .unwrap();
        assert_eq!(
            recovery.to_string(),
            "removed 1 policies of tenant `acme`: lockout\nadministrator admin@acme.test of tenant `acme`: re-enabled and given the role\n"
        );
        // The command runs in another process; the server re-reads the tenant's
        // policies within a second.
        tokio::time::sleep(
            prefiq_auth::authz::TENANT_POLICY_TTL + std::time::Duration::from_millis(50),
        )
        .await;
        let bearer = api.bearer("acme", ADMIN, PASSWORD).await;
        let (status, listed) = call(&api, "GET", "/api/v1/authz/policies", &bearer, None).await;
        assert_eq!(
            (status, listed["data"].clone()),
            (StatusCode::OK, json!([]))
        );
        let (status, audit) = call(&api, "GET", "/api/v1/audit?limit=100", &bearer, None).await;
        assert_eq!(status, StatusCode::OK, "{audit}");
        assert!(audit.to_string().contains("tenant_recover"), "{audit}");
        // The audit record keeps the email only as a hash.
        assert!(!audit.to_string().contains("admin@acme.test"), "{audit}");

        // The other ways: the first administrator by default, a new one by email, and
        // refusals that say what to give.
        let cases: [RecoverCase<'_>; 4] = [
            (
                None,
                None,
                Ok("administrator admin@acme.test of tenant `acme`: already active"),
            ),
            (
                Some("new@acme.test"),
                Some(PASSWORD),
                Ok("administrator new@acme.test of tenant `acme`: created"),
            ),
            (Some("other@acme.test"), None, Err("give --admin-password")),
            (
                Some("second@acme.test"),
                None,
                Ok("administrator second@acme.test of tenant `acme`: already active"),
            ),
        ];
        for (email, password, expected) in cases {
            let got = identity
                .recover_tenant("acme", email, password)
                .await
                .map(|r| r.to_string())
                .map_err(|e| e.to_string());
            match (got, expected) {
                (Ok(text), Ok(line)) => assert!(text.contains(line), "{email:?}: {text}"),
                (Err(error), Err(part)) => assert!(error.contains(part), "{email:?}: {error}"),
                (got, _) => panic!("{email:?}: {got:?}"),
            }
        }
        assert!(
            api.bearer("acme", "new@acme.test", PASSWORD)
                .await
                .starts_with("Bearer ")
        );
        let missing = identity
            .recover_tenant("initech", None, None)
            .await
            .unwrap_err();
        assert_eq!(missing.to_string(), "tenant `initech` does not exist");
        db.cleanup().await;
    }
}
