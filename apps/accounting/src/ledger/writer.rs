//! The set-based writer: GL rows, balance rows and ledger-written journal entries.

use std::collections::BTreeMap;

use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Arg, Conn, Sql};
use serde_json::{Map, Value, json};

pub use super::bulk::Bulk;
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
    /// The rounding line the posting rules added to a submitted entry: no line of the
    /// entry holds it, so its posting carries its remark by its kind.
    pub rounding: bool,
}

impl PostingLine {
    /// The posting that balances a foreign-currency rounding `difference` (debits minus
    /// credits, in company currency `base`) on the company's rounding `account`.
    /// `in_a_line`: whether a line of the entry holds it (the import writes one; the
    /// posting rules of a submitted entry add it without one).
    pub fn exchange_rounding(
        account: String,
        difference: i64,
        base: &str,
        in_a_line: bool,
    ) -> PostingLine {
        PostingLine {
            account,
            debit: if difference < 0 { -difference } else { 0 },
            credit: if difference > 0 { difference } else { 0 },
            currency: base.to_owned(),
            debit_in_currency: 0,
            credit_in_currency: 0,
            party_type: None,
            party: None,
            cost_center: None,
            remark: Some("exchange rounding".into()),
            rate: Some(crate::money::RATE_ONE),
            rate_source: None,
            rounding: !in_a_line,
        }
    }
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

/// The most balance rows one upsert carries: under SQLite's and PostgreSQL's
/// bound-parameter limits (32,766 and 65,535).
pub(super) const ROWS_PER_STATEMENT: usize = 1_000;

/// Who writes ledger rows and when: the values every row of a write shares.
#[derive(Debug, Clone)]
pub struct Stamp {
    tenant: Arg,
    user: Arg,
    now: Arg,
    company: Arg,
    base: Arg,
}

impl Stamp {
    /// The stamp of rows `scope` writes for `company` at `now`.
    pub fn new(scope: &TenantScope, company: &Company, now: &str) -> Stamp {
        Stamp {
            tenant: text(scope.tenant()),
            user: opt_text(scope.user()),
            now: text(now),
            company: text(&company.id),
            base: text(&company.base_currency),
        }
    }
}

/// Posted totals per (period, account, currency, closing): debit and credit in company
/// currency, then in the line's currency. Summed in memory so that a write upserts each
/// balance row once, however many postings it adds to it.
#[derive(Debug, Default, Clone)]
pub struct BalanceSums(BTreeMap<(String, String, String, bool), [i64; 4]>);

impl BalanceSums {
    /// Adds a voucher's lines; refuses a sum that overflows 64-bit minor units.
    pub fn add(&mut self, voucher: &Voucher) -> Result<(), RepoError> {
        for line in &voucher.lines {
            let key = (
                voucher.period.clone(),
                line.account.clone(),
                line.currency.clone(),
                voucher.is_closing,
            );
            let sum = self.0.entry(key).or_default();
            for (total, amount) in sum.iter_mut().zip([
                line.debit,
                line.credit,
                line.debit_in_currency,
                line.credit_in_currency,
            ]) {
                *total = total.checked_add(amount).ok_or_else(|| {
                    invalid(
                        "",
                        "overflow",
                        "an account's balance overflows 64-bit minor units",
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Adds the sums to the balance rows, in the caller's transaction: one upsert per
    /// (period, account, currency, kind).
    pub async fn write(&self, conn: &mut Conn<'_>, stamp: &Stamp) -> Result<(), RepoError> {
        let sums: Vec<_> = self.0.iter().collect();
        for chunk in sums.chunks(ROWS_PER_STATEMENT) {
            let mut sql = Sql::default();
            let tenant = sql.arg(stamp.tenant.clone());
            let at = sql.arg(stamp.now.clone());
            let user = sql.arg(stamp.user.clone());
            let company_arg = sql.arg(stamp.company.clone());
            let base_arg = sql.arg(stamp.base.clone());
            let mut values = Vec::with_capacity(chunk.len());
            for ((period, account, currency, closing), [debit, credit, debit_in, credit_in]) in
                chunk
            {
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
        Ok(())
    }
}

/// The keys a write of `vouchers` of `company` needs, made where missing.
pub async fn keys_of(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &Company,
    vouchers: &[&Voucher],
) -> Result<store::Keys, RepoError> {
    let ids = [company.id.as_str(), company.base_currency.as_str()]
        .into_iter()
        .chain(vouchers.iter().flat_map(|v| store::voucher_ids(v)));
    store::Keys::resolve(conn, scope, ids).await
}

/// Writes the postings of `vouchers` into the ledger store and adds them to the
/// per-period balances, in the caller's transaction: one batch row, multi-row posting
/// statements, one balance upsert per touched (period, account, currency, kind).
/// Returns the number of postings written.
pub async fn write_postings(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &Company,
    vouchers: &[Voucher],
    now: &str,
) -> Result<u64, RepoError> {
    let stamp = Stamp::new(scope, company, now);
    let keys = keys_of(conn, scope, company, &vouchers.iter().collect::<Vec<_>>()).await?;
    let batch = store::open_batch(conn, scope, now).await?;
    let mut rows = store::Postings::new(conn.backend(), scope, company, &keys, batch)?;
    let mut sums = BalanceSums::default();
    for voucher in vouchers {
        rows.push(&keys, voucher)?;
        sums.add(voucher)?;
    }
    let written = rows.write(conn).await?;
    sums.write(conn, &stamp).await?;
    Ok(written)
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

/// The columns of a journal entry row, in the order [`EntryRows::push`] gives them.
const ENTRY_COLUMNS: &[&str] = &[
    "tenant_id",
    "id",
    "name",
    "created_at",
    "created_by",
    "modified_at",
    "modified_by",
    "docstatus",
    "company",
    "posting_date",
    "entry_type",
    "title",
    "remark",
    "total_debit",
    "total_debit_currency",
    "total_credit",
    "total_credit_currency",
];

/// The columns of a journal entry line row, in the order [`EntryRows::push`] gives them.
const LINE_COLUMNS: &[&str] = &[
    "tenant_id",
    "id",
    "name",
    "created_at",
    "created_by",
    "modified_at",
    "modified_by",
    "parent_id",
    "parent_field",
    "idx",
    "account",
    "debit",
    "debit_currency",
    "credit",
    "credit_currency",
    "exchange_rate",
    "party_type",
    "party",
    "cost_center",
    "remark",
];

/// The rows of ledger-written journal entries: entry rows, line rows and postings, and
/// the balances they add to. Made where the entries are (the import's parser thread) and
/// written on the transaction's connection by [`EntryRows::write`].
#[derive(Debug)]
pub struct EntryRows {
    stamp: Stamp,
    keys: std::sync::Arc<store::Keys>,
    entries: Bulk,
    lines: Bulk,
    postings: store::Postings,
}

impl EntryRows {
    /// No rows yet, for `backend`, stamped with `stamp`; postings go to `postings` with
    /// the keys `keys` holds.
    pub fn new(
        backend: prefiq::Backend,
        stamp: Stamp,
        keys: std::sync::Arc<store::Keys>,
        postings: store::Postings,
    ) -> EntryRows {
        EntryRows {
            stamp,
            keys,
            entries: Bulk::new(backend, "journal_entry", ENTRY_COLUMNS),
            lines: Bulk::new(backend, "journal_entry_line", LINE_COLUMNS),
            postings,
        }
    }

    /// The number of postings so far.
    pub fn postings(&self) -> usize {
        self.postings.len()
    }

    /// Whether no entry was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an entry (row, lines, postings; `docstatus` 1). Its balances are the caller's
    /// to add ([`BalanceSums::add`]), so that many batches can share one upsert per row.
    pub fn push(&mut self, entry: &LedgerEntry<'_>) -> Result<(), RepoError> {
        let stamp = &self.stamp;
        let total: i64 = entry.voucher.lines.iter().map(|l| l.debit).sum();
        let id = text(&entry.id);
        self.entries.push([
            stamp.tenant.clone(),
            id.clone(),
            text(&entry.name),
            stamp.now.clone(),
            stamp.user.clone(),
            stamp.now.clone(),
            stamp.user.clone(),
            Arg::Int(Some(1)),
            stamp.company.clone(),
            text(&entry.voucher.posting_date),
            text(entry.entry_type),
            opt_text(entry.title.as_deref()),
            opt_text(entry.remark.as_deref()),
            Arg::Int(Some(total)),
            stamp.base.clone(),
            Arg::Int(Some(total)),
            stamp.base.clone(),
        ]);
        for (idx, line) in entry.voucher.lines.iter().enumerate() {
            let row = text(&uuid::Uuid::now_v7().to_string());
            let debit = line.debit > 0 || line.debit_in_currency > 0;
            // A rounding line has no amount in a currency of its own: its base amount shows.
            let amount = match (debit, line.debit_in_currency, line.credit_in_currency) {
                (true, 0, _) => line.debit,
                (true, d, _) => d,
                (false, _, 0) => line.credit,
                (false, _, c) => c,
            };
            let (amount, currency) = (Arg::Int(Some(amount)), text(&line.currency));
            let (none, none_currency) = (Arg::Int(None), Arg::Text(None));
            let [debit_amount, debit_currency, credit_amount, credit_currency] = if debit {
                [amount, currency, none, none_currency]
            } else {
                [none, none_currency, amount, currency]
            };
            self.lines.push([
                stamp.tenant.clone(),
                row.clone(),
                row,
                stamp.now.clone(),
                stamp.user.clone(),
                stamp.now.clone(),
                stamp.user.clone(),
                id.clone(),
                text("lines"),
                Arg::Int(Some(idx as i64)),
                text(&line.account),
                debit_amount,
                debit_currency,
                credit_amount,
                credit_currency,
                Arg::Int(line.rate),
                opt_text(line.party_type.as_deref()),
                opt_text(line.party.as_deref()),
                opt_text(line.cost_center.as_deref()),
                opt_text(line.remark.as_deref()),
            ]);
        }
        self.postings.push(&self.keys, &entry.voucher)
    }

    /// Writes the rows in the caller's transaction; returns the number of postings.
    pub async fn write(self, conn: &mut Conn<'_>) -> Result<u64, RepoError> {
        self.entries.run(conn).await?;
        self.lines.run(conn).await?;
        self.postings.write(conn).await
    }
}

/// Writes journal entries (row and lines, `docstatus` 1), their GL rows and balances.
pub async fn write_entries(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &Company,
    entries: &[LedgerEntry<'_>],
    now: &str,
) -> Result<(), RepoError> {
    let stamp = Stamp::new(scope, company, now);
    let vouchers: Vec<&Voucher> = entries.iter().map(|e| &e.voucher).collect();
    let keys = keys_of(conn, scope, company, &vouchers).await?;
    let batch = store::open_batch(conn, scope, now).await?;
    let postings = store::Postings::new(conn.backend(), scope, company, &keys, batch)?;
    let mut rows = EntryRows::new(
        conn.backend(),
        stamp.clone(),
        std::sync::Arc::new(keys),
        postings,
    );
    let mut sums = BalanceSums::default();
    for entry in entries {
        rows.push(entry)?;
        sums.add(&entry.voucher)?;
    }
    rows.write(conn).await?;
    sums.write(conn, &stamp).await
}

/// The SHA-256 (hex) of a voucher's postings: per line, in order, its account id, debit
/// and credit in company currency, currency, and debit and credit in that currency,
/// tab-separated, each line ending in a line feed. An audit record that holds it commits
/// to every amount the voucher wrote.
pub fn postings_hash(voucher: &Voucher) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for line in &voucher.lines {
        hasher.update(
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                line.account,
                line.debit,
                line.credit,
                line.currency,
                line.debit_in_currency,
                line.credit_in_currency
            )
            .as_bytes(),
        );
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The audit record's changes of a ledger write that is not an entity change.
pub fn audit_changes(fields: &[(&str, Value)]) -> Value {
    let mut map = Map::new();
    for (name, value) in fields {
        map.insert((*name).to_owned(), json!({"before": null, "after": value}));
    }
    Value::Object(map)
}
