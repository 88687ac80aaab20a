//! The event bus in process: the subscriptions modules register, and a broadcast of every
//! relayed event for live listeners (the server-sent-events stream, `prefiq events tail`).

use std::sync::Arc;

use crate::event::Event;

/// Reacts to events after their write committed. Registered by a module as a
/// [`Subscription`] contribution.
#[async_trait::async_trait]
pub trait EventHandler: Send + Sync {
    /// Handles one event. An error (or a panic, or running past
    /// `events.subscriber_timeout_ms`) makes the event a job that retries this handler
    /// alone with backoff; the event is never dropped.
    async fn handle(&self, event: &Event) -> Result<(), String>;
}

/// A module's subscription: its handler for the events a pattern selects (see
/// [`crate::event::matches`]). Modules contribute these to the kernel's services.
pub struct Subscription {
    /// The module.
    pub module: String,
    /// Its name within the module; `module::name` identifies it in retry jobs.
    pub name: String,
    /// The events it wants, such as `journal_entry.submitted`.
    pub pattern: String,
    /// The handler.
    pub handler: Arc<dyn EventHandler>,
}

impl Subscription {
    /// `module::name`.
    pub fn key(&self) -> String {
        format!("{}::{}", self.module, self.name)
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("module", &self.module)
            .field("name", &self.name)
            .field("pattern", &self.pattern)
            .finish()
    }
}

/// Live listeners lagging this many events behind lose the oldest (and are told so).
const LIVE_CAPACITY: usize = 4_096;

/// The subscriptions and the live broadcast.
pub struct EventBus {
    subscriptions: Vec<Arc<Subscription>>,
    live: tokio::sync::broadcast::Sender<Arc<Event>>,
}

impl EventBus {
    /// A bus with these subscriptions.
    pub fn new(subscriptions: Vec<Arc<Subscription>>) -> EventBus {
        EventBus {
            subscriptions,
            live: tokio::sync::broadcast::channel(LIVE_CAPACITY).0,
        }
    }

    /// The subscriptions `event` is for.
    pub fn subscribers_of<'a>(
        &'a self,
        event: &'a Event,
    ) -> impl Iterator<Item = &'a Arc<Subscription>> + 'a {
        self.subscriptions
            .iter()
            .filter(move |s| event.matches(&s.pattern))
    }

    /// The subscription `module::name`.
    pub fn subscription(&self, key: &str) -> Option<&Arc<Subscription>> {
        self.subscriptions.iter().find(|s| s.key() == key)
    }

    /// Every event relayed by this process from now on.
    pub fn listen(&self) -> tokio::sync::broadcast::Receiver<Arc<Event>> {
        self.live.subscribe()
    }

    /// Hands `event` to live listeners (none listening is fine).
    pub(crate) fn broadcast(&self, event: Arc<Event>) {
        let _ = self.live.send(event);
    }
}
