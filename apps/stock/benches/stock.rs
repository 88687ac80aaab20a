//! The stock benchmarks of issue 21, through the API of the app booted in process on a
//! temporary SQLite database (and again on PostgreSQL when `PREFIQ_TEST_POSTGRES_URL`
//! names a server). Every answer must be 2xx: the others are counted, and any fails the
//! run after the figures are printed.
//!
//! - **A 20-line issue**: a stock entry (Issue) of 20 lines, each a different FIFO item,
//!   out of one warehouse whose bins already hold `STOCK_BENCH_HISTORY` movements each
//!   (default 200), created and submitted `STOCK_BENCH_SAMPLES` times (default 300,
//!   after 30 of warm-up), in process and then over HTTP on a loopback socket: p50/p99
//!   of the create and of the submit, and documents/s; then the same for a delivery
//!   note of the same 20 lines. Target: the delivery note's p99 under 15 ms.
//! - **Repost**: one item in one warehouse with `STOCK_BENCH_LATER` movements (default
//!   100,000: receipts at varying rates, smaller issues, never short), loaded through
//!   the API, then a receipt dated before all of them at another rate: the time of its
//!   submit (which reposts the later issues and their postings), and the repost rows it
//!   wrote; FIFO, then moving average. Target: under 2 s.
//! - **Stock balance**: `STOCK_BENCH_ROWS` ledger rows (default 1,000,000) over 1,000
//!   items (`STOCK_BENCH_ITEMS`) × 10 warehouses, inserted by SQL in bulk on the app's
//!   own database (the items and warehouses are real, the vouchers made up, each bin's
//!   figures after each row consistent), then the report timed 20 times for the whole
//!   year and as of mid-year: p50/p99. Target: under 100 ms.
//!
//! `STOCK_BENCH_ONLY=issue,repost,balance` runs only the sections named.
//!
//! `CARGO_INCREMENTAL=0 cargo bench -p stock --bench stock --no-run`, then run the
//! binary it names (`target/release/deps/stock-*`), e.g. with `STOCK_BENCH_LATER=2000`.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Bench, Books, books, books_agree, date, day_number, entry, env, item, money, report, start, usd,
};
use prefiq_data::entity::sql::{Arg, Sql};
use prefiq_data::testing::TestDatabase;
use serde_json::{Value, json};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let failures = runtime.block_on(run());
    if failures > 0 {
        eprintln!("FAILED: {failures} answers were not 2xx, or the books disagreed");
        std::process::exit(1);
    }
}

/// The figures for the table at the end: section, measure, figure, target.
#[derive(Default)]
struct Summary(Vec<[String; 4]>);

impl Summary {
    fn add(&mut self, section: &str, measure: &str, figure: String, target: &str) {
        self.0.push([
            section.to_owned(),
            measure.to_owned(),
            figure,
            target.to_owned(),
        ]);
    }

    fn print(&self) {
        println!();
        println!(
            "{:<30} {:<44} {:>16}  target",
            "section", "measure", "figure"
        );
        println!("{}", "-".repeat(104));
        for [section, measure, figure, target] in &self.0 {
            println!("{section:<30} {measure:<44} {figure:>16}  {target}");
        }
    }
}

fn wanted(section: &str) -> bool {
    std::env::var("STOCK_BENCH_ONLY").map_or(true, |only| {
        only.split(',')
            .any(|s| s.trim().eq_ignore_ascii_case(section))
    })
}

/// Every section on a fresh database of the backend: the non-2xx answers (and books that
/// disagree) counted.
async fn backend(
    name: &'static str,
    fresh: &dyn Fn() -> TestDatabase,
    summary: &mut Summary,
) -> usize {
    let mut failures = 0;
    if wanted("issue") {
        let db = fresh();
        let mut bench = start(&db, name).await;
        twenty_line_issues(&mut bench, summary).await;
        failures += finish(bench, db, summary).await;
    }
    if wanted("repost") {
        let db = fresh();
        let bench = start(&db, name).await;
        let b = books(&bench, 1).await;
        for method in ["FIFO", "Moving Average"] {
            failures += repost(&bench, &b, method, summary).await;
        }
        failures += finish(bench, db, summary).await;
    }
    if wanted("balance") {
        let db = fresh();
        let bench = start(&db, name).await;
        stock_balance(&bench, summary).await;
        failures += finish(bench, db, summary).await;
    }
    failures
}

