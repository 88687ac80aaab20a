//! The audit log's sequencer on PostgreSQL.
//!
//! A write on PostgreSQL does not number its audit record: it queues the record's text in
//! `prefiq_audit_queue`, in its own transaction, and commits. Numbering in the write's
//! transaction would make every write of a tenant wait on that tenant's row in
//! `prefiq_audit_heads` from its append until its commit, so one tenant's writes would be
//! serial (about 1,500 creates/s on a 2-core machine, whatever the pool size). Like
//! Trillian's sequencer, [`sequence`] then takes the queued records of a tenant in one
//! short transaction, gives them the next sequence numbers, appends them to `prefiq_audit`
//! and deletes them from the queue. Every committed write still has its record (the queue
//! row commits or rolls back with the write), a crash leaves queued records for the next
//! run, and the log's order is the sequencer's: a record written after another committed
//! gets a higher queue id, so one record's changes keep their order.
//!
//! The repository starts a sequencing of the tenant after each write commits
//! ([`Sequencer::kick`]: at most one running per tenant, which runs again if more came
//! in meanwhile), and every reader of the log (`AuditLog`) sequences first, so a caller
//! reads its own writes. SQLite has one writer, so it numbers records in the write itself
//! and the queue stays empty.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use prefiq::Backend;

use crate::DataError;
use crate::database::{Database, DatabaseHandle};
use crate::entity::sql::{Arg, Cell, Conn, Sql, SqlType};

/// Most records numbered in one transaction; a longer queue takes several.
pub const SEQUENCE_BATCH: i64 = 5_000;

/// Most tenants with a sequencing in flight in this process; past it, a write leaves its
/// record queued for the next write or reader of that tenant (nothing is lost).
const MAX_IN_FLIGHT_TENANTS: usize = 10_000;

/// The queue's table, per backend. SQLite never fills it; it exists so that both backends
/// have the same tables.
pub(crate) fn migration() -> prefiq::Migration {
    prefiq::Migration::per_backend(
        "0005_audit_queue",
        "CREATE TABLE prefiq_audit_queue (\n    qid INTEGER PRIMARY KEY,\n    tenant_id TEXT NOT NULL,\n    tail TEXT NOT NULL\n);",
        // An identity column needs no grant on its sequence for the application role to
        // insert.
        "CREATE TABLE prefiq_audit_queue (\n    qid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n    tenant_id TEXT NOT NULL,\n    tail TEXT NOT NULL\n);\nCREATE INDEX prefiq_audit_queue_tenant ON prefiq_audit_queue (tenant_id, qid);",
    )
}

/// The statement that queues one record whose JSON after `{"seq":N,` is `tail`, with its
/// arguments added to `sql`.
pub(crate) fn queue_statement(sql: &mut Sql, tenant: &str, tail: String) -> String {
    let tenant = sql.arg(Arg::Text(Some(tenant.to_owned())));
    let tail = sql.arg(Arg::Text(Some(tail)));
    format!("INSERT INTO prefiq_audit_queue (tenant_id, tail) VALUES ({tenant}, {tail})")
}

/// Numbers and appends every queued record of `tenant`, in batches of
/// [`SEQUENCE_BATCH`]; returns how many. A no-op on SQLite.
pub async fn sequence(database: &Database, tenant: &str) -> Result<u64, DataError> {
    let Database::Postgres(pool) = database else {
        return Ok(0);
    };
    let mut moved = 0;
    loop {
        let mut tx = crate::database::begin_postgres(pool).await?;
        crate::entity::repo::enter_tenant(&mut tx, tenant).await?;
        let count = {
            let mut conn = Conn::Postgres(&mut tx);
            sequence_batch(&mut conn, tenant).await?
        };
        tx.commit().await?;
        moved += count;
        if count < SEQUENCE_BATCH as u64 {
            return Ok(moved);
        }
    }
}

