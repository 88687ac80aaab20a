//! Cortex, the module every installation has.
//!
//! It is registered exactly as any app is: a manifest, a provider that contributes routes,
//! and lifecycle hooks. For now it serves `GET /api/v1/system/info` (the installation's
//! name, environment and modules); tenants, users, roles, settings and the admin UI arrive
//! with later issues.

/// Runs `$body` with `$conn: &mut Conn` on the connection that writes (SQLite's one
/// writer, between group commits, in a transaction of its own that is committed after
/// `$body`, a failed commit being an error; a PostgreSQL pool connection, where each
/// statement commits).
macro_rules! on_pool {
    ($database:expr, $conn:ident => $body:expr) => {{
        let mut writing = $database.writer().await?;
        let value = {
            let $conn = &mut writing.conn();
            $body
        };
        writing.commit()?;
        value
    }};
}

/// Runs `$body` with `$conn: &mut Conn` in a write transaction of its own, committed when
/// `$body` finishes; a `?` in `$body` drops the transaction, which rolls it back.
macro_rules! in_tx {
    ($database:expr, $conn:ident => $body:expr) => {{
        let mut tx = $database.begin().await?;
        let value = {
            let $conn = &mut tx.conn();
            $body
        };
        tx.commit().await?;
        value
    }};
}

/// Like `on_pool!`, on a reading connection (SQLite's read-only pool).
macro_rules! on_reader {
    ($database:expr, $conn:ident => $body:expr) => {{
        let mut reading = $database.reader().await?;
        let $conn = &mut reading.conn();
        $body
    }};
}

pub mod access;
pub mod audit;
pub mod authenticate;
pub mod caching;
pub mod credentials;
mod db;
pub mod desk;
pub mod events;
pub mod identity;
pub mod platform;
pub mod policies;
pub mod recovery;
pub mod schedules;
pub mod settings;
pub mod sso;
pub mod throttle;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::{Extension, Json};
use prefiq::{
    Authenticator, BootContext, Config, Context, EntitySource, ErrorKind, Hook, InstalledModules,
    KernelError, LifecycleHooks, Manifest, Migration, Module, ModuleSummary, RegisterContext,
    ServiceProvider, async_trait,
};
use prefiq_data::DatabaseHandle;
use prefiq_http::{HttpState, Problem, RouteSet};
use serde::{Deserialize, Serialize};

use crate::identity::{Identity, IdentityConfig, load_signing_key};
use prefiq::{FileMailer, Mailer};
use prefiq_auth::{CedarAuthorizer, PolicyStore};
use prefiq_data::entity::Entities;
use prefiq_data::entity::repo::EntityAuthorizer;

/// The module's manifest source.
pub const MANIFEST: &str = include_str!("../module.yaml");

/// The cortex module.
pub struct Cortex {
    manifest: Manifest,
}

impl Cortex {
    /// The module with its embedded manifest.
    pub fn new() -> Result<Self, prefiq::ManifestError> {
        Ok(Cortex {
            manifest: Manifest::from_yaml(MANIFEST)?,
        })
    }
}

#[derive(Default)]
struct CortexProvider {
    /// The repository tenant schedules' runs write through, set at boot.
    schedules_repository: Arc<std::sync::OnceLock<Arc<prefiq_data::entity::repo::Repository>>>,
}

