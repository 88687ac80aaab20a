//! Every desk page has a title of its own in `<title>` (the regression: the login page's
//! was empty, " · Codexion", because its template had no `title` to show).
#![allow(clippy::unwrap_used)]

mod common;

use common::browser::{Browser, Page};
use common::{boot, staff};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// The text of the page's `<title>`.
fn title(page: &Page) -> &str {
    let start = page.body.find("<title>").map(|i| i + "<title>".len());
    let end = page.body.find("</title>");
    match (start, end) {
        (Some(start), Some(end)) if start <= end => &page.body[start..end],
        _ => "",
    }
}

/// The page at `path` has a title, and it is `expected` before the installation's name.
fn check(path: &str, page: &Page, expected: &str) {
    assert_eq!(
        title(page),
        format!("{expected} · Codexion"),
        "{path}: {}",
        page.status
    );
}

#[tokio::test]
async fn every_desk_page_has_a_title() {
    let db = prefiq_data::testing::TestDatabase::sqlite().unwrap();
    let api = boot(&db).await;
    let staff = staff(&api, "acme").await;
    let (_, company) = api
        .call(
            "POST",
            "/api/v1/resources/company",
            &staff.admin,
            Some(json!({"company_name": "Acme Ltd", "abbr": "ACME", "currency": "USD"})),
        )
        .await;
    let company = company["id"].as_str().unwrap().to_owned();
    let (_, todo) = api
        .call(
            "POST",
            "/api/v1/resources/todo",
            &staff.admin,
            Some(json!({"description": "Titled"})),
        )
        .await;
    let todo = todo["id"].as_str().unwrap().to_owned();
    let browser = Browser::new(&api, "acme");
    check("/app/login", &browser.get("/app/login").await, "Sign in");
    browser.login("admin@acme.test", PASSWORD).await;
    let (_, users) = api.call("GET", "/api/v1/users", &staff.admin, None).await;
    let user = users["data"][0]["id"].as_str().unwrap().to_owned();
    let user_email = users["data"][0]["email"].as_str().unwrap().to_owned();
    for (path, expected) in [
        ("/app".to_owned(), "Home".to_owned()),
        ("/app/e/todo".to_owned(), "ToDo".to_owned()),
        ("/app/e/todo/new".to_owned(), "New ToDo".to_owned()),
        (format!("/app/e/todo/{todo}"), format!("ToDo {todo}")),
        (
            format!("/app/e/todo/{todo}/history"),
            format!("History of {todo}"),
        ),
        ("/app/audit".to_owned(), "Audit log".to_owned()),
        ("/app/admin/users".to_owned(), "Users".to_owned()),
        (
            format!("/app/admin/users/{user}"),
            format!("User {user_email}"),
        ),
        (
            "/app/admin/roles".to_owned(),
            "Roles and policies".to_owned(),
        ),
        ("/app/admin/settings".to_owned(), "Settings".to_owned()),
        (
            format!("/app/accounting/chart?company={company}"),
            "Chart of accounts".to_owned(),
        ),
        (
            format!("/app/accounting/trial-balance?company={company}"),
            "Trial balance".to_owned(),
        ),
        (
            format!("/app/accounting/balance-sheet?company={company}"),
            "Balance sheet".to_owned(),
        ),
        (
            format!("/app/accounting/profit-and-loss?company={company}"),
            "Profit and loss".to_owned(),
        ),
        (
            format!("/app/accounting/general-ledger?company={company}"),
            "General ledger".to_owned(),
        ),
    ] {
        check(&path, &browser.get(&path).await, &expected);
    }
    // An error page (here: an entity that does not exist) has a title too.
    let missing = browser.get("/app/e/no_such_entity").await;
    assert!(
        !title(&missing).starts_with(" ·") && !title(&missing).is_empty(),
        "{}",
        title(&missing)
    );
    db.cleanup().await;
}
