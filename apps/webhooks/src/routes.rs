//! The webhooks API: create (the secret is shown once), list, deliveries, redelivery and
//! secret rotation. Every route needs the action `webhooks.manage` on the tenant (a
//! `System Manager` has it). The records themselves are also served, without secrets, by
//! the generic resource routes (`/api/v1/resources/webhook`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use prefiq::{Context, ErrorKind, KernelError};
use prefiq_auth::authz::{CedarAuthorizer, Resource, refusal};
use prefiq_data::entity::repo::{FieldError, ListQuery, RepoError, TenantScope};
use prefiq_http::{HttpState, Problem};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::service::{Webhooks, delivery_job};
use crate::{destination, signing, store};

/// Managing a tenant's webhooks.
pub const MANAGE: &str = "webhooks.manage";

/// The most event patterns one webhook takes.
const MAX_PATTERNS: usize = 50;

/// The longest description.
const MAX_DESCRIPTION: usize = 1_000;

/// What a route acts with: the caller's scope (for reads the caller's permissions
/// govern), the platform's scope for the tenant carrying the caller as the actor (for
/// writes the action was checked for), and the service.
struct Allowed {
    caller: TenantScope,
    acting: TenantScope,
    webhooks: Arc<Webhooks>,
}

// Problems are returned by value on the cold error path, as in prefiq-http's handlers.
#[allow(clippy::result_large_err)]
async fn allowed(state: &HttpState, context: &Context) -> Result<Allowed, Problem> {
    if context.principal.is_none() {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Unauthenticated,
            "sign in first: send `Authorization: Bearer <token>`",
        )));
    }
    let caller = TenantScope::new(context).map_err(Problem::from)?;
    let authorizer = state
        .services
        .get::<CedarAuthorizer>("webhooks routes")
        .map_err(Problem::from)?;
    let decision = authorizer.decide(&caller, MANAGE, Resource::Tenant).await;
    if !decision.allowed {
        return Err(Problem::new(StatusCode::FORBIDDEN)
            .with_detail(refusal(MANAGE, "the tenant", &decision))
            .with_action(MANAGE));
    }
    let acting = TenantScope::new(&Context {
        principal: None,
        ..context.clone()
    })
    .map_err(Problem::from)?;
    let webhooks = state
        .services
        .get::<Webhooks>("webhooks routes")
        .map_err(Problem::from)?;
    Ok(Allowed {
        caller,
        acting,
        webhooks,
    })
}

fn invalid(pointer: &str, code: &'static str, message: impl Into<String>) -> Problem {
    Problem::from(RepoError::Invalid(vec![FieldError {
        pointer: pointer.into(),
        code,
        message: message.into(),
    }]))
}

fn failed(e: impl std::fmt::Display) -> Problem {
    Problem::from(KernelError::service(ErrorKind::Internal, e.to_string()))
}

/// Checks a webhook's `url` and `events`; the error is (pointer, code, message). The
/// create route and the entity's validation hook (for writes through the generic
/// resource routes) both use it.
pub fn check_target(
    record: &Map<String, Value>,
    allow_private: bool,
    entity_exists: &impl Fn(&str) -> bool,
) -> Result<(), (String, &'static str, String)> {
    let url = record.get("url").and_then(Value::as_str).ok_or_else(|| {
        (
            "/url".to_owned(),
            "required",
            "`url` is a required string".to_owned(),
        )
    })?;
    destination::check_url(url, allow_private)
        .map_err(|e| ("/url".to_owned(), "invalid_url", e))?;
    let events = record
        .get("events")
        .and_then(Value::as_array)
        .filter(|events| !events.is_empty())
        .ok_or_else(|| {
            (
                "/events".to_owned(),
                "required",
                "`events` is a non-empty list of event patterns".to_owned(),
            )
        })?;
    if events.len() > MAX_PATTERNS {
        return Err((
            "/events".to_owned(),
            "too_many",
            format!("at most {MAX_PATTERNS} event patterns"),
        ));
    }
    for (i, pattern) in events.iter().enumerate() {
        let pointer = format!("/events/{i}");
        let Some(pattern) = pattern.as_str() else {
            return Err((
                pointer,
                "invalid_pattern",
                "an event pattern is a string".to_owned(),
            ));
        };
        if let Err(e) = prefiq_worker::event::check_pattern(pattern, entity_exists) {
            return Err((pointer, "invalid_pattern", e));
        }
    }
    Ok(())
}

