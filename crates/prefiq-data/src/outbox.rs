//! The outbox as the relay reads it: committed events in order, marked delivered once
//! every sink has them, pruned after a retention.
//!
//! Every entity write inserts its event in its own transaction (`entity/repo/outbox.rs`),
//! so an event exists exactly when its write committed. Each row has a sequence number
//! (`seq`): SQLite's rowid, which its one writer hands out in commit order, and on
//! PostgreSQL an identity column. On PostgreSQL numbers are taken at insert and
//! transactions commit in any order, so a row of a lower number can become visible after
//! a higher one was read; the relay therefore reads what is *not yet delivered* in `seq`
//! order, never "after the last number seen", and a late row is delivered on the next read
//! instead of skipped. Two writes of one record are ordered by the record's row lock (the
//! second inserts its event after the first committed), so one record's events keep
//! their commit order.

use serde_json::Value;

use crate::DataError;
use crate::entity::sql::{Arg, Conn, Sql, SqlType};

/// The migration that numbers outbox rows. SQLite rebuilds the table around an integer
/// key (its rowid); PostgreSQL adds an identity column. Both index the undelivered rows by
/// number, for the relay's read.
pub(crate) fn migration() -> prefiq::Migration {
    prefiq::Migration::per_backend(
        "0006_outbox_sequence",
        "CREATE TABLE prefiq_outbox_numbered (\n    seq INTEGER PRIMARY KEY,\n    id TEXT NOT NULL,\n    tenant_id TEXT NOT NULL,\n    entity TEXT NOT NULL,\n    record_id TEXT NOT NULL,\n    event TEXT NOT NULL,\n    payload TEXT NOT NULL,\n    trace_id TEXT NOT NULL,\n    created_at TEXT NOT NULL,\n    published_at TEXT\n);\nINSERT INTO prefiq_outbox_numbered (id, tenant_id, entity, record_id, event, payload, trace_id, created_at, published_at)\n    SELECT id, tenant_id, entity, record_id, event, payload, trace_id, created_at, published_at FROM prefiq_outbox ORDER BY rowid;\nDROP TABLE prefiq_outbox;\nALTER TABLE prefiq_outbox_numbered RENAME TO prefiq_outbox;\nCREATE INDEX prefiq_outbox_pending ON prefiq_outbox (seq) WHERE published_at IS NULL;",
        "ALTER TABLE prefiq_outbox ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;\nDROP INDEX prefiq_outbox_unpublished;\nCREATE UNIQUE INDEX prefiq_outbox_seq ON prefiq_outbox (seq);\nCREATE INDEX prefiq_outbox_pending ON prefiq_outbox (seq) WHERE published_at IS NULL;",
    )
}

/// One committed event, as the outbox holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Its number in this database's outbox.
    pub seq: i64,
    /// The event id (a UUIDv7): the same on every re-send.
    pub id: String,
    /// The tenant whose write it is.
    pub tenant: String,
    /// The entity.
    pub entity: String,
    /// The record's id.
    pub record_id: String,
    /// What happened: `created`, `updated`, `deleted`, `submitted`, `cancelled`, …
    pub action: String,
    /// The record as the write left it.
    pub payload: Value,
    /// The trace id of the write.
    pub trace_id: String,
    /// When the write ran (RFC 3339, UTC).
    pub created_at: String,
}

/// The most events one read returns.
pub const MAX_READ: i64 = 5_000;

/// The undelivered events, lowest number first, at most `limit` (capped at [`MAX_READ`]).
pub async fn pending(conn: &mut Conn<'_>, limit: i64) -> Result<Vec<OutboxRow>, DataError> {
    read(conn, "published_at IS NULL", None, limit).await
}

