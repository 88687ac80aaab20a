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
}
