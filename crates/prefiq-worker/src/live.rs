//! Live events across replicas. The relay that delivers an event broadcasts it to the
//! live listeners of its own process (the server-sent-events stream, `prefiq events
//! tail`); with several replicas, a listener connected to another one would miss it. When
//! `events.nats_url` is set, every process also listens on NATS for the events other
//! processes' relays publish (`{prefix}.>`, core subscription, no JetStream consumer) and
//! hands them to its live listeners. Its own publications carry its origin
//! (`Codexion-Origin`) and are skipped, so a listener sees each event once. Subscriptions
//! are not called here: they run once, on the replica that relays.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt as _;

use crate::bus::EventBus;
use crate::config::EventsConfig;
use crate::event::Event;

/// The header that names the process whose relay published an event.
pub const ORIGIN_HEADER: &str = "Codexion-Origin";

/// This process's origin, as its relay writes it on what it publishes.
pub fn origin() -> &'static str {
    static ORIGIN: OnceLock<String> = OnceLock::new();
    ORIGIN.get_or_init(|| uuid::Uuid::now_v7().simple().to_string())
}

/// Hands other processes' events from NATS to `bus`'s live listeners until `stop`,
/// skipping those published with `own` as their origin (this process's relay).
pub async fn bridge(
    config: EventsConfig,
    bus: Arc<EventBus>,
    own: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(url) = config.nats_url.clone() else {
        return;
    };
    let mut wait = Duration::from_millis(100);
    let client = loop {
        match async_nats::connect(url.as_str()).await {
            Ok(client) => break client,
            Err(e) => {
                tracing::debug!(target: "prefiq::relay", error = %e, "live events from other replicas wait for NATS");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    };
    let mut messages = match client
        .subscribe(format!("{}.>", config.subject_prefix))
        .await
    {
        Ok(messages) => messages,
        Err(e) => {
            tracing::warn!(target: "prefiq::relay", error = %e, "live events from other replicas are not followed");
            return;
        }
    };
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return };
                let own = message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get(ORIGIN_HEADER))
                    .is_some_and(|value| value.as_str() == own);
                if own {
                    continue;
                }
                match serde_json::from_slice::<Event>(&message.payload) {
                    Ok(event) => bus.broadcast(Arc::new(event)),
                    Err(e) => {
                        tracing::debug!(target: "prefiq::relay", error = %e, "a message on the events' subjects is not an event");
                    }
                }
            }
            _ = stop.changed() => return,
        }
    }
}
