//! Credentials beside the password: password-reset tokens delivered by mail, and API keys.
//!
//! Both are random 256-bit secrets stored as SHA-256 (a fast hash is enough for a secret
//! with that much entropy, unlike a password). A reset token works once, within
//! [`RESET_TOKEN_TTL_S`], and asking for one answers the same whether or not the email
//! exists. An API key (`pk_{id}_{secret}`) stands for its user with the user's current
//! roles, narrowed to the roles the key was created with; it is revocable and records when
//! it was last used.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prefiq::{ErrorKind, KernelError, Mail, Mailer, Principal};
use prefiq_data::entity::sql::{Sql, SqlType};

use crate::caching::PLATFORM_SCOPE;
use crate::db::Cells;
use serde::Serialize;
use sha2::Digest as _;

use crate::identity::{
    Identity, IdentityError, check_roles, civil_now, normalise_email, sha256_hex, unix_now,
};

/// How long a password-reset token works, in seconds.
pub const RESET_TOKEN_TTL_S: i64 = 30 * 60;

/// At most this many live API keys per user.
pub const MAX_API_KEYS_PER_USER: i64 = 20;

/// `last_used_at` is written at most this often per key, so that a busy key does not
/// turn every read into a write.
pub const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

/// The prefix that tells an API key from an access token.
pub const API_KEY_PREFIX: &str = "pk_";

/// The cortex migration for reset tokens and API keys.
pub fn migration() -> prefiq::Migration {
    let sql = "CREATE TABLE cortex_reset_tokens (\n    tenant_id TEXT NOT NULL,\n    token_hash TEXT NOT NULL,\n    user_id TEXT NOT NULL,\n    expires_at BIGINT NOT NULL,\n    used_at BIGINT,\n    created_at TEXT NOT NULL,\n    PRIMARY KEY (tenant_id, token_hash)\n);\nCREATE TABLE cortex_api_keys (\n    tenant_id TEXT NOT NULL,\n    id TEXT NOT NULL,\n    user_id TEXT NOT NULL,\n    name TEXT NOT NULL,\n    secret_hash TEXT NOT NULL,\n    roles TEXT,\n    created_at TEXT NOT NULL,\n    last_used_at TEXT,\n    revoked_at TEXT,\n    PRIMARY KEY (id)\n);\nCREATE INDEX cortex_api_keys_user ON cortex_api_keys (tenant_id, user_id);";
    prefiq::Migration::per_backend("0004_credentials", sql, sql)
}

/// An API key as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    /// Its id (the part after `pk_`).
    pub id: String,
    /// The user it stands for.
    pub user_id: String,
    /// A name for people.
    pub name: String,
    /// The roles it is narrowed to; `None` for all of the user's roles.
    pub roles: Option<Vec<String>>,
    /// When it was made.
    pub created_at: String,
    /// When it was last used (to the minute).
    pub last_used_at: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<String>,
}

/// A new API key: the only time its secret is shown.
#[derive(Debug, Clone, Serialize)]
pub struct NewApiKey {
    /// What was stored.
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    /// `pk_{id}_{secret}`, sent as `Authorization: Bearer …`.
    pub key: String,
}

/// When each key's last use was recorded. (Verified keys themselves are in the cache
/// service: see [`crate::caching`].)
#[derive(Default)]
pub struct KeyCache {
    last_used: Mutex<HashMap<String, Instant>>,
}

/// The record of last uses is cleared when it holds this many keys.
const KEY_CACHE_MAX: usize = 10_000;

fn random_secret() -> String {
    let secret: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(secret)
}

fn unauthenticated(message: &str) -> KernelError {
    KernelError::service(ErrorKind::Unauthenticated, message.to_owned())
}

