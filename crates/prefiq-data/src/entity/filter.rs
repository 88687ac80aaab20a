//! List queries: Frappe-style filter triples, sort and keyset cursors, translated to SQL
//! with bound arguments (never spliced values).

use prefiq::Backend;
use serde_json::Value;

use super::ddl::quote;
use super::schema::{EntitySchema, FieldDef, FieldKind};
use super::sql::{Arg, Cell, Sql, SqlType};
use super::value::{Stored, coerce};

/// At most this many conditions in one list query.
pub const MAX_FILTERS: usize = 50;
/// At most this many values in an `in` list.
pub const MAX_IN_VALUES: usize = 500;
/// Largest page.
pub const MAX_LIMIT: u32 = 500;
/// Page size when none is asked for.
pub const DEFAULT_LIMIT: u32 = 20;

/// A problem with a list parameter: a JSON pointer into the parameter, a code, a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// Such as `/filters/0/1`.
    pub pointer: String,
    /// Such as `unknown_field`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

fn qerr(pointer: impl Into<String>, code: &'static str, message: impl Into<String>) -> QueryError {
    QueryError {
        pointer: pointer.into(),
        code,
        message: message.into(),
    }
}

/// A column a list can filter or sort on.
#[derive(Debug, Clone)]
pub struct Column {
    /// The name clients use.
    pub name: String,
    /// How it is stored.
    pub ty: SqlType,
    /// The field, for schema fields.
    pub field: Option<FieldDef>,
    /// A tenant custom field, stored in the `custom` JSON column.
    pub custom: bool,
    /// Whether the column can hold NULL; NOT NULL columns sort and page without the
    /// null-ordering term, so an index on them serves `ORDER BY` directly.
    pub nullable: bool,
}

const SYSTEM_TEXT: &[&str] = &[
    "id",
    "name",
    "created_at",
    "created_by",
    "modified_at",
    "modified_by",
];
const SYSTEM_INT: &[&str] = &["version", "docstatus"];

/// The filterable, sortable column `name` of `schema`; `custom.NAME` names one of the
/// tenant's `custom` fields.
pub fn column(schema: &EntitySchema, custom: &[FieldDef], name: &str) -> Option<Column> {
    if let Some(custom_name) = name.strip_prefix("custom.") {
        let field = custom.iter().find(|f| f.name == custom_name)?;
        let ty = match field.kind {
            FieldKind::Json => return None,
            FieldKind::Int | FieldKind::Decimal { .. } => SqlType::Int,
            FieldKind::Bool => SqlType::Bool,
            _ => SqlType::Text,
        };
        return Some(Column {
            name: field.name.clone(),
            ty,
            field: Some(field.clone()),
            custom: true,
            nullable: true,
        });
    }
    if SYSTEM_TEXT.contains(&name) {
        return Some(Column {
            name: name.to_owned(),
            ty: SqlType::Text,
            field: None,
            custom: false,
            nullable: name.ends_with("_by"),
        });
    }
    if SYSTEM_INT.contains(&name) {
        return Some(Column {
            name: name.to_owned(),
            ty: SqlType::Int,
            field: None,
            custom: false,
            nullable: false,
        });
    }
    let field = schema.field(name)?;
    let ty = match field.kind {
        FieldKind::Json | FieldKind::Table { .. } | FieldKind::Money => return None,
        FieldKind::Int | FieldKind::Decimal { .. } => SqlType::Int,
        FieldKind::Bool => SqlType::Bool,
        _ => SqlType::Text,
    };
    Some(Column {
        name: name.to_owned(),
        ty,
        field: Some(field.clone()),
        custom: false,
        nullable: true,
    })
}

