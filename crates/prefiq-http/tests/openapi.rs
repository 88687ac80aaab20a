//! The generated OpenAPI document and entity JSON Schemas.
#![allow(clippy::unwrap_used)]

use prefiq::{EntitySource, EntitySources};
use prefiq_data::entity::EntityRegistry;
use prefiq_http::openapi::{
    ApiDescription, SchemaMode, entity_json_schema, merge_descriptions, openapi_document,
};
use serde_json::{Value, json};

const TODO: &str = "\
name: todo
fields:
  - {name: description, type: text, required: true}
  - {name: status, type: select, options: [Open, Closed, Cancelled], default: Open}
  - {name: priority, type: select, options: [Low, Medium, High]}
  - {name: date, type: date}
  - {name: allocated_to, type: email}
";

const INVOICE: &str = "\
name: invoice
naming: 'INV-.YYYY.-.#####'
submittable: true
fields:
  - {name: todo, type: link, target: todo}
  - {name: total, type: money, required: true, label: Grand total, description: What the customer pays}
  - {name: weight, type: decimal, scale: 3}
  - {name: items, type: table, entity: invoice_item}
  - {name: posted_at, type: datetime, read_only: true}
";

const INVOICE_ITEM: &str = "\
name: invoice_item
child: true
fields:
  - {name: qty, type: int, required: true}
  - {name: rate, type: decimal}
";

fn registry_of(sources: &[(&'static str, &'static str)]) -> EntityRegistry {
    let sources = sources
        .iter()
        .map(|(file, yaml)| ("cortex".to_owned(), EntitySource { file, yaml }))
        .collect();
    EntityRegistry::load(&EntitySources(sources)).unwrap()
}

fn registry() -> EntityRegistry {
    registry_of(&[
        ("schema/todo.yaml", TODO),
        ("schema/invoice.yaml", INVOICE),
        ("schema/invoice_item.yaml", INVOICE_ITEM),
    ])
}

fn document() -> Value {
    openapi_document(&registry(), "1.2.3")
}

/// The schema of field `f` (typed by `field_yaml`) in `mode`, as compact JSON.
fn check(field_yaml: &'static str, mode: SchemaMode, expected: Value) {
    let yaml: &'static str = format!("name: thing\nfields:\n  - {field_yaml}\n").leak();
    let registry = registry_of(&[
        ("schema/thing.yaml", yaml),
        (
            "schema/other.yaml",
            "name: other\nfields:\n  - {name: a, type: data}\n",
        ),
        (
            "schema/line.yaml",
            "name: line\nchild: true\nfields:\n  - {name: qty, type: int, required: true}\n",
        ),
    ]);
    let schema = registry.get("thing").unwrap();
    let json = entity_json_schema(schema, &registry, mode);
    assert_eq!(
        json["properties"]["f"], expected,
        "{field_yaml} in {mode:?}"
    );
}

