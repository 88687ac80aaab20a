//! The `filters` of a search: the list API's `[field, op, value]` triples on `kind`,
//! `subject`, `tags` and `occurred_at`, plus `as_of`. One parsed form serves both
//! retrievers: SQL conditions for the keyword search and a predicate on the index's
//! per-item facts for the vector search.

use prefiq_data::entity::repo::FieldError;
use prefiq_data::entity::sql::{Arg, Sql};
use serde_json::Value;

/// The most filters a search takes.
pub const MAX_FILTERS: usize = 20;

/// The most values an `in` list takes.
pub const MAX_VALUES: usize = 100;

/// The kinds of item.
pub const KINDS: [&str; 4] = ["episode", "fact", "note", "record"];

/// What the vector search knows of an item without reading its row.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// Its kind.
    pub kind: String,
    /// Its subject.
    pub subject: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// When it happened (unix milliseconds).
    pub occurred_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn sql(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Ne => "<>",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }

    fn holds(self, a: i64, b: i64) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    /// The kind is (or, negated, is not) one of these.
    Kind { any: Vec<String>, negated: bool },
    /// The subject is (or is not) one of these.
    Subject { any: Vec<String>, negated: bool },
    /// The subject matches (or not) a `like` pattern, case-insensitively.
    SubjectLike { pattern: String, negated: bool },
    /// The subject is set (or not).
    SubjectSet(bool),
    /// The item has one of these tags (or, negated, none of them).
    Tags { any: Vec<String>, negated: bool },
    /// `occurred_at` compared with a time.
    Occurred { cmp: Cmp, at_ms: i64 },
}

/// Parsed filters; empty selects every item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    conditions: Vec<Condition>,
}

fn invalid(pointer: String, code: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        pointer,
        code,
        message: message.into(),
    }
}

/// An RFC 3339 time as unix milliseconds.
pub fn parse_time(value: &str) -> Option<i64> {
    value
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

fn strings(value: &Value, pointer: &str, many: bool) -> Result<Vec<String>, FieldError> {
    let list: Vec<&Value> = match (value, many) {
        (Value::Array(items), true) => items.iter().collect(),
        (Value::String(_), false) => vec![value],
        (_, true) => {
            return Err(invalid(
                pointer.to_owned(),
                "wrong_type",
                "`in` and `not in` take a list of strings",
            ));
        }
        (_, false) => {
            return Err(invalid(
                pointer.to_owned(),
                "wrong_type",
                "the value is a string",
            ));
        }
    };
    if list.is_empty() || list.len() > MAX_VALUES {
        return Err(invalid(
            pointer.to_owned(),
            "out_of_range",
            format!("a list holds between 1 and {MAX_VALUES} values"),
        ));
    }
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid(pointer.to_owned(), "wrong_type", "the values are strings"))
        })
        .collect()
}

