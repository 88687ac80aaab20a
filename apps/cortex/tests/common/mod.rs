//! The set-up the cortex HTTP tests share: a booted installation (database, HTTP,
//! cortex) on one test database, and calls through its router.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cortex::identity::Identity;
use prefiq::{App, BootMode, BootOptions, ConfigOptions};
use prefiq_auth::SigningKey;
use prefiq_data::DatabaseProvider;
use prefiq_data::testing::TestDatabase;
use prefiq_http::HttpProvider;
use serde_json::{Value, json};
use tower::ServiceExt;

pub mod browser;

pub struct Api {
    pub router: axum::Router,
    pub app: prefiq::BootedApp,
    pub root: std::path::PathBuf,
}

pub async fn boot(db: &TestDatabase) -> Api {
    boot_with(db, &[]).await
}

pub async fn boot_with(db: &TestDatabase, vars: &[(&str, &str)]) -> Api {
    boot_app(db, vars, false).await
}

/// Booted with the events relay and the job runner too, as `prefiq serve` runs.
pub async fn boot_with_jobs(db: &TestDatabase, vars: &[(&str, &str)]) -> Api {
    boot_app(db, vars, true).await
}

/// As [`boot_with_jobs`], with what `extend` adds to the app (a test's own provider).
pub async fn boot_with_jobs_and(
    db: &TestDatabase,
    vars: &[(&str, &str)],
    extend: impl FnOnce(App) -> App,
) -> Api {
    boot_app_extended(db, vars, true, extend).await
}

async fn boot_app(db: &TestDatabase, vars: &[(&str, &str)], jobs: bool) -> Api {
    boot_app_extended(db, vars, jobs, |app| app).await
}

async fn boot_app_extended(
    db: &TestDatabase,
    vars: &[(&str, &str)],
    jobs: bool,
    extend: impl FnOnce(App) -> App,
) -> Api {
    let mut vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    vars.push(("PREFIQ__DATABASE__URL".into(), db.url.clone()));
    // CI runs the suites again with a database per tenant.
    if let Ok(tenancy) = std::env::var("PREFIQ_TEST_TENANCY") {
        vars.push(("PREFIQ__DATABASE__TENANCY".into(), tenancy));
        // The soak opens 50 tenant databases at once; one connection each keeps
        // PostgreSQL under its default limit of 100.
        vars.push((
            "PREFIQ__DATABASE__TENANT_MAX_CONNECTIONS".into(),
            "1".into(),
        ));
    }
    let mut app = App::new()
        .provider(DatabaseProvider)
        .provider(prefiq_data::audit::AuditProvider::default());
    if jobs {
        app = app
            .provider(prefiq_worker::EventsProvider::default())
            .provider(prefiq_worker::JobsProvider::default());
    }
    let app = extend(
        app.provider(prefiq_cache::CacheProvider::default())
            .provider(HttpProvider)
            .module(cortex::Cortex::new().unwrap()),
    );
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(db.root()),
        vars: Some(vars),
        ..Default::default()
    };
    let mut app = app.boot(options).await.unwrap();
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    // What `serve` does next: background work (the cache's transport, and with `jobs` the
    // relay and the runner) starts.
    app.ready().await.unwrap();
    Api {
        router,
        app,
        root: db.root(),
    }
}

impl Api {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn login(&self, tenant: &str, email: &str, password: &str) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/api/v1/auth/login",
            &[("x-tenant", tenant)],
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    /// An `Authorization` header value for a user that logs in successfully.
    pub async fn bearer(&self, tenant: &str, email: &str, password: &str) -> String {
        let (status, body) = self.login(tenant, email, password).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        format!("Bearer {}", body["access_token"].as_str().unwrap())
    }

    /// Spends a refresh token (a JSON string, or anything else to see it refused).
    pub async fn refresh(&self, headers: &[(&str, &str)], token: &Value) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/api/v1/auth/refresh",
            headers,
            Some(json!({ "refresh_token": token })),
        )
        .await
    }

    pub fn identity(&self) -> Arc<Identity> {
        self.app.resolver("test").get::<Identity>().unwrap()
    }

    /// The installation's own signing key, read from the file it generated.
    pub fn key(&self) -> SigningKey {
        let text = std::fs::read_to_string(self.root.join("data/auth-ed25519.key")).unwrap();
        let seed: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect();
        SigningKey::from_seed(&seed, "codexion").unwrap()
    }
}