#[test]
fn field_types() {
    use SchemaMode::{Create, Read, Update};
    check(
        "{name: f, type: data}",
        Read,
        json!({"type": ["string", "null"], "maxLength": 140, "title": "F"}),
    );
    check(
        "{name: f, type: data, required: true, max_length: 20}",
        Read,
        json!({"type": "string", "minLength": 1, "maxLength": 20, "title": "F"}),
    );
    check(
        "{name: f, type: text, required: true}",
        Create,
        json!({"type": "string", "minLength": 1, "maxLength": 1_000_000, "title": "F"}),
    );
    check(
        "{name: f, type: email}",
        Update,
        json!({"type": ["string", "null"], "format": "email", "maxLength": 254, "title": "F"}),
    );
    check(
        "{name: f, type: int, required: true, label: Count, description: How many}",
        Read,
        json!({"type": "integer", "format": "int64", "title": "Count", "description": "How many"}),
    );
    check(
        "{name: f, type: bool, default: false}",
        Create,
        json!({"type": ["boolean", "null"], "title": "F", "default": false}),
    );
    check(
        "{name: f, type: decimal, scale: 3, required: true}",
        Read,
        json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,3})?$", "title": "F"}),
    );
    check(
        "{name: f, type: decimal, scale: 0, required: true}",
        Read,
        json!({"type": "string", "pattern": "^-?[0-9]+$", "title": "F"}),
    );
    check(
        "{name: f, type: decimal}",
        Read,
        json!({"type": ["string", "null"], "pattern": "^-?[0-9]+(\\.[0-9]{1,2})?$", "title": "F"}),
    );
    // A request may give a whole number as an integer (the regression: schemathesis sent
    // `"rate": 0`, which the engine takes, and flagged it as accepted against the schema).
    check(
        "{name: f, type: decimal, scale: 9}",
        Create,
        json!({"type": ["string", "integer", "null"], "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?$", "title": "F"}),
    );
    check(
        "{name: f, type: money, required: true}",
        Create,
        json!({
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
            "title": "F",
        }),
    );
    check(
        "{name: f, type: date}",
        Read,
        json!({"type": ["string", "null"], "format": "date", "title": "F"}),
    );
    check(
        "{name: f, type: datetime, required: true}",
        Read,
        json!({"type": "string", "format": "date-time", "title": "F"}),
    );
    check(
        "{name: f, type: select, options: [A, B], required: true}",
        Read,
        json!({"type": "string", "enum": ["A", "B"], "title": "F"}),
    );
    check(
        "{name: f, type: select, options: [A, B], default: B}",
        Read,
        json!({"type": ["string", "null"], "enum": ["A", "B", null], "title": "F", "default": "B"}),
    );
    check(
        "{name: f, type: link, target: other}",
        Read,
        json!({"type": ["string", "null"], "minLength": 1, "maxLength": 64, "x-link": "other", "title": "F"}),
    );
    check("{name: f, type: json}", Read, json!({"title": "F"}));
    check(
        "{name: f, type: data, read_only: true}",
        Read,
        json!({"type": ["string", "null"], "maxLength": 140, "title": "F", "readOnly": true}),
    );
    check(
        "{name: f, type: table, entity: line}",
        Read,
        json!({
            "type": "array",
            "maxItems": 1000,
            "x-child": "line",
            "title": "F",
            "items": {
                "title": "Line",
                "type": "object",
                "properties": {
                    "id": {"type": "string", "readOnly": true, "description": "The row's id."},
                    "idx": {"type": "integer", "readOnly": true, "description": "The row's position in the table, from 0."},
                    "qty": {"type": "integer", "format": "int64", "title": "Qty"},
                },
                "required": ["id", "idx"],
                "x-entity": "line",
            },
        }),
    );
    // Rows are written as a whole list, so a PATCH's rows follow the create rules too.
    check(
        "{name: f, type: table, entity: line}",
        Update,
        json!({
            "type": ["array", "null"],
            "maxItems": 1000,
            "x-child": "line",
            "title": "F",
            "items": {
                "title": "Line",
                "type": "object",
                "properties": {
                    "id": {"type": "string", "readOnly": true, "description": "The row's id."},
                    "idx": {"type": "integer", "readOnly": true, "description": "The row's position in the table, from 0."},
                    "qty": {"type": "integer", "format": "int64", "title": "Qty"},
                },
                "required": ["qty"],
                "additionalProperties": false,
                "x-entity": "line",
            },
        }),
    );
    check(
        "{name: f, type: table, entity: line, required: true}",
        Create,
        json!({
            "type": "array",
            "minItems": 1,
            "maxItems": 1000,
            "x-child": "line",
            "title": "F",
            "items": {
                "title": "Line",
                "type": "object",
                "properties": {
                    "id": {"type": "string", "readOnly": true, "description": "The row's id."},
                    "idx": {"type": "integer", "readOnly": true, "description": "The row's position in the table, from 0."},
                    "qty": {"type": "integer", "format": "int64", "title": "Qty"},
                },
                "required": ["qty"],
                "additionalProperties": false,
                "x-entity": "line",
            },
        }),
    );
    // A read-only field cannot be written.
    check(
        "{name: f, type: data, read_only: true}",
        Create,
        Value::Null,
    );
    check(
        "{name: f, type: data, read_only: true}",
        Update,
        Value::Null,
    );
}

