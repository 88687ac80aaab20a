//! Memory items at the API's edge: the checks of a new item, the entity record it
//! becomes, and the item as the API shows it.

use serde_json::{Map, Value, json};

use crate::error::MemoryError;
use crate::filters::{KINDS, parse_time};

/// The longest text, in bytes (10 KB).
pub const MAX_TEXT_BYTES: usize = 10 * 1024;

/// The longest query, in bytes (10 KB).
pub const MAX_QUERY_BYTES: usize = 10 * 1024;

/// The most items one batch takes.
pub const MAX_BATCH: usize = 500;

/// The most tags an item has.
pub const MAX_TAGS: usize = 32;

/// The longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;

/// The longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 140;

/// The largest `metadata`, as JSON bytes.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

const FIELDS: [&str; 8] = [
    "kind",
    "text",
    "subject",
    "tags",
    "priority",
    "occurred_at",
    "source",
    "metadata",
];

/// Checks one new item (its pointers start with `at`, such as `/items/3`) and returns
/// the `memory_item` record to create.
pub fn check_new(item: &Value, at: &str, now: jiff::Timestamp) -> Result<Value, MemoryError> {
    let invalid = |field: &str, code: &'static str, message: String| {
        MemoryError::invalid(format!("{at}/{field}"), code, message)
    };
    let Some(item) = item.as_object() else {
        return Err(MemoryError::invalid(
            at,
            "wrong_type",
            "an item is an object: {kind, text, subject, tags, priority, occurred_at, source, metadata}",
        ));
    };
    if let Some(unknown) = item.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid(
            unknown,
            "unknown_field",
            format!(
                "`{unknown}` is not a field of a memory item; fields are {}",
                FIELDS.join(", ")
            ),
        ));
    }
    let mut record = Map::new();
    let kind = match item.get("kind") {
        None | Some(Value::Null) => "note",
        Some(Value::String(k)) if KINDS.contains(&k.as_str()) => k.as_str(),
        Some(_) => {
            return Err(invalid(
                "kind",
                "invalid_option",
                format!("`kind` is one of {}", KINDS.join(", ")),
            ));
        }
    };
    record.insert("kind".into(), json!(kind));
    match item.get("text") {
        Some(Value::String(text)) if text.len() > MAX_TEXT_BYTES => {
            return Err(invalid(
                "text",
                "too_long",
                format!(
                    "`text` is at most {MAX_TEXT_BYTES} bytes (10 KB); this one is {} bytes",
                    text.len()
                ),
            ));
        }
        Some(Value::String(text)) if !text.trim().is_empty() => {
            record.insert("text".into(), json!(text));
        }
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(invalid(
                "text",
                "required",
                "`text` is required and not blank".into(),
            ));
        }
        Some(_) => return Err(invalid("text", "wrong_type", "`text` is a string".into())),
    }
    match item.get("subject") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.chars().count() <= MAX_SUBJECT_CHARS => {
            record.insert("subject".into(), json!(s));
        }
        Some(_) => {
            return Err(invalid(
                "subject",
                "wrong_type",
                format!("`subject` is a string of at most {MAX_SUBJECT_CHARS} characters"),
            ));
        }
    }
    match item.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tags)) => {
            if tags.len() > MAX_TAGS {
                return Err(invalid(
                    "tags",
                    "too_many",
                    format!("at most {MAX_TAGS} tags"),
                ));
            }
            let mut clean = Vec::with_capacity(tags.len());
            for (i, tag) in tags.iter().enumerate() {
                match tag.as_str() {
                    Some(t)
                        if !t.is_empty()
                            && t.chars().count() <= MAX_TAG_CHARS
                            && !t.contains('|') =>
                    {
                        clean.push(json!(t));
                    }
                    _ => {
                        return Err(invalid(
                            &format!("tags/{i}"),
                            "invalid",
                            format!(
                                "a tag is a non-empty string of at most {MAX_TAG_CHARS} characters without `|`"
                            ),
                        ));
                    }
                }
            }
            record.insert("tags".into(), Value::Array(clean));
        }
        Some(_) => {
            return Err(invalid(
                "tags",
                "wrong_type",
                "`tags` is a list of strings".into(),
            ));
        }
    }
    match item.get("priority") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)) => {
            let p = n.as_f64().unwrap_or(0.5);
            record.insert("priority".into(), json!(format!("{p:.3}")));
        }
        Some(_) => {
            return Err(invalid(
                "priority",
                "out_of_range",
                "`priority` is a number from 0 to 1".into(),
            ));
        }
    }
    let occurred = match item.get("occurred_at") {
        None | Some(Value::Null) => now,
        Some(Value::String(t)) => match t.parse::<jiff::Timestamp>() {
            Ok(t) => t,
            Err(_) => {
                return Err(invalid(
                    "occurred_at",
                    "invalid_datetime",
                    "`occurred_at` is an RFC 3339 time such as 2026-03-01T12:00:00Z".into(),
                ));
            }
        },
        Some(_) => {
            return Err(invalid(
                "occurred_at",
                "wrong_type",
                "`occurred_at` is an RFC 3339 time".into(),
            ));
        }
    };
    record.insert("occurred_at".into(), json!(occurred.to_string()));
    match item.get("source") {
        None | Some(Value::Null) => {}
        Some(Value::Object(source)) => {
            let entity = source.get("entity").and_then(Value::as_str);
            let id = source.get("id").and_then(Value::as_str);
            match (entity, id) {
                (Some(e), Some(i))
                    if source.len() == 2
                        && prefiq_data::entity::schema::is_identifier(e)
                        && !i.is_empty()
                        && i.len() <= 140 =>
                {
                    record.insert("source_entity".into(), json!(e));
                    record.insert("source_id".into(), json!(i));
                }
                _ => {
                    return Err(invalid(
                        "source",
                        "invalid",
                        "`source` is {entity, id}: an entity name and a record id".into(),
                    ));
                }
            }
        }
        Some(_) => {
            return Err(invalid(
                "source",
                "wrong_type",
                "`source` is {entity, id}".into(),
            ));
        }
    }
    match item.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            let size = serde_json::to_string(m)
                .map(|s| s.len())
                .unwrap_or(usize::MAX);
            if size > MAX_METADATA_BYTES {
                return Err(invalid(
                    "metadata",
                    "too_long",
                    format!("`metadata` is at most {MAX_METADATA_BYTES} bytes of JSON"),
                ));
            }
            record.insert("metadata".into(), Value::Object(m.clone()));
        }
        Some(_) => {
            return Err(invalid(
                "metadata",
                "wrong_type",
                "`metadata` is an object".into(),
            ));
        }
    }
    Ok(Value::Object(record))
}

