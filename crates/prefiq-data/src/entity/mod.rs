//! The entity engine: schemas declared as data, their tables and migrations, and the
//! tenant-scoped repository every write goes through.

pub mod ddl;
pub mod filter;
pub mod repo;
pub mod schema;
pub mod sql;
pub mod value;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use prefiq::EntitySources;

pub use schema::{EntitySchema, FieldDef, FieldKind, SchemaError};

/// Every entity of the installation, by name.
#[derive(Debug, Default)]
pub struct EntityRegistry {
    by_name: BTreeMap<String, Arc<EntitySchema>>,
}

impl EntityRegistry {
    /// Parses and cross-checks every module's schemas.
    pub fn load(sources: &EntitySources) -> Result<Self, SchemaError> {
        let schemas = sources
            .0
            .iter()
            .map(|(module, source)| schema::parse_schema(module, source.file, source.yaml))
            .collect::<Result<Vec<_>, _>>()?;
        schema::check_links(&schemas)?;
        Ok(EntityRegistry {
            by_name: schemas
                .into_iter()
                .map(|s| (s.name.clone(), Arc::new(s)))
                .collect(),
        })
    }

    /// The entity called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<EntitySchema>> {
        self.by_name.get(name)
    }

    /// Every entity, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<EntitySchema>> {
        self.by_name.values()
    }
}

/// The registry as a service: bound at register, loaded at boot.
#[derive(Debug, Default)]
pub struct Entities {
    registry: OnceLock<Arc<EntityRegistry>>,
}

impl Entities {
    /// The loaded registry (empty before boot).
    pub fn registry(&self) -> Arc<EntityRegistry> {
        self.registry.get().cloned().unwrap_or_default()
    }

    /// Stores the registry loaded at boot; a second call keeps the first.
    pub fn set(&self, registry: EntityRegistry) {
        let _ = self.registry.set(Arc::new(registry));
    }
}
