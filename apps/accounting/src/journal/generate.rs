//! A deterministic generator of valid journals for tests and benchmarks.

use std::fmt::{self, Write as _};
use std::io;

use super::*;
use jiff::ToSpan as _;

/// Options of a generated journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generate {
    /// The exact number of postings to write (any number but 1, which no transaction has).
    pub postings: usize,
    /// The seed of the pseudo-random choices: the same options give the same journal.
    pub seed: u64,
    /// The commodities used, e.g. `["USD", "EUR", "JPY"]`; prices are quoted in the first.
    pub commodities: Vec<String>,
    /// Whether about one transaction in three leaves its last amount for the reader to infer.
    pub elide: bool,
    /// The year of the first transaction.
    pub start_year: i32,
}

impl Default for Generate {
    /// A thousand postings in USD, EUR and JPY from 2020, with elided amounts.
    fn default() -> Generate {
        Generate {
            postings: 1000,
            seed: 1,
            commodities: vec!["USD".to_string(), "EUR".to_string(), "JPY".to_string()],
            elide: true,
            start_year: 2020,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateSummary {
    /// How many transactions.
    pub transactions: usize,
    /// How many postings, equal to the requested number.
    pub postings: usize,
}

/// The chart of accounts of generated journals: names of lowercase letters, digits, `:` and
/// `-`, under the five roots, up to four levels deep.
pub(super) const CHART: &[&str] = &[
    "assets:bank:checking",
    "assets:bank:savings",
    "assets:cash:wallet",
    "assets:cash:petty",
    "assets:receivables:customers",
    "assets:investments:brokerage",
    "assets:investments:retirement-401k",
    "assets:prepaid:insurance",
    "liabilities:credit-card:visa",
    "liabilities:credit-card:amex",
    "liabilities:loans:mortgage",
    "liabilities:loans:car",
    "liabilities:payables:suppliers",
    "liabilities:taxes:vat",
    "equity:opening-balances",
    "equity:retained-earnings",
    "equity:owner:drawings",
    "income:salary:base",
    "income:salary:bonus",
    "income:interest:savings",
    "income:dividends",
    "income:sales:products",
    "income:sales:services",
    "income:refunds",
    "expenses:food:groceries",
    "expenses:food:restaurants",
    "expenses:housing:rent",
    "expenses:housing:utilities:electricity",
    "expenses:housing:utilities:water",
    "expenses:housing:utilities:internet",
    "expenses:transport:fuel",
    "expenses:transport:public",
    "expenses:transport:car:maintenance",
    "expenses:health:pharmacy",
    "expenses:health:insurance",
    "expenses:leisure:books",
    "expenses:leisure:travel",
    "expenses:office:supplies",
    "expenses:office:software",
    "expenses:taxes:income",
    "expenses:fees:bank",
];

/// Accounts that pay for spending.
pub(super) const PAYING_ACCOUNTS: &[&str] = &[
    "assets:bank:checking",
    "assets:cash:wallet",
    "assets:cash:petty",
    "liabilities:credit-card:visa",
    "liabilities:credit-card:amex",
];

/// Accounts that receive income.
pub(super) const RECEIVING_ACCOUNTS: &[&str] = &[
    "assets:bank:checking",
    "assets:bank:savings",
    "assets:receivables:customers",
];

/// Accounts that money is moved to from `assets:bank:checking`.
pub(super) const TRANSFER_TARGETS: &[&str] = &[
    "assets:bank:savings",
    "assets:investments:brokerage",
    "assets:investments:retirement-401k",
    "assets:prepaid:insurance",
    "liabilities:loans:mortgage",
    "liabilities:loans:car",
    "liabilities:credit-card:visa",
    "liabilities:credit-card:amex",
    "liabilities:payables:suppliers",
    "liabilities:taxes:vat",
];

pub(super) const SPENDING_PAYEES: &[&str] = &[
    "Corner grocery",
    "City utilities",
    "Fuel station",
    "Bookshop",
    "Pharmacy",
    "Landlord",
    "Internet provider",
    "Office supplies store",
    "Bistro",
    "Train tickets",
    "Software subscription",
    "Bank fees",
    "Tax office",
    "Car garage",
    "Travel agency",
];

pub(super) const INCOME_PAYEES: &[&str] = &[
    "Payroll",
    "Bonus payout",
    "Savings interest",
    "Dividend",
    "Customer invoice",
    "Refund",
];

pub(super) const TRANSFER_PAYEES: &[&str] = &[
    "Transfer to savings",
    "Brokerage deposit",
    "Mortgage payment",
    "Card repayment",
    "Retirement contribution",
    "Supplier payment",
];

/// splitmix64: tiny, fast and good enough for test data; deterministic for a seed.
pub(super) struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (0 when `bound` is 0), by multiply-shift rather than modulo.
    fn below(&mut self, bound: usize) -> usize {
        let wide = (u128::from(self.next_u64()) * bound as u128) >> 64;
        usize::try_from(wide).unwrap_or(0)
    }

    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        choices
            .get(self.below(choices.len()))
            .copied()
            .unwrap_or("")
    }
}

/// Sends what was formatted into `buffer` to `out` and empties the buffer.
pub(super) fn flush(out: &mut impl io::Write, buffer: &mut String) -> io::Result<()> {
    out.write_all(buffer.as_bytes())?;
    buffer.clear();
    Ok(())
}

/// Formatting into a `String` cannot fail; this keeps the `?` chains of the generator typed.
pub(super) fn formatted(result: fmt::Result) -> io::Result<()> {
    result.map_err(|_| io::Error::other("formatting failed"))
}

pub(super) fn invalid_input(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_string())
}

