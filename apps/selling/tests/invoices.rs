//! Sales and purchase invoices through the API on both backends: figures computed on
//! save, postings written on submit in the same transaction and reversed on cancel, the
//! trial balance agreeing with the documents, and bad input refused at its pointer with
//! nothing written.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::boot;
use prefiq_data::testing::databases;
use serde_json::{Value, json};

fn row(path: &str, debit: &str, credit: &str) -> (String, String, String) {
    (path.to_owned(), debit.to_owned(), credit.to_owned())
}

fn usd(amount: &str) -> Value {
    json!({"amount": amount, "currency": "USD"})
}

#[tokio::test]
async fn invoices_post_on_submit_and_reverse_on_cancel() {
    for db in databases("selling_invoices").await {
        let api = boot(&db).await;
        let clerk = api.clerk().await;
        let company = api
            .create_id(
                &clerk,
                "company",
                json!({"company_name": "Acme Ltd", "abbr": "ACME", "currency": "USD"}),
            )
            .await;
        api.create(&clerk, "fiscal_year", json!({"year_name": "FY 2026", "company": company, "start_date": "2026-01-01", "end_date": "2026-12-31"}))
            .await;
        let account = |path: &'static str| {
            let (api, clerk, company) = (&api, &clerk, &company);
            async move { api.account(clerk, company, path).await }
        };
        let (receivable, payable, output_tax, input_tax, sales, rent) = (
            account("assets:current:receivable").await,
            account("liabilities:current:payable").await,
            account("liabilities:current:output-tax").await,
            account("assets:current:input-tax").await,
            account("income:sales").await,
            account("expenses:rent").await,
        );
        let customer = api.create_id(&clerk, "customer", json!({"customer_name": "Müller GmbH", "company": company, "receivable_account": receivable, "currency": "USD", "payment_terms_days": 14})).await;
        let supplier = api.create_id(&clerk, "supplier", json!({"supplier_name": "Landlord Inc", "company": company, "payable_account": payable, "currency": "USD"})).await;
        let nos = api
            .create_id(&clerk, "uom", json!({"uom_name": "Nos"}))
            .await;
        let group = api
            .create_id(
                &clerk,
                "item_group",
                json!({"item_group_name": "All Items"}),
            )
            .await;
        let item = api.create_id(&clerk, "item", json!({"item_code": "SVC-1", "item_name": "Consulting hour", "item_group": group, "stock_uom": nos, "is_stock_item": false, "company": company, "income_account": sales, "expense_account": rent})).await;
        let vat = api.create_id(&clerk, "tax_template", json!({"title": "VAT 19%", "company": company, "lines": [{"account": output_tax, "rate": "19"}]})).await;
        let input_vat = api.create_id(&clerk, "tax_template", json!({"title": "Input VAT 19%", "company": company, "lines": [{"account": input_tax, "rate": "19"}]})).await;

        // A draft's figures are computed on save.
        let invoice = json!({"customer": customer, "company": company, "posting_date": "2026-03-10", "currency": "USD", "tax_template": vat, "lines": [
            {"item": item, "qty": "2", "unit_price": usd("10.00")},
            {"item": item, "qty": "1", "unit_price": usd("5.50")},
        ]});
        let draft = api.create(&clerk, "sales_invoice", invoice.clone()).await;
        let id = draft["id"].as_str().unwrap().to_owned();
        assert_eq!(draft["name"], "SINV-2026-00001", "{draft}");
        assert_eq!(draft["net_total"], usd("25.50"), "{draft}");
        // 19% of 20.00 is 3.80 and of 5.50 is 1.045, so 1.05: line by line.
        assert_eq!(draft["tax_total"], usd("4.85"), "{draft}");
        assert_eq!(draft["grand_total"], usd("30.35"), "{draft}");
        assert_eq!(draft["due_date"], "2026-03-24", "{draft}");
        assert_eq!(draft["lines"][1]["tax_amount"], usd("1.05"), "{draft}");
        assert_eq!(
            draft["lines"][0]["income_account"],
            sales.as_str(),
            "{draft}"
        );
        assert!(api.balances(&clerk, &company).await.is_empty());

        // Submitting posts receivable against income and tax, in the same transaction.
        let (status, submitted) = api
            .call(
                "POST",
                &format!("/api/v1/resources/sales_invoice/{id}/submit"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{submitted}");
        assert!(
            submitted["journal_entry"].is_string() || submitted["docstatus"] == 1,
            "{submitted}"
        );
        let (_, stored) = api
            .call(
                "GET",
                &format!("/api/v1/resources/sales_invoice/{id}"),
                &clerk,
                None,
            )
            .await;
        let entry = stored["journal_entry"].as_str().unwrap().to_owned();
        let (_, je) = api
            .call(
                "GET",
                &format!("/api/v1/resources/journal_entry/{entry}"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(je["entry_type"], "Sales Invoice", "{je}");
        assert_eq!(je["name"], "SINV-2026-00001", "{je}");
        assert_eq!(
            api.balances(&clerk, &company).await,
            vec![
                row("assets:current:receivable", "30.35", "0.00"),
                row("liabilities:current:output-tax", "0.00", "4.85"),
                row("income:sales", "0.00", "25.50"),
            ]
        );
        // The entry is the invoice's: it is not cancelled on its own.
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/journal_entry/{entry}/cancel"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");

        // A purchase invoice posts expense and tax against payable.
        let bill = api
            .create(&clerk, "purchase_invoice", json!({"supplier": supplier, "company": company, "posting_date": "2026-03-11", "currency": "USD", "tax_template": input_vat, "lines": [
                {"item": item, "qty": "1", "unit_price": usd("1000.00")},
            ]}))
            .await;
        assert_eq!(bill["name"], "PINV-2026-00001", "{bill}");
        let bill_id = bill["id"].as_str().unwrap();
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/purchase_invoice/{bill_id}/submit"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");

        // A credit note (negative quantities, against the invoice it returns) posts the
        // other way round.
        let mut credit_note = invoice.clone();
        credit_note["lines"] = json!([{"item": item, "qty": "-1", "unit_price": usd("5.50")}]);
        credit_note["return_against"] = json!(id);
        let note = api.create(&clerk, "sales_invoice", credit_note).await;
        assert_eq!(note["grand_total"], usd("-6.55"), "{note}");
        let note_id = note["id"].as_str().unwrap();
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/sales_invoice/{note_id}/submit"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(
            api.balances(&clerk, &company).await,
            vec![
                row("assets:current:input-tax", "190.00", "0.00"),
                row("assets:current:receivable", "23.80", "0.00"),
                row("liabilities:current:output-tax", "0.00", "3.80"),
                row("liabilities:current:payable", "0.00", "1190.00"),
                row("income:sales", "0.00", "20.00"),
                row("expenses:rent", "1000.00", "0.00"),
            ]
        );

        // An invoice in EUR for a USD company posts at its rate: 119.00 EUR at 1.1.
        let euro = api
            .create(&clerk, "sales_invoice", json!({"customer": customer, "company": company, "posting_date": "2026-03-12", "currency": "EUR", "exchange_rate": "1.1", "tax_template": vat, "lines": [
                {"item": item, "qty": "1", "unit_price": {"amount": "100.00", "currency": "EUR"}},
            ]}))
            .await;
        assert_eq!(
            euro["grand_total"],
            json!({"amount": "119.00", "currency": "EUR"}),
            "{euro}"
        );
        let euro_id = euro["id"].as_str().unwrap();
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/sales_invoice/{euro_id}/submit"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(
            api.balances(&clerk, &company).await,
            vec![
                row("assets:current:input-tax", "190.00", "0.00"),
                row("assets:current:receivable", "154.70", "0.00"),
                row("liabilities:current:output-tax", "0.00", "24.70"),
                row("liabilities:current:payable", "0.00", "1190.00"),
                row("income:sales", "0.00", "130.00"),
                row("expenses:rent", "1000.00", "0.00"),
            ]
        );

        // Cancelling reverses: the books are as before the invoice (the return first:
        // an invoice is not cancelled under its return).
        for (entity, id) in [
            ("sales_invoice", note_id),
            ("sales_invoice", id.as_str()),
            ("purchase_invoice", bill_id),
            ("sales_invoice", euro_id),
        ] {
            let (status, answer) = api
                .call(
                    "POST",
                    &format!("/api/v1/resources/{entity}/{id}/cancel"),
                    &clerk,
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
        assert!(api.balances(&clerk, &company).await.is_empty());
        let (_, je) = api
            .call(
                "GET",
                &format!("/api/v1/resources/journal_entry/{entry}"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(je["docstatus"], 2, "{je}");
        let (_, stored) = api
            .call(
                "GET",
                &format!("/api/v1/resources/sales_invoice/{id}"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(stored["outstanding_amount"], usd("0.00"), "{stored}");
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}

#[tokio::test]
async fn bad_invoices_are_refused_at_their_pointer_and_write_nothing() {
    for db in databases("selling_bad_invoices").await {
        let api = boot(&db).await;
        let clerk = api.clerk().await;
        let company = api
            .create_id(
                &clerk,
                "company",
                json!({"company_name": "Acme Ltd", "abbr": "ACME", "currency": "USD"}),
            )
            .await;
        let other = api
            .create_id(
                &clerk,
                "company",
                json!({"company_name": "Other Ltd", "abbr": "OTH", "currency": "USD"}),
            )
            .await;
        api.create(&clerk, "fiscal_year", json!({"year_name": "FY 2026", "company": company, "start_date": "2026-01-01", "end_date": "2026-12-31"}))
            .await;
        let receivable = api
            .account(&clerk, &company, "assets:current:receivable")
            .await;
        let other_receivable = api
            .account(&clerk, &other, "assets:current:receivable")
            .await;
        let sales = api.account(&clerk, &company, "income:sales").await;
        let customer = api.create_id(&clerk, "customer", json!({"customer_name": "Müller GmbH", "company": company, "receivable_account": receivable, "currency": "USD"})).await;
        let stranger = api.create_id(&clerk, "customer", json!({"customer_name": "Stranger", "company": other, "receivable_account": other_receivable, "currency": "USD"})).await;
        let nos = api
            .create_id(&clerk, "uom", json!({"uom_name": "Nos"}))
            .await;
        let group = api
            .create_id(
                &clerk,
                "item_group",
                json!({"item_group_name": "All Items"}),
            )
            .await;
        let item = api.create_id(&clerk, "item", json!({"item_code": "SVC-1", "item_name": "Consulting hour", "item_group": group, "stock_uom": nos, "company": company, "income_account": sales})).await;
        let bare = api.create_id(&clerk, "item", json!({"item_code": "SVC-2", "item_name": "No accounts", "item_group": group, "stock_uom": nos})).await;
        let good = json!({"customer": customer, "company": company, "posting_date": "2026-03-10", "currency": "USD", "lines": [{"item": item, "qty": "1", "unit_price": usd("10.00")}]});
        for (change, pointer) in [
            (json!({"customer": stranger}), "/customer"),
            (json!({"lines": []}), "/lines"),
            (
                json!({"lines": [{"item": item, "qty": "0", "unit_price": usd("1.00")}]}),
                "/lines/0/qty",
            ),
            (
                json!({"lines": [{"item": item, "qty": "1", "unit_price": {"amount": "1.00", "currency": "EUR"}}]}),
                "/lines/0/unit_price",
            ),
            (
                json!({"lines": [{"item": bare, "qty": "1", "unit_price": usd("1.00")}]}),
                "/lines/0/income_account",
            ),
            (json!({"grand_total": usd("99.00")}), "/grand_total"),
            (json!({"due_date": "2026-01-01"}), "/due_date"),
        ] {
            let mut body = good.clone();
            for (k, v) in change.as_object().unwrap() {
                body[k] = v.clone();
            }
            let (status, answer) = api
                .call(
                    "POST",
                    "/api/v1/resources/sales_invoice",
                    &clerk,
                    Some(body),
                )
                .await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{change}: {answer}"
            );
            assert_eq!(
                answer["errors"][0]["pointer"], pointer,
                "{change}: {answer}"
            );
        }
        // Past the credit limit, a submit is refused unless the role may override it.
        let careful = api.create_id(&clerk, "customer", json!({"customer_name": "Careful Ltd", "company": company, "receivable_account": receivable, "currency": "USD", "credit_limit": usd("50.00")})).await;
        let seller = api.user("seller@acme.test", &["Sales User"]).await;
        let mut big = good.clone();
        big["customer"] = json!(careful);
        big["lines"] = json!([{"item": item, "qty": "6", "unit_price": usd("10.00")}]);
        let big_id = api.create_id(&seller, "sales_invoice", big).await;
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/sales_invoice/{big_id}/submit"),
                &seller,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"][0]["pointer"], "/customer", "{answer}");
        assert!(api.balances(&clerk, &company).await.is_empty());
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/sales_invoice/{big_id}/submit"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/sales_invoice/{big_id}/cancel"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");

        // A posting date outside every open period is refused on submit, and the invoice
        // stays a draft with nothing posted.
        let mut late = good.clone();
        late["posting_date"] = json!("2027-02-01");
        let draft = api.create(&clerk, "sales_invoice", late).await;
        let id = draft["id"].as_str().unwrap();
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/sales_invoice/{id}/submit"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"][0]["pointer"], "/posting_date", "{answer}");
        let (_, stored) = api
            .call(
                "GET",
                &format!("/api/v1/resources/sales_invoice/{id}"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(stored["docstatus"], 0, "{stored}");
        assert!(stored["journal_entry"].is_null(), "{stored}");
        assert!(api.balances(&clerk, &company).await.is_empty());
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}
