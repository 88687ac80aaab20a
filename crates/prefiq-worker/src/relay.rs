//! The outbox relay: committed events out of each database's outbox, in order, to NATS
//! JetStream (when configured), to the modules' subscribers and to live listeners; then
//! marked delivered.
//!
//! One round per database reads up to `events.batch_size` undelivered events (lowest
//! number first) and:
//!
//! 1. publishes them to JetStream, waiting for every acknowledgement — on a failure
//!    nothing is marked and the round is tried again after `events.poll_ms`, so an outage
//!    delays events and loses none (a re-send of what JetStream already stored is dropped
//!    by its message id);
//! 2. hands each to the subscriptions its name matches, one after another in order; a
//!    subscriber that fails, panics or runs out of time gets the event again as an
//!    `events.deliver` job, retried with backoff, so a failing module never holds up the
//!    others or the relay;
//! 3. broadcasts each to live listeners;
//! 4. marks them delivered, and enqueues the retry jobs, in one transaction.
//!
//! A crash between 1 and 4 re-sends the batch on restart: delivery is at least once,
//! never skipped. On PostgreSQL the round holds a transaction-scoped advisory lock, so
//! of several replicas one relays a database at a time and events stay in order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

use prefiq_data::entity::sql::{Arg, Conn, Sql, SqlType};
use prefiq_data::jobs::NewJob;
use prefiq_data::{Database, DatabaseHandle, outbox};
use serde_json::json;

use crate::WorkerError;
use crate::bus::EventBus;
use crate::config::EventsConfig;
use crate::databases::Databases;
use crate::event::Event;
use crate::nats::NatsSink;

/// The job kind that retries one subscriber with one event.
pub const DELIVER_JOB: &str = "events.deliver";

/// The advisory lock a relay round holds on PostgreSQL ("relay").
const RELAY_LOCK: i64 = 0x0072_656c_6179;

/// At most this many batches in one PostgreSQL round (and its transaction, which holds the
/// relay's lock meanwhile).
const BATCHES_PER_ROUND: usize = 8;

/// How often delivered events older than the retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// The relay of one process.
pub struct Relay {
    databases: Databases,
    bus: Arc<EventBus>,
    nats: Option<NatsSink>,
    config: EventsConfig,
    /// Per database: (when, the highest number delivered by then), oldest first.
    delivered: HashMap<String, VecDeque<(Instant, i64)>>,
    last_prune: Instant,
    last_gauge: Option<Instant>,
    /// The backlog's measurement, while it runs.
    measuring: Option<tokio::task::JoinHandle<()>>,
    /// The origin its NATS messages carry (see [`crate::live`]).
    origin: String,
}

/// How often the backlog and the lag of its oldest event are measured for `/metrics`.
const GAUGE_EVERY: Duration = Duration::from_secs(5);

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Events delivered and marked.
    pub delivered: usize,
    /// Subscriber deliveries that failed and became jobs.
    pub retries: usize,
}

impl Relay {
    /// A relay over `databases`; it connects to NATS (and keeps trying until it can)
    /// when `events.nats_url` is set.
    pub fn new(databases: Databases, bus: Arc<EventBus>, config: EventsConfig) -> Relay {
        Relay {
            databases,
            bus,
            nats: None,
            config,
            delivered: HashMap::new(),
            last_prune: Instant::now(),
            last_gauge: None,
            measuring: None,
            origin: crate::live::origin().to_owned(),
        }
    }

    /// The same relay naming `origin` as the publisher of its events (this process's by
    /// default; tests stand two replicas in one process).
    pub fn with_origin(mut self, origin: &str) -> Relay {
        self.origin = origin.to_owned();
        self
    }

