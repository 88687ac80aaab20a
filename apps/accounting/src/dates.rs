//! Calendar dates as `YYYY-MM-DD` text, which sorts as dates do.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses `YYYY-MM-DD` into (year, month, day) when it is a real date.
pub fn parse(text: &str) -> Option<(i64, u32, u32)> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year: i64 = text[..4].parse().ok()?;
    let month: u32 = text[5..7].parse().ok()?;
    let day: u32 = text[8..].parse().ok()?;
    let days = days_from_civil(year, month, day);
    (civil_from_days(days) == (year, month, day)).then_some((year, month, day))
}

/// Formats (year, month, day).
pub fn format(date: (i64, u32, u32)) -> String {
    format!("{:04}-{:02}-{:02}", date.0, date.1, date.2)
}

/// The day after `date` (`None` for text that is not a date).
pub fn next_day(date: &str) -> Option<String> {
    let (y, m, d) = parse(date)?;
    Some(format(civil_from_days(days_from_civil(y, m, d) + 1)))
}

/// The day before `date`.
pub fn previous_day(date: &str) -> Option<String> {
    let (y, m, d) = parse(date)?;
    Some(format(civil_from_days(days_from_civil(y, m, d) - 1)))
}

/// The months that `start..=end` touches, each as (first day, last day) clipped to it.
pub fn months(start: &str, end: &str) -> Vec<(String, String)> {
    let (Some(first), Some(last)) = (parse(start), parse(end)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let (mut year, mut month) = (first.0, first.1);
    // A fiscal year is at most a few years long; the bound keeps bad input from looping long.
    while (year, month) <= (last.0, last.1) && out.len() < 1200 {
        let (ny, nm) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let month_end = civil_from_days(days_from_civil(ny, nm, 1) - 1);
        let from = if (year, month) == (first.0, first.1) {
            first
        } else {
            (year, month, 1)
        };
        let to = if (year, month) == (last.0, last.1) {
            last
        } else {
            month_end
        };
        out.push((format(from), format(to)));
        (year, month) = (ny, nm);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_step() {
        assert_eq!(next_day("2024-02-28").as_deref(), Some("2024-02-29"));
        assert_eq!(next_day("2023-02-28").as_deref(), Some("2023-03-01"));
        assert_eq!(previous_day("2026-01-01").as_deref(), Some("2025-12-31"));
        assert_eq!(parse("2023-02-29"), None);
        assert_eq!(parse("2024-13-01"), None);
        assert_eq!(parse("20240101"), None);
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
    }
}
