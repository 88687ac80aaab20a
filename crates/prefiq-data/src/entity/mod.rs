//! The entity engine: schemas declared as data, their tables and migrations, and the
//! tenant-scoped repository every write goes through.

pub mod custom;
pub mod ddl;
pub mod filter;
pub mod repo;
pub mod schema;
pub mod sql;
pub mod value;

use std::collections::BTreeMap;
use std::path::Path;
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
