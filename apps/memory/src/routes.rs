//! The memory API under `/api/v1/memory`: items (add, add many, read, forget, restore),
//! search, context packing and stats. Every route acts as the signed-in caller: writes
//! go through the entity pipeline (authorized, audited), reads through the entity's read
//! rules.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use prefiq::{Context, ErrorKind, KernelError};
use prefiq_data::entity::repo::TenantScope;
use prefiq_http::{HttpState, Problem};
use serde_json::{Map, Value, json};

use crate::context::{MAX_BUDGET_TOKENS, pack};
use crate::error::MemoryError;
use crate::filters::Filters;
use crate::items::{self, MAX_BATCH, MAX_QUERY_BYTES};
use crate::search::{MAX_LIMIT, Mode, SearchRequest};
use crate::service::{ENTITY, Memory, model_id};
use crate::{idempotency, store};

// Problems are returned by value on the cold error path, as in prefiq-http's handlers.
#[allow(clippy::result_large_err)]
fn caller(state: &HttpState, context: &Context) -> Result<(TenantScope, Arc<Memory>), Problem> {
    if context.principal.is_none() {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Unauthenticated,
            "sign in first: send `Authorization: Bearer <token>`",
        )));
    }
    let scope = TenantScope::new(context).map_err(Problem::from)?;
    let memory = state
        .services
        .get::<Memory>("memory routes")
        .map_err(Problem::from)?;
    Ok((scope, memory))
}

#[allow(clippy::result_large_err)]
fn object(body: &Bytes, shape: &str) -> Result<Map<String, Value>, Problem> {
    prefiq_http::json_object(body).map_err(|e| {
        Problem::from(MemoryError::invalid(
            "",
            "invalid_json",
            format!("the body must be {shape}: {e}"),
        ))
    })
}

#[allow(clippy::result_large_err)]
fn only(body: &Map<String, Value>, fields: &[&str]) -> Result<(), Problem> {
    match body.keys().find(|k| !fields.contains(&k.as_str())) {
        Some(unknown) => Err(Problem::from(MemoryError::invalid(
            format!("/{unknown}"),
            "unknown_field",
            format!(
                "`{unknown}` is not a field here; fields are {}",
                fields.join(", ")
            ),
        ))),
        None => Ok(()),
    }
}

/// The longest `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 200;

/// The request's `Idempotency-Key`, checked.
#[allow(clippy::result_large_err)]
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY => Ok(Some(key.to_owned())),
        _ => Err(Problem::new(StatusCode::BAD_REQUEST).with_detail(format!(
            "`Idempotency-Key` is 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
        ))),
    }
}

