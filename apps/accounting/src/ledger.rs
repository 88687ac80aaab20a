//! The ledger's storage: reads of companies, accounts and periods, and the set-based
//! writer of postings (GL entries and per-period balances) that submit, cancel, period
//! close and bulk import all use. Every statement runs on a connection the repository
//! gives (`Repository::in_transaction`, `Repository::read`, or a transaction hook), so
//! tenancy and row-level security hold.

use std::collections::{BTreeMap, HashMap};

use prefiq_data::entity::repo::{FieldError, RepoError, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};
use prefiq_data::entity::value::currency_scale;
use serde_json::{Map, Value, json};

use crate::money::{self, RATE_ONE};

/// A bound text argument.
pub(crate) fn text(value: &str) -> Arg {
    Arg::Text(Some(value.to_owned()))
}

/// A bound optional text argument.
pub(crate) fn opt_text(value: Option<&str>) -> Arg {
    Arg::Text(value.map(str::to_owned))
}

pub(crate) fn cell_text(cell: Option<&Cell>) -> Option<String> {
    match cell {
        Some(Cell::Text(t)) => Some(t.clone()),
        _ => None,
    }
}

pub(crate) fn cell_int(cell: Option<&Cell>) -> i64 {
    match cell {
        Some(Cell::Int(i)) => *i,
        Some(Cell::Bool(b)) => i64::from(*b),
        _ => 0,
    }
}

pub(crate) fn cell_bool(cell: Option<&Cell>) -> bool {
    match cell {
        Some(Cell::Bool(b)) => *b,
        Some(Cell::Int(i)) => *i != 0,
        _ => false,
    }
}

/// Runs a multi-row statement (see `Conn::execute_bulk`).
pub(crate) async fn run(conn: &mut Conn<'_>, sql: Sql) -> Result<u64, RepoError> {
    Ok(conn.execute_bulk(&sql).await?)
}

/// An invalid-input error with one problem.
pub(crate) fn invalid(pointer: &str, code: &'static str, message: impl Into<String>) -> RepoError {
    RepoError::Invalid(vec![FieldError {
        pointer: pointer.to_owned(),
        code,
        message: message.into(),
    }])
}

/// The root type of an account: which statement it belongs to, and its normal side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum RootType {
    /// Balance sheet, debit side.
    Asset,
    /// Balance sheet, credit side.
    Liability,
    /// Balance sheet, credit side.
    Equity,
    /// Profit and loss, credit side.
    Income,
    /// Profit and loss, debit side.
    Expense,
}

impl RootType {
    /// Parses the stored select value.
    pub fn parse(text: &str) -> Option<RootType> {
        Some(match text {
            "Asset" => RootType::Asset,
            "Liability" => RootType::Liability,
            "Equity" => RootType::Equity,
            "Income" => RootType::Income,
            "Expense" => RootType::Expense,
            _ => return None,
        })
    }

    /// The stored select value.
    pub fn as_str(self) -> &'static str {
        match self {
            RootType::Asset => "Asset",
            RootType::Liability => "Liability",
            RootType::Equity => "Equity",
            RootType::Income => "Income",
            RootType::Expense => "Expense",
        }
    }

    /// Whether it is a profit-and-loss account, closed into retained earnings.
    pub fn is_profit_and_loss(self) -> bool {
        matches!(self, RootType::Income | RootType::Expense)
    }
}

/// A company's books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company {
    /// Row id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its short code.
    pub abbr: String,
    /// The currency every entry balances in.
    pub base_currency: String,
    /// Where closing entries move income and expense.
    pub retained_earnings_account: Option<String>,
    /// Where foreign-currency rounding differences go.
    pub rounding_account: Option<String>,
}

/// An account of the chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Row id.
    pub id: String,
    /// Its own name.
    pub name: String,
    /// The colon path from the root.
    pub path: String,
    /// The company.
    pub company: String,
    /// The root type.
    pub root_type: RootType,
    /// The account type (`Bank`, `Receivable`, ...).
    pub account_type: Option<String>,
    /// Groups take no postings.
    pub is_group: bool,
    /// Frozen accounts take no postings.
    pub frozen: bool,
    /// The only currency lines into it may use, when set.
    pub currency: Option<String>,
    /// The parent account.
    pub parent: Option<String>,
    /// Its number, which orders siblings.
    pub number: Option<String>,
}

