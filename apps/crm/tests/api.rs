//! The CRM through the API on both backends: leads and opportunities refused at the field
//! at fault, a lead converted into a customer and a contact with its history (and
//! nothing kept of a conversion that fails), and the pipeline's exact figures, as JSON,
//! CSV and a desk page, for those who may read it.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::browser::{Browser, assert_has};
use common::{Acme, Api, PASSWORD, acme, boot, encode, eur, usd, with};
use prefiq_data::testing::databases;
use serde_json::{Value, json};

/// Creates `body` as `entity` and checks the answer: `Ok(fields)` is a 201 whose record
/// has these fields' values, `Err(pointer)` a 422 naming that pointer.
async fn check(api: &Api, bearer: &str, entity: &str, body: Value, expected: Result<Value, &str>) {
    let (status, answer) = api
        .call(
            "POST",
            &format!("/api/v1/resources/{entity}"),
            bearer,
            Some(body.clone()),
        )
        .await;
    match expected {
        Ok(fields) => {
            assert_eq!(status, StatusCode::CREATED, "{body}: {answer}");
            for (field, value) in fields.as_object().unwrap() {
                assert_eq!(&answer[field], value, "{field} of {body}: {answer}");
            }
        }
        Err(pointer) => {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
            assert_eq!(answer["errors"][0]["pointer"], pointer, "{body}: {answer}");
        }
    }
}

async fn lead(api: &Api, a: &Acme, name: &str, company_name: &str) -> String {
    api.create_id(
        &a.seller,
        "lead",
        json!({"lead_name": name, "company_name": company_name, "email": "ana@mueller.test", "phone": "+49 30 1234567", "source": "Website", "company": a.company}),
    )
    .await
}

