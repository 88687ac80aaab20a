//! OpenAPI 3.1 and JSON Schema generated from entity schemas.
//!
//! Pure functions of the [`EntityRegistry`]: [`entity_json_schema`] describes one entity's
//! record as JSON Schema (draft 2020-12) for reading, creating or updating it, and
//! [`openapi_document`] describes the whole resource API. The schemas follow the wire format
//! of [`prefiq_data::entity::value`]: decimals and money amounts are strings, dates are
//! `YYYY-MM-DD`, date-times RFC 3339, links carry the linked row's id.

use prefiq_data::entity::schema::Naming;
use prefiq_data::entity::{EntityRegistry, EntitySchema, FieldDef, FieldKind};
use serde_json::{Map, Value, json};

use crate::PROBLEM_JSON;

mod custom;
mod describe;
mod shared;

pub use custom::{custom_property, with_custom_fields};
pub use describe::{ApiDescription, DescriptionError, merge_descriptions};

/// The JSON Schema dialect of [`entity_json_schema`].
const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// Most child rows a `table` field holds.
const MAX_CHILD_ROWS: u32 = 1000;

/// Largest page a list returns.
const MAX_LIMIT: u32 = 500;

/// Page size of a list when `limit` is not given.
const DEFAULT_LIMIT: u32 = 20;

/// Operators a list filter may use.
const FILTER_OPERATORS: &[&str] = &[
    "=", "!=", "<", "<=", ">", ">=", "like", "not like", "in", "not in", "is", "between",
];

/// Which shape of a record a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaMode {
    /// A record as the API returns it: system properties and every field.
    Read,
    /// A create request body: the fields clients may set; required ones without a default
    /// must be given.
    Create,
    /// A partial update (PATCH) body: the fields clients may set, none required.
    Update,
}

/// JSON Schema (draft 2020-12) of one entity's record in the given mode.
///
/// `table` fields hold rows of their child entity, looked up in `registry`; the rows are
/// described inline, so the schema stands alone.
pub fn entity_json_schema(
    schema: &EntitySchema,
    registry: &EntityRegistry,
    mode: SchemaMode,
) -> Value {
    let mut value = record_schema(schema, registry, mode);
    if let Value::Object(object) = &mut value {
        object.insert("$schema".into(), json!(DRAFT_2020_12));
    }
    value
}

/// The JSON Schema of one field's value (used for a tenant's custom fields).
pub fn field_json_schema(field: &FieldDef, registry: &EntityRegistry, mode: SchemaMode) -> Value {
    field_schema(field, registry, mode)
}

