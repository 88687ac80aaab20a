//! Line amounts, taxes and document totals, in integer minor units.
//!
//! The rounding rule, which every document of the app follows:
//!
//! 1. A line's amount is its quantity times its unit price, rounded half away from zero
//!    to the currency's minor unit.
//! 2. Taxes are computed line by line. A tax **exclusive** of the price is the line's net
//!    amount times its rate, rounded half away from zero.
//! 3. Taxes **inclusive** of the price are taken out of the line's amount: the net is the
//!    amount divided by one plus their summed rates, rounded half away from zero, and what
//!    that leaves is shared between them in proportion to their rates (largest remainder
//!    first, the earlier tax on a tie). So net plus inclusive taxes is the amount exactly.
//!    Exclusive taxes are then computed on the net.
//! 4. A document's totals are the sums of its lines' figures: its net total, each tax's
//!    total, and the grand total (net plus every tax). They agree with the lines to the
//!    minor unit by construction; no total is rounded on its own.
//!
//! Computing each tax once on the document's total and spreading it over the lines would
//! round once instead of per line, but then a line's tax depends on the other lines, and a
//! credit note for one line would not give back exactly what that line charged.

/// Quantities are decimals with this many thousandths: `1.5` is 1,500.
pub const QTY_SCALE: i64 = 1_000;

/// Tax rates are percentages with four decimals: `19%` is 190,000, `7.5%` is 75,000.
pub const RATE_SCALE: i64 = 10_000;

/// One percent of one, in rate units per whole: a rate `r` is the fraction `r / PER_ONE`.
const PER_ONE: i128 = 100 * RATE_SCALE as i128;

/// The most lines and taxes one document holds.
pub const LINES_MAX: usize = 1_000;
/// The most tax rows one template holds.
pub const TAXES_MAX: usize = 20;

/// One tax of a template, in the order the template lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tax {
    /// The account it posts to.
    pub account: String,
    /// Its rate, in [`RATE_SCALE`] units of a percent (not negative, at most 100%).
    pub rate: i64,
    /// Whether the price already includes it.
    pub included_in_price: bool,
}

/// One document line as entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineInput {
    /// The quantity, in [`QTY_SCALE`] units (negative on a return).
    pub qty: i64,
    /// The unit price in minor units.
    pub unit_price: i64,
}

/// One line's computed figures, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTotals {
    /// Quantity times price, as entered (taxes inclusive of the price included).
    pub amount: i64,
    /// The amount without any tax.
    pub net: i64,
    /// Each tax of the template on this line, in the template's order.
    pub taxes: Vec<i64>,
    /// Net plus every tax.
    pub total: i64,
}

/// A document's computed figures, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentTotals {
    /// Each line's figures, in the document's order.
    pub lines: Vec<LineTotals>,
    /// The sum of the lines' nets.
    pub net_total: i64,
    /// Each tax's sum over the lines, in the template's order.
    pub tax_totals: Vec<i64>,
    /// The sum of every tax.
    pub tax_total: i64,
    /// Net total plus tax total.
    pub grand_total: i64,
}

/// Why a document's figures cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TotalsError {
    /// More lines or taxes than the bounds allow.
    #[error("{0}")]
    TooMany(String),
    /// A rate below zero or above 100%.
    #[error("tax {index}: a rate is between 0 and 100%")]
    Rate {
        /// The tax's position.
        index: usize,
    },
    /// A figure that does not fit in 64 bits.
    #[error("line {index}: the amount is too large")]
    Overflow {
        /// The line's position.
        index: usize,
    },
}

/// `numerator / denominator` rounded half away from zero (`denominator` positive).
pub fn div_round(numerator: i128, denominator: i128) -> i128 {
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    if remainder.abs() * 2 >= denominator {
        quotient + numerator.signum()
    } else {
        quotient
    }
}

