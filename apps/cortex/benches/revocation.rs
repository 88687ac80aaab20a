//! What the revocation check costs per request: `cargo bench -p cortex --bench revocation`.
//!
//! Every authenticated request compares its token's session epoch with its user's current
//! one (see `cortex::authenticate`). This boots cortex on embedded SQLite (and on
//! PostgreSQL too when `PREFIQ_TEST_POSTGRES_URL` is set), signs a user in, and times,
//! `REVOCATION_BENCH_ROUNDS` times each (default 20,000):
//!
//! - the check alone with the user's epoch cached (what almost every request pays),
//! - the check alone with the cache emptied first (one indexed read of the user's row,
//!   what the first request of a user pays each second),
//! - a whole `authenticate` of a cached token, with and without the epoch cached, beside
//!   the same call with the check's cache warm, as the baseline it adds to.
//!
//! Prints p50/p99 in microseconds.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use prefiq::Authenticator as _;
use prefiq_data::testing::databases;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn summary(backend: &str, name: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{backend:<10} {name:<44} n={:<6} p50 {:>8.2} µs  p99 {:>8.2} µs",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
    );
}

fn main() {
    let rounds: usize = std::env::var("REVOCATION_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for db in databases("cortex revocation bench").await {
            let backend = if db.url.starts_with("postgres") {
                "postgres"
            } else {
                "sqlite"
            };
            let api = common::boot(&db).await;
            let identity = api.identity();
            identity
                .create_tenant("bench", "admin@bench.test", "correct horse battery")
                .await
                .unwrap();
            let bearer = api
                .bearer("bench", "admin@bench.test", "correct horse battery")
                .await;
            let token = bearer.trim_start_matches("Bearer ").to_owned();
            let principal = identity.authenticate(&token).await.unwrap();
            let (tenant, user) = (principal.tenant.as_str(), principal.user.as_str());
            let epoch = 0;
            identity.check_session(tenant, user, epoch).await.unwrap();

            let mut hit = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let started = Instant::now();
                identity.check_session(tenant, user, epoch).await.unwrap();
                hit.push(started.elapsed());
            }
            summary(backend, "check, epoch cached", hit);

            let mut miss = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                identity.clear_session_cache();
                let started = Instant::now();
                identity.check_session(tenant, user, epoch).await.unwrap();
                miss.push(started.elapsed());
            }
            summary(backend, "check, epoch read from the database", miss);

            let mut whole_hit = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let started = Instant::now();
                identity.authenticate(&token).await.unwrap();
                whole_hit.push(started.elapsed());
            }
            summary(
                backend,
                "authenticate (cached token), epoch cached",
                whole_hit,
            );

            let mut whole_miss = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                identity.clear_session_cache();
                let started = Instant::now();
                identity.authenticate(&token).await.unwrap();
                whole_miss.push(started.elapsed());
            }
            summary(
                backend,
                "authenticate (cached token), epoch read",
                whole_miss,
            );
            api.app.shutdown().await.unwrap();
            db.cleanup().await;
        }
    });
}
