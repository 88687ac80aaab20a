//! The seam between transports and identity: a transport hands a bearer credential to the
//! bound [`Authenticator`] and gets back the [`Principal`] it stands for. The kernel knows
//! neither how credentials are made nor where users live.

use std::collections::BTreeMap;

use crate::{KernelError, async_trait};

/// Who a verified credential stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant the credential was issued for; a request may act in no other.
    pub tenant: String,
    /// The user's id.
    pub user: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// Attributes that record rules compare with (`approval_limit`, `department`), set by
    /// a tenant administrator.
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// The id of the API key the request authenticated with; `None` for a session token.
    pub api_key: Option<String>,
}

/// Checks bearer credentials. Bound by the identity module; when nothing is bound, a
/// transport treats every request as anonymous.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The principal of `bearer`; an error of kind `Unauthenticated` when it is refused
    /// (malformed, forged, expired, or its tenant or user is suspended).
    async fn authenticate(&self, bearer: &str) -> Result<Principal, KernelError>;

    /// Who a background job acting for `user` of `tenant` runs as: the user's current
    /// roles and attributes, read when the job starts, so that the job is authorized as
    /// the user's request would be now; `None` when the user or the tenant is not active
    /// (the job then fails rather than run with rights nobody holds). The default knows no
    /// users.
    async fn principal_of(
        &self,
        tenant: &str,
        user: &str,
    ) -> Result<Option<Principal>, KernelError> {
        let _ = (tenant, user);
        Ok(None)
    }
}
