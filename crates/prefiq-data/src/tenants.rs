//! Where a tenant's entity rows live. In `shared` tenancy every tenant uses the main
//! database; in `database` tenancy each tenant has its own: a SQLite file in a `tenants/`
//! folder beside the main file, or a PostgreSQL database named `{main}__{tenant}`. A
//! tenant database is made and migrated (system tables and the entity tables the tenant
//! can see) on first use, then kept open; at most `database.max_open_tenants` are open at
//! once. Rows keep their `tenant_id` and every query keeps its tenant filter (and, on
//! PostgreSQL, row-level security), so the two modes run the same code and the same tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prefiq::config::{DatabaseConfig, Tenancy};
use prefiq::{BootMode, MigrationRunner};
use sqlx::Connection as _;

use crate::entity::Entities;
use crate::{DataError, Database, DatabaseHandle, DatabaseUrl, SqlMigrationRunner};

/// Migrations of a module that make tables of tenant data beside its entity tables (such
/// as the ledger's store): in `database` tenancy they run in every tenant database as well
/// as in the main one. A module contributes one with its migrations (which it also
/// declares as a module, for the main database).
#[derive(Debug, Clone)]
pub struct TenantDataMigrations {
    /// The module.
    pub module: String,
    /// The migrations, sorted by id.
    pub migrations: Vec<prefiq::Migration>,
}

/// How long an evicted tenant database stays open for the requests still using it.
const EVICTION_GRACE: Duration = Duration::from_secs(60);

/// The databases of the tenants.
pub struct TenantDatabases {
    main: Arc<DatabaseHandle>,
    entities: Arc<Entities>,
    config: DatabaseConfig,
    root: PathBuf,
    /// Module migrations that run in tenant databases too.
    tenant_data: Vec<Arc<TenantDataMigrations>>,
    /// Open tenant databases, with a use counter for eviction (least recently used).
    open: tokio::sync::Mutex<HashMap<String, (u64, Arc<DatabaseHandle>)>>,
    clock: std::sync::atomic::AtomicU64,
}

fn connect_error(url: &str, message: impl std::fmt::Display) -> DataError {
    DataError::Connect {
        url: url.to_owned(),
        message: message.to_string(),
    }
}

