//! What keeps the index in step with the records: the subscription to every committed
//! write (memory items, and records of entities that declare `memory`), and the jobs
//! that embed pending items and move idle ones to the cold tier.

use std::sync::Arc;

use prefiq::Context;
use prefiq_data::entity::repo::TenantScope;
use prefiq_worker::{Event, EventHandler, JobHandler, JobInput};
use serde_json::Value;

use crate::items;
use crate::service::{EMBED_JOB, ENTITY, Memory, TIER_JOB};
use crate::store;

/// The platform's scope for a tenant (the subscription and jobs act for nobody: what
/// they write was authorized when the record was).
pub fn tenant_scope(tenant: &str) -> Result<TenantScope, String> {
    TenantScope::new(&Context::system("en").with_tenant(tenant)).map_err(|e| e.to_string())
}

/// The subscription: indexes each memory item and each record of an entity with a
/// `memory` block as its write commits; forgets it when it is deleted.
pub struct IndexWrites(pub Arc<Memory>);

/// The id a record's memory item has: `{entity}:{id}`.
pub fn record_item_id(entity: &str, id: &str) -> String {
    format!("{entity}:{id}")
}

#[async_trait::async_trait]
impl EventHandler for IndexWrites {
    async fn handle(&self, event: &Event) -> Result<(), String> {
        let memory = &self.0;
        let scope = tenant_scope(&event.tenant)?;
        let now = jiff::Timestamp::now().as_millisecond();
        if event.entity == ENTITY {
            match event.action.as_str() {
                "created" | "updated" => match items::index_fields(&event.data, now) {
                    Some(fields) => {
                        let created_by = event
                            .data
                            .get("created_by")
                            .and_then(Value::as_str)
                            .map(str::to_owned);
                        memory
                            .index_record(&scope, &event.record_id, fields, created_by)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    None => memory
                        .unindex(&scope, &event.record_id)
                        .await
                        .map_err(|e| e.to_string())?,
                },
                "deleted" => {
                    memory
                        .unindex(&scope, &event.record_id)
                        .await
                        .map_err(|e| e.to_string())?;
                    // The soft-deleted row keeps no text: forgetting erases it.
                    let repository = memory.repository().map_err(|e| e.to_string())?;
                    if let Some(schema) = repository.registry().get_for(Some(&event.tenant), ENTITY)
                    {
                        store::erase_item_text(
                            repository,
                            &scope,
                            schema.table(),
                            &event.record_id,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    }
                }
                _ => {}
            }
            return Ok(());
        }
        let repository = memory.repository().map_err(|e| e.to_string())?;
        let registry = repository.registry();
        let Some(schema) = registry.get_for(Some(&event.tenant), &event.entity) else {
            return Ok(());
        };
        let Some(spec) = &schema.memory else {
            return Ok(());
        };
        let item_id = record_item_id(&event.entity, &event.record_id);
        if event.action == "deleted" {
            return memory
                .unindex(&scope, &item_id)
                .await
                .map_err(|e| e.to_string());
        }
        let parts: Vec<&str> = spec
            .fields
            .iter()
            .filter_map(|f| event.data.get(f).and_then(Value::as_str))
            .filter(|t| !t.trim().is_empty())
            .collect();
        if parts.is_empty() {
            return memory
                .unindex(&scope, &item_id)
                .await
                .map_err(|e| e.to_string());
        }
        let text: String = parts
            .join(" — ")
            .chars()
            .take(items::MAX_TEXT_BYTES)
            .collect();
        let occurred = ["modified_at", "created_at"]
            .iter()
            .find_map(|f| event.data.get(*f).and_then(Value::as_str))
            .and_then(crate::filters::parse_time)
            .unwrap_or(now);
        let subject = event
            .data
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        memory
            .index_record(
                &scope,
                &item_id,
                (
                    "record".into(),
                    text,
                    subject,
                    vec![event.entity.clone()],
                    occurred,
                    500,
                    Some((event.entity.clone(), event.record_id.clone())),
                ),
                None,
            )
            .await
            .map_err(|e| e.to_string())
    }
}

/// The embedding job: embeds the tenant's pending items in batches.
pub struct Embed(pub Arc<Memory>);

#[async_trait::async_trait]
impl JobHandler for Embed {
    fn kind(&self) -> &str {
        EMBED_JOB
    }

    async fn run(&self, job: &JobInput) -> Result<(), String> {
        let tenant = job
            .context
            .tenant
            .clone()
            .ok_or("the embedding job has no tenant")?;
        let scope = tenant_scope(&tenant)?;
        let done = self
            .0
            .embed_pending(&scope)
            .await
            .map_err(|e| e.to_string())?;
        tracing::debug!(tenant, done, "memory items embedded");
        Ok(())
    }
}

/// The tier job: moves a tenant's idle items to the cold tier. The schedule's run (for
/// no tenant) does it for every active tenant in turn.
pub struct Tiers {
    /// The service.
    pub memory: Arc<Memory>,
    /// Who knows the tenants (bound at boot).
    pub identity: Arc<std::sync::OnceLock<Arc<cortex::identity::Identity>>>,
}

#[async_trait::async_trait]
impl JobHandler for Tiers {
    fn kind(&self) -> &str {
        TIER_JOB
    }

    async fn run(&self, job: &JobInput) -> Result<(), String> {
        let now = job
            .payload
            .get("now_ms")
            .and_then(Value::as_i64)
            .unwrap_or_else(|| jiff::Timestamp::now().as_millisecond());
        let tenants = match job.context.tenant.clone().filter(|t| !t.is_empty()) {
            Some(tenant) => vec![tenant],
            None => self
                .identity
                .get()
                .ok_or("the tier job runs after boot")?
                .tenants()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|t| t.status == "active")
                .map(|t| t.name)
                .collect(),
        };
        for tenant in tenants {
            let scope = tenant_scope(&tenant)?;
            let moved = self
                .memory
                .run_tiers(&scope, now)
                .await
                .map_err(|e| format!("tenant {tenant}: {e}"))?;
            tracing::info!(tenant, moved, "memory items moved to the cold tier");
        }
        Ok(())
    }
}