/// Runs a write once per `Idempotency-Key` of the caller (for a day): a repeat gets the
/// first answer again instead of a second write.
async fn once(
    memory: &Memory,
    scope: &TenantScope,
    context: &Context,
    key: Option<String>,
    write: impl std::future::Future<Output = Result<Value, Problem>>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let repository = memory.repository().map_err(Problem::from)?;
    let user = context.user.clone().unwrap_or_default();
    if let Some(key) = &key
        && let Some(stored) = idempotency::idempotent_answer(repository, scope, &user, key)
            .await
            .map_err(Problem::from)?
        && let Ok(answer) = serde_json::from_str::<Value>(&stored)
    {
        // The first answer again, unless its item has been forgotten since: then the key
        // is spent and the write runs anew.
        let first = answer
            .get("id")
            .or_else(|| answer.pointer("/data/0/id"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if repository.get(scope, ENTITY, first).await.is_ok() {
            return Ok((StatusCode::CREATED, Json(answer)));
        }
    }
    let answer = write.await?;
    if let Some(key) = &key {
        let now = jiff::Timestamp::now().as_millisecond();
        idempotency::remember_answer(repository, scope, &user, key, &answer.to_string(), now)
            .await
            .map_err(Problem::from)?;
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `POST /api/v1/memory/items`: 201 with the stored item. With an `Idempotency-Key`, a
/// repeat within a day answers the first item again and stores nothing.
pub async fn add(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let (scope, memory) = caller(&state, &context)?;
    let key = idempotency_key(&headers)?;
    let item = Value::Object(object(&body, "a memory item")?);
    let key = key.map(|k| format!("item:{k}"));
    once(&memory, &scope, &context, key, async {
        let mut stored = memory
            .add(&scope, std::slice::from_ref(&item), |_| String::new())
            .await
            .map_err(Problem::from)?;
        Ok(stored.pop().unwrap_or(Value::Null))
    })
    .await
}

/// `POST /api/v1/memory/items/batch`: `{items: [...]}`, at most 500; 201 with
/// `{data: [...]}` in the order given. A bad item writes none.
pub async fn add_many(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let (scope, memory) = caller(&state, &context)?;
    let key = idempotency_key(&headers)?;
    let body = object(&body, "{items: [...]}")?;
    only(&body, &["items"])?;
    let items = match body.get("items") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_BATCH => items,
        Some(Value::Array(items)) => {
            return Err(Problem::from(MemoryError::invalid(
                "/items",
                "out_of_range",
                format!(
                    "a batch holds between 1 and {MAX_BATCH} items, not {}",
                    items.len()
                ),
            )));
        }
        _ => {
            return Err(Problem::from(MemoryError::invalid(
                "/items",
                "required",
                "`items` is a list of memory items",
            )));
        }
    };
    let key = key.map(|k| format!("batch:{k}"));
    once(&memory, &scope, &context, key, async {
        let stored = memory
            .add(&scope, items, |i| format!("/items/{i}"))
            .await
            .map_err(Problem::from)?;
        Ok(json!({ "data": stored }))
    })
    .await
}

/// `GET /api/v1/memory/items/{id}`: the item, as the caller may read it.
pub async fn get(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let (scope, memory) = caller(&state, &context)?;
    let repository = memory.repository().map_err(Problem::from)?;
    let record = repository
        .get(&scope, ENTITY, &id)
        .await
        .map_err(Problem::from)?;
    let tier = store::row_of(repository, &scope, &id)
        .await
        .map_err(Problem::from)?
        .map_or_else(|| "warm".to_owned(), |r| r.tier);
    Ok(Json(items::to_api(&record, &tier)))
}

/// `DELETE /api/v1/memory/items/{id}`: 204. The item leaves every tier and the index at
/// once; the audit log keeps only the hash of its text.
pub async fn forget(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let (scope, memory) = caller(&state, &context)?;
    let repository = memory.repository().map_err(Problem::from)?;
    repository
        .delete(&scope, ENTITY, &id)
        .await
        .map_err(Problem::from)?;
    memory.unindex(&scope, &id).await.map_err(Problem::from)?;
    if let Some(schema) = repository.registry().get_for(Some(scope.tenant()), ENTITY) {
        store::erase_item_text(repository, &scope, schema.table(), &id)
            .await
            .map_err(Problem::from)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/memory/items/{id}/restore`: brings a cold item back to the warm tier
/// (and the index); the item. Needs `update` on it.
pub async fn restore(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let (scope, memory) = caller(&state, &context)?;
    let repository = memory.repository().map_err(Problem::from)?;
    repository
        .check_route(&scope, ENTITY, "update")
        .await
        .map_err(Problem::from)?;
    let record = repository
        .get(&scope, ENTITY, &id)
        .await
        .map_err(Problem::from)?;
    let key = store::key_of(repository, &scope, &id)
        .await
        .map_err(Problem::from)?;
    if let Some(key) = key {
        memory.restore(&scope, key).await.map_err(Problem::from)?;
    }
    Ok(Json(items::to_api(&record, "warm")))
}

#[allow(clippy::result_large_err)]
fn query_of(body: &Map<String, Value>) -> Result<String, Problem> {
    match body.get("query") {
        Some(Value::String(q)) if q.len() > MAX_QUERY_BYTES => {
            Err(Problem::from(MemoryError::invalid(
                "/query",
                "too_long",
                format!("`query` is at most {MAX_QUERY_BYTES} bytes (10 KB)"),
            )))
        }
        Some(Value::String(q)) if !q.trim().is_empty() => Ok(q.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(Problem::from(
            MemoryError::invalid("/query", "required", "`query` is required and not blank"),
        )),
        Some(_) => Err(Problem::from(MemoryError::invalid(
            "/query",
            "wrong_type",
            "`query` is a string",
        ))),
    }
}

#[allow(clippy::result_large_err)]
fn search_request(
    body: &Map<String, Value>,
    default_limit: usize,
) -> Result<SearchRequest, Problem> {
    let query = query_of(body)?;
    let limit = match body.get("limit") {
        None | Some(Value::Null) => default_limit,
        Some(Value::Number(n))
            if n.as_u64()
                .is_some_and(|l| (1..=MAX_LIMIT as u64).contains(&l)) =>
        {
            n.as_u64().unwrap_or(10) as usize
        }
        Some(_) => {
            return Err(Problem::from(MemoryError::invalid(
                "/limit",
                "out_of_range",
                format!("`limit` is an integer from 1 to {MAX_LIMIT}"),
            )));
        }
    };
    let mode = match body.get("mode") {
        None | Some(Value::Null) => Mode::Hybrid,
        Some(Value::String(m)) => Mode::parse(m).ok_or_else(|| {
            Problem::from(MemoryError::invalid(
                "/mode",
                "invalid_option",
                "`mode` is hybrid, vector or keyword",
            ))
        })?,
        Some(_) => {
            return Err(Problem::from(MemoryError::invalid(
                "/mode",
                "wrong_type",
                "`mode` is a string",
            )));
        }
    };
    let as_of = match body.get("as_of") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(_) => {
            return Err(Problem::from(MemoryError::invalid(
                "/as_of",
                "wrong_type",
                "`as_of` is an RFC 3339 time",
            )));
        }
    };
    let filters = Filters::parse(body.get("filters"), as_of)
        .map_err(|e| Problem::from(MemoryError::from(e)))?;
    Ok(SearchRequest {
        query,
        limit,
        mode,
        filters,
    })
}

/// `POST /api/v1/memory/search`: `{query, limit, mode, filters, as_of}` → `{data: [{id,
/// text, score, tier, kind, subject, occurred_at}], mode, model}`, best first.
pub async fn search(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let (scope, memory) = caller(&state, &context)?;
    let body = object(&body, "{query, limit, mode, filters, as_of}")?;
    only(&body, &["query", "limit", "mode", "filters", "as_of"])?;
    let request = search_request(&body, 10)?;
    let outcome = memory
        .search(&scope, &request)
        .await
        .map_err(Problem::from)?;
    Ok(Json(json!({
        "data": outcome.hits,
        "mode": outcome.mode,
        "model": model_id(memory.model()),
    })))
}

/// `POST /api/v1/memory/context`: `{query, budget_tokens, tokenizer, limit, mode,
/// filters, as_of}` → `{text, tokens, items: [{id, tokens}], dropped}`, never over budget.
pub async fn context(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let (scope, memory) = caller(&state, &context)?;
    let body = object(&body, "{query, budget_tokens, tokenizer}")?;
    only(
        &body,
        &[
            "query",
            "budget_tokens",
            "tokenizer",
            "limit",
            "mode",
            "filters",
            "as_of",
        ],
    )?;
    let budget = match body.get("budget_tokens") {
        Some(Value::Number(n))
            if n.as_u64()
                .is_some_and(|b| (1..=MAX_BUDGET_TOKENS as u64).contains(&b)) =>
        {
            n.as_u64().unwrap_or(1) as usize
        }
        _ => {
            return Err(Problem::from(MemoryError::invalid(
                "/budget_tokens",
                "out_of_range",
                format!("`budget_tokens` is an integer from 1 to {MAX_BUDGET_TOKENS}"),
            )));
        }
    };
    let tokenizer = match body.get("tokenizer") {
        None | Some(Value::Null) => "cl100k_base",
        Some(Value::String(t)) if !t.is_empty() && t.len() <= 64 => t.as_str(),
        Some(_) => {
            return Err(Problem::from(MemoryError::invalid(
                "/tokenizer",
                "wrong_type",
                "`tokenizer` is a name such as cl100k_base or o200k_base",
            )));
        }
    };
    let counter = memory.counter(tokenizer).await.map_err(Problem::from)?;
    let request = search_request(&body, 50)?;
    let outcome = memory
        .search(&scope, &request)
        .await
        .map_err(Problem::from)?;
    let packed = tokio::task::spawn_blocking(move || pack(&outcome.hits, budget, counter.as_ref()))
        .await
        .map_err(|e| Problem::from(KernelError::service(ErrorKind::Internal, e.to_string())))?;
    Ok(Json(json!({
        "text": packed.text,
        "tokens": packed.tokens,
        "items": packed.items,
        "dropped": packed.dropped,
        "tokenizer": tokenizer,
    })))
}

/// `GET /api/v1/memory/stats`: items per tier, the index, and the model in use.
pub async fn stats(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
) -> Result<Json<Value>, Problem> {
    let (scope, memory) = caller(&state, &context)?;
    let repository = memory.repository().map_err(Problem::from)?;
    repository
        .check_route(&scope, ENTITY, "read")
        .await
        .map_err(Problem::from)?;
    let (warm, cold, pending) = store::counts(repository, &scope)
        .await
        .map_err(Problem::from)?;
    let (vectors, bytes) = match memory.indexes() {
        Some(indexes) => {
            indexes
                .current(repository, &scope)
                .await
                .map_err(Problem::from)?;
            indexes.size(scope.tenant()).await
        }
        None => (0, 0),
    };
    let model = memory
        .model()
        .map_or(Value::Null, |m| json!({"name": m.id(), "dims": m.dims()}));
    let mut answer = json!({
        "tiers": {"hot": memory.hot_count(scope.tenant()), "warm": warm, "cold": cold},
        "index": {
            "vectors": vectors,
            "bytes": bytes,
            "pending": pending,
            "storage": memory.config.storage,
        },
        "model": model,
        "mode": if memory.model().is_some() { "hybrid" } else { "keyword-only" },
        "tokenizers": tokenizers(&memory.models_dir),
    });
    if let Some(reason) = memory.keyword_only_reason() {
        answer["reason"] = json!(reason);
    }
    Ok(Json(answer))
}

/// The tokenizers context packing takes here: tiktoken's two, and every installed
/// `tokenizer.json`.
fn tokenizers(models_dir: &std::path::Path) -> Vec<String> {
    let mut names = vec!["cl100k_base".to_owned(), "o200k_base".to_owned()];
    for name in prefiq_embed::tokenizers_available(models_dir) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}
