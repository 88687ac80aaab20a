//! Stock through the desk on both backends: a delivery note and a manufacture are
//! entered on the desk's forms and submitted there, and every stock report page renders
//! its figures, with its CSV link, for a user who may read them (and is refused to one
//! who may not).
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::browser::{Browser, Page, assert_has};
use common::*;
use prefiq_data::testing::databases;
use serde_json::json;

/// The id in a redirect to `/app/e/{entity}/{id}`.
fn redirected_id(page: &Page, entity: &str) -> String {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let location = page.location();
    location
        .strip_prefix(&format!("/app/e/{entity}/"))
        .unwrap_or_else(|| panic!("{location}"))
        .split('?')
        .next()
        .unwrap()
        .to_owned()
}

/// Saves a new record of `entity` from the desk's form and submits it there.
async fn save_and_submit(browser: &Browser<'_>, entity: &str, pairs: &[(String, String)]) {
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let saved = browser
        .post(&format!("/app/e/{entity}/new"), &borrowed)
        .await;
    let id = redirected_id(&saved, entity);
    let submitted = browser
        .post(&format!("/app/e/{entity}/{id}/do/submit"), &[])
        .await;
    assert_eq!(
        submitted.status,
        StatusCode::SEE_OTHER,
        "{entity}: {}",
        submitted.body
    );
    let shown = browser.get(&submitted.location()).await;
    assert_has(&shown, "Submitted");
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn deliveries_and_a_manufacture_through_the_desk_and_its_report_pages() {
    for db in databases("stock_desk").await {
        let api = boot(&db).await;
        let clerk = api.clerk().await;
        let b = books(&api, &clerk).await;
        let receivable = api
            .account(&clerk, &b.company, "assets:current:receivable")
            .await;
        let customer = api.create(&clerk, "customer", json!({"customer_name": "Müller GmbH", "company": b.company, "receivable_account": receivable, "currency": "USD"})).await;
        let (status, answer, _) = api
            .submit(&clerk, entry(&b, "Receipt", "2026-03-01", json!([
                {"item": b.bolt, "qty": "10", "t_warehouse": b.main, "basic_rate": usd("2.00")},
                {"item": b.nut, "qty": "10", "t_warehouse": b.main, "basic_rate": usd("3.00")},
            ])))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let browser = Browser::new(&api, "acme");
        browser
            .login("clerk@acme.test", "correct horse battery")
            .await;

        // A delivery note of 4 bolts, and a transfer-free manufacture: 2 nuts into 1 glue.
        let new = browser.get("/app/e/delivery_note/new").await;
        assert_has(&new, "data-add-row=\"lines\"");
        save_and_submit(
            &browser,
            "delivery_note",
            &pairs(&[
                ("f.customer", &customer),
                ("f.company", &b.company),
                ("f.posting_date", "2026-03-02"),
                ("t.lines.0.item", &b.bolt),
                ("t.lines.0.qty", "4"),
                ("t.lines.0.warehouse", &b.main),
            ]),
        )
        .await;
        save_and_submit(
            &browser,
            "stock_entry",
            &pairs(&[
                ("f.purpose", "Manufacture"),
                ("f.company", &b.company),
                ("f.posting_date", "2026-03-03"),
                ("t.lines.0.item", &b.nut),
                ("t.lines.0.qty", "2"),
                ("t.lines.0.s_warehouse", &b.main),
                ("t.lines.1.item", &b.glue),
                ("t.lines.1.qty", "1"),
                ("t.lines.1.t_warehouse", &b.store),
            ]),
        )
        .await;
        assert_eq!(
            api.stock(&clerk, &b.company, "2026-12-31").await,
            [
                row("BOLT", "Main", "6.000", "12.00"),
                row("NUT", "Main", "8.000", "24.00"),
                row("GLUE", "Store B", "1.000", "6.00"),
            ]
            .into()
        );
        check_books(&api, &clerk, &b).await;

        // Each report page shows its figures and links its CSV.
        let company = &b.company;
        for (path, shown) in [
            (
                format!("stock-balance?company={company}&as_of=2026-12-31"),
                "12.00",
            ),
            (
                format!("stock-ledger?company={company}&from=2026-03-01&to=2026-03-31"),
                "-4.000",
            ),
            (
                format!("stock-ageing?company={company}&as_of=2026-03-31"),
                "6.000",
            ),
            (
                format!("below-reorder?company={company}"),
                "Nothing to show.",
            ),
            (
                format!("gross-profit?company={company}&from=2026-03-01&to=2026-03-31"),
                "Nothing to show.",
            ),
        ] {
            let page = browser.get(&format!("/app/stock/reports/{path}")).await;
            assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
            assert_has(&page, shown);
            assert_has(&page, "format=csv");
        }
        let missing = browser.get("/app/stock/reports/nothing").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);

        // Someone who may not read the reports is refused, as by the API.
        api.user("acme", "guest@acme.test", &["Sales User"]).await;
        let guest = Browser::new(&api, "acme");
        guest
            .login("guest@acme.test", "correct horse battery")
            .await;
        let refused = guest
            .get(&format!(
                "/app/stock/reports/stock-balance?company={company}"
            ))
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    }
}
