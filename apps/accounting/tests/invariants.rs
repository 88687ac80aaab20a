//! Property tests of the ledger's invariants on random valid entries: the trial balance
//! nets to zero, every balance-sheet column balances, the general ledger's closing
//! balance is the trial balance's, and after the fiscal year is closed the change in
//! retained earnings equals the year's profit and loss.
#![allow(clippy::unwrap_used)]

mod common;

use accounting::books::Books;
use prefiq::Context;
use prefiq_data::entity::repo::{ListQuery, Repository, TenantScope};
use prefiq_data::testing::TestDatabase;
use proptest::prelude::*;
use serde_json::{Value, json};

/// The leaves entries post to, of the standard chart.
const LEAVES: &[&str] = &[
    "assets:current:bank",
    "assets:current:receivable",
    "liabilities:current:payable",
    "equity:capital",
    "income:sales",
    "income:services",
    "expenses:rent",
    "expenses:salaries",
];

/// (debit leaf, credit leaf, amount in cents, month, second line split).
type Entry = (usize, usize, i64, u32, bool);

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec(
        (
            0..LEAVES.len(),
            0..LEAVES.len(),
            1i64..10_000_000,
            1u32..=12,
            any::<bool>(),
        ),
        1..10,
    )
}

fn cents(text: &Value) -> i64 {
    let text = text.as_str().unwrap();
    let negative = text.starts_with('-');
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let value: i64 = digits.parse().unwrap();
    if negative { -value } else { value }
}

async fn check_case(repository: &Repository, books: &Books, n: usize, case: &[Entry]) {
    let scope = TenantScope::new(&Context::system("en").with_tenant("props")).unwrap();
    let company = repository
        .create(&scope, "company", json!({"company_name": format!("Case {n}"), "abbr": format!("C{n}"), "currency": "USD"}))
        .await
        .unwrap();
    let company = company["id"].as_str().unwrap().to_owned();
    let year = repository
        .create(&scope, "fiscal_year", json!({"year_name": format!("C{n} 2026"), "company": company, "start_date": "2026-01-01", "end_date": "2026-12-31"}))
        .await
        .unwrap();
    let accounts = books.accounts(&scope, &company).await.unwrap();
    let id = |path: &str| accounts.iter().find(|a| a.path == path).unwrap().id.clone();
    for (debit, credit, amount, month, split) in case {
        let amount_text = |v: i64| format!("{}.{:02}", v / 100, v % 100);
        let mut lines = vec![
            json!({"account": id(LEAVES[*debit]), "debit": {"amount": amount_text(*amount), "currency": "USD"}}),
        ];
        if *split && *amount > 1 {
            let half = amount / 2;
            lines.push(json!({"account": id(LEAVES[*credit]), "credit": {"amount": amount_text(half), "currency": "USD"}}));
            lines.push(json!({"account": id(LEAVES[(*credit + 1) % LEAVES.len()]), "credit": {"amount": amount_text(amount - half), "currency": "USD"}}));
        } else {
            lines.push(json!({"account": id(LEAVES[*credit]), "credit": {"amount": amount_text(*amount), "currency": "USD"}}));
        }
        let entry = repository
            .create(&scope, "journal_entry", json!({"company": company, "posting_date": format!("2026-{month:02}-15"), "lines": lines}))
            .await
            .unwrap();
        repository
            .submit(&scope, "journal_entry", entry["id"].as_str().unwrap())
            .await
            .unwrap();
    }
    let tb = accounting::reports::trial_balance(books, &scope, &company, None, "2026-12-31")
        .await
        .unwrap();
    assert_eq!(
        tb["totals"]["debit"], tb["totals"]["credit"],
        "the trial balance nets to zero"
    );
    assert_eq!(
        tb["totals"]["closing_debit"],
        tb["totals"]["closing_credit"]
    );
    let bs = accounting::reports::balance_sheet(books, &scope, &company, "2026-12-31")
        .await
        .unwrap();
    for column in bs["summary"].as_array().unwrap() {
        assert_eq!(column["balanced"], true, "{column}");
    }
    let bank = id("assets:current:bank");
    let ledger = accounting::reports::general_ledger(
        books,
        &scope,
        &accounting::reports::LedgerFilter {
            company: company.clone(),
            account: Some(bank.clone()),
            from: Some("2026-01-01".into()),
            to: Some("2026-12-31".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let row = tb["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["account"] == bank.as_str())
        .unwrap();
    assert_eq!(
        cents(&ledger["closing"]),
        cents(&row["closing_debit"]) - cents(&row["closing_credit"]),
        "the GL ends where the TB does"
    );
    let pl = accounting::reports::profit_and_loss(books, &scope, &company, None, "2026-12-31")
        .await
        .unwrap();
    let profit = cents(&pl["net_profit"]);
    let summed: i64 = pl["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| cents(&c["net_profit"]))
        .sum();
    assert_eq!(profit, summed, "the columns add up to the total");
    books
        .close_fiscal_year(&scope, year["id"].as_str().unwrap())
        .await
        .unwrap();
    let after = accounting::reports::trial_balance(books, &scope, &company, None, "2026-12-31")
        .await
        .unwrap();
    let retained = after["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["account_path"] == "equity:retained-earnings")
        .unwrap();
    assert_eq!(
        cents(&retained["closing_credit"]) - cents(&retained["closing_debit"]),
        profit,
        "P&L equals the change in retained earnings"
    );
    for root in ["income", "expenses"] {
        let r = after["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["account_path"] == root)
            .unwrap();
        assert_eq!(
            (cents(&r["closing_debit"]), cents(&r["closing_credit"])),
            (0, 0),
            "{root} is closed"
        );
    }
    let periods = repository
        .list(
            &scope,
            "accounting_period",
            &ListQuery {
                limit: Some(50),
                filters: Some(json!([["company", "=", company], ["status", "=", "Open"]])),
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(periods.data.is_empty(), "every period is closed");
}

#[test]
fn random_entries_keep_the_books_in_agreement() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = TestDatabase::sqlite().unwrap();
    let api = runtime.block_on(common::boot(&db));
    let repository = api.app.resolver("test").get::<Repository>().unwrap();
    let books = api.app.resolver("test").get::<Books>().unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 8,
        ..ProptestConfig::default()
    });
    let n = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&entries(), |case| {
            let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            runtime.block_on(check_case(&repository, &books, n, &case));
            Ok(())
        })
        .unwrap();
    runtime.block_on(api.app.shutdown()).unwrap();
}
