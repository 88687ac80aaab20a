//! The set-based writer: GL rows, balance rows and ledger-written journal entries.

use std::collections::BTreeMap;

use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Arg, Conn, Sql};
use serde_json::{Map, Value, json};

use super::*;

/// One posting row before it is written: amounts in company currency and in the line's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostingLine {
    /// The account id.
    pub account: String,
    /// Debit in company currency (minor units, not negative).
    pub debit: i64,
    /// Credit in company currency.
    pub credit: i64,
    /// The line's currency.
    pub currency: String,
    /// Debit in the line's currency.
    pub debit_in_currency: i64,
    /// Credit in the line's currency.
    pub credit_in_currency: i64,
    /// Party type.
    pub party_type: Option<String>,
    /// Party.
    pub party: Option<String>,
    /// Cost center id.
    pub cost_center: Option<String>,
    /// Remark.
    pub remark: Option<String>,
    /// Company-currency units per unit of the line's currency (scaled by 10^9), when known.
    pub rate: Option<i64>,
    /// The stored exchange rate the line was converted at, when the entry gave no rate:
    /// the GL row links to it, which keeps it from being deleted.
    pub rate_source: Option<String>,
}

/// The postings of one journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voucher {
    /// The journal entry id.
    pub journal_entry: String,
    /// Its posting date.
    pub posting_date: String,
    /// The period it posts into.
    pub period: String,
    /// Its lines, balanced in company currency.
    pub lines: Vec<PostingLine>,
    /// Whether it reverses a cancelled entry.
    pub is_reversal: bool,
    /// Whether it is a period's closing entry.
    pub is_closing: bool,
}

/// Columns of one GL row a statement binds (the rest are constants of the statement).
pub(super) const GL_ROW_ARGS: usize = 18;

/// The most rows one multi-row statement carries: under SQLite's and PostgreSQL's
/// bound-parameter limits (32,766 and 65,535).
pub(super) const ROWS_PER_STATEMENT: usize = 1_000;

