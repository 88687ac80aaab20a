//! Plain-text accounting import and export: hledger's balances equal the imported books
//! account by account and currency by currency; an invalid transaction writes nothing and
//! is named by its line; export then import gives the same balances.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use accounting::books::Books;
use accounting::import::{ImportError, ImportOptions, import_file};
use accounting::journal::{Generate, Quantity, generate};
use prefiq::Context;
use prefiq_data::entity::repo::TenantScope;
use prefiq_data::entity::value::currency_scale;
use prefiq_data::testing::TestDatabase;

fn scope(tenant: &str) -> TenantScope {
    TenantScope::new(&Context::system("en").with_tenant(tenant)).unwrap()
}

fn options(company: &str) -> ImportOptions {
    ImportOptions {
        company: company.into(),
        create_currency: Some("USD".into()),
        skip_invalid: false,
    }
}

/// `hledger balance` as {account: {currency: minor units}}, or `None` without hledger.
fn hledger_balances(file: &Path) -> Option<BTreeMap<String, BTreeMap<String, i64>>> {
    let output = match std::process::Command::new("hledger")
        .arg("-f")
        .arg(file)
        .args(["balance", "--flat", "-N", "-O", "csv"])
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs hledger (Debian's package), but it cannot run: {e}"
            );
            eprintln!("SKIPPED the hledger comparison: hledger is not installed ({e})");
            return None;
        }
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines().skip(1) {
        let (account, amounts) = line.split_once("\",\"").unwrap();
        let account = account.trim_matches('"').to_owned();
        let mut by_currency = BTreeMap::new();
        for amount in amounts.trim_matches('"').split(", ") {
            if amount == "0" {
                continue;
            }
            let (quantity, currency) = amount.rsplit_once(' ').unwrap();
            let quantity = Quantity::parse(quantity).unwrap();
            let minor = i64::try_from(quantity.rescale(currency_scale(currency)).unwrap()).unwrap();
            if minor != 0 {
                by_currency.insert(currency.to_owned(), minor);
            }
        }
        if !by_currency.is_empty() {
            out.insert(account, by_currency);
        }
    }
    Some(out)
}

#[tokio::test]
async fn hledger_balance_equals_the_imported_books_account_by_account() {
    let db = TestDatabase::sqlite().unwrap();
    let api = common::boot(&db).await;
    let books = api.app.resolver("test").get::<Books>().unwrap();
    for (seed, commodities) in [
        (7u64, vec!["USD", "EUR", "JPY"]),
        (8, vec!["USD", "GBP", "KWD", "JPY"]),
    ] {
        let path = db.root().join(format!("generated-{seed}.journal"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let generated = Generate {
            postings: 6_000,
            seed,
            commodities: commodities.into_iter().map(str::to_owned).collect(),
            elide: true,
            start_year: 2024,
        };
        generate(&mut out, &generated).unwrap();
        drop(out);
        let scope = scope("books");
        let company = format!("Generated {seed}");
        let report = import_file(&books, &scope, &path, &options(&company), &|_| {})
            .await
            .unwrap();
        assert!(report.postings >= 6_000, "{report:?}");
        assert!(report.invalid.is_empty(), "{report:?}");
        let ours = accounting::reports::balances_by_currency(&books, &scope, &company)
            .await
            .unwrap();
        let Some(theirs) = hledger_balances(&path) else {
            return;
        };
        assert_eq!(ours, theirs, "seed {seed}");
        let tb = accounting::reports::trial_balance(
            &books,
            &scope,
            &company,
            Some("2000-01-01"),
            "2030-12-31",
        )
        .await
        .unwrap();
        assert_eq!(
            tb["totals"]["debit"], tb["totals"]["credit"],
            "converted to USD the books still balance"
        );
    }
    api.app.shutdown().await.unwrap();
}

const JOURNAL: &str = "\
account assets:bank
account income:sales

2026-01-02 Sale
    assets:bank        100.00 USD
    income:sales

2026-01-03 Does not balance
    assets:bank        100.00 USD
    income:sales      -90.00 USD

2026-01-04 Shares
    assets:bank        3 AAPL
    income:sales      -3 AAPL

2026-01-05 Another sale
    assets:bank        50.00 USD
    income:sales
";

#[tokio::test]
async fn an_invalid_transaction_writes_nothing_and_is_named_by_its_line() {
    let db = TestDatabase::sqlite().unwrap();
    let api = common::boot(&db).await;
    let books = api.app.resolver("test").get::<Books>().unwrap();
    let file = db.root().join("bad.journal");
    std::fs::write(&file, JOURNAL).unwrap();
    let scope = scope("books");
    let outcome = import_file(&books, &scope, &file, &options("Shop"), &|_| {}).await;
    let Err(ImportError::Invalid(errors)) = outcome else {
        panic!("expected invalid, got {outcome:?}");
    };
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(
        lines,
        [8, 14],
        "the header of the unbalanced one, the posting of the AAPL one: {errors:?}"
    );
    assert!(
        errors[1].message.contains("`AAPL` is not a currency"),
        "{errors:?}"
    );
    let balances = accounting::reports::balances_by_currency(&books, &scope, "Shop")
        .await
        .unwrap();
    assert!(balances.is_empty(), "nothing was written: {balances:?}");

    let mut skipping = options("Shop");
    skipping.skip_invalid = true;
    let report = import_file(&books, &scope, &file, &skipping, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        (report.transactions, report.postings, report.invalid.len()),
        (2, 4, 2),
        "{report:?}"
    );
    let balances = accounting::reports::balances_by_currency(&books, &scope, "Shop")
        .await
        .unwrap();
    assert_eq!(balances["assets:bank"]["USD"], 15_000);
    assert_eq!(balances["income:sales"]["USD"], -15_000);

    // What was imported comes out in the same format and goes into another company
    // with the same balances.
    let mut exported = Vec::new();
    let written = accounting::import::export(&books, &scope, "Shop", &mut exported)
        .await
        .unwrap();
    assert_eq!(written, 2);
    let text = String::from_utf8(exported).unwrap();
    let copy = db.root().join("copy.journal");
    std::fs::write(&copy, &text).unwrap();
    import_file(&books, &scope, &copy, &options("Copy"), &|_| {})
        .await
        .unwrap();
    let again = accounting::reports::balances_by_currency(&books, &scope, "Copy")
        .await
        .unwrap();
    assert_eq!(again, balances, "{text}");
    if let Some(theirs) = hledger_balances(&copy) {
        assert_eq!(theirs, balances, "hledger reads the export: {text}");
    }
    api.app.shutdown().await.unwrap();
}
