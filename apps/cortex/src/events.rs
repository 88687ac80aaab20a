//! `GET /api/v1/events/stream?entities=a,b`: the caller's tenant's events as server-sent
//! events, as they are relayed, limited to what the caller may read: entities it may not
//! read are refused up front (or, without `entities`, skipped), and each record is read
//! again through the repository as the caller, so record rules and hidden fields hold (a
//! record the caller may not read is not sent; a deleted one is sent without data).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use prefiq::{Context, ErrorKind, KernelError};
use prefiq_data::entity::repo::{RepoError, Repository, TenantScope};
use prefiq_http::{HttpState, Problem};
use prefiq_worker::{Event, EventBus};
use serde::Deserialize;
use serde_json::json;

/// The most entities one stream names.
const MAX_ENTITIES: usize = 50;

/// The query of the stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Comma-separated entity names; all the caller may read when absent.
    entities: Option<String>,
}

fn invalid(message: String) -> Problem {
    Problem::from(RepoError::Invalid(vec![
        prefiq_data::entity::repo::FieldError {
            pointer: "/entities".into(),
            code: "invalid",
            message,
        },
    ]))
}

/// What the stream needs per event.
struct Listener {
    scope: TenantScope,
    repository: Arc<Repository>,
    /// `None`: every entity, each checked on first sight.
    only: Option<Vec<String>>,
    /// Whether the caller may read an entity, by name.
    readable: HashMap<String, bool>,
}

impl Listener {
    /// The event as the caller may see it, or `None`.
    async fn visible(&mut self, event: &Event) -> Option<SseEvent> {
        if event.tenant != self.scope.tenant() {
            return None;
        }
        if let Some(only) = &self.only
            && !only.contains(&event.entity)
        {
            return None;
        }
        if !self.readable.contains_key(&event.entity) {
            let may = self
                .repository
                .check_route(&self.scope, &event.entity, "read")
                .await
                .is_ok();
            if self.readable.len() > 10_000 {
                self.readable.clear();
            }
            self.readable.insert(event.entity.clone(), may);
        }
        if self.readable.get(&event.entity) != Some(&true) {
            return None;
        }
        let data = if event.action == "deleted" {
            serde_json::Value::Null
        } else {
            match self
                .repository
                .get(&self.scope, &event.entity, &event.record_id)
                .await
            {
                Ok(record) => record,
                // Deleted since, or not readable by this caller: nothing to show.
                Err(_) => return None,
            }
        };
        let body = json!({
            "id": event.id,
            "entity": event.entity,
            "record_id": event.record_id,
            "action": event.action,
            "occurred_at": event.occurred_at,
            "trace_id": event.trace_id,
            "data": data,
        });
        Some(
            SseEvent::default()
                .id(event.id.clone())
                .event(event.name())
                .data(body.to_string()),
        )
    }
}

/// `GET /api/v1/events/stream`.
pub async fn stream(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Problem> {
    if context.principal.is_none() {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Unauthenticated,
            "sign in first: send `Authorization: Bearer <token>`",
        )));
    }
    let scope = TenantScope::new(&context).map_err(Problem::from)?;
    let repository = state
        .services
        .get::<Repository>("events stream")
        .map_err(Problem::from)?;
    let only = match query
        .entities
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        None => None,
        Some(list) => {
            let names: Vec<String> = list.split(',').map(|n| n.trim().to_owned()).collect();
            if names.len() > MAX_ENTITIES {
                return Err(invalid(format!("at most {MAX_ENTITIES} entities")));
            }
            for name in &names {
                // An unknown entity is a 404, one the caller may not read a 403.
                repository
                    .check_route(&scope, name, "read")
                    .await
                    .map_err(Problem::from)?;
            }
            Some(names)
        }
    };
    let bus = state
        .services
        .get::<EventBus>("events stream")
        .map_err(Problem::from)?;
    let listener = Listener {
        scope,
        repository,
        only,
        readable: HashMap::new(),
    };
    let events = futures_util::stream::unfold(
        (bus.listen(), listener),
        |(mut receiver, mut listener)| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => {
                        if let Some(sse) = listener.visible(&event).await {
                            return Some((Ok(sse), (receiver, listener)));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        // Too slow a reader: say how many were lost, and go on.
                        let sse = SseEvent::default()
                            .event("lagged")
                            .data(json!({"missed": missed}).to_string());
                        return Some((Ok(sse), (receiver, listener)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
