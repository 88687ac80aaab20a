//! Exact amounts: integer minor units, rates as integers scaled by 10^9, conversion with
//! one rounding (half away from zero). No floating point anywhere in the ledger.

pub use prefiq_data::entity::value::format_scaled;
use prefiq_data::entity::value::{currency_scale, parse_scaled};

/// Digits after the point of an exchange rate.
pub const RATE_SCALE: u8 = 9;

/// One unit of a rate: `1.000000000`.
pub const RATE_ONE: i64 = 1_000_000_000;

/// Converts `amount` minor units of a currency with `from_scale` digits into minor units of
/// one with `to_scale` digits at `rate` (scaled by 10^9), rounding half away from zero.
/// `None` on overflow.
pub fn convert(amount: i64, from_scale: u8, rate: i64, to_scale: u8) -> Option<i64> {
    let numerator = i128::from(amount)
        .checked_mul(i128::from(rate))?
        .checked_mul(10i128.checked_pow(u32::from(to_scale))?)?;
    let denominator = 10i128.checked_pow(u32::from(from_scale) + u32::from(RATE_SCALE))?;
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    let rounded = if remainder.abs() * 2 >= denominator {
        quotient + numerator.signum()
    } else {
        quotient
    };
    i64::try_from(rounded).ok()
}

/// Converts `amount` minor units of `from` into minor units of `to` at `rate`.
pub fn convert_currency(amount: i64, from: &str, rate: i64, to: &str) -> Option<i64> {
    convert(amount, currency_scale(from), rate, currency_scale(to))
}

/// Formats minor units as a decimal string of the currency's scale: `-12.50`.
pub fn format_minor(amount: i64, currency: &str) -> String {
    format_scaled(amount, currency_scale(currency))
}

/// Parses a rate such as `"1.08"` (at most 9 decimals); it must be positive.
pub fn parse_rate(text: &str) -> Option<i64> {
    parse_scaled(text, RATE_SCALE).ok().filter(|r| *r > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(amount: i64, from: &str, rate: &str, to: &str, expected: &str) {
        let rate = parse_rate(rate).map_or(0, |r| r);
        let got = convert_currency(amount, from, rate, to)
            .map_or_else(|| "overflow".to_owned(), |v| format_minor(v, to));
        assert_eq!(got, expected, "{amount} {from} at {rate} to {to}");
    }

    #[test]
    fn conversions_round_half_away_from_zero() {
        check(10000, "EUR", "1.08", "USD", "108.00");
        check(1, "EUR", "1.5", "USD", "0.02");
        check(-1, "EUR", "1.5", "USD", "-0.02");
        check(1, "EUR", "1.4", "USD", "0.01");
        check(100, "JPY", "0.0067", "USD", "0.67");
        check(150, "JPY", "0.0067", "USD", "1.01");
        check(12345, "USD", "149.5", "JPY", "18456");
        check(1000, "KWD", "3.25", "USD", "3.25");
        check(i64::MAX, "USD", "1000", "USD", "overflow");
    }

    #[test]
    fn formats_keep_the_currency_scale() {
        assert_eq!(format_minor(5, "USD"), "0.05");
        assert_eq!(format_minor(-5, "USD"), "-0.05");
        assert_eq!(format_minor(123456, "JPY"), "123456");
        assert_eq!(format_minor(1, "KWD"), "0.001");
        assert_eq!(format_minor(0, "EUR"), "0.00");
    }
}