async fn finish(bench: Bench, db: TestDatabase, summary: &mut Summary) -> usize {
    let failures = bench.failures();
    summary.add(bench.backend, "non-2xx answers", failures.to_string(), "0");
    bench.app.shutdown().await.unwrap();
    db.cleanup().await;
    failures
}

async fn run() -> usize {
    let mut summary = Summary::default();
    let mut failures = backend("SQLite", &|| TestDatabase::sqlite().unwrap(), &mut summary).await;
    // PostgreSQL when configured: a fresh database per section.
    if std::env::var(prefiq_data::testing::POSTGRES_URL_VAR).is_ok() {
        let mut databases = Vec::new();
        for _ in 0..3 {
            databases.push(TestDatabase::postgres("stock bench").await.unwrap());
        }
        let databases = std::sync::Mutex::new(databases);
        failures += backend(
            "PostgreSQL",
            &|| databases.lock().unwrap().pop().unwrap(),
            &mut summary,
        )
        .await;
        for db in databases.into_inner().unwrap() {
            db.cleanup().await;
        }
    } else {
        println!("PostgreSQL skipped: set PREFIQ_TEST_POSTGRES_URL to run it too");
    }
    summary.print();
    if failures > 0 {
        println!("FAILED: {failures} non-2xx answers or disagreements, see above");
    }
    failures
}

// ---------------------------------------------------------------------------------------
// 1. A document of 20 lines out of one warehouse with a history.

/// Twenty FIFO items with `STOCK_BENCH_HISTORY` movements each in one warehouse (stock
/// entries of 20 lines, one per item, receipts and smaller issues), then the timed
/// documents.
async fn twenty_line_issues(bench: &mut Bench, summary: &mut Summary) {
    let history = env("STOCK_BENCH_HISTORY", 200).max(1);
    let samples = env("STOCK_BENCH_SAMPLES", 300).max(1);
    let b = books(bench, 1).await;
    let warehouse = b.warehouses[0].clone();
    let mut items = Vec::with_capacity(20);
    for i in 0..20 {
        items.push(item(bench, &b, &format!("ISSUE-{i:02}"), "FIFO").await);
    }
    // The history, dated before the timed documents: the first receipt holds enough for
    // every timed issue (of one unit per line), then receipts of 20 and issues of 3.
    let started = Instant::now();
    for k in 0..history {
        let day = 1 + k * 180 / history;
        let issue = k % 2 == 1;
        let lines: Vec<Value> = items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                if issue {
                    json!({"item": it, "qty": "3", "s_warehouse": warehouse})
                } else {
                    let qty = if k == 0 { "2000" } else { "20" };
                    let rate = 500 + (k * 37 + i * 101) % 1_000;
                    json!({"item": it, "qty": qty, "t_warehouse": warehouse, "basic_rate": usd(money(i64::try_from(rate).unwrap()))})
                }
            })
            .collect();
        let purpose = if issue { "Issue" } else { "Receipt" };
        bench
            .submit(
                "stock_entry",
                entry(&b, purpose, &date(day), Value::Array(lines)),
            )
            .await;
    }
    let loaded = started.elapsed();
    println!(
        "[{}] history: {history} stock entries of 20 lines ({} ledger rows) in {:.1} s",
        bench.backend,
        history * 20,
        loaded.as_secs_f64()
    );
    // The timed stock entries: an Issue of one unit of each item, after the history.
    let stock_entry = |_: usize| {
        let lines: Vec<Value> = items
            .iter()
            .map(|it| json!({"item": it, "qty": "1", "s_warehouse": warehouse}))
            .collect();
        entry(&b, "Issue", "2026-07-01", Value::Array(lines))
    };
    // The timed delivery notes: one unit of each item out of the same warehouse.
    let delivery_note = |_: usize| {
        let lines: Vec<Value> = items
            .iter()
            .map(|it| json!({"item": it, "qty": "1", "warehouse": warehouse}))
            .collect();
        json!({"customer": b.customer, "company": b.company, "posting_date": "2026-07-01", "expense_account": b.adjustment, "lines": lines})
    };
    let section = format!("{} 20 lines", bench.backend);
    // Each kind of document of 20 lines is one call of `twenty_lines` per transport: its
    // entity and its body builder. Add other documents (a purchase receipt, ...) here.
    for http in [false, true] {
        if http {
            bench.serve_http().await;
        }
        twenty_lines(
            bench,
            &section,
            "stock_entry",
            &stock_entry,
            samples,
            summary,
        )
        .await;
        twenty_lines(
            bench,
            &section,
            "delivery_note",
            &delivery_note,
            samples,
            summary,
        )
        .await;
    }
    bench.in_process();
}

