//! The plugins service: what is installed, what each tenant enabled, and the lifecycle
//! (install, upgrade, uninstall, enable, disable) that changes it.
//!
//! The state in memory is one immutable snapshot behind a lock, swapped whole on every
//! change, so the write pipeline's question "does any plugin hook this?" is a map lookup
//! that never waits for a lifecycle change.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock};

use prefiq_auth::TenantPolicy;
use prefiq_auth::authz::CedarAuthorizer;
use prefiq_data::entity::repo::Repository;
use prefiq_plugin::manifest::{EntityAction, HookEvent, PluginManifest};
use prefiq_plugin::package::{self, PublicKey, TrustPolicy};
use prefiq_plugin::sandbox::{CallContext, LoadedPlugin, Sandbox, SandboxConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::PluginsError;
use crate::breaker::{BreakerConfig, Breakers};
use crate::store::{self, TenantRow};

/// The app's configuration (section `plugins`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// The publisher keys (`ed25519:<base64>`) whose signatures this installation trusts.
    pub trusted_keys: Vec<String>,
    /// Whether unsigned packages may be installed; by default only outside production.
    pub allow_unsigned: Option<bool>,
    /// The sandbox's limits.
    pub sandbox: SandboxConfig,
    /// The circuit breaker.
    pub breaker: BreakerConfig,
    /// Whether plugins' outbound requests may reach private and loopback addresses; by
    /// default only outside production.
    pub allow_private_hosts: Option<bool>,
    /// The registry: a folder (relative to the installation) or an http(s) URL of one,
    /// holding `index.json` and the packages it lists.
    pub registry: Option<String>,
    /// How often a server looks for changes made by another process (the CLI, another
    /// replica); 0 turns it off. Changes made through this process apply at once.
    pub reload_interval_ms: Option<u64>,
}

/// The default of `plugins.reload_interval_ms`.
pub const RELOAD_INTERVAL_MS: u64 = 2_000;

/// An installed, loaded plugin.
#[derive(Debug)]
pub struct Installed {
    /// Its manifest.
    pub manifest: Arc<PluginManifest>,
    /// Its compiled component.
    pub plugin: LoadedPlugin,
    /// SHA-256 of its package.
    pub digest: String,
    /// The key that signed it.
    pub signer: Option<String>,
    /// When it was installed.
    pub installed_at: String,
    /// The entities it brings (`schema/*.yaml`), by name.
    pub entities: BTreeMap<String, Value>,
}

impl Installed {
    /// Whether it registered a hook on `entity` at `event`.
    pub fn hooks(&self, entity: &str, event: HookEvent) -> bool {
        self.manifest
            .capabilities
            .hooks
            .iter()
            .any(|h| h.event == event && h.entity == entity)
    }
}

/// A plugin enabled for a tenant, with the tenant's resolved settings.
#[derive(Debug, Clone)]
pub struct Active {
    /// The plugin.
    pub installed: Arc<Installed>,
    /// The tenant's settings, defaults filled in (JSON).
    pub config: Arc<str>,
}

/// One snapshot of what is installed and enabled.
#[derive(Debug, Default)]
pub struct State {
    /// Installed plugins by name.
    pub installed: BTreeMap<String, Arc<Installed>>,
    /// Enabled plugins by tenant, in name order.
    pub active: HashMap<String, Vec<Active>>,
    /// Every tenant's choices, enabled or not.
    pub choices: Vec<TenantRow>,
}

impl State {
    /// The plugins enabled for `tenant`.
    pub fn active_for(&self, tenant: &str) -> &[Active] {
        self.active.get(tenant).map_or(&[], Vec::as_slice)
    }
}