#[async_trait]
impl ServiceProvider for CortexProvider {
    fn name(&self) -> &'static str {
        "cortex::CortexProvider"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        cx.services.contribute(Arc::new(
            RouteSet::new("cortex")
                .get("/api/v1/system/info", system_info)
                .get("/api/v1/events/stream", events::stream)
                .post("/api/v1/auth/login", login)
                .post("/api/v1/auth/refresh", refresh)
                .post("/api/v1/auth/logout", logout)
                .post("/api/v1/auth/password", change_password)
                .get("/api/v1/users", access::list_users)
                .post("/api/v1/users", access::create_user)
                .patch("/api/v1/users/{id}", access::update_user)
                .get("/api/v1/authz/policies", access::list_policies)
                .post("/api/v1/authz/policies", access::add_policy)
                .delete("/api/v1/authz/policies/{id}", access::remove_policy)
                .get("/api/v1/authz/explain", access::explain)
                .get("/api/v1/audit", audit::list)
                .get("/api/v1/audit/checkpoint", audit::checkpoint)
                .get("/api/v1/audit/proof/inclusion", audit::inclusion)
                .get("/api/v1/audit/proof/consistency", audit::consistency)
                .get("/api/v1/audit/verify", audit::verify)
                .get("/api/v1/settings", settings::list)
                .put("/api/v1/settings/{key}", settings::set)
                .post("/api/v1/auth/password/reset", request_reset)
                .post("/api/v1/auth/password/reset/confirm", confirm_reset)
                .get("/api/v1/auth/api-keys", list_api_keys)
                .post("/api/v1/auth/api-keys", create_api_key)
                .delete("/api/v1/auth/api-keys/{id}", revoke_api_key)
                .get("/api/v1/platform/tenants", platform::list_tenants)
                .post("/api/v1/platform/tenants", platform::create_tenant)
                .post(
                    "/api/v1/platform/tenants/{name}/suspend",
                    platform::suspend_tenant,
                )
                .post(
                    "/api/v1/platform/tenants/{name}/resume",
                    platform::resume_tenant,
                ),
        ));
        cx.services
            .contribute(Arc::new(prefiq_http::openapi::ApiDescription::from_yaml(
                "cortex",
                include_str!("../openapi/routes.yaml"),
            )?));
        cx.services.contribute(Arc::new(desk::routes()));
        // The desk is made on first use, when every module has contributed its layer.
        cx.services.lazy_singleton::<desk::Desk, _>(|r| {
            let config = r.get::<Config>()?;
            let layers = r.services().all::<desk::DeskLayer>();
            // CSRF tokens are bound to sessions under a secret every replica derives alike.
            let csrf_secret = r.get::<Identity>()?.key.derive_secret("desk csrf");
            Ok(Arc::new(
                desk::Desk::new(&layers, &config.root, &config.env).with_csrf_secret(csrf_secret),
            ))
        })?;
        // The key is read (or, in development, made) on first use; `boot` uses it at once
        // so that a missing production key stops boot.
        cx.services.lazy_singleton::<Identity, _>(|r| {
            let config = r.get::<Config>()?;
            let section: IdentityConfig = config
                .section("cortex")
                .map_err(|e| KernelError::service(ErrorKind::Invalid, e))?
                .unwrap_or_default();
            let key = load_signing_key(&config.root, &config.env, &section)?;
            let mut issuers = Vec::new();
            for issuer in &section.oidc {
                issuer
                    .check()
                    .map_err(|e| KernelError::service(ErrorKind::Invalid, e))?;
                issuers.push(sso::ExternalIssuer::new(
                    issuer.clone(),
                    config.root.clone(),
                ));
            }
            Ok(Arc::new(
                Identity::new(
                    r.get::<DatabaseHandle>()?,
                    key,
                    &section,
                    &identity_cache(r),
                )
                .with_issuers(issuers),
            ))
        })?;
        schedules::register(cx, &self.schedules_repository)?;
        cx.services.lazy_singleton::<dyn Authenticator, _>(|r| {
            Ok(r.get::<Identity>()? as Arc<dyn Authenticator>)
        })?;
        // Development mail: each message a JSON line in `cortex.mail_file`.
        cx.services.lazy_singleton::<dyn Mailer, _>(|r| {
            let config = r.get::<Config>()?;
            let section: IdentityConfig = config
                .section("cortex")
                .map_err(|e| KernelError::service(ErrorKind::Invalid, e))?
                .unwrap_or_default();
            Ok(Arc::new(FileMailer::new(config.root.join(section.mail_file))) as Arc<dyn Mailer>)
        })?;
        // Cedar over the permissions blocks of every entity, the actions modules declare,
        // and each tenant's own policies; the entity pipeline asks it on every call.
        cx.services.lazy_singleton::<CedarAuthorizer, _>(|r| {
            let modules = r.get::<InstalledModules>()?;
            let declared = modules
                .list()
                .iter()
                .flat_map(|m| m.permissions.iter().cloned())
                .collect();
            let grants = modules
                .list()
                .iter()
                .flat_map(|m| m.grants.iter().cloned())
                .collect();
            let identity = r.get::<Identity>()?;
            let cache = identity.cache.clone();
            let authorizer = Arc::new(
                CedarAuthorizer::new(
                    r.get::<Entities>()?,
                    declared,
                    identity.clone() as Arc<dyn PolicyStore>,
                )
                .with_grants(grants)
                .with_ttl(move || {
                    std::time::Duration::from_millis(if cache.connected() {
                        cache.config().ttl_ms
                    } else {
                        cache.config().unshared_ttl_ms
                    })
                }),
            );
            // Policy changes are announced through the cache service, so that every
            // replica forgets the tenant's model (see `access::policy_changed`).
            let listener = Arc::downgrade(&authorizer);
            identity
                .cache
                .listen(caching::AUTHZ_NAMESPACE, move |tenant, _| {
                    if let Some(authorizer) = listener.upgrade() {
                        if tenant == "*" {
                            authorizer.invalidate_all();
                        } else {
                            authorizer.invalidate(tenant);
                        }
                    }
                });
            Ok(authorizer)
        })?;
        cx.services.lazy_singleton::<dyn EntityAuthorizer, _>(|r| {
            Ok(r.get::<CedarAuthorizer>()? as Arc<dyn EntityAuthorizer>)
        })?;
        Ok(())
    }

    async fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        if cx.mode != prefiq::BootMode::DryRun {
            if let Some(repository) = cx
                .services
                .try_get::<prefiq_data::entity::repo::Repository>()
            {
                let _ = self.schedules_repository.set(repository);
            }
            let identity = cx.services.get::<Identity>()?;
            if let Some(log) = cx.services.try_get::<prefiq_data::audit::AuditLog>() {
                identity.set_audit(log);
            }
        }
        Ok(())
    }
}

