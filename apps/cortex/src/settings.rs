//! Tenant settings over the API: `GET /api/v1/settings` gives the tenant's effective
//! `app` settings with its own overrides, and `PUT /api/v1/settings/{key}` sets or (with a
//! null value) removes one override. Both are the action `cortex.manage_settings`; a value
//! the configuration would not accept is refused and nothing is stored.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use prefiq::{ConfigService, Context, ErrorKind, KernelError, TenantConfigStore};
use prefiq_auth::authz::CedarAuthorizer;
use prefiq_http::{HttpState, Problem};
use serde_json::{Value, json};

use crate::access::allowed;

/// The action of managing a tenant's settings.
pub const MANAGE_SETTINGS: &str = "cortex.manage_settings";

/// Longest accepted settings body, in bytes.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The settings an administrator edits in the desk, with what each means.
pub const EDITABLE: &[(&str, &str)] = &[
    (
        "app.locale",
        "The language of messages (BCP 47, such as en or de-CH).",
    ),
    (
        "app.timezone",
        "The time zone dates are shown in (IANA, such as Europe/Zurich).",
    ),
];

fn invalid(message: impl Into<String>) -> Problem {
    Problem::from(KernelError::service(ErrorKind::Invalid, message.into()))
}

/// `GET /api/v1/settings`: every editable setting's effective value and whether the
/// tenant overrides it.
pub async fn list(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
) -> Result<Json<Value>, Problem> {
    let authorizer = state
        .services
        .get::<CedarAuthorizer>("cortex settings")
        .map_err(Problem::from)?;
    let scope = allowed(&authorizer, &context, MANAGE_SETTINGS).await?;
    let service = state
        .services
        .get::<ConfigService>("cortex settings")
        .map_err(Problem::from)?;
    let effective = service.for_tenant(scope.tenant()).await?;
    let overrides = match state
        .services
        .contains::<dyn TenantConfigStore>()
        .then(|| {
            state
                .services
                .get::<dyn TenantConfigStore>("cortex settings")
                .ok()
        })
        .flatten()
    {
        Some(store) => store.overrides(scope.tenant()).await?,
        None => Default::default(),
    };
    let values = json!({
        "app.locale": effective.app.locale,
        "app.timezone": effective.app.timezone,
    });
    let data: Vec<Value> = EDITABLE
        .iter()
        .map(|(key, description)| {
            json!({
                "key": key,
                "value": values[*key],
                "overridden": overrides.contains_key(*key),
                "description": description,
            })
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// `PUT /api/v1/settings/{key}` with `{"value": …}`: sets the tenant's override, or
/// removes it when the value is null.
pub async fn set(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let authorizer = state
        .services
        .get::<CedarAuthorizer>("cortex settings")
        .map_err(Problem::from)?;
    let scope = allowed(&authorizer, &context, MANAGE_SETTINGS).await?;
    if body.len() > MAX_BODY_BYTES {
        return Err(invalid(format!(
            "the body is longer than {MAX_BODY_BYTES} bytes"
        )));
    }
    if !EDITABLE.iter().any(|(k, _)| *k == key) {
        return Err(invalid(format!(
            "`{key}` is not a tenant setting; use one of {}",
            EDITABLE
                .iter()
                .map(|(k, _)| *k)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| invalid(format!("the body must be {{\"value\": …}}: {e}")))?;
    let Some(value) = request.as_object().and_then(|o| o.get("value")).cloned() else {
        return Err(invalid("the body must be {\"value\": …}"));
    };
    let value = (!value.is_null()).then_some(value);
    let service = state
        .services
        .get::<ConfigService>("cortex settings")
        .map_err(Problem::from)?;
    service
        .set_override(scope.tenant(), &key, value.clone())
        .await?;
    if let Ok(identity) = state
        .services
        .get::<crate::identity::Identity>("cortex settings")
    {
        identity
            .audit(
                scope.tenant(),
                scope.user(),
                "config_set",
                Some(&key),
                json!({ "value": { "after": value } }),
            )
            .await;
    }
    Ok(Json(json!({ "key": key, "value": value })))
}