impl Filters {
    /// Parses `[[field, op, value], ...]` (pointers under `/filters`) and `as_of`.
    pub fn parse(filters: Option<&Value>, as_of: Option<&str>) -> Result<Filters, FieldError> {
        let mut conditions = Vec::new();
        if let Some(as_of) = as_of {
            let at_ms = parse_time(as_of).ok_or_else(|| {
                invalid(
                    "/as_of".into(),
                    "invalid_datetime",
                    "`as_of` is an RFC 3339 time such as 2026-03-01T12:00:00Z",
                )
            })?;
            conditions.push(Condition::Occurred {
                cmp: Cmp::Le,
                at_ms,
            });
        }
        let list = match filters {
            None | Some(Value::Null) => &Vec::new(),
            Some(Value::Array(list)) => list,
            Some(_) => {
                return Err(invalid(
                    "/filters".into(),
                    "wrong_type",
                    "filters are a JSON array of [field, op, value] triples",
                ));
            }
        };
        if list.len() > MAX_FILTERS {
            return Err(invalid(
                "/filters".into(),
                "too_many",
                format!("at most {MAX_FILTERS} filters"),
            ));
        }
        for (i, triple) in list.iter().enumerate() {
            let Some([field, op, value]) = triple
                .as_array()
                .and_then(|a| <&[Value; 3]>::try_from(a.as_slice()).ok())
            else {
                return Err(invalid(
                    format!("/filters/{i}"),
                    "wrong_type",
                    "a filter is [field, op, value]",
                ));
            };
            let at = |j: usize| format!("/filters/{i}/{j}");
            let field = field
                .as_str()
                .ok_or_else(|| invalid(at(0), "wrong_type", "the field is a string"))?;
            let op = op
                .as_str()
                .ok_or_else(|| invalid(at(1), "wrong_type", "the operator is a string"))?
                .to_ascii_lowercase();
            let unsupported = || {
                invalid(
                    at(1),
                    "unsupported_operator",
                    format!("`{op}` does not apply to `{field}`"),
                )
            };
            let condition = match field {
                "kind" | "subject" | "tags"
                    if ["=", "!=", "in", "not in"].contains(&op.as_str()) =>
                {
                    let many = op.ends_with("in");
                    let any = strings(value, &at(2), many)?;
                    let negated = op.starts_with('!') || op.starts_with("not");
                    if field == "kind"
                        && let Some(bad) = any.iter().find(|k| !KINDS.contains(&k.as_str()))
                    {
                        return Err(invalid(
                            at(2),
                            "invalid_option",
                            format!("`{bad}` is not a kind; kinds are {}", KINDS.join(", ")),
                        ));
                    }
                    match field {
                        "kind" => Condition::Kind { any, negated },
                        "subject" => Condition::Subject { any, negated },
                        _ => Condition::Tags { any, negated },
                    }
                }
                "subject" if op == "like" || op == "not like" => Condition::SubjectLike {
                    pattern: strings(value, &at(2), false)?.remove(0).to_lowercase(),
                    negated: op == "not like",
                },
                "subject" if op == "is" => match value.as_str() {
                    Some("set") => Condition::SubjectSet(true),
                    Some("not set") => Condition::SubjectSet(false),
                    _ => {
                        return Err(invalid(
                            at(2),
                            "wrong_type",
                            "`is` takes `set` or `not set`",
                        ));
                    }
                },
                "occurred_at" => {
                    let cmp = match op.as_str() {
                        "=" => Cmp::Eq,
                        "!=" => Cmp::Ne,
                        "<" => Cmp::Lt,
                        "<=" => Cmp::Le,
                        ">" => Cmp::Gt,
                        ">=" => Cmp::Ge,
                        "between" => {
                            let bounds = value
                                .as_array()
                                .filter(|b| b.len() == 2)
                                .and_then(|b| {
                                    Some((parse_time(b[0].as_str()?)?, parse_time(b[1].as_str()?)?))
                                })
                                .ok_or_else(|| {
                                    invalid(
                                        at(2),
                                        "wrong_type",
                                        "`between` takes two RFC 3339 times",
                                    )
                                })?;
                            conditions.push(Condition::Occurred {
                                cmp: Cmp::Ge,
                                at_ms: bounds.0,
                            });
                            conditions.push(Condition::Occurred {
                                cmp: Cmp::Le,
                                at_ms: bounds.1,
                            });
                            continue;
                        }
                        _ => return Err(unsupported()),
                    };
                    let at_ms = value.as_str().and_then(parse_time).ok_or_else(|| {
                        invalid(at(2), "invalid_datetime", "the value is an RFC 3339 time")
                    })?;
                    Condition::Occurred { cmp, at_ms }
                }
                "kind" | "subject" | "tags" => return Err(unsupported()),
                other => {
                    return Err(invalid(
                        at(0),
                        "unknown_field",
                        format!(
                            "`{other}` is not a filterable field; use kind, subject, tags or occurred_at"
                        ),
                    ));
                }
            };
            conditions.push(condition);
        }
        Ok(Filters { conditions })
    }