    /// Relays until `stop` says so: a pass over every database whenever a commit in this
    /// process wakes it, and every `events.poll_ms` otherwise.
    pub async fn run(
        mut self,
        mut commits: tokio::sync::watch::Receiver<u64>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        self.databases.open_existing().await;
        let poll = Duration::from_millis(self.config.poll_ms.max(1));
        let mut failing = false;
        loop {
            if *stop.borrow() {
                return;
            }
            let mut busy = false;
            let mut delivered = 0;
            let started = Instant::now();
            match self.pass().await {
                Ok(round) => {
                    delivered = round.delivered;
                    busy = round.delivered >= self.config.batch_size.max(1) as usize;
                    if failing {
                        tracing::info!(target: "prefiq::relay", "the relay delivers again");
                        failing = false;
                    }
                }
                Err(e) => {
                    metrics::counter!("prefiq_relay_failures_total").increment(1);
                    if !failing {
                        tracing::warn!(target: "prefiq::relay", error = %e, "the relay could not deliver; it retries every poll");
                        failing = true;
                    }
                }
            }
            if busy {
                tokio::task::yield_now().await;
                continue;
            }
            if delivered > 0 {
                // A round marks what it delivered in a write transaction of its own; on
                // SQLite that takes the one writer between the requests' batches. Rounds
                // that deliver start at most once per `events.round_interval_ms`, so the
                // events of many commits share one (with a round per commit, creates ran
                // 17% slower than without the relay). Resting the whole interval after
                // each round instead added it to every event's lag: at 50,000 events/s
                // on SQLite, p99 200 ms, against 25 ms without the rest.
                let rest = Duration::from_millis(self.config.round_interval_ms)
                    .saturating_sub(started.elapsed());
                if !rest.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(rest) => {}
                        _ = stop.changed() => {}
                    }
                }
                continue;
            }
            let wait = if failing {
                poll.max(Duration::from_millis(500))
            } else {
                poll
            };
            tokio::select! {
                _ = commits.changed(), if !failing => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One round over every open database; the first error stops the pass (the others
    /// get their turn on the next).
    pub async fn pass(&mut self) -> Result<Round, WorkerError> {
        let mut total = Round::default();
        for (label, handle) in self.databases.all().await {
            let round = self.round(&label, &handle).await?;
            total.delivered += round.delivered;
            total.retries += round.retries;
        }
        if self.last_prune.elapsed() >= PRUNE_EVERY {
            self.last_prune = Instant::now();
            self.prune().await?;
        }
        if self.last_gauge.is_none_or(|at| at.elapsed() >= GAUGE_EVERY)
            && self
                .measuring
                .as_ref()
                .is_none_or(|task| task.is_finished())
        {
            // Counting the backlog reads every pending row: beside the relay, not in its
            // way (inline, it held a round up every five seconds).
            self.last_gauge = Some(Instant::now());
            let databases = self.databases.clone();
            self.measuring = Some(tokio::spawn(async move {
                if let Err(e) = measure(&databases).await {
                    tracing::debug!(target: "prefiq::relay", error = %e, "the backlog could not be measured");
                }
            }));
        }
        Ok(total)
    }

    /// Relays everything pending, pass after pass, until a pass finds nothing.
    pub async fn drain(&mut self) -> Result<Round, WorkerError> {
        let mut total = Round::default();
        loop {
            let round = self.pass().await?;
            total.delivered += round.delivered;
            total.retries += round.retries;
            if round.delivered == 0 {
                return Ok(total);
            }
        }
    }

    async fn round(&mut self, label: &str, handle: &DatabaseHandle) -> Result<Round, WorkerError> {
        let database = handle.get()?;
        let limit = self.config.batch_size;
        let round = match database {
            Database::Sqlite(_) => {
                let rows = {
                    let mut reader = database.reader().await?;
                    outbox::pending(&mut reader.conn(), limit).await?
                };
                if rows.is_empty() {
                    return Ok(Round::default());
                }
                let (events, retries) = self.deliver(rows).await?;
                let mut tx = database.begin().await?;
                finish(&mut tx.conn(), &events, &retries).await?;
                tx.commit().await?;
                (events, retries.len())
            }
            Database::Postgres(pool) => {
                let mut tx = prefiq_data::begin_postgres(pool)
                    .await
                    .map_err(prefiq_data::DataError::from)?;
                let mut conn = Conn::Postgres(&mut tx);
                if !try_lock(&mut conn).await? {
                    // Another replica is relaying this database now.
                    return Ok(Round::default());
                }
                relay_settings(&mut conn).await?;
                let rows = outbox::pending(&mut conn, limit).await?;
                if rows.is_empty() {
                    return Ok(Round::default());
                }
                let round = self.pipeline(&mut conn, rows, limit).await?;
                tx.commit().await.map_err(prefiq_data::DataError::from)?;
                round
            }
        };
        let (events, retries) = round;
        let now = jiff::Timestamp::now();
        for event in &events {
            if let Ok(at) = event.occurred_at.parse::<jiff::Timestamp>() {
                let lag = now.duration_since(at).as_secs_f64().max(0.0);
                metrics::histogram!("prefiq_relay_lag_seconds").record(lag);
            }
        }
        metrics::counter!("prefiq_events_relayed_total").increment(events.len() as u64);
        if let Some(last) = events.last() {
            let marks = self.delivered.entry(label.to_owned()).or_default();
            marks.push_back((Instant::now(), last.seq));
            // One mark per prune period is enough to know what is old.
            while marks.len() > 2
                && marks.get(1).is_some_and(|(at, _)| {
                    at.elapsed() > Duration::from_millis(self.config.retention_ms)
                })
            {
                marks.pop_front();
            }
        }
        Ok(Round {
            delivered: events.len(),
            retries,
        })
    }

    /// A PostgreSQL round past its first read: while one batch goes to NATS, the
    /// subscribers and live listeners, the previous batch is marked and the next read
    /// (numbered above this one; a row of a lower number that commits later is read by a
    /// later round, as before) on the round's connection, for up to
    /// [`BATCHES_PER_ROUND`] batches in the round's one transaction. Done one after the
    /// other, the database and NATS each waited for the other: 27k events/s to JetStream
    /// where the database alone relayed 86k/s.
    async fn pipeline(
        &mut self,
        conn: &mut Conn<'_>,
        mut rows: Vec<outbox::OutboxRow>,
        limit: i64,
    ) -> Result<(Vec<Arc<Event>>, usize), WorkerError> {
        let mut delivered: Vec<Arc<Event>> = Vec::new();
        let mut retried = 0;
        let mut unmarked: Option<(Vec<Arc<Event>>, Vec<NewJob>)> = None;
        for batch in 1..=BATCHES_PER_ROUND {
            let floor = rows.last().map_or(0, |row| row.seq);
            let more = batch < BATCHES_PER_ROUND && rows.len() as i64 >= limit;
            let previous = unmarked.take();
            let (sent, next) = tokio::join!(self.deliver(rows), async {
                if let Some((events, retries)) = &previous {
                    finish(conn, events, retries).await?;
                }
                if more {
                    Ok::<_, WorkerError>(outbox::pending_after(conn, floor, limit).await?)
                } else {
                    Ok(Vec::new())
                }
            });
            let next = next?;
            if let Some((events, retries)) = previous {
                retried += retries.len();
                delivered.extend(events);
            }
            unmarked = Some(sent?);
            if next.is_empty() {
                break;
            }
            rows = next;
        }
        if let Some((events, retries)) = unmarked {
            finish(conn, &events, &retries).await?;
            retried += retries.len();
            delivered.extend(events);
        }
        Ok((delivered, retried))
    }

    /// Steps 1–3 of a round: NATS, subscribers, live listeners. Returns the events and the
    /// retry jobs of the subscribers that failed.
    async fn deliver(
        &mut self,
        rows: Vec<outbox::OutboxRow>,
    ) -> Result<(Vec<Arc<Event>>, Vec<NewJob>), WorkerError> {
        let events: Vec<Arc<Event>> = rows
            .into_iter()
            .map(|row| Arc::new(Event::from_row(row)))
            .collect();
        if self.config.nats_url.is_some() && self.nats.is_none() {
            // Until NATS answers nothing is delivered anywhere: events wait in the outbox.
            self.nats = Some(NatsSink::connect(&self.config).await?);
            tracing::info!(target: "prefiq::relay", "connected to NATS JetStream");
        }
        // Each event's delivery is a span of the write's trace (while export is on): NATS
        // messages name it as their parent, and its subscribers run in it.
        let spans: Vec<tracing::Span> = events.iter().map(|e| event_span(e)).collect();
        if let Some(nats) = &self.nats {
            let parents: Vec<Option<String>> = spans
                .iter()
                .map(|span| prefiq::telemetry::headers_of(span).map(|(parent, _)| parent))
                .collect();
            nats.publish(&events, &parents, &self.origin).await?;
        }
        let timeout = Duration::from_millis(self.config.subscriber_timeout_ms.max(1));
        let mut retries = Vec::new();
        for (event, span) in events.iter().zip(spans) {
            for subscription in self.bus.subscribers_of(event) {
                let handler = subscription.handler.clone();
                let input = event.clone();
                let task = tokio::spawn(
                    async move { handler.handle(&input).await }.instrument(span.clone()),
                );
                let failure = match tokio::time::timeout(timeout, task).await {
                    Ok(Ok(Ok(()))) => None,
                    Ok(Ok(Err(e))) => Some(e),
                    Ok(Err(e)) => Some(format!("the subscriber panicked: {e}")),
                    Err(_) => Some(format!(
                        "the subscriber took more than {} ms",
                        timeout.as_millis()
                    )),
                };
                if let Some(error) = failure {
                    tracing::warn!(target: "prefiq::relay", subscription = %subscription.key(), event = %event.id, error = %error, "a subscriber failed; the event is retried as a job");
                    metrics::counter!("prefiq_subscriber_failures_total", "subscription" => subscription.key()).increment(1);
                    retries.push(deliver_job(&subscription.key(), event));
                }
            }
            self.bus.broadcast(event.clone());
        }
        Ok((events, retries))
    }

    /// Deletes, in every database, delivered events older than the retention.
    async fn prune(&mut self) -> Result<(), WorkerError> {
        let retention = Duration::from_millis(self.config.retention_ms);
        for (label, handle) in self.databases.all().await {
            let Some(marks) = self.delivered.get_mut(&label) else {
                continue;
            };
            let mut through = None;
            while let Some((at, seq)) = marks.front().copied() {
                if at.elapsed() < retention {
                    break;
                }
                through = Some(seq);
                marks.pop_front();
            }
            let Some(through) = through else {
                continue;
            };
            let database = handle.get()?;
            let mut tx = database.begin().await?;
            let pruned = outbox::prune(&mut tx.conn(), through).await?;
            tx.commit().await?;
            tracing::debug!(target: "prefiq::relay", database = %label, pruned, "delivered events pruned");
        }
        Ok(())
    }
}

/// Sets `prefiq_outbox_pending` and `prefiq_relay_lag_oldest_seconds` (now minus the
/// write time of the oldest undelivered event) per database.
async fn measure(databases: &Databases) -> Result<(), WorkerError> {
    let now = jiff::Timestamp::now();
    for (label, handle) in databases.all().await {
        let mut reader = handle.get()?.reader().await?;
        let (pending, oldest) = outbox::backlog(&mut reader.conn()).await?;
        let lag = oldest
            .and_then(|at| at.parse::<jiff::Timestamp>().ok())
            .map_or(0.0, |at| now.duration_since(at).as_secs_f64().max(0.0));
        metrics::gauge!("prefiq_outbox_pending", "database" => label.clone()).set(pending as f64);
        metrics::gauge!("prefiq_relay_lag_oldest_seconds", "database" => label).set(lag);
    }
    Ok(())
}

/// The span of one event's delivery to its subscribers (only while trace export is on):
/// a child of the write that left the event, so the jobs and webhooks its subscribers
/// cause join the write's trace.
fn event_span(event: &Event) -> tracing::Span {
    if !prefiq::telemetry::enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "outbox.deliver",
        otel.name = format!("outbox.deliver {}", event.name()).as_str(),
        otel.kind = "consumer",
        event.id = event.id.as_str(),
        event.seq = event.seq,
        tenant = event.tenant.as_str(),
    );
    if let Some(parent) = &event.trace_parent {
        prefiq::telemetry::set_remote_parent(&span, parent, None);
    }
    span
}

/// The job that retries `subscription` with `event`, in the event's tenant and trace.
pub fn deliver_job(subscription: &str, event: &Event) -> NewJob {
    let mut job = NewJob::new(
        DELIVER_JOB,
        &event.tenant,
        json!({"subscription": subscription, "event": event}),
    );
    job.trace_id = event.stored_trace();
    job.queue = "events".into();
    job
}

/// Step 4: marks `events` delivered and enqueues `retries`, in the caller's transaction.
async fn finish(
    conn: &mut Conn<'_>,
    events: &[Arc<Event>],
    retries: &[NewJob],
) -> Result<(), WorkerError> {
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    outbox::mark_delivered(conn, &seqs, &prefiq_data::entity::value::civil_now()).await?;
    if !retries.is_empty() {
        prefiq_data::jobs::enqueue(conn, retries).await?;
    }
    Ok(())
}

/// Settings for the rest of a PostgreSQL round's transaction, in one round trip.
///
/// - The pending rows are read through the partial index on `seq`, which gives them in
///   order: with the outbox's statistics stale (a burst after a quiet spell, a fresh
///   table), the planner estimated a few pending rows, chose a bitmap scan of all of them
///   and an external sort, and a round of 5,000 took 135 to 330 ms instead of 6 (relay
///   bench: 37k events/s in process). Scans other than the index are switched off here.
/// - The mark commits without waiting for its WAL flush: a mark lost in a crash only
///   re-sends its events (at least once, as any crash before the mark does; JetStream
///   drops the re-sends by id).
async fn relay_settings(conn: &mut Conn<'_>) -> Result<(), WorkerError> {
    conn.fetch_optional(
        &Sql::new(
            "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true), set_config('synchronous_commit', 'off', true)",
            Vec::new(),
        ),
        &[SqlType::Text; 3],
    )
    .await?;
    Ok(())
}

/// Takes the relay's advisory lock for this transaction, if no other replica holds it.
async fn try_lock(conn: &mut Conn<'_>) -> Result<bool, WorkerError> {
    let mut sql = Sql::default();
    let key = sql.arg(Arg::Int(Some(RELAY_LOCK)));
    sql.text = format!("SELECT pg_try_advisory_xact_lock({key})");
    let row = conn.fetch_optional(&sql, &[SqlType::Bool]).await?;
    Ok(row
        .and_then(|r| r.first().and_then(prefiq_data::entity::sql::Cell::as_bool))
        .unwrap_or(false))
}
