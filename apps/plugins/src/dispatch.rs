//! Where plugins meet the platform's moving parts: the write pipeline's hooks (as the
//! repository's [`DynamicHooks`]) and the event bus (one subscription that hands each
//! event to the plugins of its tenant that subscribed to it).
//!
//! Each plugin call is guarded by its tenant's circuit breaker. A plugin's refusal is the
//! caller's answer (422); a plugin's failure — a trap, its budget, its memory — is a 503
//! naming the plugin, and counts towards opening the breaker.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use tracing::Instrument;

use prefiq::async_trait;
use prefiq_data::entity::repo::{DynamicHooks, EntityEvent, HookInput, RepoError, TenantScope};
use prefiq_plugin::manifest::{EntityAction, HookEvent};
use prefiq_plugin::{CallFailure, PluginError};
use prefiq_worker::{Event, EventHandler};
use serde_json::{Map, Value};

use crate::host::RepositoryHost;
use crate::service::{Active, Plugins};

/// The pipeline point a plugin hook can attach to, for the repository's event.
pub fn hook_event(event: EntityEvent) -> Option<HookEvent> {
    Some(match event {
        EntityEvent::BeforeValidate => HookEvent::BeforeValidate,
        EntityEvent::Validate => HookEvent::Validate,
        EntityEvent::BeforeInsert => HookEvent::BeforeInsert,
        EntityEvent::BeforeUpdate => HookEvent::BeforeUpdate,
        EntityEvent::AfterInsert => HookEvent::AfterInsert,
        EntityEvent::AfterUpdate => HookEvent::AfterUpdate,
        _ => return None,
    })
}

fn is_after(event: HookEvent) -> bool {
    matches!(event, HookEvent::AfterInsert | HookEvent::AfterUpdate)
}

/// Runs a call guarded by the breaker of (tenant, plugin): the plugin's answer, or why
/// there is none (suspended, or the call failed — which the breaker counts).
pub async fn guarded<T, F>(
    plugins: &Plugins,
    tenant: &str,
    plugin: &str,
    call: F,
) -> Result<T, PluginError>
where
    F: std::future::Future<Output = Result<T, PluginError>>,
{
    if let Err(open) = plugins.breakers.admit(tenant, plugin) {
        return Err(PluginError::Call {
            plugin: plugin.to_owned(),
            failure: CallFailure::Suspended {
                failures: open.failures,
                retry_in_ms: open.retry_in_ms,
            },
        });
    }
    let started = std::time::Instant::now();
    let span = prefiq::otel_span!(
        "plugin",
        otel.name = format!("plugin {plugin}").as_str(),
        plugin.name = plugin,
        tenant,
        otel.status_code = tracing::field::Empty,
    );
    let outcome = call.instrument(span.clone()).await;
    if outcome.is_err() {
        span.record("otel.status_code", "ERROR");
    }
    let seconds = started.elapsed().as_secs_f64();
    if outcome.is_ok() {
        plugins.call_histograms(plugin).0.record(seconds);
    } else {
        plugins.call_histograms(plugin).1.record(seconds);
    }
    match &outcome {
        Ok(_) => plugins.breakers.succeeded(tenant, plugin),
        Err(e) => {
            if plugins.breakers.failed(tenant, plugin) {
                tracing::warn!(target: "plugins", plugin, tenant, error = %e, "circuit breaker opened: the plugin is suspended for this tenant");
            } else {
                tracing::warn!(target: "plugins", plugin, tenant, error = %e, "plugin call failed");
            }
        }
    }
    outcome
}

/// The repository's dynamic hooks: the hooks of the plugins each tenant enabled.
pub struct PluginHooks {
    plugins: Weak<Plugins>,
    host: Arc<RepositoryHost>,
}

impl PluginHooks {
    /// The hooks of `plugins`.
    pub fn new(plugins: &Arc<Plugins>, host: Arc<RepositoryHost>) -> PluginHooks {
        PluginHooks {
            plugins: Arc::downgrade(plugins),
            host,
        }
    }
}

fn hooked<'a>(
    active: &'a [Active],
    entity: &'a str,
    event: HookEvent,
) -> impl Iterator<Item = &'a Active> {
    active
        .iter()
        .filter(move |a| a.installed.hooks(entity, event))
}

#[async_trait]
impl DynamicHooks for PluginHooks {
    fn applies(&self, scope: &TenantScope, entity: &str, event: EntityEvent) -> bool {
        let (Some(event), Some(plugins)) = (hook_event(event), self.plugins.upgrade()) else {
            return false;
        };
        // Not read yet (a process that never reached ready): `run` reads it and decides.
        if !plugins.is_loaded() {
            return true;
        }
        let state = plugins.state();
        hooked(state.active_for(scope.tenant()), entity, event)
            .next()
            .is_some()
    }

