//! The administrator's pages: users, roles with the tenant's policies, and settings. Each
//! calls the same API routes a script would, so a user without `cortex.manage_users` (or
//! the other actions) gets the API's refusal here too.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use prefiq::InstalledModules;
use prefiq_data::entity::repo::Repository;
use prefiq_http::HttpState;
use serde_json::{Value, json};

use super::DeskRequest;
use super::form::url_encode;

macro_rules! try_page {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

/// Every role the tenant knows: those the entity permissions it sees and module grants
/// name, and those users already have.
fn known_roles(state: &HttpState, tenant: &str, users: &[Value]) -> Vec<String> {
    let mut roles: BTreeSet<String> = BTreeSet::new();
    roles.insert("admin".into());
    if let Ok(repository) = state.services.get::<Repository>("cortex desk") {
        // Another tenant's runtime entities, and the roles they name, are not this one's.
        for schema in repository.registry().visible_to(Some(tenant)).all() {
            roles.extend(schema.permissions.keys().cloned());
        }
    }
    if let Ok(modules) = state.services.get::<InstalledModules>("cortex desk") {
        for module in modules.list() {
            roles.extend(module.grants.iter().map(|(role, _)| role.clone()));
        }
    }
    for user in users {
        for role in user
            .get("roles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(role) = role.as_str() {
                roles.insert(role.to_owned());
            }
        }
    }
    roles
        .into_iter()
        .filter(|r| r != "*" && !r.is_empty())
        .collect()
}

/// `GET /app/admin/users`.
pub async fn users(State(state): State<HttpState>, request: DeskRequest) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    users_page(&state, &desk, &session, StatusCode::OK, None, None).await
}

async fn users_page(
    state: &HttpState,
    desk: &super::Desk,
    session: &super::Session,
    status: StatusCode,
    problem: Option<String>,
    notice: Option<String>,
) -> Response {
    let answer = session
        .call(state, Method::GET, "/api/v1/users", None)
        .await;
    if !answer.ok() {
        return session.message(state, desk, answer.status, "Not allowed", &answer.message());
    }
    let users = answer
        .body
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let roles = known_roles(state, session.tenant(), &users);
    session.render(
        state,
        desk,
        status,
        "users.html",
        json!({ "title": "Users", "users": users, "roles": roles, "problem": problem, "notice": notice }),
    )
}

/// `POST /app/admin/users`: adds a user.
pub async fn create_user(
    State(state): State<HttpState>,
    request: DeskRequest,
    body: Bytes,
) -> Response {
    let (desk, session, form) = try_page!(request.open_form(&state, &body).await);
    let roles: Vec<&str> = form.all("roles");
    let answer = session
        .call(
            &state,
            Method::POST,
            "/api/v1/users",
            Some(&json!({
                "email": form.get("email").unwrap_or("").trim(),
                "password": form.get("password").unwrap_or(""),
                "roles": roles,
            })),
        )
        .await;
    if answer.ok() {
        let email = answer
            .body
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or("");
        return users_page(
            &state,
            &desk,
            &session,
            StatusCode::OK,
            None,
            Some(format!("Added {email}.")),
        )
        .await;
    }
    users_page(
        &state,
        &desk,
        &session,
        answer.status,
        Some(answer.message()),
        None,
    )
    .await
}

/// `GET /app/admin/users/{id}`.
pub async fn user(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(id): Path<String>,
) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    user_page(&state, &desk, &session, &id, StatusCode::OK, None, None).await
}

