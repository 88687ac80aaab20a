//! Per-tenant config overrides in `prefiq_tenant_config`.

use std::collections::BTreeMap;
use std::sync::Arc;

use prefiq::{KernelError, TenantConfigStore, async_trait};
use sqlx::Row;

use crate::DataError;
use crate::database::{Database, DatabaseHandle};

/// Stores tenant overrides as JSON text by dotted key.
pub struct SqlTenantConfigStore {
    handle: Arc<DatabaseHandle>,
}

impl SqlTenantConfigStore {
    /// A store over `handle`.
    pub fn new(handle: Arc<DatabaseHandle>) -> Self {
        SqlTenantConfigStore { handle }
    }
}

fn corrupt(tenant: &str, key: &str, e: serde_json::Error) -> KernelError {
    KernelError::service(
        prefiq::ErrorKind::Internal,
        format!("stored override `{key}` of tenant `{tenant}` is not JSON: {e}"),
    )
}

#[async_trait]
impl TenantConfigStore for SqlTenantConfigStore {
    async fn overrides(
        &self,
        tenant: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, KernelError> {
        let rows = match self.handle.get()? {
            Database::Sqlite(db) => {
                sqlx::query("SELECT key, value FROM prefiq_tenant_config WHERE tenant_id = $1")
                    .bind(tenant)
                    .fetch_all(&db.readers)
                    .await
                    .map_err(DataError::from)?
                    .into_iter()
                    .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()
            }
            Database::Postgres(pool) => sqlx::query(
                "SELECT key, value::text FROM prefiq_tenant_config WHERE tenant_id = $1",
            )
            .bind(tenant)
            .fetch_all(pool)
            .await
            .map_err(DataError::from)?
            .into_iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>(),
        }
        .map_err(DataError::from)?;
        rows.into_iter()
            .map(|(key, text)| {
                let value = serde_json::from_str(&text).map_err(|e| corrupt(tenant, &key, e))?;
                Ok((key, value))
            })
            .collect()
    }

    async fn set(
        &self,
        tenant: &str,
        key: &str,
        value: Option<&serde_json::Value>,
    ) -> Result<(), KernelError> {
        let database = self.handle.get()?;
        let result = match (database, value) {
            (Database::Sqlite(db), Some(value)) => sqlx::query(
                "INSERT INTO prefiq_tenant_config (tenant_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value, modified_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )
            .bind(tenant)
            .bind(key)
            .bind(value.to_string())
            .execute(&db.writer)
            .await
            .map(|_| ()),
            (Database::Postgres(pool), Some(value)) => sqlx::query(
                "INSERT INTO prefiq_tenant_config (tenant_id, key, value) VALUES ($1, $2, $3::jsonb) \
                 ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value, modified_at = now()",
            )
            .bind(tenant)
            .bind(key)
            .bind(value.to_string())
            .execute(pool)
            .await
            .map(|_| ()),
            (Database::Sqlite(db), None) => {
                sqlx::query("DELETE FROM prefiq_tenant_config WHERE tenant_id = $1 AND key = $2").bind(tenant).bind(key).execute(&db.writer).await.map(|_| ())
            }
            (Database::Postgres(pool), None) => {
                sqlx::query("DELETE FROM prefiq_tenant_config WHERE tenant_id = $1 AND key = $2").bind(tenant).bind(key).execute(pool).await.map(|_| ())
            }
        };
        result.map_err(DataError::from)?;
        Ok(())
    }
}