    async fn run(&self, input: HookInput) -> Result<Map<String, Value>, RepoError> {
        let (Some(event), Some(plugins)) = (hook_event(input.event), self.plugins.upgrade()) else {
            return Ok(input.doc);
        };
        let state = plugins
            .loaded_state()
            .await
            .map_err(|e| RepoError::HookFailed {
                hook: "plugins".into(),
                message: e.to_string(),
            })?;
        let tenant = input.scope.tenant();
        let entity = input.entity.name.as_str();
        let old = input
            .old
            .map(|o| Value::Object(o).to_string())
            .unwrap_or_default();
        let mut doc = input.doc;
        for active in hooked(state.active_for(tenant), entity, event) {
            let manifest = &active.installed.manifest;
            let name = manifest.name.as_str();
            let hook = manifest.principal();
            let failed = |message: String| RepoError::HookFailed {
                hook: hook.clone(),
                message,
            };
            let text = Value::Object(doc.clone()).to_string();
            let context = plugins.call_context(active, tenant, input.scope.trace_id());
            let answer = guarded(
                &plugins,
                tenant,
                name,
                active.installed.plugin.hook(
                    self.host.clone(),
                    context,
                    event.as_str(),
                    entity,
                    &text,
                    &old,
                ),
            )
            .await
            .map_err(|e| failed(e.to_string()))?;
            match answer {
                Err(message) => {
                    return Err(RepoError::Rejected {
                        hook,
                        message: format!("{name}: {message}"),
                    });
                }
                Ok(_) if is_after(event) => {}
                Ok(answer) if answer == text => {}
                Ok(answer) => {
                    let Ok(Value::Object(changed)) = serde_json::from_str::<Value>(&answer) else {
                        return Err(failed(format!(
                            "plugin {name} answered a document that is not a JSON object"
                        )));
                    };
                    if changed != doc
                        && !manifest.allows(entity, EntityAction::Create)
                        && !manifest.allows(entity, EntityAction::Update)
                    {
                        return Err(failed(format!(
                            "plugin {name} changed a {entity} document, but its manifest does not ask to create or update {entity}"
                        )));
                    }
                    doc = changed;
                }
            }
        }
        Ok(doc)
    }
}

/// How many (event, plugin) deliveries are remembered, so that a retry of the event (after
/// one plugin failed) does not hand it again to the plugins that already took it.
const REMEMBERED_DELIVERIES: usize = 10_000;

/// (event id, plugin) pairs already handed over: a set to ask, and their order to forget
/// the oldest first.
type Delivered = (HashSet<(String, String)>, VecDeque<(String, String)>);

/// The bus subscriber that hands events to the plugins that subscribed to them.
pub struct PluginEvents {
    plugins: Weak<Plugins>,
    host: Arc<RepositoryHost>,
    delivered: Mutex<Delivered>,
}

impl PluginEvents {
    /// The subscriber of `plugins`.
    pub fn new(plugins: &Arc<Plugins>, host: Arc<RepositoryHost>) -> PluginEvents {
        PluginEvents {
            plugins: Arc::downgrade(plugins),
            host,
            delivered: Mutex::default(),
        }
    }

    fn was_delivered(&self, event: &str, plugin: &str) -> bool {
        self.delivered
            .lock()
            .is_ok_and(|d| d.0.contains(&(event.to_owned(), plugin.to_owned())))
    }

    fn remember(&self, event: &str, plugin: &str) {
        if let Ok(mut delivered) = self.delivered.lock() {
            let key = (event.to_owned(), plugin.to_owned());
            if delivered.0.insert(key.clone()) {
                delivered.1.push_back(key);
            }
            while delivered.1.len() > REMEMBERED_DELIVERIES {
                if let Some(old) = delivered.1.pop_front() {
                    delivered.0.remove(&old);
                }
            }
        }
    }
}

#[async_trait]
impl EventHandler for PluginEvents {
    async fn handle(&self, event: &Event) -> Result<(), String> {
        let Some(plugins) = self.plugins.upgrade() else {
            return Ok(());
        };
        let state = plugins.loaded_state().await.map_err(|e| e.to_string())?;
        let subscribed = state.active_for(&event.tenant).iter().filter(|a| {
            a.installed
                .manifest
                .capabilities
                .subscriptions
                .iter()
                .any(|pattern| event.matches(pattern))
        });
        let mut failures = Vec::new();
        let mut envelope = None;
        for active in subscribed {
            let name = active.installed.manifest.name.as_str();
            if self.was_delivered(&event.id, name) {
                continue;
            }
            let text = envelope
                .get_or_insert_with(|| serde_json::to_string(event).unwrap_or_default())
                .clone();
            let context = plugins.call_context(active, &event.tenant, &event.trace_id);
            let outcome = guarded(
                &plugins,
                &event.tenant,
                name,
                active
                    .installed
                    .plugin
                    .event(self.host.clone(), context, &text),
            )
            .await;
            match outcome {
                Ok(Ok(())) => self.remember(&event.id, name),
                Ok(Err(message)) => failures.push(format!("plugin {name}: {message}")),
                Err(e) => failures.push(e.to_string()),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}
