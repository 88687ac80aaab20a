//! Job handlers: what modules register to run jobs of a kind, and the platform's own.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::bus::EventBus;
use crate::event::Event;

/// What a handler gets: the job's context (tenant, the user it acts for, trace id), its
/// input, and which attempt this is.
#[derive(Debug, Clone)]
pub struct JobInput {
    /// The job's id in its database.
    pub id: i64,
    /// Its kind.
    pub kind: String,
    /// Tenant, user and trace of the job; a handler passes it to the repository, which
    /// scopes and authorizes what the job does as it would a request's.
    pub context: prefiq::Context,
    /// The input the job was enqueued with.
    pub payload: Value,
    /// This attempt's number, from 1.
    pub attempt: i64,
    /// Attempts allowed in all.
    pub max_attempts: i64,
}

/// Runs jobs of one kind. Registered by a module as a `dyn JobHandler` contribution.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync {
    /// The kind it runs, such as `accounting.repost`.
    fn kind(&self) -> &str;

    /// Runs one attempt. An error, a panic or running past the job's timeout is a failed
    /// attempt: retried with backoff, then dead.
    async fn run(&self, job: &JobInput) -> Result<(), String>;
}

/// The handlers by kind, and who tells the principal of a job that acts for a user.
#[derive(Default, Clone)]
pub struct JobHandlers {
    by_kind: HashMap<String, Arc<dyn JobHandler>>,
    principals: Option<Arc<dyn prefiq::Authenticator>>,
}

impl JobHandlers {
    /// The handlers `handlers` (a later one of a kind wins; boot refuses duplicates
    /// before this, see [`JobHandlers::check`]).
    pub fn new(handlers: Vec<Arc<dyn JobHandler>>) -> JobHandlers {
        JobHandlers {
            by_kind: handlers
                .into_iter()
                .map(|h| (h.kind().to_owned(), h))
                .collect(),
            principals: None,
        }
    }

    /// The same handlers, giving a job that acts for a user that user's principal as
    /// `principals` reads it when the job starts.
    pub fn with_principals(mut self, principals: Arc<dyn prefiq::Authenticator>) -> Self {
        self.principals = Some(principals);
        self
    }

    /// Who reads a job's principal, when the installation has users.
    pub fn principals(&self) -> Option<&Arc<dyn prefiq::Authenticator>> {
        self.principals.as_ref()
    }

    /// An error naming a kind two handlers claim.
    pub fn check(handlers: &[Arc<dyn JobHandler>]) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for handler in handlers {
            if !seen.insert(handler.kind()) {
                return Err(format!(
                    "two job handlers run the kind `{}`",
                    handler.kind()
                ));
            }
        }
        Ok(())
    }

    /// The handler of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn JobHandler>> {
        self.by_kind.get(kind)
    }

    /// The kinds there are handlers for, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.by_kind.keys().cloned().collect();
        kinds.sort();
        kinds
    }
}

/// Runs `events.deliver`: one subscriber that failed, with the event it failed on.
pub struct DeliverEvent {
    bus: Arc<OnceLock<Arc<EventBus>>>,
}

impl DeliverEvent {
    /// The handler over the bus that `bus` will hold once the events provider booted.
    pub fn new(bus: Arc<OnceLock<Arc<EventBus>>>) -> DeliverEvent {
        DeliverEvent { bus }
    }
}

#[async_trait::async_trait]
impl JobHandler for DeliverEvent {
    fn kind(&self) -> &str {
        crate::relay::DELIVER_JOB
    }

    async fn run(&self, job: &JobInput) -> Result<(), String> {
        let bus = self
            .bus
            .get()
            .ok_or_else(|| "the event bus is not running in this process".to_owned())?;
        let key = job
            .payload
            .get("subscription")
            .and_then(Value::as_str)
            .ok_or("the job names no subscription")?;
        let event: Event =
            serde_json::from_value(job.payload.get("event").cloned().unwrap_or_default())
                .map_err(|e| format!("the job's event cannot be read: {e}"))?;
        let Some(subscription) = bus.subscription(key) else {
            // The module that subscribed is gone from this installation.
            tracing::warn!(target: "prefiq::jobs", subscription = key, event = %event.id, "no such subscription any more; the event is not retried");
            return Ok(());
        };
        subscription.handler.handle(&event).await
    }
}
