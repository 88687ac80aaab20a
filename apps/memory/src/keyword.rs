//! Keyword retrieval: the best keys for a query by BM25 (SQLite FTS5) or `ts_rank_cd`
//! (PostgreSQL), among the rows the filters select.
//!
//! On SQLite, BM25 costs about a microsecond for every row a query matches, and twice
//! that with the join that checks the tenant and the filters. A question of common words
//! ("what did Maria do about the invoice in Lisbon?") matches nearly every row of a large
//! tenant: at 100,000 items it took 80 ms. So the rows scored are bounded
//! ([`SCORED_ROWS_MAX`]):
//!
//! 1. Each phrase's matches are counted, up to the bound (cheap: row ids only).
//! 2. When all phrases together match within the bound, they are ranked at once, as a
//!    plain `OR` of every phrase: small tenants and selective queries rank exactly so.
//! 3. Otherwise the query is relaxed step by step. The rare phrases (together within
//!    half the bound) are always alternatives. The common ones are required together,
//!    then all but the most common, and so on. Each step adds the rows it finds after
//!    the earlier steps' (rows matching more of the query come first) until there are
//!    enough. A step that still matches more than the bound takes its newest rows
//!    instead of scoring them all: they all match the same words.
//!
//! PostgreSQL ranks the `OR` of the words with `ts_rank_cd`, as before.

use std::collections::HashSet;

use prefiq::Backend;
use prefiq_data::entity::repo::{RepoError, Repository, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};

use crate::filters::Filters;
use crate::store::{MAX_KEYS, text};

/// Most rows one step scores with BM25.
pub const SCORED_ROWS_MAX: i64 = 2_000;

/// Most phrases of one query.
const PHRASES_MAX: usize = 64;

/// Most common phrases required together (the relaxation has as many steps).
const COMMON_PHRASES_MAX: usize = 8;

/// The words of a query as the keyword index matches them, each word (an identifier
/// such as `PO-2026-00417` included) as a quoted phrase, each once.
pub(crate) fn fts_phrases(query: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    query
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"", w.replace('"', "")))
        .filter(|p| seen.insert(p.to_lowercase()))
        .take(PHRASES_MAX)
        .collect()
}

/// The best `limit` keys for `query` with their scores (higher is better; only their
/// order means anything), among the rows `filters` select.
pub async fn keyword_ranked(
    repository: &Repository,
    scope: &TenantScope,
    query: &str,
    filters: &Filters,
    limit: usize,
) -> Result<Vec<(i64, f64)>, RepoError> {
    let phrases = fts_phrases(query);
    if phrases.is_empty() {
        return Ok(Vec::new());
    }
    let tenant = scope.tenant().to_owned();
    let limit = limit.clamp(1, MAX_KEYS) as i64;
    let filters = filters.clone();
    let plain = query.to_owned();
    let ranked = repository
        .read(
            scope,
            Box::new(move |conn: &mut Conn<'_>| {
                let (tenant, phrases, filters, plain) = (
                    tenant.clone(),
                    phrases.clone(),
                    filters.clone(),
                    plain.clone(),
                );
                Box::pin(async move {
                    let query = Query {
                        tenant: &tenant,
                        filters: &filters,
                        limit,
                    };
                    match conn.backend() {
                        Backend::Sqlite => query.sqlite(conn, &phrases).await,
                        Backend::Postgres => query.postgres(conn, &plain).await,
                    }
                })
            }),
        )
        .await;
    match ranked {
        Ok(ranked) => Ok(ranked),
        // A query the full-text parser cannot read matches nothing.
        Err(RepoError::Database(e)) if e.to_string().contains("fts5") => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// One keyword search's fixed parts.
struct Query<'q> {
    tenant: &'q str,
    filters: &'q Filters,
    limit: i64,
}

