//! Property test of the books' referential integrity (issue 15): random interleavings of
//! entries created, submitted, cancelled and deleted, periods closed, reopened, edited
//! and deleted, and master data (accounts, the fiscal year, the company, currencies and
//! rates) edited and deleted, as the system, whom no permission stops. Whatever succeeds
//! and whatever is refused, afterwards no posting is without its company, account,
//! period, document or rate, no posting lies outside its period's dates, no closed period
//! gained or lost a posting, and the ledger still balances.
#![allow(clippy::unwrap_used)]

mod common;

use accounting::books::Books;
use prefiq::Context;
use prefiq_data::entity::repo::{Repository, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Sql, SqlType};
use prefiq_data::testing::databases;
use proptest::prelude::*;
use serde_json::json;

/// Leaves entries post to, of the standard chart.
const LEAVES: &[&str] = &[
    "assets:current:bank",
    "income:sales",
    "expenses:rent",
    "liabilities:current:payable",
];

/// One step of an interleaving.
#[derive(Debug, Clone)]
enum Step {
    /// A draft: debit leaf, credit leaf, cents, month; in EUR at the stored rate.
    Draft(usize, usize, i64, u32, bool),
    Submit(usize),
    Cancel(usize),
    DeleteEntry(usize),
    Close(u32),
    Reopen(u32),
    /// Moves a period's end date, or renames it, or sets its status.
    EditPeriod(u32, u8),
    DeletePeriod(u32),
    DeleteAccount(usize),
    EditYear(u8),
    DeleteYear,
    CloseYear,
    DeleteCompany,
    ChangeCurrency,
    DeleteCurrency(bool),
    DeleteRate,
}

fn step() -> impl Strategy<Value = Step> {
    let month = 1u32..=3;
    prop_oneof![
        6 => (0..LEAVES.len(), 0..LEAVES.len(), 1i64..100_000, month.clone(), any::<bool>())
            .prop_map(|(d, c, a, m, eur)| Step::Draft(d, c, a, m, eur)),
        6 => (0usize..8).prop_map(Step::Submit),
        2 => (0usize..8).prop_map(Step::Cancel),
        1 => (0usize..8).prop_map(Step::DeleteEntry),
        3 => month.clone().prop_map(Step::Close),
        2 => month.clone().prop_map(Step::Reopen),
        2 => (month.clone(), 0u8..3).prop_map(|(m, k)| Step::EditPeriod(m, k)),
        1 => month.prop_map(Step::DeletePeriod),
        2 => (0..LEAVES.len()).prop_map(Step::DeleteAccount),
        1 => (0u8..2).prop_map(Step::EditYear),
        1 => Just(Step::DeleteYear),
        1 => Just(Step::CloseYear),
        1 => Just(Step::DeleteCompany),
        1 => Just(Step::ChangeCurrency),
        1 => any::<bool>().prop_map(Step::DeleteCurrency),
        1 => Just(Step::DeleteRate),
    ]
}

/// What one case set up.
struct Case {
    scope: TenantScope,
    company: String,
    year: String,
    periods: Vec<String>,
    accounts: Vec<String>,
    bank_eur: String,
    currencies: [String; 2],
    rate: String,
    entries: Vec<String>,
}

