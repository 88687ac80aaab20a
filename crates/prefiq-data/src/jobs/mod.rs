//! The job queue's storage: a table in the application database (in `database` tenancy,
//! in each tenant's database too, so that a job can be enqueued in the transaction of the
//! business write that asks for it and commit or roll back with it).
//!
//! A job moves `scheduled` (its `run_at` is ahead) → `queued` → `running` (claimed, with a
//! lease) → `succeeded`, or back to `scheduled` for a retry, or `dead` once its attempts
//! are spent; `cancelled` by an operator. Claims take `queued` jobs by priority, then by
//! *fair rank*, then by id. The fair rank is how one tenant's 100,000 jobs do not starve
//! another's ten (start-time fair queueing): a job's rank is one more than the highest rank
//! its tenant already has queued in that queue, but never less than the rank of the job
//! the queue would run next, so a tenant that arrives late starts level with the queue's
//! head and its jobs interleave with the busy tenant's instead of queueing behind them.
//! Ranks are read through an index, not counted, and need no counter row that concurrent
//! enqueues would wait on.
//!
//! Unique jobs: a job with a unique key `k` and window `w` is stored with the key
//! `{kind}:{k}:{⌊run_at / w⌋}`, under a unique index, and a second one whose key falls in
//! the same window of *scheduled* time is dropped. Measured from the scheduled time, not
//! from when it was inserted, two replicas that enqueue the same cron run at different
//! moments still agree on its key (River #161 and #715 were windows measured from the
//! insert). A finished unique job is kept until its window has passed.

mod claim;
mod inspect;
mod schedules;

use serde_json::Value;

use crate::DataError;
use crate::entity::sql::{Arg, Conn, Sql, SqlType};

pub use claim::{
    ClaimedJob, Failure, claim, complete, fail, heartbeat, promote_due, prune, release,
    rescue_expired,
};
pub use inspect::{
    JobQuery, JobRow, QueueStats, STATES, cancel, get, list, list_where, queue_stats,
    queue_stats_of, retry,
};
pub use schedules::{advance_schedule, last_due};

/// The most jobs one enqueue, claim or completion statement carries.
pub const MAX_BATCH: usize = 1_000;

/// The default number of attempts before a job is dead.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 25;

/// The default time a handler may run before it is cancelled.
pub const DEFAULT_TIMEOUT_MS: i64 = 60_000;

/// The migration of the queue's table and its indexes (one per access path: the claim,
/// the fair rank of a tenant, due scheduled jobs, expired leases, pruning).
pub(crate) fn migration() -> prefiq::Migration {
    prefiq::Migration::per_backend(
        "0007_jobs",
        concat!(
            "CREATE TABLE prefiq_jobs (\n    id INTEGER PRIMARY KEY,\n",
            jobs_columns!("INTEGER"),
            jobs_indexes!()
        ),
        concat!(
            "CREATE TABLE prefiq_jobs (\n    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n",
            jobs_columns!("BIGINT"),
            jobs_indexes!(),
            // Every job leaves dead index entries as it moves from state to state; with the
            // default thresholds a burst of 100,000 jobs left 211,000 of them until
            // autovacuum came, and each enqueue's rank read took 4 ms instead of 0.06.
            "\nALTER TABLE prefiq_jobs SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0.02);"
        ),
    )
}

/// The queue table's columns after `id`, with integers of type `$int`.
macro_rules! jobs_columns {
    ($int:literal) => {
        concat!(
            "    queue TEXT NOT NULL,\n    kind TEXT NOT NULL,\n    tenant_id TEXT NOT NULL,\n    user_id TEXT,\n    trace_id TEXT NOT NULL,\n    payload TEXT NOT NULL,\n",
            "    priority ", $int, " NOT NULL,\n    fair_rank ", $int, " NOT NULL,\n    state TEXT NOT NULL,\n    run_at ", $int, " NOT NULL,\n",
            "    attempts ", $int, " NOT NULL DEFAULT 0,\n    max_attempts ", $int, " NOT NULL,\n    timeout_ms ", $int, " NOT NULL,\n",
            "    unique_key TEXT UNIQUE,\n    unique_until ", $int, ",\n    locked_by TEXT,\n    locked_until ", $int, ",\n    last_error TEXT,\n",
            "    created_at ", $int, " NOT NULL,\n    finished_at ", $int, "\n);\n"
        )
    };
}
use jobs_columns;