    /// Whether no condition applies.
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// Whether an item with these facts passes.
    pub fn matches(&self, facts: &Facts) -> bool {
        self.conditions.iter().all(|c| match c {
            Condition::Kind { any, negated } => any.contains(&facts.kind) != *negated,
            Condition::Subject { any, negated } => {
                facts.subject.as_ref().is_some_and(|s| any.contains(s)) != *negated
            }
            Condition::SubjectLike { pattern, negated } => {
                facts
                    .subject
                    .as_ref()
                    .is_some_and(|s| like(&s.to_lowercase(), pattern))
                    != *negated
            }
            Condition::SubjectSet(set) => facts.subject.is_some() == *set,
            Condition::Tags { any, negated } => {
                facts.tags.iter().any(|t| any.contains(t)) != *negated
            }
            Condition::Occurred { cmp, at_ms } => cmp.holds(facts.occurred_at_ms, *at_ms),
        })
    }

    /// The conditions as SQL on `memory_meta` aliased `alias`: empty, or ` AND …`.
    pub fn sql(&self, alias: &str, sql: &mut Sql) -> String {
        let mut out = String::new();
        for condition in &self.conditions {
            let text = match condition {
                Condition::Kind { any, negated } | Condition::Subject { any, negated } => {
                    let column = if matches!(condition, Condition::Kind { .. }) {
                        "kind"
                    } else {
                        "subject"
                    };
                    let list: Vec<String> = any
                        .iter()
                        .map(|v| sql.arg(Arg::Text(Some(v.clone()))))
                        .collect();
                    let not = if *negated { "NOT " } else { "" };
                    let null = if *negated && column == "subject" {
                        format!(" OR {alias}.subject IS NULL")
                    } else {
                        String::new()
                    };
                    format!("({alias}.{column} {not}IN ({}){null})", list.join(", "))
                }
                Condition::SubjectLike { pattern, negated } => {
                    let p = sql.arg(Arg::Text(Some(pattern.clone())));
                    if *negated {
                        format!("({alias}.subject IS NULL OR lower({alias}.subject) NOT LIKE {p})")
                    } else {
                        format!("lower({alias}.subject) LIKE {p}")
                    }
                }
                Condition::SubjectSet(set) => {
                    format!("{alias}.subject IS {}NULL", if *set { "NOT " } else { "" })
                }
                Condition::Tags { any, negated } => {
                    let each: Vec<String> = any
                        .iter()
                        .map(|t| {
                            let p =
                                sql.arg(Arg::Text(Some(format!("%|{}|%", t.replace('|', " ")))));
                            format!("{alias}.tags LIKE {p}")
                        })
                        .collect();
                    format!(
                        "{}({})",
                        if *negated { "NOT " } else { "" },
                        each.join(" OR ")
                    )
                }
                Condition::Occurred { cmp, at_ms } => {
                    let v = sql.arg(Arg::Int(Some(*at_ms)));
                    format!("{alias}.occurred_at {} {v}", cmp.sql())
                }
            };
            out.push_str(" AND ");
            out.push_str(&text);
        }
        out
    }
}

