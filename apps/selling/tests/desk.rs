//! Order to cash through the desk on both backends: a lead converts from its form, a
//! submitted order shows "Make invoice", the button makes the draft and opens it, a submitted invoice shows "Make
//! payment" and prints with its total in words, and the trade reports and
//! reconciliation render with their figures.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::browser::{Browser, Page, assert_has};
use common::{books, boot, money};
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

#[tokio::test]
async fn order_to_cash_through_the_desk() {
    for db in databases("selling_desk").await {
        let api = boot(&db).await;
        let b = books(&api).await;
        let clerk = b.clerk.as_str();
        let order = api.create(clerk, "sales_order", json!({"customer": b.euro_customer, "company": b.company, "posting_date": "2026-03-01", "currency": "EUR", "tax_template": b.vat, "lines": [
            {"item": b.item, "qty": "10", "unit_price": money("100.00", "EUR")},
        ]})).await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        let browser = Browser::new(&api, "acme");
        browser
            .login("clerk@acme.test", "correct horse battery")
            .await;

        // A draft has no "Make" button; the submitted order has.
        let draft = browser.get(&format!("/app/e/sales_order/{order_id}")).await;
        assert!(!draft.body.contains("Make invoice"), "{}", draft.body);
        api.submit(clerk, "sales_order", &order_id).await;
        let submitted = browser.get(&format!("/app/e/sales_order/{order_id}")).await;
        let action = format!("/app/trade/make/sales_order/{order_id}/sales_invoice");
        assert_has(&submitted, &action);
        assert_has(&submitted, "Make invoice");

        // The button makes the invoice and opens it.
        let made = browser
            .post(&action, &[("posting_date", "2026-03-10")])
            .await;
        let invoice_id = redirected_id(&made, "sales_invoice");
        let invoice = api.get(clerk, "sales_invoice", &invoice_id).await;
        assert_eq!(invoice["sales_order"], order_id.as_str(), "{invoice}");
        assert_eq!(invoice["grand_total"], money("1190.00", "EUR"), "{invoice}");
        api.submit(clerk, "sales_invoice", &invoice_id).await;

        // It prints, with its total in words.
        let printed = browser
            .get(&format!("/app/trade/print/sales_invoice/{invoice_id}"))
            .await;
        assert_eq!(printed.status, StatusCode::OK, "{}", printed.body);
        assert_has(&printed, "/app/static/trade-print.css");
        assert_has(&printed, "Dupont SA");
        assert_has(
            &printed,
            "In words: One thousand one hundred ninety and 00/100 EUR.",
        );

        // "Make payment" makes a payment into the company's bank account, allocated.
        let invoice_page = browser
            .get(&format!("/app/e/sales_invoice/{invoice_id}"))
            .await;
        let pay = format!("/app/trade/make/sales_invoice/{invoice_id}/payment_entry");
        assert_has(&invoice_page, &pay);
        let made = browser.post(&pay, &[("posting_date", "2026-03-20")]).await;
        let payment_id = redirected_id(&made, "payment_entry");
        let payment = api.get(clerk, "payment_entry", &payment_id).await;
        assert_eq!(payment["account"], b.bank.as_str(), "{payment}");
        assert_eq!(
            payment["allocations"][0]["invoice"],
            invoice_id.as_str(),
            "{payment}"
        );

        // The reports render their rows: the open invoice, 1190 EUR at 1.10.
        let ageing = browser
            .get(&format!(
                "/app/trade/reports/receivable-ageing?company={}&as_of=2026-04-30",
                b.company
            ))
            .await;
        assert_eq!(ageing.status, StatusCode::OK, "{}", ageing.body);
        assert_has(&ageing, "Dupont SA");
        assert_has(&ageing, "1309.00");
        let register = browser
            .get(&format!(
                "/app/trade/reports/sales-register?company={}",
                b.company
            ))
            .await;
        assert_has(&register, "SINV-2026-00001");
        let home = browser.get("/app").await;
        assert_has(&home, "href=\"/app/trade/reconciliation\"");
        let reconciliation = browser
            .get(&format!(
                "/app/trade/reconciliation?company={}&party_type=Customer",
                b.company
            ))
            .await;
        assert_eq!(
            reconciliation.status,
            StatusCode::OK,
            "{}",
            reconciliation.body
        );
        assert_has(&reconciliation, "Nothing to reconcile.");
        // A lead is converted from its form, into a customer with the company's
        // receivable account, and then shows no button.
        let lead = api
            .create(
                clerk,
                "lead",
                json!({"lead_name": "Ana Lima", "company_name": "Lima Lda", "company": b.company}),
            )
            .await;
        let lead_id = lead["id"].as_str().unwrap();
        let form = browser.get(&format!("/app/e/lead/{lead_id}")).await;
        let convert = format!("/app/crm/leads/{lead_id}/convert");
        assert_has(&form, &convert);
        let converted = browser.post(&convert, &[]).await;
        let customer_id = redirected_id(&converted, "customer");
        let customer = api.get(clerk, "customer", &customer_id).await;
        assert_eq!(customer["customer_name"], "Lima Lda", "{customer}");
        assert_eq!(
            customer["receivable_account"],
            b.receivable.as_str(),
            "{customer}"
        );
        let form = browser.get(&format!("/app/e/lead/{lead_id}")).await;
        assert!(!form.body.contains(&convert), "{}", form.body);
        // A pair that is not made is refused.
        let refused = browser
            .post(
                &format!("/app/trade/make/sales_order/{order_id}/payment_entry"),
                &[],
            )
            .await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
        drop(api);
        db.cleanup().await;
    }
}
