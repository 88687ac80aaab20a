//! `Idempotency-Key` answers: a write of the memory API sent again with its key answers
//! the first result instead of writing twice, for a day (`memory_idempotency`).

use prefiq_data::entity::repo::{RepoError, Repository, TenantScope};
use prefiq_data::entity::sql::{Arg, Sql, SqlType};

use crate::store::{read, text, write};
/// The answer stored for an `Idempotency-Key` of this user, if any.
pub async fn idempotent_answer(
    repository: &Repository,
    scope: &TenantScope,
    user: &str,
    key: &str,
) -> Result<Option<String>, RepoError> {
    let (tenant, user, key) = (scope.tenant().to_owned(), user.to_owned(), key.to_owned());
    let rows = read(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            let u = sql.arg(text(&user));
            let k = sql.arg(text(&key));
            sql.text = format!(
                "SELECT response FROM memory_idempotency WHERE tenant_id = {t} AND user_id = {u} AND key = {k}"
            );
            sql
        },
        &[SqlType::Text],
    )
    .await?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next()?.into_text()))
}

/// Stores the answer to a write sent with an `Idempotency-Key` (the first one stays), and
/// forgets keys older than a day.
pub async fn remember_answer(
    repository: &Repository,
    scope: &TenantScope,
    user: &str,
    key: &str,
    response: &str,
    now_ms: i64,
) -> Result<(), RepoError> {
    let tenant = scope.tenant().to_owned();
    let (user, key, response) = (user.to_owned(), key.to_owned(), response.to_owned());
    write(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let values = [
                text(&tenant),
                text(&user),
                text(&key),
                text(&response),
                Arg::Int(Some(now_ms)),
            ]
            .map(|a| sql.arg(a));
            sql.text = format!(
                "INSERT INTO memory_idempotency (tenant_id, user_id, key, response, created_at) VALUES ({}) ON CONFLICT (tenant_id, user_id, key) DO UPDATE SET response = excluded.response, created_at = excluded.created_at",
                values.join(", ")
            );
            let mut prune = Sql::default();
            let t = prune.arg(text(&tenant));
            let before = prune.arg(Arg::Int(Some(now_ms - 86_400_000)));
            prune.text = format!(
                "DELETE FROM memory_idempotency WHERE tenant_id = {t} AND created_at < {before}"
            );
            vec![sql, prune]
        },
        None,
        |_, _| (),
    )
    .await
}