/// Computes every line's figures and the document's totals under the module's rule.
pub fn compute(lines: &[LineInput], taxes: &[Tax]) -> Result<DocumentTotals, TotalsError> {
    if lines.len() > LINES_MAX {
        return Err(TotalsError::TooMany(format!(
            "a document holds at most {LINES_MAX} lines"
        )));
    }
    if taxes.len() > TAXES_MAX {
        return Err(TotalsError::TooMany(format!(
            "a tax template holds at most {TAXES_MAX} taxes"
        )));
    }
    if let Some(index) = taxes
        .iter()
        .position(|t| t.rate < 0 || i128::from(t.rate) > PER_ONE)
    {
        return Err(TotalsError::Rate { index });
    }
    let inclusive_rate: i128 = taxes
        .iter()
        .filter(|t| t.included_in_price)
        .map(|t| i128::from(t.rate))
        .sum();
    let mut out = DocumentTotals {
        lines: Vec::with_capacity(lines.len()),
        net_total: 0,
        tax_totals: vec![0; taxes.len()],
        tax_total: 0,
        grand_total: 0,
    };
    for (index, line) in lines.iter().enumerate() {
        let overflow = || TotalsError::Overflow { index };
        let amount = div_round(
            i128::from(line.qty) * i128::from(line.unit_price),
            i128::from(QTY_SCALE),
        );
        let net = if inclusive_rate == 0 {
            amount
        } else {
            div_round(amount * PER_ONE, PER_ONE + inclusive_rate)
        };
        let mut line_taxes = vec![0i128; taxes.len()];
        share_inclusive(amount - net, taxes, inclusive_rate, &mut line_taxes);
        for (tax, slot) in taxes.iter().zip(line_taxes.iter_mut()) {
            if !tax.included_in_price {
                *slot = div_round(net * i128::from(tax.rate), PER_ONE);
            }
        }
        let tax_sum: i128 = line_taxes.iter().sum();
        let fits = |v: i128| i64::try_from(v).map_err(|_| overflow());
        let totals = LineTotals {
            amount: fits(amount)?,
            net: fits(net)?,
            taxes: line_taxes
                .iter()
                .map(|t| fits(*t))
                .collect::<Result<_, _>>()?,
            total: fits(net + tax_sum)?,
        };
        out.net_total = out.net_total.checked_add(totals.net).ok_or_else(overflow)?;
        for (sum, tax) in out.tax_totals.iter_mut().zip(&totals.taxes) {
            *sum = sum.checked_add(*tax).ok_or_else(overflow)?;
        }
        out.lines.push(totals);
    }
    out.tax_total = out
        .tax_totals
        .iter()
        .try_fold(0i64, |a, t| a.checked_add(*t))
        .ok_or(TotalsError::Overflow { index: 0 })?;
    out.grand_total = out
        .net_total
        .checked_add(out.tax_total)
        .ok_or(TotalsError::Overflow { index: 0 })?;
    Ok(out)
}