/// The object's keys, sorted: objects keep insertion order, which is not what these
/// tests are about.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[test]
fn record_modes() {
    let registry = registry();
    let todo = registry.get("todo").unwrap();

    let read = entity_json_schema(todo, &registry, SchemaMode::Read);
    assert_eq!(
        read["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(read["type"], "object");
    assert_eq!(read["title"], "Todo");
    assert_eq!(
        strings(&read["required"]),
        [
            "id",
            "name",
            "created_at",
            "created_by",
            "modified_at",
            "modified_by",
            "version",
            "docstatus",
            "custom"
        ]
    );
    // The system properties are read-only; `custom` is not (create and PATCH write it).
    for system in strings(&read["required"]) {
        let read_only = system != "custom";
        assert_eq!(
            read["properties"][system]["readOnly"]
                .as_bool()
                .unwrap_or(false),
            read_only,
            "{system}"
        );
    }
    assert_eq!(read["properties"]["docstatus"]["enum"], json!([0, 1, 2]));
    assert_eq!(
        read["properties"]["modified_by"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(read["properties"]["custom"]["type"], "object");
    assert_eq!(
        read["properties"]["name"]["description"],
        "The record's name: its id."
    );
    assert!(read.get("additionalProperties").is_none());

    let create = entity_json_schema(todo, &registry, SchemaMode::Create);
    assert_eq!(
        keys(&create["properties"]),
        [
            "allocated_to",
            "custom",
            "date",
            "description",
            "priority",
            "status"
        ]
    );
    // `status` is not required on create: it has a default.
    assert_eq!(strings(&create["required"]), ["description"]);
    assert_eq!(create["additionalProperties"], false);

    let update = entity_json_schema(todo, &registry, SchemaMode::Update);
    assert_eq!(keys(&update["properties"]), keys(&create["properties"]));
    assert!(update.get("required").is_none());
    assert_eq!(update["additionalProperties"], false);
    // A required field cannot be cleared; an optional one can.
    assert_eq!(update["properties"]["description"]["type"], "string");
    assert_eq!(
        update["properties"]["priority"]["enum"],
        json!(["Low", "Medium", "High", null])
    );

    let invoice = registry.get("invoice").unwrap();
    let create = entity_json_schema(invoice, &registry, SchemaMode::Create);
    assert!(create["properties"].get("posted_at").is_none());
    assert_eq!(strings(&create["required"]), ["total"]);
    let read = entity_json_schema(invoice, &registry, SchemaMode::Read);
    assert_eq!(read["properties"]["posted_at"]["readOnly"], true);
    // Only submittable records can be amended.
    assert_eq!(
        read["properties"]["amended_from"]["type"],
        json!(["string", "null"])
    );
    let todo_read = entity_json_schema(todo, &registry, SchemaMode::Read);
    assert!(todo_read["properties"].get("amended_from").is_none());
    assert_eq!(read["properties"]["items"]["type"], "array");
    assert_eq!(
        read["properties"]["name"]["description"],
        "The record's name, from the naming series `INV-.YYYY.-.#####`."
    );
}

#[test]
fn child_entity_schema() {
    let registry = registry();
    let item = registry.get("invoice_item").unwrap();
    let read = entity_json_schema(item, &registry, SchemaMode::Read);
    assert_eq!(keys(&read["properties"]), ["id", "idx", "qty", "rate"]);
    assert_eq!(strings(&read["required"]), ["id", "idx"]);
    // A child row is always written whole, so an update's rows follow the create rules.
    let create = entity_json_schema(item, &registry, SchemaMode::Create);
    let mut update = entity_json_schema(item, &registry, SchemaMode::Update);
    assert_eq!(strings(&create["required"]), ["qty"]);
    assert_eq!(update, create);
    // The rows inside the parent are the same schema.
    let invoice = registry.get("invoice").unwrap();
    let parent = entity_json_schema(invoice, &registry, SchemaMode::Update);
    update.as_object_mut().unwrap().remove("$schema");
    assert_eq!(parent["properties"]["items"]["items"], update);
}

#[test]
fn document_snapshot() {
    insta::assert_json_snapshot!("document", document());
}

#[test]
fn document_is_deterministic() {
    // Declaration order of the sources does not matter.
    let reversed = registry_of(&[
        ("schema/invoice_item.yaml", INVOICE_ITEM),
        ("schema/invoice.yaml", INVOICE),
        ("schema/todo.yaml", TODO),
    ]);
    assert_eq!(
        serde_json::to_string(&openapi_document(&reversed, "1.2.3")).unwrap(),
        serde_json::to_string(&document()).unwrap()
    );
}

#[test]
fn header() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Codexion");
    assert_eq!(doc["info"]["version"], "1.2.3");
    assert_eq!(
        keys(&doc["components"]["schemas"]),
        [
            "Problem",
            "Readiness",
            "invoice",
            "invoice_create",
            "invoice_update",
            "todo",
            "todo_create",
            "todo_update"
        ]
    );
    assert_eq!(
        strings(&doc["components"]["schemas"]["Problem"]["required"]),
        ["type", "title", "status"]
    );
}

/// Every `$ref` in `value`, with the JSON pointer of where it is.
fn refs<'v>(value: &'v Value, at: String, out: &mut Vec<(String, &'v str)>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if key == "$ref" {
                    out.push((at.clone(), item.as_str().unwrap()));
                } else {
                    refs(item, format!("{at}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                refs(item, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_ref_resolves() {
    let doc = document();
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(found.len() > 20, "{found:?}");
    for (at, target) in found {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: {target}"));
        assert!(
            pointer.starts_with("/components/"),
            "{at}: {target} is not a component"
        );
        assert!(
            doc.pointer(pointer).is_some(),
            "{at}: {target} does not resolve"
        );
    }
}

/// Every operation of the document: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            // Path-level parameters (the tenant header) are not an operation.
            if method == "parameters" {
                assert_eq!(operation[0]["name"], "X-Tenant");
                continue;
            }
            out.push((method.to_uppercase(), path.clone(), operation));
        }
    }
    out
}

#[test]
fn operations_and_error_responses() {
    let doc = document();
    let ops = operations(&doc);
    let mut listed: Vec<String> = ops
        .iter()
        .map(|(method, path, op)| {
            format!("{method} {path} {}", op["operationId"].as_str().unwrap())
        })
        .collect();
    listed.sort();
    let mut expected = [
        "GET /healthz healthz",
        "GET /readyz readyz",
        "GET /api/v1/openapi.json openapi",
        "GET /api/v1/schema/{entity} get_entity_schema",
        "GET /metrics metrics",
        "GET /api/v1/resources/invoice list_invoice",
        "POST /api/v1/resources/invoice create_invoice",
        "GET /api/v1/resources/invoice/{id} get_invoice",
        "PATCH /api/v1/resources/invoice/{id} update_invoice",
        "DELETE /api/v1/resources/invoice/{id} delete_invoice",
        "POST /api/v1/resources/invoice/{id}/submit submit_invoice",
        "POST /api/v1/resources/invoice/{id}/cancel cancel_invoice",
        "POST /api/v1/resources/invoice/{id}/amend amend_invoice",
        "GET /api/v1/resources/todo list_todo",
        "POST /api/v1/resources/todo create_todo",
        "GET /api/v1/resources/todo/{id} get_todo",
        "PATCH /api/v1/resources/todo/{id} update_todo",
        "DELETE /api/v1/resources/todo/{id} delete_todo",
    ];
    expected.sort_unstable();
    assert_eq!(listed, expected);

    let mut ids = std::collections::BTreeSet::new();
    for (method, path, op) in &ops {
        let what = format!("{method} {path}");
        assert!(
            ids.insert(op["operationId"].as_str().unwrap()),
            "{what}: duplicate operationId"
        );
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{what}: no success response"
        );
        // Every 4xx response is a problem+json referencing the shared schema.
        for (status, response) in responses.iter().filter(|(s, _)| s.starts_with('4')) {
            assert_eq!(
                response["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{what} {status}"
            );
        }
        // Path parameters are declared.
        for name in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        {
            assert!(
                op["parameters"].as_array().is_some_and(|ps| ps
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true)),
                "{what}: path parameter {name} is not declared"
            );
        }
        if !path.starts_with("/api/v1/resources/") {
            continue;
        }
        // Operations on one record can miss it; operations that take input can reject it.
        let expected: &[&str] = match (method.as_str(), path.contains("{id}")) {
            ("GET", false) => &["400", "401", "403", "422", "429"],
            ("POST", false) => &["400", "401", "403", "409", "413", "422", "429"],
            ("GET", true) => &["400", "401", "403", "404", "429"],
            ("PATCH", true) => &[
                "400", "401", "403", "404", "409", "412", "413", "422", "429",
            ],
            ("DELETE", true) => &["400", "401", "403", "404", "409", "422", "429"],
            ("POST", true) => &["400", "401", "403", "404", "409", "422", "429"],
            _ => panic!("{what}: unexpected operation"),
        };
        let mut errors: Vec<&str> = responses
            .keys()
            .map(String::as_str)
            .filter(|s| s.starts_with('4'))
            .collect();
        errors.sort_unstable();
        assert_eq!(errors, expected, "{what}");
        assert!(
            errors.contains(&"404") || errors.contains(&"422"),
            "{what}: neither 404 nor 422"
        );
        assert!(op["tags"].is_array(), "{what}: no tags");
    }
}

#[test]
fn child_entities_have_no_paths() {
    let doc = document();
    for path in keys(&doc["paths"]) {
        assert!(!path.contains("invoice_item"), "{path}");
    }
    assert!(doc["components"]["schemas"].get("invoice_item").is_none());
    // Their rows appear inside the parent's table field.
    let items = &doc["components"]["schemas"]["invoice"]["properties"]["items"];
    assert_eq!(items["x-child"], "invoice_item");
    assert_eq!(
        keys(&items["items"]["properties"]),
        ["id", "idx", "qty", "rate"]
    );
}

#[test]
fn entity_operations() {
    let doc = document();
    let paths = &doc["paths"];
    let list = &paths["/api/v1/resources/todo"]["get"];
    let params: Vec<(&str, &Value)> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), &p["schema"]))
        .collect();
    assert_eq!(
        params,
        [
            ("fields", &json!({"type": "string"})),
            ("filters", &json!({"type": "string"})),
            ("order_by", &json!({"type": "string"})),
            (
                "limit",
                &json!({"type": "integer", "minimum": 1, "maximum": 500, "default": 20})
            ),
            ("cursor", &json!({"type": "string"})),
            ("total", &json!({"type": "boolean", "default": false})),
        ]
    );
    let filters = list["parameters"][1]["description"].as_str().unwrap();
    for op in [
        "!=", "<=", ">=", "like", "not like", "not in", "is", "between",
    ] {
        assert!(filters.contains(op), "{op}");
    }
    let page = &list["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(
        page["properties"]["data"]["items"]["$ref"],
        "#/components/schemas/todo"
    );
    assert_eq!(
        page["properties"]["next_cursor"]["type"],
        json!(["string", "null"])
    );

    let create = &paths["/api/v1/resources/todo"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/todo_create"
    );
    assert!(create["responses"].get("201").is_some());

    let item = &paths["/api/v1/resources/todo/{id}"];
    assert_eq!(
        item["patch"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/todo_update"
    );
    let if_match = &item["patch"]["parameters"][1];
    assert_eq!(if_match["name"], "If-Match");
    assert_eq!(if_match["in"], "header");
    assert_eq!(if_match["required"], false);
    assert!(item["delete"]["responses"].get("204").is_some());

    // Only submittable entities have the lifecycle actions.
    for action in ["submit", "cancel", "amend"] {
        assert!(
            paths
                .get(format!("/api/v1/resources/todo/{{id}}/{action}"))
                .is_none()
        );
        let op = &paths[format!("/api/v1/resources/invoice/{{id}}/{action}")]["post"];
        assert_eq!(op["operationId"], format!("{action}_invoice"));
        let success = if action == "amend" { "201" } else { "200" };
        assert_eq!(
            op["responses"][success]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/invoice"
        );
    }
}

