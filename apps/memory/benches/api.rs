//! The memory API under load, in process through the router (so the figures are the
//! server's, without a socket): acknowledged writes (one item per request, sequential
//! and 8 at once), then search latency in each mode with `MEMORY_BENCH_ITEMS` items in
//! the tenant (default 100,000) on SQLite. Every non-2xx answer is counted and fails
//! the run.
//!
//! `cargo bench -p memory --bench api`. Targets (issue 19): write p99 under 10 ms;
//! search p99 at 100,000 items under 25 ms.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use prefiq_data::testing::TestDatabase;
use serde_json::{Value, json};

const PEOPLE: [&str; 16] = [
    "Maria", "Tom", "Ana", "Li", "Jonas", "Fatima", "Kenji", "Olga", "Pedro", "Aisha", "Lars",
    "Chen", "Noor", "Sven", "Priya", "Müller",
];
const PLACES: [&str; 12] = [
    "Lisbon", "Osaka", "Berlin", "Nairobi", "Lima", "Oslo", "Porto", "Hanoi", "Quito", "Turin",
    "Austin", "Riga",
];
const THINGS: [&str; 16] = [
    "invoice",
    "purchase order",
    "shipment",
    "contract",
    "forklift",
    "laptop",
    "warehouse audit",
    "payroll run",
    "supplier visit",
    "price list",
    "credit note",
    "sales quote",
    "tax return",
    "delivery van",
    "office lease",
    "support ticket",
];
const VERBS: [&str; 12] = [
    "approved",
    "cancelled",
    "delayed",
    "signed",
    "reviewed",
    "disputed",
    "paid",
    "renewed",
    "ordered",
    "returned",
    "escalated",
    "archived",
];

/// A varied, deterministic text for item `i`.
fn text(i: usize) -> String {
    let p = PEOPLE[i % PEOPLE.len()];
    let q = PLACES[(i / 7) % PLACES.len()];
    let t = THINGS[(i / 3) % THINGS.len()];
    let v = VERBS[(i / 11) % VERBS.len()];
    format!(
        "{p} {v} the {t} for the {q} branch (ref {}-{:05}) after a call on day {}.",
        t.split(' ').next().unwrap_or("x").to_uppercase(),
        i,
        i % 365
    )
}

fn item(i: usize) -> Value {
    let kind = ["episode", "fact", "note"][i % 3];
    json!({
        "kind": kind,
        "subject": PEOPLE[i % PEOPLE.len()].to_lowercase(),
        "text": text(i),
        "tags": [THINGS[(i / 3) % THINGS.len()].replace(' ', "-")],
        "occurred_at": format!("2026-{:02}-{:02}T10:00:00Z", 1 + (i % 12), 1 + (i % 28)),
    })
}

fn report(what: &str, mut latencies: Vec<Duration>, elapsed: Duration) {
    latencies.sort();
    println!(
        "{what:<44} n={:<6} {:>8.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        support::quantile_ms(&latencies, 0.5),
        support::quantile_ms(&latencies, 0.99),
        support::quantile_ms(&latencies, 1.0),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let total: usize = std::env::var("MEMORY_BENCH_ITEMS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let db = TestDatabase::sqlite().unwrap();
    let bench = Arc::new(support::boot(&db, &[]).await);

    // Acknowledged writes: sequential, then 8 clients.
    let writes = 2_000;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(writes);
    for i in 0..writes {
        let t = Instant::now();
        let (status, body) = bench
            .call("POST", "/api/v1/memory/items", Some(item(i)))
            .await;
        latencies.push(t.elapsed());
        assert!(status.is_success(), "write {i}: {status} {body}");
    }
    report("write, 1 client", latencies, started.elapsed());
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|c| {
            let bench = bench.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for i in 0..writes / 8 {
                    let n = writes + c * writes + i;
                    let t = Instant::now();
                    let (status, body) = bench
                        .call("POST", "/api/v1/memory/items", Some(item(n)))
                        .await;
                    latencies.push(t.elapsed());
                    assert!(status.is_success(), "write {n}: {status} {body}");
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    report("write, 8 clients", latencies, started.elapsed());

    // Fill the tenant, in batches of 500, then wait for every vector.
    let written = writes + writes;
    let started = Instant::now();
    let rest: Vec<Value> = (written..total.max(written)).map(item).collect();
    let mut batch_latencies = Vec::new();
    for chunk in rest.chunks(500) {
        let t = Instant::now();
        let (status, body) = bench
            .call(
                "POST",
                "/api/v1/memory/items/batch",
                Some(json!({"items": chunk})),
            )
            .await;
        batch_latencies.push(t.elapsed());
        assert!(status.is_success(), "{status} {body}");
    }
    let added = started.elapsed();
    report("batch of 500, 1 client", batch_latencies, added);
    let n = total.max(written);
    bench.settled(n).await;
    println!(
        "{n} items written in {:.1} s and embedded by {:.1} s ({:.0} items/s end to end)",
        added.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        (n - written) as f64 / started.elapsed().as_secs_f64()
    );
    let (_, stats) = bench.call("GET", "/api/v1/memory/stats", None).await;
    println!("stats: {stats}");

    // Searches: a mix of meaning, identifiers and filters, in each mode.
    let queries: Vec<Value> = (0..400)
        .map(|i| match i % 4 {
            0 => json!({"query": format!("what did {} do about the {} in {}?", PEOPLE[i % 16], THINGS[i % 16], PLACES[i % 12])}),
            1 => json!({"query": format!("ref INVOICE-{:05}", (i * 241) % n)}),
            2 => json!({"query": format!("{} delayed shipment", PLACES[i % 12]), "filters": [["kind", "=", "episode"]]}),
            _ => json!({"query": format!("{} signed contract", PEOPLE[i % 16]), "as_of": "2026-06-30T00:00:00Z"}),
        })
        .collect();
    for mode in ["keyword", "vector", "hybrid"] {
        // One round to warm the index and the caches, then the measured one.
        for (round, measure) in [(0, false), (1, true)] {
            let started = Instant::now();
            let mut latencies = Vec::new();
            for q in &queries {
                let mut body = q.clone();
                body["mode"] = json!(mode);
                let t = Instant::now();
                let (status, answer) = bench
                    .call("POST", "/api/v1/memory/search", Some(body))
                    .await;
                latencies.push(t.elapsed());
                assert!(status.is_success(), "{status} {answer}");
            }
            if measure {
                report(
                    &format!("search {mode} at {n} items (round {round})"),
                    latencies,
                    started.elapsed(),
                );
            }
        }
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    for q in queries.iter().take(200) {
        let mut body = q.clone();
        body["budget_tokens"] = json!(500);
        let t = Instant::now();
        let (status, answer) = bench
            .call("POST", "/api/v1/memory/context", Some(body))
            .await;
        latencies.push(t.elapsed());
        assert!(status.is_success(), "{status} {answer}");
    }
    report(
        &format!("context 500 tokens at {n} items"),
        latencies,
        started.elapsed(),
    );
    drop(bench);
    db.cleanup().await;
}
