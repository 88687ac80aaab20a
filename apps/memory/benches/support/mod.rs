//! What the memory benchmarks share: an installation on a fresh SQLite database (or the
//! PostgreSQL server named by PREFIQ_TEST_POSTGRES_URL), a tenant with its administrator,
//! and calls through the router, in process.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    dead_code
)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use prefiq::{App, BootMode, BootOptions, ConfigOptions};
use prefiq_data::DatabaseProvider;
use prefiq_data::testing::TestDatabase;
use prefiq_http::HttpProvider;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery";

pub struct Bench {
    pub router: axum::Router,
    pub app: prefiq::BootedApp,
    pub bearer: String,
}

/// The workspace's root.
pub fn workspace() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Boots an installation on `db` with `vars` and makes tenant `bench`.
pub async fn boot(db: &TestDatabase, extra: &[(&str, String)]) -> Bench {
    let mut vars = vec![
        ("PREFIQ__DATABASE__URL".to_owned(), db.url.clone()),
        (
            "PREFIQ__EVENTS__ROUND_INTERVAL_MS".to_owned(),
            "10".to_owned(),
        ),
        ("PREFIQ__LOG__LEVEL".to_owned(), "warn".to_owned()),
        // The load generator is one client: no rate limit.
        (
            "PREFIQ__SERVER__RATE_LIMIT_PER_MINUTE".to_owned(),
            "10000000".to_owned(),
        ),
    ];
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let app = App::new()
        .provider(DatabaseProvider)
        .provider(prefiq_data::audit::AuditProvider::default())
        .provider(prefiq_worker::EventsProvider::default())
        .provider(prefiq_worker::JobsProvider::default())
        .provider(prefiq_cache::CacheProvider::default())
        .provider(HttpProvider)
        .module(cortex::Cortex::new().unwrap())
        .module(memory::MemoryModule::new().unwrap());
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(db.root()),
        vars: Some(vars),
        ..Default::default()
    };
    let mut app = app.boot(options).await.unwrap();
    app.ready().await.unwrap();
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    let identity = app
        .resolver("bench")
        .get::<cortex::identity::Identity>()
        .unwrap();
    identity
        .create_tenant("bench", "admin@bench.test", PASSWORD)
        .await
        .unwrap();
    let mut bench = Bench {
        router,
        app,
        bearer: String::new(),
    };
    let (status, body) = bench
        .call_tenant(
            "POST",
            "/api/v1/auth/login",
            Some(json!({"email": "admin@bench.test", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    bench.bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
    bench
}

impl Bench {
    async fn call_tenant(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("x-tenant", "bench")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 26)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// One call as the administrator.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", &self.bearer)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 26)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Adds items in batches of 500; their ids in order.
    pub async fn add(&self, items: &[Value]) -> Vec<String> {
        let mut ids = Vec::with_capacity(items.len());
        for chunk in items.chunks(500) {
            let (status, body) = self
                .call(
                    "POST",
                    "/api/v1/memory/items/batch",
                    Some(json!({"items": chunk})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            ids.extend(
                body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["id"].as_str().unwrap().to_owned()),
            );
        }
        ids
    }

    /// Waits until every item has its vector (or, keyword-only, is indexed).
    pub async fn settled(&self, expected: usize) {
        let started = std::time::Instant::now();
        loop {
            let (_, stats) = self.call("GET", "/api/v1/memory/stats", None).await;
            let warm = stats["tiers"]["warm"].as_u64().unwrap_or(0) as usize;
            let pending = stats["index"]["pending"].as_u64().unwrap_or(u64::MAX);
            let keyword_only = stats["mode"] == "keyword-only";
            if warm >= expected && (keyword_only || pending == 0) {
                return;
            }
            if started.elapsed().as_secs() > 1800 {
                panic!("items never settled: {stats}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// The `q`-quantile of sorted durations, in milliseconds.
pub fn quantile_ms(sorted: &[std::time::Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}
