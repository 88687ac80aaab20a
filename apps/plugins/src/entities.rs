//! A plugin's own entities: the `schema/*.yaml` files of its package. Each is named after
//! the plugin (`todo-followup` → `todo_followup_…`), so it can never take a module's
//! entity's name or another plugin's, and is created as a runtime entity of each tenant
//! that enables the plugin — its table by a recorded migration, in the tenant's database
//! with a database per tenant. An entity of that name the tenant already has (one it made
//! itself) refuses the enable rather than be taken over. Disabling or uninstalling keeps
//! the tables and their rows.

use std::collections::BTreeMap;

use prefiq::Context;
use prefiq_data::entity::repo::{RepoError, Repository, TenantScope};
use prefiq_plugin::PluginManifest;
use serde_json::Value;

use crate::PluginsError;

/// The most entities one plugin may bring.
pub const MAX_PLUGIN_ENTITIES: usize = 20;

/// The prefix every entity of `plugin` is named with.
pub fn prefix(plugin: &str) -> String {
    format!("{}_", plugin.replace('-', "_"))
}

/// A plugin's entity definitions, by name, from its package's files; checked as runtime
/// entity definitions are, and named after the plugin.
pub fn definitions(
    manifest: &PluginManifest,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, Value>, PluginsError> {
    let prefix = prefix(&manifest.name);
    let mut found = BTreeMap::new();
    for (path, bytes) in files.iter().filter(|(p, _)| p.starts_with("schema/")) {
        let invalid =
            |why: String| PluginsError::Invalid(format!("{}: {path}: {why}", manifest.name));
        if found.len() >= MAX_PLUGIN_ENTITIES {
            return Err(invalid(format!(
                "a plugin brings at most {MAX_PLUGIN_ENTITIES} entities"
            )));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| invalid("not UTF-8".into()))?;
        let definition: Value = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let schema = prefiq_data::entity::runtime::parse_definition("check", &definition)
            .map_err(|e| invalid(e.to_string()))?;
        if !schema.name.starts_with(&prefix) {
            return Err(invalid(format!(
                "entity `{}`: a plugin's entities are named `{prefix}…`, so they can never take a module's or another plugin's name",
                schema.name
            )));
        }
        if found.insert(schema.name.clone(), definition).is_some() {
            return Err(invalid(format!(
                "entity `{}` is defined twice",
                schema.name
            )));
        }
    }
    Ok(found)
}

/// Creates, for `tenant`, those of `definitions` it does not have yet. An entity of the
/// name with another definition (the tenant's own, or an earlier version's) refuses it.
pub async fn create_for(
    repository: &Repository,
    tenant: &str,
    plugin: &str,
    definitions: &BTreeMap<String, Value>,
) -> Result<(), PluginsError> {
    if definitions.is_empty() {
        return Ok(());
    }
    let scope = TenantScope::new(&Context::system("en").with_tenant(tenant))
        .map_err(|e| PluginsError::Invalid(e.to_string()))?;
    let mine = repository.runtime_entities(&scope);
    for (name, definition) in definitions {
        if let Some(existing) = mine.iter().find(|s| &s.name == name) {
            let ours = prefiq_data::entity::runtime::parse_definition(tenant, definition)
                .map_err(|e| PluginsError::Invalid(e.to_string()))?;
            if **existing == ours {
                continue;
            }
            return Err(PluginsError::Conflict(format!(
                "{plugin} brings the entity `{name}`, and this tenant has an entity of that name with another definition"
            )));
        }
        match repository.create_entity(&scope, definition).await {
            Ok(_) => {
                tracing::info!(target: "plugins", plugin, tenant, entity = %name, "plugin entity created");
            }
            Err(RepoError::Unique(_)) => {
                return Err(PluginsError::Conflict(format!(
                    "{plugin} brings the entity `{name}`, and this tenant already has an entity of that name"
                )));
            }
            Err(e) => {
                return Err(PluginsError::Invalid(format!(
                    "{plugin}: entity `{name}`: {e}"
                )));
            }
        }
    }
    Ok(())
}
