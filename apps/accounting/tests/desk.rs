//! The desk (the admin web UI at `/app`) through the installation's router, on SQLite and
//! PostgreSQL: sign-in and its cookies, the generated list and form of every entity, the
//! accounting screens, escaping of hostile values in every field type, CSRF, and
//! permissions that match the API's.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::browser::{Browser, Page, assert_has, redact_ids as redact};
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
        // Without the script, "Add row" and "Remove" are buttons the server answers: the
        // form comes back with what was typed and one row more or less, unsaved.
        let added = browser
            .post(
                "/app/e/journal_entry/new",
                &[
                    ("f.title", "Typed"),
                    ("t.lines.0.remark", "first"),
                    ("_add_row", "lines"),
                ],
            )
            .await;
        assert_eq!(added.status, StatusCode::OK, "{}", added.body);
        assert_has(&added, "value=\"Typed\"");
        assert_has(&added, "name=\"t.lines.1.account\"");
        let removed = browser
            .post(
                "/app/e/journal_entry/new",
                &[
                    ("t.lines.0.remark", "first"),
                    ("t.lines.1.remark", "second"),
                    ("_remove_row", "lines.0"),
                ],
            )
            .await;
        assert_has(&removed, "value=\"second\"");
        assert!(
            !removed.body.contains("value=\"first\""),
            "{}",
            removed.body
        );
        let (_, drafts) = api
            .call(
                "GET",
                "/api/v1/resources/journal_entry?total=true",
                &staff.admin,
                None,
            )
            .await;
        assert_eq!(drafts["total"], 0, "adding a row saves nothing");
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

        // Bulk: two todos selected and deleted from the list.
        let mut ids = Vec::new();
        for text in ["one", "two", "three"] {
            let made = browser
                .post("/app/e/todo/new", &[("f.description", text)])
                .await;
            ids.push(redirected_id(&made, "todo"));
        }
        let list = browser.get("/app/e/todo").await;
        assert_has(&list, "3 ToDo records");
        assert_has(&list, "data-select-all");
        let done = browser
            .post(
                "/app/e/todo",
                &[("bulk", "delete"), ("ids", &ids[0]), ("ids", &ids[1])],
            )
            .await;
        assert_has(&done, "Deleted 2 of 2.");
        assert_has(&done, "1 ToDo record");
        let sorted = browser.get("/app/e/todo?sort=description&dir=asc").await;
        assert_has(&sorted, "aria-sort=\"ascending\"");
        let filtered = browser.get("/app/e/todo?f.status=Closed").await;
        assert_has(&filtered, "0 ToDo records");

        // Logging out ends the session.
        let out = browser.post("/app/logout", &[]).await;
        assert_eq!(out.location(), "/app/login");
        assert_eq!(browser.get("/app").await.status, StatusCode::SEE_OTHER);
        db.cleanup().await;
    }
}

/// A value that breaks out of text, attributes and scripts when it is not escaped.
const PAYLOAD: &str = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";

/// Fails when any part of the payload reached the page unescaped.
fn assert_escaped(page: &Page, what: &str) {
    for raw in ["<script>alert", "<img src=x", "onerror=alert(2)>"] {
        assert!(
            !page.body.contains(raw),
            "{what}: {raw:?} reached the page unescaped:\n{}",
            page.body
        );
    }
    assert!(
        page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{what}: the payload is not shown at all:\n{}",
        page.body
    );
}

