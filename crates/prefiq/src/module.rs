//! Modules: their manifests, and the ordering of the module graph.

use std::collections::{BTreeMap, BTreeSet};

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::lifecycle::LifecycleHooks;
use crate::migration::Migration;
use crate::provider::ServiceProvider;

/// A module's manifest, usually parsed from the `module.yaml` embedded in its crate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Unique module name, snake_case.
    pub name: String,
    /// The module's semantic version.
    pub version: Version,
    /// One sentence on what the module does.
    #[serde(default)]
    pub description: String,
    /// Modules this one needs, with the versions it accepts.
    #[serde(default)]
    pub depends: BTreeMap<String, VersionReq>,
    /// Entity schema files this module declares (paths relative to the crate).
    #[serde(default)]
    pub entities: Vec<String>,
    /// Permissions this module declares, such as `accounting.close_period`.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Tenant-level actions granted to roles out of the box (`Auditor: [cortex.read_audit]`):
    /// the module's own roles come with what they need, without a tenant policy.
    #[serde(default)]
    pub grants: BTreeMap<String, Vec<String>>,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid module manifest{}: {message}", name.as_ref().map(|n| format!(" of `{n}`")).unwrap_or_default())]
pub struct ManifestError {
    name: Option<String>,
    message: String,
}

impl Manifest {
    /// Parses and checks a YAML manifest.
    pub fn from_yaml(source: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest = serde_yaml::from_str(source).map_err(|e| ManifestError {
            name: None,
            message: e.to_string(),
        })?;
        let bad = |message: String| ManifestError {
            name: Some(manifest.name.clone()),
            message,
        };
        if !is_module_name(&manifest.name) {
            return Err(bad(
                "name must be snake_case: a-z, 0-9 and _, starting with a letter".into(),
            ));
        }
        if let Some(dep) = manifest.depends.keys().find(|d| !is_module_name(d)) {
            return Err(bad(format!("dependency name `{dep}` is not a module name")));
        }
        if manifest.depends.contains_key(&manifest.name) {
            return Err(bad("a module cannot depend on itself".into()));
        }
        Ok(manifest)
    }
}

/// Whether `name` is a valid module name: `[a-z][a-z0-9_]*`, at most 64 bytes.
pub fn is_module_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A module: a manifest plus what it brings to the boot sequence.
///
/// Apps implement this; the kernel never names an app. Routes, readiness checks and other
/// extension points are contributed by the module's providers during `register`.
pub trait Module: Send + Sync + 'static {
    /// The module's manifest.
    fn manifest(&self) -> &Manifest;

    /// The providers this module registers, in order.
    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        Vec::new()
    }

    /// The module's migrations; they run in id order, after its dependencies' migrations.
    fn migrations(&self) -> Vec<Migration> {
        Vec::new()
    }

    /// Registers lifecycle hooks.
    fn hooks(&self, _hooks: &mut LifecycleHooks) {}

    /// The module's entity schemas (YAML), usually embedded from its `schema/` folder. The
    /// entity engine parses them at boot; an invalid one stops boot naming file and field.
    fn entities(&self) -> Vec<EntitySource> {
        Vec::new()
    }
}

/// One entity schema file as a module ships it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitySource {
    /// The file, for messages, such as `schema/todo.yaml`.
    pub file: &'static str,
    /// The YAML text.
    pub yaml: &'static str,
}

/// Every module's entity schema sources, in module order; bound by the kernel.
#[derive(Debug, Clone, Default)]
pub struct EntitySources(pub Vec<(String, EntitySource)>);

/// Why the module graph cannot be booted. Every variant names the modules involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleGraphError {
    /// Two modules have the same name.
    #[error("module `{0}` is registered twice")]
    Duplicate(String),
    /// A dependency is not installed.
    #[error("module `{module}` depends on `{dependency}`, which is not installed")]
    MissingDependency {
        /// The module that declares the dependency.
        module: String,
        /// The missing module.
        dependency: String,
    },
    /// A dependency is installed in a version the dependent does not accept.
    #[error("module `{module}` requires `{dependency}` {required}, but {found} is installed")]
    IncompatibleVersion {
        /// The module that declares the dependency.
        module: String,
        /// The dependency.
        dependency: String,
        /// The accepted versions.
        required: VersionReq,
        /// The installed version.
        found: Version,
    },
    /// Modules depend on each other in a cycle.
    #[error("modules depend on each other in a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

