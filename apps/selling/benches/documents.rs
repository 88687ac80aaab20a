//! Two benchmarks of selling documents on SQLite, through the API in process (every
//! non-2xx answer fails the run):
//!
//! - a month of documents: `MONTH_INVOICES` invoices (default 10,000) of 3 lines with
//!   two taxes, created and submitted, and `MONTH_PAYMENTS` payments (default 8,000),
//!   each allocated to one of those invoices and submitted; invoices/s and payments/s;
//! - receivable ageing over `AGEING_INVOICES` submitted invoices (default 100,000): a
//!   few hundred real invoices over 50 customers, with due dates spread over a year,
//!   copied by SQL to the count (the copies are rows like the originals, so the report
//!   reads and groups as many rows as it would), then the report timed 30 times.
//!
//! `cargo bench -p selling --bench documents`. Targets (issue 20): ageing under 200 ms.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{Bench, Fixture, fixture, report, start};
use prefiq::Context;
use prefiq_data::entity::repo::{Repository, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Sql, SqlType};
use prefiq_data::testing::TestDatabase;
use serde_json::{Value, json};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn usd(cents: usize) -> Value {
    json!({"amount": format!("{}.{:02}", cents / 100, cents % 100), "currency": "USD"})
}

async fn invoice(bench: &Bench, f: &Fixture, n: usize, date: &str) -> (String, Value) {
    let lines: Vec<Value> = (0..3)
        .map(|i| json!({"item": f.items[(n + i) % f.items.len()], "qty": format!("{}", 1 + (n + i) % 5), "unit_price": usd(1_000 + (n * 37 + i * 11) % 9_000)}))
        .collect();
    let (status, created) = bench
        .call("POST", "/api/v1/resources/sales_invoice", Some(json!({"customer": f.customers[n % f.customers.len()], "company": f.company, "posting_date": date, "currency": "USD", "tax_template": f.template, "lines": lines})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "invoice {n}: {created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, submitted) = bench
        .call(
            "POST",
            &format!("/api/v1/resources/sales_invoice/{id}/submit"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "invoice {n}: {submitted}");
    let grand = created["grand_total"].clone();
    (id, grand)
}

async fn month(bench: &Bench, f: &Fixture) {
    let invoices = env("MONTH_INVOICES", 10_000);
    let payments = env("MONTH_PAYMENTS", 8_000).min(invoices);
    let mut made = Vec::with_capacity(invoices);
    let started = Instant::now();
    for n in 0..invoices {
        let day = 1 + n * 30 / invoices.max(1);
        made.push(invoice(bench, f, n, &format!("2026-03-{day:02}")).await);
    }
    let invoicing = started.elapsed();
    let started = Instant::now();
    for (n, (id, grand)) in made.iter().take(payments).enumerate() {
        let (status, created) = bench
            .call("POST", "/api/v1/resources/payment_entry", Some(json!({"payment_type": "Receive", "party_type": "Customer", "party": f.customers[n % f.customers.len()], "company": f.company, "posting_date": "2026-03-31", "account": f.bank, "currency": "USD", "paid_amount": grand, "allocations": [
                {"invoice_type": "Sales Invoice", "invoice": id, "allocated_amount": grand},
            ]})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "payment {n}: {created}");
        let pid = created["id"].as_str().unwrap();
        let (status, submitted) = bench
            .call(
                "POST",
                &format!("/api/v1/resources/payment_entry/{pid}/submit"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "payment {n}: {submitted}");
    }
    let paying = started.elapsed();
    println!(
        "a month: {invoices} invoices created and submitted in {:.1} s ({:.0} invoices/s), {payments} payments in {:.1} s ({:.0} payments/s), every answer 2xx",
        invoicing.as_secs_f64(),
        invoices as f64 / invoicing.as_secs_f64(),
        paying.as_secs_f64(),
        payments as f64 / paying.as_secs_f64(),
    );
}

/// The column names of `table`, on SQLite.
async fn columns(repository: &Repository, scope: &TenantScope, table: &str) -> Vec<String> {
    let table = table.to_owned();
    repository
        .read(
            scope,
            Box::new(move |conn| {
                let table = table.clone();
                Box::pin(async move {
                    let mut sql = Sql::default();
                    let t = sql.arg(Arg::Text(Some(table)));
                    sql.text = format!("SELECT name FROM pragma_table_info({t})");
                    Ok(conn
                        .fetch(&sql, &[SqlType::Text])
                        .await?
                        .into_iter()
                        .filter_map(|r| match r.into_iter().next() {
                            Some(Cell::Text(t)) => Some(t),
                            _ => None,
                        })
                        .collect())
                })
            }),
        )
        .await
        .unwrap()
}

async fn ageing(bench: &Bench, f: &Fixture) {
    let target = env("AGEING_INVOICES", 100_000);
    let real = 400.min(target);
    // Due dates spread over a year before the ageing date, so every bucket fills.
    for n in 0..real {
        let date = jiff::civil::date(2026, 1, 1)
            .checked_add(jiff::Span::new().days(i64::try_from(n * 360 / real).unwrap()))
            .unwrap();
        invoice(bench, f, n, &date.to_string()).await;
    }
    let repository = bench.app.resolver("bench").get::<Repository>().unwrap();
    let scope = TenantScope::new(&Context::system("en").with_tenant("bench")).unwrap();
    let columns = columns(&repository, &scope, "sales_invoice").await;
    let copies = target.div_ceil(real) - 1;
    let started = Instant::now();
    for copy in 1..=copies {
        let select: Vec<String> = columns
            .iter()
            .map(|c| match c.as_str() {
                "id" | "name" => format!("{c} || '-c{copy}'"),
                other => other.to_owned(),
            })
            .collect();
        let text = format!(
            "INSERT INTO sales_invoice ({}) SELECT {} FROM sales_invoice WHERE tenant_id = 'bench' AND docstatus = 1 AND name NOT LIKE '%-c%'",
            columns.join(", "),
            select.join(", ")
        );
        repository
            .in_transaction(
                &scope,
                Box::new(move |conn| {
                    let text = text.clone();
                    Box::pin(async move {
                        let sql = Sql {
                            text,
                            ..Sql::default()
                        };
                        conn.execute(&sql).await?;
                        Ok(())
                    })
                }),
            )
            .await
            .unwrap();
    }
    let total = real * (copies + 1);
    println!(
        "ageing: {total} submitted invoices ({real} real, the rest copied in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let path = format!(
        "/api/v1/trade/reports/receivable-ageing?company={}&as_of=2026-12-31",
        f.company
    );
    let mut latencies: Vec<Duration> = Vec::new();
    let mut answer = Value::Null;
    for _ in 0..30 {
        let t = Instant::now();
        let (status, body) = bench.call("GET", &path, None).await;
        latencies.push(t.elapsed());
        assert_eq!(status, StatusCode::OK, "{body}");
        answer = body;
    }
    let rows = answer["rows"].as_array().map_or(0, Vec::len);
    assert_eq!(rows, f.customers.len(), "{answer}");
    for bucket in ["range_0_30", "range_31_60", "range_61_90", "range_over_90"] {
        assert_ne!(answer["totals"][bucket], "0.00", "{bucket}: {answer}");
    }
    println!(
        "ageing totals: {} outstanding over {rows} customers",
        answer["totals"]["outstanding"]
    );
    report(&format!("receivable ageing, {total} invoices"), latencies);
}

async fn run() {
    let db = TestDatabase::sqlite().unwrap();
    let bench = start(&db).await;
    let f = fixture(&bench, 50).await;
    month(&bench, &f).await;
    // The ageing's own company, so the month's invoices (paid or not) do not count.
    let db2 = TestDatabase::sqlite().unwrap();
    let aged = start(&db2).await;
    let g = fixture(&aged, 50).await;
    ageing(&aged, &g).await;
    bench.app.shutdown().await.unwrap();
    aged.app.shutdown().await.unwrap();
    db.cleanup().await;
    db2.cleanup().await;
}
