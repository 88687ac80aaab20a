//! PATCH and `If-Match`: without it the last writer wins, applied to the row as it is, so
//! concurrent patches all apply; with a stale one the answer is 412; a patch that changes
//! nothing writes nothing.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Api, boot, count_rows};
use prefiq_data::testing::databases;
use serde_json::{Value, json};

/// `(If-Match, body) → (status, version after, estimate after)`.
type Case = (Option<&'static str>, Value, (StatusCode, i64, Value));

/// Audit records and outbox events of the record `id`.
async fn traces(api: &Api, id: &str) -> (i64, i64) {
    (
        count_rows(&api.url, "prefiq_audit", "record_id", id).await,
        count_rows(&api.url, "prefiq_outbox", "record_id", id).await,
    )
}

async fn patch(api: &Api, path: &str, body: &Value, if_match: Option<&str>) -> (StatusCode, Value) {
    let mut headers = vec![("x-tenant", "acme")];
    if let Some(version) = if_match {
        headers.push(("if-match", version));
    }
    api.raw("PATCH", path, &headers, &body.to_string()).await
}

/// The todo made for a test: its path.
async fn todo(api: &Api) -> String {
    let (status, todo) = api
        .call(
            "POST",
            "/api/v1/resources/todo",
            "acme",
            Some(&json!({"description": "race"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{todo}");
    format!("/api/v1/resources/todo/{}", todo["id"].as_str().unwrap())
}

#[tokio::test]
async fn concurrent_patches_without_if_match_all_apply() {
    // The shared database, so the traces can be counted in the main one.
    let shared = [("PREFIQ__DATABASE__TENANCY", "shared")];
    for db in databases("prefiq-http concurrent PATCH").await {
        let api = boot(&db, &shared).await;
        // A second replica on the same database: its writes race with the first's.
        let replica = boot(&db, &shared).await;
        let path = todo(&api).await;
        // 60 distinct estimates (each a change) and 20 patches that repeat the description
        // (each no change), all at once, half of them through each replica.
        let changes = 60;
        let patches: Vec<Value> = (1..=changes)
            .map(|i| json!({"estimate": i}))
            .chain((0..20).map(|_| json!({"description": "race"})))
            .collect();
        let answers =
            futures_util::future::join_all(patches.iter().enumerate().map(|(i, body)| {
                patch(if i % 2 == 0 { &api } else { &replica }, &path, body, None)
            }))
            .await;
        for (body, (status, answer)) in patches.iter().zip(&answers) {
            assert_eq!(*status, StatusCode::OK, "{} {body}: {answer}", api.url);
        }
        let (_, record) = api.call("GET", &path, "acme", None).await;
        assert_eq!(record["version"], json!(1 + changes), "{record}");
        let last = record["estimate"].as_i64().unwrap();
        assert!((1..=changes).contains(&last), "{record}");
        // One audit record and one event for the create and for each change.
        let id = record["id"].as_str().unwrap();
        assert_eq!(traces(&api, id).await, (1 + changes, 1 + changes));
        drop(replica);
        drop(api);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn stale_if_match_is_412_and_a_patch_that_changes_nothing_keeps_its_version() {
    let shared = [("PREFIQ__DATABASE__TENANCY", "shared")];
    for db in databases("prefiq-http If-Match").await {
        let api = boot(&db, &shared).await;
        let path = todo(&api).await;
        let (_, first) = api.call("GET", &path, "acme", None).await;
        let id = first["id"].as_str().unwrap().to_owned();
        let cases: [Case; 9] = [
            (
                Some("\"1\""),
                json!({"estimate": 5}),
                (StatusCode::OK, 2, json!(5)),
            ),
            // Stale: the record is at version 2.
            (
                Some("\"1\""),
                json!({"estimate": 6}),
                (StatusCode::PRECONDITION_FAILED, 2, json!(5)),
            ),
            (
                Some("1"),
                json!({"estimate": 6}),
                (StatusCode::PRECONDITION_FAILED, 2, json!(5)),
            ),
            (
                Some("\"3\""),
                json!({"estimate": 6}),
                (StatusCode::PRECONDITION_FAILED, 2, json!(5)),
            ),
            // Changes nothing, with or without If-Match: same version, 200.
            (None, json!({"estimate": 5}), (StatusCode::OK, 2, json!(5))),
            (
                Some("\"2\""),
                json!({"estimate": 5, "status": "Open"}),
                (StatusCode::OK, 2, json!(5)),
            ),
            (None, json!({}), (StatusCode::OK, 2, json!(5))),
            // `*` is any current version; a changed value is a new version.
            (
                Some("*"),
                json!({"estimate": 7}),
                (StatusCode::OK, 3, json!(7)),
            ),
            (
                None,
                json!({"estimate": null}),
                (StatusCode::OK, 4, json!(null)),
            ),
        ];
        let mut last_version = 1;
        for (if_match, body, (status, version, estimate)) in cases {
            let before = traces(&api, &id).await;
            let (got, answer) = patch(&api, &path, &body, if_match).await;
            let (_, record) = api.call("GET", &path, "acme", None).await;
            assert_eq!(
                (
                    got,
                    record["version"].as_i64().unwrap(),
                    record["estimate"].clone()
                ),
                (status, version, estimate),
                "{} If-Match {if_match:?} {body}: {answer}",
                api.url
            );
            if got == StatusCode::OK {
                assert_eq!(answer, record, "a PATCH answers the record as stored");
            }
            // Only a change leaves an audit record and an outbox event.
            let expected = if version > last_version {
                (before.0 + 1, before.1 + 1)
            } else {
                before
            };
            assert_eq!(
                traces(&api, &id).await,
                expected,
                "If-Match {if_match:?} {body}"
            );
            last_version = version;
        }
        drop(api);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn hooks_that_update_records_inside_an_update_do_not_wait_for_it() {
    let shared = [("PREFIQ__DATABASE__TENANCY", "shared")];
    for db in databases("prefiq-http nested updates").await {
        let api = boot(&db, &shared).await;
        let todo = todo(&api).await;
        let (status, customer) = api
            .call(
                "POST",
                "/api/v1/resources/customer",
                "acme",
                Some(&json!({"title": "Acme"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{customer}");
        let path = format!(
            "/api/v1/resources/customer/{}",
            customer["id"].as_str().unwrap()
        );
        // The before-hook updates the todo, the after-hook the customer itself: both are
        // updates inside an update, which used to wait for a turn they held themselves.
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            patch(&api, &path, &json!({"title": "nested"}), None),
        )
        .await
        .expect("the nested updates finished");
        assert_eq!(answer.0, StatusCode::OK, "{} {}", api.url, answer.1);
        let (_, customer) = api.call("GET", &path, "acme", None).await;
        assert_eq!(
            (customer["title"].clone(), customer["version"].clone()),
            (json!("NESTED"), json!(3)),
            "{customer}"
        );
        let (_, todo) = api.call("GET", &todo, "acme", None).await;
        assert_eq!(
            (todo["status"].clone(), todo["version"].clone()),
            (json!("Closed"), json!(2))
        );
        drop(api);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn if_match_on_delete_is_checked_not_ignored() {
    for db in databases("prefiq-http If-Match on DELETE").await {
        let api = boot(&db, &[]).await;
        let path = todo(&api).await;
        let (status, _) = patch(&api, &path, &json!({"estimate": 1}), None).await;
        assert_eq!(status, StatusCode::OK);
        for (if_match, status) in [
            ("\"1\"", StatusCode::PRECONDITION_FAILED),
            ("\"3\"", StatusCode::PRECONDITION_FAILED),
            ("x", StatusCode::BAD_REQUEST),
            ("\"2\"", StatusCode::NO_CONTENT),
        ] {
            let (got, answer) = api
                .raw(
                    "DELETE",
                    &path,
                    &[("x-tenant", "acme"), ("if-match", if_match)],
                    "",
                )
                .await;
            assert_eq!(got, status, "{} If-Match {if_match}: {answer}", api.url);
            let (still, _) = api.call("GET", &path, "acme", None).await;
            let expected = if status == StatusCode::NO_CONTENT {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            };
            assert_eq!(still, expected, "If-Match {if_match}");
        }
        drop(api);
        db.cleanup().await;
    }
}