/// Orders manifests so that every module comes after its dependencies; among modules whose
/// dependencies are all placed, the one with the smallest name goes first. The result
/// depends only on the set of manifests, never on the order they were given in.
///
/// Returns indexes into `manifests`.
pub fn order_modules(manifests: &[&Manifest]) -> Result<Vec<usize>, ModuleGraphError> {
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, m) in manifests.iter().enumerate() {
        if by_name.insert(m.name.as_str(), i).is_some() {
            return Err(ModuleGraphError::Duplicate(m.name.clone()));
        }
    }
    // Check dependencies in name order so the first error reported is deterministic.
    for (&name, &i) in &by_name {
        for (dep, req) in &manifests[i].depends {
            let Some(&d) = by_name.get(dep.as_str()) else {
                return Err(ModuleGraphError::MissingDependency {
                    module: name.to_owned(),
                    dependency: dep.clone(),
                });
            };
            if !req.matches(&manifests[d].version) {
                return Err(ModuleGraphError::IncompatibleVersion {
                    module: name.to_owned(),
                    dependency: dep.clone(),
                    required: req.clone(),
                    found: manifests[d].version.clone(),
                });
            }
        }
    }
    // Kahn's algorithm with a name-ordered ready set.
    let mut waiting_on: BTreeMap<&str, usize> = by_name
        .iter()
        .map(|(&n, &i)| (n, manifests[i].depends.len()))
        .collect();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (&name, &i) in &by_name {
        for dep in manifests[i].depends.keys() {
            dependents.entry(dep.as_str()).or_default().push(name);
        }
    }
    let mut ready: BTreeSet<&str> = waiting_on
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(name, _)| *name)
        .collect();
    let mut order = Vec::with_capacity(manifests.len());
    while let Some(name) = ready.pop_first() {
        order.push(by_name[name]);
        waiting_on.remove(name);
        for &dependent in dependents.get(name).map(Vec::as_slice).unwrap_or_default() {
            if let Some(n) = waiting_on.get_mut(dependent) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(dependent);
                }
            }
        }
    }
    if order.len() == manifests.len() {
        return Ok(order);
    }
    Err(ModuleGraphError::Cycle(find_cycle(
        manifests,
        &by_name,
        &waiting_on,
    )))
}

