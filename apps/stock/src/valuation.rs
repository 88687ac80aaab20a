//! The valuation engine: pure arithmetic, no I/O. One [`Bin`] per item and warehouse
//! takes that pair's movements in posting order and answers, for each, the quantity,
//! valuation rate and stock value after it and the value it moved.
//!
//! Units: a quantity is an integer of thousandths of the item's stock unit (decimal
//! scale 3); a value is an integer of the company currency's minor units; a rate is
//! minor units per whole stock unit. Nothing is a float.
//!
//! Rounding: every division rounds half away from zero to an integer ([`div_round`]).
//! A receipt of `q` thousandths at rate `r` is worth `round(q × r / 1000)`. An issue is
//! costed from what is held, never from the rounded rate, so the stock value is at every
//! step exactly the sum of incoming values less outgoing costs, and an issue of all
//! that is held costs all of its value:
//! - FIFO keeps a queue of layers, each a quantity and its value (a receipt's layer is
//!   worth `round(q × r / 1000)`); an issue consumes layers from the front, a whole layer
//!   for its whole value and part of one for `round(value × taken / qty)`, the rest of
//!   the layer keeping the remainder of its value.
//! - Moving average holds one quantity and one value; an issue of `k` out of `q` costs
//!   `round(value × k / q)`, all of it when `k = q`.
//!
//! The valuation rate after a movement is `round(value × 1000 / qty)` while the quantity
//! is positive; otherwise a receipt leaves its own rate and an issue the rate before it.
//!
//! Negative stock, when the item allows it: the part of an issue beyond what is held is
//! costed at the valuation rate before it, and the bin becomes one negative layer. A
//! receipt into a negative bin adds to that layer (quantity and value), so the
//! shortfall is settled at the receipt's value and the difference stays in the stock
//! value; a bin back at zero quantity may then hold a residual value, which the next
//! movement carries. When not allowed, an issue beyond what is held is an error and the
//! bin is unchanged.

use std::collections::VecDeque;

/// Thousandths per stock unit: the scale of quantities.
pub const QTY_SCALE: i64 = 1000;

/// How an item's outgoing stock is costed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// First in, first out: a queue of layers.
    Fifo,
    /// The moving average of what is held.
    MovingAverage,
}

impl Method {
    /// The method as an item names it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Fifo => "FIFO",
            Method::MovingAverage => "Moving Average",
        }
    }

    /// Reads the item's `valuation_method` (`FIFO`, `Moving Average`); FIFO when empty.
    pub fn of(text: Option<&str>) -> Option<Method> {
        match text {
            None | Some("") | Some("FIFO") => Some(Method::Fifo),
            Some("Moving Average") => Some(Method::MovingAverage),
            Some(_) => None,
        }
    }
}

/// One movement of an item in a warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// Stock comes in: `qty` thousandths (more than zero) worth `value` minor units.
    Receipt {
        /// Thousandths received.
        qty: i64,
        /// Their value.
        value: i64,
    },
    /// Stock goes out: `qty` thousandths (more than zero), costed by the bin.
    Issue {
        /// Thousandths issued.
        qty: i64,
    },
}

impl Movement {
    /// A receipt of `qty` thousandths at `rate` minor units per unit, worth
    /// `round(qty × rate / 1000)`; `None` on overflow.
    pub fn receipt_at_rate(qty: i64, rate: i64) -> Option<Movement> {
        let value = div_round(i128::from(qty) * i128::from(rate), i128::from(QTY_SCALE))?;
        Some(Movement::Receipt { qty, value })
    }
}

/// What a movement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The quantity held after it, in thousandths.
    pub qty_after: i64,
    /// The valuation rate after it, minor units per unit.
    pub valuation_rate: i64,
    /// The stock value after it, minor units.
    pub stock_value_after: i64,
    /// The value it moved: a receipt's value (positive) or an issue's cost (negative).
    pub value_change: i64,
}

/// Why a movement was refused; the bin is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValuationError {
    /// The issue takes more than is held and the item does not allow negative stock.
    #[error("only {held} thousandths are held; issuing {wanted} would make the stock negative")]
    NegativeStock {
        /// Thousandths held before the issue.
        held: i64,
        /// Thousandths the issue takes.
        wanted: i64,
    },
    /// A movement's quantity is zero or negative.
    #[error("a movement moves more than zero")]
    NotPositive,
    /// A figure does not fit in 64 bits.
    #[error("the figures overflow")]
    Overflow,
}

