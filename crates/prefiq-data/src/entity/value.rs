//! Field values: checking client JSON against a field, and converting between the API's
//! JSON and what is stored. No floating point touches a decimal or money value.

use serde_json::{Value, json};

use super::schema::{FieldDef, FieldKind};

/// A value as it is stored in a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// SQL NULL.
    Null,
    /// Text columns: data, text, email, select, link, date, datetime, json (serialized).
    Text(String),
    /// Integer columns: int, and decimal as a scaled integer.
    Int(i64),
    /// bool.
    Bool(bool),
    /// money: minor units and currency (two columns).
    Money {
        /// Integer minor units.
        minor: i64,
        /// ISO 4217 code.
        currency: String,
    },
}

/// Why a value does not fit its field: a stable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// A stable code such as `wrong_type` or `too_long`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> ValueError {
    ValueError {
        code,
        message: message.into(),
    }
}

/// Minor-unit digits of a currency (ISO 4217); 2 unless listed.
pub fn currency_scale(currency: &str) -> u8 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// Parses a decimal string into an integer scaled by `10^scale`; more digits after the
/// point than `scale` is an error, never a rounding.
pub fn parse_scaled(text: &str, scale: u8) -> Result<i64, ValueError> {
    let bad = || {
        err(
            "wrong_type",
            format!("`{text}` is not a decimal number such as \"-12.50\""),
        )
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || (digits.contains('.') && fraction.is_empty())
    {
        return Err(bad());
    }
    if fraction.len() > usize::from(scale) {
        return Err(err(
            "too_precise",
            format!("`{text}` has more than {scale} digits after the point"),
        ));
    }
    let mut value: i64 = 0;
    let padded = format!("{whole}{fraction:0<width$}", width = usize::from(scale));
    for b in padded.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or_else(|| err("out_of_range", format!("`{text}` is too large")))?;
    }
    Ok(if negative { -value } else { value })
}

/// Formats a scaled integer as a decimal string with exactly `scale` digits after the point.
pub fn format_scaled(value: i64, scale: u8) -> String {
    let digits = value.unsigned_abs().to_string();
    let scale = usize::from(scale);
    let sign = if value < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// Parses a stored date: exactly `YYYY-MM-DD`, a real day of years 1 to 9999.
///
/// The shape is checked here because jiff's parser also takes other ISO 8601 forms
/// (`20261122`, `+002026-11-22`, a date with a time), and stored dates must be the one form
/// whose text order is date order; jiff checks the calendar.
fn parse_date(text: &str) -> Option<jiff::civil::Date> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    let date: jiff::civil::Date = text.parse().ok()?;
    (date.year() >= 1).then_some(date)
}

/// Parses RFC 3339 and returns it in UTC as `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, whose text
/// order is time order.
pub fn normalize_datetime(text: &str) -> Option<String> {
    if text.len() < 20 || text.len() > 40 {
        return None;
    }
    // `get`, not `split_at`: byte 10 may fall inside a multi-byte character.
    let (date, rest) = (text.get(..10)?, text.get(10..)?);
    let date = parse_date(date)?;
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let b = rest.as_bytes();
    if b.len() < 9 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let hour: i8 = rest.get(0..2)?.parse().ok()?;
    let minute: i8 = rest.get(3..5)?.parse().ok()?;
    let second: i8 = rest.get(6..8)?.parse().ok()?;
    if !rest.as_bytes()[..8]
        .iter()
        .enumerate()
        .all(|(i, b)| i == 2 || i == 5 || b.is_ascii_digit())
    {
        return None;
    }
    let mut tail = &rest[8..];
    let mut micros = String::new();
    if let Some(frac) = tail.strip_prefix('.') {
        let end = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        if end == 0 || end > 9 {
            return None;
        }
        micros = format!("{:0<6}", &frac[..end.min(6)]);
        tail = &frac[end..];
    }
    let offset_minutes: i32 = match tail {
        "Z" | "z" => 0,
        _ => {
            let sign = match tail.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let t = &tail[1..];
            if t.len() != 5 || t.as_bytes()[2] != b':' {
                return None;
            }
            let h: i32 = t.get(0..2)?.parse().ok()?;
            let m: i32 = t.get(3..5)?.parse().ok()?;
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 60 + m)
        }
    };
    // RFC 3339 allows a leap second; jiff, like the stored form, has none, so `:60` is the
    // last second of its minute.
    if second > 60 {
        return None;
    }
    let time = jiff::civil::Time::new(hour, minute, second.min(59), 0).ok()?;
    // Civil arithmetic, not a `Timestamp`: jiff's timestamps end a day early to leave room
    // for any offset, and a stored time may be as late as 9999-12-31T23:59:59Z.
    let utc = date
        .to_datetime(time)
        .checked_sub(jiff::Span::new().try_minutes(offset_minutes).ok()?)
        .ok()?;
    if utc.year() < 1 {
        return None;
    }
    let fraction = if micros.is_empty() {
        String::new()
    } else {
        format!(".{micros}")
    };
    Some(format!("{}{fraction}Z", utc.strftime("%Y-%m-%dT%H:%M:%S")))
}

fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
}

fn string<'v>(value: &'v Value, what: &str) -> Result<&'v str, ValueError> {
    value
        .as_str()
        .ok_or_else(|| err("wrong_type", format!("expected {what}")))
}

/// Checks `value` against `field` and converts it for storage. `null` is `Stored::Null`;
/// whether a field may be empty is the caller's business (`required`).
pub fn coerce(field: &FieldDef, value: &Value) -> Result<Stored, ValueError> {
    if value.is_null() {
        return Ok(Stored::Null);
    }
    let text_checked = |text: &str| -> Result<Stored, ValueError> {
        if text.contains('\0') {
            return Err(err("invalid_character", "contains a NUL character"));
        }
        if let Some(max) = field.max_chars()
            && text.chars().count() > max as usize
        {
            return Err(err("too_long", format!("is longer than {max} characters")));
        }
        Ok(Stored::Text(text.to_owned()))
    };
    match &field.kind {
        FieldKind::Data | FieldKind::Text => text_checked(string(value, "a string")?),
        FieldKind::Email => {
            let text = string(value, "an email address")?;
            if !is_email(text) {
                return Err(err(
                    "invalid_email",
                    format!("`{text}` is not an email address"),
                ));
            }
            text_checked(text)
        }
        FieldKind::Int => value
            .as_i64()
            .map(Stored::Int)
            .ok_or_else(|| err("wrong_type", "expected an integer")),
        FieldKind::Decimal { scale } => {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) if n.is_i64() => n.to_string(),
                _ => {
                    return Err(err(
                        "wrong_type",
                        "expected a decimal string such as \"12.50\"",
                    ));
                }
            };
            parse_scaled(&text, *scale).map(Stored::Int)
        }
        FieldKind::Money => {
            let (Some(amount), Some(currency)) = (
                value.get("amount").and_then(Value::as_str),
                value.get("currency").and_then(Value::as_str),
            ) else {
                return Err(err(
                    "wrong_type",
                    "expected {\"amount\": \"12.50\", \"currency\": \"EUR\"}",
                ));
            };
            if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(err(
                    "invalid_currency",
                    format!("`{currency}` is not an ISO 4217 currency code"),
                ));
            }
            let minor = parse_scaled(amount, currency_scale(currency))?;
            Ok(Stored::Money {
                minor,
                currency: currency.to_owned(),
            })
        }
        FieldKind::Bool => value
            .as_bool()
            .map(Stored::Bool)
            .ok_or_else(|| err("wrong_type", "expected true or false")),
        FieldKind::Date => {
            let text = string(value, "a date such as \"2026-11-22\"")?;
            parse_date(text)
                .map(|_| Stored::Text(text.to_owned()))
                .ok_or_else(|| {
                    err(
                        "invalid_date",
                        format!("`{text}` is not a date such as \"2026-11-22\""),
                    )
                })
        }
        FieldKind::Datetime => {
            let text = string(value, "an RFC 3339 date-time")?;
            normalize_datetime(text).map(Stored::Text).ok_or_else(|| {
                err(
                    "invalid_datetime",
                    format!(
                        "`{text}` is not an RFC 3339 date-time such as \"2026-11-22T10:00:00Z\""
                    ),
                )
            })
        }
        FieldKind::Select { options } => {
            let text = string(value, "a string")?;
            if options.iter().any(|o| o == text) {
                Ok(Stored::Text(text.to_owned()))
            } else {
                Err(err(
                    "invalid_option",
                    format!("`{text}` is not one of {}", options.join(", ")),
                ))
            }
        }
        FieldKind::Link { target } => {
            let text = string(value, "the id of a linked row")?;
            if text.is_empty() || text.len() > 64 {
                return Err(err(
                    "wrong_type",
                    format!("expected the id of a `{target}`"),
                ));
            }
            Ok(Stored::Text(text.to_owned()))
        }
        FieldKind::Json => Ok(Stored::Text(value.to_string())),
        FieldKind::Table { .. } => Err(err("wrong_type", "child rows are not a column value")),
    }
}

