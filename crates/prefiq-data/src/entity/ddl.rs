//! Tables for entities: generated DDL for both backends, and the migrations a schema change
//! produces (compared with the snapshot recorded in `prefiq_entities`).

use std::fmt::Write as _;

use prefiq::{Backend, PendingMigration};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::schema::{EntitySchema, FieldDef, FieldKind, fit_identifier};

/// The PostgreSQL role that statements on entity tables run as: it has no `BYPASSRLS`
/// and only the table privileges it needs, so row-level security holds it.
pub const APP_ROLE: &str = "prefiq_app";

/// The transaction-local setting that carries the tenant of a statement on PostgreSQL.
pub const TENANT_SETTING: &str = "prefiq.tenant";

/// The row-level-security predicate: a transaction that set no tenant reads `NULL` through
/// `NULLIF` and matches no row, so a missing tenant fails closed.
fn tenant_predicate() -> String {
    format!("tenant_id = NULLIF(current_setting('{TENANT_SETTING}', true), '')")
}

/// PostgreSQL statements that put `table` behind row-level security: enabled, forced (the
/// owner too), with one policy for reads and writes.
pub fn row_security(table: &str) -> String {
    let t = quote(table);
    let predicate = tenant_predicate();
    format!(
        "ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;\nALTER TABLE {t} FORCE ROW LEVEL SECURITY;\nDROP POLICY IF EXISTS tenant_isolation ON {t};\nCREATE POLICY tenant_isolation ON {t} USING ({predicate}) WITH CHECK ({predicate});\n"
    )
}

/// PostgreSQL statements that make [`APP_ROLE`] (without `BYPASSRLS`, unable to log in) if
/// it is missing, give it the table privileges of the schema, now and for tables made
/// later, and let the connecting user act as it.
pub fn app_role() -> String {
    format!(
        "DO $$ BEGIN\n  CREATE ROLE {APP_ROLE} NOLOGIN NOBYPASSRLS;\nEXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;\nEND $$;\nDO $$ BEGIN\n  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN\n    EXECUTE 'GRANT {APP_ROLE} TO ' || quote_ident(current_user);\n  END IF;\nEND $$;\nGRANT USAGE ON SCHEMA public TO {APP_ROLE};\nGRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE};\nALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE};\n"
    )
}

/// The tables of `schema` that hold tenant rows: its own and, for a tree, its closure
/// table.
pub fn tenant_tables(schema: &EntitySchema) -> Vec<String> {
    if !schema.storage.is_table() {
        // A view has no policy of its own: it reads as its caller (`security_invoker`),
        // through the policies of the tables under it.
        return Vec::new();
    }
    let mut tables = vec![schema.table().to_owned()];
    tables.extend(schema.tree_table());
    tables
}

/// Quotes an identifier. Names are checked to be `[a-z][a-z0-9_]*` before they get here,
/// and quoting keeps SQL keywords (`order`, `user`) usable as names.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The column type of a field on `backend` (money: of its minor-units column).
pub fn column_type(field: &FieldDef, backend: Backend) -> &'static str {
    match (&field.kind, backend) {
        (FieldKind::Int | FieldKind::Decimal { .. } | FieldKind::Money, Backend::Sqlite) => {
            "INTEGER"
        }
        (FieldKind::Int | FieldKind::Decimal { .. } | FieldKind::Money, Backend::Postgres) => {
            "BIGINT"
        }
        (FieldKind::Bool, Backend::Sqlite) => "INTEGER",
        (FieldKind::Bool, Backend::Postgres) => "BOOLEAN",
        (FieldKind::Json, Backend::Postgres) => "JSONB",
        _ => "TEXT",
    }
}

fn field_columns(field: &FieldDef, backend: Backend) -> Vec<String> {
    let mut out = Vec::new();
    if field.kind.has_column() {
        out.push(format!(
            "{} {}",
            quote(&field.name),
            column_type(field, backend)
        ));
    }
    if matches!(field.kind, FieldKind::Money) {
        out.push(format!(
            "{} TEXT",
            quote(&format!("{}_currency", field.name))
        ));
    }
    out.into_iter().map(|c| c_collation(c, backend)).collect()
}

