//! The `custom` property of a record: the tenant's custom fields.
//!
//! Custom fields are defined per tenant at run time, so the generated document and the
//! entity schemas describe `custom` without them, and a request that knows its tenant
//! fills them in with [`with_custom_fields`]. `custom` is written by create and PATCH like
//! any field (`{"custom": {"cf_region": "EU"}}`), so it is never read-only.

use prefiq_data::entity::{EntityRegistry, FieldDef};
use serde_json::{Map, Value, json};

use super::{SchemaMode, field_json_schema};

/// The `custom` property of a record in `mode` with the custom fields `fields`.
///
/// Reading, it is an object holding every field (and maybe fields added since); writing,
/// it may be left out or null (no change), and a field that is not one of `fields` is
/// refused.
pub fn custom_property(fields: &[FieldDef], registry: &EntityRegistry, mode: SchemaMode) -> Value {
    let properties: Map<String, Value> = fields
        .iter()
        .map(|f| (f.name.clone(), field_json_schema(f, registry, mode)))
        .collect();
    let required = required_custom_fields(fields, mode);
    // Null is no change, which a create with a required custom field cannot be.
    let kind = if mode == SchemaMode::Read || !required.is_empty() {
        json!("object")
    } else {
        json!(["object", "null"])
    };
    // Read, a record may carry custom fields the tenant added after a client fetched this
    // document (schemathesis met one, added by an earlier call of the same run); written,
    // a field that is not one of `fields` is refused.
    let mut custom = json!({
        "type": kind,
        "description": "The tenant's custom fields.",
        "properties": properties,
        "additionalProperties": mode == SchemaMode::Read,
    });
    if !required.is_empty() {
        custom["required"] = json!(required);
    }
    custom
}

/// The custom fields a create must give: required ones without a default.
fn required_custom_fields(fields: &[FieldDef], mode: SchemaMode) -> Vec<&str> {
    fields
        .iter()
        .filter(|f| mode == SchemaMode::Create && f.required && f.default.is_none())
        .map(|f| f.name.as_str())
        .collect()
}

/// Puts the custom fields `fields` into `record`, a record schema in `mode` (an entity's
/// component or the body of `/api/v1/schema/{entity}`). A create whose custom fields
/// include a required one without a default must send `custom`.
pub fn with_custom_fields(
    record: &mut Value,
    fields: &[FieldDef],
    registry: &EntityRegistry,
    mode: SchemaMode,
) {
    let Some(object) = record.as_object_mut() else {
        return;
    };
    if let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert("custom".into(), custom_property(fields, registry, mode));
    }
    if mode == SchemaMode::Create && !required_custom_fields(fields, mode).is_empty() {
        match object.get_mut("required").and_then(Value::as_array_mut) {
            Some(required) => {
                if !required.contains(&json!("custom")) {
                    required.push(json!("custom"));
                }
            }
            None => {
                object.insert("required".into(), json!(["custom"]));
            }
        }
    }
}
