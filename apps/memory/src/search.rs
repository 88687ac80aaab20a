//! Retrieval: the vector and keyword retrievers, their fusion, the priority decay, and
//! the caller's permissions, which every result passes before its text is shown.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use prefiq_data::entity::repo::{ListQuery, RepoError, TenantScope};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Fusion;
use crate::error::MemoryError;
use crate::filters::Filters;
use crate::service::{ENTITY, Memory};
use crate::store::{self, MetaRow};

/// The most results a search returns.
pub const MAX_LIMIT: usize = 100;

/// How a search ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Both retrievers, fused by reciprocal rank.
    Hybrid,
    /// Nearest vectors only.
    Vector,
    /// BM25 only.
    Keyword,
}

impl Mode {
    /// The mode named `name`.
    pub fn parse(name: &str) -> Option<Mode> {
        match name {
            "hybrid" => Some(Mode::Hybrid),
            "vector" => Some(Mode::Vector),
            "keyword" => Some(Mode::Keyword),
            _ => None,
        }
    }
}

/// A search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The query text.
    pub query: String,
    /// How many results.
    pub limit: usize,
    /// How to rank.
    pub mode: Mode,
    /// Which items.
    pub filters: Filters,
}

/// One result.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    /// The item's id (`{entity}:{id}` for a record).
    pub id: String,
    /// Its text, as the caller may read it now.
    pub text: String,
    /// Its score: higher is better.
    pub score: f64,
    /// `hot`, `warm` or `cold`.
    pub tier: String,
    /// Its kind.
    pub kind: String,
    /// Its subject.
    pub subject: Option<String>,
    /// When it happened (RFC 3339).
    pub occurred_at: String,
    /// The record it follows, for `record` items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
}

/// What a search did, beside its results.
#[derive(Debug, Clone)]
pub struct SearchOutcome {
    /// The results, best first.
    pub hits: Vec<SearchHit>,
    /// The mode it ran in (`keyword` when asked for `hybrid` without a model).
    pub mode: Mode,
}

/// How many candidates each retriever gives for `limit` results.
fn candidates(limit: usize) -> usize {
    (limit * 4).clamp(40, 400)
}

