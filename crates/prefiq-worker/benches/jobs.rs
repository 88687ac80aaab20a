//! The job queue measured: `cargo bench -p prefiq-worker --bench jobs` (or
//! `scripts/jobs-bench.sh`, which runs graphile-worker on the same PostgreSQL as the
//! baseline). One JSON object per measurement on stdout, progress on stderr.
//!
//! On SQLite (a temporary file) always, and on PostgreSQL when `JOBS_BENCH_DATABASE_URL`
//! (a database used as it is: it must hold no jobs) or `PREFIQ_TEST_POSTGRES_URL` (a
//! server: a throw-away database is made on it and dropped after) is set:
//!
//! - `throughput`: `JOBS_BENCH_JOBS` no-op jobs (default 100,000) enqueued in batches of
//!   1,000 through `Jobs::enqueue` (the enqueue rate), then run by one runner (queue
//!   `default`, concurrency `JOBS_BENCH_CONCURRENCY`, default 10 as in graphile-worker's
//!   perf test) until the database says every one succeeded: jobs/s run to completion.
//!   A job that failed, died or ran twice fails the measurement.
//! - `latency`: with a runner running, one job enqueued per tick at `JOBS_BENCH_RATE`
//!   jobs/s (default 1,000) for `JOBS_BENCH_LATENCY_SECS` s (default 5); each carries its
//!   enqueue time, and the handler records start − enqueue: p50, p99 and max in ms.
//! - `latency_serial`: `JOBS_BENCH_SERIAL` jobs (default 1,000) one at a time, as
//!   graphile-worker's `perfTest/latencyTest.js`: enqueue one, wait until it started.
//!
//! The three run in that order in one database, so the latencies are those right after a
//! burst: `throughput`'s succeeded jobs are still there (as the retention keeps them), and
//! so are the dead index entries its state changes left until autovacuum comes by.
//!
//! Other knobs: `JOBS_BENCH_CLAIM_BATCH` (200), `JOBS_BENCH_POLL_MS` (10),
//! `JOBS_BENCH_POOL` (the pool's connections, 8 as `database.max_connections` defaults),
//! `JOBS_BENCH_BACKENDS` (`sqlite,postgres`), `JOBS_BENCH_TIMEOUT_S` (600, per phase).
//! Exits non-zero when a measurement failed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prefiq::{BootMode, EntitySource, EntitySources, MigrationRunner, ModuleMigrations};
use prefiq_data::entity::repo::Repository;
use prefiq_data::entity::sql::{Sql, SqlType};
use prefiq_data::jobs::{self, NewJob};
use prefiq_data::testing::TestDatabase;
use prefiq_data::{DatabaseHandle, DatabaseUrl};
use prefiq_worker::runner::Runner;
use prefiq_worker::{Databases, JobHandler, JobHandlers, JobInput, Jobs, JobsConfig, QueueConfig};
use serde_json::{Value, json};

const NOTE: &str = "name: note\nfields:\n  - {name: body, type: data}\n";
const KIND: &str = "bench.noop";

fn setting<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn now_us() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros(),
    )
    .unwrap_or(u64::MAX)
}

