//! The module's own tables beside the `memory_item` entity:
//!
//! - `memory_meta`: one row per searchable item (a `memory_item`, or a record of an entity
//!   that declares `memory`), with its text, the fields searches filter on, its use and
//!   tier, and its vector once the embedding job has made it. Its text is indexed for
//!   keyword search: FTS5 (BM25) on SQLite, a `tsvector` column on PostgreSQL.
//! - `memory_changes`: every vector added to or removed from a tenant's index, numbered,
//!   so each process's in-memory index catches up with changes other processes made.
//! - `memory_cold`: the vectors of items moved to the cold tier.
//!
//! All three hold tenant rows under row-level security on PostgreSQL, and in `database`
//! tenancy live in each tenant's database.

use prefiq::Backend;
use prefiq_data::entity::repo::{RepoError, Repository, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};

/// The migration of the tables.
pub fn migration() -> prefiq::Migration {
    prefiq::Migration::per_backend(
        "0001_memory_store",
        include_str!("store_sqlite.sql"),
        include_str!("store_postgres.sql"),
    )
}

/// The most rows one statement reads or writes by key.
pub const MAX_KEYS: usize = 500;

/// An item as the search index keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaRow {
    /// Its key in the index (the row's integer key).
    pub key: i64,
    /// The item's id: a `memory_item` id, or `{entity}:{id}` for a record.
    pub item_id: String,
    /// `episode`, `fact`, `note` or `record`.
    pub kind: String,
    /// Who or what it is about.
    pub subject: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its text.
    pub text: String,
    /// When it happened (unix milliseconds).
    pub occurred_at_ms: i64,
    /// Its priority in thousandths (0 to 1000).
    pub priority_permille: i64,
    /// When it was last used (unix milliseconds).
    pub last_used_ms: i64,
    /// `warm` or `cold`.
    pub tier: String,
    /// The record it comes from.
    pub source: Option<(String, String)>,
}

/// What the index writes for a new or changed item.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMeta {
    /// The item's id.
    pub item_id: String,
    /// Its kind.
    pub kind: String,
    /// Its subject.
    pub subject: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its text.
    pub text: String,
    /// When it happened (unix milliseconds).
    pub occurred_at_ms: i64,
    /// Priority in thousandths.
    pub priority_permille: i64,
    /// The record it comes from.
    pub source: Option<(String, String)>,
    /// The user who wrote it.
    pub created_by: Option<String>,
    /// Now (unix milliseconds): its first use.
    pub now_ms: i64,
}

/// Tags as stored: `|a|b|`, so that one tag is matched exactly with `LIKE '%|a|%'` and
/// the keyword index sees each tag as a word.
pub fn encode_tags(tags: &[String]) -> String {
    if tags.is_empty() {
        return String::new();
    }
    let mut out = String::from("|");
    for tag in tags {
        out.push_str(&tag.replace('|', " "));
        out.push('|');
    }
    out
}

/// The tags of a stored `|a|b|`.
pub fn decode_tags(stored: &str) -> Vec<String> {
    stored
        .split('|')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A vector as stored: little-endian f32s.
pub fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The vector of stored bytes; `None` when they are not a whole number of f32s.
pub fn decode_vector(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

pub(crate) fn text(value: &str) -> Arg {
    Arg::Text(Some(value.to_owned()))
}

/// The rows one query returned.
type Rows = Vec<Vec<Cell>>;

/// Runs `statements` (built for the connection's backend) in one write transaction.
pub(crate) async fn write<T: Send + 'static>(
    repository: &Repository,
    scope: &TenantScope,
    build: impl Fn(Backend) -> Vec<Sql> + Send + Sync + 'static,
    returning: Option<&'static [SqlType]>,
    finish: fn(Vec<u64>, Vec<Rows>) -> T,
) -> Result<T, RepoError> {
    let build = std::sync::Arc::new(build);
    repository
        .in_transaction(
            scope,
            Box::new(move |conn: &mut Conn<'_>| {
                let build = build.clone();
                Box::pin(async move {
                    let mut counts = Vec::new();
                    let mut rows = Vec::new();
                    for sql in build(conn.backend()) {
                        match returning {
                            Some(types) if sql.text.contains("RETURNING") => {
                                rows.push(conn.fetch(&sql, types).await?);
                            }
                            _ => counts.push(conn.execute(&sql).await?),
                        }
                    }
                    Ok(finish(counts, rows))
                })
            }),
        )
        .await
}

