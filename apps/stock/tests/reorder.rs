//! Reorder levels, the items below them, stock ageing and the reorder run through the
//! API on both backends.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use prefiq_data::testing::{TestDatabase, databases};
use serde_json::{Value, json};

use common::*;

/// The stock harness's app, which has the buying app (stock depends on it).
async fn boot_buying(db: &TestDatabase) -> Api {
    boot(db).await
}

/// A supplier of the company.
async fn supplier(api: &Api, clerk: &str, b: &Books, name: &str, extra: Value) -> String {
    let payable = api
        .account(clerk, &b.company, "liabilities:current:payable")
        .await;
    let mut body = json!({"supplier_name": name, "company": b.company, "payable_account": payable, "currency": "USD"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    api.create(clerk, "supplier", body).await
}

/// A reorder level's body.
fn level(item: &str, warehouse: &str, level: &str, qty: &str, supplier: Option<&str>) -> Value {
    let mut body =
        json!({"item": item, "warehouse": warehouse, "level": level, "reorder_qty": qty});
    if let Some(s) = supplier {
        body["supplier"] = json!(s);
    }
    body
}

/// A receipt of `qty` of `item` into `warehouse` at `rate` on `date`, submitted.
async fn receive(
    api: &Api,
    clerk: &str,
    b: &Books,
    date: &str,
    bin: (&str, &str),
    qty: &str,
    rate: &str,
) {
    let (status, answer, _) = api
        .submit(
            clerk,
            entry(
                b,
                "Receipt",
                date,
                json!([{"item": bin.0, "qty": qty, "t_warehouse": bin.1, "basic_rate": usd(rate)}]),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// The rows of a report as (item code, warehouse name) and the given columns.
fn rows(report: &Value, columns: &[&str]) -> Vec<Vec<String>> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut out = vec![
                r["item_code"].as_str().unwrap().to_owned(),
                r["warehouse_name"].as_str().unwrap().to_owned(),
            ];
            out.extend(
                columns
                    .iter()
                    .map(|c| r[*c].as_str().unwrap_or_default().to_owned()),
            );
            out
        })
        .collect()
}

fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|s| (*s).to_owned()).collect())
        .collect()
}