/// A no-op handler that counts its runs and, for jobs that carry their enqueue time
/// (`t`, unix µs), records how long they waited to start.
#[derive(Default)]
struct Probe {
    ran: AtomicU64,
    waits_us: Mutex<Vec<u64>>,
    started: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl JobHandler for Probe {
    fn kind(&self) -> &str {
        KIND
    }

    async fn run(&self, job: &JobInput) -> Result<(), String> {
        if let Some(t) = job.payload.get("t").and_then(Value::as_u64) {
            let wait = now_us().saturating_sub(t);
            self.waits_us.lock().unwrap().push(wait);
        }
        self.ran.fetch_add(1, Ordering::Relaxed);
        self.started.notify_one();
        Ok(())
    }
}

/// What the measurements share.
struct Settings {
    jobs: usize,
    concurrency: usize,
    claim_batch: i64,
    poll_ms: u64,
    pool: u32,
    rate: u64,
    latency_secs: u64,
    serial: u64,
    timeout: Duration,
}

impl Settings {
    fn config(&self) -> JobsConfig {
        JobsConfig {
            queues: BTreeMap::from([(
                "default".to_owned(),
                QueueConfig {
                    concurrency: self.concurrency,
                },
            )]),
            claim_batch: self.claim_batch,
            poll_ms: self.poll_ms,
            ..JobsConfig::default()
        }
    }
}

/// A repository over `url` with a pool of `pool` connections and the platform's tables
/// migrated (as `prefiq_data::testing::repository`, whose pool has 4).
async fn repository(url: &str, pool: u32) -> Repository {
    let config = prefiq::config::DatabaseConfig {
        url: url.to_owned(),
        max_connections: pool,
        busy_timeout_ms: 5_000,
        acquire_timeout_ms: 30_000,
        tenancy: prefiq::config::Tenancy::Shared,
        max_open_tenants: 4,
        tenant_max_connections: 2,
    };
    let handle = Arc::new(DatabaseHandle::new(
        DatabaseUrl::parse(url, Path::new("/")).expect("a database URL"),
    ));
    handle.set(
        prefiq_data::Database::connect(&config, Path::new("/"), BootMode::Command)
            .await
            .expect("the database opens")
            .expect("a database outside a dry run"),
    );
    let entities = Arc::new(prefiq_data::entity::Entities::default());
    let sources = EntitySources(vec![(
        "m".into(),
        EntitySource {
            file: "note.yaml",
            yaml: NOTE,
        },
    )]);
    entities.set(prefiq_data::entity::EntityRegistry::load(&sources).expect("the schema loads"));
    let runner = prefiq_data::SqlMigrationRunner::new(handle.clone(), entities.clone());
    let modules = vec![ModuleMigrations {
        module: "m".into(),
        version: "1.0.0".parse().expect("a version"),
        migrations: vec![],
    }];
    let plan = runner.plan(&modules).await.expect("a migration plan");
    runner
        .apply(&plan, &modules)
        .await
        .expect("the migrations apply");
    Repository::new(handle, entities, vec![], None)
}

/// Jobs per state over the whole table.
async fn states(repo: &Repository) -> BTreeMap<String, i64> {
    let handle = repo.main_database();
    let mut reader = handle.get().unwrap().reader().await.unwrap();
    let mut out = BTreeMap::new();
    for stats in jobs::queue_stats(&mut reader.conn()).await.unwrap() {
        for (state, count) in stats.states {
            *out.entry(state).or_default() += count;
        }
    }
    out
}

/// PostgreSQL's committed transactions in this database so far (`None` on SQLite). The
/// server's statistics lag: call it after the connections were idle for over a second.
async fn pg_commits(repo: &Repository) -> Option<i64> {
    let handle = repo.main_database();
    let database = handle.get().ok()?;
    if database.backend() != prefiq::Backend::Postgres {
        return None;
    }
    let mut reader = database.reader().await.ok()?;
    let sql = Sql::new(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        Vec::new(),
    );
    reader
        .conn()
        .fetch_optional(&sql, &[SqlType::Int])
        .await
        .ok()
        .flatten()
        .and_then(|row| row.first().and_then(|c| c.as_int()))
}

/// A runner over `repo` running `probe`'s jobs, and how to stop it.
fn start_runner(
    repo: &Repository,
    jobs: &Jobs,
    probe: &Arc<Probe>,
    settings: &Settings,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let handlers = Arc::new(JobHandlers::new(vec![probe.clone()]));
    let runner = Runner::new(
        Databases::of(repo),
        handlers,
        settings.config(),
        None,
        Duration::from_secs(5),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(runner.run(repo.commits(), jobs.enqueued(), stopped));
    (stop, task)
}

/// Waits until `probe` ran `count` jobs, or the deadline passes; whether it did.
async fn ran(probe: &Probe, count: u64, deadline: Instant) -> bool {
    while probe.ran.load(Ordering::Relaxed) < count {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

/// Waits until `succeeded` jobs are recorded as such and none is left to run, or the
/// deadline passes; the states last seen.
async fn settled(repo: &Repository, succeeded: i64, deadline: Instant) -> BTreeMap<String, i64> {
    loop {
        let states = states(repo).await;
        let pending: i64 = ["queued", "running", "scheduled"]
            .iter()
            .filter_map(|s| states.get(*s))
            .sum();
        let done = states.get("succeeded").copied().unwrap_or(0);
        if (done >= succeeded && pending == 0) || Instant::now() >= deadline {
            return states;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn noop(tenant: &str, payload: Value) -> NewJob {
    NewJob::new(KIND, tenant, payload)
}

/// Whether `states` is exactly `succeeded` succeeded jobs and nothing else.
fn clean(states: &BTreeMap<String, i64>, succeeded: i64) -> bool {
    states.get("succeeded").copied().unwrap_or(0) == succeeded
        && states
            .iter()
            .all(|(state, count)| state == "succeeded" || *count == 0)
}

async fn throughput(backend: &str, repo: &Repository, settings: &Settings) -> Value {
    let n = settings.jobs;
    let jobs = Jobs::new(Databases::of(repo));
    let before = states(repo).await;
    if before.values().any(|c| *c > 0) {
        return json!({"measurement": "throughput", "backend": backend, "ok": false,
            "error": format!("the database already holds jobs: {before:?}")});
    }
    let commits_before = pg_commits(repo).await;

    eprintln!("[{backend}] enqueueing {n} jobs in batches of 1,000");
    let started = Instant::now();
    let mut enqueued = 0usize;
    while enqueued < n {
        let batch = (n - enqueued).min(1_000);
        let batch: Vec<NewJob> = (enqueued..enqueued + batch)
            .map(|i| noop("bench", json!({"i": i})))
            .collect();
        let ids = match jobs.enqueue(batch).await {
            Ok(ids) => ids,
            Err(e) => {
                return json!({"measurement": "throughput", "backend": backend, "ok": false,
                    "error": format!("enqueue failed after {enqueued} jobs: {e}")});
            }
        };
        enqueued += ids.iter().filter(|id| id.is_some()).count();
        if ids.iter().any(Option::is_none) {
            return json!({"measurement": "throughput", "backend": backend, "ok": false,
                "error": "an enqueue dropped a job"});
        }
    }
    let enqueue_s = started.elapsed().as_secs_f64();

    eprintln!("[{backend}] running them");
    let probe = Arc::new(Probe::default());
    let deadline = Instant::now() + settings.timeout;
    let started = Instant::now();
    let (stop, task) = start_runner(repo, &jobs, &probe, settings);
    let all_ran = ran(&probe, n as u64, deadline).await;
    let ran_s = started.elapsed().as_secs_f64();
    let states = settled(repo, n as i64, deadline).await;
    let run_s = started.elapsed().as_secs_f64();
    stop.send(true).unwrap();
    task.await.unwrap();
    // Let the pool's connections report their statistics (PostgreSQL 15+: after 1 s idle).
    let commits = if commits_before.is_some() {
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        pg_commits(repo)
            .await
            .zip(commits_before)
            .map(|(a, b)| a - b)
    } else {
        None
    };
    let runs = probe.ran.load(Ordering::Relaxed);
    let ok = all_ran && runs == n as u64 && clean(&states, n as i64);
    json!({
        "measurement": "throughput",
        "backend": backend,
        "ok": ok,
        "jobs": n,
        "concurrency": settings.concurrency,
        "claim_batch": settings.claim_batch,
        "poll_ms": settings.poll_ms,
        "pool": settings.pool,
        "enqueue_s": round(enqueue_s),
        "enqueue_jobs_per_s": round(n as f64 / enqueue_s),
        "handlers_done_s": round(ran_s),
        "run_s": round(run_s),
        "jobs_per_s": round(n as f64 / run_s),
        "handler_runs": runs,
        "states": states,
        "pg_transactions": commits,
        "pg_transactions_per_job": commits.map(|c| round(c as f64 / n as f64)),
    })
}

async fn latency(backend: &str, repo: &Repository, settings: &Settings) -> Value {
    let jobs = Arc::new(Jobs::new(Databases::of(repo)));
    let probe = Arc::new(Probe::default());
    let before = states(repo).await.get("succeeded").copied().unwrap_or(0);
    let (stop, task) = start_runner(repo, &jobs, &probe, settings);

    // Warm up: connections open, statements prepared.
    let warm = 100;
    jobs.enqueue(
        (0..warm)
            .map(|i| noop("bench", json!({"warm": i})))
            .collect(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + settings.timeout;
    ran(&probe, warm, deadline).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    probe.waits_us.lock().unwrap().clear();
    let ran_before = probe.ran.load(Ordering::Relaxed);

    let total = settings.rate * settings.latency_secs;
    eprintln!(
        "[{backend}] {total} single-job enqueues at {} jobs/s",
        settings.rate
    );
    let mut ticks =
        tokio::time::interval(Duration::from_nanos(1_000_000_000 / settings.rate.max(1)));
    let mut enqueues = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..total {
        ticks.tick().await;
        let jobs = jobs.clone();
        enqueues.spawn(async move {
            jobs.enqueue(vec![noop("bench", json!({"i": i, "t": now_us()}))])
                .await
                .map(|_| ())
        });
    }
    let offered_s = started.elapsed().as_secs_f64();
    let mut errors = Vec::new();
    while let Some(done) = enqueues.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let enqueued_s = started.elapsed().as_secs_f64();
    let expected = total - errors.len() as u64;
    let deadline = Instant::now() + settings.timeout;
    let all_ran = ran(&probe, ran_before + expected, deadline).await;
    let states = settled(repo, before + warm as i64 + expected as i64, deadline).await;
    stop.send(true).unwrap();
    task.await.unwrap();

    let waits = probe.waits_us.lock().unwrap().clone();
    let ok = all_ran
        && errors.is_empty()
        && waits.len() as u64 == expected
        && clean(&states, before + warm as i64 + expected as i64);
    let mut out = json!({
        "measurement": "latency",
        "backend": backend,
        "ok": ok,
        "offered_jobs_per_s": settings.rate,
        "achieved_enqueue_jobs_per_s": round(total as f64 / offered_s),
        "enqueues_done_s": round(enqueued_s),
        "enqueue_errors": errors.len(),
        "first_error": errors.first(),
        "concurrency": settings.concurrency,
        "poll_ms": settings.poll_ms,
        "states": states,
    });
    summarize(&mut out, waits);
    out
}

/// Adds `ran` and the percentiles of `waits_us` (in ms) to `out`.
fn summarize(out: &mut Value, mut waits_us: Vec<u64>) {
    waits_us.sort_unstable();
    let pick = |q: f64| -> Value {
        if waits_us.is_empty() {
            return Value::Null;
        }
        let at = ((waits_us.len() as f64 * q).ceil() as usize).clamp(1, waits_us.len()) - 1;
        json!(round(waits_us[at] as f64 / 1_000.0))
    };
    let mean = (!waits_us.is_empty())
        .then(|| round(waits_us.iter().sum::<u64>() as f64 / waits_us.len() as f64 / 1_000.0));
    if let Some(out) = out.as_object_mut() {
        out.insert("ran".into(), json!(waits_us.len()));
        out.insert("p50_ms".into(), pick(0.50));
        out.insert("p90_ms".into(), pick(0.90));
        out.insert("p99_ms".into(), pick(0.99));
        out.insert("max_ms".into(), pick(1.0));
        out.insert("mean_ms".into(), json!(mean));
    }
}

/// One job at a time, as graphile-worker's `perfTest/latencyTest.js`: enqueue, wait until
/// its handler started, repeat. What a lone job waits, with no backlog of enqueues.
async fn latency_serial(backend: &str, repo: &Repository, settings: &Settings) -> Value {
    let jobs = Jobs::new(Databases::of(repo));
    let probe = Arc::new(Probe::default());
    let before = states(repo).await.get("succeeded").copied().unwrap_or(0);
    let (stop, task) = start_runner(repo, &jobs, &probe, settings);
    let warm = 100;
    jobs.enqueue(
        (0..warm)
            .map(|i| noop("bench", json!({"warm": i})))
            .collect(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + settings.timeout;
    ran(&probe, warm, deadline).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ran_before = probe.ran.load(Ordering::Relaxed);
    eprintln!("[{backend}] {} jobs one at a time", settings.serial);
    let mut error = None;
    let mut enqueue_us = Vec::new();
    for i in 0..settings.serial {
        let t = now_us();
        if let Err(e) = jobs
            .enqueue(vec![noop("bench", json!({"i": i, "t": t}))])
            .await
        {
            error = Some(e.to_string());
            break;
        }
        enqueue_us.push(now_us().saturating_sub(t));
        while probe.ran.load(Ordering::Relaxed) < ran_before + i + 1 {
            let wait = tokio::time::timeout_at(
                tokio::time::Instant::from_std(deadline),
                probe.started.notified(),
            );
            if wait.await.is_err() {
                break;
            }
        }
        if Instant::now() >= deadline {
            error = Some("timed out".into());
            break;
        }
    }
    let states = settled(
        repo,
        before + warm as i64 + settings.serial as i64,
        deadline,
    )
    .await;
    stop.send(true).unwrap();
    task.await.unwrap();
    let waits = probe.waits_us.lock().unwrap().clone();
    enqueue_us.sort_unstable();
    let ok = error.is_none()
        && waits.len() as u64 == settings.serial
        && clean(&states, before + warm as i64 + settings.serial as i64);
    let mut out = json!({
        "measurement": "latency_serial",
        "backend": backend,
        "ok": ok,
        "error": error,
        "enqueue_p50_ms": enqueue_us.get(enqueue_us.len() / 2).map(|us| round(*us as f64 / 1_000.0)),
        "concurrency": settings.concurrency,
        "poll_ms": settings.poll_ms,
        "states": states,
    });
    summarize(&mut out, waits);
    out
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

async fn measure(backend: &str, url: &str, settings: &Settings) -> bool {
    let repo = repository(url, settings.pool).await;
    let mut ok = true;
    for result in [
        throughput(backend, &repo, settings).await,
        latency(backend, &repo, settings).await,
        latency_serial(backend, &repo, settings).await,
    ] {
        ok &= result["ok"] == true;
        let mut line = json!({"bench": "jobs"});
        if let (Some(line), Some(fields)) = (line.as_object_mut(), result.as_object()) {
            line.extend(fields.clone());
        }
        println!("{line}");
    }
    if let Ok(handle) = repo.main_database().get() {
        handle.close().await;
    }
    ok
}

async fn run() -> bool {
    let settings = Settings {
        jobs: setting("JOBS_BENCH_JOBS", 100_000),
        concurrency: setting("JOBS_BENCH_CONCURRENCY", 10),
        claim_batch: setting("JOBS_BENCH_CLAIM_BATCH", 200),
        poll_ms: setting("JOBS_BENCH_POLL_MS", 10),
        pool: setting("JOBS_BENCH_POOL", 8),
        rate: setting("JOBS_BENCH_RATE", 1_000),
        latency_secs: setting("JOBS_BENCH_LATENCY_SECS", 5),
        serial: setting("JOBS_BENCH_SERIAL", 1_000),
        timeout: Duration::from_secs(setting("JOBS_BENCH_TIMEOUT_S", 600)),
    };
    let backends: String = setting("JOBS_BENCH_BACKENDS", "sqlite,postgres".to_owned());
    let mut ok = true;
    if backends.split(',').any(|b| b.trim() == "sqlite") {
        let db = TestDatabase::sqlite().expect("a temporary directory");
        ok &= measure("sqlite", &db.url, &settings).await;
    }
    if backends.split(',').any(|b| b.trim() == "postgres") {
        if let Ok(url) = std::env::var("JOBS_BENCH_DATABASE_URL") {
            ok &= measure("postgres", &url, &settings).await;
        } else if let Some(db) = TestDatabase::postgres("jobs bench").await {
            ok &= measure("postgres", &db.url, &settings).await;
            db.cleanup().await;
        } else {
            eprintln!(
                "PostgreSQL skipped: set JOBS_BENCH_DATABASE_URL or PREFIQ_TEST_POSTGRES_URL"
            );
        }
    }
    ok
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let ok = runtime.block_on(run());
    if !ok {
        eprintln!("jobs bench: a measurement failed (see \"ok\": false above)");
        std::process::exit(1);
    }
}
