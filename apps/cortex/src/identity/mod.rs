//! Tenants, users and logins: the records behind `prefiq tenant ...` and
//! `POST /api/v1/auth/login`. Turning a bearer token back into a principal, and revoking
//! tokens, is [`crate::authenticate`]'s.
//!
//! Passwords are argon2id hashes (made off the async runtime by `prefiq-auth`); access
//! tokens are EdDSA JWTs bound to one tenant. Repeated failed logins slow down and then
//! lock out the (account, client address) pair, or the address, that made them (see
//! [`crate::throttle`]); the account itself is never locked, so nobody can lock its owner
//! out.
//!
//! One concern per file: this one holds the configuration, errors, records, checks and
//! the `Identity` service itself; `directory.rs` creates, lists and changes tenants and
//! users; `sessions.rs` logs in, refreshes, changes passwords and logs out.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prefiq::{ErrorKind, KernelError};
use prefiq_auth::{AccessClaims, SigningKey};
use prefiq_data::entity::sql::{Sql, SqlType};
use prefiq_data::{Database, DatabaseHandle};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::db::Cells;

mod directory;
mod sessions;

/// Where a password change's failures are counted in the login throttle, in place of an
/// email.
const PASSWORD_CHANGE: &str = "password change";

/// The role a tenant's first user gets.
pub const ADMIN_ROLE: &str = prefiq_auth::authz::ADMINISTRATOR;

/// The cortex section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// The file holding the token signing key (64 hex characters, an Ed25519 seed),
    /// relative to the installation root.
    pub signing_key_file: PathBuf,
    /// The `iss` of issued tokens.
    pub issuer: String,
    /// How long an access token lives, in seconds.
    pub access_token_ttl_s: i64,
    /// How long a refresh token lives, in seconds.
    pub refresh_token_ttl_s: i64,
    /// External OpenID Connect issuers whose tokens sign users in.
    pub oidc: Vec<crate::sso::OidcIssuerConfig>,
    /// Where the development mailer writes outgoing mail (password resets), relative to
    /// the installation root.
    pub mail_file: PathBuf,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            signing_key_file: PathBuf::from("data/auth-ed25519.key"),
            issuer: "codexion".into(),
            access_token_ttl_s: 900,
            refresh_token_ttl_s: 30 * 24 * 3600,
            oidc: Vec::new(),
            mail_file: PathBuf::from("data/mail/outbox.jsonl"),
        }
    }
}

/// Why an identity operation failed. Messages are safe to show.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Bad input, with the field it concerns.
    #[error("{message}")]
    Invalid {
        /// `name`, `email` or `password`.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The tenant exists already.
    #[error("tenant `{0}` already exists")]
    TenantExists(String),
    /// A user with this email exists already in the tenant.
    #[error("a user with email `{0}` already exists")]
    UserExists(String),
    /// A role that no entity permission, module grant or the administrator role names.
    #[error("role `{role}` does not exist; the roles are {known}")]
    UnknownRole {
        /// The role given.
        role: String,
        /// The known roles, quoted and separated by commas.
        known: String,
    },
    /// A change that would leave the tenant without an active administrator.
    #[error(
        "tenant `{0}` would be left without an active System Manager; give another user the role first (or run `prefiq tenant recover`)"
    )]
    LastAdministrator(String),
    /// No such user in the tenant.
    #[error("user `{0}` does not exist")]
    NoUser(String),
    /// A password-reset token that is unknown, used or expired.
    #[error("the reset token is invalid, used or expired; ask for a new one")]
    ResetInvalid,
    /// A policy with this id exists already in the tenant.
    #[error("a policy with id `{0}` already exists")]
    PolicyExists(String),
    /// No such tenant.
    #[error("tenant `{0}` does not exist")]
    NoTenant(String),
    /// Wrong email or password, unknown tenant, a suspended tenant, a disabled user, or
    /// too many failed logins: one answer for all, so that a login reveals nothing.
    #[error("the email or password is wrong")]
    BadCredentials,
    /// A refresh token that is unknown, expired, revoked, or of a suspended tenant or user.
    #[error("the refresh token is invalid")]
    RefreshInvalid,
    /// A refresh token used a second time: the whole login it belongs to is revoked.
    #[error("the refresh token was already used; every token of this login is now revoked")]
    RefreshReused,
    /// The current password given to a password change is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    /// The signing key cannot be read or made.
    #[error("token signing key: {0}")]
    Key(String),
    /// Not connected.
    #[error(transparent)]
    Data(#[from] prefiq_data::DataError),
}

