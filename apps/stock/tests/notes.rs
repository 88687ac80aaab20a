//! Delivery notes and purchase receipts through the API on both backends: a receipt
//! against a purchase order debits stock against stock received but not billed, which
//! the purchase invoice clears; a delivery against a sales order costs the goods at
//! valuation into cost of goods sold; each keeps what it moved on its order's lines;
//! units convert, and bad input is refused at its pointer with nothing written.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use prefiq_data::testing::databases;
use serde_json::{Value, json};

use common::*;

/// Creates and submits a document, which must succeed: the submitted record.
async fn submitted(api: &Api, bearer: &str, entity: &str, body: Value) -> Value {
    let id = api.create(bearer, entity, body).await;
    let (status, answer) = api
        .call(
            "POST",
            &format!("/api/v1/resources/{entity}/{id}/submit"),
            bearer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{entity}: {answer}");
    answer
}

/// Creates and submits a document that must be refused on save or on submit: the
/// pointers of the refusal.
async fn refused(api: &Api, bearer: &str, entity: &str, body: Value) -> Vec<String> {
    let (status, answer) = api
        .call(
            "POST",
            &format!("/api/v1/resources/{entity}"),
            bearer,
            Some(body),
        )
        .await;
    let answer = if status == StatusCode::CREATED {
        let id = answer["id"].as_str().unwrap();
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/{entity}/{id}/submit"),
                bearer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        answer
    } else {
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        answer
    };
    answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_owned())
        .collect()
}

/// A buyer who may buy, sell and move stock, the company's accounts the tests post to,
/// and a supplier and a customer.
struct Parties {
    buyer: String,
    srbnb: String,
    sales: String,
    rent: String,
    supplier: String,
    customer: String,
}

async fn parties(api: &Api, b: &Books) -> Parties {
    let buyer = api
        .user(
            "acme",
            "buyer@acme.test",
            &[
                "Purchase Manager",
                "Sales Manager",
                "Stock Manager",
                "Accounts Manager",
            ],
        )
        .await;
    let account = |path: &'static str| api.account(&buyer, &b.company, path);
    let payable = account("liabilities:current:payable").await;
    let receivable = account("assets:current:receivable").await;
    let srbnb = account("liabilities:current:stock-received-not-billed").await;
    let sales = account("income:sales").await;
    let rent = account("expenses:rent").await;
    let supplier = api.create(&buyer, "supplier", json!({"supplier_name": "Bolts Inc", "company": b.company, "payable_account": payable, "currency": "USD"})).await;
    let customer = api.create(&buyer, "customer", json!({"customer_name": "Müller GmbH", "company": b.company, "receivable_account": receivable, "currency": "USD"})).await;
    Parties {
        buyer,
        srbnb,
        sales,
        rent,
        supplier,
        customer,
    }
}