#[test]
fn empty_registry() {
    let doc = openapi_document(&EntityRegistry::default(), "0.0.0");
    assert_eq!(
        keys(&doc["paths"]),
        [
            "/api/v1/openapi.json",
            "/api/v1/schema/{entity}",
            "/healthz",
            "/metrics",
            "/readyz"
        ]
    );
    assert_eq!(
        keys(&doc["components"]["schemas"]),
        ["Problem", "Readiness"]
    );
}

/// Reads a module's fragment and compares the outcome: `Ok` or the error's message.
fn check_description(yaml: &str, expected: Result<(), &str>) {
    let outcome = ApiDescription::from_yaml("demo", yaml)
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert_eq!(outcome, expected.map_err(str::to_owned), "{yaml}");
}

/// A path item with one operation answering `responses` (flow YAML).
fn fragment(path: &str, operation: &str) -> String {
    format!("paths:\n  {path}:\n    get: {operation}\n")
}

#[test]
fn module_descriptions_are_checked_when_made() {
    let ok = "{operationId: a, summary: A, responses: {'200': {description: ok}}}";
    check_description(&fragment("/x", ok), Ok(()));
    check_description(
        "paths:\n  /x/{id}:\n    parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n    get: {operationId: a, summary: A, responses: {'204': {description: ok}, '404': {$ref: '#/components/responses/NotFound'}}}\n",
        Ok(()),
    );
    check_description(
        "components:\n  schemas:\n    Thing: {type: object}\n  parameters:\n    Q: {name: q, in: query, schema: {type: string}}\npaths:\n  /x:\n    get: {operationId: a, summary: A, parameters: [{$ref: '#/components/parameters/Q'}], responses: {'200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/Thing'}}}}}}\n",
        Ok(()),
    );
    check_description(
        "paths: [",
        Err(
            "the OpenAPI description of module `demo` cannot be read: did not find expected node content at line 2 column 1, while parsing a flow node",
        ),
    );
    check_description(
        "[1, 2]",
        Err("the OpenAPI description of module `demo` is invalid at ``: the fragment is an object"),
    );
    check_description(
        "info: {title: x}",
        Err(
            "the OpenAPI description of module `demo` is invalid at `/info`: a fragment holds only `tags`, `paths` and `components`",
        ),
    );
    check_description(
        "components: {responses: {}}",
        Err(
            "the OpenAPI description of module `demo` is invalid at `/components/responses`: a fragment's components are only `schemas` and `parameters`",
        ),
    );
    check_description(
        "components: {schemas: {todo: {type: object}}}",
        Err(
            "the OpenAPI description of module `demo` is invalid at `/components/schemas/todo`: a module's component names start with a capital letter (entity names do not)",
        ),
    );
    check_description(
        &fragment("x", ok),
        Err(
            "the OpenAPI description of module `demo` is invalid at `/paths/x`: a path starts with `/`",
        ),
    );
    check_description(
        "paths:\n  /x:\n    GET: {}\n",
        Err(
            "the OpenAPI description of module `demo` is invalid at `/paths/~1x/GET`: a path item holds operations under lower-case HTTP methods",
        ),
    );
    check_description(
        "paths:\n  /x:\n    parameters: []\n",
        Err(
            "the OpenAPI description of module `demo` is invalid at `/paths/~1x`: a path item has at least one operation",
        ),
    );
    check_description(
        &fragment("/x", "{summary: A, responses: {'200': {description: ok}}}"),
        Err(
            "the OpenAPI description of module `demo` is invalid at `/paths/~1x/get`: an operation needs `operationId`",
        ),
    );
    check_description(
        &fragment(
            "/x",
            "{operationId: a, summary: A, responses: {'404': {description: no}}}",
        ),
        Err(
            "the OpenAPI description of module `demo` is invalid at `/paths/~1x/get/responses`: an operation has a success (2xx) response",
        ),
    );
    check_description(
        &fragment("/x/{id}", ok),
        Err(
            "the OpenAPI description of module `demo` is invalid at `/paths/~1x~1{id}/get/parameters`: the path parameter `id` is not declared",
        ),
    );
    check_description(
        &fragment(
            "/x",
            "{operationId: a, summary: A, responses: {'200': {$ref: '#/components/responses/Gone'}}}",
        ),
        Err(
            "the OpenAPI description of module `demo` is invalid at `/paths/~1x/get/responses/200/$ref`: `#/components/responses/Gone` is neither a schema of this fragment nor a shared component",
        ),
    );
    // An entity's record may be referred to (the assembled document resolves it); a
    // capitalised name must be the fragment's own.
    check_description(
        &fragment(
            "/x",
            "{operationId: a, summary: A, responses: {'200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/todo'}}}}}}",
        ),
        Ok(()),
    );
    check_description(
        &fragment(
            "/x",
            "{operationId: a, summary: A, responses: {'200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/Todo'}}}}}}",
        ),
        Err(
            "the OpenAPI description of module `demo` is invalid at `/paths/~1x/get/responses/200/content/application~1json/schema/$ref`: `#/components/schemas/Todo` is neither a schema of this fragment nor a shared component",
        ),
    );
}

