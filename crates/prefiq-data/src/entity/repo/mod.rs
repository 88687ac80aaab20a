//! The tenant-scoped repository. Every write goes through one pipeline:
//! `before_validate` → `validate` hooks → field validation → authorize → before-hooks →
//! row, child rows and outbox event in one transaction → after-hooks.

use std::sync::Arc;
use tracing::Instrument;

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
                let mut tx = crate::database::begin_postgres(pool).await?;
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
                let mut reader = db.readers.acquire().await?;
                let $conn = &mut Conn::Sqlite(&mut reader);
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
                let mut alone = db.batcher.alone().await?;
                let $conn = &mut Conn::Sqlite(alone.conn());
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
                let mut tx = crate::database::begin_postgres(pool).await?;
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
                let mut reader = db.readers.acquire().await?;
                let $conn = &mut Conn::Sqlite(&mut reader);
                $body
            }
            Database::Postgres(pool) => {
                let mut tx = crate::database::begin_postgres(pool).await?;
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

mod create;
mod custom_fields;
mod hooks;
mod lifecycle;
mod outbox;
mod read;
mod references;
mod rows;
mod runtime_entities;
mod turns;
mod update;
mod validate;

use create::*;
use custom_fields::*;
pub use hooks::DynamicHooks;
use lifecycle::*;
use outbox::*;
use references::*;
pub use references::{MAX_NAMED_REFERENCES, Reference};

use rows::*;

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

/// The span of one repository call (only while trace export is on): the operation, the
/// entity and the tenant; the statements, authorization and hooks it runs nest below it.
pub(super) fn repo_span(
    operation: &'static str,
    scope: &TenantScope,
    entity: &str,
) -> tracing::Span {
    if !prefiq::telemetry::enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "repository",
        otel.name = format!("repository.{operation} {entity}").as_str(),
        repository.operation = operation,
        entity,
        tenant = scope.tenant.as_str(),
    )
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
    /// The caller wrote to a version of the row (`If-Match`) that is no longer the stored
    /// one: someone changed it since the caller read it.
    #[error("{}", precondition_failed(entity, *expected, *actual))]
    PreconditionFailed {
        /// The entity.
        entity: String,
        /// The version the caller had.
        expected: i64,
        /// The version stored, when it was read (not when another write won the race).
        actual: Option<i64>,
    },
    /// A hook could not run (a plugin trapped or ran out of its budget): the write did
    /// not happen, through no fault of the caller's.
    #[error("{hook} failed: {message}")]
    HookFailed {
        /// `module::hook`, or `plugin:{name}`.
        hook: String,
        /// What happened.
        message: String,
    },
    /// A hook refused the write.
    #[error("{message}")]
    Rejected {
        /// `module::hook`.
        hook: String,
        /// The hook's message, for the caller.
        message: String,
    },
    /// Rows that must outlive it link to the row a delete names.
    #[error("{entity} `{id}` is referenced by {}", describe_references(.references, *.more))]
    Referenced {
        /// The entity of the row that was to be deleted.
        entity: String,
        /// Its id.
        id: String,
        /// What links to it (at most [`MAX_NAMED_REFERENCES`]).
        references: Vec<Reference>,
        /// Whether more rows link to it than are named.
        more: bool,
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

/// `journal_entry JE-2026-00001, gl_entry 0193…` (and how many more were not named).
fn describe_references(references: &[Reference], more: bool) -> String {
    let named: Vec<String> = references
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.entity,
                if r.name.is_empty() { &r.id } else { &r.name }
            )
        })
        .collect();
    let more = if more { " and more" } else { "" };
    format!(
        "{}{more}; it cannot be deleted while they exist",
        named.join(", ")
    )
}

fn precondition_failed(entity: &str, expected: i64, actual: Option<i64>) -> String {
    match actual {
        Some(actual) => format!(
            "the {entity} is at version {actual}, not {expected}: read it again and reapply the change"
        ),
        None => format!(
            "the {entity} changed after version {expected}: read it again and reapply the change"
        ),
    }
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

/// The repository: tenant-scoped reads and pipelined writes for every entity.
pub struct Repository {
    handle: Arc<DatabaseHandle>,
    entities: Arc<Entities>,
    hooks: Vec<Arc<EntityHook>>,
    dynamic_hooks: Option<Arc<dyn DynamicHooks>>,
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
    /// Updates without an expected version of one record take turns here.
    update_turns: turns::Turns,
    /// Counts committed writes, so that the outbox relay and the job runner wake at once.
    commits: tokio::sync::watch::Sender<u64>,
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
            dynamic_hooks: None,
            transaction_hooks: Vec::new(),
            authorizer,
            tenants: None,
            custom_cache: std::sync::Mutex::default(),
            runtime_reload: std::sync::Mutex::default(),
            audit: Arc::default(),
            audited: true,
            update_turns: turns::Turns::default(),
            commits: tokio::sync::watch::Sender::new(0),
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

    /// The same repository running `hooks` (which come and go at run time, per tenant)
    /// after the modules' hooks at each point of the pipeline.
    pub fn with_dynamic_hooks(mut self, hooks: Option<Arc<dyn DynamicHooks>>) -> Self {
        self.dynamic_hooks = hooks;
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
        self.committed(&handle, &scope.tenant);
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

    /// A write of `tenant` committed in `handle`'s database with its audit record and
    /// outbox event: the audit sequencer and checkpointer, the relay and the job runner
    /// are told.
    fn committed(&self, handle: &Arc<DatabaseHandle>, tenant: &str) {
        self.audit.committed(handle, tenant);
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes after every committed write (its value counts them): the outbox relay and
    /// the job runner wait on it instead of polling.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Where each tenant's rows live, in `database` tenancy.
    pub fn tenant_databases(&self) -> Option<Arc<crate::tenants::TenantDatabases>> {
        self.tenants.clone()
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
        let Some(authorizer) = &self.authorizer else {
            return Ok(());
        };
        let span = prefiq::otel_span!(
            "authorize",
            otel.name = "authorize",
            authz.action = action,
            entity = schema.name.as_str(),
            authz.decision = tracing::field::Empty,
        );
        let decision = authorizer
            .authorize(scope, schema, action, doc)
            .instrument(span.clone())
            .await;
        span.record(
            "authz.decision",
            if decision.is_ok() { "allow" } else { "deny" },
        );
        decision.map_err(|reason| RepoError::Forbidden {
            action: action.to_owned(),
            reason,
        })
    }

    fn field_access(&self, scope: &TenantScope, schema: &EntitySchema) -> FieldAccess {
        match &self.authorizer {
            Some(authorizer) => authorizer.field_access(scope, schema),
            None => FieldAccess::default(),
        }
    }
}