/// The service.
pub struct Plugins {
    config: PluginsConfig,
    production: bool,
    registry: Option<crate::registry::Registry>,
    sandbox: OnceLock<Arc<Sandbox>>,
    repository: OnceLock<Arc<Repository>>,
    authorizer: OnceLock<Arc<CedarAuthorizer>>,
    cache: OnceLock<prefiq_cache::Cache>,
    identity: OnceLock<Arc<cortex::identity::Identity>>,
    tenant_config: OnceLock<Arc<prefiq::ConfigService>>,
    state: RwLock<Arc<State>>,
    /// The tables' generation the state was read at.
    generation: std::sync::atomic::AtomicI64,
    /// Serialises lifecycle changes within this process.
    changing: tokio::sync::Mutex<()>,
    /// The per-tenant circuit breakers.
    pub breakers: Breakers,
    /// `plugin_call_seconds` by plugin, ok and failed: registered once, not per call.
    histograms: RwLock<HashMap<String, (metrics::Histogram, metrics::Histogram)>>,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins")
            .field("config", &self.config)
            .finish()
    }
}

/// A package as loaded: its manifest, compiled plugin, signer and entities.
type Loaded = (
    PluginManifest,
    LoadedPlugin,
    Option<String>,
    BTreeMap<String, Value>,
);

fn data_error(e: prefiq_data::DataError) -> PluginsError {
    PluginsError::Database(e.to_string())
}

/// The Cedar policy that grants a plugin's principal what its manifest asks on each
/// entity; `None` when it asks for none.
pub fn grant_policy(manifest: &PluginManifest) -> Option<TenantPolicy> {
    let clauses: Vec<String> = manifest
        .capabilities
        .entities
        .iter()
        .map(|(entity, actions)| {
            let actions: Vec<String> = actions
                .iter()
                .map(|a| format!("Action::\"{}\"", a.as_str()))
                .collect();
            format!(
                "(resource is {entity} && action in [{}])",
                actions.join(", ")
            )
        })
        .collect();
    (!clauses.is_empty()).then(|| TenantPolicy {
        id: policy_id(&manifest.name),
        text: format!(
            "permit (principal in Role::\"{}\", action, resource)\nwhen {{ {} }};",
            manifest.principal(),
            clauses.join(" || ")
        ),
    })
}

fn policy_id(plugin: &str) -> String {
    format!("plugin_{plugin}")
}

impl Plugins {
    /// The service; `env` is the installation's environment (`production` refuses
    /// unsigned packages whatever the config says).
    pub fn new(config: PluginsConfig, env: &str) -> Plugins {
        Self::at(config, env, std::path::Path::new("."))
    }

    /// [`Plugins::new`] for the installation at `root` (a registry folder is relative
    /// to it).
    pub fn at(config: PluginsConfig, env: &str, root: &std::path::Path) -> Plugins {
        let breakers = Breakers::new(config.breaker);
        let registry = config
            .registry
            .as_deref()
            .map(|location| crate::registry::Registry::at(location, root));
        Plugins {
            config,
            production: env == "production",
            registry,
            sandbox: OnceLock::new(),
            repository: OnceLock::new(),
            authorizer: OnceLock::new(),
            cache: OnceLock::new(),
            identity: OnceLock::new(),
            tenant_config: OnceLock::new(),
            state: RwLock::default(),
            generation: std::sync::atomic::AtomicI64::new(-1),
            changing: tokio::sync::Mutex::new(()),
            breakers,
            histograms: RwLock::default(),
        }
    }

    /// Binds the repository, the identity service (a plugin's grants are its tenant's
    /// Cedar policies), the authorizer and the cache (at boot).
    pub fn connect(
        &self,
        repository: Arc<Repository>,
        identity: Option<Arc<cortex::identity::Identity>>,
        authorizer: Option<Arc<CedarAuthorizer>>,
        cache: Option<prefiq_cache::Cache>,
    ) {
        let _ = self.repository.set(repository);
        if let Some(identity) = identity {
            let _ = self.identity.set(identity);
        }
        if let Some(authorizer) = authorizer {
            let _ = self.authorizer.set(authorizer);
        }
        if let Some(cache) = cache {
            let _ = self.cache.set(cache);
        }
    }

    /// The repository, once connected.
    pub fn repository(&self) -> Result<&Arc<Repository>, PluginsError> {
        self.repository.get().ok_or(PluginsError::NotConnected)
    }

