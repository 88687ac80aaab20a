//! Rows and columns: how an entity maps to its select list and stored arguments, and back to a record.

use super::*;

/// How each selected column maps back to a record property.
#[derive(Debug, Clone)]
pub(super) enum Slot {
    System(&'static str, SqlType),
    Custom,
    Field(FieldDef),
    MoneyCurrency,
}

pub(super) fn sql_type(field: &FieldDef) -> SqlType {
    match field.kind {
        FieldKind::Int | FieldKind::Decimal { .. } | FieldKind::Money => SqlType::Int,
        FieldKind::Bool => SqlType::Bool,
        _ => SqlType::Text,
    }
}

pub(super) fn select_list(
    schema: &EntitySchema,
    backend: Backend,
) -> (String, Vec<Slot>, Vec<SqlType>) {
    let mut columns = Vec::new();
    let mut slots = Vec::new();
    for (name, ty) in SYSTEM_SELECT {
        columns.push((*name).to_owned());
        slots.push(Slot::System(name, *ty));
    }
    columns.push(if backend == Backend::Postgres {
        "custom::text".into()
    } else {
        "custom".into()
    });
    slots.push(Slot::Custom);
    if !schema.child {
        columns.push("amended_from".into());
        slots.push(Slot::System("amended_from", SqlType::Text));
    } else {
        columns.push("idx".into());
        slots.push(Slot::System("idx", SqlType::Int));
    }
    for field in schema.fields.iter().filter(|f| f.kind.has_column()) {
        let col = quote(&field.name);
        columns.push(
            if backend == Backend::Postgres && matches!(field.kind, FieldKind::Json) {
                format!("{col}::text")
            } else {
                col
            },
        );
        slots.push(Slot::Field(field.clone()));
        if matches!(field.kind, FieldKind::Money) {
            columns.push(quote(&format!("{}_currency", field.name)));
            slots.push(Slot::MoneyCurrency);
        }
    }
    let types = slots
        .iter()
        .map(|s| match s {
            Slot::System(_, ty) => *ty,
            Slot::Custom | Slot::MoneyCurrency => SqlType::Text,
            Slot::Field(f) => sql_type(f),
        })
        .collect();
    (columns.join(", "), slots, types)
}

pub(super) fn cell_to_stored(cell: &Cell) -> Stored {
    match cell {
        // No entity column is a BLOB.
        Cell::Null | Cell::Bytes(_) => Stored::Null,
        Cell::Text(t) => Stored::Text(t.clone()),
        Cell::Int(i) => Stored::Int(*i),
        Cell::Bool(b) => Stored::Bool(*b),
    }
}

pub(super) fn cell_json(cell: &Cell) -> Value {
    match cell {
        Cell::Null | Cell::Bytes(_) => Value::Null,
        Cell::Text(t) => Value::String(t.clone()),
        Cell::Int(i) => Value::from(*i),
        Cell::Bool(b) => Value::Bool(*b),
    }
}

pub(super) fn row_to_record(slots: &[Slot], cells: &[Cell]) -> Map<String, Value> {
    let mut record = Map::new();
    let mut i = 0;
    while i < slots.len() {
        match &slots[i] {
            Slot::System(name, _) => {
                record.insert((*name).to_owned(), cell_json(&cells[i]));
            }
            Slot::Custom => {
                let custom = match &cells[i] {
                    Cell::Text(t) => serde_json::from_str(t).unwrap_or_else(|_| json!({})),
                    _ => json!({}),
                };
                record.insert("custom".into(), custom);
            }
            Slot::Field(field) if matches!(field.kind, FieldKind::Money) => {
                let stored = match (&cells[i], cells.get(i + 1)) {
                    (Cell::Int(minor), Some(Cell::Text(currency))) => Stored::Money {
                        minor: *minor,
                        currency: currency.clone(),
                    },
                    _ => Stored::Null,
                };
                record.insert(field.name.clone(), to_json(field, &stored));
                i += 1;
            }
            Slot::Field(field) => {
                record.insert(
                    field.name.clone(),
                    to_json(field, &cell_to_stored(&cells[i])),
                );
            }
            Slot::MoneyCurrency => {}
        }
        i += 1;
    }
    record
}

/// Values of one validated document: column values and child rows per table field.
#[derive(Debug, Default)]
pub(super) struct Validated {
    pub(super) columns: Vec<(FieldDef, Stored)>,
    pub(super) children: Vec<(FieldDef, Arc<EntitySchema>, Vec<Validated>)>,
    /// Custom field values: (storage form, API form); `None` for child rows.
    pub(super) custom: Option<custom::CustomValues>,
    /// The table of each entity a link field names (a runtime entity's is not its name).
    pub(super) link_tables: std::collections::BTreeMap<String, String>,
}

pub(super) fn stored_args(field: &FieldDef, stored: &Stored) -> Vec<Arg> {
    match (&field.kind, stored) {
        (FieldKind::Money, Stored::Money { minor, currency }) => {
            vec![Arg::Int(Some(*minor)), Arg::Text(Some(currency.clone()))]
        }
        (FieldKind::Money, _) => vec![Arg::Int(None), Arg::Text(None)],
        (_, Stored::Null) => vec![match sql_type(field) {
            SqlType::Text => Arg::Text(None),
            SqlType::Int => Arg::Int(None),
            SqlType::Bool => Arg::Bool(None),
            SqlType::Bytes => Arg::Bytes(None),
        }],
        (_, Stored::Text(t)) => vec![Arg::Text(Some(t.clone()))],
        (_, Stored::Int(i)) => vec![Arg::Int(Some(*i))],
        (_, Stored::Bool(b)) => vec![Arg::Bool(Some(*b))],
        (_, Stored::Money { .. }) => vec![Arg::Text(None)],
    }
}

pub(super) fn column_names(field: &FieldDef) -> Vec<String> {
    let mut out = vec![quote(&field.name)];
    if matches!(field.kind, FieldKind::Money) {
        out.push(quote(&format!("{}_currency", field.name)));
    }
    out
}

pub(super) fn placeholder(sql: &mut Sql, arg: Arg, field: &FieldDef, backend: Backend) -> String {
    let p = sql.arg(arg);
    if backend == Backend::Postgres && matches!(field.kind, FieldKind::Json) {
        format!("{p}::jsonb")
    } else {
        p
    }
}

pub(super) fn object(value: Value, pointer: &str) -> Result<Map<String, Value>, RepoError> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(RepoError::Invalid(vec![field_error(
            pointer,
            "wrong_type",
            "expected a JSON object",
        )])),
    }
}

/// The `version` of a stored record.
pub(super) fn stored_version(record: &Map<String, Value>) -> i64 {
    record.get("version").and_then(Value::as_i64).unwrap_or(0)
}

/// The `docstatus` of a stored record (0 draft, 1 submitted, 2 cancelled).
pub(super) fn docstatus(record: &Map<String, Value>) -> Option<i64> {
    record.get("docstatus").and_then(Value::as_i64)
}

pub(super) fn child_record(slots: &[Slot], cells: &[Cell]) -> Map<String, Value> {
    let mut record = row_to_record(slots, cells);
    for system in [
        "name",
        "created_at",
        "created_by",
        "modified_at",
        "modified_by",
        "version",
        "docstatus",
        "custom",
    ] {
        record.remove(system);
    }
    record
}
