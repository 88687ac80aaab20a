//! Ordered, checksummed migrations recorded in `prefiq_migrations`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::DataError;
use crate::database::{Database, DatabaseHandle};
use crate::entity::sql::{Cell, Conn, Sql, SqlType};
use crate::entity::{Entities, EntitySchema};
use prefiq::{
    Backend, KernelError, Migration, MigrationPlan, MigrationRunner, ModuleMigrations,
    ModuleUpgrade, PendingMigration, async_trait,
};
use sha2::{Digest, Sha256};

/// The pseudo-module that owns the data layer's own tables.
pub const SYSTEM_MODULE: &str = "prefiq";

/// Serialises migrations across replicas booting at once on PostgreSQL.
const PG_MIGRATION_LOCK: i64 = 0x7072_6566_6971; // "prefiq"

/// The data layer's own migrations; they run before every module's.
pub fn system_migrations() -> Vec<Migration> {
    vec![
        Migration::per_backend(
            "0000_migrations",
            "CREATE TABLE prefiq_migrations (\n    module TEXT NOT NULL,\n    id TEXT NOT NULL,\n    checksum TEXT NOT NULL,\n    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),\n    PRIMARY KEY (module, id)\n);\nCREATE TABLE prefiq_modules (\n    name TEXT PRIMARY KEY,\n    version TEXT NOT NULL,\n    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))\n);",
            "CREATE TABLE prefiq_migrations (\n    module TEXT NOT NULL,\n    id TEXT NOT NULL,\n    checksum TEXT NOT NULL,\n    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),\n    PRIMARY KEY (module, id)\n);\nCREATE TABLE prefiq_modules (\n    name TEXT PRIMARY KEY,\n    version TEXT NOT NULL,\n    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()\n);",
        ),
        Migration::per_backend(
            "0001_tenant_config",
            "CREATE TABLE prefiq_tenant_config (\n    tenant_id TEXT NOT NULL,\n    key TEXT NOT NULL,\n    value TEXT NOT NULL,\n    modified_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),\n    PRIMARY KEY (tenant_id, key)\n);",
            "CREATE TABLE prefiq_tenant_config (\n    tenant_id TEXT NOT NULL,\n    key TEXT NOT NULL,\n    value JSONB NOT NULL,\n    modified_at TIMESTAMPTZ NOT NULL DEFAULT now(),\n    PRIMARY KEY (tenant_id, key)\n);",
        ),
        Migration::per_backend(
            "0002_entities",
            "CREATE TABLE prefiq_entities (\n    name TEXT PRIMARY KEY,\n    module TEXT NOT NULL,\n    schema TEXT NOT NULL\n);\nCREATE TABLE prefiq_outbox (\n    id TEXT PRIMARY KEY,\n    tenant_id TEXT NOT NULL,\n    entity TEXT NOT NULL,\n    record_id TEXT NOT NULL,\n    event TEXT NOT NULL,\n    payload TEXT NOT NULL,\n    trace_id TEXT NOT NULL,\n    created_at TEXT NOT NULL,\n    published_at TEXT\n);\nCREATE INDEX prefiq_outbox_unpublished ON prefiq_outbox (created_at) WHERE published_at IS NULL;\nCREATE TABLE prefiq_series (\n    tenant_id TEXT NOT NULL,\n    prefix TEXT NOT NULL,\n    current INTEGER NOT NULL,\n    PRIMARY KEY (tenant_id, prefix)\n);",
            "CREATE TABLE prefiq_entities (\n    name TEXT PRIMARY KEY,\n    module TEXT NOT NULL,\n    schema JSONB NOT NULL\n);\nCREATE TABLE prefiq_outbox (\n    id TEXT PRIMARY KEY,\n    tenant_id TEXT NOT NULL,\n    entity TEXT NOT NULL,\n    record_id TEXT NOT NULL,\n    event TEXT NOT NULL,\n    payload JSONB NOT NULL,\n    trace_id TEXT NOT NULL,\n    created_at TEXT NOT NULL,\n    published_at TEXT\n);\nCREATE INDEX prefiq_outbox_unpublished ON prefiq_outbox (created_at) WHERE published_at IS NULL;\nCREATE TABLE prefiq_series (\n    tenant_id TEXT NOT NULL,\n    prefix TEXT NOT NULL,\n    current BIGINT NOT NULL,\n    PRIMARY KEY (tenant_id, prefix)\n);",
        ),
        Migration::per_backend(
            "0003_custom_fields",
            "CREATE TABLE prefiq_custom_fields (\n    tenant_id TEXT NOT NULL,\n    entity TEXT NOT NULL,\n    name TEXT NOT NULL,\n    definition TEXT NOT NULL,\n    created_at TEXT NOT NULL,\n    PRIMARY KEY (tenant_id, entity, name)\n);",
            "CREATE TABLE prefiq_custom_fields (\n    tenant_id TEXT NOT NULL,\n    entity TEXT NOT NULL,\n    name TEXT NOT NULL,\n    definition JSONB NOT NULL,\n    created_at TEXT NOT NULL,\n    PRIMARY KEY (tenant_id, entity, name)\n);",
        ),
        crate::audit::migration(),
        crate::audit_sequencer::migration(),
        crate::outbox::migration(),
        crate::jobs::migration(),
    ]
}

