//! What an operator sees and does: jobs listed and shown, a dead job retried, a waiting one
//! cancelled, and per-queue depth and age for `/metrics`.

use super::{MAX_BATCH, now_ms};
use crate::DataError;
use crate::entity::sql::{Arg, Cell, Conn, Sql, SqlType};

/// A stored job, as an operator sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobRow {
    /// Its id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// The handler's name.
    pub kind: String,
    /// The tenant it runs for (`""` for a platform job).
    pub tenant: String,
    /// `scheduled`, `queued`, `running`, `succeeded`, `dead` or `cancelled`.
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// When it is or was due (unix ms).
    pub run_at_ms: i64,
    /// When it was enqueued (unix ms).
    pub created_at_ms: i64,
    /// When it finished (unix ms).
    pub finished_at_ms: Option<i64>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// The worker holding it.
    pub locked_by: Option<String>,
}

const COLUMNS: &str = "id, queue, kind, tenant_id, state, attempts, max_attempts, run_at, created_at, finished_at, last_error, payload, locked_by";

const TYPES: &[SqlType] = &[
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
];

fn job_row(row: Vec<Cell>) -> JobRow {
    let mut cells = row.into_iter();
    let int = |cells: &mut std::vec::IntoIter<Cell>| cells.next().and_then(|c| c.as_int());
    let text = |cells: &mut std::vec::IntoIter<Cell>| cells.next().and_then(Cell::into_text);
    JobRow {
        id: int(&mut cells).unwrap_or_default(),
        queue: text(&mut cells).unwrap_or_default(),
        kind: text(&mut cells).unwrap_or_default(),
        tenant: text(&mut cells).unwrap_or_default(),
        state: text(&mut cells).unwrap_or_default(),
        attempts: int(&mut cells).unwrap_or_default(),
        max_attempts: int(&mut cells).unwrap_or_default(),
        run_at_ms: int(&mut cells).unwrap_or_default(),
        created_at_ms: int(&mut cells).unwrap_or_default(),
        finished_at_ms: int(&mut cells),
        last_error: text(&mut cells),
        payload: text(&mut cells)
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or(serde_json::Value::Null),
        locked_by: text(&mut cells),
    }
}

/// The states a job can be in.
pub const STATES: &[&str] = &[
    "scheduled",
    "queued",
    "running",
    "succeeded",
    "dead",
    "cancelled",
];

/// Jobs, newest first, optionally of one `queue` and one `state`, at most `limit`
/// (capped at [`MAX_BATCH`]).
pub async fn list(
    conn: &mut Conn<'_>,
    queue: Option<&str>,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<JobRow>, DataError> {
    list_where(
        conn,
        &JobQuery {
            queue: queue.map(str::to_owned),
            state: state.map(str::to_owned),
            limit,
            ..JobQuery::default()
        },
    )
    .await
}

/// Which jobs [`list_where`] reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Only this tenant's (the desk shows a tenant its own).
    pub tenant: Option<String>,
    /// Only this queue's.
    pub queue: Option<String>,
    /// Only jobs in this state.
    pub state: Option<String>,
    /// Only jobs numbered below this (the next page).
    pub before: Option<i64>,
    /// At most this many (capped at [`MAX_BATCH`]).
    pub limit: i64,
}