/// An accounting period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Row id.
    pub id: String,
    /// Its name, such as `2026-01`.
    pub name: String,
    /// The fiscal year.
    pub fiscal_year: String,
    /// First day.
    pub start: String,
    /// Last day.
    pub end: String,
    /// Whether entries may post into it.
    pub open: bool,
    /// Its row version.
    pub version: i64,
}

/// Reads one company.
pub async fn load_company(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: &str,
) -> Result<Option<Company>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let id_arg = sql.arg(text(id));
    sql.text = format!(
        "SELECT id, company_name, abbr, currency, retained_earnings_account, rounding_account FROM company WHERE tenant_id = {tenant} AND (id = {id_arg} OR company_name = {id_arg} OR abbr = {id_arg}) AND deleted_at IS NULL"
    );
    let rows = conn.fetch(&sql, &[SqlType::Text; 6]).await?;
    Ok(rows.first().map(|r| Company {
        id: cell_text(r.first()).unwrap_or_default(),
        name: cell_text(r.get(1)).unwrap_or_default(),
        abbr: cell_text(r.get(2)).unwrap_or_default(),
        base_currency: cell_text(r.get(3)).unwrap_or_default(),
        retained_earnings_account: cell_text(r.get(4)),
        rounding_account: cell_text(r.get(5)),
    }))
}

const ACCOUNT_COLUMNS: &str = "id, account_name, account_path, company, root_type, account_type, is_group, frozen, currency, parent_account, account_number";
const ACCOUNT_TYPES: [SqlType; 11] = [
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Bool,
    SqlType::Bool,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
];

fn account_row(r: &[Cell]) -> Option<Account> {
    Some(Account {
        id: cell_text(r.first())?,
        name: cell_text(r.get(1)).unwrap_or_default(),
        path: cell_text(r.get(2)).unwrap_or_default(),
        company: cell_text(r.get(3)).unwrap_or_default(),
        root_type: RootType::parse(&cell_text(r.get(4)).unwrap_or_default())?,
        account_type: cell_text(r.get(5)),
        is_group: cell_bool(r.get(6)),
        frozen: cell_bool(r.get(7)),
        currency: cell_text(r.get(8)).filter(|c| !c.is_empty()),
        parent: cell_text(r.get(9)),
        number: cell_text(r.get(10)),
    })
}

/// Reads every account of a company.
pub async fn load_accounts(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &str,
) -> Result<Vec<Account>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let company = sql.arg(text(company));
    sql.text = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM account WHERE tenant_id = {tenant} AND company = {company} AND deleted_at IS NULL ORDER BY account_path"
    );
    let rows = conn.fetch(&sql, &ACCOUNT_TYPES).await?;
    Ok(rows.iter().filter_map(|r| account_row(r)).collect())
}

/// Reads the accounts with these ids (of any company; the caller checks).
pub async fn load_accounts_by_id(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    ids: &[&str],
) -> Result<HashMap<String, Account>, RepoError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut sql = Sql::default();
        let tenant = sql.arg(text(scope.tenant()));
        let list = chunk
            .iter()
            .map(|id| sql.arg(text(id)))
            .collect::<Vec<_>>()
            .join(", ");
        sql.text = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM account WHERE tenant_id = {tenant} AND id IN ({list}) AND deleted_at IS NULL"
        );
        for row in conn.fetch(&sql, &ACCOUNT_TYPES).await? {
            if let Some(account) = account_row(&row) {
                out.insert(account.id.clone(), account);
            }
        }
    }
    Ok(out)
}

