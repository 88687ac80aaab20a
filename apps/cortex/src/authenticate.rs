//! Turning a bearer credential back into a principal, and revoking what was issued.
//!
//! A verified access token is cached by the SHA-256 of its text until it expires, so the
//! signature is checked once. What the cache may never do is outlive a revocation: every
//! request, cached or not, also compares the token's `epoch` claim with its user's
//! current *session epoch*, a counter on the user's row that [`Identity`] bumps when a
//! user's tokens must stop at once (a logout, a password change or reset, a change of
//! roles, attributes or status, a break-glass recovery). A disabled or deleted user has no
//! current epoch, so every token of it is refused.
//!
//! The current epochs are cached per user in the cache service (`crate::caching`): a
//! bump made through this process applies to the next request, one made through another
//! replica as soon as its invalidation arrives (Redis or NATS), or within
//! [`SESSION_CACHE_TTL`] when no transport connects the replicas.
//! `benches/revocation.rs` measures the check with the cache and without it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prefiq::{Authenticator, ErrorKind, KernelError, Principal, async_trait};
use prefiq_auth::AccessClaims;
use prefiq_data::entity::sql::{Sql, SqlType};

use crate::db::Cells;
use sha2::Digest as _;

use crate::identity::{Identity, IdentityError, unix_now};

/// How long a user's session epoch is trusted when no transport carries other replicas'
/// invalidations (the default `cache.unshared_ttl_ms`).
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(1);

/// The verified-token cache is cleared when it holds this many tokens.
const VERIFIED_CACHE_MAX: usize = 10_000;

/// Increments a user's session epoch; binds `$1` tenant and `$2` user. Run in the same
/// transaction as the change that revokes, where there is one.
pub(crate) const BUMP_EPOCH_SQL: &str =
    "UPDATE cortex_users SET session_epoch = session_epoch + 1 WHERE tenant_id = $1 AND id = $2";

/// The cortex migration that gives users their session epoch.
pub fn migration() -> prefiq::Migration {
    let sql = "ALTER TABLE cortex_users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;";
    prefiq::Migration::per_backend("0005_session_epoch", sql, sql)
}

/// A token whose signature was checked, with what it says.
#[derive(Clone)]
struct Verified {
    claims: AccessClaims,
    /// Issued by an external OpenID Connect issuer rather than by us.
    external: bool,
}

/// Verified tokens by SHA-256 (immutable until they expire, so this process's own).
#[derive(Default)]
pub struct TokenCaches {
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

fn revoked() -> KernelError {
    KernelError::service(
        ErrorKind::Unauthenticated,
        "the token was revoked (a sign-out, a password change, or a change to the user); sign in again",
    )
}

impl Identity {
    /// Refuses a token of `user` in `tenant` carrying session `epoch` unless that is the
    /// user's current epoch and the user is active.
    pub async fn check_session(
        &self,
        tenant: &str,
        user: &str,
        epoch: i64,
    ) -> Result<(), KernelError> {
        match self.current_epoch(tenant, user).await? {
            Some(current) if current == epoch => Ok(()),
            _ => Err(revoked()),
        }
    }

    /// The user's current session epoch (`None` when it is missing or not active), from
    /// the cache when it was read less than [`SESSION_CACHE_TTL`] ago.
    async fn current_epoch(&self, tenant: &str, user: &str) -> Result<Option<i64>, IdentityError> {
        self.cached
            .epochs
            .get_or_load(tenant, user, || async {
                let sql = "SELECT session_epoch FROM cortex_users WHERE tenant_id = $1 AND id = $2 AND status = 'active'";
                let sql = Sql::new(sql, vec![tenant.into(), user.into()]);
                Ok::<_, IdentityError>(
                    on_reader!(self.database()?, conn => conn
                        .fetch_optional(&sql, &[SqlType::Int])
                        .await?)
                    .map(|row| Cells::of(row).int()),
                )
            })
            .await
    }

    /// Forgets what this process knows of `user`'s sessions and API keys, after a change
    /// that revokes them, so that its next request reads the row.
    pub(crate) fn forget_user(&self, tenant: &str, user: &str) {
        self.cached.epochs.invalidate(tenant, user);
        self.forget_api_keys_of(tenant, user);
    }

    /// Empties the session-epoch cache, so that every next check reads the database (for
    /// benchmarks and tests that measure or need the uncached path).
    pub fn clear_session_cache(&self) {
        self.cached.epochs.clear_local();
    }

