//! Plugins measured: `cargo bench -p plugins --bench plugins`. One JSON object per
//! backend on stdout, progress on stderr. On SQLite, and on PostgreSQL when
//! `PREFIQ_TEST_POSTGRES_URL` is set. Every figure and its baseline come from the same
//! run, measured in alternating rounds so that drift hits both alike.
//!
//! - `create`: a todo created through the repository by acme, which enabled one plugin
//!   with a no-op `validate` hook on todo, against the same create by globex, which did
//!   not (target: at most 15% slower).
//! - `hook_call`: one call of that hook alone (instantiate from the pool, call, drop):
//!   p50 and p99 (target: p99 under 50 µs).
//! - `route`: `GET /api/v1/plugins/todo-followup/open` (the C example: it lists the open
//!   todos through the host and counts them) against the native list of the same rows,
//!   both through the router with a token; requires the example plugins (built by
//!   scripts/build-example-plugins.sh), else it is left out.
//! - `instantiation`: instantiating a plugin without calling it, p50 and p99, and the
//!   first load (compiling the component).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs,
    dead_code
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use prefiq::Context;
use prefiq_data::entity::repo::TenantScope;
use prefiq_data::testing::TestDatabase;
use prefiq_plugin::sandbox::{CallContext, Sandbox};
use prefiq_plugin::testing::HookBody;
use serde_json::{Value, json};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

fn summary(mut samples: Vec<Duration>) -> Value {
    samples.sort();
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len().max(1) as f64;
    json!({
        "n": samples.len(),
        "mean_us": (mean * 1e6 * 10.0).round() / 10.0,
        "p50_us": (percentile(&samples, 0.50) * 10.0).round() / 10.0,
        "p99_us": (percentile(&samples, 0.99) * 10.0).round() / 10.0,
    })
}

fn scope(tenant: &str) -> TenantScope {
    TenantScope::new(&Context::system("en").with_tenant(tenant)).unwrap()
}

