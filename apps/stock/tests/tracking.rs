//! Batches and serial numbers through the API on both backends: a batch past its expiry
//! moves no more, an issue takes no more of a batch than is held, a serial number is
//! received once, leaves stock once, and comes back when its issue is cancelled; every
//! refusal is a 422 at its pointer with nothing written.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use prefiq_data::testing::databases;
use serde_json::{Value, json};

use common::*;

/// Creates and submits a stock entry: its id, or the pointers of its refusal (on save
/// or on submit, the draft then deleted so that nothing is left).
async fn attempt(api: &Api, bearer: &str, body: Value) -> Result<String, Vec<String>> {
    let pointers = |answer: &Value| {
        answer["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e["pointer"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (status, answer) = api
        .call("POST", "/api/v1/resources/stock_entry", bearer, Some(body))
        .await;
    if status != StatusCode::CREATED {
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        return Err(pointers(&answer));
    }
    let id = answer["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/resources/stock_entry/{id}");
    let (status, answer) = api
        .call("POST", &format!("{path}/submit"), bearer, None)
        .await;
    if status == StatusCode::OK {
        return Ok(id);
    }
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (deleted, _) = api.call("DELETE", &path, bearer, None).await;
    assert!(deleted.is_success(), "{deleted}");
    Err(pointers(&answer))
}

#[tokio::test]
async fn batches_expire_and_serial_numbers_leave_stock_once() {
    for db in databases("stock_tracking").await {
        let api = boot(&db).await;
        let clerk = api.clerk().await;
        let b = books(&api, &clerk).await;
        let (_, bolt) = api
            .call(
                "GET",
                &format!("/api/v1/resources/item/{}", b.bolt),
                &clerk,
                None,
            )
            .await;
        let item = |code: &str, flag: &str| json!({"item_code": code, "item_name": code, "item_group": bolt["item_group"], "stock_uom": bolt["stock_uom"], "company": b.company, flag: true});
        let milk = api
            .create(&clerk, "item", item("MILK", "has_batch_no"))
            .await;
        let phone = api
            .create(&clerk, "item", item("PHONE", "has_serial_no"))
            .await;
        let fresh = api
            .create(
                &clerk,
                "batch",
                json!({"batch_id": "B-1", "item": milk, "expiry_date": "2026-06-30"}),
            )
            .await;
        let of_phone = api
            .create(&clerk, "batch", json!({"batch_id": "B-2", "item": phone}))
            .await;
        let (main, store) = (&b.main, &b.store);
        let receipt = |date: &str, line: Value| entry(&b, "Receipt", date, json!([line]));
        let issue = |date: &str, line: Value| entry(&b, "Issue", date, json!([line]));

        // (body, the pointer refused, or None when it is taken)
        let cases: Vec<(Value, Option<&str>)> = vec![
            (
                receipt(
                    "2026-03-01",
                    json!({"item": milk, "qty": "10", "t_warehouse": main, "basic_rate": usd("1.00")}),
                ),
                Some("/lines/0/batch"),
            ),
            (
                receipt(
                    "2026-03-01",
                    json!({"item": milk, "qty": "10", "t_warehouse": main, "basic_rate": usd("1.00"), "batch": of_phone}),
                ),
                Some("/lines/0/batch"),
            ),
            (
                receipt(
                    "2026-03-01",
                    json!({"item": b.bolt, "qty": "1", "t_warehouse": main, "basic_rate": usd("1.00"), "batch": fresh}),
                ),
                Some("/lines/0/batch"),
            ),
            (
                receipt(
                    "2026-03-01",
                    json!({"item": milk, "qty": "10", "t_warehouse": main, "basic_rate": usd("1.00"), "batch": fresh}),
                ),
                None,
            ),
            // More of the batch than is held, and the batch past its expiry.
            (
                issue(
                    "2026-03-02",
                    json!({"item": milk, "qty": "11", "s_warehouse": main, "batch": fresh}),
                ),
                Some("/lines/0/batch"),
            ),
            (
                issue(
                    "2026-07-01",
                    json!({"item": milk, "qty": "4", "s_warehouse": main, "batch": fresh}),
                ),
                Some("/lines/0/batch"),
            ),
            (
                issue(
                    "2026-06-30",
                    json!({"item": milk, "qty": "4", "s_warehouse": main, "batch": fresh}),
                ),
                None,
            ),
            // One serial number per unit, each received once.
            (
                receipt(
                    "2026-03-01",
                    json!({"item": phone, "qty": "2", "t_warehouse": main, "basic_rate": usd("100.00"), "serial_nos": "P1"}),
                ),
                Some("/lines/0/serial_nos"),
            ),
            (
                receipt(
                    "2026-03-01",
                    json!({"item": phone, "qty": "2", "t_warehouse": main, "basic_rate": usd("100.00"), "serial_nos": "P1, P1"}),
                ),
                Some("/lines/0/serial_nos"),
            ),
            (
                receipt(
                    "2026-03-01",
                    json!({"item": b.bolt, "qty": "1", "t_warehouse": main, "basic_rate": usd("1.00"), "serial_nos": "X"}),
                ),
                Some("/lines/0/serial_nos"),
            ),
            (
                receipt(
                    "2026-03-01",
                    json!({"item": phone, "qty": "2", "t_warehouse": main, "basic_rate": usd("100.00"), "serial_nos": "P1\nP2"}),
                ),
                None,
            ),
            (
                receipt(
                    "2026-03-02",
                    json!({"item": phone, "qty": "1", "t_warehouse": store, "basic_rate": usd("100.00"), "serial_nos": "P2"}),
                ),
                Some("/lines/0/serial_nos"),
            ),
            // A serial number leaves once; one moved away is not in its old warehouse.
            (
                issue(
                    "2026-03-03",
                    json!({"item": phone, "qty": "1", "s_warehouse": main, "serial_nos": "P1"}),
                ),
                None,
            ),
            (
                issue(
                    "2026-03-04",
                    json!({"item": phone, "qty": "1", "s_warehouse": main, "serial_nos": "P1"}),
                ),
                Some("/lines/0/serial_nos"),
            ),
            (
                entry(
                    &b,
                    "Transfer",
                    "2026-03-04",
                    json!([{"item": phone, "qty": "1", "s_warehouse": main, "t_warehouse": store, "serial_nos": "P2"}]),
                ),
                None,
            ),
            (
                issue(
                    "2026-03-05",
                    json!({"item": phone, "qty": "1", "s_warehouse": main, "serial_nos": "P2"}),
                ),
                Some("/lines/0/serial_nos"),
            ),
            (
                issue(
                    "2026-03-05",
                    json!({"item": phone, "qty": "1", "s_warehouse": main, "serial_nos": "P9"}),
                ),
                Some("/lines/0/serial_nos"),
            ),
        ];
        let mut taken = Vec::new();
        for (body, expected) in cases {
            let got = attempt(&api, &clerk, body.clone()).await;
            match (expected, &got) {
                (None, Ok(id)) => taken.push(id.clone()),
                (Some(pointer), Err(pointers)) => assert_eq!(pointers, &[pointer], "{body}"),
                _ => panic!("{body}: expected {expected:?}, got {got:?}"),
            }
        }
        assert_eq!(
            api.stock(&clerk, &b.company, "2026-12-31").await,
            [
                row("MILK", "Main", "6.000", "6.00"),
                row("PHONE", "Store B", "1.000", "100.00"),
            ]
            .into()
        );

        // Cancelling P1's issue puts it back: it can leave again.
        let issued = &taken[3];
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/stock_entry/{issued}/cancel"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        attempt(
            &api,
            &clerk,
            issue(
                "2026-03-06",
                json!({"item": phone, "qty": "1", "s_warehouse": main, "serial_nos": "P1"}),
            ),
        )
        .await
        .unwrap();
        check_books(&api, &clerk, &b).await;
    }
}