impl From<IdentityError> for KernelError {
    fn from(error: IdentityError) -> Self {
        let kind = match &error {
            IdentityError::Invalid { .. }
            | IdentityError::ResetInvalid
            | IdentityError::UnknownRole { .. } => ErrorKind::Invalid,
            IdentityError::TenantExists(_)
            | IdentityError::UserExists(_)
            | IdentityError::PolicyExists(_)
            | IdentityError::LastAdministrator(_) => ErrorKind::Conflict,
            IdentityError::NoTenant(_) | IdentityError::NoUser(_) => ErrorKind::NotFound,
            IdentityError::BadCredentials
            | IdentityError::RefreshInvalid
            | IdentityError::RefreshReused => ErrorKind::Unauthenticated,
            IdentityError::WrongPassword => ErrorKind::Forbidden,
            IdentityError::Key(_) | IdentityError::Data(_) => ErrorKind::Internal,
        };
        KernelError::service(kind, error)
    }
}

/// A tenant as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// Its name (also its host label).
    pub name: String,
    /// `active` or `suspended`.
    pub status: String,
    /// When it was created.
    pub created_at: String,
}

/// A successful login.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// The EdDSA JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: i64,
    /// Exchanged once for a new session at `POST /api/v1/auth/refresh`.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
}

/// The cortex migration for refresh tokens: stored as SHA-256, one family per login.
pub fn refresh_migration() -> prefiq::Migration {
    let sql = "CREATE TABLE cortex_refresh_tokens (\n    tenant_id TEXT NOT NULL,\n    id TEXT NOT NULL,\n    family_id TEXT NOT NULL,\n    user_id TEXT NOT NULL,\n    token_hash TEXT NOT NULL,\n    expires_at BIGINT NOT NULL,\n    used_at BIGINT,\n    revoked_at BIGINT,\n    created_at TEXT NOT NULL,\n    PRIMARY KEY (tenant_id, id)\n);\nCREATE UNIQUE INDEX cortex_refresh_tokens_hash ON cortex_refresh_tokens (token_hash);\nCREATE INDEX cortex_refresh_tokens_family ON cortex_refresh_tokens (tenant_id, family_id);";
    prefiq::Migration::per_backend("0002_refresh_tokens", sql, sql)
}

pub(crate) fn sha256_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cortex migration for authorization: user attributes (compared by record rules)
/// and each tenant's own Cedar policies.
pub fn access_migration() -> prefiq::Migration {
    let sql = "ALTER TABLE cortex_users ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';\nCREATE TABLE cortex_policies (\n    tenant_id TEXT NOT NULL,\n    id TEXT NOT NULL,\n    text TEXT NOT NULL,\n    created_at TEXT NOT NULL,\n    PRIMARY KEY (tenant_id, id)\n);";
    prefiq::Migration::per_backend("0003_access", sql, sql)
}

/// A user as administrators see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserInfo {
    /// Its id.
    pub id: String,
    /// Its email (the login name).
    pub email: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// Its attributes, for record rules.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// `active` or `disabled`.
    pub status: String,
    /// When it was created.
    pub created_at: String,
}

/// At most this many roles per user.
pub const MAX_ROLES: usize = 32;
/// At most this many attributes per user.
pub const MAX_ATTRIBUTES: usize = 32;
/// At most this many users are listed at once.
pub const MAX_LISTED_USERS: i64 = 1000;

