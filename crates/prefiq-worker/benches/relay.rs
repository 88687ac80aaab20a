//! The outbox relay measured: `cargo bench -p prefiq-worker --bench relay`. One JSON object
//! per measurement on stdout, progress on stderr.
//!
//! On SQLite (a temporary file), and on PostgreSQL when `PREFIQ_TEST_POSTGRES_URL` is set;
//! NATS from `RELAY_BENCH_NATS_URL` or `PREFIQ_TEST_NATS_URL` (without one only the
//! in-process measurements run):
//!
//! - `backlog`: `RELAY_BENCH_EVENTS` events (default 200,000, payloads of about 300 bytes
//!   like a todo's) already in the outbox, relayed until none is left: events/s, to
//!   JetStream (every one acknowledged) and, for reference, in process only.
//! - `steady`: a writer adds `RELAY_BENCH_RATE` events/s (default 20,000) in a batch every
//!   10 ms for `RELAY_BENCH_SECS` s (default 10) while the relay runs; a subscriber records
//!   each event's lag (its delivery minus its write time): p50, p99, max, and whether the
//!   relay kept up (nothing left at the end).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prefiq_data::entity::repo::Repository;
use prefiq_data::entity::sql::{Arg, Sql};
use prefiq_data::testing::{TestDatabase, repository};
use prefiq_worker::relay::Relay;
use prefiq_worker::{Databases, Event, EventBus, EventHandler, EventsConfig, Subscription};
use serde_json::json;