/// Writes the GL entries of `vouchers` and adds them to the per-period balances, in the
/// caller's transaction: multi-row statements, one balance upsert per touched
/// (period, account, currency, kind). Returns the number of GL rows written.
pub async fn write_postings(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &Company,
    vouchers: &[Voucher],
    now: &str,
) -> Result<u64, RepoError> {
    let base = company.base_currency.as_str();
    let rows: Vec<(&Voucher, &PostingLine)> = vouchers
        .iter()
        .flat_map(|v| v.lines.iter().map(move |l| (v, l)))
        .collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::default();
        let tenant = sql.arg(text(scope.tenant()));
        let at = sql.arg(text(now));
        let user = sql.arg(opt_text(scope.user()));
        let company_arg = sql.arg(text(&company.id));
        let base_arg = sql.arg(text(base));
        sql.args.reserve(chunk.len() * GL_ROW_ARGS);
        let mut values = String::with_capacity(chunk.len() * 160);
        for (i, (voucher, line)) in chunk.iter().enumerate() {
            let id = sql.arg(text(&uuid::Uuid::now_v7().to_string()));
            let account = sql.arg(text(&line.account));
            let date = sql.arg(text(&voucher.posting_date));
            let period = sql.arg(text(&voucher.period));
            let entry = sql.arg(text(&voucher.journal_entry));
            let debit = sql.arg(Arg::Int(Some(line.debit)));
            let credit = sql.arg(Arg::Int(Some(line.credit)));
            let currency = sql.arg(text(&line.currency));
            let debit_in = sql.arg(Arg::Int(Some(line.debit_in_currency)));
            let credit_in = sql.arg(Arg::Int(Some(line.credit_in_currency)));
            let party_type = sql.arg(opt_text(line.party_type.as_deref()));
            let party = sql.arg(opt_text(line.party.as_deref()));
            let cost_center = sql.arg(opt_text(line.cost_center.as_deref()));
            let remark = sql.arg(opt_text(line.remark.as_deref()));
            let reversal = sql.arg(Arg::Bool(Some(voucher.is_reversal)));
            let closing = sql.arg(Arg::Bool(Some(voucher.is_closing)));
            let rate_source = sql.arg(opt_text(line.rate_source.as_deref()));
            if i > 0 {
                values.push(',');
            }
            values.push_str(&format!(
                "({tenant},{id},{id},{at},{user},{at},{user},{company_arg},{account},{date},{period},{entry},{debit},{base_arg},{credit},{base_arg},{debit_in},{currency},{credit_in},{currency},{party_type},{party},{cost_center},{remark},{reversal},{closing},{rate_source})"
            ));
        }
        sql.text = format!(
            "INSERT INTO gl_entry (tenant_id, id, name, created_at, created_by, modified_at, modified_by, company, account, posting_date, period, journal_entry, debit, debit_currency, credit, credit_currency, line_debit, line_debit_currency, line_credit, line_credit_currency, party_type, party, cost_center, remark, is_reversal, is_closing, rate_source) VALUES {values}"
        );
        run(conn, sql).await?;
    }
    // Balances: one row per (period, account, currency, kind), summed here first.
    let mut sums: BTreeMap<(&str, &str, &str, bool), [i64; 4]> = BTreeMap::new();
    for (voucher, line) in &rows {
        let sum = sums
            .entry((
                voucher.period.as_str(),
                line.account.as_str(),
                line.currency.as_str(),
                voucher.is_closing,
            ))
            .or_default();
        let add = |a: &mut i64, b: i64| {
            *a = a.checked_add(b).ok_or_else(|| {
                invalid(
                    "",
                    "overflow",
                    "an account's balance overflows 64-bit minor units",
                )
            })?;
            Ok::<(), RepoError>(())
        };
        add(&mut sum[0], line.debit)?;
        add(&mut sum[1], line.credit)?;
        add(&mut sum[2], line.debit_in_currency)?;
        add(&mut sum[3], line.credit_in_currency)?;
    }
    let sums: Vec<_> = sums.into_iter().collect();
    for chunk in sums.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::default();
        let tenant = sql.arg(text(scope.tenant()));
        let at = sql.arg(text(now));
        let user = sql.arg(opt_text(scope.user()));
        let company_arg = sql.arg(text(&company.id));
        let base_arg = sql.arg(text(base));
        let mut values = Vec::with_capacity(chunk.len());
        for ((period, account, currency, closing), [debit, credit, debit_in, credit_in]) in chunk {
            let id = sql.arg(text(&uuid::Uuid::now_v7().to_string()));
            let key = sql.arg(text(&balance_key(period, account, currency, *closing)));
            let period = sql.arg(text(period));
            let account = sql.arg(text(account));
            let currency = sql.arg(text(currency));
            let closing = sql.arg(Arg::Bool(Some(*closing)));
            let debit = sql.arg(Arg::Int(Some(*debit)));
            let credit = sql.arg(Arg::Int(Some(*credit)));
            let debit_in = sql.arg(Arg::Int(Some(*debit_in)));
            let credit_in = sql.arg(Arg::Int(Some(*credit_in)));
            values.push(format!(
                "({tenant},{id},{key},{at},{user},{at},{user},{company_arg},{period},{account},{closing},{debit},{base_arg},{credit},{base_arg},{debit_in},{currency},{credit_in},{currency})"
            ));
        }
        sql.text = format!(
            "INSERT INTO account_balance (tenant_id, id, name, created_at, created_by, modified_at, modified_by, company, period, account, is_closing, debit, debit_currency, credit, credit_currency, line_debit, line_debit_currency, line_credit, line_credit_currency) VALUES {} ON CONFLICT (tenant_id, name) DO UPDATE SET debit = account_balance.debit + excluded.debit, credit = account_balance.credit + excluded.credit, line_debit = account_balance.line_debit + excluded.line_debit, line_credit = account_balance.line_credit + excluded.line_credit, modified_at = excluded.modified_at, modified_by = excluded.modified_by, version = account_balance.version + 1",
            values.join(",")
        );
        run(conn, sql).await?;
    }
    Ok(rows.len() as u64)
}

/// The name (and unique key) of a balance row.
pub fn balance_key(period: &str, account: &str, currency: &str, closing: bool) -> String {
    format!("{period}/{account}/{currency}/{}", u8::from(closing))
}

/// The stored form of a journal entry written by the ledger itself (closing and imported
/// entries): its row and its lines, already submitted.
pub struct LedgerEntry<'a> {
    /// The entry's id.
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// `Closing Entry` or `Import`.
    pub entry_type: &'a str,
    /// Its title.
    pub title: Option<String>,
    /// Its remark.
    pub remark: Option<String>,
    /// Its postings (the lines are written from them).
    pub voucher: Voucher,
}