/// Runs a query on a reading connection.
pub(crate) async fn read(
    repository: &Repository,
    scope: &TenantScope,
    build: impl Fn(Backend) -> Sql + Send + Sync + 'static,
    types: &'static [SqlType],
) -> Result<Vec<Vec<Cell>>, RepoError> {
    let build = std::sync::Arc::new(build);
    repository
        .read(
            scope,
            Box::new(move |conn: &mut Conn<'_>| {
                let build = build.clone();
                Box::pin(async move {
                    let sql = build(conn.backend());
                    Ok(conn.fetch(&sql, types).await?)
                })
            }),
        )
        .await
}

/// Appends a change of the tenant's index (`add` or `remove` of `key`).
pub(crate) fn change(sql_tenant: &str, key: i64, op: &str) -> Sql {
    let mut sql = Sql::default();
    let values = [text(sql_tenant), Arg::Int(Some(key)), text(op)].map(|a| sql.arg(a));
    sql.text = format!(
        "INSERT INTO memory_changes (tenant_id, key, op) VALUES ({})",
        values.join(", ")
    );
    sql
}

/// Writes an item's row, or changes it. A changed text (or subject) drops the vector, so
/// the embedding job makes it again; the index forgets the old one. Returns the key.
pub async fn upsert(
    repository: &Repository,
    scope: &TenantScope,
    item: &NewMeta,
) -> Result<i64, RepoError> {
    let tenant = scope.tenant().to_owned();
    let item = item.clone();
    write(
        repository,
        scope,
        move |_backend| {
            let mut sql = Sql::default();
            let (source_entity, source_id) = match &item.source {
                Some((e, i)) => (Some(e.clone()), Some(i.clone())),
                None => (None, None),
            };
            let values = [
                text(&tenant),
                text(&item.item_id),
                text(&item.kind),
                Arg::Text(item.subject.clone()),
                text(&encode_tags(&item.tags)),
                text(&item.text),
                Arg::Int(Some(item.occurred_at_ms)),
                Arg::Int(Some(item.priority_permille)),
                Arg::Int(Some(item.now_ms)),
                Arg::Text(source_entity),
                Arg::Text(source_id),
                Arg::Text(item.created_by.clone()),
            ]
            .map(|a| sql.arg(a));
            sql.text = format!(
                "INSERT INTO memory_meta (tenant_id, item_id, kind, subject, tags, text, occurred_at, priority, last_used_at, source_entity, source_id, created_by) \
                 VALUES ({}) ON CONFLICT (tenant_id, item_id) DO UPDATE SET \
                 kind = excluded.kind, tags = excluded.tags, occurred_at = excluded.occurred_at, priority = excluded.priority, \
                 source_entity = excluded.source_entity, source_id = excluded.source_id, \
                 vector = CASE WHEN memory_meta.text = excluded.text AND memory_meta.subject IS NOT DISTINCT FROM excluded.subject THEN memory_meta.vector ELSE NULL END, \
                 model = CASE WHEN memory_meta.text = excluded.text AND memory_meta.subject IS NOT DISTINCT FROM excluded.subject THEN memory_meta.model ELSE NULL END, \
                 text = excluded.text, subject = excluded.subject \
                 RETURNING key",
                values.join(", ")
            );
            vec![sql]
        },
        Some(&[SqlType::Int]),
        |_, rows| {
            rows.into_iter()
                .next()
                .and_then(|r| r.into_iter().next())
                .and_then(|r| r.first().and_then(Cell::as_int))
                .unwrap_or_default()
        },
    )
    .await
}

