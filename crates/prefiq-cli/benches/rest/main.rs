//! REST benchmark: throughput and latency of the resource API served by `prefiq serve`, on
//! embedded SQLite or on PostgreSQL, against `GET /healthz` through the same server (the
//! whole middleware stack, no database) and a bare axum handler measured in the same run.
//!
//! Run with `cargo bench -p prefiq-cli --bench rest` (release profile). Needs `wrk` on the
//! `PATH` (Debian: `apt-get install wrk`); without it the bench prints a notice and exits 0.
//!
//! Steps: start `prefiq serve` in a fresh directory, seed `REST_BENCH_ROWS` todos (default
//! 100000) through the HTTP API from `REST_BENCH_SEED_THREADS` keep-alive connections
//! (default 8), then run `wrk -t2 -c32 -d<REST_BENCH_SECONDS>s --latency` (default 10 s, after
//! a `REST_BENCH_WARMUP` s warm-up, default 2) for each scenario:
//!
//! - `bare`: `GET /` on an axum server with one constant route, on its own multi-thread
//!   tokio runtime (the same runtime shape as `prefiq serve`); shown, not a target's base;
//! - `healthz`: `GET /healthz` through `prefiq serve`: every middleware layer, no
//!   database; the ratios of the API scenarios are taken against it;
//! - `get_by_id`: `GET /api/v1/resources/todo/{id}` with a random seeded id per request;
//! - `list`: `GET /api/v1/resources/todo?limit=20&filters=[["status","=","Open"]]`;
//! - `create`: `POST /api/v1/resources/todo`.
//!
//! `REST_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test` runs the same on
//! PostgreSQL: the bench creates the database `rest_bench_<pid>` on that server, seeds it
//! just before the run (it never runs `ANALYZE`: plans must hold on a freshly loaded
//! table), checks the PostgreSQL targets and drops the database at the end.
//!
//! Every wrk script builds its request in a Lua `request()` function so the client-side cost
//! is the same in all scenarios. While a scenario runs, a probe sends one request of the same
//! shape every 100 ms and keeps the bodies of any non-2xx answers so failures can be shown.
//! Non-2xx answers are counted twice: by wrk (which counts only statuses of 400 and more)
//! and by the server's own `http_requests_total` metric, read before and after each
//! scenario (every status outside 2xx). Any non-2xx answer, socket error or seeding failure
//! makes the run report failure and exit 1; a missed target is reported as `MISSED` (and
//! fails the run too with `REST_BENCH_STRICT=1`).
#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

mod client;
mod load;
mod postgres;

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use client::Client;
use load::{Probe, WrkResult, lua_constant, lua_create, lua_get_by_id, probe, wrk};

const BIN: &str = env!("CARGO_BIN_EXE_prefiq");
const TENANT: &str = "bench";
const ADMIN_EMAIL: &str = "admin@bench.test";
const ADMIN_PASSWORD: &str = "bench-password";

/// The bench tenant administrator's access token, once logged in.
static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// `Authorization: Bearer ...` for every request once logged in.
fn bearer() -> String {
    TOKEN
        .get()
        .map_or_else(String::new, |t| format!("Bearer {t}"))
}
const RESOURCE: &str = "/api/v1/resources/todo";
const STATUSES: [&str; 3] = ["Open", "Closed", "Cancelled"];
const PRIORITIES: [&str; 3] = ["Low", "Medium", "High"];
/// `[["status","=","Open"]]`, percent-encoded.
const OPEN_FILTER: &str = "%5B%5B%22status%22%2C%22%3D%22%2C%22Open%22%5D%5D";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn list_path() -> String {
    format!("{RESOURCE}?limit=20&filters={OPEN_FILTER}")
}

fn todo_body(label: &str, i: usize) -> String {
    format!(
        r#"{{"description":"{label} {i}","status":"{}","priority":"{}","date":"2026-{:02}-{:02}","allocated_to":"user{}@example.com"}}"#,
        STATUSES[i % 3],
        PRIORITIES[(i / 3) % 3],
        i % 12 + 1,
        i % 28 + 1,
        i % 50
    )
}

fn ready(port: u16) -> bool {
    matches!(Client::new(port).send("GET", "/readyz", None), Ok((200, _)))
}

/// The environment both `prefiq tenant create` and `prefiq serve` get: the database, when
/// it is not the default SQLite file.
fn database_env<'c>(command: &'c mut Command, database_url: Option<&str>) -> &'c mut Command {
    command.env("PREFIQ__LOG__LEVEL", "warn");
    if let Some(url) = database_url {
        command.env("PREFIQ__DATABASE__URL", url);
    }
    command
}

