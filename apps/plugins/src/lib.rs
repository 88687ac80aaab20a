//! The plugins app: installs signed plugin packages (`.cxp`) once per installation,
//! enables them per tenant, and runs their hooks, routes and event subscribers in the
//! wasmtime sandbox (`prefiq-plugin`) as the principal `plugin:{name}`.
//!
//! What a plugin may touch is the intersection of its manifest (checked by the host on
//! every call) and its tenant's grant (a Cedar policy written when the tenant enables it,
//! checked by the repository like any caller's).

pub mod breaker;
pub mod desk;
pub mod dispatch;
pub mod entities;
pub mod host;
pub mod jobs;
pub mod outbound;
pub mod registry;
pub mod routes;
pub mod service;
pub mod store;

use std::sync::Arc;

use prefiq::{
    BootContext, ErrorKind, KernelError, Manifest, Module, RegisterContext, ServiceProvider,
    async_trait,
};
use prefiq_data::entity::repo::{DynamicHooks, Repository};
use prefiq_http::RouteSet;
use prefiq_worker::Subscription;

pub use service::{Plugins, PluginsConfig};

/// The module's manifest source.
pub const MANIFEST: &str = include_str!("../module.yaml");

/// What went wrong in the plugins app.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginsError {
    /// The package, the manifest, the settings or a call.
    #[error(transparent)]
    Plugin(#[from] prefiq_plugin::PluginError),
    /// No such plugin.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with what is installed or enabled.
    #[error("{0}")]
    Conflict(String),
    /// The plugin requires a version of Codexion or of another plugin that is not here.
    #[error("incompatible: {0}")]
    Incompatible(String),
    /// The request or the configuration is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(String),
    /// The service is used before boot connected it.
    #[error("the plugins service is not connected yet")]
    NotConnected,
}

impl From<prefiq_plugin::PackageError> for PluginsError {
    fn from(e: prefiq_plugin::PackageError) -> Self {
        PluginsError::Plugin(e.into())
    }
}

/// The plugins module.
pub struct PluginsModule {
    manifest: Manifest,
}

impl PluginsModule {
    /// The module with its embedded manifest.
    pub fn new() -> Result<Self, prefiq::ManifestError> {
        Ok(PluginsModule {
            manifest: Manifest::from_yaml(MANIFEST)?,
        })
    }
}

impl Module for PluginsModule {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(PluginsProvider)]
    }

    fn migrations(&self) -> Vec<prefiq::Migration> {
        vec![store::migration()]
    }
}

struct PluginsProvider;

#[async_trait]
impl ServiceProvider for PluginsProvider {
    fn name(&self) -> &'static str {
        "plugins::PluginsProvider"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        let config: PluginsConfig = cx
            .config
            .section("plugins")
            .map_err(|e| KernelError::service(ErrorKind::Invalid, e.to_string()))?
            .unwrap_or_default();
        let plugins = Arc::new(Plugins::at(config, &cx.config.env, &cx.config.root));
        // The trusted keys are checked at boot, not at the first install.
        plugins
            .trust()
            .map_err(|e| KernelError::service(ErrorKind::Invalid, e.to_string()))?;
        let host = host::RepositoryHost::new(&plugins, plugins.allow_private_hosts());
        cx.services.singleton(plugins.clone())?;
        cx.services.singleton(host.clone())?;
        cx.services
            .singleton::<dyn DynamicHooks>(Arc::new(dispatch::PluginHooks::new(
                &plugins,
                host.clone(),
            )))?;
        cx.services.contribute(Arc::new(Subscription {
            module: "plugins".into(),
            name: "events".into(),
            pattern: "*".into(),
            handler: Arc::new(dispatch::PluginEvents::new(&plugins, host.clone())),
        }));
        cx.services
            .contribute::<dyn prefiq_worker::JobHandler>(Arc::new(jobs::PluginJobs::new(
                &plugins, host,
            ))
                as Arc<dyn prefiq_worker::JobHandler>);
        cx.services
            .contribute::<dyn prefiq_worker::ScheduleSource>(Arc::new(jobs::PluginSchedules::new(
                &plugins,
            ))
                as Arc<dyn prefiq_worker::ScheduleSource>);
        cx.services
            .contribute(Arc::new(prefiq_http::openapi::ApiDescription::from_yaml(
                "plugins",
                include_str!("../openapi/routes.yaml"),
            )?));
        cx.services.contribute(Arc::new(desk::layer()));
        cx.services.contribute(Arc::new(desk::routes()));
        cx.services.contribute(Arc::new(
            RouteSet::new("plugins")
                .get("/api/v1/plugins", routes::list)
                .post("/api/v1/plugins/{name}/enable", routes::enable)
                .post("/api/v1/plugins/{name}/disable", routes::disable)
                .get("/api/v1/plugins/{name}/{*path}", routes::serve)
                .post("/api/v1/plugins/{name}/{*path}", routes::serve)
                .put("/api/v1/plugins/{name}/{*path}", routes::serve)
                .patch("/api/v1/plugins/{name}/{*path}", routes::serve)
                .delete("/api/v1/plugins/{name}/{*path}", routes::serve),
        ));
        Ok(())
    }

    async fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        if cx.mode != prefiq::BootMode::DryRun {
            let plugins = cx.services.get::<Plugins>()?;
            if let Some(config) = cx.services.try_get::<prefiq::ConfigService>() {
                plugins.use_tenant_config(config);
            }
            plugins.connect(
                cx.services.get::<Repository>()?,
                cx.services.try_get::<cortex::identity::Identity>(),
                cx.services.try_get::<prefiq_auth::authz::CedarAuthorizer>(),
                cx.services
                    .try_get::<prefiq_cache::Cache>()
                    .map(|c| (*c).clone()),
            );
        }
        Ok(())
    }

    async fn ready(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        // After the migrations: the tables exist now.
        let plugins = cx.services.get::<Plugins>()?;
        plugins
            .loaded_state()
            .await
            .map_err(|e| KernelError::service(ErrorKind::Unavailable, e.to_string()))?;
        plugins.watch();
        Ok(())
    }
}