/// The jobs `query` selects, newest first.
pub async fn list_where(conn: &mut Conn<'_>, query: &JobQuery) -> Result<Vec<JobRow>, DataError> {
    let mut sql = Sql::default();
    let mut conditions = Vec::new();
    if let Some(tenant) = &query.tenant {
        conditions.push(format!(
            "tenant_id = {}",
            sql.arg(Arg::Text(Some(tenant.clone())))
        ));
    }
    if let Some(before) = query.before {
        conditions.push(format!("id < {}", sql.arg(Arg::Int(Some(before)))));
    }
    let (queue, state, limit) = (query.queue.as_deref(), query.state.as_deref(), query.limit);
    if let Some(queue) = queue {
        conditions.push(format!(
            "queue = {}",
            sql.arg(Arg::Text(Some(queue.into())))
        ));
    }
    if let Some(state) = state {
        conditions.push(format!(
            "state = {}",
            sql.arg(Arg::Text(Some(state.into())))
        ));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let limit = sql.arg(Arg::Int(Some(limit.clamp(1, MAX_BATCH as i64))));
    sql.text = format!("SELECT {COLUMNS} FROM prefiq_jobs{filter} ORDER BY id DESC LIMIT {limit}");
    Ok(conn
        .fetch(&sql, TYPES)
        .await?
        .into_iter()
        .map(job_row)
        .collect())
}

/// One job.
pub async fn get(conn: &mut Conn<'_>, id: i64) -> Result<Option<JobRow>, DataError> {
    let mut sql = Sql::default();
    let id = sql.arg(Arg::Int(Some(id)));
    sql.text = format!("SELECT {COLUMNS} FROM prefiq_jobs WHERE id = {id}");
    Ok(conn.fetch_optional(&sql, TYPES).await?.map(job_row))
}

/// Queues a dead, cancelled or waiting job to run now, with one more attempt allowed if
/// its attempts are spent. Returns whether it was in such a state.
pub async fn retry(conn: &mut Conn<'_>, id: i64) -> Result<bool, DataError> {
    let mut sql = Sql::default();
    let now = sql.arg(Arg::Int(Some(now_ms())));
    let id = sql.arg(Arg::Int(Some(id)));
    sql.text = format!(
        "UPDATE prefiq_jobs SET state = 'queued', run_at = {now}, finished_at = NULL, max_attempts = CASE WHEN attempts >= max_attempts THEN attempts + 1 ELSE max_attempts END WHERE id = {id} AND state IN ('dead', 'cancelled', 'scheduled')"
    );
    Ok(conn.execute(&sql).await? > 0)
}

/// Cancels a job that has not finished. A running job's handler is not interrupted, but
/// its outcome is no longer recorded. Returns whether it was cancelled.
pub async fn cancel(conn: &mut Conn<'_>, id: i64) -> Result<bool, DataError> {
    let mut sql = Sql::default();
    let now = sql.arg(Arg::Int(Some(now_ms())));
    let id = sql.arg(Arg::Int(Some(id)));
    sql.text = format!(
        "UPDATE prefiq_jobs SET state = 'cancelled', finished_at = {now}, locked_by = NULL, locked_until = NULL WHERE id = {id} AND state IN ('scheduled', 'queued', 'running')"
    );
    Ok(conn.execute(&sql).await? > 0)
}

/// Depth and age of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// Jobs per state.
    pub states: Vec<(String, i64)>,
    /// When the oldest queued job became due (unix ms), if any is queued.
    pub oldest_queued_ms: Option<i64>,
}

/// Per queue: jobs per state and the oldest queued job's due time.
pub async fn queue_stats(conn: &mut Conn<'_>) -> Result<Vec<QueueStats>, DataError> {
    queue_stats_of(conn, None).await
}

/// [`queue_stats`] of `tenant`'s jobs only, when given.
pub async fn queue_stats_of(
    conn: &mut Conn<'_>,
    tenant: Option<&str>,
) -> Result<Vec<QueueStats>, DataError> {
    let mut sql = Sql::default();
    let only = match tenant {
        Some(tenant) => format!(
            " WHERE tenant_id = {}",
            sql.arg(Arg::Text(Some(tenant.to_owned())))
        ),
        None => String::new(),
    };
    sql.text = format!(
        "SELECT queue, state, count(*), min(CASE WHEN state = 'queued' THEN run_at END) FROM prefiq_jobs{only} GROUP BY queue, state ORDER BY queue, state"
    );
    let mut out: Vec<QueueStats> = Vec::new();
    for row in conn
        .fetch(
            &sql,
            &[SqlType::Text, SqlType::Text, SqlType::Int, SqlType::Int],
        )
        .await?
    {
        let mut cells = row.into_iter();
        let queue = cells.next().and_then(Cell::into_text).unwrap_or_default();
        let state = cells.next().and_then(Cell::into_text).unwrap_or_default();
        let count = cells.next().and_then(|c| c.as_int()).unwrap_or_default();
        let oldest = cells.next().and_then(|c| c.as_int());
        if out.last().is_none_or(|s| s.queue != queue) {
            out.push(QueueStats {
                queue,
                ..QueueStats::default()
            });
        }
        if let Some(stats) = out.last_mut() {
            stats.states.push((state, count));
            if oldest.is_some() {
                stats.oldest_queued_ms = oldest;
            }
        }
    }
    Ok(out)
}
