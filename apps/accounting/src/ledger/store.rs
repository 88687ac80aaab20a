//! The ledger store: postings in a narrow, append-only table made for them.
//!
//! `ledger_posting` holds one row per posting with integer keys only: the company,
//! account, period and currencies are per-tenant keys of `ledger_key`, the date is a day
//! number, the amounts are `i64` minor units, and who wrote it and when is one row of
//! `ledger_batch` per write. The text of a posting (party, cost center, remark) is its
//! journal entry line's, joined by the line's index: a line is stored once. `gl_entry` is
//! a view over these tables with the columns of the entity, so the API, the desk, filters
//! and permissions read it as before (see [`MIGRATION`]).

use std::collections::HashMap;

use prefiq::{Backend, Migration};
use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Arg, Conn, Sql, SqlType};

use super::*;
use crate::dates;

/// The columns of a posting row, in the order [`Postings::push`] gives them.
const POSTING_COLUMNS: &[&str] = &[
    "tenant_id",
    "batch",
    "journal_entry",
    "line",
    "kind",
    "company",
    "account",
    "period",
    "day",
    "base",
    "currency",
    "debit",
    "credit",
    "line_debit",
    "line_credit",
    "rate_source",
];

/// `kind` bits of a posting.
pub mod kind {
    /// It reverses a posting of a cancelled entry.
    pub const REVERSAL: i64 = 1;
    /// It belongs to a period's closing entry.
    pub const CLOSING: i64 = 2;
    /// The foreign-currency rounding line the posting rules added: no line of the entry
    /// holds it.
    pub const ROUNDING: i64 = 4;
}

/// The most ids one key statement names.
const IDS_PER_STATEMENT: usize = 500;

/// The day number of an ISO date (days since 1970-01-01), as postings store it.
pub fn day_number(date: &str) -> Option<i64> {
    dates::parse(date).map(dates::day_number)
}

/// Per-tenant integer keys of the ids postings refer to: companies, accounts and periods
/// by row id, currencies by code.
#[derive(Debug, Clone, Default)]
pub struct Keys(HashMap<String, i64>);

impl Keys {
    /// The keys of `ids` for the scope's tenant, made for those that have none yet, in the
    /// caller's transaction.
    pub async fn resolve<'a>(
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Keys, RepoError> {
        let mut wanted: Vec<&str> = ids.into_iter().filter(|id| !id.is_empty()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut keys = Keys::default();
        keys.read(conn, scope, &wanted).await?;
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|id| !keys.0.contains_key(*id))
            .collect();
        if missing.is_empty() {
            return Ok(keys);
        }
        for chunk in missing.chunks(IDS_PER_STATEMENT) {
            let mut sql = Sql::default();
            let tenant = sql.arg(text(scope.tenant()));
            let values: Vec<String> = chunk
                .iter()
                .map(|id| format!("({tenant},{})", sql.arg(text(id))))
                .collect();
            // A concurrent writer may make the same key first: its key is then read back.
            sql.text = format!(
                "INSERT INTO ledger_key (tenant_id, id) VALUES {} ON CONFLICT (tenant_id, id) DO NOTHING",
                values.join(",")
            );
            run(conn, sql).await?;
        }
        keys.read(conn, scope, &missing).await?;
        if let Some(id) = missing.iter().find(|id| !keys.0.contains_key(**id)) {
            return Err(invalid(
                "",
                "ledger_key",
                format!("no ledger key could be made for `{id}`"),
            ));
        }
        Ok(keys)
    }

    async fn read(
        &mut self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        ids: &[&str],
    ) -> Result<(), RepoError> {
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let mut sql = Sql::default();
            let tenant = sql.arg(text(scope.tenant()));
            let list: Vec<String> = chunk.iter().map(|id| sql.arg(text(id))).collect();
            sql.text = format!(
                "SELECT id, key FROM ledger_key WHERE tenant_id = {tenant} AND id IN ({})",
                list.join(",")
            );
            for row in conn.fetch(&sql, &[SqlType::Text, SqlType::Int]).await? {
                if let Some(id) = cell_text(row.first()) {
                    self.0.insert(id, cell_int(row.get(1)));
                }
            }
        }
        Ok(())
    }

    /// The key of `id`; an error names an id that was not resolved (a bug of the caller).
    pub fn get(&self, id: &str) -> Result<i64, RepoError> {
        self.0.get(id).copied().ok_or_else(|| {
            invalid(
                "",
                "ledger_key",
                format!("`{id}` has no ledger key in this write"),
            )
        })
    }
}