/// SQL `LIKE` on lower-cased text: `%` any run, `_` one character.
fn like(text: &str, pattern: &str) -> bool {
    fn go(t: &[char], p: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('%') => (0..=t.len()).any(|i| go(&t[i..], &p[1..])),
            Some('_') => !t.is_empty() && go(&t[1..], &p[1..]),
            Some(c) => t.first() == Some(c) && go(&t[1..], &p[1..]),
        }
    }
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().take(200).collect();
    go(&t, &p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> Facts {
        Facts {
            kind: "fact".into(),
            subject: Some("maria".into()),
            tags: vec!["travel".into(), "plans".into()],
            occurred_at_ms: parse_time("2026-03-01T00:00:00Z").unwrap_or_default(),
        }
    }

    /// Parses `filters` (and `as_of`) and tells whether [`facts`] pass, or the pointer
    /// and code of the error.
    fn check(filters: Value, as_of: Option<&str>, expected: Result<bool, (&str, &str)>) {
        let got = Filters::parse(Some(&filters), as_of)
            .map(|f| f.matches(&facts()))
            .map_err(|e| (e.pointer.clone(), e.code));
        let expected = expected.map_err(|(p, c)| (p.to_owned(), c));
        assert_eq!(got, expected, "{filters} as_of {as_of:?}");
    }

    #[test]
    fn conditions_select_items() {
        check(json!([]), None, Ok(true));
        check(json!([["kind", "=", "fact"]]), None, Ok(true));
        check(json!([["kind", "!=", "fact"]]), None, Ok(false));
        check(json!([["kind", "in", ["note", "fact"]]]), None, Ok(true));
        check(
            json!([["kind", "not in", ["note", "fact"]]]),
            None,
            Ok(false),
        );
        check(json!([["subject", "=", "maria"]]), None, Ok(true));
        check(json!([["subject", "like", "mar%"]]), None, Ok(true));
        check(json!([["subject", "like", "%x%"]]), None, Ok(false));
        check(json!([["subject", "is", "set"]]), None, Ok(true));
        check(json!([["tags", "=", "travel"]]), None, Ok(true));
        check(json!([["tags", "in", ["work", "plans"]]]), None, Ok(true));
        check(
            json!([["tags", "not in", ["work", "plans"]]]),
            None,
            Ok(false),
        );
        check(
            json!([["occurred_at", "<", "2026-03-02T00:00:00Z"]]),
            None,
            Ok(true),
        );
        check(
            json!([["occurred_at", ">", "2026-03-02T00:00:00Z"]]),
            None,
            Ok(false),
        );
        check(
            json!([[
                "occurred_at",
                "between",
                ["2026-01-01T00:00:00Z", "2026-12-31T00:00:00Z"]
            ]]),
            None,
            Ok(true),
        );
        check(json!([]), Some("2026-02-01T00:00:00Z"), Ok(false));
        check(json!([]), Some("2026-03-01T00:00:00Z"), Ok(true));
    }

    #[test]
    fn bad_filters_name_their_pointer() {
        check(
            json!({"kind": "fact"}),
            None,
            Err(("/filters", "wrong_type")),
        );
        check(
            json!([["kind", "="]]),
            None,
            Err(("/filters/0", "wrong_type")),
        );
        check(
            json!([["colour", "=", "red"]]),
            None,
            Err(("/filters/0/0", "unknown_field")),
        );
        check(
            json!([["kind", "=", "dream"]]),
            None,
            Err(("/filters/0/2", "invalid_option")),
        );
        check(
            json!([["kind", "<", "fact"]]),
            None,
            Err(("/filters/0/1", "unsupported_operator")),
        );
        check(
            json!([["tags", "in", "x"]]),
            None,
            Err(("/filters/0/2", "wrong_type")),
        );
        check(
            json!([["tags", "in", []]]),
            None,
            Err(("/filters/0/2", "out_of_range")),
        );
        check(
            json!([["occurred_at", ">", "yesterday"]]),
            None,
            Err(("/filters/0/2", "invalid_datetime")),
        );
        check(json!([]), Some("soon"), Err(("/as_of", "invalid_datetime")));
    }

    #[test]
    fn sql_binds_every_value() {
        let filters = Filters::parse(
            Some(&json!([
                ["kind", "in", ["fact", "note"]],
                ["tags", "=", "x"],
                ["occurred_at", ">=", "2026-01-01T00:00:00Z"]
            ])),
            None,
        )
        .unwrap_or_default();
        let mut sql = Sql::default();
        let text = filters.sql("m", &mut sql);
        assert_eq!(
            text,
            " AND (m.kind IN ($1, $2)) AND (m.tags LIKE $3) AND m.occurred_at >= $4"
        );
        assert_eq!(sql.args.len(), 4);
    }
}
