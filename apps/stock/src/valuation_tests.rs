#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

fn receipt(qty: i64, rate: i64) -> Movement {
    Movement::receipt_at_rate(qty, rate).unwrap()
}

#[test]
fn rounding_is_half_away_from_zero() {
    for (n, d, q) in [
        (5, 2, 3),
        (-5, 2, -3),
        (4, 3, 1),
        (-4, 3, -1),
        (5, -2, -3),
        (1, 3, 0),
        (7, 7, 1),
    ] {
        assert_eq!(div_round(n, d), Some(q), "{n}/{d}");
    }
    assert_eq!(div_round(1, 0), None);
    assert_eq!(div_round(i128::MAX, 1), None);
}

#[test]
fn fifo_and_moving_average_cost_an_issue_as_documented() {
    // 10 units at 1.00, 10 at 2.00, then 15 out: FIFO costs 10.00 + 5 × 2.00 = 20.00,
    // moving average 15 × 1.50 = 22.50.
    for (method, cost, rate_after) in [
        (Method::Fifo, 2000, 200),
        (Method::MovingAverage, 2250, 150),
    ] {
        let mut bin = Bin::new(method, false);
        bin.apply(receipt(10_000, 100)).unwrap();
        let second = bin.apply(receipt(10_000, 200)).unwrap();
        assert_eq!(second.valuation_rate, 150);
        assert_eq!(second.stock_value_after, 3000);
        let out = bin.apply(Movement::Issue { qty: 15_000 }).unwrap();
        assert_eq!(out.value_change, -cost, "{method:?}");
        assert_eq!(out.qty_after, 5_000);
        assert_eq!(out.stock_value_after, 3000 - cost);
        assert_eq!(out.valuation_rate, rate_after, "{method:?}");
    }
}

#[test]
fn an_issue_of_all_that_is_held_takes_all_of_its_value() {
    // A third of a unit at 1.00 is worth 0.33; three receipts of it are 0.99, and the
    // issue of the unit costs exactly that.
    for method in [Method::Fifo, Method::MovingAverage] {
        let mut bin = Bin::new(method, false);
        for _ in 0..3 {
            bin.apply(receipt(333, 100)).unwrap();
        }
        bin.apply(receipt(1, 100)).unwrap();
        let out = bin.apply(Movement::Issue { qty: 1000 }).unwrap();
        assert_eq!(out.value_change, -99);
        assert_eq!((out.qty_after, out.stock_value_after), (0, 0));
    }
}

#[test]
fn negative_stock_is_refused_unless_allowed() {
    let mut bin = Bin::new(Method::Fifo, false);
    bin.apply(receipt(1000, 500)).unwrap();
    assert_eq!(
        bin.apply(Movement::Issue { qty: 1001 }),
        Err(ValuationError::NegativeStock {
            held: 1000,
            wanted: 1001
        })
    );
    assert_eq!((bin.qty(), bin.value()), (1000, 500));
    assert_eq!(
        bin.apply(Movement::Issue { qty: 0 }),
        Err(ValuationError::NotPositive)
    );

    // Allowed: the shortfall is costed at the rate before, and a receipt settles it.
    let mut bin = Bin::new(Method::Fifo, true);
    bin.apply(receipt(1000, 500)).unwrap();
    let out = bin.apply(Movement::Issue { qty: 3000 }).unwrap();
    assert_eq!(out.value_change, -1500);
    assert_eq!((out.qty_after, out.stock_value_after), (-2000, -1000));
    let back = bin.apply(receipt(2000, 600)).unwrap();
    assert_eq!((back.qty_after, back.stock_value_after), (0, 200));
    let next = bin.apply(receipt(1000, 100)).unwrap();
    assert_eq!((next.qty_after, next.stock_value_after), (1000, 300));
    assert_eq!(bin.layers().map(|l| l.value).sum::<i64>(), 300);
}

#[test]
fn methods_read_from_the_item() {
    assert_eq!(Method::of(None), Some(Method::Fifo));
    assert_eq!(Method::of(Some("FIFO")), Some(Method::Fifo));
    assert_eq!(
        Method::of(Some("Moving Average")),
        Some(Method::MovingAverage)
    );
    assert_eq!(Method::of(Some("LIFO")), None);
}

/// The simple FIFO model: a vector of (qty, value) layers, consumed front first.
#[derive(Default)]
struct FifoModel(Vec<(i64, i64)>);

