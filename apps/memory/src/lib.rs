//! The memory app: a tenant's experience memory. Items (`episode`, `fact`, `note`,
//! `record`) are written through the entity pipeline as `memory_item` records, indexed
//! for keyword search as their events are handled, embedded in batches by a job with a
//! local model (no network, ever), and found again by meaning, by keyword, or both, under
//! the caller's permissions. Context packing fits the best of them into a model's token
//! budget; idle items move to a cold tier on a schedule.
//!
//! Records of any entity whose schema declares `memory: {fields: [...]}` are kept as
//! `record` items by the same subscription, and a search shows a record's text only to a
//! caller who may read the record.

pub mod cold;
pub mod config;
pub mod context;
pub mod error;
pub mod eval;
pub mod events;
pub mod filters;
pub mod idempotency;
pub mod index;
pub mod items;
pub mod keyword;
pub mod routes;
pub mod search;
pub mod service;
pub mod store;

use std::sync::{Arc, OnceLock};

use prefiq::{
    BootContext, EntitySource, ErrorKind, KernelError, Manifest, Module, ReadinessCheck,
    RegisterContext, ServiceProvider, async_trait,
};
use prefiq_data::entity::repo::Repository;
use prefiq_http::RouteSet;
use prefiq_worker::{CatchUp, JobHandler, Jobs, Schedule, Subscription};

use crate::config::MemoryConfig;
use crate::service::{Memory, QUEUE, TIER_JOB};

/// The module's manifest source.
pub const MANIFEST: &str = include_str!("../module.yaml");

/// The memory module.
pub struct MemoryModule {
    manifest: Manifest,
}

impl MemoryModule {
    /// The module with its embedded manifest.
    pub fn new() -> Result<Self, prefiq::ManifestError> {
        Ok(MemoryModule {
            manifest: Manifest::from_yaml(MANIFEST)?,
        })
    }
}

impl Module for MemoryModule {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(MemoryProvider {
            identity: Arc::new(OnceLock::new()),
        })]
    }

    fn migrations(&self) -> Vec<prefiq::Migration> {
        vec![store::migration()]
    }

    fn entities(&self) -> Vec<EntitySource> {
        vec![EntitySource {
            file: "schema/memory_item.yaml",
            yaml: include_str!("../schema/memory_item.yaml"),
        }]
    }
}

struct MemoryProvider {
    identity: Arc<OnceLock<Arc<cortex::identity::Identity>>>,
}

/// `/readyz`'s line for memory: always ready; its detail says whether search is hybrid
/// or keyword-only, and why.
struct MemoryReadiness(Arc<Memory>);

#[async_trait]
impl ReadinessCheck for MemoryReadiness {
    fn name(&self) -> &str {
        "memory"
    }

    async fn check(&self) -> Result<(), String> {
        Ok(())
    }

    fn detail(&self) -> Option<String> {
        Some(match (self.0.model(), self.0.keyword_only_reason()) {
            (Some(model), _) => {
                format!("hybrid search with {} ({} dims)", model.id(), model.dims())
            }
            (None, reason) => format!("keyword-only: {}", reason.unwrap_or("no model")),
        })
    }
}

#[async_trait]
impl ServiceProvider for MemoryProvider {
    fn name(&self) -> &'static str {
        "memory::MemoryProvider"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        let config: MemoryConfig = cx
            .config
            .section("memory")
            .map_err(|e| KernelError::service(ErrorKind::Invalid, e.to_string()))?
            .unwrap_or_default();
        config
            .check()
            .map_err(|e| KernelError::service(ErrorKind::Invalid, e))?;
        let tier_cron = config.tier_cron.clone();
        let memory = Arc::new(Memory::new(config, &cx.config.root));
        cx.services.singleton(memory.clone())?;
        cx.services
            .contribute(Arc::new(prefiq_data::tenants::TenantDataMigrations {
                module: "memory".into(),
                migrations: vec![store::migration()],
            }));
        cx.services.contribute(Arc::new(Subscription {
            module: "memory".into(),
            name: "index".into(),
            pattern: "*".into(),
            handler: Arc::new(events::IndexWrites(memory.clone())),
        }));
        cx.services.contribute::<dyn JobHandler>(
            Arc::new(events::Embed(memory.clone())) as Arc<dyn JobHandler>
        );
        cx.services
            .contribute::<dyn JobHandler>(Arc::new(events::Tiers {
                memory: memory.clone(),
                identity: self.identity.clone(),
            }) as Arc<dyn JobHandler>);
        cx.services
            .contribute(Arc::new(prefiq_worker::DeclaredQueue {
                name: QUEUE.into(),
                config: prefiq_worker::QueueConfig { concurrency: 2 },
            }));
        cx.services.contribute(Arc::new(Schedule {
            module: "memory".into(),
            name: "tiers".into(),
            cron: tier_cron,
            timezone: None,
            kind: TIER_JOB.into(),
            payload: serde_json::json!({}),
            queue: QUEUE.into(),
            catch_up: CatchUp::One,
            timeout_ms: None,
        }));
        cx.services
            .contribute::<dyn ReadinessCheck>(Arc::new(MemoryReadiness(memory.clone())));
        cx.services
            .contribute(Arc::new(prefiq_http::openapi::ApiDescription::from_yaml(
                "memory",
                include_str!("../openapi/routes.yaml"),
            )?));
        cx.services.contribute(Arc::new(
            RouteSet::new("memory")
                .post("/api/v1/memory/items", routes::add)
                .post("/api/v1/memory/items/batch", routes::add_many)
                .get("/api/v1/memory/items/{id}", routes::get)
                .delete("/api/v1/memory/items/{id}", routes::forget)
                .post("/api/v1/memory/items/{id}/restore", routes::restore)
                .post("/api/v1/memory/search", routes::search)
                .post("/api/v1/memory/context", routes::context)
                .get("/api/v1/memory/stats", routes::stats),
        ));
        Ok(())
    }

    async fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        if cx.mode != prefiq::BootMode::DryRun {
            let memory = cx.services.get::<Memory>()?;
            memory.connect(cx.services.get::<Repository>()?, cx.services.get::<Jobs>()?);
            if let Some(identity) = cx.services.try_get::<cortex::identity::Identity>() {
                let _ = self.identity.set(identity);
            }
        }
        Ok(())
    }
}
