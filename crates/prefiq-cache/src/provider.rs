//! `CacheProvider`: binds the [`Cache`] (section `cache`), subscribes it to every event so
//! that namespaces depending on an entity are invalidated after its writes commit, and
//! carries invalidations between replicas while the installation runs.

use std::sync::{Arc, Mutex, PoisonError};

use prefiq::{BootContext, BootMode, ErrorKind, KernelError, RegisterContext, ServiceProvider};
use prefiq_worker::{Event, EventHandler, EventsConfig, Subscription};

use crate::config::CacheConfig;
use crate::service::Cache;
use crate::transport::Transport;

/// A background task and the switch that stops it.
type Task = Mutex<
    Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )>,
>;

fn invalid(e: impl std::fmt::Display) -> KernelError {
    KernelError::service(ErrorKind::Invalid, e.to_string())
}

/// Invalidates the namespaces that depend on an event's entity.
struct Dependencies(Cache);

#[async_trait::async_trait]
impl EventHandler for Dependencies {
    async fn handle(&self, event: &Event) -> Result<(), String> {
        self.0.entity_changed(&event.tenant, &event.entity);
        Ok(())
    }
}

/// Binds [`Cache`] from section `cache`. Register it before the modules that make
/// namespaces, and after `EventsProvider` (whose `events.nats_url` it falls back on).
#[derive(Default)]
pub struct CacheProvider {
    task: Task,
}

#[prefiq::async_trait]
impl ServiceProvider for CacheProvider {
    fn name(&self) -> &'static str {
        "prefiq_cache::CacheProvider"
    }

    fn config_section(&self) -> Option<&'static str> {
        Some("cache")
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        let config: CacheConfig = cx
            .config
            .section("cache")
            .map_err(invalid)?
            .unwrap_or_default();
        config.check().map_err(invalid)?;
        let cache = Cache::new(config);
        cx.services.singleton(Arc::new(cache.clone()))?;
        cx.services.contribute(Arc::new(Subscription {
            module: "cache".into(),
            name: "dependencies".into(),
            pattern: "*".into(),
            handler: Arc::new(Dependencies(cache)),
        }));
        Ok(())
    }

    async fn ready(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        crate::describe_metrics();
        if cx.mode == BootMode::DryRun {
            return Ok(());
        }
        let cache = cx.services.get::<Cache>()?;
        let transport = transport_of(cx, &cache);
        if let (Some(Transport::Nats(_)), Ok(events)) =
            (&transport, cx.services.get::<EventsConfig>())
            && check_channel(&cache.config().channel, &events.subject_prefix).is_err()
        {
            return Err(invalid(format!(
                "cache.channel `{}` falls under events.subject_prefix `{}`: the events' JetStream stream would store every invalidation; choose another channel",
                cache.config().channel,
                events.subject_prefix
            )));
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some(handle) = cache.start(transport, stop_rx) {
            *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some((stop_tx, handle));
        }
        Ok(())
    }

    async fn shutdown(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((stop, handle)) = task {
            // The task publishes what it still holds before it ends.
            let _ = stop.send(true);
            if let Err(e) = handle.await {
                tracing::error!(target: "prefiq::cache", error = %e, "the cache's transport task failed");
            }
        } else if cx.mode != BootMode::DryRun
            && let Ok(cache) = cx.services.get::<Cache>()
        {
            // A command that never started the transport (`prefiq tenant suspend`) still
            // tells the running replicas what it changed.
            cache.flush(transport_of(cx, &cache)).await;
        }
        Ok(())
    }
}

/// Redis when `cache.redis_url` is set, else NATS when `events.nats_url` is.
fn transport_of(cx: &BootContext<'_>, cache: &Cache) -> Option<Transport> {
    match &cache.config().redis_url {
        Some(url) => Some(Transport::Redis(url.clone())),
        None => cx
            .services
            .get::<EventsConfig>()
            .ok()
            .and_then(|events| events.nats_url.clone())
            .map(Transport::Nats),
    }
}

/// Refuses a NATS channel that the events' stream (`{prefix}.>`) would capture.
fn check_channel(channel: &str, events_prefix: &str) -> Result<(), ()> {
    if channel == events_prefix || channel.starts_with(&format!("{events_prefix}.")) {
        Err(())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check_channel;

    #[test]
    fn invalidations_never_land_in_the_events_stream() {
        for (channel, prefix, expected) in [
            ("codexion-cache.invalidate", "codexion", Ok(())),
            ("codexion.cache.invalidate", "codexion", Err(())),
            ("codexion", "codexion", Err(())),
            ("codexionx.invalidate", "codexion", Ok(())),
            ("acme.cache", "events", Ok(())),
        ] {
            assert_eq!(
                check_channel(channel, prefix),
                expected,
                "{channel} {prefix}"
            );
        }
    }
}