/// `samples` documents of `entity` (after 30 of warm-up), each `body(n)`, created and
/// submitted one after the other over the bench's transport: p50/p99 of the create and
/// of the submit, and documents/s.
async fn twenty_lines(
    bench: &Bench,
    section: &str,
    entity: &str,
    body: &dyn Fn(usize) -> Value,
    samples: usize,
    summary: &mut Summary,
) {
    const WARM_UP: usize = 30;
    let transport = bench.transport.label();
    let mut creates = Vec::with_capacity(samples);
    let mut submits = Vec::with_capacity(samples);
    let mut started = Instant::now();
    for n in 0..WARM_UP + samples {
        if n == WARM_UP {
            started = Instant::now();
        }
        let (status, created, create) = bench
            .timed(
                "POST",
                &format!("/api/v1/resources/{entity}"),
                Some(body(n)),
            )
            .await;
        let Some(id) = created["id"].as_str().filter(|_| status.is_success()) else {
            continue;
        };
        let (_, _, submit) = bench
            .timed(
                "POST",
                &format!("/api/v1/resources/{entity}/{id}/submit"),
                None,
            )
            .await;
        if n >= WARM_UP {
            creates.push(create);
            submits.push(submit);
        }
    }
    let elapsed = started.elapsed();
    let per_second = samples as f64 / elapsed.as_secs_f64();
    let (c50, c99) = report(&format!("{entity} create, 20 lines, {transport}"), creates);
    let (s50, s99) = report(&format!("{entity} submit, 20 lines, {transport}"), submits);
    println!(
        "{samples} documents ({entity}) of 20 lines created and submitted {transport} in {:.1} s: {per_second:.0}/s",
        elapsed.as_secs_f64()
    );
    let what = |m: &str| format!("{entity} {m}, {transport}");
    summary.add(section, &what("create p50"), format!("{c50:.2} ms"), "");
    summary.add(section, &what("create p99"), format!("{c99:.2} ms"), "");
    summary.add(section, &what("submit p50"), format!("{s50:.2} ms"), "");
    summary.add(
        section,
        &what("submit p99"),
        format!("{s99:.2} ms"),
        "< 15 ms",
    );
    summary.add(
        section,
        &what("create+submit /s"),
        format!("{per_second:.0}/s"),
        "",
    );
}

// ---------------------------------------------------------------------------------------
// 2. Repost after a backdated receipt.