/// Forgets an item: its row, its cold vector and its place in the index. Returns its key
/// when it had one.
pub async fn remove(
    repository: &Repository,
    scope: &TenantScope,
    item_id: &str,
) -> Result<Option<i64>, RepoError> {
    let key = key_of(repository, scope, item_id).await?;
    let Some(key) = key else { return Ok(None) };
    let tenant = scope.tenant().to_owned();
    write(
        repository,
        scope,
        move |_| {
            let mut statements = Vec::new();
            for table in ["memory_meta", "memory_cold"] {
                let mut sql = Sql::default();
                let t = sql.arg(text(&tenant));
                let k = sql.arg(Arg::Int(Some(key)));
                sql.text = format!("DELETE FROM {table} WHERE tenant_id = {t} AND key = {k}");
                statements.push(sql);
            }
            statements.push(change(&tenant, key, "remove"));
            statements
        },
        None,
        |_, _| (),
    )
    .await?;
    Ok(Some(key))
}

/// The key of an item.
pub async fn key_of(
    repository: &Repository,
    scope: &TenantScope,
    item_id: &str,
) -> Result<Option<i64>, RepoError> {
    let tenant = scope.tenant().to_owned();
    let item_id = item_id.to_owned();
    let rows = read(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            let i = sql.arg(text(&item_id));
            sql.text =
                format!("SELECT key FROM memory_meta WHERE tenant_id = {t} AND item_id = {i}");
            sql
        },
        &[SqlType::Int],
    )
    .await?;
    Ok(rows.first().and_then(|r| r.first()).and_then(Cell::as_int))
}

/// Up to `limit` warm items that have no vector yet: `(key, text)`, oldest first.
pub async fn pending(
    repository: &Repository,
    scope: &TenantScope,
    limit: usize,
) -> Result<Vec<(i64, String)>, RepoError> {
    let tenant = scope.tenant().to_owned();
    let limit = limit.min(MAX_KEYS) as i64;
    let rows = read(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            let l = sql.arg(Arg::Int(Some(limit)));
            sql.text = format!(
                "SELECT key, coalesce(subject, ''), text FROM memory_meta WHERE tenant_id = {t} AND vector IS NULL AND tier = 'warm' ORDER BY key LIMIT {l}"
            );
            sql
        },
        &[SqlType::Int, SqlType::Text, SqlType::Text],
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let mut r = r.into_iter();
            let key = r.next()?.as_int()?;
            let subject = r.next()?.into_text()?;
            let body = r.next()?.into_text()?;
            Some((key, embedding_text(&subject, &body)))
        })
        .collect())
}

/// What is embedded for an item: its subject and its text.
pub fn embedding_text(subject: &str, body: &str) -> String {
    if subject.is_empty() {
        body.to_owned()
    } else {
        format!("{subject}: {body}")
    }
}

/// Stores the vectors the model made (for rows still without one: a row changed since
/// keeps its new, empty vector) and records them as index changes.
pub async fn store_vectors(
    repository: &Repository,
    scope: &TenantScope,
    model: &str,
    vectors: Vec<(i64, Vec<f32>)>,
) -> Result<(), RepoError> {
    let tenant = scope.tenant().to_owned();
    let model = model.to_owned();
    write(
        repository,
        scope,
        move |_| {
            let mut statements = Vec::new();
            for (key, vector) in &vectors {
                let mut sql = Sql::default();
                let v = sql.arg(Arg::Bytes(Some(encode_vector(vector))));
                let m = sql.arg(text(&model));
                let t = sql.arg(text(&tenant));
                let k = sql.arg(Arg::Int(Some(*key)));
                sql.text = format!(
                    "UPDATE memory_meta SET vector = {v}, model = {m} WHERE tenant_id = {t} AND key = {k} AND vector IS NULL"
                );
                statements.push(sql);
                statements.push(change(&tenant, *key, "add"));
            }
            statements
        },
        None,
        |_, _| (),
    )
    .await
}