/// Checks the body of `POST /api/v1/webhooks`: `{url, events, description?}`.
#[allow(clippy::result_large_err)]
fn check_new(
    body: &Bytes,
    allow_private: bool,
    entity_exists: impl Fn(&str) -> bool,
) -> Result<Map<String, Value>, Problem> {
    let body: Map<String, Value> = prefiq_http::json_object(body).map_err(|e| {
        invalid(
            "",
            "invalid_json",
            format!("the body must be {{url, events, description}}: {e}"),
        )
    })?;
    if let Some(unknown) = body
        .keys()
        .find(|k| !["url", "events", "description"].contains(&k.as_str()))
    {
        return Err(invalid(
            &format!("/{unknown}"),
            "unknown_field",
            format!("`{unknown}` is not a field of a webhook"),
        ));
    }
    check_target(&body, allow_private, &entity_exists)
        .map_err(|(pointer, code, message)| invalid(&pointer, code, message))?;
    match body.get("description") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) if text.chars().count() <= MAX_DESCRIPTION => {}
        Some(_) => {
            return Err(invalid(
                "/description",
                "invalid",
                format!("`description` is a string of at most {MAX_DESCRIPTION} characters"),
            ));
        }
    }
    Ok(body)
}

/// `POST /api/v1/webhooks`: 201 with the webhook and its secret, shown this once.
pub async fn create(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let Allowed {
        acting, webhooks, ..
    } = allowed(&state, &context).await?;
    let repository = webhooks.repository().map_err(failed)?.clone();
    let registry = repository.registry();
    let tenant = acting.tenant().to_owned();
    let body = check_new(&body, webhooks.allow_private, |name| {
        registry.get_for(Some(&tenant), name).is_some()
    })?;
    let mut record = body.clone();
    record.insert("status".into(), json!("active"));
    let created = repository
        .create(&acting, "webhook", Value::Object(record))
        .await
        .map_err(Problem::from)?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let secret = signing::new_secret();
    if let Err(e) = store::insert_secret(&repository, &acting, &id, &secret).await {
        // Without its secret the webhook could never sign: take it back.
        let _ = repository.delete(&acting, "webhook", &id).await;
        return Err(Problem::from(e));
    }
    let mut answer = created.as_object().cloned().unwrap_or_default();
    answer.insert("secret".into(), json!(secret));
    Ok((StatusCode::CREATED, Json(Value::Object(answer))))
}

/// The query of the listing routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    limit: Option<u32>,
    cursor: Option<String>,
    before: Option<i64>,
}

/// `GET /api/v1/webhooks`: the tenant's webhooks (never their secrets).
pub async fn list(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(paging): Query<Paging>,
) -> Result<Json<Value>, Problem> {
    let Allowed {
        caller, webhooks, ..
    } = allowed(&state, &context).await?;
    let page = webhooks
        .repository()
        .map_err(failed)?
        .list(
            &caller,
            "webhook",
            &ListQuery {
                limit: paging.limit,
                cursor: paging.cursor,
                ..ListQuery::default()
            },
        )
        .await
        .map_err(Problem::from)?;
    Ok(Json(
        json!({"data": page.data, "next_cursor": page.next_cursor}),
    ))
}