/// One item valued by `method` in the first warehouse: `STOCK_BENCH_LATER` movements
/// through the API, then a receipt dated before all of them, timed. The books must agree
/// with the stock after it: a disagreement counts as a failure.
async fn repost(bench: &Bench, b: &Books, method: &str, summary: &mut Summary) -> usize {
    let later = env("STOCK_BENCH_LATER", 100_000).max(1);
    let warehouse = &b.warehouses[0];
    let code = format!("REPOST-{}", method.replace(' ', "-").to_uppercase());
    let it = item(bench, b, &code, method).await;
    // Two receipts of 5 at rates 10.00 to 19.99, then an issue of 4, dated 2026-01-02
    // to 2026-12-31: never short.
    let started = Instant::now();
    let mut decile = Instant::now();
    let mut last_rate = 0.0;
    for n in 0..later {
        let day = 1 + n * 364 / later;
        let body = if n % 3 == 2 {
            entry(
                b,
                "Issue",
                &date(day),
                json!([{"item": it, "qty": "4", "s_warehouse": warehouse}]),
            )
        } else {
            let rate = 1_000 + i64::try_from(n * 7_919 % 1_000).unwrap();
            entry(
                b,
                "Receipt",
                &date(day),
                json!([{"item": it, "qty": "5", "t_warehouse": warehouse, "basic_rate": usd(money(rate))}]),
            )
        };
        bench.submit("stock_entry", body).await;
        let step = (later / 10).max(1);
        if (n + 1) % step == 0 {
            last_rate = step as f64 / decile.elapsed().as_secs_f64();
            eprintln!(
                "[{} {method}] {} of {later} movements loaded, the last {step} at {last_rate:.0}/s",
                bench.backend,
                n + 1,
            );
            decile = Instant::now();
        }
    }
    let load = started.elapsed();
    let load_rate = later as f64 / load.as_secs_f64();
    let item_rows = format!(
        "SELECT COUNT(*) FROM stock_ledger_entry WHERE tenant_id = {{tenant}} AND item = '{it}'"
    );
    let reposts = format!("{item_rows} AND adjusts IS NOT NULL");
    let vouchers = format!(
        "SELECT COUNT(DISTINCT voucher_id) FROM stock_ledger_entry WHERE tenant_id = {{tenant}} AND item = '{it}' AND adjusts IS NOT NULL"
    );
    let (rows_before, reposts_before, vouchers_before) = (
        bench.count(&item_rows).await,
        bench.count(&reposts).await,
        bench.count(&vouchers).await,
    );
    // The backdated receipt: 50 at 99.99, before every later movement.
    let id = bench
        .create(
            "stock_entry",
            entry(
                b,
                "Receipt",
                "2026-01-01",
                json!([{"item": it, "qty": "50", "t_warehouse": warehouse, "basic_rate": usd("99.99".into())}]),
            ),
        )
        .await;
    let (status, answer, took) = bench
        .timed(
            "POST",
            &format!("/api/v1/resources/stock_entry/{id}/submit"),
            None,
        )
        .await;
    if !status.is_success() {
        println!("the backdated receipt was refused: {status} {answer}");
    }
    let written = bench.count(&reposts).await - reposts_before;
    let revouchered = bench.count(&vouchers).await - vouchers_before;
    let (stock, books) = books_agree(bench, b, "2026-12-31").await;
    let agree = stock == books;
    println!(
        "[{}] repost, {method}: {later} later movements ({rows_before} ledger rows) loaded in {:.1} s ({load_rate:.0}/s overall, {last_rate:.0}/s for the last tenth); the backdated receipt's submit took {:.1} ms and wrote {written} repost rows over {revouchered} vouchers; stock {} {} books {}",
        bench.backend,
        load.as_secs_f64(),
        took.as_secs_f64() * 1000.0,
        money(stock),
        if agree { "=" } else { "!=" },
        money(books),
    );
    let section = format!("{} repost, {method}", bench.backend);
    summary.add(&section, "later movements (N)", later.to_string(), "100000");
    summary.add(
        &section,
        "load time",
        format!("{:.1} s", load.as_secs_f64()),
        "",
    );
    summary.add(
        &section,
        "load rate, overall",
        format!("{load_rate:.0}/s"),
        "",
    );
    summary.add(
        &section,
        "load rate, last tenth",
        format!("{last_rate:.0}/s"),
        "",
    );
    summary.add(
        &section,
        "backdated receipt submit (repost)",
        format!("{:.1} ms", took.as_secs_f64() * 1000.0),
        "< 2 s at N=100000",
    );
    summary.add(&section, "repost rows written", written.to_string(), "");
    summary.add(&section, "vouchers reposted", revouchered.to_string(), "");
    summary.add(
        &section,
        "stock value = stock account",
        if agree { "yes" } else { "NO" }.to_owned(),
        "yes",
    );
    usize::from(!agree)
}

// ---------------------------------------------------------------------------------------
// 3. The stock balance over a large ledger.

