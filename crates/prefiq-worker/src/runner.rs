//! The job runner: claims jobs from every database's queue and runs them.
//!
//! - Each configured queue has a concurrency limit in this process (a semaphore); the
//!   runner claims at most as many jobs as it has free places, in batches.
//! - A job runs in a task of its own under its timeout: an error, a panic (the task
//!   dies, the runner does not) or the timeout (the task is aborted) is a failed attempt,
//!   retried after `jobs.backoff_ms` doubled per attempt with jitter, then dead.
//! - Outcomes are written in batches by one finisher task, so a thousand short jobs cost a
//!   few transactions, not a thousand.
//! - Claimed jobs are leased for `jobs.lease_ms`, and a heartbeat extends the leases of
//!   the jobs still running every third of it. A job whose worker was killed is queued
//!   again once its lease runs out (`rescue_expired`, run by every runner each second).
//! - On shutdown the runner claims nothing more, lets running jobs finish within the drain
//!   time, and gives back (`release`) those that did not.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tracing::Instrument;

use prefiq_data::jobs::{self, ClaimedJob, Failure};
use prefiq_data::{DataError, DatabaseHandle};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::config::JobsConfig;
use crate::databases::Databases;
use crate::handlers::{JobHandlers, JobInput};

/// Most finished jobs waiting to be recorded; a full buffer makes jobs wait to report.
const FINISHED_BUFFER: usize = 10_000;

/// How often due jobs are promoted and expired leases rescued.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(1);

/// How often finished jobs past the retention are pruned and queue metrics refreshed.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// One job's outcome, for the finisher.
struct Finished {
    label: String,
    handle: Arc<DatabaseHandle>,
    id: i64,
    failure: Option<Failure>,
}

/// One database's finished jobs: the succeeded ids and the failures.
type Outcomes = (Arc<DatabaseHandle>, Vec<i64>, Vec<Failure>);

/// Claimed jobs waiting for a free place, per (database, queue).
type Buffers = HashMap<(String, String), std::collections::VecDeque<ClaimedJob>>;

/// Jobs this process holds, per database.
type Held = Arc<Mutex<HashMap<String, (Arc<DatabaseHandle>, HashSet<i64>)>>>;

/// The job runner of one process.
pub struct Runner {
    databases: Databases,
    handlers: Arc<JobHandlers>,
    config: JobsConfig,
    worker: String,
    drain: Duration,
    queues: Vec<(String, Arc<Semaphore>)>,
    held: Held,
    /// Jobs finished since the queue table was last vacuumed (PostgreSQL).
    finished_since_vacuum: Arc<std::sync::atomic::AtomicU64>,
}

/// On PostgreSQL the queue table is vacuumed once this many jobs finished since the last
/// time: every job leaves dead entries in the claim index as it changes state, and until
/// they go, each claim walks them (autovacuum looks only once a minute). Right after a
/// burst of 100,000 jobs, enqueue-to-start at 1,000 jobs/s had a p99 of 160 ms.
const VACUUM_AFTER_JOBS: u64 = 20_000;

impl Runner {
    /// A runner over `databases` for the queues `config` names (or `only`, when given),
    /// letting running jobs finish within `drain` at shutdown.
    pub fn new(
        databases: Databases,
        handlers: Arc<JobHandlers>,
        config: JobsConfig,
        only: Option<&[String]>,
        drain: Duration,
    ) -> Runner {
        let queues = config
            .queues
            .iter()
            .filter(|(name, _)| only.is_none_or(|only| only.contains(name)))
            .map(|(name, queue)| {
                (
                    name.clone(),
                    Arc::new(Semaphore::new(queue.concurrency.clamp(1, 10_000))),
                )
            })
            .collect();
        Runner {
            databases,
            handlers,
            config,
            worker: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
            drain,
            queues,
            held: Arc::default(),
            finished_since_vacuum: Arc::default(),
        }
    }

