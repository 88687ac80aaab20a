//! Calendar dates as `YYYY-MM-DD` text, which sorts as dates do: thin wrappers over
//! [`jiff::civil::Date`], which does all the calendar arithmetic.
//!
//! Accounting dates are civil dates: no time zone ever shifts them, so nothing here
//! touches a zone or the clock.

use jiff::ToSpan;
use jiff::civil::Date;

/// The epoch of the ledger's day numbers: `ledger_posting.day` counts days from it.
const EPOCH: Date = jiff::civil::date(1970, 1, 1);

/// Parses `YYYY-MM-DD` (exactly that shape) when it is a real date.
///
/// The shape is checked first because jiff's parser also takes other ISO 8601 forms
/// (`20260131`, `+002026-01-31`, a date with a time), and stored dates must be the one
/// form whose text order is date order.
pub fn parse(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    text.parse().ok()
}

/// Formats a date as `YYYY-MM-DD`.
pub fn format(date: Date) -> String {
    date.strftime("%Y-%m-%d").to_string()
}

/// The ledger's day number of a date: days since 1970-01-01.
pub fn day_number(date: Date) -> i64 {
    // The span between two civil dates in days is exact (no zone, no DST), and jiff's
    // date range (years -9999..=9999) keeps it far inside i32.
    i64::from(
        EPOCH
            .until((jiff::Unit::Day, date))
            .map(|span| span.get_days())
            .unwrap_or_default(),
    )
}

/// The date of a ledger day number (`None` when it falls outside years -9999..=9999).
pub fn from_day_number(days: i64) -> Option<Date> {
    EPOCH.checked_add(days.days()).ok()
}

/// The text of a ledger day number; empty when the number is out of range, which a
/// posting written through [`day_number`] never is.
pub fn format_day_number(days: i64) -> String {
    from_day_number(days).map(format).unwrap_or_default()
}

/// The day after `date` (`None` for text that is not a date).
pub fn next_day(date: &str) -> Option<String> {
    parse(date)?.tomorrow().ok().map(format)
}

/// The day before `date`.
pub fn previous_day(date: &str) -> Option<String> {
    parse(date)?.yesterday().ok().map(format)
}

