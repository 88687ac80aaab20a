//! Webhook deliveries measured: `cargo bench -p webhooks --bench deliveries`. One JSON
//! object per backend on stdout, progress on stderr.
//!
//! `WEBHOOK_BENCH_DELIVERIES` delivery jobs (default 20,000) of one webhook are enqueued,
//! then the job runner (queue `webhooks`, concurrency `WEBHOOK_BENCH_CONCURRENCY`, default
//! 32 as the module declares) POSTs them, signed, to a local receiver that answers 204;
//! each attempt is also written to the delivery log. Measured: deliveries/s until the
//! receiver has every one and the queue says every job succeeded (a failed or repeated
//! delivery fails the run). On SQLite, and on PostgreSQL when `PREFIQ_TEST_POSTGRES_URL`
//! is set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use prefiq::Context;
use prefiq_data::entity::repo::{Repository, TenantScope};
use prefiq_data::testing::{TestDatabase, repository_of};
use prefiq_worker::runner::Runner;
use prefiq_worker::{Databases, Event, JobHandlers, Jobs, JobsConfig, QueueConfig};
use serde_json::json;
use webhooks::service::{Deliver, Webhooks, WebhooksConfig, delivery_job};
use webhooks::{signing, store};

const TODO: &str = "name: todo\nfields:\n  - {name: title, type: data}\n";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn receiver(count: Arc<AtomicU64>) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/hook")
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
    let handle = repo.main_database();
    let database = handle.get().unwrap();
    let sql = match database.backend() {
        prefiq::Backend::Sqlite => migration.sqlite,
        prefiq::Backend::Postgres => migration.postgres,
    };
    let mut writing = database.writer().await.unwrap();
    writing.conn().execute_script(sql).await.unwrap();
    writing.commit().unwrap();
    Arc::new(repo)
}

async fn measure(db: &TestDatabase, backend: &str) {
    let deliveries = env("WEBHOOK_BENCH_DELIVERIES", 20_000);
    let concurrency = env("WEBHOOK_BENCH_CONCURRENCY", 32) as usize;
    let repo = setup(db).await;
    let count = Arc::new(AtomicU64::new(0));
    let url = receiver(count.clone()).await;
    let service = Arc::new(Webhooks::new(
        WebhooksConfig {
            allow_private_destinations: Some(true),
            ..WebhooksConfig::default()
        },
        "bench",
    ));
    let databases = Databases::of(&repo);
    let jobs = Arc::new(Jobs::new(databases.clone()));
    service.connect(repo.clone(), jobs.clone());
    let scope = TenantScope::new(&Context::system("en").with_tenant("acme")).unwrap();
    let hook = repo
        .create(
            &scope,
            "webhook",
            json!({"url": url, "events": ["todo.created"]}),
        )
        .await
        .unwrap();
    let hook = hook["id"].as_str().unwrap().to_owned();
    store::insert_secret(&repo, &scope, &hook, &signing::new_secret())
        .await
        .unwrap();
    let now = prefiq_data::entity::value::civil_now();
    for start in (0..deliveries).step_by(1_000) {
        let batch = (start..(start + 1_000).min(deliveries))
            .map(|i| {
                let event = Event {
                    id: uuid::Uuid::now_v7().to_string(),
                    tenant: "acme".into(),
                    entity: "todo".into(),
                    record_id: format!("record-{i}"),
                    action: "created".into(),
                    data: json!({"id": format!("record-{i}"), "title": "Call the supplier about the March invoice", "status": "Open"}),
                    trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
                    trace_parent: None,
                    occurred_at: now.clone(),
                    seq: i as i64,
                };
                delivery_job(&hook, &event)
            })
            .collect();
        jobs.enqueue(batch).await.unwrap();
    }
    let mut config = JobsConfig {
        poll_ms: 10,
        ..JobsConfig::default()
    };
    config
        .queues
        .insert("webhooks".into(), QueueConfig { concurrency });
    let handlers = Arc::new(JobHandlers::new(vec![Arc::new(Deliver(service.clone()))]));
    let runner = Runner::new(databases, handlers, config, None, Duration::from_secs(5));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(runner.run(repo.commits(), jobs.enqueued(), stopped));
    let deadline = started + Duration::from_secs(600);
    loop {
        if count.load(Ordering::Relaxed) >= deliveries {
            let left = jobs
                .list(Some("webhooks"), Some("queued"), 1)
                .await
                .unwrap()
                .len()
                + jobs
                    .list(Some("webhooks"), Some("running"), 1)
                    .await
                    .unwrap()
                    .len();
            if left == 0 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out at {} deliveries",
            count.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.send(true).unwrap();
    task.await.unwrap();
    let received = count.load(Ordering::Relaxed);
    let dead = jobs
        .list(Some("webhooks"), Some("dead"), 10)
        .await
        .unwrap()
        .len();
    let retried = jobs
        .list(Some("webhooks"), Some("scheduled"), 10)
        .await
        .unwrap()
        .len();
    let ok = received == deliveries && dead == 0 && retried == 0;
    eprintln!(
        "{backend}: {received} deliveries in {seconds:.2} s ({:.0}/s), concurrency {concurrency}",
        received as f64 / seconds
    );
    println!(
        "{}",
        json!({"measurement": "deliveries", "backend": backend, "ok": ok, "deliveries": received,
               "seconds": seconds, "deliveries_per_s": received as f64 / seconds,
               "concurrency": concurrency, "dead": dead, "retried": retried})
    );
    if !ok {
        std::process::exit(1);
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sqlite = TestDatabase::sqlite().unwrap();
        measure(&sqlite, "sqlite").await;
        if let Some(pg) = TestDatabase::postgres("webhook bench").await {
            measure(&pg, "postgres").await;
            pg.cleanup().await;
        }
    });
}