impl Identity {
    /// Starts a password reset: when `email` is an active user of an active `tenant`, a
    /// reset token goes out by `mailer`. The answer is the same either way, and the mail
    /// is sent in the background, so neither the answer nor its timing tells whether the
    /// user exists.
    pub async fn request_reset(
        &self,
        tenant: &str,
        email: &str,
        mailer: std::sync::Arc<dyn Mailer>,
    ) -> Result<(), IdentityError> {
        let Ok(email) = normalise_email(email) else {
            return Ok(());
        };
        if !self.tenant_active(tenant).await? {
            return Ok(());
        }
        let sql =
            "SELECT id FROM cortex_users WHERE tenant_id = $1 AND email = $2 AND status = 'active'";
        let sql = Sql::new(sql, vec![tenant.into(), email.as_str().into()]);
        let user: Option<String> = on_reader!(self.database()?, conn => conn
            .fetch_optional(&sql, &[SqlType::Text])
            .await?)
        .map(|row| Cells::of(row).text());
        let Some(user) = user else {
            return Ok(());
        };
        let token = random_secret();
        let sql = "INSERT INTO cortex_reset_tokens (tenant_id, token_hash, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)";
        let sql = Sql::new(
            sql,
            vec![
                tenant.into(),
                sha256_hex(&token).into(),
                user.as_str().into(),
                (unix_now() + RESET_TOKEN_TTL_S).into(),
                civil_now().into(),
            ],
        );
        on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        let mail = Mail {
            to: email,
            subject: "Reset your password".into(),
            body: format!(
                "Someone asked to reset the password of your account in {tenant}.\n\nYour reset token (valid for {} minutes, once):\n\n{token}\n\nSend it with a new password to POST /api/v1/auth/password/reset/confirm. If you did not ask, ignore this message.\n",
                RESET_TOKEN_TTL_S / 60
            ),
        };
        let tenant = tenant.to_owned();
        tokio::spawn(async move {
            if let Err(e) = mailer.send(mail).await {
                tracing::error!(target: "cortex::identity", tenant = %tenant, error = %e, "the password-reset mail was not sent");
            }
        });
        Ok(())
    }

    /// Finishes a password reset: the token works once, before it expires; the password
    /// is replaced, the lockout cleared and every token of the user revoked (refresh
    /// tokens, and access tokens through its session epoch).
    pub async fn confirm_reset(
        &self,
        tenant: &str,
        token: &str,
        new_password: &str,
    ) -> Result<(), IdentityError> {
        let hash = prefiq_auth::hash_password(new_password)
            .await
            .map_err(|e| IdentityError::Invalid {
                field: "new_password",
                message: e.to_string(),
            })?;
        if token.is_empty() || token.len() > 128 {
            return Err(IdentityError::ResetInvalid);
        }
        let now = unix_now();
        let token_hash = sha256_hex(token);
        let done = in_tx!(self.database()?, conn => {
            // Spending the token is the first write: two concurrent confirmations cannot
            // both see it unused.
            let user: Option<String> = conn
                .fetch_optional(
                    &Sql::new(
                        "UPDATE cortex_reset_tokens SET used_at = $1 WHERE tenant_id = $2 AND token_hash = $3 AND used_at IS NULL AND expires_at >= $1 RETURNING user_id",
                        vec![now.into(), tenant.into(), token_hash.as_str().into()],
                    ),
                    &[SqlType::Text],
                )
                .await?
                .map(|row| Cells::of(row).text());
            if let Some(user) = &user {
                conn.execute(&Sql::new(
                    "UPDATE cortex_users SET password_hash = $1, failed_logins = 0, locked_until = NULL, session_epoch = session_epoch + 1 WHERE tenant_id = $2 AND id = $3",
                    vec![hash.as_str().into(), tenant.into(), user.into()],
                ))
                .await?;
                conn.execute(&Sql::new(
                    "UPDATE cortex_refresh_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND user_id = $3 AND revoked_at IS NULL",
                    vec![now.into(), tenant.into(), user.into()],
                ))
                .await?;
            }
            user
        });
        match done {
            Some(user) => {
                self.forget_user(tenant, &user);
                tracing::info!(target: "cortex::identity", tenant, user = %user, "password reset");
                Ok(())
            }
            None => Err(IdentityError::ResetInvalid),
        }
    }