/// `n / d` rounded half away from zero; `None` when `d` is zero or the result does not
/// fit in an `i64`.
pub fn div_round(n: i128, d: i128) -> Option<i64> {
    if d == 0 {
        return None;
    }
    let (n, d) = if d < 0 { (-n, -d) } else { (n, d) };
    let q = n / d;
    let r = n % d;
    let q = if 2 * r.abs() >= d { q + n.signum() } else { q };
    i64::try_from(q).ok()
}

/// A FIFO layer: a quantity and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// Thousandths (negative only in a bin that is short).
    pub qty: i64,
    /// Minor units.
    pub value: i64,
}

/// A bin's figures and FIFO queue, without its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinState {
    /// Thousandths held.
    pub qty: i64,
    /// The stock value, minor units.
    pub value: i64,
    /// The valuation rate, minor units per unit.
    pub rate: i64,
    /// The FIFO queue, front first.
    pub layers: Vec<Layer>,
}

impl BinState {
    /// The queue as text: `qty:value` per layer, separated by commas.
    pub fn layers_text(&self) -> String {
        let parts: Vec<String> = self
            .layers
            .iter()
            .map(|l| format!("{}:{}", l.qty, l.value))
            .collect();
        parts.join(",")
    }

    /// Reads a queue written by [`BinState::layers_text`]; `None` when it is not one.
    pub fn parse_layers(text: &str) -> Option<Vec<Layer>> {
        if text.is_empty() {
            return Some(Vec::new());
        }
        text.split(',')
            .map(|part| {
                let (qty, value) = part.split_once(':')?;
                Some(Layer {
                    qty: qty.parse().ok()?,
                    value: value.parse().ok()?,
                })
            })
            .collect()
    }
}

/// The stock of one item in one warehouse.
#[derive(Debug, Clone)]
pub struct Bin {
    method: Method,
    allow_negative: bool,
    qty: i64,
    value: i64,
    rate: i64,
    layers: VecDeque<Layer>,
}

impl Bin {
    /// An empty bin.
    pub fn new(method: Method, allow_negative: bool) -> Bin {
        Bin {
            method,
            allow_negative,
            qty: 0,
            value: 0,
            rate: 0,
            layers: VecDeque::new(),
        }
    }

    /// Lets (or stops) later issues take more than is held.
    pub fn set_allow_negative(&mut self, allow: bool) {
        self.allow_negative = allow;
    }

    /// Thousandths held.
    pub fn qty(&self) -> i64 {
        self.qty
    }

    /// The stock value, minor units.
    pub fn value(&self) -> i64 {
        self.value
    }

    /// The FIFO queue, front first (empty under moving average).
    pub fn layers(&self) -> impl Iterator<Item = &Layer> {
        self.layers.iter()
    }

    /// The bin's state, to be kept and restored later ([`Bin::restore`]).
    pub fn state(&self) -> BinState {
        BinState {
            qty: self.qty,
            value: self.value,
            rate: self.rate,
            layers: self.layers.iter().copied().collect(),
        }
    }

    /// A bin of `method` in a state taken from one ([`Bin::state`]).
    pub fn restore(method: Method, allow_negative: bool, state: BinState) -> Bin {
        Bin {
            method,
            allow_negative,
            qty: state.qty,
            value: state.value,
            rate: state.rate,
            layers: state.layers.into(),
        }
    }

    /// Applies a movement, or refuses it and leaves the bin as it was.
    pub fn apply(&mut self, movement: Movement) -> Result<Outcome, ValuationError> {
        let change = match movement {
            Movement::Receipt { qty, value } => {
                if qty <= 0 {
                    return Err(ValuationError::NotPositive);
                }
                self.receive(qty, value)?;
                value
            }
            Movement::Issue { qty } => {
                if qty <= 0 {
                    return Err(ValuationError::NotPositive);
                }
                if qty > self.qty && !self.allow_negative {
                    return Err(ValuationError::NegativeStock {
                        held: self.qty,
                        wanted: qty,
                    });
                }
                let cost = self.issue(qty)?;
                -cost
            }
        };
        Ok(Outcome {
            qty_after: self.qty,
            valuation_rate: self.rate,
            stock_value_after: self.value,
            value_change: change,
        })
    }

