//! Test helpers: a database per test, on SQLite always and on PostgreSQL when
//! `PREFIQ_TEST_POSTGRES_URL` names a server.

use std::path::PathBuf;

use sqlx::Connection;

/// The variable that names the PostgreSQL server tests may use.
pub const POSTGRES_URL_VAR: &str = "PREFIQ_TEST_POSTGRES_URL";

/// A database that exists for one test; dropped (PostgreSQL) or deleted (SQLite) after.
pub struct TestDatabase {
    /// The `database.url` to configure.
    pub url: String,
    /// A directory for the test's files (the SQLite file lives here).
    pub dir: tempfile::TempDir,
    admin_url: Option<String>,
    name: Option<String>,
}

impl TestDatabase {
    /// A fresh SQLite file in a temporary directory.
    pub fn sqlite() -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        Ok(TestDatabase {
            url,
            dir,
            admin_url: None,
            name: None,
        })
    }

    /// A fresh PostgreSQL database, or `None` (with the reason printed) when the variable is
    /// unset. A set variable whose server cannot be reached is a failure, not a skip.
    pub async fn postgres(suite: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            skipped(suite, &format!("{POSTGRES_URL_VAR} is not set"));
            return None;
        };
        let name = format!("prefiq_t_{}", uuid::Uuid::now_v7().simple());
        let mut conn = match sqlx::PgConnection::connect(&admin_url).await {
            Ok(conn) => conn,
            Err(e) => panic!("{POSTGRES_URL_VAR} is set but PostgreSQL is unreachable: {e}"),
        };
        if let Err(e) = sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
        {
            panic!("cannot create test database {name}: {e}");
        }
        let _ = conn.close().await;
        let url = match admin_url.rfind('/') {
            Some(slash) if admin_url[..slash].ends_with(|c: char| c != '/') => {
                format!("{}/{name}", &admin_url[..slash])
            }
            _ => format!("{}/{name}", admin_url.trim_end_matches('/')),
        };
        let dir = tempfile::tempdir().ok()?;
        Some(TestDatabase {
            url,
            dir,
            admin_url: Some(admin_url),
            name: Some(name),
        })
    }

    /// The test's directory.
    pub fn root(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Connects to the database (shared tenancy, small pools), migrating nothing.
    ///
    /// # Panics
    ///
    /// When the database cannot be opened: a test has nothing to run on then.
    #[allow(clippy::expect_used)]
    pub async fn connect(&self) -> crate::Database {
        let config = prefiq::config::DatabaseConfig {
            url: self.url.clone(),
            max_connections: 2,
            busy_timeout_ms: 5_000,
            acquire_timeout_ms: 5_000,
            tenancy: prefiq::config::Tenancy::Shared,
            max_open_tenants: 4,
            tenant_max_connections: 2,
        };
        crate::Database::connect(&config, &self.root(), prefiq::BootMode::Serve)
            .await
            .expect("the test database opens")
            .expect("a database outside a dry run")
    }

    /// Drops the PostgreSQL database (SQLite files go with the directory).
    pub async fn cleanup(self) {
        if let (Some(admin_url), Some(name)) = (&self.admin_url, &self.name)
            && let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await
        {
            // Tenant databases (database-per-tenant tests) are named after this one.
            let tenants: Vec<String> = sqlx::query_scalar(
                "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)",
            )
            .bind(format!("{name}__"))
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
            for database in tenants.iter().chain(std::iter::once(name)) {
                let _ = sqlx::raw_sql(&format!(
                    "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                ))
                .execute(&mut conn)
                .await;
            }
        }
    }
}

/// Every backend available to this test run: SQLite, plus PostgreSQL when configured.
pub async fn databases(suite: &str) -> Vec<TestDatabase> {
    let mut out = vec![TestDatabase::sqlite().expect("a temporary directory")];
    if let Some(pg) = TestDatabase::postgres(suite).await {
        out.push(pg);
    }
    out
}

/// Says on stderr (which test runners show) that a suite was skipped, and why.
pub fn skipped(suite: &str, why: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("SKIPPED {suite} on PostgreSQL: {why}");
    }
}

/// A repository over `db` for one entity schema (`yaml`, as module `m`, file `file`), with
/// its table migrated: the set-up of tests that drive the entity engine without the kernel.
///
/// # Panics
///
/// When the database cannot be reached or the schema or its migration fails: a test set-up
/// has nothing better to do.
#[allow(clippy::unwrap_used, clippy::missing_panics_doc)]
pub async fn repository(
    db: &TestDatabase,
    file: &'static str,
    yaml: &'static str,
) -> crate::entity::repo::Repository {
    repository_with(db, file, yaml, |_| None).await
}

/// [`repository`] with the authorizer `authorizer` makes from the entity registry.
///
/// # Panics
///
/// As [`repository`].
#[allow(clippy::unwrap_used, clippy::missing_panics_doc)]
pub async fn repository_with(
    db: &TestDatabase,
    file: &'static str,
    yaml: &'static str,
    authorizer: impl FnOnce(
        std::sync::Arc<crate::entity::Entities>,
    ) -> Option<std::sync::Arc<dyn crate::entity::repo::EntityAuthorizer>>,
) -> crate::entity::repo::Repository {
    repository_of(db, &[(file, yaml)], authorizer).await
}

/// [`repository_with`] for several entity schemas (`(file, yaml)`) of module `m`.
///
/// # Panics
///
/// As [`repository`].
#[allow(clippy::unwrap_used, clippy::missing_panics_doc)]
pub async fn repository_of(
    db: &TestDatabase,
    schemas: &[(&'static str, &'static str)],
    authorizer: impl FnOnce(
        std::sync::Arc<crate::entity::Entities>,
    ) -> Option<std::sync::Arc<dyn crate::entity::repo::EntityAuthorizer>>,
) -> crate::entity::repo::Repository {
    use std::path::Path;
    use std::sync::Arc;

    use prefiq::{BootMode, EntitySource, EntitySources, MigrationRunner, ModuleMigrations};

    let config = prefiq::config::DatabaseConfig {
        url: db.url.clone(),
        max_connections: 4,
        busy_timeout_ms: 5000,
        acquire_timeout_ms: 5000,
        tenancy: prefiq::config::Tenancy::Shared,
        max_open_tenants: 64,
        tenant_max_connections: 2,
    };
    let handle = Arc::new(crate::DatabaseHandle::new(
        crate::DatabaseUrl::parse(&db.url, Path::new("/")).unwrap(),
    ));
    handle.set(
        crate::Database::connect(&config, Path::new("/"), BootMode::Command)
            .await
            .unwrap()
            .unwrap(),
    );
    let entities = Arc::new(crate::entity::Entities::default());
    let sources = EntitySources(
        schemas
            .iter()
            .map(|(file, yaml)| ("m".into(), EntitySource { file, yaml }))
            .collect(),
    );
    entities.set(crate::entity::EntityRegistry::load(&sources).unwrap());
    let runner = crate::SqlMigrationRunner::new(handle.clone(), entities.clone());
    let modules = vec![ModuleMigrations {
        module: "m".into(),
        version: semver::Version::new(1, 0, 0),
        migrations: vec![],
    }];
    let plan = runner.plan(&modules).await.unwrap();
    runner.apply(&plan, &modules).await.unwrap();
    let authorizer = authorizer(entities.clone());
    crate::entity::repo::Repository::new(handle, entities, vec![], authorizer)
}
