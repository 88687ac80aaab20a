//! The set-up the plugins tests share: an installation with cortex, accounting and the
//! plugins app (events and jobs running) on one test database, calls through its router,
//! tenants with an administrator, a publisher key the installation trusts, and packages:
//! the example plugins (built by scripts/build-example-plugins.sh) and WAT fixtures.
#![allow(clippy::unwrap_used, clippy::print_stderr, dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use prefiq::{App, BootMode, BootOptions, ConfigOptions};
use prefiq_data::DatabaseProvider;
use prefiq_data::testing::TestDatabase;
use prefiq_http::HttpProvider;
use prefiq_plugin::package;
use prefiq_plugin::testing::{HookBody, wat};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery";

pub struct Api {
    pub router: axum::Router,
    pub app: prefiq::BootedApp,
    pub key: ed25519_dalek::SigningKey,
}

/// An installation trusting a fresh publisher key, with events and jobs running.
pub async fn boot(db: &TestDatabase) -> Api {
    boot_with(db, &[]).await
}

/// [`boot`] with more config variables.
pub async fn boot_with(db: &TestDatabase, extra: &[(&str, &str)]) -> Api {
    let (secret, public) = package::generate_key();
    let key = package::parse_secret_key(&secret).unwrap();
    let mut vars = vec![
        ("PREFIQ__DATABASE__URL".to_owned(), db.url.clone()),
        (
            "PREFIQ__PLUGINS__TRUSTED_KEYS".to_owned(),
            format!("[\"{public}\"]"),
        ),
        (
            "PREFIQ__PLUGINS__BREAKER__FAILURES".to_owned(),
            "3".to_owned(),
        ),
        (
            "PREFIQ__PLUGINS__SANDBOX__DEADLINE_MS".to_owned(),
            "1000".to_owned(),
        ),
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
        .module(accounting::Accounting::new().unwrap())
        .module(plugins::PluginsModule::new().unwrap());
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(db.root()),
        vars: Some(vars),
        ..Default::default()
    };
    let mut app = app.boot(options).await.unwrap();
    app.ready().await.unwrap();
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    Api { router, app, key }
}

impl Api {
    pub fn plugins(&self) -> Arc<plugins::Plugins> {
        self.app.resolver("test").get::<plugins::Plugins>().unwrap()
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

    /// The bearer header of `email`'s session in `tenant` (the tests' one password).
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

    /// A package of `files`, signed with the trusted key.
    pub fn signed(&self, files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
        package::sign(&package::pack_files(files).unwrap(), &self.key).unwrap()
    }
}

/// The files of a WAT fixture plugin `name` whose hook on `entity` at `event` does `body`.
pub fn fixture(
    name: &str,
    entity: &str,
    event: &str,
    body: HookBody,
    extra: &str,
) -> BTreeMap<String, Vec<u8>> {
    let manifest = format!(
        "name: {name}\nversion: 0.1.0\ncapabilities:\n  hooks:\n    - {{entity: {entity}, event: {event}}}\n{extra}"
    );
    files(&manifest, body)
}

/// The files of a WAT fixture plugin with the whole `manifest` given.
pub fn files(manifest: &str, body: HookBody) -> BTreeMap<String, Vec<u8>> {
    let core = wat::parse_str(wat(body)).unwrap();
    let component = prefiq_plugin::sandbox::componentize::componentize("fixture", &core).unwrap();
    BTreeMap::from([
        ("plugin.yml".to_owned(), manifest.as_bytes().to_vec()),
        ("plugin.wasm".to_owned(), component),
    ])
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The files of an example plugin, built by scripts/build-example-plugins.sh (run here,
/// under a lock, when its output is missing). `None`, after saying why, when the
/// machine lacks the toolchains (Debian's rustc with the wasm32 std, clang and lld).
pub fn example(name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    let root = repo_root();
    let out = root.join("target/example-plugins").join(name);
    if !out.join("plugin.wasm").exists() {
        let status = std::process::Command::new("flock")
            .arg(root.join("target/example-plugins.lock"))
            .arg(root.join("scripts/build-example-plugins.sh"))
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => {
                eprintln!(
                    "SKIPPED: the example plugins could not be built ({other:?}); install Debian's rustc libstd-rust-dev-wasm32 lld clang"
                );
                return None;
            }
        }
    }
    let read = |file: &str| std::fs::read(out.join(file)).unwrap();
    Some(BTreeMap::from([
        ("plugin.yml".to_owned(), read("plugin.yml")),
        ("plugin.wasm".to_owned(), read("plugin.wasm")),
    ]))
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

/// Percent-encodes a query value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
