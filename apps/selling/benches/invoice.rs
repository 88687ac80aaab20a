//! Sales invoices under load on SQLite: each round creates an invoice of 10 lines with
//! two taxes, then submits it, which computes its figures and posts its journal entry in
//! the same transaction. The rounds run twice in one run: in process through the router
//! (the server's own figures), then over HTTP on a loopback socket served by
//! `axum::serve` with a keep-alive client (what a client sees). Every non-2xx answer
//! fails the run.
//!
//! `cargo bench -p selling --bench invoice` (`INVOICE_BENCH_ROUNDS`, default 1,000).
//! Target (issue 20): the submit's p99 over HTTP under 15 ms.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

mod common;

use std::time::Instant;

use axum::http::StatusCode;
use common::{Bench, fixture, report, start};
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

async fn run() {
    let rounds: usize = std::env::var("INVOICE_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    let db = TestDatabase::sqlite().unwrap();
    let mut bench = start(&db).await;
    let f = fixture(&bench, 1).await;
    let (items, customer, company, template) = (&f.items, &f.customers[0], &f.company, &f.template);
    rounds_of_invoices(
        &bench,
        rounds,
        items,
        customer,
        company,
        template,
        "in process",
    )
    .await;
    // The same over a loopback socket: a served router and a keep-alive HTTP client.
    bench.serve_http().await;
    rounds_of_invoices(
        &bench,
        rounds,
        items,
        customer,
        company,
        template,
        "over HTTP",
    )
    .await;
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
    bench.app.shutdown().await.unwrap();
    db.cleanup().await;
}

/// `rounds` invoices created and submitted one after the other, with their latencies.
async fn rounds_of_invoices(
    bench: &Bench,
    rounds: usize,
    items: &[String],
    customer: &str,
    company: &str,
    template: &str,
    transport: &str,
) {
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
    report(&format!("create, 10 lines, 2 taxes, {transport}"), creates);
    report(
        &format!("submit (figures + postings), {transport}"),
        submits,
    );
    println!(
        "{rounds} invoices created and submitted {transport} in {:.1} s: {:.0} invoices/s, every answer 2xx",
        elapsed.as_secs_f64(),
        rounds as f64 / elapsed.as_secs_f64()
    );
}
