//! The verifiable audit log's storage: one RFC 9162 log per tenant.
//!
//! Every record is one line of canonical JSON, `{"seq":N,"tenant":T,"time":…,"actor":…,
//! "action":…,"entity":…,"id":…,"changes":{…},"trace":…}`, in `prefiq_audit`. The entity
//! pipeline appends it with the same statements (and so in the same transaction) as the
//! row and its outbox event. On SQLite the sequence number comes from the tenant's row in
//! `prefiq_audit_heads` in that same transaction; on PostgreSQL the record is queued and
//! numbered after commit by the sequencer ([`crate::audit_sequencer`]), so a tenant's
//! writes do not serialise on that row. Fields tagged `pii` appear only as a SHA-256.
//!
//! A background task ([`AuditLog::run`]) signs a checkpoint of each tenant's log every
//! `audit.checkpoint_every` records or `audit.checkpoint_interval_ms`, and at shutdown,
//! keeping with it the tree's frontier (to continue from) and the leaves it covers (to name
//! a changed record exactly). `UPDATE`, `DELETE` and `TRUNCATE` of records and checkpoints
//! are refused by triggers on both backends, and on PostgreSQL the application role has no
//! such privilege either.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use prefiq::Backend;
use prefiq_audit::checkpoint::{self, Checkpoint};
use prefiq_audit::merkle::{self, Frontier, Hash};
use prefiq_audit::verify::{LogError, TrustedCheckpoint, Walk, hex};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::DataError;
use crate::database::{Database, DatabaseHandle};
use crate::entity::EntitySchema;
use crate::entity::sql::{Arg, Cell, Conn, Sql, SqlType};

/// The data layer's audit tables, per backend.
pub(crate) fn migration() -> prefiq::Migration {
    let sqlite = "CREATE TABLE prefiq_audit_heads (\n    tenant_id TEXT PRIMARY KEY,\n    size INTEGER NOT NULL\n);\nCREATE TABLE prefiq_audit (\n    tenant_id TEXT NOT NULL,\n    seq INTEGER NOT NULL,\n    entry TEXT NOT NULL,\n    entity TEXT GENERATED ALWAYS AS (json_extract(entry, '$.entity')) VIRTUAL,\n    record_id TEXT GENERATED ALWAYS AS (json_extract(entry, '$.id')) VIRTUAL,\n    PRIMARY KEY (tenant_id, seq)\n);\nCREATE INDEX prefiq_audit_record ON prefiq_audit (tenant_id, entity, record_id, seq);\nCREATE TABLE prefiq_audit_checkpoints (\n    tenant_id TEXT NOT NULL,\n    size INTEGER NOT NULL,\n    time_ms INTEGER NOT NULL,\n    note TEXT NOT NULL,\n    peaks BLOB NOT NULL,\n    leaves BLOB NOT NULL,\n    PRIMARY KEY (tenant_id, size)\n);\nCREATE TABLE prefiq_audit_snapshots (\n    tenant_id TEXT NOT NULL,\n    size INTEGER NOT NULL,\n    note TEXT NOT NULL,\n    peaks BLOB NOT NULL,\n    PRIMARY KEY (tenant_id, size)\n);\nCREATE TRIGGER prefiq_audit_no_update BEFORE UPDATE ON prefiq_audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;\nCREATE TRIGGER prefiq_audit_no_delete BEFORE DELETE ON prefiq_audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;\nCREATE TRIGGER prefiq_audit_checkpoints_no_update BEFORE UPDATE ON prefiq_audit_checkpoints BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;\nCREATE TRIGGER prefiq_audit_checkpoints_no_delete BEFORE DELETE ON prefiq_audit_checkpoints BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;";
    let postgres = "CREATE TABLE prefiq_audit_heads (\n    tenant_id TEXT PRIMARY KEY,\n    size BIGINT NOT NULL\n);\nCREATE TABLE prefiq_audit (\n    tenant_id TEXT NOT NULL,\n    seq BIGINT NOT NULL,\n    entry TEXT NOT NULL,\n    entity TEXT GENERATED ALWAYS AS ((entry::jsonb) ->> 'entity') STORED,\n    record_id TEXT GENERATED ALWAYS AS ((entry::jsonb) ->> 'id') STORED,\n    PRIMARY KEY (tenant_id, seq)\n);\nCREATE INDEX prefiq_audit_record ON prefiq_audit (tenant_id, entity, record_id, seq);\nCREATE TABLE prefiq_audit_checkpoints (\n    tenant_id TEXT NOT NULL,\n    size BIGINT NOT NULL,\n    time_ms BIGINT NOT NULL,\n    note TEXT NOT NULL,\n    peaks BYTEA NOT NULL,\n    leaves BYTEA NOT NULL,\n    PRIMARY KEY (tenant_id, size)\n);\nCREATE TABLE prefiq_audit_snapshots (\n    tenant_id TEXT NOT NULL,\n    size BIGINT NOT NULL,\n    note TEXT NOT NULL,\n    peaks BYTEA NOT NULL,\n    PRIMARY KEY (tenant_id, size)\n);\nCREATE FUNCTION prefiq_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME;\nEND $$;\nCREATE TRIGGER prefiq_audit_append_only BEFORE UPDATE OR DELETE ON prefiq_audit FOR EACH ROW EXECUTE FUNCTION prefiq_audit_append_only();\nCREATE TRIGGER prefiq_audit_no_truncate BEFORE TRUNCATE ON prefiq_audit FOR EACH STATEMENT EXECUTE FUNCTION prefiq_audit_append_only();\nCREATE TRIGGER prefiq_audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON prefiq_audit_checkpoints FOR EACH ROW EXECUTE FUNCTION prefiq_audit_append_only();\nCREATE TRIGGER prefiq_audit_checkpoints_no_truncate BEFORE TRUNCATE ON prefiq_audit_checkpoints FOR EACH STATEMENT EXECUTE FUNCTION prefiq_audit_append_only();";
    prefiq::Migration::per_backend("0004_audit", sqlite, postgres)
}