/// Checks role names: 1 to 64 characters without control characters, at most
/// [`MAX_ROLES`].
pub fn check_roles(roles: &[String]) -> Result<(), IdentityError> {
    let bad = roles
        .iter()
        .find(|r| r.trim().is_empty() || r.len() > 64 || r.chars().any(char::is_control));
    if roles.len() > MAX_ROLES || bad.is_some() {
        return Err(IdentityError::Invalid {
            field: "roles",
            message: format!(
                "at most {MAX_ROLES} roles, each 1 to 64 characters without control characters"
            ),
        });
    }
    Ok(())
}

/// Refuses the first of `roles` that is not one of `known` (see
/// [`prefiq_auth::CedarAuthorizer::known_roles`]), naming it and the known ones.
pub fn check_known_roles(
    roles: &[String],
    known: &std::collections::BTreeSet<String>,
) -> Result<(), IdentityError> {
    match roles.iter().find(|role| !known.contains(*role)) {
        None => Ok(()),
        Some(role) => Err(IdentityError::UnknownRole {
            role: role.clone(),
            known: known
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Checks attributes: snake_case names, scalar values (strings of at most 256 bytes).
pub fn check_attributes(
    attributes: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), IdentityError> {
    let ok = attributes.len() <= MAX_ATTRIBUTES
        && attributes.iter().all(|(name, value)| {
            prefiq_data::entity::schema::is_identifier(name)
                && match value {
                    serde_json::Value::String(text) => text.len() <= 256,
                    serde_json::Value::Number(_) | serde_json::Value::Bool(_) => true,
                    _ => false,
                }
        });
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Invalid {
            field: "attributes",
            message: format!(
                "at most {MAX_ATTRIBUTES} attributes, snake_case names, each a string (at most 256 bytes), number or boolean"
            ),
        })
    }
}

/// A refresh token row as `refresh` reads it.
struct RefreshRow {
    tenant: String,
    id: String,
    family: String,
    user: String,
    expires_at: i64,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// The cortex migration that creates the identity tables.
pub fn migration() -> prefiq::Migration {
    prefiq::Migration::per_backend(
        "0001_identity",
        "CREATE TABLE cortex_tenants (\n    name TEXT PRIMARY KEY,\n    status TEXT NOT NULL,\n    created_at TEXT NOT NULL\n);\nCREATE TABLE cortex_users (\n    tenant_id TEXT NOT NULL,\n    id TEXT NOT NULL,\n    email TEXT NOT NULL,\n    password_hash TEXT NOT NULL,\n    roles TEXT NOT NULL,\n    status TEXT NOT NULL,\n    failed_logins INTEGER NOT NULL DEFAULT 0,\n    locked_until BIGINT,\n    created_at TEXT NOT NULL,\n    PRIMARY KEY (tenant_id, id)\n);\nCREATE UNIQUE INDEX cortex_users_email ON cortex_users (tenant_id, email);",
        "CREATE TABLE cortex_tenants (\n    name TEXT PRIMARY KEY,\n    status TEXT NOT NULL,\n    created_at TEXT NOT NULL\n);\nCREATE TABLE cortex_users (\n    tenant_id TEXT NOT NULL,\n    id TEXT NOT NULL,\n    email TEXT NOT NULL,\n    password_hash TEXT NOT NULL,\n    roles TEXT NOT NULL,\n    status TEXT NOT NULL,\n    failed_logins BIGINT NOT NULL DEFAULT 0,\n    locked_until BIGINT,\n    created_at TEXT NOT NULL,\n    PRIMARY KEY (tenant_id, id)\n);\nCREATE UNIQUE INDEX cortex_users_email ON cortex_users (tenant_id, email);",
    )
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(crate) fn civil_now() -> String {
    prefiq_data::entity::value::civil_now()
}

/// An email as stored: trimmed and lower-cased; refused unless it looks like one.
pub(crate) fn normalise_email(email: &str) -> Result<String, IdentityError> {
    let email = email.trim().to_ascii_lowercase();
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if ok {
        Ok(email)
    } else {
        Err(IdentityError::Invalid {
            field: "email",
            message: "not an email address".into(),
        })
    }
}

/// Reads the signing key, or (outside production) makes one on first use.
pub fn load_signing_key(
    root: &Path,
    env: &str,
    config: &IdentityConfig,
) -> Result<SigningKey, IdentityError> {
    let path = root.join(&config.signing_key_file);
    let seed = prefiq::secret::read_or_make_seed(&path, env, SigningKey::generate_seed)
        .map_err(IdentityError::Key)?;
    SigningKey::from_seed(&seed, &config.issuer).map_err(|e| IdentityError::Key(e.to_string()))
}

/// A user row as a login reads it.
struct UserRow {
    id: String,
    hash: String,
    roles: String,
    attributes: String,
    status: String,
    epoch: i64,
}

/// Tenants, users and logins over the application database.
pub struct Identity {
    handle: Arc<DatabaseHandle>,
    pub(crate) key: SigningKey,
    ttl_s: i64,
    refresh_ttl_s: i64,
    /// Verified against when a login names no user, so that such a login takes as long.
    decoy: tokio::sync::OnceCell<String>,
    /// Whether each tenant is active (every authenticated request asks, and a database
    /// round trip each time would double the cost of a read), users' current session
    /// epochs and verified API keys, in the cache service.
    pub(crate) cached: crate::caching::IdentityCaches,
    /// The cache service those live in, through which other caches' changes are announced.
    pub(crate) cache: prefiq_cache::Cache,
    /// Tokens already verified, by SHA-256 of the token, until they expire (a signature
    /// check costs tens of microseconds, a lookup well under one), and users' current
    /// session epochs, which every request is checked against.
    pub(crate) caches: crate::authenticate::TokenCaches,
    /// When each API key's last use was recorded.
    pub(crate) keys: crate::credentials::KeyCache,
    /// Failed logins per (account, address) and per address.
    pub(crate) throttle: crate::throttle::LoginThrottle,
    /// External OpenID Connect issuers whose tokens are accepted.
    pub(crate) issuers: Vec<crate::sso::ExternalIssuer>,
    /// The audit log, set at boot when the installation has one.
    audit: std::sync::OnceLock<Arc<prefiq_data::audit::AuditLog>>,
}

impl Identity {
    /// The service over `handle`, signing with `key`, caching in `cache`.
    pub fn new(
        handle: Arc<DatabaseHandle>,
        key: SigningKey,
        config: &IdentityConfig,
        cache: &prefiq_cache::Cache,
    ) -> Self {
        Identity {
            handle,
            key,
            ttl_s: config.access_token_ttl_s,
            refresh_ttl_s: config.refresh_token_ttl_s,
            decoy: tokio::sync::OnceCell::new(),
            cached: crate::caching::IdentityCaches::new(cache),
            cache: cache.clone(),
            caches: crate::authenticate::TokenCaches::default(),
            keys: crate::credentials::KeyCache::default(),
            throttle: crate::throttle::LoginThrottle::default(),
            issuers: Vec::new(),
            audit: std::sync::OnceLock::new(),
        }
    }

    /// Records logins, logouts, user, policy and tenant changes in `log` from now on.
    pub fn set_audit(&self, log: Arc<prefiq_data::audit::AuditLog>) {
        let _ = self.audit.set(log);
    }

    /// Appends an identity event to `tenant`'s audit log. The event's own change is
    /// already committed (platform tables live in the main database, a tenant's log may
    /// not), so a failure here is logged rather than undoing it.
    pub async fn audit(
        &self,
        tenant: &str,
        actor: Option<&str>,
        action: &str,
        subject: Option<&str>,
        changes: serde_json::Value,
    ) {
        let Some(log) = self.audit.get() else {
            return;
        };
        let time = civil_now();
        let record = prefiq_data::audit::AuditRecord {
            tenant,
            time: &time,
            actor,
            action,
            entity: None,
            id: subject,
            changes,
            trace: "",
        };
        if let Err(e) = log.record(&record).await {
            tracing::error!(target: "cortex::identity", tenant, action, error = %e, "cannot append to the audit log");
        }
    }

    pub(crate) fn database(&self) -> Result<&Database, IdentityError> {
        Ok(self.handle.get()?)
    }
}