#[tokio::test]
async fn reorder_levels_are_refused_at_their_pointer() {
    for db in databases("stock_reorder_levels").await {
        let api = boot_buying(&db).await;
        let clerk = api.clerk().await;
        let b = books(&api, &clerk).await;
        let acme = supplier(&api, &clerk, &b, "Acme Supplies", json!({})).await;
        let gone = supplier(&api, &clerk, &b, "Gone Ltd", json!({"disabled": true})).await;
        let service = api
            .create(&clerk, "item", json!({"item_code": "SVC", "item_name": "Service", "item_group": item_group(&api, &clerk).await, "stock_uom": uom(&api, &clerk).await, "is_stock_item": false}))
            .await;
        // A good one: its company is the warehouse's.
        let id = api
            .create(
                &clerk,
                "reorder_level",
                level(&b.bolt, &b.main, "5", "20", Some(&acme)),
            )
            .await;
        let (status, saved) = api
            .call(
                "GET",
                &format!("/api/v1/resources/reorder_level/{id}"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(saved["company"], json!(b.company), "{saved}");
        assert_eq!(saved["level"], "5.000", "{saved}");

        let check = async |body: Value, pointer: &str| {
            let (status, answer) = api
                .call(
                    "POST",
                    "/api/v1/resources/reorder_level",
                    &clerk,
                    Some(body.clone()),
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
            assert_eq!(answer["errors"][0]["pointer"], pointer, "{body}: {answer}");
        };
        check(level(&b.nut, &b.group, "5", "20", None), "/warehouse").await;
        check(
            level(&b.nut, "no-such-warehouse", "5", "20", None),
            "/warehouse",
        )
        .await;
        check(level(&b.bolt, &b.main, "1", "2", None), "/warehouse").await;
        check(level(&service, &b.main, "5", "20", None), "/item").await;
        check(level(&b.nut, &b.main, "-1", "20", None), "/level").await;
        check(level(&b.nut, &b.main, "5", "0", None), "/reorder_qty").await;
        check(level(&b.nut, &b.main, "5", "-3", None), "/reorder_qty").await;
        check(level(&b.nut, &b.main, "5", "20", Some(&gone)), "/supplier").await;
        check(
            level(&b.nut, &b.main, "5", "20", Some("SUPP-99999")),
            "/supplier",
        )
        .await;
        let mut other = level(&b.nut, &b.main, "5", "20", None);
        other["company"] = json!("someone-else");
        check(other, "/company").await;
        // The same item in another warehouse is fine; moving the first onto it is not.
        let store = api
            .create(
                &clerk,
                "reorder_level",
                level(&b.bolt, &b.store, "1", "2", None),
            )
            .await;
        let (status, answer) = api
            .call(
                "PATCH",
                &format!("/api/v1/resources/reorder_level/{store}"),
                &clerk,
                Some(json!({"warehouse": b.main})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"][0]["pointer"], "/warehouse", "{answer}");
        // A stock user reads them but does not write them.
        let user = api.user("acme", "keeper@acme.test", &["Stock User"]).await;
        let (status, _) = api
            .call(
                "GET",
                &format!("/api/v1/resources/reorder_level/{id}"),
                &user,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, answer) = api
            .call(
                "POST",
                "/api/v1/resources/reorder_level",
                &user,
                Some(level(&b.nut, &b.main, "5", "20", None)),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}

async fn item_group(api: &Api, clerk: &str) -> String {
    let (_, answer) = api
        .call("GET", "/api/v1/resources/item_group", clerk, None)
        .await;
    answer["data"][0]["id"].as_str().unwrap().to_owned()
}

async fn uom(api: &Api, clerk: &str) -> String {
    let (_, answer) = api.call("GET", "/api/v1/resources/uom", clerk, None).await;
    answer["data"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn items_below_their_reorder_level_are_reported_with_what_is_on_order() {
    for db in databases("stock_below_reorder").await {
        let api = boot_buying(&db).await;
        let clerk = api.clerk().await;
        let seller = api.user("acme", "seller@acme.test", &["Sales User"]).await;
        let b = books(&api, &clerk).await;
        let acme = supplier(&api, &clerk, &b, "Acme Supplies", json!({})).await;
        receive(
            &api,
            &clerk,
            &b,
            "2026-03-01",
            (&b.bolt, &b.main),
            "10",
            "1.00",
        )
        .await;
        receive(
            &api,
            &clerk,
            &b,
            "2026-03-01",
            (&b.nut, &b.main),
            "2",
            "1.00",
        )
        .await;
        // At the level, above it, nothing held, and below it.
        for body in [
            level(&b.bolt, &b.main, "10", "20", Some(&acme)),
            level(&b.nut, &b.main, "1.5", "10", Some(&acme)),
            level(&b.glue, &b.store, "0", "3", None),
            level(&b.bolt, &b.store, "5", "7.5", Some(&acme)),
        ] {
            api.create(&clerk, "reorder_level", body).await;
        }
        // A draft order of 7 bolts, 2 of them invoiced... none yet: 7 on order.
        api.create(&clerk, "purchase_order", json!({"supplier": acme, "company": b.company, "posting_date": "2026-03-02", "currency": "USD", "lines": [
            {"item": b.bolt, "qty": "7", "unit_price": usd("1.00")},
        ]})).await;
        let columns = [
            "qty",
            "level",
            "reorder_qty",
            "on_order_qty",
            "supplier_name",
        ];
        let check = async |query: &str, expected: &[&[&str]]| {
            let (status, report) = api
                .call(
                    "GET",
                    &format!("/api/v1/stock/reports/below-reorder{query}"),
                    &clerk,
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{query}: {report}");
            assert_eq!(
                rows(&report, &columns),
                strings(expected),
                "{query}: {report}"
            );
        };
        let all: &[&[&str]] = &[
            &[
                "BOLT",
                "Main",
                "10.000",
                "10.000",
                "20.000",
                "7.000",
                "Acme Supplies",
            ],
            &[
                "BOLT",
                "Store B",
                "0.000",
                "5.000",
                "7.500",
                "7.000",
                "Acme Supplies",
            ],
            &["GLUE", "Store B", "0.000", "0.000", "3.000", "0.000", ""],
        ];
        check("", all).await;
        check(&format!("?company={}", b.company), all).await;
        check("?company=ACME", all).await;
        check(&format!("?warehouse={}", b.store), &all[1..]).await;
        // An issue of one nut takes it to its level.
        let (status, answer, _) = api
            .submit(
                &clerk,
                entry(
                    &b,
                    "Issue",
                    "2026-03-05",
                    json!([{"item": b.nut, "qty": "0.5", "s_warehouse": b.main}]),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        check(
            &format!("?warehouse={}", b.main),
            &[
                &[
                    "BOLT",
                    "Main",
                    "10.000",
                    "10.000",
                    "20.000",
                    "7.000",
                    "Acme Supplies",
                ],
                &[
                    "NUT",
                    "Main",
                    "1.500",
                    "1.500",
                    "10.000",
                    "0.000",
                    "Acme Supplies",
                ],
            ],
        )
        .await;

        let (status, csv) = api
            .raw(
                "GET",
                &format!(
                    "/api/v1/stock/reports/below-reorder?warehouse={}&format=csv",
                    b.store
                ),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let csv = String::from_utf8(csv).unwrap();
        assert!(
            csv.starts_with("reorder_level,item,item_code,item_name,warehouse,warehouse_name,company,qty,level,reorder_qty,on_order_qty,supplier,supplier_name\r\n"),
            "{csv}"
        );
        assert!(
            csv.contains(",GLUE,GLUE,") && csv.contains(",Store B,"),
            "{csv}"
        );
        assert_eq!(csv.lines().count(), 3, "{csv}");

        // A disabled item is not reordered.
        let (status, answer) = api
            .call(
                "PATCH",
                &format!("/api/v1/resources/item/{}", b.glue),
                &clerk,
                Some(json!({"disabled": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        check(&format!("?warehouse={}", b.store), &all[1..2]).await;

        for (path, bearer, expected) in [
            (
                "/api/v1/stock/reports/below-reorder".to_owned(),
                seller.as_str(),
                StatusCode::FORBIDDEN,
            ),
            (
                "/api/v1/stock/reports/below-reorder".to_owned(),
                "",
                StatusCode::UNAUTHORIZED,
            ),
            (
                "/api/v1/stock/reports/below-reorder?company=nope".to_owned(),
                clerk.as_str(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "/api/v1/stock/reports/below-reorder?warehouse=nope".to_owned(),
                clerk.as_str(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "/api/v1/stock/reports/below-reorder?format=xml".to_owned(),
                clerk.as_str(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "/api/v1/stock/reports/below-reorder?limit=1".to_owned(),
                clerk.as_str(),
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let (status, answer) = api.call("GET", &path, bearer, None).await;
            assert_eq!(status, expected, "{path}: {answer}");
        }
        // The routes are in the API's description.
        let (status, openapi) = api.call("GET", "/api/v1/openapi.json", "", None).await;
        assert_eq!(status, StatusCode::OK);
        for path in [
            "/api/v1/stock/reports/below-reorder",
            "/api/v1/stock/reports/stock-ageing",
            "/api/v1/stock/reorder/run",
        ] {
            assert!(openapi["paths"][path].is_object(), "{path}");
        }
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}

#[tokio::test]
async fn stock_is_aged_first_in_first_out() {
    for db in databases("stock_ageing").await {
        let api = boot_buying(&db).await;
        let clerk = api.clerk().await;
        let seller = api.user("acme", "seller@acme.test", &["Sales User"]).await;
        let b = books(&api, &clerk).await;
        receive(
            &api,
            &clerk,
            &b,
            "2026-01-01",
            (&b.bolt, &b.main),
            "10",
            "1.00",
        )
        .await;
        receive(
            &api,
            &clerk,
            &b,
            "2026-02-15",
            (&b.bolt, &b.main),
            "5",
            "2.00",
        )
        .await;
        receive(
            &api,
            &clerk,
            &b,
            "2026-04-01",
            (&b.bolt, &b.main),
            "5",
            "3.00",
        )
        .await;
        receive(
            &api,
            &clerk,
            &b,
            "2026-04-01",
            (&b.nut, &b.store),
            "4",
            "2.50",
        )
        .await;
        let (status, answer, _) = api
            .submit(
                &clerk,
                entry(
                    &b,
                    "Issue",
                    "2026-04-10",
                    json!([{"item": b.bolt, "qty": "12", "s_warehouse": b.main}]),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let columns = [
            "qty",
            "range_0_30",
            "range_31_60",
            "range_61_90",
            "range_over_90",
            "average_age",
            "value",
        ];
        let check = async |query: &str, expected: &[&[&str]]| {
            let path = format!(
                "/api/v1/stock/reports/stock-ageing?company={}{query}",
                b.company
            );
            let (status, report) = api.call("GET", &path, &clerk, None).await;
            assert_eq!(status, StatusCode::OK, "{query}: {report}");
            assert_eq!(
                rows(&report, &columns),
                strings(expected),
                "{query}: {report}"
            );
        };
        // Before the issue, on 5 April: 10 of 94 days, 5 of 49 and 5 of 4.
        check(
            "&as_of=2026-04-05",
            &[
                &[
                    "BOLT", "Main", "20.000", "5.000", "5.000", "0.000", "10.000", "60.3", "35.00",
                ],
                &[
                    "NUT", "Store B", "4.000", "4.000", "0.000", "0.000", "0.000", "4.0", "10.00",
                ],
            ],
        )
        .await;
        // After it, on 20 April: the issue took the 10 of January and 2 of February.
        check(
            "&as_of=2026-04-20",
            &[
                &[
                    "BOLT", "Main", "8.000", "5.000", "0.000", "3.000", "0.000", "35.9", "21.00",
                ],
                &[
                    "NUT", "Store B", "4.000", "4.000", "0.000", "0.000", "0.000", "19.0", "10.00",
                ],
            ],
        )
        .await;
        check(
            &format!("&as_of=2026-04-20&item={}", b.nut),
            &[&[
                "NUT", "Store B", "4.000", "4.000", "0.000", "0.000", "0.000", "19.0", "10.00",
            ]],
        )
        .await;
        check(
            &format!("&as_of=2026-04-20&warehouse={}", b.main),
            &[&[
                "BOLT", "Main", "8.000", "5.000", "0.000", "3.000", "0.000", "35.9", "21.00",
            ]],
        )
        .await;
        check("&as_of=2025-12-31", &[]).await;

        let (status, csv) = api
            .raw(
                "GET",
                &format!(
                    "/api/v1/stock/reports/stock-ageing?company={}&as_of=2026-04-20&format=csv",
                    b.company
                ),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let csv = String::from_utf8(csv).unwrap();
        assert!(
            csv.starts_with("item,item_code,item_name,warehouse,warehouse_name,qty,range_0_30,range_31_60,range_61_90,range_over_90,average_age,value\r\n"),
            "{csv}"
        );
        assert!(
            csv.contains(",Main,8.000,5.000,0.000,3.000,0.000,35.9,21.00\r\n"),
            "{csv}"
        );

        let base = format!("/api/v1/stock/reports/stock-ageing?company={}", b.company);
        for (path, bearer, expected) in [
            (base.clone(), seller.as_str(), StatusCode::FORBIDDEN),
            (base.clone(), "", StatusCode::UNAUTHORIZED),
            (
                format!("{base}&as_of=soon"),
                clerk.as_str(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                format!("{base}&format=pdf"),
                clerk.as_str(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "/api/v1/stock/reports/stock-ageing?company=nope".to_owned(),
                clerk.as_str(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "/api/v1/stock/reports/stock-ageing".to_owned(),
                clerk.as_str(),
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let (status, answer) = api.call("GET", &path, bearer, None).await;
            assert_eq!(status, expected, "{path}: {answer}");
        }
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_reorder_run_drafts_purchase_orders_once() {
    for db in databases("stock_reorder_run").await {
        let api = boot_buying(&db).await;
        let clerk = api.clerk().await;
        let seller = api.user("acme", "seller@acme.test", &["Sales User"]).await;
        let keeper = api.user("acme", "keeper@acme.test", &["Stock User"]).await;
        let b = books(&api, &clerk).await;
        let acme = supplier(&api, &clerk, &b, "Acme Supplies", json!({})).await;
        let glue_co = supplier(&api, &clerk, &b, "Glue Co", json!({})).await;
        receive(
            &api,
            &clerk,
            &b,
            "2026-03-01",
            (&b.nut, &b.main),
            "1",
            "2.50",
        )
        .await;
        receive(
            &api,
            &clerk,
            &b,
            "2026-03-01",
            (&b.bolt, &b.store),
            "50",
            "1.00",
        )
        .await;
        for body in [
            level(&b.bolt, &b.main, "5", "20", Some(&acme)),
            level(&b.nut, &b.main, "5", "10", Some(&acme)),
            level(&b.glue, &b.store, "1", "3", Some(&glue_co)),
            // Below, but without a supplier: reported, not ordered.
            level(&b.glue, &b.main, "1", "3", None),
            // Above its level.
            level(&b.bolt, &b.store, "5", "20", Some(&acme)),
        ] {
            api.create(&clerk, "reorder_level", body).await;
        }
        let run = async |bearer: &str| -> (StatusCode, Value) {
            api.call("POST", "/api/v1/stock/reorder/run", bearer, None)
                .await
        };
        for (bearer, expected) in [
            (seller.as_str(), StatusCode::FORBIDDEN),
            (keeper.as_str(), StatusCode::FORBIDDEN),
            ("", StatusCode::UNAUTHORIZED),
        ] {
            let (status, answer) = run(bearer).await;
            assert_eq!(status, expected, "{answer}");
        }
        let (status, answer) = run(&clerk).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let drafted: Vec<String> = answer["purchase_orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(drafted.len(), 2, "{answer}");
        assert_eq!(answer["skipped"], json!([]), "{answer}");
        let mut orders = Vec::new();
        for id in &drafted {
            let (status, order) = api
                .call(
                    "GET",
                    &format!("/api/v1/resources/purchase_order/{id}"),
                    &clerk,
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{order}");
            assert_eq!(order["docstatus"], 0, "{order}");
            assert_eq!(order["company"], json!(b.company), "{order}");
            let lines: Vec<(String, String, String)> = order["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    (
                        l["item"].as_str().unwrap().to_owned(),
                        l["qty"].as_str().unwrap().to_owned(),
                        l["unit_price"]["amount"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            orders.push((order["supplier"].as_str().unwrap().to_owned(), lines));
        }
        orders.sort();
        let mut expected = vec![
            (acme.clone(), {
                let mut l = vec![
                    (b.bolt.clone(), "20.000".to_owned(), "0.00".to_owned()),
                    (b.nut.clone(), "10.000".to_owned(), "2.50".to_owned()),
                ];
                l.sort();
                l
            }),
            (
                glue_co.clone(),
                vec![(b.glue.clone(), "3.000".to_owned(), "0.00".to_owned())],
            ),
        ];
        expected.sort();
        for order in &mut orders {
            order.1.sort();
        }
        assert_eq!(orders, expected);

        // A second run drafts nothing: every item and warehouse is on an open draft.
        let (status, answer) = run(&clerk).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["purchase_orders"], json!([]), "{answer}");
        // The report shows what is on order.
        let (_, report) = api
            .call(
                "GET",
                &format!("/api/v1/stock/reports/below-reorder?warehouse={}", b.store),
                &clerk,
                None,
            )
            .await;
        assert_eq!(
            rows(&report, &["on_order_qty"]),
            strings(&[&["GLUE", "Store B", "3.000"]]),
            "{report}"
        );

        // Once the Glue Co draft is deleted, the next run drafts it again, and only it.
        let mut glue_id = None;
        for id in &drafted {
            let (_, order) = api
                .call(
                    "GET",
                    &format!("/api/v1/resources/purchase_order/{id}"),
                    &clerk,
                    None,
                )
                .await;
            if order["supplier"] == json!(glue_co) {
                glue_id = Some(id.clone());
            }
        }
        let glue_id = glue_id.unwrap();
        let (status, answer) = api
            .call(
                "DELETE",
                &format!("/api/v1/resources/purchase_order/{glue_id}"),
                &clerk,
                None,
            )
            .await;
        assert!(status.is_success(), "{answer}");
        let (status, answer) = run(&clerk).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(
            answer["purchase_orders"].as_array().unwrap().len(),
            1,
            "{answer}"
        );
        let (status, answer) = run(&clerk).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["purchase_orders"], json!([]), "{answer}");

        // The scheduled job (daily by default) does the same for every tenant: a new
        // level below gets its order, once.
        let services = api.app.resolver("test");
        let schedules = services.services().all::<prefiq_worker::Schedule>();
        let schedule = schedules
            .iter()
            .find(|s| s.key() == "stock::reorder")
            .unwrap();
        assert_eq!(
            (schedule.cron.as_str(), schedule.kind.as_str()),
            ("40 2 * * *", "stock.reorder")
        );
        let job = services
            .services()
            .all::<dyn prefiq_worker::JobHandler>()
            .into_iter()
            .find(|h| h.kind() == "stock.reorder")
            .unwrap();
        api.create(
            &clerk,
            "reorder_level",
            level(&b.nut, &b.store, "1", "4", Some(&glue_co)),
        )
        .await;
        let count = async || {
            let (status, list) = api
                .call("GET", "/api/v1/resources/purchase_order", &clerk, None)
                .await;
            assert_eq!(status, StatusCode::OK, "{list}");
            list["data"].as_array().unwrap().len()
        };
        let before = count().await;
        for _ in 0..2 {
            let input = prefiq_worker::JobInput {
                id: 1,
                kind: "stock.reorder".into(),
                context: prefiq::Context::system("en"),
                payload: json!({}),
                attempt: 1,
                max_attempts: 3,
            };
            job.run(&input).await.unwrap();
        }
        assert_eq!(count().await, before + 1);

        // Another tenant sees none of it and drafts nothing.
        let identity = api
            .app
            .resolver("test")
            .get::<cortex::identity::Identity>()
            .unwrap();
        identity
            .create_tenant("beta", "admin@beta.test", PASSWORD)
            .await
            .unwrap();
        let other = api
            .user(
                "beta",
                "manager@beta.test",
                &["Stock Manager", "Accounts Manager"],
            )
            .await;
        let (status, answer) = run(&other).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["purchase_orders"], json!([]), "{answer}");
        let (status, report) = api
            .call("GET", "/api/v1/stock/reports/below-reorder", &other, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["rows"], json!([]), "{report}");
        let (status, answer) = api
            .call(
                "GET",
                &format!("/api/v1/resources/purchase_order/{}", drafted[0]),
                &other,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}