/// The audit tables under row-level security on PostgreSQL (the heads are a counter the
/// checkpointer reads across tenants, and hold nothing but a count).
pub(crate) const TENANT_TABLES: &[&str] = &[
    "prefiq_audit",
    "prefiq_audit_queue",
    "prefiq_audit_checkpoints",
    "prefiq_audit_snapshots",
];

/// PostgreSQL: the application role may only add to and read the log.
pub(crate) const REVOKE_SQL: &str =
    "REVOKE UPDATE, DELETE, TRUNCATE ON prefiq_audit, prefiq_audit_checkpoints FROM prefiq_app;\n";

/// One record before it has a sequence number.
#[derive(Debug, Clone)]
pub struct AuditRecord<'a> {
    /// The tenant whose log it goes to.
    pub tenant: &'a str,
    /// When (UTC, the entity engine's civil time text).
    pub time: &'a str,
    /// Who acted: a user id, or `None` for the system.
    pub actor: Option<&'a str>,
    /// `create`, `update`, `delete`, `submit`, `cancel`, `amend`, `login`,
    /// `login_failed`, `logout`, `role_change`, `policy_add`, `config_set`, …
    pub action: &'a str,
    /// The entity, for record changes.
    pub entity: Option<&'a str>,
    /// The record's id (or another subject's, such as a user's).
    pub id: Option<&'a str>,
    /// Changed fields: `{field: {"before": …, "after": …}}`.
    pub changes: Value,
    /// The trace id of the request or job.
    pub trace: &'a str,
}

impl AuditRecord<'_> {
    /// The record's JSON after `{"seq":N,` — it starts with the tenant, so every record
    /// starts with [`prefiq_audit::verify::record_prefix`].
    fn tail(&self) -> String {
        let mut map = Map::new();
        map.insert("tenant".into(), json!(self.tenant));
        map.insert("time".into(), json!(self.time));
        map.insert("actor".into(), json!(self.actor));
        map.insert("action".into(), json!(self.action));
        map.insert("entity".into(), json!(self.entity));
        map.insert("id".into(), json!(self.id));
        map.insert("changes".into(), self.changes.clone());
        map.insert("trace".into(), json!(self.trace));
        let text = Value::Object(map).to_string();
        text[1..].to_owned()
    }
}

/// The statements that append `record` to its tenant's log, with their arguments added to
/// `sql`: on SQLite two, numbering it (run in the same batch as the write's own); on
/// PostgreSQL one that queues it for the sequencer ([`crate::audit_sequencer`]), so that a
/// tenant's writes do not wait on each other.
pub fn append_statement(sql: &mut Sql, backend: Backend, record: &AuditRecord<'_>) -> String {
    match backend {
        Backend::Sqlite => {
            let tenant = sql.arg(Arg::Text(Some(record.tenant.to_owned())));
            let tail = sql.arg(Arg::Text(Some(record.tail())));
            let again = sql.arg(Arg::Text(Some(record.tenant.to_owned())));
            format!(
                "INSERT INTO prefiq_audit_heads (tenant_id, size) VALUES ({tenant}, 1) ON CONFLICT (tenant_id) DO UPDATE SET size = size + 1; INSERT INTO prefiq_audit (tenant_id, seq, entry) SELECT tenant_id, size, '{{\"seq\":' || size || ',' || {tail} FROM prefiq_audit_heads WHERE tenant_id = {again}"
            )
        }
        Backend::Postgres => {
            crate::audit_sequencer::queue_statement(sql, record.tenant, record.tail())
        }
    }
}