#[tokio::test]
async fn hostile_values_are_escaped_in_every_field_type() {
    for db in databases("desk_xss").await {
        let api = boot(&db).await;
        let staff = staff(&api, "acme").await;
        let admin = staff.admin.as_str();
        let company = company(&api, admin).await;
        // An entity with every scalar field type, its labels and options hostile too.
        let (status, made) = api
            .call(
                "POST",
                "/api/v1/customize/entities",
                admin,
                Some(json!({
                    "name": "probe",
                    "label": format!("Probe {PAYLOAD}"),
                    "fields": [
                        {"name": "data_field", "type": "data", "label": format!("Data {PAYLOAD}"), "description": PAYLOAD},
                        {"name": "text_field", "type": "text"},
                        {"name": "int_field", "type": "int"},
                        {"name": "decimal_field", "type": "decimal", "scale": 2},
                        {"name": "money_field", "type": "money"},
                        {"name": "bool_field", "type": "bool"},
                        {"name": "date_field", "type": "date"},
                        {"name": "datetime_field", "type": "datetime"},
                        {"name": "select_field", "type": "select", "options": [PAYLOAD, "plain"]},
                        {"name": "link_field", "type": "link", "target": "company"},
                        {"name": "json_field", "type": "json"},
                        {"name": "email_field", "type": "email"},
                    ],
                    "permissions": {"admin": ["read", "create", "update", "delete"]},
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        let (status, _) = api
            .call(
                "PATCH",
                &format!("/api/v1/resources/company/{company}"),
                admin,
                Some(json!({"company_name": PAYLOAD})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, probe) = api
            .call(
                "POST",
                "/api/v1/resources/probe",
                admin,
                Some(json!({
                    "data_field": PAYLOAD,
                    "text_field": PAYLOAD,
                    "int_field": 7,
                    "decimal_field": "1.50",
                    "money_field": {"amount": "2.00", "currency": "USD"},
                    "bool_field": true,
                    "date_field": "2026-03-15",
                    "datetime_field": "2026-03-15T10:00:00Z",
                    "select_field": PAYLOAD,
                    "link_field": company,
                    "json_field": {"k": PAYLOAD},
                    "email_field": "a@example.com",
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{probe}");
        let probe = probe["id"].as_str().unwrap().to_owned();
        // A child table row, through a journal entry draft.
        let (_, accounts) = api.call("GET", "/api/v1/resources/account?limit=1&filters=%5B%5B%22is_group%22%2C%22%3D%22%2Cfalse%5D%5D", admin, None).await;
        let account = accounts["data"][0]["id"].as_str().unwrap().to_owned();
        let (status, entry) = api
            .call(
                "POST",
                "/api/v1/resources/journal_entry",
                admin,
                Some(json!({"company": company, "posting_date": "2026-03-15", "title": PAYLOAD, "lines": [
                    {"account": account, "debit": {"amount": "1.00", "currency": "USD"}, "party": PAYLOAD, "remark": PAYLOAD},
                ]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{entry}");
        let entry = entry["id"].as_str().unwrap().to_owned();

        let browser = Browser::new(&api, "acme");
        browser.login("admin@acme.test", PASSWORD).await;
        for path in [
            "/app".to_owned(),
            "/app/e/probe".to_owned(),
            format!("/app/e/probe/{probe}"),
            format!("/app/e/probe/{probe}/history"),
            "/app/e/probe/new".to_owned(),
            "/app/e/company".to_owned(),
            format!("/app/e/journal_entry/{entry}"),
            "/app/e/journal_entry".to_owned(),
            format!("/app/e/journal_entry/{entry}/history"),
        ] {
            let page = browser.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
            assert_escaped(&page, &path);
        }
        // Pages that show none of the values must not carry them raw either.
        for path in [
            "/app/accounting/trial-balance",
            "/app/audit",
            "/app/admin/users",
        ] {
            let page = browser.get(path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
            assert!(!page.body.contains("<script>alert"), "{path}");
        }
        // Values sent back in a form, and the API's messages that quote them.
        let refused = browser
            .post(
                &format!("/app/e/probe/{probe}"),
                &[
                    ("f.int_field", PAYLOAD),
                    ("f.email_field", PAYLOAD),
                    ("f.data_field", PAYLOAD),
                ],
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        assert_escaped(&refused, "the form shown again");
        let refused = browser
            .post(
                &format!("/app/e/probe/{probe}"),
                &[("f.email_field", PAYLOAD)],
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        assert_has(&refused, "is not an email address");
        assert_escaped(&refused, "the API's error message");
        // The link search answers JSON, never HTML.
        let found = browser.get("/app/search/company?q=script").await;
        assert_eq!(found.headers["content-type"], "application/json");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn forms_need_their_csrf_token_and_permissions_match_the_api() {
    for db in databases("desk_permissions").await {
        let api = boot(&db).await;
        let staff = staff(&api, "acme").await;
        let company = company(&api, &staff.admin).await;
        let (_, accounts) = api.call("GET", "/api/v1/resources/account?limit=1&filters=%5B%5B%22is_group%22%2C%22%3D%22%2Cfalse%5D%5D", &staff.admin, None).await;
        let account = accounts["data"][0]["id"].as_str().unwrap().to_owned();
        let (_, entry) = api
            .call(
                "POST",
                "/api/v1/resources/journal_entry",
                &staff.admin,
                Some(json!({"company": company, "posting_date": "2026-03-15", "lines": []})),
            )
            .await;
        let entry = entry["id"].as_str().unwrap().to_owned();

        // CSRF: no token, a wrong token, or a cross-site request is refused before anything.
        let admin = Browser::new(&api, "acme");
        admin.login("admin@acme.test", PASSWORD).await;
        let good = admin.cookie("prefiq_csrf").unwrap();
        for (token, site) in [
            ("", None),
            ("0".repeat(64).as_str(), None),
            (good.as_str(), Some("cross-site")),
        ] {
            let page = match site {
                None => {
                    admin
                        .post(
                            "/app/e/todo/new",
                            &[("_csrf", token), ("f.description", "x")],
                        )
                        .await
                }
                Some(site) => {
                    admin.set_cookie("x", "y");
                    admin
                        .post_with(
                            "/app/e/todo/new",
                            &[("f.description", "x")],
                            &[("sec-fetch-site", site)],
                        )
                        .await
                }
            };
            assert_eq!(
                page.status,
                StatusCode::FORBIDDEN,
                "{token:?} {site:?}: {}",
                page.body
            );
            assert_has(&page, "did not come from this site");
        }
        let (_, todos) = api
            .call(
                "GET",
                "/api/v1/resources/todo?total=true",
                &staff.admin,
                None,
            )
            .await;
        assert_eq!(todos["total"], 0, "a refused form writes nothing");

        // The auditor reads journal entries but may not write them: no button, and the
        // form posted anyway gets the API's refusal.
        let auditor = Browser::new(&api, "acme");
        auditor.login("auditor@acme.test", PASSWORD).await;
        let list = auditor.get("/app/e/journal_entry").await;
        assert_eq!(list.status, StatusCode::OK);
        assert!(!list.body.contains("New Journal Entry"), "{}", list.body);
        assert!(!list.body.contains("Delete selected"));
        let form = auditor.get(&format!("/app/e/journal_entry/{entry}")).await;
        for button in [">Save</button>", ">Submit</button>", ">Delete</button>"] {
            assert!(!form.body.contains(button), "{button} shown to the auditor");
        }
        let new = auditor.get("/app/e/journal_entry/new").await;
        assert_eq!(new.status, StatusCode::FORBIDDEN);
        let posted = auditor
            .post(
                "/app/e/journal_entry/new",
                &[("f.company", "Acme Ltd"), ("f.posting_date", "2026-03-15")],
            )
            .await;
        assert_eq!(posted.status, StatusCode::FORBIDDEN, "{}", posted.body);
        let submitted = auditor
            .post(&format!("/app/e/journal_entry/{entry}/do/submit"), &[])
            .await;
        assert_eq!(
            submitted.status,
            StatusCode::FORBIDDEN,
            "{}",
            submitted.body
        );
        let saved = auditor
            .post(
                &format!("/app/e/journal_entry/{entry}"),
                &[("f.title", "changed")],
            )
            .await;
        assert_eq!(saved.status, StatusCode::FORBIDDEN, "{}", saved.body);
        let (_, stored) = api
            .call(
                "GET",
                &format!("/api/v1/resources/journal_entry/{entry}"),
                &staff.admin,
                None,
            )
            .await;
        assert!(stored["title"].is_null(), "{stored}");
        // Reports are the auditor's; administration is not.
        assert_eq!(
            auditor.get("/app/accounting/trial-balance").await.status,
            StatusCode::OK
        );
        let home = auditor.get("/app").await;
        assert!(!home.body.contains("/app/admin/users"), "{}", home.body);
        let users = auditor.get("/app/admin/users").await;
        assert_eq!(users.status, StatusCode::FORBIDDEN);
        assert_has(&users, "cortex.manage_users");
        let added = auditor
            .post(
                "/app/admin/users",
                &[("email", "x@acme.test"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(added.status, StatusCode::FORBIDDEN);

        // The accountant posts entries but may not create accounts.
        let accountant = Browser::new(&api, "acme");
        accountant.login("accountant@acme.test", PASSWORD).await;
        let accounts = accountant.get("/app/e/account").await;
        assert!(!accounts.body.contains("New Account"));
        let made = accountant
            .post(
                "/app/e/account/new",
                &[
                    ("f.account_name", "X"),
                    ("f.account_path", "assets:x"),
                    ("f.company", "Acme Ltd"),
                    ("f.root_type", "Asset"),
                ],
            )
            .await;
        assert_eq!(made.status, StatusCode::FORBIDDEN, "{}", made.body);
        let entries = accountant.get("/app/e/journal_entry").await;
        assert_has(&entries, "New Journal Entry");
        let _ = account;

        // Another tenant's session does not open this tenant's desk.
        let elsewhere = Browser::new(&api, "globex");
        elsewhere.set_cookie("prefiq_session", &admin.cookie("prefiq_session").unwrap());
        assert_eq!(elsewhere.get("/app").await.status, StatusCode::SEE_OTHER);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn pages_carry_the_security_headers_and_a_tenant_theme_overrides_at_run_time() {
    for db in databases("desk_theme").await {
        let api = boot(&db).await;
        let _staff = staff(&api, "acme").await;
        let browser = Browser::new(&api, "acme");
        let login = browser.get("/app/login").await;
        let csp = login.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(login.headers["x-frame-options"], "DENY");
        assert!(!login.body.contains("<script>"), "no inline script");
        assert!(!login.body.contains(" style=\""), "no inline style");
        browser.login("admin@acme.test", PASSWORD).await;
        let cookies: Vec<String> = login
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for cookie in &cookies {
            assert!(
                cookie.contains("HttpOnly")
                    && cookie.contains("SameSite=Lax")
                    && cookie.contains("Path=/app"),
                "{cookie}"
            );
        }
        let css = browser.get("/app/static/desk.css").await;
        assert_eq!(css.status, StatusCode::OK);
        assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");
        assert_eq!(
            browser
                .get("/app/static/..%2F..%2Fconfig%2Fbase.yaml")
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        // A theme under themes/acme overrides a template and a stylesheet, without a restart.
        let theme = db.root().join("themes/acme");
        std::fs::create_dir_all(theme.join("templates")).unwrap();
        std::fs::create_dir_all(theme.join("static")).unwrap();
        std::fs::write(
            theme.join("templates/home.html"),
            "{% extends \"base.html\" %}{% block content %}<p>Acme's own home</p>{% endblock %}",
        )
        .unwrap();
        std::fs::write(
            theme.join("static/desk.css"),
            "body { color: rebeccapurple; }",
        )
        .unwrap();
        assert_has(&browser.get("/app").await, "Acme's own home");
        assert_has(&browser.get("/app/static/desk.css").await, "rebeccapurple");
        // Other pages keep the core templates, and another tenant keeps all of them.
        assert_has(&browser.get("/app/e/todo").await, "New ToDo");
        std::fs::remove_dir_all(&theme).unwrap();
        assert!(!browser.get("/app").await.body.contains("Acme's own home"));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn rendered_pages_match_their_snapshots() {
    // SQLite only: the pages are the same on both backends, and one snapshot is enough.
    let db = prefiq_data::testing::TestDatabase::sqlite().unwrap();
    let api = boot(&db).await;
    let staff = staff(&api, "acme").await;
    let company = company(&api, &staff.admin).await;
    let (_, entry) = api
        .call("POST", "/api/v1/resources/journal_entry", &staff.admin, Some(json!({"company": company, "posting_date": "2026-03-15", "title": "Rent for March", "lines": []})))
        .await;
    let entry = entry["id"].as_str().unwrap().to_owned();
    let browser = Browser::new(&api, "acme");
    insta::assert_snapshot!("login", redact(&browser.get("/app/login").await.body));
    browser.login("accountant@acme.test", PASSWORD).await;
    insta::assert_snapshot!(
        "home_of_an_accountant",
        redact(&browser.get("/app").await.body)
    );
    insta::assert_snapshot!(
        "journal_entry_list",
        redact(&browser.get("/app/e/journal_entry").await.body)
    );
    insta::assert_snapshot!(
        "journal_entry_form",
        redact(
            &browser
                .get(&format!("/app/e/journal_entry/{entry}"))
                .await
                .body
        )
    );
    let refused = browser
        .post(
            &format!("/app/e/journal_entry/{entry}"),
            &[
                ("f.company", "No such company"),
                ("f.posting_date", "2026-03-15"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    insta::assert_snapshot!("journal_entry_form_with_errors", redact(&refused.body));
    db.cleanup().await;
}

#[tokio::test]
async fn administrators_manage_users_roles_and_settings() {
    for db in databases("desk_admin").await {
        let api = boot(&db).await;
        let _staff = staff(&api, "acme").await;
        let browser = Browser::new(&api, "acme");
        browser.login("admin@acme.test", PASSWORD).await;
        // A user added with a role can sign in and has that role's pages.
        let added = browser
            .post(
                "/app/admin/users",
                &[
                    ("email", "clerk@acme.test"),
                    ("password", PASSWORD),
                    ("roles", "Accountant"),
                ],
            )
            .await;
        assert_eq!(added.status, StatusCode::OK, "{}", added.body);
        assert_has(&added, "Added clerk@acme.test.");
        let too_short = browser
            .post(
                "/app/admin/users",
                &[("email", "x@acme.test"), ("password", "short")],
            )
            .await;
        assert!(too_short.status.is_client_error(), "{}", too_short.body);
        assert_has(&too_short, "notice error");
        let clerk = Browser::new(&api, "acme");
        clerk.login("clerk@acme.test", PASSWORD).await;
        assert_has(
            &clerk.get("/app/e/journal_entry").await,
            "New Journal Entry",
        );
        // Its roles changed to Auditor: the next session reads only.
        let (_, users) = api.call("GET", "/api/v1/users", &_staff.admin, None).await;
        let id = users["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == "clerk@acme.test")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let user = browser.get(&format!("/app/admin/users/{id}")).await;
        assert_has(&user, "value=\"Accountant\" checked");
        let saved = browser
            .post(
                &format!("/app/admin/users/{id}"),
                &[
                    ("roles", "Auditor"),
                    ("status", "active"),
                    ("attributes", "{\"department\": \"finance\"}"),
                ],
            )
            .await;
        assert_has(&saved, "Saved.");
        let bad = browser
            .post(
                &format!("/app/admin/users/{id}"),
                &[("roles", "Auditor"), ("attributes", "[1]")],
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        let clerk = Browser::new(&api, "acme");
        clerk.login("clerk@acme.test", PASSWORD).await;
        assert!(
            !clerk
                .get("/app/e/journal_entry")
                .await
                .body
                .contains("New Journal Entry")
        );
        // Roles: the permission matrix and the tenant's own policies, checked by Cedar.
        let roles = browser.get("/app/admin/roles").await;
        assert_has(&roles, "Accounts Manager");
        let refused = browser
            .post(
                "/app/admin/roles",
                &[
                    ("id", "broken"),
                    ("text", "permit(principal, action, resource"),
                ],
            )
            .await;
        assert!(refused.status.is_client_error(), "{}", refused.body);
        assert_has(&refused, "notice error");
        assert_has(&refused, "permit(principal, action, resource</textarea>");
        // Settings: a tenant override is stored, shown, and cleared again.
        let settings = browser.get("/app/admin/settings").await;
        assert_has(&settings, "app.timezone");
        let saved = browser
            .post(
                "/app/admin/settings",
                &[
                    ("app.timezone", "Europe/Zurich"),
                    ("app.timezone.was", "UTC"),
                    ("app.locale", "en"),
                    ("app.locale.was", "en"),
                ],
            )
            .await;
        assert_has(&saved, "Saved 1 setting(s).");
        assert_has(&saved, "value=\"Europe/Zurich\"");
        assert_has(&saved, "Set for this organisation.");
        db.cleanup().await;
    }
}
