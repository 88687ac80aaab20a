//! Where each schedule stands: the last due time it enqueued, so that a restart knows
//! which runs it missed. The row only moves forward, so replicas that tick at once agree.

use crate::DataError;
use crate::entity::sql::{Arg, Conn, Sql, SqlType};

/// The last due time (unix ms) schedule `name` enqueued; `None` for a schedule never seen.
pub async fn last_due(conn: &mut Conn<'_>, name: &str) -> Result<Option<i64>, DataError> {
    let mut sql = Sql::default();
    let n = sql.arg(Arg::Text(Some(name.to_owned())));
    sql.text = format!("SELECT last_due_ms FROM prefiq_job_schedules WHERE name = {n}");
    Ok(conn
        .fetch_optional(&sql, &[SqlType::Int])
        .await?
        .and_then(|row| row.first().and_then(crate::entity::sql::Cell::as_int)))
}

/// Records that schedule `name` enqueued its runs up to `due_ms`; a later due time never
/// goes back to an earlier one.
pub async fn advance_schedule(
    conn: &mut Conn<'_>,
    name: &str,
    due_ms: i64,
) -> Result<(), DataError> {
    let mut sql = Sql::default();
    let n = sql.arg(Arg::Text(Some(name.to_owned())));
    let due = sql.arg(Arg::Int(Some(due_ms)));
    sql.text = format!(
        "INSERT INTO prefiq_job_schedules (name, last_due_ms) VALUES ({n}, {due}) ON CONFLICT (name) DO UPDATE SET last_due_ms = excluded.last_due_ms WHERE prefiq_job_schedules.last_due_ms < excluded.last_due_ms"
    );
    conn.execute(&sql).await?;
    Ok(())
}