impl FifoModel {
    fn apply(&mut self, m: Movement) -> Option<i64> {
        match m {
            Movement::Receipt { qty, value } => {
                self.0.push((qty, value));
                Some(value)
            }
            Movement::Issue { qty } => {
                let held: i64 = self.0.iter().map(|l| l.0).sum();
                if qty > held {
                    return None;
                }
                let mut left = qty;
                let mut cost = 0;
                while left > 0 {
                    let (q, v) = self.0[0];
                    if q <= left {
                        cost += v;
                        left -= q;
                        self.0.remove(0);
                    } else {
                        let part = div_round(i128::from(v) * i128::from(left), i128::from(q))?;
                        self.0[0] = (q - left, v - part);
                        cost += part;
                        left = 0;
                    }
                }
                Some(-cost)
            }
        }
    }

    fn qty(&self) -> i64 {
        self.0.iter().map(|l| l.0).sum()
    }

    fn value(&self) -> i64 {
        self.0.iter().map(|l| l.1).sum()
    }
}

/// The simple moving-average model: a quantity and a value.
#[derive(Default)]
struct AverageModel(i64, i64);

impl AverageModel {
    fn apply(&mut self, m: Movement) -> Option<i64> {
        match m {
            Movement::Receipt { qty, value } => {
                self.0 += qty;
                self.1 += value;
                Some(value)
            }
            Movement::Issue { qty } => {
                if qty > self.0 {
                    return None;
                }
                let cost = if qty == self.0 {
                    self.1
                } else {
                    div_round(i128::from(self.1) * i128::from(qty), i128::from(self.0))?
                };
                self.0 -= qty;
                self.1 -= cost;
                Some(-cost)
            }
        }
    }
}

fn movements() -> impl Strategy<Value = Vec<Movement>> {
    prop::collection::vec(
        prop_oneof![
            (1i64..50_000, 0i64..100_000)
                .prop_map(|(qty, rate)| Movement::receipt_at_rate(qty, rate).unwrap()),
            (1i64..60_000).prop_map(|qty| Movement::Issue { qty }),
        ],
        1..80,
    )
}

proptest! {
    #[test]
    fn fifo_equals_its_simple_model(moves in movements()) {
        let mut bin = Bin::new(Method::Fifo, false);
        let mut model = FifoModel::default();
        let (mut incoming, mut outgoing) = (0i64, 0i64);
        for m in moves {
            let expected = model.apply(m);
            let got = bin.apply(m);
            match (expected, got) {
                (None, Err(ValuationError::NegativeStock { .. })) => {}
                (Some(change), Ok(out)) => {
                    prop_assert_eq!(out.value_change, change);
                    if change >= 0 { incoming += change } else { outgoing -= change }
                }
                (e, g) => prop_assert!(false, "model {:?}, engine {:?}", e, g),
            }
            prop_assert_eq!(bin.qty(), model.qty());
            prop_assert_eq!(bin.value(), model.value());
            prop_assert_eq!(bin.value(), incoming - outgoing);
            prop_assert!(bin.qty() >= 0);
        }
    }

    #[test]
    fn moving_average_equals_its_simple_model(moves in movements()) {
        let mut bin = Bin::new(Method::MovingAverage, false);
        let mut model = AverageModel::default();
        let (mut incoming, mut outgoing) = (0i64, 0i64);
        for m in moves {
            let expected = model.apply(m);
            let got = bin.apply(m);
            match (expected, got) {
                (None, Err(ValuationError::NegativeStock { .. })) => {}
                (Some(change), Ok(out)) => {
                    prop_assert_eq!(out.value_change, change);
                    if change >= 0 { incoming += change } else { outgoing -= change }
                    if out.qty_after > 0 {
                        prop_assert_eq!(
                            out.valuation_rate,
                            div_round(i128::from(model.1) * 1000, i128::from(model.0)).unwrap()
                        );
                    }
                }
                (e, g) => prop_assert!(false, "model {:?}, engine {:?}", e, g),
            }
            prop_assert_eq!((bin.qty(), bin.value()), (model.0, model.1));
            prop_assert_eq!(bin.value(), incoming - outgoing);
            prop_assert!(bin.qty() >= 0);
        }
    }

    #[test]
    fn with_negative_stock_allowed_the_value_is_still_what_came_in_less_what_went_out(
        moves in movements(),
        fifo in any::<bool>(),
    ) {
        let method = if fifo { Method::Fifo } else { Method::MovingAverage };
        let mut bin = Bin::new(method, true);
        let (mut qty, mut value) = (0i64, 0i64);
        for m in moves {
            let out = bin.apply(m).unwrap();
            qty += match m {
                Movement::Receipt { qty, .. } => qty,
                Movement::Issue { qty } => -qty,
            };
            value += out.value_change;
            prop_assert_eq!((out.qty_after, out.stock_value_after), (qty, value));
            if fifo {
                prop_assert_eq!(bin.layers().map(|l| l.qty).sum::<i64>(), qty);
                if qty != 0 {
                    prop_assert_eq!(bin.layers().map(|l| l.value).sum::<i64>(), value);
                }
            }
        }
    }
}
