//! Cortex, the module every installation has.
//!
//! It is registered exactly as any app is: a manifest, a provider that contributes routes,
//! and lifecycle hooks. For now it serves `GET /api/v1/system/info` (the installation's
//! name, environment and modules); tenants, users, roles, settings and the admin UI arrive
//! with later issues.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use prefiq::{
    EntitySource, Hook, InstalledModules, KernelError, LifecycleHooks, Manifest, Module,
    ModuleSummary, RegisterContext, ServiceProvider, async_trait,
};
use prefiq_http::{HttpState, Problem, RouteSet};
use serde::Serialize;

/// The module's manifest source.
pub const MANIFEST: &str = include_str!("../module.yaml");

/// The cortex module.
pub struct Cortex {
    manifest: Manifest,
}

impl Cortex {
    /// The module with its embedded manifest.
    pub fn new() -> Result<Self, prefiq::ManifestError> {
        Ok(Cortex {
            manifest: Manifest::from_yaml(MANIFEST)?,
        })
    }
}

struct CortexProvider;

#[async_trait]
impl ServiceProvider for CortexProvider {
    fn name(&self) -> &'static str {
        "cortex::CortexProvider"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        cx.services.contribute(Arc::new(
            RouteSet::new("cortex").get("/api/v1/system/info", system_info),
        ));
        Ok(())
    }
}

/// What `GET /api/v1/system/info` answers.
#[derive(Debug, Serialize)]
pub struct SystemInfo {
    /// The installation's display name.
    pub name: String,
    /// The environment it runs in.
    pub env: String,
    /// The platform version.
    pub version: &'static str,
    /// The installed modules, in boot order.
    pub modules: Vec<ModuleSummary>,
}

async fn system_info(State(state): State<HttpState>) -> Result<Json<SystemInfo>, Problem> {
    let modules = state
        .services
        .get::<InstalledModules>("cortex system_info")
        .map_err(Problem::from)?;
    Ok(Json(SystemInfo {
        name: state.config.app.name.clone(),
        env: state.config.env.clone(),
        version: env!("CARGO_PKG_VERSION"),
        modules: modules.list().to_vec(),
    }))
}

impl Module for Cortex {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(CortexProvider)]
    }

    fn entities(&self) -> Vec<EntitySource> {
        vec![EntitySource {
            file: "schema/todo.yaml",
            yaml: include_str!("../schema/todo.yaml"),
        }]
    }

    fn hooks(&self, hooks: &mut LifecycleHooks) {
        hooks.on(Hook::Ready, "announce", |cx| {
            Box::pin(async move {
                tracing::info!(target: "cortex", trace_id = %cx.context.trace_id, app = %cx.config.app.name, env = %cx.config.env, "platform ready");
                Ok(())
            })
        });
        hooks.on(Hook::Upgrade, "record", |cx| {
            Box::pin(async move {
                if let Some(upgrade) = cx.upgrade {
                    let from = upgrade.from.as_ref().map_or_else(|| "nothing".to_owned(), ToString::to_string);
                    tracing::info!(target: "cortex", trace_id = %cx.context.trace_id, from = %from, to = %upgrade.to, "cortex installed or upgraded");
                }
                Ok(())
            })
        });
    }
}
