//! The platform administrator's API: tenants across the installation. A platform
//! administrator is a `System Manager` of the reserved tenant [`PLATFORM_TENANT`], which
//! `prefiq tenant create platform …` makes; these routes are the same operations as the
//! `prefiq tenant` commands.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use prefiq::{Context, ErrorKind, KernelError};
use prefiq_http::{HttpState, Problem};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::identity::{ADMIN_ROLE, Identity, Tenant};

/// The tenant whose administrators administer the platform.
pub const PLATFORM_TENANT: &str = "platform";

/// The action a platform route stands for, named in its refusals.
pub const MANAGE_TENANTS: &str = "platform.manage_tenants";

#[allow(clippy::result_large_err)]
fn platform_admin(
    state: &HttpState,
    context: &Context,
) -> Result<std::sync::Arc<Identity>, Problem> {
    let Some(principal) = context.principal.as_deref() else {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Unauthenticated,
            "sign in first: send `Authorization: Bearer <token>`",
        )));
    };
    if principal.tenant != PLATFORM_TENANT || !principal.roles.iter().any(|r| r == ADMIN_ROLE) {
        return Err(Problem::new(StatusCode::FORBIDDEN)
            .with_detail(format!(
                "`{MANAGE_TENANTS}` is for {ADMIN_ROLE}s of the `{PLATFORM_TENANT}` tenant"
            ))
            .with_action(MANAGE_TENANTS));
    }
    state
        .services
        .get::<Identity>("cortex platform")
        .map_err(Problem::from)
}

fn identity_problem(error: crate::identity::IdentityError) -> Problem {
    Problem::from(KernelError::from(error))
}

/// `GET /api/v1/platform/tenants`.
pub async fn list_tenants(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
) -> Result<Json<Value>, Problem> {
    let identity = platform_admin(&state, &context)?;
    let tenants = identity.tenants().await.map_err(identity_problem)?;
    Ok(Json(json!({ "data": tenants })))
}

/// The body of `POST /api/v1/platform/tenants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    name: String,
    admin_email: String,
    admin_password: String,
}

/// `POST /api/v1/platform/tenants`: a tenant and its first administrator.
pub async fn create_tenant(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    body: Bytes,
) -> Result<(StatusCode, Json<Tenant>), Problem> {
    let identity = platform_admin(&state, &context)?;
    let request: NewTenant = prefiq_http::json_object(&body).map_err(|e| {
        Problem::from(KernelError::service(
            ErrorKind::Invalid,
            format!("the body must be {{\"name\", \"admin_email\", \"admin_password\"}}: {e}"),
        ))
    })?;
    let tenant = identity
        .create_tenant(&request.name, &request.admin_email, &request.admin_password)
        .await
        .map_err(identity_problem)?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

async fn set_status(
    state: &HttpState,
    context: &Context,
    name: &str,
    status: &str,
) -> Result<StatusCode, Problem> {
    let identity = platform_admin(state, context)?;
    if name == PLATFORM_TENANT {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Conflict,
            "the platform tenant cannot be suspended through the API; use `prefiq tenant suspend`",
        )));
    }
    identity
        .set_status(name, status)
        .await
        .map_err(identity_problem)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/platform/tenants/{name}/suspend`.
pub async fn suspend_tenant(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    set_status(&state, &context, &name, "suspended").await
}

/// `POST /api/v1/platform/tenants/{name}/resume`.
pub async fn resume_tenant(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    set_status(&state, &context, &name, "active").await
}
