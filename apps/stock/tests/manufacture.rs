//! Manufacture through the API on both backends: a stock entry that consumes items and
//! produces another at their cost, posted stock account to stock account, and
//! revalued with its products when a backdated receipt changes what it consumed.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use prefiq_data::testing::databases;
use serde_json::json;

use common::*;

#[tokio::test]
async fn a_manufacture_produces_at_the_cost_of_what_it_consumes() {
    for db in databases("stock_manufacture").await {
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
        let kit = api.create(&clerk, "item", json!({"item_code": "KIT", "item_name": "Kit", "item_group": bolt["item_group"], "stock_uom": bolt["stock_uom"], "company": b.company})).await;
        let (main, store) = (&b.main, &b.store);
        let (status, answer, _) = api
            .submit(&clerk, entry(&b, "Receipt", "2026-03-01", json!([
                {"item": b.bolt, "qty": "10", "t_warehouse": main, "basic_rate": usd("2.00")},
                {"item": b.nut, "qty": "5", "t_warehouse": main, "basic_rate": usd("4.00")},
            ])))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");

        // A manufacture consumes and produces; one that only consumes is refused.
        let (status, answer) = api
            .call(
                "POST",
                "/api/v1/resources/stock_entry",
                &clerk,
                Some(entry(
                    &b,
                    "Manufacture",
                    "2026-03-05",
                    json!([
                        {"item": b.bolt, "qty": "4", "s_warehouse": main},
                    ]),
                )),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"][0]["pointer"], "/lines", "{answer}");

        // 4 bolts at 2.00 and 2 nuts at 4.00 make 2 kits worth 16.00.
        let (status, answer, _) = api
            .submit(
                &clerk,
                entry(
                    &b,
                    "Manufacture",
                    "2026-03-05",
                    json!([
                        {"item": b.bolt, "qty": "4", "s_warehouse": main},
                        {"item": b.nut, "qty": "2", "s_warehouse": main},
                        {"item": kit, "qty": "2", "t_warehouse": store},
                    ]),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(
            api.stock(&clerk, &b.company, "2026-12-31").await,
            [
                row("BOLT", "Main", "6.000", "12.00"),
                row("NUT", "Main", "3.000", "12.00"),
                row("KIT", "Store B", "2.000", "16.00"),
            ]
            .into()
        );
        check_books(&api, &clerk, &b).await;

        // Bolts received earlier at 5.00 are the ones it consumed (FIFO): the kits
        // now cost 4 x 5.00 + 8.00 = 28.00, and the books follow.
        let (status, answer, _) = api
            .submit(&clerk, entry(&b, "Receipt", "2026-02-01", json!([
                {"item": b.bolt, "qty": "4", "t_warehouse": main, "basic_rate": usd("5.00")},
            ])))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(
            api.stock(&clerk, &b.company, "2026-12-31").await,
            [
                row("BOLT", "Main", "10.000", "20.00"),
                row("NUT", "Main", "3.000", "12.00"),
                row("KIT", "Store B", "2.000", "28.00"),
            ]
            .into()
        );
        check_books(&api, &clerk, &b).await;
        check_books_at(&api, &clerk, &b, "2026-03-04").await;
    }
}
