//! The entity engine: schemas declared as data, their tables and migrations, and the
//! tenant-scoped repository every write goes through.

pub mod custom;
pub mod ddl;
pub mod filter;
pub mod permission;
pub mod repo;
pub mod runtime;
pub mod schema;
pub mod sql;
mod tree;
pub mod value;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use prefiq::EntitySources;

pub use schema::{EntitySchema, FieldDef, FieldKind, SchemaError};

/// Every entity of the installation, by name.
#[derive(Debug, Default, Clone)]
pub struct EntityRegistry {
    by_name: BTreeMap<String, Arc<EntitySchema>>,
}

impl EntityRegistry {
    /// Parses and cross-checks every module's schemas.
    pub fn load(sources: &EntitySources) -> Result<Self, SchemaError> {
        Self::load_with_site(sources, None)
    }

    /// Parses every module's schemas plus the installation's own `schema/*.yaml` files in
    /// `site_dir` (module [`SITE_MODULE`]): entities declared without a line of Rust.
    pub fn load_with_site(
        sources: &EntitySources,
        site_dir: Option<&Path>,
    ) -> Result<Self, SchemaError> {
        let mut schemas = sources
            .0
            .iter()
            .map(|(module, source)| schema::parse_schema(module, source.file, source.yaml))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(dir) = site_dir {
            schemas.extend(read_site_schemas(dir)?);
        }
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

    /// The entities one tenant sees: every module's and the site's, and that tenant's own
    /// runtime entities; `None` sees no runtime entity at all.
    pub fn visible_to(&self, tenant: Option<&str>) -> EntityRegistry {
        EntityRegistry {
            by_name: self
                .by_name
                .iter()
                .filter(|(_, s)| s.visible_to(tenant))
                .map(|(n, s)| (n.clone(), s.clone()))
                .collect(),
        }
    }

    /// This registry with `added` entities, checked together (unique names, link targets).
    pub fn with(&self, added: Vec<EntitySchema>) -> Result<EntityRegistry, SchemaError> {
        let mut all: Vec<EntitySchema> = self.by_name.values().map(|s| (**s).clone()).collect();
        all.extend(added.iter().cloned());
        schema::check_links(&all)?;
        let mut by_name = self.by_name.clone();
        by_name.extend(added.into_iter().map(|s| (s.name.clone(), Arc::new(s))));
        Ok(EntityRegistry { by_name })
    }
}

/// The pseudo-module of entities declared in the installation's `schema/` folder.
pub const SITE_MODULE: &str = "site";

/// At most this many site schema files, each at most 1 MiB.
const MAX_SITE_FILES: usize = 1000;

fn read_site_schemas(dir: &Path) -> Result<Vec<EntitySchema>, SchemaError> {
    let error = |file: String, message: String| SchemaError {
        file,
        field: None,
        message,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(error(dir.display().to_string(), e.to_string())),
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    if paths.len() > MAX_SITE_FILES {
        return Err(error(
            dir.display().to_string(),
            format!("more than {MAX_SITE_FILES} schema files"),
        ));
    }
    paths
        .iter()
        .map(|path| {
            let shown = format!(
                "schema/{}",
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            if size > 1 << 20 {
                return Err(error(shown, "the file is larger than 1 MiB".into()));
            }
            let text =
                std::fs::read_to_string(path).map_err(|e| error(shown.clone(), e.to_string()))?;
            schema::parse_schema(SITE_MODULE, &shown, &text)
        })
        .collect()
}

/// The registry as a service: bound at register, loaded at boot, and extended at run time
/// when a tenant creates an entity.
#[derive(Debug, Default)]
pub struct Entities {
    registry: RwLock<Arc<EntityRegistry>>,
}

impl Entities {
    /// The loaded registry (empty before boot).
    pub fn registry(&self) -> Arc<EntityRegistry> {
        match self.registry.read() {
            Ok(registry) => registry.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the registry (at boot, and when a runtime entity is added).
    pub fn set(&self, registry: EntityRegistry) {
        let registry = Arc::new(registry);
        match self.registry.write() {
            Ok(mut slot) => *slot = registry,
            Err(poisoned) => *poisoned.into_inner() = registry,
        }
    }

    /// Adds entities to the registry, checked against every entity already in it.
    pub fn add(&self, added: Vec<EntitySchema>) -> Result<(), SchemaError> {
        let mut slot = match self.registry.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(slot.with(added)?);
        Ok(())
    }
}
