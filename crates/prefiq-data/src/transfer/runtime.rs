//! Runtime entities of an imported tenant: their definitions live in the main database's
//! `prefiq_entities` (no `tenant_id` column) and their tables are named after the tenant
//! (`t{12 hex of SHA-256(tenant)}_{name}`), so an import makes them again for the target
//! tenant before it copies their rows.

use std::sync::Arc;

use crate::database::Database;
use crate::entity::repo::Repository;
use crate::entity::schema::{EntitySchema, runtime_table};
use crate::entity::{Entities, runtime};

use super::TransferError;

/// The runtime entity snapshots (`prefiq_entities.schema`) of `tenant` in the main
/// database, as JSON text, by name.
pub async fn runtime_snapshots(
    main: &Database,
    tenant: &str,
) -> Result<Vec<String>, TransferError> {
    let module = runtime::runtime_module(tenant);
    Ok(runtime::load(main)
        .await?
        .into_iter()
        .filter(|schema| schema.module == module)
        .filter_map(|schema| serde_json::to_string(&schema).ok())
        .collect())
}

/// Makes the runtime entity `snapshot` (a source tenant's stored schema) for `tenant`:
/// its table through a recorded migration, in the main database and (database tenancy)
/// the tenant's, then its place in the registry. Returns the table its rows go to. An
/// entity of that tenant with the same table already made (by an import that failed
/// later) is taken as it is.
pub async fn create_runtime_entity(
    repository: &Repository,
    entities: &Entities,
    tenant: &str,
    snapshot: &str,
) -> Result<String, TransferError> {
    let bad = |message: String| TransferError::Table {
        table: "prefiq_entities".into(),
        message,
    };
    let mut schema: EntitySchema = serde_json::from_str(snapshot)
        .map_err(|e| bad(format!("a runtime entity does not parse: {e}")))?;
    if let Some(why) = runtime::reserved_name(&schema.name) {
        return Err(bad(format!(
            "`{}` cannot name an entity: {why}",
            schema.name
        )));
    }
    schema.module = runtime::runtime_module(tenant);
    schema.file = format!("api:{tenant}/{}", schema.name);
    let table = runtime_table(tenant, &schema.name);
    schema.table = Some(table.clone());
    let registry = entities.registry();
    if let Some(existing) = registry.get_for(Some(tenant), &schema.name) {
        if existing.table() == table {
            return Ok(table);
        }
        return Err(bad(format!(
            "an entity called `{}` already exists in this installation",
            schema.name
        )));
    }
    let main = repository.main_database();
    let database = main.get()?;
    let pending = crate::entity::ddl::plan_entity(&schema, None, database.backend())
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad(format!("the entity `{}` has no table", schema.name)))?;
    let sum = crate::migrate::checksum(&pending.sql);
    crate::migrate::apply_one(database, &pending, &sum).await?;
    if let Database::Postgres(pool) = database {
        crate::migrate::secure_tables(pool, crate::entity::ddl::tenant_tables(&schema)).await?;
    }
    let handle = repository
        .tenant_database(tenant)
        .await
        .map_err(|e| bad(e.to_string()))?;
    if !Arc::ptr_eq(&handle, &main) {
        let tenant_database = handle.get()?;
        crate::migrate::apply_one(tenant_database, &pending, &sum).await?;
        if let Database::Postgres(pool) = tenant_database {
            crate::migrate::secure_tables(pool, crate::entity::ddl::tenant_tables(&schema)).await?;
        }
    }
    entities.add(vec![schema]).map_err(|e| bad(e.to_string()))?;
    Ok(table)
}