impl Memory {
    /// Searches the caller's memory.
    pub async fn search(
        &self,
        caller: &TenantScope,
        request: &SearchRequest,
    ) -> Result<SearchOutcome, MemoryError> {
        let repository = self.repository()?;
        repository.check_route(caller, ENTITY, "read").await?;
        let mode = match (request.mode, self.model().is_some()) {
            (Mode::Vector, false) => {
                return Err(MemoryError::invalid(
                    "/mode",
                    "unavailable",
                    format!(
                        "vector search needs an embedding model; memory is keyword-only: {}",
                        self.keyword_only_reason().unwrap_or("no model")
                    ),
                ));
            }
            (Mode::Hybrid, false) => Mode::Keyword,
            (mode, _) => mode,
        };
        let n = candidates(request.limit);
        let vector_ranked = if mode == Mode::Keyword {
            Vec::new()
        } else {
            self.vector_candidates(caller, &request.query, &request.filters, n)
                .await?
        };
        let keyword_ranked = if mode == Mode::Vector {
            Vec::new()
        } else {
            crate::keyword::keyword_ranked(repository, caller, &request.query, &request.filters, n)
                .await?
        };
        let fused: Vec<(i64, f64)> = match mode {
            Mode::Vector => vector_ranked,
            Mode::Keyword => keyword_ranked,
            Mode::Hybrid => match self.config.fusion {
                Fusion::Rrf => fuse(
                    &vector_ranked,
                    &keyword_ranked,
                    self.config.fusion_k,
                    self.config.keyword_weight,
                ),
                Fusion::Convex => {
                    combine(&vector_ranked, &keyword_ranked, self.config.keyword_weight)
                }
            },
        };
        // Decay and permissions are applied to more candidates than asked for, so that
        // refused or reordered items still leave `limit` results.
        let shortlist: Vec<(i64, f64)> = fused.into_iter().take(n).collect();
        let keys: Vec<i64> = shortlist.iter().map(|(k, _)| *k).collect();
        let (rows, hot) = self.rows(caller, &keys).await?;
        let now = jiff::Timestamp::now().as_millisecond();
        let half_life_ms = self.config.half_life_days * 86_400_000.0;
        let mut scored: Vec<(Arc<MetaRow>, f64)> = shortlist
            .into_iter()
            .filter_map(|(key, score)| {
                let row = rows.get(&key)?.clone();
                // A row filtered out by its current values (it changed after the index
                // saw it) does not count.
                if !request.filters.matches(&crate::filters::Facts {
                    kind: row.kind.clone(),
                    subject: row.subject.clone(),
                    tags: row.tags.clone(),
                    occurred_at_ms: row.occurred_at_ms,
                }) {
                    return None;
                }
                let idle_ms = (now - row.last_used_ms).max(0) as f64;
                let priority = row.priority_permille as f64 / 1000.0;
                let decayed = priority * 0.5f64.powf(idle_ms / half_life_ms);
                Some((row, score * (1.0 + self.config.priority_weight * decayed)))
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.key.cmp(&b.0.key)));
        let texts = self.readable(caller, &scored).await?;
        let mut hits = Vec::with_capacity(request.limit);
        let mut used = Vec::new();
        for (row, score) in scored {
            if hits.len() == request.limit {
                break;
            }
            let Some(text) = texts.get(&row.key) else {
                continue;
            };
            hits.push(SearchHit {
                id: row.item_id.clone(),
                text: text.clone(),
                score,
                tier: if hot.contains(&row.key) && row.tier == "warm" {
                    "hot".to_owned()
                } else {
                    row.tier.clone()
                },
                kind: row.kind.clone(),
                subject: row.subject.clone(),
                occurred_at: jiff::Timestamp::from_millisecond(row.occurred_at_ms)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                source: (row.kind == "record")
                    .then(|| {
                        row.source
                            .as_ref()
                            .map(|(e, i)| json!({"entity": e, "id": i}))
                    })
                    .flatten(),
            });
            used.push(row);
        }
        self.used(caller, &used);
        metrics::counter!("memory_searches_total", "mode" => mode_name(mode)).increment(1);
        Ok(SearchOutcome { hits, mode })
    }

    /// The nearest items by vector, passing `filters`: `(key, similarity)`, best first.
    async fn vector_candidates(
        &self,
        scope: &TenantScope,
        query: &str,
        filters: &Filters,
        n: usize,
    ) -> Result<Vec<(i64, f64)>, MemoryError> {
        let (Some(indexes), Some(vector)) = (self.indexes(), self.query_vector(query).await?)
        else {
            return Ok(Vec::new());
        };
        // A query without a known token embeds to zero: nothing is near it.
        if vector.iter().all(|x| *x == 0.0) {
            return Ok(Vec::new());
        }
        let slot = indexes.current(self.repository()?, scope).await?;
        let index = slot.read().await;
        let Some(index) = index.as_ref() else {
            return Ok(Vec::new());
        };
        let hits = index
            .search(&vector, n, filters)
            .map_err(MemoryError::Index)?;
        Ok(hits
            .into_iter()
            .map(|h| (h.key as i64, f64::from(h.similarity)))
            .collect())
    }

