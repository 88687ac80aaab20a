//! The host side of a plugin's calls: every read and write goes through the repository,
//! in the call's tenant, as the principal `plugin:{name}` — so the plugin meets the same
//! validation, row-level security, Cedar policies, audit log and outbox as any caller.
//!
//! Two checks stand before the repository: the manifest must ask for the action on the
//! entity (else the call is refused here, naming the capability), and the tenant's Cedar
//! grant, written when the tenant enabled the plugin, must permit it.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use prefiq::identity::Principal;
use prefiq::{Context, TraceId};
use prefiq_data::entity::repo::{ListQuery, RepoError, TenantScope};
use prefiq_plugin::manifest::EntityAction;
use prefiq_plugin::sandbox::{CallContext, Host, host_trait};
use serde::Deserialize;
use serde_json::Value;

use crate::service::Plugins;

/// The host every plugin call of one installation uses.
pub struct RepositoryHost {
    plugins: Weak<Plugins>,
    outbound: crate::outbound::Outbound,
}

impl RepositoryHost {
    /// The host of `plugins`' calls; `allow_private_hosts` lets a plugin's outbound
    /// requests reach private addresses.
    pub fn new(plugins: &Arc<Plugins>, allow_private_hosts: bool) -> Arc<RepositoryHost> {
        Arc::new(RepositoryHost {
            plugins: Arc::downgrade(plugins),
            outbound: crate::outbound::Outbound::new(allow_private_hosts),
        })
    }

    fn plugins(&self) -> Result<Arc<Plugins>, String> {
        self.plugins
            .upgrade()
            .ok_or_else(|| "the installation is shutting down".to_owned())
    }

    /// Refuses an action the plugin's manifest does not ask for.
    fn check(
        &self,
        cx: &CallContext,
        entity: &str,
        action: EntityAction,
    ) -> Result<Arc<Plugins>, String> {
        let plugins = self.plugins()?;
        let state = plugins.state();
        let allowed = state
            .installed
            .get(&cx.plugin)
            .is_some_and(|p| p.manifest.allows(entity, action));
        if allowed {
            Ok(plugins)
        } else {
            Err(format!(
                "plugin {} may not {} {entity}: its manifest does not ask for it (capabilities.entities.{entity})",
                cx.plugin,
                action.as_str()
            ))
        }
    }
}

/// The scope a plugin's host calls act in: the call's tenant, the plugin's principal, the
/// call's trace.
pub fn plugin_scope(cx: &CallContext) -> Result<TenantScope, String> {
    let principal = format!("plugin:{}", cx.plugin);
    let mut context = Context::system("en").with_principal(Principal {
        tenant: cx.tenant.clone(),
        user: principal.clone(),
        roles: vec![principal],
        attributes: BTreeMap::new(),
        api_key: None,
    });
    if let Some(trace) = TraceId::parse(&cx.trace_id) {
        context.correlation_id = trace.to_string();
        context.trace_id = trace;
    }
    TenantScope::new(&context).map_err(|e| e.to_string())
}

/// A repository error as the plugin reads it: the field errors spelled out.
fn message(error: RepoError) -> String {
    match error {
        RepoError::Invalid(errors) => {
            let details: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.pointer, e.message))
                .collect();
            format!("the input is invalid: {}", details.join("; "))
        }
        e => e.to_string(),
    }
}

fn json_of(text: &str, what: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("{what} is not JSON: {e}"))
}

/// The list parameters a plugin may pass.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PluginListQuery {
    filters: Option<Value>,
    fields: Vec<String>,
    order_by: Option<String>,
    limit: Option<u32>,
}

#[host_trait]
impl Host for RepositoryHost {
    async fn get(&self, cx: &CallContext, entity: &str, id: &str) -> Result<String, String> {
        let plugins = self.check(cx, entity, EntityAction::Read)?;
        let scope = plugin_scope(cx)?;
        let repository = plugins.repository().map_err(|e| e.to_string())?;
        repository
            .get(&scope, entity, id)
            .await
            .map(|record| record.to_string())
            .map_err(message)
    }

    async fn list(&self, cx: &CallContext, entity: &str, query: &str) -> Result<String, String> {
        let plugins = self.check(cx, entity, EntityAction::Read)?;
        let query: PluginListQuery = if query.trim().is_empty() {
            PluginListQuery::default()
        } else {
            serde_json::from_str(query).map_err(|e| format!("the list query: {e}"))?
        };
        let scope = plugin_scope(cx)?;
        let repository = plugins.repository().map_err(|e| e.to_string())?;
        let page = repository
            .list(
                &scope,
                entity,
                &ListQuery {
                    fields: query.fields,
                    filters: query.filters,
                    order_by: query.order_by,
                    limit: query.limit,
                    cursor: None,
                    total: false,
                },
            )
            .await
            .map_err(message)?;
        Ok(Value::Array(page.data).to_string())
    }

    async fn insert(&self, cx: &CallContext, entity: &str, doc: &str) -> Result<String, String> {
        let plugins = self.check(cx, entity, EntityAction::Create)?;
        let doc = json_of(doc, "the document")?;
        let scope = plugin_scope(cx)?;
        let repository = plugins.repository().map_err(|e| e.to_string())?;
        repository
            .create(&scope, entity, doc)
            .await
            .map(|record| record.to_string())
            .map_err(message)
    }

    async fn fetch(&self, _cx: &CallContext, request: &str) -> Result<String, String> {
        // The sandbox checked the host against the manifest before this runs.
        self.outbound.fetch(request).await
    }

    async fn update(
        &self,
        cx: &CallContext,
        entity: &str,
        id: &str,
        patch: &str,
    ) -> Result<String, String> {
        let plugins = self.check(cx, entity, EntityAction::Update)?;
        let patch = json_of(patch, "the patch")?;
        let scope = plugin_scope(cx)?;
        let repository = plugins.repository().map_err(|e| e.to_string())?;
        repository
            .update(&scope, entity, id, patch, None)
            .await
            .map(|record| record.to_string())
            .map_err(message)
    }
}