/// The newest change number of the tenant's index (0 when none).
pub async fn version(repository: &Repository, scope: &TenantScope) -> Result<i64, RepoError> {
    let tenant = scope.tenant().to_owned();
    let rows = read(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            // One aggregate alone, so that SQLite reads it off the index's end instead of
            // scanning the tenant's changes (with min() beside it, it scanned 100,000).
            sql.text =
                format!("SELECT coalesce(max(seq), 0) FROM memory_changes WHERE tenant_id = {t}");
            sql
        },
        &[SqlType::Int],
    )
    .await?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(Cell::as_int)
        .unwrap_or(0))
}

/// A change of the index: `(seq, key, add)`.
pub type Change = (i64, i64, bool);

/// The tenant's index changes after `after`, oldest first, at most `limit`; and whether
/// the log still reaches back to `after` (older changes are pruned).
pub async fn changes_since(
    repository: &Repository,
    scope: &TenantScope,
    after: i64,
    limit: usize,
) -> Result<(Vec<Change>, bool), RepoError> {
    let tenant = scope.tenant().to_owned();
    let limit = limit as i64;
    let rows = read(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            let a = sql.arg(Arg::Int(Some(after)));
            let l = sql.arg(Arg::Int(Some(limit)));
            sql.text = format!(
                "SELECT seq, key, op FROM memory_changes WHERE tenant_id = {t} AND seq > {a} ORDER BY seq LIMIT {l}"
            );
            sql
        },
        &[SqlType::Int, SqlType::Int, SqlType::Text],
    )
    .await?;
    let changes: Vec<Change> = rows
        .into_iter()
        .filter_map(|r| {
            let mut r = r.into_iter();
            let seq = r.next()?.as_int()?;
            let key = r.next()?.as_int()?;
            let op = r.next()?.into_text()?;
            Some((seq, key, op == "add"))
        })
        .collect();
    let oldest = oldest_change(repository, scope).await?;
    // The log reaches back when nothing after `after` was pruned.
    let complete = after == 0 || oldest.is_none_or(|o| o <= after + 1);
    Ok((changes, complete))
}

async fn oldest_change(
    repository: &Repository,
    scope: &TenantScope,
) -> Result<Option<i64>, RepoError> {
    let tenant = scope.tenant().to_owned();
    let rows = read(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            sql.text = format!("SELECT min(seq) FROM memory_changes WHERE tenant_id = {t}");
            sql
        },
        &[SqlType::Int],
    )
    .await?;
    Ok(rows.first().and_then(|r| r.first()).and_then(Cell::as_int))
}

/// Forgets index changes older than `keep_after`, keeping the newest `keep` of the tenant.
pub async fn prune_changes(
    repository: &Repository,
    scope: &TenantScope,
    keep: i64,
) -> Result<(), RepoError> {
    let tenant = scope.tenant().to_owned();
    let newest = version(repository, scope).await?;
    write(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            let s = sql.arg(Arg::Int(Some(newest - keep)));
            sql.text = format!("DELETE FROM memory_changes WHERE tenant_id = {t} AND seq <= {s}");
            vec![sql]
        },
        None,
        |_, _| (),
    )
    .await
}

const META_COLUMNS: &str = "key, item_id, kind, subject, tags, text, occurred_at, priority, last_used_at, tier, source_entity, source_id";
const META_TYPES: &[SqlType] = &[
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
];

const META_AND_VECTOR_TYPES: &[SqlType] = &[
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Bytes,
];

fn meta_row(row: Vec<Cell>) -> Option<MetaRow> {
    let mut r = row.into_iter();
    let key = r.next()?.as_int()?;
    let item_id = r.next()?.into_text()?;
    let kind = r.next()?.into_text()?;
    let subject = r.next()?.into_text();
    let tags = decode_tags(&r.next()?.into_text().unwrap_or_default());
    let text = r.next()?.into_text().unwrap_or_default();
    let occurred_at_ms = r.next()?.as_int()?;
    let priority_permille = r.next()?.as_int()?;
    let last_used_ms = r.next()?.as_int()?;
    let tier = r.next()?.into_text()?;
    let source_entity = r.next()?.into_text();
    let source_id = r.next()?.into_text();
    Some(MetaRow {
        key,
        item_id,
        kind,
        subject,
        tags,
        text,
        occurred_at_ms,
        priority_permille,
        last_used_ms,
        tier,
        source: source_entity.zip(source_id),
    })
}

