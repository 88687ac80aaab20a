//! Tenant custom fields: defined at run time per tenant and entity, stored in the row's
//! `custom` JSON column, validated like declared fields, filterable and sortable as
//! `custom.NAME`, optionally indexed with a per-tenant expression index.

use serde_json::{Map, Value};

use super::schema::{EntitySchema, FieldDef, FieldKind, parse_schema};
use super::value::{Stored, coerce, to_json};

/// At most this many custom fields per tenant and entity.
pub const MAX_CUSTOM_FIELDS: usize = 1000;

/// The statement that makes `tenant`'s expression index on its custom field `field` of
/// `schema` (a field declared `indexed`): named after the tenant and the field, partial to
/// the tenant's rows. A tenant import makes it again for the tenant it creates.
pub fn index_statement(
    schema: &EntitySchema,
    field: &FieldDef,
    tenant: &str,
    backend: prefiq::Backend,
) -> String {
    use sha2::Digest as _;
    let column = super::filter::column(
        schema,
        std::slice::from_ref(field),
        &format!("custom.{}", field.name),
    );
    let expression = column.map(|c| c.raw(backend)).unwrap_or_default();
    let suffix: String = sha2::Sha256::digest(format!("{tenant}:{}", field.name).as_bytes())
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} (tenant_id, {expression}) WHERE tenant_id = {}",
        super::ddl::quote(&schema.index_name(&format!("cf_{suffix}"))),
        super::ddl::quote(schema.table()),
        super::ddl::literal(tenant)
    )
}

/// Parses a field definition (the shape of a field in an entity schema) for `entity`.
pub fn parse_definition(schema: &EntitySchema, body: &Value) -> Result<FieldDef, String> {
    if !body.is_object() {
        return Err(
            "a custom field is a JSON object such as {\"name\": \"cf_region\", \"type\": \"data\"}"
                .into(),
        );
    }
    let document = serde_json::json!({"name": schema.name, "fields": [body]}).to_string();
    let parsed = parse_schema("custom", "custom field", &document).map_err(|e| match e.field {
        Some(field) => format!("field `{field}`: {}", e.message),
        None => e.message,
    })?;
    let field = parsed.fields.into_iter().next().ok_or("no field given")?;
    if schema.field(&field.name).is_some() {
        return Err(format!(
            "`{}` is already a field of `{}`",
            field.name, schema.name
        ));
    }
    if matches!(
        field.kind,
        FieldKind::Table { .. } | FieldKind::Money | FieldKind::Link { .. }
    ) || field.unique
    {
        return Err("custom fields cannot be table, money or link fields, nor unique".into());
    }
    Ok(field)
}

/// A custom value in its storage form: numbers for int and decimal (scaled), strings,
/// booleans, or the JSON value itself.
fn storage_json(field: &FieldDef, stored: Stored) -> Option<Value> {
    match stored {
        Stored::Null | Stored::Money { .. } => None,
        Stored::Text(t) if matches!(field.kind, FieldKind::Json) => serde_json::from_str(&t).ok(),
        Stored::Text(t) => Some(Value::String(t)),
        Stored::Int(i) => Some(Value::from(i)),
        Stored::Bool(b) => Some(Value::Bool(b)),
    }
}

/// Converts a stored custom object to what the API shows; keys of removed fields are left out.
pub fn show(definitions: &[FieldDef], stored: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for field in definitions {
        let Some(value) = stored.get(&field.name) else {
            continue;
        };
        let stored = match (&field.kind, value) {
            (FieldKind::Json, v) => Stored::Text(v.to_string()),
            (_, Value::String(s)) => Stored::Text(s.clone()),
            (_, Value::Bool(b)) => Stored::Bool(*b),
            (_, Value::Number(n)) => n.as_i64().map_or(Stored::Null, Stored::Int),
            _ => Stored::Null,
        };
        out.insert(field.name.clone(), to_json(field, &stored));
    }
    out
}

/// Custom values in storage form and as the API shows them.
pub type CustomValues = (Map<String, Value>, Map<String, Value>);

/// One problem with a custom value: (pointer, code, message).
pub type CustomError = (String, &'static str, String);

/// Validates the `custom` object of a document. `current` is the stored record's custom
/// object as the API shows it (updates); on create, missing fields take their default.
/// Returns (storage form, API form).
pub fn validate(
    definitions: &[FieldDef],
    given: Option<&Value>,
    current: Option<&Value>,
    creating: bool,
) -> Result<CustomValues, Vec<CustomError>> {
    let mut errors = Vec::new();
    let given = match given {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return Err(vec![(
                "/custom".into(),
                "wrong_type",
                "`custom` is an object of custom field values".into(),
            )]);
        }
    };
    for key in given.keys() {
        if !definitions.iter().any(|f| &f.name == key) {
            errors.push((
                format!("/custom/{key}"),
                "unknown_field",
                format!("`{key}` is not a custom field of this entity"),
            ));
        }
    }
    let mut stored = Map::new();
    let mut shown = Map::new();
    for field in definitions {
        let pointer = format!("/custom/{}", field.name);
        let value = match (
            given.get(&field.name),
            current.and_then(|c| c.get(&field.name)),
        ) {
            (Some(v), _) => v.clone(),
            (None, Some(v)) => v.clone(),
            (None, None) if creating => field.default.clone().unwrap_or(Value::Null),
            (None, None) => Value::Null,
        };
        match coerce(field, &value) {
            Ok(value) => {
                let empty = matches!(&value, Stored::Null)
                    || matches!(&value, Stored::Text(t) if t.is_empty());
                if field.required && empty {
                    errors.push((pointer, "missing_required", "the field is required".into()));
                    continue;
                }
                shown.insert(field.name.clone(), to_json(field, &value));
                if let Some(json) = storage_json(field, value) {
                    stored.insert(field.name.clone(), json);
                }
            }
            Err(e) => errors.push((pointer, e.code, e.message)),
        }
    }
    if errors.is_empty() {
        Ok((stored, shown))
    } else {
        Err(errors)
    }
}