/// The generated part of the OpenAPI 3.1.0 document: every non-child entity in the
/// registry and the built-in routes.
///
/// Each entity `E` gets the components `E` (a record), `E_create` and `E_update` (request
/// bodies) and the paths under `/api/v1/resources/E`; child entities only appear inside
/// their parents' `table` fields. Modules describe their own routes in an
/// [`ApiDescription`], which [`merge_descriptions`] adds; the shared problem responses
/// (`#/components/responses/NotFound`, …) and the `Tenant` parameter are here for them.
pub fn openapi_document(registry: &EntityRegistry, version: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut tags =
        vec![json!({"name": SYSTEM_TAG, "description": "Health, readiness and API description."})];
    schemas.insert("Problem".into(), problem_schema());
    schemas.insert("Readiness".into(), readiness_schema());
    for (path, item) in builtin_paths() {
        paths.insert(path, item);
    }
    // `all` is ordered by name, so the document is the same on every run.
    for schema in registry.all().filter(|s| !s.child) {
        let name = schema.name.as_str();
        for (suffix, mode) in [
            ("", SchemaMode::Read),
            ("_create", SchemaMode::Create),
            ("_update", SchemaMode::Update),
        ] {
            schemas.insert(
                format!("{name}{suffix}"),
                record_schema(schema, registry, mode),
            );
        }
        tags.push(json!({"name": name, "description": schema.label}));
        for (path, item) in entity_paths(schema) {
            paths.insert(path, item);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Codexion",
            "version": version,
            "description": "The Codexion ERP API. Errors are RFC 9457 problem details \
                (`application/problem+json`, schema `Problem`), including 5xx responses, which \
                operations do not list.",
        },
        "tags": tags,
        "paths": paths,
        // A bearer token from `POST /api/v1/auth/login`; anonymous calls are accepted only
        // by installations without an identity module.
        "security": [{"bearer": []}, {}],
        "components": {
            "schemas": schemas,
            "responses": shared::responses(),
            "parameters": shared::parameters(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    })
}

// ---------------------------------------------------------------------------------------
// JSON Schema of records and fields

/// A record's schema without `$schema`, as it sits in the document's components.
///
/// A child entity's record is a row of its parent's `table` field: `id`, `idx` and the
/// fields. Rows are written as a whole list, also in a PATCH, so when writing each row follows
/// the create rules; `id` and `idx` may be echoed back and are ignored.
fn record_schema(schema: &EntitySchema, registry: &EntityRegistry, mode: SchemaMode) -> Value {
    let mode = if schema.child && mode == SchemaMode::Update {
        SchemaMode::Create
    } else {
        mode
    };
    let mut properties = Map::new();
    let mut required = Vec::new();
    if schema.child {
        properties.insert(
            "id".into(),
            json!({"type": "string", "readOnly": true, "description": "The row's id."}),
        );
        properties.insert(
            "idx".into(),
            json!({"type": "integer", "readOnly": true, "description": "The row's position in the table, from 0."}),
        );
        if mode == SchemaMode::Read {
            required.extend([json!("id"), json!("idx")]);
        }
    } else if mode == SchemaMode::Read {
        for (name, property) in system_properties(&schema.naming) {
            required.push(json!(name));
            properties.insert(name.into(), property);
        }
        required.push(json!("custom"));
        properties.insert("custom".into(), custom_property(&[], registry, mode));
        if schema.submittable {
            properties.insert(
                "amended_from".into(),
                json!({"type": ["string", "null"], "readOnly": true, "description": "The id of the cancelled record this one amends."}),
            );
        }
    } else {
        // Writable: a create or PATCH may set the tenant's custom fields (none here; a
        // request that knows its tenant adds them with `with_custom_fields`).
        properties.insert("custom".into(), custom_property(&[], registry, mode));
    }
    for field in writable(schema, mode) {
        properties.insert(field.name.clone(), field_schema(field, registry, mode));
        if mode == SchemaMode::Create && field.required && field.default.is_none() {
            required.push(json!(field.name));
        }
    }
    let mut object = Map::new();
    object.insert("title".into(), json!(schema.label));
    object.insert("type".into(), json!("object"));
    object.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        object.insert("required".into(), Value::Array(required));
    }
    if mode != SchemaMode::Read {
        object.insert("additionalProperties".into(), json!(false));
    }
    object.insert("x-entity".into(), json!(schema.name));
    Value::Object(object)
}

/// The fields a schema in `mode` lists: all when reading, the settable ones when writing.
fn writable(schema: &EntitySchema, mode: SchemaMode) -> impl Iterator<Item = &FieldDef> {
    schema
        .fields
        .iter()
        .filter(move |f| mode == SchemaMode::Read || !f.read_only)
}

/// The system properties of a record, all read-only.
fn system_properties(naming: &Naming) -> Vec<(&'static str, Value)> {
    let name = match naming {
        Naming::Uuid => "The record's name: its id.".to_owned(),
        Naming::Series(series) => format!("The record's name, from the naming series `{series}`."),
    };
    vec![
        (
            "id",
            json!({"type": "string", "readOnly": true, "description": "The record's id (a UUIDv7)."}),
        ),
        (
            "name",
            json!({"type": "string", "readOnly": true, "description": name}),
        ),
        (
            "created_at",
            json!({"type": "string", "format": "date-time", "readOnly": true, "description": "When the record was created (UTC)."}),
        ),
        (
            "created_by",
            json!({"type": ["string", "null"], "readOnly": true, "description": "Who created the record."}),
        ),
        (
            "modified_at",
            json!({"type": "string", "format": "date-time", "readOnly": true, "description": "When the record was last changed (UTC)."}),
        ),
        (
            "modified_by",
            json!({"type": ["string", "null"], "readOnly": true, "description": "Who last changed the record."}),
        ),
        (
            "version",
            json!({"type": "integer", "format": "int64", "readOnly": true, "description": "Incremented on every change; send it as `If-Match` to update only this version."}),
        ),
        (
            "docstatus",
            json!({"type": "integer", "enum": [0, 1, 2], "readOnly": true, "description": "0 draft, 1 submitted, 2 cancelled."}),
        ),
    ]
}