/// The months that `start..=end` touches, each as (first day, last day) clipped to it.
pub fn months(start: &str, end: &str) -> Vec<(String, String)> {
    let (Some(first), Some(last)) = (parse(start), parse(end)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut month = first.first_of_month();
    // A fiscal year is at most a few years long; the bound keeps bad input from looping long.
    while month <= last && out.len() < 1200 {
        let from = month.max(first);
        let to = month.last_of_month().min(last);
        out.push((format(from), format(to)));
        match month.checked_add(1.month()) {
            Ok(next) => month = next,
            Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    /// The hand-written conversion the ledger's day numbers were written with (Howard
    /// Hinnant's algorithm), kept only here as the oracle that jiff numbers days the same.
    fn old_days_from_civil(year: i64, month: u32, day: u32) -> i64 {
        let year = if month <= 2 { year - 1 } else { year };
        let era = year.div_euclid(400);
        let yoe = year - era * 400;
        let month = i64::from(month);
        let mp = (month + 9) % 12;
        let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The old inverse of [`old_days_from_civil`], the oracle for [`from_day_number`].
    fn old_civil_from_days(days: i64) -> (i64, u32, u32) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap();
        let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap();
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }

    fn parts(date: Date) -> (i64, u32, u32) {
        (
            i64::from(date.year()),
            u32::try_from(date.month()).unwrap(),
            u32::try_from(date.day()).unwrap(),
        )
    }

    /// Day numbers of 0001-01-01 and 9999-12-31, the range the property covers.
    const FIRST_DAY: i64 = -719_162;
    const LAST_DAY: i64 = 2_932_896;

    #[test]
    fn day_numbers_match_the_old_code_at_known_dates() {
        for (text, days) in [
            ("1970-01-01", 0),
            ("1969-12-31", -1),
            ("2000-02-29", 11_016),
            ("1900-02-28", -25_509),
            ("1900-03-01", -25_508),
            ("1600-02-29", -135_081),
            ("2024-02-29", 19_782),
            ("2026-12-31", 20_818),
            ("0001-01-01", FIRST_DAY),
            ("9999-12-31", LAST_DAY),
        ] {
            let date = parse(text).unwrap();
            let (y, m, d) = parts(date);
            assert_eq!(old_days_from_civil(y, m, d), days, "{text} (old)");
            assert_eq!(day_number(date), days, "{text}");
            assert_eq!(format_day_number(days), text);
        }
    }

    /// Every day of years 1 to 9999, in order: the day number counts up by one and is the
    /// one the old code gave, and the old code's date of that number is the same day.
    #[test]
    fn every_day_numbers_as_the_old_code_did() {
        let mut date = parse("0001-01-01").unwrap();
        let mut days = FIRST_DAY;
        loop {
            let (y, m, d) = parts(date);
            assert_eq!(day_number(date), days, "{date}");
            assert_eq!(from_day_number(days), Some(date), "{date}");
            assert_eq!(old_days_from_civil(y, m, d), days, "{date}");
            assert_eq!(old_civil_from_days(days), (y, m, d), "{date}");
            let Ok(next) = date.tomorrow() else { break };
            if next.year() > 9999 {
                break;
            }
            (date, days) = (next, days + 1);
        }
        assert_eq!(days, LAST_DAY);
    }

    #[test]
    fn every_leap_day_of_four_centuries_numbers_the_same() {
        for year in 1600..=2400 {
            let Some(date) = parse(&format!("{year:04}-02-29")) else {
                continue;
            };
            let (y, m, d) = parts(date);
            assert_eq!(day_number(date), old_days_from_civil(y, m, d), "{year}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Every date of years 1 to 9999 (before 1970 too) gets the day number the old
        /// code gave it, and back.
        #[test]
        fn day_numbers_match_the_old_code(days in FIRST_DAY..=LAST_DAY) {
            let old = old_civil_from_days(days);
            let date = from_day_number(days).unwrap();
            prop_assert_eq!(parts(date), old);
            prop_assert_eq!(day_number(date), days);
            prop_assert_eq!(old_days_from_civil(old.0, old.1, old.2), days);
        }

        /// Text is a date exactly when the old parser (round trip through day numbers)
        /// said so, for every `YYYY-MM-DD` with a month and day of two digits.
        #[test]
        fn parsing_agrees_with_the_old_code(year in 0i64..=9999, month in 0u32..=99, day in 0u32..=99) {
            let text = format!("{year:04}-{month:02}-{day:02}");
            let days = old_days_from_civil(year, month, day);
            let old = (old_civil_from_days(days) == (year, month, day)).then_some((year, month, day));
            // Year 0 is a real proleptic year to both; the ledger never sees one since the
            // entity engine refuses it.
            prop_assert_eq!(parse(&text).map(parts), old);
        }
    }

    #[test]
    fn dates_round_trip_and_step() {
        assert_eq!(next_day("2024-02-28").as_deref(), Some("2024-02-29"));
        assert_eq!(next_day("2023-02-28").as_deref(), Some("2023-03-01"));
        assert_eq!(previous_day("2026-01-01").as_deref(), Some("2025-12-31"));
        assert_eq!(next_day("9999-12-31"), None);
        assert_eq!(parse("2023-02-29"), None);
        assert_eq!(parse("2026-02-30"), None);
        assert_eq!(parse("2024-13-01"), None);
        assert_eq!(parse("20240101"), None);
        assert_eq!(parse("+02024-01-01"), None);
        assert_eq!(parse("2024-01-01T00:00"), None);
        assert_eq!(parse("2024-1-01"), None);
    }

    #[test]
    fn months_are_clipped_to_the_range() {
        let got = months("2026-01-15", "2026-03-10");
        assert_eq!(
            got,
            vec![
                ("2026-01-15".into(), "2026-01-31".into()),
                ("2026-02-01".into(), "2026-02-28".into()),
                ("2026-03-01".into(), "2026-03-10".into())
            ]
        );
        assert_eq!(months("2026-12-01", "2026-12-31").len(), 1);
        assert_eq!(months("2026-12-01", "2026-11-30").len(), 0);
        assert_eq!(months("2024-02-10", "2024-02-29").len(), 1);
        assert_eq!(months("9999-12-01", "9999-12-31").len(), 1);
    }
}