/// Opens the write's batch (who and when, shared by its postings) in the caller's
/// transaction; returns its key.
pub async fn open_batch(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    now: &str,
) -> Result<i64, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let at = sql.arg(text(now));
    let user = sql.arg(opt_text(scope.user()));
    sql.text = format!(
        "INSERT INTO ledger_batch (tenant_id, at, by_user) VALUES ({tenant}, {at}, {user}) RETURNING batch"
    );
    let rows = conn.fetch(&sql, &[SqlType::Int]).await?;
    rows.first()
        .map(|row| cell_int(row.first()))
        .ok_or_else(|| invalid("", "ledger_batch", "the ledger batch was not made"))
}

/// The ids a voucher's postings need keys for.
pub fn voucher_ids(voucher: &Voucher) -> impl Iterator<Item = &str> {
    std::iter::once(voucher.period.as_str()).chain(
        voucher
            .lines
            .iter()
            .flat_map(|l| [l.account.as_str(), l.currency.as_str()]),
    )
}

/// Posting rows of one write, ready for the backend (see [`Bulk`]).
#[derive(Debug)]
pub struct Postings {
    backend: Backend,
    rows: Bulk,
    tenant: Arg,
    batch: Arg,
    company: Arg,
    base: Arg,
}

impl Postings {
    /// No rows yet: rows of `company` (whose key and base currency's key `keys` holds),
    /// in the batch `batch`.
    pub fn new(
        backend: Backend,
        scope: &TenantScope,
        company: &Company,
        keys: &Keys,
        batch: i64,
    ) -> Result<Postings, RepoError> {
        Ok(Postings {
            backend,
            rows: Bulk::new(backend, "ledger_posting", POSTING_COLUMNS),
            tenant: text(scope.tenant()),
            batch: Arg::Int(Some(batch)),
            company: Arg::Int(Some(keys.get(&company.id)?)),
            base: Arg::Int(Some(keys.get(&company.base_currency)?)),
        })
    }

    /// No rows yet, of the same company and batch as `self`.
    pub fn fresh(&self) -> Postings {
        Postings {
            backend: self.backend,
            rows: Bulk::new(self.backend, "ledger_posting", POSTING_COLUMNS),
            tenant: self.tenant.clone(),
            batch: self.batch.clone(),
            company: self.company.clone(),
            base: self.base.clone(),
        }
    }

    /// The number of posting rows so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds the postings of `voucher`, line `i` at index `i`.
    pub fn push(&mut self, keys: &Keys, voucher: &Voucher) -> Result<(), RepoError> {
        let day = day_number(&voucher.posting_date).ok_or_else(|| {
            invalid(
                "/posting_date",
                "invalid_date",
                format!("`{}` is not a date", voucher.posting_date),
            )
        })?;
        let entry = text(&voucher.journal_entry);
        let period = Arg::Int(Some(keys.get(&voucher.period)?));
        let mut flags = 0;
        if voucher.is_reversal {
            flags |= kind::REVERSAL;
        }
        if voucher.is_closing {
            flags |= kind::CLOSING;
        }
        for (i, line) in voucher.lines.iter().enumerate() {
            let kind = if line.rounding {
                flags | kind::ROUNDING
            } else {
                flags
            };
            self.rows.push([
                self.tenant.clone(),
                self.batch.clone(),
                entry.clone(),
                Arg::Int(Some(i as i64)),
                Arg::Int(Some(kind)),
                self.company.clone(),
                Arg::Int(Some(keys.get(&line.account)?)),
                period.clone(),
                Arg::Int(Some(day)),
                self.base.clone(),
                Arg::Int(Some(keys.get(&line.currency)?)),
                Arg::Int(Some(line.debit)),
                Arg::Int(Some(line.credit)),
                Arg::Int(Some(line.debit_in_currency)),
                Arg::Int(Some(line.credit_in_currency)),
                opt_text(line.rate_source.as_deref()),
            ]);
        }
        Ok(())
    }

    /// Writes the rows in the caller's transaction; returns how many.
    pub async fn write(self, conn: &mut Conn<'_>) -> Result<u64, RepoError> {
        self.rows.run(conn).await
    }
}

/// The key of `id` as a sub-select, for statements on `ledger_posting`.
pub fn key_of(sql: &mut Sql, tenant: &str, id: &str) -> String {
    let tenant = sql.arg(text(tenant));
    let id = sql.arg(text(id));
    format!("(SELECT key FROM ledger_key WHERE tenant_id = {tenant} AND id = {id})")
}

/// The migration that makes the ledger store and the `gl_entry` view, and moves the rows
/// of an installation whose `gl_entry` was a table into it.
pub fn migration() -> Migration {
    Migration::per_backend(
        "0001_ledger_store",
        include_str!("store_sqlite.sql"),
        include_str!("store_postgres.sql"),
    )
}
