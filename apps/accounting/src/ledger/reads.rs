//! Reads of companies, accounts, periods and exchange rates.

use std::collections::HashMap;

use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Cell, Conn, Sql, SqlType};

use super::*;

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
    /// Where payments post the exchange gain or loss on settling an invoice.
    pub exchange_gain_loss_account: Option<String>,
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
        "SELECT id, company_name, abbr, currency, retained_earnings_account, rounding_account, exchange_gain_loss_account FROM company WHERE tenant_id = {tenant} AND (id = {id_arg} OR company_name = {id_arg} OR abbr = {id_arg}) AND deleted_at IS NULL"
    );
    let rows = conn.fetch(&sql, &[SqlType::Text; 7]).await?;
    Ok(rows.first().map(|r| Company {
        id: cell_text(r.first()).unwrap_or_default(),
        name: cell_text(r.get(1)).unwrap_or_default(),
        abbr: cell_text(r.get(2)).unwrap_or_default(),
        base_currency: cell_text(r.get(3)).unwrap_or_default(),
        retained_earnings_account: cell_text(r.get(4)),
        rounding_account: cell_text(r.get(5)),
        exchange_gain_loss_account: cell_text(r.get(6)),
    }))
}

pub(super) const ACCOUNT_COLUMNS: &str = "id, account_name, account_path, company, root_type, account_type, is_group, frozen, currency, parent_account, account_number";
pub(super) const ACCOUNT_TYPES: [SqlType; 11] = [
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

pub(super) fn account_row(r: &[Cell]) -> Option<Account> {
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