async fn bench(db: &TestDatabase, backend: &str) -> Value {
    let rounds = env("PLUGIN_BENCH_ROUNDS", 10);
    let per_round = env("PLUGIN_BENCH_CREATES", 500);
    let calls = env("PLUGIN_BENCH_CALLS", 20_000);
    let api = common::boot(db).await;
    let acme = api.tenant("acme").await;
    let globex = api.tenant("globex").await;
    let plugins = api.plugins();
    let repository = plugins.repository().unwrap().clone();
    let creates = |rounds: u64| {
        let repository = repository.clone();
        async move {
            let (mut acme, mut globex) = (Duration::ZERO, Duration::ZERO);
            for round in 0..rounds {
                // Alternate which tenant goes first, so that what one block leaves behind
                // (the relay's work on its events) falls on both alike.
                let order = if round % 2 == 0 {
                    ["acme", "globex"]
                } else {
                    ["globex", "acme"]
                };
                for tenant in order {
                    let s = scope(tenant);
                    let started = Instant::now();
                    for i in 0..per_round {
                        repository
                            .create(
                                &s,
                                "todo",
                                json!({"description": format!("bench {round} {i}")}),
                            )
                            .await
                            .unwrap();
                    }
                    if tenant == "acme" {
                        acme += started.elapsed();
                    } else {
                        globex += started.elapsed();
                    }
                }
            }
            (acme, globex)
        }
    };
    // The noise floor: the same two tenants, neither with a plugin.
    eprintln!("{backend}: creates without any plugin, {rounds} rounds of {per_round} each tenant");
    let (aa_acme, aa_globex) = creates(rounds).await;
    plugins
        .install(
            &api.signed(&common::fixture(
                "noop",
                "todo",
                "validate",
                HookBody::Echo,
                "",
            )),
            false,
        )
        .await
        .unwrap();
    plugins.enable("acme", "noop", None, None).await.unwrap();
    eprintln!(
        "{backend}: creates, acme with the no-op hook, {rounds} rounds of {per_round} each tenant"
    );
    let (with, without) = creates(rounds).await;
    let n = (rounds * per_round) as f64;
    let with_per_s = n / with.as_secs_f64();
    let without_per_s = n / without.as_secs_f64();

    // One hook call alone, and instantiation alone.
    let state = plugins.state();
    let noop = state.installed.get("noop").unwrap().clone();
    let host: Arc<plugins::host::RepositoryHost> = api
        .app
        .resolver("bench")
        .get::<plugins::host::RepositoryHost>()
        .unwrap();
    let context = CallContext {
        plugin: "noop".into(),
        tenant: "acme".into(),
        trace_id: String::new(),
        config: "{}".into(),
        clock: false,
        http_hosts: Arc::from(Vec::new()),
    };
    let doc = json!({"description": "A todo of a realistic size, with a few fields", "status": "Open", "priority": "Medium", "date": "2026-12-07", "allocated_to": "someone@acme.test"}).to_string();
    eprintln!("{backend}: {calls} hook calls and instantiations");
    for _ in 0..1_000 {
        noop.plugin
            .hook(host.clone(), context.clone(), "validate", "todo", &doc, "")
            .await
            .unwrap()
            .unwrap();
    }
    let mut hook_calls = Vec::with_capacity(calls as usize);
    let mut instantiations = Vec::with_capacity(calls as usize);
    for _ in 0..calls {
        let started = Instant::now();
        noop.plugin
            .hook(host.clone(), context.clone(), "validate", "todo", &doc, "")
            .await
            .unwrap()
            .unwrap();
        hook_calls.push(started.elapsed());
        let started = Instant::now();
        noop.plugin
            .instantiate(host.clone(), context.clone())
            .await
            .unwrap();
        instantiations.push(started.elapsed());
    }
    let sandbox = Sandbox::new(Default::default()).unwrap();
    let wasm = common::files("name: noop\nversion: 0.1.0\n", HookBody::Echo)
        .remove("plugin.wasm")
        .unwrap();
    let started = Instant::now();
    sandbox.load("noop", &wasm).unwrap();
    let load_ms = started.elapsed().as_secs_f64() * 1e3;

    // A plugin's route against the native route over the same rows.
    let route = match common::example("todo-followup") {
        None => Value::Null,
        Some(files) => {
            plugins.install(&api.signed(&files), false).await.unwrap();
            plugins
                .enable("acme", "todo-followup", None, None)
                .await
                .unwrap();
            let filters = json!([["status", "=", "Open"]]).to_string();
            let fields = json!(["id"]).to_string();
            let native_path = format!(
                "/api/v1/resources/todo?filters={}&fields={}&limit=500",
                common::encode(&filters),
                common::encode(&fields)
            );
            let (status, body) = api
                .call("GET", "/api/v1/plugins/todo-followup/open", &acme, None)
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let requests = env("PLUGIN_BENCH_REQUESTS", 2_000);
            eprintln!("{backend}: {requests} route requests each way");
            let (mut plugin_route, mut native_route) = (Vec::new(), Vec::new());
            for _ in 0..requests {
                let started = Instant::now();
                let (status, _) = api
                    .call("GET", "/api/v1/plugins/todo-followup/open", &acme, None)
                    .await;
                assert_eq!(status, StatusCode::OK);
                plugin_route.push(started.elapsed());
                let started = Instant::now();
                let (status, _) = api.call("GET", &native_path, &acme, None).await;
                assert_eq!(status, StatusCode::OK);
                native_route.push(started.elapsed());
            }
            let plugin_mean = plugin_route.iter().map(Duration::as_secs_f64).sum::<f64>();
            let native_mean = native_route.iter().map(Duration::as_secs_f64).sum::<f64>();
            json!({
                "rows": body["open"],
                "plugin": summary(plugin_route),
                "native": summary(native_route),
                "plugin_over_native": (plugin_mean / native_mean * 100.0).round() / 100.0,
            })
        }
    };
    let _ = globex;
    json!({
        "backend": backend,
        "create": {
            "with_noop_hook_per_s": with_per_s.round(),
            "without_per_s": without_per_s.round(),
            "slowdown_percent": ((without_per_s / with_per_s - 1.0) * 1000.0).round() / 10.0,
            "noise_floor_percent": ((aa_acme.as_secs_f64() / aa_globex.as_secs_f64() - 1.0) * 1000.0).round() / 10.0,
        },
        "hook_call": summary(hook_calls),
        "instantiation": summary(instantiations),
        "first_load_ms": (load_ms * 10.0).round() / 10.0,
        "route": route,
    })
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sqlite = TestDatabase::sqlite().unwrap();
        println!("{}", bench(&sqlite, "sqlite").await);
        if let Some(pg) = TestDatabase::postgres("plugins_bench").await {
            println!("{}", bench(&pg, "postgres").await);
            pg.cleanup().await;
        }
    });
}
