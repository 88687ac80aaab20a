//! Binds the database, the migration runner, the tenant config store and the readiness check.

use std::sync::Arc;
use std::time::Duration;

use prefiq::{
    BootContext, EntitySources, KernelError, MigrationRunner, ReadinessCheck, RegisterContext,
    ServiceProvider, TenantConfigStore, async_trait,
};

use crate::database::{Database, DatabaseHandle, DatabaseUrl};
use crate::entity::repo::{
    DynamicHooks, EntityAuthorizer, EntityHook, Repository, TransactionHook,
};
use crate::entity::{Entities, EntityRegistry};
use crate::migrate::SqlMigrationRunner;
use crate::tenant_config::SqlTenantConfigStore;

/// The data layer's provider. Register binds `DatabaseHandle`, `dyn MigrationRunner` and
/// `dyn TenantConfigStore` and contributes a `database` readiness check; boot connects.
pub struct DatabaseProvider;

struct DatabaseReadiness {
    handle: Arc<DatabaseHandle>,
}

#[async_trait]
impl ReadinessCheck for DatabaseReadiness {
    fn name(&self) -> &str {
        "database"
    }

    async fn check(&self) -> Result<(), String> {
        let database = self.handle.get().map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(2), database.ping()).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err("no answer within 2 s".into()),
        }
    }
}

#[async_trait]
impl ServiceProvider for DatabaseProvider {
    fn name(&self) -> &'static str {
        "prefiq_data::DatabaseProvider"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        let url = DatabaseUrl::parse(&cx.config.database.url, &cx.config.root)?;
        let handle = Arc::new(DatabaseHandle::new(url));
        let entities = Arc::new(Entities::default());
        cx.services.singleton(handle.clone())?;
        cx.services.singleton(entities.clone())?;
        cx.services
            .singleton::<dyn MigrationRunner>(Arc::new(SqlMigrationRunner::new(
                handle.clone(),
                entities,
            )))?;
        cx.services
            .singleton::<dyn TenantConfigStore>(Arc::new(SqlTenantConfigStore::new(
                handle.clone(),
            )))?;
        {
            let handle = handle.clone();
            let database_config = cx.config.database.clone();
            let root = cx.config.root.clone();
            cx.services.lazy_singleton::<Repository, _>(move |r| {
                let entities = r.get::<Entities>()?;
                let hooks = r.services().all::<EntityHook>();
                let authorizer = r.try_get::<dyn EntityAuthorizer>();
                let mut repository =
                    Repository::new(handle.clone(), entities.clone(), hooks, authorizer)
                        .with_transaction_hooks(r.services().all::<dyn TransactionHook>())
                        .with_dynamic_hooks(r.try_get::<dyn DynamicHooks>());
                if database_config.tenancy == prefiq::config::Tenancy::Database {
                    repository = repository.with_tenant_databases(Arc::new(
                        crate::tenants::TenantDatabases::new(
                            handle.clone(),
                            entities,
                            database_config.clone(),
                            &root,
                        )
                        .with_tenant_data(
                            r.services().all::<crate::tenants::TenantDataMigrations>(),
                        ),
                    ));
                }
                Ok(Arc::new(repository))
            })?;
        }
        cx.services
            .contribute::<dyn ReadinessCheck>(Arc::new(DatabaseReadiness { handle }));
        Ok(())
    }

    async fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        let handle = cx.services.get::<DatabaseHandle>()?;
        // Schemas first: an invalid one stops boot before any connection is made.
        let sources = cx.services.get::<EntitySources>()?;
        let site_dir = cx.config.root.join("schema");
        let registry = EntityRegistry::load_with_site(&sources, Some(&site_dir))
            .map_err(|e| KernelError::service(prefiq::ErrorKind::Invalid, e))?;
        let entities = cx.services.get::<Entities>()?;
        entities.set(registry);
        if let Some(database) =
            Database::connect(&cx.config.database, &cx.config.root, cx.mode).await?
        {
            tracing::info!(target: "prefiq::data", trace_id = %cx.context.trace_id, url = %handle.url().display(), backend = ?database.backend(), "database connected");
            // Entities tenants created at run time come back from their recorded snapshots;
            // one that now clashes with a declared entity stops boot, naming both.
            let runtime = crate::entity::runtime::load(&database).await?;
            entities
                .add(runtime)
                .map_err(|e| KernelError::service(prefiq::ErrorKind::Invalid, e))?;
            handle.set(database);
        }
        Ok(())
    }

    async fn shutdown(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        if let Ok(database) = cx.services.get::<DatabaseHandle>()?.get() {
            database.close().await;
        }
        Ok(())
    }
}
