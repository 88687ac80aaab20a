//! Tenants, users and logins: the records behind `prefiq tenant ...` and
//! `POST /api/v1/auth/login`. Turning a bearer token back into a principal, and revoking
//! tokens, is [`crate::authenticate`]'s.
//!
//! Passwords are argon2id hashes (made off the async runtime by `prefiq-auth`); access
//! tokens are EdDSA JWTs bound to one tenant. Repeated failed logins slow down and then
//! lock out the (account, client address) pair, or the address, that made them (see
//! [`crate::throttle`]); the account itself is never locked, so nobody can lock its owner
//! out.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prefiq::{ErrorKind, KernelError};
use prefiq_auth::{AccessClaims, SigningKey};
use prefiq_data::entity::sql::{Sql, SqlType};
use prefiq_data::{Database, DatabaseHandle};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::db::Cells;

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
    /// Whether each tenant is active, with when that was read: every authenticated
    /// request asks, and a database round trip each time would double the cost of a read.
    status_cache: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, bool)>>,
    /// Tokens already verified, by SHA-256 of the token, until they expire (a signature
    /// check costs tens of microseconds, a lookup well under one), and users' current
    /// session epochs, which every request is checked against.
    pub(crate) caches: crate::authenticate::TokenCaches,
    /// Verified API keys and their last recorded use.
    pub(crate) keys: crate::credentials::KeyCache,
    /// Failed logins per (account, address) and per address.
    pub(crate) throttle: crate::throttle::LoginThrottle,
    /// External OpenID Connect issuers whose tokens are accepted.
    pub(crate) issuers: Vec<crate::sso::ExternalIssuer>,
    /// The audit log, set at boot when the installation has one.
    audit: std::sync::OnceLock<Arc<prefiq_data::audit::AuditLog>>,
}

/// How long a tenant's status is trusted. A suspension through this process applies at
/// once; one made through another replica within this time.
pub const STATUS_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The status cache is cleared when it holds this many tenants.
const STATUS_CACHE_MAX: usize = 10_000;