impl TenantDatabases {
    /// The tenant databases of an installation whose main database is `main`.
    pub fn new(
        main: Arc<DatabaseHandle>,
        entities: Arc<Entities>,
        config: DatabaseConfig,
        root: &Path,
    ) -> Self {
        TenantDatabases {
            main,
            entities,
            config,
            root: root.to_owned(),
            tenant_data: Vec::new(),
            open: tokio::sync::Mutex::new(HashMap::new()),
            clock: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// With `migrations` run in every tenant database as well.
    #[must_use]
    pub fn with_tenant_data(mut self, migrations: Vec<Arc<TenantDataMigrations>>) -> Self {
        self.tenant_data = migrations;
        self
    }

    /// The tenancy mode.
    pub fn mode(&self) -> Tenancy {
        self.config.tenancy
    }

    /// The database of `tenant` (a checked tenant name): the main one in shared tenancy.
    pub async fn handle(&self, tenant: &str) -> Result<Arc<DatabaseHandle>, DataError> {
        if self.config.tenancy == Tenancy::Shared {
            return Ok(self.main.clone());
        }
        let tick = self
            .clock
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut open = self.open.lock().await;
        if let Some((used, handle)) = open.get_mut(tenant) {
            *used = tick;
            return Ok(handle.clone());
        }
        let handle = self.open_tenant(tenant).await?;
        if open.len() >= self.config.max_open_tenants.max(1)
            && let Some(oldest) = open
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(name, _)| name.clone())
            && let Some((_, evicted)) = open.remove(&oldest)
        {
            tokio::spawn(async move {
                tokio::time::sleep(EVICTION_GRACE).await;
                if let Ok(database) = evicted.get() {
                    database.close().await;
                }
            });
        }
        open.insert(tenant.to_owned(), (tick, handle.clone()));
        Ok(handle)
    }

    /// The tenant databases open now, with their tenants.
    pub async fn open_handles(&self) -> Vec<(String, Arc<DatabaseHandle>)> {
        self.open
            .lock()
            .await
            .iter()
            .map(|(tenant, (_, handle))| (tenant.clone(), handle.clone()))
            .collect()
    }

    /// The tenants that have a database already (made by this process or an earlier
    /// one): the files in `tenants/`, or the PostgreSQL databases named after the main one.
    pub async fn existing(&self) -> Result<Vec<String>, DataError> {
        if self.config.tenancy == Tenancy::Shared {
            return Ok(Vec::new());
        }
        let mut tenants = Vec::new();
        match DatabaseUrl::parse(&self.config.url, &self.root)? {
            DatabaseUrl::Sqlite(path) => {
                let dir = path
                    .parent()
                    .map_or_else(|| PathBuf::from("tenants"), |p| p.join("tenants"));
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    return Ok(tenants);
                };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if let Some(tenant) = name.strip_suffix(".db")
                        && prefiq::context::is_tenant_name(tenant)
                    {
                        tenants.push(tenant.to_owned());
                    }
                }
            }
            DatabaseUrl::Postgres(_) => {
                let Database::Postgres(pool) = self.main.get()? else {
                    return Ok(tenants);
                };
                let main: String = sqlx::query_scalar("SELECT current_database()")
                    .fetch_one(pool)
                    .await?;
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
                )
                .bind(format!("{main}__"))
                .fetch_all(pool)
                .await?;
                for name in names {
                    // Tenant names hold no `_`, so the database name gives the tenant back.
                    let tenant = name[main.len() + 2..].replace('_', "-");
                    if prefiq::context::is_tenant_name(&tenant)
                        && postgres_database_name(&main, &tenant) == name
                    {
                        tenants.push(tenant);
                    }
                }
            }
        }
        tenants.sort();
        Ok(tenants)
    }

    /// Makes (if needed), connects and migrates the database of `tenant`.
    async fn open_tenant(&self, tenant: &str) -> Result<Arc<DatabaseHandle>, DataError> {
        if !prefiq::context::is_tenant_name(tenant) {
            return Err(DataError::Batch("not a tenant name".into()));
        }
        let url = match DatabaseUrl::parse(&self.config.url, &self.root)? {
            DatabaseUrl::Sqlite(path) => {
                let dir = path
                    .parent()
                    .map_or_else(|| PathBuf::from("tenants"), |p| p.join("tenants"));
                format!("sqlite://{}", dir.join(format!("{tenant}.db")).display())
            }
            DatabaseUrl::Postgres(url) => create_postgres_database(&url, tenant).await?,
        };
        let config = DatabaseConfig {
            url: url.clone(),
            max_connections: self.config.tenant_max_connections.max(1),
            ..self.config.clone()
        };
        let handle = Arc::new(DatabaseHandle::new(DatabaseUrl::parse(&url, &self.root)?));
        let database = Database::connect(&config, &self.root, BootMode::Serve)
            .await?
            .ok_or_else(|| connect_error(&url, "no database"))?;
        handle.set(database);
        // The tables of the entities this tenant can see: declared ones and its own.
        let visible = Arc::new(Entities::default());
        visible.set(self.entities.registry().visible_to(Some(tenant)));
        // Entity tables are planned per module; of the modules' own migrations only those
        // of tenant data run here (their platform tables stay in the main database).
        let mut modules: Vec<prefiq::ModuleMigrations> = Vec::new();
        for schema in visible.registry().all() {
            if schema.module != crate::entity::SITE_MODULE
                && !modules.iter().any(|m| m.module == schema.module)
            {
                let migrations = self
                    .tenant_data
                    .iter()
                    .filter(|t| t.module == schema.module)
                    .flat_map(|t| t.migrations.iter().cloned())
                    .collect();
                modules.push(prefiq::ModuleMigrations {
                    module: schema.module.clone(),
                    version: semver::Version::new(0, 0, 0),
                    migrations,
                });
            }
        }
        let runner = SqlMigrationRunner::new(handle.clone(), visible);
        let plan = runner
            .plan(&modules)
            .await
            .map_err(|e| connect_error(&url, e))?;
        runner
            .apply(&plan, &[])
            .await
            .map_err(|e| connect_error(&url, e))?;
        tracing::info!(target: "prefiq::tenants", tenant, "tenant database opened");
        Ok(handle)
    }
}

/// The name of a tenant's PostgreSQL database: the main database's name, two
/// underscores, the tenant with `-` as `_` (PostgreSQL folds unquoted names, and these
/// stay within 63 bytes by construction).
pub fn postgres_database_name(main: &str, tenant: &str) -> String {
    let mut name = format!("{main}__{}", tenant.replace('-', "_"));
    name.truncate(63);
    name
}

/// Creates the tenant's PostgreSQL database if it does not exist, and answers its URL.
async fn create_postgres_database(main_url: &str, tenant: &str) -> Result<String, DataError> {
    let (base, query) = main_url
        .split_once('?')
        .map_or((main_url, None), |(b, q)| (b, Some(q)));
    let slash = base
        .rfind('/')
        .filter(|i| !base[..*i].ends_with('/'))
        .ok_or_else(|| connect_error(main_url, "the URL names no database"))?;
    let main_name = &base[slash + 1..];
    let name = postgres_database_name(main_name, tenant);
    let mut url = format!("{}/{name}", &base[..slash]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    let mut conn = sqlx::PgConnection::connect(main_url)
        .await
        .map_err(|e| connect_error(main_url, e))?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| connect_error(main_url, e))?;
    if !exists {
        let create = format!("CREATE DATABASE \"{name}\"");
        let created = sqlx::Executor::execute(&mut conn, create.as_str()).await;
        // Another replica may have made it between the check and the create.
        if let Err(e) = created
            && !e.to_string().contains("already exists")
        {
            return Err(connect_error(main_url, e));
        }
    }
    let _ = conn.close().await;
    Ok(url)
}