/// Appends many records of one tenant in the caller's transaction with multi-row
/// statements: on SQLite the head moves once by their number, then the records are written
/// with the numbers it reserved; on PostgreSQL they are queued, in order, for the
/// sequencer. For a module's bulk writers, where a record per row must not cost a round
/// trip per row.
pub async fn append_records(
    conn: &mut crate::entity::sql::Conn<'_>,
    tenant: &str,
    records: &[AuditRecord<'_>],
) -> Result<(), DataError> {
    if records.is_empty() {
        return Ok(());
    }
    if conn.backend() == Backend::Postgres {
        // Queued for the sequencer, in order (a multi-row VALUES takes identities in
        // row order).
        for chunk in records.chunks(1_000) {
            let mut sql = Sql::default();
            let tenant_arg = sql.arg(Arg::Text(Some(tenant.to_owned())));
            let mut values = Vec::with_capacity(chunk.len());
            for record in chunk {
                let tail = sql.arg(Arg::Text(Some(record.tail())));
                values.push(format!("({tenant_arg}, {tail})"));
            }
            sql.text = format!(
                "INSERT INTO prefiq_audit_queue (tenant_id, tail) VALUES {}",
                values.join(", ")
            );
            conn.execute_bulk(&sql).await?;
        }
        return Ok(());
    }
    let count = i64::try_from(records.len()).unwrap_or(i64::MAX);
    let mut sql = Sql::default();
    let tenant_arg = sql.arg(Arg::Text(Some(tenant.to_owned())));
    let count_arg = sql.arg(Arg::Int(Some(count)));
    sql.text = format!(
        "INSERT INTO prefiq_audit_heads AS h (tenant_id, size) VALUES ({tenant_arg}, {count_arg}) ON CONFLICT (tenant_id) DO UPDATE SET size = h.size + excluded.size RETURNING size"
    );
    let rows = conn
        .fetch(&sql, &[crate::entity::sql::SqlType::Int])
        .await?;
    let last = match rows.first().and_then(|r| r.first()) {
        Some(crate::entity::sql::Cell::Int(size)) => *size,
        _ => return Err(DataError::Batch("the audit head returned no size".into())),
    };
    let first = last - count + 1;
    for (chunk_index, chunk) in records.chunks(1_000).enumerate() {
        let mut sql = Sql::default();
        let tenant_arg = sql.arg(Arg::Text(Some(tenant.to_owned())));
        let mut values = Vec::with_capacity(chunk.len());
        for (i, record) in chunk.iter().enumerate() {
            let seq = first + (chunk_index * 1_000 + i) as i64;
            let seq_arg = sql.arg(Arg::Int(Some(seq)));
            let entry = sql.arg(Arg::Text(Some(format!(
                "{{\"seq\":{seq},{}",
                record.tail()
            ))));
            values.push(format!("({tenant_arg}, {seq_arg}, {entry})"));
        }
        sql.text = format!(
            "INSERT INTO prefiq_audit (tenant_id, seq, entry) VALUES {}",
            values.join(", ")
        );
        conn.execute_bulk(&sql).await?;
    }
    Ok(())
}

/// System columns a change record leaves out: the record itself says when and who.
const UNAUDITED: &[&str] = &["modified_at", "modified_by", "version", "created_at"];

/// The changed fields between `before` and `after` (either may be absent), each
/// `{"before": …, "after": …}`; a field tagged `pii` shows only a SHA-256 of its value.
pub fn changes(
    schema: &EntitySchema,
    tenant: &str,
    before: Option<&Map<String, Value>>,
    after: Option<&Map<String, Value>>,
) -> Value {
    let empty = Map::new();
    let (b, a) = (before.unwrap_or(&empty), after.unwrap_or(&empty));
    let mut keys: Vec<&String> = a.keys().collect();
    keys.extend(b.keys().filter(|k| !a.contains_key(*k)));
    let mut out = Map::new();
    for key in keys {
        if UNAUDITED.contains(&key.as_str()) {
            continue;
        }
        let (old, new) = (
            b.get(key).unwrap_or(&Value::Null),
            a.get(key).unwrap_or(&Value::Null),
        );
        if old == new || (before.is_none() && new.is_null()) {
            continue;
        }
        let pii = schema.field(key).is_some_and(|f| f.pii);
        let shown = |v: &Value| {
            if pii && !v.is_null() {
                json!({"sha256": pii_hash(tenant, v)})
            } else {
                v.clone()
            }
        };
        let mut change = Map::new();
        if before.is_some() {
            change.insert("before".into(), shown(old));
        }
        if after.is_some() {
            change.insert("after".into(), shown(new));
        }
        out.insert(key.clone(), Value::Object(change));
    }
    Value::Object(out)
}

/// The hash that stands for a `pii` value: SHA-256 over the tenant and the value's JSON,
/// so equal values can be matched within a tenant without the value being stored.
pub fn pii_hash(tenant: &str, value: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tenant.as_bytes());
    hasher.update([0]);
    hasher.update(value.to_string().as_bytes());
    hex(&hasher.finalize())
}

