//! Per-tenant configuration: overrides stored by the data layer, merged over the base config.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{Config, check_tenant_key};
use crate::error::KernelError;

/// Where tenant overrides live. The data layer binds one as `dyn TenantConfigStore`.
#[async_trait]
pub trait TenantConfigStore: Send + Sync {
    /// Every override of `tenant`, by dotted key.
    async fn overrides(
        &self,
        tenant: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, KernelError>;

    /// Sets (`Some`) or removes (`None`) one override.
    async fn set(
        &self,
        tenant: &str,
        key: &str,
        value: Option<&serde_json::Value>,
    ) -> Result<(), KernelError>;
}

/// Reads the effective configuration of a tenant. Bound by the kernel as `ConfigService`.
pub struct ConfigService {
    base: Arc<Config>,
    module_sections: Vec<String>,
    store: Option<Arc<dyn TenantConfigStore>>,
}

impl ConfigService {
    /// A service over `base`, with tenant overrides from `store` when there is one.
    pub fn new(
        base: Arc<Config>,
        module_sections: Vec<String>,
        store: Option<Arc<dyn TenantConfigStore>>,
    ) -> Self {
        ConfigService {
            base,
            module_sections,
            store,
        }
    }

    /// The installation's configuration, without tenant overrides.
    pub fn base(&self) -> &Arc<Config> {
        &self.base
    }

    /// The effective configuration of `tenant`: the base with the tenant's overrides on top.
    pub async fn for_tenant(&self, tenant: &str) -> Result<Config, KernelError> {
        let overrides = match &self.store {
            Some(store) => store.overrides(tenant).await?,
            None => BTreeMap::new(),
        };
        Ok(self
            .base
            .for_tenant(tenant, &overrides, &self.module_sections)?)
    }

    /// Stores one override after checking that the key may be overridden and that the
    /// result still validates; nothing is written if either check fails.
    pub async fn set_override(
        &self,
        tenant: &str,
        key: &str,
        value: Option<serde_json::Value>,
    ) -> Result<Config, KernelError> {
        check_tenant_key(key, &self.module_sections)?;
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| KernelError::MissingService {
                service: std::any::type_name::<dyn TenantConfigStore>(),
                requested_by: "ConfigService::set_override".into(),
            })?;
        let mut overrides = store.overrides(tenant).await?;
        match &value {
            Some(v) => overrides.insert(key.to_owned(), v.clone()),
            None => overrides.remove(key),
        };
        let effective = self
            .base
            .for_tenant(tenant, &overrides, &self.module_sections)?;
        store.set(tenant, key, value.as_ref()).await?;
        Ok(effective)
    }
}