    fn receive(&mut self, qty: i64, value: i64) -> Result<(), ValuationError> {
        let new_qty = self.qty.checked_add(qty).ok_or(ValuationError::Overflow)?;
        let new_value = self
            .value
            .checked_add(value)
            .ok_or(ValuationError::Overflow)?;
        if self.method == Method::Fifo {
            match self.layers.back_mut() {
                // A short bin is one negative layer: the receipt settles it.
                Some(last) if last.qty < 0 => {
                    last.qty += qty;
                    last.value += value;
                    if last.qty == 0 {
                        // Settled: what value is left is the bin's residual.
                        self.layers.clear();
                    }
                }
                Some(_) => self.layers.push_back(Layer { qty, value }),
                // An empty queue: a residual value the bin holds goes into the layer,
                // so the layers always add up to the stock value.
                None => self.layers.push_back(Layer {
                    qty,
                    value: new_value,
                }),
            }
        }
        self.rate = if new_qty > 0 {
            rate_of(new_value, new_qty)?
        } else {
            rate_of(value, qty)?
        };
        self.qty = new_qty;
        self.value = new_value;
        Ok(())
    }

    /// Takes `qty` out and answers its cost; the caller checked negative stock.
    fn issue(&mut self, qty: i64) -> Result<i64, ValuationError> {
        let held = self.qty.max(0);
        let from_held = qty.min(held);
        let short = qty - from_held;
        let held_cost = if self.qty < 0 {
            0
        } else if from_held == held {
            // All that is held goes, with its whole value (a residual included).
            self.layers.clear();
            self.value
        } else {
            match self.method {
                Method::MovingAverage => div_round(
                    i128::from(self.value) * i128::from(from_held),
                    i128::from(held),
                )
                .ok_or(ValuationError::Overflow)?,
                Method::Fifo => self.consume(from_held)?,
            }
        };
        let short_cost = div_round(
            i128::from(short) * i128::from(self.rate),
            i128::from(QTY_SCALE),
        )
        .ok_or(ValuationError::Overflow)?;
        let cost = held_cost
            .checked_add(short_cost)
            .ok_or(ValuationError::Overflow)?;
        let new_qty = self.qty - qty;
        let new_value = self
            .value
            .checked_sub(cost)
            .ok_or(ValuationError::Overflow)?;
        if self.method == Method::Fifo && new_qty < 0 {
            self.layers.clear();
            self.layers.push_back(Layer {
                qty: new_qty,
                value: new_value,
            });
        }
        if new_qty > 0 {
            self.rate = rate_of(new_value, new_qty)?;
        }
        self.qty = new_qty;
        self.value = new_value;
        Ok(cost)
    }

    /// FIFO: consumes `qty` thousandths, less than the layers hold, from the front;
    /// their value.
    fn consume(&mut self, qty: i64) -> Result<i64, ValuationError> {
        let mut left = qty;
        let mut cost: i64 = 0;
        while left > 0 {
            let Some(front) = self.layers.front_mut() else {
                break;
            };
            if front.qty <= left {
                left -= front.qty;
                cost = cost
                    .checked_add(front.value)
                    .ok_or(ValuationError::Overflow)?;
                self.layers.pop_front();
            } else {
                let part = div_round(
                    i128::from(front.value) * i128::from(left),
                    i128::from(front.qty),
                )
                .ok_or(ValuationError::Overflow)?;
                front.qty -= left;
                front.value -= part;
                cost = cost.checked_add(part).ok_or(ValuationError::Overflow)?;
                left = 0;
            }
        }
        Ok(cost)
    }
}

fn rate_of(value: i64, qty: i64) -> Result<i64, ValuationError> {
    div_round(i128::from(value) * i128::from(QTY_SCALE), i128::from(qty))
        .ok_or(ValuationError::Overflow)
}

#[cfg(test)]
#[path = "valuation_tests.rs"]
mod tests;