/// `GET /api/v1/webhooks/{id}/deliveries`: attempts newest first (`before` pages back).
pub async fn deliveries(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Json<Value>, Problem> {
    let Allowed {
        caller, webhooks, ..
    } = allowed(&state, &context).await?;
    let repository = webhooks.repository().map_err(failed)?;
    // 404 for a webhook that does not exist (or the caller may not read).
    repository
        .get(&caller, "webhook", &id)
        .await
        .map_err(Problem::from)?;
    let limit = i64::from(paging.limit.unwrap_or(50));
    if !(1..=store::MAX_LIST).contains(&limit) {
        return Err(invalid(
            "/limit",
            "out_of_range",
            format!("`limit` is between 1 and {}", store::MAX_LIST),
        ));
    }
    let data = store::deliveries(repository, &caller, &id, limit, paging.before)
        .await
        .map_err(Problem::from)?;
    let next = (data.len() as i64 == limit)
        .then(|| data.last().map(|d| d.id))
        .flatten();
    Ok(Json(json!({"data": data, "next_before": next})))
}

/// `POST /api/v1/webhooks/{id}/deliveries/{delivery}/redeliver`: 202 with the new job.
pub async fn redeliver(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let Allowed {
        caller, webhooks, ..
    } = allowed(&state, &context).await?;
    let repository = webhooks.repository().map_err(failed)?;
    repository
        .get(&caller, "webhook", &id)
        .await
        .map_err(Problem::from)?;
    let not_found = || {
        Problem::from(RepoError::NotFound {
            entity: "webhook delivery".into(),
            id: delivery.clone(),
        })
    };
    let number: i64 = delivery.parse().map_err(|_| not_found())?;
    let payload = store::payload_of(repository, &caller, &id, number)
        .await
        .map_err(Problem::from)?
        .ok_or_else(not_found)?;
    let body: Value = serde_json::from_str(&payload).map_err(failed)?;
    let event: prefiq_worker::Event =
        serde_json::from_value(body.get("data").cloned().unwrap_or_default()).map_err(failed)?;
    let ids = webhooks
        .jobs()
        .map_err(failed)?
        .enqueue(vec![delivery_job(&id, &event)])
        .await
        .map_err(failed)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"job": ids.first().copied().flatten(), "event_id": event.id})),
    ))
}

/// `POST /api/v1/webhooks/{id}/rotate-secret`: the new secret, shown this once; the old
/// one still signs (beside it) for `webhooks.rotation_overlap_ms`.
pub async fn rotate_secret(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let Allowed {
        caller,
        acting,
        webhooks,
    } = allowed(&state, &context).await?;
    let repository = webhooks.repository().map_err(failed)?;
    repository
        .get(&caller, "webhook", &id)
        .await
        .map_err(Problem::from)?;
    let secret = signing::new_secret();
    let now = jiff::Timestamp::now().as_second();
    let rotated = store::rotate_secret(repository, &acting, &id, &secret, now)
        .await
        .map_err(Problem::from)?;
    if !rotated {
        store::insert_secret(repository, &acting, &id, &secret)
            .await
            .map_err(Problem::from)?;
    }
    webhooks.forget_secrets(acting.tenant(), &id);
    let until = jiff::Timestamp::from_second(now + webhooks.config.rotation_overlap_ms / 1_000)
        .map(|t| t.to_string())
        .ok();
    Ok(Json(json!({
        "id": id,
        "secret": secret,
        "previous_secret_valid_until": rotated.then_some(until).flatten(),
    })))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_new_webhook_is_checked_with_pointers() {
        let known = |e: &str| e == "todo";
        let check = |body: &str, expected: Result<(), &str>| {
            let result = check_new(&Bytes::from(body.to_owned()), false, known);
            match expected {
                Ok(()) => assert!(result.is_ok(), "{body}: {result:?}"),
                Err(pointer) => {
                    let problem = serde_json::to_value(result.expect_err(body)).unwrap();
                    let text = problem.to_string();
                    assert!(text.contains(&format!("\"{pointer}\"")), "{body}: {text}");
                }
            }
        };
        check(
            r#"{"url":"https://example.com/h","events":["todo.created"]}"#,
            Ok(()),
        );
        check(
            r#"{"url":"https://example.com/h","events":["*"],"description":"all"}"#,
            Ok(()),
        );
        check(
            r#"{"url":"http://127.0.0.1/h","events":["todo.*"]}"#,
            Err("/url"),
        );
        check(
            r#"{"url":"ftp://example.com/h","events":["todo.*"]}"#,
            Err("/url"),
        );
        check(r#"{"events":["todo.*"]}"#, Err("/url"));
        check(
            r#"{"url":"https://example.com/h","events":[]}"#,
            Err("/events"),
        );
        check(
            r#"{"url":"https://example.com/h","events":["todo.*","invoice.created"]}"#,
            Err("/events/1"),
        );
        check(
            r#"{"url":"https://example.com/h","events":["todo.exploded"]}"#,
            Err("/events/0"),
        );
        check(
            r#"{"url":"https://example.com/h","events":[5]}"#,
            Err("/events/0"),
        );
        check(
            r#"{"url":"https://example.com/h","events":["*"],"secret":"x"}"#,
            Err("/secret"),
        );
        check(
            r#"{"url":"https://example.com/h","events":["*"],"description":7}"#,
            Err("/description"),
        );
        check(r#"[1,2]"#, Err(""));
    }
}