fn start_prefiq(dir: &Path, database_url: Option<&str>) -> (Child, u16) {
    let port = free_port();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let child = database_env(&mut Command::new(BIN), database_url)
        .args(["serve", "--port", &port.to_string()])
        .current_dir(dir)
        .env("PREFIQ__CORTEX__ACCESS_TOKEN_TTL_S", "7200")
        // One user drives the whole load: the per-user rate limit is off for the bench.
        .env("PREFIQ__SERVER__RATE_LIMIT_PER_MINUTE", "0")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !ready(port) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "prefiq serve did not become ready; see {}",
            dir.join("server.log").display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (child, port)
}

/// Starts a bare axum server with one constant route on its own multi-thread runtime.
fn start_bare() -> (
    u16,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });
    let started = Instant::now();
    while !matches!(Client::new(port).send("GET", "/", None), Ok((200, _))) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "bare server did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (port, stop, handle)
}

struct Seeded {
    ids: Vec<String>,
    failures: usize,
    samples: Vec<String>,
    elapsed: Duration,
}

/// Creates `rows` todos through the API from `threads` keep-alive connections.
fn seed(port: u16, rows: usize, threads: usize) -> Seeded {
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut client = Client::new(port);
                let mut ids = Vec::with_capacity(rows / threads + 1);
                let mut failures = 0;
                let mut samples = Vec::new();
                for i in (t..rows).step_by(threads) {
                    let body = todo_body("task", i);
                    match client.send("POST", RESOURCE, Some(&body)) {
                        Ok((201, answer)) => {
                            let record: serde_json::Value = serde_json::from_str(&answer).unwrap();
                            ids.push(record["id"].as_str().unwrap().to_owned());
                        }
                        Ok((status, answer)) => {
                            failures += 1;
                            if samples.len() < 3 {
                                samples.push(format!("HTTP {status}: {answer}"));
                            }
                        }
                        Err(e) => {
                            failures += 1;
                            if samples.len() < 3 {
                                samples.push(format!("I/O error: {e}"));
                            }
                        }
                    }
                }
                (ids, failures, samples)
            })
        })
        .collect();
    let mut seeded = Seeded {
        ids: Vec::with_capacity(rows),
        failures: 0,
        samples: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for worker in workers {
        let (ids, failures, samples) = worker.join().unwrap();
        seeded.ids.extend(ids);
        seeded.failures += failures;
        seeded.samples.extend(samples);
    }
    seeded.elapsed = started.elapsed();
    seeded
}

