//! The tenant-scoped repository. Every write goes through one pipeline:
//! `before_validate` → `validate` hooks → field validation → authorize → before-hooks →
//! row, child rows and outbox event in one transaction → after-hooks.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use prefiq::{Backend, Context, async_trait};
use serde_json::{Map, Value, json};

use super::custom;
use super::ddl::quote;
use super::filter::{self, Condition, DEFAULT_LIMIT, MAX_LIMIT, QueryError};
pub use super::permission::{FieldAccess, RowAccess, RowCondition};
use super::runtime;
use super::schema::{EntitySchema, FieldDef, FieldKind, Naming};
use super::sql::{Arg, Cell, Conn, Sql, SqlType};
use super::tree;
use super::value::{Stored, ValueError, civil_now, coerce, to_json};
use super::{Entities, EntityRegistry};
use crate::DataError;
use crate::batch::Outcome;
use crate::database::{Database, DatabaseHandle};

/// Runs `$body` with `$conn: &mut Conn` inside a write transaction, committing when it
/// finishes; a `?` in `$body` rolls the transaction back and returns the error.
///
/// On SQLite the write joins a group commit (see [`crate::batch`]): if another write of its
/// batch fails, the batch is rolled back and `$body` runs again in a transaction of its
/// own, so `$body` must only touch the database.
macro_rules! in_write_tx {
    ($database:expr, $conn:ident => $body:expr) => {
        match $database {
            Database::Sqlite(db) => {
                let mut solo = false;
                loop {
                    let mut ticket = db.batcher.enter(solo).await?;
                    #[allow(clippy::let_unit_value)]
                    let result: Result<_, RepoError> = async {
                        let $conn = &mut Conn::Sqlite(ticket.conn());
                        Ok($body)
                    }
                    .await;
                    match result {
                        Err(error) => {
                            ticket.abort().await;
                            return Err(error.into());
                        }
                        Ok(value) => match ticket.commit().await {
                            Outcome::Committed => break value,
                            Outcome::Retry if !solo => solo = true,
                            Outcome::Retry => {
                                return Err(RepoError::Database(DataError::Batch(
                                    "a write alone in its transaction was asked to retry".into(),
                                ))
                                .into());
                            }
                            Outcome::Failed(message) => {
                                return Err(RepoError::Database(DataError::Batch(message)).into());
                            }
                        },
                    }
                }
            }
            Database::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                #[allow(clippy::let_unit_value)]
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

/// Runs `$body` with `$conn: &mut Conn` on a reading connection (SQLite's reader pool).
macro_rules! on_reader {
    ($database:expr, $conn:ident => $body:expr) => {
        match $database {
            Database::Sqlite(db) => {
                let mut pooled = db.readers.acquire().await?;
                let $conn = &mut Conn::Sqlite(&mut pooled);
                $body
            }
            Database::Postgres(pool) => {
                let mut pooled = pool.acquire().await?;
                let $conn = &mut Conn::Postgres(&mut pooled);
                $body
            }
        }
    };
}

/// Runs `$body` with `$conn: &mut Conn` on the writing connection, outside a transaction.
macro_rules! on_writer {
    ($database:expr, $conn:ident => $body:expr) => {
        match $database {
            Database::Sqlite(db) => {
                let mut pooled = db.writer.acquire().await?;
                let $conn = &mut Conn::Sqlite(&mut pooled);
                $body
            }
            Database::Postgres(pool) => {
                let mut pooled = pool.acquire().await?;
                let $conn = &mut Conn::Postgres(&mut pooled);
                $body
            }
        }
    };
}

/// Like `in_write_tx!`, for statements on entity tables: on PostgreSQL the transaction
/// acts as the application role for `$tenant`, so row-level security holds it to that
/// tenant's rows whatever the SQL says.
macro_rules! in_tenant_tx {
    ($database:expr, $tenant:expr, $conn:ident => $body:expr) => {
        match $database {
            Database::Sqlite(_) => in_write_tx!($database, $conn => $body),
            Database::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                enter_tenant(&mut tx, $tenant).await?;
                #[allow(clippy::let_unit_value)]
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

/// Like `on_reader!`, for reads of entity tables: on PostgreSQL a transaction
/// that acts as the application role for `$tenant` (see `in_tenant_tx!`).
macro_rules! on_tenant_reader {
    ($database:expr, $tenant:expr, $conn:ident => $body:expr) => {
        match $database {
            Database::Sqlite(db) => {
                let mut pooled = db.readers.acquire().await?;
                let $conn = &mut Conn::Sqlite(&mut pooled);
                $body
            }
            Database::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                enter_tenant(&mut tx, $tenant).await?;
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

/// Makes a PostgreSQL transaction act as [`super::ddl::APP_ROLE`] for `tenant`: the role
/// has no `BYPASSRLS`, and the tenant policies read the tenant from the transaction-local
/// setting [`super::ddl::TENANT_SETTING`]. Both end with the transaction.
pub(crate) async fn enter_tenant(
    tx: &mut sqlx::PgConnection,
    tenant: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('role', $1, true), set_config($2, $3, true)")
        .bind(super::ddl::APP_ROLE)
        .bind(super::ddl::TENANT_SETTING)
        .bind(tenant)
        .execute(tx)
        .await?;
    Ok(())
}

/// Longest accepted list of child rows in one table field.
pub const MAX_CHILD_ROWS: usize = 1000;

/// Who a repository call acts for. It cannot exist without a tenant: there is no way to
/// call the repository unscoped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    tenant: String,
    user: Option<String>,
    principal: Option<Arc<prefiq::Principal>>,
    trace_id: String,
}

impl TenantScope {
    /// The scope of an operation's context; an error when the context has no tenant.
    pub fn new(context: &Context) -> Result<Self, RepoError> {
        let tenant = context.tenant.clone().ok_or(RepoError::NoTenant)?;
        if !prefiq::context::is_tenant_name(&tenant) {
            return Err(RepoError::NoTenant);
        }
        Ok(TenantScope {
            tenant,
            user: context.user.clone(),
            principal: context.principal.clone(),
            trace_id: context.trace_id.to_string(),
        })
    }

    /// The verified principal the call acts for; `None` for system operations, which
    /// the authorizer does not restrict.
    pub fn principal(&self) -> Option<&prefiq::Principal> {
        self.principal.as_deref()
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The trace id of the request or job the call belongs to.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The acting user, if known.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
}

/// One problem with one part of the input: a JSON pointer, a stable code, a sentence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Such as `/status` or `/items/2/qty`.
    pub pointer: String,
    /// Such as `missing_required`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

fn field_error(
    pointer: impl Into<String>,
    code: &'static str,
    message: impl Into<String>,
) -> FieldError {
    FieldError {
        pointer: pointer.into(),
        code,
        message: message.into(),
    }
}

/// Why a repository call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// The call had no (valid) tenant scope.
    #[error("the operation has no tenant scope")]
    NoTenant,
    /// No such entity (or not one that can be addressed directly).
    #[error("unknown entity `{0}`")]
    UnknownEntity(String),
    /// No such live row in this tenant.
    #[error("{entity} `{id}` does not exist")]
    NotFound {
        /// The entity.
        entity: String,
        /// The id asked for.
        id: String,
    },
    /// The input is invalid; every problem is listed.
    #[error("the input is invalid")]
    Invalid(Vec<FieldError>),
    /// A unique field already has this value in another row.
    #[error("{}", .0.message)]
    Unique(FieldError),
    /// The row changed since the caller read it.
    #[error("version conflict: the {entity} is at version {actual}, not {expected}")]
    VersionConflict {
        /// The entity.
        entity: String,
        /// The version the caller had.
        expected: i64,
        /// The version stored.
        actual: i64,
    },
    /// A hook refused the write.
    #[error("{message}")]
    Rejected {
        /// `module::hook`.
        hook: String,
        /// The hook's message, for the caller.
        message: String,
    },
    /// The authorizer refused.
    #[error("{reason}")]
    Forbidden {
        /// The action refused (`read`, `update`, …).
        action: String,
        /// Why, for the caller.
        reason: String,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DataError),
}

impl From<sqlx::Error> for RepoError {
    fn from(e: sqlx::Error) -> Self {
        RepoError::Database(DataError::Sql(e))
    }
}

impl From<QueryError> for RepoError {
    fn from(e: QueryError) -> Self {
        RepoError::Invalid(vec![field_error(e.pointer, e.code, e.message)])
    }
}

/// The points of the write pipeline a hook can attach to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityEvent {
    /// Before field validation; may change the document.
    BeforeValidate,
    /// Validation by the module; may change the document or refuse.
    Validate,
    /// Before a new row is written.
    BeforeInsert,
    /// After a new row is committed.
    AfterInsert,
    /// Before a changed row is written.
    BeforeUpdate,
    /// After a change is committed.
    AfterUpdate,
    /// Before a document is submitted.
    BeforeSubmit,
    /// After a submit is committed.
    OnSubmit,
    /// After a cancel is committed.
    OnCancel,
    /// Before a row is (soft) deleted.
    BeforeDelete,
    /// After a delete is committed.
    AfterDelete,
}

/// What a hook receives; it returns the (possibly changed) document.
pub struct HookInput {
    /// Who the write acts for.
    pub scope: TenantScope,
    /// The entity.
    pub entity: Arc<EntitySchema>,
    /// The point in the pipeline.
    pub event: EntityEvent,
    /// The document as it will be written (or was written, for after-hooks).
    pub doc: Map<String, Value>,
    /// The stored document before this write, for updates and deletes.
    pub old: Option<Map<String, Value>>,
}

/// A hook's code.
pub type EntityHookFn =
    Arc<dyn Fn(HookInput) -> BoxFuture<'static, Result<Map<String, Value>, String>> + Send + Sync>;

/// A hook that a module contributes (`cx.services.contribute(Arc::new(hook))`). Hooks run
/// in module order; a before-hook's error aborts the write and its message reaches the
/// caller; an after-hook's error is logged.
#[derive(Clone)]
pub struct EntityHook {
    /// The module that registers it.
    pub module: String,
    /// A name for logs.
    pub name: String,
    /// The entity it applies to, or `*` for every entity.
    pub entity: String,
    /// When it runs.
    pub event: EntityEvent,
    /// What it does.
    pub run: EntityHookFn,
}

/// Work a module runs *inside* the transaction that submits or cancels a document of its
/// entity, after the status change and before the commit: the accounting app writes the
/// ledger postings of a journal entry here, so a submitted entry without its postings can
/// never be seen. An error rolls the whole write back and reaches the caller as it is.
///
/// On SQLite the write may be run again in a transaction of its own when another write of
/// its group commit fails, so `run` must only touch the database through `conn`.
#[async_trait]
pub trait TransactionHook: Send + Sync {
    /// The entity it applies to.
    fn entity(&self) -> &str;

    /// Runs for [`EntityEvent::OnSubmit`] and [`EntityEvent::OnCancel`]; `doc` is the
    /// stored document with its new `docstatus`.
    async fn run(
        &self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        event: EntityEvent,
        doc: &Map<String, Value>,
    ) -> Result<(), RepoError>;
}

/// The body of [`Repository::in_transaction`]: called with the transaction's connection,
/// possibly more than once (see [`TransactionHook`]).
pub type TransactionBody<'f, T> =
    Box<dyn for<'a, 'c> FnMut(&'a mut Conn<'c>) -> BoxFuture<'a, Result<T, RepoError>> + Send + 'f>;

/// The authorization point of the pipeline; the identity layer binds one as
/// `dyn EntityAuthorizer`. Without one every call is allowed.
#[async_trait]
pub trait EntityAuthorizer: Send + Sync {
    /// `Ok` to allow `action` (`read`, `create`, `update`, `delete`, `submit`, `cancel`,
    /// `amend`) on `entity`; the error is the reason for the caller.
    async fn authorize(
        &self,
        scope: &TenantScope,
        entity: &EntitySchema,
        action: &str,
        doc: Option<&Map<String, Value>>,
    ) -> Result<(), String>;

    /// The rows of `entity` that `scope` may list; a list never returns a row that
    /// [`EntityAuthorizer::authorize`] would refuse to `read`.
    async fn row_access(&self, scope: &TenantScope, entity: &EntitySchema) -> RowAccess {
        let _ = (scope, entity);
        RowAccess::All
    }

    /// The fields of `entity` that `scope` may not see or may not set.
    fn field_access(&self, scope: &TenantScope, entity: &EntitySchema) -> FieldAccess {
        let _ = (scope, entity);
        FieldAccess::default()
    }

    /// Whether `scope` may attempt `action` on `entity` at all (on some row): the route
    /// asks before reading the request, so a refused caller learns nothing from
    /// validation. The pipeline still decides on the row.
    async fn may_attempt(&self, scope: &TenantScope, entity: &EntitySchema, action: &str) -> bool {
        let _ = (scope, entity, action);
        true
    }
}

/// A list request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Fields to return (all when empty); `id` always comes back.
    pub fields: Vec<String>,
    /// The `filters` parameter as JSON.
    pub filters: Option<Value>,
    /// `field [asc|desc]`.
    pub order_by: Option<String>,
    /// Page size (default 20, at most 500).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Also count the rows the filters select (up to [`MAX_TOTAL`]).
    pub total: bool,
}

/// The most rows a list counts: past it the count says "more than this", so a count stays
/// one bounded index walk however large the table.
pub const MAX_TOTAL: u64 = 10_000;

/// One page of a list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page {
    /// The records.
    pub data: Vec<Value>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// How many rows the filters select, when asked for and when it can be told: at most
    /// [`MAX_TOTAL`] + 1 (meaning "more"), and absent when row-level policies are checked
    /// row by row (a count would reveal rows the caller may not read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// How each selected column maps back to a record property.
#[derive(Debug, Clone)]
enum Slot {
    System(&'static str, SqlType),
    Custom,
    Field(FieldDef),
    MoneyCurrency,
}

const SYSTEM_SELECT: &[(&str, SqlType)] = &[
    ("id", SqlType::Text),
    ("name", SqlType::Text),
    ("created_at", SqlType::Text),
    ("created_by", SqlType::Text),
    ("modified_at", SqlType::Text),
    ("modified_by", SqlType::Text),
    ("version", SqlType::Int),
    ("docstatus", SqlType::Int),
];

/// Properties clients may send back unchanged (from a GET) and that are ignored on write.
const SYSTEM_INPUT: &[&str] = &[
    "id",
    "name",
    "created_at",
    "created_by",
    "modified_at",
    "modified_by",
    "version",
    "docstatus",
    "custom",
    "amended_from",
    "idx",
];

fn sql_type(field: &FieldDef) -> SqlType {
    match field.kind {
        FieldKind::Int | FieldKind::Decimal { .. } | FieldKind::Money => SqlType::Int,
        FieldKind::Bool => SqlType::Bool,
        _ => SqlType::Text,
    }
}

fn select_list(schema: &EntitySchema, backend: Backend) -> (String, Vec<Slot>, Vec<SqlType>) {
    let mut columns = Vec::new();
    let mut slots = Vec::new();
    for (name, ty) in SYSTEM_SELECT {
        columns.push((*name).to_owned());
        slots.push(Slot::System(name, *ty));
    }
    columns.push(if backend == Backend::Postgres {
        "custom::text".into()
    } else {
        "custom".into()
    });
    slots.push(Slot::Custom);
    if !schema.child {
        columns.push("amended_from".into());
        slots.push(Slot::System("amended_from", SqlType::Text));
    } else {
        columns.push("idx".into());
        slots.push(Slot::System("idx", SqlType::Int));
    }
    for field in schema.fields.iter().filter(|f| f.kind.has_column()) {
        let col = quote(&field.name);
        columns.push(
            if backend == Backend::Postgres && matches!(field.kind, FieldKind::Json) {
                format!("{col}::text")
            } else {
                col
            },
        );
        slots.push(Slot::Field(field.clone()));
        if matches!(field.kind, FieldKind::Money) {
            columns.push(quote(&format!("{}_currency", field.name)));
            slots.push(Slot::MoneyCurrency);
        }
    }
    let types = slots
        .iter()
        .map(|s| match s {
            Slot::System(_, ty) => *ty,
            Slot::Custom | Slot::MoneyCurrency => SqlType::Text,
            Slot::Field(f) => sql_type(f),
        })
        .collect();
    (columns.join(", "), slots, types)
}

/// Records a custom field definition and creates its index, in the caller's transaction.
async fn insert_custom_field(
    conn: &mut Conn<'_>,
    sql: &Sql,
    index: Option<&str>,
) -> Result<(), RepoError> {
    conn.execute(sql).await.map_err(|e| match &e {
        DataError::Sql(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            RepoError::Unique(field_error(
                "/name",
                "unique",
                "a custom field of that name already exists",
            ))
        }
        _ => RepoError::Database(e),
    })?;
    if let Some(index) = index {
        conn.execute(&Sql {
            text: index.to_owned(),
            args: vec![],
        })
        .await?;
    }
    Ok(())
}

/// Replaces the stored `custom` object of a record by what the API shows.
fn show_custom(definitions: &[FieldDef], record: &mut Map<String, Value>) {
    let shown = match record.get("custom") {
        Some(Value::Object(stored)) if !stored.is_empty() => custom::show(definitions, stored),
        _ => return,
    };
    record.insert("custom".into(), Value::Object(shown));
}

fn sha2_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn cell_to_stored(cell: &Cell) -> Stored {
    match cell {
        Cell::Null => Stored::Null,
        Cell::Text(t) => Stored::Text(t.clone()),
        Cell::Int(i) => Stored::Int(*i),
        Cell::Bool(b) => Stored::Bool(*b),
    }
}

fn cell_json(cell: &Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Text(t) => Value::String(t.clone()),
        Cell::Int(i) => Value::from(*i),
        Cell::Bool(b) => Value::Bool(*b),
    }
}

fn row_to_record(slots: &[Slot], cells: &[Cell]) -> Map<String, Value> {
    let mut record = Map::new();
    let mut i = 0;
    while i < slots.len() {
        match &slots[i] {
            Slot::System(name, _) => {
                record.insert((*name).to_owned(), cell_json(&cells[i]));
            }
            Slot::Custom => {
                let custom = match &cells[i] {
                    Cell::Text(t) => serde_json::from_str(t).unwrap_or_else(|_| json!({})),
                    _ => json!({}),
                };
                record.insert("custom".into(), custom);
            }
            Slot::Field(field) if matches!(field.kind, FieldKind::Money) => {
                let stored = match (&cells[i], cells.get(i + 1)) {
                    (Cell::Int(minor), Some(Cell::Text(currency))) => Stored::Money {
                        minor: *minor,
                        currency: currency.clone(),
                    },
                    _ => Stored::Null,
                };
                record.insert(field.name.clone(), to_json(field, &stored));
                i += 1;
            }
            Slot::Field(field) => {
                record.insert(
                    field.name.clone(),
                    to_json(field, &cell_to_stored(&cells[i])),
                );
            }
            Slot::MoneyCurrency => {}
        }
        i += 1;
    }
    record
}

/// Values of one validated document: column values and child rows per table field.
#[derive(Debug, Default)]
struct Validated {
    columns: Vec<(FieldDef, Stored)>,
    children: Vec<(FieldDef, Arc<EntitySchema>, Vec<Validated>)>,
    /// Custom field values: (storage form, API form); `None` for child rows.
    custom: Option<custom::CustomValues>,
}

fn stored_args(field: &FieldDef, stored: &Stored) -> Vec<Arg> {
    match (&field.kind, stored) {
        (FieldKind::Money, Stored::Money { minor, currency }) => {
            vec![Arg::Int(Some(*minor)), Arg::Text(Some(currency.clone()))]
        }
        (FieldKind::Money, _) => vec![Arg::Int(None), Arg::Text(None)],
        (_, Stored::Null) => vec![match sql_type(field) {
            SqlType::Text => Arg::Text(None),
            SqlType::Int => Arg::Int(None),
            SqlType::Bool => Arg::Bool(None),
        }],
        (_, Stored::Text(t)) => vec![Arg::Text(Some(t.clone()))],
        (_, Stored::Int(i)) => vec![Arg::Int(Some(*i))],
        (_, Stored::Bool(b)) => vec![Arg::Bool(Some(*b))],
        (_, Stored::Money { .. }) => vec![Arg::Text(None)],
    }
}

fn column_names(field: &FieldDef) -> Vec<String> {
    let mut out = vec![quote(&field.name)];
    if matches!(field.kind, FieldKind::Money) {
        out.push(quote(&format!("{}_currency", field.name)));
    }
    out
}

fn placeholder(sql: &mut Sql, arg: Arg, field: &FieldDef, backend: Backend) -> String {
    let p = sql.arg(arg);
    if backend == Backend::Postgres && matches!(field.kind, FieldKind::Json) {
        format!("{p}::jsonb")
    } else {
        p
    }
}

fn object(value: Value, pointer: &str) -> Result<Map<String, Value>, RepoError> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(RepoError::Invalid(vec![field_error(
            pointer,
            "wrong_type",
            "expected a JSON object",
        )])),
    }
}

/// The repository: tenant-scoped reads and pipelined writes for every entity.
pub struct Repository {
    handle: Arc<DatabaseHandle>,
    entities: Arc<Entities>,
    hooks: Vec<Arc<EntityHook>>,
    transaction_hooks: Vec<Arc<dyn TransactionHook>>,
    authorizer: Option<Arc<dyn EntityAuthorizer>>,
    /// Where each tenant's rows live; `None` is the main database for every tenant.
    tenants: Option<Arc<crate::tenants::TenantDatabases>>,
    custom_cache: std::sync::Mutex<CustomCache>,
    /// When the runtime entities were last re-read for an unknown name.
    runtime_reload: std::sync::Mutex<Option<std::time::Instant>>,
    /// Told of every committed audit record, for the checkpointer.
    audit: Arc<crate::audit::AuditSignal>,
    /// Whether writes append audit records: always, but for the benchmark's baseline.
    audited: bool,
}

/// How often an unknown entity name may make the repository re-read the runtime entities.
pub const RUNTIME_RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Custom field definitions by (tenant, entity), with when they were read.
type CustomCache =
    std::collections::HashMap<(String, String), (std::time::Instant, Arc<Vec<FieldDef>>)>;

/// How long cached custom field definitions are trusted. Changes made through this process
/// invalidate its cache at once; another replica sees them within this time.
const CUSTOM_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The cache is cleared when it holds this many (tenant, entity) pairs.
const CUSTOM_CACHE_MAX: usize = 10_000;

impl Repository {
    /// A repository over `handle` for the entities of `entities`.
    pub fn new(
        handle: Arc<DatabaseHandle>,
        entities: Arc<Entities>,
        hooks: Vec<Arc<EntityHook>>,
        authorizer: Option<Arc<dyn EntityAuthorizer>>,
    ) -> Self {
        Repository {
            handle,
            entities,
            hooks,
            transaction_hooks: Vec::new(),
            authorizer,
            tenants: None,
            custom_cache: std::sync::Mutex::default(),
            runtime_reload: std::sync::Mutex::default(),
            audit: Arc::default(),
            audited: true,
        }
    }

    /// The same repository writing no audit records: only the audit benchmark's
    /// baseline, which measures what the records cost. Nothing else may use it.
    #[doc(hidden)]
    pub fn unaudited_for_benchmarks(mut self) -> Self {
        self.audited = false;
        self
    }

    /// The same repository running `hooks` in the transactions of submits and cancels.
    pub fn with_transaction_hooks(mut self, hooks: Vec<Arc<dyn TransactionHook>>) -> Self {
        self.transaction_hooks = hooks;
        self
    }

    /// Runs `body` in one write transaction on the database that holds the scope's rows,
    /// acting (on PostgreSQL) as the application role for the scope's tenant, so row-level
    /// security holds it to that tenant. For a module's set-based writers (bulk imports);
    /// they own their statements, and the audit records they append with
    /// [`crate::audit::append_statement`]. The checkpointer is told of new records.
    pub async fn in_transaction<T: Send>(
        &self,
        scope: &TenantScope,
        mut body: TransactionBody<'_, T>,
    ) -> Result<T, RepoError> {
        let handle = self.tenant_handle(scope).await?;
        let value = in_tenant_tx!(handle.get()?, &scope.tenant, conn => body(conn).await?);
        self.audit.appended(&scope.tenant);
        Ok(value)
    }

    /// Runs `body` on a reading connection of the database that holds the scope's rows
    /// (SQLite's reader pool; on PostgreSQL a transaction acting as the application role
    /// for the scope's tenant): for a module's reports, which read many rows at once.
    pub async fn read<T: Send>(
        &self,
        scope: &TenantScope,
        mut body: TransactionBody<'_, T>,
    ) -> Result<T, RepoError> {
        let handle = self.tenant_handle(scope).await?;
        let value = on_tenant_reader!(handle.get()?, &scope.tenant, conn => body(conn).await?);
        Ok(value)
    }

    /// What the audit checkpointer listens to.
    pub fn audit_signal(&self) -> Arc<crate::audit::AuditSignal> {
        self.audit.clone()
    }

    /// The database that holds `tenant`'s rows (and its audit log).
    pub async fn tenant_database(&self, tenant: &str) -> Result<Arc<DatabaseHandle>, RepoError> {
        match &self.tenants {
            Some(tenants) => Ok(tenants.handle(tenant).await?),
            None => Ok(self.handle.clone()),
        }
    }

    /// The main database.
    pub fn main_database(&self) -> Arc<DatabaseHandle> {
        self.handle.clone()
    }

    /// The entity registry.
    pub fn registry(&self) -> Arc<EntityRegistry> {
        self.entities.registry()
    }

    /// The entity `entity` as `scope`'s tenant sees it. An unknown name re-reads the runtime
    /// entities (at most once per [`RUNTIME_RELOAD_INTERVAL`]), so an entity another replica
    /// created is found without a restart.
    pub async fn schema(
        &self,
        scope: &TenantScope,
        entity: &str,
    ) -> Result<Arc<EntitySchema>, RepoError> {
        let visible = |registry: &EntityRegistry| {
            registry
                .get(entity)
                .filter(|s| !s.child && s.visible_to(Some(&scope.tenant)))
                .cloned()
        };
        if let Some(schema) = visible(&self.entities.registry()) {
            return Ok(schema);
        }
        if self.reload_runtime_entities().await?
            && let Some(schema) = visible(&self.entities.registry())
        {
            return Ok(schema);
        }
        Err(RepoError::UnknownEntity(entity.to_owned()))
    }

    /// Adds runtime entities recorded since the registry was loaded; `false` when it is too
    /// soon to look again or the database is not connected.
    async fn reload_runtime_entities(&self) -> Result<bool, RepoError> {
        {
            let Ok(mut last) = self.runtime_reload.lock() else {
                return Ok(false);
            };
            if last.is_some_and(|at| at.elapsed() < RUNTIME_RELOAD_INTERVAL) {
                return Ok(false);
            }
            *last = Some(std::time::Instant::now());
        }
        let Ok(database) = self.handle.get() else {
            return Ok(false);
        };
        let registry = self.entities.registry();
        let added: Vec<EntitySchema> = runtime::load(database)
            .await?
            .into_iter()
            .filter(|s| registry.get(&s.name).is_none())
            .collect();
        if added.is_empty() {
            return Ok(false);
        }
        self.entities.add(added).map_err(|e| {
            RepoError::Database(DataError::Sql(sqlx::Error::Decode(e.to_string().into())))
        })?;
        Ok(true)
    }

    /// The runtime entities `scope`'s tenant created, by name.
    pub fn runtime_entities(&self, scope: &TenantScope) -> Vec<Arc<EntitySchema>> {
        self.entities
            .registry()
            .all()
            .filter(|s| s.owner_tenant() == Some(scope.tenant()))
            .cloned()
            .collect()
    }

    /// Creates a runtime entity for `scope`'s tenant from `definition` (a schema document):
    /// its table through a recorded migration, then its place in the registry, so its REST
    /// resource and OpenAPI schema exist at once. Returns the stored schema.
    pub async fn create_entity(
        &self,
        scope: &TenantScope,
        definition: &Value,
    ) -> Result<Arc<EntitySchema>, RepoError> {
        let invalid = |pointer: &str, code: &'static str, message: String| {
            RepoError::Invalid(vec![field_error(pointer, code, message)])
        };
        let schema = runtime::parse_definition(&scope.tenant, definition).map_err(|e| {
            invalid(
                &runtime::error_pointer(definition, &e),
                "invalid_schema",
                e.to_string(),
            )
        })?;
        self.authorize(scope, &schema, "customize", None).await?;
        let registry = self.entities.registry();
        if registry.get(&schema.name).is_some() {
            return Err(RepoError::Unique(field_error(
                "/name",
                "unique",
                format!("an entity called `{}` already exists", schema.name),
            )));
        }
        if self.runtime_entities(scope).len() >= runtime::MAX_RUNTIME_ENTITIES {
            return Err(invalid(
                "",
                "too_many",
                format!(
                    "a tenant may create at most {} entities",
                    runtime::MAX_RUNTIME_ENTITIES
                ),
            ));
        }
        for (i, field) in schema.fields.iter().enumerate() {
            if let FieldKind::Link { target: entity } = &field.kind
                && !registry
                    .get(entity)
                    .is_some_and(|t| t.visible_to(Some(&scope.tenant)))
                && *entity != schema.name
            {
                return Err(invalid(
                    &format!("/fields/{i}"),
                    "invalid_schema",
                    format!("field `{}` links to unknown entity `{entity}`", field.name),
                ));
            }
        }
        // Cross-checks (a link to a child entity, say) before any DDL runs.
        registry.with(vec![schema.clone()]).map_err(|e| {
            invalid(
                &runtime::error_pointer(definition, &e),
                "invalid_schema",
                e.to_string(),
            )
        })?;
        let database = self.database()?;
        let pending = super::ddl::plan_entity(&schema, None, database.backend())
            .map_err(|e| invalid("", "invalid_schema", e.to_string()))?
            .ok_or_else(|| invalid("", "invalid_schema", "the entity has no table".into()))?;
        let sum = crate::migrate::checksum(&pending.sql);
        match crate::migrate::apply_one(database, &pending, &sum).await {
            Ok(_) => {}
            // Another request (or replica) created the same name first.
            Err(e) if e.to_string().contains("already exists") => {
                return Err(RepoError::Unique(field_error(
                    "/name",
                    "unique",
                    format!("an entity called `{}` already exists", schema.name),
                )));
            }
            Err(e) => return Err(e.into()),
        }
        if let Database::Postgres(pool) = database {
            crate::migrate::secure_tables(pool, super::ddl::tenant_tables(&schema)).await?;
        }
        // With a database per tenant, the definition stays in the main database (where
        // every replica finds it) and the rows live in the tenant's.
        let handle = self.tenant_handle(scope).await?;
        if !Arc::ptr_eq(&handle, &self.handle) {
            let tenant_database = handle.get()?;
            crate::migrate::apply_one(tenant_database, &pending, &sum).await?;
            if let Database::Postgres(pool) = tenant_database {
                crate::migrate::secure_tables(pool, super::ddl::tenant_tables(&schema)).await?;
            }
        }
        tracing::info!(
            target: "prefiq::entity",
            tenant = %scope.tenant,
            entity = %schema.name,
            migration = %pending.id,
            trace_id = %scope.trace_id,
            "runtime entity created"
        );
        let name = schema.name.clone();
        self.entities.add(vec![schema]).map_err(|e| {
            RepoError::Database(DataError::Sql(sqlx::Error::Decode(e.to_string().into())))
        })?;
        self.schema(scope, &name).await
    }

    fn database(&self) -> Result<&Database, RepoError> {
        Ok(self.handle.get()?)
    }

    /// The database that holds `scope`'s rows: the main one, or in `database` tenancy
    /// the tenant's own.
    async fn tenant_handle(&self, scope: &TenantScope) -> Result<Arc<DatabaseHandle>, RepoError> {
        self.tenant_database(&scope.tenant).await
    }

    /// The route's check: an error when `scope` may not attempt `action` on any row of
    /// `entity` (or the entity does not exist for it).
    pub async fn check_route(
        &self,
        scope: &TenantScope,
        entity: &str,
        action: &str,
    ) -> Result<(), RepoError> {
        let schema = self.schema(scope, entity).await?;
        match &self.authorizer {
            Some(authorizer) if !authorizer.may_attempt(scope, &schema, action).await => {
                Err(RepoError::Forbidden {
                    action: action.to_owned(),
                    reason: format!("`{action}` on {} is not permitted for you", schema.name),
                })
            }
            _ => Ok(()),
        }
    }

    /// The same repository, keeping each tenant's rows where `tenants` says.
    #[must_use]
    pub fn with_tenant_databases(mut self, tenants: Arc<crate::tenants::TenantDatabases>) -> Self {
        self.tenants = Some(tenants);
        self
    }

    async fn authorize(
        &self,
        scope: &TenantScope,
        schema: &EntitySchema,
        action: &str,
        doc: Option<&Map<String, Value>>,
    ) -> Result<(), RepoError> {
        match &self.authorizer {
            Some(authorizer) => authorizer
                .authorize(scope, schema, action, doc)
                .await
                .map_err(|reason| RepoError::Forbidden {
                    action: action.to_owned(),
                    reason,
                }),
            None => Ok(()),
        }
    }

    fn field_access(&self, scope: &TenantScope, schema: &EntitySchema) -> FieldAccess {
        match &self.authorizer {
            Some(authorizer) => authorizer.field_access(scope, schema),
            None => FieldAccess::default(),
        }
    }

    /// Refuses input that sets a field the principal may not set: on create any value, on
    /// update a value other than the stored one (clients send back what they read).
    fn check_writable(
        &self,
        scope: &TenantScope,
        schema: &EntitySchema,
        input: &Map<String, Value>,
        current: Option<&Map<String, Value>>,
    ) -> Result<(), RepoError> {
        let access = self.field_access(scope, schema);
        let action = if current.is_some() {
            "update"
        } else {
            "create"
        };
        for name in &access.read_only {
            let Some(value) = input.get(name) else {
                continue;
            };
            let unchanged = match current {
                Some(current) => current.get(name).unwrap_or(&Value::Null) == value,
                None => value.is_null(),
            };
            if !unchanged {
                return Err(RepoError::Forbidden {
                    action: action.to_owned(),
                    reason: format!(
                        "`{name}` of {} is read-only for you; `{action}` without it",
                        schema.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// Whether any hook is registered at `event` for `schema`.
    fn has_hooks(&self, event: EntityEvent, schema: &EntitySchema) -> bool {
        self.hooks
            .iter()
            .any(|h| h.event == event && (h.entity == "*" || h.entity == schema.name))
    }

    async fn run_hooks(
        &self,
        event: EntityEvent,
        scope: &TenantScope,
        schema: &Arc<EntitySchema>,
        mut doc: Map<String, Value>,
        old: Option<&Map<String, Value>>,
    ) -> Result<Map<String, Value>, RepoError> {
        for hook in self
            .hooks
            .iter()
            .filter(|h| h.event == event && (h.entity == "*" || h.entity == schema.name))
        {
            let input = HookInput {
                scope: scope.clone(),
                entity: schema.clone(),
                event,
                doc,
                old: old.cloned(),
            };
            doc = (hook.run)(input)
                .await
                .map_err(|message| RepoError::Rejected {
                    hook: format!("{}::{}", hook.module, hook.name),
                    message,
                })?;
        }
        Ok(doc)
    }

    async fn run_after_hooks(
        &self,
        event: EntityEvent,
        scope: &TenantScope,
        schema: &Arc<EntitySchema>,
        doc: &Map<String, Value>,
        old: Option<&Map<String, Value>>,
    ) {
        if let Err(e) = self.run_hooks(event, scope, schema, doc.clone(), old).await {
            tracing::error!(target: "prefiq::entity", trace_id = %scope.trace_id, entity = %schema.name, error = %e, "after-hook failed; the write is committed");
        }
    }

    /// Checks a whole document against `schema`. `current` holds stored values for fields the
    /// document does not mention (updates); on create, missing fields take their default.
    fn validate(
        &self,
        schema: &EntitySchema,
        doc: &Map<String, Value>,
        current: Option<&Map<String, Value>>,
        prefix: &str,
    ) -> Result<Validated, Vec<FieldError>> {
        let registry = self.entities.registry();
        let mut errors = Vec::new();
        for key in doc.keys() {
            if schema.field(key).is_none() && !SYSTEM_INPUT.contains(&key.as_str()) {
                errors.push(field_error(
                    format!("{prefix}/{key}"),
                    "unknown_field",
                    format!("`{key}` is not a field of `{}`", schema.name),
                ));
            }
        }
        let mut out = Validated::default();
        for field in &schema.fields {
            let pointer = format!("{prefix}/{}", field.name);
            let given = doc.get(&field.name);
            if given.is_some()
                && field.read_only
                && current.and_then(|c| c.get(&field.name)) != given
            {
                errors.push(field_error(&pointer, "read_only", "the field is read-only"));
                continue;
            }
            let value = match (given, current) {
                (Some(v), _) => v.clone(),
                (None, Some(current)) => current.get(&field.name).cloned().unwrap_or(Value::Null),
                (None, None) => field.default.clone().unwrap_or(Value::Null),
            };
            if let FieldKind::Table { entity } = &field.kind {
                let Some(child) = registry.get(entity).cloned() else {
                    continue;
                };
                let rows = match &value {
                    Value::Null => Vec::new(),
                    Value::Array(rows) if rows.len() <= MAX_CHILD_ROWS => rows.clone(),
                    Value::Array(_) => {
                        errors.push(field_error(
                            &pointer,
                            "too_many",
                            format!("at most {MAX_CHILD_ROWS} rows"),
                        ));
                        continue;
                    }
                    _ => {
                        errors.push(field_error(
                            &pointer,
                            "wrong_type",
                            "expected an array of rows",
                        ));
                        continue;
                    }
                };
                if field.required && rows.is_empty() {
                    errors.push(field_error(
                        &pointer,
                        "missing_required",
                        "at least one row is required",
                    ));
                }
                let mut validated = Vec::with_capacity(rows.len());
                for (i, row) in rows.iter().enumerate() {
                    let row_pointer = format!("{pointer}/{i}");
                    match row.as_object() {
                        Some(map) => match self.validate(&child, map, None, &row_pointer) {
                            Ok(v) => validated.push(v),
                            Err(e) => errors.extend(e),
                        },
                        None => errors.push(field_error(
                            row_pointer,
                            "wrong_type",
                            "a row is a JSON object",
                        )),
                    }
                }
                out.children.push((field.clone(), child, validated));
                continue;
            }
            match coerce(field, &value) {
                Ok(stored) => {
                    let empty = matches!(&stored, Stored::Null)
                        || matches!(&stored, Stored::Text(t) if t.is_empty());
                    if field.required && empty {
                        errors.push(field_error(
                            &pointer,
                            "missing_required",
                            "the field is required",
                        ));
                    } else {
                        out.columns.push((field.clone(), stored));
                    }
                }
                Err(ValueError { code, message }) => {
                    errors.push(field_error(&pointer, code, message))
                }
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// Field validation plus the tenant's custom fields, with every problem reported.
    async fn validate_all(
        &self,
        scope: &TenantScope,
        schema: &EntitySchema,
        doc: &Map<String, Value>,
        current: Option<&Map<String, Value>>,
    ) -> Result<Validated, RepoError> {
        let base = self.validate(schema, doc, current, "");
        let definitions = self.custom_fields(scope, &schema.name).await?;
        let custom = custom::validate(
            &definitions,
            doc.get("custom"),
            current.and_then(|c| c.get("custom")),
            current.is_none(),
        )
        .map_err(|errors| {
            errors
                .into_iter()
                .map(|(pointer, code, message)| field_error(pointer, code, message))
                .collect::<Vec<_>>()
        });
        match (base, custom) {
            (Ok(mut validated), Ok(values)) => {
                validated.custom = Some(values);
                Ok(validated)
            }
            (Err(mut a), Err(b)) => {
                a.extend(b);
                Err(RepoError::Invalid(a))
            }
            (Err(errors), _) | (_, Err(errors)) => Err(RepoError::Invalid(errors)),
        }
    }

    /// The tenant's custom fields of `entity`, by name.
    pub async fn custom_fields(
        &self,
        scope: &TenantScope,
        entity: &str,
    ) -> Result<Arc<Vec<FieldDef>>, RepoError> {
        let key = (scope.tenant.clone(), entity.to_owned());
        if let Ok(cache) = self.custom_cache.lock()
            && let Some((read_at, fields)) = cache.get(&key)
            && read_at.elapsed() < CUSTOM_CACHE_TTL
        {
            return Ok(fields.clone());
        }
        let fields = Arc::new(self.read_custom_fields(scope, entity).await?);
        if let Ok(mut cache) = self.custom_cache.lock() {
            if cache.len() >= CUSTOM_CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, (std::time::Instant::now(), fields.clone()));
        }
        Ok(fields)
    }

    fn forget_custom_fields(&self, scope: &TenantScope, entity: &str) {
        if let Ok(mut cache) = self.custom_cache.lock() {
            cache.remove(&(scope.tenant.clone(), entity.to_owned()));
        }
    }

    async fn read_custom_fields(
        &self,
        scope: &TenantScope,
        entity: &str,
    ) -> Result<Vec<FieldDef>, RepoError> {
        let mut sql = Sql::default();
        let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
        let entity_arg = sql.arg(Arg::Text(Some(entity.to_owned())));
        let handle = self.tenant_handle(scope).await?;
        let definition = if handle.get()?.backend() == Backend::Postgres {
            "definition::text"
        } else {
            "definition"
        };
        sql.text = format!(
            "SELECT {definition} FROM prefiq_custom_fields WHERE tenant_id = {tenant} AND entity = {entity_arg} ORDER BY name"
        );
        let rows = on_reader!(handle.get()?, conn => conn.fetch(&sql, &[SqlType::Text]).await?);
        Ok(rows
            .iter()
            .filter_map(|r| match r.first() {
                Some(Cell::Text(t)) => serde_json::from_str::<FieldDef>(t).ok(),
                _ => None,
            })
            .collect())
    }

    /// Adds a custom field to `entity` for this tenant; with `indexed`, also a per-tenant
    /// expression index on it.
    pub async fn add_custom_field(
        &self,
        scope: &TenantScope,
        entity: &str,
        body: &Value,
    ) -> Result<FieldDef, RepoError> {
        let schema = self.schema(scope, entity).await?;
        self.authorize(scope, &schema, "customize", None).await?;
        let field = custom::parse_definition(&schema, body).map_err(|message| {
            RepoError::Invalid(vec![field_error("", "invalid_definition", message)])
        })?;
        let existing = self.custom_fields(scope, entity).await?;
        if existing.len() >= custom::MAX_CUSTOM_FIELDS {
            return Err(RepoError::Invalid(vec![field_error(
                "",
                "too_many",
                format!(
                    "at most {} custom fields per entity",
                    custom::MAX_CUSTOM_FIELDS
                ),
            )]));
        }
        if existing.iter().any(|f| f.name == field.name) {
            return Err(RepoError::Unique(field_error(
                "/name",
                "unique",
                format!("`{}` already has a custom field `{}`", entity, field.name),
            )));
        }
        let handle = self.tenant_handle(scope).await?;
        let database = handle.get()?;
        let backend = database.backend();
        let definition = serde_json::to_string(&field).map_err(|e| {
            RepoError::Invalid(vec![field_error("", "invalid_definition", e.to_string())])
        })?;
        let mut sql = Sql::default();
        let values = [
            sql.arg(Arg::Text(Some(scope.tenant.clone()))),
            sql.arg(Arg::Text(Some(entity.to_owned()))),
            sql.arg(Arg::Text(Some(field.name.clone()))),
            {
                let p = sql.arg(Arg::Text(Some(definition)));
                if backend == Backend::Postgres {
                    format!("{p}::jsonb")
                } else {
                    p
                }
            },
            sql.arg(Arg::Text(Some(civil_now()))),
        ];
        sql.text = format!(
            "INSERT INTO prefiq_custom_fields (tenant_id, entity, name, definition, created_at) VALUES ({})",
            values.join(", ")
        );
        let index = field.indexed.then(|| {
            let column = filter::column(&schema, std::slice::from_ref(&field), &format!("custom.{}", field.name));
            let expression = column.map(|c| c.raw(backend)).unwrap_or_default();
            let suffix: String = sha2_hex(&format!("{}:{}", scope.tenant, field.name));
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} (tenant_id, {expression}) WHERE tenant_id = {}",
                quote(&format!("{}__cf_{suffix}", schema.name)),
                quote(&schema.name),
                super::ddl::literal(&scope.tenant)
            )
        });
        in_write_tx!(database, conn => insert_custom_field(conn, &sql, index.as_deref()).await?);
        self.forget_custom_fields(scope, entity);
        Ok(field)
    }

    /// Removes a custom field definition of this tenant. Stored values stay in the rows (and
    /// come back if the field is added again) but are no longer shown.
    pub async fn remove_custom_field(
        &self,
        scope: &TenantScope,
        entity: &str,
        name: &str,
    ) -> Result<(), RepoError> {
        let schema = self.schema(scope, entity).await?;
        self.authorize(scope, &schema, "customize", None).await?;
        let mut sql = Sql::default();
        let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
        let entity_arg = sql.arg(Arg::Text(Some(entity.to_owned())));
        let name_arg = sql.arg(Arg::Text(Some(name.to_owned())));
        sql.text = format!(
            "DELETE FROM prefiq_custom_fields WHERE tenant_id = {tenant} AND entity = {entity_arg} AND name = {name_arg}"
        );
        let handle = self.tenant_handle(scope).await?;
        let removed = on_writer!(handle.get()?, conn => conn.execute(&sql).await?);
        self.forget_custom_fields(scope, entity);
        if removed == 0 {
            return Err(RepoError::NotFound {
                entity: format!("custom field of {entity}"),
                id: name.to_owned(),
            });
        }
        Ok(())
    }

    /// The document as the API shows it, from validated values.
    fn document(validated: &Validated) -> Map<String, Value> {
        let mut doc = Map::new();
        if let Some((_, shown)) = &validated.custom {
            doc.insert("custom".into(), Value::Object(shown.clone()));
        }
        for (field, stored) in &validated.columns {
            doc.insert(field.name.clone(), to_json(field, stored));
        }
        for (field, _, rows) in &validated.children {
            doc.insert(
                field.name.clone(),
                Value::Array(
                    rows.iter()
                        .map(|r| Value::Object(Self::document(r)))
                        .collect(),
                ),
            );
        }
        doc
    }

    /// Creates a row. Returns the stored record.
    pub async fn create(
        &self,
        scope: &TenantScope,
        entity: &str,
        input: Value,
    ) -> Result<Value, RepoError> {
        let schema = self.schema(scope, entity).await?;
        let input = object(input, "")?;
        self.check_writable(scope, &schema, &input, None)?;
        self.create_with(scope, &schema, input, None).await
    }

    async fn create_with(
        &self,
        scope: &TenantScope,
        schema: &Arc<EntitySchema>,
        doc: Map<String, Value>,
        amended: Option<(String, String)>,
    ) -> Result<Value, RepoError> {
        let doc = self
            .run_hooks(EntityEvent::BeforeValidate, scope, schema, doc, None)
            .await?;
        let doc = self
            .run_hooks(EntityEvent::Validate, scope, schema, doc, None)
            .await?;
        let validated = self.validate_all(scope, schema, &doc, None).await?;
        let mut doc = Self::document(&validated);
        // The row is decided on as it will be stored: owned by its creator.
        doc.insert("created_by".into(), json!(scope.user));
        self.authorize(scope, schema, "create", Some(&doc)).await?;
        doc.remove("created_by");
        // Before-hooks may change the document: what is written is then validated again.
        let validated = if self.has_hooks(EntityEvent::BeforeInsert, schema) {
            let doc = self
                .run_hooks(EntityEvent::BeforeInsert, scope, schema, doc, None)
                .await?;
            self.validate_all(scope, schema, &doc, None).await?
        } else {
            validated
        };

        let id = uuid::Uuid::now_v7().to_string();
        let now = civil_now();
        let handle = self.tenant_handle(scope).await?;
        let database = handle.get()?;
        let backend = database.backend();
        let record = in_tenant_tx!(database, &scope.tenant, conn => self
            .insert_tx(conn, scope, schema, &validated, &id, &now, amended.as_ref(), backend)
            .await?);
        self.audit.appended(&scope.tenant);
        self.run_after_hooks(EntityEvent::AfterInsert, scope, schema, &record, None)
            .await;
        Ok(Value::Object(record))
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_tx(
        &self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        schema: &EntitySchema,
        validated: &Validated,
        id: &str,
        now: &str,
        amended: Option<&(String, String)>,
        backend: Backend,
    ) -> Result<Map<String, Value>, RepoError> {
        check_links(conn, scope, validated, "").await?;
        let name = match (amended, &schema.naming) {
            (Some((_, name)), _) => name.clone(),
            (None, Naming::Uuid) => id.to_owned(),
            (None, Naming::Series(series)) => next_in_series(conn, scope, series, now).await?,
        };
        let mut sql = Sql::default();
        let mut columns = vec![
            "tenant_id",
            "id",
            "name",
            "created_at",
            "created_by",
            "modified_at",
            "modified_by",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        let mut values = vec![
            sql.arg(Arg::Text(Some(scope.tenant.clone()))),
            sql.arg(Arg::Text(Some(id.to_owned()))),
            sql.arg(Arg::Text(Some(name.clone()))),
            sql.arg(Arg::Text(Some(now.to_owned()))),
            sql.arg(Arg::Text(scope.user.clone())),
            sql.arg(Arg::Text(Some(now.to_owned()))),
            sql.arg(Arg::Text(scope.user.clone())),
        ];
        if let Some((from, _)) = amended {
            columns.push("amended_from".into());
            values.push(sql.arg(Arg::Text(Some(from.clone()))));
        }
        if let Some((stored, _)) = &validated.custom {
            columns.push("custom".into());
            let p = sql.arg(Arg::Text(Some(Value::Object(stored.clone()).to_string())));
            values.push(if backend == Backend::Postgres {
                format!("{p}::jsonb")
            } else {
                p
            });
        }
        for (field, stored) in &validated.columns {
            for (column, arg) in column_names(field)
                .into_iter()
                .zip(stored_args(field, stored))
            {
                columns.push(column);
                values.push(placeholder(&mut sql, arg, field, backend));
            }
        }
        sql.text = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote(&schema.name),
            columns.join(", "),
            values.join(", ")
        );

        let mut record = Map::new();
        record.insert("id".into(), json!(id));
        record.insert("name".into(), json!(name));
        record.insert("created_at".into(), json!(now));
        record.insert("created_by".into(), json!(scope.user));
        record.insert("modified_at".into(), json!(now));
        record.insert("modified_by".into(), json!(scope.user));
        record.insert("version".into(), json!(1));
        record.insert("docstatus".into(), json!(0));
        record.insert("custom".into(), json!({}));
        record.insert("amended_from".into(), json!(amended.map(|(from, _)| from)));
        record.extend(Self::document(validated));

        // SQLite runs several statements sent as one, each a round trip to the connection's
        // worker thread saved; PostgreSQL's extended protocol takes one statement at a time.
        let has_children = validated
            .children
            .iter()
            .any(|(_, _, rows)| !rows.is_empty());
        let action = if amended.is_some() { "amend" } else { "create" };
        if backend == Backend::Sqlite && !has_children {
            let outbox = outbox_statement(
                &mut sql,
                backend,
                scope,
                (&schema.name, id, "created"),
                &record,
                now,
            );
            let audit = audit_statement(
                &mut sql,
                backend,
                scope,
                schema,
                (id, action),
                None,
                &record,
                now,
            );
            sql.text = format!("{}; {outbox}; {audit}", sql.text);
            conn.execute(&sql)
                .await
                .map_err(|e| unique_error(e, schema))?;
        } else {
            conn.execute(&sql)
                .await
                .map_err(|e| unique_error(e, schema))?;
            insert_children(conn, scope, id, validated, now, backend).await?;
            write_outbox(
                conn,
                scope,
                schema,
                (id, "created", action),
                None,
                &record,
                now,
                self.audited,
            )
            .await?;
        }
        if schema.tree.is_some() {
            let parent = tree_parent_of(schema, validated);
            tree::insert_node(conn, scope, schema, id, parent.as_deref()).await?;
        }
        Ok(record)
    }

    async fn load(
        &self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        schema: &EntitySchema,
        id: &str,
    ) -> Result<Map<String, Value>, RepoError> {
        let backend = conn.backend();
        let (select, slots, types) = select_list(schema, backend);
        let mut sql = Sql::default();
        let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
        let id_arg = sql.arg(Arg::Text(Some(id.to_owned())));
        sql.text = format!(
            "SELECT {select} FROM {} WHERE tenant_id = {tenant} AND id = {id_arg} AND deleted_at IS NULL",
            quote(&schema.name)
        );
        let rows = conn.fetch(&sql, &types).await?;
        let Some(cells) = rows.first() else {
            return Err(RepoError::NotFound {
                entity: schema.name.clone(),
                id: id.to_owned(),
            });
        };
        let mut record = row_to_record(&slots, cells);
        if !schema.child
            && record
                .get("custom")
                .is_some_and(|c| c.as_object().is_some_and(|m| !m.is_empty()))
        {
            let custom = self.custom_fields(scope, &schema.name).await?;
            show_custom(&custom, &mut record);
        }
        let registry = self.entities.registry();
        for field in &schema.fields {
            if let FieldKind::Table { entity } = &field.kind
                && let Some(child) = registry.get(entity)
            {
                let (select, slots, types) = select_list(child, backend);
                let mut sql = Sql::default();
                let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
                let parent = sql.arg(Arg::Text(Some(id.to_owned())));
                let parent_field = sql.arg(Arg::Text(Some(field.name.clone())));
                sql.text = format!(
                    "SELECT {select} FROM {} WHERE tenant_id = {tenant} AND parent_id = {parent} AND parent_field = {parent_field} ORDER BY idx",
                    quote(&child.name)
                );
                let rows = conn.fetch(&sql, &types).await?;
                let children = rows
                    .iter()
                    .map(|cells| Value::Object(child_record(&slots, cells)))
                    .collect();
                record.insert(field.name.clone(), Value::Array(children));
            }
        }
        Ok(record)
    }

    /// Reads one live row of this tenant.
    pub async fn get(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
    ) -> Result<Value, RepoError> {
        let schema = self.schema(scope, entity).await?;
        let handle = self.tenant_handle(scope).await?;
        let record = on_tenant_reader!(handle.get()?, &scope.tenant, conn => self.load(conn, scope, &schema, id).await?);
        self.authorize(scope, &schema, "read", Some(&record))
            .await?;
        let mut record = record;
        for name in self.field_access(scope, &schema).hidden {
            record.remove(&name);
        }
        Ok(Value::Object(record))
    }

    /// Lists live rows of this tenant: filters, order, keyset pagination.
    pub async fn list(
        &self,
        scope: &TenantScope,
        entity: &str,
        query: &ListQuery,
    ) -> Result<Page, RepoError> {
        let schema = self.schema(scope, entity).await?;
        let access = match &self.authorizer {
            Some(authorizer) => authorizer.row_access(scope, &schema).await,
            None => RowAccess::All,
        };
        if access == RowAccess::AnyOf(Vec::new()) {
            return Err(RepoError::Forbidden {
                action: "read".into(),
                reason: format!("`read` on {} is not permitted for you", schema.name),
            });
        }
        let hidden = self.field_access(scope, &schema).hidden;
        for (i, name) in query.fields.iter().enumerate() {
            if schema.field(name).is_none() && !SYSTEM_INPUT.contains(&name.as_str()) {
                return Err(RepoError::Invalid(vec![field_error(
                    format!("/fields/{i}"),
                    "unknown_field",
                    format!("`{name}` is not a field of `{}`", schema.name),
                )]));
            }
        }
        let custom = self.custom_fields(scope, &schema.name).await?;
        let conditions: Vec<Condition> = match &query.filters {
            Some(filters) => filter::parse_filters(&schema, &custom, filters)?,
            None => Vec::new(),
        };
        let order = filter::parse_order(&schema, &custom, query.order_by.as_deref())?;
        // Filtering or sorting on a hidden field would reveal its values row by row.
        if let Some(name) = conditions
            .iter()
            .map(|c| &c.column.name)
            .chain([&order.column.name])
            .find(|name| hidden.contains(name))
        {
            return Err(RepoError::Forbidden {
                action: "read".into(),
                reason: format!("`{name}` of {} is hidden from you", schema.name),
            });
        }
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(RepoError::Invalid(vec![field_error(
                "/limit",
                "out_of_range",
                format!("limit is between 1 and {MAX_LIMIT}"),
            )]));
        }
        let cursor = query
            .cursor
            .as_deref()
            .map(|c| filter::decode_cursor(c, order.column.ty))
            .transpose()?;
        let handle = self.tenant_handle(scope).await?;
        let database = handle.get()?;
        let backend = database.backend();
        let (select, slots, mut types) = select_list(&schema, backend);
        let mut sql = Sql::default();
        let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
        let mut clauses = vec![
            format!("tenant_id = {tenant}"),
            "deleted_at IS NULL".to_owned(),
        ];
        for condition in &conditions {
            clauses.push(filter::condition_sql(condition, backend, &mut sql));
        }
        if let RowAccess::AnyOf(any_of) = &access {
            clauses.push(row_access_sql(&schema, &custom, any_of, backend, &mut sql));
        }
        let total = if query.total && access != RowAccess::EachRow {
            let count = Sql {
                text: format!(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM {} WHERE {} LIMIT {}) AS counted",
                    quote(&schema.name),
                    clauses.join(" AND "),
                    MAX_TOTAL + 1
                ),
                args: sql.args.clone(),
            };
            // The clauses so far bind the same arguments as the page's query, in order.
            let rows = on_tenant_reader!(database, &scope.tenant, conn => conn.fetch(&count, &[SqlType::Int]).await?);
            match rows.first().and_then(|r| r.first()) {
                Some(Cell::Int(n)) => Some(u64::try_from(*n).unwrap_or(0)),
                _ => None,
            }
        } else {
            None
        };
        if let Some((value, id)) = &cursor {
            clauses.push(order.after_sql(backend, value, id, &mut sql));
        }
        // The sort column is selected again at the end so the cursor can be built from it.
        let sort_select = order.column.raw(backend);
        types.push(order.column.ty);
        sql.text = format!(
            "SELECT {select}, {sort_select} FROM {} WHERE {} {} LIMIT {}",
            quote(&schema.name),
            clauses.join(" AND "),
            order.sql(backend),
            limit + 1
        );
        let mut rows =
            on_tenant_reader!(database, &scope.tenant, conn => conn.fetch(&sql, &types).await?);
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|cells| {
                let id = match &cells[0] {
                    Cell::Text(id) => id.clone(),
                    _ => String::new(),
                };
                filter::encode_cursor(&cells[cells.len() - 1], &id)
            })
        } else {
            None
        };
        let mut data = Vec::with_capacity(rows.len());
        for cells in &rows {
            let mut record = row_to_record(&slots, &cells[..cells.len() - 1]);
            show_custom(&custom, &mut record);
            // Policies the SQL form cannot express are checked row by row: a page may then
            // come back shorter than `limit`, but never with a row a GET would refuse.
            if access == RowAccess::EachRow
                && self
                    .authorize(scope, &schema, "read", Some(&record))
                    .await
                    .is_err()
            {
                continue;
            }
            if !query.fields.is_empty() {
                record.retain(|k, _| k == "id" || query.fields.iter().any(|f| f == k));
            }
            for name in &hidden {
                record.remove(name);
            }
            data.push(Value::Object(record));
        }
        Ok(Page {
            data,
            next_cursor,
            total,
        })
    }

    /// Changes a draft. `expected_version` (from `If-Match`) must match the stored version.
    pub async fn update(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
        patch: Value,
        expected_version: Option<i64>,
    ) -> Result<Value, RepoError> {
        let schema = self.schema(scope, entity).await?;
        let patch = object(patch, "")?;
        let current = self.read_current(scope, &schema, id).await?;
        let version = stored_version(&current);
        if let Some(expected) = expected_version
            && expected != version
        {
            return Err(RepoError::VersionConflict {
                entity: schema.name.clone(),
                expected,
                actual: version,
            });
        }
        if docstatus(&current) != Some(0) {
            return Err(RepoError::Invalid(vec![field_error(
                "",
                "document_submitted",
                format!(
                    "this {} is submitted or cancelled and cannot be edited; amend it instead",
                    schema.name
                ),
            )]));
        }
        // The row as it is must be updatable too: otherwise a patch could move a row the
        // principal may not touch into its reach (`department` changed to its own).
        self.authorize(scope, &schema, "update", Some(&current))
            .await?;
        self.check_writable(scope, &schema, &patch, Some(&current))?;
        let mut doc = current.clone();
        doc.extend(patch.clone());
        let doc = self
            .run_hooks(
                EntityEvent::BeforeValidate,
                scope,
                &schema,
                doc,
                Some(&current),
            )
            .await?;
        let doc = self
            .run_hooks(EntityEvent::Validate, scope, &schema, doc, Some(&current))
            .await?;
        // Unknown keys are reported against the patch, where the client wrote them.
        self.validate(&schema, &patch, Some(&current), "")
            .map_err(RepoError::Invalid)?;
        let validated = self
            .validate_all(scope, &schema, &doc, Some(&current))
            .await?;
        let mut doc = Self::document(&validated);
        // The owner and status do not change with an update; decide with them.
        for system in ["created_by", "docstatus"] {
            if let Some(value) = current.get(system) {
                doc.insert(system.into(), value.clone());
            }
        }
        self.authorize(scope, &schema, "update", Some(&doc)).await?;
        doc.remove("created_by");
        doc.remove("docstatus");
        // Before-hooks may change the document: what is written is then validated again.
        let validated = if self.has_hooks(EntityEvent::BeforeUpdate, &schema) {
            let doc = self
                .run_hooks(
                    EntityEvent::BeforeUpdate,
                    scope,
                    &schema,
                    doc,
                    Some(&current),
                )
                .await?;
            self.validate_all(scope, &schema, &doc, Some(&current))
                .await?
        } else {
            validated
        };
        let now = civil_now();
        let handle = self.tenant_handle(scope).await?;
        let database = handle.get()?;
        let backend = database.backend();
        let record = in_tenant_tx!(database, &scope.tenant, conn => update_tx(
            conn, scope, &schema, id, version, &validated, &current, &now, backend, self.audited,
        )
        .await?);
        self.audit.appended(&scope.tenant);
        self.run_after_hooks(
            EntityEvent::AfterUpdate,
            scope,
            &schema,
            &record,
            Some(&current),
        )
        .await;
        Ok(Value::Object(record))
    }

    async fn read_current(
        &self,
        scope: &TenantScope,
        schema: &EntitySchema,
        id: &str,
    ) -> Result<Map<String, Value>, RepoError> {
        // WAL readers see every committed write, so the current state comes from a reader.
        Ok(
            on_tenant_reader!(self.tenant_handle(scope).await?.get()?, &scope.tenant, conn => self.load(conn, scope, schema, id).await?),
        )
    }

    /// Soft-deletes a draft or cancelled document.
    pub async fn delete(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
    ) -> Result<(), RepoError> {
        let schema = self.schema(scope, entity).await?;
        let current = self.read_current(scope, &schema, id).await?;
        if docstatus(&current) == Some(1) {
            return Err(RepoError::Invalid(vec![field_error(
                "",
                "document_submitted",
                format!(
                    "this {} is submitted; cancel it before deleting",
                    schema.name
                ),
            )]));
        }
        self.authorize(scope, &schema, "delete", Some(&current))
            .await?;
        let doc = self
            .run_hooks(
                EntityEvent::BeforeDelete,
                scope,
                &schema,
                current.clone(),
                Some(&current),
            )
            .await?;
        let version = stored_version(&current);
        self.transition(scope, &schema, id, version, Transition::Delete, &doc)
            .await?;
        self.run_after_hooks(
            EntityEvent::AfterDelete,
            scope,
            &schema,
            &doc,
            Some(&current),
        )
        .await;
        Ok(())
    }

    /// Submits a draft of a submittable entity.
    pub async fn submit(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
    ) -> Result<Value, RepoError> {
        let schema = self.submittable(scope, entity).await?;
        let current = self.read_current(scope, &schema, id).await?;
        expect_docstatus(&current, 0, "submit", "a draft")?;
        self.validate_all(scope, &schema, &current, Some(&current))
            .await?;
        self.authorize(scope, &schema, "submit", Some(&current))
            .await?;
        let doc = self
            .run_hooks(
                EntityEvent::BeforeSubmit,
                scope,
                &schema,
                current.clone(),
                Some(&current),
            )
            .await?;
        let version = stored_version(&current);
        let record = self
            .transition(scope, &schema, id, version, Transition::Submit, &doc)
            .await?;
        self.run_after_hooks(
            EntityEvent::OnSubmit,
            scope,
            &schema,
            &record,
            Some(&current),
        )
        .await;
        Ok(Value::Object(record))
    }

    /// Cancels a submitted document.
    pub async fn cancel(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
    ) -> Result<Value, RepoError> {
        let schema = self.submittable(scope, entity).await?;
        let current = self.read_current(scope, &schema, id).await?;
        expect_docstatus(&current, 1, "cancel", "submitted")?;
        self.authorize(scope, &schema, "cancel", Some(&current))
            .await?;
        let version = stored_version(&current);
        let record = self
            .transition(scope, &schema, id, version, Transition::Cancel, &current)
            .await?;
        self.run_after_hooks(
            EntityEvent::OnCancel,
            scope,
            &schema,
            &record,
            Some(&current),
        )
        .await;
        Ok(Value::Object(record))
    }

    /// Makes a new draft from a cancelled document, named after it (`NAME-1`, `NAME-2`, ...).
    pub async fn amend(
        &self,
        scope: &TenantScope,
        entity: &str,
        id: &str,
    ) -> Result<Value, RepoError> {
        let schema = self.submittable(scope, entity).await?;
        let current = self.read_current(scope, &schema, id).await?;
        expect_docstatus(&current, 2, "amend", "cancelled")?;
        self.authorize(scope, &schema, "amend", Some(&current))
            .await?;
        let old_name = current
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = match old_name.rsplit_once('-') {
            Some((base, n))
                if current.get("amended_from").is_some_and(|v| !v.is_null())
                    && n.parse::<u32>().is_ok() =>
            {
                format!("{base}-{}", n.parse::<u32>().unwrap_or(0) + 1)
            }
            _ => format!("{old_name}-1"),
        };
        let mut doc = current.clone();
        doc.retain(|k, _| schema.field(k).is_some() || k == "custom");
        for rows in doc.values_mut() {
            if let Value::Array(rows) = rows {
                for row in rows.iter_mut().filter_map(Value::as_object_mut) {
                    for system in SYSTEM_INPUT {
                        row.remove(*system);
                    }
                }
            }
        }
        self.create_with(scope, &schema, doc, Some((id.to_owned(), name)))
            .await
    }

    async fn submittable(
        &self,
        scope: &TenantScope,
        entity: &str,
    ) -> Result<Arc<EntitySchema>, RepoError> {
        let schema = self.schema(scope, entity).await?;
        if !schema.submittable {
            return Err(RepoError::Invalid(vec![field_error(
                "",
                "not_submittable",
                format!("`{entity}` is not submittable"),
            )]));
        }
        Ok(schema)
    }

    /// One status change (`set` is an SQL assignment, `{now}` replaced by the time) with its
    /// outbox event, guarded by the version read before.
    async fn transition(
        &self,
        scope: &TenantScope,
        schema: &EntitySchema,
        id: &str,
        version: i64,
        change: Transition,
        doc: &Map<String, Value>,
    ) -> Result<Map<String, Value>, RepoError> {
        let (set, event, action) = match change {
            Transition::Delete => ("deleted_at = {now}", "deleted", "delete"),
            Transition::Submit => ("docstatus = 1", "submitted", "submit"),
            Transition::Cancel => ("docstatus = 2", "cancelled", "cancel"),
        };
        let now = civil_now();
        let mut sql = Sql::default();
        let now_arg = sql.arg(Arg::Text(Some(now.clone())));
        let user = sql.arg(Arg::Text(scope.user.clone()));
        let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
        let id_arg = sql.arg(Arg::Text(Some(id.to_owned())));
        let version_arg = sql.arg(Arg::Int(Some(version)));
        sql.text = format!(
            "UPDATE {} SET {}, modified_at = {now_arg}, modified_by = {user}, version = version + 1 WHERE tenant_id = {tenant} AND id = {id_arg} AND version = {version_arg} AND deleted_at IS NULL",
            quote(&schema.name),
            set.replace("{now}", &now_arg)
        );
        let mut record = doc.clone();
        record.insert("modified_at".into(), json!(now));
        record.insert("modified_by".into(), json!(scope.user));
        record.insert("version".into(), json!(version + 1));
        if let Some(status) = set.strip_prefix("docstatus = ") {
            record.insert(
                "docstatus".into(),
                json!(status.parse::<i64>().unwrap_or(0)),
            );
        }
        let conflict = || RepoError::VersionConflict {
            entity: schema.name.clone(),
            expected: version,
            actual: version + 1,
        };
        let delete_node = matches!(change, Transition::Delete) && schema.tree.is_some();
        let handle = self.tenant_handle(scope).await?;
        in_tenant_tx!(handle.get()?, &scope.tenant, conn => {
            if delete_node && tree::has_live_children(conn, scope, schema, id).await? {
                return Err(RepoError::Invalid(vec![field_error(
                    "",
                    "has_children",
                    format!("this {} has children; move or delete them first", schema.name),
                )]));
            }
            if conn.execute(&sql).await? == 0 {
                return Err(conflict());
            }
            // Hooks run before the outbox and audit rows: the audit head's row lock is then
            // the last lock a write takes, so a module's own locks (the ledger's period row)
            // are always taken before it and two writes cannot wait on each other.
            let hook_event = match change {
                Transition::Submit => Some(EntityEvent::OnSubmit),
                Transition::Cancel => Some(EntityEvent::OnCancel),
                Transition::Delete => None,
            };
            if let Some(hook_event) = hook_event {
                for hook in self.transaction_hooks.iter().filter(|h| h.entity() == schema.name) {
                    hook.run(conn, scope, hook_event, &record).await?;
                }
            }
            write_outbox(conn, scope, schema, (id, event, action), Some(doc), &record, &now, self.audited).await?;
        });
        self.audit.appended(&scope.tenant);
        Ok(record)
    }
}

/// A status change of a stored document.
#[derive(Debug, Clone, Copy)]
enum Transition {
    Delete,
    Submit,
    Cancel,
}

/// The `version` of a stored record.
fn stored_version(record: &Map<String, Value>) -> i64 {
    record.get("version").and_then(Value::as_i64).unwrap_or(0)
}

/// The `docstatus` of a stored record (0 draft, 1 submitted, 2 cancelled).
fn docstatus(record: &Map<String, Value>) -> Option<i64> {
    record.get("docstatus").and_then(Value::as_i64)
}

fn expect_docstatus(
    current: &Map<String, Value>,
    expected: i64,
    action: &str,
    state: &str,
) -> Result<(), RepoError> {
    if docstatus(current) == Some(expected) {
        Ok(())
    } else {
        Err(RepoError::Invalid(vec![field_error(
            "",
            "wrong_status",
            format!("only {state} documents can be {action}ed"),
        )]))
    }
}

fn child_record(slots: &[Slot], cells: &[Cell]) -> Map<String, Value> {
    let mut record = row_to_record(slots, cells);
    for system in [
        "name",
        "created_at",
        "created_by",
        "modified_at",
        "modified_by",
        "version",
        "docstatus",
        "custom",
    ] {
        record.remove(system);
    }
    record
}

#[allow(clippy::too_many_arguments)]
async fn update_tx(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    schema: &EntitySchema,
    id: &str,
    version: i64,
    validated: &Validated,
    current: &Map<String, Value>,
    now: &str,
    backend: Backend,
    audited: bool,
) -> Result<Map<String, Value>, RepoError> {
    check_links(conn, scope, validated, "").await?;
    let mut sql = Sql::default();
    let mut sets = Vec::new();
    if let Some((stored, _)) = &validated.custom {
        let p = sql.arg(Arg::Text(Some(Value::Object(stored.clone()).to_string())));
        sets.push(if backend == Backend::Postgres {
            format!("custom = {p}::jsonb")
        } else {
            format!("custom = {p}")
        });
    }
    for (field, stored) in &validated.columns {
        for (column, arg) in column_names(field)
            .into_iter()
            .zip(stored_args(field, stored))
        {
            let p = placeholder(&mut sql, arg, field, backend);
            sets.push(format!("{column} = {p}"));
        }
    }
    let now_arg = sql.arg(Arg::Text(Some(now.to_owned())));
    let user = sql.arg(Arg::Text(scope.user.clone()));
    let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
    let id_arg = sql.arg(Arg::Text(Some(id.to_owned())));
    let version_arg = sql.arg(Arg::Int(Some(version)));
    sets.push(format!("modified_at = {now_arg}"));
    sets.push(format!("modified_by = {user}"));
    sets.push("version = version + 1".into());
    sql.text = format!(
        "UPDATE {} SET {} WHERE tenant_id = {tenant} AND id = {id_arg} AND version = {version_arg} AND deleted_at IS NULL AND docstatus = 0",
        quote(&schema.name),
        sets.join(", ")
    );
    if conn
        .execute(&sql)
        .await
        .map_err(|e| unique_error(e, schema))?
        == 0
    {
        return Err(RepoError::VersionConflict {
            entity: schema.name.clone(),
            expected: version,
            actual: version + 1,
        });
    }
    for (field, child, _) in &validated.children {
        let mut delete = Sql::default();
        let tenant = delete.arg(Arg::Text(Some(scope.tenant.clone())));
        let parent = delete.arg(Arg::Text(Some(id.to_owned())));
        let parent_field = delete.arg(Arg::Text(Some(field.name.clone())));
        delete.text = format!(
            "DELETE FROM {} WHERE tenant_id = {tenant} AND parent_id = {parent} AND parent_field = {parent_field}",
            quote(&child.name)
        );
        conn.execute(&delete).await?;
    }
    insert_children(conn, scope, id, validated, now, backend).await?;
    if let Some(field) = schema.tree_parent() {
        let parent = tree_parent_of(schema, validated);
        if current.get(&field).and_then(Value::as_str) != parent.as_deref() {
            tree::move_node(
                conn,
                scope,
                schema,
                id,
                parent.as_deref(),
                &format!("/{field}"),
            )
            .await?;
        }
    }
    let mut record = current.clone();
    record.extend(Repository::document(validated));
    record.insert("modified_at".into(), json!(now));
    record.insert("modified_by".into(), json!(scope.user));
    record.insert("version".into(), json!(version + 1));
    write_outbox(
        conn,
        scope,
        schema,
        (id, "updated", "update"),
        Some(current),
        &record,
        now,
        audited,
    )
    .await?;
    Ok(record)
}

/// The parent id a tree row is written with (`None`: a root).
fn tree_parent_of(schema: &EntitySchema, validated: &Validated) -> Option<String> {
    let field = schema.tree_parent()?;
    validated
        .columns
        .iter()
        .find(|(f, _)| f.name == field)
        .and_then(|(_, stored)| match stored {
            Stored::Text(id) => Some(id.clone()),
            _ => None,
        })
}

async fn insert_children(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    parent_id: &str,
    validated: &Validated,
    now: &str,
    backend: Backend,
) -> Result<(), RepoError> {
    for (field, child, rows) in &validated.children {
        for (i, row) in rows.iter().enumerate() {
            let child_id = uuid::Uuid::now_v7().to_string();
            let mut sql = Sql::default();
            let mut columns: Vec<String> = [
                "tenant_id",
                "id",
                "name",
                "created_at",
                "modified_at",
                "parent_id",
                "parent_field",
                "idx",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            let mut values = vec![
                sql.arg(Arg::Text(Some(scope.tenant.clone()))),
                sql.arg(Arg::Text(Some(child_id.clone()))),
                sql.arg(Arg::Text(Some(child_id.clone()))),
                sql.arg(Arg::Text(Some(now.to_owned()))),
                sql.arg(Arg::Text(Some(now.to_owned()))),
                sql.arg(Arg::Text(Some(parent_id.to_owned()))),
                sql.arg(Arg::Text(Some(field.name.clone()))),
                sql.arg(Arg::Int(Some(i as i64 + 1))),
            ];
            for (child_field, stored) in &row.columns {
                for (column, arg) in column_names(child_field)
                    .into_iter()
                    .zip(stored_args(child_field, stored))
                {
                    columns.push(column);
                    values.push(placeholder(&mut sql, arg, child_field, backend));
                }
            }
            sql.text = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                quote(&child.name),
                columns.join(", "),
                values.join(", ")
            );
            conn.execute(&sql)
                .await
                .map_err(|e| unique_error(e, child))?;
        }
    }
    Ok(())
}

/// Every link must name a live row of the same tenant.
async fn check_links(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    validated: &Validated,
    prefix: &str,
) -> Result<(), RepoError> {
    let mut errors = Vec::new();
    for (field, stored) in &validated.columns {
        if let (FieldKind::Link { target }, Stored::Text(id)) = (&field.kind, stored) {
            let mut sql = Sql::default();
            let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
            let id_arg = sql.arg(Arg::Text(Some(id.clone())));
            sql.text = format!(
                "SELECT CAST(1 AS BIGINT) FROM {} WHERE tenant_id = {tenant} AND id = {id_arg} AND deleted_at IS NULL",
                quote(target)
            );
            if conn.fetch(&sql, &[SqlType::Int]).await?.is_empty() {
                errors.push(field_error(
                    format!("{prefix}/{}", field.name),
                    "dangling_link",
                    format!("no {target} `{id}` exists"),
                ));
            }
        }
    }
    for (field, _, rows) in &validated.children {
        for (i, row) in rows.iter().enumerate() {
            if let Err(RepoError::Invalid(e)) = Box::pin(check_links(
                conn,
                scope,
                row,
                &format!("{prefix}/{}/{i}", field.name),
            ))
            .await
            {
                errors.extend(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RepoError::Invalid(errors))
    }
}

/// Writes the outbox event and the audit record of a change: one round trip on SQLite,
/// two on PostgreSQL (whose extended protocol takes one statement at a time).
/// `(record_id, event, action)`: the row, the outbox event, the audited action.
#[allow(clippy::too_many_arguments)]
async fn write_outbox(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    schema: &EntitySchema,
    (record_id, event, action): (&str, &str, &str),
    before: Option<&Map<String, Value>>,
    record: &Map<String, Value>,
    now: &str,
    audited: bool,
) -> Result<(), RepoError> {
    let backend = conn.backend();
    let mut sql = Sql::default();
    let outbox = outbox_statement(
        &mut sql,
        backend,
        scope,
        (&schema.name, record_id, event),
        record,
        now,
    );
    sql.text = outbox;
    if audited {
        if backend == Backend::Postgres {
            // The extended protocol takes one statement at a time.
            conn.execute(&sql).await?;
            sql = Sql::default();
        }
        let audit = audit_statement(
            &mut sql,
            backend,
            scope,
            schema,
            (record_id, action),
            before,
            record,
            now,
        );
        sql.text = if sql.text.is_empty() {
            audit
        } else {
            format!("{}; {audit}", sql.text)
        };
    }
    conn.execute(&sql).await?;
    Ok(())
}

/// The statements that append the audit record of a change to the tenant's log, their
/// arguments added to `sql`. A delete records what was deleted; other actions the fields
/// that changed.
#[allow(clippy::too_many_arguments)]
fn audit_statement(
    sql: &mut Sql,
    backend: Backend,
    scope: &TenantScope,
    schema: &EntitySchema,
    (record_id, action): (&str, &str),
    before: Option<&Map<String, Value>>,
    record: &Map<String, Value>,
    now: &str,
) -> String {
    let after = (action != "delete").then_some(record);
    let changes = crate::audit::changes(schema, &scope.tenant, before, after);
    crate::audit::append_statement(
        sql,
        backend,
        &crate::audit::AuditRecord {
            tenant: &scope.tenant,
            time: now,
            actor: scope.user.as_deref(),
            action,
            entity: Some(&schema.name),
            id: Some(record_id),
            changes,
            trace: &scope.trace_id,
        },
    )
}

/// The `INSERT` of an outbox event, its arguments added to `sql`. `what` is the entity, the
/// record's id and the event.
fn outbox_statement(
    sql: &mut Sql,
    backend: Backend,
    scope: &TenantScope,
    (entity, record_id, event): (&str, &str, &str),
    record: &Map<String, Value>,
    now: &str,
) -> String {
    let values = [
        sql.arg(Arg::Text(Some(uuid::Uuid::now_v7().to_string()))),
        sql.arg(Arg::Text(Some(scope.tenant.clone()))),
        sql.arg(Arg::Text(Some(entity.to_owned()))),
        sql.arg(Arg::Text(Some(record_id.to_owned()))),
        sql.arg(Arg::Text(Some(event.to_owned()))),
        {
            let p = sql.arg(Arg::Text(Some(Value::Object(record.clone()).to_string())));
            if backend == Backend::Postgres {
                format!("{p}::jsonb")
            } else {
                p
            }
        },
        sql.arg(Arg::Text(Some(scope.trace_id.clone()))),
        sql.arg(Arg::Text(Some(now.to_owned()))),
    ];
    format!(
        "INSERT INTO prefiq_outbox (id, tenant_id, entity, record_id, event, payload, trace_id, created_at) VALUES ({})",
        values.join(", ")
    )
}

/// The next name of a naming series such as `JE-.YYYY.-.#####`, counted per tenant and
/// per prefix (so the counter restarts each year when the prefix holds the year).
async fn next_in_series(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    series: &str,
    now: &str,
) -> Result<String, RepoError> {
    let (year, month, day) = (&now[0..4], &now[5..7], &now[8..10]);
    let mut prefix = String::new();
    let mut suffix = String::new();
    let mut width = 0;
    for part in series.split('.') {
        let text = match part {
            "YYYY" => year.to_owned(),
            "YY" => year[2..].to_owned(),
            "MM" => month.to_owned(),
            "DD" => day.to_owned(),
            hashes if !hashes.is_empty() && hashes.chars().all(|c| c == '#') => {
                width = hashes.len();
                continue;
            }
            literal => literal.to_owned(),
        };
        if width == 0 {
            prefix.push_str(&text)
        } else {
            suffix.push_str(&text)
        }
    }
    let mut sql = Sql::default();
    let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
    let key = sql.arg(Arg::Text(Some(format!("{prefix}#{suffix}"))));
    sql.text = format!(
        "INSERT INTO prefiq_series (tenant_id, prefix, current) VALUES ({tenant}, {key}, 1) ON CONFLICT (tenant_id, prefix) DO UPDATE SET current = prefiq_series.current + 1 RETURNING current"
    );
    let rows = conn.fetch(&sql, &[SqlType::Int]).await?;
    let current = match rows.first().and_then(|r| r.first()) {
        Some(Cell::Int(n)) => *n,
        _ => 1,
    };
    Ok(format!("{prefix}{current:0width$}{suffix}"))
}

/// Turns a unique-index violation into a field error naming the field.
fn unique_error(error: DataError, schema: &EntitySchema) -> RepoError {
    if let DataError::Sql(sqlx::Error::Database(db)) = &error
        && db.is_unique_violation()
    {
        let message = db.message().to_owned();
        let constraint = db.constraint().map(str::to_owned).unwrap_or_default();
        let field = schema
            .fields
            .iter()
            .find(|f| {
                constraint == format!("{}__u_{}", schema.name, f.name)
                    || message.ends_with(&format!(".{}", f.name))
            })
            .map(|f| f.name.clone());
        return match field {
            Some(field) => RepoError::Unique(field_error(
                format!("/{field}"),
                "unique",
                format!("another {} already has this {field}", schema.name),
            )),
            None => RepoError::Unique(field_error(
                "/name",
                "unique",
                format!("another {} already has this name", schema.name),
            )),
        };
    }
    RepoError::Database(error)
}

/// `(a AND b) OR (c)` over the record-rule conditions of a principal's read grants.
/// A condition that cannot hold (a missing attribute) or cannot be expressed is false, so
/// the predicate fails closed.
fn row_access_sql(
    schema: &EntitySchema,
    custom: &[FieldDef],
    any_of: &[Vec<RowCondition>],
    backend: Backend,
    sql: &mut Sql,
) -> String {
    let alternatives: Vec<String> = any_of
        .iter()
        .map(|conditions| {
            let all: Vec<String> = conditions
                .iter()
                .map(|condition| {
                    let Some(value) = &condition.value else {
                        return "1 = 0".to_owned();
                    };
                    let triple = json!([[condition.field, condition.op.filter(), value]]);
                    match filter::parse_filters(schema, custom, &triple) {
                        Ok(parsed) if parsed.len() == 1 => {
                            filter::condition_sql(&parsed[0], backend, sql)
                        }
                        _ => "1 = 0".to_owned(),
                    }
                })
                .collect();
            format!("({})", all.join(" AND "))
        })
        .collect();
    format!("({})", alternatives.join(" OR "))
}