/// The ledger's columns, in the order the bulk insert gives them.
const COLUMNS: &str = "tenant_id, company, item, warehouse, posting_date, day, voucher_type, voucher_id, voucher_line, is_reversal, adjusts, qty_change, incoming_rate, valuation_rate, qty_after, stock_value_after, stock_value_change, created_at";

/// Rows per INSERT and INSERTs per transaction.
const ROWS_PER_STATEMENT: usize = 500;
const STATEMENTS_PER_TRANSACTION: usize = 100;

/// A bin's figures as its rows leave them: thousandths held, value (minor units).
#[derive(Default, Clone, Copy)]
struct Held {
    qty: i64,
    value: i64,
}

async fn stock_balance(bench: &Bench, summary: &mut Summary) {
    let rows = env("STOCK_BENCH_ROWS", 1_000_000).max(1);
    let item_count = env("STOCK_BENCH_ITEMS", 1_000).max(1);
    let b = books(bench, 10).await;
    let started = Instant::now();
    let mut items = Vec::with_capacity(item_count);
    for i in 0..item_count {
        let method = if i % 2 == 0 { "FIFO" } else { "Moving Average" };
        items.push(item(bench, &b, &format!("BAL-{i:04}"), method).await);
    }
    println!(
        "[{}] balance: {item_count} items and {} warehouses made in {:.1} s",
        bench.backend,
        b.warehouses.len(),
        started.elapsed().as_secs_f64()
    );
    let bins: Vec<(&str, &str)> = items
        .iter()
        .flat_map(|i| b.warehouses.iter().map(move |w| (i.as_str(), w.as_str())))
        .collect();
    let rounds = rows.div_ceil(bins.len());
    let mid_day = day_number(182);
    // Rows round by round (every bin once a round, dated later each round): receipts of
    // 10 at varying rates, every third row an issue of 4 at the bin's valuation rate.
    let mut held = vec![Held::default(); bins.len()];
    let mut mid = vec![Held::default(); bins.len()];
    let mut batch = Vec::with_capacity(STATEMENTS_PER_TRANSACTION);
    let mut sql = Sql::default();
    let mut values = Vec::with_capacity(ROWS_PER_STATEMENT);
    let (repository, scope) = bench.repository();
    let now = "2026-12-31T12:00:00.000000Z";
    let started = Instant::now();
    let mut written = 0usize;
    'rounds: for r in 0..rounds {
        let days = r * 364 / rounds.max(1);
        let (posting_date, day) = (date(days), day_number(days));
        for (n, (it, wh)) in bins.iter().enumerate() {
            if written == rows {
                break 'rounds;
            }
            let h = &mut held[n];
            let (qty_change, incoming_rate, value_change) = if r % 3 == 2 && h.qty > 0 {
                let out = -4_000;
                (out, 0, div_round(h.value * out, h.qty))
            } else {
                let rate = 500 + i64::try_from((n * 31 + r * 17) % 1_000).unwrap();
                (10_000, rate, 10 * rate)
            };
            h.qty += qty_change;
            h.value += value_change;
            let valuation_rate = if h.qty > 0 {
                div_round(h.value * 1_000, h.qty)
            } else {
                0
            };
            if day <= mid_day {
                mid[n] = *h;
            }
            let text = |s: &str| Arg::Text(Some(s.to_owned()));
            let int = |v: i64| Arg::Int(Some(v));
            let cells = [
                sql.arg(text(common::TENANT)),
                sql.arg(text(&b.company)),
                sql.arg(text(it)),
                sql.arg(text(wh)),
                sql.arg(text(&posting_date)),
                sql.arg(int(day)),
                sql.arg(text("Stock Entry")),
                sql.arg(text(&format!("BENCH-{r}-{n}"))),
                sql.arg(int(0)),
                sql.arg(int(0)),
                sql.arg(Arg::Int(None)),
                sql.arg(int(qty_change)),
                sql.arg(int(incoming_rate)),
                sql.arg(int(valuation_rate)),
                sql.arg(int(h.qty)),
                sql.arg(int(h.value)),
                sql.arg(int(value_change)),
                sql.arg(text(now)),
            ];
            values.push(format!("({})", cells.join(", ")));
            written += 1;
            if values.len() == ROWS_PER_STATEMENT {
                sql.text = format!(
                    "INSERT INTO stock_ledger_entry ({COLUMNS}) VALUES {}",
                    values.join(", ")
                );
                batch.push(std::mem::take(&mut sql));
                values.clear();
                if batch.len() == STATEMENTS_PER_TRANSACTION {
                    insert(&repository, &scope, std::mem::take(&mut batch)).await;
                }
            }
        }
    }
    if !values.is_empty() {
        sql.text = format!(
            "INSERT INTO stock_ledger_entry ({COLUMNS}) VALUES {}",
            values.join(", ")
        );
        batch.push(sql);
    }
    insert(&repository, &scope, batch).await;
    let loaded = started.elapsed();
    let count = bench
        .count("SELECT COUNT(*) FROM stock_ledger_entry WHERE tenant_id = {tenant}")
        .await;
    println!(
        "[{}] balance: {count} ledger rows over {} bins inserted in {:.1} s ({:.0} rows/s)",
        bench.backend,
        bins.len(),
        loaded.as_secs_f64(),
        written as f64 / loaded.as_secs_f64()
    );
    let section = format!("{} stock balance", bench.backend);
    summary.add(&section, "ledger rows", count.to_string(), "1000000");
    for (label, as_of, figures) in [
        ("the year", "2026-12-31", &held),
        ("mid-year", &date(182)[..], &mid),
    ] {
        let expected_rows = figures
            .iter()
            .filter(|h| h.qty != 0 || h.value != 0)
            .count();
        let expected_value: i64 = figures.iter().map(|h| h.value).sum();
        let path = format!(
            "/api/v1/stock/reports/stock-balance?company={}&as_of={as_of}",
            b.company
        );
        let mut latencies: Vec<Duration> = Vec::new();
        let mut answer = Value::Null;
        for n in 0..22 {
            let (status, body, took) = bench.timed("GET", &path, None).await;
            // Two of warm-up.
            if n >= 2 && status.is_success() {
                latencies.push(took);
            }
            answer = body;
        }
        let got_rows = answer["rows"].as_array().map_or(0, Vec::len);
        let got_value = answer["total_value"].as_str().unwrap_or("").to_owned();
        let right = got_rows == expected_rows && got_value == money(expected_value);
        let (p50, p99) = report(
            &format!("stock balance, {label} (as_of {as_of}), {count} rows"),
            latencies,
        );
        println!(
            "  {got_rows} rows answered (expected {expected_rows}), total value {got_value} (expected {}){}",
            money(expected_value),
            if right { "" } else { "  MISMATCH" }
        );
        summary.add(
            &section,
            &format!("as_of {as_of}: p50"),
            format!("{p50:.1} ms"),
            "",
        );
        summary.add(
            &section,
            &format!("as_of {as_of}: p99"),
            format!("{p99:.1} ms"),
            "< 100 ms",
        );
        summary.add(
            &section,
            &format!("as_of {as_of}: rows, total as inserted"),
            if right { "yes" } else { "NO" }.to_owned(),
            "yes",
        );
    }
}

/// `numerator / denominator` rounded half away from zero.
fn div_round(numerator: i64, denominator: i64) -> i64 {
    let (n, d) = (i128::from(numerator), i128::from(denominator));
    let q = (2 * n.abs() + d.abs()) / (2 * d.abs());
    i64::try_from(if (n < 0) != (d < 0) { -q } else { q }).unwrap()
}

/// Runs the statements in one transaction on the app's database.
async fn insert(
    repository: &Arc<prefiq_data::entity::repo::Repository>,
    scope: &prefiq_data::entity::repo::TenantScope,
    batch: Vec<Sql>,
) {
    if batch.is_empty() {
        return;
    }
    let batch = Arc::new(batch);
    repository
        .in_transaction(
            scope,
            Box::new(move |conn| {
                let batch = batch.clone();
                Box::pin(async move {
                    for statement in batch.iter() {
                        conn.execute_bulk(statement).await?;
                    }
                    Ok(())
                })
            }),
        )
        .await
        .unwrap();
}
