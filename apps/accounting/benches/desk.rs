//! The desk's list page: `cargo bench -p accounting --bench desk`.
//!
//! Boots the installation (cortex and accounting) on embedded SQLite, seeds 200 journal
//! entries, signs in through the login form, and renders `/app/e/journal_entry?limit=50`
//! (50 rows, their company link titles, the count, sort links and bulk checkboxes) through
//! the router with its whole middleware stack, `DESK_BENCH_RENDERS` times (default 2,000).
//! In the same run, as the baseline, it asks the API for the same 50 rows as JSON. Prints
//! the percentiles of both (target: the page's p99 under 20 ms) and their ratio.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::browser::Browser;
use prefiq_data::testing::TestDatabase;
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn summary(name: &str, mut times: Vec<Duration>) -> f64 {
    times.sort();
    let p99 = percentile(&times, 0.99);
    println!(
        "{name:<40} n={:<6} p50 {:>7.3} ms  p90 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        p99,
        percentile(&times, 1.0)
    );
    p99
}

fn main() {
    let renders: usize = std::env::var("DESK_BENCH_RENDERS")
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
        // Each page is several API calls of one user: above the default per-minute limit.
        let api = common::boot_with(&db, &[("PREFIQ__SERVER__RATE_LIMIT_PER_MINUTE", "10000000")]).await;
        let staff = common::staff(&api, "bench").await;
        let (_, company) = api
            .call("POST", "/api/v1/resources/company", &staff.manager, Some(json!({"company_name": "Bench Ltd", "abbr": "B", "currency": "USD"})))
            .await;
        let company = company["id"].as_str().unwrap().to_owned();
        for i in 0..200 {
            let body = json!({"company": company, "posting_date": format!("2026-{:02}-15", i % 12 + 1), "title": format!("Entry {i}"), "lines": []});
            let (status, entry) = api.call("POST", "/api/v1/resources/journal_entry", &staff.accountant, Some(body)).await;
            assert!(status.is_success(), "{entry}");
        }
        let browser = Browser::new(&api, "bench");
        browser.login("accountant@bench.test", "correct horse battery").await;
        let page = browser.get("/app/e/journal_entry?limit=50").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.body.matches("name=\"ids\"").count(), 50, "50 rows with their checkboxes");
        assert!(page.body.contains("Bench Ltd"), "link titles are shown");
        for _ in 0..100 {
            browser.get("/app/e/journal_entry?limit=50").await;
        }
        let mut pages = Vec::with_capacity(renders);
        let mut json_pages = Vec::with_capacity(renders);
        for _ in 0..renders {
            let started = Instant::now();
            let page = browser.get("/app/e/journal_entry?limit=50").await;
            pages.push(started.elapsed());
            assert_eq!(page.status, StatusCode::OK);
            let started = Instant::now();
            let (status, _) = api.call("GET", "/api/v1/resources/journal_entry?limit=50&total=true&order_by=modified_at%20desc", &staff.accountant, None).await;
            json_pages.push(started.elapsed());
            assert_eq!(status, StatusCode::OK);
        }
        println!("desk list page of 50 rows, SQLite, in process through the router (2 worker threads)");
        let page_p99 = summary("GET /app/e/journal_entry?limit=50 (HTML)", pages);
        let json_p99 = summary("GET /api/v1/resources/journal_entry (JSON)", json_pages);
        println!("p99 ratio page / API: {:.2}", page_p99 / json_p99);
        println!("target: page p99 under 20 ms: {}", if page_p99 < 20.0 { "met" } else { "MISSED" });
        db.cleanup().await;
    });
}