    /// Increments `user`'s session epoch on its own (when no other write goes with it),
    /// and forgets the cached one.
    pub(crate) async fn bump_epoch(&self, tenant: &str, user: &str) -> Result<(), IdentityError> {
        let sql = Sql::new(BUMP_EPOCH_SQL, vec![tenant.into(), user.into()]);
        on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        self.forget_user(tenant, user);
        Ok(())
    }

    /// The claims of a token: from the cache, or verified (by us or by its external
    /// issuer) and cached.
    async fn verified_claims(
        &self,
        bearer: &str,
        digest: &[u8; 32],
        now: i64,
    ) -> Result<Verified, KernelError> {
        let cached = self
            .caches
            .verified
            .lock()
            .ok()
            .and_then(|cache| cache.get(digest).cloned())
            .filter(|v| now <= v.claims.exp + prefiq_auth::token::LEEWAY_S);
        if let Some(verified) = cached {
            return Ok(verified);
        }
        let verified = match self.external_issuer(bearer) {
            Some(issuer) => Verified {
                claims: self.external_claims(issuer, bearer, now).await?,
                external: true,
            },
            None => Verified {
                claims: self
                    .key
                    .verify(bearer, now)
                    .map_err(|e| KernelError::service(ErrorKind::Unauthenticated, e))?,
                external: false,
            },
        };
        if let Ok(mut cache) = self.caches.verified.lock() {
            if cache.len() >= VERIFIED_CACHE_MAX {
                cache.clear();
            }
            cache.insert(*digest, verified.clone());
        }
        Ok(verified)
    }

    fn forget_token(&self, digest: &[u8; 32]) {
        if let Ok(mut cache) = self.caches.verified.lock() {
            cache.remove(digest);
        }
    }
}

#[async_trait]
impl Authenticator for Identity {
    async fn principal_of(
        &self,
        tenant: &str,
        user: &str,
    ) -> Result<Option<Principal>, KernelError> {
        if !self
            .tenant_active(tenant)
            .await
            .map_err(KernelError::from)?
        {
            return Ok(None);
        }
        let sql = "SELECT roles, attributes FROM cortex_users WHERE tenant_id = $1 AND id = $2 AND status = 'active'";
        let sql = Sql::new(sql, vec![tenant.into(), user.into()]);
        let database = self.database().map_err(KernelError::from)?;
        let row = async {
            Ok::<_, IdentityError>(
                on_reader!(database, conn => conn.fetch_optional(&sql, &[SqlType::Text; 2]).await?),
            )
        }
        .await
        .map_err(KernelError::from)?;
        Ok(row.map(|row| {
            let mut cells = Cells::of(row);
            let (roles, attributes) = (cells.text(), cells.text());
            Principal {
                tenant: tenant.to_owned(),
                user: user.to_owned(),
                roles: serde_json::from_str(&roles).unwrap_or_default(),
                attributes: serde_json::from_str(&attributes).unwrap_or_default(),
                api_key: None,
            }
        }))
    }

    async fn authenticate(&self, bearer: &str) -> Result<Principal, KernelError> {
        if bearer.starts_with(crate::credentials::API_KEY_PREFIX) {
            return self.authenticate_api_key(bearer).await;
        }
        let now = unix_now();
        let digest: [u8; 32] = sha2::Sha256::digest(bearer.as_bytes()).into();
        let mut verified = self.verified_claims(bearer, &digest, now).await?;
        let claims = &verified.claims;
        if let Err(refused) = self
            .check_session(&claims.tenant, &claims.sub, claims.epoch)
            .await
        {
            self.forget_token(&digest);
            if !verified.external {
                return Err(refused);
            }
            // An external token lives as its issuer says; what changed is the user, so
            // its claims are read again (a disabled user is refused there).
            verified = self.verified_claims(bearer, &digest, now).await?;
        }
        if !self.tenant_active(&verified.claims.tenant).await? {
            return Err(KernelError::service(
                ErrorKind::Unauthenticated,
                "the token's tenant does not exist or is suspended",
            ));
        }
        let claims = verified.claims;
        Ok(Principal {
            tenant: claims.tenant,
            user: claims.sub,
            roles: claims.roles,
            attributes: claims.attrs,
            api_key: None,
        })
    }
}
