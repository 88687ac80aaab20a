//! What the stock benches share: the app booted on a test database with the stock
//! module, a signed-in clerk, requests in process or over a loopback socket (every
//! non-2xx answer counted), a company with its books, warehouses and items, SQL on the
//! app's own database, and latency figures.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs,
    dead_code
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cortex::identity::Identity;
use prefiq::{App, BootMode, BootOptions, ConfigOptions, Context};
use prefiq_data::DatabaseProvider;
use prefiq_data::entity::repo::{Repository, TenantScope};
use prefiq_data::entity::sql::{Cell, Sql, SqlType};
use prefiq_data::testing::TestDatabase;
use prefiq_http::HttpProvider;
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";

/// The tenant the benches run as.
pub const TENANT: &str = "bench";

/// How requests reach the server.
pub enum Transport {
    /// Through the router, in process (the path of HTTP minus the socket).
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

impl Transport {
    pub fn label(&self) -> &'static str {
        match self {
            Transport::InProcess => "in process",
            Transport::Http(..) => "over HTTP",
        }
    }
}

pub struct Bench {
    pub router: axum::Router,
    pub bearer: String,
    pub transport: Transport,
    pub app: prefiq::BootedApp,
    /// The backend's name, for the figures.
    pub backend: &'static str,
    /// Answers that were not 2xx.
    pub failures: AtomicUsize,
}

impl Bench {
    /// A request: its status, its answer (JSON, or `Null`), and the time until the whole
    /// answer was received (its JSON is parsed after).
    pub async fn timed(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, Duration) {
        let uri = match &self.transport {
            Transport::InProcess => path.to_owned(),
            Transport::Http(_, port) => format!("http://127.0.0.1:{port}{path}"),
        };
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header("authorization", &self.bearer)
            .header("x-tenant", TENANT)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let started = Instant::now();
        let response = match &self.transport {
            Transport::InProcess => self.router.clone().oneshot(request).await.unwrap(),
            Transport::Http(client, _) => client.request(request).await.unwrap().map(Body::new),
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 28)
            .await
            .unwrap();
        let elapsed = started.elapsed();
        let answer = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let n = self.failures.fetch_add(1, Ordering::Relaxed);
            if n < 5 {
                eprintln!("non-2xx: {method} {path} -> {status}: {answer}");
            }
        }
        (status, answer, elapsed)
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, answer, _) = self.timed(method, path, body).await;
        (status, answer)
    }

    /// Creates a record, which must succeed: its id.
    pub async fn create(&self, entity: &str, body: Value) -> String {
        let (status, answer) = self
            .call("POST", &format!("/api/v1/resources/{entity}"), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{entity}: {answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    /// Creates a document and submits it, both of which must succeed: its id.
    pub async fn submit(&self, entity: &str, body: Value) -> String {
        let id = self.create(entity, body).await;
        let (status, answer) = self
            .call(
                "POST",
                &format!("/api/v1/resources/{entity}/{id}/submit"),
                None,
            )
            .await;
        assert!(status.is_success(), "submit {entity} {id}: {answer}");
        id
    }

    pub async fn account(&self, company: &str, path: &str) -> String {
        let filters = json!([["company", "=", company], ["account_path", "=", path]]).to_string();
        let (status, answer) = self
            .call(
                "GET",
                &format!("/api/v1/resources/account?filters={}", encode(&filters)),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["data"][0]["id"].as_str().unwrap().to_owned()
    }

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

    /// Requests go through the router in process again.
    pub fn in_process(&mut self) {
        self.transport = Transport::InProcess;
    }

    /// The app's repository and the bench tenant's scope: SQL on the app's own database.
    pub fn repository(&self) -> (Arc<Repository>, TenantScope) {
        let repository = self.app.resolver(TENANT).get::<Repository>().unwrap();
        let scope = TenantScope::new(&Context::system("en").with_tenant(TENANT)).unwrap();
        (repository, scope)
    }

    /// A count (`SELECT COUNT(*) ...`) read from the app's database; `{tenant}` in the
    /// text stands for the bench tenant.
    pub async fn count(&self, text: &str) -> i64 {
        let (repository, scope) = self.repository();
        let text = text.replace("{tenant}", &format!("'{TENANT}'"));
        repository
            .read(
                &scope,
                Box::new(move |conn| {
                    let text = text.clone();
                    Box::pin(async move {
                        let sql = Sql {
                            text,
                            ..Sql::default()
                        };
                        let rows = conn.fetch(&sql, &[SqlType::Int]).await?;
                        Ok(rows
                            .first()
                            .and_then(|r| r.first())
                            .and_then(Cell::as_int)
                            .unwrap_or(0))
                    })
                }),
            )
            .await
            .unwrap()
    }

    /// The non-2xx answers so far.
    pub fn failures(&self) -> usize {
        self.failures.load(Ordering::Relaxed)
    }
}

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

pub fn usd(amount: String) -> Value {
    json!({"amount": amount, "currency": "USD"})
}

/// Minor units as a decimal text: `1234` is `"12.34"`.
pub fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.replace('_', "").parse().ok())
        .unwrap_or(default)
}

pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Latencies sorted, with their p50 and p99 (ms); printed as one line.
pub fn report(what: &str, mut latencies: Vec<Duration>) -> (f64, f64) {
    latencies.sort();
    let (p50, p99) = (quantile_ms(&latencies, 0.5), quantile_ms(&latencies, 0.99));
    println!(
        "{what:<48} n={:<5} p50 {p50:>8.2} ms  p99 {p99:>8.2} ms  max {:>8.2} ms",
        latencies.len(),
        quantile_ms(&latencies, 1.0),
    );
    (p50, p99)
}

/// Boots the app on `db` and signs in a clerk (Accounts, Stock and Sales Manager).
pub async fn start(db: &TestDatabase, backend: &'static str) -> Bench {
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
        .module(selling::Selling::new().unwrap())
        .module(buying::Buying::new().unwrap())
        .module(stock::Stock::new().unwrap());
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(db.root()),
        vars: Some(vars),
        ..Default::default()
    };
    let mut app = app.boot(options).await.unwrap();
    app.ready().await.unwrap();
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    let identity = app.resolver(TENANT).get::<Identity>().unwrap();
    identity
        .create_tenant(TENANT, "admin@bench.test", PASSWORD)
        .await
        .unwrap();
    let roles = vec![
        "Accounts Manager".to_owned(),
        "Stock Manager".to_owned(),
        "Sales Manager".to_owned(),
    ];
    identity
        .create_user(
            TENANT,
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
        .header("x-tenant", TENANT)
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
        backend,
        failures: AtomicUsize::new(0),
    }
}