/// The queue's indexes (one per access path), and the schedules' last due times.
macro_rules! jobs_indexes {
    () => {
        concat!(
            "CREATE INDEX prefiq_jobs_ready ON prefiq_jobs (queue, priority, fair_rank, id) WHERE state = 'queued';\n",
            "CREATE INDEX prefiq_jobs_tenant_rank ON prefiq_jobs (queue, tenant_id, fair_rank) WHERE state = 'queued';\n",
            "CREATE INDEX prefiq_jobs_due ON prefiq_jobs (run_at) WHERE state = 'scheduled';\n",
            "CREATE INDEX prefiq_jobs_leases ON prefiq_jobs (locked_until) WHERE state = 'running';\n",
            "CREATE INDEX prefiq_jobs_finished ON prefiq_jobs (finished_at) WHERE state IN ('succeeded', 'cancelled');\n",
            "CREATE TABLE prefiq_job_schedules (\n    name TEXT PRIMARY KEY,\n    last_due_ms BIGINT NOT NULL\n);"
        )
    };
}
use jobs_indexes;

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The queue (`default` unless a module names one).
    pub queue: String,
    /// The handler's name, such as `events.deliver`.
    pub kind: String,
    /// The tenant it runs for (`""` for a platform job).
    pub tenant: String,
    /// The user it acts for.
    pub user: Option<String>,
    /// The trace it continues: a trace id, or a whole `traceparent` (see
    /// [`prefiq::telemetry::stored_trace`]).
    pub trace_id: String,
    /// The handler's input.
    pub payload: Value,
    /// Lower runs first.
    pub priority: i64,
    /// When it may run (unix milliseconds); `None` is now.
    pub run_at_ms: Option<i64>,
    /// Attempts before it is dead.
    pub max_attempts: i64,
    /// How long one attempt may run.
    pub timeout_ms: i64,
    /// Unique by this key within a window (milliseconds) of scheduled time.
    pub unique: Option<(String, i64)>,
}

impl NewJob {
    /// A job of `kind` for `tenant` with `payload`, on the default queue, to run now, with
    /// the default attempts and timeout.
    pub fn new(kind: &str, tenant: &str, payload: Value) -> NewJob {
        NewJob {
            queue: "default".into(),
            kind: kind.into(),
            tenant: tenant.into(),
            user: None,
            // The current span's `traceparent` (the job runs as its child) when trace
            // export is on, else a trace of its own.
            trace_id: prefiq::telemetry::current_headers().map_or_else(
                || prefiq::TraceId::generate().to_string(),
                |(parent, _)| parent,
            ),
            payload,
            priority: 0,
            run_at_ms: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            unique: None,
        }
    }
}

/// The current time in unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A job that cannot be stored as given.
fn invalid(message: impl Into<String>) -> DataError {
    DataError::Batch(message.into().into())
}

/// The unique key a job is stored with, and until when it holds (the end of its window).
fn unique_key(job: &NewJob, run_at: i64) -> Result<Option<(String, i64)>, DataError> {
    let Some((key, window)) = &job.unique else {
        return Ok(None);
    };
    if *window <= 0 {
        return Err(invalid("a unique job's window must be at least 1 ms"));
    }
    let bucket = run_at.div_euclid(*window);
    Ok(Some((
        format!("{}:{}:{key}:{bucket}", job.tenant, job.kind),
        bucket.saturating_add(1).saturating_mul(*window),
    )))
}

