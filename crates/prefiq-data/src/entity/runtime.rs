//! Runtime entities: whole entities a tenant administrator creates through the API.
//!
//! A runtime entity is declared with the same document as a YAML schema file (sent as
//! JSON) and belongs to the pseudo-module `tenant:{tenant}`: only that tenant sees it. Its
//! table is created by the same generated migration a declared entity gets, recorded in
//! `prefiq_migrations` under that pseudo-module, and its schema snapshot in
//! `prefiq_entities` is what brings it back into the registry at the next boot.
//!
//! Each tenant names its runtime entities in a namespace of its own: the table is named
//! after the tenant and the entity ([`schema::runtime_table`]), and the registry keeps
//! runtime entities by (tenant, name). Two tenants may each create `vehicle`, with
//! different fields, and neither can learn whether the other did. A runtime entity may
//! not take the name of a declared (module or site) entity, which every tenant sees, nor
//! a reserved name ([`reserved_name`]).

use serde_json::Value;

use super::schema::{self, EntitySchema, FieldKind, RUNTIME_MODULE_PREFIX, SchemaError};
use super::sql::{Cell, Sql, SqlType};
use crate::DataError;
use crate::database::Database;

/// Most runtime entities one tenant may create.
pub const MAX_RUNTIME_ENTITIES: usize = 200;

/// The pseudo-module of `tenant`'s runtime entities.
pub fn runtime_module(tenant: &str) -> String {
    format!("{RUNTIME_MODULE_PREFIX}{tenant}")
}

/// Why `name` may not name a runtime entity, if it may not: names of the databases' own
/// tables and schemas, and of the platform's tables, which a reader of the database (or
/// of an error) would take for them.
pub fn reserved_name(name: &str) -> Option<&'static str> {
    const PREFIXES: &[(&str, &str)] = &[
        ("sqlite_", "SQLite reserves names that start with `sqlite_`"),
        ("pg_", "PostgreSQL reserves names that start with `pg_`"),
        (
            "prefiq",
            "names that start with `prefiq` are the platform's",
        ),
        (
            "cortex_",
            "names that start with `cortex_` are the platform's",
        ),
    ];
    const NAMES: &[&str] = &["information_schema", "public"];
    PREFIXES
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, why)| *why)
        .or_else(|| {
            NAMES
                .contains(&name)
                .then_some("the name is reserved for the platform")
        })
}

/// Parses a runtime entity definition of `tenant`. It is the document of a schema file;
/// child entities and `table` fields are declared-only for now (a child table needs its
/// child entity created with it, in one migration).
pub fn parse_definition(tenant: &str, definition: &Value) -> Result<EntitySchema, SchemaError> {
    let name = definition
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("entity");
    let file = format!("api:{tenant}/{name}");
    let error = |field: Option<&str>, message: &str| SchemaError {
        file: file.clone(),
        field: field.map(str::to_owned),
        message: message.to_owned(),
    };
    if !definition.is_object() {
        return Err(error(None, "the definition must be a JSON object"));
    }
    if let Some(why) = reserved_name(name) {
        return Err(error(
            None,
            &format!("`{name}` cannot name an entity: {why}"),
        ));
    }
    // JSON is YAML, so the definition goes through the very parser schema files do.
    let text = definition.to_string();
    let mut schema = schema::parse_schema(&runtime_module(tenant), &file, &text)?;
    schema.table = Some(schema::runtime_table(tenant, &schema.name));
    if schema.child {
        return Err(error(
            None,
            "a runtime entity cannot be a child entity (declare child tables in a module)",
        ));
    }
    if !schema.storage.is_table() {
        return Err(error(
            None,
            "a runtime entity is stored in a table (a view is declared by a module, with the migration that makes it)",
        ));
    }
    if let Some(field) = schema
        .fields
        .iter()
        .find(|f| matches!(f.kind, FieldKind::Table { .. }))
    {
        return Err(error(
            Some(&field.name),
            "a runtime entity cannot have `table` fields (declare child tables in a module)",
        ));
    }
    Ok(schema)
}

/// The JSON pointer of the part of `definition` an error names: the field's entry in
/// `fields` when it names a field.
pub fn error_pointer(definition: &Value, error: &SchemaError) -> String {
    let Some(field) = &error.field else {
        return String::new();
    };
    definition
        .get("fields")
        .and_then(Value::as_array)
        .and_then(|fields| {
            fields
                .iter()
                .position(|f| f.get("name").and_then(Value::as_str) == Some(field.as_str()))
        })
        .map_or_else(String::new, |i| format!("/fields/{i}"))
}

