//! Order to cash and procure to pay through the API on both backends: a quotation
//! becomes an order, the order is invoiced line by line (never past its quantity), an
//! invoice in EUR for a USD company is paid at another rate with the exchange gain
//! posted, an advance is reconciled later with its loss posted, a credit note returns an
//! invoice, and at the end the ageing is empty and the trial balance agrees with the
//! documents.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Api, books, boot, money};
use prefiq_data::testing::databases;
use serde_json::{Value, json};

fn eur(amount: &str) -> Value {
    money(amount, "EUR")
}

fn usd(amount: &str) -> Value {
    money(amount, "USD")
}

/// The trial balance's moved leaf accounts: `(path, closing debit, closing credit)`.
async fn balances(api: &Api, clerk: &str, company: &str) -> Vec<(String, String, String)> {
    api.balances(clerk, company).await
}

fn row(path: &str, debit: &str, credit: &str) -> (String, String, String) {
    (path.to_owned(), debit.to_owned(), credit.to_owned())
}

/// A refusal: the status, and the pointer of its first problem.
async fn refused(
    api: &Api,
    clerk: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let (status, answer) = api.call(method, path, clerk, body).await;
    (
        status.as_u16(),
        answer["errors"][0]["pointer"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn order_to_cash_in_eur_for_a_usd_company() {
    for db in databases("selling_order_to_cash").await {
        let api = boot(&db).await;
        let b = books(&api).await;
        let clerk = b.clerk.as_str();

        // A lead with an opportunity becomes a customer, and the opportunity its quotation.
        let lead = api.create(clerk, "lead", json!({"lead_name": "Jeanne Dupont", "company_name": "Dupont et Fils", "email": "jeanne@dupont.test", "company": b.company})).await;
        let lead_id = lead["id"].as_str().unwrap();
        let opportunity = api.create(clerk, "opportunity", json!({"title": "Consulting", "company": b.company, "lead": lead_id, "stage": "Proposal", "expected_close_date": "2026-03-31", "amount": eur("1190.00")})).await;
        let opportunity_id = opportunity["id"].as_str().unwrap();
        assert_eq!(
            api.get(clerk, "lead", lead_id).await["status"],
            "Opportunity"
        );
        // Not before the lead is a customer.
        assert_eq!(
            refused(
                &api,
                clerk,
                "POST",
                &format!("/api/v1/trade/opportunity/{opportunity_id}/make/quotation"),
                Some(json!({}))
            )
            .await,
            (422, "/customer".to_owned())
        );
        let converted = api
            .expect(
                clerk,
                "POST",
                &format!("/api/v1/crm/leads/{lead_id}/convert"),
                Some(json!({"customer": {"receivable_account": b.receivable, "currency": "EUR"}})),
                StatusCode::CREATED,
            )
            .await;
        let customer = converted["customer"]["id"].as_str().unwrap().to_owned();
        let quotation = api
            .make(
                clerk,
                "opportunity",
                opportunity_id,
                "quotation",
                json!({"posting_date": "2026-02-20", "tax_template": b.vat, "lines": [
                    {"item": b.item, "qty": "10", "unit_price": eur("100.00")},
                ]}),
            )
            .await;
        assert_eq!(quotation["customer"], customer.as_str(), "{quotation}");
        assert_eq!(quotation["opportunity"], opportunity_id, "{quotation}");
        assert_eq!(quotation["grand_total"], eur("1190.00"), "{quotation}");
        let quotation_id = quotation["id"].as_str().unwrap();
        api.submit(clerk, "quotation", quotation_id).await;
        let order = api
            .make(
                clerk,
                "quotation",
                quotation_id,
                "sales_order",
                json!({"posting_date": "2026-03-01"}),
            )
            .await;
        assert_eq!(order["quotation"], quotation_id, "{order}");
        assert_eq!(order["grand_total"], eur("1190.00"), "{order}");
        let order_id = order["id"].as_str().unwrap().to_owned();
        let order = api.submit(clerk, "sales_order", &order_id).await;
        assert_eq!(order["billing_status"], "Not Billed", "{order}");
        let order_line = order["lines"][0]["id"].as_str().unwrap().to_owned();

        // A first invoice of 4 of the 10, made by hand against the order line.
        let first = api.create(clerk, "sales_invoice", json!({"customer": customer, "company": b.company, "posting_date": "2026-03-10", "currency": "EUR", "tax_template": b.vat, "sales_order": order_id, "lines": [
            {"item": b.item, "qty": "4", "unit_price": eur("100.00"), "order_line": order_line},
        ]})).await;
        let first_id = first["id"].as_str().unwrap().to_owned();
        let first = api.submit(clerk, "sales_invoice", &first_id).await;
        assert_eq!(first["outstanding_amount"], eur("476.00"), "{first}");
        // The rate of its date is fixed on the invoice: payments settle at it.
        assert_eq!(first["exchange_rate"], "1.100000000", "{first}");
        let order = api.get(clerk, "sales_order", &order_id).await;
        assert_eq!(order["billing_status"], "Partly Billed", "{order}");
        assert_eq!(order["lines"][0]["billed_qty"], "4.000", "{order}");

        // 7 more is past the order's 6 left: refused at the line, nothing written.
        let over = api.create(clerk, "sales_invoice", json!({"customer": customer, "company": b.company, "posting_date": "2026-03-11", "currency": "EUR", "lines": [
            {"item": b.item, "qty": "7", "unit_price": eur("100.00"), "order_line": order_line},
        ]})).await;
        let over_id = over["id"].as_str().unwrap();
        assert_eq!(
            refused(
                &api,
                clerk,
                "POST",
                &format!("/api/v1/resources/sales_invoice/{over_id}/submit"),
                None
            )
            .await,
            (422, "/lines/0/qty".to_owned())
        );
        assert_eq!(
            api.get(clerk, "sales_invoice", over_id).await["docstatus"],
            0
        );
        assert_eq!(
            api.get(clerk, "sales_order", &order_id).await["lines"][0]["billed_qty"],
            "4.000"
        );

        // "Make invoice" carries what is left: 6.
        let second = api
            .make(
                clerk,
                "sales_order",
                &order_id,
                "sales_invoice",
                json!({"posting_date": "2026-03-15"}),
            )
            .await;
        assert_eq!(second["lines"][0]["qty"], "6.000", "{second}");
        let second_id = second["id"].as_str().unwrap().to_owned();
        let second = api.submit(clerk, "sales_invoice", &second_id).await;
        assert_eq!(second["outstanding_amount"], eur("714.00"), "{second}");
        let order = api.get(clerk, "sales_order", &order_id).await;
        assert_eq!(order["billing_status"], "Fully Billed", "{order}");
        assert_eq!(
            refused(
                &api,
                clerk,
                "POST",
                &format!("/api/v1/trade/sales_order/{order_id}/make/sales_invoice"),
                Some(json!({}))
            )
            .await,
            (422, "/lines".to_owned())
        );
        // An invoiced order is not cancelled under its invoices.
        assert_eq!(
            refused(
                &api,
                clerk,
                "POST",
                &format!("/api/v1/resources/sales_order/{order_id}/cancel"),
                None
            )
            .await,
            (422, "/lines".to_owned())
        );

        // The first invoice paid at 1.20 instead of 1.10: a gain of 476 × 0.10 = 47.60 USD.
        let payment = api
            .make(
                clerk,
                "sales_invoice",
                &first_id,
                "payment_entry",
                json!({"account": b.bank, "exchange_rate": "1.2", "posting_date": "2026-04-01"}),
            )
            .await;
        assert_eq!(payment["paid_amount"], eur("476.00"), "{payment}");
        assert_eq!(payment["unallocated_amount"], eur("0.00"), "{payment}");
        let payment_id = payment["id"].as_str().unwrap().to_owned();
        // Allocating more than is outstanding is refused at its pointer.
        let (status, answer) = api
            .call("POST", "/api/v1/resources/payment_entry", clerk, Some(json!({"payment_type": "Receive", "party_type": "Customer", "party": customer, "company": b.company, "posting_date": "2026-04-01", "account": b.bank, "currency": "EUR", "paid_amount": eur("500.00"), "allocations": [
                {"invoice_type": "Sales Invoice", "invoice": first_id, "allocated_amount": eur("500.00")},
            ]})))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(
            answer["errors"][0]["pointer"], "/allocations/0/allocated_amount",
            "{answer}"
        );
        let payment = api.submit(clerk, "payment_entry", &payment_id).await;
        assert_eq!(payment["exchange_gain_loss"], usd("47.60"), "{payment}");
        assert_eq!(
            api.get(clerk, "sales_invoice", &first_id).await["outstanding_amount"],
            eur("0.00")
        );

        // An advance of 714 EUR at 1.00, reconciled later with the second invoice (booked
        // at 1.10): a loss of 71.40 USD.
        let advance = api.create(clerk, "payment_entry", json!({"payment_type": "Receive", "party_type": "Customer", "party": customer, "company": b.company, "posting_date": "2026-04-05", "account": b.bank, "currency": "EUR", "exchange_rate": "1", "paid_amount": eur("714.00")})).await;
        assert_eq!(advance["unallocated_amount"], eur("714.00"), "{advance}");
        let advance_id = advance["id"].as_str().unwrap().to_owned();
        api.submit(clerk, "payment_entry", &advance_id).await;
        let suggested = api
            .expect(
                clerk,
                "GET",
                &format!(
                    "/api/v1/trade/reconciliation?company={}&party_type=Customer",
                    b.company
                ),
                None,
                StatusCode::OK,
            )
            .await;
        assert_eq!(
            suggested["suggestions"],
            json!([{"payment": advance_id, "invoice": second_id, "amount": eur("714.00")}]),
            "{suggested}"
        );
        // More than the advance is refused, and nothing of the batch applies.
        assert_eq!(
            refused(
                &api,
                clerk,
                "POST",
                "/api/v1/trade/reconciliation",
                Some(json!({"allocations": [
                    {"payment": advance_id, "invoice": second_id, "amount": eur("700.00")},
                    {"payment": advance_id, "invoice": second_id, "amount": eur("14.01")},
                ]}))
            )
            .await,
            (422, "/allocations/1/amount".to_owned())
        );
        assert_eq!(
            api.get(clerk, "sales_invoice", &second_id).await["outstanding_amount"],
            eur("714.00")
        );
        let applied = api
            .expect(
                clerk,
                "POST",
                "/api/v1/trade/reconciliation",
                Some(json!({"allocations": suggested["suggestions"]})),
                StatusCode::OK,
            )
            .await;
        assert_eq!(
            applied["data"][0]["exchange_gain_loss"],
            usd("-71.40"),
            "{applied}"
        );
        let advance = api.get(clerk, "payment_entry", &advance_id).await;
        assert_eq!(advance["unallocated_amount"], eur("0.00"), "{advance}");
        assert_eq!(
            advance["allocations"].as_array().unwrap().len(),
            1,
            "{advance}"
        );
        assert_eq!(
            api.get(clerk, "sales_invoice", &second_id).await["outstanding_amount"],
            eur("0.00")
        );

        // Nothing is left to collect, and the books say the same.
        let ageing = api
            .expect(
                clerk,
                "GET",
                &format!(
                    "/api/v1/trade/reports/receivable-ageing?company={}&as_of=2026-12-31",
                    b.company
                ),
                None,
                StatusCode::OK,
            )
            .await;
        assert_eq!(ageing["rows"], json!([]), "{ageing}");
        assert_eq!(
            balances(&api, clerk, &b.company).await,
            vec![
                // 476 × 1.20 + 714 × 1.00
                row("assets:current:bank", "1285.20", "0.00"),
                // 190 EUR of tax at 1.10
                row("liabilities:current:output-tax", "0.00", "209.00"),
                // 1000 EUR of sales at 1.10
                row("income:sales", "0.00", "1100.00"),
                // the loss of 71.40 less the gain of 47.60
                row("expenses:exchange-gain-loss", "23.80", "0.00"),
            ]
        );
        let register = api
            .expect(clerk, "GET", &format!("/api/v1/trade/reports/sales-register?company={}&from=2026-01-01&to=2026-12-31&format=csv", b.company), None, StatusCode::OK)
            .await;
        let _ = register;

        // Cancelling the payment puts the invoice's amount back and reverses its gain.
        api.expect(
            clerk,
            "POST",
            &format!("/api/v1/resources/payment_entry/{payment_id}/cancel"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            api.get(clerk, "sales_invoice", &first_id).await["outstanding_amount"],
            eur("476.00")
        );
        let ageing = api
            .expect(
                clerk,
                "GET",
                &format!(
                    "/api/v1/trade/reports/receivable-ageing?company={}&as_of=2026-05-01",
                    b.company
                ),
                None,
                StatusCode::OK,
            )
            .await;
        // Due on 2026-04-09, 22 days before: 476 EUR at 1.10.
        assert_eq!(ageing["rows"][0]["range_0_30"], "523.60", "{ageing}");
        assert_eq!(ageing["totals"]["balance"], "523.60", "{ageing}");
        drop(api);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn procure_to_pay_and_returns() {
    for db in databases("selling_procure_to_pay").await {
        let api = boot(&db).await;
        let b = books(&api).await;
        let clerk = b.clerk.as_str();
        let order = api.create(clerk, "purchase_order", json!({"supplier": b.supplier, "company": b.company, "posting_date": "2026-05-01", "currency": "USD", "lines": [
            {"item": b.item, "qty": "3", "unit_price": usd("200.00")},
        ]})).await;
        let order_id = order["id"].as_str().unwrap().to_owned();
        api.submit(clerk, "purchase_order", &order_id).await;
        let invoice = api
            .make(
                clerk,
                "purchase_order",
                &order_id,
                "purchase_invoice",
                json!({"posting_date": "2026-05-03"}),
            )
            .await;
        let invoice_id = invoice["id"].as_str().unwrap().to_owned();
        let invoice = api.submit(clerk, "purchase_invoice", &invoice_id).await;
        assert_eq!(invoice["outstanding_amount"], usd("600.00"), "{invoice}");
        assert_eq!(
            api.get(clerk, "purchase_order", &order_id).await["billing_status"],
            "Fully Billed"
        );

        // A debit note returns one of the three: the invoice owes 400 after it.
        let note = api
            .make(
                clerk,
                "purchase_invoice",
                &invoice_id,
                "purchase_invoice",
                json!({"posting_date": "2026-05-04", "lines": [
                    {"item": b.item, "qty": "-1", "unit_price": usd("200.00")},
                ]}),
            )
            .await;
        assert_eq!(note["grand_total"], usd("-200.00"), "{note}");
        let note_id = note["id"].as_str().unwrap().to_owned();
        api.submit(clerk, "purchase_invoice", &note_id).await;
        assert_eq!(
            api.get(clerk, "purchase_invoice", &invoice_id).await["outstanding_amount"],
            usd("400.00")
        );
        // Returning three more is past what was bought.
        let too_many = api
            .make(
                clerk,
                "purchase_invoice",
                &invoice_id,
                "purchase_invoice",
                json!({"posting_date": "2026-05-04"}),
            )
            .await;
        let too_many_id = too_many["id"].as_str().unwrap();
        assert_eq!(
            refused(
                &api,
                clerk,
                "POST",
                &format!("/api/v1/resources/purchase_invoice/{too_many_id}/submit"),
                None
            )
            .await,
            (422, "/lines/0/qty".to_owned())
        );
        // The invoice cannot be cancelled under its return.
        assert_eq!(
            refused(
                &api,
                clerk,
                "POST",
                &format!("/api/v1/resources/purchase_invoice/{invoice_id}/cancel"),
                None
            )
            .await,
            (422, String::new())
        );

        let payment = api
            .make(
                clerk,
                "purchase_invoice",
                &invoice_id,
                "payment_entry",
                json!({"account": b.bank, "posting_date": "2026-05-10"}),
            )
            .await;
        assert_eq!(payment["paid_amount"], usd("400.00"), "{payment}");
        let payment_id = payment["id"].as_str().unwrap().to_owned();
        let payment = api.submit(clerk, "payment_entry", &payment_id).await;
        assert_eq!(payment["exchange_gain_loss"], usd("0.00"), "{payment}");
        let ageing = api
            .expect(
                clerk,
                "GET",
                &format!(
                    "/api/v1/trade/reports/payable-ageing?company={}&as_of=2026-12-31",
                    b.company
                ),
                None,
                StatusCode::OK,
            )
            .await;
        assert_eq!(ageing["rows"], json!([]), "{ageing}");
        assert_eq!(
            balances(&api, clerk, &b.company).await,
            vec![
                row("assets:current:bank", "0.00", "400.00"),
                row("expenses:rent", "400.00", "0.00"),
            ]
        );
        drop(api);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_sales_order_past_the_credit_limit_is_refused() {
    for db in databases("selling_order_credit_limit").await {
        let api = boot(&db).await;
        let b = books(&api).await;
        let clerk = b.clerk.as_str();
        api.expect(
            clerk,
            "PATCH",
            &format!("/api/v1/resources/customer/{}", b.customer),
            Some(json!({"credit_limit": usd("100.00")})),
            StatusCode::OK,
        )
        .await;
        let order = api.create(clerk, "sales_order", json!({"customer": b.customer, "company": b.company, "posting_date": "2026-05-01", "currency": "USD", "lines": [
            {"item": b.item, "qty": "1", "unit_price": usd("150.00")},
        ]})).await;
        let order_id = order["id"].as_str().unwrap();
        // The clerk is a Sales Manager, who may override: a Sales User may not.
        let seller = api.user("seller@acme.test", &["Sales User"]).await;
        assert_eq!(
            refused(
                &api,
                &seller,
                "POST",
                &format!("/api/v1/resources/sales_order/{order_id}/submit"),
                None
            )
            .await,
            (422, "/customer".to_owned())
        );
        api.submit(clerk, "sales_order", order_id).await;
        drop(api);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn lines_without_a_price_take_the_price_lists_of_the_date() {
    for db in databases("selling_price_list").await {
        let api = boot(&db).await;
        let b = books(&api).await;
        let clerk = b.clerk.as_str();
        let list = api
            .create_id(
                clerk,
                "price_list",
                json!({"price_list_name": "Euro retail", "currency": "EUR", "selling": true}),
            )
            .await;
        let usd_list = api
            .create_id(
                clerk,
                "price_list",
                json!({"price_list_name": "Dollar retail", "currency": "USD", "selling": true}),
            )
            .await;
        let buying_list = api.create_id(clerk, "price_list", json!({"price_list_name": "Euro buying", "currency": "EUR", "selling": false, "buying": true})).await;
        api.create(
            clerk,
            "item_price",
            json!({"item": b.item, "price_list": list, "rate": eur("100.00")}),
        )
        .await;
        api.create(clerk, "item_price", json!({"item": b.item, "price_list": list, "rate": eur("120.00"), "valid_from": "2026-06-01"})).await;
        let other = api.create_id(clerk, "item", json!({"item_code": "SVC-2", "item_name": "Training day", "item_group": api.get(clerk, "item", &b.item).await["item_group"], "stock_uom": api.get(clerk, "item", &b.item).await["stock_uom"], "company": b.company, "income_account": b.sales})).await;
        let order = |date: &str, list: &str, item: &str| json!({"customer": b.euro_customer, "company": b.company, "posting_date": date, "currency": "EUR", "price_list": list, "lines": [{"item": item, "qty": "2"}]});
        // (date, list, item) → the unit price taken, or the pointer of the refusal.
        let cases: Vec<(Value, Result<&str, &str>)> = vec![
            (order("2026-03-01", &list, &b.item), Ok("100.00")),
            (order("2026-06-01", &list, &b.item), Ok("120.00")),
            (order("2026-12-31", &list, &b.item), Ok("120.00")),
            (order("2026-03-01", &usd_list, &b.item), Err("/price_list")),
            (
                order("2026-03-01", &buying_list, &b.item),
                Err("/price_list"),
            ),
            (
                order("2026-03-01", &list, &other),
                Err("/lines/0/unit_price"),
            ),
        ];
        for (body, expected) in cases {
            let (status, answer) = api
                .call(
                    "POST",
                    "/api/v1/resources/sales_order",
                    clerk,
                    Some(body.clone()),
                )
                .await;
            match expected {
                Ok(price) => {
                    assert_eq!(status, StatusCode::CREATED, "{body}: {answer}");
                    assert_eq!(
                        answer["lines"][0]["unit_price"],
                        eur(price),
                        "{body}: {answer}"
                    );
                }
                Err(pointer) => {
                    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
                    assert_eq!(answer["errors"][0]["pointer"], pointer, "{body}: {answer}");
                }
            }
        }
        // A price typed on the line wins over the list's.
        let mut typed = order("2026-03-01", &list, &b.item);
        typed["lines"][0]["unit_price"] = eur("90.00");
        let answer = api.create(clerk, "sales_order", typed).await;
        assert_eq!(answer["lines"][0]["unit_price"], eur("90.00"), "{answer}");
        drop(api);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_purchase_invoice_in_eur_paid_at_a_lower_rate_is_a_gain() {
    for db in databases("selling_purchase_fx").await {
        let api = boot(&db).await;
        let b = books(&api).await;
        let clerk = b.clerk.as_str();
        let supplier = api.create_id(clerk, "supplier", json!({"supplier_name": "Fournisseur SARL", "company": b.company, "payable_account": b.payable, "currency": "EUR"})).await;
        // 100 EUR booked at the stored 1.10: 110.00 USD owed.
        let invoice = api.create(clerk, "purchase_invoice", json!({"supplier": supplier, "company": b.company, "posting_date": "2026-04-01", "currency": "EUR", "lines": [
            {"item": b.item, "qty": "1", "unit_price": eur("100.00")},
        ]})).await;
        let invoice_id = invoice["id"].as_str().unwrap().to_owned();
        api.submit(clerk, "purchase_invoice", &invoice_id).await;
        // Paid at 1.05: 105.00 USD leave the bank, a gain of 5.00 USD.
        let payment = api
            .make(
                clerk,
                "purchase_invoice",
                &invoice_id,
                "payment_entry",
                json!({"account": b.bank, "exchange_rate": "1.05", "posting_date": "2026-05-01"}),
            )
            .await;
        let payment_id = payment["id"].as_str().unwrap().to_owned();
        let payment = api.submit(clerk, "payment_entry", &payment_id).await;
        assert_eq!(payment["exchange_gain_loss"], usd("5.00"), "{payment}");
        assert_eq!(
            balances(&api, clerk, &b.company).await,
            vec![
                row("assets:current:bank", "0.00", "105.00"),
                row("expenses:exchange-gain-loss", "0.00", "5.00"),
                row("expenses:rent", "110.00", "0.00"),
            ]
        );
        drop(api);
        db.cleanup().await;
    }
}
