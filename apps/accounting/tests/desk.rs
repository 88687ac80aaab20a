//! The desk (the admin web UI at `/app`) through the installation's router, on SQLite and
//! PostgreSQL: sign-in and its cookies, the generated list and form of every entity, the
//! accounting screens, escaping of hostile values in every field type, CSRF, and
//! permissions that match the API's.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::browser::{Browser, Page};
use common::{Api, boot, staff};
use prefiq_data::testing::databases;
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// A company with the standard chart and a fiscal year, made through the API.
async fn company(api: &Api, bearer: &str) -> String {
    let (status, company) = api
        .call(
            "POST",
            "/api/v1/resources/company",
            bearer,
            Some(json!({"company_name": "Acme Ltd", "abbr": "ACME", "currency": "USD"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{company}");
    let id = company["id"].as_str().unwrap().to_owned();
    let (status, year) = api
        .call(
            "POST",
            "/api/v1/resources/fiscal_year",
            bearer,
            Some(json!({"year_name": "FY 2026", "company": id, "start_date": "2026-01-01", "end_date": "2026-12-31"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{year}");
    id
}

/// The id in a redirect to `/app/e/{entity}/{id}?…`.
fn redirected_id(page: &Page, entity: &str) -> String {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let location = page.location();
    let rest = location
        .strip_prefix(&format!("/app/e/{entity}/"))
        .unwrap_or_else(|| panic!("{location}"));
    rest.split('?').next().unwrap().to_owned()
}

fn assert_has(page: &Page, text: &str) {
    assert!(
        page.body.contains(text),
        "expected {text:?} in the page ({}):\n{}",
        page.status,
        page.body
    );
}

#[tokio::test]
async fn the_browser_scenario_runs_through_forms() {
    for db in databases("desk_scenario").await {
        let api = boot(&db).await;
        let staff = staff(&api, "acme").await;
        company(&api, &staff.admin).await;
        let browser = Browser::new(&api, "acme");

        // Signed out, every page leads to the login form and back.
        let page = browser.get("/app/e/account").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), "/app/login?next=/app/e/account");
        let login = browser.get("/app/login").await;
        assert_has(&login, "<label for=\"email\">Email</label>");
        let set_cookie: Vec<_> = login
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert!(
            set_cookie.iter().any(|c| c.starts_with("prefiq_csrf=")
                && c.contains("HttpOnly")
                && c.contains("SameSite=Lax")),
            "{set_cookie:?}"
        );
        let wrong = browser
            .post(
                "/app/login",
                &[
                    ("email", "admin@acme.test"),
                    ("password", "wrong password!"),
                ],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_has(&wrong, "The email or password is wrong");
        browser.login("admin@acme.test", PASSWORD).await;

        // Home lists the modules' pages.
        let home = browser.get("/app").await;
        assert_has(&home, "href=\"/app/accounting/chart\"");
        assert_has(&home, "Journal Entry");
        assert_has(&home, "href=\"/app/admin/users\"");

        // Two accounts through the generated form.
        for (name, path, root, parent) in [
            (
                "Petty cash",
                "assets:current:petty-cash",
                "Asset",
                "assets:current",
            ),
            ("Consulting", "income:consulting", "Income", "income"),
        ] {
            let created = browser
                .post(
                    "/app/e/account/new",
                    &[
                        ("f.account_name", name),
                        ("f.account_path", path),
                        ("f.company", "Acme Ltd"),
                        ("f.root_type", root),
                        ("f.parent_account", parent),
                        ("f.is_group.present", "1"),
                    ],
                )
                .await;
            let id = redirected_id(&created, "account");
            let shown = browser.get(&format!("/app/e/account/{id}")).await;
            assert_has(&shown, &format!("value=\"{name}\""));
            assert_has(&shown, "value=\"Acme Ltd\"");
        }
        let accounts = browser.get("/app/e/account?q=petty").await;
        assert_has(&accounts, "1 Account record");

        // A journal entry of three lines that does not balance: saved as a draft, refused
        // on submit with the API's message, shown on the form.
        let new = browser.get("/app/e/journal_entry/new").await;
        assert_has(&new, "data-add-row=\"lines\"");
        let lines = [
            ("assets:current:petty-cash", "100.00", ""),
            ("income:consulting", "", "60.00"),
            ("income:consulting", "", "30.00"),
        ];
        let mut pairs: Vec<(String, String)> = vec![
            ("f.company".into(), "Acme Ltd".into()),
            ("f.posting_date".into(), "2026-03-15".into()),
            ("f.title".into(), "Consulting fees".into()),
        ];
        for (i, (account, debit, credit)) in lines.iter().enumerate() {
            pairs.push((format!("t.lines.{i}.account"), (*account).into()));
            pairs.push((format!("t.lines.{i}.debit"), (*debit).into()));
            pairs.push((format!("t.lines.{i}.credit"), (*credit).into()));
        }
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let saved = browser.post("/app/e/journal_entry/new", &borrowed).await;
        let entry = redirected_id(&saved, "journal_entry");
        let draft = browser.get(&format!("/app/e/journal_entry/{entry}")).await;
        assert_has(&draft, "Not balanced");
        assert_has(
            &draft,
            "<output data-diff=\"lines.debit lines.credit\">10.0</output>",
        );
        let refused = browser
            .post(&format!("/app/e/journal_entry/{entry}/do/submit"), &[])
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        assert_has(
            &refused,
            "debits (100.00) and credits (90.00) differ by 10.00 USD",
        );

        // Fixed and submitted.
        let version = draft.input_value("_version").unwrap();
        pairs[11].1 = "40.00".into();
        pairs.push(("_version".into(), version));
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let saved = browser
            .post(&format!("/app/e/journal_entry/{entry}"), &borrowed)
            .await;
        assert_eq!(redirected_id(&saved, "journal_entry"), entry);
        let submitted = browser
            .post(&format!("/app/e/journal_entry/{entry}/do/submit"), &[])
            .await;
        assert_eq!(
            submitted.status,
            StatusCode::SEE_OTHER,
            "{}",
            submitted.body
        );
        let shown = browser.get(&submitted.location()).await;
        assert_has(&shown, "Submitted");
        assert_has(&shown, ">Cancel</button>");
        assert!(
            !shown.body.contains(">Save</button>"),
            "a submitted entry is not edited"
        );

        // In the trial balance, and from there in the ledger.
        let tb = browser
            .get("/app/accounting/trial-balance?from=2026-01-01&to=2026-12-31")
            .await;
        assert_eq!(tb.status, StatusCode::OK, "{}", tb.body);
        assert_has(&tb, "Petty cash");
        assert_has(&tb, "100.00");
        let chart = browser.get("/app/accounting/chart?to=2026-12-31").await;
        assert_has(&chart, "Dr 100.00");
        let pl = browser
            .get("/app/accounting/profit-and-loss?from=2026-01-01&to=2026-12-31")
            .await;
        assert_has(&pl, "<svg");
        assert_has(&pl, "Consulting");

        // Cancelled, and its history shows each step with the fields that changed.
        let cancelled = browser
            .post(&format!("/app/e/journal_entry/{entry}/do/cancel"), &[])
            .await;
        assert_eq!(
            cancelled.status,
            StatusCode::SEE_OTHER,
            "{}",
            cancelled.body
        );
        let shown = browser.get(&cancelled.location()).await;
        assert_has(&shown, "Cancelled");
        assert_has(&shown, ">Amend</button>");
        let history = browser
            .get(&format!("/app/e/journal_entry/{entry}/history"))
            .await;
        assert_eq!(history.status, StatusCode::OK, "{}", history.body);
        for action in ["create", "update", "submit", "cancel"] {
            assert_has(&history, &format!("<span class=\"action\">{action}</span>"));
        }
        let audit = browser.get("/app/audit").await;
        assert_has(&audit, "Verified.");

        // Logging out ends the session.
        let out = browser.post("/app/logout", &[]).await;
        assert_eq!(out.location(), "/app/login");
        assert_eq!(browser.get("/app").await.status, StatusCode::SEE_OTHER);
        db.cleanup().await;
    }
}