    /// The text of each of these items that the caller may read now: a `memory_item`
    /// through the entity's read rules (owner rules, hidden fields), a record through
    /// its own entity's. Items the caller may not read are left out.
    async fn readable(
        &self,
        caller: &TenantScope,
        rows: &[(Arc<MetaRow>, f64)],
    ) -> Result<HashMap<i64, String>, MemoryError> {
        let repository = self.repository()?;
        let registry = repository.registry();
        let mut out = HashMap::new();
        let mut items: Vec<&MetaRow> = Vec::new();
        let mut records: HashMap<String, Vec<&MetaRow>> = HashMap::new();
        for (row, _) in rows {
            match (&row.kind[..], &row.source) {
                ("record", Some((entity, _))) if row.item_id.contains(':') => {
                    records.entry(entity.clone()).or_default().push(row);
                }
                _ => items.push(row),
            }
        }
        if !items.is_empty() {
            let ids: Vec<&str> = items.iter().map(|r| r.item_id.as_str()).collect();
            let allowed = list_texts(repository, caller, ENTITY, &ids, &["text"]).await?;
            for row in items {
                if let Some(text) = allowed.get(&row.item_id) {
                    out.insert(row.key, text.clone());
                }
            }
        }
        for (entity, rows) in records {
            let Some(schema) = registry.get_for(Some(caller.tenant()), &entity) else {
                continue;
            };
            let Some(spec) = schema.memory.clone() else {
                continue;
            };
            let ids: Vec<&str> = rows
                .iter()
                .filter_map(|r| r.source.as_ref().map(|(_, id)| id.as_str()))
                .collect();
            let fields: Vec<&str> = spec.fields.iter().map(String::as_str).collect();
            let allowed = match list_texts(repository, caller, &entity, &ids, &fields).await {
                Ok(allowed) => allowed,
                // The caller may not read the entity at all: none of its records.
                Err(MemoryError::Repo(RepoError::Forbidden { .. })) => continue,
                Err(e) => return Err(e),
            };
            for row in rows {
                if let Some((_, id)) = &row.source
                    && let Some(text) = allowed.get(id)
                {
                    out.insert(row.key, text.clone());
                }
            }
        }
        Ok(out)
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Hybrid => "hybrid",
        Mode::Vector => "vector",
        Mode::Keyword => "keyword",
    }
}

/// The text of each of these records of `entity` that the caller may read, by id: the
/// named fields the caller sees, joined. A record whose fields are all hidden from the
/// caller is left out.
async fn list_texts(
    repository: &prefiq_data::entity::repo::Repository,
    caller: &TenantScope,
    entity: &str,
    ids: &[&str],
    fields: &[&str],
) -> Result<HashMap<String, String>, MemoryError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(store::MAX_KEYS) {
        let mut wanted: Vec<String> = vec!["id".into()];
        wanted.extend(fields.iter().map(|f| (*f).to_owned()));
        let page = repository
            .list(
                caller,
                entity,
                &ListQuery {
                    fields: wanted,
                    filters: Some(json!([["id", "in", chunk]])),
                    // By id, so that SQLite looks each id up by the primary key: the
                    // default order (newest first) walked the whole tenant's index
                    // instead, 14 ms a search at 100,000 items.
                    order_by: Some("id asc".into()),
                    limit: Some(chunk.len().max(1) as u32),
                    ..ListQuery::default()
                },
            )
            .await?;
        for record in page.data {
            let Some(id) = record.get("id").and_then(Value::as_str) else {
                continue;
            };
            let parts: Vec<&str> = fields
                .iter()
                .filter_map(|f| record.get(*f).and_then(Value::as_str))
                .filter(|t| !t.is_empty())
                .collect();
            if !parts.is_empty() {
                out.insert(id.to_owned(), parts.join(" — "));
            }
        }
    }
    Ok(out)
}

/// Reciprocal-rank fusion of two rankings: each item scores the sum of
/// `weight / (k + rank)` over the rankings it is in (the vector ranking's weight is 1).
pub fn fuse(
    vector: &[(i64, f64)],
    keyword: &[(i64, f64)],
    k: f64,
    keyword_weight: f64,
) -> Vec<(i64, f64)> {
    let mut scores: HashMap<i64, f64> = HashMap::new();
    for (list, weight) in [(vector, 1.0), (keyword, keyword_weight)] {
        let mut seen = HashSet::new();
        for (rank, (key, _)) in list.iter().enumerate() {
            if seen.insert(*key) {
                *scores.entry(*key).or_default() += weight / (k + rank as f64 + 1.0);
            }
        }
    }
    let mut fused: Vec<(i64, f64)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused
}