/// Tells the checkpointer which tenants' logs grew. Appends are counted after their
/// transaction commits.
#[derive(Debug, Default)]
pub struct AuditSignal {
    pending: std::sync::Mutex<HashMap<String, u64>>,
    notify: tokio::sync::Notify,
    every: std::sync::atomic::AtomicU64,
    sequencer: Arc<crate::audit_sequencer::Sequencer>,
}

/// Most tenants remembered as pending; past it, the next tick checkpoints them all.
const MAX_PENDING_TENANTS: usize = 100_000;

impl AuditSignal {
    /// A write of `tenant` in `handle`'s database committed with its audit records: on
    /// PostgreSQL they are sequenced now, in the background; the checkpointer is told.
    pub fn committed(&self, handle: &Arc<DatabaseHandle>, tenant: &str) {
        self.sequencer.kick(handle, tenant);
        self.appended(tenant);
    }

    /// `tenant`'s log has one more record.
    pub fn appended(&self, tenant: &str) {
        let every = self.every.load(std::sync::atomic::Ordering::Relaxed);
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending.len() >= MAX_PENDING_TENANTS && !pending.contains_key(tenant) {
            drop(pending);
            self.notify.notify_one();
            return;
        }
        let count = pending.entry(tenant.to_owned()).or_default();
        *count += 1;
        if every > 0 && *count >= every {
            drop(pending);
            self.notify.notify_one();
        }
    }

    /// Takes the tenants with at least `at_least` pending records.
    fn take(&self, at_least: u64) -> Vec<String> {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due: Vec<String> = pending
            .iter()
            .filter(|(_, n)| **n >= at_least)
            .map(|(t, _)| t.clone())
            .collect();
        for tenant in &due {
            pending.remove(tenant);
        }
        due
    }
}

/// The `audit` config section.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The Ed25519 seed (64 hex characters) that signs checkpoints, relative to the
    /// installation directory. Made on first boot outside production.
    pub signing_key_file: std::path::PathBuf,
    /// A checkpoint after this many new records of a tenant.
    pub checkpoint_every: u64,
    /// A checkpoint of every grown log at least this often.
    pub checkpoint_interval_ms: u64,
    /// The name logs are known by: `{origin}/{tenant}`.
    pub origin: String,
    /// Public keys (64 hex characters each) of signing keys this installation used
    /// before its current one: checkpoints they signed still verify. New checkpoints are
    /// signed with the current key only. This is how the audit key is rotated.
    pub retired_public_keys: Vec<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            signing_key_file: "data/audit-ed25519.key".into(),
            checkpoint_every: 1000,
            checkpoint_interval_ms: 10_000,
            origin: "codexion".into(),
            retired_public_keys: Vec::new(),
        }
    }
}

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DataError),
    /// The signing key is missing or unreadable.
    #[error("audit signing key: {0}")]
    Key(String),
    /// The request is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The tenant's log fails verification.
    #[error("audit log of tenant `{tenant}`: {error}")]
    Log {
        /// The tenant.
        tenant: String,
        /// The first problem.
        error: LogError,
    },
    /// A stored or given checkpoint does not verify.
    #[error("audit log of tenant `{tenant}`: {what}: {error}")]
    Checkpoint {
        /// The tenant.
        tenant: String,
        /// Which checkpoint.
        what: String,
        /// Why.
        error: prefiq_audit::CheckpointError,
    },
}

impl From<sqlx::Error> for AuditError {
    fn from(e: sqlx::Error) -> Self {
        AuditError::Database(DataError::Sql(e))
    }
}

/// Reads the checkpoint signing key, or (outside production) makes one on first use.
pub fn load_signing_key(
    root: &Path,
    env: &str,
    config: &AuditConfig,
) -> Result<SigningKey, AuditError> {
    let path = root.join(&config.signing_key_file);
    let seed =
        prefiq::secret::read_or_make_seed(&path, env, rand::random).map_err(AuditError::Key)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The public keys of `audit.retired_public_keys`; the error names the bad entry.
pub fn retired_keys(config: &AuditConfig) -> Result<Vec<ed25519_dalek::VerifyingKey>, String> {
    config
        .retired_public_keys
        .iter()
        .enumerate()
        .map(|(i, hex)| {
            let bad = || {
                format!(
                    "audit.retired_public_keys[{i}] must be an Ed25519 public key of 64 hex characters"
                )
            };
            let bytes: [u8; 32] = prefiq_audit::verify::unhex(hex.trim())
                .and_then(|b| b.try_into().ok())
                .ok_or_else(bad)?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| bad())
        })
        .collect()
}

