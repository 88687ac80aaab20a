//! Random sequences of receipts, issues, transfers and cancels through the API on both
//! backends, posted on random dates so that many are backdated. A model replays the
//! live entries in posting order through the valuation engine; after every step:
//!
//! - the API accepted the step exactly when the model finds no bin short at any date
//!   (neither item allows negative stock), and a refusal wrote nothing;
//! - the stock balance per item and warehouse, at several dates, is the model's;
//! - the stock value per warehouse equals the balance of its stock account at those
//!   dates.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use prefiq_data::entity::value::format_scaled;
use prefiq_data::testing::databases;
use serde_json::json;
use stock::valuation::{Bin, Method, Movement};

use common::*;

const WAREHOUSES: [&str; 2] = ["Main", "Store B"];
const DATES: [u32; 3] = [5, 12, 31];

/// A deterministic random sequence (xorshift).
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Debug, Clone)]
struct Op {
    id: String,
    day: u32,
    item: usize,
    qty: i64,
    rate: i64,
    from: Option<usize>,
    to: Option<usize>,
    cancelled: bool,
}

fn date(day: u32) -> String {
    if day > 20 {
        "2026-12-31".to_owned()
    } else {
        format!("2026-03-{day:02}")
    }
}

/// The live entries replayed in posting order up to `day`: (item, warehouse) →
/// (qty, value); `None` when a bin would be short.
fn replay(
    ops: &[Op],
    day: u32,
    codes: &[String],
) -> Option<BTreeMap<(String, String), (String, String)>> {
    let mut bins: HashMap<(usize, usize), Bin> = HashMap::new();
    // Posting order: by day, then in the order submitted (a stable sort).
    let mut live: Vec<&Op> = ops
        .iter()
        .filter(|o| !o.cancelled && o.day <= day)
        .collect();
    live.sort_by_key(|o| o.day);
    for op in live {
        let method = if op.item == 0 {
            Method::Fifo
        } else {
            Method::MovingAverage
        };
        let bin = |bins: &HashMap<(usize, usize), Bin>, w: usize| {
            bins.get(&(op.item, w))
                .cloned()
                .unwrap_or_else(|| Bin::new(method, false))
        };
        let mut cost = None;
        if let Some(from) = op.from {
            let mut b = bin(&bins, from);
            cost = Some(-b.apply(Movement::Issue { qty: op.qty }).ok()?.value_change);
            bins.insert((op.item, from), b);
        }
        if let Some(to) = op.to {
            let mut b = bin(&bins, to);
            let movement = match cost {
                Some(value) => Movement::Receipt { qty: op.qty, value },
                None => Movement::receipt_at_rate(op.qty, op.rate).unwrap(),
            };
            b.apply(movement).ok()?;
            bins.insert((op.item, to), b);
        }
    }
    Some(
        bins.into_iter()
            .filter(|(_, b)| b.qty() != 0 || b.value() != 0)
            .map(|((i, w), b)| {
                (
                    (codes[i].clone(), WAREHOUSES[w].to_owned()),
                    (format_scaled(b.qty(), 3), format_scaled(b.value(), 2)),
                )
            })
            .collect(),
    )
}