async fn user_page(
    state: &HttpState,
    desk: &super::Desk,
    session: &super::Session,
    id: &str,
    status: StatusCode,
    problem: Option<String>,
    notice: Option<String>,
) -> Response {
    let answer = session
        .call(state, Method::GET, "/api/v1/users", None)
        .await;
    if !answer.ok() {
        return session.message(state, desk, answer.status, "Not allowed", &answer.message());
    }
    let users = answer
        .body
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(user) = users
        .iter()
        .find(|u| u.get("id").and_then(Value::as_str) == Some(id))
        .cloned()
    else {
        return session.message(
            state,
            desk,
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such user.",
        );
    };
    let roles: Vec<Value> = known_roles(state, session.tenant(), &users)
        .into_iter()
        .map(|role| {
            let has = user
                .get("roles")
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(role.as_str())));
            json!({ "name": role, "checked": has })
        })
        .collect();
    session.render(
        state,
        desk,
        status,
        "user.html",
        json!({
            "title": format!("User {}", user.get("email").and_then(Value::as_str).unwrap_or(id)),
            "account": user,
            "roles": roles,
            "attributes": serde_json::to_string_pretty(user.get("attributes").unwrap_or(&json!({}))).unwrap_or_default(),
            "problem": problem,
            "notice": notice,
        }),
    )
}

/// `POST /app/admin/users/{id}`: changes a user's roles, attributes and status.
pub async fn update_user(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (desk, session, form) = try_page!(request.open_form(&state, &body).await);
    let attributes: Value =
        match serde_json::from_str(form.get("attributes").unwrap_or("{}").trim()) {
            Ok(value @ Value::Object(_)) => value,
            _ => {
                return user_page(
                    &state,
                    &desk,
                    &session,
                    &id,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some(
                        "Attributes must be a JSON object, such as {\"department\": \"sales\"}."
                            .into(),
                    ),
                    None,
                )
                .await;
            }
        };
    let answer = session
        .call(
            &state,
            Method::PATCH,
            &format!("/api/v1/users/{}", url_encode(&id)),
            Some(&json!({
                "roles": form.all("roles"),
                "attributes": attributes,
                "status": form.get("status").unwrap_or("active"),
            })),
        )
        .await;
    if answer.ok() {
        return user_page(
            &state,
            &desk,
            &session,
            &id,
            StatusCode::OK,
            None,
            Some("Saved.".into()),
        )
        .await;
    }
    user_page(
        &state,
        &desk,
        &session,
        &id,
        answer.status,
        Some(answer.message()),
        None,
    )
    .await
}

/// `GET /app/admin/roles`: what each role may do by the entity schemas, and the tenant's
/// own Cedar policies.
pub async fn roles(State(state): State<HttpState>, request: DeskRequest) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    roles_page(&state, &desk, &session, StatusCode::OK, None, None, "", "").await
}

#[allow(clippy::too_many_arguments)]
async fn roles_page(
    state: &HttpState,
    desk: &super::Desk,
    session: &super::Session,
    status: StatusCode,
    problem: Option<String>,
    notice: Option<String>,
    draft_id: &str,
    draft_text: &str,
) -> Response {
    let answer = session
        .call(state, Method::GET, "/api/v1/authz/policies", None)
        .await;
    if !answer.ok() {
        return session.message(state, desk, answer.status, "Not allowed", &answer.message());
    }
    let mut matrix = Vec::new();
    if let Ok(repository) = state.services.get::<Repository>("cortex desk") {
        let registry = repository.registry().visible_to(Some(session.tenant()));
        for schema in registry.all().filter(|s| !s.child) {
            for (role, permission) in &schema.permissions {
                matrix.push(json!({
                    "role": role,
                    "entity": schema.label,
                    "actions": format!("{permission:?}"),
                }));
            }
        }
    }
    let grants: Vec<Value> = state
        .services
        .get::<InstalledModules>("cortex desk")
        .ok()
        .map(|m| {
            m.list()
                .iter()
                .flat_map(|module| {
                    module
                        .grants
                        .iter()
                        .map(|(role, action)| json!({ "role": role, "action": action }))
                })
                .collect()
        })
        .unwrap_or_default();
    session.render(
        state,
        desk,
        status,
        "roles.html",
        json!({
            "title": "Roles and policies",
            "matrix": matrix,
            "grants": grants,
            "policies": answer.body.get("data"),
            "problem": problem,
            "notice": notice,
            "draft_id": draft_id,
            "draft_text": draft_text,
        }),
    )
}