/// The rows of these keys (those that still exist), in no particular order.
pub async fn rows(
    repository: &Repository,
    scope: &TenantScope,
    keys: &[i64],
) -> Result<Vec<MetaRow>, RepoError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let tenant = scope.tenant().to_owned();
    let keys: Vec<i64> = keys.iter().take(MAX_KEYS).copied().collect();
    let rows = read(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            let list: Vec<String> = keys.iter().map(|k| sql.arg(Arg::Int(Some(*k)))).collect();
            sql.text = format!(
                "SELECT {META_COLUMNS} FROM memory_meta WHERE tenant_id = {t} AND key IN ({})",
                list.join(", ")
            );
            sql
        },
        META_TYPES,
    )
    .await?;
    Ok(rows.into_iter().filter_map(meta_row).collect())
}

/// The row of one item.
pub async fn row_of(
    repository: &Repository,
    scope: &TenantScope,
    item_id: &str,
) -> Result<Option<MetaRow>, RepoError> {
    match key_of(repository, scope, item_id).await? {
        Some(key) => Ok(rows(repository, scope, &[key]).await?.into_iter().next()),
        None => Ok(None),
    }
}

/// Rows of `META_COLUMNS` then `vector`, decoded; a row whose vector does not decode
/// is left out.
fn with_vectors(rows: Vec<Vec<Cell>>) -> Vec<(MetaRow, Vec<f32>)> {
    rows.into_iter()
        .filter_map(|mut r| {
            let vector = decode_vector(&r.pop()?.into_bytes()?)?;
            Some((meta_row(r)?, vector))
        })
        .collect()
}

/// A page of the tenant's warm rows with vectors of `model`, after `after` by key:
/// `(row, vector)`. The index is built from these.
pub async fn vectors_page(
    repository: &Repository,
    scope: &TenantScope,
    model: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<(MetaRow, Vec<f32>)>, RepoError> {
    let tenant = scope.tenant().to_owned();
    let model = model.to_owned();
    let limit = limit as i64;
    let rows = read(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            let m = sql.arg(text(&model));
            let a = sql.arg(Arg::Int(Some(after)));
            let l = sql.arg(Arg::Int(Some(limit)));
            sql.text = format!(
                "SELECT {META_COLUMNS}, vector FROM memory_meta WHERE tenant_id = {t} AND model = {m} AND tier = 'warm' AND vector IS NOT NULL AND key > {a} ORDER BY key LIMIT {l}"
            );
            sql
        },
        META_AND_VECTOR_TYPES,
    )
    .await?;
    Ok(with_vectors(rows))
}

/// The vectors and rows of these keys (warm, with a vector of `model`).
pub async fn vectors_of(
    repository: &Repository,
    scope: &TenantScope,
    model: &str,
    keys: &[i64],
) -> Result<Vec<(MetaRow, Vec<f32>)>, RepoError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let tenant = scope.tenant().to_owned();
    let model = model.to_owned();
    let keys: Vec<i64> = keys.iter().take(MAX_KEYS).copied().collect();
    let rows = read(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            let m = sql.arg(text(&model));
            let list: Vec<String> = keys.iter().map(|k| sql.arg(Arg::Int(Some(*k)))).collect();
            sql.text = format!(
                "SELECT {META_COLUMNS}, vector FROM memory_meta WHERE tenant_id = {t} AND model = {m} AND tier = 'warm' AND vector IS NOT NULL AND key IN ({})",
                list.join(", ")
            );
            sql
        },
        META_AND_VECTOR_TYPES,
    )
    .await?;
    Ok(with_vectors(rows))
}

