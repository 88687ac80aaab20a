//! The cold tier's moves: which warm items are idle, moving them to `memory_cold` (their
//! vectors leave the index, their text stays keyword-searchable) and bringing one back.

use prefiq_data::entity::repo::{RepoError, Repository, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Sql, SqlType};

use crate::store::{MAX_KEYS, change, read, text, write};

/// Up to `limit` warm items idle since before `idle_before_ms`: their keys.
pub async fn idle(
    repository: &Repository,
    scope: &TenantScope,
    idle_before_ms: i64,
    limit: usize,
) -> Result<Vec<i64>, RepoError> {
    let tenant = scope.tenant().to_owned();
    let limit = limit.min(MAX_KEYS) as i64;
    let rows = read(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            let b = sql.arg(Arg::Int(Some(idle_before_ms)));
            let l = sql.arg(Arg::Int(Some(limit)));
            sql.text = format!(
                "SELECT key FROM memory_meta WHERE tenant_id = {t} AND tier = 'warm' AND last_used_at < {b} ORDER BY last_used_at LIMIT {l}"
            );
            sql
        },
        &[SqlType::Int],
    )
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.first().and_then(Cell::as_int))
        .collect())
}

/// Moves these warm items to the cold tier: their vectors go to `memory_cold` (and leave
/// the index), their text stays keyword-searchable.
pub async fn to_cold(
    repository: &Repository,
    scope: &TenantScope,
    keys: &[i64],
    now_ms: i64,
) -> Result<(), RepoError> {
    let tenant = scope.tenant().to_owned();
    let keys: Vec<i64> = keys.iter().take(MAX_KEYS).copied().collect();
    write(
        repository,
        scope,
        move |_| {
            let mut statements = Vec::new();
            for key in &keys {
                let mut sql = Sql::default();
                let n = sql.arg(Arg::Int(Some(now_ms)));
                let t = sql.arg(text(&tenant));
                let k = sql.arg(Arg::Int(Some(*key)));
                sql.text = format!(
                    "INSERT INTO memory_cold (key, tenant_id, item_id, model, vector, archived_at) \
                     SELECT key, tenant_id, item_id, model, vector, {n} FROM memory_meta WHERE tenant_id = {t} AND key = {k} AND tier = 'warm'"
                );
                statements.push(sql);
                let mut sql = Sql::default();
                let t = sql.arg(text(&tenant));
                let k = sql.arg(Arg::Int(Some(*key)));
                sql.text = format!(
                    "UPDATE memory_meta SET tier = 'cold', vector = NULL, model = NULL WHERE tenant_id = {t} AND key = {k}"
                );
                statements.push(sql);
                statements.push(change(&tenant, *key, "remove"));
            }
            statements
        },
        None,
        |_, _| (),
    )
    .await
}

/// Brings a cold item back: its vector (when it was made by `model`) returns to the row
/// and the index; otherwise the embedding job makes it again. Returns whether it was cold.
pub async fn restore(
    repository: &Repository,
    scope: &TenantScope,
    key: i64,
    model: &str,
    now_ms: i64,
) -> Result<bool, RepoError> {
    let tenant = scope.tenant().to_owned();
    let model = model.to_owned();
    write(
        repository,
        scope,
        move |_| {
            let mut statements = Vec::new();
            let mut sql = Sql::default();
            let m = sql.arg(text(&model));
            let n = sql.arg(Arg::Int(Some(now_ms)));
            let t = sql.arg(text(&tenant));
            let k = sql.arg(Arg::Int(Some(key)));
            sql.text = format!(
                "UPDATE memory_meta SET tier = 'warm', last_used_at = {n}, \
                 vector = (SELECT c.vector FROM memory_cold c WHERE c.tenant_id = {t} AND c.key = {k} AND c.model = {m}), \
                 model = (SELECT c.model FROM memory_cold c WHERE c.tenant_id = {t} AND c.key = {k} AND c.model = {m}) \
                 WHERE tenant_id = {t} AND key = {k} AND tier = 'cold'"
            );
            statements.push(sql);
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            let k = sql.arg(Arg::Int(Some(key)));
            sql.text = format!("DELETE FROM memory_cold WHERE tenant_id = {t} AND key = {k}");
            statements.push(sql);
            statements.push(change(&tenant, key, "add"));
            statements
        },
        None,
        |counts, _| counts.first().copied().unwrap_or(0) > 0,
    )
    .await
}
