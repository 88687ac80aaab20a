//! The `events` and `jobs` config sections.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `events`: the outbox relay.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Whether this process relays (one replica at a time does, on PostgreSQL).
    pub relay: bool,
    /// NATS with JetStream, such as `nats://127.0.0.1:4222`; unset keeps events in process.
    pub nats_url: Option<String>,
    /// The JetStream stream, made if missing, holding `{subject_prefix}.>`.
    pub stream: String,
    /// Subjects are `{subject_prefix}.{tenant}.{entity}.{action}`.
    pub subject_prefix: String,
    /// Most messages published and not yet acknowledged.
    pub max_in_flight: usize,
    /// Most events read from the outbox at once.
    pub batch_size: i64,
    /// How often the outbox is read when no local commit wakes the relay (other replicas'
    /// writes, or a NATS outage being retried).
    pub poll_ms: u64,
    /// How long the relay rests after a round that delivered something, so that the
    /// events of many commits share a round (and its write transaction).
    pub round_interval_ms: u64,
    /// How long delivered events stay in the outbox.
    pub retention_ms: u64,
    /// How long one subscriber may take for one event before it counts as failed.
    pub subscriber_timeout_ms: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            relay: true,
            nats_url: None,
            stream: "CODEXION".into(),
            subject_prefix: "codexion".into(),
            max_in_flight: 4_096,
            batch_size: 2_000,
            poll_ms: 100,
            round_interval_ms: 20,
            retention_ms: 24 * 3_600_000,
            subscriber_timeout_ms: 5_000,
        }
    }
}

/// `jobs`: the job runner.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Whether `prefiq serve` runs jobs itself (otherwise only `prefiq worker` does).
    pub run_in_serve: bool,
    /// Whether a command boot runs jobs: set by `prefiq worker`, not by hand.
    pub run_in_command: bool,
    /// The queues, with their limits in each process.
    pub queues: BTreeMap<String, QueueConfig>,
    /// The queues this process runs (`prefiq worker --queues`); all of them when unset.
    pub run_queues: Option<Vec<String>>,
    /// How often the queue is read when no enqueue in this process wakes the runner.
    pub poll_ms: u64,
    /// How long a claimed job is held without a heartbeat before another worker may run it.
    pub lease_ms: i64,
    /// How long succeeded and cancelled jobs are kept.
    pub retention_ms: i64,
    /// Most jobs one claim fetches: a queue claims ahead of its free places (up to this,
    /// shared between databases) into a buffer of this process, so that short jobs cost a
    /// fraction of a claim each. A job waits in the buffer behind at most this many.
    pub claim_batch: i64,
    /// The first retry's delay; each further one doubles it, up to `max_backoff_ms`, with
    /// jitter.
    pub backoff_ms: i64,
    /// The longest delay between two attempts.
    pub max_backoff_ms: i64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            run_in_serve: true,
            run_in_command: false,
            run_queues: None,
            // `events` carries the retries of subscribers that failed.
            queues: BTreeMap::from([
                ("default".to_owned(), QueueConfig::default()),
                ("events".to_owned(), QueueConfig { concurrency: 4 }),
            ]),
            poll_ms: 200,
            lease_ms: 30_000,
            retention_ms: 24 * 3_600_000,
            claim_batch: 200,
            backoff_ms: 1_000,
            max_backoff_ms: 3_600_000,
        }
    }
}

/// A queue a module needs (contributed to the services): it runs with `concurrency`
/// unless `jobs.queues` configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredQueue {
    /// The queue.
    pub name: String,
    /// Its default limits.
    pub config: QueueConfig,
}

/// One queue's limits in this process.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Most of its jobs running at once in this process.
    pub concurrency: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { concurrency: 16 }
    }
}

impl JobsConfig {
    /// The delay before attempt `attempt + 1` after attempt `attempt` failed: `backoff_ms`
    /// doubled per attempt, capped at `max_backoff_ms`, then drawn uniformly from its upper
    /// half so that jobs that failed together do not retry together.
    pub fn backoff(&self, attempt: i64, unit: f64) -> i64 {
        let exponent = u32::try_from(attempt.clamp(1, 40) - 1).unwrap_or(0);
        let full = self
            .backoff_ms
            .max(1)
            .saturating_mul(1_i64.checked_shl(exponent).unwrap_or(i64::MAX))
            .min(self.max_backoff_ms.max(1));
        let half = full / 2;
        half + (half as f64 * unit.clamp(0.0, 1.0)) as i64
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_in_the_upper_half() {
        let config = JobsConfig {
            backoff_ms: 1_000,
            max_backoff_ms: 10_000,
            ..JobsConfig::default()
        };
        let check = |attempt: i64, unit: f64, expected: i64| {
            assert_eq!(
                config.backoff(attempt, unit),
                expected,
                "attempt {attempt} unit {unit}"
            );
        };
        check(1, 0.0, 500);
        check(1, 1.0, 1_000);
        check(2, 0.0, 1_000);
        check(3, 1.0, 4_000);
        check(4, 0.5, 6_000);
        check(5, 1.0, 10_000);
        check(60, 1.0, 10_000);
        check(-3, 1.0, 1_000);
    }
}
