//! Webhook delivery end to end, on SQLite and (when configured) PostgreSQL: a committed
//! write becomes an event, the relay hands it to the webhooks' fan-out, a job POSTs it to a
//! real HTTP receiver that answers 500 three times and then 200, and the fourth attempt's
//! signature verifies with the Standard Webhooks algorithm. Every attempt is in the log.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use prefiq::Context;
use prefiq_data::entity::repo::{Repository, TenantScope};
use prefiq_data::testing::{TestDatabase, databases, repository_of};
use prefiq_worker::relay::Relay;
use prefiq_worker::runner::Runner;
use prefiq_worker::{
    Databases, EventBus, EventsConfig, JobHandlers, Jobs, JobsConfig, QueueConfig, Subscription,
};
use serde_json::{Value, json};
use webhooks::service::{Deliver, FanOut, Webhooks, WebhooksConfig};
use webhooks::{signing, store};

const TODO: &str = "name: todo\nfields:\n  - {name: title, type: data}\n";

/// What the receiver saw: headers and body of each request.
type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver on a free local port that answers 500 to the first `failures` requests.
async fn receiver(failures: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            async move {
                let mut log = log.lock().unwrap();
                log.push((headers, body));
                if log.len() <= failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hook"), seen)
}

async fn setup(db: &TestDatabase) -> Arc<Repository> {
    let repo = repository_of(
        db,
        &[
            ("todo.yaml", TODO),
            ("webhook.yaml", include_str!("../schema/webhook.yaml")),
        ],
        |_| None,
    )
    .await;
    let migration = store::migration();
    let database = repo.main_database();
    let database = database.get().unwrap();
    let sql = match database.backend() {
        prefiq::Backend::Sqlite => migration.sqlite,
        prefiq::Backend::Postgres => migration.postgres,
    };
    let mut writing = database.writer().await.unwrap();
    writing.conn().execute_script(sql).await.unwrap();
    writing.commit().unwrap();
    Arc::new(repo)
}

fn scope(tenant: &str) -> TenantScope {
    TenantScope::new(&Context::system("en").with_tenant(tenant)).unwrap()
}

#[tokio::test]
async fn a_receiver_that_fails_three_times_gets_a_verifiable_fourth_delivery() {
    for db in databases("webhook delivery").await {
        let repo = setup(&db).await;
        let (url, seen) = receiver(3).await;
        let service = Arc::new(Webhooks::new(
            WebhooksConfig {
                allow_private_destinations: Some(true),
                ..WebhooksConfig::default()
            },
            "test",
        ));
        let databases = Databases::of(&repo);
        let jobs = Arc::new(Jobs::new(databases.clone()));
        service.connect(repo.clone(), jobs.clone());

        let s = scope("acme");
        let hook = repo
            .create(
                &s,
                "webhook",
                json!({"url": url, "events": ["todo.created"], "status": "active"}),
            )
            .await
            .unwrap();
        let hook_id = hook["id"].as_str().unwrap().to_owned();
        let secret = signing::new_secret();
        store::insert_secret(&repo, &s, &hook_id, &secret)
            .await
            .unwrap();
        // Another tenant's webhook never sees acme's events.
        let other = repo
            .create(
                &scope("globex"),
                "webhook",
                json!({"url": url, "events": ["*"]}),
            )
            .await
            .unwrap();
        store::insert_secret(
            &repo,
            &scope("globex"),
            other["id"].as_str().unwrap(),
            &signing::new_secret(),
        )
        .await
        .unwrap();

        let bus = Arc::new(EventBus::new(vec![Arc::new(Subscription {
            module: "webhooks".into(),
            name: "fan_out".into(),
            pattern: "*".into(),
            handler: Arc::new(FanOut(service.clone())),
        })]));
        let mut relay = Relay::new(databases.clone(), bus, EventsConfig::default());
        let mut config = JobsConfig {
            poll_ms: 20,
            backoff_ms: 20,
            max_backoff_ms: 80,
            ..JobsConfig::default()
        };
        config
            .queues
            .insert("webhooks".into(), QueueConfig { concurrency: 4 });
        let handlers = Arc::new(JobHandlers::new(vec![Arc::new(Deliver(service.clone()))]));
        let runner = Runner::new(databases, handlers, config, None, Duration::from_secs(1));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(runner.run(repo.commits(), jobs.enqueued(), stopped));

        let todo = repo
            .create(&s, "todo", json!({"title": "ship it"}))
            .await
            .unwrap();
        // A todo update matches no pattern: no delivery.
        repo.update(
            &s,
            "todo",
            todo["id"].as_str().unwrap(),
            json!({"title": "shipped"}),
            None,
        )
        .await
        .unwrap();
        relay.drain().await.unwrap();

        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().len() < 4 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "4 attempts expected, saw {}",
                seen.lock().unwrap().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Give the finisher a moment to record the last outcome, then stop.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let log = loop {
            let log = store::deliveries(&repo, &s, &hook_id, 50, None)
                .await
                .unwrap();
            if log.len() == 4 || tokio::time::Instant::now() > deadline {
                break log;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        stop.send(true).unwrap();
        task.await.unwrap();

        let requests = seen.lock().unwrap().clone();
        assert_eq!(
            requests.len(),
            4,
            "the update and globex's webhook add nothing"
        );
        let (headers, body) = &requests[3];
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        let id = header("webhook-id");
        let timestamp: i64 = header("webhook-timestamp").parse().unwrap();
        let key = signing::secret_key(&secret).unwrap();
        assert!(signing::verify(
            &key,
            &id,
            timestamp,
            body,
            &header("webhook-signature")
        ));
        assert!((jiff::Timestamp::now().as_second() - timestamp).abs() < 60);
        let payload: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(payload["type"], "todo.created");
        assert_eq!(payload["data"]["id"], id.as_str());
        assert_eq!(payload["data"]["data"]["title"], "ship it");
        // Every attempt carries the same event id.
        assert!(
            requests
                .iter()
                .all(|(h, _)| h.get("webhook-id").unwrap() == id.as_str())
        );

        let codes: Vec<(i64, String, Option<i64>)> = log
            .iter()
            .rev()
            .map(|d| (d.attempt, d.status.clone(), d.response_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                (1, "failed".into(), Some(500)),
                (2, "failed".into(), Some(500)),
                (3, "failed".into(), Some(500)),
                (4, "succeeded".into(), Some(204)),
            ]
        );
        db.cleanup().await;
    }
}
