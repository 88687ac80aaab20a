//! Between HTML forms and the API's JSON: what each field type looks like as an input, and
//! how a submitted form becomes a request body.
//!
//! Inputs are named `f.{field}` (with `f.{field}.currency` for money and `f.{field}.was` /
//! `f.{field}.id` for a link's shown title and id), `c.{field}` for a tenant's custom
//! fields, and `t.{table}.{row}.{field}` for child rows.

use prefiq_data::entity::EntitySchema;
use prefiq_data::entity::schema::{FieldDef, FieldKind};
use serde_json::{Map, Value, json};

/// Most rows a submitted child table may have.
pub const MAX_ROWS: usize = 500;

/// Most pairs a submitted form may have.
pub const MAX_PAIRS: usize = 20_000;

/// A submitted form: its pairs in order.
#[derive(Debug, Clone, Default)]
pub struct FormData {
    pairs: Vec<(String, String)>,
    /// The currency of an amount given without one.
    default_currency: Option<String>,
}

impl FormData {
    /// Parses an `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(body).map_err(|_| "the form is not UTF-8".to_owned())?;
        let mut pairs = Vec::new();
        for part in text.split('&').filter(|p| !p.is_empty()) {
            if pairs.len() >= MAX_PAIRS {
                return Err(format!("the form has more than {MAX_PAIRS} fields"));
            }
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((url_decode(key), url_decode(value)));
        }
        Ok(FormData {
            pairs,
            default_currency: None,
        })
    }

    /// The last value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The pairs whose names start with `prefix`, with the prefix taken off.
    pub fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.pairs
            .iter()
            .filter_map(move |(k, v)| k.strip_prefix(prefix).map(|rest| (rest, v.as_str())))
    }
}

impl FormData {
    /// The first non-empty currency of a money input (`….currency`), upper-cased.
    pub fn currency_given(&self) -> Option<String> {
        self.pairs
            .iter()
            .find(|(k, v)| k.ends_with(".currency") && v.trim().len() == 3)
            .map(|(_, v)| v.trim().to_ascii_uppercase())
    }

    /// The same form where an amount without a currency takes `currency`.
    pub fn with_default_currency(&self, currency: &str) -> FormData {
        FormData {
            pairs: self.pairs.clone(),
            default_currency: Some(currency.to_owned()),
        }
    }
}

/// Decodes `%XX` and `+` (invalid escapes are kept as they are).
pub fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes `text` for a query string.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Escapes `text` for HTML (for the few answers made without a template).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

/// The field that names a row to people: a unique text field, else an indexed required
/// one, else `title` or `{entity}_name`, else the first required text field, else `name`.
pub fn title_field(schema: &EntitySchema) -> String {
    let text = |f: &&FieldDef| matches!(f.kind, FieldKind::Data | FieldKind::Email);
    let fields: Vec<&FieldDef> = schema.fields.iter().filter(text).collect();
    fields
        .iter()
        .find(|f| f.unique)
        .or_else(|| fields.iter().find(|f| f.indexed && f.required))
        .or_else(|| {
            fields
                .iter()
                .find(|f| f.name == "title" || f.name == format!("{}_name", schema.name))
        })
        .or_else(|| fields.iter().find(|f| f.required))
        .map_or_else(|| "name".to_owned(), |f| f.name.clone())
}

/// The HTML input type of a field.
pub fn input_type(kind: &FieldKind) -> &'static str {
    match kind {
        FieldKind::Data | FieldKind::Link { .. } => "text",
        FieldKind::Text | FieldKind::Json => "textarea",
        FieldKind::Int | FieldKind::Decimal { .. } => "number",
        FieldKind::Money => "money",
        FieldKind::Bool => "checkbox",
        FieldKind::Date => "date",
        FieldKind::Datetime => "datetime-local",
        FieldKind::Select { .. } => "select",
        FieldKind::Table { .. } => "table",
        FieldKind::Email => "email",
    }
}

/// How a stored value is written into its input.
pub fn input_value(kind: &FieldKind, value: &Value) -> String {
    match (kind, value) {
        (_, Value::Null) => String::new(),
        (FieldKind::Money, v) => v
            .get("amount")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        (FieldKind::Datetime, Value::String(s)) => {
            // `datetime-local` takes no zone; values are UTC and the label says so.
            s.trim_end_matches('Z').chars().take(19).collect()
        }
        (FieldKind::Json, v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        (_, Value::String(s)) => s.clone(),
        (_, Value::Bool(b)) => b.to_string(),
        (_, v) => v.to_string(),
    }
}

/// How a stored value is shown as text (a list cell, a history diff).
pub fn display(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(true) => "Yes".into(),
        Value::Bool(false) => "No".into(),
        Value::String(s) => s.clone(),
        Value::Object(o) if o.contains_key("amount") && o.contains_key("currency") => {
            format!(
                "{} {}",
                o.get("amount").and_then(Value::as_str).unwrap_or(""),
                o.get("currency").and_then(Value::as_str).unwrap_or("")
            )
        }
        v => v.to_string(),
    }
}