/// A stored `memory_item` record as the memory API shows it, in `tier`.
pub fn to_api(record: &Value, tier: &str) -> Value {
    let get = |k: &str| record.get(k).cloned().unwrap_or(Value::Null);
    let priority = record
        .get("priority")
        .and_then(|p| match p {
            Value::String(s) => s.parse::<f64>().ok(),
            Value::Number(n) => n.as_f64(),
            _ => None,
        })
        .map_or(Value::Null, |p| json!(p));
    let source = match (
        record.get("source_entity").and_then(Value::as_str),
        record.get("source_id").and_then(Value::as_str),
    ) {
        (Some(entity), Some(id)) => json!({"entity": entity, "id": id}),
        _ => Value::Null,
    };
    json!({
        "id": get("id"),
        "kind": get("kind"),
        "text": get("text"),
        "subject": get("subject"),
        "tags": match get("tags") { Value::Null => json!([]), t => t },
        "priority": priority,
        "occurred_at": get("occurred_at"),
        "source": source,
        "metadata": get("metadata"),
        "tier": tier,
        "created_at": get("created_at"),
        "created_by": get("created_by"),
    })
}

/// The index's view of a record's fields: `(kind, text, subject, tags, occurred_at_ms,
/// priority_permille, source)`; `None` when the record has no text.
pub type IndexFields = (
    String,
    String,
    Option<String>,
    Vec<String>,
    i64,
    i64,
    Option<(String, String)>,
);