/// The undelivered events numbered above `seq`, lowest first, at most `limit`: the relay's
/// next batch while the previous one is still being delivered.
pub async fn pending_after(
    conn: &mut Conn<'_>,
    seq: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, DataError> {
    read(conn, "published_at IS NULL AND seq > ", Some(seq), limit).await
}

/// The events numbered above `seq`, delivered or not, lowest first, at most `limit`: what
/// `prefiq events tail` follows.
pub async fn after(conn: &mut Conn<'_>, seq: i64, limit: i64) -> Result<Vec<OutboxRow>, DataError> {
    read(conn, "seq > ", Some(seq), limit).await
}

/// The newest number in the outbox (0 when it is empty).
pub async fn last_seq(conn: &mut Conn<'_>) -> Result<i64, DataError> {
    let sql = Sql::new("SELECT max(seq) FROM prefiq_outbox", Vec::new());
    Ok(conn
        .fetch_optional(&sql, &[SqlType::Int])
        .await?
        .and_then(|row| row.first().and_then(crate::entity::sql::Cell::as_int))
        .unwrap_or(0))
}

async fn read(
    conn: &mut Conn<'_>,
    condition: &str,
    seq: Option<i64>,
    limit: i64,
) -> Result<Vec<OutboxRow>, DataError> {
    let payload = match conn.backend() {
        prefiq::Backend::Postgres => "payload::text",
        prefiq::Backend::Sqlite => "payload",
    };
    let mut sql = Sql::default();
    let condition = match seq {
        Some(seq) => format!("{condition}{}", sql.arg(Arg::Int(Some(seq)))),
        None => condition.to_owned(),
    };
    let limit = sql.arg(Arg::Int(Some(limit.clamp(1, MAX_READ))));
    sql.text = format!(
        "SELECT seq, id, tenant_id, entity, record_id, event, {payload}, trace_id, created_at FROM prefiq_outbox WHERE {condition} ORDER BY seq LIMIT {limit}"
    );
    let mut types = vec![SqlType::Int];
    types.extend([SqlType::Text; 8]);
    let rows = conn.fetch(&sql, &types).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut cells = row.into_iter();
            let seq = cells.next().and_then(|c| c.as_int()).unwrap_or_default();
            let mut text = || {
                cells
                    .next()
                    .and_then(crate::entity::sql::Cell::into_text)
                    .unwrap_or_default()
            };
            let (id, tenant, entity, record_id, action) = (text(), text(), text(), text(), text());
            let payload = serde_json::from_str(&text()).unwrap_or(Value::Null);
            OutboxRow {
                seq,
                id,
                tenant,
                entity,
                record_id,
                action,
                payload,
                trace_id: text(),
                created_at: text(),
            }
        })
        .collect())
}

/// Marks the events numbered `seqs` delivered at `now`.
pub async fn mark_delivered(
    conn: &mut Conn<'_>,
    seqs: &[i64],
    now: &str,
) -> Result<u64, DataError> {
    let mut marked = 0;
    for chunk in seqs.chunks(MAX_READ as usize) {
        let mut sql = Sql::default();
        let at = sql.arg(Arg::Text(Some(now.to_owned())));
        let list: Vec<String> = chunk.iter().map(|s| s.to_string()).collect();
        sql.text = match conn.backend() {
            // One array parameter: one statement text whatever the count, so PostgreSQL
            // plans it once, instead of a new list of thousands of literals every round.
            prefiq::Backend::Postgres => {
                let numbers = sql.arg(Arg::Text(Some(list.join(","))));
                format!(
                    "UPDATE prefiq_outbox SET published_at = {at} WHERE seq = ANY(string_to_array({numbers}, ',')::bigint[])"
                )
            }
            // Integers the relay read back, written into the text: SQLite prepares a
            // statement in microseconds.
            prefiq::Backend::Sqlite => format!(
                "UPDATE prefiq_outbox SET published_at = {at} WHERE seq IN ({})",
                list.join(",")
            ),
        };
        marked += conn.execute(&sql).await?;
    }
    Ok(marked)
}

/// Deletes delivered events numbered at most `through`; returns how many. The relay
/// passes the highest number it had delivered a retention ago, so pruning walks the key
/// instead of scanning for old rows.
pub async fn prune(conn: &mut Conn<'_>, through: i64) -> Result<u64, DataError> {
    let mut sql = Sql::default();
    let through = sql.arg(Arg::Int(Some(through)));
    sql.text =
        format!("DELETE FROM prefiq_outbox WHERE seq <= {through} AND published_at IS NOT NULL");
    conn.execute(&sql).await
}

/// How many events wait, and the write time of the oldest (RFC 3339), if any.
pub async fn backlog(conn: &mut Conn<'_>) -> Result<(i64, Option<String>), DataError> {
    let sql = Sql::new(
        "SELECT count(*), min(created_at) FROM prefiq_outbox WHERE published_at IS NULL",
        Vec::new(),
    );
    let row = conn
        .fetch_optional(&sql, &[SqlType::Int, SqlType::Text])
        .await?
        .unwrap_or_default();
    let mut cells = row.into_iter();
    let count = cells.next().and_then(|c| c.as_int()).unwrap_or_default();
    let oldest = cells.next().and_then(crate::entity::sql::Cell::into_text);
    Ok((count, oldest))
}
