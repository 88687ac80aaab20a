//! One journal entry over HTTP: `cargo bench -p accounting --bench posting`.
//!
//! Boots the installation (cortex and accounting) on embedded SQLite, signs in an
//! Accountant, and for `POSTING_BENCH_ENTRIES` entries (default 2,000) creates a draft of
//! three lines and submits it through the router with its whole middleware stack; prints
//! the latency percentiles of the submit (target: p99 under 10 ms) and of the create.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use prefiq_data::testing::TestDatabase;
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn main() {
    let entries: usize = std::env::var("POSTING_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = TestDatabase::sqlite().unwrap();
        // One user posts thousands of entries a minute here: above the default limit.
        let api = common::boot_with(&db, &[("PREFIQ__SERVER__RATE_LIMIT_PER_MINUTE", "10000000")]).await;
        let staff = common::staff(&api, "bench").await;
        let (_, company) = api
            .call("POST", "/api/v1/resources/company", &staff.manager, Some(json!({"company_name": "Bench", "abbr": "B", "currency": "USD"})))
            .await;
        let company = company["id"].as_str().unwrap().to_owned();
        api.call("POST", "/api/v1/resources/fiscal_year", &staff.manager, Some(json!({"year_name": "2026", "company": company, "start_date": "2026-01-01", "end_date": "2026-12-31"}))).await;
        let (_, accounts) = api
            .call("GET", &format!("/api/v1/resources/account?limit=500&filters={}", common::encode(&json!([["company", "=", company], ["is_group", "=", false]]).to_string())), &staff.accountant, None)
            .await;
        let leaves: Vec<String> = accounts["data"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect();
        let (mut creates, mut submits) = (Vec::with_capacity(entries), Vec::with_capacity(entries));
        for i in 0..entries + 100 {
            let lines = json!([
                {"account": leaves[i % leaves.len()], "debit": {"amount": "100.00", "currency": "USD"}},
                {"account": leaves[(i + 3) % leaves.len()], "credit": {"amount": "60.00", "currency": "USD"}},
                {"account": leaves[(i + 7) % leaves.len()], "credit": {"amount": "40.00", "currency": "USD"}},
            ]);
            let body = json!({"company": company, "posting_date": format!("2026-{:02}-15", i % 12 + 1), "lines": lines});
            let started = Instant::now();
            let (status, entry) = api.call("POST", "/api/v1/resources/journal_entry", &staff.accountant, Some(body)).await;
            let created = started.elapsed();
            assert!(status.is_success(), "{entry}");
            let id = entry["id"].as_str().unwrap();
            let started = Instant::now();
            let (status, body) = api.call("POST", &format!("/api/v1/resources/journal_entry/{id}/submit"), &staff.accountant, None).await;
            let submitted = started.elapsed();
            assert!(status.is_success(), "{body}");
            // The first hundred warm the caches.
            if i >= 100 {
                creates.push(created);
                submits.push(submitted);
            }
        }
        creates.sort();
        submits.sort();
        println!("journal entry of 3 lines over HTTP on SQLite, {entries} entries:");
        println!("  submit: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 < 10 ms)", percentile(&submits, 0.5), percentile(&submits, 0.99), percentile(&submits, 1.0));
        println!("  create: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", percentile(&creates, 0.5), percentile(&creates, 0.99), percentile(&creates, 1.0));
        api.app.shutdown().await.unwrap();
    });
}