/// What the index keeps of a `memory_item` record (an event's data).
pub fn index_fields(record: &Value, now_ms: i64) -> Option<IndexFields> {
    let text = record.get("text")?.as_str()?.to_owned();
    if text.is_empty() {
        return None;
    }
    let kind = record
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("note")
        .to_owned();
    let subject = record
        .get("subject")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let tags = record
        .get("tags")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let occurred = record
        .get("occurred_at")
        .and_then(Value::as_str)
        .and_then(parse_time)
        .unwrap_or(now_ms);
    let priority = record
        .get("priority")
        .and_then(|p| match p {
            Value::String(s) => s.parse::<f64>().ok(),
            Value::Number(n) => n.as_f64(),
            _ => None,
        })
        .unwrap_or(0.5);
    let source = match (
        record.get("source_entity").and_then(Value::as_str),
        record.get("source_id").and_then(Value::as_str),
    ) {
        (Some(e), Some(i)) => Some((e.to_owned(), i.to_owned())),
        _ => None,
    };
    Some((
        kind,
        text,
        subject,
        tags,
        occurred,
        (priority * 1000.0).round().clamp(0.0, 1000.0) as i64,
        source,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-03-01T12:00:00Z"
            .parse()
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// Checks `item` and compares the record (or the error's pointer and code).
    fn check(item: Value, expected: Result<Value, (&str, &str)>) {
        let got = check_new(&item, "", now()).map_err(|e| match e {
            MemoryError::Repo(prefiq_data::entity::repo::RepoError::Invalid(errors)) => {
                (errors[0].pointer.clone(), errors[0].code)
            }
            other => (other.to_string(), "other"),
        });
        let expected = expected.map_err(|(p, c)| (p.to_owned(), c));
        assert_eq!(got, expected, "{item}");
    }

    #[test]
    fn new_items_become_records() {
        check(
            json!({"text": "hello"}),
            Ok(json!({"kind": "note", "text": "hello", "occurred_at": "2026-03-01T12:00:00Z"})),
        );
        check(
            json!({"kind": "fact", "text": "Maria lives in Lisbon", "subject": "maria", "tags": ["home"], "priority": 0.9,
                   "occurred_at": "2026-01-02T03:04:05+01:00", "source": {"entity": "todo", "id": "x"}, "metadata": {"a": 1}}),
            Ok(
                json!({"kind": "fact", "text": "Maria lives in Lisbon", "subject": "maria", "tags": ["home"], "priority": "0.900",
                      "occurred_at": "2026-01-02T02:04:05Z", "source_entity": "todo", "source_id": "x", "metadata": {"a": 1}}),
            ),
        );
    }

    #[test]
    fn bad_items_name_their_pointer() {
        check(json!([]), Err(("", "wrong_type")));
        check(json!({}), Err(("/text", "required")));
        check(json!({"text": "  "}), Err(("/text", "required")));
        check(json!({"text": 5}), Err(("/text", "wrong_type")));
        check(
            json!({"text": "x".repeat(MAX_TEXT_BYTES + 1)}),
            Err(("/text", "too_long")),
        );
        check(
            json!({"text": "x", "kind": "dream"}),
            Err(("/kind", "invalid_option")),
        );
        check(
            json!({"text": "x", "colour": 1}),
            Err(("/colour", "unknown_field")),
        );
        check(
            json!({"text": "x", "priority": 1.5}),
            Err(("/priority", "out_of_range")),
        );
        check(
            json!({"text": "x", "priority": "high"}),
            Err(("/priority", "out_of_range")),
        );
        check(
            json!({"text": "x", "tags": ["a", ""]}),
            Err(("/tags/1", "invalid")),
        );
        check(
            json!({"text": "x", "tags": "a"}),
            Err(("/tags", "wrong_type")),
        );
        check(
            json!({"text": "x", "occurred_at": "tomorrow"}),
            Err(("/occurred_at", "invalid_datetime")),
        );
        check(
            json!({"text": "x", "source": {"entity": "Bad Name", "id": "1"}}),
            Err(("/source", "invalid")),
        );
        check(
            json!({"text": "x", "metadata": [1]}),
            Err(("/metadata", "wrong_type")),
        );
    }

    #[test]
    fn a_text_of_exactly_ten_kilobytes_is_taken() {
        let text = "é".repeat(MAX_TEXT_BYTES / 2);
        assert!(check_new(&json!({"text": text}), "", now()).is_ok());
    }
}