/// What a template needs of one field's input named `input`, apart from its value and
/// error: the type, label, hint and constraints.
pub fn field_view(field: &FieldDef, input: &str, read_only: bool) -> Value {
    let mut view = json!({
        "name": field.name,
        "input": input,
        "dom_id": dom_id(input),
        "label": field.label,
        "type": field.kind.type_name(),
        "input_type": input_type(&field.kind),
        "required": field.required,
        "read_only": read_only || field.read_only,
        "description": field.description,
    });
    match &field.kind {
        FieldKind::Select { options } => view["options"] = json!(options),
        FieldKind::Decimal { scale } => {
            view["step"] = json!(if *scale == 0 {
                "1".to_owned()
            } else {
                format!("0.{}1", "0".repeat(usize::from(*scale) - 1))
            });
        }
        FieldKind::Int => view["step"] = json!("1"),
        FieldKind::Link { target } => view["target"] = json!(target),
        FieldKind::Datetime => {
            view["step"] = json!("1");
            // `datetime-local` carries no zone: the value is UTC, and the hint says so.
            let hint = if field.description.is_empty() {
                "In UTC.".to_owned()
            } else {
                format!("{} In UTC.", field.description)
            };
            view["description"] = json!(hint);
        }
        _ => {}
    }
    if let Some(max) = field
        .max_chars()
        .filter(|_| !matches!(field.kind, FieldKind::Text))
    {
        view["max_length"] = json!(max);
    }
    view
}

/// An id attribute for an input name: letters, digits, `-` and `_` only.
pub fn dom_id(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The value of `field` from a submitted form under `prefix`, or a problem with it.
/// `Ok(None)` when the form did not carry the field at all.
pub fn read_field(
    field: &FieldDef,
    form: &FormData,
    prefix: &str,
) -> Result<Option<Value>, String> {
    let name = format!("{prefix}{}", field.name);
    if let FieldKind::Bool = field.kind {
        // An unchecked box sends nothing; the hidden marker says the box was there.
        if form.get(&format!("{name}.present")).is_none() && form.get(&name).is_none() {
            return Ok(None);
        }
        return Ok(Some(Value::Bool(form.get(&name).is_some())));
    }
    let Some(raw) = form.get(&name) else {
        return Ok(None);
    };
    let text = raw.trim();
    if text.is_empty() {
        return Ok(Some(Value::Null));
    }
    Ok(Some(match &field.kind {
        FieldKind::Int => Value::from(
            text.parse::<i64>()
                .map_err(|_| "is not a whole number".to_owned())?,
        ),
        FieldKind::Money => {
            let mut currency = form
                .get(&format!("{name}.currency"))
                .unwrap_or("")
                .trim()
                .to_ascii_uppercase();
            if currency.is_empty()
                && let Some(fallback) = &form.default_currency
            {
                currency.clone_from(fallback);
            }
            if currency.is_empty() {
                return Err("needs a currency (such as EUR)".into());
            }
            json!({ "amount": text, "currency": currency })
        }
        FieldKind::Datetime => {
            let mut value = text.to_owned();
            if value.len() == 16 {
                value.push_str(":00");
            }
            if !value.ends_with('Z') && !value.contains('+') {
                value.push('Z');
            }
            Value::String(value)
        }
        FieldKind::Json => {
            serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))?
        }
        // Text keeps its spaces: they may mean something.
        FieldKind::Text => Value::String(raw.to_owned()),
        _ => Value::String(text.to_owned()),
    }))
}

/// The rows of child table `table` in a submitted form, each as `(row index, pairs)`,
/// in index order; rows with nothing filled in are left out.
pub fn table_rows(form: &FormData, table: &str) -> Result<Vec<usize>, String> {
    let prefix = format!("t.{table}.");
    let mut rows: Vec<usize> = Vec::new();
    for (rest, _) in form.under(&prefix) {
        let Some((index, _)) = rest.split_once('.') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        if !rows.contains(&index) {
            if rows.len() >= MAX_ROWS {
                return Err(format!("a table has at most {MAX_ROWS} rows"));
            }
            rows.push(index);
        }
    }
    rows.sort_unstable();
    Ok(rows)
}

/// Whether every input of a child row is empty (an unused blank row).
pub fn row_is_blank(form: &FormData, table: &str, row: usize) -> bool {
    let prefix = format!("t.{table}.{row}.");
    form.under(&prefix).all(|(rest, value)| {
        value.trim().is_empty()
            || rest.ends_with(".currency")
            || rest.ends_with(".present")
            || rest.ends_with(".was")
            || rest.ends_with(".id")
    })
}

