//! Calendar dates of the journal: parsing and day arithmetic (proleptic Gregorian).

/// Whether `year` is a leap year of the proleptic Gregorian calendar.
pub(super) fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// The number of days in `month` (1–12) of `year`.
pub(super) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm, exact for all years).
pub(super) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date `days` after 1970-01-01: the inverse of [`days_from_civil`].
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both fit: the day is 1–31 and the month 1–12 by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// Parses `YYYY-MM-DD`, `YYYY/MM/DD` or `YYYY.MM.DD` (one- or two-digit month and day, one
/// separator throughout) and returns it as `YYYY-MM-DD`, checking it is a real date.
pub(super) fn parse_date(text: &str) -> Result<String, String> {
    let invalid = || format!("invalid date `{text}`: expected YYYY-MM-DD");
    let separator = text
        .chars()
        .find(|c| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    if !matches!(separator, '-' | '/' | '.') {
        return Err(invalid());
    }
    let parts: Vec<&str> = text.split(separator).collect();
    let [year, month, day] = parts.as_slice() else {
        if parts.len() == 2 && parts.iter().all(|p| (1..=2).contains(&p.len())) {
            return Err(format!(
                "date `{text}` has no year (the `Y` directive is not supported)"
            ));
        }
        return Err(invalid());
    };
    let numeric = |part: &str, lengths: std::ops::RangeInclusive<usize>| {
        lengths.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
    };
    if !numeric(year, 4..=4) || !numeric(month, 1..=2) || !numeric(day, 1..=2) {
        return Err(invalid());
    }
    let (Ok(year), Ok(month), Ok(day)) = (
        year.parse::<i64>(),
        month.parse::<u32>(),
        day.parse::<u32>(),
    ) else {
        return Err(invalid());
    };
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(format!(
            "invalid date `{text}`: no such day in the calendar"
        ));
    }
    Ok(format!("{year:04}-{month:02}-{day:02}"))
}