/// The live accounts among `ids`; on PostgreSQL each is share-locked, so it cannot be
/// deleted before the caller's transaction ends.
pub async fn lock_accounts(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    ids: &[&str],
) -> Result<std::collections::HashSet<String>, RepoError> {
    let lock = match conn.backend() {
        prefiq::Backend::Postgres => " FOR SHARE",
        prefiq::Backend::Sqlite => "",
    };
    let mut out = std::collections::HashSet::new();
    for chunk in ids.chunks(500) {
        let mut sql = Sql::default();
        let tenant = sql.arg(text(scope.tenant()));
        let list = chunk
            .iter()
            .map(|id| sql.arg(text(id)))
            .collect::<Vec<_>>()
            .join(", ");
        sql.text = format!(
            "SELECT id FROM account WHERE tenant_id = {tenant} AND id IN ({list}) AND deleted_at IS NULL{lock}"
        );
        for row in conn.fetch(&sql, &[SqlType::Text]).await? {
            out.extend(cell_text(row.first()));
        }
    }
    Ok(out)
}

/// Reads every accounting period of a company, in date order.
pub async fn load_periods(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &str,
) -> Result<Vec<Period>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let company = sql.arg(text(company));
    sql.text = format!(
        "SELECT id, period_name, fiscal_year, start_date, end_date, status, version FROM accounting_period WHERE tenant_id = {tenant} AND company = {company} AND deleted_at IS NULL ORDER BY start_date"
    );
    let types = [
        SqlType::Text,
        SqlType::Text,
        SqlType::Text,
        SqlType::Text,
        SqlType::Text,
        SqlType::Text,
        SqlType::Int,
    ];
    let rows = conn.fetch(&sql, &types).await?;
    Ok(rows
        .iter()
        .map(|r| Period {
            id: cell_text(r.first()).unwrap_or_default(),
            name: cell_text(r.get(1)).unwrap_or_default(),
            fiscal_year: cell_text(r.get(2)).unwrap_or_default(),
            start: cell_text(r.get(3)).unwrap_or_default(),
            end: cell_text(r.get(4)).unwrap_or_default(),
            open: cell_text(r.get(5)).as_deref() != Some("Closed"),
            version: cell_int(r.get(6)),
        })
        .collect())
}

/// On PostgreSQL, locks a period's row (`FOR SHARE` to post into it, `FOR UPDATE` to
/// close it) and reads its status again; on SQLite, whose writes are serial, nothing.
pub async fn lock_period(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: &str,
    mode: &str,
) -> Result<Option<String>, RepoError> {
    if conn.backend() != prefiq::Backend::Postgres {
        return Ok(None);
    }
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let id = sql.arg(text(id));
    let mode = if mode == "FOR UPDATE" {
        "FOR UPDATE"
    } else {
        "FOR SHARE"
    };
    sql.text = format!(
        "SELECT status FROM accounting_period WHERE tenant_id = {tenant} AND id = {id} {mode}"
    );
    let rows = conn.fetch(&sql, &[SqlType::Text]).await?;
    Ok(rows.first().and_then(|r| cell_text(r.first())))
}

/// The period that holds `date`.
pub fn period_of<'p>(periods: &'p [Period], date: &str) -> Option<&'p Period> {
    let at = periods.partition_point(|p| p.start.as_str() <= date);
    at.checked_sub(1)
        .and_then(|i| periods.get(i))
        .filter(|p| date <= p.end.as_str())
}

/// The latest rate of one unit of `from` in `to` on or before `date`, from the
/// `exchange_rate` entity.
pub async fn load_rate(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    from: &str,
    to: &str,
    date: &str,
) -> Result<Option<(i64, String)>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let from = sql.arg(text(from));
    let to = sql.arg(text(to));
    let date = sql.arg(text(date));
    sql.text = format!(
        "SELECT rate, id FROM exchange_rate WHERE tenant_id = {tenant} AND from_code = {from} AND to_code = {to} AND date <= {date} AND deleted_at IS NULL ORDER BY date DESC LIMIT 1"
    );
    let rows = conn.fetch(&sql, &[SqlType::Int, SqlType::Text]).await?;
    Ok(rows
        .first()
        .map(|r| (cell_int(r.first()), cell_text(r.get(1)).unwrap_or_default())))
}

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
const GL_ROW_ARGS: usize = 18;

/// The most rows one multi-row statement carries: under SQLite's and PostgreSQL's
/// bound-parameter limits (32,766 and 65,535).
const ROWS_PER_STATEMENT: usize = 1_000;

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

