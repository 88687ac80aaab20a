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

pub use schema::{EntitySchema, FieldDef, FieldKind, SchemaError, Storage};

/// Every entity of the installation: the declared ones (modules' and the site's) by name,
/// and the runtime ones by (tenant, name), since each tenant names its own.
///
/// A *tenant's view* ([`EntityRegistry::visible_to`]) holds the declared entities and that
/// tenant's runtime ones together by name; [`EntityRegistry::get`] on it finds both.
#[derive(Debug, Default, Clone)]
pub struct EntityRegistry {
    by_name: BTreeMap<String, Arc<EntitySchema>>,
    runtime: BTreeMap<(String, String), Arc<EntitySchema>>,
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
        EntityRegistry::default().with(schemas)
    }

    /// The entity called `name`: a declared one, or in a tenant's view also that tenant's
    /// runtime one. Use [`EntityRegistry::get_for`] on the whole registry.
    pub fn get(&self, name: &str) -> Option<&Arc<EntitySchema>> {
        self.by_name.get(name)
    }

    /// The entity called `name` as `tenant` sees it: its own runtime entity, else a
    /// declared one; `None` sees declared entities only.
    pub fn get_for(&self, tenant: Option<&str>, name: &str) -> Option<&Arc<EntitySchema>> {
        tenant
            .and_then(|t| self.runtime.get(&(t.to_owned(), name.to_owned())))
            .or_else(|| self.by_name.get(name).filter(|s| s.visible_to(tenant)))
    }

    /// Every entity: the declared ones by name, then every tenant's runtime ones by tenant
    /// and name (two tenants' may share a name).
    pub fn all(&self) -> impl Iterator<Item = &Arc<EntitySchema>> {
        self.by_name.values().chain(self.runtime.values())
    }

    /// The runtime entities of `tenant`, by name.
    pub fn runtime_of<'r>(
        &'r self,
        tenant: &'r str,
    ) -> impl Iterator<Item = &'r Arc<EntitySchema>> {
        self.runtime
            .range((tenant.to_owned(), String::new())..)
            .take_while(move |((owner, _), _)| owner == tenant)
            .map(|(_, s)| s)
    }

    /// The entities one tenant sees, together by name: every module's and the site's, and
    /// that tenant's own runtime entities; `None` sees no runtime entity at all.
    pub fn visible_to(&self, tenant: Option<&str>) -> EntityRegistry {
        let mut by_name = self.by_name.clone();
        if let Some(tenant) = tenant {
            by_name.extend(self.runtime_of(tenant).map(|s| (s.name.clone(), s.clone())));
        }
        EntityRegistry {
            by_name,
            runtime: BTreeMap::new(),
        }
    }

    /// This registry with `added` entities. Declared entities are checked together with
    /// every declared one and every tenant's runtime ones (a name both use stops boot);
    /// runtime ones with their tenant's view: unique names there, link targets there.
    pub fn with(&self, added: Vec<EntitySchema>) -> Result<EntityRegistry, SchemaError> {
        let mut next = self.clone();
        let mut tenants = std::collections::BTreeSet::new();
        let mut declared = Vec::new();
        for schema in added {
            let schema = Arc::new(schema);
            match schema.owner_tenant() {
                Some(tenant) => {
                    let key = (tenant.to_owned(), schema.name.clone());
                    if let Some(first) = next.runtime.get(&key) {
                        return Err(SchemaError {
                            file: schema.file.clone(),
                            field: None,
                            message: format!(
                                "entity `{}` is also declared by module `{}` in {}",
                                schema.name, first.module, first.file
                            ),
                        });
                    }
                    tenants.insert(tenant.to_owned());
                    next.runtime.insert(key, schema);
                }
                None => declared.push(schema),
            }
        }
        if !declared.is_empty() {
            let all_declared: Vec<&EntitySchema> = next
                .by_name
                .values()
                .chain(declared.iter())
                .map(|s| &**s)
                .collect();
            schema::check_links_of(&all_declared)?;
            next.by_name
                .extend(declared.into_iter().map(|s| (s.name.clone(), s)));
            // New declared entities must not take a name a tenant already uses.
            tenants.extend(next.runtime.keys().map(|(tenant, _)| tenant.clone()));
        }
        for tenant in &tenants {
            let view: Vec<&EntitySchema> = next
                .by_name
                .values()
                .chain(next.runtime_of(tenant))
                .map(|s| &**s)
                .collect();
            schema::check_links_of(&view)?;
        }
        Ok(next)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A schema of `module` called `name`, with one field, or a link to `link`.
    fn entity(module: &str, name: &str, link: Option<&str>) -> EntitySchema {
        let field = match link {
            Some(target) => format!("{{name: other, type: link, target: {target}}}"),
            None => "{name: x, type: int}".to_owned(),
        };
        let yaml = format!("name: {name}\nfields:\n  - {field}\n");
        let mut schema =
            schema::parse_schema(module, "schema/x.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
        if let Some(tenant) = schema.owner_tenant().map(str::to_owned) {
            schema.table = Some(schema::runtime_table(&tenant, name));
        }
        schema
    }

    /// Adds `added` to a registry with the declared entity `todo`: `Ok(())` or the error.
    fn check(added: Vec<EntitySchema>, expected: Result<(), &str>) {
        let base = EntityRegistry::default()
            .with(vec![entity("m", "todo", None)])
            .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = added
            .iter()
            .map(|s| format!("{}/{}", s.module, s.name))
            .collect();
        match (base.with(added), expected) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{names:?}: {e}"),
            (got, want) => panic!("{names:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn runtime_entity_names_are_per_tenant() {
        check(
            vec![
                entity("tenant:acme", "vehicle", None),
                entity("tenant:globex", "vehicle", None),
            ],
            Ok(()),
        );
        check(
            vec![
                entity("tenant:acme", "vehicle", None),
                entity("tenant:acme", "vehicle", None),
            ],
            Err("also declared"),
        );
        check(
            vec![entity("tenant:acme", "todo", None)],
            Err("also declared"),
        );
        // A link reaches declared entities and the tenant's own, not another tenant's.
        check(vec![entity("tenant:acme", "garage", Some("todo"))], Ok(()));
        check(
            vec![
                entity("tenant:acme", "car", None),
                entity("tenant:acme", "garage", Some("car")),
            ],
            Ok(()),
        );
        check(
            vec![
                entity("tenant:globex", "car", None),
                entity("tenant:acme", "garage", Some("car")),
            ],
            Err("no module declares"),
        );
        // A declared entity added later may not take a name a tenant uses.
        let with_runtime = EntityRegistry::default()
            .with(vec![entity("tenant:acme", "vehicle", None)])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            with_runtime
                .with(vec![entity("m", "vehicle", None)])
                .is_err()
        );
    }

    #[test]
    fn each_tenant_sees_its_own_runtime_entities() {
        let registry = EntityRegistry::default()
            .with(vec![
                entity("m", "todo", None),
                entity("tenant:acme", "vehicle", None),
                entity("tenant:globex", "vehicle", None),
                entity("tenant:globex", "boat", None),
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        let seen = |tenant: Option<&str>| {
            registry
                .visible_to(tenant)
                .all()
                .map(|s| format!("{}:{}", s.module, s.name))
                .collect::<Vec<_>>()
        };
        assert_eq!(seen(None), ["m:todo"]);
        assert_eq!(seen(Some("acme")), ["m:todo", "tenant:acme:vehicle"]);
        assert_eq!(
            seen(Some("globex")),
            ["tenant:globex:boat", "m:todo", "tenant:globex:vehicle"]
        );
        let table = |tenant, name| registry.get_for(tenant, name).map(|s| s.table().to_owned());
        assert_ne!(
            table(Some("acme"), "vehicle"),
            table(Some("globex"), "vehicle")
        );
        assert_eq!(table(Some("initech"), "vehicle"), None);
        assert_eq!(table(None, "vehicle"), None);
        assert_eq!(table(Some("acme"), "todo").as_deref(), Some("todo"));
        assert_eq!(registry.get("vehicle").map(|s| s.name.clone()), None);
    }

    #[test]
    fn identifiers_fit_postgres() {
        let check = |name: String, expected: &str| {
            let fitted = schema::fit_identifier(name.clone());
            assert!(fitted.len() <= schema::MAX_IDENTIFIER_BYTES, "{fitted}");
            assert!(fitted.starts_with(expected), "{name} → {fitted}");
        };
        check("todo__u_status".into(), "todo__u_status");
        check("x".repeat(63), &"x".repeat(63));
        check("x".repeat(64), &"x".repeat(50));
        // Two long names that share their first 63 bytes stay two names.
        let a = schema::fit_identifier(format!("{}_a", "x".repeat(70)));
        let b = schema::fit_identifier(format!("{}_b", "x".repeat(70)));
        assert_ne!(a, b);
    }
}