/// Enqueues `jobs` on `conn`, in the caller's transaction if it is in one (a business
/// write's, so the jobs commit or roll back with it). A unique job whose key is taken in
/// its window is dropped. Returns the ids given, `None` for each dropped job, in order.
pub async fn enqueue(conn: &mut Conn<'_>, jobs: &[NewJob]) -> Result<Vec<Option<i64>>, DataError> {
    let now = now_ms();
    let mut ids = Vec::with_capacity(jobs.len());
    // The next rank of each (queue, tenant) this call touches.
    let mut ranks: std::collections::HashMap<(&str, &str), i64> = Default::default();
    for chunk in jobs.chunks(MAX_BATCH) {
        for job in chunk {
            if let std::collections::hash_map::Entry::Vacant(entry) =
                ranks.entry((job.queue.as_str(), job.tenant.as_str()))
            {
                entry.insert(next_rank(conn, &job.queue, &job.tenant).await?);
            }
        }
        let mut sql = Sql::default();
        let mut rows = Vec::with_capacity(chunk.len());
        for job in chunk {
            if job.queue.is_empty() || job.kind.is_empty() {
                return Err(invalid("a job needs a queue and a kind"));
            }
            let run_at = job.run_at_ms.unwrap_or(now);
            let rank = ranks
                .get_mut(&(job.queue.as_str(), job.tenant.as_str()))
                .map(|r| {
                    *r += 1;
                    *r - 1
                })
                .unwrap_or_default();
            let unique = unique_key(job, run_at)?;
            let state = if run_at > now { "scheduled" } else { "queued" };
            let values = [
                sql.arg(Arg::Text(Some(job.queue.clone()))),
                sql.arg(Arg::Text(Some(job.kind.clone()))),
                sql.arg(Arg::Text(Some(job.tenant.clone()))),
                sql.arg(Arg::Text(job.user.clone())),
                sql.arg(Arg::Text(Some(job.trace_id.clone()))),
                sql.arg(Arg::Text(Some(job.payload.to_string()))),
                sql.arg(Arg::Int(Some(job.priority))),
                sql.arg(Arg::Int(Some(rank))),
                sql.arg(Arg::Text(Some(state.into()))),
                sql.arg(Arg::Int(Some(run_at))),
                sql.arg(Arg::Int(Some(job.max_attempts.max(1)))),
                sql.arg(Arg::Int(Some(job.timeout_ms.max(1)))),
                sql.arg(Arg::Text(unique.as_ref().map(|(k, _)| k.clone()))),
                sql.arg(Arg::Int(unique.as_ref().map(|(_, until)| *until))),
                sql.arg(Arg::Int(Some(now))),
            ];
            rows.push(format!("({})", values.join(",")));
        }
        sql.text = format!(
            "INSERT INTO prefiq_jobs (queue, kind, tenant_id, user_id, trace_id, payload, priority, fair_rank, state, run_at, max_attempts, timeout_ms, unique_key, unique_until, created_at) VALUES {} ON CONFLICT (unique_key) DO NOTHING RETURNING id, unique_key",
            rows.join(",")
        );
        let inserted = conn
            .fetch_bulk(&sql, &[SqlType::Int, SqlType::Text])
            .await?;
        // RETURNING gives the inserted rows only; a dropped unique job is matched by key.
        let mut by_key: std::collections::HashMap<String, i64> = Default::default();
        let mut plain = Vec::new();
        for row in inserted {
            let mut cells = row.into_iter();
            let id = cells.next().and_then(|c| c.as_int()).unwrap_or_default();
            match cells.next().and_then(crate::entity::sql::Cell::into_text) {
                Some(key) => {
                    by_key.insert(key, id);
                }
                None => plain.push(id),
            }
        }
        plain.sort_unstable();
        let mut plain = plain.into_iter();
        for job in chunk {
            let run_at = job.run_at_ms.unwrap_or(now);
            ids.push(match unique_key(job, run_at)? {
                Some((key, _)) => by_key.remove(&key),
                None => plain.next(),
            });
        }
    }
    Ok(ids)
}

/// The rank the next job of `tenant` in `queue` gets: one past the tenant's highest
/// queued rank, and no less than the rank of the job the queue runs next.
async fn next_rank(conn: &mut Conn<'_>, queue: &str, tenant: &str) -> Result<i64, DataError> {
    let mut sql = Sql::default();
    let q = sql.arg(Arg::Text(Some(queue.to_owned())));
    let t = sql.arg(Arg::Text(Some(tenant.to_owned())));
    sql.text = format!(
        "SELECT (SELECT max(fair_rank) + 1 FROM prefiq_jobs WHERE state = 'queued' AND queue = {q} AND tenant_id = {t}), (SELECT fair_rank FROM prefiq_jobs WHERE state = 'queued' AND queue = {q} ORDER BY priority, fair_rank, id LIMIT 1)"
    );
    let row = conn
        .fetch_optional(&sql, &[SqlType::Int, SqlType::Int])
        .await?
        .unwrap_or_default();
    Ok(row
        .iter()
        .filter_map(crate::entity::sql::Cell::as_int)
        .max()
        .unwrap_or(0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unique_keys_follow_windows_of_scheduled_time() {
        let mut job = NewJob::new("report", "acme", Value::Null);
        job.unique = Some(("daily".into(), 1_000));
        let check = |run_at: i64, expected: &str, until: i64| {
            assert_eq!(
                unique_key(&job, run_at).unwrap(),
                Some((expected.to_owned(), until))
            );
        };
        check(0, "acme:report:daily:0", 1_000);
        check(999, "acme:report:daily:0", 1_000);
        check(1_000, "acme:report:daily:1", 2_000);
        check(-1, "acme:report:daily:-1", 0);
        job.unique = Some(("daily".into(), 0));
        assert!(unique_key(&job, 5).is_err());
    }
}