/// One batch, in the caller's transaction: the head's row lock (taken first, and the only
/// lock) serialises sequencers of a tenant across replicas.
async fn sequence_batch(conn: &mut Conn<'_>, tenant: &str) -> Result<u64, DataError> {
    debug_assert_eq!(conn.backend(), Backend::Postgres);
    let mut head = Sql::default();
    let t = head.arg(Arg::Text(Some(tenant.to_owned())));
    head.text = format!(
        "INSERT INTO prefiq_audit_heads AS h (tenant_id, size) VALUES ({t}, 0) ON CONFLICT (tenant_id) DO UPDATE SET size = h.size RETURNING size"
    );
    let size = match conn
        .fetch(&head, &[SqlType::Int])
        .await?
        .first()
        .and_then(|r| r.first())
    {
        Some(Cell::Int(size)) => *size,
        _ => return Err(DataError::Batch("the audit head returned no size".into())),
    };
    let mut append = Sql::default();
    let t = append.arg(Arg::Text(Some(tenant.to_owned())));
    let base = append.arg(Arg::Int(Some(size)));
    let limit = append.arg(Arg::Int(Some(SEQUENCE_BATCH)));
    append.text = format!(
        "WITH q AS (DELETE FROM prefiq_audit_queue WHERE qid IN (SELECT qid FROM prefiq_audit_queue WHERE tenant_id = {t} ORDER BY qid LIMIT {limit}) RETURNING qid, tail), \
         n AS (SELECT tail, {base}::bigint + row_number() OVER (ORDER BY qid) AS seq FROM q) \
         INSERT INTO prefiq_audit (tenant_id, seq, entry) SELECT {t}, seq, '{{\"seq\":' || seq::text || ',' || tail FROM n"
    );
    let count = conn.execute(&append).await?;
    if count > 0 {
        let mut grow = Sql::default();
        let t = grow.arg(Arg::Text(Some(tenant.to_owned())));
        let by = grow.arg(Arg::Int(Some(i64::try_from(count).unwrap_or(i64::MAX))));
        grow.text =
            format!("UPDATE prefiq_audit_heads SET size = size + {by} WHERE tenant_id = {t}");
        conn.execute(&grow).await?;
    }
    Ok(count)
}

/// The tenants with queued records in `database`, for the sweep after a crash.
pub async fn queued_tenants(database: &Database) -> Result<Vec<String>, DataError> {
    let Database::Postgres(pool) = database else {
        return Ok(Vec::new());
    };
    let mut conn = pool.acquire().await?;
    let sql = Sql {
        text: "SELECT DISTINCT tenant_id FROM prefiq_audit_queue ORDER BY tenant_id".into(),
        args: Vec::new(),
    };
    let rows = Conn::Postgres(&mut conn)
        .fetch(&sql, &[SqlType::Text])
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match row.into_iter().next() {
            Some(Cell::Text(tenant)) => Some(tenant),
            _ => None,
        })
        .collect())
}

/// Sequencings in flight in this process: one task per tenant at most.
#[derive(Debug, Default)]
pub struct Sequencer {
    /// Tenant → whether records were queued after its running sequencing started.
    running: Mutex<HashMap<String, bool>>,
}

impl Sequencer {
    /// Sequences `tenant`'s queue in the background after a write committed, unless a
    /// sequencing of it is already running (then that one runs once more). A no-op on
    /// SQLite, and outside a tokio runtime.
    pub fn kick(self: &Arc<Self>, handle: &Arc<DatabaseHandle>, tenant: &str) {
        if handle.backend() != Backend::Postgres {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(again) = running.get_mut(tenant) {
                *again = true;
                return;
            }
            if running.len() >= MAX_IN_FLIGHT_TENANTS {
                return;
            }
            running.insert(tenant.to_owned(), false);
        }
        let me = Arc::clone(self);
        let handle = Arc::clone(handle);
        let tenant = tenant.to_owned();
        runtime.spawn(async move {
            loop {
                let result = match handle.get() {
                    Ok(database) => sequence(database, &tenant).await,
                    Err(error) => Err(error),
                };
                if let Err(error) = result {
                    // The records stay queued: the next write or read of the log retries.
                    tracing::warn!(target: "prefiq::audit", tenant, %error, "audit sequencing failed");
                }
                let mut running = me.running.lock().unwrap_or_else(PoisonError::into_inner);
                match running.get_mut(&tenant) {
                    Some(again) if *again => *again = false,
                    _ => {
                        running.remove(&tenant);
                        break;
                    }
                }
            }
        });
    }
}
