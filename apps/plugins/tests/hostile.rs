//! Hostile plugins through the whole installation, on SQLite and PostgreSQL: an endless
//! loop, a memory bomb, a trap and a call to a capability that was not granted each fail
//! the write they hook (naming the plugin) and write nothing, while other tenants and the
//! next request are served; repeated failures suspend the plugin for that tenant only;
//! and a plugin's reads never reach another tenant's rows, whatever ids it asks for.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{Api, boot, files, fixture};
use prefiq_data::testing::databases;
use prefiq_plugin::sandbox::CallContext;
use prefiq_plugin::testing::HookBody;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

async fn todos(api: &Api, bearer: &str) -> usize {
    let (status, body) = api
        .call("GET", "/api/v1/resources/todo?limit=500", bearer, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().map_or(0, Vec::len)
}

async fn create_todo(api: &Api, bearer: &str, description: &str) -> (StatusCode, Value) {
    api.call(
        "POST",
        "/api/v1/resources/todo",
        bearer,
        Some(json!({"description": description})),
    )
    .await
}

#[tokio::test]
async fn every_hostile_fixture_fails_its_write_alone_and_the_server_keeps_serving() {
    for db in databases("plugins_hostile").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let globex = api.tenant("globex").await;
        let cases = [
            (
                "endless-loop",
                HookBody::EndlessLoop,
                StatusCode::SERVICE_UNAVAILABLE,
                "ran out of its instruction budget",
            ),
            (
                "memory-bomb",
                HookBody::MemoryBomb,
                StatusCode::SERVICE_UNAVAILABLE,
                "ran out of memory",
            ),
            (
                "trap",
                HookBody::Trap,
                StatusCode::SERVICE_UNAVAILABLE,
                "trapped",
            ),
            (
                "grabber",
                HookBody::InsertDoc,
                StatusCode::UNPROCESSABLE_ENTITY,
                "plugin grabber may not create todo",
            ),
        ];
        for (name, body, status, fragment) in cases {
            api.plugins()
                .install(
                    &api.signed(&fixture(name, "todo", "validate", body, "")),
                    false,
                )
                .await
                .unwrap();
            let (s, b) = api
                .call(
                    "POST",
                    &format!("/api/v1/plugins/{name}/enable"),
                    &acme,
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::NO_CONTENT, "{b}");

            let before = todos(&api, &acme).await;
            let (got, problem) = create_todo(&api, &acme, name).await;
            assert_eq!(got, status, "{name}: {problem}");
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(
                detail.contains(name) && detail.contains(fragment),
                "{name}: {problem}"
            );
            assert_eq!(todos(&api, &acme).await, before, "{name} wrote nothing");

            // Another tenant, and the next request, are served.
            let (s, b) = create_todo(&api, &globex, name).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            let (s, _) = api.call("GET", "/healthz", "", None).await;
            assert_eq!(s, StatusCode::OK);

            let (s, _) = api
                .call(
                    "POST",
                    &format!("/api/v1/plugins/{name}/disable"),
                    &acme,
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::NO_CONTENT);
            let (s, b) = create_todo(&api, &acme, name).await;
            assert_eq!(s, StatusCode::CREATED, "disabled, {name} is inert: {b}");
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn repeated_failures_suspend_a_plugin_for_its_tenant_only() {
    for db in databases("plugins_breaker").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let globex = api.tenant("globex").await;
        api.plugins()
            .install(
                &api.signed(&fixture("flaky", "todo", "validate", HookBody::Trap, "")),
                false,
            )
            .await
            .unwrap();
        for bearer in [&acme, &globex] {
            let (s, _) = api
                .call("POST", "/api/v1/plugins/flaky/enable", bearer, None)
                .await;
            assert_eq!(s, StatusCode::NO_CONTENT);
        }
        // The test installation opens a breaker after 3 failures in a row.
        for _ in 0..3 {
            let (s, problem) = create_todo(&api, &acme, "x").await;
            assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
            assert!(
                problem["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("trapped"),
                "{problem}"
            );
        }
        let (s, problem) = create_todo(&api, &acme, "x").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("is suspended for this tenant"),
            "{problem}"
        );
        // globex's calls still run (and fail on their own account).
        let (s, problem) = create_todo(&api, &globex, "x").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("trapped"),
            "{problem}"
        );
        // Re-enabling (after a fix, say) closes the breaker.
        let (s, _) = api
            .call("POST", "/api/v1/plugins/flaky/enable", &acme, None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (_, problem) = create_todo(&api, &acme, "x").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("trapped"),
            "{problem}"
        );
        db.cleanup().await;
    }
}

/// The property: whatever ids a plugin acting for acme asks for — acme's, globex's, or
/// made up — it reads acme's rows and nothing else.
#[tokio::test]
async fn a_plugins_host_calls_never_reach_another_tenants_rows() {
    for db in databases("plugins_isolation").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let globex = api.tenant("globex").await;
        let manifest = "name: reader\nversion: 0.1.0\ncapabilities:\n  entities:\n    todo: [read]\n  hooks:\n    - {entity: todo, event: validate}\n";
        api.plugins()
            .install(&api.signed(&files(manifest, HookBody::GetByDoc)), false)
            .await
            .unwrap();
        // Rows of both tenants, made before the plugin is enabled (its hook reads by the
        // document's text, so it would refuse them).
        let mut ids: Vec<(String, String)> = Vec::new();
        for (tenant, bearer) in [("globex", &globex), ("acme", &acme)] {
            for i in 0..6 {
                let (s, body) = create_todo(&api, bearer, &format!("{tenant} {i}")).await;
                assert_eq!(s, StatusCode::CREATED, "{body}");
                ids.push((tenant.to_owned(), body["id"].as_str().unwrap().to_owned()));
            }
        }
        let (s, _) = api
            .call("POST", "/api/v1/plugins/reader/enable", &acme, None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);

        let state = api.plugins().state();
        let reader = state.installed.get("reader").unwrap().clone();
        let host: Arc<plugins::host::RepositoryHost> = api
            .app
            .resolver("test")
            .get::<plugins::host::RepositoryHost>()
            .unwrap();
        let context = CallContext {
            plugin: "reader".into(),
            tenant: "acme".into(),
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            config: "{}".into(),
            clock: false,
            http_hosts: Arc::from(Vec::new()),
        };
        // Ids drawn by proptest: a known row of either tenant, or made-up text.
        let known = ids.clone();
        let strategy = proptest::prop_oneof![
            (0..known.len()).prop_map(move |i| known[i].clone()),
            "[0-9a-f-]{1,40}".prop_map(|id| ("nobody".to_owned(), id)),
        ];
        let mut runner = TestRunner::deterministic();
        for _ in 0..64 {
            let (owner, id) = strategy.new_tree(&mut runner).unwrap().current();
            let answer = reader
                .plugin
                .hook(host.clone(), context.clone(), "validate", "todo", &id, "")
                .await
                .unwrap();
            match (owner.as_str(), answer) {
                ("acme", Ok(record)) => {
                    let record: Value = serde_json::from_str(&record).unwrap();
                    assert_eq!(record["id"], json!(id));
                }
                ("acme", Err(e)) => panic!("acme's own {id}: {e}"),
                (_, Ok(record)) => panic!("{owner}'s {id} reached acme's plugin: {record}"),
                (_, Err(e)) => assert!(
                    e.contains("not found") || e.contains("does not exist"),
                    "{id}: {e}"
                ),
            }
        }
        db.cleanup().await;
    }
}
