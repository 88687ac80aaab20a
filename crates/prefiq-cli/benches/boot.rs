//! Boot benchmark: time from process start to the first 200 from `/readyz`, and resident
//! memory once ready, for `prefiq serve` on embedded SQLite.
//!
//! Run with `cargo bench -p prefiq-cli --bench boot` (release profile). `BOOT_BENCH_RUNS`
//! sets the runs per scenario (default 30). Scenarios: a first boot in an empty directory
//! (creates the database and runs migrations), a warm boot on an existing database, and, as
//! the baseline measured in the same run, `prefiq --version` (process start and exit only).
#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_prefiq");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ready(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200"
}

fn rss_kib(child: &Child) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One boot: (time to first 200 from /readyz, RSS when ready, RSS after 1 s idle).
fn boot_once(dir: &Path) -> (Duration, u64, u64) {
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["serve", "--port", &port.to_string()])
        .current_dir(dir)
        .env("PREFIQ__LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while !ready(port) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "prefiq serve did not become ready"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = started.elapsed();
    let rss_ready = rss_kib(&child);
    std::thread::sleep(Duration::from_secs(1));
    let rss_idle = rss_kib(&child);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "prefiq serve exited with {status}");
    (elapsed, rss_ready, rss_idle)
}

fn version_once() -> Duration {
    let started = Instant::now();
    let status = Command::new(BIN)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    started.elapsed()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(name: &str, mut ms: Vec<f64>, baseline_median: Option<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    let median = percentile(&ms, 0.5);
    let ratio = baseline_median
        .map(|b| format!("  {:.1}x baseline", median / b))
        .unwrap_or_default();
    println!(
        "{name:<28} median {median:>7.2} ms  p90 {:>7.2} ms  min {:>7.2} ms  max {:>7.2} ms{ratio}",
        percentile(&ms, 0.9),
        ms[0],
        ms[ms.len() - 1]
    );
    median
}

fn main() {
    let runs: usize = std::env::var("BOOT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .max(1);
    println!("prefiq boot benchmark: {runs} runs per scenario, binary {BIN}");

    let baseline: Vec<f64> = (0..runs)
        .map(|_| version_once().as_secs_f64() * 1000.0)
        .collect();
    let baseline = report("baseline: prefiq --version", baseline, None);

    let mut first = Vec::new();
    let mut warm = Vec::new();
    let mut rss_ready = Vec::new();
    let mut rss_idle = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let (t, _, _) = boot_once(dir.path());
        first.push(t.as_secs_f64() * 1000.0);
        let (t, ready_kib, idle_kib) = boot_once(dir.path());
        warm.push(t.as_secs_f64() * 1000.0);
        rss_ready.push(ready_kib as f64 / 1024.0);
        rss_idle.push(idle_kib as f64 / 1024.0);
    }
    report("first boot to /readyz 200", first, Some(baseline));
    report("warm boot to /readyz 200", warm, Some(baseline));
    rss_ready.sort_by(f64::total_cmp);
    rss_idle.sort_by(f64::total_cmp);
    println!(
        "{:<28} median {:>7.2} MiB at ready, {:>7.2} MiB after 1 s idle (max {:.2} MiB)",
        "resident memory (warm boot)",
        percentile(&rss_ready, 0.5),
        percentile(&rss_idle, 0.5),
        rss_idle[rss_idle.len() - 1]
    );
}
