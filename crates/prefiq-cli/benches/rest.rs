//! REST benchmark: throughput and latency of the resource API served by `prefiq serve` on
//! embedded SQLite, against a bare axum handler measured in the same run.
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
//!   tokio runtime (the same runtime shape as `prefiq serve`);
//! - `get_by_id`: `GET /api/v1/resources/todo/{id}` with a random seeded id per request;
//! - `list`: `GET /api/v1/resources/todo?limit=20&filters=[["status","=","Open"]]`;
//! - `create`: `POST /api/v1/resources/todo`.
//!
//! Every wrk script builds its request in a Lua `request()` function so the client-side cost
//! is the same in all scenarios. While a scenario runs, a probe sends one request of the same
//! shape every 100 ms and keeps the bodies of any non-2xx answers so failures can be shown.
#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

/// A minimal keep-alive HTTP/1.1 client: enough for the JSON API of `prefiq serve`.
struct Client {
    port: u16,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    fn new(port: u16) -> Self {
        Self { port, conn: None }
    }

    /// Sends one request and returns (status, body). Retries once on a fresh connection when
    /// a reused keep-alive connection turns out to be closed.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<(u16, String)> {
        let reused = self.conn.is_some();
        match self.try_send(method, path, body) {
            Ok(answer) => Ok(answer),
            Err(_) if reused => {
                self.conn = None;
                self.try_send(method, path, body)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    fn try_send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<(u16, String)> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(("127.0.0.1", self.port))?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            self.conn = Some(BufReader::new(stream));
        }
        let conn = self.conn.as_mut().unwrap();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Tenant: {TENANT}\r\nAccept: application/json\r\n",
            self.port
        );
        if let Some(token) = TOKEN.get() {
            write!(request, "Authorization: Bearer {token}\r\n").unwrap();
        }
        if let Some(body) = body {
            write!(
                request,
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        } else {
            request.push_str("\r\n");
        }
        conn.get_mut().write_all(request.as_bytes())?;

        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before the status line",
            ));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        loop {
            line.clear();
            if conn.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed in the headers",
                ));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                conn.read_line(&mut line)?;
                let size =
                    usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                        .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
                let mut chunk = vec![0; size + 2];
                conn.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(length) = length {
            body.resize(length, 0);
            conn.read_exact(&mut body)?;
        } else if method != "HEAD" && status != 204 && status != 304 {
            conn.read_to_end(&mut body)?;
            close = true;
        }
        if close {
            self.conn = None;
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

fn ready(port: u16) -> bool {
    matches!(Client::new(port).send("GET", "/readyz", None), Ok((200, _)))
}

fn start_prefiq(dir: &Path) -> (Child, u16) {
    let port = free_port();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--port", &port.to_string()])
        .current_dir(dir)
        .env("PREFIQ__LOG__LEVEL", "warn")
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

/// Lua prelude shared by the wrk scripts: numbers the threads and seeds `math.random`.
const LUA_PRELUDE: &str = r#"
local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
end
local function seed_random()
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
  for _ = 1, 10 do math.random() end
end
"#;

fn lua_constant(method: &str, path: &str) -> String {
    let auth = bearer();
    format!(
        r#"{LUA_PRELUDE}
local req
function init(args)
  seed_random()
  req = wrk.format("{method}", "{path}", {{ ["X-Tenant"] = "{TENANT}", ["Accept"] = "application/json", ["Authorization"] = "{auth}" }})
end
function request()
  return req
end
"#
    )
}

fn lua_get_by_id(ids_file: &Path) -> String {
    let auth = bearer();
    format!(
        r#"{LUA_PRELUDE}
local ids = {{}}
local headers = {{ ["X-Tenant"] = "{TENANT}", ["Accept"] = "application/json", ["Authorization"] = "{auth}" }}
function init(args)
  seed_random()
  for line in io.lines("{}") do
    if #line > 0 then ids[#ids + 1] = line end
  end
end
function request()
  return wrk.format("GET", "{RESOURCE}/" .. ids[math.random(#ids)], headers)
end
"#,
        ids_file.display()
    )
}

fn lua_create() -> String {
    let auth = bearer();
    format!(
        r#"{LUA_PRELUDE}
local n = 0
local statuses = {{ "Open", "Closed", "Cancelled" }}
local priorities = {{ "Low", "Medium", "High" }}
local headers = {{
  ["X-Tenant"] = "{TENANT}",
  ["Authorization"] = "{auth}",
  ["Accept"] = "application/json",
  ["Content-Type"] = "application/json",
}}
function init(args)
  seed_random()
end
function request()
  n = n + 1
  local body = string.format(
    '{{"description":"load %d-%d","status":"%s","priority":"%s","date":"2026-12-01","allocated_to":"load@example.com"}}',
    tid or 0, n, statuses[n % 3 + 1], priorities[math.floor(n / 3) % 3 + 1])
  return wrk.format("POST", "{RESOURCE}", headers, body)
end
"#
    )
}

/// Figures parsed from one wrk run.
#[derive(Default)]
struct WrkResult {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
    socket_errors: String,
}

fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(number * factor)
}

fn parse_wrk(output: &str) -> WrkResult {
    let mut result = WrkResult::default();
    for line in output.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            result.requests_per_sec = rest.trim().parse().unwrap_or(0.0);
        } else if let Some(rest) = line.strip_prefix("50%") {
            result.p50_ms = duration_ms(rest.trim()).unwrap_or(f64::NAN);
        } else if let Some(rest) = line.strip_prefix("99%") {
            result.p99_ms = duration_ms(rest.trim()).unwrap_or(f64::NAN);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            result.non_2xx = rest.trim().parse().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            result.socket_errors = rest.trim().to_owned();
        } else if line.contains(" requests in ") {
            result.requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    result
}

fn wrk(port: u16, script: &Path, path: &str, seconds: u64) -> (WrkResult, String) {
    let output = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "wrk failed:\n{text}");
    (parse_wrk(&text), text)
}

/// What the probe sends while a scenario runs.
#[derive(Clone, Copy)]
enum Probe {
    None,
    GetById,
    List,
    Create,
}

/// Sends one request of the scenario's shape every 100 ms until stopped; returns the number
/// of probes and up to five non-2xx answers (status and body).
fn probe(
    port: u16,
    kind: Probe,
    ids: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let mut client = Client::new(port);
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut sent = 0;
        let mut bad = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let answer = match kind {
                Probe::None => break,
                Probe::GetById => {
                    let id = &ids[(state % ids.len() as u64) as usize];
                    client.send("GET", &format!("{RESOURCE}/{id}"), None)
                }
                Probe::List => client.send("GET", &list_path(), None),
                Probe::Create => client.send("POST", RESOURCE, Some(&todo_body("probe", sent))),
            };
            sent += 1;
            match answer {
                Ok((status, _)) if (200..300).contains(&status) => {}
                Ok((status, body)) if bad.len() < 5 => bad.push(format!("HTTP {status}: {body}")),
                Err(e) if bad.len() < 5 => bad.push(format!("I/O error: {e}")),
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (sent, bad)
    })
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
    println!(
        "prefiq REST benchmark: {rows} seeded todos, wrk -t2 -c32 -d{seconds}s (+{warmup}s warm-up), binary {BIN}"
    );

    let dir = tempfile::tempdir().unwrap();
    // Every call is made as the bench tenant's administrator, with a bearer token.
    let created = Command::new(BIN)
        .args(["tenant", "create", TENANT, "--admin-email", ADMIN_EMAIL])
        .args(["--admin-password", ADMIN_PASSWORD])
        .current_dir(dir.path())
        .env("PREFIQ__LOG__LEVEL", "warn")
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "prefiq tenant create failed: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let (mut server, port) = start_prefiq(dir.path());
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

    let mut results = Vec::new();
    let mut problems = Vec::new();
    for scenario in &scenarios {
        if warmup > 0 {
            wrk(scenario.port, &scenario.script, &scenario.path, warmup);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let prober = probe(port, scenario.probe, Arc::clone(&ids), Arc::clone(&stop));
        let (result, text) = wrk(scenario.port, &scenario.script, &scenario.path, seconds);
        stop.store(true, Ordering::Relaxed);
        let (probes, bad) = prober.join().unwrap();
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

    let bare_rps = results[0].1.requests_per_sec;
    println!();
    println!(
        "{:<12} {:>12} {:>9} {:>9} {:>9} {:>9}",
        "scenario", "requests/s", "p50 ms", "p99 ms", "vs bare", "non-2xx"
    );
    for (name, r) in &results {
        println!(
            "{name:<12} {:>12.0} {:>9.3} {:>9.3} {:>8.1}% {:>9}",
            r.requests_per_sec,
            r.p50_ms,
            r.p99_ms,
            100.0 * r.requests_per_sec / bare_rps,
            r.non_2xx
        );
    }
    let find = |name: &str| &results.iter().find(|(n, _)| *n == name).unwrap().1;
    let get_ratio = find("get_by_id").requests_per_sec / bare_rps;
    let creates = find("create").requests_per_sec;
    let worst_p99 = results[1..]
        .iter()
        .map(|(name, r)| (*name, r.p99_ms))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!();
    println!("targets:");
    println!(
        "  GET by id >= 40% of bare        {:>8.1}%   {}",
        100.0 * get_ratio,
        verdict(get_ratio >= 0.4)
    );
    println!(
        "  creates >= 5000/s               {creates:>8.0}/s  {}",
        verdict(creates >= 5000.0)
    );
    println!(
        "  p99 < 10 ms (all API scenarios) {:>8.3} ms  {} (worst: {})",
        worst_p99.1,
        verdict(worst_p99.1 < 10.0),
        worst_p99.0
    );

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
    if seeded.failures > 0 {
        problems.push(format!(
            "seeding: {} requests did not return 201",
            seeded.failures
        ));
    }
    if !problems.is_empty() {
        println!("\n!!! BENCH FAILURES !!!");
        for p in &problems {
            println!("!!! {p}");
        }
        std::process::exit(1);
    }
}