/// The body of `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    email: String,
    password: String,
}

/// The body of `POST /api/v1/auth/refresh` and `/logout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

// Problems are returned by value on the cold error path, as in prefiq-http's handlers.
#[allow(clippy::result_large_err)]
fn refresh_body(body: &Bytes) -> Result<RefreshRequest, Problem> {
    prefiq_http::json_object(body).map_err(|e| {
        Problem::from(KernelError::service(
            ErrorKind::Invalid,
            format!("the body must be {{\"refresh_token\"}}: {e}"),
        ))
    })
}

/// Exchanges a refresh token for a new session (the old one is spent).
async fn refresh(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    body: Bytes,
) -> Result<Json<identity::Session>, Problem> {
    let request = refresh_body(&body)?;
    let identity = state
        .services
        .get::<Identity>("cortex refresh")
        .map_err(Problem::from)?;
    let session = identity
        .refresh(context.tenant.as_deref(), &request.refresh_token)
        .await
        .map_err(|e| Problem::from(KernelError::from(e)))?;
    Ok(Json(session))
}

/// The body of `POST /api/v1/auth/password`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the signed-in user's password; every refresh token of the user is revoked.
async fn change_password(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    body: Bytes,
) -> Result<axum::http::StatusCode, Problem> {
    let (Some(tenant), Some(user)) = (context.tenant.as_deref(), context.user.as_deref()) else {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Unauthenticated,
            "sign in first: send `Authorization: Bearer <token>`",
        )));
    };
    let request: PasswordChange = prefiq_http::json_object(&body).map_err(|e| {
        Problem::from(KernelError::service(
            ErrorKind::Invalid,
            format!("the body must be {{\"current_password\", \"new_password\"}}: {e}"),
        ))
    })?;
    let identity = state
        .services
        .get::<Identity>("cortex change_password")
        .map_err(Problem::from)?;
    identity
        .change_password(
            tenant,
            user,
            &request.current_password,
            &request.new_password,
        )
        .await
        .map_err(|e| Problem::from(KernelError::from(e)))?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Ends the login of a refresh token.
async fn logout(
    State(state): State<HttpState>,
    body: Bytes,
) -> Result<axum::http::StatusCode, Problem> {
    let request = refresh_body(&body)?;
    let identity = state
        .services
        .get::<Identity>("cortex logout")
        .map_err(Problem::from)?;
    identity
        .logout(&request.refresh_token)
        .await
        .map_err(|e| Problem::from(KernelError::from(e)))?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Logs in to the request's tenant (`X-Tenant`) and answers an access token.
async fn login(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    connect: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    body: Bytes,
) -> Result<Json<identity::Session>, Problem> {
    // Failed logins are throttled per client address (see `throttle`).
    let address = connect.map_or_else(|| "unknown".to_owned(), |c| c.0.0.ip().to_string());
    let Some(tenant) = context.tenant.as_deref() else {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Invalid,
            "a tenant is required: send the X-Tenant header",
        )));
    };
    let request: LoginRequest = prefiq_http::json_object(&body).map_err(|e| {
        Problem::from(KernelError::service(
            ErrorKind::Invalid,
            format!("the body must be {{\"email\", \"password\"}}: {e}"),
        ))
    })?;
    let identity = state
        .services
        .get::<Identity>("cortex login")
        .map_err(Problem::from)?;
    let session = identity
        .login(tenant, &request.email, &request.password, &address)
        .await
        .map_err(|e| Problem::from(KernelError::from(e)))?;
    Ok(Json(session))
}