    /// Makes an API key for `user`, narrowed to `roles` when given (which must be roles
    /// the user has).
    pub async fn create_api_key(
        &self,
        tenant: &str,
        user: &str,
        name: &str,
        roles: Option<&[String]>,
    ) -> Result<NewApiKey, IdentityError> {
        if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(IdentityError::Invalid {
                field: "name",
                message: "a key's name is 1 to 100 characters without control characters".into(),
            });
        }
        let sql =
            "SELECT roles FROM cortex_users WHERE tenant_id = $1 AND id = $2 AND status = 'active'";
        let sql = Sql::new(sql, vec![tenant.into(), user.into()]);
        let user_roles: Option<String> = on_reader!(self.database()?, conn => conn
            .fetch_optional(&sql, &[SqlType::Text])
            .await?)
        .map(|row| Cells::of(row).text());
        let user_roles: Vec<String> = user_roles
            .and_then(|r| serde_json::from_str(&r).ok())
            .ok_or_else(|| IdentityError::NoUser(user.to_owned()))?;
        if let Some(roles) = roles {
            check_roles(roles)?;
            if let Some(extra) = roles.iter().find(|r| !user_roles.contains(r)) {
                return Err(IdentityError::Invalid {
                    field: "roles",
                    message: format!(
                        "a key can only narrow its user's roles; `{extra}` is not one of them"
                    ),
                });
            }
        }
        let live = "SELECT COUNT(*) FROM cortex_api_keys WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL";
        let live = Sql::new(live, vec![tenant.into(), user.into()]);
        let count: i64 = on_reader!(self.database()?, conn => conn
            .fetch_optional(&live, &[SqlType::Int])
            .await?)
        .map_or(0, |row| Cells::of(row).int());
        if count >= MAX_API_KEYS_PER_USER {
            return Err(IdentityError::Invalid {
                field: "name",
                message: format!(
                    "a user has at most {MAX_API_KEYS_PER_USER} live API keys; revoke one first"
                ),
            });
        }
        let id: String = rand::random::<[u8; 8]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let secret = random_secret();
        let info = ApiKeyInfo {
            id: id.clone(),
            user_id: user.to_owned(),
            name: name.to_owned(),
            roles: roles.map(<[String]>::to_vec),
            created_at: civil_now(),
            last_used_at: None,
            revoked_at: None,
        };
        let sql = "INSERT INTO cortex_api_keys (tenant_id, id, user_id, name, secret_hash, roles, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
        let sql = Sql::new(
            sql,
            vec![
                tenant.into(),
                id.as_str().into(),
                user.into(),
                name.into(),
                sha256_hex(&secret).into(),
                roles.map(|r| serde_json::json!(r).to_string()).into(),
                info.created_at.as_str().into(),
            ],
        );
        on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        tracing::info!(target: "cortex::identity", tenant, user, key = %id, "API key created");
        Ok(NewApiKey {
            key: format!("{API_KEY_PREFIX}{id}_{secret}"),
            info,
        })
    }

    /// The API keys of `tenant` (of `user` only, when given), newest first.
    pub async fn api_keys(
        &self,
        tenant: &str,
        user: Option<&str>,
    ) -> Result<Vec<ApiKeyInfo>, IdentityError> {
        let sql = "SELECT id, user_id, name, roles, created_at, last_used_at, revoked_at FROM cortex_api_keys WHERE tenant_id = $1 AND ($2 IS NULL OR user_id = $2) ORDER BY created_at DESC, id LIMIT 1000";
        let sql = Sql::new(sql, vec![tenant.into(), user.into()]);
        let rows = on_reader!(self.database()?, conn => conn
            .fetch(&sql, &[SqlType::Text; 7])
            .await?);
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut c = Cells::of(row);
                ApiKeyInfo {
                    id: c.text(),
                    user_id: c.text(),
                    name: c.text(),
                    roles: c.opt_text().and_then(|r| serde_json::from_str(&r).ok()),
                    created_at: c.text(),
                    last_used_at: c.opt_text(),
                    revoked_at: c.opt_text(),
                }
            })
            .collect())
    }

    /// Revokes a key of `tenant` (of `user` only, when given); `false` when there was
    /// no such live key.
    pub async fn revoke_api_key(
        &self,
        tenant: &str,
        id: &str,
        user: Option<&str>,
    ) -> Result<bool, IdentityError> {
        let sql = "UPDATE cortex_api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND ($4 IS NULL OR user_id = $4) AND revoked_at IS NULL";
        let sql = Sql::new(
            sql,
            vec![civil_now().into(), tenant.into(), id.into(), user.into()],
        );
        let revoked = on_pool!(self.database()?, conn => conn.execute(&sql).await?);
        self.cached.keys.invalidate(PLATFORM_SCOPE, id);
        if revoked > 0 {
            tracing::info!(target: "cortex::identity", tenant, key = id, "API key revoked");
        }
        Ok(revoked > 0)
    }

    /// Forgets the cached keys of `user`, after a change to the user, so that their next
    /// use reads the user's row again (a disabled user's keys stop at once).
    /// Other replicas drop every verified key (a predicate cannot travel): user changes
    /// are rare, and each key costs one read afterwards.
    pub(crate) fn forget_api_keys_of(&self, tenant: &str, user: &str) {
        let (tenant, user) = (tenant.to_owned(), user.to_owned());
        self.cached
            .keys
            .invalidate_matching(PLATFORM_SCOPE, move |_, verified| {
                verified.1.tenant == tenant && verified.1.user == user
            });
    }

    /// The principal of an API key, or `Unauthenticated`.
    pub(crate) async fn authenticate_api_key(
        &self,
        bearer: &str,
    ) -> Result<Principal, KernelError> {
        let refused = || unauthenticated("the API key is invalid or revoked");
        let (id, secret) = bearer
            .strip_prefix(API_KEY_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .filter(|(id, secret)| id.len() == 16 && !secret.is_empty() && secret.len() <= 64)
            .ok_or_else(refused)?;
        let digest: [u8; 32] = sha2::Sha256::digest(secret.as_bytes()).into();
        let cached = self
            .cached
            .keys
            .get(PLATFORM_SCOPE, id)
            .filter(|verified| verified.0 == digest)
            .map(|verified| verified.1.clone());
        let principal = match cached {
            Some(principal) => principal,
            None => {
                let ticket = self.cached.keys.ticket();
                let principal = self.read_api_key(id, &digest).await?.ok_or_else(refused)?;
                self.cached.keys.insert(
                    PLATFORM_SCOPE,
                    id,
                    std::sync::Arc::new((digest, principal.clone())),
                    ticket,
                );
                principal
            }
        };
        if !self
            .tenant_active(&principal.tenant)
            .await
            .map_err(KernelError::from)?
        {
            return Err(unauthenticated(
                "the key's tenant does not exist or is suspended",
            ));
        }
        self.touch_api_key(id).await;
        Ok(principal)
    }

    async fn read_api_key(
        &self,
        id: &str,
        digest: &[u8; 32],
    ) -> Result<Option<Principal>, KernelError> {
        let sql = "SELECT k.tenant_id, k.user_id, k.secret_hash, k.roles, u.roles, u.attributes FROM cortex_api_keys k JOIN cortex_users u ON u.tenant_id = k.tenant_id AND u.id = k.user_id WHERE k.id = $1 AND k.revoked_at IS NULL AND u.status = 'active'";
        let database = self.database().map_err(KernelError::from)?;
        let sql = Sql::new(sql, vec![id.into()]);
        let row = async {
            Ok::<_, IdentityError>(
                on_reader!(database, conn => conn.fetch_optional(&sql, &[SqlType::Text; 6]).await?),
            )
        }
        .await
        .map_err(KernelError::from)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut c = Cells::of(row);
        let (tenant, user, secret_hash, key_roles, user_roles, attributes) = (
            c.text(),
            c.text(),
            c.text(),
            c.opt_text(),
            c.text(),
            c.text(),
        );
        let stored: Vec<u8> = (0..secret_hash.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(secret_hash.get(i..i + 2)?, 16).ok())
            .collect();
        // Constant time: the comparison does not say how much of the hash matched.
        let matches = stored.len() == 32
            && stored
                .iter()
                .zip(digest)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !matches {
            return Ok(None);
        }
        let user_roles: Vec<String> = serde_json::from_str(&user_roles).unwrap_or_default();
        let roles = match key_roles.and_then(|r| serde_json::from_str::<Vec<String>>(&r).ok()) {
            Some(narrowed) => user_roles
                .into_iter()
                .filter(|r| narrowed.contains(r))
                .collect(),
            None => user_roles,
        };
        Ok(Some(Principal {
            tenant,
            user,
            roles,
            attributes: serde_json::from_str(&attributes).unwrap_or_default(),
            api_key: Some(id.to_owned()),
        }))
    }

    /// Records that a key was used, at most once per [`LAST_USED_RESOLUTION`]; a failure
    /// is logged, never the request's.
    async fn touch_api_key(&self, id: &str) {
        {
            let mut last = self
                .keys
                .last_used
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last
                .get(id)
                .is_some_and(|at| at.elapsed() < LAST_USED_RESOLUTION)
            {
                return;
            }
            if last.len() >= KEY_CACHE_MAX {
                last.clear();
            }
            last.insert(id.to_owned(), Instant::now());
        }
        let sql = "UPDATE cortex_api_keys SET last_used_at = $1 WHERE id = $2";
        let result: Result<(), IdentityError> = async {
            let sql = Sql::new(sql, vec![civil_now().into(), id.into()]);
            on_pool!(self.database()?, conn => conn.execute(&sql).await?);
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(target: "cortex::identity", key = id, error = %e, "last use of an API key not recorded");
        }
    }
}
