//! The tenant administrator's side of authorization: users with their roles and
//! attributes, the tenant's own Cedar policies, and `authz/explain`, which says which
//! policies decided a request. Every route here is itself authorized: managing users is
//! the action `cortex.manage_users` on the tenant, managing policies
//! `cortex.manage_policies`, so a plain user gets a 403 that names the action.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use prefiq::{Context, ErrorKind, KernelError};
use prefiq_auth::TenantPolicy;
use prefiq_auth::authz::{CedarAuthorizer, Decision, Resource, refusal};
use prefiq_data::entity::repo::{RepoError, Repository, TenantScope};
use prefiq_http::{HttpState, Problem};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::identity::{Identity, UserInfo, check_known_roles};

/// The action of managing a tenant's users.
pub const MANAGE_USERS: &str = "cortex.manage_users";
/// The action of managing a tenant's policies.
pub const MANAGE_POLICIES: &str = "cortex.manage_policies";

fn invalid(message: impl Into<String>) -> Problem {
    Problem::from(KernelError::service(ErrorKind::Invalid, message.into()))
}

// Problems are returned by value on the cold error path, as in prefiq-http's handlers.
#[allow(clippy::result_large_err)]
fn services(
    state: &HttpState,
    what: &'static str,
) -> Result<(Arc<Identity>, Arc<CedarAuthorizer>), Problem> {
    Ok((
        state
            .services
            .get::<Identity>(what)
            .map_err(Problem::from)?,
        state
            .services
            .get::<CedarAuthorizer>(what)
            .map_err(Problem::from)?,
    ))
}

/// The caller's scope; only a signed-in principal may use these routes.
#[allow(clippy::result_large_err)]
fn signed_in(context: &Context) -> Result<TenantScope, Problem> {
    if context.principal.is_none() {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Unauthenticated,
            "sign in first: send `Authorization: Bearer <token>`",
        )));
    }
    TenantScope::new(context).map_err(|e| invalid(e.to_string()))
}

/// The caller's scope, when Cedar allows it `action` on its tenant.
pub(crate) async fn allowed(
    authorizer: &CedarAuthorizer,
    context: &Context,
    action: &str,
) -> Result<TenantScope, Problem> {
    let scope = signed_in(context)?;
    let decision = authorizer.decide(&scope, action, Resource::Tenant).await;
    if !decision.allowed {
        return Err(Problem::new(StatusCode::FORBIDDEN)
            .with_detail(refusal(action, "the tenant", &decision))
            .with_action(action));
    }
    Ok(scope)
}

fn identity_problem(error: crate::identity::IdentityError) -> Problem {
    Problem::from(KernelError::from(error))
}

/// `GET /api/v1/users`: the tenant's users.
pub async fn list_users(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
) -> Result<Json<Value>, Problem> {
    let (identity, authorizer) = services(&state, "cortex list_users")?;
    let scope = allowed(&authorizer, &context, MANAGE_USERS).await?;
    let users = identity
        .users(scope.tenant())
        .await
        .map_err(identity_problem)?;
    Ok(Json(json!({ "data": users })))
}

/// The body of `POST /api/v1/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    attributes: Map<String, Value>,
}

/// `POST /api/v1/users`: adds a user to the tenant.
pub async fn create_user(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    body: Bytes,
) -> Result<(StatusCode, Json<UserInfo>), Problem> {
    let (identity, authorizer) = services(&state, "cortex create_user")?;
    let scope = allowed(&authorizer, &context, MANAGE_USERS).await?;
    let request: NewUser = prefiq_http::json_object(&body).map_err(|e| {
        invalid(format!(
            "the body must be {{\"email\", \"password\", \"roles\"?, \"attributes\"?}}: {e}"
        ))
    })?;
    check_known_roles(&request.roles, &authorizer.known_roles(scope.tenant()))
        .map_err(identity_problem)?;
    let user = identity
        .create_user(
            scope.tenant(),
            &request.email,
            &request.password,
            &request.roles,
            &request.attributes,
        )
        .await
        .map_err(identity_problem)?;
    identity
        .audit(
            scope.tenant(),
            scope.user(),
            "user_create",
            Some(&user.id),
            json!({"roles": {"after": request.roles}, "attributes": {"after": request.attributes}}),
        )
        .await;
    Ok((StatusCode::CREATED, Json(user)))
}

