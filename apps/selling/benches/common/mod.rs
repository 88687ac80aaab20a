//! What the selling benches share: the app booted on a SQLite test database with the
//! selling modules, a signed-in clerk, requests in process or over a loopback socket,
//! a company with its customers, ten items and a two-tax template, and latency reports.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs,
    dead_code
)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cortex::identity::Identity;
use prefiq::{App, BootMode, BootOptions, ConfigOptions};
use prefiq_data::DatabaseProvider;
use prefiq_data::testing::TestDatabase;
use prefiq_http::HttpProvider;
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";

/// How requests reach the server.
pub enum Transport {
    /// Through the router, in process.
    InProcess,
    /// Over HTTP/1.1 to `127.0.0.1:{port}`.
    Http(
        hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            Body,
        >,
        u16,
    ),
}

pub struct Bench {
    pub router: axum::Router,
    pub bearer: String,
    pub transport: Transport,
    pub app: prefiq::BootedApp,
}

impl Bench {
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let uri = match &self.transport {
            Transport::InProcess => path.to_owned(),
            Transport::Http(_, port) => format!("http://127.0.0.1:{port}{path}"),
        };
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header("authorization", &self.bearer)
            .header("x-tenant", "bench")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = match &self.transport {
            Transport::InProcess => self.router.clone().oneshot(request).await.unwrap(),
            Transport::Http(client, _) => client.request(request).await.unwrap().map(Body::new),
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn create(&self, entity: &str, body: Value) -> String {
        let (status, answer) = self
            .call("POST", &format!("/api/v1/resources/{entity}"), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{entity}: {answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    pub async fn account(&self, company: &str, path: &str) -> String {
        let filters = json!([["company", "=", company], ["account_path", "=", path]]).to_string();
        let encoded: String = filters
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (_, answer) = self
            .call(
                "GET",
                &format!("/api/v1/resources/account?filters={encoded}"),
                None,
            )
            .await;
        answer["data"][0]["id"].as_str().unwrap().to_owned()
    }
}

impl Bench {
    /// From now on, requests go over HTTP to the router served on a loopback socket.
    pub async fn serve_http(&mut self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = self.router.clone();
        tokio::spawn(async move { axum::serve(listener, served).await });
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        self.transport = Transport::Http(client, port);
    }
}

pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

pub fn report(what: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{what:<36} n={:<5} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
        latencies.len(),
        quantile_ms(&latencies, 0.5),
        quantile_ms(&latencies, 0.99),
        quantile_ms(&latencies, 1.0),
    );
}

/// Boots the app on `db` and signs in a clerk (Accounts Manager, Sales Manager).
pub async fn start(db: &TestDatabase) -> Bench {
    let vars = vec![
        ("PREFIQ__DATABASE__URL".to_owned(), db.url.clone()),
        ("PREFIQ__LOG__LEVEL".to_owned(), "warn".to_owned()),
        // One client without pauses: no rate limit.
        (
            "PREFIQ__SERVER__RATE_LIMIT_PER_MINUTE".to_owned(),
            "10000000".to_owned(),
        ),
    ];
    let app = App::new()
        .provider(DatabaseProvider)
        .provider(prefiq_data::audit::AuditProvider::default())
        .provider(HttpProvider)
        .module(cortex::Cortex::new().unwrap())
        .module(accounting::Accounting::new().unwrap())
        .module(trade::Trade::new().unwrap())
        .module(crm::Crm::new().unwrap())
        .module(selling::Selling::new().unwrap());
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(db.root()),
        vars: Some(vars),
        ..Default::default()
    };
    let mut app = app.boot(options).await.unwrap();
    app.ready().await.unwrap();
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    let identity = app.resolver("bench").get::<Identity>().unwrap();
    identity
        .create_tenant("bench", "admin@bench.test", PASSWORD)
        .await
        .unwrap();
    let roles = vec!["Accounts Manager".to_owned(), "Sales Manager".to_owned()];
    identity
        .create_user(
            "bench",
            "clerk@bench.test",
            PASSWORD,
            &roles,
            &serde_json::Map::new(),
        )
        .await
        .unwrap();
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/auth/login")
        .header("content-type", "application/json")
        .header("x-tenant", "bench")
        .body(Body::from(
            json!({"email": "clerk@bench.test", "password": PASSWORD}).to_string(),
        ))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let login: Value = serde_json::from_slice(&bytes).unwrap();
    Bench {
        router,
        bearer: format!("Bearer {}", login["access_token"].as_str().unwrap()),
        transport: Transport::InProcess,
        app,
    }
}

/// What the benches' documents refer to.
pub struct Fixture {
    pub company: String,
    pub receivable: String,
    pub bank: String,
    pub customers: Vec<String>,
    pub items: Vec<String>,
    pub template: String,
}

/// A company for 2026 with `customers` customers, ten items and a template of two taxes.
pub async fn fixture(bench: &Bench, customers: usize) -> Fixture {
    let company = bench
        .create(
            "company",
            json!({"company_name": "Bench Ltd", "abbr": "BEN", "currency": "USD"}),
        )
        .await;
    bench
        .create("fiscal_year", json!({"year_name": "FY 2026", "company": company, "start_date": "2026-01-01", "end_date": "2026-12-31"}))
        .await;
    let receivable = bench.account(&company, "assets:current:receivable").await;
    let output_tax = bench
        .account(&company, "liabilities:current:output-tax")
        .await;
    let payroll = bench.account(&company, "liabilities:current:payroll").await;
    let sales = bench.account(&company, "income:sales").await;
    let bank = bench.account(&company, "assets:current:bank").await;
    let mut parties = Vec::with_capacity(customers);
    for i in 0..customers {
        parties.push(
            bench
                .create("customer", json!({"customer_name": format!("Bench Customer {i}"), "company": company, "receivable_account": receivable, "currency": "USD"}))
                .await,
        );
    }
    let nos = bench.create("uom", json!({"uom_name": "Nos"})).await;
    let group = bench
        .create("item_group", json!({"item_group_name": "All Items"}))
        .await;
    let mut items = Vec::new();
    for i in 0..10 {
        items.push(
            bench
                .create("item", json!({"item_code": format!("ITEM-{i}"), "item_name": format!("Item {i}"), "item_group": group, "stock_uom": nos, "company": company, "income_account": sales}))
                .await,
        );
    }
    // Two taxes: a Tax account is needed for each; the payroll liability stands in for a
    // second one after it is typed as Tax.
    let (status, answer) = bench
        .call(
            "PATCH",
            &format!("/api/v1/resources/account/{payroll}"),
            Some(json!({"account_type": "Tax"})),
        )
        .await;
    assert!(status.is_success(), "{answer}");
    let template = bench
        .create(
            "tax_template",
            json!({"title": "VAT + levy", "company": company, "lines": [
                {"account": output_tax, "rate": "19"},
                {"account": payroll, "rate": "2.5"},
            ]}),
        )
        .await;
    Fixture {
        company,
        receivable,
        bank,
        customers: parties,
        items,
        template,
    }
}
