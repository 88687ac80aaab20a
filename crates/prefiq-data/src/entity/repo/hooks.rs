//! Running hooks at the points of the write pipeline: the modules' hooks, fixed at boot,
//! then the dynamic hooks (plugins, enabled per tenant at run time).

use std::sync::Arc;
use tracing::Instrument;

use prefiq::async_trait;
use serde_json::{Map, Value};

use super::{EntityEvent, HookInput, RepoError, Repository, TenantScope};
use crate::entity::schema::EntitySchema;

/// Hooks that come and go at run time and differ by tenant; the plugins app binds one as
/// `dyn DynamicHooks`. They run after the modules' hooks at each point.
#[async_trait]
pub trait DynamicHooks: Send + Sync {
    /// Whether any hook applies to `entity` at `event` for the scope's tenant. Called on
    /// every write, so it must be a lookup, not I/O.
    fn applies(&self, scope: &TenantScope, entity: &str, event: EntityEvent) -> bool;

    /// Runs the hooks that apply, in order; answers the document to write. A refusal is
    /// [`RepoError::Rejected`], a hook that could not run [`RepoError::HookFailed`].
    async fn run(&self, input: HookInput) -> Result<Map<String, Value>, RepoError>;
}

impl Repository {
    /// Whether any hook is registered at `event` for `schema` and the scope's tenant.
    pub(super) fn has_hooks(
        &self,
        event: EntityEvent,
        scope: &TenantScope,
        schema: &EntitySchema,
    ) -> bool {
        self.hooks
            .iter()
            .any(|h| h.event == event && (h.entity == "*" || h.entity == schema.name))
            || self
                .dynamic_hooks
                .as_ref()
                .is_some_and(|d| d.applies(scope, &schema.name, event))
    }

    pub(super) async fn run_hooks(
        &self,
        event: EntityEvent,
        scope: &TenantScope,
        schema: &Arc<EntitySchema>,
        mut doc: Map<String, Value>,
        old: Option<&Map<String, Value>>,
    ) -> Result<Map<String, Value>, RepoError> {
        for hook in self
            .hooks
            .iter()
            .filter(|h| h.event == event && (h.entity == "*" || h.entity == schema.name))
        {
            let input = HookInput {
                scope: scope.clone(),
                entity: schema.clone(),
                event,
                doc,
                old: old.cloned(),
            };
            let span = prefiq::otel_span!(
                "hook",
                otel.name = format!("hook {}::{}", hook.module, hook.name).as_str(),
                hook.event = ?event,
                entity = schema.name.as_str(),
            );
            doc = (hook.run)(input)
                .instrument(span)
                .await
                .map_err(|message| RepoError::Rejected {
                    hook: format!("{}::{}", hook.module, hook.name),
                    message,
                })?;
        }
        if let Some(dynamic) = &self.dynamic_hooks
            && dynamic.applies(scope, &schema.name, event)
        {
            let span = prefiq::otel_span!(
                "hook",
                otel.name = "hook dynamic",
                hook.event = ?event,
                entity = schema.name.as_str(),
            );
            doc = dynamic
                .run(HookInput {
                    scope: scope.clone(),
                    entity: schema.clone(),
                    event,
                    doc,
                    old: old.cloned(),
                })
                .instrument(span)
                .await?;
        }
        Ok(doc)
    }

    pub(super) async fn run_after_hooks(
        &self,
        event: EntityEvent,
        scope: &TenantScope,
        schema: &Arc<EntitySchema>,
        doc: &Map<String, Value>,
        old: Option<&Map<String, Value>>,
    ) {
        if let Err(e) = self.run_hooks(event, scope, schema, doc.clone(), old).await {
            tracing::error!(target: "prefiq::entity", trace_id = %scope.trace_id, entity = %schema.name, error = %e, "after-hook failed; the write is committed");
        }
    }
}