/// One line of a journal entry as the API carries it, read for posting.
#[derive(Debug, Clone)]
struct DraftLine {
    account: String,
    debit: Option<(i64, String)>,
    credit: Option<(i64, String)>,
    rate: Option<i64>,
    party_type: Option<String>,
    party: Option<String>,
    cost_center: Option<String>,
    remark: Option<String>,
}

fn money_of(value: Option<&Value>) -> Option<(i64, String)> {
    let value = value?;
    let amount = value.get("amount")?.as_str()?;
    let currency = value.get("currency")?.as_str()?;
    let minor = prefiq_data::entity::value::parse_scaled(amount, currency_scale(currency)).ok()?;
    Some((minor, currency.to_owned()))
}

fn str_of(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn draft_lines(doc: &Map<String, Value>) -> Vec<DraftLine> {
    doc.get("lines")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|row| DraftLine {
                    account: str_of(row.get("account")).unwrap_or_default(),
                    debit: money_of(row.get("debit")),
                    credit: money_of(row.get("credit")),
                    rate: row
                        .get("exchange_rate")
                        .and_then(Value::as_str)
                        .and_then(money::parse_rate),
                    party_type: str_of(row.get("party_type")),
                    party: str_of(row.get("party")),
                    cost_center: str_of(row.get("cost_center")),
                    remark: str_of(row.get("remark")),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a journal entry against the posting rules and converts it into its postings:
/// debits equal credits in company currency (exact minor units; a foreign-currency
/// rounding difference of at most one minor unit per converted line goes to the company's
/// rounding account), every account a leaf of the company and not frozen, the posting
/// date in an open period. Every problem is reported, each at its JSON pointer.
pub async fn prepare_voucher(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: &str,
    doc: &Map<String, Value>,
) -> Result<(Company, Voucher), RepoError> {
    let mut errors = Vec::new();
    macro_rules! fail {
        ($pointer:expr, $code:expr, $message:expr $(,)?) => {
            errors.push(FieldError {
                pointer: $pointer,
                code: $code,
                message: $message,
            })
        };
    }
    let company_id = str_of(doc.get("company")).unwrap_or_default();
    let Some(company) = load_company(conn, scope, &company_id).await? else {
        return Err(invalid(
            "/company",
            "unknown_company",
            format!("company `{company_id}` does not exist"),
        ));
    };
    let base = company.base_currency.clone();
    let date = str_of(doc.get("posting_date")).unwrap_or_default();
    let periods = load_periods(conn, scope, &company.id).await?;
    let period = match period_of(&periods, &date) {
        None => {
            fail!(
                "/posting_date".into(),
                "no_period",
                format!("no accounting period of {} holds {date}", company.name),
            );
            None
        }
        Some(p) if !p.open => {
            fail!(
                "/posting_date".into(),
                "period_closed",
                format!(
                    "the accounting period {} ({} to {}) is closed",
                    p.name, p.start, p.end
                ),
            );
            None
        }
        Some(p) => {
            // On PostgreSQL a close may commit between the read above and this commit: a
            // share lock on the period row waits for it, and the re-read sees its status.
            if lock_period(conn, scope, &p.id, "FOR SHARE")
                .await?
                .as_deref()
                == Some("Closed")
            {
                fail!(
                    "/posting_date".into(),
                    "period_closed",
                    format!(
                        "the accounting period {} ({} to {}) is closed",
                        p.name, p.start, p.end
                    ),
                );
            }
            Some(p.id.clone())
        }
    };
    let lines = draft_lines(doc);
    if lines.len() < 2 {
        fail!(
            "/lines".into(),
            "too_few_lines",
            "a journal entry needs at least two lines".into(),
        );
    }
    let ids: Vec<&str> = lines.iter().map(|l| l.account.as_str()).collect();
    let accounts = load_accounts_by_id(conn, scope, &ids).await?;
    let mut postings = Vec::with_capacity(lines.len() + 1);
    let (mut total_debit, mut total_credit, mut converted) = (0i64, 0i64, 0i64);
    for (i, line) in lines.iter().enumerate() {
        let at = |field: &str| format!("/lines/{i}/{field}");
        match accounts.get(&line.account) {
            None => fail!(
                at("account"),
                "unknown_account",
                format!("account `{}` does not exist", line.account),
            ),
            Some(a) if a.company != company.id => fail!(
                at("account"),
                "other_company",
                format!("account {} belongs to another company", a.path),
            ),
            Some(a) if a.is_group => fail!(
                at("account"),
                "group_account",
                format!("account {} is a group; post to one of its leaves", a.path),
            ),
            Some(a) if a.frozen => fail!(
                at("account"),
                "frozen_account",
                format!("account {} is frozen", a.path),
            ),
            Some(_) => {}
        }
        let (side_debit, amount, currency) = match (&line.debit, &line.credit) {
            (Some((d, c)), None) => (true, *d, c.clone()),
            (None, Some((d, c))) => (false, *d, c.clone()),
            (Some((d, c)), Some((0, _))) => (true, *d, c.clone()),
            (Some((0, _)), Some((d, c))) => (false, *d, c.clone()),
            (None, None) => {
                fail!(
                    at("debit"),
                    "no_amount",
                    "a line needs a debit or a credit".into(),
                );
                continue;
            }
            (Some(_), Some(_)) => {
                fail!(
                    at("credit"),
                    "both_sides",
                    "a line has a debit or a credit, not both".into(),
                );
                continue;
            }
        };
        if amount < 0 {
            fail!(
                at(if side_debit { "debit" } else { "credit" }),
                "negative",
                "amounts are not negative: use the other side".into(),
            );
            continue;
        }
        if amount == 0 {
            fail!(
                at(if side_debit { "debit" } else { "credit" }),
                "zero_amount",
                "a line moves an amount: its debit or credit is not zero".into(),
            );
            continue;
        }
        if let Some(a) = accounts.get(&line.account)
            && let Some(account_currency) = &a.currency
            && *account_currency != currency
        {
            fail!(
                at(if side_debit { "debit" } else { "credit" }),
                "wrong_currency",
                format!(
                    "account {} takes {account_currency}, not {currency}",
                    a.path
                ),
            );
        }
        let mut rate_source = None;
        let rate = if currency == base {
            if line.rate.is_some_and(|r| r != RATE_ONE) {
                fail!(
                    at("exchange_rate"),
                    "wrong_rate",
                    format!("a {base} line of a {base} company has the rate 1"),
                );
            }
            RATE_ONE
        } else {
            match line.rate {
                Some(rate) => rate,
                None => match load_rate(conn, scope, &currency, &base, &date).await? {
                    Some((rate, source)) => {
                        rate_source = Some(source);
                        rate
                    }
                    None => {
                        fail!(
                            at("exchange_rate"),
                            "no_rate",
                            format!(
                                "no exchange rate {currency} to {base} on or before {date}; give one"
                            ),
                        );
                        continue;
                    }
                },
            }
        };
        if currency != base {
            converted += 1;
        }
        let Some(base_amount) = money::convert_currency(amount, &currency, rate, &base) else {
            fail!(
                at("exchange_rate"),
                "overflow",
                "the converted amount overflows".into(),
            );
            continue;
        };
        let posting = PostingLine {
            account: line.account.clone(),
            debit: if side_debit { base_amount } else { 0 },
            credit: if side_debit { 0 } else { base_amount },
            currency,
            debit_in_currency: if side_debit { amount } else { 0 },
            credit_in_currency: if side_debit { 0 } else { amount },
            party_type: line.party_type.clone(),
            party: line.party.clone(),
            cost_center: line.cost_center.clone(),
            remark: line.remark.clone(),
            rate: Some(rate),
            rate_source,
        };
        total_debit = total_debit.saturating_add(posting.debit);
        total_credit = total_credit.saturating_add(posting.credit);
        postings.push(posting);
    }
    if errors.is_empty() && total_debit == 0 && total_credit == 0 {
        // Lines in a foreign currency can round to nothing in the company's currency.
        fail!(
            "/lines".into(),
            "zero_amount",
            format!("the entry moves nothing in {base}: every amount converts to zero"),
        );
    }
    let difference = total_debit - total_credit;
    if errors.is_empty() && difference != 0 {
        if difference.abs() <= converted {
            match &company.rounding_account {
                Some(account) => postings.push(PostingLine {
                    account: account.clone(),
                    debit: if difference < 0 { -difference } else { 0 },
                    credit: if difference > 0 { difference } else { 0 },
                    currency: base.clone(),
                    debit_in_currency: 0,
                    credit_in_currency: 0,
                    party_type: None,
                    party: None,
                    cost_center: None,
                    remark: Some("exchange rounding".into()),
                    rate: Some(RATE_ONE),
                    rate_source: None,
                }),
                None => fail!(
                    "/lines".into(),
                    "no_rounding_account",
                    format!(
                        "a rounding difference of {} {base} needs the company's rounding account",
                        money::format_minor(difference.abs(), &base)
                    ),
                ),
            }
        } else {
            fail!(
                "/lines".into(),
                "unbalanced",
                format!(
                    "debits ({}) and credits ({}) differ by {} {base}",
                    money::format_minor(total_debit, &base),
                    money::format_minor(total_credit, &base),
                    money::format_minor(difference.abs(), &base)
                ),
            );
        }
    }
    if !errors.is_empty() {
        return Err(RepoError::Invalid(errors));
    }
    let voucher = Voucher {
        journal_entry: id.to_owned(),
        posting_date: date,
        period: period.unwrap_or_default(),
        lines: postings,
        is_reversal: false,
        is_closing: false,
    };
    Ok((company, voucher))
}

/// The reversal of a submitted entry's postings, dated as they were; refused when their
/// period is closed.
pub async fn reversal_voucher(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: &str,
    doc: &Map<String, Value>,
) -> Result<(Company, Voucher), RepoError> {
    let company_id = str_of(doc.get("company")).unwrap_or_default();
    let Some(company) = load_company(conn, scope, &company_id).await? else {
        return Err(invalid(
            "/company",
            "unknown_company",
            "the company does not exist",
        ));
    };
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let entry = sql.arg(text(id));
    let no = sql.arg(Arg::Bool(Some(false)));
    sql.text = format!(
        "SELECT account, posting_date, period, debit, credit, line_debit_currency, line_debit, line_credit, party_type, party, cost_center, remark FROM gl_entry WHERE tenant_id = {tenant} AND journal_entry = {entry} AND is_reversal = {no} ORDER BY created_at, id"
    );
    let types = [
        SqlType::Text,
        SqlType::Text,
        SqlType::Text,
        SqlType::Int,
        SqlType::Int,
        SqlType::Text,
        SqlType::Int,
        SqlType::Int,
        SqlType::Text,
        SqlType::Text,
        SqlType::Text,
        SqlType::Text,
    ];
    let rows = conn.fetch(&sql, &types).await?;
    let periods = load_periods(conn, scope, &company.id).await?;
    let period_id = rows
        .first()
        .and_then(|r| cell_text(r.get(2)))
        .unwrap_or_default();
    let locked = lock_period(conn, scope, &period_id, "FOR SHARE").await?;
    if let Some(p) = periods.iter().find(|p| p.id == period_id)
        && (!p.open || locked.as_deref() == Some("Closed"))
    {
        return Err(invalid(
            "/posting_date",
            "period_closed",
            format!(
                "the accounting period {} is closed; its entries cannot be cancelled",
                p.name
            ),
        ));
    }
    let lines = rows
        .iter()
        .map(|r| PostingLine {
            account: cell_text(r.first()).unwrap_or_default(),
            debit: cell_int(r.get(4)),
            credit: cell_int(r.get(3)),
            currency: cell_text(r.get(5)).unwrap_or_default(),
            debit_in_currency: cell_int(r.get(7)),
            credit_in_currency: cell_int(r.get(6)),
            party_type: cell_text(r.get(8)),
            party: cell_text(r.get(9)),
            cost_center: cell_text(r.get(10)),
            remark: cell_text(r.get(11)),
            rate: None,
            rate_source: None,
        })
        .collect();
    let posting_date = rows
        .first()
        .and_then(|r| cell_text(r.get(1)))
        .unwrap_or_default();
    Ok((
        company,
        Voucher {
            journal_entry: id.to_owned(),
            posting_date,
            period: period_id,
            lines,
            is_reversal: true,
            is_closing: false,
        },
    ))
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