/// The checksum recorded for a migration: SHA-256 of its SQL on the backend, in hex.
pub fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Plans and applies migrations on the configured database.
pub struct SqlMigrationRunner {
    handle: Arc<DatabaseHandle>,
    entities: Arc<Entities>,
}

impl SqlMigrationRunner {
    /// A runner over `handle` that also creates and alters the tables of `entities`.
    pub fn new(handle: Arc<DatabaseHandle>, entities: Arc<Entities>) -> Self {
        SqlMigrationRunner { handle, entities }
    }

    fn with_system(modules: &[ModuleMigrations]) -> Vec<ModuleMigrations> {
        let mut all = vec![ModuleMigrations {
            module: SYSTEM_MODULE.to_owned(),
            version: semver::Version::new(0, 0, 0),
            migrations: system_migrations(),
        }];
        all.extend(modules.iter().cloned());
        // The installation's own entities come last: they may link to any module's.
        all.push(ModuleMigrations {
            module: crate::entity::SITE_MODULE.to_owned(),
            version: semver::Version::new(0, 0, 0),
            migrations: Vec::new(),
        });
        all
    }
}

fn migration_error(message: String) -> KernelError {
    KernelError::Migration(message)
}

/// What the database records: applied checksums and module versions. Empty when the
/// database (or its migrations table) does not exist yet.
type Recorded = (
    HashMap<(String, String), String>,
    HashMap<String, String>,
    HashMap<String, EntitySchema>,
);

/// The first column of the first row of `sql`, an integer (0 when absent).
async fn count(conn: &mut Conn<'_>, sql: &str) -> Result<i64, DataError> {
    let rows = conn.fetch(&Sql::new(sql, vec![]), &[SqlType::Int]).await?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(Cell::as_int)
        .unwrap_or(0))
}

async fn recorded(database: Option<&Database>) -> Result<Recorded, DataError> {
    let Some(database) = database else {
        return Ok(Default::default());
    };
    let (exists_sql, rows_sql, versions_sql) = (
        match database.backend() {
            Backend::Sqlite => {
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'prefiq_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) AS n FROM pg_catalog.pg_tables WHERE tablename = 'prefiq_migrations' AND schemaname = ANY (current_schemas(false))"
            }
        },
        "SELECT module, id, checksum FROM prefiq_migrations",
        "SELECT name, version FROM prefiq_modules",
    );
    let mut applied = HashMap::new();
    let mut versions = HashMap::new();
    let mut snapshots = HashMap::new();
    let entities_exist_sql = exists_sql.replace("prefiq_migrations", "prefiq_entities");
    let snapshots_sql = match database.backend() {
        Backend::Sqlite => "SELECT name, schema FROM prefiq_entities",
        Backend::Postgres => "SELECT name, schema::text AS schema FROM prefiq_entities",
    };
    let mut reading = database.reader().await?;
    let conn = &mut reading.conn();
    let text = |cell: &mut Vec<Cell>, i: usize| {
        std::mem::replace(&mut cell[i], Cell::Null)
            .into_text()
            .unwrap_or_default()
    };
    if count(conn, exists_sql).await? > 0 {
        let rows = Sql::new(rows_sql, vec![]);
        for mut row in conn
            .fetch(&rows, &[SqlType::Text, SqlType::Text, SqlType::Text])
            .await?
        {
            applied.insert((text(&mut row, 0), text(&mut row, 1)), text(&mut row, 2));
        }
        let versions_sql = Sql::new(versions_sql, vec![]);
        for mut row in conn
            .fetch(&versions_sql, &[SqlType::Text, SqlType::Text])
            .await?
        {
            versions.insert(text(&mut row, 0), text(&mut row, 1));
        }
    }
    if count(conn, &entities_exist_sql).await? > 0 {
        let snapshots_sql = Sql::new(snapshots_sql, vec![]);
        for mut row in conn
            .fetch(&snapshots_sql, &[SqlType::Text, SqlType::Text])
            .await?
        {
            // A snapshot that no longer parses is treated as absent: its table is then
            // re-created, which fails loudly rather than silently.
            if let Ok(schema) = serde_json::from_str::<EntitySchema>(&text(&mut row, 1)) {
                snapshots.insert(text(&mut row, 0), schema);
            }
        }
    }
    Ok((applied, versions, snapshots))
}