/// The schema of one field's value in `mode`.
fn field_schema(field: &FieldDef, registry: &EntityRegistry, mode: SchemaMode) -> Value {
    let mut schema = match value_schema(field, registry, mode) {
        Value::Object(object) => object,
        _ => Map::new(),
    };
    // An empty value is null. A table field reads as an array (possibly empty); null is
    // only accepted when writing, as no rows.
    let nullable = !field.required && (field.kind.has_column() || mode != SchemaMode::Read);
    if nullable {
        add_null(&mut schema);
    }
    schema.insert("title".into(), json!(field.label));
    if !field.description.is_empty() {
        schema.insert("description".into(), json!(field.description));
    }
    if let Some(default) = &field.default {
        schema.insert("default".into(), default.clone());
    }
    if mode == SchemaMode::Read && field.read_only {
        schema.insert("readOnly".into(), json!(true));
    }
    Value::Object(schema)
}

/// Lets a schema also accept null: `type` gains `"null"`, an `enum` gains `null`.
fn add_null(schema: &mut Map<String, Value>) {
    match schema.get_mut("type") {
        // No `type` (a json field): null is accepted already.
        None => return,
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            schema.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(types)) => {
            if !types.contains(&Value::Null) {
                types.push(json!("null"));
            }
        }
        Some(_) => {}
    }
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        values.push(Value::Null);
    }
}

/// The pattern of a decimal string with at most `scale` digits after the point.
fn decimal_pattern(scale: u8) -> String {
    if scale == 0 {
        "^-?[0-9]+$".into()
    } else {
        format!("^-?[0-9]+(\\.[0-9]{{1,{scale}}})?$")
    }
}

/// The schema of a non-null value of `field`.
fn value_schema(field: &FieldDef, registry: &EntityRegistry, mode: SchemaMode) -> Value {
    match &field.kind {
        // A required value may not be empty.
        FieldKind::Data | FieldKind::Text if field.required => {
            json!({"type": "string", "minLength": 1, "maxLength": field.max_chars()})
        }
        FieldKind::Data | FieldKind::Text => {
            json!({"type": "string", "maxLength": field.max_chars()})
        }
        FieldKind::Email => {
            json!({"type": "string", "format": "email", "maxLength": field.max_chars()})
        }
        FieldKind::Int => json!({"type": "integer", "format": "int64"}),
        FieldKind::Bool => json!({"type": "boolean"}),
        // Answers carry decimal strings; requests may give a whole number as a JSON
        // integer too (`7` is `"7.00"`), as the engine takes it.
        FieldKind::Decimal { scale } if mode == SchemaMode::Read => json!({
            "type": "string",
            "pattern": decimal_pattern(*scale),
        }),
        FieldKind::Decimal { scale } => json!({
            "type": ["string", "integer"],
            "pattern": decimal_pattern(*scale),
        }),
        FieldKind::Money => json!({
            "type": "object",
            "properties": {
                "amount": {
                    "type": "string",
                    "pattern": "^-?[0-9]+(\\.[0-9]+)?$",
                    "description": "The amount as a decimal string, with at most the currency's minor-unit digits after the point.",
                },
                "currency": {
                    "type": "string",
                    "pattern": "^[A-Z]{3}$",
                    "description": "An ISO 4217 currency code.",
                },
            },
            "required": ["amount", "currency"],
            "additionalProperties": false,
        }),
        FieldKind::Date => json!({"type": "string", "format": "date"}),
        FieldKind::Datetime => json!({"type": "string", "format": "date-time"}),
        FieldKind::Select { options } => json!({"type": "string", "enum": options}),
        FieldKind::Link { target } => json!({
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "x-link": target,
        }),
        FieldKind::Json => json!({}),
        FieldKind::Table { entity } => {
            let mut table = json!({
                "type": "array",
                "maxItems": MAX_CHILD_ROWS,
                "items": child_row_schema(entity, registry, mode),
                "x-child": entity,
            });
            // A required table needs at least one row.
            if field.required {
                table["minItems"] = json!(1);
            }
            table
        }
    }
}