impl Query<'_> {
    /// SQLite: counts, then one ranking or the relaxation (see the module's doc).
    async fn sqlite(
        &self,
        conn: &mut Conn<'_>,
        phrases: &[String],
    ) -> Result<Vec<(i64, f64)>, RepoError> {
        let counts = match_counts(conn, phrases).await?;
        let mut sized: Vec<(&String, i64)> =
            phrases.iter().zip(counts).filter(|(_, n)| *n > 0).collect();
        if sized.is_empty() {
            return Ok(Vec::new());
        }
        let everything = alternatives(sized.iter().map(|(p, _)| p.as_str()));
        let everything_rows = match_count(conn, &everything).await?;
        if everything_rows <= SCORED_ROWS_MAX {
            return self.scored(conn, &everything).await;
        }
        sized.sort_by_key(|(_, n)| *n);
        let mut rare = Vec::new();
        let mut rare_rows = 0;
        let mut common = Vec::new();
        // A word in more than half the rows the whole query matches (`the`) would not
        // narrow the required group, only slow it.
        let ubiquitous = everything_rows.max(1);
        for (phrase, n) in sized {
            if common.is_empty() && rare_rows + n <= SCORED_ROWS_MAX / 2 {
                rare_rows += n;
                rare.push(phrase.as_str());
            } else if common.len() < COMMON_PHRASES_MAX
                && (common.is_empty() || n * 2 <= ubiquitous)
            {
                common.push(phrase.as_str());
            }
        }
        let mut ranked: Vec<(i64, f64)> = Vec::new();
        let mut seen = HashSet::new();
        for required in (1..=common.len().max(1)).rev() {
            let mut parts: Vec<String> = rare.iter().map(|p| (*p).to_owned()).collect();
            if !common.is_empty() {
                parts.push(format!("({})", common[..required].join(" AND ")));
            }
            let expression = alternatives(parts.iter().map(String::as_str));
            let rows = if match_count(conn, &expression).await? <= SCORED_ROWS_MAX {
                self.scored(conn, &expression).await?
            } else {
                self.newest(conn, &expression).await?
            };
            // Later steps match fewer of the query's words: their rows go after, with
            // scores no higher than the last one kept.
            let ceiling = ranked.last().map_or(f64::INFINITY, |(_, s)| *s);
            for (key, score) in rows {
                if seen.insert(key) {
                    ranked.push((key, score.min(ceiling)));
                }
            }
            if ranked.len() as i64 >= self.limit {
                break;
            }
        }
        ranked.truncate(self.limit as usize);
        Ok(ranked)
    }

    /// The best rows matching `expression` by BM25.
    async fn scored(
        &self,
        conn: &mut Conn<'_>,
        expression: &str,
    ) -> Result<Vec<(i64, f64)>, RepoError> {
        let mut sql = Sql::default();
        let q = sql.arg(text(expression));
        let t = sql.arg(text(self.tenant));
        let conditions = self.filters.sql("m", &mut sql);
        let l = sql.arg(Arg::Int(Some(self.limit)));
        sql.text = format!(
            "SELECT m.key, s.score FROM (SELECT rowid, -bm25(memory_fts) AS score FROM memory_fts WHERE memory_fts MATCH {q}) s \
             JOIN memory_meta m ON m.key = s.rowid WHERE m.tenant_id = {t}{conditions} ORDER BY s.score DESC, m.key LIMIT {l}"
        );
        rows(conn, &sql).await
    }

    /// The newest rows matching `expression`, scored by their order (1 down to 0.5).
    async fn newest(
        &self,
        conn: &mut Conn<'_>,
        expression: &str,
    ) -> Result<Vec<(i64, f64)>, RepoError> {
        let mut sql = Sql::default();
        let q = sql.arg(text(expression));
        let t = sql.arg(text(self.tenant));
        let conditions = self.filters.sql("m", &mut sql);
        let l = sql.arg(Arg::Int(Some(self.limit)));
        sql.text = format!(
            "SELECT m.key, '0' FROM memory_fts JOIN memory_meta m ON m.key = memory_fts.rowid \
             WHERE memory_fts MATCH {q} AND m.tenant_id = {t}{conditions} ORDER BY memory_fts.rowid DESC LIMIT {l}"
        );
        let keys = rows(conn, &sql).await?;
        let n = keys.len().max(1) as f64;
        Ok(keys
            .into_iter()
            .enumerate()
            .map(|(i, (key, _))| (key, 1.0 - 0.5 * i as f64 / n))
            .collect())
    }

    /// PostgreSQL: the `OR` of the query's words by `ts_rank_cd`.
    async fn postgres(
        &self,
        conn: &mut Conn<'_>,
        plain: &str,
    ) -> Result<Vec<(i64, f64)>, RepoError> {
        let mut sql = Sql::default();
        let q = sql.arg(text(plain));
        let tsq = format!("replace(plainto_tsquery('english', {q})::text, '&', '|')::tsquery");
        let t = sql.arg(text(self.tenant));
        let conditions = self.filters.sql("m", &mut sql);
        let l = sql.arg(Arg::Int(Some(self.limit)));
        sql.text = format!(
            "SELECT m.key, ts_rank_cd(m.tsv, {tsq}, 1)::text FROM memory_meta m \
             WHERE m.tsv @@ {tsq} AND m.tenant_id = {t}{conditions} ORDER BY 2 DESC, m.key LIMIT {l}"
        );
        rows(conn, &sql).await
    }
}