/// A record's fields as a map (empty for a non-object).
pub fn fields_of(record: &Value) -> Map<String, Value> {
    record.as_object().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_decode(input: &str, expected: &str) {
        assert_eq!(url_decode(input), expected, "{input}");
    }

    #[test]
    fn form_values_decode() {
        check_decode("a+b", "a b");
        check_decode("%3Cscript%3E", "<script>");
        check_decode("%E2%82%AC", "€");
        check_decode("100%", "100%");
        check_decode("%zz", "%zz");
        check_decode("%4", "%4");
        check_decode("", "");
    }

    #[test]
    fn forms_parse_in_order_and_last_wins() {
        let form = FormData::parse(b"a=1&b=x+y&a=2&c").unwrap_or_default();
        assert_eq!(form.get("a"), Some("2"));
        assert_eq!(form.all("a"), vec!["1", "2"]);
        assert_eq!(form.get("b"), Some("x y"));
        assert_eq!(form.get("c"), Some(""));
        assert_eq!(form.get("d"), None);
        assert!(FormData::parse(&[0xff]).is_err());
    }

    fn field(yaml: &str) -> FieldDef {
        let schema = prefiq_data::entity::schema::parse_schema(
            "test",
            "thing.yaml",
            &format!("name: thing\nfields:\n  - {yaml}\n"),
        );
        match schema {
            Ok(s) => s.fields[0].clone(),
            Err(e) => panic!("{e}"),
        }
    }

    fn check_read(yaml: &str, pairs: &str, expected: Result<Option<Value>, &str>) {
        let form = FormData::parse(pairs.as_bytes()).unwrap_or_default();
        let got = read_field(&field(yaml), &form, "f.");
        assert_eq!(got, expected.map_err(str::to_owned), "{yaml} {pairs}");
    }

    #[test]
    fn every_field_type_reads_from_a_form() {
        check_read("{name: n, type: int}", "f.n=42", Ok(Some(json!(42))));
        check_read(
            "{name: n, type: int}",
            "f.n=4.5",
            Err("is not a whole number"),
        );
        check_read("{name: n, type: int}", "f.n=", Ok(Some(Value::Null)));
        check_read("{name: n, type: int}", "", Ok(None));
        check_read(
            "{name: d, type: decimal, scale: 2}",
            "f.d=1.50",
            Ok(Some(json!("1.50"))),
        );
        check_read(
            "{name: m, type: money}",
            "f.m=12.30&f.m.currency=eur",
            Ok(Some(json!({"amount": "12.30", "currency": "EUR"}))),
        );
        check_read(
            "{name: m, type: money}",
            "f.m=12.30",
            Err("needs a currency (such as EUR)"),
        );
        check_read(
            "{name: b, type: bool}",
            "f.b.present=1&f.b=on",
            Ok(Some(json!(true))),
        );
        check_read(
            "{name: b, type: bool}",
            "f.b.present=1",
            Ok(Some(json!(false))),
        );
        check_read("{name: b, type: bool}", "", Ok(None));
        check_read(
            "{name: t, type: datetime}",
            "f.t=2026-01-02T03:04",
            Ok(Some(json!("2026-01-02T03:04:00Z"))),
        );
        check_read(
            "{name: j, type: json}",
            "f.j=%7B%22a%22%3A1%7D",
            Ok(Some(json!({"a": 1}))),
        );
        assert!(
            read_field(
                &field("{name: j, type: json}"),
                &FormData::parse(b"f.j=%7B").unwrap_or_default(),
                "f."
            )
            .is_err()
        );
        check_read("{name: x, type: text}", "f.x=+a+", Ok(Some(json!(" a "))));
        check_read("{name: x, type: data}", "f.x=+a+", Ok(Some(json!("a"))));
        check_read(
            "{name: e, type: email}",
            "f.e=a%40b.c",
            Ok(Some(json!("a@b.c"))),
        );
        check_read(
            "{name: s, type: select, options: [A, B]}",
            "f.s=B",
            Ok(Some(json!("B"))),
        );
        check_read(
            "{name: day, type: date}",
            "f.day=2026-12-02",
            Ok(Some(json!("2026-12-02"))),
        );
    }

    #[test]
    fn child_rows_are_found_in_index_order() {
        let form = FormData::parse(
            b"t.lines.2.a=x&t.lines.0.a=y&t.lines.0.b=&t.other.1.a=z&t.lines.x.a=1",
        )
        .unwrap_or_default();
        assert_eq!(table_rows(&form, "lines"), Ok(vec![0, 2]));
        assert!(!row_is_blank(&form, "lines", 0));
        let blank = FormData::parse(b"t.lines.0.a=&t.lines.0.m.currency=EUR").unwrap_or_default();
        assert!(row_is_blank(&blank, "lines", 0));
    }
}