async fn set_up(repository: &Repository, books: &Books, n: usize) -> Case {
    let scope = TenantScope::new(&Context::system("en").with_tenant("integrity")).unwrap();
    let mut currencies = Vec::new();
    for code in ["USD", "EUR"] {
        // The currencies are shared by the cases of one tenant: made once.
        let existing = repository
            .list(
                &scope,
                "currency",
                &prefiq_data::entity::repo::ListQuery {
                    filters: Some(json!([["code", "=", code]])),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let id = match existing.data.first() {
            Some(row) => row["id"].as_str().unwrap().to_owned(),
            None => repository
                .create(
                    &scope,
                    "currency",
                    json!({"code": code, "fraction_digits": 2}),
                )
                .await
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        };
        currencies.push(id);
    }
    let company = repository
        .create(&scope, "company", json!({"company_name": format!("Case {n}"), "abbr": format!("C{n}"), "currency": "USD"}))
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let year = repository
        .create(&scope, "fiscal_year", json!({"year_name": format!("C{n} 2026"), "company": company, "start_date": "2026-01-01", "end_date": "2026-12-31"}))
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let periods = books.periods(&scope, &company).await.unwrap();
    let chart = books.accounts(&scope, &company).await.unwrap();
    let id = |path: &str| chart.iter().find(|a| a.path == path).unwrap().id.clone();
    let bank_eur = repository
        .create(&scope, "account", json!({"account_name": "Bank EUR", "account_path": "assets:current:bank-eur", "company": company, "root_type": "Asset", "account_type": "Bank", "currency": "EUR", "parent_account": id("assets:current")}))
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rate = repository
        .create(&scope, "exchange_rate", json!({"from_code": "EUR", "to_code": "USD", "date": format!("2026-01-0{}", n % 9 + 1), "rate": "1.25"}))
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Case {
        scope,
        company,
        year,
        periods: periods.iter().take(3).map(|p| p.id.clone()).collect(),
        accounts: LEAVES.iter().map(|p| id(p)).collect(),
        bank_eur,
        currencies: [currencies[0].clone(), currencies[1].clone()],
        rate,
        entries: Vec::new(),
    }
}

/// Runs one step; refusals are part of the game, only a broken invariant fails the test.
async fn run(repository: &Repository, books: &Books, case: &mut Case, step: &Step) {
    let scope = &case.scope;
    let entry = |i: &usize| case.entries.get(i % case.entries.len().max(1)).cloned();
    let period = |m: &u32| case.periods[(*m as usize - 1) % case.periods.len()].clone();
    let _ = match step {
        Step::Draft(debit, credit, cents, month, eur) => {
            let amount = format!("{}.{:02}", cents / 100, cents % 100);
            let debit_line = if *eur {
                json!({"account": case.bank_eur, "debit": {"amount": amount, "currency": "EUR"}})
            } else {
                json!({"account": case.accounts[*debit], "debit": {"amount": amount, "currency": "USD"}})
            };
            let credit_amount = if *eur {
                let cents = cents * 125 / 100;
                format!("{}.{:02}", cents / 100, cents % 100)
            } else {
                amount
            };
            let credit_line = json!({"account": case.accounts[*credit], "credit": {"amount": credit_amount, "currency": "USD"}});
            repository
                .create(scope, "journal_entry", json!({"company": case.company, "posting_date": format!("2026-{month:02}-1{}", cents % 9), "lines": [debit_line, credit_line]}))
                .await
                .map(|doc| case.entries.push(doc["id"].as_str().unwrap().to_owned()))
        }
        Step::Submit(i) => match entry(i) {
            Some(id) => repository
                .submit(scope, "journal_entry", &id)
                .await
                .map(drop),
            None => Ok(()),
        },
        Step::Cancel(i) => match entry(i) {
            Some(id) => repository
                .cancel(scope, "journal_entry", &id)
                .await
                .map(drop),
            None => Ok(()),
        },
        Step::DeleteEntry(i) => match entry(i) {
            Some(id) => repository.delete(scope, "journal_entry", &id).await,
            None => Ok(()),
        },
        Step::Close(m) => books.close_period(scope, &period(m)).await.map(drop),
        Step::Reopen(m) => books.reopen_period(scope, &period(m)).await.map(drop),
        Step::EditPeriod(m, kind) => {
            let patch = match kind {
                0 => json!({"end_date": format!("2026-{m:02}-05")}),
                1 => json!({"status": "Open"}),
                _ => json!({"period_name": format!("P{m}")}),
            };
            repository
                .update(scope, "accounting_period", &period(m), patch, None)
                .await
                .map(drop)
        }
        Step::DeletePeriod(m) => {
            repository
                .delete(scope, "accounting_period", &period(m))
                .await
        }
        Step::DeleteAccount(i) => {
            repository
                .delete(scope, "account", &case.accounts[*i])
                .await
        }
        Step::EditYear(kind) => {
            let patch = if *kind == 0 {
                json!({"start_date": "2026-02-01"})
            } else {
                json!({"status": "Open"})
            };
            repository
                .update(scope, "fiscal_year", &case.year, patch, None)
                .await
                .map(drop)
        }
        Step::DeleteYear => repository.delete(scope, "fiscal_year", &case.year).await,
        Step::CloseYear => books.close_fiscal_year(scope, &case.year).await.map(drop),
        Step::DeleteCompany => repository.delete(scope, "company", &case.company).await,
        Step::ChangeCurrency => repository
            .update(
                scope,
                "company",
                &case.company,
                json!({"currency": "EUR"}),
                None,
            )
            .await
            .map(drop),
        Step::DeleteCurrency(eur) => {
            let id = &case.currencies[usize::from(*eur)];
            repository.delete(scope, "currency", id).await
        }
        Step::DeleteRate => repository.delete(scope, "exchange_rate", &case.rate).await,
    };
}

/// A count of rows `sql` selects (its text holds `{tenant}` for the tenant argument).
async fn count(repository: &Repository, scope: &TenantScope, text: &str) -> i64 {
    let text = text.to_owned();
    let tenant = scope.tenant().to_owned();
    repository
        .read(
            scope,
            Box::new(move |conn| {
                let (text, tenant) = (text.clone(), tenant.clone());
                Box::pin(async move {
                    let mut sql = Sql::default();
                    let tenant = sql.arg(Arg::Text(Some(tenant)));
                    sql.text = format!(
                        "SELECT CAST(COUNT(*) AS BIGINT) FROM ({}) q",
                        text.replace("{tenant}", &tenant)
                    );
                    let rows = conn.fetch(&sql, &[SqlType::Int]).await?;
                    Ok(match rows.first().and_then(|r| r.first()) {
                        Some(Cell::Int(n)) => *n,
                        _ => -1,
                    })
                })
            }),
        )
        .await
        .unwrap()
}

/// `(what, query of the rows that break it)`: every query must select nothing.
const INVARIANTS: &[(&str, &str)] = &[
    (
        "a posting without its live company",
        "SELECT g.id FROM gl_entry g LEFT JOIN company c ON c.tenant_id = g.tenant_id AND c.id = g.company AND c.deleted_at IS NULL WHERE g.tenant_id = {tenant} AND c.id IS NULL",
    ),
    (
        "a posting without its live account",
        "SELECT g.id FROM gl_entry g LEFT JOIN account a ON a.tenant_id = g.tenant_id AND a.id = g.account AND a.deleted_at IS NULL WHERE g.tenant_id = {tenant} AND a.id IS NULL",
    ),
    (
        "a posting without its live period",
        "SELECT g.id FROM gl_entry g LEFT JOIN accounting_period p ON p.tenant_id = g.tenant_id AND p.id = g.period AND p.deleted_at IS NULL WHERE g.tenant_id = {tenant} AND p.id IS NULL",
    ),
    (
        "a posting outside its period's dates",
        "SELECT g.id FROM gl_entry g JOIN accounting_period p ON p.tenant_id = g.tenant_id AND p.id = g.period WHERE g.tenant_id = {tenant} AND (g.posting_date < p.start_date OR g.posting_date > p.end_date)",
    ),
    (
        "a posting without its submitted or cancelled document",
        "SELECT g.id FROM gl_entry g LEFT JOIN journal_entry j ON j.tenant_id = g.tenant_id AND j.id = g.journal_entry AND j.deleted_at IS NULL AND j.docstatus IN (1, 2) WHERE g.tenant_id = {tenant} AND j.id IS NULL",
    ),
    (
        "a posting without the stored rate it was converted at",
        "SELECT g.id FROM gl_entry g LEFT JOIN exchange_rate r ON r.tenant_id = g.tenant_id AND r.id = g.rate_source AND r.deleted_at IS NULL WHERE g.tenant_id = {tenant} AND g.rate_source IS NOT NULL AND r.id IS NULL",
    ),
    (
        "a posted currency without its row",
        "SELECT g.id FROM gl_entry g LEFT JOIN currency c ON c.tenant_id = g.tenant_id AND c.code = g.line_debit_currency AND c.deleted_at IS NULL WHERE g.tenant_id = {tenant} AND c.id IS NULL",
    ),
    (
        "a balance without its live period or account",
        "SELECT b.id FROM account_balance b LEFT JOIN accounting_period p ON p.tenant_id = b.tenant_id AND p.id = b.period AND p.deleted_at IS NULL LEFT JOIN account a ON a.tenant_id = b.tenant_id AND a.id = b.account AND a.deleted_at IS NULL WHERE b.tenant_id = {tenant} AND (p.id IS NULL OR a.id IS NULL)",
    ),
    (
        "a submitted line without its live account",
        "SELECT l.id FROM journal_entry_line l JOIN journal_entry j ON j.tenant_id = l.tenant_id AND j.id = l.parent_id LEFT JOIN account a ON a.tenant_id = l.tenant_id AND a.id = l.account AND a.deleted_at IS NULL WHERE l.tenant_id = {tenant} AND j.docstatus IN (1, 2) AND j.deleted_at IS NULL AND a.id IS NULL",
    ),
    (
        "a company whose postings do not balance",
        "SELECT company FROM gl_entry WHERE tenant_id = {tenant} GROUP BY company HAVING SUM(debit) <> SUM(credit)",
    ),
    (
        "a period whose postings and balances disagree",
        "SELECT g.period FROM gl_entry g WHERE g.tenant_id = {tenant} GROUP BY g.tenant_id, g.period HAVING SUM(g.debit) <> (SELECT SUM(b.debit) FROM account_balance b WHERE b.tenant_id = g.tenant_id AND b.period = g.period)",
    ),
];

/// Postings per closed period: a closed period's set must not change while it is closed.
async fn closed_postings(repository: &Repository, case: &Case) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for period in &case.periods {
        let closed = count(
            repository,
            &case.scope,
            &format!("SELECT id FROM accounting_period WHERE tenant_id = {{tenant}} AND id = '{period}' AND status = 'Closed'"),
        )
        .await;
        if closed == 1 {
            let postings = count(
                repository,
                &case.scope,
                &format!(
                    "SELECT id FROM gl_entry WHERE tenant_id = {{tenant}} AND period = '{period}'"
                ),
            )
            .await;
            out.push((period.clone(), postings));
        }
    }
    out
}

async fn check_case(repository: &Repository, books: &Books, n: usize, steps: &[Step]) {
    let mut case = set_up(repository, books, n).await;
    for step in steps {
        let before = closed_postings(repository, &case).await;
        run(repository, books, &mut case, step).await;
        let after = closed_postings(repository, &case).await;
        // A period that stayed closed kept exactly its postings.
        for (period, postings) in &before {
            if let Some((_, now)) = after.iter().find(|(p, _)| p == period) {
                assert_eq!(
                    now, postings,
                    "{step:?} changed the postings of a closed period: {steps:?}"
                );
            }
        }
    }
    for (what, query) in INVARIANTS {
        let broken = count(repository, &case.scope, query).await;
        assert_eq!(broken, 0, "{what}, after {steps:?}");
    }
}

#[test]
fn interleaved_edits_never_orphan_a_posting() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (i, db) in runtime
        .block_on(databases("accounting_integrity"))
        .into_iter()
        .enumerate()
    {
        let api = runtime.block_on(common::boot(&db));
        let repository = api.app.resolver("test").get::<Repository>().unwrap();
        let books = api.app.resolver("test").get::<Books>().unwrap();
        // Fewer cases on PostgreSQL, whose round trips are slower.
        let cases = if i == 0 { 24 } else { 8 };
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let n = std::sync::atomic::AtomicUsize::new(0);
        runner
            .run(&prop::collection::vec(step(), 5..40), |steps| {
                let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                runtime.block_on(check_case(&repository, &books, n, &steps));
                Ok(())
            })
            .unwrap();
        runtime.block_on(api.app.shutdown()).unwrap();
    }
}