/// One row of a `table` field holding rows of `entity`.
fn child_row_schema(entity: &str, registry: &EntityRegistry, mode: SchemaMode) -> Value {
    match registry.get(entity) {
        Some(child) => record_schema(child, registry, mode),
        None => json!({"type": "object"}),
    }
}

/// The body of `/readyz`.
fn readiness_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "fail", "not_ready"]},
            "checks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "status": {"type": "string", "enum": ["ok", "fail"]},
                        "duration_ms": {"type": "number"},
                        "error": {"type": "string"},
                    },
                    "required": ["name", "status", "duration_ms"],
                },
            },
        },
        "required": ["status", "checks"],
    })
}

/// The shared problem details schema (RFC 9457).
fn problem_schema() -> Value {
    json!({
        "title": "Problem",
        "description": "RFC 9457 problem details: the body of every error response.",
        "type": "object",
        "properties": {
            "type": {
                "type": "string",
                "format": "uri-reference",
                "description": "Names the problem type; `about:blank` when the status says it all.",
            },
            "title": {"type": "string", "description": "A short summary of the problem type."},
            "status": {"type": "integer", "minimum": 100, "maximum": 599, "description": "The HTTP status code."},
            "detail": {"type": "string", "description": "An explanation of this occurrence."},
            "trace_id": {"type": "string", "description": "The request's trace id, to match a report with the logs."},
            "errors": {
                "type": "array",
                "description": "What is wrong with the request, one entry per offending value.",
                "items": {
                    "type": "object",
                    "properties": {
                        "pointer": {
                            "type": "string",
                            "description": "A JSON pointer (RFC 6901) to the offending value, such as `/description`.",
                        },
                        "code": {"type": "string", "description": "A stable code such as `wrong_type` or `too_long`."},
                        "message": {"type": "string", "description": "What is wrong."},
                    },
                    "required": ["pointer", "code", "message"],
                },
            },
        },
        "required": ["type", "title", "status"],
    })
}

// ---------------------------------------------------------------------------------------
// Paths

/// The tag of the built-in routes.
const SYSTEM_TAG: &str = "system";

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// An error response with a problem details body.
fn problem(status: u16) -> (String, Value) {
    let description = shared::problem_description(status);
    (
        status.to_string(),
        json!({
            "description": description,
            "content": {PROBLEM_JSON: {"schema": schema_ref("Problem")}},
        }),
    )
}

/// The responses of an operation: the success ones, then problems for `errors`.
fn responses(success: &[(u16, Value)], errors: &[u16]) -> Value {
    let mut map = Map::new();
    for (status, response) in success {
        map.insert(status.to_string(), response.clone());
    }
    // Every tenant-scoped operation (those that can answer 403)
    // needs a token once an identity module is installed, and is rate limited.
    let tenant_scoped: &[u16] = if errors.contains(&403) {
        &[401, 429]
    } else {
        &[]
    };
    for status in errors.iter().copied().chain(tenant_scoped.iter().copied()) {
        let (key, response) = problem(status);
        map.insert(key, response);
    }
    Value::Object(map)
}

fn record_response(description: &str, name: &str) -> Value {
    json!({"description": description, "content": json_content(schema_ref(name))})
}

/// Every resource call is scoped to one tenant: the bearer token's, which this header may
/// repeat but not contradict. Only an installation without an identity module takes the
/// tenant from this header alone.
fn tenant_parameter() -> Value {
    json!({
        "name": "X-Tenant",
        "in": "header",
        "required": false,
        "description": "The tenant the call acts in. With a bearer token it is the token's tenant, and this header may only repeat it (403 otherwise); without an identity module it names the tenant.",
        "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
    })
}

fn id_parameter() -> Value {
    json!({
        "name": "id",
        "in": "path",
        "required": true,
        "description": "The record's id.",
        "schema": {"type": "string"},
    })
}

fn query_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "schema": schema,
    })
}