#[tokio::test]
async fn random_backdated_sequences_keep_stock_and_books_equal_to_the_model() {
    for db in databases("stock_properties").await {
        let api = boot(&db).await;
        let clerk = api.clerk().await;
        let b = books(&api, &clerk).await;
        let (mut accepted_steps, mut refused_steps) = (0, 0);
        // Each seed runs on its own items, so the sequences do not meet.
        for (n, seed) in [
            0x9e37_79b9_7f4a_7c15_u64,
            0x2545_f491_4f6c_dd1d,
            0xdead_beef_cafe_f00d,
        ]
        .into_iter()
        .enumerate()
        {
            let codes = [format!("BOLT-{n}"), format!("NUT-{n}")];
            let uom = api
                .create(&clerk, "uom", json!({"uom_name": format!("Unit {n}")}))
                .await;
            let group = api
                .create(
                    &clerk,
                    "item_group",
                    json!({"item_group_name": format!("Group {n}")}),
                )
                .await;
            let mut items = Vec::new();
            for (code, method) in codes.iter().zip(["FIFO", "Moving Average"]) {
                items.push(api.create(&clerk, "item", json!({"item_code": code, "item_name": code, "item_group": group, "stock_uom": uom, "company": b.company, "valuation_method": method})).await);
            }
            let warehouses = [b.main.clone(), b.store.clone()];
            let mut random = Random(seed);
            let mut ops: Vec<Op> = Vec::new();
            for step in 0..36 {
                let live: Vec<usize> = (0..ops.len()).filter(|&i| !ops[i].cancelled).collect();
                let kind = random.below(10);
                if kind == 9 && !live.is_empty() {
                    let at = live[usize::try_from(random.below(live.len() as u64)).unwrap()];
                    let mut next = ops.clone();
                    next[at].cancelled = true;
                    let expected = replay(&next, 31, &codes).is_some();
                    let (status, answer) = api
                        .call(
                            "POST",
                            &format!("/api/v1/resources/stock_entry/{}/cancel", ops[at].id),
                            &clerk,
                            None,
                        )
                        .await;
                    let accepted = status == StatusCode::OK;
                    assert_eq!(accepted, expected, "step {step} cancel: {answer}");
                    if accepted {
                        ops = next;
                        accepted_steps += 1;
                    } else {
                        refused_steps += 1;
                    }
                } else {
                    let purpose = match kind {
                        0..=3 => "Receipt",
                        4..=6 => "Issue",
                        _ => "Transfer",
                    };
                    let source = usize::try_from(random.below(2)).unwrap();
                    let (from, to) = match purpose {
                        "Receipt" => (None, Some(source)),
                        "Issue" => (Some(source), None),
                        _ => (Some(source), Some(1 - source)),
                    };
                    let op = Op {
                        id: String::new(),
                        day: u32::try_from(1 + random.below(20)).unwrap(),
                        item: usize::try_from(random.below(2)).unwrap(),
                        qty: i64::try_from(1 + random.below(6000)).unwrap(),
                        rate: i64::try_from(1 + random.below(999)).unwrap(),
                        from,
                        to,
                        cancelled: false,
                    };
                    let mut line = json!({"item": items[op.item], "qty": format_scaled(op.qty, 3)});
                    if let Some(from) = op.from {
                        line["s_warehouse"] = json!(warehouses[from]);
                    }
                    if let Some(to) = op.to {
                        line["t_warehouse"] = json!(warehouses[to]);
                    }
                    if purpose == "Receipt" {
                        line["basic_rate"] = usd(&format_scaled(op.rate, 2));
                    }
                    let mut next = ops.clone();
                    next.push(op.clone());
                    let expected = replay(&next, 31, &codes).is_some();
                    let (status, answer, id) = api
                        .submit(&clerk, entry(&b, purpose, &date(op.day), json!([line])))
                        .await;
                    let accepted = status == StatusCode::OK;
                    assert_eq!(accepted, expected, "step {step} {op:?}: {answer}");
                    if accepted {
                        next.last_mut().unwrap().id = id;
                        ops = next;
                        accepted_steps += 1;
                    } else {
                        refused_steps += 1;
                    }
                }
                for day in DATES {
                    let mut stock = api.stock(&clerk, &b.company, &date(day)).await;
                    stock.retain(|(item, _), _| codes.contains(item));
                    assert_eq!(
                        stock,
                        replay(&ops, day, &codes).unwrap(),
                        "step {step}, day {day}: {ops:#?}"
                    );
                    check_books_at(&api, &clerk, &b, &date(day)).await;
                }
            }
        }
        assert!(
            accepted_steps > 50 && refused_steps > 5,
            "{accepted_steps} accepted, {refused_steps} refused"
        );
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}