/// The body of `POST /api/v1/auth/password/reset`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    email: String,
}

/// Sends a reset token to the address when it is a user of the request's tenant; the
/// answer (202) is the same when it is not.
async fn request_reset(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    body: Bytes,
) -> Result<axum::http::StatusCode, Problem> {
    let Some(tenant) = context.tenant.as_deref() else {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Invalid,
            "a tenant is required: send the X-Tenant header",
        )));
    };
    let request: ResetRequest = prefiq_http::json_object(&body).map_err(|e| {
        Problem::from(KernelError::service(
            ErrorKind::Invalid,
            format!("the body must be {{\"email\"}}: {e}"),
        ))
    })?;
    let identity = state
        .services
        .get::<Identity>("cortex request_reset")
        .map_err(Problem::from)?;
    let mailer = state
        .services
        .get::<dyn Mailer>("cortex request_reset")
        .map_err(Problem::from)?;
    identity
        .request_reset(tenant, &request.email, mailer)
        .await
        .map_err(|e| Problem::from(KernelError::from(e)))?;
    Ok(axum::http::StatusCode::ACCEPTED)
}

/// The body of `POST /api/v1/auth/password/reset/confirm`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetConfirm {
    token: String,
    new_password: String,
}

/// Sets a new password with a reset token.
async fn confirm_reset(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    body: Bytes,
) -> Result<axum::http::StatusCode, Problem> {
    let Some(tenant) = context.tenant.as_deref() else {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Invalid,
            "a tenant is required: send the X-Tenant header",
        )));
    };
    let request: ResetConfirm = prefiq_http::json_object(&body).map_err(|e| {
        Problem::from(KernelError::service(
            ErrorKind::Invalid,
            format!("the body must be {{\"token\", \"new_password\"}}: {e}"),
        ))
    })?;
    let identity = state
        .services
        .get::<Identity>("cortex confirm_reset")
        .map_err(Problem::from)?;
    identity
        .confirm_reset(tenant, &request.token, &request.new_password)
        .await
        .map_err(|e| Problem::from(KernelError::from(e)))?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// The signed-in principal, for the API-key routes.
#[allow(clippy::result_large_err)]
fn principal(context: &Context) -> Result<&prefiq::Principal, Problem> {
    context.principal.as_deref().ok_or_else(|| {
        Problem::from(KernelError::service(
            ErrorKind::Unauthenticated,
            "sign in first: send `Authorization: Bearer <token>`",
        ))
    })
}

/// The body of `POST /api/v1/auth/api-keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    #[serde(default)]
    roles: Option<Vec<String>>,
}

/// Makes an API key for the signed-in user; the answer is the only time the key is shown.
/// A request made with an API key cannot make another.
async fn create_api_key(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    body: Bytes,
) -> Result<(axum::http::StatusCode, Json<credentials::NewApiKey>), Problem> {
    let principal = principal(&context)?;
    if principal.api_key.is_some() {
        return Err(Problem::new(axum::http::StatusCode::FORBIDDEN)
            .with_detail("API keys are made with a session token, not with another API key")
            .with_action("cortex.create_api_key"));
    }
    let request: NewKey = prefiq_http::json_object(&body).map_err(|e| {
        Problem::from(KernelError::service(
            ErrorKind::Invalid,
            format!("the body must be {{\"name\", \"roles\"?}}: {e}"),
        ))
    })?;
    let identity = state
        .services
        .get::<Identity>("cortex create_api_key")
        .map_err(Problem::from)?;
    if let Some(roles) = &request.roles {
        let authorizer = state
            .services
            .get::<CedarAuthorizer>("cortex create_api_key")
            .map_err(Problem::from)?;
        identity::check_known_roles(roles, &authorizer.known_roles(&principal.tenant))
            .map_err(|e| Problem::from(KernelError::from(e)))?;
    }
    let key = identity
        .create_api_key(
            &principal.tenant,
            &principal.user,
            &request.name,
            request.roles.as_deref(),
        )
        .await
        .map_err(|e| Problem::from(KernelError::from(e)))?;
    Ok((axum::http::StatusCode::CREATED, Json(key)))
}

