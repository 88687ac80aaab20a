//! Per-tenant config overrides in `prefiq_tenant_config`.

use std::collections::BTreeMap;
use std::sync::Arc;

use prefiq::{Backend, KernelError, TenantConfigStore, async_trait};

use crate::database::DatabaseHandle;
use crate::entity::sql::{Sql, SqlType};

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
        let database = self.handle.get()?;
        let text = match database.backend() {
            Backend::Sqlite => "SELECT key, value FROM prefiq_tenant_config WHERE tenant_id = $1",
            Backend::Postgres => {
                "SELECT key, value::text FROM prefiq_tenant_config WHERE tenant_id = $1"
            }
        };
        let rows = database
            .reader()
            .await?
            .conn()
            .fetch(
                &Sql::new(text, vec![tenant.into()]),
                &[SqlType::Text, SqlType::Text],
            )
            .await?;
        rows.into_iter()
            .map(|row| {
                let mut cells = row.into_iter().map(|c| c.into_text().unwrap_or_default());
                let key = cells.next().unwrap_or_default();
                let text = cells.next().unwrap_or_default();
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
        let sql = match (database.backend(), value) {
            (Backend::Sqlite, Some(value)) => Sql::new(
                "INSERT INTO prefiq_tenant_config (tenant_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value, modified_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                vec![tenant.into(), key.into(), value.to_string().into()],
            ),
            (Backend::Postgres, Some(value)) => Sql::new(
                "INSERT INTO prefiq_tenant_config (tenant_id, key, value) VALUES ($1, $2, $3::jsonb) \
                 ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value, modified_at = now()",
                vec![tenant.into(), key.into(), value.to_string().into()],
            ),
            (_, None) => Sql::new(
                "DELETE FROM prefiq_tenant_config WHERE tenant_id = $1 AND key = $2",
                vec![tenant.into(), key.into()],
            ),
        };
        let mut writing = database.writer().await?;
        writing.conn().execute(&sql).await?;
        writing.commit()?;
        Ok(())
    }
}
