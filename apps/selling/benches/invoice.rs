//! Sales invoices under load, in process through the router (the server's figures,
//! without a socket), on SQLite (or the PostgreSQL server PREFIQ_TEST_POSTGRES_URL
//! names): each round creates an invoice of 10 lines with two taxes, then submits it,
//! which computes its figures and posts its journal entry in the same transaction.
//! Every non-2xx answer fails the run.
//!
//! `cargo bench -p selling --bench invoice` (`INVOICE_BENCH_ROUNDS`, default 1,000).
//! Target (issue 20): the submit's p99 under 15 ms.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

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

struct Bench {
    router: axum::Router,
    bearer: String,
}

impl Bench {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", &self.bearer)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn create(&self, entity: &str, body: Value) -> String {
        let (status, answer) = self
            .call("POST", &format!("/api/v1/resources/{entity}"), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{entity}: {answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    async fn account(&self, company: &str, path: &str) -> String {
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

fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(what: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{what:<36} n={:<5} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
        latencies.len(),
        quantile_ms(&latencies, 0.5),
        quantile_ms(&latencies, 0.99),
        quantile_ms(&latencies, 1.0),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let rounds: usize = std::env::var("INVOICE_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    let db = TestDatabase::sqlite().unwrap();
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
    let bench = Bench {
        router,
        bearer: format!("Bearer {}", login["access_token"].as_str().unwrap()),
    };

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
    let customer = bench
        .create("customer", json!({"customer_name": "Bench Customer", "company": company, "receivable_account": receivable, "currency": "USD"}))
        .await;
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

    let mut creates = Vec::with_capacity(rounds);
    let mut submits = Vec::with_capacity(rounds);
    let started = Instant::now();
    for round in 0..rounds {
        let lines: Vec<Value> = items
            .iter()
            .enumerate()
            .map(|(i, item)| json!({"item": item, "qty": format!("{}", 1 + (round + i) % 7), "unit_price": {"amount": format!("{}.{:02}", 3 + i, (round * 7 + i) % 100), "currency": "USD"}}))
            .collect();
        let t = Instant::now();
        let (status, created) = bench
            .call("POST", "/api/v1/resources/sales_invoice", Some(json!({"customer": customer, "company": company, "posting_date": "2026-06-15", "currency": "USD", "tax_template": template, "lines": lines})))
            .await;
        creates.push(t.elapsed());
        assert_eq!(status, StatusCode::CREATED, "round {round}: {created}");
        let id = created["id"].as_str().unwrap();
        let t = Instant::now();
        let (status, submitted) = bench
            .call(
                "POST",
                &format!("/api/v1/resources/sales_invoice/{id}/submit"),
                None,
            )
            .await;
        submits.push(t.elapsed());
        assert_eq!(status, StatusCode::OK, "round {round}: {submitted}");
    }
    let elapsed = started.elapsed();
    report("create, 10 lines, 2 taxes", creates);
    report("submit (figures + postings)", submits);
    println!(
        "{rounds} invoices created and submitted in {:.1} s: {:.0} invoices/s, every answer 2xx",
        elapsed.as_secs_f64(),
        rounds as f64 / elapsed.as_secs_f64()
    );
    let (status, report) = bench
        .call("GET", &format!("/api/v1/accounting/reports/trial-balance?company={company}&from=2026-01-01&to=2026-12-31"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    println!(
        "trial balance: debit {} = credit {}",
        report["totals"]["closing_debit"], report["totals"]["closing_credit"]
    );
    assert_eq!(
        report["totals"]["closing_debit"],
        report["totals"]["closing_credit"]
    );
    drop(bench);
    app.shutdown().await.unwrap();
    db.cleanup().await;
}