/// The signed-in user's API keys (never their secrets).
async fn list_api_keys(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
) -> Result<Json<serde_json::Value>, Problem> {
    let principal = principal(&context)?;
    let identity = state
        .services
        .get::<Identity>("cortex list_api_keys")
        .map_err(Problem::from)?;
    let keys = identity
        .api_keys(&principal.tenant, Some(&principal.user))
        .await
        .map_err(|e| Problem::from(KernelError::from(e)))?;
    Ok(Json(serde_json::json!({ "data": keys })))
}

/// Revokes one of the signed-in user's API keys.
async fn revoke_api_key(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::http::StatusCode, Problem> {
    let principal = principal(&context)?;
    let identity = state
        .services
        .get::<Identity>("cortex revoke_api_key")
        .map_err(Problem::from)?;
    let revoked = identity
        .revoke_api_key(&principal.tenant, &id, Some(&principal.user))
        .await
        .map_err(|e| Problem::from(KernelError::from(e)))?;
    if revoked {
        Ok(axum::http::StatusCode::NO_CONTENT)
    } else {
        Err(Problem::from(KernelError::service(
            ErrorKind::NotFound,
            format!("you have no live API key `{id}`"),
        )))
    }
}

/// What `GET /api/v1/system/info` answers.
#[derive(Debug, Serialize)]
pub struct SystemInfo {
    /// The installation's display name.
    pub name: String,
    /// The environment it runs in.
    pub env: String,
    /// The platform version.
    pub version: &'static str,
    /// The installed modules, in boot order.
    pub modules: Vec<ModuleSummary>,
}

async fn system_info(State(state): State<HttpState>) -> Result<Json<SystemInfo>, Problem> {
    let modules = state
        .services
        .get::<InstalledModules>("cortex system_info")
        .map_err(Problem::from)?;
    Ok(Json(SystemInfo {
        name: state.config.app.name.clone(),
        env: state.config.env.clone(),
        version: env!("CARGO_PKG_VERSION"),
        modules: modules.list().to_vec(),
    }))
}

impl Module for Cortex {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(CortexProvider::default())]
    }

    fn migrations(&self) -> Vec<Migration> {
        vec![
            identity::migration(),
            identity::refresh_migration(),
            identity::access_migration(),
            credentials::migration(),
            authenticate::migration(),
        ]
    }

    fn entities(&self) -> Vec<EntitySource> {
        vec![
            EntitySource {
                file: "schema/todo.yaml",
                yaml: include_str!("../schema/todo.yaml"),
            },
            EntitySource {
                file: "schema/schedule.yaml",
                yaml: include_str!("../schema/schedule.yaml"),
            },
        ]
    }

    fn hooks(&self, hooks: &mut LifecycleHooks) {
        hooks.on(Hook::Ready, "announce", |cx| {
            Box::pin(async move {
                tracing::info!(target: "cortex", trace_id = %cx.context.trace_id, app = %cx.config.app.name, env = %cx.config.env, "platform ready");
                Ok(())
            })
        });
        hooks.on(Hook::Upgrade, "record", |cx| {
            Box::pin(async move {
                if let Some(upgrade) = cx.upgrade {
                    let from = upgrade.from.as_ref().map_or_else(|| "nothing".to_owned(), ToString::to_string);
                    tracing::info!(target: "cortex", trace_id = %cx.context.trace_id, from = %from, to = %upgrade.to, "cortex installed or upgraded");
                }
                Ok(())
            })
        });
    }
}

/// The installation's cache service, or, where no `CacheProvider` is registered (some
/// tests), one of this process alone.
fn identity_cache(r: &prefiq::Resolver<'_>) -> prefiq_cache::Cache {
    r.get::<prefiq_cache::Cache>()
        .map(|cache| (*cache).clone())
        .unwrap_or_else(|_| prefiq_cache::Cache::new(prefiq_cache::CacheConfig::default()))
}
