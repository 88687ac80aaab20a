//! The module's own tables, beside the `webhook` entity: each webhook's secrets (kept out
//! of the record, so never in its outbox event or audit record) and the log of deliveries.
//! Both hold tenant rows under row-level security on PostgreSQL, and in `database`
//! tenancy live in each tenant's database.

use std::sync::Arc;

use prefiq_data::entity::repo::{RepoError, Repository, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};
use serde::Serialize;

/// The migration of both tables.
pub fn migration() -> prefiq::Migration {
    prefiq::Migration::per_backend(
        "0001_webhooks_store",
        include_str!("store_sqlite.sql"),
        include_str!("store_postgres.sql"),
    )
}

/// A webhook's signing secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    /// The current secret (`whsec_…`).
    pub secret: String,
    /// The secret before the last rotation, and when it was rotated (unix seconds).
    pub previous: Option<(String, i64)>,
}

fn text(value: &str) -> Arg {
    Arg::Text(Some(value.to_owned()))
}

/// Stores the first secret of a new webhook.
pub async fn insert_secret(
    repository: &Repository,
    scope: &TenantScope,
    webhook: &str,
    secret: &str,
) -> Result<(), RepoError> {
    let (tenant, webhook, secret) = (
        scope.tenant().to_owned(),
        webhook.to_owned(),
        secret.to_owned(),
    );
    repository
        .in_transaction(
            scope,
            Box::new(move |conn| {
                let mut sql = Sql::default();
                let values = [text(&tenant), text(&webhook), text(&secret)].map(|a| sql.arg(a));
                sql.text = format!(
                    "INSERT INTO webhooks_secret (tenant_id, webhook_id, secret) VALUES ({})",
                    values.join(", ")
                );
                Box::pin(async move {
                    conn.execute(&sql)
                        .await
                        .map(|_| ())
                        .map_err(RepoError::from)
                })
            }),
        )
        .await
}

/// Makes `secret` the current one, keeping the one it replaces as previous from `now`
/// (unix seconds). Returns whether the webhook had secrets.
pub async fn rotate_secret(
    repository: &Repository,
    scope: &TenantScope,
    webhook: &str,
    secret: &str,
    now: i64,
) -> Result<bool, RepoError> {
    let (tenant, webhook, secret) = (
        scope.tenant().to_owned(),
        webhook.to_owned(),
        secret.to_owned(),
    );
    repository
        .in_transaction(
            scope,
            Box::new(move |conn| {
                let mut sql = Sql::default();
                let new = sql.arg(text(&secret));
                let at = sql.arg(Arg::Int(Some(now)));
                let t = sql.arg(text(&tenant));
                let w = sql.arg(text(&webhook));
                sql.text = format!(
                    "UPDATE webhooks_secret SET previous_secret = secret, rotated_at = {at}, secret = {new} WHERE tenant_id = {t} AND webhook_id = {w}"
                );
                Box::pin(async move { Ok(conn.execute(&sql).await? > 0) })
            }),
        )
        .await
}

/// The secrets of a webhook, if it has any.
pub async fn secrets(
    repository: &Repository,
    scope: &TenantScope,
    webhook: &str,
) -> Result<Option<Secrets>, RepoError> {
    let (tenant, webhook) = (scope.tenant().to_owned(), webhook.to_owned());
    repository
        .read(
            scope,
            Box::new(move |conn| {
                let mut sql = Sql::default();
                let t = sql.arg(text(&tenant));
                let w = sql.arg(text(&webhook));
                sql.text = format!(
                    "SELECT secret, previous_secret, rotated_at FROM webhooks_secret WHERE tenant_id = {t} AND webhook_id = {w}"
                );
                Box::pin(async move {
                    let row = conn
                        .fetch_optional(&sql, &[SqlType::Text, SqlType::Text, SqlType::Int])
                        .await?;
                    Ok(row.map(|row| {
                        let mut cells = row.into_iter();
                        let secret = cells.next().and_then(Cell::into_text).unwrap_or_default();
                        let previous = cells.next().and_then(Cell::into_text);
                        let at = cells.next().and_then(|c| c.as_int()).unwrap_or_default();
                        Secrets {
                            secret,
                            previous: previous.map(|p| (p, at)),
                        }
                    }))
                })
            }),
        )
        .await
}

/// One attempt to deliver one event to one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Its id.
    pub id: i64,
    /// The webhook.
    pub webhook_id: String,
    /// The event (its `webhook-id`).
    pub event_id: String,
    /// `entity.action`.
    pub event: String,
    /// The attempt's number, from 1.
    pub attempt: i64,
    /// `succeeded` or `failed`.
    pub status: String,
    /// The receiver's status code, if it answered.
    pub response_code: Option<i64>,
    /// How long the attempt took.
    pub duration_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