/// On PostgreSQL, text columns compare byte-wise (`COLLATE "C"`), as SQLite's do, so that
/// sorting and keyset pages agree between backends and plain indexes serve `ORDER BY`.
fn c_collation(column: String, backend: Backend) -> String {
    if backend == Backend::Postgres
        && (column.ends_with(" TEXT") || column.contains(" TEXT NOT NULL"))
    {
        column.replacen(" TEXT", " TEXT COLLATE \"C\"", 1)
    } else {
        column
    }
}

/// The name of the unique index of `field`: what a unique violation names.
pub fn unique_index(schema: &EntitySchema, field: &str) -> String {
    schema.index_name(&format!("u_{field}"))
}

/// The shape of the generated indexes. 2: an `indexed` field's index ends in the
/// default list order, `(tenant_id, field, modified_at, id)`, so a list that filters on
/// the field and keeps the default order reads its page straight off the index. With
/// `(tenant_id, field)` alone, PostgreSQL right after a bulk load (no statistics yet)
/// picked that index and sorted every matching row: a list of 20 fell from 4,800/s to
/// 193/s on 30,000 rows.
///
/// 3: a child table has no index on `name` or `modified_at`: its rows are read only
/// through their parent (`(tenant_id, parent_id, parent_field, idx)`), and a journal's
/// lines paid for two unused indexes on every write.
pub const INDEX_LAYOUT: u8 = 3;

/// The layout that changed the field indexes.
const FIELD_INDEX_LAYOUT: u8 = 2;

/// The layout from which child tables have no `name` or `modified_at` index.
const CHILD_INDEX_LAYOUT: u8 = 3;

fn field_indexes(schema: &EntitySchema, field: &FieldDef) -> Vec<String> {
    let mut out = Vec::new();
    if field.unique {
        out.push(format!(
            "CREATE UNIQUE INDEX {} ON {} (tenant_id, {}) WHERE deleted_at IS NULL;",
            quote(&unique_index(schema, &field.name)),
            quote(schema.table()),
            quote(&field.name)
        ));
    }
    if field.indexed && !field.unique {
        out.push(format!(
            "CREATE INDEX {} ON {} (tenant_id, {}, modified_at, id);",
            quote(&schema.index_name(&format!("i_{}", field.name))),
            quote(schema.table()),
            quote(&field.name)
        ));
    }
    out
}

/// The `CREATE TABLE` and indexes of an entity.
pub fn create_table(schema: &EntitySchema, backend: Backend) -> String {
    let json = if backend == Backend::Postgres {
        "JSONB"
    } else {
        "TEXT"
    };
    let int = if backend == Backend::Postgres {
        "BIGINT"
    } else {
        "INTEGER"
    };
    let mut columns = vec![
        "tenant_id TEXT NOT NULL".to_owned(),
        "id TEXT NOT NULL".to_owned(),
        "name TEXT NOT NULL".to_owned(),
        "created_at TEXT NOT NULL".to_owned(),
        "created_by TEXT".to_owned(),
        "modified_at TEXT NOT NULL".to_owned(),
        "modified_by TEXT".to_owned(),
        format!("version {int} NOT NULL DEFAULT 1"),
        format!("docstatus {int} NOT NULL DEFAULT 0"),
        "deleted_at TEXT".to_owned(),
        format!("custom {json} NOT NULL DEFAULT '{{}}'"),
    ];
    if schema.child {
        columns.extend([
            "parent_id TEXT NOT NULL".to_owned(),
            "parent_field TEXT NOT NULL".to_owned(),
            format!("idx {int} NOT NULL"),
        ]);
    } else {
        columns.push("amended_from TEXT".to_owned());
    }
    for field in &schema.fields {
        columns.extend(field_columns(field, backend));
    }
    let mut columns: Vec<String> = columns
        .into_iter()
        .map(|c| c_collation(c, backend))
        .collect();
    columns.push("PRIMARY KEY (tenant_id, id)".to_owned());
    let table = quote(schema.table());
    let mut sql = format!(
        "CREATE TABLE {table} (\n    {}\n);\n",
        columns.join(",\n    ")
    );
    if !schema.child {
        let _ = writeln!(
            sql,
            "CREATE UNIQUE INDEX {} ON {table} (tenant_id, name);",
            quote(&schema.index_name("name"))
        );
        let _ = writeln!(
            sql,
            "CREATE INDEX {} ON {table} (tenant_id, modified_at, id);",
            quote(&schema.index_name("modified"))
        );
    }
    if schema.child {
        let _ = writeln!(
            sql,
            "CREATE INDEX {} ON {table} (tenant_id, parent_id, parent_field, idx);",
            quote(&schema.index_name("parent"))
        );
    }
    for field in &schema.fields {
        for index in field_indexes(schema, field) {
            let _ = writeln!(sql, "{index}");
        }
    }
    if let Some(tree) = schema.tree_table() {
        let _ = writeln!(
            sql,
            "CREATE TABLE {} (\n    tenant_id TEXT NOT NULL,\n    ancestor TEXT NOT NULL,\n    descendant TEXT NOT NULL,\n    depth {int} NOT NULL,\n    PRIMARY KEY (tenant_id, ancestor, descendant)\n);",
            quote(&tree)
        );
        let _ = writeln!(
            sql,
            "CREATE INDEX {} ON {} (tenant_id, descendant, depth);",
            quote(&fit_identifier(format!("{tree}_descendant"))),
            quote(&tree)
        );
    }
    sql
}