#[test]
fn merged_descriptions_may_not_overlap() {
    let operation = "{operationId: a, summary: A, responses: {'200': {description: ok}}}";
    let first = ApiDescription::from_yaml("first", &fragment("/x", operation)).unwrap();
    let second = ApiDescription::from_yaml("second", &fragment("/x", operation)).unwrap();
    let mut doc = document();
    merge_descriptions(&mut doc, [&first]).unwrap();
    assert_eq!(doc["paths"]["/x"]["get"]["operationId"], "a");
    assert_eq!(
        merge_descriptions(&mut document(), [&first, &second])
            .unwrap_err()
            .to_string(),
        "modules `first` and `second` both describe `GET /x` in the OpenAPI document"
    );
    // Nor may a module describe a generated operation.
    let generated = ApiDescription::from_yaml("demo", &fragment("/healthz", operation)).unwrap();
    assert_eq!(
        merge_descriptions(&mut document(), [&generated])
            .unwrap_err()
            .to_string(),
        "modules `prefiq` and `demo` both describe `GET /healthz` in the OpenAPI document"
    );
    let schema = "components: {schemas: {Problem: {type: object}}}";
    let shadow = ApiDescription::from_yaml("demo", schema).unwrap();
    assert_eq!(
        merge_descriptions(&mut document(), [&shadow])
            .unwrap_err()
            .to_string(),
        "modules `prefiq` and `demo` both describe `#/components/schemas/Problem` in the OpenAPI document"
    );
}

#[test]
fn shared_problem_responses_are_components() {
    let doc = document();
    let responses = &doc["components"]["responses"];
    for (name, status) in [
        ("BadRequest", 400),
        ("Unauthorized", 401),
        ("Forbidden", 403),
        ("NotFound", 404),
        ("Conflict", 409),
        ("PreconditionFailed", 412),
        ("PayloadTooLarge", 413),
        ("Unprocessable", 422),
        ("PreconditionRequired", 428),
        ("TooManyRequests", 429),
    ] {
        assert_eq!(
            responses[name]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "{name}"
        );
        // The inline problem of a generated operation says the same.
        let inline =
            &doc["paths"]["/api/v1/resources/todo/{id}"]["patch"]["responses"][status.to_string()];
        if !inline.is_null() {
            assert_eq!(
                inline["description"], responses[name]["description"],
                "{name}"
            );
        }
    }
    assert_eq!(
        doc["components"]["parameters"]["Tenant"]["name"],
        "X-Tenant"
    );
}
