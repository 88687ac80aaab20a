//! The books through the API, on SQLite and PostgreSQL: a company and its standard chart,
//! entries in two currencies (with a rounding difference), the refusals of the posting
//! rules, the four reports agreeing with each other, cancel, period close and the roles.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Api, Staff, boot, encode, staff};
use prefiq_data::testing::databases;
use serde_json::{Value, json};

async fn account(api: &Api, bearer: &str, company: &str, path: &str) -> String {
    let filters = json!([["company", "=", company], ["account_path", "=", path]]).to_string();
    let (status, body) = api
        .call(
            "GET",
            &format!("/api/v1/resources/account?filters={}", encode(&filters)),
            bearer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no account {path}: {body}"))
        .to_owned()
}

fn line(account: &str, side: &str, amount: &str, currency: &str) -> Value {
    json!({"account": account, side: {"amount": amount, "currency": currency}})
}

async fn entry(api: &Api, bearer: &str, company: &str, date: &str, lines: Vec<Value>) -> String {
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/resources/journal_entry",
            bearer,
            Some(json!({"company": company, "posting_date": date, "lines": lines})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn submit(api: &Api, bearer: &str, id: &str) -> (StatusCode, Value) {
    api.call(
        "POST",
        &format!("/api/v1/resources/journal_entry/{id}/submit"),
        bearer,
        None,
    )
    .await
}

/// The codes of a problem's `errors[]`.
fn codes(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["code"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn row<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["account_path"] == path)
        .unwrap_or_else(|| panic!("no row {path}"))
}

async fn report(api: &Api, bearer: &str, name: &str, query: &str) -> Value {
    let (status, body) = api
        .call(
            "GET",
            &format!("/api/v1/accounting/reports/{name}?{query}"),
            bearer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{name}: {body}");
    body
}

async fn set_up(api: &Api, staff: &Staff) -> String {
    let (status, company) = api
        .call(
            "POST",
            "/api/v1/resources/company",
            &staff.manager,
            Some(json!({"company_name": "Acme Ltd", "abbr": "ACME", "currency": "USD"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{company}");
    let company = company["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/resources/fiscal_year",
            &staff.manager,
            Some(json!({"year_name": "FY 2026", "company": company, "start_date": "2026-01-01", "end_date": "2026-12-31"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let current = account(api, &staff.manager, &company, "assets:current").await;
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/resources/account",
            &staff.manager,
            Some(json!({"account_name": "Bank EUR", "account_path": "assets:current:bank-eur", "company": company, "root_type": "Asset", "account_type": "Bank", "currency": "EUR", "parent_account": current})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/resources/exchange_rate",
            &staff.accountant,
            Some(
                json!({"from_code": "EUR", "to_code": "USD", "date": "2026-01-01", "rate": "1.08"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    company
}

#[tokio::test]
async fn a_company_posts_reports_cancels_and_closes_through_the_api() {
    for db in databases("accounting_books").await {
        let api = boot(&db).await;
        let staff = staff(&api, "acme").await;
        let company = set_up(&api, &staff).await;
        let accountant = staff.accountant.as_str();
        let bank = account(&api, accountant, &company, "assets:current:bank").await;
        let bank_eur = account(&api, accountant, &company, "assets:current:bank-eur").await;
        let sales = account(&api, accountant, &company, "income:sales").await;
        let rent = account(&api, accountant, &company, "expenses:rent").await;
        let assets = account(&api, accountant, &company, "assets").await;

        // The standard chart came with the company.
        let (_, accounts) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/resources/account?limit=500&filters={}",
                    encode(&json!([["company", "=", company]]).to_string())
                ),
                accountant,
                None,
            )
            .await;
        assert_eq!(accounts["data"].as_array().unwrap().len(), 34);

        // In company currency, in euros at the stored rate, and with a rounding difference.
        let first = entry(
            &api,
            accountant,
            &company,
            "2026-01-10",
            vec![
                line(&bank, "debit", "1000.00", "USD"),
                line(&sales, "credit", "1000.00", "USD"),
            ],
        )
        .await;
        let (status, body) = submit(&api, accountant, &first).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let euros = entry(
            &api,
            accountant,
            &company,
            "2026-01-12",
            vec![
                line(&bank_eur, "debit", "100.00", "EUR"),
                line(&sales, "credit", "108.00", "USD"),
            ],
        )
        .await;
        let (status, body) = submit(&api, accountant, &euros).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let rounded = entry(
            &api,
            accountant,
            &company,
            "2026-01-20",
            vec![
                line(&bank_eur, "debit", "33.33", "EUR"),
                line(&sales, "credit", "35.99", "USD"),
            ],
        )
        .await;
        let (status, body) = submit(&api, accountant, &rounded).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let paid = entry(
            &api,
            accountant,
            &company,
            "2026-01-25",
            vec![
                line(&rent, "debit", "300.00", "USD"),
                line(&bank, "credit", "300.00", "USD"),
            ],
        )
        .await;
        assert_eq!(submit(&api, accountant, &paid).await.0, StatusCode::OK);

        let (_, posted) = api
            .call(
                "GET",
                &format!("/api/v1/resources/journal_entry/{rounded}"),
                accountant,
                None,
            )
            .await;
        assert_eq!(
            posted["total_debit"],
            json!({"amount": "36.00", "currency": "USD"}),
            "{posted}"
        );
        assert_eq!(posted["docstatus"], 1);

        // Refusals, each a problem with its reason.
        let (status, problem) = api
            .call("POST", "/api/v1/resources/account", &staff.manager, Some(json!({"account_name": "Odd", "account_path": "assets:current:bank:odd", "company": company, "root_type": "Asset", "parent_account": bank})))
            .await;
        assert!(
            status.is_client_error(),
            "a leaf as parent: {status} {problem}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("is not a group"),
            "{problem}"
        );
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/resources/currency",
                &staff.manager,
                Some(json!({"code": "JPY", "fraction_digits": 2})),
            )
            .await;
        assert!(status.is_client_error(), "JPY has no minor unit");
        let unbalanced = entry(
            &api,
            accountant,
            &company,
            "2026-01-26",
            vec![
                line(&bank, "debit", "100.00", "USD"),
                line(&sales, "credit", "90.00", "USD"),
            ],
        )
        .await;
        let (status, problem) = submit(&api, accountant, &unbalanced).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(codes(&problem), ["unbalanced"], "{problem}");
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("differ by 10.00 USD"),
            "{problem}"
        );
        let grouped = entry(
            &api,
            accountant,
            &company,
            "2026-01-26",
            vec![
                line(&assets, "debit", "5.00", "USD"),
                line(&sales, "credit", "5.00", "USD"),
            ],
        )
        .await;
        let (status, problem) = submit(&api, accountant, &grouped).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(codes(&problem), ["group_account"]);
        assert_eq!(problem["errors"][0]["pointer"], "/lines/0/account");
        let (status, problem) = api
            .call(
                "PATCH",
                &format!("/api/v1/resources/journal_entry/{first}"),
                accountant,
                Some(json!({"title": "changed"})),
            )
            .await;
        assert!(status.is_client_error(), "{status} {problem}");
        assert!(problem["detail"].is_string(), "{problem}");
        let (status, _) = api
            .call("POST", "/api/v1/resources/gl_entry", &staff.admin, Some(json!({"company": company, "account": bank, "posting_date": "2026-01-01", "period": "x", "journal_entry": first})))
            .await;
        assert!(
            status.is_client_error(),
            "a GL entry written directly: {status}"
        );

        // The GL has the rounding line; the reports agree.
        let ledger = report(
            &api,
            accountant,
            "general-ledger",
            &format!(
                "company={company}&account=expenses:exchange-rounding&from=2026-01-01&to=2026-01-31"
            ),
        )
        .await;
        assert_eq!(ledger["rows"].as_array().unwrap().len(), 1, "{ledger}");
        assert_eq!(ledger["closing"], "-0.01", "an exchange gain: {ledger}");
        let tb = report(
            &api,
            accountant,
            "trial-balance",
            &format!("company={company}&to=2026-01-31"),
        )
        .await;
        assert_eq!(tb["totals"]["debit"], tb["totals"]["credit"], "{tb}");
        assert_eq!(
            tb["totals"]["closing_debit"],
            tb["totals"]["closing_credit"]
        );
        assert_eq!(row(&tb, "assets:current:bank")["closing_debit"], "700.00");
        assert_eq!(
            row(&tb, "assets:current:bank-eur")["closing_debit"],
            "144.00"
        );
        assert_eq!(row(&tb, "income:sales")["closing_credit"], "1143.99");
        assert_eq!(
            row(&tb, "assets")["closing_debit"],
            "844.00",
            "groups roll up"
        );
        let pl = report(
            &api,
            accountant,
            "profit-and-loss",
            &format!("company={company}&to=2026-01-31"),
        )
        .await;
        assert_eq!(pl["net_profit"], "844.00", "{pl}");
        let bs = report(
            &api,
            accountant,
            "balance-sheet",
            &format!("company={company}&to=2026-01-31"),
        )
        .await;
        assert_eq!(bs["summary"][0]["balanced"], true, "{bs}");
        assert_eq!(bs["summary"][0]["provisional_profit"], "844.00");
        let sales_ledger = report(
            &api,
            accountant,
            "general-ledger",
            &format!("company={company}&account={sales}&from=2026-01-01&to=2026-01-31"),
        )
        .await;
        let balances: Vec<&str> = sales_ledger["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["balance"].as_str().unwrap())
            .collect();
        assert_eq!(balances, ["-1000.00", "-1108.00", "-1143.99"]);
        let (status, content_type, csv) = api
            .raw("GET", &format!("/api/v1/accounting/reports/trial-balance?company={company}&to=2026-01-31&format=csv"), accountant, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/csv"));
        assert!(
            csv.starts_with("account_path,account_name,root_type,"),
            "{csv}"
        );
        assert!(
            csv.contains(
                "\r\nincome:sales,Sales,Income,false,0.00,0.00,0.00,1143.99,0.00,1143.99\r\n"
            ),
            "{csv}"
        );
        insta::assert_snapshot!("trial_balance_csv", csv.replace("\r\n", "\n"));

        // Cancel writes the reversal and deletes nothing.
        let (status, body) = api
            .call(
                "POST",
                &format!("/api/v1/resources/journal_entry/{first}/cancel"),
                accountant,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let bank_ledger = report(
            &api,
            accountant,
            "general-ledger",
            &format!("company={company}&account={bank}&from=2026-01-01&to=2026-01-31"),
        )
        .await;
        assert_eq!(
            bank_ledger["rows"].as_array().unwrap().len(),
            3,
            "{bank_ledger}"
        );
        assert_eq!(bank_ledger["closing"], "-300.00");

        // Closing: only the manager may; it moves the profit to retained earnings.
        let (_, periods) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/resources/accounting_period?limit=50&order_by=start_date&filters={}",
                    encode(&json!([["company", "=", company]]).to_string())
                ),
                accountant,
                None,
            )
            .await;
        let january = periods["data"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(periods["data"].as_array().unwrap().len(), 12);
        let (status, problem) = api
            .call(
                "POST",
                &format!("/api/v1/accounting/periods/{january}/close"),
                accountant,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
        let (status, closed) = api
            .call(
                "POST",
                &format!("/api/v1/accounting/periods/{january}/close"),
                &staff.manager,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{closed}");
        assert_eq!(closed["net_profit"], "-156.00", "{closed}");
        let tb = report(
            &api,
            &staff.auditor,
            "trial-balance",
            &format!("company={company}&to=2026-01-31"),
        )
        .await;
        assert_eq!(
            row(&tb, "equity:retained-earnings")["closing_debit"],
            "156.00",
            "{tb}"
        );
        assert_eq!(row(&tb, "income")["closing_credit"], "0.00");
        assert_eq!(
            tb["totals"]["closing_debit"],
            tb["totals"]["closing_credit"]
        );
        let pl = report(
            &api,
            &staff.auditor,
            "profit-and-loss",
            &format!("company={company}&to=2026-01-31"),
        )
        .await;
        assert_eq!(
            pl["net_profit"], "-156.00",
            "closing entries stay out of P&L"
        );
        let bs = report(
            &api,
            &staff.auditor,
            "balance-sheet",
            &format!("company={company}&to=2026-01-31"),
        )
        .await;
        assert_eq!(bs["summary"][0]["balanced"], true);
        assert_eq!(bs["summary"][0]["provisional_profit"], "0.00");

        // A closed period takes no entries, and its entries are not cancelled.
        let late = entry(
            &api,
            accountant,
            &company,
            "2026-01-31",
            vec![
                line(&bank, "debit", "1.00", "USD"),
                line(&sales, "credit", "1.00", "USD"),
            ],
        )
        .await;
        let (status, problem) = submit(&api, accountant, &late).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(codes(&problem), ["period_closed"], "{problem}");
        let (status, problem) = api
            .call(
                "POST",
                &format!("/api/v1/resources/journal_entry/{euros}/cancel"),
                accountant,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        let (status, _) = api
            .call(
                "PATCH",
                &format!("/api/v1/resources/accounting_period/{january}"),
                &staff.manager,
                Some(json!({"status": "Open"})),
            )
            .await;
        assert!(
            status.is_client_error(),
            "a closed period is not reopened by an edit"
        );
        let (status, _) = api
            .call(
                "POST",
                &format!("/api/v1/accounting/periods/{january}/close"),
                &staff.manager,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "closed twice");

        // The auditor reads everything and writes nothing; posts, cancels and closes are in
        // the audit log.
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/resources/journal_entry",
                &staff.auditor,
                Some(json!({"company": company, "posting_date": "2026-02-01", "lines": []})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, log) = api
            .call("GET", "/api/v1/audit?limit=500", &staff.auditor, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let actions: Vec<String> = log["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["entity"] == "journal_entry" || r["entity"] == "accounting_period")
            .map(|r| {
                format!(
                    "{}:{}",
                    r["entity"].as_str().unwrap(),
                    r["action"].as_str().unwrap()
                )
            })
            .collect();
        for expected in [
            "journal_entry:submit",
            "journal_entry:cancel",
            "accounting_period:close",
        ] {
            assert!(
                actions.iter().any(|a| a == expected),
                "{expected} not in {actions:?}"
            );
        }
        let (status, _) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/accounting/reports/trial-balance?company={company}&to=2026-13-01"
                ),
                accountant,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a bad date");
        api.app.shutdown().await.unwrap();
    }
}

/// Regression guard for the period lock: entries submitted while their period is being
/// closed either get in before the close (and are closed with it) or are refused. No
/// income may be left in a closed period. On SQLite writes are serial anyway; on
/// PostgreSQL the period row's locks make this hold.
#[tokio::test]
async fn entries_racing_a_close_are_closed_with_it_or_refused() {
    for db in databases("accounting_race").await {
        let api = boot(&db).await;
        let staff = staff(&api, "race").await;
        let company = set_up(&api, &staff).await;
        let accountant = staff.accountant.as_str();
        let bank = account(&api, accountant, &company, "assets:current:bank").await;
        let sales = account(&api, accountant, &company, "income:sales").await;
        let mut drafts = Vec::new();
        for _ in 0..16 {
            drafts.push(
                entry(
                    &api,
                    accountant,
                    &company,
                    "2026-01-15",
                    vec![
                        line(&bank, "debit", "10.00", "USD"),
                        line(&sales, "credit", "10.00", "USD"),
                    ],
                )
                .await,
            );
        }
        let (_, periods) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/resources/accounting_period?limit=1&order_by=start_date&filters={}",
                    encode(&json!([["company", "=", company]]).to_string())
                ),
                accountant,
                None,
            )
            .await;
        let january = periods["data"][0]["id"].as_str().unwrap().to_owned();
        let submits = drafts.iter().map(|id| {
            let api = &api;
            let accountant = accountant.to_owned();
            async move { submit(api, &accountant, id).await }
        });
        let close_path = format!("/api/v1/accounting/periods/{january}/close");
        let close = api.call("POST", &close_path, &staff.manager, None);
        let (closed, outcomes) = tokio::join!(close, futures_util::future::join_all(submits));
        assert_eq!(closed.0, StatusCode::OK, "{}", closed.1);
        for (status, body) in &outcomes {
            assert!(
                *status == StatusCode::OK || codes(body) == ["period_closed"],
                "{status} {body}"
            );
        }
        let tb = report(
            &api,
            accountant,
            "trial-balance",
            &format!("company={company}&to=2026-01-31"),
        )
        .await;
        let income = row(&tb, "income");
        assert_eq!(
            (
                income["closing_debit"].as_str(),
                income["closing_credit"].as_str()
            ),
            (Some("0.00"), Some("0.00")),
            "income left in a closed period: {tb}"
        );
        assert_eq!(
            tb["totals"]["closing_debit"],
            tb["totals"]["closing_credit"]
        );
        api.app.shutdown().await.unwrap();
    }
}
