//! Tenants' own schedules through the API, on SQLite and (when configured) PostgreSQL: a
//! bad cron expression or time zone is a 422 naming the field, only a System Manager may
//! write one, and an enabled every-second schedule runs once per due time, through the
//! job runner, until it is disabled.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use prefiq_data::testing::databases;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// Posts a schedule and compares the status and, for a refusal, the problem's pointer.
async fn check(
    api: &common::Api,
    bearer: &str,
    body: Value,
    expected: (StatusCode, Option<&str>),
) -> Value {
    let (status, answer) = api
        .call(
            "POST",
            "/api/v1/resources/schedule",
            &[("x-tenant", "acme"), ("authorization", bearer)],
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, expected.0, "{body} -> {answer}");
    if let Some(pointer) = expected.1 {
        let text = answer.to_string();
        assert!(text.contains(pointer), "{body}: {pointer} not in {answer}");
    }
    answer
}

async fn record(api: &common::Api, bearer: &str, id: &str) -> Value {
    let (status, body) = api
        .call(
            "GET",
            &format!("/api/v1/resources/schedule/{id}"),
            &[("x-tenant", "acme"), ("authorization", bearer)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_tenant_schedule_runs_once_per_due_time_until_disabled() {
    for db in databases("cortex tenant schedules").await {
        let api = common::boot_with_jobs(&db, &[]).await;
        let identity = api.identity();
        identity
            .create_tenant("acme", "admin@acme.test", PASSWORD)
            .await
            .unwrap();
        identity
            .create_user(
                "acme",
                "clerk@acme.test",
                PASSWORD,
                &[],
                &Default::default(),
            )
            .await
            .unwrap();
        let admin = api.bearer("acme", "admin@acme.test", PASSWORD).await;
        let clerk = api.bearer("acme", "clerk@acme.test", PASSWORD).await;

        let good = json!({"title": "tick", "cron": "* * * * * *", "catch_up": "none"});
        check(&api, &clerk, good.clone(), (StatusCode::FORBIDDEN, None)).await;
        for (body, pointer) in [
            (json!({"title": "t", "cron": "every day"}), "/cron"),
            (json!({"title": "t", "cron": "61 * * * *"}), "/cron"),
            (
                json!({"title": "t", "cron": "0 9 * * 1-5", "timezone": "Mars/Olympus"}),
                "/timezone",
            ),
            (
                json!({"title": "t", "cron": "* * * * *", "catch_up": "twice"}),
                "/catch_up",
            ),
        ] {
            check(
                &api,
                &admin,
                body,
                (StatusCode::UNPROCESSABLE_ENTITY, Some(pointer)),
            )
            .await;
        }
        // `runs` is the scheduler's to keep.
        check(
            &api,
            &admin,
            json!({"title": "t", "cron": "* * * * *", "runs": 5}),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("/runs")),
        )
        .await;

        let created = check(&api, &admin, good, (StatusCode::CREATED, None)).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let runs = record(&api, &admin, &id).await["runs"].as_i64().unwrap();
            if runs >= 3 {
                break;
            }
            if Instant::now() >= deadline {
                let jobs = api
                    .app
                    .resolver("test")
                    .get::<prefiq_worker::Jobs>()
                    .unwrap();
                let listed: Vec<_> = jobs
                    .list(None, None, 20)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(_, job)| (job.kind, job.state, job.last_error))
                    .collect();
                panic!("the schedule ran {runs} times in 20 s; jobs: {listed:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let jobs = api
            .app
            .resolver("test")
            .get::<prefiq_worker::Jobs>()
            .unwrap();
        let fired: Vec<_> = jobs
            .list(None, None, 500)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, job)| job)
            .filter(|job| job.kind == cortex::schedules::FIRE_KIND)
            .collect();
        let mut due: Vec<i64> = fired.iter().map(|job| job.run_at_ms).collect();
        due.sort_unstable();
        due.dedup();
        assert_eq!(due.len(), fired.len(), "one job per due time");
        assert!(due.windows(2).all(|w| w[1] - w[0] >= 1_000), "{due:?}");

        let (status, body) = api
            .call(
                "PATCH",
                &format!("/api/v1/resources/schedule/{id}"),
                &[("x-tenant", "acme"), ("authorization", &admin)],
                Some(json!({"enabled": false})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Runs already enqueued may still finish; after that the count stays.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let settled = record(&api, &admin, &id).await["runs"].as_i64().unwrap();
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(
            record(&api, &admin, &id).await["runs"].as_i64().unwrap(),
            settled
        );
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}