struct Scenario {
    name: &'static str,
    port: u16,
    path: String,
    script: PathBuf,
    probe: Probe,
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Answers by status the server counted so far (`http_requests_total` summed over method
/// and route), from its `/metrics`.
fn server_statuses(port: u16) -> std::collections::BTreeMap<u16, u64> {
    let mut counts = std::collections::BTreeMap::new();
    let Ok((200, text)) = Client::new(port).send("GET", "/metrics", None) else {
        return counts;
    };
    for line in text.lines() {
        let Some(labels) = line.strip_prefix("http_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = labels.rsplit_once("} ") else {
            continue;
        };
        let status = labels
            .split("status=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|s| s.parse::<u16>().ok());
        if let (Some(status), Ok(value)) = (status, value.trim().parse::<f64>()) {
            *counts.entry(status).or_insert(0) += value as u64;
        }
    }
    counts
}

/// The non-2xx answers counted between two scrapes, as `(total, "404×3, 500×1")`.
fn non_2xx_between(
    before: &std::collections::BTreeMap<u16, u64>,
    after: &std::collections::BTreeMap<u16, u64>,
) -> (u64, String) {
    let mut total = 0;
    let mut shown = String::new();
    for (status, count) in after {
        let n = count.saturating_sub(before.get(status).copied().unwrap_or(0));
        if n > 0 && !(200..300).contains(status) {
            total += n;
            if !shown.is_empty() {
                shown.push_str(", ");
            }
            write!(shown, "{status}×{n}").unwrap();
        }
    }
    (total, shown)
}

/// One line of the targets table; returns whether it was met.
fn target(label: &str, shown: String, ok: bool) -> bool {
    println!(
        "  {label:<34} {shown:>12}   {}",
        if ok { "ok" } else { "MISSED" }
    );
    ok
}

fn main() {
    if Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        println!("prefiq REST benchmark skipped: wrk not installed (Debian: apt-get install wrk)");
        return;
    }
    let rows: usize = env_or("REST_BENCH_ROWS", 100_000).max(1);
    let seconds: u64 = env_or("REST_BENCH_SECONDS", 10).max(1);
    let warmup: u64 = env_or("REST_BENCH_WARMUP", 2);
    let seed_threads: usize = env_or("REST_BENCH_SEED_THREADS", 8).max(1);
    let database = std::env::var("REST_BENCH_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| postgres::BenchDatabase::create(&u));
    let database_url = database.as_ref().map(|d| d.url.as_str());
    let backend = match &database {
        Some(d) => format!("PostgreSQL (database {})", d.name()),
        None => "embedded SQLite".to_owned(),
    };
    println!(
        "prefiq REST benchmark on {backend}: {rows} seeded todos, wrk -t2 -c32 -d{seconds}s (+{warmup}s warm-up), binary {BIN}"
    );

    let dir = tempfile::tempdir().unwrap();
    // Every call is made as the bench tenant's administrator, with a bearer token.
    let created = database_env(&mut Command::new(BIN), database_url)
        .args(["tenant", "create", TENANT, "--admin-email", ADMIN_EMAIL])
        .args(["--admin-password", ADMIN_PASSWORD])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "prefiq tenant create failed: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let (mut server, port) = start_prefiq(dir.path(), database_url);
    let login = format!(r#"{{"email":"{ADMIN_EMAIL}","password":"{ADMIN_PASSWORD}"}}"#);
    let (status, session) = Client::new(port)
        .send("POST", "/api/v1/auth/login", Some(&login))
        .unwrap();
    assert_eq!(status, 200, "login failed: {session}");
    let session: serde_json::Value = serde_json::from_str(&session).unwrap();
    TOKEN
        .set(session["access_token"].as_str().unwrap().to_owned())
        .unwrap();
    let log_path = dir.path().join("server.log");

    let seeded = seed(port, rows, seed_threads);
    let seed_rate = seeded.ids.len() as f64 / seeded.elapsed.as_secs_f64();
    println!(
        "seeding: {} todos created in {:.2} s = {seed_rate:.0} creates/s ({seed_threads} keep-alive connections), {} failures",
        seeded.ids.len(),
        seeded.elapsed.as_secs_f64(),
        seeded.failures
    );
    if seeded.failures > 0 {
        println!(
            "!!! SEEDING FAILURES: {} requests did not return 201",
            seeded.failures
        );
        for sample in &seeded.samples {
            println!("!!!   {sample}");
        }
    }
    assert!(!seeded.ids.is_empty(), "seeding created no todos");
    let ids_file = dir.path().join("ids.txt");
    std::fs::write(&ids_file, seeded.ids.join("\n") + "\n").unwrap();
    let ids = Arc::new(seeded.ids);

    let (bare_port, bare_stop, bare_thread) = start_bare();

    let write_script = |name: &str, text: String| {
        let path = dir.path().join(format!("{name}.lua"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let scenarios = [
        Scenario {
            name: "bare",
            port: bare_port,
            path: "/".into(),
            script: write_script("bare", lua_constant("GET", "/")),
            probe: Probe::None,
        },
        Scenario {
            name: "healthz",
            port,
            path: "/healthz".into(),
            script: write_script("healthz", lua_constant("GET", "/healthz")),
            probe: Probe::Healthz,
        },
        Scenario {
            name: "get_by_id",
            port,
            path: RESOURCE.into(),
            script: write_script("get_by_id", lua_get_by_id(&ids_file)),
            probe: Probe::GetById,
        },
        Scenario {
            name: "list",
            port,
            path: list_path(),
            script: write_script("list", lua_constant("GET", &list_path())),
            probe: Probe::List,
        },
        Scenario {
            name: "create",
            port,
            path: RESOURCE.into(),
            script: write_script("create", lua_create()),
            probe: Probe::Create,
        },
    ];

    let mut results: Vec<(&str, WrkResult)> = Vec::new();
    let mut problems = Vec::new();
    for scenario in &scenarios {
        if warmup > 0 {
            let (warm, _) = wrk(scenario.port, &scenario.script, &scenario.path, warmup);
            if warm.non_2xx > 0 {
                problems.push(format!(
                    "{} warm-up: {} non-2xx answers",
                    scenario.name, warm.non_2xx
                ));
            }
        }
        let served = scenario.port == port;
        let before = if served {
            server_statuses(port)
        } else {
            Default::default()
        };
        let stop = Arc::new(AtomicBool::new(false));
        let prober = probe(port, scenario.probe, Arc::clone(&ids), Arc::clone(&stop));
        let (mut result, text) = wrk(scenario.port, &scenario.script, &scenario.path, seconds);
        stop.store(true, Ordering::Relaxed);
        let (probes, bad) = prober.join().unwrap();
        let (counted, by_status) = if served {
            non_2xx_between(&before, &server_statuses(port))
        } else {
            (0, String::new())
        };
        // The server's count includes the probe's requests and every non-2xx status; wrk's
        // only statuses of 400 and more. The larger is shown.
        result.non_2xx = result.non_2xx.max(counted);
        if result.requests_per_sec <= 0.0 || result.p50_ms.is_nan() || result.p99_ms.is_nan() {
            problems.push(format!(
                "{}: could not parse wrk output:\n{text}",
                scenario.name
            ));
        }
        if result.non_2xx > 0 || !result.socket_errors.is_empty() || !bad.is_empty() {
            let mut note = format!(
                "{}: {} non-2xx of {} requests",
                scenario.name, result.non_2xx, result.requests
            );
            if !by_status.is_empty() {
                write!(note, " (server counted {by_status})").unwrap();
            }
            if !result.socket_errors.is_empty() {
                write!(note, "; socket errors: {}", result.socket_errors).unwrap();
            }
            write!(note, "; probe saw {} non-2xx of {probes}", bad.len()).unwrap();
            for b in &bad {
                write!(note, "\n      {b}").unwrap();
            }
            problems.push(note);
        }
        results.push((scenario.name, result));
    }
    let _ = bare_stop.send(());
    bare_thread.join().unwrap();

    let find = |name: &str| &results.iter().find(|(n, _)| *n == name).unwrap().1;
    let bare_rps = find("bare").requests_per_sec;
    let healthz_rps = find("healthz").requests_per_sec;
    println!();
    println!(
        "{:<12} {:>12} {:>9} {:>9} {:>11} {:>9} {:>9}",
        "scenario", "requests/s", "p50 ms", "p99 ms", "vs healthz", "vs bare", "non-2xx"
    );
    for (name, r) in &results {
        println!(
            "{name:<12} {:>12.0} {:>9.3} {:>9.3} {:>10.1}% {:>8.1}% {:>9}",
            r.requests_per_sec,
            r.p50_ms,
            r.p99_ms,
            100.0 * r.requests_per_sec / healthz_rps,
            100.0 * r.requests_per_sec / bare_rps,
            r.non_2xx
        );
    }
    let (get, list, create) = (find("get_by_id"), find("list"), find("create"));
    let worst_p99 = [("get_by_id", get), ("list", list), ("create", create)]
        .into_iter()
        .map(|(name, r)| (name, r.p99_ms))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let p99_shown = format!("{:.3} ms", worst_p99.1);
    let mut met = true;
    println!();
    println!("targets ({backend}; p99 worst: {}):", worst_p99.0);
    if database.is_some() {
        met &= target(
            "creates >= 5000/s (one tenant)",
            format!("{:.0}/s", create.requests_per_sec),
            create.requests_per_sec >= 5000.0,
        );
        met &= target(
            "filtered list >= 4000/s",
            format!("{:.0}/s", list.requests_per_sec),
            list.requests_per_sec >= 4000.0,
        );
        met &= target(
            "p99 < 15 ms (get, list, create)",
            p99_shown,
            worst_p99.1 < 15.0,
        );
    } else {
        let ratio = |r: &WrkResult| r.requests_per_sec / healthz_rps;
        met &= target(
            "GET by id >= 35% of healthz",
            format!("{:.1}%", 100.0 * ratio(get)),
            ratio(get) >= 0.35,
        );
        met &= target(
            "filtered list >= 20% of healthz",
            format!("{:.1}%", 100.0 * ratio(list)),
            ratio(list) >= 0.20,
        );
        met &= target(
            "creates >= 15000/s",
            format!("{:.0}/s", create.requests_per_sec),
            create.requests_per_sec >= 15_000.0,
        );
        met &= target(
            "p99 < 10 ms (get, list, create)",
            p99_shown,
            worst_p99.1 < 10.0,
        );
    }

    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break Some(status);
        }
        if stopping.elapsed() > Duration::from_secs(30) {
            let _ = server.kill();
            let _ = server.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    match status {
        Some(status) if status.success() => {
            println!(
                "server: stopped by SIGTERM in {:.0} ms, exit 0",
                stopping.elapsed().as_secs_f64() * 1000.0
            );
        }
        Some(status) => problems.push(format!("server exited with {status} after SIGTERM")),
        None => problems.push("server did not exit within 30 s of SIGTERM (killed)".into()),
    }
    let log = tail(&log_path, 20);
    if !log.trim().is_empty() {
        println!("\nlast lines of the server log (warn and above):\n{log}");
    }
    drop(database);
    if seeded.failures > 0 {
        problems.push(format!(
            "seeding: {} requests did not return 201",
            seeded.failures
        ));
    }
    if !met && env_or("REST_BENCH_STRICT", 0u8) == 1 {
        problems.push("a target was missed (see targets above; REST_BENCH_STRICT=1)".into());
    }
    if !problems.is_empty() {
        println!("\n!!! BENCH FAILURES !!!");
        for p in &problems {
            println!("!!! {p}");
        }
        std::process::exit(1);
    }
}