#[async_trait]
impl MigrationRunner for SqlMigrationRunner {
    async fn plan(&self, modules: &[ModuleMigrations]) -> Result<MigrationPlan, KernelError> {
        let backend = self.handle.backend();
        let (applied, versions, snapshots) = recorded(self.handle.get().ok())
            .await
            .map_err(|e| migration_error(e.to_string()))?;
        let registry = self.entities.registry();
        let mut plan = MigrationPlan {
            backend: Some(backend),
            ..Default::default()
        };
        for module in Self::with_system(modules) {
            // A module's entity tables come first, so that its own migrations may build on
            // them (a view over an entity table, a data migration).
            for schema in registry.all().filter(|s| s.module == module.module) {
                let planned =
                    crate::entity::ddl::plan_entity(schema, snapshots.get(schema.table()), backend)
                        .map_err(|e| migration_error(e.to_string()))?;
                if let Some(pending) = planned
                    && !applied.contains_key(&(pending.module.clone(), pending.id.clone()))
                {
                    plan.pending.push(pending);
                }
            }
            let mut seen = std::collections::HashSet::new();
            for migration in &module.migrations {
                if !seen.insert(migration.id) {
                    return Err(migration_error(format!(
                        "module `{}` declares migration `{}` twice",
                        module.module, migration.id
                    )));
                }
                let sql = migration.sql(backend);
                let sum = checksum(sql);
                match applied.get(&(module.module.clone(), migration.id.to_owned())) {
                    Some(recorded) if *recorded != sum => {
                        return Err(migration_error(format!(
                            "migration `{}/{}` was changed after it was applied (recorded checksum {}, now {}); restore it and add a new migration instead",
                            module.module,
                            migration.id,
                            short(recorded),
                            short(&sum)
                        )));
                    }
                    Some(_) => {}
                    None => plan.pending.push(PendingMigration {
                        module: module.module.clone(),
                        id: migration.id.to_owned(),
                        sql: sql.to_owned(),
                    }),
                }
            }
            if module.module != SYSTEM_MODULE && module.module != crate::entity::SITE_MODULE {
                let from = versions
                    .get(&module.module)
                    .and_then(|v| semver::Version::parse(v).ok());
                if from.as_ref() != Some(&module.version) {
                    plan.upgrades.push(ModuleUpgrade {
                        module: module.module.clone(),
                        from,
                        to: module.version.clone(),
                    });
                }
            }
        }
        Ok(plan)
    }

    async fn apply(
        &self,
        plan: &MigrationPlan,
        modules: &[ModuleMigrations],
    ) -> Result<(), KernelError> {
        let database = self.handle.get()?;
        let fail = |m: &PendingMigration, e: DataError| {
            migration_error(format!("migration `{}/{}` failed: {e}", m.module, m.id))
        };
        for pending in &plan.pending {
            let started = std::time::Instant::now();
            let sum = checksum(&pending.sql);
            let ran = apply_one(database, pending, &sum)
                .await
                .map_err(|e| fail(pending, e))?;
            if ran {
                tracing::info!(
                    target: "prefiq::migrate",
                    module = %pending.module,
                    id = %pending.id,
                    duration_ms = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
                    "migration applied"
                );
            }
        }
        if let Database::Postgres(pool) = database {
            let tables: Vec<String> = self
                .entities
                .registry()
                .all()
                .flat_map(|s| crate::entity::ddl::tenant_tables(s))
                .chain(crate::audit::TENANT_TABLES.iter().map(|t| (*t).to_owned()))
                .collect();
            secure_tables(pool, tables)
                .await
                .map_err(|e| {
                    migration_error(format!(
                        "cannot put the entity tables behind row-level security: {e}; the database user must be able to create the role `{}` or be a member of it",
                        crate::entity::ddl::APP_ROLE
                    ))
                })?;
        }
        for module in modules {
            let sql = Sql::new(
                "INSERT INTO prefiq_modules (name, version) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET version = excluded.version",
                vec![
                    module.module.as_str().into(),
                    module.version.to_string().into(),
                ],
            );
            let result = match database.writer().await {
                Ok(mut writing) => match writing.conn().execute(&sql).await {
                    Ok(_) => writing.commit(),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            result.map_err(|e| {
                migration_error(format!(
                    "cannot record the version of module `{}`: {e}",
                    module.module
                ))
            })?;
        }
        Ok(())
    }
}

/// Puts `tables` (entity tables and closure tables) behind row-level security on PostgreSQL and makes sure the
/// application role exists with its privileges. It changes only what is missing, so a
/// boot of an installation already set up takes no table locks.
pub(crate) async fn secure_tables(
    pool: &sqlx::PgPool,
    tables: Vec<String>,
) -> Result<(), sqlx::Error> {
    use crate::entity::ddl;
    let secured: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_policies p WHERE p.schemaname = n.nspname AND p.tablename = c.relname AND p.policyname = 'tenant_isolation')",
    )
    .fetch_all(pool)
    .await?;
    let missing: Vec<String> = tables
        .into_iter()
        .filter(|t| !secured.contains(t))
        .collect();
    let role_ready: bool = sqlx::query_scalar(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1 AND NOT rolbypassrls AND NOT rolsuper) THEN has_table_privilege($1, 'prefiq_outbox', 'INSERT') AND NOT has_table_privilege($1, 'prefiq_audit', 'UPDATE') AND pg_has_role(current_user, $1, 'USAGE') ELSE false END",
    )
    .bind(ddl::APP_ROLE)
    .fetch_one(pool)
    .await?;
    if missing.is_empty() && role_ready {
        return Ok(());
    }
    let mut sql = ddl::app_role();
    sql.push_str(crate::audit::REVOKE_SQL);
    for table in &missing {
        sql.push_str(&ddl::row_security(table));
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PG_MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::Executor::execute(&mut *tx, sql.as_str()).await?;
    tx.commit().await?;
    if !missing.is_empty() {
        tracing::info!(target: "prefiq::migrate", tables = missing.len(), "entity tables put behind row-level security");
    }
    Ok(())
}

