//! What identity keeps in the cache service (`prefiq_cache`), so that a change made
//! through one replica (a revoked key, a suspended tenant, a sign-out) reaches the others
//! at once, and entries can be trusted for `cache.ttl_ms` rather than one second.
//!
//! Without a transport (no Redis, no NATS) the service trusts entries for
//! `cache.unshared_ttl_ms` (1 s), which is what these caches did before it existed.

use std::sync::Arc;

use prefiq::Principal;
use prefiq_cache::{Cache, Namespace, NamespaceSpec};

/// The namespace of verified API keys. Keys are looked up before their tenant is known,
/// so their entries sit under the platform scope [`PLATFORM_SCOPE`], keyed by key id.
pub const API_KEY_NAMESPACE: &str = "cortex.api_key";
/// The namespace of users' current session epochs, keyed by tenant and user.
pub const SESSION_NAMESPACE: &str = "cortex.session_epoch";
/// The namespace of whether a tenant is active, keyed by tenant.
pub const TENANT_STATUS_NAMESPACE: &str = "cortex.tenant_status";
/// The namespace the authorizer's compiled models are announced under.
pub const AUTHZ_NAMESPACE: &str = "authz.model";
/// The scope of entries that belong to no one tenant (an API key before it is read).
pub const PLATFORM_SCOPE: &str = "";

/// A verified API key: the SHA-256 of its secret and whom it stands for.
pub(crate) type VerifiedKey = Arc<([u8; 32], Principal)>;

/// Identity's namespaces.
pub(crate) struct IdentityCaches {
    pub(crate) keys: Namespace<VerifiedKey>,
    pub(crate) epochs: Namespace<Option<i64>>,
    pub(crate) status: Namespace<bool>,
}

impl IdentityCaches {
    pub(crate) fn new(cache: &Cache) -> IdentityCaches {
        IdentityCaches {
            keys: cache.namespace(NamespaceSpec::new(API_KEY_NAMESPACE).max_entries(100_000)),
            epochs: cache.namespace(NamespaceSpec::new(SESSION_NAMESPACE).max_entries(1_000_000)),
            status: cache.namespace(NamespaceSpec::new(TENANT_STATUS_NAMESPACE)),
        }
    }
}

impl crate::identity::Identity {
    /// The cache service identity keeps its entries in.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// How identity's namespaces answered so far: API keys, session epochs, tenant
    /// statuses (for benchmarks and the desk).
    pub fn cache_stats(&self) -> Vec<(&'static str, prefiq_cache::NamespaceStats)> {
        vec![
            (API_KEY_NAMESPACE, self.cached.keys.stats()),
            (SESSION_NAMESPACE, self.cached.epochs.stats()),
            (TENANT_STATUS_NAMESPACE, self.cached.status.stats()),
        ]
    }
}
