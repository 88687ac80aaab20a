//! The webhooks app: a tenant subscribes URLs to its events; each matching event becomes a
//! delivery job that POSTs it signed the Standard Webhooks way (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,…`), retried with backoff for up to a day,
//! every attempt logged.
//!
//! It is built on the platform's public surface only: an entity (`webhook`), the module's
//! own tables (secrets and the delivery log, `store`), a subscription to every event on the
//! event bus, a job handler, routes, desk pages (`desk`) and one permission
//! (`webhooks.manage`).

pub mod desk;
pub mod destination;
pub mod routes;
pub mod service;
pub mod signing;
pub mod store;

use std::sync::Arc;

use prefiq::{
    BootContext, EntitySource, ErrorKind, KernelError, Manifest, Module, RegisterContext,
    ServiceProvider, async_trait,
};
use prefiq_data::entity::repo::Repository;
use prefiq_http::RouteSet;
use prefiq_worker::{JobHandler, Jobs, Subscription};

use crate::service::{Deliver, FanOut, Webhooks, WebhooksConfig};

/// The module's manifest source.
pub const MANIFEST: &str = include_str!("../module.yaml");

/// The webhooks module.
pub struct WebhooksModule {
    manifest: Manifest,
}

impl WebhooksModule {
    /// The module with its embedded manifest.
    pub fn new() -> Result<Self, prefiq::ManifestError> {
        Ok(WebhooksModule {
            manifest: Manifest::from_yaml(MANIFEST)?,
        })
    }
}

impl Module for WebhooksModule {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(WebhooksProvider)]
    }

    fn migrations(&self) -> Vec<prefiq::Migration> {
        vec![store::migration()]
    }

    fn entities(&self) -> Vec<EntitySource> {
        vec![EntitySource {
            file: "schema/webhook.yaml",
            yaml: include_str!("../schema/webhook.yaml"),
        }]
    }
}

struct WebhooksProvider;

#[async_trait]
impl ServiceProvider for WebhooksProvider {
    fn name(&self) -> &'static str {
        "webhooks::WebhooksProvider"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        let config: WebhooksConfig = cx
            .config
            .section("webhooks")
            .map_err(|e| KernelError::service(ErrorKind::Invalid, e.to_string()))?
            .unwrap_or_default();
        let webhooks = Arc::new(Webhooks::new(config, &cx.config.env));
        cx.services.singleton(webhooks.clone())?;
        // The secrets and the delivery log hold tenant data: with a database per tenant,
        // each gets them.
        cx.services
            .contribute(Arc::new(prefiq_data::tenants::TenantDataMigrations {
                module: "webhooks".into(),
                migrations: vec![store::migration()],
            }));
        // Writes through the generic resource routes (an administrator may use them) are
        // held to the same URL and pattern rules as the create route.
        let checked = webhooks.clone();
        cx.services
            .contribute(Arc::new(prefiq_data::entity::repo::EntityHook {
                module: "webhooks".into(),
                name: "check_target".into(),
                entity: "webhook".into(),
                event: prefiq_data::entity::repo::EntityEvent::Validate,
                run: Arc::new(move |input: prefiq_data::entity::repo::HookInput| {
                    let checked = checked.clone();
                    Box::pin(async move {
                        let repository = checked.repository()?;
                        let registry = repository.registry();
                        let tenant = input.scope.tenant().to_owned();
                        routes::check_target(&input.doc, checked.allow_private, &|name: &str| {
                            registry.get_for(Some(&tenant), name).is_some()
                        })
                        .map_err(|(pointer, _, message)| format!("{pointer}: {message}"))?;
                        Ok(input.doc)
                    })
                }),
            }));
        cx.services.contribute(Arc::new(Subscription {
            module: "webhooks".into(),
            name: "fan_out".into(),
            pattern: "*".into(),
            handler: Arc::new(FanOut(webhooks.clone())),
        }));
        cx.services
            .contribute::<dyn JobHandler>(Arc::new(Deliver(webhooks)) as Arc<dyn JobHandler>);
        cx.services
            .contribute(Arc::new(prefiq_worker::DeclaredQueue {
                name: service::QUEUE.into(),
                config: prefiq_worker::QueueConfig { concurrency: 32 },
            }));
        cx.services
            .contribute(Arc::new(prefiq_http::openapi::ApiDescription::from_yaml(
                "webhooks",
                include_str!("../openapi/routes.yaml"),
            )?));
        cx.services.contribute(Arc::new(desk::layer()));
        cx.services.contribute(Arc::new(desk::routes()));
        cx.services.contribute(Arc::new(
            RouteSet::new("webhooks")
                .post("/api/v1/webhooks", routes::create)
                .get("/api/v1/webhooks", routes::list)
                .get("/api/v1/webhooks/{id}/deliveries", routes::deliveries)
                .post(
                    "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
                    routes::redeliver,
                )
                .post("/api/v1/webhooks/{id}/rotate-secret", routes::rotate_secret),
        ));
        Ok(())
    }

    async fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        if cx.mode != prefiq::BootMode::DryRun {
            let webhooks = cx.services.get::<Webhooks>()?;
            webhooks.connect(cx.services.get::<Repository>()?, cx.services.get::<Jobs>()?);
            if let Some(cache) = cx.services.try_get::<prefiq_cache::Cache>() {
                webhooks.use_cache(&cache);
            }
        }
        Ok(())
    }
}
