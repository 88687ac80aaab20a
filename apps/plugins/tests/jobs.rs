//! A plugin's schedule, on SQLite and PostgreSQL: it ticks for the tenant that enabled
//! the plugin, and each run's job calls the plugin, which writes a record as its own
//! principal; the tenant that did not enable it gets nothing, and a schedule that does
//! not compile is refused at install.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{boot, eventually, files};
use prefiq_data::testing::databases;
use prefiq_plugin::testing::HookBody;
use serde_json::Value;

#[tokio::test]
async fn a_plugins_schedule_runs_its_job_for_the_tenant_that_enabled_it() {
    for db in databases("plugins_jobs").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let globex = api.tenant("globex").await;
        let manifest = |cron: &str| {
            format!(
                "name: reviewer\nversion: 0.1.0\ncapabilities:\n  entities:\n    todo: [create]\n  jobs: [todo]\n  schedules:\n    - {{cron: \"{cron}\", job: todo, payload: {{description: Weekly review}}}}\n"
            )
        };
        let refused = api
            .plugins()
            .install(
                &api.signed(&files(&manifest("every day"), HookBody::Echo)),
                false,
            )
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            refused.contains("reviewer: plugin.yml: schedule"),
            "{refused}"
        );

        api.plugins()
            .install(
                &api.signed(&files(&manifest("* * * * * *"), HookBody::Echo)),
                false,
            )
            .await
            .unwrap();
        let (s, b) = api
            .call("POST", "/api/v1/plugins/reviewer/enable", &acme, None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");

        let reviews = |bearer: String| {
            let api = &api;
            async move {
                let (status, body) = api
                    .call("GET", "/api/v1/resources/todo?limit=500", &bearer, None)
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                body["data"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|t| t["description"] == "Weekly review")
                    .collect::<Vec<Value>>()
            }
        };
        eventually("the scheduled job wrote acme's review", || {
            let r = reviews(acme.clone());
            async move { !r.await.is_empty() }
        })
        .await;
        let written = reviews(acme.clone()).await;
        assert_eq!(written[0]["created_by"], "plugin:reviewer", "{written:?}");
        assert!(reviews(globex.clone()).await.is_empty());
        db.cleanup().await;
    }
}
