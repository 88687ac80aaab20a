//! What the cache service saves when requests are spread over many tenants:
//! `cargo bench -p cortex --bench tenant_caches`.
//!
//! Every authenticated request reads its API key, its tenant's status and its tenant's
//! authorization model. Before the cache service those were trusted for one second, so a
//! tenant whose requests come more than a second apart paid every read on every request.
//! The cache service trusts them for `cache.ttl_ms` (5 minutes) while invalidations reach
//! every replica (here over the real Redis at `PREFIQ_TEST_REDIS_URL`), and for one second
//! without a transport, as before.
//!
//! This boots cortex on embedded SQLite (and PostgreSQL when `PREFIQ_TEST_POSTGRES_URL` is
//! set), makes `TENANT_CACHE_BENCH_TENANTS` tenants (default 300) with an API key each, and
//! then, for `TENANT_CACHE_BENCH_SECONDS` (default 10) at `TENANT_CACHE_BENCH_RATE`
//! requests per second (default 200, so each tenant comes back every 1.5 s), authenticates
//! the next tenant's key and fetches its authorization model, round robin. It does this
//! twice on the same data, booted without a transport (the one-second behaviour) and with
//! Redis, and prints p50/p99 of a request's authentication plus model lookup, and how many
//! of the cache lookups had to read the database.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use prefiq::Authenticator as _;
use prefiq_auth::authz::CedarAuthorizer;
use prefiq_data::testing::databases;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn main() {
    let tenants = setting("TENANT_CACHE_BENCH_TENANTS", 300) as usize;
    let seconds = setting("TENANT_CACHE_BENCH_SECONDS", 10);
    let rate = setting("TENANT_CACHE_BENCH_RATE", 200);
    let Ok(redis) = std::env::var("PREFIQ_TEST_REDIS_URL") else {
        println!("skipped: PREFIQ_TEST_REDIS_URL is not set (the cache service's transport)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for db in databases("cortex tenant caches bench").await {
            let backend = if db.url.starts_with("postgres") {
                "postgres"
            } else {
                "sqlite"
            };
            let mut keys = Vec::with_capacity(tenants);
            let setup = common::boot(&db).await;
            let identity = setup.identity();
            let started = Instant::now();
            for i in 0..tenants {
                let tenant = format!("t{i:05}");
                identity
                    .create_tenant(&tenant, "admin@bench.test", "correct horse battery")
                    .await
                    .unwrap();
                let admin = identity.users(&tenant).await.unwrap().remove(0).id;
                let key = identity
                    .create_api_key(&tenant, &admin, "bench", None)
                    .await
                    .unwrap();
                keys.push(key.key);
            }
            println!(
                "{backend}: {tenants} tenants with a key each made in {:.1} s; {rate} requests/s for {seconds} s, each tenant every {:.2} s",
                started.elapsed().as_secs_f64(),
                tenants as f64 / rate as f64
            );
            setup.app.shutdown().await.unwrap();
            for (name, vars) in [
                ("1 s TTLs (no transport)", vec![]),
                (
                    "cache service, Redis",
                    vec![("PREFIQ__CACHE__REDIS_URL", redis.as_str())],
                ),
            ] {
                let api = common::boot_with(&db, &vars).await;
                let identity = api.identity();
                if !vars.is_empty() {
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while !identity.cache().connected() {
                        assert!(Instant::now() < deadline, "Redis did not connect");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                let authorizer = api.app.resolver("bench").get::<CedarAuthorizer>().unwrap();
                let interval = Duration::from_secs_f64(1.0 / rate as f64);
                let total = (seconds * rate) as usize;
                let mut times = Vec::with_capacity(total);
                let begin = Instant::now();
                let models_before = authorizer.models_compiled();
                for i in 0..total {
                    let due = begin + interval * i as u32;
                    tokio::time::sleep_until(due.into()).await;
                    let started = Instant::now();
                    let principal = identity.authenticate(&keys[i % tenants]).await.unwrap();
                    authorizer.model(&principal.tenant).await.unwrap();
                    times.push(started.elapsed());
                }
                times.sort();
                let stats = identity.cache_stats();
                let (hits, misses) = stats
                    .iter()
                    .fold((0, 0), |(h, m), (_, s)| (h + s.hits + s.shared_hits, m + s.misses));
                let models = authorizer.models_compiled() - models_before;
                println!(
                    "{backend:<9} {name:<26} n={total:<5} p50 {:>8.1} µs  p99 {:>8.1} µs  mean {:>8.1} µs  identity lookups from the database {:>5} of {:>5} ({:>5.1}%)  models read {:>5}",
                    percentile(&times, 0.5),
                    percentile(&times, 0.99),
                    times.iter().sum::<Duration>().as_secs_f64() * 1e6 / total as f64,
                    misses,
                    hits + misses,
                    100.0 * misses as f64 / (hits + misses).max(1) as f64,
                    models,
                );
                api.app.shutdown().await.unwrap();
            }
            db.cleanup().await;
        }
    });
}