/// Counts of the tenant's rows: `(warm, cold, pending)`.
pub async fn counts(
    repository: &Repository,
    scope: &TenantScope,
) -> Result<(i64, i64, i64), RepoError> {
    let tenant = scope.tenant().to_owned();
    let rows = read(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            sql.text = format!(
                "SELECT \
                 coalesce(sum(CASE WHEN tier = 'warm' THEN 1 ELSE 0 END), 0), \
                 coalesce(sum(CASE WHEN tier = 'cold' THEN 1 ELSE 0 END), 0), \
                 coalesce(sum(CASE WHEN tier = 'warm' AND vector IS NULL THEN 1 ELSE 0 END), 0) \
                 FROM memory_meta WHERE tenant_id = {t}"
            );
            sql
        },
        &[SqlType::Int, SqlType::Int, SqlType::Int],
    )
    .await?;
    let row = rows.into_iter().next().unwrap_or_default();
    let n = |i: usize| row.get(i).and_then(Cell::as_int).unwrap_or(0);
    Ok((n(0), n(1), n(2)))
}

/// Records that these items were used now: their priority decays from now on.
pub async fn touch(
    repository: &Repository,
    scope: &TenantScope,
    keys: &[i64],
    now_ms: i64,
) -> Result<(), RepoError> {
    if keys.is_empty() {
        return Ok(());
    }
    let tenant = scope.tenant().to_owned();
    let keys: Vec<i64> = keys.iter().take(MAX_KEYS).copied().collect();
    write(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let n = sql.arg(Arg::Int(Some(now_ms)));
            let t = sql.arg(text(&tenant));
            let list: Vec<String> = keys.iter().map(|k| sql.arg(Arg::Int(Some(*k)))).collect();
            sql.text = format!(
                "UPDATE memory_meta SET last_used_at = {n} WHERE tenant_id = {t} AND key IN ({}) AND last_used_at < {n}",
                list.join(", ")
            );
            vec![sql]
        },
        None,
        |_, _| (),
    )
    .await
}

/// The item ids of the rows that follow records of `entity` with these ids.
pub async fn record_keys(
    repository: &Repository,
    scope: &TenantScope,
    entity: &str,
    record_id: &str,
) -> Result<Vec<String>, RepoError> {
    let tenant = scope.tenant().to_owned();
    let (entity, record_id) = (entity.to_owned(), record_id.to_owned());
    let rows = read(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            let e = sql.arg(text(&entity));
            let i = sql.arg(text(&record_id));
            sql.text = format!(
                "SELECT item_id FROM memory_meta WHERE tenant_id = {t} AND source_entity = {e} AND source_id = {i} AND kind = 'record'"
            );
            sql
        },
        &[SqlType::Text],
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next()?.into_text())
        .collect())
}

/// Erases the text of a forgotten (soft-deleted) `memory_item` row in the entity's table:
/// the row stays as the tombstone the audit log's hashes refer to, without the text.
pub async fn erase_item_text(
    repository: &Repository,
    scope: &TenantScope,
    table: &str,
    item_id: &str,
) -> Result<(), RepoError> {
    let tenant = scope.tenant().to_owned();
    let (table, item_id) = (table.to_owned(), item_id.to_owned());
    write(
        repository,
        scope,
        move |_| {
            let mut sql = Sql::default();
            let t = sql.arg(text(&tenant));
            let i = sql.arg(text(&item_id));
            sql.text = format!(
                "UPDATE {table} SET text = '', metadata = NULL, subject = NULL, tags = NULL WHERE tenant_id = {t} AND id = {i} AND deleted_at IS NOT NULL"
            );
            vec![sql]
        },
        None,
        |_, _| (),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        let check = |tags: &[&str], stored: &str| {
            let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
            assert_eq!(encode_tags(&tags), stored);
            assert_eq!(decode_tags(stored), tags);
        };
        check(&[], "");
        check(&["a"], "|a|");
        check(&["travel", "plans"], "|travel|plans|");
    }

    #[test]
    fn vectors_round_trip() {
        let v = vec![0.5f32, -1.25, 3.0];
        assert_eq!(decode_vector(&encode_vector(&v)), Some(v));
        assert_eq!(decode_vector(&[1, 2, 3]), None);
    }
}