/// The API's JSON for a stored value.
pub fn to_json(field: &FieldDef, stored: &Stored) -> Value {
    match (&field.kind, stored) {
        (_, Stored::Null) => Value::Null,
        (FieldKind::Decimal { scale }, Stored::Int(v)) => Value::String(format_scaled(*v, *scale)),
        (FieldKind::Money, Stored::Money { minor, currency }) => {
            json!({"amount": format_scaled(*minor, currency_scale(currency)), "currency": currency})
        }
        (FieldKind::Json, Stored::Text(t)) => serde_json::from_str(t).unwrap_or(Value::Null),
        (_, Stored::Text(t)) => Value::String(t.clone()),
        (_, Stored::Int(v)) => Value::from(*v),
        (_, Stored::Bool(b)) => Value::Bool(*b),
        (_, Stored::Money { .. }) => Value::Null,
    }
}

/// Now, in UTC, as stored: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn civil_now() -> String {
    let now = jiff::Timestamp::now();
    format!(
        "{}.{:06}Z",
        jiff::tz::Offset::UTC
            .to_datetime(now)
            .strftime("%Y-%m-%dT%H:%M:%S"),
        // Now is after 1970, so the fraction is never negative.
        now.subsec_microsecond().max(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The hand-written calendar code this module had before jiff, kept only as the oracle
    // that the jiff-based parsing accepts and normalises exactly the same text.
    fn old_days_in_month(year: i64, month: u32) -> u32 {
        match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
            _ => 28,
        }
    }

    fn old_parse_date(text: &str) -> Option<(i64, u32, u32)> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let year: i64 = text.get(0..4)?.parse().ok()?;
        let month: u32 = text.get(5..7)?.parse().ok()?;
        let day: u32 = text.get(8..10)?.parse().ok()?;
        ((1..=12).contains(&month)
            && day >= 1
            && day <= old_days_in_month(year, month)
            && year >= 1)
            .then_some((year, month, day))
    }

    /// Days since 1970-01-01 of a civil date (proleptic Gregorian).
    fn old_days_from_civil(y: i64, m: u32, d: u32) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (i64::from(m) + 9) % 12;
        let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn old_civil_from_days(z: i64) -> (i64, u32, u32) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        (yoe + era * 400 + i64::from(m <= 2), m, d)
    }

    fn old_normalize_datetime(text: &str) -> Option<String> {
        if text.len() < 20 || text.len() > 40 {
            return None;
        }
        // `get`, not `split_at`: byte 10 may fall inside a multi-byte character.
        let (date, rest) = (text.get(..10)?, text.get(10..)?);
        let (year, month, day) = old_parse_date(date)?;
        let rest = rest.strip_prefix(['T', 't', ' '])?;
        let b = rest.as_bytes();
        if b.len() < 9 || b[2] != b':' || b[5] != b':' {
            return None;
        }
        let hour: i64 = rest.get(0..2)?.parse().ok()?;
        let minute: i64 = rest.get(3..5)?.parse().ok()?;
        let second: i64 = rest.get(6..8)?.parse().ok()?;
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let mut tail = &rest[8..];
        let mut micros = String::new();
        if let Some(frac) = tail.strip_prefix('.') {
            let end = frac
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(frac.len());
            if end == 0 || end > 9 {
                return None;
            }
            micros = format!("{:0<6}", &frac[..end.min(6)]);
            tail = &frac[end..];
        }
        let offset_minutes: i64 = match tail {
            "Z" | "z" => 0,
            _ => {
                let sign = match tail.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let t = &tail[1..];
                if t.len() != 5 || t.as_bytes()[2] != b':' {
                    return None;
                }
                let h: i64 = t.get(0..2)?.parse().ok()?;
                let m: i64 = t.get(3..5)?.parse().ok()?;
                if h > 23 || m > 59 {
                    return None;
                }
                sign * (h * 60 + m)
            }
        };
        let total = old_days_from_civil(year, month, day) * 86_400
            + hour * 3600
            + minute * 60
            + second.min(59)
            - offset_minutes * 60;
        let (y, mo, d) = old_civil_from_days(total.div_euclid(86_400));
        if !(1..=9999).contains(&y) {
            return None;
        }
        let secs = total.rem_euclid(86_400);
        let fraction = if micros.is_empty() {
            String::new()
        } else {
            format!(".{micros}")
        };
        Some(format!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}{fraction}Z",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        ))
    }

    /// Text shaped like an RFC 3339 date-time, with fields that are often out of range.
    fn datetime_text() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                Just(0i64),
                Just(1),
                Just(1969),
                Just(1970),
                Just(2024),
                Just(9999),
                0i64..=9999
            ],
            0u32..=13,
            0u32..=32,
            prop::sample::select(vec!["T", "t", " ", "x"]),
            (0u32..=25, 0u32..=60, 0u32..=61),
            prop::sample::select(vec!["", ".5", ".123456", ".123456789", ".1234567890", "."]),
            prop::sample::select(vec![
                "Z", "z", "+00:00", "-00:00", "+05:30", "-08:00", "+23:59", "-23:59", "+24:00",
                "+0530", "", "+05:60",
            ]),
        )
            .prop_map(|(y, mo, d, sep, (h, mi, se), frac, off)| {
                format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{se:02}{frac}{off}")
            })
    }

    #[test]
    fn datetime_edges_and_now() {
        for (text, want) in [
            ("9999-12-31T23:59:59Z", Some("9999-12-31T23:59:59Z")),
            ("9999-12-31T23:59:59-00:01", None),
            ("0001-01-01T00:30:00+01:00", None),
            ("2016-12-31T23:59:60Z", Some("2016-12-31T23:59:59Z")),
            ("2024-02-29T23:30:00-01:00", Some("2024-03-01T00:30:00Z")),
            (
                "1969-12-31T23:59:59.5+00:00",
                Some("1969-12-31T23:59:59.500000Z"),
            ),
            ("2026-02-30T00:00:00Z", None),
        ] {
            assert_eq!(normalize_datetime(text).as_deref(), want, "{text}");
        }
        let now = civil_now();
        assert_eq!(now.len(), 27, "{now}");
        assert_eq!(normalize_datetime(&now), Some(now));
    }

    fn field(kind: FieldKind) -> FieldDef {
        FieldDef {
            name: "f".into(),
            label: "F".into(),
            kind,
            required: false,
            unique: false,
            default: None,
            max_length: None,
            read_only: false,
            indexed: false,
            pii: false,
            description: String::new(),
            references: None,
        }
    }

    fn check(kind: FieldKind, input: Value, expected: &str) {
        let f = field(kind);
        let got = match coerce(&f, &input) {
            Ok(stored) => to_json(&f, &stored).to_string(),
            Err(e) => format!("{}: {}", e.code, e.message),
        };
        assert_eq!(got, expected, "{input}");
    }

    #[test]
    fn values() {
        check(FieldKind::Data, json!("hello"), "\"hello\"");
        check(FieldKind::Data, json!(5), "wrong_type: expected a string");
        check(
            FieldKind::Data,
            json!("x".repeat(141)),
            "too_long: is longer than 140 characters",
        );
        check(
            FieldKind::Data,
            json!("a\u{0}b"),
            "invalid_character: contains a NUL character",
        );
        check(FieldKind::Int, json!(42), "42");
        check(
            FieldKind::Int,
            json!(4.5),
            "wrong_type: expected an integer",
        );
        check(
            FieldKind::Int,
            json!("42"),
            "wrong_type: expected an integer",
        );
        check(FieldKind::Decimal { scale: 2 }, json!("12.5"), "\"12.50\"");
        check(FieldKind::Decimal { scale: 2 }, json!("-0.05"), "\"-0.05\"");
        check(FieldKind::Decimal { scale: 2 }, json!(7), "\"7.00\"");
        check(
            FieldKind::Decimal { scale: 2 },
            json!(1.5),
            "wrong_type: expected a decimal string such as \"12.50\"",
        );
        check(
            FieldKind::Decimal { scale: 2 },
            json!("1.005"),
            "too_precise: `1.005` has more than 2 digits after the point",
        );
        check(
            FieldKind::Decimal { scale: 2 },
            json!("1e5"),
            "wrong_type: `1e5` is not a decimal number such as \"-12.50\"",
        );
        check(
            FieldKind::Decimal { scale: 2 },
            json!("99999999999999999999"),
            "out_of_range: `99999999999999999999` is too large",
        );
        check(
            FieldKind::Money,
            json!({"amount": "10.5", "currency": "EUR"}),
            "{\"amount\":\"10.50\",\"currency\":\"EUR\"}",
        );
        check(
            FieldKind::Money,
            json!({"amount": "10", "currency": "JPY"}),
            "{\"amount\":\"10\",\"currency\":\"JPY\"}",
        );
        check(
            FieldKind::Money,
            json!({"amount": "10.5", "currency": "JPY"}),
            "too_precise: `10.5` has more than 0 digits after the point",
        );
        check(
            FieldKind::Money,
            json!({"amount": "1.234", "currency": "KWD"}),
            "{\"amount\":\"1.234\",\"currency\":\"KWD\"}",
        );
        check(
            FieldKind::Money,
            json!({"amount": "1", "currency": "eur"}),
            "invalid_currency: `eur` is not an ISO 4217 currency code",
        );
        check(
            FieldKind::Money,
            json!("10 EUR"),
            "wrong_type: expected {\"amount\": \"12.50\", \"currency\": \"EUR\"}",
        );
        check(FieldKind::Bool, json!(true), "true");
        check(
            FieldKind::Bool,
            json!(1),
            "wrong_type: expected true or false",
        );
        check(FieldKind::Date, json!("2024-02-29"), "\"2024-02-29\"");
        check(
            FieldKind::Date,
            json!("2023-02-29"),
            "invalid_date: `2023-02-29` is not a date such as \"2026-11-22\"",
        );
        check(
            FieldKind::Date,
            json!("2023-2-1"),
            "invalid_date: `2023-2-1` is not a date such as \"2026-11-22\"",
        );
        check(
            FieldKind::Datetime,
            json!("2026-11-22T10:00:00Z"),
            "\"2026-11-22T10:00:00Z\"",
        );
        check(
            FieldKind::Datetime,
            json!("2026-11-22T01:30:00+02:00"),
            "\"2026-11-21T23:30:00Z\"",
        );
        check(
            FieldKind::Datetime,
            json!("2026-12-31T23:30:00.5-01:00"),
            "\"2027-01-01T00:30:00.500000Z\"",
        );
        // Regression: a multi-byte character at byte 10 used to panic in `split_at`.
        check(
            FieldKind::Datetime,
            json!("2026-11-2\u{e9}T10:00:00.000Z"),
            "invalid_datetime: `2026-11-2\u{e9}T10:00:00.000Z` is not an RFC 3339 date-time such as \"2026-11-22T10:00:00Z\"",
        );
        check(
            FieldKind::Datetime,
            json!("2026-11-22 10:00"),
            "invalid_datetime: `2026-11-22 10:00` is not an RFC 3339 date-time such as \"2026-11-22T10:00:00Z\"",
        );
        check(
            FieldKind::Select {
                options: vec!["Open".into(), "Closed".into()],
            },
            json!("Open"),
            "\"Open\"",
        );
        check(
            FieldKind::Select {
                options: vec!["Open".into(), "Closed".into()],
            },
            json!("open"),
            "invalid_option: `open` is not one of Open, Closed",
        );
        check(
            FieldKind::Email,
            json!("a@example.com"),
            "\"a@example.com\"",
        );
        check(
            FieldKind::Email,
            json!("not an email"),
            "invalid_email: `not an email` is not an email address",
        );
        check(FieldKind::Json, json!({"a": [1, 2]}), "{\"a\":[1,2]}");
        check(FieldKind::Data, Value::Null, "null");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn scaled_decimals_round_trip(value in -1_000_000_000_000i64..1_000_000_000_000, scale in 0u8..=6) {
            let text = format_scaled(value, scale);
            prop_assert_eq!(parse_scaled(&text, scale).ok(), Some(value));
        }

        #[test]
        fn datetimes_normalise_as_the_old_code_did(text in datetime_text()) {
            prop_assert_eq!(normalize_datetime(&text), old_normalize_datetime(&text));
        }

        #[test]
        fn dates_are_accepted_as_the_old_code_did(y in 0i64..=9999, m in 0u32..=13, d in 0u32..=32) {
            let text = format!("{y:04}-{m:02}-{d:02}");
            prop_assert_eq!(parse_date(&text).is_some(), old_parse_date(&text).is_some());
        }
    }
}