/// The most records a proof or a list may span in memory at once.
pub const MAX_PROOF_SIZE: u64 = 1 << 22;

/// Records read per query while walking a log.
const CHUNK: i64 = 50_000;

/// A page of audit records.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only records of this entity.
    pub entity: Option<String>,
    /// Only records of this id.
    pub id: Option<String>,
    /// Only records of this actor.
    pub actor: Option<String>,
    /// Only records at or after this time (civil UTC text, compared as text).
    pub since: Option<String>,
    /// Only records before this time.
    pub until: Option<String>,
    /// Only records before this sequence number (the previous page's `next`).
    pub before: Option<u64>,
    /// Page size, at most 500.
    pub limit: Option<u32>,
}

/// What a successful verification covered.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The tenant.
    pub tenant: String,
    /// Records in the log.
    pub size: u64,
    /// Records the walk read (fewer than `size` when it started from a snapshot).
    pub walked: u64,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// The largest checkpoint, and so how much of the log signatures cover.
    pub covered: u64,
}

/// The tenants' audit logs.
pub struct AuditLog {
    repository: Arc<crate::entity::repo::Repository>,
    signal: Arc<AuditSignal>,
    key: SigningKey,
    /// Keys of earlier signing keys, whose checkpoints still verify.
    retired: Vec<ed25519_dalek::VerifyingKey>,
    config: AuditConfig,
    /// One checkpoint at a time per process.
    checkpointing: tokio::sync::Mutex<()>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn peaks_bytes(frontier: &Frontier) -> Vec<u8> {
    frontier.peaks().concat()
}

fn hashes(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| c.try_into().ok())
        .collect()
}

/// Runs `$body` with `$conn: &mut Conn` reading `$tenant`'s rows: on PostgreSQL inside a
/// transaction that acts as the application role for the tenant.
macro_rules! reading {
    ($database:expr, $tenant:expr, |$conn:ident| $body:expr) => {
        match $database {
            Database::Sqlite(db) => {
                let mut reader = db.readers.acquire().await?;
                let $conn = &mut Conn::Sqlite(&mut reader);
                $body
            }
            Database::Postgres(pool) => {
                let mut tx = crate::database::begin_postgres(pool).await?;
                crate::entity::repo::enter_tenant(&mut tx, $tenant).await?;
                let result = {
                    let $conn = &mut Conn::Postgres(&mut tx);
                    $body
                };
                tx.commit().await?;
                result
            }
        }
    };
}

/// Like `reading!`, in a write transaction: one of its own on SQLite's writer (a `?` in
/// `$body` drops it, which rolls it back); on PostgreSQL the same tenant transaction
/// `reading!` opens.
macro_rules! writing {
    ($database:expr, $tenant:expr, |$conn:ident| $body:expr) => {
        match $database {
            Database::Sqlite(_) => {
                let mut tx = $database.begin().await?;
                let result = {
                    let $conn = &mut tx.conn();
                    $body
                };
                tx.commit().await?;
                result
            }
            Database::Postgres(_) => reading!($database, $tenant, |$conn| $body),
        }
    };
}

/// A stored checkpoint.
struct StoredCheckpoint {
    size: u64,
    note: String,
    peaks: Vec<u8>,
    leaves: Vec<u8>,
}

const CHECKPOINT_COLUMNS: &str = "size, note, peaks, leaves";

const CHECKPOINT_TYPES: [SqlType; 4] =
    [SqlType::Int, SqlType::Text, SqlType::Bytes, SqlType::Bytes];

fn checkpoint_row(row: Vec<Cell>) -> StoredCheckpoint {
    let mut cells = row.into_iter();
    StoredCheckpoint {
        size: cells.next().and_then(|c| c.as_int()).unwrap_or(0).max(0) as u64,
        note: cells.next().and_then(Cell::into_text).unwrap_or_default(),
        peaks: cells.next().and_then(Cell::into_bytes).unwrap_or_default(),
        leaves: cells.next().and_then(Cell::into_bytes).unwrap_or_default(),
    }
}

impl AuditLog {
    /// The log over `repository`'s databases, signing with `key`.
    pub fn new(
        repository: Arc<crate::entity::repo::Repository>,
        key: SigningKey,
        config: AuditConfig,
    ) -> Self {
        let signal = repository.audit_signal();
        signal.every.store(
            config.checkpoint_every,
            std::sync::atomic::Ordering::Relaxed,
        );
        // Checked at boot by `retired_keys`; one that does not parse verifies nothing.
        let retired = retired_keys(&config).unwrap_or_default();
        AuditLog {
            repository,
            signal,
            key,
            retired,
            config,
            checkpointing: tokio::sync::Mutex::new(()),
        }
    }