/// Writes a valid journal to `out`: `account` directives for every account first, then a
/// `commodity SYMBOL` directive per commodity, then `P`
/// directives (one rate per non-first commodity per month, expressed in the first commodity,
/// with 6 decimals), then transactions in date order spread over the years starting at
/// `start_year` (about 12 months per 100k postings, at least 1 year), each with 2–4 postings,
/// ending exactly at `postings` postings total.
///
/// Each transaction uses one commodity at its minor-unit scale ([`minor_unit_scale`]). With
/// `elide`, about one transaction in three omits its last amount. Output is streamed one
/// transaction at a time; wrap `out` in a `BufWriter`. Fails with `InvalidInput` for no
/// commodities, exactly one posting, or a period outside the years 1–9999.
pub fn generate(out: &mut impl io::Write, options: &Generate) -> io::Result<GenerateSummary> {
    let commodities = &options.commodities;
    let Some(base) = commodities.first() else {
        return Err(invalid_input(
            "a generated journal needs at least one commodity",
        ));
    };
    if options.postings == 1 {
        return Err(invalid_input("no transaction has exactly one posting"));
    }
    let total = options.postings;
    let months = (total as u128 * 12).div_ceil(100_000).max(12);
    let months = i64::try_from(months).map_err(|_| invalid_input("too many postings"))?;
    let start_year = i64::from(options.start_year);
    let last_year = start_year + (months - 1) / 12;
    if start_year < 1 || last_year > 9999 {
        return Err(invalid_input(
            "generated dates must fall in the years 1 to 9999",
        ));
    }
    // The dates spread over whole months, from the first day of the first to the last day
    // of the last; the years were checked to be 1 to 9999 above, so jiff takes them.
    let first_date = jiff::civil::Date::new(i16::try_from(start_year).unwrap_or(1), 1, 1)
        .map_err(|e| invalid_input(&e.to_string()))?;
    let last_month = first_date
        .checked_add((months - 1).months())
        .map_err(|e| invalid_input(&e.to_string()))?;
    let day_count = first_date
        .until((jiff::Unit::Day, last_month.last_of_month()))
        .map_err(|e| invalid_input(&e.to_string()))?
        .get_days();
    let day_count = (i64::from(day_count) + 1).max(1);

    let mut rng = SplitMix64(options.seed);
    let mut buffer = String::with_capacity(512);

    for account in CHART {
        formatted(write_account(&mut buffer, account))?;
    }
    // Declared by symbol only: ledger 3.3 takes `commodity 1000.00 USD` as a commodity named
    // `1000.00 USD`, and hledger 1.25 refuses a format sample without a decimal mark (JPY).
    // Declaring them lets `hledger check --strict` and `ledger --strict` pass.
    let mut declared: Vec<&str> = Vec::with_capacity(commodities.len());
    for commodity in commodities {
        if !declared.contains(&commodity.as_str()) {
            declared.push(commodity);
            formatted(writeln!(buffer, "commodity {}", commodity_token(commodity)))?;
        }
    }
    buffer.push('\n');
    flush(out, &mut buffer)?;

    // Each rate follows a random walk of at most 2% a month from a plausible start.
    let mut rates: Vec<i128> = commodities
        .iter()
        .map(|c| {
            let start = if minor_unit_scale(c) == 0 {
                5_000
            } else {
                500_000
            };
            start + i128::from(u32::try_from(rng.below(1_000_000)).unwrap_or(0)) * start / 1_000_000
        })
        .collect();
    for month in 0..months {
        let date = first_date
            .checked_add(month.months())
            .map(crate::dates::format)
            .map_err(|e| invalid_input(&e.to_string()))?;
        for (commodity, rate) in commodities.iter().zip(rates.iter_mut()).skip(1) {
            let step = i128::from(u32::try_from(rng.below(401)).unwrap_or(200)) - 200;
            // Clamped so that even a walk of centuries stays a sane, representable rate.
            *rate = (*rate * (10_000 + step) / 10_000).clamp(1, 1_000_000_000_000_000);
            let price = Amount::new(
                base.clone(),
                Quantity {
                    mantissa: *rate,
                    scale: 6,
                },
            );
            formatted(write_price(&mut buffer, &date, commodity, &price))?;
        }
        flush(out, &mut buffer)?;
    }
    buffer.push('\n');

    let expenses: Vec<&str> = CHART
        .iter()
        .copied()
        .filter(|a| a.starts_with("expenses:"))
        .collect();
    let income: Vec<&str> = CHART
        .iter()
        .copied()
        .filter(|a| a.starts_with("income:"))
        .collect();
    let mut written = 0;
    let mut transactions = 0;
    let mut accounts: Vec<&str> = Vec::with_capacity(4);
    while written < total {
        let remaining = total - written;
        let mut count = (2 + rng.below(3)).min(remaining);
        // Never leave a single posting over: it could not form a transaction.
        if remaining - count == 1 {
            count = if count == 4 { 3 } else { count + 1 };
        }
        let offset = (written as u128 * day_count as u128 / total as u128) as i64;
        let date = first_date
            .checked_add(offset.days())
            .map(crate::dates::format)
            .map_err(|e| invalid_input(&e.to_string()))?;

        let commodity = commodities
            .get(rng.below(commodities.len()))
            .unwrap_or(base);
        let scale = minor_unit_scale(commodity);
        let kind = rng.below(20);
        accounts.clear();
        let (payee, settling, sign) = match kind {
            0..=11 => {
                accounts.extend((1..count).map(|_| rng.pick(&expenses)));
                (rng.pick(SPENDING_PAYEES), rng.pick(PAYING_ACCOUNTS), 1)
            }
            12..=16 => {
                accounts.extend((1..count).map(|_| rng.pick(&income)));
                (rng.pick(INCOME_PAYEES), rng.pick(RECEIVING_ACCOUNTS), -1)
            }
            _ => {
                accounts.extend((1..count).map(|_| rng.pick(TRANSFER_TARGETS)));
                (rng.pick(TRANSFER_PAYEES), "assets:bank:checking", 1)
            }
        };
        let status = if rng.below(10) < 8 { Some('*') } else { None };
        let code = if rng.below(10) == 0 {
            Some((10_000 + transactions).to_string())
        } else {
            None
        };
        formatted(write_header(
            &mut buffer,
            &date,
            status,
            code.as_deref(),
            payee,
        ))?;

        // All amounts but the last have the same sign, so the settling amount is never zero.
        let mut sum: i128 = 0;
        for account in &accounts {
            let units = i128::from(u32::try_from(rng.below(499_901)).unwrap_or(0)) + 100;
            let magnitude = match scale {
                0 => units + 9,
                1 => units,
                _ => units * power_of_ten(scale - 2).unwrap_or(1),
            };
            let mantissa = sign * magnitude;
            sum += mantissa;
            let amount = Amount::new(commodity.clone(), Quantity { mantissa, scale });
            formatted(write_posting(&mut buffer, account, Some(&amount)))?;
        }
        let settle = Amount::new(
            commodity.clone(),
            Quantity {
                mantissa: -sum,
                scale,
            },
        );
        let elided = options.elide && rng.below(3) == 0;
        formatted(write_posting(
            &mut buffer,
            settling,
            (!elided).then_some(&settle),
        ))?;
        buffer.push('\n');
        flush(out, &mut buffer)?;

        written += count;
        transactions += 1;
    }
    Ok(GenerateSummary {
        transactions,
        postings: written,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn generated(options: &Generate) -> (String, GenerateSummary) {
        let mut out = Vec::new();
        let summary = generate(&mut out, options).unwrap();
        (String::from_utf8(out).unwrap(), summary)
    }

    /// Reads a generated journal, balancing every transaction, and returns the counts of
    /// transactions, postings (as written), elided postings and prices.
    fn read_generated(text: &str) -> (usize, usize, usize, usize) {
        let (mut transactions, mut postings, mut elided, mut prices) = (0, 0, 0, 0);
        let mut commodities = 0;
        let mut last_date = String::new();
        for item in Reader::new(text.as_bytes()) {
            match item.unwrap() {
                Item::Transaction(tx) => {
                    assert!(
                        tx.date >= last_date,
                        "dates out of order at line {}",
                        tx.line
                    );
                    last_date.clone_from(&tx.date);
                    assert!((2..=4).contains(&tx.postings.len()));
                    let commodities: std::collections::BTreeSet<&str> = tx
                        .postings
                        .iter()
                        .filter_map(|p| p.amount.as_ref().map(|a| a.commodity.as_str()))
                        .collect();
                    assert_eq!(commodities.len(), 1, "one commodity per transaction");
                    let balanced = balance(&tx).unwrap();
                    assert_eq!(balanced.len(), tx.postings.len());
                    for posting in &balanced {
                        assert_eq!(
                            posting.amount.quantity.scale,
                            minor_unit_scale(&posting.amount.commodity)
                        );
                        assert!(!posting.amount.quantity.is_zero());
                    }
                    transactions += 1;
                    postings += tx.postings.len();
                    elided += tx.postings.iter().filter(|p| p.amount.is_none()).count();
                }
                Item::Account { name, .. } => {
                    assert!(
                        name.chars().all(|c| c.is_ascii_lowercase()
                            || c.is_ascii_digit()
                            || c == ':'
                            || c == '-'),
                        "{name}"
                    );
                    assert!(
                        ["assets:", "liabilities:", "equity:", "income:", "expenses:"]
                            .iter()
                            .any(|root| name.starts_with(root))
                    );
                }
                Item::Price { price, .. } => {
                    assert_eq!(price.commodity, "USD");
                    assert!(price.quantity.scale <= 6 && price.quantity.mantissa > 0);
                    prices += 1;
                }
                Item::Commodity { symbol, .. } => {
                    assert!(["USD", "EUR", "JPY"].contains(&symbol.as_str()));
                    commodities += 1;
                }
            }
        }
        assert_eq!(commodities, 3);
        (transactions, postings, elided, prices)
    }

    #[test]
    fn generated_journals_have_exact_counts_and_balance() {
        for count in [0, 2, 3, 4, 5, 6, 7, 11, 1000, 2001] {
            let options = Generate {
                postings: count,
                seed: count as u64,
                ..Generate::default()
            };
            let (text, summary) = generated(&options);
            assert_eq!(summary.postings, count);
            let (transactions, postings, _, prices) = read_generated(&text);
            assert_eq!(
                (transactions, postings),
                (summary.transactions, count),
                "{count}"
            );
            assert_eq!(prices, 12 * 2);
        }
    }

    #[test]
    fn generated_journal_shape() {
        let options = Generate {
            postings: 30_000,
            seed: 7,
            ..Generate::default()
        };
        let (text, summary) = generated(&options);
        let (transactions, postings, elided, _) = read_generated(&text);
        assert_eq!(postings, 30_000);
        assert_eq!(transactions, summary.transactions);
        // About one transaction in three is elided.
        assert!(
            elided * 4 > transactions && elided * 2 < transactions,
            "{elided} of {transactions}"
        );
        let accounts = text.lines().filter(|l| l.starts_with("account ")).count();
        assert!((35..=45).contains(&accounts));
        assert!(text.contains(" JPY\n") && text.contains(" EUR\n") && text.contains(" USD\n"));
        let no_elision = Generate {
            elide: false,
            ..options
        };
        assert_eq!(read_generated(&generated(&no_elision).0).2, 0);
    }

    #[test]
    fn generated_dates_span_months_by_size() {
        let options = Generate {
            postings: 250_000,
            seed: 3,
            start_year: 2001,
            ..Generate::default()
        };
        let (text, _) = generated(&options);
        let prices = text.lines().filter(|l| l.starts_with("P ")).count();
        assert_eq!(prices, 30 * 2);
        let last = text.lines().rev().find(|l| l.starts_with("2003-")).unwrap();
        assert!(last.starts_with("2003-06"), "{last}");
        assert!(text.lines().any(|l| l.starts_with("2001-01-01 ")));
    }

    #[test]
    fn generation_is_deterministic_per_seed() {
        let options = Generate {
            postings: 500,
            seed: 42,
            ..Generate::default()
        };
        let (first, _) = generated(&options);
        let (second, _) = generated(&options);
        assert_eq!(first, second);
        let (other, _) = generated(&Generate {
            seed: 43,
            ..options
        });
        assert_ne!(first, other);
    }

    #[test]
    fn generation_refuses_impossible_options() {
        let mut sink = Vec::new();
        for options in [
            Generate {
                postings: 1,
                ..Generate::default()
            },
            Generate {
                commodities: Vec::new(),
                ..Generate::default()
            },
            Generate {
                start_year: 0,
                ..Generate::default()
            },
            Generate {
                start_year: 9999,
                postings: 200_000,
                ..Generate::default()
            },
        ] {
            let error = generate(&mut sink, &options).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        }
    }
}
