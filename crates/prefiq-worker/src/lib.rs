//! Codexion's background work: what happens after a write commits, and later.
//!
//! - The **outbox relay** ([`relay`]) reads each database's committed outbox rows in
//!   order and hands every event to the modules' subscribers ([`bus`]), to live listeners
//!   (a tokio broadcast), and, when `events.nats_url` is set, to NATS JetStream
//!   ([`nats`]); a row is marked delivered only once all of them have it.
//! - The **job runner** ([`runner`]) claims jobs from the queue in the application
//!   database (`prefiq_data::jobs`) and runs them with the handlers modules register
//!   ([`handlers`]), with timeouts, retries, leases and a drain on shutdown.
//! - The **scheduler** ([`schedule`]) enqueues the runs of the cron schedules modules
//!   declare, each due run once however many processes tick.
//!
//! [`EventsProvider`] and [`JobsProvider`] bind them and run them while the installation
//! serves.

pub mod bus;
pub mod config;
mod databases;
pub mod event;
pub mod handlers;
pub mod live;
pub mod nats;
mod provider;
pub mod relay;
pub mod runner;
pub mod schedule;
pub mod schedule_sources;

pub use bus::{EventBus, EventHandler, Subscription};
pub use config::{DeclaredQueue, EventsConfig, JobsConfig, QueueConfig};
pub use databases::Databases;
pub use event::Event;
pub use handlers::{JobHandler, JobHandlers, JobInput};
pub use provider::{EventsProvider, Jobs, JobsProvider};
pub use schedule::{CatchUp, Schedule, Schedules};
pub use schedule_sources::{ScheduleSource, TenantSchedule};

/// An error of the background work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The database refused.
    #[error(transparent)]
    Data(#[from] prefiq_data::DataError),
    /// NATS could not be reached or refused a message.
    #[error("NATS: {0}")]
    Nats(String),
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
}

/// Describes the metrics this crate records, for `/metrics`' HELP lines.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "prefiq_events_relayed_total",
        "Events the outbox relay delivered and marked."
    );
    metrics::describe_counter!(
        "prefiq_relay_failures_total",
        "Relay rounds that failed (NATS or the database unreachable); retried."
    );
    metrics::describe_counter!(
        "prefiq_subscriber_failures_total",
        "Subscriber deliveries that failed and became retry jobs."
    );
    metrics::describe_histogram!(
        "prefiq_relay_lag_seconds",
        metrics::Unit::Seconds,
        "From an event's write to its delivery by the relay."
    );
    metrics::describe_gauge!(
        "prefiq_outbox_pending",
        "Events in the outbox not yet delivered."
    );
    metrics::describe_gauge!(
        "prefiq_relay_lag_oldest_seconds",
        metrics::Unit::Seconds,
        "Now minus the write time of the oldest undelivered event."
    );
    metrics::describe_counter!(
        "prefiq_jobs_total",
        "Job attempts by queue, kind and outcome (succeeded, retried, dead)."
    );
    metrics::describe_histogram!(
        "prefiq_job_duration_seconds",
        metrics::Unit::Seconds,
        "How long job attempts ran."
    );
    metrics::describe_counter!(
        "prefiq_jobs_rescued_total",
        "Jobs queued again because the worker holding them stopped."
    );
    metrics::describe_gauge!(
        "prefiq_jobs_in_state",
        "Jobs per database, queue and state."
    );
    metrics::describe_gauge!(
        "prefiq_jobs_oldest_queued_age_seconds",
        metrics::Unit::Seconds,
        "How long the oldest queued job of a queue has been due."
    );
}
