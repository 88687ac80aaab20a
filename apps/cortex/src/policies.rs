//! Where each tenant's own Cedar policies are kept: `cortex_policies`, read by the
//! authorizer through [`prefiq_auth::PolicyStore`].

use prefiq::async_trait;
use prefiq_data::entity::sql::{Sql, SqlType};

use crate::db::Cells;

use crate::identity::{Identity, IdentityError, civil_now};

impl Identity {
    /// The tenant's own Cedar policies, by id.
    pub async fn policies(
        &self,
        tenant: &str,
    ) -> Result<Vec<prefiq_auth::TenantPolicy>, IdentityError> {
        let sql = "SELECT id, text FROM cortex_policies WHERE tenant_id = $1 ORDER BY id LIMIT $2";
        let sql = Sql::new(
            sql,
            vec![
                tenant.into(),
                i64::try_from(prefiq_auth::authz::MAX_TENANT_POLICIES)
                    .unwrap_or(i64::MAX)
                    .into(),
            ],
        );
        let rows = on_reader!(self.database()?, conn => conn
            .fetch(&sql, &[SqlType::Text, SqlType::Text])
            .await?);
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut cells = Cells::of(row);
                prefiq_auth::TenantPolicy {
                    id: cells.text(),
                    text: cells.text(),
                }
            })
            .collect())
    }

    /// Stores a policy (already validated by the caller).
    pub async fn add_policy(
        &self,
        tenant: &str,
        policy: &prefiq_auth::TenantPolicy,
    ) -> Result<(), IdentityError> {
        if self.policies(tenant).await?.len() >= prefiq_auth::authz::MAX_TENANT_POLICIES {
            return Err(IdentityError::Invalid {
                field: "id",
                message: format!(
                    "a tenant has at most {} policies",
                    prefiq_auth::authz::MAX_TENANT_POLICIES
                ),
            });
        }
        let sql = "INSERT INTO cortex_policies (tenant_id, id, text, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, id) DO NOTHING";
        let sql = Sql::new(
            sql,
            vec![
                tenant.into(),
                policy.id.as_str().into(),
                policy.text.as_str().into(),
                civil_now().into(),
            ],
        );
        let inserted = on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        if inserted == 0 {
            return Err(IdentityError::PolicyExists(policy.id.clone()));
        }
        Ok(())
    }

    /// Removes a policy; `false` when there was none.
    pub async fn remove_policy(&self, tenant: &str, id: &str) -> Result<bool, IdentityError> {
        let sql = "DELETE FROM cortex_policies WHERE tenant_id = $1 AND id = $2";
        let sql = Sql::new(sql, vec![tenant.into(), id.into()]);
        let removed = on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        Ok(removed > 0)
    }
}

/// Cortex keeps each tenant's policies in `cortex_policies`.
#[async_trait]
impl prefiq_auth::PolicyStore for Identity {
    async fn tenant_policies(
        &self,
        tenant: &str,
    ) -> Result<Vec<prefiq_auth::TenantPolicy>, String> {
        self.policies(tenant).await.map_err(|e| e.to_string())
    }
}