#[tokio::test]
async fn leads_and_opportunities_are_refused_at_the_field_at_fault() {
    for db in databases("crm_refusals").await {
        let api = boot(&db).await;
        let a = acme(&api).await;
        let s = a.seller.as_str();

        let lead_body = json!({"lead_name": "Ana Müller", "company": a.company});
        check(
            &api,
            s,
            "lead",
            lead_body.clone(),
            Ok(json!({"name": "LEAD-00001", "status": "Open"})),
        )
        .await;
        for (change, pointer) in [
            (json!({"lead_name": null}), "/lead_name"),
            (json!({"email": "not an address"}), "/email"),
            (json!({"status": "Maybe"}), "/status"),
            (json!({"status": "Converted"}), "/status"),
            (json!({"source": "Rumour"}), "/source"),
            (json!({"company": null}), "/company"),
            (
                json!({"customer": "no-such-customer", "status": "Converted"}),
                "/customer",
            ),
        ] {
            check(&api, s, "lead", with(&lead_body, &change), Err(pointer)).await;
        }
        let lead = lead(&api, &a, "Ben Ober", "Ober AG").await;
        let stranger = api
            .create_id(
                s,
                "lead",
                json!({"lead_name": "Stranger", "company": a.other_company}),
            )
            .await;
        let customer = api
            .create_id(&a.clerk, "customer", json!({"customer_name": "Known Ltd", "company": a.company, "receivable_account": a.receivable, "currency": "USD"}))
            .await;
        let foreign = api
            .create_id(&a.clerk, "customer", json!({"customer_name": "Fremd GmbH", "company": a.other_company, "receivable_account": a.other_receivable, "currency": "EUR"}))
            .await;

        let opportunity = json!({"title": "Laptops", "company": a.company, "lead": lead, "stage": "Proposal", "expected_close_date": "2026-12-15", "amount": usd("1000.00")});
        for (change, expected) in [
            // The stage gives the probability unless one is given; the amount, the currency.
            (
                json!({}),
                Ok(
                    json!({"name": "OPP-00001", "probability": "50.00", "currency": "USD", "customer": null}),
                ),
            ),
            (
                json!({"stage": "Won"}),
                Ok(json!({"probability": "100.00"})),
            ),
            (
                json!({"probability": "33.33"}),
                Ok(json!({"probability": "33.33"})),
            ),
            (
                json!({"probability": "0"}),
                Ok(json!({"probability": "0.00"})),
            ),
            (
                json!({"lead": null, "customer": customer}),
                Ok(json!({"customer": customer})),
            ),
            (
                json!({"amount": null}),
                Ok(json!({"amount": null, "currency": null})),
            ),
            // Neither a lead nor a customer.
            (json!({"lead": null}), Err("/lead")),
            (json!({"lead": null, "customer": null}), Err("/lead")),
            (json!({"probability": "150"}), Err("/probability")),
            (json!({"probability": 150}), Err("/probability")),
            (json!({"probability": "-0.01"}), Err("/probability")),
            (json!({"probability": "12.345"}), Err("/probability")),
            (json!({"stage": "Dreaming"}), Err("/stage")),
            (json!({"lead": "no-such-lead"}), Err("/lead")),
            (json!({"lead": stranger}), Err("/lead")),
            // Both, while the lead is not converted.
            (json!({"customer": customer}), Err("/customer")),
            (json!({"lead": null, "customer": foreign}), Err("/customer")),
            (json!({"amount": usd("-1.00")}), Err("/amount")),
            (
                json!({"amount": eur("10.00"), "currency": "USD"}),
                Err("/amount"),
            ),
            (json!({"amount": "1000.00"}), Err("/amount")),
            (
                json!({"expected_close_date": null}),
                Err("/expected_close_date"),
            ),
            (
                json!({"expected_close_date": "2026-02-30"}),
                Err("/expected_close_date"),
            ),
            (json!({"company": a.other_company}), Err("/lead")),
        ] {
            check(
                &api,
                s,
                "opportunity",
                with(&opportunity, &change),
                expected,
            )
            .await;
        }

        // A probability nobody chose follows the stage; a chosen one stays.
        let id = api.create_id(s, "opportunity", opportunity.clone()).await;
        let patch = |change: Value| {
            let (api, id) = (&api, &id);
            async move {
                let (status, record) = api
                    .call(
                        "PATCH",
                        &format!("/api/v1/resources/opportunity/{id}"),
                        s,
                        Some(change),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{record}");
                record["probability"].clone()
            }
        };
        assert_eq!(patch(json!({"stage": "Negotiation"})).await, "75.00");
        assert_eq!(patch(json!({"probability": "60"})).await, "60.00");
        assert_eq!(patch(json!({"stage": "Won"})).await, "60.00");
        let (status, answer) = api
            .call(
                "PATCH",
                &format!("/api/v1/resources/opportunity/{id}"),
                s,
                Some(json!({"probability": "101"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"][0]["pointer"], "/probability", "{answer}");

        // Neither entity is the auditor's.
        let (status, _) = api
            .call("GET", "/api/v1/resources/lead", &a.auditor, None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}

/// Posts a conversion of `lead`.
async fn convert(api: &Api, bearer: &str, lead: &str, body: Value) -> (StatusCode, Value) {
    api.call(
        "POST",
        &format!("/api/v1/crm/leads/{lead}/convert"),
        bearer,
        Some(body),
    )
    .await
}

#[tokio::test]
async fn a_lead_converts_into_a_customer_and_a_contact_with_its_history() {
    for db in databases("crm_conversion").await {
        let api = boot(&db).await;
        let a = acme(&api).await;
        let s = a.seller.as_str();
        let id = lead(&api, &a, "Ana Maria Müller", "Müller GmbH").await;
        let other = lead(&api, &a, "Ben Ober", "").await;
        let opportunity = |lead: &str, stage: &str| json!({"title": stage, "company": a.company, "lead": lead, "stage": stage, "expected_close_date": "2026-12-15"});
        let mut history = vec![
            api.create_id(s, "opportunity", opportunity(&id, "Proposal"))
                .await,
            api.create_id(s, "opportunity", opportunity(&id, "Won"))
                .await,
        ];
        history.sort();
        let unrelated = api
            .create_id(s, "opportunity", opportunity(&other, "Proposal"))
            .await;
        let good = json!({"customer": {"receivable_account": a.receivable}});
        let (converting, auditor) = (id.as_str(), a.auditor.as_str());

        // Refusals write nothing: no customer and no contact are left, the lead is Open.
        let long_phone = "1".repeat(41);
        for (bearer, which, body, status, pointer) in [
            (s, converting, json!({}), 422, "/customer"),
            (
                s,
                converting,
                json!({"customer": "CUST-1"}),
                422,
                "/customer",
            ),
            (
                s,
                converting,
                with(&good, &json!({"extra": 1})),
                422,
                "/extra",
            ),
            (
                s,
                converting,
                json!({"customer": {}}),
                422,
                "/customer/receivable_account",
            ),
            (
                s,
                converting,
                json!({"customer": {"receivable_account": a.bank}}),
                422,
                "/customer/receivable_account",
            ),
            (
                s,
                converting,
                json!({"customer": {"receivable_account": a.other_receivable}}),
                422,
                "/customer/receivable_account",
            ),
            (
                s,
                converting,
                json!({"customer": {"receivable_account": a.receivable, "company": a.other_company}}),
                422,
                "/customer/company",
            ),
            (
                s,
                converting,
                with(&good, &json!({"contact": {"party": "someone"}})),
                422,
                "/contact/party",
            ),
            (
                s,
                converting,
                with(&good, &json!({"contact": []})),
                422,
                "/contact",
            ),
            // The customer is made, then the contact fails: the customer is undone.
            (
                s,
                converting,
                with(&good, &json!({"contact": {"phone": long_phone}})),
                422,
                "/contact/phone",
            ),
            (
                s,
                converting,
                with(&good, &json!({"contact": {"is_primary": "yes"}})),
                422,
                "/contact/is_primary",
            ),
            (s, "no-such-lead", good.clone(), 404, ""),
            (auditor, converting, good.clone(), 403, ""),
            ("", converting, good.clone(), 401, ""),
        ] {
            let (got, answer) = convert(&api, bearer, which, body.clone()).await;
            assert_eq!(got.as_u16(), status, "{body}: {answer}");
            if !pointer.is_empty() {
                assert_eq!(answer["errors"][0]["pointer"], pointer, "{body}: {answer}");
            }
            assert_eq!(
                api.list(&a.clerk, "customer").await,
                Vec::<Value>::new(),
                "{body}"
            );
            assert_eq!(
                api.list(&a.clerk, "contact").await,
                Vec::<Value>::new(),
                "{body}"
            );
            let stored = api.get(s, "lead", &id).await;
            // The lead has opportunities, so it is at that stage, and stays there.
            assert_eq!(
                (stored["status"].as_str(), stored["customer"].as_str()),
                (Some("Opportunity"), None),
                "{body}"
            );
        }

        // The customers those conversions made and undid are in the audit log, made and
        // deleted in the seller's name.
        let (status, log) = api
            .call("GET", "/api/v1/audit?entity=customer", auditor, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let records = log["data"].as_array().unwrap();
        let actions: Vec<&str> = records
            .iter()
            .map(|r| r["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["delete", "create", "delete", "create"], "{log}");
        assert!(
            records
                .iter()
                .all(|r| r["actor"].is_string() && r["actor"] == records[0]["actor"]),
            "{log}"
        );

        let (status, answer) = convert(&api, s, &id, good.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let customer = answer["customer"]["id"].as_str().unwrap().to_owned();
        let contact = answer["contact"]["id"].as_str().unwrap().to_owned();
        for (part, field, value) in [
            ("customer", "customer_name", json!("Müller GmbH")),
            ("customer", "company", json!(a.company)),
            ("customer", "currency", json!("USD")),
            ("customer", "email", json!("ana@mueller.test")),
            ("customer", "receivable_account", json!(a.receivable)),
            ("contact", "first_name", json!("Ana")),
            ("contact", "last_name", json!("Maria Müller")),
            ("contact", "email", json!("ana@mueller.test")),
            ("contact", "phone", json!("+49 30 1234567")),
            ("contact", "party_type", json!("Customer")),
            ("contact", "party", json!(customer)),
            ("contact", "is_primary", json!(true)),
            ("lead", "status", json!("Converted")),
            ("lead", "customer", json!(customer)),
            ("lead", "contact", json!(contact)),
        ] {
            assert_eq!(answer[part][field], value, "{part}.{field}: {answer}");
        }
        // The two conversions whose contact failed each spent a customer number.
        assert_eq!(answer["customer"]["name"], "CUST-00003", "{answer}");
        assert_eq!(answer["opportunities"], json!(history), "{answer}");
        assert_eq!(api.list(&a.clerk, "customer").await.len(), 1);
        assert_eq!(api.get(s, "lead", &id).await["status"], "Converted");

        // The history came along: each opportunity has the customer and keeps its lead.
        for opportunity in &history {
            let record = api.get(s, "opportunity", opportunity).await;
            assert_eq!(
                (&record["customer"], &record["lead"]),
                (&json!(customer), &json!(id)),
                "{record}"
            );
        }
        assert_eq!(
            api.get(s, "opportunity", &unrelated).await["customer"],
            Value::Null
        );
        // A new opportunity of the lead is the customer's too.
        check(
            &api,
            s,
            "opportunity",
            opportunity(&id, "Qualification"),
            Ok(json!({"customer": customer, "lead": id})),
        )
        .await;
        let mut wrong = opportunity(&id, "Qualification");
        wrong["customer"] = json!(api.create_id(&a.clerk, "customer", json!({"customer_name": "Else Ltd", "company": a.company, "receivable_account": a.receivable, "currency": "USD"})).await);
        check(&api, s, "opportunity", wrong, Err("/customer")).await;

        // A lead converts once.
        let (status, answer) = convert(&api, s, &id, good.clone()).await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert!(
            answer["detail"]
                .as_str()
                .unwrap()
                .contains("already converted"),
            "{answer}"
        );
        assert_eq!(api.list(&a.clerk, "customer").await.len(), 2);

        // A lead without an organisation becomes a customer of its own name, in the
        // currency asked for, with its contact of one name.
        let (status, answer) = convert(&api, &a.clerk, &other, json!({"customer": {"receivable_account": a.receivable, "currency": "EUR", "payment_terms_days": 14}, "contact": {"last_name": "Ober"}})).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["customer"]["customer_name"], "Ben Ober", "{answer}");
        assert_eq!(answer["customer"]["currency"], "EUR", "{answer}");
        assert_eq!(answer["customer"]["payment_terms_days"], 14, "{answer}");
        assert_eq!(
            (
                &answer["contact"]["first_name"],
                &answer["contact"]["last_name"]
            ),
            (&json!("Ben"), &json!("Ober")),
            "{answer}"
        );
        assert_eq!(answer["opportunities"], json!([unrelated]), "{answer}");

        // A lead moved to another company after one of its opportunities was made: that
        // opportunity refuses the customer, and the whole conversion is undone, the
        // opportunity that took the customer first set back too.
        let moved = lead(&api, &a, "Cleo Wander", "Wander AG").await;
        let kept = api
            .create_id(s, "opportunity", opportunity(&moved, "Proposal"))
            .await;
        let move_to = |company: String| {
            let (api, moved) = (&api, &moved);
            async move {
                let path = format!("/api/v1/resources/lead/{moved}");
                let (status, answer) = api
                    .call("PATCH", &path, s, Some(json!({"company": company})))
                    .await;
                assert_eq!(status, StatusCode::OK, "{answer}");
            }
        };
        move_to(a.other_company.clone()).await;
        let mut elsewhere = opportunity(&moved, "Negotiation");
        elsewhere["company"] = json!(a.other_company);
        let stray = api.create_id(s, "opportunity", elsewhere).await;
        move_to(a.company.clone()).await;
        let (status, answer) = convert(&api, s, &moved, good.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains(&format!(
                "opportunity `{stray}` could not take the customer"
            )),
            "{answer}"
        );
        assert_eq!(api.list(&a.clerk, "customer").await.len(), 3);
        assert_eq!(api.list(&a.clerk, "contact").await.len(), 2);
        let stored = api.get(s, "lead", &moved).await;
        assert_eq!(
            (&stored["status"], &stored["customer"], &stored["contact"]),
            (&json!("Opportunity"), &Value::Null, &Value::Null),
            "{stored}"
        );
        for opportunity in [&kept, &stray] {
            assert_eq!(
                api.get(s, "opportunity", opportunity).await["customer"],
                Value::Null,
                "{opportunity}"
            );
        }

        // Two conversions of one lead at once: one wins, the other keeps nothing.
        let raced = lead(&api, &a, "Dana Duo", "Duo KG").await;
        let (first, second) = tokio::join!(
            convert(&api, s, &raced, good.clone()),
            convert(&api, &a.clerk, &raced, good.clone()),
        );
        let mut statuses = [first.0.as_u16(), second.0.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "{} / {}", first.1, second.1);
        assert_eq!(api.list(&a.clerk, "customer").await.len(), 4);
        assert_eq!(api.list(&a.clerk, "contact").await.len(), 3);
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}

/// The pipeline as (stage, month, count, amount, weighted amount) rows, and the totals.
type Figures = (
    Vec<(String, String, u64, String, String)>,
    (u64, String, String),
);

fn figures(report: &Value) -> Figures {
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    let rows = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["currency"], report["currency"], "{r}");
            (
                text(&r["stage"]),
                text(&r["month"]),
                r["count"].as_u64().unwrap(),
                text(&r["amount"]),
                text(&r["weighted_amount"]),
            )
        })
        .collect();
    let t = &report["totals"];
    (
        rows,
        (
            t["count"].as_u64().unwrap(),
            text(&t["amount"]),
            text(&t["weighted_amount"]),
        ),
    )
}

fn row(
    stage: &str,
    month: &str,
    count: u64,
    amount: &str,
    weighted: &str,
) -> (String, String, u64, String, String) {
    (
        stage.into(),
        month.into(),
        count,
        amount.into(),
        weighted.into(),
    )
}

#[tokio::test]
async fn the_pipeline_weighs_open_and_won_opportunities_in_the_company_currency() {
    for db in databases("crm_pipeline").await {
        let api = boot(&db).await;
        let a = acme(&api).await;
        let s = a.seller.as_str();
        for (date, rate) in [("2026-01-01", "1.1"), ("2027-01-01", "1.2")] {
            api.create(
                &a.clerk,
                "exchange_rate",
                json!({"from_code": "EUR", "to_code": "USD", "date": date, "rate": rate}),
            )
            .await;
        }
        let customer = api
            .create_id(&a.clerk, "customer", json!({"customer_name": "Known Ltd", "company": a.company, "receivable_account": a.receivable, "currency": "USD"}))
            .await;
        let foreign = api
            .create_id(&a.clerk, "customer", json!({"customer_name": "Fremd GmbH", "company": a.other_company, "receivable_account": a.other_receivable, "currency": "EUR"}))
            .await;
        for (stage, date, amount, probability) in [
            ("Proposal", "2026-11-30", Some(usd("1000.00")), None),
            // 333.33 at 50% is 166.665: 166.67.
            ("Proposal", "2026-11-01", Some(usd("333.33")), None),
            // 10.05 at 10% is 1.005: 1.01.
            ("Prospecting", "2026-12-31", Some(usd("10.05")), None),
            ("Qualification", "2026-12-20", None, None),
            // 1,000.01 EUR at 1.1 is 1,100.011 USD: 1,100.01; at 75%, 825.0075: 825.01.
            ("Negotiation", "2026-12-15", Some(eur("1000.01")), None),
            // 100.00 EUR at 2027's 1.2 is 120.00 USD; at 33.33%, 39.996: 40.00.
            (
                "Negotiation",
                "2027-01-10",
                Some(eur("100.00")),
                Some("33.33"),
            ),
            ("Won", "2026-12-01", Some(usd("2500.00")), None),
            ("Lost", "2026-12-01", Some(usd("9999.99")), None),
        ] {
            let mut body = json!({"company": a.company, "customer": customer, "stage": stage, "expected_close_date": date, "amount": amount});
            if let Some(p) = probability {
                body["probability"] = json!(p);
            }
            api.create(s, "opportunity", body).await;
        }
        api.create(s, "opportunity", json!({"company": a.other_company, "customer": foreign, "stage": "Won", "expected_close_date": "2026-12-01", "amount": eur("777.00")})).await;

        let all = (
            vec![
                row("Prospecting", "2026-12", 1, "10.05", "1.01"),
                row("Qualification", "2026-12", 1, "0.00", "0.00"),
                row("Proposal", "2026-11", 2, "1333.33", "666.67"),
                row("Negotiation", "2026-12", 1, "1100.01", "825.01"),
                row("Negotiation", "2027-01", 1, "120.00", "40.00"),
                row("Won", "2026-12", 1, "2500.00", "2500.00"),
            ],
            (7, "5063.39".to_owned(), "4032.69".to_owned()),
        );
        let december = (
            vec![
                row("Prospecting", "2026-12", 1, "10.05", "1.01"),
                row("Qualification", "2026-12", 1, "0.00", "0.00"),
                row("Negotiation", "2026-12", 1, "1100.01", "825.01"),
                row("Won", "2026-12", 1, "2500.00", "2500.00"),
            ],
            (4, "3610.06".to_owned(), "3326.02".to_owned()),
        );
        let company = a.company.clone();
        let (clerk, auditor) = (a.clerk.as_str(), a.auditor.as_str());
        for (bearer, query, expected) in [
            (s, format!("company={company}"), Ok(all.clone())),
            (s, "company=ACME".to_owned(), Ok(all.clone())),
            (
                clerk,
                "company=Acme%20Ltd&format=json".to_owned(),
                Ok(all.clone()),
            ),
            (
                s,
                format!("company={company}&from=2026-12-01&to=2026-12-31"),
                Ok(december),
            ),
            (
                s,
                format!("company={company}&from=&to="),
                Err((422, "/from")),
            ),
            (
                s,
                format!("company={company}&from=2028-01-01"),
                Ok((vec![], (0, "0.00".to_owned(), "0.00".to_owned()))),
            ),
            (
                s,
                format!("company={company}&from=2026-12-31&to=2026-12-01"),
                Err((422, "/from")),
            ),
            (
                s,
                format!("company={company}&from=2026-13-01"),
                Err((422, "/from")),
            ),
            (
                s,
                format!("company={company}&to=31.12.2026"),
                Err((422, "/to")),
            ),
            (
                s,
                format!("company={company}&format=xml"),
                Err((422, "/format")),
            ),
            (s, format!("company={company}&limit=5"), Err((400, ""))),
            (s, "from=2026-01-01".to_owned(), Err((400, ""))),
            (s, "company=no-such-company".to_owned(), Err((404, ""))),
            (auditor, format!("company={company}"), Err((403, ""))),
            ("", format!("company={company}"), Err((401, ""))),
        ] {
            let (status, report) = api
                .call(
                    "GET",
                    &format!("/api/v1/crm/reports/pipeline?{query}"),
                    bearer,
                    None,
                )
                .await;
            match expected {
                Ok(expected) => {
                    assert_eq!(status, StatusCode::OK, "{query}: {report}");
                    assert_eq!(figures(&report), expected, "{query}: {report}");
                    assert_eq!(
                        (&report["company"], &report["currency"]),
                        (&json!(company), &json!("USD")),
                        "{query}"
                    );
                }
                Err((code, pointer)) => {
                    assert_eq!(status.as_u16(), code, "{query}: {report}");
                    if !pointer.is_empty() {
                        assert_eq!(report["errors"][0]["pointer"], pointer, "{query}: {report}");
                    }
                    if code == 403 {
                        assert_eq!(report["action"], "crm.read_reports", "{report}");
                    }
                }
            }
        }

        // The rows as CSV, in the same order.
        let (status, content_type, csv) = api
            .raw(
                "GET",
                &format!(
                    "/api/v1/crm/reports/pipeline?company={}&format=csv&to=2026-12-31",
                    encode(&company)
                ),
                s,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{csv}");
        assert_eq!(content_type, "text/csv; charset=utf-8");
        assert_eq!(
            csv,
            "stage,month,count,amount,weighted_amount,currency\r\n\
             Prospecting,2026-12,1,10.05,1.01,USD\r\n\
             Qualification,2026-12,1,0.00,0.00,USD\r\n\
             Proposal,2026-11,2,1333.33,666.67,USD\r\n\
             Negotiation,2026-12,1,1100.01,825.01,USD\r\n\
             Won,2026-12,1,2500.00,2500.00,USD\r\n"
        );

        // An amount in a currency without a stored rate of its date is not guessed.
        api.create(s, "opportunity", json!({"company": a.company, "customer": customer, "stage": "Proposal", "expected_close_date": "2025-06-30", "amount": eur("5.00")})).await;
        let (status, report) = api
            .call(
                "GET",
                &format!("/api/v1/crm/reports/pipeline?company={company}"),
                s,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{report}");
        assert_eq!(report["errors"][0]["code"], "missing_rate", "{report}");
        assert!(
            report["detail"]
                .as_str()
                .unwrap()
                .contains("from EUR to USD on or before 2025-06-30"),
            "{report}"
        );
        let (status, report) = api
            .call(
                "GET",
                &format!("/api/v1/crm/reports/pipeline?company={company}&from=2026-01-01"),
                s,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(figures(&report), all);

        // The desk shows it to the seller, who may read the companies to pick one; the
        // company may also be named by its code.
        let browser = Browser::new(&api, "acme");
        browser.login("seller@acme.test", PASSWORD).await;
        assert_has(&browser.get("/app").await, "href=\"/app/crm/pipeline\"");
        let page = browser
            .get("/app/crm/pipeline?company=ACME&from=2026-01-01&to=")
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for text in [
            "<td>2027-01</td><td class=\"num\">1</td><td class=\"num\">120.00</td><td class=\"num\">40.00</td>",
            "<td class=\"num\">7</td><td class=\"num\">5063.39</td><td class=\"num\">4032.69</td>",
            "Acme Ltd",
            "<select id=\"company\" name=\"company\">",
        ] {
            assert_has(&page, text);
        }
        let page = browser.get("/app/crm/pipeline?company=ACME").await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.body
        );
        assert_has(&page, "no exchange rate from EUR to USD");
        // Without a company, the first the seller may read is shown: the same refusal.
        let page = browser.get("/app/crm/pipeline").await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.body
        );
        // The auditor has no such link and no such page.
        let auditor = Browser::new(&api, "acme");
        auditor.login("auditor@acme.test", PASSWORD).await;
        assert!(!auditor.get("/app").await.body.contains("/app/crm/pipeline"));
        assert_eq!(
            auditor.get("/app/crm/pipeline?company=ACME").await.status,
            StatusCode::FORBIDDEN
        );
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}