/// Writes journal entries (row and lines, `docstatus` 1) with multi-row statements.
pub async fn write_entries(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &Company,
    entries: &[LedgerEntry<'_>],
    now: &str,
) -> Result<(), RepoError> {
    let base = company.base_currency.as_str();
    for chunk in entries.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::default();
        let tenant = sql.arg(text(scope.tenant()));
        let at = sql.arg(text(now));
        let user = sql.arg(opt_text(scope.user()));
        let company_arg = sql.arg(text(&company.id));
        let base_arg = sql.arg(text(base));
        let mut values = Vec::with_capacity(chunk.len());
        for entry in chunk {
            let total: i64 = entry.voucher.lines.iter().map(|l| l.debit).sum();
            let id = sql.arg(text(&entry.id));
            let name = sql.arg(text(&entry.name));
            let date = sql.arg(text(&entry.voucher.posting_date));
            let kind = sql.arg(text(entry.entry_type));
            let title = sql.arg(opt_text(entry.title.as_deref()));
            let remark = sql.arg(opt_text(entry.remark.as_deref()));
            let total = sql.arg(Arg::Int(Some(total)));
            values.push(format!(
                "({tenant},{id},{name},{at},{user},{at},{user},1,{company_arg},{date},{kind},{title},{remark},{total},{base_arg},{total},{base_arg})"
            ));
        }
        sql.text = format!(
            "INSERT INTO journal_entry (tenant_id, id, name, created_at, created_by, modified_at, modified_by, docstatus, company, posting_date, entry_type, title, remark, total_debit, total_debit_currency, total_credit, total_credit_currency) VALUES {}",
            values.join(",")
        );
        run(conn, sql).await?;
    }
    let lines: Vec<(&LedgerEntry<'_>, usize, &PostingLine)> = entries
        .iter()
        .flat_map(|e| {
            e.voucher
                .lines
                .iter()
                .enumerate()
                .map(move |(i, l)| (e, i, l))
        })
        .collect();
    for chunk in lines.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::default();
        let tenant = sql.arg(text(scope.tenant()));
        let at = sql.arg(text(now));
        let user = sql.arg(opt_text(scope.user()));
        let field = sql.arg(text("lines"));
        let mut values = String::with_capacity(chunk.len() * 120);
        for (n, (entry, idx, line)) in chunk.iter().enumerate() {
            let id = sql.arg(text(&uuid::Uuid::now_v7().to_string()));
            let parent = sql.arg(text(&entry.id));
            let idx = sql.arg(Arg::Int(Some(*idx as i64)));
            let account = sql.arg(text(&line.account));
            let debit = line.debit > 0 || line.debit_in_currency > 0;
            // A rounding line has no amount in a currency of its own: its base amount shows.
            let amount = match (debit, line.debit_in_currency, line.credit_in_currency) {
                (true, 0, _) => line.debit,
                (true, d, _) => d,
                (false, _, 0) => line.credit,
                (false, _, c) => c,
            };
            let amount = sql.arg(Arg::Int(Some(amount)));
            let currency = sql.arg(text(&line.currency));
            let none = sql.arg(Arg::Int(None));
            let none_currency = sql.arg(Arg::Text(None));
            let rate = sql.arg(Arg::Int(line.rate));
            let party_type = sql.arg(opt_text(line.party_type.as_deref()));
            let party = sql.arg(opt_text(line.party.as_deref()));
            let remark = sql.arg(opt_text(line.remark.as_deref()));
            let (debit_cols, credit_cols) = if debit {
                (
                    format!("{amount},{currency}"),
                    format!("{none},{none_currency}"),
                )
            } else {
                (
                    format!("{none},{none_currency}"),
                    format!("{amount},{currency}"),
                )
            };
            if n > 0 {
                values.push(',');
            }
            values.push_str(&format!(
                "({tenant},{id},{id},{at},{user},{at},{user},{parent},{field},{idx},{account},{debit_cols},{credit_cols},{rate},{party_type},{party},{remark})"
            ));
        }
        sql.text = format!(
            "INSERT INTO journal_entry_line (tenant_id, id, name, created_at, created_by, modified_at, modified_by, parent_id, parent_field, idx, account, debit, debit_currency, credit, credit_currency, exchange_rate, party_type, party, remark) VALUES {values}"
        );
        run(conn, sql).await?;
    }
    let vouchers: Vec<Voucher> = entries.iter().map(|e| e.voucher.clone()).collect();
    write_postings(conn, scope, company, &vouchers, now).await?;
    Ok(())
}

/// The audit record's changes of a ledger write that is not an entity change.
pub fn audit_changes(fields: &[(&str, Value)]) -> Value {
    let mut map = Map::new();
    for (name, value) in fields {
        map.insert((*name).to_owned(), json!({"before": null, "after": value}));
    }
    Value::Object(map)
}
