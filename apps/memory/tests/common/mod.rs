//! The set-up the memory tests share: an installation with cortex and the memory app
//! (events and jobs running) on one test database, calls through its router, and
//! tenants and users with the tests' password.
#![allow(clippy::unwrap_used, clippy::print_stderr, dead_code)]

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

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery";

pub struct Api {
    pub router: axum::Router,
    pub app: prefiq::BootedApp,
}

/// An installation with events and jobs running.
pub async fn boot(db: &TestDatabase) -> Api {
    boot_with(db, &[]).await
}

/// [`boot`] with more config variables.
pub async fn boot_with(db: &TestDatabase, extra: &[(&str, &str)]) -> Api {
    let mut vars = vec![
        ("PREFIQ__DATABASE__URL".to_owned(), db.url.clone()),
        (
            "PREFIQ__EVENTS__ROUND_INTERVAL_MS".to_owned(),
            "10".to_owned(),
        ),
    ];
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    if let Ok(tenancy) = std::env::var("PREFIQ_TEST_TENANCY") {
        vars.push(("PREFIQ__DATABASE__TENANCY".into(), tenancy));
    }
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
    Api { router, app }
}

impl Api {
    pub fn memory(&self) -> Arc<memory::service::Memory> {
        self.app
            .resolver("test")
            .get::<memory::service::Memory>()
            .unwrap()
    }

    /// One call: status and JSON body (Null when there is none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if !bearer.is_empty() {
            request = request.header("authorization", bearer);
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn identity(&self) -> Arc<cortex::identity::Identity> {
        self.app
            .resolver("test")
            .get::<cortex::identity::Identity>()
            .unwrap()
    }

    /// The bearer header of `email`'s session in `tenant`.
    pub async fn login(&self, tenant: &str, email: &str) -> String {
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/auth/login")
            .header("content-type", "application/json")
            .header("x-tenant", tenant)
            .body(Body::from(
                json!({"email": email, "password": PASSWORD}).to_string(),
            ))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        format!("Bearer {}", body["access_token"].as_str().unwrap())
    }

    /// A new tenant and its administrator's bearer header.
    pub async fn tenant(&self, tenant: &str) -> String {
        let admin = format!("admin@{tenant}.test");
        self.identity()
            .create_tenant(tenant, &admin, PASSWORD)
            .await
            .unwrap();
        self.login(tenant, &admin).await
    }

    /// A bearer header for a new user of `tenant` with `roles`.
    pub async fn user(&self, tenant: &str, email: &str, roles: &[&str]) -> String {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        self.identity()
            .create_user(tenant, email, PASSWORD, &roles, &serde_json::Map::new())
            .await
            .unwrap();
        self.login(tenant, email).await
    }

    /// Adds items (201 asserted); their ids.
    pub async fn add(&self, bearer: &str, items: Value) -> Vec<String> {
        let (status, body) = self
            .call(
                "POST",
                "/api/v1/memory/items/batch",
                bearer,
                Some(json!({"items": items})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The ids a search returns, best first.
    pub async fn search(&self, bearer: &str, body: Value) -> Vec<String> {
        let (status, answer) = self
            .call("POST", "/api/v1/memory/search", bearer, Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits until `expected` warm items of the caller's tenant are indexed, each with its
    /// vector.
    pub async fn embedded(&self, bearer: &str, expected: usize) {
        let mut last = Value::Null;
        // A transformer embeds tens of items a second on a busy machine: allow for it.
        for _ in 0..(600 + expected * 2) {
            let (status, stats) = self.call("GET", "/api/v1/memory/stats", bearer, None).await;
            assert_eq!(status, StatusCode::OK, "{stats}");
            if stats["index"]["pending"] == 0
                && stats["tiers"]["warm"].as_u64() == Some(expected as u64)
                && stats["index"]["vectors"].as_u64() == Some(expected as u64)
            {
                return;
            }
            last = stats;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("items never embedded: {last}");
    }
}

/// Polls `check` every 50 ms for up to 15 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never: {what}");
}