impl Column {
    /// The column as an SQL expression. Text compares byte-wise on both backends (SQLite's
    /// default), so sorting and cursors agree between them.
    pub fn expr(&self, backend: Backend) -> String {
        // Table text columns are declared `COLLATE "C"` on PostgreSQL (see `ddl`), so only
        // text read out of the custom JSON needs the collation here.
        match (self.ty, backend, self.custom) {
            (SqlType::Text, Backend::Postgres, true) => {
                format!("{} COLLATE \"C\"", self.raw(backend))
            }
            _ => self.raw(backend),
        }
    }

    /// The column's value as an SQL expression, without a collation. A custom field is read
    /// out of the `custom` JSON with its type; the same expression backs its index.
    pub fn raw(&self, backend: Backend) -> String {
        if !self.custom {
            return quote(&self.name);
        }
        let key = self.name.replace('\'', "''");
        match (backend, self.ty) {
            (Backend::Sqlite, _) => format!("json_extract(custom, '$.\"{key}\"')"),
            (Backend::Postgres, SqlType::Text | SqlType::Bytes) => format!("(custom ->> '{key}')"),
            (Backend::Postgres, SqlType::Int) => format!("((custom ->> '{key}')::bigint)"),
            (Backend::Postgres, SqlType::Bool) => format!("((custom ->> '{key}')::boolean)"),
        }
    }

