//! Readiness checks: what `/readyz` runs.

use async_trait::async_trait;

/// One dependency's readiness. Providers contribute them as `dyn ReadinessCheck`.
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// A short name such as `database`.
    fn name(&self) -> &str;

    /// `Ok` when the dependency answers; the error says what failed.
    async fn check(&self) -> Result<(), String>;

    /// A sentence on how the dependency runs when it is ready but degraded, such as
    /// "keyword-only: no embedding model"; shown beside its status.
    fn detail(&self) -> Option<String> {
        None
    }
}
