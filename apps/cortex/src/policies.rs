//! Where each tenant's own Cedar policies are kept: `cortex_policies`, read by the
//! authorizer through [`prefiq_auth::PolicyStore`].

use prefiq::async_trait;
use prefiq_data::Database;

use crate::identity::{Identity, IdentityError, civil_now};

impl Identity {
    /// The tenant's own Cedar policies, by id.
    pub async fn policies(
        &self,
        tenant: &str,
    ) -> Result<Vec<prefiq_auth::TenantPolicy>, IdentityError> {
        let sql = "SELECT id, text FROM cortex_policies WHERE tenant_id = $1 ORDER BY id LIMIT $2";
        let rows: Vec<(String, String)> = on_reader!(self.database()?, pool => sqlx::query_as(sql)
            .bind(tenant)
            .bind(i64::try_from(prefiq_auth::authz::MAX_TENANT_POLICIES).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(id, text)| prefiq_auth::TenantPolicy { id, text })
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
        let inserted = on_pool!(self.database()?, pool => sqlx::query(sql)
            .bind(tenant)
            .bind(&policy.id)
            .bind(&policy.text)
            .bind(civil_now())
            .execute(pool)
            .await?
            .rows_affected());
        if inserted == 0 {
            return Err(IdentityError::PolicyExists(policy.id.clone()));
        }
        Ok(())
    }

    /// Removes a policy; `false` when there was none.
    pub async fn remove_policy(&self, tenant: &str, id: &str) -> Result<bool, IdentityError> {
        let sql = "DELETE FROM cortex_policies WHERE tenant_id = $1 AND id = $2";
        let removed = on_pool!(self.database()?, pool => sqlx::query(sql)
            .bind(tenant)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
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
