//! What a worker does to the queue: claim jobs under a lease, keep the lease alive, finish
//! them, and put back what a stopped worker held.

use serde_json::Value;

use super::{MAX_BATCH, now_ms};
use crate::DataError;
use crate::entity::sql::{Arg, Cell, Conn, Sql, SqlType};

/// A job a worker holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    /// Its id (in its database).
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// The handler's name.
    pub kind: String,
    /// The tenant it runs for (`""` for a platform job).
    pub tenant: String,
    /// The user it acts for.
    pub user: Option<String>,
    /// The trace it continues.
    pub trace_id: String,
    /// The handler's input.
    pub payload: Value,
    /// This attempt's number, from 1.
    pub attempt: i64,
    /// Attempts before it is dead.
    pub max_attempts: i64,
    /// How long this attempt may run.
    pub timeout_ms: i64,
    /// When it was due (unix ms).
    pub run_at_ms: i64,
    priority: i64,
    fair_rank: i64,
}

/// The columns a claim returns, in [`ClaimedJob`]'s order.
const CLAIMED: &str = "id, queue, kind, tenant_id, user_id, trace_id, payload, attempts, max_attempts, timeout_ms, run_at, priority, fair_rank";

const CLAIMED_TYPES: &[SqlType] = &[
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
];

fn claimed(row: Vec<Cell>) -> ClaimedJob {
    let mut cells = row.into_iter();
    let int = |cells: &mut std::vec::IntoIter<Cell>| {
        cells.next().and_then(|c| c.as_int()).unwrap_or_default()
    };
    let id = int(&mut cells);
    let text = |cells: &mut std::vec::IntoIter<Cell>| cells.next().and_then(Cell::into_text);
    let queue = text(&mut cells).unwrap_or_default();
    let kind = text(&mut cells).unwrap_or_default();
    let tenant = text(&mut cells).unwrap_or_default();
    let user = text(&mut cells);
    let trace_id = text(&mut cells).unwrap_or_default();
    let payload = text(&mut cells)
        .and_then(|p| serde_json::from_str(&p).ok())
        .unwrap_or(Value::Null);
    ClaimedJob {
        id,
        queue,
        kind,
        tenant,
        user,
        trace_id,
        payload,
        attempt: int(&mut cells),
        max_attempts: int(&mut cells),
        timeout_ms: int(&mut cells),
        run_at_ms: int(&mut cells),
        priority: int(&mut cells),
        fair_rank: int(&mut cells),
    }
}

/// Claims up to `limit` queued jobs of `queue` for worker `worker`, leased until
/// `lease_ms` from now, in the order they are to run (priority, fair rank, id). On
/// PostgreSQL, rows another worker is claiming are skipped (`SKIP LOCKED`), so replicas
/// never claim the same job; SQLite's one writer serialises claims.
pub async fn claim(
    conn: &mut Conn<'_>,
    queue: &str,
    worker: &str,
    limit: i64,
    lease_ms: i64,
) -> Result<Vec<ClaimedJob>, DataError> {
    let mut sql = Sql::default();
    let who = sql.arg(Arg::Text(Some(worker.to_owned())));
    let until = sql.arg(Arg::Int(Some(now_ms().saturating_add(lease_ms))));
    let q = sql.arg(Arg::Text(Some(queue.to_owned())));
    let limit = sql.arg(Arg::Int(Some(limit.clamp(1, MAX_BATCH as i64))));
    let lock = match conn.backend() {
        prefiq::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        prefiq::Backend::Sqlite => "",
    };
    sql.text = format!(
        "UPDATE prefiq_jobs SET state = 'running', attempts = attempts + 1, locked_by = {who}, locked_until = {until} WHERE id IN (SELECT id FROM prefiq_jobs WHERE state = 'queued' AND queue = {q} ORDER BY priority, fair_rank, id LIMIT {limit}{lock}) RETURNING {CLAIMED}"
    );
    let mut jobs: Vec<ClaimedJob> = conn
        .fetch(&sql, CLAIMED_TYPES)
        .await?
        .into_iter()
        .map(claimed)
        .collect();
    jobs.sort_by_key(|j| (j.priority, j.fair_rank, j.id));
    Ok(jobs)
}

/// Moves scheduled jobs whose time has come to `queued` (at most [`MAX_BATCH`] a call);
/// returns how many.
pub async fn promote_due(conn: &mut Conn<'_>) -> Result<u64, DataError> {
    let mut sql = Sql::default();
    let now = sql.arg(Arg::Int(Some(now_ms())));
    sql.text = format!(
        "UPDATE prefiq_jobs SET state = 'queued' WHERE id IN (SELECT id FROM prefiq_jobs WHERE state = 'scheduled' AND run_at <= {now} ORDER BY run_at LIMIT {MAX_BATCH})"
    );
    conn.execute(&sql).await
}

