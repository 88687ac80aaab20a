//! The set-up the accounting tests share: an installation with cortex and accounting on
//! one test database, calls through its router, and a tenant with one user per role.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cortex::identity::Identity;
use prefiq::{App, BootMode, BootOptions, ConfigOptions};
use prefiq_data::DatabaseProvider;
use prefiq_data::testing::TestDatabase;
use prefiq_http::HttpProvider;
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct Api {
    pub router: axum::Router,
    pub app: prefiq::BootedApp,
}

pub async fn boot(db: &TestDatabase) -> Api {
    boot_with(db, &[]).await
}

pub async fn boot_with(db: &TestDatabase, extra: &[(&str, &str)]) -> Api {
    let mut vars = vec![("PREFIQ__DATABASE__URL".to_owned(), db.url.clone())];
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
        .provider(HttpProvider)
        .module(cortex::Cortex::new().unwrap())
        .module(accounting::Accounting::new().unwrap());
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(db.root()),
        vars: Some(vars),
        ..Default::default()
    };
    let app = app.boot(options).await.unwrap();
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    Api { router, app }
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

impl Api {
    /// One call: status, content type and body text.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (StatusCode, String, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", bearer);
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        (
            status,
            content_type,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// One call with a JSON answer.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, text) = self.raw(method, path, bearer, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn identity(&self) -> Arc<Identity> {
        self.app.resolver("test").get::<Identity>().unwrap()
    }

    /// A bearer header for a new user of `tenant` with `roles`.
    pub async fn user(&self, tenant: &str, email: &str, roles: &[&str]) -> String {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        self.identity()
            .create_user(
                tenant,
                email,
                "correct horse battery",
                &roles,
                &serde_json::Map::new(),
            )
            .await
            .unwrap();
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/auth/login")
            .header("content-type", "application/json")
            .header("x-tenant", tenant)
            .body(Body::from(
                json!({"email": email, "password": "correct horse battery"}).to_string(),
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
}

/// The users of one tenant, one per role.
pub struct Staff {
    pub manager: String,
    pub accountant: String,
    pub auditor: String,
    pub admin: String,
}

pub async fn staff(api: &Api, tenant: &str) -> Staff {
    api.identity()
        .create_tenant(
            tenant,
            &format!("admin@{tenant}.test"),
            "correct horse battery",
        )
        .await
        .unwrap();
    let admin = {
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/auth/login")
            .header("content-type", "application/json")
            .header("x-tenant", tenant)
            .body(Body::from(
                json!({"email": format!("admin@{tenant}.test"), "password": "correct horse battery"})
                    .to_string(),
            ))
            .unwrap();
        let response = api.router.clone().oneshot(request).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        format!("Bearer {}", body["access_token"].as_str().unwrap())
    };
    Staff {
        manager: api
            .user(
                tenant,
                &format!("manager@{tenant}.test"),
                &["Accounts Manager"],
            )
            .await,
        accountant: api
            .user(
                tenant,
                &format!("accountant@{tenant}.test"),
                &["Accountant"],
            )
            .await,
        auditor: api
            .user(tenant, &format!("auditor@{tenant}.test"), &["Auditor"])
            .await,
        admin,
    }
}
// The desk browser of cortex's tests, not a copy of it.
#[path = "../../../cortex/tests/common/browser.rs"]
pub mod browser;