/// A convex combination of two scored rankings: each score divided by its ranking's
/// best (so a keyword match that every candidate shares, such as a person's name, adds
/// the same to all of them and leaves their order to the vectors, while a rare identifier
/// matched by one item lifts that item alone), then `(1 − keyword_weight) × vector +
/// keyword_weight × keyword`; an item missing from a ranking scores 0 in it.
pub fn combine(
    vector: &[(i64, f64)],
    keyword: &[(i64, f64)],
    keyword_weight: f64,
) -> Vec<(i64, f64)> {
    let best = |list: &[(i64, f64)]| {
        list.iter()
            .map(|(_, s)| *s)
            .fold(f64::MIN, f64::max)
            .max(f64::MIN_POSITIVE)
    };
    let (vector_best, keyword_best) = (best(vector), best(keyword));
    let mut scores: HashMap<i64, f64> = HashMap::new();
    for (list, weight, top) in [
        (vector, 1.0 - keyword_weight, vector_best),
        (keyword, keyword_weight, keyword_best),
    ] {
        let mut seen = HashSet::new();
        for (key, score) in list {
            if seen.insert(*key) {
                *scores.entry(*key).or_default() += weight * (score.max(0.0) / top);
            }
        }
    }
    let mut fused: Vec<(i64, f64)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(vector: &[i64], keyword: &[i64], expected: &[i64]) {
        let v: Vec<(i64, f64)> = vector.iter().map(|k| (*k, 0.0)).collect();
        let w: Vec<(i64, f64)> = keyword.iter().map(|k| (*k, 0.0)).collect();
        let got: Vec<i64> = fuse(&v, &w, 60.0, 1.0)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(got, expected, "fuse({vector:?}, {keyword:?})");
    }

    #[test]
    fn fusion_rewards_agreement_then_rank() {
        check(&[], &[], &[]);
        check(&[1, 2, 3], &[], &[1, 2, 3]);
        check(&[], &[3, 2], &[3, 2]);
        // 1 and 3 tie (1/61 + 1/63), just above 2 (2/62); ties go by key.
        check(&[1, 2, 3], &[3, 2, 1], &[1, 3, 2]);
        check(&[1, 2], &[2, 5], &[2, 1, 5]);
        check(&[7, 8, 9], &[9], &[9, 7, 8]);
        check(&[1, 1, 2], &[], &[1, 2]);
    }

    /// Combines scored rankings half and half and compares the order.
    fn check_combined(vector: &[(i64, f64)], keyword: &[(i64, f64)], expected: &[i64]) {
        let got: Vec<i64> = combine(vector, keyword, 0.5)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(got, expected, "combine({vector:?}, {keyword:?})");
    }

    #[test]
    fn a_keyword_match_all_share_leaves_the_order_to_the_vectors() {
        check_combined(&[], &[], &[]);
        check_combined(&[(1, 0.9), (2, 0.5)], &[], &[1, 2]);
        // Every candidate matched the name equally: the vectors decide.
        check_combined(
            &[(2, 0.7), (1, 0.4), (3, 0.3)],
            &[(1, 5.0), (2, 5.0), (3, 4.9)],
            &[2, 1, 3],
        );
        // A rare identifier matched by one item lifts it over better vectors.
        check_combined(
            &[(1, 0.6), (2, 0.5), (3, 0.45)],
            &[(3, 12.0), (1, 2.0)],
            &[3, 1, 2],
        );
        // Negative scores count as 0.
        check_combined(&[(1, -0.2), (2, 0.1)], &[], &[2, 1]);
    }

    #[test]
    fn candidates_are_bounded() {
        assert_eq!(candidates(1), 40);
        assert_eq!(candidates(50), 200);
        assert_eq!(candidates(100), 400);
    }
}
