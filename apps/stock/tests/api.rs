//! The stock app through the API on both backends: receipts, issues and transfers valued
//! FIFO and by moving average to the minor unit, refusals at their pointer with nothing
//! written, cancels that reverse, and the stock value per warehouse equal to the balance
//! of its stock account after every step.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use prefiq_data::testing::databases;
use serde_json::{Value, json};

use common::*;

#[tokio::test]
async fn stock_entries_value_post_refuse_and_reverse() {
    for db in databases("stock_entries").await {
        let api = boot(&db).await;
        let clerk = api.clerk().await;
        let b = books(&api, &clerk).await;

        // A warehouse's stock account is a Stock leaf of its company.
        let (status, answer) = api
            .call("POST", "/api/v1/resources/warehouse", &clerk, Some(json!({"warehouse_name": "Bad", "company": b.company, "stock_account": b.rent, "parent_warehouse": b.group})))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"][0]["pointer"], "/stock_account", "{answer}");

        // Bad input is refused at its pointer when saved.
        let main = &b.main;
        for (body, pointer) in [
            (
                entry(
                    &b,
                    "Transfer",
                    "2026-03-01",
                    json!([{"item": b.bolt, "qty": "1", "s_warehouse": main, "t_warehouse": main}]),
                ),
                "/lines/0/t_warehouse",
            ),
            (
                entry(
                    &b,
                    "Receipt",
                    "2026-03-01",
                    json!([{"item": b.bolt, "qty": "1", "t_warehouse": main}]),
                ),
                "/lines/0/basic_rate",
            ),
            (
                entry(
                    &b,
                    "Receipt",
                    "2026-03-01",
                    json!([{"item": b.bolt, "qty": "0", "t_warehouse": main, "basic_rate": usd("1.00")}]),
                ),
                "/lines/0/qty",
            ),
            (
                entry(
                    &b,
                    "Receipt",
                    "2026-03-01",
                    json!([{"item": b.bolt, "qty": "1", "s_warehouse": main, "basic_rate": usd("1.00")}]),
                ),
                "/lines/0/s_warehouse",
            ),
            (
                entry(
                    &b,
                    "Issue",
                    "2026-03-01",
                    json!([{"item": b.bolt, "qty": "1", "t_warehouse": main}]),
                ),
                "/lines/0/s_warehouse",
            ),
            (
                entry(
                    &b,
                    "Issue",
                    "2026-03-01",
                    json!([{"item": b.bolt, "qty": "1", "s_warehouse": b.group}]),
                ),
                "/lines/0/s_warehouse",
            ),
            (
                json!({"purpose": "Issue", "company": b.company, "posting_date": "2026-03-01", "lines": [{"item": b.bolt, "qty": "1", "s_warehouse": main}]}),
                "/expense_account",
            ),
        ] {
            let (status, answer) = api
                .call("POST", "/api/v1/resources/stock_entry", &clerk, Some(body))
                .await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{pointer}: {answer}"
            );
            assert_eq!(answer["errors"][0]["pointer"], pointer, "{answer}");
        }

        // Each step submits, then the stock balance is exactly what the method says and
        // the books agree with it.
        let line = |item: &str, qty: &str, s: Option<&str>, t: Option<&str>, rate: Option<&str>| {
            let mut l = json!({"item": item, "qty": qty});
            if let Some(s) = s {
                l["s_warehouse"] = json!(s);
            }
            if let Some(t) = t {
                l["t_warehouse"] = json!(t);
            }
            if let Some(r) = rate {
                l["basic_rate"] = usd(r);
            }
            l
        };
        let (m, s) = (Some(b.main.as_str()), Some(b.store.as_str()));
        let steps: Vec<(&str, &str, Value, Vec<_>)> = vec![
            (
                "Receipt",
                "2026-03-01",
                json!([
                    line(&b.bolt, "10", None, m, Some("1.00")),
                    line(&b.nut, "10", None, m, Some("1.00"))
                ]),
                vec![
                    row("BOLT", "Main", "10.000", "10.00"),
                    row("NUT", "Main", "10.000", "10.00"),
                ],
            ),
            (
                "Receipt",
                "2026-03-02",
                json!([
                    line(&b.bolt, "10", None, m, Some("2.00")),
                    line(&b.nut, "10", None, m, Some("2.00"))
                ]),
                vec![
                    row("BOLT", "Main", "20.000", "30.00"),
                    row("NUT", "Main", "20.000", "30.00"),
                ],
            ),
            // FIFO: 10 at 1.00 and 5 at 2.00; moving average: 15 at 1.50.
            (
                "Issue",
                "2026-03-03",
                json!([
                    line(&b.bolt, "15", m, None, None),
                    line(&b.nut, "15", m, None, None)
                ]),
                vec![
                    row("BOLT", "Main", "5.000", "10.00"),
                    row("NUT", "Main", "5.000", "7.50"),
                ],
            ),
            // A third of a unit at 1.00 is worth 0.33.
            (
                "Receipt",
                "2026-03-03",
                json!([line(&b.nut, "0.333", None, m, Some("1.00"))]),
                vec![
                    row("BOLT", "Main", "5.000", "10.00"),
                    row("NUT", "Main", "5.333", "7.83"),
                ],
            ),
            (
                "Transfer",
                "2026-03-04",
                json!([line(&b.bolt, "3", m, s, None)]),
                vec![
                    row("BOLT", "Main", "2.000", "4.00"),
                    row("BOLT", "Store B", "3.000", "6.00"),
                    row("NUT", "Main", "5.333", "7.83"),
                ],
            ),
            // Allowed negative stock: the shortfall at the rate before (none yet: zero).
            (
                "Issue",
                "2026-03-05",
                json!([line(&b.glue, "2", m, None, None)]),
                vec![
                    row("BOLT", "Main", "2.000", "4.00"),
                    row("BOLT", "Store B", "3.000", "6.00"),
                    row("GLUE", "Main", "-2.000", "0.00"),
                    row("NUT", "Main", "5.333", "7.83"),
                ],
            ),
            (
                "Receipt",
                "2026-03-06",
                json!([line(&b.glue, "5", None, m, Some("3.00"))]),
                vec![
                    row("BOLT", "Main", "2.000", "4.00"),
                    row("BOLT", "Store B", "3.000", "6.00"),
                    row("GLUE", "Main", "3.000", "15.00"),
                    row("NUT", "Main", "5.333", "7.83"),
                ],
            ),
        ];
        let mut ids = Vec::new();
        for (i, (purpose, date, lines, expected)) in steps.into_iter().enumerate() {
            let (status, answer, id) = api.submit(&clerk, entry(&b, purpose, date, lines)).await;
            assert_eq!(status, StatusCode::OK, "step {i}: {answer}");
            ids.push(id);
            let expected: BTreeMap<_, _> = expected.into_iter().collect();
            assert_eq!(
                api.stock(&clerk, &b.company, "2026-12-31").await,
                expected,
                "step {i}"
            );
            check_books(&api, &clerk, &b).await;
        }
        let (_, first) = api
            .call(
                "GET",
                &format!("/api/v1/resources/stock_entry/{}", ids[0]),
                &clerk,
                None,
            )
            .await;
        assert_eq!(first["name"], "STE-2026-00001", "{first}");
        let (_, je) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/resources/journal_entry/{}",
                    first["journal_entry"].as_str().unwrap()
                ),
                &clerk,
                None,
            )
            .await;
        assert_eq!(je["entry_type"], "Stock Entry", "{je}");
        // At a date, only what was posted by then.
        assert_eq!(
            api.stock(&clerk, &b.company, "2026-03-02").await,
            [
                row("BOLT", "Main", "20.000", "30.00"),
                row("NUT", "Main", "20.000", "30.00")
            ]
            .into_iter()
            .collect()
        );

        // Refused on submit, at its pointer, with nothing written.
        let before = (
            api.stock(&clerk, &b.company, "2026-12-31").await,
            api.balances(&clerk, &b.company).await,
        );
        for (body, pointer, code) in [
            (
                entry(
                    &b,
                    "Issue",
                    "2026-03-10",
                    json!([
                        line(&b.nut, "1", m, None, None),
                        line(&b.bolt, "2.001", m, None, None)
                    ]),
                ),
                "/lines/1/qty",
                "negative_stock",
            ),
            (
                entry(
                    &b,
                    "Transfer",
                    "2026-03-10",
                    json!([line(&b.bolt, "4", s, m, None)]),
                ),
                "/lines/0/qty",
                "negative_stock",
            ),
        ] {
            let (status, answer, id) = api.submit(&clerk, body).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{pointer}: {answer}"
            );
            assert_eq!(answer["errors"][0]["pointer"], pointer, "{answer}");
            assert_eq!(answer["errors"][0]["code"], code, "{answer}");
            let (_, draft) = api
                .call(
                    "GET",
                    &format!("/api/v1/resources/stock_entry/{id}"),
                    &clerk,
                    None,
                )
                .await;
            assert_eq!(draft["docstatus"], 0, "{draft}");
        }
        assert_eq!(
            (
                api.stock(&clerk, &b.company, "2026-12-31").await,
                api.balances(&clerk, &b.company).await
            ),
            before
        );

        // Cancel reverses, and reposts what came after: without the FIFO issue of
        // 03-03, the transfer of 03-04 takes 3 of the first layer at 1.00.
        let cancel = |id: String| {
            let api = &api;
            let clerk = clerk.clone();
            async move {
                api.call(
                    "POST",
                    &format!("/api/v1/resources/stock_entry/{id}/cancel"),
                    &clerk,
                    None,
                )
                .await
            }
        };
        let (status, answer) = cancel(ids[2].clone()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        check_books(&api, &clerk, &b).await;
        let stock = api.stock(&clerk, &b.company, "2026-12-31").await;
        for (item, warehouse, figures) in [
            ("BOLT", "Main", ("17.000", "27.00")),
            ("BOLT", "Store B", ("3.000", "3.00")),
            ("NUT", "Main", ("20.333", "30.33")),
        ] {
            assert_eq!(
                stock.get(&(item.into(), warehouse.into())),
                Some(&(figures.0.into(), figures.1.into())),
                "{item} {warehouse}: {stock:?}"
            );
        }
        for id in [4, 3] {
            let (status, answer) = cancel(ids[id].clone()).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            check_books(&api, &clerk, &b).await;
        }
        let stock = api.stock(&clerk, &b.company, "2026-12-31").await;
        assert!(
            !stock.contains_key(&("BOLT".into(), "Store B".into())),
            "{stock:?}"
        );
        let stock = api.stock(&clerk, &b.company, "2026-12-31").await;
        assert_eq!(
            stock.get(&("BOLT".into(), "Main".into())),
            Some(&("20.000".into(), "30.00".into()))
        );
        assert_eq!(
            stock.get(&("NUT".into(), "Main".into())),
            Some(&("20.000".into(), "30.00".into()))
        );
        // After the cancels, an issue is valued as if they never were.
        let (status, answer, _) = api
            .submit(
                &clerk,
                entry(
                    &b,
                    "Issue",
                    "2026-03-11",
                    json!([line(&b.bolt, "12", m, None, None)]),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let stock = api.stock(&clerk, &b.company, "2026-12-31").await;
        assert_eq!(
            stock.get(&("BOLT".into(), "Main".into())),
            Some(&("8.000".into(), "16.00".into()))
        );
        check_books(&api, &clerk, &b).await;

        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_stock_balance_is_served_as_json_and_csv_to_whom_it_is_granted() {
    for db in databases("stock_reports").await {
        let api = boot(&db).await;
        let clerk = api.clerk().await;
        let seller = api.user("acme", "seller@acme.test", &["Sales User"]).await;
        let b = books(&api, &clerk).await;
        let (status, answer, _) = api
            .submit(&clerk, entry(&b, "Receipt", "2026-04-01", json!([{"item": b.bolt, "qty": "2.5", "t_warehouse": b.main, "basic_rate": usd("4.10")}])))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let path = format!(
            "/api/v1/stock/reports/stock-balance?company={}&as_of=2026-04-30",
            b.company
        );
        let (status, csv) = api
            .raw("GET", &format!("{path}&format=csv"), &clerk, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let csv = String::from_utf8(csv).unwrap();
        assert!(
            csv.starts_with("item,item_code,item_name,warehouse,warehouse_name,qty,value\r\n"),
            "{csv}"
        );
        assert!(
            csv.contains(",BOLT,BOLT,") && csv.contains(",Main,2.500,10.25\r\n"),
            "{csv}"
        );
        for (path, bearer, expected) in [
            (path.clone(), seller.as_str(), StatusCode::FORBIDDEN),
            (path.clone(), "", StatusCode::UNAUTHORIZED),
            (
                format!("{path}&format=xml"),
                clerk.as_str(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                format!(
                    "/api/v1/stock/reports/stock-balance?company={}&as_of=soon",
                    b.company
                ),
                clerk.as_str(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "/api/v1/stock/reports/stock-balance?company=nope".to_owned(),
                clerk.as_str(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                format!(
                    "/api/v1/stock/reports/stock-ledger?company={}&from=2026-05-01&to=2026-04-01",
                    b.company
                ),
                clerk.as_str(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                format!("/api/v1/stock/reports/stock-ledger?company={}", b.company),
                seller.as_str(),
                StatusCode::FORBIDDEN,
            ),
            (
                format!("{path}&limit=3"),
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
async fn a_backdated_entry_reposts_later_entries_and_their_postings() {
    for db in databases("stock_backdated").await {
        let api = boot(&db).await;
        let clerk = api.clerk().await;
        let b = books(&api, &clerk).await;
        let bolt = |qty: &str, s: Option<&str>, t: Option<&str>, rate: Option<&str>| {
            let mut l = json!({"item": b.bolt, "qty": qty});
            if let Some(s) = s {
                l["s_warehouse"] = json!(s);
            }
            if let Some(t) = t {
                l["t_warehouse"] = json!(t);
            }
            if let Some(r) = rate {
                l["basic_rate"] = usd(r);
            }
            json!([l])
        };
        let (m, s) = (Some(b.main.as_str()), Some(b.store.as_str()));
        let dates = [
            "2026-02-28",
            "2026-03-01",
            "2026-03-02",
            "2026-03-05",
            "2026-03-06",
            "2026-12-31",
        ];
        let check_all = || async {
            for date in dates {
                check_books_at(&api, &clerk, &b, date).await;
            }
        };
        let mut ids = Vec::new();
        for (purpose, date, lines) in [
            ("Receipt", "2026-03-01", bolt("10", None, m, Some("1.00"))),
            ("Issue", "2026-03-05", bolt("5", m, None, None)),
            ("Transfer", "2026-03-06", bolt("2", m, s, None)),
        ] {
            let (status, answer, id) = api.submit(&clerk, entry(&b, purpose, date, lines)).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            ids.push(id);
        }
        let expect = |main: (&str, &str), store: Option<(&str, &str)>| {
            let mut rows = vec![row("BOLT", "Main", main.0, main.1)];
            if let Some(store) = store {
                rows.push(row("BOLT", "Store B", store.0, store.1));
            }
            rows.into_iter().collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            api.stock(&clerk, &b.company, "2026-12-31").await,
            expect(("3.000", "3.00"), Some(("2.000", "2.00")))
        );
        check_all().await;

        // A receipt before all of them at 4.00: FIFO now issues from it first, so the
        // issue costs 20.00 and the transfer 8.00, and the books follow at every date.
        let (status, answer, backdated) = api
            .submit(
                &clerk,
                entry(
                    &b,
                    "Receipt",
                    "2026-02-28",
                    bolt("10", None, m, Some("4.00")),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(
            api.stock(&clerk, &b.company, "2026-12-31").await,
            expect(("13.000", "22.00"), Some(("2.000", "8.00")))
        );
        assert_eq!(
            api.stock(&clerk, &b.company, "2026-03-05").await,
            expect(("15.000", "30.00"), None)
        );
        check_all().await;
        let (_, issue) = api
            .call(
                "GET",
                &format!("/api/v1/resources/stock_entry/{}", ids[1]),
                &clerk,
                None,
            )
            .await;
        let (_, je) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/resources/journal_entry/{}",
                    issue["journal_entry"].as_str().unwrap()
                ),
                &clerk,
                None,
            )
            .await;
        assert_eq!(
            je["name"],
            format!("{}-R1", issue["name"].as_str().unwrap()),
            "{je}"
        );

        // The ledger keeps what was written and appends the corrections.
        let (status, ledger) = api
            .call(
                "GET",
                &format!(
                    "/api/v1/stock/reports/stock-ledger?company={}&item={}&warehouse={}",
                    b.company, b.bolt, b.main
                ),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{ledger}");
        let rows: Vec<(String, String, String, String)> = ledger["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap().to_owned();
                (
                    s("posting_date"),
                    s("kind"),
                    s("qty_change"),
                    s("stock_value_change"),
                )
            })
            .collect();
        let expected: Vec<(String, String, String, String)> = [
            ("2026-02-28", "movement", "10.000", "40.00"),
            ("2026-03-01", "movement", "10.000", "10.00"),
            ("2026-03-05", "movement", "-5.000", "-5.00"),
            ("2026-03-05", "repost", "0.000", "-15.00"),
            ("2026-03-06", "movement", "-2.000", "-2.00"),
            ("2026-03-06", "repost", "0.000", "-6.00"),
        ]
        .iter()
        .map(|(a, b, c, d)| ((*a).into(), (*b).into(), (*c).into(), (*d).into()))
        .collect();
        assert_eq!(rows, expected, "{ledger}");
        let (status, csv) = api
            .raw(
                "GET",
                &format!(
                    "/api/v1/stock/reports/stock-ledger?company={}&from=2026-03-06&to=2026-03-06&format=csv",
                    b.company
                ),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let csv = String::from_utf8(csv).unwrap();
        assert!(
            csv.starts_with("seq,posting_date,kind,voucher_type,"),
            "{csv}"
        );
        // The transfer out of Main, into Store B, and the repost of each.
        assert_eq!(csv.lines().count(), 5, "{csv}");

        // A backdated issue that would leave a later one short is refused, nothing written.
        let before = api.stock(&clerk, &b.company, "2026-12-31").await;
        let (status, answer, _) = api
            .submit(
                &clerk,
                entry(&b, "Issue", "2026-03-02", bolt("16", m, None, None)),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"][0]["pointer"], "/posting_date", "{answer}");
        assert_eq!(answer["errors"][0]["code"], "negative_later", "{answer}");
        assert_eq!(api.stock(&clerk, &b.company, "2026-12-31").await, before);
        check_all().await;

        // Cancelling the backdated receipt reposts them back.
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/stock_entry/{backdated}/cancel"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(
            api.stock(&clerk, &b.company, "2026-12-31").await,
            expect(("3.000", "3.00"), Some(("2.000", "2.00")))
        );
        check_all().await;

        // Cancelling the first receipt would leave the later issue short.
        let (status, answer) = api
            .call(
                "POST",
                &format!("/api/v1/resources/stock_entry/{}/cancel", ids[0]),
                &clerk,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"][0]["code"], "negative_later", "{answer}");
        check_all().await;

        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}