    /// The name of `tenant`'s log, as its checkpoints say.
    pub fn origin(&self, tenant: &str) -> String {
        format!("{}/{tenant}", self.config.origin)
    }

    /// The key that verifies checkpoints.
    pub fn verifying_key(&self) -> ed25519_dalek::VerifyingKey {
        self.key.verifying_key()
    }

    async fn database(&self, tenant: &str) -> Result<Arc<DatabaseHandle>, AuditError> {
        if !prefiq::context::is_tenant_name(tenant) {
            return Err(AuditError::Invalid(format!(
                "`{tenant}` is not a tenant name"
            )));
        }
        self.repository
            .tenant_database(tenant)
            .await
            .map_err(|e| match e {
                crate::entity::repo::RepoError::Database(e) => AuditError::Database(e),
                other => AuditError::Invalid(other.to_string()),
            })
    }

    /// Appends a record that is not an entity change (a login, a role change, a tenant's
    /// lifecycle) in a transaction of its own.
    pub async fn record(&self, record: &AuditRecord<'_>) -> Result<(), AuditError> {
        let handle = self.database(record.tenant).await?;
        let database = handle.get()?;
        let mut sql = Sql::default();
        sql.text = append_statement(&mut sql, database.backend(), record);
        writing!(database, record.tenant, |conn| {
            conn.execute(&sql).await?;
        });
        self.signal.committed(&handle, record.tenant);
        Ok(())
    }

    /// `tenant`'s database, after numbering the records queued there (PostgreSQL), so a
    /// reader of the log sees every write that committed before it asked.
    async fn settled(&self, tenant: &str) -> Result<Arc<DatabaseHandle>, AuditError> {
        let handle = self.database(tenant).await?;
        crate::audit_sequencer::sequence(handle.get()?, tenant).await?;
        Ok(handle)
    }

    /// The tenants whose logs are in the main database (all of them in shared tenancy).
    pub async fn tenants(&self) -> Result<Vec<String>, AuditError> {
        let handle = self.repository.main_database();
        let sql = "SELECT tenant_id FROM prefiq_audit_heads ORDER BY tenant_id";
        let database = handle.get()?;
        let rows = database
            .reader()
            .await?
            .conn()
            .fetch(&Sql::new(sql, vec![]), &[SqlType::Text])
            .await?;
        let mut tenants: Vec<String> = rows
            .into_iter()
            .filter_map(|row| row.into_iter().next().and_then(Cell::into_text))
            .collect();
        // A tenant whose first records a crash left queued has no head yet.
        let mut more = crate::audit_sequencer::queued_tenants(database).await?;
        // With a database per tenant, each tenant's log lives in its own database.
        if let Some(databases) = self.repository.tenant_databases() {
            more.extend(databases.existing().await?);
        }
        for tenant in more {
            if let Err(at) = tenants.binary_search(&tenant) {
                tenants.insert(at, tenant);
            }
        }
        Ok(tenants)
    }

    /// The number of records in `tenant`'s log.
    pub async fn size(&self, tenant: &str) -> Result<u64, AuditError> {
        let handle = self.settled(tenant).await?;
        let sql = "SELECT COALESCE(MAX(seq), 0) FROM prefiq_audit WHERE tenant_id = $1";
        let rows = reading!(handle.get()?, tenant, |conn| conn
            .fetch(&Sql::new(sql, vec![tenant.into()]), &[SqlType::Int])
            .await?);
        let size = rows
            .first()
            .and_then(|r| r.first())
            .and_then(Cell::as_int)
            .unwrap_or(0);
        Ok(size.max(0) as u64)
    }

    /// Records `from..=to` of `tenant` (at most [`CHUNK`]), as `(seq, entry)`.
    async fn records(
        &self,
        database: &Database,
        tenant: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, String)>, AuditError> {
        self.raw_records(database, tenant, from, to)
            .await?
            .into_iter()
            .map(|(seq, entry)| {
                String::from_utf8(entry)
                    .map(|entry| (seq, entry))
                    .map_err(|_| AuditError::Invalid(format!("record {seq} is not UTF-8")))
            })
            .collect()
    }