/// Walks dependencies from the smallest unplaced module until a name repeats.
fn find_cycle(
    manifests: &[&Manifest],
    by_name: &BTreeMap<&str, usize>,
    unplaced: &BTreeMap<&str, usize>,
) -> Vec<String> {
    let Some(mut current) = unplaced.keys().next().copied() else {
        return Vec::new();
    };
    let mut path: Vec<&str> = Vec::new();
    loop {
        if let Some(start) = path.iter().position(|n| *n == current) {
            let mut cycle: Vec<String> = path[start..].iter().map(|s| (*s).to_owned()).collect();
            cycle.push(current.to_owned());
            return cycle;
        }
        path.push(current);
        // Every unplaced module has at least one unplaced dependency, else it would be placed.
        let next = manifests[by_name[current]]
            .depends
            .keys()
            .map(String::as_str)
            .find(|d| unplaced.contains_key(d));
        match next {
            Some(next) => current = next,
            None => return path.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn manifest(spec: &str) -> Manifest {
        // "name@version: dep req; dep req"
        let (head, deps) = spec.split_once(':').unwrap_or((spec, ""));
        let (name, version) = head.split_once('@').unwrap_or((head, "1.0.0"));
        let depends = deps
            .split(';')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| {
                let (n, r) = d.split_once(' ').unwrap_or((d, "*"));
                (n.to_owned(), VersionReq::parse(r).unwrap())
            })
            .collect();
        Manifest {
            name: name.trim().to_owned(),
            version: Version::parse(version.trim()).unwrap(),
            description: String::new(),
            depends,
            entities: vec![],
            permissions: vec![],
            grants: BTreeMap::new(),
        }
    }

    fn check(specs: &[&str], expected: &str) {
        let manifests: Vec<Manifest> = specs.iter().map(|s| manifest(s)).collect();
        let refs: Vec<&Manifest> = manifests.iter().collect();
        let got = match order_modules(&refs) {
            Ok(order) => order
                .iter()
                .map(|&i| refs[i].name.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expected, "{specs:?}");
    }

    #[test]
    fn ordering() {
        check(&[], "");
        check(&["cortex"], "cortex");
        check(&["b", "a", "c"], "a b c");
        check(&["accounting: cortex", "cortex"], "cortex accounting");
        check(
            &["crm: cortex", "accounting: cortex", "cortex"],
            "cortex accounting crm",
        );
        check(&["z: a", "a: m", "m", "b"], "b m a z");
        check(
            &[
                "inventory: accounting; cortex",
                "accounting: cortex",
                "cortex",
                "ai",
            ],
            "ai cortex accounting inventory",
        );
    }

    #[test]
    fn errors_name_the_modules() {
        check(
            &["a: b", "b: a"],
            "error: modules depend on each other in a cycle: a -> b -> a",
        );
        check(
            &["a: b", "b: c", "c: b", "d"],
            "error: modules depend on each other in a cycle: b -> c -> b",
        );
        check(
            &["a: a2", "a2: a3", "a3: a"],
            "error: modules depend on each other in a cycle: a -> a2 -> a3 -> a",
        );
        check(
            &["accounting: cortex"],
            "error: module `accounting` depends on `cortex`, which is not installed",
        );
        check(
            &["accounting: cortex ^2", "cortex@1.4.0"],
            "error: module `accounting` requires `cortex` ^2, but 1.4.0 is installed",
        );
        check(
            &["cortex", "cortex"],
            "error: module `cortex` is registered twice",
        );
        check(
            &["accounting: cortex >=0.1, <0.3", "cortex@0.2.9"],
            "cortex accounting",
        );
    }

    #[test]
    fn manifest_parsing() {
        let m = Manifest::from_yaml(
            "name: accounting\nversion: 0.1.0\ndepends:\n  cortex: \"^0.1\"\npermissions: [accounting.close_period]\n",
        )
        .unwrap();
        assert_eq!(m.depends["cortex"], VersionReq::parse("^0.1").unwrap());
        let err = |src: &str| Manifest::from_yaml(src).unwrap_err().to_string();
        assert_eq!(
            err("name: Accounting\nversion: 0.1.0\n"),
            "invalid module manifest of `Accounting`: name must be snake_case: a-z, 0-9 and _, starting with a letter"
        );
        assert!(
            err("name: a\nversion: one\n")
                .starts_with("invalid module manifest: version: unexpected character")
        );
        assert!(
            err("name: a\nversion: 0.1.0\nprovides: []\n").contains("unknown field `provides`")
        );
        assert_eq!(
            err("name: a\nversion: 0.1.0\ndepends: {a: '*'}\n"),
            "invalid module manifest of `a`: a module cannot depend on itself"
        );
    }

    proptest! {
        /// The order never depends on the order manifests were given in, and every module
        /// comes after all of its dependencies.
        #[test]
        fn order_is_deterministic_and_respects_dependencies(
            edges in proptest::collection::vec((0usize..8, 0usize..8), 0..16),
            seed in any::<u64>(),
        ) {
            // Only edges from higher to lower index, so the graph is acyclic.
            let mut manifests: Vec<Manifest> = (0..8).map(|i| manifest(&format!("m{i}"))).collect();
            for (a, b) in edges {
                if a > b {
                    manifests[a].depends.insert(format!("m{b}"), VersionReq::STAR);
                }
            }
            let names = |ms: &[Manifest]| {
                let refs: Vec<&Manifest> = ms.iter().collect();
                order_modules(&refs).unwrap().iter().map(|&i| ms[i].name.clone()).collect::<Vec<_>>()
            };
            let first = names(&manifests);
            let mut shuffled = manifests.clone();
            let len = shuffled.len();
            shuffled.rotate_left((seed as usize) % len);
            shuffled.swap(0, (seed as usize / 7) % len);
            prop_assert_eq!(&first, &names(&shuffled));
            for m in &manifests {
                let pos = first.iter().position(|n| *n == m.name).unwrap();
                for dep in m.depends.keys() {
                    prop_assert!(first.iter().position(|n| n == dep).unwrap() < pos);
                }
            }
        }
    }
}
