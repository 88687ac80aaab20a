//! What drives the load: the wrk scripts, wrk's figures, and the probe that watches the
//! answers while a scenario runs.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::client::Client;
use crate::{RESOURCE, TENANT, bearer, list_path, todo_body};

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

pub fn lua_constant(method: &str, path: &str) -> String {
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

pub fn lua_get_by_id(ids_file: &Path) -> String {
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

pub fn lua_create() -> String {
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
pub struct WrkResult {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    /// wrk's own count: answers with a status of 400 or more (a 3xx is not counted there;
    /// the server's metrics count every non-2xx, see `main`).
    pub non_2xx: u64,
    pub socket_errors: String,
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

pub fn wrk(port: u16, script: &Path, path: &str, seconds: u64) -> (WrkResult, String) {
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
pub enum Probe {
    None,
    Healthz,
    GetById,
    List,
    Create,
}

/// Sends one request of the scenario's shape every 100 ms until stopped; returns the number
/// of probes and up to five non-2xx answers (status and body).
pub fn probe(
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
                Probe::Healthz => client.send("GET", "/healthz", None),
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