/// Runs one migration and records it, in one transaction; `false` when another replica
/// applied it first (PostgreSQL).
///
/// Boxed: a plain `async fn` here makes the callers' futures `Send` only for one
/// lifetime (sqlx's executor bounds), which `async_trait` cannot name.
pub(crate) fn apply_one<'a>(
    database: &'a Database,
    pending: &'a PendingMigration,
    sum: &'a str,
) -> futures_util::future::BoxFuture<'a, Result<bool, DataError>> {
    Box::pin(async move {
        match database {
            Database::Sqlite(_) => {
                let mut tx = database.begin().await?;
                let record = Sql::new(
                    "INSERT INTO prefiq_migrations (module, id, checksum) VALUES ($1, $2, $3)",
                    vec![
                        pending.module.as_str().into(),
                        pending.id.as_str().into(),
                        sum.into(),
                    ],
                );
                let ran = apply_sqlite(&mut tx.conn(), &pending.sql, &record).await;
                match ran {
                    Ok(()) => {
                        tx.commit().await?;
                        Ok(true)
                    }
                    Err(e) => {
                        tx.rollback().await?;
                        Err(e)
                    }
                }
            }
            Database::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PG_MIGRATION_LOCK)
                    .execute(&mut *tx)
                    .await?;
                let ran = apply_postgres(&mut tx, pending, sum).await?;
                tx.commit().await?;
                Ok(ran)
            }
        }
    })
}

/// Runs one migration (a script) and records it, inside the caller's transaction.
async fn apply_sqlite(conn: &mut Conn<'_>, script: &str, record: &Sql) -> Result<(), DataError> {
    conn.execute_script(script).await?;
    conn.execute(record).await?;
    Ok(())
}

/// Runs one migration and records it, inside the caller's transaction, which holds the
/// migration lock. Another replica may have applied it before we got the lock; then this
/// runs nothing and returns `false`.
async fn apply_postgres(
    tx: &mut sqlx::PgConnection,
    pending: &PendingMigration,
    sum: &str,
) -> Result<bool, sqlx::Error> {
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('prefiq_migrations')::text")
        .fetch_one(&mut *tx)
        .await?;
    if table.is_some() {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM prefiq_migrations WHERE module = $1 AND id = $2",
        )
        .bind(pending.module.as_str())
        .bind(pending.id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if count > 0 {
            return Ok(false);
        }
    }
    sqlx::Executor::execute(&mut *tx, pending.sql.as_str()).await?;
    sqlx::query("INSERT INTO prefiq_migrations (module, id, checksum) VALUES ($1, $2, $3)")
        .bind(pending.module.as_str())
        .bind(pending.id.as_str())
        .bind(sum)
        .execute(&mut *tx)
        .await?;
    Ok(true)
}

fn short(sum: &str) -> &str {
    sum.get(..12).unwrap_or(sum)
}