    /// Like [`AuditLog::records`], as the bytes stored (a changed record need not be
    /// valid UTF-8).
    async fn raw_records(
        &self,
        database: &Database,
        tenant: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, AuditError> {
        let entry = match database.backend() {
            Backend::Sqlite => "CAST(entry AS BLOB)",
            Backend::Postgres => "convert_to(entry, 'UTF8')",
        };
        let sql = format!(
            "SELECT seq, {entry} FROM prefiq_audit WHERE tenant_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq LIMIT $4"
        );
        let sql = Sql::new(
            sql,
            vec![
                tenant.into(),
                (from as i64).into(),
                (to.min(i64::MAX as u64) as i64).into(),
                CHUNK.into(),
            ],
        );
        let rows = reading!(database, tenant, |conn| conn
            .fetch(&sql, &[SqlType::Int, SqlType::Bytes])
            .await?);
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut cells = row.into_iter();
                let seq = cells.next().and_then(|c| c.as_int()).unwrap_or(0);
                let entry = cells.next().and_then(Cell::into_bytes).unwrap_or_default();
                (seq.max(0) as u64, entry)
            })
            .collect())
    }

    async fn checkpoints(
        &self,
        database: &Database,
        tenant: &str,
        up_to: u64,
    ) -> Result<Vec<StoredCheckpoint>, AuditError> {
        let sql = format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM prefiq_audit_checkpoints WHERE tenant_id = $1 AND size <= $2 ORDER BY size"
        );
        let sql = Sql::new(sql, vec![tenant.into(), (up_to as i64).into()]);
        let rows = reading!(database, tenant, |conn| conn
            .fetch(&sql, &CHECKPOINT_TYPES)
            .await?);
        Ok(rows.into_iter().map(checkpoint_row).collect())
    }

    /// The latest signed checkpoint of `tenant`'s log, as text; `None` before the first.
    pub async fn latest_checkpoint(&self, tenant: &str) -> Result<Option<String>, AuditError> {
        let handle = self.database(tenant).await?;
        let sql = "SELECT note FROM prefiq_audit_checkpoints WHERE tenant_id = $1 ORDER BY size DESC LIMIT 1";
        let rows = reading!(handle.get()?, tenant, |conn| conn
            .fetch(&Sql::new(sql, vec![tenant.into()]), &[SqlType::Text])
            .await?);
        Ok(rows
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next())
            .and_then(Cell::into_text))
    }

    /// Signs a checkpoint of `tenant`'s log if it grew since the last one; the new size.
    pub async fn checkpoint(&self, tenant: &str) -> Result<Option<u64>, AuditError> {
        let _one = self.checkpointing.lock().await;
        let handle = self.settled(tenant).await?;
        let database = handle.get()?;
        let last = self.checkpoints_tail(database, tenant).await?;
        let (mut frontier, mut made) = match &last {
            Some(c) => (
                Frontier::from_parts(c.size, hashes(&c.peaks)).ok_or_else(|| {
                    AuditError::Invalid(format!(
                        "the checkpoint of size {} of `{tenant}` has a malformed frontier",
                        c.size
                    ))
                })?,
                None,
            ),
            None => (Frontier::new(), None),
        };
        loop {
            let from = frontier.size() + 1;
            let records = self.records(database, tenant, from, u64::MAX >> 1).await?;
            if records.is_empty() {
                break;
            }
            let mut leaves = Vec::with_capacity(records.len() * 32);
            for (seq, entry) in &records {
                if *seq != frontier.size() + 1 {
                    // Never sign over a gap: verification names it.
                    tracing::error!(target: "prefiq::audit", tenant, seq, expected = frontier.size() + 1, "the audit log has a gap; no checkpoint signed");
                    return Ok(made);
                }
                let leaf = merkle::leaf_hash(entry.as_bytes());
                frontier.push(leaf);
                leaves.extend_from_slice(&leaf);
            }
            let checkpoint = Checkpoint {
                origin: self.origin(tenant),
                size: frontier.size(),
                root: frontier.root(),
                time_ms: now_ms(),
            };
            let note = checkpoint::sign(&checkpoint, &self.key);
            let sql = "INSERT INTO prefiq_audit_checkpoints (tenant_id, size, time_ms, note, peaks, leaves) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, size) DO NOTHING";
            let peaks = peaks_bytes(&frontier);
            let sql = Sql::new(
                sql,
                vec![
                    tenant.into(),
                    (checkpoint.size as i64).into(),
                    checkpoint.time_ms.into(),
                    note.as_str().into(),
                    peaks.as_slice().into(),
                    leaves.as_slice().into(),
                ],
            );
            writing!(database, tenant, |conn| {
                conn.execute(&sql).await?;
            });
            made = Some(checkpoint.size);
        }
        Ok(made)
    }

    async fn checkpoints_tail(
        &self,
        database: &Database,
        tenant: &str,
    ) -> Result<Option<StoredCheckpoint>, AuditError> {
        let sql = format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM prefiq_audit_checkpoints WHERE tenant_id = $1 ORDER BY size DESC LIMIT 1"
        );
        let sql = Sql::new(sql, vec![tenant.into()]);
        let rows = reading!(database, tenant, |conn| conn
            .fetch(&sql, &CHECKPOINT_TYPES)
            .await?);
        Ok(rows.into_iter().next().map(checkpoint_row))
    }

    /// Checkpoints every pending log (and, at start, every log in the main database that
    /// grew past its last checkpoint), then waits for the next reason to. Returns when
    /// `stop` resolves, after a last checkpoint of everything pending.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let interval = Duration::from_millis(self.config.checkpoint_interval_ms.max(10));
        tokio::pin!(stop);
        // The first tick comes one interval after boot, when migrations have run.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        loop {
            let due = tokio::select! {
                () = &mut stop => break,
                () = self.signal.notify.notified() => self.signal.take(self.config.checkpoint_every.max(1)),
                _ = tick.tick() => {
                    let mut due = self.signal.take(1);
                    // Logs that grew before a crash, past their last checkpoint.
                    if std::mem::take(&mut first) {
                        match self.tenants().await {
                            Ok(all) => {
                                for tenant in all {
                                    if !due.contains(&tenant) {
                                        due.push(tenant);
                                    }
                                }
                            }
                            Err(e) => tracing::warn!(target: "prefiq::audit", error = %e, "cannot list the audit logs"),
                        }
                    }
                    due
                }
            };
            for tenant in due {
                self.checkpoint_logged(&tenant).await;
            }
        }
        self.checkpoint_pending().await;
    }

    /// Checkpoints every log with records not yet checkpointed by this process.
    pub async fn checkpoint_pending(&self) {
        for tenant in self.signal.take(1) {
            self.checkpoint_logged(&tenant).await;
        }
    }

    async fn checkpoint_logged(&self, tenant: &str) {
        match self.checkpoint(tenant).await {
            Ok(Some(size)) => {
                tracing::debug!(target: "prefiq::audit", tenant, size, "audit checkpoint signed")
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(target: "prefiq::audit", tenant, error = %e, "audit checkpoint failed")
            }
        }
    }

    /// A page of `tenant`'s records, newest first, parsed; and the `before` of the next
    /// page.
    pub async fn list(
        &self,
        tenant: &str,
        query: &AuditQuery,
    ) -> Result<(Vec<Value>, Option<u64>), AuditError> {
        let handle = self.settled(tenant).await?;
        let database = handle.get()?;
        let limit = i64::from(query.limit.unwrap_or(50).clamp(1, 500));
        let mut sql = Sql::default();
        let mut conditions = vec![format!(
            "tenant_id = {}",
            sql.arg(Arg::Text(Some(tenant.to_owned())))
        )];
        if let Some(entity) = &query.entity {
            conditions.push(format!(
                "entity = {}",
                sql.arg(Arg::Text(Some(entity.clone())))
            ));
        }
        if let Some(id) = &query.id {
            conditions.push(format!(
                "record_id = {}",
                sql.arg(Arg::Text(Some(id.clone())))
            ));
        }
        if let Some(before) = query.before {
            conditions.push(format!(
                "seq < {}",
                sql.arg(Arg::Int(Some(before.min(i64::MAX as u64) as i64)))
            ));
        }
        // Actor and time are read from the record itself: no index, bounded by the page.
        let json_text = |path: &str| match database.backend() {
            Backend::Sqlite => format!("json_extract(entry, '$.{path}')"),
            Backend::Postgres => format!("((entry::jsonb) ->> '{path}')"),
        };
        if let Some(actor) = &query.actor {
            conditions.push(format!(
                "{} = {}",
                json_text("actor"),
                sql.arg(Arg::Text(Some(actor.clone())))
            ));
        }
        if let Some(since) = &query.since {
            conditions.push(format!(
                "{} >= {}",
                json_text("time"),
                sql.arg(Arg::Text(Some(since.clone())))
            ));
        }
        if let Some(until) = &query.until {
            conditions.push(format!(
                "{} < {}",
                json_text("time"),
                sql.arg(Arg::Text(Some(until.clone())))
            ));
        }
        let limit_arg = sql.arg(Arg::Int(Some(limit + 1)));
        sql.text = format!(
            "SELECT seq, entry FROM prefiq_audit WHERE {} ORDER BY seq DESC LIMIT {limit_arg}",
            conditions.join(" AND ")
        );
        let types = [
            crate::entity::sql::SqlType::Int,
            crate::entity::sql::SqlType::Text,
        ];
        let rows = reading!(database, tenant, |conn| conn.fetch(&sql, &types).await?);
        let mut out = Vec::new();
        let mut next = None;
        for (i, row) in rows.iter().enumerate() {
            if let [
                crate::entity::sql::Cell::Int(seq),
                crate::entity::sql::Cell::Text(entry),
            ] = row.as_slice()
            {
                if i as i64 == limit {
                    next = Some(*seq as u64 + 1);
                    break;
                }
                let mut value: Value = serde_json::from_str(entry).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut value {
                    map.insert("entry".into(), json!(entry));
                }
                out.push(value);
            }
        }
        Ok((out, next))
    }
}

mod proofs;
mod provider;

pub use provider::AuditProvider;
