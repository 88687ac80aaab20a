//! The databases background work goes over: the main one, and in `database` tenancy every
//! tenant's own (each has its outbox and its queue, written in the tenant's transactions).

use std::sync::Arc;

use prefiq_data::DatabaseHandle;
use prefiq_data::entity::repo::Repository;
use prefiq_data::tenants::TenantDatabases;

/// The main database and, in `database` tenancy, the tenants'.
#[derive(Clone)]
pub struct Databases {
    main: Arc<DatabaseHandle>,
    tenants: Option<Arc<TenantDatabases>>,
}

impl Databases {
    /// The databases `repository` writes to.
    pub fn of(repository: &Repository) -> Databases {
        Databases {
            main: repository.main_database(),
            tenants: repository.tenant_databases(),
        }
    }

    /// The main database.
    pub fn main(&self) -> &Arc<DatabaseHandle> {
        &self.main
    }

    /// Opens the database of every tenant that has one, so that events and jobs a stopped
    /// process left in them are picked up without waiting for the tenant's next request.
    pub async fn open_existing(&self) {
        let Some(tenants) = &self.tenants else {
            return;
        };
        match tenants.existing().await {
            Ok(names) => {
                for name in names {
                    if let Err(e) = tenants.handle(&name).await {
                        tracing::warn!(target: "prefiq::worker", tenant = %name, error = %e, "a tenant database could not be opened");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(target: "prefiq::worker", error = %e, "the tenant databases could not be listed");
            }
        }
    }

    /// Every database open now, labelled (`main`, or the tenant).
    pub async fn all(&self) -> Vec<(String, Arc<DatabaseHandle>)> {
        let mut all = vec![("main".to_owned(), self.main.clone())];
        if let Some(tenants) = &self.tenants {
            let mut open = tenants.open_handles().await;
            open.sort_by(|a, b| a.0.cmp(&b.0));
            all.extend(open);
        }
        all
    }

    /// The database that holds `tenant`'s rows (and its jobs).
    pub async fn of_tenant(
        &self,
        tenant: &str,
    ) -> Result<Arc<DatabaseHandle>, prefiq_data::DataError> {
        match &self.tenants {
            Some(tenants) if !tenant.is_empty() => tenants.handle(tenant).await,
            _ => Ok(self.main.clone()),
        }
    }
}