/// The operations on one non-child entity.
fn entity_paths(schema: &EntitySchema) -> Vec<(String, Value)> {
    let name = schema.name.as_str();
    let label = schema.label.as_str();
    let collection = format!("/api/v1/resources/{name}");
    let item = format!("{collection}/{{id}}");
    let record = |description: &str| record_response(description, name);
    let body = |component: String| json!({"required": true, "content": json_content(schema_ref(&component))});
    let operation = |verb: &str, summary: String| json!({"operationId": format!("{verb}_{name}"), "summary": summary, "tags": [name]});
    let with = |mut op: Value, extra: Value| {
        if let (Value::Object(op), Value::Object(extra)) = (&mut op, extra) {
            op.extend(extra);
        }
        op
    };

    let operators = FILTER_OPERATORS.join(", ");
    let list = with(
        operation("list", format!("List {label} records")),
        json!({
            "parameters": [
                query_parameter(
                    "fields",
                    "A JSON array of the field names to return, such as `[\"name\", \"status\"]`.",
                    json!({"type": "string"}),
                ),
                query_parameter(
                    "filters",
                    &format!("A JSON array of `[field, operator, value]` triples, all of which must hold, such as `[[\"status\", \"=\", \"Open\"]]`. Operators: {operators}."),
                    json!({"type": "string"}),
                ),
                query_parameter(
                    "order_by",
                    "A field and a direction, such as `modified_at desc`.",
                    json!({"type": "string"}),
                ),
                query_parameter(
                    "limit",
                    "The most records to return.",
                    json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
                ),
                query_parameter(
                    "cursor",
                    "The `next_cursor` of the previous page.",
                    json!({"type": "string"}),
                ),
                query_parameter(
                    "total",
                    "Also count the selected records (`total`, at most 10,001: more than 10,000).",
                    json!({"type": "boolean", "default": false}),
                ),
            ],
            "responses": responses(
                &[(200, json!({
                    "description": "A page of records.",
                    "content": json_content(json!({
                        "type": "object",
                        "properties": {
                            "data": {"type": "array", "items": schema_ref(name)},
                            "next_cursor": {
                                "type": ["string", "null"],
                                "description": "Pass as `cursor` for the next page; null on the last page.",
                            },
                            "total": {
                                "type": "integer",
                                "minimum": 0,
                                "description": "With `total=true`: the selected records, at most 10,001 (more than 10,000).",
                            },
                        },
                        "required": ["data", "next_cursor"],
                    })),
                }))],
                &[400, 403, 422],
            ),
        }),
    );
    // The created record's id is what the operations on one record take: links say so,
    // so a client (or schemathesis' stateful phase) can follow a create to them.
    let mut created = record("The created record.");
    created["links"] = record_links(schema);
    let create = with(
        operation("create", format!("Create {label}")),
        json!({
            "requestBody": body(format!("{name}_create")),
            "responses": responses(&[(201, created)], &[400, 403, 409, 413, 422]),
        }),
    );
    let get = with(
        operation("get", format!("Get {label}")),
        json!({
            "parameters": [id_parameter()],
            "responses": responses(&[(200, record("The record."))], &[400, 403, 404]),
        }),
    );
    let update = with(
        operation("update", format!("Update {label}")),
        json!({
            "description": "Changes the fields given and leaves the others as they are.",
            "parameters": [
                id_parameter(),
                {
                    "name": "If-Match",
                    "in": "header",
                    "required": false,
                    "description": "The record's `version` as a string; the update fails with 412 if the record has changed since.",
                    "schema": {"type": "string"},
                },
            ],
            "requestBody": body(format!("{name}_update")),
            "responses": responses(&[(200, record("The updated record."))], &[400, 403, 404, 409, 412, 413, 422]),
        }),
    );
    let delete = with(
        operation("delete", format!("Delete {label}")),
        json!({
            "description": "Soft-deletes the record. A record that submitted documents refer to cannot be deleted (409).",
            "parameters": [id_parameter()],
            "responses": responses(&[(204, json!({"description": "Deleted."}))], &[400, 403, 404, 409, 422]),
        }),
    );

    let mut paths = vec![
        (
            collection.clone(),
            json!({"parameters": [tenant_parameter()], "get": list, "post": create}),
        ),
        (
            item.clone(),
            json!({"parameters": [tenant_parameter()], "get": get, "patch": update, "delete": delete}),
        ),
    ];
    if schema.submittable {
        for (verb, summary, result, status) in [
            (
                "submit",
                format!("Submit {label}"),
                "The submitted record.",
                200,
            ),
            (
                "cancel",
                format!("Cancel {label}"),
                "The cancelled record.",
                200,
            ),
            (
                "amend",
                format!("Amend {label}"),
                "The new draft that amends the cancelled record.",
                201,
            ),
        ] {
            let op = with(
                operation(verb, summary),
                json!({
                    "parameters": [id_parameter()],
                    "responses": responses(&[(status, record(result))], &[400, 403, 404, 409, 422]),
                }),
            );
            paths.push((
                format!("{item}/{verb}"),
                json!({"parameters": [tenant_parameter()], "post": op}),
            ));
        }
    }
    paths
}