/// The body of `PATCH /api/v1/users/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
    #[serde(default)]
    status: Option<String>,
}

/// `PATCH /api/v1/users/{id}`: changes a user's roles, attributes or status.
pub async fn update_user(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let (identity, authorizer) = services(&state, "cortex update_user")?;
    let scope = allowed(&authorizer, &context, MANAGE_USERS).await?;
    let change: UserChange = prefiq_http::json_object(&body).map_err(|e| {
        invalid(format!(
            "the body must be {{\"roles\"?, \"attributes\"?, \"status\"?}}: {e}"
        ))
    })?;
    if let Some(roles) = &change.roles {
        check_known_roles(roles, &authorizer.known_roles(scope.tenant()))
            .map_err(identity_problem)?;
    }
    identity
        .update_user(
            scope.tenant(),
            &id,
            change.roles.as_deref(),
            change.attributes.as_ref(),
            change.status.as_deref(),
        )
        .await
        .map_err(identity_problem)?;
    let mut changes = Map::new();
    for (field, value) in [
        ("roles", change.roles.map(|r| json!(r))),
        ("attributes", change.attributes.map(Value::Object)),
        ("status", change.status.map(Value::String)),
    ] {
        if let Some(value) = value {
            changes.insert(field.into(), json!({ "after": value }));
        }
    }
    identity
        .audit(
            scope.tenant(),
            scope.user(),
            "user_update",
            Some(&id),
            Value::Object(changes),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/authz/policies`: the tenant's own policies, the policies compiled from
/// the schemas, and the generated Cedar schema that policies are validated against.
pub async fn list_policies(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
) -> Result<Json<Value>, Problem> {
    let (identity, authorizer) = services(&state, "cortex list_policies")?;
    let scope = allowed(&authorizer, &context, MANAGE_POLICIES).await?;
    let tenant = identity
        .policies(scope.tenant())
        .await
        .map_err(identity_problem)?;
    let model = authorizer
        .model(scope.tenant())
        .await
        .map_err(|e| Problem::from(KernelError::service(ErrorKind::Internal, e.to_string())))?;
    let compiled: Map<String, Value> = model
        .policies()
        .iter()
        .filter(|(id, _)| !tenant.iter().any(|p| &p.id == *id))
        .map(|(id, text)| (id.clone(), Value::String(text.clone())))
        .collect();
    Ok(Json(json!({
        "data": tenant,
        "compiled": compiled,
        "schema": model.schema_text(),
    })))
}

/// `POST /api/v1/authz/policies` `{id, text}`: adds a Cedar policy to the tenant; one that
/// does not parse or fails validation against the schema is refused with the message.
pub async fn add_policy(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    body: Bytes,
) -> Result<(StatusCode, Json<TenantPolicy>), Problem> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NewPolicy {
        id: String,
        text: String,
    }
    let (identity, authorizer) = services(&state, "cortex add_policy")?;
    let scope = allowed(&authorizer, &context, MANAGE_POLICIES).await?;
    let request: NewPolicy = prefiq_http::json_object(&body)
        .map_err(|e| invalid(format!("the body must be {{\"id\", \"text\"}}: {e}")))?;
    let policy = TenantPolicy {
        id: request.id,
        text: request.text,
    };
    let model = authorizer
        .model(scope.tenant())
        .await
        .map_err(|e| Problem::from(KernelError::service(ErrorKind::Internal, e.to_string())))?;
    model
        .check_policy(&policy)
        .map_err(|e| invalid(e.to_string()))?;
    // A policy that takes the policy routes from administrators could never be removed.
    let existing = identity
        .policies(scope.tenant())
        .await
        .map_err(identity_problem)?;
    if let Some(caller) = context.principal.as_deref() {
        crate::recovery::check_policy_keeps_administrators(
            &authorizer,
            scope.tenant(),
            &existing,
            &policy,
            caller,
        )
        .map_err(invalid)?;
    }
    identity
        .add_policy(scope.tenant(), &policy)
        .await
        .map_err(identity_problem)?;
    policy_changed(&identity, scope.tenant());
    tracing::info!(target: "cortex::authz", tenant = scope.tenant(), policy = %policy.id, "policy added");
    identity
        .audit(
            scope.tenant(),
            scope.user(),
            "policy_add",
            Some(&policy.id),
            json!({"text": {"after": policy.text}}),
        )
        .await;
    Ok((StatusCode::CREATED, Json(policy)))
}

/// `DELETE /api/v1/authz/policies/{id}`.
pub async fn remove_policy(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let (identity, authorizer) = services(&state, "cortex remove_policy")?;
    let scope = allowed(&authorizer, &context, MANAGE_POLICIES).await?;
    let removed = identity
        .remove_policy(scope.tenant(), &id)
        .await
        .map_err(identity_problem)?;
    policy_changed(&identity, scope.tenant());
    if removed {
        tracing::info!(target: "cortex::authz", tenant = scope.tenant(), policy = %id, "policy removed");
        identity
            .audit(
                scope.tenant(),
                scope.user(),
                "policy_remove",
                Some(&id),
                json!({}),
            )
            .await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::from(KernelError::service(
            ErrorKind::NotFound,
            format!("policy `{id}` does not exist"),
        )))
    }
}

/// The query of `GET /api/v1/authz/explain`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    action: String,
    #[serde(default)]
    entity: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

/// `GET /api/v1/authz/explain?action=…&entity=…&id=…`: whether the caller may do `action`
/// (on the row, on the entity, or without `entity` on the tenant) and which policies
/// decided.
pub async fn explain(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<ExplainQuery>,
) -> Result<Json<Value>, Problem> {
    let (_, authorizer) = services(&state, "cortex explain")?;
    let scope = signed_in(&context)?;
    if query.action.is_empty() || query.action.len() > 128 {
        return Err(invalid("`action` is 1 to 128 characters"));
    }
    let decision: Decision = match &query.entity {
        None => {
            authorizer
                .decide(&scope, &query.action, Resource::Tenant)
                .await
        }
        Some(entity) => {
            let repo = state
                .services
                .get::<Repository>("cortex explain")
                .map_err(Problem::from)?;
            let schema = repo
                .schema(&scope, entity)
                .await
                .map_err(|e| repo_problem(&e))?;
            // The row is read as the system would, so the explanation covers rows the
            // caller may not read; what it says is only the decision, not the row.
            let system = TenantScope::new(
                &Context::system(context.locale.clone()).with_tenant(scope.tenant()),
            )
            .map_err(|e| invalid(e.to_string()))?;
            let row = match &query.id {
                Some(id) => match repo.get(&system, entity, id).await {
                    Ok(Value::Object(row)) => Some(row),
                    Ok(_) => None,
                    Err(e) => return Err(repo_problem(&e)),
                },
                None => None,
            };
            authorizer
                .decide(
                    &scope,
                    &query.action,
                    Resource::Record {
                        schema: &schema,
                        id: query.id.as_deref().unwrap_or(""),
                        doc: row.as_ref(),
                    },
                )
                .await
        }
    };
    Ok(Json(json!({
        "action": query.action,
        "entity": query.entity,
        "id": query.id,
        "decision": if decision.allowed { "allow" } else { "deny" },
        "policies": decision.policies,
        "errors": decision.errors,
    })))
}

fn repo_problem(error: &RepoError) -> Problem {
    let kind = match error {
        RepoError::UnknownEntity(_) | RepoError::NotFound { .. } => ErrorKind::NotFound,
        RepoError::NoTenant => ErrorKind::Invalid,
        _ => ErrorKind::Internal,
    };
    Problem::from(KernelError::service(kind, error.to_string()))
}

/// Forgets `tenant`'s compiled model here and on every other replica, after a change to
/// its policies.
fn policy_changed(identity: &Identity, tenant: &str) {
    identity
        .cache
        .announce(crate::caching::AUTHZ_NAMESPACE, tenant, None);
}