    /// This runner's name in the queue's `locked_by`.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Runs jobs until `stop` says so, then drains. `wake` changes after commits in this
    /// process (jobs enqueued in a write's transaction), `enqueued` after enqueues through
    /// the jobs service; without either it looks every `jobs.poll_ms`.
    pub async fn run(
        self,
        mut wake: watch::Receiver<u64>,
        enqueued: Arc<tokio::sync::Notify>,
        mut stop: watch::Receiver<bool>,
    ) {
        self.databases.open_existing().await;
        let (finished, outcomes) = mpsc::channel(FINISHED_BUFFER);
        let finisher = tokio::spawn(finish_loop(
            self.worker.clone(),
            outcomes,
            self.held.clone(),
            self.finished_since_vacuum.clone(),
        ));
        let heartbeat = tokio::spawn(heartbeat_loop(
            self.worker.clone(),
            self.held.clone(),
            self.config.lease_ms,
        ));
        let mut tasks = tokio::task::JoinSet::new();
        // Claimed jobs not started yet, per (database, queue); held (heartbeated) like the
        // running ones, and given back with them at shutdown.
        let mut buffers = Buffers::new();
        let poll = Duration::from_millis(self.config.poll_ms.max(1));
        let mut last_maintenance: Option<Instant> = None;
        let mut last_prune = Instant::now();
        loop {
            if *stop.borrow() {
                break;
            }
            if last_maintenance.is_none_or(|at| at.elapsed() >= MAINTENANCE_EVERY) {
                last_maintenance = Some(Instant::now());
                let prune = last_prune.elapsed() >= PRUNE_EVERY;
                if prune {
                    last_prune = Instant::now();
                }
                self.maintain(prune).await;
            }
            let started = self.claim_round(&mut tasks, &finished, &mut buffers).await;
            while tasks.try_join_next().is_some() {}
            if started > 0 {
                continue;
            }
            tokio::select! {
                _ = wake.changed() => {}
                _ = enqueued.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        // Drain: no more claims; running jobs get the drain time.
        let deadline = tokio::time::sleep(self.drain);
        tokio::pin!(deadline);
        while !tasks.is_empty() {
            tokio::select! {
                _ = tasks.join_next() => {}
                _ = &mut deadline => break,
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        drop(finished);
        let _ = finisher.await;
        heartbeat.abort();
        self.release_held().await;
    }

    /// Starts buffered jobs where a queue has free places, and refills a queue's buffer
    /// from its database when what it holds would not cover the free places and a reserve
    /// of half its concurrency: one claim fetches up to `jobs.claim_batch` jobs, instead of
    /// one claim (and one commit) per freed place. Returns how many jobs started.
    async fn claim_round(
        &self,
        tasks: &mut tokio::task::JoinSet<()>,
        finished: &mpsc::Sender<Finished>,
        buffers: &mut Buffers,
    ) -> usize {
        let databases = self.databases.all().await;
        let share = (self.config.claim_batch.max(1) as usize / databases.len().max(1)).max(1);
        let mut started = 0;
        for (label, handle) in &databases {
            for (queue, places) in &self.queues {
                let buffer = buffers.entry((label.clone(), queue.clone())).or_default();
                let free = places.available_permits();
                let reserve = self
                    .config
                    .queues
                    .get(queue)
                    .map_or(1, |q| q.concurrency / 2);
                if free > 0 && buffer.len() < free + reserve {
                    let want = share
                        .max(free + reserve)
                        .saturating_sub(buffer.len())
                        .max(1);
                    match self.claim(handle, queue, want as i64).await {
                        Ok(jobs) => {
                            for job in jobs {
                                self.hold(label, handle, job.id);
                                buffer.push_back(job);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(target: "prefiq::jobs", database = %label, queue = %queue, error = %e, "jobs could not be claimed");
                        }
                    }
                }
                while !buffer.is_empty() {
                    let Ok(permit) = places.clone().try_acquire_owned() else {
                        break;
                    };
                    let Some(job) = buffer.pop_front() else {
                        break;
                    };
                    started += 1;
                    let handlers = self.handlers.clone();
                    let finished = finished.clone();
                    let (label, handle) = (label.clone(), handle.clone());
                    let config = self.config.clone();
                    tasks.spawn(async move {
                        let failure = execute(&handlers, &config, &job).await;
                        let _ = finished
                            .send(Finished {
                                label,
                                handle,
                                id: job.id,
                                failure,
                            })
                            .await;
                        drop(permit);
                    });
                }
            }
        }
        started
    }

    async fn claim(
        &self,
        handle: &DatabaseHandle,
        queue: &str,
        limit: i64,
    ) -> Result<Vec<ClaimedJob>, DataError> {
        let database = handle.get()?;
        let mut tx = database.begin().await?;
        relaxed_commit(&mut tx.conn()).await?;
        let jobs = jobs::claim(
            &mut tx.conn(),
            queue,
            &self.worker,
            limit,
            self.config.lease_ms,
        )
        .await?;
        tx.commit().await?;
        Ok(jobs)
    }

    fn hold(&self, label: &str, handle: &Arc<DatabaseHandle>, id: i64) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.entry(label.to_owned())
            .or_insert_with(|| (handle.clone(), HashSet::new()))
            .1
            .insert(id);
    }

    /// Promotes due jobs and rescues expired leases in every database; with `prune`, also
    /// deletes finished jobs past the retention and refreshes the queue metrics.
    async fn maintain(&self, prune: bool) {
        if self
            .finished_since_vacuum
            .load(std::sync::atomic::Ordering::Relaxed)
            >= VACUUM_AFTER_JOBS
        {
            self.finished_since_vacuum
                .store(0, std::sync::atomic::Ordering::Relaxed);
            self.vacuum().await;
        }
        for (label, handle) in self.databases.all().await {
            let result: Result<(), DataError> = async {
                let database = handle.get()?;
                let mut tx = database.begin().await?;
                let mut conn = tx.conn();
                jobs::promote_due(&mut conn).await?;
                let rescued = jobs::rescue_expired(&mut conn).await?;
                if prune {
                    jobs::prune(&mut conn, jobs::now_ms() - self.config.retention_ms).await?;
                }
                tx.commit().await?;
                if rescued > 0 {
                    tracing::warn!(target: "prefiq::jobs", database = %label, rescued, "jobs whose worker stopped run again");
                    metrics::counter!("prefiq_jobs_rescued_total").increment(rescued);
                }
                if prune {
                    let mut reader = database.reader().await?;
                    for stats in jobs::queue_stats(&mut reader.conn()).await? {
                        for (state, count) in &stats.states {
                            metrics::gauge!("prefiq_jobs_in_state", "database" => label.clone(), "queue" => stats.queue.clone(), "state" => state.clone()).set(*count as f64);
                        }
                        let age = stats
                            .oldest_queued_ms
                            .map_or(0.0, |at| (jobs::now_ms() - at).max(0) as f64 / 1_000.0);
                        metrics::gauge!("prefiq_jobs_oldest_queued_age_seconds", "database" => label.clone(), "queue" => stats.queue.clone()).set(age);
                    }
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(target: "prefiq::jobs", database = %label, error = %e, "the queue's upkeep failed");
            }
        }
    }

    /// Vacuums the queue table of every PostgreSQL database (outside a transaction, as
    /// VACUUM must be); SQLite reuses its free pages by itself.
    async fn vacuum(&self) {
        for (label, handle) in self.databases.all().await {
            let Ok(database) = handle.get() else {
                continue;
            };
            if database.backend() != prefiq::Backend::Postgres {
                continue;
            }
            let started = Instant::now();
            let result: Result<(), DataError> = async {
                let mut writing = database.writer().await?;
                writing
                    .conn()
                    .execute(&prefiq_data::entity::sql::Sql::new(
                        "VACUUM (ANALYZE) prefiq_jobs",
                        Vec::new(),
                    ))
                    .await?;
                Ok(())
            }
            .await;
            match result {
                Ok(()) => {
                    tracing::debug!(target: "prefiq::jobs", database = %label, ms = started.elapsed().as_millis() as u64, "the queue table was vacuumed")
                }
                Err(e) => {
                    tracing::warn!(target: "prefiq::jobs", database = %label, error = %e, "the queue table could not be vacuumed")
                }
            }
        }
    }

    /// Gives back every job still held (after the drain time ran out).
    async fn release_held(&self) {
        let held: Vec<(String, Arc<DatabaseHandle>, Vec<i64>)> = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .filter(|(_, (_, ids))| !ids.is_empty())
            .map(|(label, (handle, ids))| (label, handle, ids.into_iter().collect()))
            .collect();
        for (label, handle, ids) in held {
            let result: Result<u64, DataError> = async {
                let database = handle.get()?;
                let mut tx = database.begin().await?;
                let released = jobs::release(&mut tx.conn(), &self.worker, &ids).await?;
                tx.commit().await?;
                Ok(released)
            }
            .await;
            match result {
                Ok(released) => {
                    tracing::info!(target: "prefiq::jobs", database = %label, released, "jobs still running at shutdown were given back")
                }
                Err(e) => {
                    tracing::warn!(target: "prefiq::jobs", database = %label, error = %e, "jobs could not be given back; they run again when their lease runs out")
                }
            }
        }
    }
}

/// On PostgreSQL, lets the transaction commit without waiting for its WAL flush. For
/// claims and heartbeats only: a claim lost in a crash leaves its job queued (it runs
/// later, at least once as always), a lost heartbeat only shortens a lease, and the
/// outcome written after them flushes their WAL with its own. It took a claim from one
/// flush per claim to none (1.7k → 2.6k jobs/s at concurrency 10 in the jobs benchmark).
async fn relaxed_commit(conn: &mut prefiq_data::entity::sql::Conn<'_>) -> Result<(), DataError> {
    if conn.backend() == prefiq::Backend::Postgres {
        conn.execute(&prefiq_data::entity::sql::Sql::new(
            "SET LOCAL synchronous_commit = off",
            Vec::new(),
        ))
        .await?;
    }
    Ok(())
}

/// Runs one attempt of `job`; `None` when it succeeded, else what to record.
async fn execute(handlers: &JobHandlers, config: &JobsConfig, job: &ClaimedJob) -> Option<Failure> {
    let started = Instant::now();
    let error = match handlers.get(&job.kind) {
        None => Some(format!(
            "no handler runs jobs of kind `{}` in this process",
            job.kind
        )),
        Some(handler) => match principal_of(handlers, job).await {
            Err(refused) => Some(refused),
            Ok(principal) => {
                let handler = handler.clone();
                let mut input = input_of(job);
                input.context.principal = principal;
                let span = job_span(job);
                let mut task =
                    tokio::spawn(async move { handler.run(&input).await }.instrument(span.clone()));
                let timeout =
                    Duration::from_millis(u64::try_from(job.timeout_ms.max(1)).unwrap_or(u64::MAX));
                match tokio::time::timeout(timeout, &mut task).await {
                    Ok(Ok(Ok(()))) => None,
                    Ok(Ok(Err(e))) => Some(e),
                    Ok(Err(e)) if e.is_panic() => {
                        Some(format!("the handler panicked: {}", panic_message(e)))
                    }
                    Ok(Err(e)) => Some(format!("the handler stopped: {e}")),
                    Err(_) => {
                        task.abort();
                        Some(format!(
                            "the handler ran past its timeout of {} ms and was cancelled",
                            job.timeout_ms
                        ))
                    }
                }
            }
        },
    };
    let outcome = match (&error, job.attempt >= job.max_attempts) {
        (None, _) => "succeeded",
        (Some(_), false) => "retried",
        (Some(_), true) => "dead",
    };
    metrics::counter!("prefiq_jobs_total", "queue" => job.queue.clone(), "kind" => job.kind.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!("prefiq_job_duration_seconds", "queue" => job.queue.clone(), "kind" => job.kind.clone()).record(started.elapsed().as_secs_f64());
    let error = error?;
    tracing::warn!(target: "prefiq::jobs", job = job.id, kind = %job.kind, attempt = job.attempt, outcome, error = %error, "a job attempt failed");
    let retry_at_ms = (job.attempt < job.max_attempts)
        .then(|| jobs::now_ms() + config.backoff(job.attempt, rand::random::<f64>()));
    Some(Failure {
        id: job.id,
        error,
        retry_at_ms,
    })
}

fn panic_message(error: tokio::task::JoinError) -> String {
    let payload = error.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// The principal of the user `job` acts for, read now; `None` for a job of the system (no
/// user). A user who is no longer active, or an installation that cannot tell, is a
/// failed attempt: the job never runs with rights nobody holds.
async fn principal_of(
    handlers: &JobHandlers,
    job: &ClaimedJob,
) -> Result<Option<Arc<prefiq::Principal>>, String> {
    let Some(user) = &job.user else {
        return Ok(None);
    };
    let Some(principals) = handlers.principals() else {
        return Err(format!(
            "the job acts for user `{user}`, and this installation cannot tell who that is"
        ));
    };
    match principals.principal_of(&job.tenant, user).await {
        Ok(Some(principal)) => Ok(Some(Arc::new(principal))),
        Ok(None) => Err(format!(
            "the job acts for user `{user}`, who is not an active user of tenant `{}`",
            job.tenant
        )),
        Err(e) => Err(format!(
            "the principal of user `{user}` could not be read: {e}"
        )),
    }
}

/// The span of one attempt (only while trace export is on): a child of the span that
/// enqueued the job, when the job stored its `traceparent`.
fn job_span(job: &ClaimedJob) -> tracing::Span {
    if !prefiq::telemetry::enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "job",
        otel.name = format!("job {}", job.kind).as_str(),
        otel.kind = "consumer",
        job.id = job.id,
        job.kind = job.kind.as_str(),
        job.queue = job.queue.as_str(),
        job.attempt = job.attempt,
        tenant = job.tenant.as_str(),
    );
    if let Some(parent) = prefiq::telemetry::traceparent_of_stored(&job.trace_id) {
        prefiq::telemetry::set_remote_parent(&span, parent, None);
    }
    span
}

/// What the handler gets: the job's context and input.
fn input_of(job: &ClaimedJob) -> JobInput {
    let mut context = prefiq::Context::system("en");
    if !job.tenant.is_empty() {
        context = context.with_tenant(job.tenant.clone());
    }
    if let Some(user) = &job.user {
        context = context.with_user(user.clone());
    }
    if let Some(trace) = prefiq::telemetry::trace_id_of_stored(&job.trace_id) {
        context.trace_id = trace;
    }
    JobInput {
        id: job.id,
        kind: job.kind.clone(),
        context,
        payload: job.payload.clone(),
        attempt: job.attempt,
        max_attempts: job.max_attempts,
    }
}

/// Records outcomes in batches: whatever has arrived, up to 1,000, per transaction.
async fn finish_loop(
    worker: String,
    mut outcomes: mpsc::Receiver<Finished>,
    held: Held,
    finished: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut batch = Vec::with_capacity(1_000);
    while outcomes.recv_many(&mut batch, 1_000).await > 0 {
        finished.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut by_database: HashMap<String, Outcomes> = HashMap::new();
        for finished in batch.drain(..) {
            let entry = by_database
                .entry(finished.label)
                .or_insert_with(|| (finished.handle, Vec::new(), Vec::new()));
            match finished.failure {
                None => entry.1.push(finished.id),
                Some(failure) => entry.2.push(failure),
            }
        }
        for (label, (handle, done, failed)) in by_database {
            let mut attempt = 0;
            loop {
                let result: Result<(), DataError> = async {
                    let database = handle.get()?;
                    let mut tx = database.begin().await?;
                    jobs::complete(&mut tx.conn(), &worker, &done).await?;
                    jobs::fail(&mut tx.conn(), &worker, &failed).await?;
                    tx.commit().await
                }
                .await;
                match result {
                    Ok(()) => break,
                    Err(e) if attempt < 5 => {
                        attempt += 1;
                        tracing::warn!(target: "prefiq::jobs", database = %label, error = %e, "job outcomes could not be recorded; trying again");
                        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    }
                    Err(e) => {
                        tracing::error!(target: "prefiq::jobs", database = %label, error = %e, jobs = done.len() + failed.len(), "job outcomes were not recorded; those jobs run again when their lease runs out");
                        break;
                    }
                }
            }
            let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, ids)) = held.get_mut(&label) {
                for id in done.iter().chain(failed.iter().map(|f| &f.id)) {
                    ids.remove(id);
                }
            }
        }
    }
}

/// Extends the leases of held jobs every third of the lease.
async fn heartbeat_loop(worker: String, held: Held, lease_ms: i64) {
    let every = Duration::from_millis(u64::try_from((lease_ms / 3).max(1)).unwrap_or(1));
    loop {
        tokio::time::sleep(every).await;
        let snapshot: Vec<(String, Arc<DatabaseHandle>, Vec<i64>)> = held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, (_, ids))| !ids.is_empty())
            .map(|(label, (handle, ids))| {
                (label.clone(), handle.clone(), ids.iter().copied().collect())
            })
            .collect();
        for (label, handle, ids) in snapshot {
            let result: Result<u64, DataError> = async {
                let database = handle.get()?;
                let mut tx = database.begin().await?;
                relaxed_commit(&mut tx.conn()).await?;
                let extended = jobs::heartbeat(&mut tx.conn(), &worker, &ids, lease_ms).await?;
                tx.commit().await?;
                Ok(extended)
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(target: "prefiq::jobs", database = %label, error = %e, "leases could not be extended");
            }
        }
    }
}