/// The OpenAPI links from a created record to the operations on it.
fn record_links(schema: &EntitySchema) -> Value {
    let name = schema.name.as_str();
    let mut verbs = vec!["get", "update", "delete"];
    if schema.submittable {
        verbs.extend(["submit", "cancel", "amend"]);
    }
    let links: Map<String, Value> = verbs
        .into_iter()
        .map(|verb| {
            (
                verb.to_owned(),
                json!({
                    "operationId": format!("{verb}_{name}"),
                    "parameters": {"id": "$response.body#/id"},
                }),
            )
        })
        .collect();
    Value::Object(links)
}

/// The built-in routes.
fn builtin_paths() -> Vec<(String, Value)> {
    vec![
        (
            "/healthz".into(),
            json!({"get": {
                "operationId": "healthz",
                "summary": "Liveness: the process answers",
                "tags": [SYSTEM_TAG],
                "responses": {"200": {
                    "description": "Alive.",
                    "content": json_content(json!({
                        "type": "object",
                        "properties": {"status": {"type": "string", "const": "ok"}},
                        "required": ["status"],
                    })),
                }},
            }}),
        ),
        (
            "/readyz".into(),
            json!({"get": {
                "operationId": "readyz",
                "summary": "Readiness: every readiness check passes",
                "tags": [SYSTEM_TAG],
                "responses": {
                    "200": {"description": "Ready.", "content": json_content(schema_ref("Readiness"))},
                    "503": {"description": "Not ready, or a check failed.", "content": json_content(schema_ref("Readiness"))},
                },
            }}),
        ),
        (
            "/api/v1/openapi.json".into(),
            json!({"get": {
                "operationId": "openapi",
                "summary": "This OpenAPI document",
                "tags": [SYSTEM_TAG],
                "responses": {"200": {
                    "description": "The OpenAPI 3.1 document.",
                    "content": json_content(json!({"type": "object"})),
                }},
            }}),
        ),
        (
            "/api/v1/schema/{entity}".into(),
            json!({"get": {
                "operationId": "get_entity_schema",
                "summary": "The JSON Schema of an entity's record",
                "description": "With a bearer token, the record's `custom` property lists the tenant's custom fields.",
                "tags": [SYSTEM_TAG],
                "parameters": [
                    {
                        "name": "entity",
                        "in": "path",
                        "required": true,
                        "description": "The entity's name, such as `todo`.",
                        "schema": {"type": "string"},
                    },
                    query_parameter(
                        "mode",
                        "Which shape: a record as read (the default), a create body or a PATCH body.",
                        json!({"type": "string", "enum": ["read", "create", "update"], "default": "read"}),
                    ),
                ],
                "responses": responses(
                    &[(200, json!({
                        "description": "A JSON Schema (draft 2020-12).",
                        "content": {"application/schema+json": {"schema": {"type": "object"}}},
                    }))],
                    &[400, 401, 404, 429],
                ),
            }}),
        ),
        (
            "/metrics".into(),
            json!({"get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics in the text exposition format",
                "tags": [SYSTEM_TAG],
                "responses": {"200": {
                    "description": "The metrics (text format 0.0.4).",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }},
            }}),
        ),
    ]
}