/// What the benches' documents refer to.
pub struct Books {
    pub company: String,
    /// The stock account of every warehouse (`assets:current:stock`).
    pub stock_account: String,
    /// The account receipts credit and issues debit (cost of goods sold).
    pub adjustment: String,
    pub warehouses: Vec<String>,
    pub item_group: String,
    pub uom: String,
    /// A customer, for delivery notes.
    pub customer: String,
}

/// A company for 2026 with `warehouses` warehouses under one group, all on the stock
/// account; items come from [`item`].
pub async fn books(bench: &Bench, warehouses: usize) -> Books {
    let company = bench
        .create(
            "company",
            json!({"company_name": "Bench Ltd", "abbr": "BEN", "currency": "USD"}),
        )
        .await;
    bench
        .create("fiscal_year", json!({"year_name": "FY 2026", "company": company, "start_date": "2026-01-01", "end_date": "2026-12-31"}))
        .await;
    let stock_account = bench.account(&company, "assets:current:stock").await;
    let adjustment = bench.account(&company, "expenses:cost-of-goods-sold").await;
    let group = bench
        .create(
            "warehouse",
            json!({"warehouse_name": "All Warehouses", "company": company, "is_group": true}),
        )
        .await;
    let mut made = Vec::with_capacity(warehouses);
    for w in 0..warehouses {
        made.push(
            bench
                .create("warehouse", json!({"warehouse_name": format!("WH-{w:02}"), "company": company, "stock_account": stock_account, "parent_warehouse": group}))
                .await,
        );
    }
    let uom = bench.create("uom", json!({"uom_name": "Nos"})).await;
    let item_group = bench
        .create(
            "item_group",
            json!({"item_group_name": "All Items", "is_group": true}),
        )
        .await;
    let receivable = bench.account(&company, "assets:current:receivable").await;
    let customer = bench
        .create("customer", json!({"customer_name": "Bench Customer", "company": company, "receivable_account": receivable, "currency": "USD"}))
        .await;
    Books {
        customer,
        company,
        stock_account,
        adjustment,
        warehouses: made,
        item_group,
        uom,
    }
}

/// An item of the company valued by `method` (`FIFO` or `Moving Average`): its id.
pub async fn item(bench: &Bench, b: &Books, code: &str, method: &str) -> String {
    bench
        .create("item", json!({"item_code": code, "item_name": code, "item_group": b.item_group, "stock_uom": b.uom, "company": b.company, "valuation_method": method}))
        .await
}

/// A stock entry's body.
pub fn entry(b: &Books, purpose: &str, date: &str, lines: Value) -> Value {
    let mut body =
        json!({"purpose": purpose, "company": b.company, "posting_date": date, "lines": lines});
    if purpose != "Transfer" {
        body["expense_account"] = json!(b.adjustment);
    }
    body
}

/// `2026-01-01` plus `days`.
pub fn date(days: usize) -> String {
    jiff::civil::date(2026, 1, 1)
        .checked_add(jiff::Span::new().days(i64::try_from(days).unwrap()))
        .unwrap()
        .to_string()
}

/// Days since 1970-01-01 of `2026-01-01` plus `days`, as the ledger numbers them.
pub fn day_number(days: usize) -> i64 {
    accounting::ledger::store::day_number(&date(days)).unwrap()
}

/// Whether the stock value of every warehouse (the stock balance report at `as_of`) equals
/// the balance of the stock account (the trial balance): both figures, minor units.
pub async fn books_agree(bench: &Bench, b: &Books, as_of: &str) -> (i64, i64) {
    use prefiq_data::entity::value::parse_scaled;
    let (status, stock) = bench
        .call(
            "GET",
            &format!(
                "/api/v1/stock/reports/stock-balance?company={}&as_of={as_of}",
                b.company
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stock}");
    let value = parse_scaled(stock["total_value"].as_str().unwrap_or("0"), 2).unwrap();
    let (status, trial) = bench
        .call(
            "GET",
            &format!(
                "/api/v1/accounting/reports/trial-balance?company={}&from=2026-01-01&to={as_of}",
                b.company
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{trial}");
    let amount = |v: &Value| parse_scaled(v.as_str().unwrap_or("0"), 2).unwrap();
    let account = trial["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["account_path"] == "assets:current:stock")
        .map_or(0, |r| {
            amount(&r["closing_debit"]) - amount(&r["closing_credit"])
        });
    (value, account)
}