/// `id IN (…)` for ids the caller holds: integers written into the text.
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// Marks `ids` (held by `worker`) succeeded; returns how many were still held.
pub async fn complete(conn: &mut Conn<'_>, worker: &str, ids: &[i64]) -> Result<u64, DataError> {
    let mut done = 0;
    for chunk in ids.chunks(MAX_BATCH) {
        let mut sql = Sql::default();
        let now = sql.arg(Arg::Int(Some(now_ms())));
        let who = sql.arg(Arg::Text(Some(worker.to_owned())));
        sql.text = format!(
            "UPDATE prefiq_jobs SET state = 'succeeded', finished_at = {now}, locked_by = NULL, locked_until = NULL, last_error = NULL WHERE id IN ({}) AND state = 'running' AND locked_by = {who}",
            id_list(chunk)
        );
        done += conn.execute(&sql).await?;
    }
    Ok(done)
}

/// What became of a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The job.
    pub id: i64,
    /// What went wrong.
    pub error: String,
    /// When to try again (unix ms); `None` when the job is dead.
    pub retry_at_ms: Option<i64>,
}

/// Records failed attempts of jobs `worker` holds: each goes back to `scheduled` for its
/// retry, or to `dead`, kept for inspection. Returns how many were still held.
pub async fn fail(
    conn: &mut Conn<'_>,
    worker: &str,
    failures: &[Failure],
) -> Result<u64, DataError> {
    let mut recorded = 0;
    for failure in failures {
        let mut sql = Sql::default();
        let now = sql.arg(Arg::Int(Some(now_ms())));
        let who = sql.arg(Arg::Text(Some(worker.to_owned())));
        let error = sql.arg(Arg::Text(Some(truncate(&failure.error, 2_000))));
        let id = sql.arg(Arg::Int(Some(failure.id)));
        let (state, run_at, finished) = match failure.retry_at_ms {
            Some(at) => ("scheduled", sql.arg(Arg::Int(Some(at))), "NULL".to_owned()),
            None => ("dead", "run_at".to_owned(), now.clone()),
        };
        sql.text = format!(
            "UPDATE prefiq_jobs SET state = '{state}', run_at = {run_at}, finished_at = {finished}, last_error = {error}, locked_by = NULL, locked_until = NULL WHERE id = {id} AND state = 'running' AND locked_by = {who}"
        );
        recorded += conn.execute(&sql).await?;
    }
    Ok(recorded)
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Extends the lease of the jobs `worker` still holds among `ids` to `lease_ms` from now.
pub async fn heartbeat(
    conn: &mut Conn<'_>,
    worker: &str,
    ids: &[i64],
    lease_ms: i64,
) -> Result<u64, DataError> {
    let mut extended = 0;
    for chunk in ids.chunks(MAX_BATCH) {
        let mut sql = Sql::default();
        let until = sql.arg(Arg::Int(Some(now_ms().saturating_add(lease_ms))));
        let who = sql.arg(Arg::Text(Some(worker.to_owned())));
        sql.text = format!(
            "UPDATE prefiq_jobs SET locked_until = {until} WHERE id IN ({}) AND state = 'running' AND locked_by = {who}",
            id_list(chunk)
        );
        extended += conn.execute(&sql).await?;
    }
    Ok(extended)
}

/// Gives back jobs `worker` holds but did not run to the end (a shutdown past its drain
/// time): queued again, the attempt not counted.
pub async fn release(conn: &mut Conn<'_>, worker: &str, ids: &[i64]) -> Result<u64, DataError> {
    let mut released = 0;
    for chunk in ids.chunks(MAX_BATCH) {
        let mut sql = Sql::default();
        let who = sql.arg(Arg::Text(Some(worker.to_owned())));
        sql.text = format!(
            "UPDATE prefiq_jobs SET state = 'queued', attempts = attempts - 1, locked_by = NULL, locked_until = NULL WHERE id IN ({}) AND state = 'running' AND locked_by = {who}",
            id_list(chunk)
        );
        released += conn.execute(&sql).await?;
    }
    Ok(released)
}

/// Jobs whose lease ran out (their worker was killed or lost its database) run again: back
/// to `queued`, or `dead` if that was their last attempt. Returns how many.
pub async fn rescue_expired(conn: &mut Conn<'_>) -> Result<u64, DataError> {
    let mut sql = Sql::default();
    let now = sql.arg(Arg::Int(Some(now_ms())));
    sql.text = format!(
        "UPDATE prefiq_jobs SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, finished_at = CASE WHEN attempts >= max_attempts THEN {now} ELSE NULL END, last_error = 'the worker holding it stopped before its lease ran out', locked_by = NULL, locked_until = NULL WHERE id IN (SELECT id FROM prefiq_jobs WHERE state = 'running' AND locked_until < {now} LIMIT {MAX_BATCH})"
    );
    conn.execute(&sql).await
}

/// Deletes jobs that succeeded or were cancelled before `before_ms` and whose unique
/// window has passed (at most [`MAX_BATCH`] a call); dead jobs stay for inspection.
pub async fn prune(conn: &mut Conn<'_>, before_ms: i64) -> Result<u64, DataError> {
    let mut sql = Sql::default();
    let before = sql.arg(Arg::Int(Some(before_ms)));
    let now = sql.arg(Arg::Int(Some(now_ms())));
    sql.text = format!(
        "DELETE FROM prefiq_jobs WHERE id IN (SELECT id FROM prefiq_jobs WHERE state IN ('succeeded', 'cancelled') AND finished_at < {before} AND (unique_until IS NULL OR unique_until < {now}) LIMIT {MAX_BATCH})"
    );
    conn.execute(&sql).await
}