/// Reads every runtime entity recorded in `prefiq_entities` (none before the system
/// migrations have run).
pub async fn load(database: &Database) -> Result<Vec<EntitySchema>, DataError> {
    let (exists, select) = match database.backend() {
        prefiq::Backend::Sqlite => (
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'prefiq_entities'",
            "SELECT schema FROM prefiq_entities WHERE module LIKE 'tenant:%' ORDER BY name",
        ),
        prefiq::Backend::Postgres => (
            "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE tablename = 'prefiq_entities' AND schemaname = ANY (current_schemas(false))",
            "SELECT schema::text FROM prefiq_entities WHERE module LIKE 'tenant:%' ORDER BY name",
        ),
    };
    let mut reading = database.reader().await?;
    let conn = &mut reading.conn();
    let exists = conn
        .fetch(&Sql::new(exists, vec![]), &[SqlType::Int])
        .await?;
    if exists
        .first()
        .and_then(|r| r.first())
        .and_then(Cell::as_int)
        .unwrap_or(0)
        == 0
    {
        return Ok(Vec::new());
    }
    let texts: Vec<String> = conn
        .fetch(&Sql::new(select, vec![]), &[SqlType::Text])
        .await?
        .into_iter()
        .filter_map(|row| row.into_iter().next().and_then(Cell::into_text))
        .collect();
    texts
        .iter()
        .map(|text| {
            serde_json::from_str(text).map_err(|e| {
                DataError::Sql(sqlx::Error::Decode(
                    format!("a runtime entity snapshot does not parse: {e}").into(),
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    /// Parses `definition` for tenant `acme`: `Ok(module)` or `Err((pointer, message part))`.
    fn check(definition: Value, expected: Result<&str, (&str, &str)>) {
        match (parse_definition("acme", &definition), expected) {
            (Ok(schema), Ok(module)) => assert_eq!(schema.module, module),
            (Err(error), Err((pointer, message))) => {
                assert_eq!(error_pointer(&definition, &error), pointer, "{error}");
                assert!(
                    error.to_string().contains(message),
                    "`{error}` does not say `{message}`"
                );
            }
            (got, want) => panic!("{definition}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn definitions() {
        check(
            json!({"name": "vehicle", "fields": [{"name": "plate", "type": "data", "unique": true}]}),
            Ok("tenant:acme"),
        );
        check(json!(["not", "an", "object"]), Err(("", "JSON object")));
        check(
            json!({"name": "vehicle", "fields": [{"name": "plate", "type": "nope"}]}),
            Err(("/fields/0", "")),
        );
        check(
            json!({"name": "Vehicle", "fields": []}),
            Err(("", "snake_case")),
        );
        check(
            json!({"name": "line", "child": true, "fields": [{"name": "x", "type": "int"}]}),
            Err(("", "child entity")),
        );
        check(
            json!({"name": "trip", "fields": [
                {"name": "plate", "type": "data"},
                {"name": "legs", "type": "table", "entity": "leg"}
            ]}),
            Err(("/fields/1", "`table` fields")),
        );
        for (name, why) in [
            ("sqlite_master", "SQLite reserves"),
            ("sqlite_sequence", "SQLite reserves"),
            ("pg_class", "PostgreSQL reserves"),
            ("prefiq_entities", "platform's"),
            ("prefiqx", "platform's"),
            ("cortex_users", "platform's"),
            ("information_schema", "reserved"),
            ("public", "reserved"),
        ] {
            check(
                json!({"name": name, "fields": [{"name": "x", "type": "int"}]}),
                Err(("", why)),
            );
        }
    }

    #[test]
    fn runtime_tables_are_named_after_tenant_and_entity() {
        let table = |tenant: &str, name: &str| {
            parse_definition(
                tenant,
                &json!({"name": name, "fields": [{"name": "x", "type": "int"}]}),
            )
            .unwrap()
            .table()
            .to_owned()
        };
        let acme = table("acme", "vehicle");
        assert!(
            acme.starts_with('t') && acme.ends_with("_vehicle"),
            "{acme}"
        );
        assert_ne!(acme, table("globex", "vehicle"));
        assert_eq!(acme, table("acme", "vehicle"), "the same name every time");
        // The longest tenant and entity names still fit PostgreSQL's identifiers.
        let long = table(&"t".repeat(63), &"v".repeat(48));
        assert!(long.len() <= schema::MAX_IDENTIFIER_BYTES, "{long}");
    }
}
