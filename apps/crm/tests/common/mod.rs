//! The set-up the CRM's tests share: an installation of cortex, accounting, trade and crm
//! on one test database, calls through its router, and a tenant with its books, a
//! customer's receivable account and users of the selling roles.
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

// The desk browser of cortex's tests, not a copy of it.
#[path = "../../../cortex/tests/common/browser.rs"]
pub mod browser;

pub const PASSWORD: &str = "correct horse battery";

pub struct Api {
    pub router: axum::Router,
    pub app: prefiq::BootedApp,
}

pub async fn boot(db: &TestDatabase) -> Api {
    let mut vars = vec![("PREFIQ__DATABASE__URL".to_owned(), db.url.clone())];
    if let Ok(tenancy) = std::env::var("PREFIQ_TEST_TENANCY") {
        vars.push(("PREFIQ__DATABASE__TENANCY".into(), tenancy));
    }
    let app = App::new()
        .provider(DatabaseProvider)
        .provider(prefiq_data::audit::AuditProvider::default())
        .provider(HttpProvider)
        .module(cortex::Cortex::new().unwrap())
        .module(accounting::Accounting::new().unwrap())
        .module(trade::Trade::new().unwrap())
        .module(crm::Crm::new().unwrap());
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

/// An amount in US dollars, as the API takes and gives it.
pub fn usd(amount: &str) -> Value {
    json!({"amount": amount, "currency": "USD"})
}

/// An amount in euros.
pub fn eur(amount: &str) -> Value {
    json!({"amount": amount, "currency": "EUR"})
}

/// `base` with the members of `change` set (a `null` sets the field to null).
pub fn with(base: &Value, change: &Value) -> Value {
    let mut body = base.clone();
    for (k, v) in change.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
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

    async fn login(&self, tenant: &str, email: &str) -> String {
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

    /// A bearer header for a new user of `acme` with `roles`.
    pub async fn user(&self, email: &str, roles: &[&str]) -> String {
        let identity = self.app.resolver("test").get::<Identity>().unwrap();
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        identity
            .create_user("acme", email, PASSWORD, &roles, &serde_json::Map::new())
            .await
            .unwrap();
        self.login("acme", email).await
    }

    /// Creates a record, which must succeed: the record.
    pub async fn create(&self, bearer: &str, entity: &str, body: Value) -> Value {
        let (status, answer) = self
            .call(
                "POST",
                &format!("/api/v1/resources/{entity}"),
                bearer,
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{entity}: {answer}");
        answer
    }

    /// Creates a record, which must succeed: its id.
    pub async fn create_id(&self, bearer: &str, entity: &str, body: Value) -> String {
        self.create(bearer, entity, body).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Reads a record, which must exist.
    pub async fn get(&self, bearer: &str, entity: &str, id: &str) -> Value {
        let (status, record) = self
            .call(
                "GET",
                &format!("/api/v1/resources/{entity}/{id}"),
                bearer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{entity} {id}: {record}");
        record
    }

    /// The live records of `entity` the caller may list.
    pub async fn list(&self, bearer: &str, entity: &str) -> Vec<Value> {
        let (status, page) = self
            .call(
                "GET",
                &format!("/api/v1/resources/{entity}?limit=100"),
                bearer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{entity}: {page}");
        page["data"].as_array().unwrap().clone()
    }

    /// The id of the account at `path` of `company`.
    pub async fn account(&self, bearer: &str, company: &str, path: &str) -> String {
        let filters = json!([["company", "=", company], ["account_path", "=", path]]).to_string();
        let (status, answer) = self
            .call(
                "GET",
                &format!("/api/v1/resources/account?filters={}", encode(&filters)),
                bearer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["data"][0]["id"].as_str().unwrap().to_owned()
    }
}

/// The tenant `acme`: a USD company with its chart, another company in EUR, and users.
pub struct Acme {
    pub company: String,
    pub other_company: String,
    pub receivable: String,
    pub other_receivable: String,
    pub bank: String,
    /// Accounts Manager and Sales Manager: books, rates and everything of the CRM.
    pub clerk: String,
    /// Sales User: leads, opportunities, customers and contacts, and the pipeline.
    pub seller: String,
    /// Auditor: reads the books, but no lead and no CRM report.
    pub auditor: String,
}

pub async fn acme(api: &Api) -> Acme {
    let identity = api.app.resolver("test").get::<Identity>().unwrap();
    identity
        .create_tenant("acme", "admin@acme.test", PASSWORD)
        .await
        .unwrap();
    let clerk = api
        .user("clerk@acme.test", &["Accounts Manager", "Sales Manager"])
        .await;
    let seller = api.user("seller@acme.test", &["Sales User"]).await;
    let auditor = api.user("auditor@acme.test", &["Auditor"]).await;
    let company = api
        .create_id(
            &clerk,
            "company",
            json!({"company_name": "Acme Ltd", "abbr": "ACME", "currency": "USD"}),
        )
        .await;
    let other_company = api
        .create_id(
            &clerk,
            "company",
            json!({"company_name": "Other GmbH", "abbr": "OTH", "currency": "EUR"}),
        )
        .await;
    Acme {
        receivable: api
            .account(&clerk, &company, "assets:current:receivable")
            .await,
        other_receivable: api
            .account(&clerk, &other_company, "assets:current:receivable")
            .await,
        bank: api.account(&clerk, &company, "assets:current:bank").await,
        company,
        other_company,
        clerk,
        seller,
        auditor,
    }
}