/// Shares `included` (the line's inclusive taxes together) between the inclusive taxes in
/// proportion to their rates: each gets its floor, then the largest remainders one unit
/// more (the earlier tax on a tie) until the sum is exact.
fn share_inclusive(included: i128, taxes: &[Tax], inclusive_rate: i128, out: &mut [i128]) {
    if inclusive_rate == 0 || included == 0 {
        return;
    }
    let sign = included.signum();
    let magnitude = included.abs();
    let mut remainders: Vec<(i128, usize)> = Vec::new();
    let mut given = 0;
    for (i, tax) in taxes.iter().enumerate() {
        if !tax.included_in_price {
            continue;
        }
        let exact = magnitude * i128::from(tax.rate);
        let floor = exact / inclusive_rate;
        out[i] = floor;
        given += floor;
        remainders.push((exact % inclusive_rate, i));
    }
    // Largest remainder first; on a tie the earlier tax.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders.iter().take((magnitude - given) as usize) {
        out[*i] += 1;
    }
    for v in out.iter_mut() {
        *v *= sign;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tax(percent: &str, included: bool) -> Tax {
        let (whole, fraction) = percent.split_once('.').unwrap_or((percent, ""));
        let fraction = format!("{fraction:0<4}");
        Tax {
            account: format!("tax {percent}"),
            rate: whole.parse::<i64>().unwrap() * RATE_SCALE + fraction.parse::<i64>().unwrap(),
            included_in_price: included,
        }
    }

    fn line(qty: f64, unit_price: i64) -> LineInput {
        LineInput {
            qty: (qty * QTY_SCALE as f64).round() as i64,
            unit_price,
        }
    }

    /// (net total, tax totals, grand total) of `lines` under `taxes`.
    fn check(lines: &[LineInput], taxes: &[Tax], expected: (i64, &[i64], i64)) {
        let totals = compute(lines, taxes).unwrap();
        assert_eq!(
            (totals.net_total, &totals.tax_totals[..], totals.grand_total),
            expected,
            "{lines:?} {taxes:?}"
        );
    }

    #[test]
    fn totals_follow_the_documented_rule() {
        // No tax.
        check(&[line(2.0, 1_050)], &[], (2_100, &[], 2_100));
        // 19% exclusive on 10.00.
        check(
            &[line(1.0, 1_000)],
            &[tax("19", false)],
            (1_000, &[190], 1_190),
        );
        // Per line: 3 × 0.33 at 19% is 3 × 0.06 (0.0627 rounded), not 0.19 on 0.99.
        check(
            &[line(1.0, 33), line(1.0, 33), line(1.0, 33)],
            &[tax("19", false)],
            (99, &[18], 117),
        );
        // A quantity of 1.5 at 0.99 is 1.485, rounded half away from zero to 1.49.
        check(&[line(1.5, 99)], &[], (149, &[], 149));
        // 19% inclusive in 11.90: 10.00 net.
        check(
            &[line(1.0, 1_190)],
            &[tax("19", true)],
            (1_000, &[190], 1_190),
        );
        // Two inclusive taxes share what the net leaves, by rate.
        check(
            &[line(1.0, 1_000)],
            &[tax("5", true), tax("10", true)],
            (870, &[43, 87], 1_000),
        );
        // Inclusive and exclusive together: the exclusive one is on the net.
        check(
            &[line(1.0, 1_190)],
            &[tax("19", true), tax("2.5", false)],
            (1_000, &[190, 25], 1_215),
        );
        // A return line is the negative of the sale.
        check(
            &[line(-1.0, 1_000)],
            &[tax("19", false)],
            (-1_000, &[-190], -1_190),
        );
    }

    #[test]
    fn bad_rates_and_sizes_are_refused() {
        assert_eq!(
            compute(&[], &[tax("101", false)]),
            Err(TotalsError::Rate { index: 0 })
        );
        let negative = Tax {
            rate: -1,
            ..tax("1", false)
        };
        assert_eq!(
            compute(&[], &[tax("1", false), negative]),
            Err(TotalsError::Rate { index: 1 })
        );
        assert!(matches!(
            compute(&vec![line(1.0, 1); LINES_MAX + 1], &[]),
            Err(TotalsError::TooMany(_))
        ));
        assert_eq!(
            compute(
                &[LineInput {
                    qty: i64::MAX,
                    unit_price: i64::MAX
                }],
                &[]
            ),
            Err(TotalsError::Overflow { index: 0 })
        );
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        for (n, d, expected) in [
            (5, 10, 1),
            (-5, 10, -1),
            (4, 10, 0),
            (-4, 10, 0),
            (15, 10, 2),
            (14, 10, 1),
        ] {
            assert_eq!(div_round(n, d), expected, "{n}/{d}");
        }
    }

    fn taxes_strategy() -> impl Strategy<Value = Vec<Tax>> {
        prop::collection::vec((0i64..=300_000, any::<bool>()), 0..4).prop_map(|rows| {
            rows.into_iter()
                .enumerate()
                .map(|(i, (rate, included_in_price))| Tax {
                    account: format!("t{i}"),
                    rate,
                    included_in_price,
                })
                .collect()
        })
    }

    fn lines_strategy() -> impl Strategy<Value = Vec<LineInput>> {
        prop::collection::vec(
            (-5_000_000i64..5_000_000, 0i64..10_000_000)
                .prop_map(|(qty, unit_price)| LineInput { qty, unit_price }),
            0..20,
        )
    }

    proptest! {
        #[test]
        fn totals_agree_with_their_lines_to_the_minor_unit(lines in lines_strategy(), taxes in taxes_strategy()) {
            let totals = compute(&lines, &taxes).unwrap();
            prop_assert_eq!(totals.net_total, totals.lines.iter().map(|l| l.net).sum::<i64>());
            for (i, sum) in totals.tax_totals.iter().enumerate() {
                prop_assert_eq!(*sum, totals.lines.iter().map(|l| l.taxes[i]).sum::<i64>());
            }
            prop_assert_eq!(totals.grand_total, totals.lines.iter().map(|l| l.total).sum::<i64>());
            prop_assert_eq!(totals.grand_total, totals.net_total + totals.tax_total);
            for line in &totals.lines {
                // What is included in the price comes out of it exactly.
                let included: i64 = taxes.iter().zip(&line.taxes)
                    .filter(|(t, _)| t.included_in_price).map(|(_, v)| *v).sum();
                prop_assert_eq!(line.net + included, line.amount);
                // Each exclusive tax is within half a minor unit of the exact figure.
                for (tax, value) in taxes.iter().zip(&line.taxes) {
                    if !tax.included_in_price {
                        let exact = line.net as f64 * tax.rate as f64 / PER_ONE as f64;
                        prop_assert!((*value as f64 - exact).abs() <= 0.5 + 1e-6, "{} vs {}", value, exact);
                    }
                }
            }
        }
    }
}