/// What of a field decides its storage; a change here is destructive.
#[derive(Serialize, PartialEq, Eq)]
struct StorageShape<'a> {
    name: &'a str,
    kind: &'a str,
    scale: Option<u8>,
    unique: bool,
    indexed: bool,
}

fn shape(field: &FieldDef) -> StorageShape<'_> {
    StorageShape {
        name: &field.name,
        kind: field.kind.type_name(),
        scale: match field.kind {
            FieldKind::Decimal { scale } => Some(scale),
            _ => None,
        },
        unique: field.unique,
        indexed: field.indexed,
    }
}

fn shape_hash(schema: &EntitySchema) -> String {
    let shapes: Vec<StorageShape<'_>> = schema.fields.iter().map(shape).collect();
    // A tree is part of the shape only when set, so hashes of older schemas stay the same.
    // The index layout too, from layout 2 on, so a table made with older indexes gets a
    // migration (of its indexes) even when no field changed.
    let text = match (schema.tree, schema.index_layout) {
        (None, 0 | 1) => serde_json::to_string(&(schema.child, shapes)),
        (Some(tree), 0 | 1) => serde_json::to_string(&(schema.child, shapes, tree)),
        (tree, layout) => serde_json::to_string(&(schema.child, shapes, tree, layout)),
    }
    .unwrap_or_default();
    Sha256::digest(text.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a schema change cannot be applied by the engine alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entity `{entity}` ({file}): {message}; a destructive change needs an explicit migration")]
pub struct DestructiveChange {
    /// The entity.
    pub entity: String,
    /// Its schema file.
    pub file: String,
    /// What changed.
    pub message: String,
}

fn snapshot_upsert(schema: &EntitySchema, backend: Backend) -> String {
    let json = serde_json::to_string(schema).unwrap_or_default();
    let cast = if backend == Backend::Postgres {
        "::jsonb"
    } else {
        ""
    };
    format!(
        "INSERT INTO prefiq_entities (name, module, schema) VALUES ({}, {}, {}{cast}) ON CONFLICT (name) DO UPDATE SET module = excluded.module, schema = excluded.schema;\n",
        literal(schema.table()),
        literal(&schema.module),
        literal(&json)
    )
}

/// The migration that brings the table of `schema` from `recorded` (the last applied
/// schema, `None` if the table does not exist) to `schema`; `None` if storage is unchanged.
pub fn plan_entity(
    schema: &EntitySchema,
    recorded: Option<&EntitySchema>,
    backend: Backend,
) -> Result<Option<PendingMigration>, DestructiveChange> {
    if !schema.storage.is_table() {
        // The declaring module's migration makes and changes the view.
        return Ok(None);
    }
    let id = format!("entity_{}_{}", schema.name, shape_hash(schema));
    let Some(old) = recorded else {
        let sql = create_table(schema, backend) + &snapshot_upsert(schema, backend);
        return Ok(Some(PendingMigration {
            module: schema.module.clone(),
            id,
            sql,
        }));
    };
    let destructive = |message: String| DestructiveChange {
        entity: schema.name.clone(),
        file: schema.file.clone(),
        message,
    };
    if old.child != schema.child {
        return Err(destructive("`child` changed".into()));
    }
    if old.tree != schema.tree {
        return Err(destructive("`tree` changed".into()));
    }
    let mut sql = String::new();
    if schema.child
        && old.index_layout < CHILD_INDEX_LAYOUT
        && schema.index_layout >= CHILD_INDEX_LAYOUT
    {
        for suffix in ["name", "modified"] {
            let _ = writeln!(
                sql,
                "DROP INDEX IF EXISTS {};",
                quote(&schema.index_name(suffix))
            );
        }
    }
    for before in &old.fields {
        match schema.field(&before.name) {
            None => return Err(destructive(format!("field `{}` was removed", before.name))),
            Some(now)
                if now.kind.type_name() != before.kind.type_name()
                    || shape(now).scale != shape(before).scale =>
            {
                return Err(destructive(format!(
                    "field `{}` changed type from {} to {}",
                    now.name,
                    before.kind.type_name(),
                    now.kind.type_name()
                )));
            }
            Some(now) => {
                let relayout = now.indexed
                    && !now.unique
                    && old.index_layout < FIELD_INDEX_LAYOUT
                    && schema.index_layout >= FIELD_INDEX_LAYOUT;
                if (before.unique, before.indexed) != (now.unique, now.indexed) || relayout {
                    for name in [
                        unique_index(schema, &now.name),
                        schema.index_name(&format!("i_{}", now.name)),
                    ] {
                        let _ = writeln!(sql, "DROP INDEX IF EXISTS {};", quote(&name));
                    }
                    for index in field_indexes(schema, now) {
                        let _ = writeln!(sql, "{index}");
                    }
                }
            }
        }
    }
    for field in schema
        .fields
        .iter()
        .filter(|f| old.field(&f.name).is_none())
    {
        for column in field_columns(field, backend) {
            let _ = writeln!(
                sql,
                "ALTER TABLE {} ADD COLUMN {column};",
                quote(schema.table())
            );
        }
        for index in field_indexes(schema, field) {
            let _ = writeln!(sql, "{index}");
        }
    }
    if sql.is_empty() && shape_hash(old) == shape_hash(schema) {
        return Ok(None);
    }
    sql.push_str(&snapshot_upsert(schema, backend));
    Ok(Some(PendingMigration {
        module: schema.module.clone(),
        id,
        sql,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::schema::parse_schema;

    fn schema(yaml: &str) -> EntitySchema {
        parse_schema("m", "schema/t.yaml", yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    const V1: &str = "name: todo\nfields:\n  - {name: description, type: text}\n  - {name: status, type: select, options: [Open, Closed], indexed: true}\n  - {name: amount, type: money}\n";

    #[test]
    fn create_table_sqlite() {
        let sql = create_table(&schema(V1), Backend::Sqlite);
        insta_like(
            &sql,
            &[
                "CREATE TABLE \"todo\" (",
                "    custom TEXT NOT NULL DEFAULT '{}',",
                "    \"amount\" INTEGER,\n    \"amount_currency\" TEXT,",
                "    PRIMARY KEY (tenant_id, id)\n);",
                "CREATE UNIQUE INDEX \"todo__name\" ON \"todo\" (tenant_id, name);",
                "CREATE INDEX \"todo__i_status\" ON \"todo\" (tenant_id, \"status\", modified_at, id);",
            ],
        );
        let pg = create_table(&schema(V1), Backend::Postgres);
        insta_like(
            &pg,
            &["custom JSONB NOT NULL DEFAULT '{}'", "\"amount\" BIGINT"],
        );
    }

    fn insta_like(sql: &str, needles: &[&str]) {
        for needle in needles {
            assert!(sql.contains(needle), "missing {needle:?} in\n{sql}");
        }
    }

    fn check(old: Option<&str>, new: &str, expected: &str) {
        let got = match plan_entity(&schema(new), old.map(schema).as_ref(), Backend::Sqlite) {
            Ok(None) => "unchanged".to_owned(),
            Ok(Some(m)) => m
                .sql
                .lines()
                .filter(|l| !l.starts_with("INSERT INTO prefiq_entities"))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => e.to_string(),
        };
        assert!(
            got.starts_with(expected),
            "got:\n{got}\nexpected start:\n{expected}"
        );
    }

    /// A table recorded before index layout 2 gets its field indexes rebuilt in the default
    /// list order, once, though no field changed.
    fn check_relayout() {
        let mut recorded = schema(V1);
        recorded.index_layout = 0;
        let plan = plan_entity(&schema(V1), Some(&recorded), Backend::Postgres)
            .ok()
            .flatten()
            .map(|m| m.sql)
            .unwrap_or_default();
        assert!(
            plan.starts_with("DROP INDEX IF EXISTS \"todo__u_status\";\nDROP INDEX IF EXISTS \"todo__i_status\";\nCREATE INDEX \"todo__i_status\" ON \"todo\" (tenant_id, \"status\", modified_at, id);"),
            "{plan}"
        );
        let again = plan_entity(&schema(V1), Some(&schema(V1)), Backend::Postgres);
        assert!(matches!(again, Ok(None)));
    }

    /// Layout 3: a child table is made without `name` and `modified_at` indexes, and one
    /// recorded with them loses them, once.
    #[test]
    fn child_tables_have_no_name_or_modified_index() {
        let line = "name: line\nchild: true\nfields:\n  - {name: amount, type: int}\n";
        let made = create_table(&schema(line), Backend::Sqlite);
        assert!(made.contains("\"line__parent\""), "{made}");
        assert!(!made.contains("\"line__name\""), "{made}");
        assert!(!made.contains("\"line__modified\""), "{made}");
        let mut recorded = schema(line);
        recorded.index_layout = 2;
        let plan = plan_entity(&schema(line), Some(&recorded), Backend::Postgres)
            .ok()
            .flatten()
            .map(|m| m.sql)
            .unwrap_or_default();
        assert!(
            plan.starts_with("DROP INDEX IF EXISTS \"line__name\";\nDROP INDEX IF EXISTS \"line__modified\";\nINSERT INTO prefiq_entities"),
            "{plan}"
        );
        let todo = plan_entity(
            &schema(V1),
            Some(&{
                let mut old = schema(V1);
                old.index_layout = 2;
                old
            }),
            Backend::Postgres,
        )
        .ok()
        .flatten()
        .map(|m| m.sql)
        .unwrap_or_default();
        assert!(
            todo.starts_with("INSERT INTO prefiq_entities"),
            "a table keeps its indexes: {todo}"
        );
        let again = plan_entity(&schema(line), Some(&schema(line)), Backend::Postgres);
        assert!(matches!(again, Ok(None)));
    }

    #[test]
    fn schema_changes() {
        check(None, V1, "CREATE TABLE \"todo\"");
        check(Some(V1), V1, "unchanged");
        let relabelled = V1.replace(
            "{name: description, type: text}",
            "{name: description, type: text, label: Details}",
        );
        check(Some(V1), &relabelled, "unchanged");
        let added = format!("{V1}  - {{name: due, type: date, indexed: true}}\n");
        check(
            Some(V1),
            &added,
            "ALTER TABLE \"todo\" ADD COLUMN \"due\" TEXT;\nCREATE INDEX \"todo__i_due\" ON \"todo\" (tenant_id, \"due\", modified_at, id);",
        );
        let unique = V1.replace(
            "{name: description, type: text}",
            "{name: description, type: data, unique: true}",
        );
        check(
            Some(V1),
            &unique,
            "entity `todo` (schema/t.yaml): field `description` changed type from text to data; a destructive change needs an explicit migration",
        );
        let removed = V1.replace("  - {name: amount, type: money}\n", "");
        check(
            Some(V1),
            &removed,
            "entity `todo` (schema/t.yaml): field `amount` was removed; a destructive change needs an explicit migration",
        );
        let unindexed = V1.replace(", indexed: true", "");
        check_relayout();
        check(
            Some(V1),
            &unindexed,
            "DROP INDEX IF EXISTS \"todo__u_status\";\nDROP INDEX IF EXISTS \"todo__i_status\";",
        );
    }
}
