//! Regression tests of issue 15's "books" findings, on SQLite and PostgreSQL: a closed
//! period could be reopened by the back door (PATCH of its dates, DELETE), master data
//! with postings could be deleted, an all-zero entry could be submitted and a report took
//! `from` after `to`. Each case is one call and the status and error code it must get.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Api, Staff, boot, encode, staff};
use prefiq_data::testing::databases;
use serde_json::{Value, json};

/// The books every case runs against.
struct Books {
    company: String,
    year: String,
    january: String,
    february: String,
    december: String,
    bank: String,
    sales: String,
    rent: String,
    /// A submitted January entry (bank / sales).
    posted: String,
    /// A January draft, refused while January is closed.
    draft: String,
}

async fn ok(api: &Api, method: &str, path: &str, bearer: &str, body: Option<Value>) -> Value {
    let (status, answer) = api.call(method, path, bearer, body).await;
    assert!(status.is_success(), "{method} {path}: {status} {answer}");
    answer
}

async fn find(api: &Api, bearer: &str, entity: &str, filters: Value) -> String {
    let filters = encode(&filters.to_string());
    let body = ok(
        api,
        "GET",
        &format!("/api/v1/resources/{entity}?filters={filters}"),
        bearer,
        None,
    )
    .await;
    body["data"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no {entity}: {body}"))
        .to_owned()
}

fn usd(account: &str, side: &str, amount: &str) -> Value {
    json!({"account": account, side: {"amount": amount, "currency": "USD"}})
}

async fn entry(api: &Api, bearer: &str, company: &str, date: &str, lines: Vec<Value>) -> String {
    let body = ok(
        api,
        "POST",
        "/api/v1/resources/journal_entry",
        bearer,
        Some(json!({"company": company, "posting_date": date, "lines": lines})),
    )
    .await;
    body["id"].as_str().unwrap().to_owned()
}

async fn set_up(api: &Api, staff: &Staff) -> Books {
    let company = ok(
        api,
        "POST",
        "/api/v1/resources/company",
        &staff.manager,
        Some(json!({"company_name": "Acme Ltd", "abbr": "ACME", "currency": "USD"})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let year = ok(
        api,
        "POST",
        "/api/v1/resources/fiscal_year",
        &staff.manager,
        Some(json!({"year_name": "FY 2026", "company": company, "start_date": "2026-01-01", "end_date": "2026-12-31"})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let period = |start: &'static str| {
        let company = company.clone();
        async move {
            find(
                api,
                &staff.manager,
                "accounting_period",
                json!([["company", "=", company], ["start_date", "=", start]]),
            )
            .await
        }
    };
    let (january, february, december) = (
        period("2026-01-01").await,
        period("2026-02-01").await,
        period("2026-12-01").await,
    );
    let account = |path: &'static str| {
        let company = company.clone();
        async move {
            find(
                api,
                &staff.manager,
                "account",
                json!([["company", "=", company], ["account_path", "=", path]]),
            )
            .await
        }
    };
    let bank = account("assets:current:bank").await;
    let sales = account("income:sales").await;
    let rent = account("expenses:rent").await;
    let posted = entry(
        api,
        &staff.accountant,
        &company,
        "2026-01-10",
        vec![
            usd(&bank, "debit", "100.00"),
            usd(&sales, "credit", "100.00"),
        ],
    )
    .await;
    ok(
        api,
        "POST",
        &format!("/api/v1/resources/journal_entry/{posted}/submit"),
        &staff.accountant,
        None,
    )
    .await;
    let draft = entry(
        api,
        &staff.accountant,
        &company,
        "2026-01-20",
        vec![usd(&rent, "debit", "5.00"), usd(&bank, "credit", "5.00")],
    )
    .await;
    ok(
        api,
        "POST",
        &format!("/api/v1/accounting/periods/{january}/close"),
        &staff.manager,
        None,
    )
    .await;
    Books {
        company,
        year,
        january,
        february,
        december,
        bank,
        sales,
        rent,
        posted,
        draft,
    }
}

/// One call and what it must get: the status, and the first error code when it fails.
async fn check(
    api: &Api,
    bearer: &str,
    (method, path, body): (&str, String, Option<Value>),
    expected: (StatusCode, &str),
) -> Value {
    let (status, answer) = api.call(method, &path, bearer, body).await;
    let code = answer["errors"][0]["code"].as_str().unwrap_or_default();
    assert_eq!((status, code), expected, "{method} {path}: {answer}");
    answer
}

fn patch(entity: &str, id: &str, body: Value) -> (&'static str, String, Option<Value>) {
    (
        "PATCH",
        format!("/api/v1/resources/{entity}/{id}"),
        Some(body),
    )
}

fn delete(entity: &str, id: &str) -> (&'static str, String, Option<Value>) {
    ("DELETE", format!("/api/v1/resources/{entity}/{id}"), None)
}

fn post(path: String) -> (&'static str, String, Option<Value>) {
    ("POST", path, None)
}

#[tokio::test]
async fn closed_period_cannot_be_reopened_by_patch_or_delete() {
    for db in databases("accounting_closed_books").await {
        let api = boot(&db).await;
        let staff = staff(&api, "acme").await;
        let b = set_up(&api, &staff).await;
        let rejected = (StatusCode::UNPROCESSABLE_ENTITY, "rejected");
        // The administrator, whom no permission stops, is stopped by the books' rules.
        for (call, expected) in [
            (
                patch(
                    "accounting_period",
                    &b.january,
                    json!({"end_date": "2026-01-05"}),
                ),
                rejected,
            ),
            (
                patch(
                    "accounting_period",
                    &b.january,
                    json!({"period_name": "Jan"}),
                ),
                rejected,
            ),
            (
                patch("accounting_period", &b.january, json!({"status": "Open"})),
                rejected,
            ),
            (delete("accounting_period", &b.january), rejected),
            (
                patch(
                    "accounting_period",
                    &b.february,
                    json!({"start_date": "2026-01-01"}),
                ),
                rejected,
            ),
            (
                patch(
                    "accounting_period",
                    &b.february,
                    json!({"status": "Closed"}),
                ),
                rejected,
            ),
            (
                patch(
                    "accounting_period",
                    &b.february,
                    json!({"fiscal_year": b.year}),
                ),
                (StatusCode::OK, ""),
            ),
            (
                patch("fiscal_year", &b.year, json!({"end_date": "2026-06-30"})),
                rejected,
            ),
            (
                patch("fiscal_year", &b.year, json!({"status": "Closed"})),
                rejected,
            ),
            (
                delete("fiscal_year", &b.year),
                (StatusCode::CONFLICT, "referenced"),
            ),
        ] {
            check(&api, &staff.admin, call, expected).await;
        }
        // January is as closed as it was: its draft still cannot post, its entry not cancel.
        check(
            &api,
            &staff.accountant,
            post(format!(
                "/api/v1/resources/journal_entry/{}/submit",
                b.draft
            )),
            (StatusCode::UNPROCESSABLE_ENTITY, "period_closed"),
        )
        .await;
        check(
            &api,
            &staff.accountant,
            post(format!(
                "/api/v1/resources/journal_entry/{}/cancel",
                b.posted
            )),
            (StatusCode::UNPROCESSABLE_ENTITY, "period_closed"),
        )
        .await;
        // An open period nothing posted to is plain master data.
        check(
            &api,
            &staff.admin,
            delete("accounting_period", &b.december),
            (StatusCode::NO_CONTENT, ""),
        )
        .await;
    }
}

#[tokio::test]
async fn master_data_with_postings_cannot_be_deleted() {
    for db in databases("accounting_referenced").await {
        let api = boot(&db).await;
        let staff = staff(&api, "acme").await;
        let b = set_up(&api, &staff).await;
        // The company, the posted accounts and the posting's period are referenced.
        for (entity, id) in [
            ("company", &b.company),
            ("account", &b.bank),
            ("account", &b.sales),
        ] {
            let answer = check(
                &api,
                &staff.admin,
                delete(entity, id),
                (StatusCode::CONFLICT, "referenced"),
            )
            .await;
            let named: Vec<&str> = answer["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["entity"].as_str().unwrap())
                .collect();
            assert!(
                named.contains(&"journal_entry") || named.contains(&"gl_entry"),
                "{entity}: {answer}"
            );
            assert!(
                answer["detail"].as_str().unwrap().contains("referenced by"),
                "{answer}"
            );
        }
        // What reports group postings by does not change under them; a name does.
        for (call, expected) in [
            (
                patch("account", &b.bank, json!({"root_type": "Liability"})),
                (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
            ),
            (
                patch("account", &b.bank, json!({"is_group": true})),
                (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
            ),
            (
                patch("company", &b.company, json!({"currency": "EUR"})),
                (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
            ),
            (
                patch("account", &b.bank, json!({"account_name": "Main bank"})),
                (StatusCode::OK, ""),
            ),
            (
                patch(
                    "account",
                    &b.rent,
                    json!({"root_type": "Expense", "account_number": "6100"}),
                ),
                (StatusCode::OK, ""),
            ),
        ] {
            check(&api, &staff.admin, call, expected).await;
        }
        // The submitted entry names itself among the company's references.
        let answer = check(
            &api,
            &staff.admin,
            delete("company", &b.company),
            (StatusCode::CONFLICT, "referenced"),
        )
        .await;
        assert!(
            answer["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["id"] == json!(b.posted)),
            "{answer}"
        );
        // Everything still reads: the reports, and the entry's company.
        let (status, body) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/accounting/reports/trial-balance?company={}&to=2026-12-31",
                    b.company
                ),
                &staff.manager,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // A draft does not protect what it links to; its submit then finds the link gone.
        check(
            &api,
            &staff.admin,
            delete("account", &b.rent),
            (StatusCode::NO_CONTENT, ""),
        )
        .await;
        ok(
            &api,
            "POST",
            &format!("/api/v1/accounting/periods/{}/reopen", b.january),
            &staff.manager,
            None,
        )
        .await;
        let (status, body) = api
            .call(
                "POST",
                &format!("/api/v1/resources/journal_entry/{}/submit", b.draft),
                &staff.accountant,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        // A currency is named by its code: in use by the company, the entries and the
        // postings, its row is protected; so is the stored rate a posting converted at.
        let currency =
            |code: &str| json!({"code": code, "currency_name": code, "fraction_digits": 2});
        let mut codes = Vec::new();
        for code in ["USD", "EUR", "GBP"] {
            let body = ok(
                &api,
                "POST",
                "/api/v1/resources/currency",
                &staff.manager,
                Some(currency(code)),
            )
            .await;
            codes.push(body["id"].as_str().unwrap().to_owned());
        }
        let rate = |from: &str| json!({"from_code": from, "to_code": "USD", "date": "2026-01-01", "rate": "1.08"});
        let eur_rate = ok(
            &api,
            "POST",
            "/api/v1/resources/exchange_rate",
            &staff.manager,
            Some(rate("EUR")),
        )
        .await;
        let gbp_rate = ok(
            &api,
            "POST",
            "/api/v1/resources/exchange_rate",
            &staff.manager,
            Some(rate("GBP")),
        )
        .await;
        let current = find(
            &api,
            &staff.manager,
            "account",
            json!([
                ["company", "=", b.company],
                ["account_path", "=", "assets:current"]
            ]),
        )
        .await;
        let bank_eur = ok(
            &api,
            "POST",
            "/api/v1/resources/account",
            &staff.manager,
            Some(json!({"account_name": "Bank EUR", "account_path": "assets:current:bank-eur", "company": b.company, "root_type": "Asset", "account_type": "Bank", "currency": "EUR", "parent_account": current})),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let eur_entry = entry(
            &api,
            &staff.accountant,
            &b.company,
            "2026-02-02",
            vec![
                json!({"account": bank_eur, "debit": {"amount": "10.00", "currency": "EUR"}}),
                usd(&b.sales, "credit", "10.80"),
            ],
        )
        .await;
        ok(
            &api,
            "POST",
            &format!("/api/v1/resources/journal_entry/{eur_entry}/submit"),
            &staff.accountant,
            None,
        )
        .await;
        for (entity, id, expected) in [
            (
                "currency",
                codes[0].as_str(),
                (StatusCode::CONFLICT, "referenced"),
            ),
            (
                "currency",
                codes[1].as_str(),
                (StatusCode::CONFLICT, "referenced"),
            ),
            (
                "exchange_rate",
                eur_rate["id"].as_str().unwrap(),
                (StatusCode::CONFLICT, "referenced"),
            ),
            // Unused: the GBP rate, then GBP itself once its rate is gone.
            (
                "exchange_rate",
                gbp_rate["id"].as_str().unwrap(),
                (StatusCode::NO_CONTENT, ""),
            ),
            ("currency", codes[2].as_str(), (StatusCode::NO_CONTENT, "")),
        ] {
            check(&api, &staff.admin, delete(entity, id), expected).await;
        }
        // A cancelled entry still protects: it is history.
        ok(
            &api,
            "POST",
            &format!("/api/v1/resources/journal_entry/{}/cancel", b.posted),
            &staff.accountant,
            None,
        )
        .await;
        check(
            &api,
            &staff.admin,
            delete("account", &b.sales),
            (StatusCode::CONFLICT, "referenced"),
        )
        .await;
    }
}

#[tokio::test]
async fn reopening_is_its_own_audited_action() {
    for db in databases("accounting_reopen").await {
        let api = boot(&db).await;
        let staff = staff(&api, "acme").await;
        let b = set_up(&api, &staff).await;
        let reopen = |id: &str| post(format!("/api/v1/accounting/periods/{id}/reopen"));
        let close = |id: &str| post(format!("/api/v1/accounting/periods/{id}/close"));
        // Closing does not grant reopening: an accountant may do neither.
        check(
            &api,
            &staff.accountant,
            reopen(&b.january),
            (StatusCode::FORBIDDEN, ""),
        )
        .await;
        check(
            &api,
            &staff.manager,
            reopen(&b.february),
            (StatusCode::UNPROCESSABLE_ENTITY, "not_closed"),
        )
        .await;
        let february_entry = entry(
            &api,
            &staff.accountant,
            &b.company,
            "2026-02-03",
            vec![
                usd(&b.rent, "debit", "30.00"),
                usd(&b.bank, "credit", "30.00"),
            ],
        )
        .await;
        ok(
            &api,
            "POST",
            &format!("/api/v1/resources/journal_entry/{february_entry}/submit"),
            &staff.accountant,
            None,
        )
        .await;
        check(
            &api,
            &staff.manager,
            close(&b.february),
            (StatusCode::OK, ""),
        )
        .await;
        check(
            &api,
            &staff.manager,
            reopen(&b.january),
            (StatusCode::UNPROCESSABLE_ENTITY, "later_closed"),
        )
        .await;
        assert!(report_rows(&api, &staff, &b.company).await.1);
        let reopened = check(
            &api,
            &staff.manager,
            reopen(&b.february),
            (StatusCode::OK, ""),
        )
        .await;
        assert_eq!(reopened["status"], "Open", "{reopened}");
        assert_eq!(
            reopened["reversed_closing_entries"]
                .as_array()
                .unwrap()
                .len(),
            1,
            "{reopened}"
        );
        // The trial balance still balances, with the closing entry and its reversal.
        let (totals, balanced) = report_rows(&api, &staff, &b.company).await;
        assert!(balanced, "{totals}");
        // February takes postings again, and closes again with a new closing entry.
        let late = entry(
            &api,
            &staff.accountant,
            &b.company,
            "2026-02-27",
            vec![
                usd(&b.bank, "debit", "7.00"),
                usd(&b.sales, "credit", "7.00"),
            ],
        )
        .await;
        ok(
            &api,
            "POST",
            &format!("/api/v1/resources/journal_entry/{late}/submit"),
            &staff.accountant,
            None,
        )
        .await;
        let closed = check(
            &api,
            &staff.manager,
            close(&b.february),
            (StatusCode::OK, ""),
        )
        .await;
        assert_eq!(closed["net_profit"], "-23.00", "{closed}");
        // The audit log says who reopened what.
        let (status, log) = api
            .call(
                "GET",
                &format!("/api/v1/audit?entity=accounting_period&id={}", b.february),
                &staff.admin,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        // Newest first.
        let mut actions: Vec<&str> = log["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["action"].as_str())
            .filter(|a| ["close", "reopen"].contains(a))
            .collect();
        actions.reverse();
        assert_eq!(actions, ["close", "reopen", "close"], "{log}");
        // A closed year's periods stay closed.
        check(
            &api,
            &staff.manager,
            post(format!("/api/v1/accounting/fiscal-years/{}/close", b.year)),
            (StatusCode::OK, ""),
        )
        .await;
        check(
            &api,
            &staff.manager,
            reopen(&b.december),
            (StatusCode::UNPROCESSABLE_ENTITY, "year_closed"),
        )
        .await;
        check(
            &api,
            &staff.admin,
            patch("fiscal_year", &b.year, json!({"year_name": "FY"})),
            (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
        )
        .await;
    }
}

/// The trial balance's totals, and whether it balances.
async fn report_rows(api: &Api, staff: &Staff, company: &str) -> (Value, bool) {
    let body = ok(
        api,
        "GET",
        &format!("/api/v1/accounting/reports/trial-balance?company={company}&from=2026-01-01&to=2026-12-31"),
        &staff.manager,
        None,
    )
    .await;
    let totals = body["totals"].clone();
    let balanced = totals["closing_debit"] == totals["closing_credit"];
    (totals, balanced)
}

#[tokio::test]
async fn zero_entries_and_backward_report_ranges_are_refused() {
    for db in databases("accounting_zero").await {
        let api = boot(&db).await;
        let staff = staff(&api, "acme").await;
        let b = set_up(&api, &staff).await;
        for lines in [
            vec![
                usd(&b.bank, "debit", "0.00"),
                usd(&b.sales, "credit", "0.00"),
            ],
            vec![
                usd(&b.bank, "debit", "0"),
                usd(&b.sales, "credit", "0"),
                usd(&b.rent, "debit", "0"),
            ],
        ] {
            let id = entry(&api, &staff.accountant, &b.company, "2026-03-01", lines).await;
            check(
                &api,
                &staff.accountant,
                post(format!("/api/v1/resources/journal_entry/{id}/submit")),
                (StatusCode::UNPROCESSABLE_ENTITY, "zero_amount"),
            )
            .await;
        }
        let company = &b.company;
        for (query, expected) in [
            (
                format!("trial-balance?company={company}&from=2026-03-01&to=2026-02-01"),
                (StatusCode::UNPROCESSABLE_ENTITY, "empty_range"),
            ),
            (
                format!("profit-and-loss?company={company}&from=2026-03-01&to=2026-02-01"),
                (StatusCode::UNPROCESSABLE_ENTITY, "empty_range"),
            ),
            (
                format!("general-ledger?company={company}&from=2026-03-01&to=2026-02-01"),
                (StatusCode::UNPROCESSABLE_ENTITY, "empty_range"),
            ),
            (
                format!("general-ledger?company={company}&limit=0"),
                (StatusCode::UNPROCESSABLE_ENTITY, "out_of_range"),
            ),
            (
                format!("trial-balance?company={company}&from=2026-02-01&to=2026-02-01"),
                (StatusCode::OK, ""),
            ),
            (
                format!("general-ledger?company={company}&format="),
                (StatusCode::UNPROCESSABLE_ENTITY, "unknown_format"),
            ),
            (
                format!("balance-sheet?company={company}&format=xml"),
                (StatusCode::UNPROCESSABLE_ENTITY, "unknown_format"),
            ),
            (
                format!("balance-sheet?company={company}&format=csv"),
                (StatusCode::OK, ""),
            ),
        ] {
            check(
                &api,
                &staff.manager,
                ("GET", format!("/api/v1/accounting/reports/{query}"), None),
                expected,
            )
            .await;
        }
        // A fiscal year is made of monthly periods: one of centuries is refused, not made.
        for (end, expected) in [
            ("9999-12-31", (StatusCode::UNPROCESSABLE_ENTITY, "rejected")),
            ("2029-12-31", (StatusCode::UNPROCESSABLE_ENTITY, "rejected")),
            ("2028-06-30", (StatusCode::CREATED, "")),
        ] {
            check(
                &api,
                &staff.manager,
                (
                    "POST",
                    "/api/v1/resources/fiscal_year".into(),
                    Some(json!({"year_name": format!("to {end}"), "company": company, "start_date": "2027-01-01", "end_date": end})),
                ),
                expected,
            )
            .await;
        }
        let (status, body) = api
            .call(
                "GET",
                &format!("/api/v1/accounting/reports/trial-balance?company={company}&form=csv"),
                &staff.manager,
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "an unknown parameter: {body}"
        );
    }
}
