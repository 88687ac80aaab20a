//! The audit API through the HTTP stack, on SQLite and (when configured) PostgreSQL:
//! logins, user and policy changes and entity changes land in the tenant's log; a plain
//! user may not read it; the signed checkpoint and an inclusion and a consistency proof
//! fetched from the API verify offline; another tenant's log stays apart.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::boot;
use prefiq_audit::verify::{check_consistency, check_inclusion, unhex, unhex_hash};
use prefiq_data::testing::databases;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

fn hashes(value: &Value) -> Vec<prefiq_audit::Hash> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|h| unhex_hash(h.as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn the_audit_log_over_http_on_backends() {
    for db in databases("audit over HTTP").await {
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
        let (_, wrong) = api
            .login("acme", "admin@acme.test", "not the password")
            .await;
        assert_eq!(wrong["status"], 401);
        let admin = api.bearer("acme", "admin@acme.test", PASSWORD).await;
        let auth = [("authorization", admin.as_str())];
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/users",
                &auth,
                Some(json!({"email": "clerk@acme.test", "password": PASSWORD, "roles": []})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, todo) = api
            .call(
                "POST",
                "/api/v1/resources/todo",
                &auth,
                Some(json!({"description": "audited"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{todo}");

        let (status, page) = api.call("GET", "/api/v1/audit?limit=10", &auth, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let actions: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "create",
                "user_create",
                "login",
                "login_failed",
                "tenant_create"
            ]
        );
        assert!(
            !page.to_string().contains("admin@acme.test"),
            "an email in clear: {page}"
        );
        let (_, by_record) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/audit?entity=todo&id={}",
                    todo["id"].as_str().unwrap()
                ),
                &auth,
                None,
            )
            .await;
        assert_eq!(by_record["data"].as_array().unwrap().len(), 1);
        assert_eq!(
            by_record["data"][0]["changes"]["description"]["after"],
            "audited"
        );

        // A plain user may not read the log.
        let clerk = api.bearer("acme", "clerk@acme.test", PASSWORD).await;
        let (status, refused) = api
            .call("GET", "/api/v1/audit", &[("authorization", &clerk)], None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
        assert_eq!(refused["action"], "cortex.read_audit");

        // The checkpoint and proofs verify offline, with the key the checkpoint names.
        let (_, old) = api
            .call("GET", "/api/v1/audit/checkpoint", &auth, None)
            .await;
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/resources/todo",
                &auth,
                Some(json!({"description": "later"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, new) = api
            .call("GET", "/api/v1/audit/checkpoint", &auth, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{new}");
        let key: [u8; 32] = unhex(new["public_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap();
        let verify = |v: &Value| {
            prefiq_audit::checkpoint::verify(
                v["checkpoint"].as_str().unwrap(),
                "codexion/acme",
                &key,
            )
            .unwrap()
        };
        let (old, new) = (verify(&old), verify(&new));
        assert!(new.size > old.size);
        for seq in 1..=new.size {
            let (status, proof) = api
                .call(
                    "GET",
                    &format!("/api/v1/audit/proof/inclusion?seq={seq}&size={}", new.size),
                    &auth,
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{proof}");
            assert!(check_inclusion(
                &new,
                seq,
                proof["entry"].as_str().unwrap(),
                &hashes(&proof["proof"])
            ));
            // The same proof does not hold for another record.
            assert!(!check_inclusion(
                &new,
                seq % new.size + 1,
                proof["entry"].as_str().unwrap(),
                &hashes(&proof["proof"])
            ));
        }
        let (_, proof) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/audit/proof/consistency?from={}&to={}",
                    old.size, new.size
                ),
                &auth,
                None,
            )
            .await;
        assert!(check_consistency(&old, &new, &hashes(&proof["proof"])));
        for bad in ["seq=0&size=3", "seq=5&size=3", "seq=1&size=999999"] {
            let (status, problem) = api
                .call(
                    "GET",
                    &format!("/api/v1/audit/proof/inclusion?{bad}"),
                    &auth,
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {problem}");
        }

        // Another tenant's log holds only its own records.
        let globex = api.bearer("globex", "admin@globex.test", PASSWORD).await;
        let (_, theirs) = api
            .call("GET", "/api/v1/audit", &[("authorization", &globex)], None)
            .await;
        let records = theirs["data"].as_array().unwrap();
        assert!(records.iter().all(|r| r["tenant"] == "globex"), "{theirs}");
        assert_eq!(records.len(), 2, "{theirs}");
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}

/// A page size out of range is refused (422), not quietly clamped: the regression was
/// `limit=501` answering 200 with 500 records, against the documented maximum.
#[tokio::test]
async fn audit_list_refuses_a_limit_out_of_range() {
    let db = prefiq_data::testing::TestDatabase::sqlite().unwrap();
    let api = boot(&db).await;
    api.identity()
        .create_tenant("acme", "admin@acme.test", PASSWORD)
        .await
        .unwrap();
    let admin = api.bearer("acme", "admin@acme.test", PASSWORD).await;
    let auth = [("authorization", admin.as_str())];
    for (limit, expected) in [
        ("1", StatusCode::OK),
        ("500", StatusCode::OK),
        ("0", StatusCode::UNPROCESSABLE_ENTITY),
        ("501", StatusCode::UNPROCESSABLE_ENTITY),
        ("4294967295", StatusCode::UNPROCESSABLE_ENTITY),
        ("-1", StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = api
            .call("GET", &format!("/api/v1/audit?limit={limit}"), &auth, None)
            .await;
        assert_eq!(status, expected, "limit={limit}: {body}");
    }
}

/// `GET /api/v1/audit/verify` reads only the records since the last verification, and
/// says how many it trusted without reading them (the regression: the desk said "All N
/// records match" when it had read none).
#[tokio::test]
async fn audit_verify_answer_names_the_records_it_trusted() {
    let db = prefiq_data::testing::TestDatabase::sqlite().unwrap();
    let api = boot(&db).await;
    api.identity()
        .create_tenant("acme", "admin@acme.test", PASSWORD)
        .await
        .unwrap();
    let admin = api.bearer("acme", "admin@acme.test", PASSWORD).await;
    let auth = [("authorization", admin.as_str())];
    let (status, first) = api.call("GET", "/api/v1/audit/verify", &auth, None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["trusted"], 0, "{first}");
    assert_eq!(first["walked"], first["size"], "{first}");
    let (status, _) = api
        .call(
            "POST",
            "/api/v1/resources/todo",
            &auth,
            Some(json!({"description": "one more"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, second) = api.call("GET", "/api/v1/audit/verify", &auth, None).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["trusted"], first["size"], "{second}");
    assert_eq!(
        second["walked"].as_u64().unwrap() + second["trusted"].as_u64().unwrap(),
        second["size"].as_u64().unwrap(),
        "{second}"
    );
}