#[tokio::test]
async fn notes_receive_and_deliver_against_orders_at_valuation() {
    for db in databases("stock_notes").await {
        let api = boot(&db).await;
        let clerk = api.clerk().await;
        let b = books(&api, &clerk).await;
        let Parties {
            buyer,
            srbnb,
            sales,
            rent: _,
            supplier,
            customer,
        } = parties(&api, &b).await;
        let boxes = api.create(&buyer, "uom", json!({"uom_name": "Box"})).await;
        let crate_uom = api
            .create(&buyer, "uom", json!({"uom_name": "Crate"}))
            .await;
        let (status, item) = api
            .call(
                "GET",
                &format!("/api/v1/resources/item/{}", b.bolt),
                &buyer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{item}");
        let (status, answer) = api
            .call(
                "PATCH",
                &format!("/api/v1/resources/item/{}", b.bolt),
                &buyer,
                Some(json!({"uoms": [{"uom": boxes, "factor": "12"}]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");

        // An order of 20 bolts at 2.00, received as 1 box (12) at 24.00 and 8 loose at 2.50.
        let order = submitted(&api, &buyer, "purchase_order", json!({"supplier": supplier, "company": b.company, "posting_date": "2026-03-01", "currency": "USD", "lines": [{"item": b.bolt, "qty": "20", "unit_price": usd("2.00"), "expense_account": srbnb}]})).await;
        let order_line = order["lines"][0]["id"].as_str().unwrap().to_owned();
        let receipt = |lines: Value| json!({"supplier": supplier, "company": b.company, "posting_date": "2026-03-02", "purchase_order": order["id"], "lines": lines});

        // Refusals, nothing written: a unit the item does not convert, a missing rate, a
        // warehouse of no stock, and more than the order line holds.
        for (lines, pointer) in [
            (
                json!([{"item": b.bolt, "qty": "1", "uom": crate_uom, "rate": usd("1.00"), "warehouse": b.main}]),
                "/lines/0/uom",
            ),
            (
                json!([{"item": b.bolt, "qty": "1", "warehouse": b.main}]),
                "/lines/0/rate",
            ),
            (
                json!([{"item": b.bolt, "qty": "1", "rate": usd("1.00"), "warehouse": b.group}]),
                "/lines/0/warehouse",
            ),
            (
                json!([{"item": b.bolt, "qty": "21", "rate": usd("1.00"), "warehouse": b.main, "purchase_order_line": order_line}]),
                "/lines/0/purchase_order_line",
            ),
        ] {
            let pointers = refused(&api, &buyer, "purchase_receipt", receipt(lines)).await;
            assert_eq!(pointers, [pointer], "{pointer}");
        }
        assert!(api.stock(&clerk, &b.company, "2026-12-31").await.is_empty());

        let received = submitted(&api, &buyer, "purchase_receipt", receipt(json!([
            {"item": b.bolt, "qty": "1", "uom": boxes, "rate": usd("24.00"), "warehouse": b.main, "purchase_order_line": order_line},
            {"item": b.bolt, "qty": "8", "rate": usd("2.50"), "warehouse": b.main, "purchase_order_line": order_line},
        ]))).await;
        assert_eq!(received["lines"][0]["stock_qty"], "12.000", "{received}");
        assert_eq!(received["expense_account"], srbnb.as_str(), "{received}");
        let (_, order) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/resources/purchase_order/{}",
                    order["id"].as_str().unwrap()
                ),
                &buyer,
                None,
            )
            .await;
        assert_eq!(order["lines"][0]["received_qty"], "20.000", "{order}");
        assert_eq!(
            api.stock(&clerk, &b.company, "2026-12-31").await,
            [row("BOLT", "Main", "20.000", "44.00")].into()
        );
        let balances = api.balances(&clerk, &b.company).await;
        assert_eq!(balances.get("assets:current:stock"), Some(&4400));
        assert_eq!(
            balances.get("liabilities:current:stock-received-not-billed"),
            Some(&-4400)
        );

        // The purchase invoice debits stock received but not billed back: it clears.
        submitted(&api, &buyer, "purchase_invoice", json!({"supplier": supplier, "company": b.company, "posting_date": "2026-03-05", "currency": "USD", "lines": [
            {"item": b.bolt, "qty": "12", "unit_price": usd("2.00"), "expense_account": srbnb},
            {"item": b.bolt, "qty": "8", "unit_price": usd("2.50"), "expense_account": srbnb},
        ]})).await;
        let balances = api.balances(&clerk, &b.company).await;
        assert_eq!(
            balances.get("liabilities:current:stock-received-not-billed"),
            None,
            "{balances:?}"
        );

        // A sales order of 15, delivered 15 FIFO: 12 at 2.00 and 3 at 2.50 = 31.50.
        let sales_order = submitted(&api, &buyer, "sales_order", json!({"customer": customer, "company": b.company, "posting_date": "2026-03-06", "currency": "USD", "lines": [{"item": b.bolt, "qty": "15", "unit_price": usd("5.00"), "income_account": sales}]})).await;
        let sales_line = sales_order["lines"][0]["id"].as_str().unwrap().to_owned();
        let delivery = |qty: &str, date: &str| json!({"customer": customer, "company": b.company, "posting_date": date, "sales_order": sales_order["id"], "lines": [{"item": b.bolt, "qty": qty, "warehouse": b.main, "sales_order_line": sales_line}]});
        assert_eq!(
            refused(&api, &buyer, "delivery_note", delivery("16", "2026-03-07")).await,
            ["/lines/0/sales_order_line"]
        );
        // Stock on the delivery's date is what counts: nothing was held on 1 March.
        assert_eq!(
            refused(&api, &buyer, "delivery_note", delivery("1", "2026-03-01")).await,
            ["/lines/0/qty"]
        );
        let delivered =
            submitted(&api, &buyer, "delivery_note", delivery("15", "2026-03-07")).await;
        let (_, sales_order) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/resources/sales_order/{}",
                    sales_order["id"].as_str().unwrap()
                ),
                &buyer,
                None,
            )
            .await;
        assert_eq!(
            sales_order["lines"][0]["delivered_qty"], "15.000",
            "{sales_order}"
        );
        let balances = api.balances(&clerk, &b.company).await;
        assert_eq!(balances.get("expenses:cost-of-goods-sold"), Some(&3150));
        assert_eq!(balances.get("assets:current:stock"), Some(&1250));
        check_books(&api, &clerk, &b).await;

        // Cancelling the delivery puts the goods and the order line back.
        let id = delivered["id"].as_str().unwrap();
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/delivery_note/{id}/cancel"),
                &buyer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (_, sales_order) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/resources/sales_order/{}",
                    sales_order["id"].as_str().unwrap()
                ),
                &buyer,
                None,
            )
            .await;
        assert_eq!(
            sales_order["lines"][0]["delivered_qty"], "0.000",
            "{sales_order}"
        );
        let balances = api.balances(&clerk, &b.company).await;
        assert_eq!(balances.get("expenses:cost-of-goods-sold"), None);
        assert_eq!(balances.get("assets:current:stock"), Some(&4400));
        check_books(&api, &clerk, &b).await;
    }
}