/// `a OR b OR …`.
fn alternatives<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts.collect::<Vec<_>>().join(" OR ")
}

/// How many rows of the whole index match `expression`: exact up to
/// [`SCORED_ROWS_MAX`], estimated beyond it.
async fn match_count(conn: &mut Conn<'_>, expression: &str) -> Result<i64, RepoError> {
    Ok(match_counts(conn, &[expression.to_owned()])
        .await?
        .first()
        .copied()
        .unwrap_or(0))
}

/// [`match_count`] of each expression, in one statement. Each reads at most one row id
/// past the bound, newest first. When there are more, the span those ids cover gives
/// the estimate: a word in every row fills the bound with the newest rows, a word in
/// one row of ten with ten times as many.
async fn match_counts(conn: &mut Conn<'_>, expressions: &[String]) -> Result<Vec<i64>, RepoError> {
    let mut sql = Sql::default();
    let cap = SCORED_ROWS_MAX + 1;
    let parts: Vec<String> = expressions
        .iter()
        .enumerate()
        .map(|(i, expression)| {
            let q = sql.arg(text(expression));
            format!(
                "SELECT {i}, count(*), coalesce(min(rowid), 0), (SELECT coalesce(max(key), 0) FROM memory_meta) \
                 FROM (SELECT rowid FROM memory_fts WHERE memory_fts MATCH {q} ORDER BY rowid DESC LIMIT {cap})"
            )
        })
        .collect();
    sql.text = parts.join(" UNION ALL ");
    let mut counts = vec![0; expressions.len()];
    let types = [SqlType::Int, SqlType::Int, SqlType::Int, SqlType::Int];
    for row in conn.fetch(&sql, &types).await? {
        let cell = |i: usize| row.get(i).and_then(Cell::as_int).unwrap_or(0);
        let (n, oldest, newest) = (cell(1), cell(2), cell(3));
        if let Some(slot) = usize::try_from(cell(0))
            .ok()
            .and_then(|i| counts.get_mut(i))
        {
            *slot = estimate(n, oldest, newest);
        }
    }
    Ok(counts)
}

/// The number of matching rows when the newest `n` (up to one past the bound) span the
/// keys `oldest..=newest`.
fn estimate(n: i64, oldest: i64, newest: i64) -> i64 {
    if n <= SCORED_ROWS_MAX {
        return n;
    }
    let span = (newest - oldest + 1).max(1) as f64;
    ((n as f64) * (newest.max(1) as f64) / span).round() as i64
}

/// `(key, score)` rows of `sql`, the score a number or its text.
async fn rows(conn: &mut Conn<'_>, sql: &Sql) -> Result<Vec<(i64, f64)>, RepoError> {
    Ok(conn
        .fetch(sql, &[SqlType::Int, SqlType::Text])
        .await?
        .into_iter()
        .filter_map(|r| {
            let mut r = r.into_iter();
            let key = r.next()?.as_int()?;
            let score = match r.next()? {
                Cell::Text(t) => t.parse::<f64>().ok()?,
                Cell::Int(n) => n as f64,
                _ => return None,
            };
            Some((key, score))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_the_bound_are_exact_and_beyond_it_estimated_from_their_span() {
        assert_eq!(estimate(0, 0, 100_000), 0);
        assert_eq!(estimate(SCORED_ROWS_MAX, 5, 100_000), SCORED_ROWS_MAX);
        // The newest 2,001 rows all match: so does every row.
        assert_eq!(estimate(2_001, 98_000, 100_000), 100_000);
        // They span a tenth of the keys: a tenth of the rows match.
        assert_eq!(estimate(2_001, 79_991, 100_000), 10_000);
        assert!(estimate(2_001, 100_000, 100_000) > 0);
    }

    fn check(query: &str, expected: &[&str]) {
        assert_eq!(fts_phrases(query), expected, "{query}");
    }

    #[test]
    fn phrases_are_quoted_words_each_once() {
        check("", &[]);
        check("  ?! ", &[]);
        check("Maria signed", &["\"Maria\"", "\"signed\""]);
        check("ref PO-2026-00417.", &["\"ref\"", "\"PO-2026-00417\""]);
        check("the The THE cat", &["\"the\"", "\"cat\""]);
        check("say \"hi\"", &["\"say\"", "\"hi\""]);
        check("a\"b", &["\"ab\""]);
    }

    #[test]
    fn phrases_are_bounded() {
        let long: String = (0..200).map(|i| format!("w{i} ")).collect();
        assert_eq!(fts_phrases(&long).len(), PHRASES_MAX);
    }
}