const NOTE: &str = "name: note\nfields:\n  - {name: body, type: data}\n";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Adds `n` events written now, in statements of 1,000.
async fn write_events(repo: &Repository, n: usize, from: usize) {
    let handle = repo.main_database();
    let database = handle.get().unwrap();
    let mut tx = database.begin().await.unwrap();
    let payload = json!({
        "id": "0194f1c2-0000-7000-8000-000000000000",
        "description": "Call the supplier about the March invoice",
        "status": "Open", "priority": "Medium",
        "created_at": "2026-12-07T10:00:00.000000Z", "created_by": "0194f1c2-1111-7000-8000-000000000000",
        "modified_at": "2026-12-07T10:00:00.000000Z", "modified_by": "0194f1c2-1111-7000-8000-000000000000",
        "version": 1
    })
    .to_string();
    let cast = match database.backend() {
        prefiq::Backend::Postgres => "::jsonb",
        prefiq::Backend::Sqlite => "",
    };
    for start in (0..n).step_by(1_000) {
        let end = (start + 1_000).min(n);
        let mut sql = Sql::default();
        let now = prefiq_data::entity::value::civil_now();
        let mut rows = Vec::with_capacity(end - start);
        for i in start..end {
            let values = [
                sql.arg(Arg::Text(Some(uuid::Uuid::now_v7().to_string()))),
                sql.arg(Arg::Text(Some("acme".into()))),
                sql.arg(Arg::Text(Some("todo".into()))),
                sql.arg(Arg::Text(Some(format!("record-{}", from + i)))),
                sql.arg(Arg::Text(Some("created".into()))),
                format!("{}{cast}", sql.arg(Arg::Text(Some(payload.clone())))),
                sql.arg(Arg::Text(Some("0af7651916cd43dd8448eb211c80319c".into()))),
                sql.arg(Arg::Text(Some(now.clone()))),
            ];
            rows.push(format!("({})", values.join(",")));
        }
        sql.text = format!(
            "INSERT INTO prefiq_outbox (id, tenant_id, entity, record_id, event, payload, trace_id, created_at) VALUES {}",
            rows.join(",")
        );
        tx.conn().execute_bulk(&sql).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Records each event's lag in ms.
#[derive(Default)]
struct Lag {
    ms: Mutex<Vec<f64>>,
}

#[async_trait::async_trait]
impl EventHandler for Lag {
    async fn handle(&self, event: &Event) -> Result<(), String> {
        let at: jiff::Timestamp = event.occurred_at.parse().map_err(|e| format!("{e}"))?;
        let lag = jiff::Timestamp::now().duration_since(at).as_secs_f64() * 1_000.0;
        self.ms.lock().unwrap().push(lag);
        Ok(())
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn config(nats: Option<&str>, tag: &str) -> EventsConfig {
    EventsConfig {
        nats_url: nats.map(str::to_owned),
        stream: format!("BENCH_{tag}"),
        subject_prefix: format!("bench{tag}"),
        batch_size: 5_000,
        max_in_flight: env("RELAY_BENCH_IN_FLIGHT", 4_096) as usize,
        round_interval_ms: env("RELAY_BENCH_ROUND_INTERVAL_MS", 20),
        ..EventsConfig::default()
    }
}

async fn delete_stream(nats: &str, stream: &str) {
    if let Ok(client) = async_nats::connect(nats).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(stream)
            .await;
    }
}

async fn measure(db: &TestDatabase, backend: &str, nats: Option<&str>) {
    let events = env("RELAY_BENCH_EVENTS", 200_000) as usize;
    for sink in [None, nats] {
        let repo = repository(db, "note.yaml", NOTE).await;
        // Start from an empty outbox for each measurement.
        let handle = repo.main_database();
        {
            let mut tx = handle.get().unwrap().begin().await.unwrap();
            tx.conn()
                .execute(&Sql::new("DELETE FROM prefiq_outbox", vec![]))
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        write_events(&repo, events, 0).await;
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let cfg = config(sink, &tag);
        let mut relay = Relay::new(
            Databases::of(&repo),
            Arc::new(EventBus::new(Vec::new())),
            cfg.clone(),
        );
        let started = Instant::now();
        let round = relay.drain().await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(round.delivered, events);
        let to = if sink.is_some() {
            "jetstream"
        } else {
            "in_process"
        };
        eprintln!("{backend} backlog to {to}: {events} events in {secs:.2} s");
        println!(
            "{}",
            json!({"measurement": "backlog", "backend": backend, "to": to, "events": events,
                   "seconds": secs, "events_per_s": events as f64 / secs})
        );
        if let Some(nats) = sink {
            delete_stream(nats, &cfg.stream).await;
        }
    }

    // Steady load with the relay running.
    let rate = env("RELAY_BENCH_RATE", 20_000) as usize;
    let secs = env("RELAY_BENCH_SECS", 10);
    let repo = Arc::new(repository(db, "note.yaml", NOTE).await);
    let lag = Arc::new(Lag::default());
    let bus = Arc::new(EventBus::new(vec![Arc::new(Subscription {
        module: "bench".into(),
        name: "lag".into(),
        pattern: "*".into(),
        handler: lag.clone(),
    })]));
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let cfg = EventsConfig {
        poll_ms: 5,
        ..config(nats, &tag)
    };
    {
        // The relay connects to NATS on its first round: before the clock starts.
        let mut warm = Relay::new(
            Databases::of(&repo),
            Arc::new(EventBus::new(Vec::new())),
            cfg.clone(),
        );
        warm.drain().await.unwrap();
    }
    let relay = Relay::new(Databases::of(&repo), bus, cfg.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(relay.run(repo.commits(), stopped));
    let per_tick = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let started = Instant::now();
    let mut written = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        write_events(&repo, per_tick, written).await;
        written += per_tick;
    }
    // Let it finish what was written, then stop.
    let deadline = Instant::now() + Duration::from_secs(60);
    while lag.ms.lock().unwrap().len() < written && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    running.await.unwrap();
    let mut ms = lag.ms.lock().unwrap().clone();
    ms.sort_by(f64::total_cmp);
    let to = if nats.is_some() {
        "jetstream"
    } else {
        "in_process"
    };
    eprintln!(
        "{backend} steady to {to}: {written} events at {rate}/s, lag p50 {:.1} ms p99 {:.1} ms",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99)
    );
    println!(
        "{}",
        json!({"measurement": "steady", "backend": backend, "to": to, "rate_per_s": rate,
               "written": written, "delivered": ms.len(),
               "lag_p50_ms": percentile(&ms, 0.5), "lag_p99_ms": percentile(&ms, 0.99),
               "lag_max_ms": ms.last().copied().unwrap_or(0.0)})
    );
    if let Some(nats) = nats {
        delete_stream(nats, &cfg.stream).await;
    }
    if ms.len() < written {
        eprintln!(
            "the relay did not keep up: {} of {written} delivered",
            ms.len()
        );
        std::process::exit(1);
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let nats = std::env::var("RELAY_BENCH_NATS_URL")
            .or_else(|_| std::env::var("PREFIQ_TEST_NATS_URL"))
            .ok();
        if nats.is_none() {
            eprintln!("no NATS (RELAY_BENCH_NATS_URL or PREFIQ_TEST_NATS_URL): in-process only");
        }
        let sqlite = TestDatabase::sqlite().unwrap();
        measure(&sqlite, "sqlite", nats.as_deref()).await;
        if let Some(pg) = TestDatabase::postgres("relay bench").await {
            measure(&pg, "postgres", nats.as_deref()).await;
            pg.cleanup().await;
        }
    });
}
