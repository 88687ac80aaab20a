//! Calendar dates of the journal: parsing its date forms; jiff checks the calendar.

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
    let (Ok(year), Ok(month), Ok(day)) =
        (year.parse::<i16>(), month.parse::<i8>(), day.parse::<i8>())
    else {
        return Err(invalid());
    };
    let date = jiff::civil::Date::new(year, month, day)
        .map_err(|_| format!("invalid date `{text}`: no such day in the calendar"))?;
    Ok(crate::dates::format(date))
}