impl Identity {
    /// The service over `handle`, signing with `key`.
    pub fn new(handle: Arc<DatabaseHandle>, key: SigningKey, config: &IdentityConfig) -> Self {
        Identity {
            handle,
            key,
            ttl_s: config.access_token_ttl_s,
            refresh_ttl_s: config.refresh_token_ttl_s,
            decoy: tokio::sync::OnceCell::new(),
            status_cache: std::sync::Mutex::default(),
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
    pub(crate) async fn audit(
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

    /// Creates a tenant and its first user, an administrator, in one transaction.
    pub async fn create_tenant(
        &self,
        name: &str,
        admin_email: &str,
        admin_password: &str,
    ) -> Result<Tenant, IdentityError> {
        if !prefiq::context::is_tenant_name(name) {
            return Err(IdentityError::Invalid {
                field: "name",
                message: "a tenant name is 1 to 63 of a-z, 0-9 and `-`, not starting with `-`"
                    .into(),
            });
        }
        let email = normalise_email(admin_email)?;
        let hash = prefiq_auth::hash_password(admin_password)
            .await
            .map_err(|e| IdentityError::Invalid {
                field: "password",
                message: e.to_string(),
            })?;
        let now = civil_now();
        let roles = serde_json::json!([ADMIN_ROLE]).to_string();
        let user_id = uuid::Uuid::now_v7().to_string();
        in_tx!(self.database()?, conn => {
            let inserted = conn
                .execute(&Sql::new(
                    "INSERT INTO cortex_tenants (name, status, created_at) VALUES ($1, 'active', $2) ON CONFLICT (name) DO NOTHING",
                    vec![name.into(), now.as_str().into()],
                ))
                .await?;
            if inserted == 0 {
                return Err(IdentityError::TenantExists(name.to_owned()));
            }
            conn.execute(&Sql::new(
                "INSERT INTO cortex_users (tenant_id, id, email, password_hash, roles, status, created_at) VALUES ($1, $2, $3, $4, $5, 'active', $6)",
                vec![
                    name.into(),
                    user_id.as_str().into(),
                    email.as_str().into(),
                    hash.as_str().into(),
                    roles.as_str().into(),
                    now.as_str().into(),
                ],
            ))
            .await?;
        });
        tracing::info!(target: "cortex::identity", tenant = name, "tenant created");
        self.audit(
            name,
            None,
            "tenant_create",
            Some(&user_id),
            serde_json::json!({"admin": {"after": {"sha256": prefiq_data::audit::pii_hash(name, &serde_json::json!(email))}}}),
        )
        .await;
        Ok(Tenant {
            name: name.to_owned(),
            status: "active".into(),
            created_at: now,
        })
    }

    /// Adds a user to `tenant`.
    pub async fn create_user(
        &self,
        tenant: &str,
        email: &str,
        password: &str,
        roles: &[String],
        attributes: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<UserInfo, IdentityError> {
        let email = normalise_email(email)?;
        check_roles(roles)?;
        check_attributes(attributes)?;
        let hash =
            prefiq_auth::hash_password(password)
                .await
                .map_err(|e| IdentityError::Invalid {
                    field: "password",
                    message: e.to_string(),
                })?;
        let id = uuid::Uuid::now_v7().to_string();
        let now = civil_now();
        let sql = "INSERT INTO cortex_users (tenant_id, id, email, password_hash, roles, attributes, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7) ON CONFLICT (tenant_id, email) DO NOTHING";
        let sql = Sql::new(
            sql,
            vec![
                tenant.into(),
                id.as_str().into(),
                email.as_str().into(),
                hash.as_str().into(),
                serde_json::json!(roles).to_string().into(),
                serde_json::Value::Object(attributes.clone())
                    .to_string()
                    .into(),
                now.as_str().into(),
            ],
        );
        let inserted = on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        if inserted == 0 {
            return Err(IdentityError::UserExists(email));
        }
        tracing::info!(target: "cortex::identity", tenant, user = %id, "user created");
        Ok(UserInfo {
            id,
            email,
            roles: roles.to_vec(),
            attributes: attributes.clone(),
            status: "active".into(),
            created_at: now,
        })
    }

    /// The users of `tenant`, by email (at most [`MAX_LISTED_USERS`]).
    pub async fn users(&self, tenant: &str) -> Result<Vec<UserInfo>, IdentityError> {
        let sql = "SELECT id, email, roles, attributes, status, created_at FROM cortex_users WHERE tenant_id = $1 ORDER BY email LIMIT $2";
        let sql = Sql::new(sql, vec![tenant.into(), MAX_LISTED_USERS.into()]);
        let rows = on_reader!(self.database()?, conn => conn
            .fetch(&sql, &[SqlType::Text; 6])
            .await?);
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut c = Cells::of(row);
                UserInfo {
                    id: c.text(),
                    email: c.text(),
                    roles: serde_json::from_str(&c.text()).unwrap_or_default(),
                    attributes: serde_json::from_str(&c.text()).unwrap_or_default(),
                    status: c.text(),
                    created_at: c.text(),
                }
            })
            .collect())
    }

    /// Changes a user's roles, attributes or status (`active` or `disabled`). Every token
    /// of the user stops at once: its refresh tokens are revoked and its session epoch
    /// bumped (access tokens carry roles and attributes, so they must not outlive them),
    /// and its API keys are read again on their next use.
    pub async fn update_user(
        &self,
        tenant: &str,
        id: &str,
        roles: Option<&[String]>,
        attributes: Option<&serde_json::Map<String, serde_json::Value>>,
        status: Option<&str>,
    ) -> Result<(), IdentityError> {
        if let Some(roles) = roles {
            check_roles(roles)?;
        }
        if let Some(attributes) = attributes {
            check_attributes(attributes)?;
        }
        if status.is_some_and(|s| s != "active" && s != "disabled") {
            return Err(IdentityError::Invalid {
                field: "status",
                message: "a user's status is `active` or `disabled`".into(),
            });
        }
        let sql = "UPDATE cortex_users SET roles = COALESCE($1, roles), attributes = COALESCE($2, attributes), status = COALESCE($3, status), session_epoch = session_epoch + 1 WHERE tenant_id = $4 AND id = $5";
        let roles = roles.map(|r| serde_json::json!(r).to_string());
        let attributes = attributes.map(|a| serde_json::Value::Object(a.clone()).to_string());
        let admins = Sql::new(
            crate::recovery::ACTIVE_ADMINS_SQL,
            vec![tenant.into(), crate::recovery::admin_pattern().into()],
        );
        let changed = in_tx!(self.database()?, conn => {
            // Changes to one tenant's users run one at a time (a row lock on PostgreSQL;
            // SQLite writes one at a time anyway), so two administrators cannot disable
            // each other at once and leave none.
            conn.execute(&Sql::new(crate::recovery::LOCK_TENANT_SQL, vec![tenant.into()]))
                .await?;
            let admins_before = conn
                .fetch_optional(&admins, &[SqlType::Int])
                .await?
                .map_or(0, |row| Cells::of(row).int());
            let changed = conn
                .execute(&Sql::new(
                    sql,
                    vec![
                        roles.into(),
                        attributes.into(),
                        status.into(),
                        tenant.into(),
                        id.into(),
                    ],
                ))
                .await?;
            let admins_after = conn
                .fetch_optional(&admins, &[SqlType::Int])
                .await?
                .map_or(0, |row| Cells::of(row).int());
            if admins_before > 0 && admins_after == 0 {
                return Err(IdentityError::LastAdministrator(tenant.to_owned()));
            }
            conn.execute(&Sql::new(
                "UPDATE cortex_refresh_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND user_id = $3 AND revoked_at IS NULL",
                vec![unix_now().into(), tenant.into(), id.into()],
            ))
            .await?;
            changed
        });
        if changed == 0 {
            return Err(IdentityError::NoUser(id.to_owned()));
        }
        self.forget_user(tenant, id);
        tracing::info!(target: "cortex::identity", tenant, user = id, "user changed");
        Ok(())
    }

    /// Every tenant, by name.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, IdentityError> {
        let sql = "SELECT name, status, created_at FROM cortex_tenants ORDER BY name";
        let sql = Sql::new(sql, vec![]);
        let rows = on_reader!(self.database()?, conn => conn
            .fetch(&sql, &[SqlType::Text; 3])
            .await?);
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut c = Cells::of(row);
                Tenant {
                    name: c.text(),
                    status: c.text(),
                    created_at: c.text(),
                }
            })
            .collect())
    }

    /// Sets a tenant `active` or `suspended`. A suspended tenant's tokens stop working at
    /// once and its users cannot log in.
    pub async fn set_status(&self, name: &str, status: &str) -> Result<(), IdentityError> {
        let sql = "UPDATE cortex_tenants SET status = $1 WHERE name = $2";
        let sql = Sql::new(sql, vec![status.into(), name.into()]);
        let changed = on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        if let Ok(mut cache) = self.status_cache.lock() {
            cache.remove(name);
        }
        if changed == 0 {
            return Err(IdentityError::NoTenant(name.to_owned()));
        }
        tracing::info!(target: "cortex::identity", tenant = name, status, "tenant status changed");
        self.audit(
            name,
            None,
            if status == "active" {
                "tenant_resume"
            } else {
                "tenant_suspend"
            },
            None,
            serde_json::json!({"status": {"after": status}}),
        )
        .await;
        Ok(())
    }

    pub(crate) async fn tenant_active(&self, name: &str) -> Result<bool, IdentityError> {
        if let Ok(cache) = self.status_cache.lock()
            && let Some((read_at, active)) = cache.get(name)
            && read_at.elapsed() < STATUS_CACHE_TTL
        {
            return Ok(*active);
        }
        let active = self.read_tenant_active(name).await?;
        if let Ok(mut cache) = self.status_cache.lock() {
            if cache.len() >= STATUS_CACHE_MAX {
                cache.clear();
            }
            cache.insert(name.to_owned(), (std::time::Instant::now(), active));
        }
        Ok(active)
    }

    pub(crate) async fn read_tenant_active(&self, name: &str) -> Result<bool, IdentityError> {
        let sql = "SELECT status FROM cortex_tenants WHERE name = $1";
        let sql = Sql::new(sql, vec![name.into()]);
        let status: Option<String> = on_reader!(self.database()?, conn => conn
            .fetch_optional(&sql, &[SqlType::Text])
            .await?)
        .map(|row| Cells::of(row).text());
        Ok(status.as_deref() == Some("active"))
    }

    /// Checks an email and password in `tenant`, tried from client `address`, and issues
    /// an access token. Every failure reads `BadCredentials` — a wrong password, an
    /// unknown email, a disabled user, a suspended tenant, and a locked (account, address)
    /// pair or address alike — after one password verification and the throttle's delay
    /// (see [`crate::throttle`]), so the answer says nothing about the account.
    pub async fn login(
        &self,
        tenant: &str,
        email: &str,
        password: &str,
        address: &str,
    ) -> Result<Session, IdentityError> {
        let email = normalise_email(email).map_err(|_| IdentityError::BadCredentials)?;
        let locked = self.throttle.locked(tenant, &email, address);
        let active = self.tenant_active(tenant).await?;
        let sql = "SELECT id, password_hash, roles, attributes, status, session_epoch FROM cortex_users WHERE tenant_id = $1 AND email = $2";
        let sql = Sql::new(sql, vec![tenant.into(), email.as_str().into()]);
        let types = [
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Int,
        ];
        let row: Option<UserRow> = on_reader!(self.database()?, conn => conn
            .fetch_optional(&sql, &types)
            .await?)
        .map(|row| {
            let mut c = Cells::of(row);
            UserRow {
                id: c.text(),
                hash: c.text(),
                roles: c.text(),
                attributes: c.text(),
                status: c.text(),
                epoch: c.int(),
            }
        });
        let row = row.filter(|_| active);
        // One verification on every path, against the decoy when there is no user.
        let verified = match &row {
            Some(user) => prefiq_auth::verify_password(&user.hash, password).await,
            None => {
                let decoy = self
                    .decoy
                    .get_or_init(prefiq_auth::password::decoy_hash)
                    .await;
                let _ = prefiq_auth::verify_password(decoy, password).await;
                false
            }
        };
        let Some(UserRow {
            id,
            roles,
            attributes,
            epoch,
            ..
        }) = row
            .as_ref()
            .filter(|user| verified && !locked && user.status == "active")
        else {
            let delay = self.throttle.failed(tenant, &email, address);
            // The audit record is written during the delay, so a real user's failure
            // takes no longer than an unknown email's.
            let record = async {
                if let Some(user) = &row {
                    self.audit(
                        tenant,
                        None,
                        "login_failed",
                        Some(&user.id),
                        serde_json::json!({"locked": {"after": locked}}),
                    )
                    .await;
                }
            };
            tokio::join!(record, tokio::time::sleep(delay));
            return Err(IdentityError::BadCredentials);
        };
        self.throttle.succeeded(tenant, &email, address);
        let session = self
            .issue_session(tenant, id, roles, attributes, *epoch, None)
            .await?;
        self.audit(tenant, Some(id), "login", Some(id), serde_json::json!({}))
            .await;
        Ok(session)
    }

    /// A new access token and a new refresh token (in `family`, or a new one).
    async fn issue_session(
        &self,
        tenant: &str,
        user: &str,
        roles: &str,
        attributes: &str,
        epoch: i64,
        family: Option<&str>,
    ) -> Result<Session, IdentityError> {
        let now = unix_now();
        let secret: [u8; 32] = rand::random();
        let refresh_token =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret);
        let family = family.map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        let sql = "INSERT INTO cortex_refresh_tokens (tenant_id, id, family_id, user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
        let sql = Sql::new(
            sql,
            vec![
                tenant.into(),
                uuid::Uuid::now_v7().to_string().into(),
                family.as_str().into(),
                user.into(),
                sha256_hex(&refresh_token).into(),
                (now + self.refresh_ttl_s).into(),
                civil_now().into(),
            ],
        );
        on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        let claims = AccessClaims {
            iss: String::new(),
            sub: user.to_owned(),
            tenant: tenant.to_owned(),
            roles: serde_json::from_str(roles).unwrap_or_default(),
            attrs: serde_json::from_str(attributes).unwrap_or_default(),
            iat: now,
            nbf: now,
            exp: now + self.ttl_s,
            jti: uuid::Uuid::now_v7().to_string(),
            epoch,
        };
        Ok(Session {
            access_token: self.key.issue(claims),
            token_type: "Bearer",
            expires_in: self.ttl_s,
            refresh_token,
            refresh_expires_in: self.refresh_ttl_s,
        })
    }

    async fn find_refresh(&self, refresh_token: &str) -> Result<Option<RefreshRow>, IdentityError> {
        if refresh_token.is_empty() || refresh_token.len() > 128 {
            return Ok(None);
        }
        let sql = "SELECT tenant_id, id, family_id, user_id, expires_at, used_at, revoked_at FROM cortex_refresh_tokens WHERE token_hash = $1";
        let sql = Sql::new(sql, vec![sha256_hex(refresh_token).into()]);
        let types = [
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Int,
            SqlType::Int,
            SqlType::Int,
        ];
        let row = on_pool!(self.database()?, conn => conn
            .fetch_optional(&sql, &types)
            .await?)
        .map(|row| {
            let mut c = Cells::of(row);
            RefreshRow {
                tenant: c.text(),
                id: c.text(),
                family: c.text(),
                user: c.text(),
                expires_at: c.int(),
                used_at: c.opt_int(),
                revoked_at: c.opt_int(),
            }
        });
        Ok(row)
    }

    async fn revoke_family(&self, tenant: &str, family: &str) -> Result<(), IdentityError> {
        let sql = "UPDATE cortex_refresh_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND family_id = $3 AND revoked_at IS NULL";
        let sql = Sql::new(sql, vec![unix_now().into(), tenant.into(), family.into()]);
        on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        Ok(())
    }

    /// Exchanges a refresh token for a new session. Each refresh token works once: a second
    /// use (a stolen copy, or the thief's) revokes every token of its login.
    pub async fn refresh(
        &self,
        tenant: Option<&str>,
        refresh_token: &str,
    ) -> Result<Session, IdentityError> {
        let now = unix_now();
        let Some(row) = self.find_refresh(refresh_token).await? else {
            return Err(IdentityError::RefreshInvalid);
        };
        if tenant.is_some_and(|t| t != row.tenant)
            || row.revoked_at.is_some()
            || row.expires_at < now
        {
            return Err(IdentityError::RefreshInvalid);
        }
        if row.used_at.is_some() {
            self.revoke_family(&row.tenant, &row.family).await?;
            tracing::warn!(target: "cortex::identity", tenant = %row.tenant, user = %row.user, "refresh token reused; its login is revoked");
            return Err(IdentityError::RefreshReused);
        }
        // Only one of two concurrent uses wins this update; the other counts as a reuse.
        let sql = "UPDATE cortex_refresh_tokens SET used_at = $1 WHERE tenant_id = $2 AND id = $3 AND used_at IS NULL AND revoked_at IS NULL";
        let sql = Sql::new(
            sql,
            vec![
                now.into(),
                row.tenant.as_str().into(),
                row.id.as_str().into(),
            ],
        );
        let won = on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        if won == 0 {
            self.revoke_family(&row.tenant, &row.family).await?;
            return Err(IdentityError::RefreshReused);
        }
        if !self.read_tenant_active(&row.tenant).await? {
            return Err(IdentityError::RefreshInvalid);
        }
        let sql = "SELECT roles, attributes, status, session_epoch FROM cortex_users WHERE tenant_id = $1 AND id = $2";
        let sql = Sql::new(
            sql,
            vec![row.tenant.as_str().into(), row.user.as_str().into()],
        );
        let types = [SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Int];
        let user: Option<(String, String, String, i64)> = on_pool!(self.database()?, conn => conn
            .fetch_optional(&sql, &types)
            .await?)
        .map(|row| {
            let mut c = Cells::of(row);
            (c.text(), c.text(), c.text(), c.int())
        });
        let Some((roles, attributes, "active", epoch)) = user
            .as_ref()
            .map(|(r, a, s, e)| (r.as_str(), a.as_str(), s.as_str(), *e))
        else {
            return Err(IdentityError::RefreshInvalid);
        };
        self.issue_session(
            &row.tenant,
            &row.user,
            roles,
            attributes,
            epoch,
            Some(&row.family),
        )
        .await
    }

    /// Changes a user's password after checking the current one, and revokes every token
    /// of the user: its refresh tokens, and (through its session epoch) its access tokens.
    pub async fn change_password(
        &self,
        tenant: &str,
        user: &str,
        current: &str,
        new: &str,
    ) -> Result<(), IdentityError> {
        let new_hash =
            prefiq_auth::hash_password(new)
                .await
                .map_err(|e| IdentityError::Invalid {
                    field: "new_password",
                    message: e.to_string(),
                })?;
        // Guessing the current password with a stolen session is throttled as logins
        // are, per user (the user stands where a login's address does).
        let guesser = format!("user\u{0}{user}");
        if self.throttle.locked(tenant, PASSWORD_CHANGE, &guesser) {
            return Err(IdentityError::WrongPassword);
        }
        let sql = "SELECT password_hash FROM cortex_users WHERE tenant_id = $1 AND id = $2 AND status = 'active'";
        let sql = Sql::new(sql, vec![tenant.into(), user.into()]);
        let hash: Option<String> = on_pool!(self.database()?, conn => conn
            .fetch_optional(&sql, &[SqlType::Text])
            .await?)
        .map(|row| Cells::of(row).text());
        let Some(hash) = hash else {
            return Err(IdentityError::WrongPassword);
        };
        if !prefiq_auth::verify_password(&hash, current).await {
            let delay = self.throttle.failed(tenant, PASSWORD_CHANGE, &guesser);
            tokio::time::sleep(delay).await;
            return Err(IdentityError::WrongPassword);
        }
        self.throttle.succeeded(tenant, PASSWORD_CHANGE, &guesser);
        let now = unix_now();
        in_tx!(self.database()?, conn => {
            conn.execute(&Sql::new(
                "UPDATE cortex_users SET password_hash = $1, failed_logins = 0, locked_until = NULL, session_epoch = session_epoch + 1 WHERE tenant_id = $2 AND id = $3",
                vec![new_hash.as_str().into(), tenant.into(), user.into()],
            ))
            .await?;
            conn.execute(&Sql::new(
                "UPDATE cortex_refresh_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND user_id = $3 AND revoked_at IS NULL",
                vec![now.into(), tenant.into(), user.into()],
            ))
            .await?;
        });
        self.forget_user(tenant, user);
        tracing::info!(target: "cortex::identity", tenant, user, "password changed");
        Ok(())
    }

    /// Ends the login a refresh token belongs to: every token of its family is revoked,
    /// and the user's session epoch bumped, so the access tokens issued so far stop at
    /// once (the user's other logins get new ones with their own refresh tokens).
    /// Unknown tokens are ignored, so logging out twice is not an error.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), IdentityError> {
        if let Some(row) = self.find_refresh(refresh_token).await? {
            self.revoke_family(&row.tenant, &row.family).await?;
            self.bump_epoch(&row.tenant, &row.user).await?;
            self.audit(
                &row.tenant,
                Some(&row.user),
                "logout",
                Some(&row.user),
                serde_json::json!({}),
            )
            .await;
        }
        Ok(())
    }
}