#[tokio::test]
async fn orders_make_their_notes_and_a_receipt_makes_its_invoice() {
    for db in databases("stock_make").await {
        let api = boot(&db).await;
        let clerk = api.clerk().await;
        let b = books(&api, &clerk).await;
        let Parties {
            buyer,
            srbnb: _,
            sales,
            rent,
            supplier,
            customer,
        } = parties(&api, &b).await;
        let make = |entity: &str, id: &str, target: &str| {
            format!("/api/v1/stock/{entity}/{id}/make/{target}")
        };

        let order = submitted(&api, &buyer, "purchase_order", json!({"supplier": supplier, "company": b.company, "posting_date": "2026-04-01", "currency": "USD", "lines": [{"item": b.bolt, "qty": "5", "unit_price": usd("3.00"), "expense_account": rent}]})).await;
        let order_id = order["id"].as_str().unwrap();
        let (status, receipt) = api
            .call(
                "POST",
                &make("purchase_order", order_id, "purchase_receipt"),
                &buyer,
                Some(json!({"warehouse": b.main, "posting_date": "2026-04-02"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{receipt}");
        assert_eq!(receipt["lines"][0]["qty"], "5.000", "{receipt}");
        assert_eq!(receipt["lines"][0]["rate"], usd("3.00"), "{receipt}");
        assert_eq!(
            receipt["lines"][0]["purchase_order_line"], order["lines"][0]["id"],
            "{receipt}"
        );
        let receipt_id = receipt["id"].as_str().unwrap().to_owned();
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/purchase_receipt/{receipt_id}/submit"),
                &buyer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        // All of it is received: there is nothing left to make.
        let (status, answer) = api
            .call(
                "POST",
                &make("purchase_order", order_id, "purchase_receipt"),
                &buyer,
                Some(json!({"warehouse": b.main})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"][0]["pointer"], "/lines", "{answer}");

        // The receipt's invoice clears stock received but not billed and bills the order.
        let (status, invoice) = api
            .call(
                "POST",
                &make("purchase_receipt", &receipt_id, "purchase_invoice"),
                &buyer,
                Some(json!({"posting_date": "2026-04-03"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{invoice}");
        let invoice_id = invoice["id"].as_str().unwrap();
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/purchase_invoice/{invoice_id}/submit"),
                &buyer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let balances = api.balances(&clerk, &b.company).await;
        assert_eq!(
            balances.get("liabilities:current:stock-received-not-billed"),
            None,
            "{balances:?}"
        );
        assert_eq!(
            balances.get("liabilities:current:payable"),
            Some(&-1500),
            "{balances:?}"
        );
        let (_, order) = api
            .call(
                "GET",
                &format!("/api/v1/resources/purchase_order/{order_id}"),
                &buyer,
                None,
            )
            .await;
        assert_eq!(order["lines"][0]["billed_qty"], "5.000", "{order}");

        // A sales order's delivery note, costed at valuation.
        let sales_order = submitted(&api, &buyer, "sales_order", json!({"customer": customer, "company": b.company, "posting_date": "2026-04-04", "currency": "USD", "lines": [{"item": b.bolt, "qty": "2", "unit_price": usd("9.00"), "income_account": sales}]})).await;
        let (status, note) = api
            .call(
                "POST",
                &make(
                    "sales_order",
                    sales_order["id"].as_str().unwrap(),
                    "delivery_note",
                ),
                &buyer,
                Some(json!({"warehouse": b.main, "posting_date": "2026-04-05"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{note}");
        let note_id = note["id"].as_str().unwrap();
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/delivery_note/{note_id}/submit"),
                &buyer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let balances = api.balances(&clerk, &b.company).await;
        assert_eq!(
            balances.get("expenses:cost-of-goods-sold"),
            Some(&600),
            "{balances:?}"
        );
        check_books(&api, &clerk, &b).await;

        // Invoiced, it shows its real cost: revenue 18.00 against 6.00 delivered.
        let invoice = submitted(&api, &buyer, "sales_invoice", json!({"customer": customer, "company": b.company, "posting_date": "2026-04-06", "currency": "USD", "sales_order": sales_order["id"], "lines": [{"item": b.bolt, "qty": "2", "unit_price": usd("9.00"), "income_account": sales, "order_line": sales_order["lines"][0]["id"]}]})).await;
        assert_eq!(invoice["docstatus"], 1, "{invoice}");
        let (status, report) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/stock/reports/gross-profit?company={}&from=2026-04-01&to=2026-04-30",
                    b.company
                ),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let row = &report["rows"][0];
        assert_eq!(
            (
                &row["revenue"],
                &row["cost"],
                &row["gross_profit"],
                &row["cost_basis"]
            ),
            (
                &json!("18.00"),
                &json!("6.00"),
                &json!("12.00"),
                &json!("cost of goods sold")
            ),
            "{report}"
        );
        let (status, _) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/stock/reports/gross-profit?company={}&from=2026-13-01",
                    b.company
                ),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        // Another pair is not made here.
        let (status, _) = api
            .call(
                "POST",
                &make("sales_order", note_id, "stock_entry"),
                &buyer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn invoices_that_update_stock_deliver_and_receive_as_they_post() {
    for db in databases("stock_invoices").await {
        let api = boot(&db).await;
        let clerk = api.clerk().await;
        let b = books(&api, &clerk).await;
        let Parties {
            buyer,
            srbnb: _,
            sales,
            rent,
            supplier,
            customer,
        } = parties(&api, &b).await;
        let (_, bolt) = api
            .call(
                "GET",
                &format!("/api/v1/resources/item/{}", b.bolt),
                &buyer,
                None,
            )
            .await;
        let service = api.create(&buyer, "item", json!({"item_code": "SVC", "item_name": "Fitting", "item_group": bolt["item_group"], "stock_uom": bolt["stock_uom"], "company": b.company, "is_stock_item": false})).await;

        // A purchase invoice receives 10 bolts at its net amount: stock, not an expense.
        let bought = submitted(&api, &buyer, "purchase_invoice", json!({"supplier": supplier, "company": b.company, "posting_date": "2026-05-01", "currency": "USD", "update_stock": true, "lines": [
            {"item": b.bolt, "qty": "10", "unit_price": usd("2.50"), "expense_account": rent, "warehouse": b.main},
        ]})).await;
        let (_, bought) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/resources/purchase_invoice/{}",
                    bought["id"].as_str().unwrap()
                ),
                &buyer,
                None,
            )
            .await;
        assert!(bought["stock_journal_entry"].is_string(), "{bought}");
        assert_ne!(
            bought["stock_journal_entry"], bought["journal_entry"],
            "{bought}"
        );
        let balances = api.balances(&clerk, &b.company).await;
        assert_eq!(
            balances.get("assets:current:stock"),
            Some(&2500),
            "{balances:?}"
        );
        assert_eq!(
            balances.get("liabilities:current:payable"),
            Some(&-2500),
            "{balances:?}"
        );
        assert_eq!(balances.get("expenses:rent"), None, "{balances:?}");
        assert_eq!(
            balances.get("liabilities:current:stock-received-not-billed"),
            None,
            "{balances:?}"
        );

        // A sales invoice delivers its stock line at valuation; its service line moves nothing.
        let sold = submitted(&api, &buyer, "sales_invoice", json!({"customer": customer, "company": b.company, "posting_date": "2026-05-02", "currency": "USD", "update_stock": true, "lines": [
            {"item": b.bolt, "qty": "4", "unit_price": usd("6.00"), "income_account": sales, "warehouse": b.main},
            {"item": service, "qty": "1", "unit_price": usd("30.00"), "income_account": sales},
        ]})).await;
        let balances = api.balances(&clerk, &b.company).await;
        assert_eq!(
            balances.get("expenses:cost-of-goods-sold"),
            Some(&1000),
            "{balances:?}"
        );
        assert_eq!(balances.get("income:sales"), Some(&-5400), "{balances:?}");
        assert_eq!(
            api.stock(&clerk, &b.company, "2026-12-31").await,
            [row("BOLT", "Main", "6.000", "15.00")].into()
        );
        check_books(&api, &clerk, &b).await;

        // Refused at their pointer: updating stock with no stock line, and a return.
        let invoice = |lines: Value| json!({"customer": customer, "company": b.company, "posting_date": "2026-05-03", "currency": "USD", "update_stock": true, "lines": lines});
        assert_eq!(
            refused(&api, &buyer, "sales_invoice", invoice(json!([{"item": service, "qty": "1", "unit_price": usd("30.00"), "income_account": sales}]))).await,
            ["/update_stock"]
        );
        assert_eq!(
            refused(&api, &buyer, "sales_invoice", invoice(json!([{"item": b.bolt, "qty": "-1", "unit_price": usd("6.00"), "income_account": sales, "warehouse": b.main}]))).await,
            ["/lines/0/qty"]
        );

        // Cancelling the sale puts the bolts back and takes its cost of goods sold out.
        let id = sold["id"].as_str().unwrap();
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/sales_invoice/{id}/cancel"),
                &buyer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let balances = api.balances(&clerk, &b.company).await;
        assert_eq!(
            balances.get("expenses:cost-of-goods-sold"),
            None,
            "{balances:?}"
        );
        assert_eq!(
            balances.get("assets:current:stock"),
            Some(&2500),
            "{balances:?}"
        );
        check_books(&api, &clerk, &b).await;
    }
}