    fn sandbox(&self) -> Result<&Arc<Sandbox>, PluginsError> {
        if let Some(sandbox) = self.sandbox.get() {
            return Ok(sandbox);
        }
        let sandbox = Arc::new(Sandbox::new(self.config.sandbox.clone())?);
        Ok(self.sandbox.get_or_init(|| sandbox))
    }

    /// Whom packages must be signed by.
    pub fn trust(&self) -> Result<TrustPolicy, PluginsError> {
        let keys = self
            .config
            .trusted_keys
            .iter()
            .map(|k| {
                k.parse::<PublicKey>()
                    .map_err(|e| PluginsError::Invalid(format!("plugins.trusted_keys: {k}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustPolicy {
            keys,
            allow_unsigned: !self.production && self.config.allow_unsigned.unwrap_or(true),
        })
    }

    /// The current snapshot.
    pub fn state(&self) -> Arc<State> {
        self.state.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Reads what is installed and enabled from the database and loads it: at boot, and
    /// after every change. A package that no longer verifies (its key is no longer
    /// trusted) is not loaded, and says so in the log.
    pub async fn reload(&self) -> Result<(), PluginsError> {
        let repository = self.repository()?.clone();
        let handle = repository.main_database();
        let database = handle.get().map_err(data_error)?;
        // Read first: a change that lands while this runs moves it again, and the next
        // look reloads.
        let generation = store::generation(database).await.map_err(data_error)?;
        let rows = store::installed(database).await.map_err(data_error)?;
        let previous = self.state();
        let trust = self.trust()?;
        let mut installed = BTreeMap::new();
        for row in rows {
            // The same package as before needs no second compilation.
            if let Some(loaded) = previous.installed.get(&row.name)
                && loaded.digest == row.digest
            {
                installed.insert(row.name.clone(), loaded.clone());
                continue;
            }
            match self.load(&row.package, &trust) {
                Ok((manifest, plugin, signer, entities)) => {
                    installed.insert(
                        row.name.clone(),
                        Arc::new(Installed {
                            manifest: Arc::new(manifest),
                            plugin,
                            digest: row.digest,
                            signer,
                            installed_at: row.installed_at,
                            entities,
                        }),
                    );
                }
                Err(e) => {
                    tracing::error!(target: "plugins", plugin = %row.name, error = %e, "an installed plugin is not loaded");
                }
            }
        }
        let choices = store::tenant_rows(database).await.map_err(data_error)?;
        let mut active: HashMap<String, Vec<Active>> = HashMap::new();
        for choice in choices.iter().filter(|c| c.enabled) {
            let Some(plugin) = installed.get(&choice.plugin) else {
                continue;
            };
            match plugin.manifest.resolve_config(&choice.config) {
                Ok(config) => active
                    .entry(choice.tenant.clone())
                    .or_default()
                    .push(Active {
                        installed: plugin.clone(),
                        config: Value::Object(config).to_string().into(),
                    }),
                Err(e) => {
                    tracing::error!(target: "plugins", plugin = %choice.plugin, tenant = %choice.tenant, error = %e, "a plugin's settings no longer fit it; it stays off for the tenant");
                }
            }
        }
        let state = Arc::new(State {
            installed,
            active,
            choices,
        });
        if let Ok(mut slot) = self.state.write() {
            *slot = state;
        }
        self.generation
            .store(generation, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// The tables' generation the state was read at (-1 before the first read).
    pub fn generation(&self) -> i64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the state was ever read from the database.
    pub fn is_loaded(&self) -> bool {
        self.generation.load(std::sync::atomic::Ordering::Relaxed) >= 0
    }

    /// The state, read from the database first if it never was (a process that did not
    /// reach `ready`, such as a CLI command, reads it on first use).
    pub async fn loaded_state(&self) -> Result<Arc<State>, PluginsError> {
        if !self.is_loaded() {
            let _changing = self.changing.lock().await;
            if !self.is_loaded() {
                self.reload().await?;
            }
        }
        Ok(self.state())
    }

    /// Reloads when another process changed what is installed or enabled. Answers
    /// whether it reloaded.
    pub async fn refresh(&self) -> Result<bool, PluginsError> {
        let repository = self.repository()?.clone();
        let handle = repository.main_database();
        let database = handle.get().map_err(data_error)?;
        let now = store::generation(database).await.map_err(data_error)?;
        if now == self.generation.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(false);
        }
        let _changing = self.changing.lock().await;
        self.reload().await?;
        Ok(true)
    }

    /// Looks for other processes' changes every `reload_interval_ms` until the service
    /// is dropped.
    pub fn watch(self: &Arc<Self>) {
        let interval_ms = self.config.reload_interval_ms.unwrap_or(RELOAD_INTERVAL_MS);
        if interval_ms == 0 {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(std::time::Duration::from_millis(interval_ms));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(plugins) = weak.upgrade() else {
                    return;
                };
                match plugins.refresh().await {
                    Ok(true) => {
                        tracing::info!(target: "plugins", "plugins reloaded after a change by another process")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(target: "plugins", error = %e, "could not look for plugin changes")
                    }
                }
            }
        });
    }

    fn load(&self, bytes: &[u8], trust: &TrustPolicy) -> Result<Loaded, PluginsError> {
        let package = package::open(bytes, trust)?;
        let plugin = self
            .sandbox()?
            .load(&package.manifest.name, package.wasm())?;
        let entities = crate::entities::definitions(&package.manifest, &package.files)?;
        Ok((
            package.manifest,
            plugin,
            package.signer.map(|k| k.to_string()),
            entities,
        ))
    }

    /// Installs a package, or upgrades an installed plugin to it (`upgrade`). Verifies it
    /// (digests, signature, trust), checks the versions it requires and that it loads,
    /// and only then stores it. Answers the installed plugin's manifest.
    pub async fn install(
        &self,
        bytes: &[u8],
        upgrade: bool,
    ) -> Result<Arc<PluginManifest>, PluginsError> {
        self.loaded_state().await?;
        let _changing = self.changing.lock().await;
        let trust = self.trust()?;
        let opened = package::open(bytes, &trust)?;
        let manifest = opened.manifest.clone();
        let state = self.state();
        let current = state.installed.get(&manifest.name);
        match (current, upgrade) {
            (Some(current), false) => {
                return Err(PluginsError::Conflict(format!(
                    "{} {} is already installed; upgrade it instead",
                    manifest.name, current.manifest.version
                )));
            }
            (None, true) => {
                return Err(PluginsError::NotFound(format!(
                    "{} is not installed; install it first",
                    manifest.name
                )));
            }
            (Some(current), true) if manifest.version <= current.manifest.version => {
                return Err(PluginsError::Conflict(format!(
                    "{} {} is installed; an upgrade must be to a later version, not {}",
                    manifest.name, current.manifest.version, manifest.version
                )));
            }
            _ => {}
        }
        check_requirements(&manifest, &state)?;
        for (index, spec) in manifest.capabilities.schedules.iter().enumerate() {
            let schedule = crate::jobs::schedule_of("check", &manifest.name, index, spec);
            prefiq_worker::schedule::compile(&schedule, "UTC").map_err(|e| {
                PluginsError::Invalid(format!("{}: plugin.yml: {e}", manifest.name))
            })?;
        }
        if !opened
            .files
            .keys()
            .all(|f| f == "plugin.yml" || f == "plugin.wasm" || f.starts_with("schema/"))
        {
            return Err(PluginsError::Invalid(format!(
                "{}: packages with templates/, static/ or locales/ files are not supported by this installation yet",
                manifest.name
            )));
        }
        crate::entities::definitions(&manifest, &opened.files)?;
        // It must load before it is stored: a package that does not fit the world is
        // refused here, not at the next boot.
        self.sandbox()?.load(&manifest.name, opened.wasm())?;
        let repository = self.repository()?.clone();
        let handle = repository.main_database();
        let database = handle.get().map_err(data_error)?;
        store::put_installed(
            database,
            &manifest.name,
            &manifest.version.to_string(),
            &opened.digest,
            opened.signer.as_ref().map(ToString::to_string).as_deref(),
            bytes,
        )
        .await
        .map_err(data_error)?;
        self.breakers.reset(&manifest.name);
        self.reload().await?;
        // Tenants that enabled an earlier version get the new version's entities, and
        // their grants follow the new manifest.
        if upgrade {
            let state = self.state();
            let entities = state
                .installed
                .get(&manifest.name)
                .map(|p| p.entities.clone())
                .unwrap_or_default();
            for choice in state
                .choices
                .iter()
                .filter(|c| c.enabled && c.plugin == manifest.name)
            {
                crate::entities::create_for(
                    self.repository()?,
                    &choice.tenant,
                    &manifest.name,
                    &entities,
                )
                .await?;
                self.set_grant(&choice.tenant, Some(&manifest)).await?;
            }
        }
        tracing::info!(target: "plugins", plugin = %manifest.name, version = %manifest.version, digest = %opened.digest, upgrade, "plugin installed");
        Ok(Arc::new(manifest))
    }

    /// Binds the tenants' configuration (their time zones, for plugins' schedules).
    pub fn use_tenant_config(&self, config: Arc<prefiq::ConfigService>) {
        let _ = self.tenant_config.set(config);
    }

    /// `tenant`'s time zone (`app.timezone`), or UTC when it cannot be read.
    pub async fn tenant_zone(&self, tenant: &str) -> String {
        match self.tenant_config.get() {
            Some(config) => config
                .for_tenant(tenant)
                .await
                .map(|c| c.app.timezone.clone())
                .unwrap_or_else(|_| "UTC".into()),
            None => "UTC".into(),
        }
    }

    /// Whether plugins' outbound requests may reach private addresses.
    pub fn allow_private_hosts(&self) -> bool {
        self.config.allow_private_hosts.unwrap_or(!self.production)
    }

    /// The registry, when one is configured.
    pub fn registry(&self) -> Result<&crate::registry::Registry, PluginsError> {
        self.registry.as_ref().ok_or_else(|| {
            PluginsError::Invalid("no registry is configured (plugins.registry)".into())
        })
    }

    /// Installs (or upgrades to) `spec` — `NAME` or `NAME@VERSION` — from the registry.
    pub async fn install_from_registry(
        &self,
        spec: &str,
        upgrade: bool,
    ) -> Result<Arc<PluginManifest>, PluginsError> {
        let (_, bytes) = self.registry()?.download(spec).await?;
        self.install(&bytes, upgrade).await
    }

    /// Uninstalls a plugin. Records it wrote stay; its tenants' settings stay too unless
    /// `purge`. Refused while another installed plugin requires it.
    pub async fn uninstall(&self, name: &str, purge: bool) -> Result<(), PluginsError> {
        self.loaded_state().await?;
        let _changing = self.changing.lock().await;
        let state = self.state();
        if !state.installed.contains_key(name) {
            return Err(PluginsError::NotFound(format!("{name} is not installed")));
        }
        if let Some(dependent) = state
            .installed
            .values()
            .find(|p| p.manifest.requires.plugins.contains_key(name))
        {
            return Err(PluginsError::Conflict(format!(
                "{} requires {name}; uninstall it first",
                dependent.manifest.name
            )));
        }
        for choice in state
            .choices
            .iter()
            .filter(|c| c.enabled && c.plugin == name)
        {
            self.set_grant(&choice.tenant, None).await?;
            if !purge {
                // Kept, but off: reinstalling does not silently turn it back on.
                let row = TenantRow {
                    enabled: false,
                    ..choice.clone()
                };
                let repository = self.repository()?.clone();
                let handle = repository.main_database();
                store::put_tenant(handle.get().map_err(data_error)?, &row, None)
                    .await
                    .map_err(data_error)?;
            }
        }
        let repository = self.repository()?.clone();
        let handle = repository.main_database();
        store::remove_installed(handle.get().map_err(data_error)?, name, purge)
            .await
            .map_err(data_error)?;
        self.reload().await?;
        tracing::info!(target: "plugins", plugin = %name, purge, "plugin uninstalled");
        Ok(())
    }

    /// Enables (or re-configures) an installed plugin for `tenant` with its settings,
    /// and grants its principal what the manifest asks, as a Cedar policy of the tenant.
    pub async fn enable(
        &self,
        tenant: &str,
        name: &str,
        settings: Option<Map<String, Value>>,
        by: Option<&str>,
    ) -> Result<(), PluginsError> {
        self.loaded_state().await?;
        let _changing = self.changing.lock().await;
        let state = self.state();
        let plugin = state
            .installed
            .get(name)
            .ok_or_else(|| PluginsError::NotFound(format!("{name} is not installed")))?;
        let previous = state
            .choices
            .iter()
            .find(|c| c.tenant == tenant && c.plugin == name);
        let settings = settings
            .or_else(|| previous.map(|c| c.config.clone()))
            .unwrap_or_default();
        plugin.manifest.resolve_config(&settings)?;
        for required in plugin.manifest.requires.plugins.keys() {
            if !state
                .active_for(tenant)
                .iter()
                .any(|a| &a.installed.manifest.name == required)
            {
                return Err(PluginsError::Conflict(format!(
                    "{name} requires {required}; enable it for this tenant first"
                )));
            }
        }
        // Its entities first: the grant names them, and the tenant's policies are checked
        // against the entities the tenant has.
        crate::entities::create_for(self.repository()?, tenant, name, &plugin.entities).await?;
        self.set_grant(tenant, Some(&plugin.manifest)).await?;
        let repository = self.repository()?.clone();
        let handle = repository.main_database();
        store::put_tenant(
            handle.get().map_err(data_error)?,
            &TenantRow {
                tenant: tenant.to_owned(),
                plugin: name.to_owned(),
                enabled: true,
                config: settings,
            },
            by,
        )
        .await
        .map_err(data_error)?;
        self.breakers.reset(name);
        self.reload().await
    }

    /// Disables a plugin for `tenant`: its hooks, routes and subscribers stop for the
    /// tenant at once, and its grant is withdrawn. Its settings are kept.
    pub async fn disable(
        &self,
        tenant: &str,
        name: &str,
        by: Option<&str>,
    ) -> Result<(), PluginsError> {
        self.loaded_state().await?;
        let _changing = self.changing.lock().await;
        let state = self.state();
        if !state.installed.contains_key(name) {
            return Err(PluginsError::NotFound(format!("{name} is not installed")));
        }
        if let Some(dependent) = state
            .active_for(tenant)
            .iter()
            .find(|a| a.installed.manifest.requires.plugins.contains_key(name))
        {
            return Err(PluginsError::Conflict(format!(
                "{} requires {name}; disable it first",
                dependent.installed.manifest.name
            )));
        }
        let config = state
            .choices
            .iter()
            .find(|c| c.tenant == tenant && c.plugin == name)
            .map(|c| c.config.clone())
            .unwrap_or_default();
        let repository = self.repository()?.clone();
        let handle = repository.main_database();
        store::put_tenant(
            handle.get().map_err(data_error)?,
            &TenantRow {
                tenant: tenant.to_owned(),
                plugin: name.to_owned(),
                enabled: false,
                config,
            },
            by,
        )
        .await
        .map_err(data_error)?;
        self.remove_grant(tenant, name).await?;
        self.reload().await
    }

    /// Replaces the tenant's Cedar grant of a plugin by the one `manifest` asks for.
    async fn set_grant(
        &self,
        tenant: &str,
        manifest: Option<&PluginManifest>,
    ) -> Result<(), PluginsError> {
        let Some(manifest) = manifest else {
            return Ok(());
        };
        self.remove_grant(tenant, &manifest.name).await?;
        let Some(policy) = grant_policy(manifest) else {
            return Ok(());
        };
        let Some(authorizer) = self.authorizer.get() else {
            return Ok(());
        };
        let model = authorizer
            .model(tenant)
            .await
            .map_err(|e| PluginsError::Invalid(e.to_string()))?;
        model.check_policy(&policy).map_err(|e| {
            PluginsError::Invalid(format!(
                "{}: its grant does not fit this installation's entities: {e}",
                manifest.name
            ))
        })?;
        let identity = self.identity()?;
        identity
            .add_policy(tenant, &policy)
            .await
            .map_err(|e| PluginsError::Database(e.to_string()))?;
        self.policies_changed(tenant);
        Ok(())
    }

    async fn remove_grant(&self, tenant: &str, plugin: &str) -> Result<(), PluginsError> {
        if self.authorizer.get().is_none() {
            return Ok(());
        }
        let identity = self.identity()?;
        identity
            .remove_policy(tenant, &policy_id(plugin))
            .await
            .map_err(|e| PluginsError::Database(e.to_string()))?;
        self.policies_changed(tenant);
        Ok(())
    }

    fn identity(&self) -> Result<Arc<cortex::identity::Identity>, PluginsError> {
        self.identity
            .get()
            .cloned()
            .ok_or(PluginsError::NotConnected)
    }

    fn policies_changed(&self, tenant: &str) {
        if let Some(authorizer) = self.authorizer.get() {
            authorizer.invalidate(tenant);
        }
        if let Some(cache) = self.cache.get() {
            cache.announce(cortex::caching::AUTHZ_NAMESPACE, tenant, None);
        }
    }

    /// The `plugin_call_seconds` histograms of `plugin`'s calls: (succeeded, failed).
    pub fn call_histograms(&self, plugin: &str) -> (metrics::Histogram, metrics::Histogram) {
        if let Ok(known) = self.histograms.read()
            && let Some(pair) = known.get(plugin)
        {
            return pair.clone();
        }
        let pair = (
            metrics::histogram!("plugin_call_seconds", "plugin" => plugin.to_owned(), "outcome" => "ok"),
            metrics::histogram!("plugin_call_seconds", "plugin" => plugin.to_owned(), "outcome" => "failed"),
        );
        if let Ok(mut known) = self.histograms.write() {
            // Bounded by the installed plugins: names come from the snapshot.
            if known.len() < 10_000 {
                known.insert(plugin.to_owned(), pair.clone());
            }
        }
        pair
    }

    /// The context of a call of `plugin` for `tenant`.
    pub fn call_context(&self, active: &Active, tenant: &str, trace_id: &str) -> CallContext {
        let manifest = &active.installed.manifest;
        CallContext {
            plugin: manifest.name.clone(),
            tenant: tenant.to_owned(),
            trace_id: trace_id.to_owned(),
            config: active.config.clone(),
            clock: manifest.capabilities.clock,
            http_hosts: manifest.capabilities.http.clone().into(),
        }
    }

    /// Whether `manifest` lets its plugin take `action` on `entity`.
    pub fn allows(manifest: &PluginManifest, entity: &str, action: EntityAction) -> bool {
        manifest.allows(entity, action)
    }
}

/// Checks what a manifest requires against this installation and what is installed.
fn check_requirements(manifest: &PluginManifest, state: &State) -> Result<(), PluginsError> {
    if let Some(range) = &manifest.requires.prefiq {
        let ours = semver_of(env!("CARGO_PKG_VERSION"));
        if !range.matches(&ours) {
            return Err(PluginsError::Incompatible(format!(
                "{} {} requires prefiq {range}; this installation is {ours}",
                manifest.name, manifest.version
            )));
        }
    }
    for (required, range) in &manifest.requires.plugins {
        match state.installed.get(required) {
            Some(p) if range.matches(&p.manifest.version) => {}
            Some(p) => {
                return Err(PluginsError::Incompatible(format!(
                    "{} requires {required} {range}; {required} {} is installed",
                    manifest.name, p.manifest.version
                )));
            }
            None => {
                return Err(PluginsError::Incompatible(format!(
                    "{} requires {required} {range}, which is not installed",
                    manifest.name
                )));
            }
        }
    }
    Ok(())
}

fn semver_of(text: &str) -> semver::Version {
    semver::Version::parse(text).unwrap_or(semver::Version::new(0, 0, 0))
}