/// `POST /app/admin/roles`: adds a tenant policy (checked by Cedar before it is stored).
pub async fn add_policy(
    State(state): State<HttpState>,
    request: DeskRequest,
    body: Bytes,
) -> Response {
    let (desk, session, form) = try_page!(request.open_form(&state, &body).await);
    let id = form.get("id").unwrap_or("").trim();
    let text = form.get("text").unwrap_or("");
    let answer = session
        .call(
            &state,
            Method::POST,
            "/api/v1/authz/policies",
            Some(&json!({ "id": id, "text": text })),
        )
        .await;
    if answer.ok() {
        return roles_page(
            &state,
            &desk,
            &session,
            StatusCode::OK,
            None,
            Some(format!("Added policy {id}.")),
            "",
            "",
        )
        .await;
    }
    roles_page(
        &state,
        &desk,
        &session,
        answer.status,
        Some(answer.message()),
        None,
        id,
        text,
    )
    .await
}

/// `POST /app/admin/roles/{id}/remove`.
pub async fn remove_policy(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (desk, session, _) = try_page!(request.open_form(&state, &body).await);
    let answer = session
        .call(
            &state,
            Method::DELETE,
            &format!("/api/v1/authz/policies/{}", url_encode(&id)),
            None,
        )
        .await;
    if answer.ok() {
        return roles_page(
            &state,
            &desk,
            &session,
            StatusCode::OK,
            None,
            Some(format!("Removed policy {id}.")),
            "",
            "",
        )
        .await;
    }
    roles_page(
        &state,
        &desk,
        &session,
        answer.status,
        Some(answer.message()),
        None,
        "",
        "",
    )
    .await
}

/// `GET /app/admin/settings`.
pub async fn settings(State(state): State<HttpState>, request: DeskRequest) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    settings_page(&state, &desk, &session, StatusCode::OK, None, None).await
}

async fn settings_page(
    state: &HttpState,
    desk: &super::Desk,
    session: &super::Session,
    status: StatusCode,
    problem: Option<String>,
    notice: Option<String>,
) -> Response {
    let answer = session
        .call(state, Method::GET, "/api/v1/settings", None)
        .await;
    if !answer.ok() {
        return session.message(state, desk, answer.status, "Not allowed", &answer.message());
    }
    let settings: Vec<Value> = answer
        .body
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| {
            let key = s.get("key").and_then(Value::as_str).unwrap_or("");
            json!({
                "key": key,
                "dom_id": super::form::dom_id(key),
                "value": s.get("value").and_then(Value::as_str).unwrap_or(""),
                "overridden": s.get("overridden"),
                "description": s.get("description"),
            })
        })
        .collect();
    session.render(
        state,
        desk,
        status,
        "settings.html",
        json!({ "title": "Settings", "settings": settings, "problem": problem, "notice": notice }),
    )
}

/// `POST /app/admin/settings`: stores each changed setting; an empty one goes back to the
/// installation's value.
pub async fn save_settings(
    State(state): State<HttpState>,
    request: DeskRequest,
    body: Bytes,
) -> Response {
    let (desk, session, form) = try_page!(request.open_form(&state, &body).await);
    let mut changed = 0;
    for (key, _) in crate::settings::EDITABLE {
        let (Some(value), Some(was)) = (form.get(key), form.get(&format!("{key}.was"))) else {
            continue;
        };
        if value == was {
            continue;
        }
        let value = value.trim();
        let body = if value.is_empty() {
            json!({ "value": null })
        } else {
            json!({ "value": value })
        };
        let answer = session
            .call(
                &state,
                Method::PUT,
                &format!("/api/v1/settings/{key}"),
                Some(&body),
            )
            .await;
        if !answer.ok() {
            return settings_page(
                &state,
                &desk,
                &session,
                answer.status,
                Some(format!("{key}: {}", answer.message())),
                None,
            )
            .await;
        }
        changed += 1;
    }
    settings_page(
        &state,
        &desk,
        &session,
        StatusCode::OK,
        None,
        Some(format!("Saved {changed} setting(s).")),
    )
    .await
}