    /// Converts a client value for comparison with this column.
    fn arg(&self, value: &Value, pointer: &str) -> Result<Arg, QueryError> {
        if let Some(field) = &self.field {
            let stored = coerce(field, value).map_err(|e| qerr(pointer, e.code, e.message))?;
            return Ok(match (stored, self.ty) {
                (Stored::Null, SqlType::Text | SqlType::Bytes) => Arg::Text(None),
                (Stored::Null, SqlType::Int) => Arg::Int(None),
                (Stored::Null, SqlType::Bool) => Arg::Bool(None),
                (Stored::Text(t), _) => Arg::Text(Some(t)),
                (Stored::Int(i), _) => Arg::Int(Some(i)),
                (Stored::Bool(b), _) => Arg::Bool(Some(b)),
                (Stored::Money { .. }, _) => {
                    return Err(qerr(pointer, "wrong_type", "money cannot be compared"));
                }
            });
        }
        match self.ty {
            SqlType::Int => value
                .as_i64()
                .map(|i| Arg::Int(Some(i)))
                .ok_or_else(|| qerr(pointer, "wrong_type", "expected an integer")),
            _ => match value.as_str() {
                Some(text) if self.name.ends_with("_at") => super::value::normalize_datetime(text)
                    .map(|t| Arg::Text(Some(t)))
                    .ok_or_else(|| {
                        qerr(
                            pointer,
                            "invalid_datetime",
                            format!("`{text}` is not an RFC 3339 date-time"),
                        )
                    }),
                Some(text) => Ok(Arg::Text(Some(text.to_owned()))),
                None => Err(qerr(pointer, "wrong_type", "expected a string")),
            },
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `like`, case-insensitive on both backends.
    Like,
    /// `not like`.
    NotLike,
    /// `in`.
    In,
    /// `not in`.
    NotIn,
    /// `is` `set` / `not set`.
    Is,
    /// `between` two values, inclusive.
    Between,
    /// Tree entities, on `id`: rows strictly below the given row.
    DescendantsOf,
    /// Tree entities, on `id`: rows not strictly below the given row.
    NotDescendantsOf,
    /// Tree entities, on `id`: rows strictly above the given row.
    AncestorsOf,
    /// Tree entities, on `id`: rows not strictly above the given row.
    NotAncestorsOf,
}

impl Op {
    fn parse(text: &str) -> Option<Op> {
        Some(match text.to_ascii_lowercase().as_str() {
            "=" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "like" => Op::Like,
            "not like" => Op::NotLike,
            "in" => Op::In,
            "not in" => Op::NotIn,
            "is" => Op::Is,
            "between" => Op::Between,
            "descendants of" => Op::DescendantsOf,
            "not descendants of" => Op::NotDescendantsOf,
            "ancestors of" => Op::AncestorsOf,
            "not ancestors of" => Op::NotAncestorsOf,
            _ => return None,
        })
    }
}

/// One parsed filter.
#[derive(Debug, Clone)]
pub struct Condition {
    /// What is compared.
    pub column: Column,
    /// How.
    pub op: Op,
    /// With what (`is`: one `Bool`, true for `set`).
    pub args: Vec<Arg>,
    /// For the tree operators: the entity's table and its closure table.
    pub tree: Option<(String, String)>,
}

/// Parses `[["field", "op", value], ...]`.
pub fn parse_filters(
    schema: &EntitySchema,
    custom: &[FieldDef],
    filters: &Value,
) -> Result<Vec<Condition>, QueryError> {
    let Some(list) = filters.as_array() else {
        return Err(qerr(
            "/filters",
            "wrong_type",
            "filters are a JSON array of [field, op, value] triples",
        ));
    };
    if list.len() > MAX_FILTERS {
        return Err(qerr(
            "/filters",
            "too_many",
            format!("at most {MAX_FILTERS} filters"),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, triple) in list.iter().enumerate() {
        let at = |j: usize| format!("/filters/{i}/{j}");
        let Some([field, op, value]) = triple
            .as_array()
            .and_then(|a| <&[Value; 3]>::try_from(a.as_slice()).ok())
        else {
            return Err(qerr(
                format!("/filters/{i}"),
                "wrong_type",
                "a filter is [field, op, value]",
            ));
        };
        let name = field
            .as_str()
            .ok_or_else(|| qerr(at(0), "wrong_type", "the field is a string"))?;
        let column = column(schema, custom, name).ok_or_else(|| {
            qerr(
                at(0),
                "unknown_field",
                format!("`{name}` is not a filterable field of `{}`", schema.name),
            )
        })?;
        let op_text = op
            .as_str()
            .ok_or_else(|| qerr(at(1), "wrong_type", "the operator is a string"))?;
        let op = Op::parse(op_text).ok_or_else(|| {
            qerr(
                at(1),
                "unknown_operator",
                format!(
                    "`{op_text}` is not one of = != < <= > >= like not like in not in is between, descendants of, not descendants of, ancestors of, not ancestors of"
                ),
            )
        })?;
        let tree_op = matches!(
            op,
            Op::DescendantsOf | Op::NotDescendantsOf | Op::AncestorsOf | Op::NotAncestorsOf
        );
        let tree = match (tree_op, schema.tree_table()) {
            (false, _) => None,
            (true, Some(table)) if name == "id" => Some((schema.table().to_owned(), table)),
            (true, Some(_)) => {
                return Err(qerr(
                    at(0),
                    "wrong_type",
                    format!("`{op_text}` applies to `id`"),
                ));
            }
            (true, None) => {
                return Err(qerr(
                    at(1),
                    "wrong_type",
                    format!(
                        "`{op_text}` applies to tree entities, and `{}` is not one",
                        schema.name
                    ),
                ));
            }
        };
        let args = match op {
            Op::DescendantsOf | Op::NotDescendantsOf | Op::AncestorsOf | Op::NotAncestorsOf => {
                match value.as_str() {
                    Some(id) if !id.is_empty() && id.len() <= 140 => {
                        vec![Arg::Text(Some(id.to_owned()))]
                    }
                    _ => {
                        return Err(qerr(
                            at(2),
                            "wrong_type",
                            format!("`{op_text}` takes the id of a row"),
                        ));
                    }
                }
            }
            Op::Like | Op::NotLike if column.ty != SqlType::Text => {
                return Err(qerr(
                    at(1),
                    "wrong_type",
                    format!("`{op_text}` applies to text fields, and `{name}` is not one"),
                ));
            }
            Op::Like | Op::NotLike => match value.as_str() {
                Some(pattern) if pattern.len() <= 140 => vec![Arg::Text(Some(pattern.to_owned()))],
                _ => {
                    return Err(qerr(
                        at(2),
                        "wrong_type",
                        "a like pattern is a string of at most 140",
                    ));
                }
            },
            Op::In | Op::NotIn => {
                let values = value
                    .as_array()
                    .ok_or_else(|| qerr(at(2), "wrong_type", "`in` takes an array"))?;
                if values.len() > MAX_IN_VALUES {
                    return Err(qerr(
                        at(2),
                        "too_many",
                        format!("at most {MAX_IN_VALUES} values"),
                    ));
                }
                values
                    .iter()
                    .enumerate()
                    .map(|(k, v)| column.arg(v, &format!("{}/{k}", at(2))))
                    .collect::<Result<_, _>>()?
            }
            Op::Is => match value.as_str() {
                Some("set") => vec![Arg::Bool(Some(true))],
                Some("not set") => vec![Arg::Bool(Some(false))],
                _ => {
                    return Err(qerr(
                        at(2),
                        "wrong_type",
                        "`is` takes \"set\" or \"not set\"",
                    ));
                }
            },
            Op::Between => match value.as_array().map(Vec::as_slice) {
                Some([low, high]) => vec![
                    column.arg(low, &format!("{}/0", at(2)))?,
                    column.arg(high, &format!("{}/1", at(2)))?,
                ],
                _ => return Err(qerr(at(2), "wrong_type", "`between` takes [low, high]")),
            },
            _ => {
                let arg = column.arg(value, &at(2))?;
                if matches!(arg, Arg::Text(None) | Arg::Int(None) | Arg::Bool(None)) {
                    return Err(qerr(
                        at(2),
                        "wrong_type",
                        "compare with null using [\"field\", \"is\", \"not set\"]",
                    ));
                }
                vec![arg]
            }
        };
        out.push(Condition {
            column,
            op,
            args,
            tree,
        });
    }
    Ok(out)
}

/// Appends `condition` as SQL to `sql`'s arguments and returns the expression.
pub fn condition_sql(condition: &Condition, backend: Backend, sql: &mut Sql) -> String {
    let col = condition.column.expr(backend);
    let mut args = condition.args.iter().cloned();
    let mut next = |sql: &mut Sql| sql.arg(args.next().unwrap_or(Arg::Text(None)));
    let compare = |op: &str, sql: &mut Sql, next: &mut dyn FnMut(&mut Sql) -> String| {
        format!("{col} {op} {}", next(sql))
    };
    match condition.op {
        Op::Eq => compare("=", sql, &mut next),
        Op::Ne => format!("({col} <> {} OR {col} IS NULL)", next(sql)),
        Op::Lt => compare("<", sql, &mut next),
        Op::Le => compare("<=", sql, &mut next),
        Op::Gt => compare(">", sql, &mut next),
        Op::Ge => compare(">=", sql, &mut next),
        Op::Like => format!(
            "LOWER({}) LIKE LOWER({})",
            condition.column.raw(backend),
            next(sql)
        ),
        Op::NotLike => format!(
            "(LOWER({}) NOT LIKE LOWER({}) OR {} IS NULL)",
            condition.column.raw(backend),
            next(sql),
            condition.column.raw(backend)
        ),
        Op::In | Op::NotIn => {
            if condition.args.is_empty() {
                return if condition.op == Op::In {
                    "1 = 0".into()
                } else {
                    "1 = 1".into()
                };
            }
            let placeholders: Vec<String> =
                condition.args.iter().map(|a| sql.arg(a.clone())).collect();
            if condition.op == Op::In {
                format!("{col} IN ({})", placeholders.join(", "))
            } else {
                format!(
                    "({col} NOT IN ({}) OR {col} IS NULL)",
                    placeholders.join(", ")
                )
            }
        }
        Op::Is => {
            let set = matches!(condition.args.first(), Some(Arg::Bool(Some(true))));
            let name = condition.column.raw(backend);
            match (set, condition.column.ty) {
                (true, SqlType::Text) => format!("({name} IS NOT NULL AND {name} <> '')"),
                (true, _) => format!("{name} IS NOT NULL"),
                (false, SqlType::Text) => format!("({name} IS NULL OR {name} = '')"),
                (false, _) => format!("{name} IS NULL"),
            }
        }
        Op::Between => {
            let low = next(sql);
            let high = next(sql);
            format!("{col} BETWEEN {low} AND {high}")
        }
        Op::DescendantsOf | Op::NotDescendantsOf | Op::AncestorsOf | Op::NotAncestorsOf => {
            let Some((table, tree)) = &condition.tree else {
                return "1 = 0".into();
            };
            let node = next(sql);
            // Correlated on the outer row's tenant, so the lookup stays in the tenant.
            let (select, given) = match condition.op {
                Op::DescendantsOf | Op::NotDescendantsOf => ("descendant", "ancestor"),
                _ => ("ancestor", "descendant"),
            };
            let not = if matches!(condition.op, Op::NotDescendantsOf | Op::NotAncestorsOf) {
                "NOT "
            } else {
                ""
            };
            format!(
                "{}.id {not}IN (SELECT closure.{select} FROM {} closure WHERE closure.tenant_id = {}.tenant_id AND closure.{given} = {node} AND closure.depth > 0)",
                quote(table),
                quote(tree),
                quote(table)
            )
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending, nulls last.
    Asc,
    /// Descending, nulls first.
    Desc,
}

/// `order_by`: one column and a direction; ties break on `id` in the same direction.
#[derive(Debug, Clone)]
pub struct Order {
    /// The column.
    pub column: Column,
    /// The direction.
    pub direction: Direction,
}

/// Parses `field [asc|desc]`; the default is `modified_at desc`.
pub fn parse_order(
    schema: &EntitySchema,
    custom: &[FieldDef],
    text: Option<&str>,
) -> Result<Order, QueryError> {
    let text = text.unwrap_or("modified_at desc").trim();
    let mut parts = text.split_whitespace();
    let name = parts.next().unwrap_or_default();
    let direction = match parts.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => Direction::Asc,
        Some("desc") => Direction::Desc,
        Some(other) => {
            return Err(qerr(
                "/order_by",
                "wrong_type",
                format!("`{other}` is not asc or desc"),
            ));
        }
    };
    if parts.next().is_some() {
        return Err(qerr(
            "/order_by",
            "wrong_type",
            "order_by is one `field [asc|desc]`",
        ));
    }
    let column = column(schema, custom, name).ok_or_else(|| {
        qerr(
            "/order_by",
            "unknown_field",
            format!("`{name}` is not a sortable field of `{}`", schema.name),
        )
    })?;
    Ok(Order { column, direction })
}

impl Order {
    /// `ORDER BY ...` for this order.
    pub fn sql(&self, backend: Backend) -> String {
        let col = self.column.expr(backend);
        let name = self.column.raw(backend);
        if !self.column.nullable {
            return match self.direction {
                Direction::Asc => format!("ORDER BY {col} ASC, id ASC"),
                Direction::Desc => format!("ORDER BY {col} DESC, id DESC"),
            };
        }
        match self.direction {
            Direction::Asc => format!("ORDER BY ({name} IS NULL) ASC, {col} ASC, id ASC"),
            Direction::Desc => format!("ORDER BY ({name} IS NULL) DESC, {col} DESC, id DESC"),
        }
    }

    /// The condition selecting rows after the cursor position `(value, id)`.
    pub fn after_sql(&self, backend: Backend, value: &Cell, id: &str, sql: &mut Sql) -> String {
        let col = self.column.expr(backend);
        let name = self.column.raw(backend);
        let id_arg = sql.arg(Arg::Text(Some(id.to_owned())));
        let (cmp, id_cmp) = match self.direction {
            Direction::Asc => (">", ">"),
            Direction::Desc => ("<", "<"),
        };
        let value_arg = match value {
            Cell::Null => None,
            Cell::Text(t) => Some(Arg::Text(Some(t.clone()))),
            Cell::Int(i) => Some(Arg::Int(Some(*i))),
            Cell::Bool(b) => Some(Arg::Bool(Some(*b))),
            Cell::Bytes(b) => Some(Arg::Bytes(Some(b.clone()))),
        };
        let id_col = "id";
        if let (Some(v), false) = (&value_arg, self.column.nullable) {
            let v = sql.arg(v.clone());
            return format!("({col}, {id_col}) {cmp} ({v}, {id_arg})");
        }
        match (value_arg, self.direction) {
            (None, Direction::Asc) => format!("({name} IS NULL AND {id_col} {id_cmp} {id_arg})"),
            (None, Direction::Desc) => {
                format!("(({name} IS NULL AND {id_col} {id_cmp} {id_arg}) OR {name} IS NOT NULL)")
            }
            (Some(v), Direction::Asc) => {
                let v = sql.arg(v);
                format!(
                    "(({name} IS NOT NULL AND ({col} {cmp} {v} OR ({col} = {v} AND {id_col} {id_cmp} {id_arg}))) OR {name} IS NULL)"
                )
            }
            (Some(v), Direction::Desc) => {
                let v = sql.arg(v);
                format!(
                    "({name} IS NOT NULL AND ({col} {cmp} {v} OR ({col} = {v} AND {id_col} {id_cmp} {id_arg})))"
                )
            }
        }
    }
}

/// Encodes a cursor: the sort value and id of the last row of a page, as hex of JSON.
pub fn encode_cursor(value: &Cell, id: &str) -> String {
    let value = match value {
        Cell::Null => Value::Null,
        Cell::Text(t) => Value::String(t.clone()),
        Cell::Int(i) => Value::from(*i),
        Cell::Bool(b) => Value::Bool(*b),
        // No entity column is a BLOB; a cursor never holds one.
        Cell::Bytes(_) => Value::Null,
    };
    serde_json::json!([value, id])
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Decodes a cursor made by [`encode_cursor`] for a column of type `ty`.
pub fn decode_cursor(cursor: &str, ty: SqlType) -> Result<(Cell, String), QueryError> {
    let bad = || {
        qerr(
            "/cursor",
            "invalid_cursor",
            "the cursor is not one this server gave out for this order",
        )
    };
    // Only ASCII hex digits are sliced below: anything else could split a character.
    if cursor.len() > 4096
        || !cursor.len().is_multiple_of(2)
        || !cursor.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cursor[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let (Some(v), Some(id)) = (value.get(0), value.get(1).and_then(Value::as_str)) else {
        return Err(bad());
    };
    let cell = match (v, ty) {
        (Value::Null, _) => Cell::Null,
        (Value::String(t), SqlType::Text) => Cell::Text(t.clone()),
        (Value::Number(n), SqlType::Int) => Cell::Int(n.as_i64().ok_or_else(bad)?),
        (Value::Bool(b), SqlType::Bool) => Cell::Bool(*b),
        _ => return Err(bad()),
    };
    Ok((cell, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_with_non_ascii_characters_is_refused_not_a_panic() {
        for cursor in ["-\u{b0}\r", "\u{e9}\u{e9}", "zz", "abc", "", "7b7d"] {
            let result = decode_cursor(cursor, SqlType::Text);
            assert!(result.is_err(), "{cursor:?}");
        }
        let good = encode_cursor(&Cell::Text("2026-01-01".into()), "id-1");
        assert_eq!(
            decode_cursor(&good, SqlType::Text).ok(),
            Some((Cell::Text("2026-01-01".into()), "id-1".into()))
        );
    }
}