/// Records an attempt (`payload`: the body sent, kept for redelivery).
pub async fn record(
    repository: &Repository,
    scope: &TenantScope,
    delivery: &Delivery,
    payload: &str,
) -> Result<(), RepoError> {
    let (tenant, delivery, payload) = (
        scope.tenant().to_owned(),
        delivery.clone(),
        payload.to_owned(),
    );
    repository
        .in_transaction(
            scope,
            Box::new(move |conn| {
                let mut sql = Sql::default();
                let values = [
                    text(&tenant),
                    text(&delivery.webhook_id),
                    text(&delivery.event_id),
                    text(&delivery.event),
                    Arg::Int(Some(delivery.attempt)),
                    text(&delivery.status),
                    Arg::Int(delivery.response_code),
                    Arg::Int(Some(delivery.duration_ms)),
                    Arg::Text(delivery.error.clone()),
                    text(&payload),
                    text(&delivery.created_at),
                ]
                .map(|a| sql.arg(a));
                sql.text = format!(
                    "INSERT INTO webhooks_delivery (tenant_id, webhook_id, event_id, event, attempt, status, response_code, duration_ms, error, payload, created_at) VALUES ({})",
                    values.join(", ")
                );
                Box::pin(async move {
                    if conn.backend() == prefiq::Backend::Postgres {
                        // The log of an attempt need not wait for its WAL flush: the job's
                        // outcome, written after it, is durable and flushes it too; a crash
                        // in between loses the log line of an attempt that runs again.
                        conn.execute(&Sql::new("SET LOCAL synchronous_commit = off", Vec::new()))
                            .await?;
                    }
                    conn.execute(&sql).await.map(|_| ()).map_err(RepoError::from)
                })
            }),
        )
        .await
}

/// The most deliveries one listing returns.
pub const MAX_LIST: i64 = 500;

/// A webhook's deliveries, newest first, at most `limit`, before the delivery `before`.
pub async fn deliveries(
    repository: &Repository,
    scope: &TenantScope,
    webhook: &str,
    limit: i64,
    before: Option<i64>,
) -> Result<Vec<Delivery>, RepoError> {
    let (tenant, webhook) = (scope.tenant().to_owned(), webhook.to_owned());
    repository
        .read(
            scope,
            Box::new(move |conn| {
                let mut sql = Sql::default();
                let t = sql.arg(text(&tenant));
                let w = sql.arg(text(&webhook));
                let before = before.map_or_else(String::new, |b| {
                    format!(" AND id < {}", sql.arg(Arg::Int(Some(b))))
                });
                let limit = sql.arg(Arg::Int(Some(limit.clamp(1, MAX_LIST))));
                sql.text = format!(
                    "SELECT id, webhook_id, event_id, event, attempt, status, response_code, duration_ms, error, created_at FROM webhooks_delivery WHERE tenant_id = {t} AND webhook_id = {w}{before} ORDER BY id DESC LIMIT {limit}"
                );
                Box::pin(async move { read_deliveries(conn, &sql).await })
            }),
        )
        .await
}

async fn read_deliveries(conn: &mut Conn<'_>, sql: &Sql) -> Result<Vec<Delivery>, RepoError> {
    let types = [
        SqlType::Int,
        SqlType::Text,
        SqlType::Text,
        SqlType::Text,
        SqlType::Int,
        SqlType::Text,
        SqlType::Int,
        SqlType::Int,
        SqlType::Text,
        SqlType::Text,
    ];
    Ok(conn
        .fetch(sql, &types)
        .await?
        .into_iter()
        .map(|row| {
            let mut c = row.into_iter();
            let int = |c: &mut std::vec::IntoIter<Cell>| c.next().and_then(|v| v.as_int());
            let txt = |c: &mut std::vec::IntoIter<Cell>| c.next().and_then(Cell::into_text);
            Delivery {
                id: int(&mut c).unwrap_or_default(),
                webhook_id: txt(&mut c).unwrap_or_default(),
                event_id: txt(&mut c).unwrap_or_default(),
                event: txt(&mut c).unwrap_or_default(),
                attempt: int(&mut c).unwrap_or_default(),
                status: txt(&mut c).unwrap_or_default(),
                response_code: int(&mut c),
                duration_ms: int(&mut c).unwrap_or_default(),
                error: txt(&mut c),
                created_at: txt(&mut c).unwrap_or_default(),
            }
        })
        .collect())
}

/// The body a delivery sent, for redelivery.
pub async fn payload_of(
    repository: &Repository,
    scope: &TenantScope,
    webhook: &str,
    delivery: i64,
) -> Result<Option<String>, RepoError> {
    let (tenant, webhook) = (scope.tenant().to_owned(), webhook.to_owned());
    repository
        .read(
            scope,
            Box::new(move |conn| {
                let mut sql = Sql::default();
                let t = sql.arg(text(&tenant));
                let w = sql.arg(text(&webhook));
                let d = sql.arg(Arg::Int(Some(delivery)));
                sql.text = format!(
                    "SELECT payload FROM webhooks_delivery WHERE tenant_id = {t} AND webhook_id = {w} AND id = {d}"
                );
                Box::pin(async move {
                    Ok(conn
                        .fetch_optional(&sql, &[SqlType::Text])
                        .await?
                        .and_then(|row| row.into_iter().next().and_then(Cell::into_text)))
                })
            }),
        )
        .await
}

/// Shared handle to the repository, set at boot.
pub type RepositoryCell = Arc<std::sync::OnceLock<Arc<Repository>>>;
