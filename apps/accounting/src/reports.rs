//! Financial reports: trial balance, general ledger, balance sheet, profit and loss, and
//! the balance per account and currency that plain-text tools print. They all read the
//! per-period balances kept as entries post; only the parts of periods a date range cuts
//! through are summed from GL entries. Amounts are exact minor units of the company's
//! currency, shown as decimal strings.

use std::collections::{BTreeMap, HashMap};

use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Arg, Conn, Sql, SqlType};
use serde::Serialize;
use serde_json::{Value, json};

use crate::books::Books;
use crate::dates;
use crate::ledger::{
    self, Account, Company, Period, RootType, cell_int, cell_text, invalid, store, text,
};
use crate::money::format_minor;

/// Debit and credit totals per account id.
pub type Totals = HashMap<String, (i64, i64)>;

/// The earliest date any report looks back to.
const BEGINNING: &str = "0000-01-01";

/// Most GL rows one general-ledger answer carries.
pub const MAX_LEDGER_ROWS: usize = 10_000;

/// Sums postings per account over `from..=to`: whole periods from their balance rows,
/// the parts of periods the range cuts through from the ledger store's postings.
pub async fn movement(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &str,
    periods: &[Period],
    (from, to): (&str, &str),
    include_closing: bool,
) -> Result<Totals, RepoError> {
    let mut totals = Totals::new();
    let whole: Vec<&Period> = periods
        .iter()
        .filter(|p| p.start.as_str() >= from && p.end.as_str() <= to)
        .collect();
    for chunk in whole.chunks(500) {
        let mut sql = Sql::default();
        let tenant = sql.arg(text(scope.tenant()));
        let company_arg = sql.arg(text(company));
        let list = chunk
            .iter()
            .map(|p| sql.arg(text(&p.id)))
            .collect::<Vec<_>>()
            .join(", ");
        let closing = if include_closing {
            String::new()
        } else {
            format!(" AND is_closing = {}", sql.arg(Arg::Bool(Some(false))))
        };
        sql.text = format!(
            "SELECT account, CAST(SUM(debit) AS BIGINT), CAST(SUM(credit) AS BIGINT) FROM account_balance WHERE tenant_id = {tenant} AND company = {company_arg} AND period IN ({list}){closing} GROUP BY account"
        );
        add_rows(
            &mut totals,
            conn.fetch(&sql, &[SqlType::Text, SqlType::Int, SqlType::Int])
                .await?,
        );
    }
    for p in periods.iter().filter(|p| {
        p.start.as_str() <= to
            && p.end.as_str() >= from
            && !(p.start.as_str() >= from && p.end.as_str() <= to)
    }) {
        let a = if p.start.as_str() > from {
            p.start.as_str()
        } else {
            from
        };
        let b = if p.end.as_str() < to {
            p.end.as_str()
        } else {
            to
        };
        let (Some(a), Some(b)) = (store::day_number(a), store::day_number(b)) else {
            continue;
        };
        let mut sql = Sql::default();
        let company_key = store::key_of(&mut sql, scope.tenant(), company);
        let tenant = sql.arg(text(scope.tenant()));
        let a = sql.arg(Arg::Int(Some(a)));
        let b = sql.arg(Arg::Int(Some(b)));
        let closing = if include_closing {
            String::new()
        } else {
            format!(
                " AND p.kind & {} = 0",
                sql.arg(Arg::Int(Some(store::kind::CLOSING)))
            )
        };
        sql.text = format!(
            "SELECT k.id, CAST(SUM(p.debit) AS BIGINT), CAST(SUM(p.credit) AS BIGINT) FROM ledger_posting p JOIN ledger_key k ON k.key = p.account WHERE p.tenant_id = {tenant} AND p.company = {company_key} AND p.day >= {a} AND p.day <= {b}{closing} GROUP BY k.id"
        );
        add_rows(
            &mut totals,
            conn.fetch(&sql, &[SqlType::Text, SqlType::Int, SqlType::Int])
                .await?,
        );
    }
    Ok(totals)
}

fn add_rows(totals: &mut Totals, rows: Vec<Vec<prefiq_data::entity::sql::Cell>>) {
    for row in rows {
        let entry = totals
            .entry(cell_text(row.first()).unwrap_or_default())
            .or_default();
        entry.0 += cell_int(row.get(1));
        entry.1 += cell_int(row.get(2));
    }
}

/// Everything a report reads about a company, loaded on one reading connection.
struct Snapshot {
    company: Company,
    accounts: Vec<Account>,
    periods: Vec<Period>,
}

async fn books_of(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    key: &str,
) -> Result<Snapshot, RepoError> {
    let Some(company) = ledger::load_company(conn, scope, key).await? else {
        return Err(RepoError::NotFound {
            entity: "company".into(),
            id: key.to_owned(),
        });
    };
    let accounts = ledger::load_accounts(conn, scope, &company.id).await?;
    let periods = ledger::load_periods(conn, scope, &company.id).await?;
    Ok(Snapshot {
        company,
        accounts,
        periods,
    })
}

/// The accounts in tree order (depth first, siblings by number then path) with depths.
fn tree_order(accounts: &[Account]) -> Vec<(usize, usize)> {
    let mut children: HashMap<Option<&str>, Vec<usize>> = HashMap::new();
    let ids: std::collections::HashSet<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
    for (i, a) in accounts.iter().enumerate() {
        let parent = a.parent.as_deref().filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(i);
    }
    for list in children.values_mut() {
        list.sort_by(|&x, &y| {
            let (a, b) = (&accounts[x], &accounts[y]);
            (a.root_type, a.number.as_deref().unwrap_or(""), &a.path).cmp(&(
                b.root_type,
                b.number.as_deref().unwrap_or(""),
                &b.path,
            ))
        });
    }
    let mut out = Vec::with_capacity(accounts.len());
    let mut stack: Vec<(usize, usize)> = children
        .get(&None)
        .map(|roots| roots.iter().rev().map(|&i| (i, 0)).collect())
        .unwrap_or_default();
    while let Some((i, depth)) = stack.pop() {
        out.push((i, depth));
        // A bad parent chain cannot loop: the closure table refuses cycles, and every
        // account is visited at most once here.
        if out.len() > accounts.len() {
            break;
        }
        if let Some(kids) = children.get(&Some(accounts[i].id.as_str())) {
            stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
        }
    }
    out
}

/// Rolls leaf values up the tree: each group gets the sum of its descendants.
fn roll_up(
    accounts: &[Account],
    leaf: &dyn Fn(&Account) -> Vec<i64>,
    width: usize,
) -> Vec<Vec<i64>> {
    let index: HashMap<&str, usize> = accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.as_str(), i))
        .collect();
    let mut values: Vec<Vec<i64>> = accounts
        .iter()
        .map(|a| if a.is_group { vec![0; width] } else { leaf(a) })
        .collect();
    for (i, a) in accounts.iter().enumerate() {
        if a.is_group {
            continue;
        }
        let own = values[i].clone();
        let mut parent = a.parent.as_deref();
        let mut hops = 0;
        while let Some(p) = parent.and_then(|p| index.get(p)).copied() {
            for (slot, v) in values[p].iter_mut().zip(&own) {
                *slot += v;
            }
            parent = accounts[p].parent.as_deref();
            hops += 1;
            if hops > accounts.len() {
                break;
            }
        }
    }
    values
}

/// One row of the trial balance.
#[derive(Debug, Clone, Serialize)]
pub struct TrialBalanceRow {
    /// The account id.
    pub account: String,
    /// Its path.
    pub account_path: String,
    /// Its name.
    pub account_name: String,
    /// Its root type.
    pub root_type: RootType,
    /// Whether it is a group (its figures are its descendants').
    pub is_group: bool,
    /// Depth in the tree (roots are 0).
    pub depth: usize,
    /// Opening balance, debit side.
    pub opening_debit: String,
    /// Opening balance, credit side.
    pub opening_credit: String,
    /// Debits in the range.
    pub debit: String,
    /// Credits in the range.
    pub credit: String,
    /// Closing balance, debit side.
    pub closing_debit: String,
    /// Closing balance, credit side.
    pub closing_credit: String,
}

fn sides(net: i64) -> (i64, i64) {
    if net >= 0 { (net, 0) } else { (0, -net) }
}

/// The fiscal year start of the period holding `date`, or the first period's start.
fn year_start(periods: &[Period], date: &str) -> String {
    let year = ledger::period_of(periods, date).map(|p| p.fiscal_year.clone());
    periods
        .iter()
        .filter(|p| year.as_deref().is_none_or(|y| p.fiscal_year == y))
        .map(|p| p.start.clone())
        .min()
        .unwrap_or_else(|| date.to_owned())
}

fn check_date(name: &str, value: &str) -> Result<(), RepoError> {
    if dates::parse(value).is_none() {
        return Err(invalid(
            &format!("/{name}"),
            "wrong_type",
            format!("`{value}` is not a date such as 2026-01-31"),
        ));
    }
    Ok(())
}

/// Checks a report's dates: real dates, and `from` no later than `to` (an empty range is a
/// mistake to say so, not a report of nothing).
fn check_range(from: Option<&str>, to: &str) -> Result<(), RepoError> {
    check_date("to", to)?;
    if let Some(from) = from {
        check_date("from", from)?;
        if from > to {
            return Err(invalid(
                "/from",
                "empty_range",
                format!("`from` ({from}) is after `to` ({to})"),
            ));
        }
    }
    Ok(())
}

/// Today's date in UTC.
pub fn today() -> String {
    dates::format(
        jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date(),
    )
}

/// The trial balance of a company over `from..=to` (`from` defaults to the start of the
/// fiscal year that holds `to`), rolled up the tree; the `totals` sum the leaves.
pub async fn trial_balance(
    books: &Books,
    scope: &TenantScope,
    company: &str,
    from: Option<&str>,
    to: &str,
) -> Result<Value, RepoError> {
    check_range(from, to)?;
    let (company, from, to) = (company.to_owned(), from.map(str::to_owned), to.to_owned());
    let scope_for = scope.clone();
    books
        .repository()?
        .read(
            scope,
            Box::new(move |conn| {
                let (scope, company, from, to) =
                    (scope_for.clone(), company.clone(), from.clone(), to.clone());
                Box::pin(async move {
                    let data = books_of(conn, &scope, &company).await?;
                    let from = from.unwrap_or_else(|| year_start(&data.periods, &to));
                    let before = dates::previous_day(&from).unwrap_or_else(|| BEGINNING.to_owned());
                    let opening = movement(
                        conn,
                        &scope,
                        &data.company.id,
                        &data.periods,
                        (BEGINNING, &before),
                        true,
                    )
                    .await?;
                    let moved = movement(
                        conn,
                        &scope,
                        &data.company.id,
                        &data.periods,
                        (&from, &to),
                        true,
                    )
                    .await?;
                    Ok(render_trial_balance(&data, &opening, &moved, &from, &to))
                })
            }),
        )
        .await
}

fn render_trial_balance(
    data: &Snapshot,
    opening: &Totals,
    moved: &Totals,
    from: &str,
    to: &str,
) -> Value {
    let base = &data.company.base_currency;
    let values = roll_up(
        &data.accounts,
        &|a| {
            let (od, oc) = opening.get(&a.id).copied().unwrap_or_default();
            let (d, c) = moved.get(&a.id).copied().unwrap_or_default();
            vec![od - oc, d, c]
        },
        3,
    );
    let mut rows = Vec::new();
    let mut totals = [0i64; 6];
    for (i, depth) in tree_order(&data.accounts) {
        let a = &data.accounts[i];
        let [open, debit, credit] = [values[i][0], values[i][1], values[i][2]];
        let (od, oc) = sides(open);
        let (cd, cc) = sides(open + debit - credit);
        if !a.is_group {
            for (t, v) in totals.iter_mut().zip([od, oc, debit, credit, cd, cc]) {
                *t += v;
            }
        }
        rows.push(TrialBalanceRow {
            account: a.id.clone(),
            account_path: a.path.clone(),
            account_name: a.name.clone(),
            root_type: a.root_type,
            is_group: a.is_group,
            depth,
            opening_debit: format_minor(od, base),
            opening_credit: format_minor(oc, base),
            debit: format_minor(debit, base),
            credit: format_minor(credit, base),
            closing_debit: format_minor(cd, base),
            closing_credit: format_minor(cc, base),
        });
    }
    json!({
        "company": data.company.id,
        "currency": base,
        "from": from,
        "to": to,
        "rows": rows,
        "totals": {
            "opening_debit": format_minor(totals[0], base),
            "opening_credit": format_minor(totals[1], base),
            "debit": format_minor(totals[2], base),
            "credit": format_minor(totals[3], base),
            "closing_debit": format_minor(totals[4], base),
            "closing_credit": format_minor(totals[5], base),
        }
    })
}

/// Filters of the general ledger.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerFilter {
    /// The company (id, name or abbreviation).
    pub company: String,
    /// An account id or path; a group takes in its descendants.
    pub account: Option<String>,
    /// First date (default: the start of the fiscal year holding `to`).
    pub from: Option<String>,
    /// Last date (default: today).
    pub to: Option<String>,
    /// A party.
    pub party: Option<String>,
    /// A cost center id.
    pub cost_center: Option<String>,
    /// Most rows (default 1,000, at most 10,000).
    pub limit: Option<usize>,
    /// `csv` for CSV.
    pub format: Option<String>,
}

/// The general ledger: GL entries in date order with a running balance from the opening
/// balance of the accounts chosen.
pub async fn general_ledger(
    books: &Books,
    scope: &TenantScope,
    filter: &LedgerFilter,
) -> Result<Value, RepoError> {
    let to = filter.to.clone().unwrap_or_else(today);
    check_range(filter.from.as_deref(), &to)?;
    let limit = filter.limit.unwrap_or(1_000);
    if !(1..=MAX_LEDGER_ROWS).contains(&limit) {
        return Err(invalid(
            "/limit",
            "out_of_range",
            format!("`limit` is from 1 to {MAX_LEDGER_ROWS}, not {limit}"),
        ));
    }
    let filter = filter.clone();
    let scope_for = scope.clone();
    books
        .repository()?
        .read(
            scope,
            Box::new(move |conn| {
                let (scope, filter, to) = (scope_for.clone(), filter.clone(), to.clone());
                Box::pin(async move {
                    let data = books_of(conn, &scope, &filter.company).await?;
                    let base = data.company.base_currency.clone();
                    let chosen: Vec<&Account> = match &filter.account {
                        None => data.accounts.iter().filter(|a| !a.is_group).collect(),
                        Some(key) => {
                            let Some(root) = data.accounts.iter().find(|a| a.id == *key || a.path == *key) else {
                                return Err(invalid("/account", "unknown_account", format!("account `{key}` is not an account of the company")));
                            };
                            let prefix = format!("{}:", root.path);
                            data.accounts
                                .iter()
                                .filter(|a| !a.is_group && (a.id == root.id || a.path.starts_with(&prefix)))
                                .collect()
                        }
                    };
                    let ids: std::collections::HashSet<&str> = chosen.iter().map(|a| a.id.as_str()).collect();
                    let paths: HashMap<&str, &str> = data.accounts.iter().map(|a| (a.id.as_str(), a.path.as_str())).collect();
                    let from = filter.from.clone().unwrap_or_else(|| year_start(&data.periods, &to));
                    let before = dates::previous_day(&from).unwrap_or_else(|| BEGINNING.to_owned());
                    let opening_totals = movement(conn, &scope, &data.company.id, &data.periods, (BEGINNING, &before), true).await?;
                    let opening: i64 = if filter.party.is_some() || filter.cost_center.is_some() {
                        0
                    } else {
                        opening_totals.iter().filter(|(k, _)| ids.contains(k.as_str())).map(|(_, (d, c))| d - c).sum()
                    };
                    let mut sql = Sql::default();
                    let company = store::key_of(&mut sql, scope.tenant(), &data.company.id);
                    let tenant = sql.arg(text(scope.tenant()));
                    let a = sql.arg(Arg::Int(store::day_number(&from)));
                    let b = sql.arg(Arg::Int(store::day_number(&to)));
                    let mut extra = String::new();
                    if filter.account.is_some() {
                        let list = chosen.iter().map(|acc| sql.arg(text(&acc.id))).collect::<Vec<_>>();
                        if list.is_empty() {
                            extra.push_str(" AND 1 = 0");
                        } else {
                            extra.push_str(&format!(" AND p.account IN (SELECT key FROM ledger_key WHERE tenant_id = {tenant} AND id IN ({}))", list.join(", ")));
                        }
                    }
                    if let Some(party) = &filter.party {
                        extra.push_str(&format!(" AND l.party = {}", sql.arg(text(party))));
                    }
                    if let Some(cc) = &filter.cost_center {
                        extra.push_str(&format!(" AND l.cost_center = {}", sql.arg(text(cc))));
                    }
                    let limit_arg = sql.arg(Arg::Int(Some(limit as i64 + 1)));
                    // Straight from the ledger store, in the order postings were written:
                    // the `gl_entry` view's columns, without the joins the report needs not.
                    sql.text = format!(
                        "SELECT p.day, ka.id, p.journal_entry, j.name, p.debit, p.credit, kl.id, p.line_debit, p.line_credit, l.party, CASE WHEN p.kind & 4 <> 0 THEN 'exchange rounding' ELSE l.remark END, p.kind FROM ledger_posting p JOIN ledger_key ka ON ka.key = p.account JOIN ledger_key kl ON kl.key = p.currency LEFT JOIN journal_entry_line l ON l.tenant_id = p.tenant_id AND l.parent_id = p.journal_entry AND l.parent_field = 'lines' AND l.idx = p.line AND p.kind & 4 = 0 LEFT JOIN journal_entry j ON j.tenant_id = p.tenant_id AND j.id = p.journal_entry WHERE p.tenant_id = {tenant} AND p.company = {company} AND p.day >= {a} AND p.day <= {b}{extra} ORDER BY p.day, p.seq LIMIT {limit_arg}"
                    );
                    let types = [SqlType::Int, SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Int, SqlType::Int, SqlType::Text, SqlType::Int, SqlType::Int, SqlType::Text, SqlType::Text, SqlType::Int];
                    let mut rows = conn.fetch(&sql, &types).await?;
                    let truncated = rows.len() > limit;
                    rows.truncate(limit);
                    let mut balance = opening;
                    let (mut total_debit, mut total_credit) = (0i64, 0i64);
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        let (debit, credit) = (cell_int(r.get(4)), cell_int(r.get(5)));
                        balance += debit - credit;
                        total_debit += debit;
                        total_credit += credit;
                        let currency = cell_text(r.get(6)).unwrap_or_default();
                        let account = cell_text(r.get(1)).unwrap_or_default();
                        out.push(json!({
                            "posting_date": crate::dates::format_day_number(cell_int(r.first())),
                            "account": account,
                            "account_path": paths.get(account.as_str()),
                            "journal_entry": cell_text(r.get(2)),
                            "journal_entry_name": cell_text(r.get(3)),
                            "debit": format_minor(debit, &base),
                            "credit": format_minor(credit, &base),
                            "currency": currency,
                            "debit_in_currency": format_minor(cell_int(r.get(7)), &currency),
                            "credit_in_currency": format_minor(cell_int(r.get(8)), &currency),
                            "party": cell_text(r.get(9)),
                            "remark": cell_text(r.get(10)),
                            "is_reversal": cell_int(r.get(11)) & store::kind::REVERSAL != 0,
                            "is_closing": cell_int(r.get(11)) & store::kind::CLOSING != 0,
                            "balance": format_minor(balance, &base),
                        }));
                    }
                    Ok(json!({
                        "company": data.company.id,
                        "currency": base,
                        "from": from,
                        "to": to,
                        "opening": format_minor(opening, &base),
                        "rows": out,
                        "total_debit": format_minor(total_debit, &base),
                        "total_credit": format_minor(total_credit, &base),
                        "closing": format_minor(balance, &base),
                        "truncated": truncated,
                    }))
                })
            }),
        )
        .await
}

/// The report columns: each period of the fiscal year holding `to` that starts by `to`,
/// clipped to `from..=to`.
fn columns(periods: &[Period], from: &str, to: &str) -> Vec<(String, String, String)> {
    periods
        .iter()
        .filter(|p| p.start.as_str() <= to && p.end.as_str() >= from)
        .map(|p| {
            let a = if p.start.as_str() > from {
                p.start.clone()
            } else {
                from.to_owned()
            };
            let b = if p.end.as_str() < to {
                p.end.clone()
            } else {
                to.to_owned()
            };
            (p.name.clone(), a, b)
        })
        .collect()
}

fn statement_rows(
    data: &Snapshot,
    roots: &[RootType],
    values: &[Vec<i64>],
    sign: &dyn Fn(RootType) -> i64,
) -> Vec<Value> {
    let base = &data.company.base_currency;
    tree_order(&data.accounts)
        .into_iter()
        .filter(|(i, _)| roots.contains(&data.accounts[*i].root_type))
        .map(|(i, depth)| {
            let a = &data.accounts[i];
            json!({
                "account": a.id,
                "account_path": a.path,
                "account_name": a.name,
                "root_type": a.root_type,
                "is_group": a.is_group,
                "depth": depth,
                "values": values[i].iter().map(|v| format_minor(v * sign(a.root_type), base)).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn root_total(data: &Snapshot, values: &[Vec<i64>], root: RootType, column: usize) -> i64 {
    data.accounts
        .iter()
        .zip(values)
        .filter(|(a, _)| a.root_type == root && !a.is_group)
        .map(|(_, v)| v[column])
        .sum()
}

/// The balance sheet: assets, liabilities and equity as of the end of each period of the
/// fiscal year holding `to` (the last column as of `to`). Income and expense not yet
/// closed show as the provisional profit, so every column balances.
pub async fn balance_sheet(
    books: &Books,
    scope: &TenantScope,
    company: &str,
    to: &str,
) -> Result<Value, RepoError> {
    check_date("to", to)?;
    let (company, to) = (company.to_owned(), to.to_owned());
    let scope_for = scope.clone();
    books
        .repository()?
        .read(
            scope,
            Box::new(move |conn| {
                let (scope, company, to) = (scope_for.clone(), company.clone(), to.clone());
                Box::pin(async move {
                    let data = books_of(conn, &scope, &company).await?;
                    let base = data.company.base_currency.clone();
                    let from = year_start(&data.periods, &to);
                    let cols = columns(&data.periods, &from, &to);
                    let mut per_column = Vec::new();
                    for (_, _, end) in &cols {
                        per_column.push(movement(conn, &scope, &data.company.id, &data.periods, (BEGINNING, end), true).await?);
                    }
                    let values = roll_up(
                        &data.accounts,
                        &|a| per_column.iter().map(|t| t.get(&a.id).map_or(0, |(d, c)| d - c)).collect(),
                        cols.len(),
                    );
                    let sign = |root: RootType| if root == RootType::Asset { 1 } else { -1 };
                    let mut summary = Vec::new();
                    #[allow(clippy::needless_range_loop)] // `c` indexes every column of `values` too.
                    for c in 0..cols.len() {
                        let assets = root_total(&data, &values, RootType::Asset, c);
                        let liabilities = -root_total(&data, &values, RootType::Liability, c);
                        let equity = -root_total(&data, &values, RootType::Equity, c);
                        let provisional = -(root_total(&data, &values, RootType::Income, c) + root_total(&data, &values, RootType::Expense, c));
                        summary.push(json!({
                            "column": cols[c].0,
                            "as_of": cols[c].2,
                            "total_assets": format_minor(assets, &base),
                            "total_liabilities": format_minor(liabilities, &base),
                            "total_equity": format_minor(equity, &base),
                            "provisional_profit": format_minor(provisional, &base),
                            "total_liabilities_and_equity": format_minor(liabilities + equity + provisional, &base),
                            "balanced": assets == liabilities + equity + provisional,
                        }));
                    }
                    Ok(json!({
                        "company": data.company.id,
                        "currency": base,
                        "columns": cols.iter().map(|c| json!({"name": c.0, "as_of": c.2})).collect::<Vec<_>>(),
                        "rows": statement_rows(&data, &[RootType::Asset, RootType::Liability, RootType::Equity], &values, &sign),
                        "summary": summary,
                    }))
                })
            }),
        )
        .await
}

/// Profit and loss: income and expense per period over `from..=to` (`from` defaults to
/// the start of the fiscal year holding `to`), closing entries left out.
pub async fn profit_and_loss(
    books: &Books,
    scope: &TenantScope,
    company: &str,
    from: Option<&str>,
    to: &str,
) -> Result<Value, RepoError> {
    check_range(from, to)?;
    let (company, from, to) = (company.to_owned(), from.map(str::to_owned), to.to_owned());
    let scope_for = scope.clone();
    books
        .repository()?
        .read(
            scope,
            Box::new(move |conn| {
                let (scope, company, from, to) = (scope_for.clone(), company.clone(), from.clone(), to.clone());
                Box::pin(async move {
                    let data = books_of(conn, &scope, &company).await?;
                    let base = data.company.base_currency.clone();
                    let from = from.unwrap_or_else(|| year_start(&data.periods, &to));
                    let cols = columns(&data.periods, &from, &to);
                    let mut per_column = Vec::new();
                    for (_, a, b) in &cols {
                        per_column.push(movement(conn, &scope, &data.company.id, &data.periods, (a, b), false).await?);
                    }
                    let values = roll_up(
                        &data.accounts,
                        &|a| per_column.iter().map(|t| t.get(&a.id).map_or(0, |(d, c)| d - c)).collect(),
                        cols.len(),
                    );
                    let sign = |root: RootType| if root == RootType::Income { -1 } else { 1 };
                    let mut summary = Vec::new();
                    let mut total = 0;
                    #[allow(clippy::needless_range_loop)] // `c` indexes every column of `values` too.
                    for c in 0..cols.len() {
                        let income = -root_total(&data, &values, RootType::Income, c);
                        let expense = root_total(&data, &values, RootType::Expense, c);
                        total += income - expense;
                        summary.push(json!({
                            "column": cols[c].0,
                            "from": cols[c].1,
                            "to": cols[c].2,
                            "total_income": format_minor(income, &base),
                            "total_expense": format_minor(expense, &base),
                            "net_profit": format_minor(income - expense, &base),
                        }));
                    }
                    Ok(json!({
                        "company": data.company.id,
                        "currency": base,
                        "from": from,
                        "to": to,
                        "columns": cols.iter().map(|c| json!({"name": c.0, "from": c.1, "to": c.2})).collect::<Vec<_>>(),
                        "rows": statement_rows(&data, &[RootType::Income, RootType::Expense], &values, &sign),
                        "summary": summary,
                        "net_profit": format_minor(total, &base),
                    }))
                })
            }),
        )
        .await
}

/// The balance of every account in each currency it holds, by account path, as
/// plain-text tools print it (`hledger balance`): `{path: {currency: minor units}}`.
pub async fn balances_by_currency(
    books: &Books,
    scope: &TenantScope,
    company: &str,
) -> Result<BTreeMap<String, BTreeMap<String, i64>>, RepoError> {
    let company = company.to_owned();
    let scope_for = scope.clone();
    books
        .repository()?
        .read(
            scope,
            Box::new(move |conn| {
                let (scope, company) = (scope_for.clone(), company.clone());
                Box::pin(async move {
                    let data = books_of(conn, &scope, &company).await?;
                    let mut sql = Sql::default();
                    let tenant = sql.arg(text(scope.tenant()));
                    let company = sql.arg(text(&data.company.id));
                    sql.text = format!(
                        "SELECT account, line_debit_currency, CAST(SUM(line_debit) AS BIGINT), CAST(SUM(line_credit) AS BIGINT) FROM account_balance WHERE tenant_id = {tenant} AND company = {company} GROUP BY account, line_debit_currency"
                    );
                    let rows = conn.fetch(&sql, &[SqlType::Text, SqlType::Text, SqlType::Int, SqlType::Int]).await?;
                    let paths: HashMap<&str, &str> = data.accounts.iter().map(|a| (a.id.as_str(), a.path.as_str())).collect();
                    let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
                    for r in rows {
                        let net = cell_int(r.get(2)) - cell_int(r.get(3));
                        if net == 0 {
                            continue;
                        }
                        let account = cell_text(r.first()).unwrap_or_default();
                        let path = paths.get(account.as_str()).map_or(account.clone(), |p| (*p).to_owned());
                        *out.entry(path).or_default().entry(cell_text(r.get(1)).unwrap_or_default()).or_default() += net;
                    }
                    out.retain(|_, m| {
                        m.retain(|_, v| *v != 0);
                        !m.is_empty()
                    });
                    Ok(out)
                })
            }),
        )
        .await
}

/// A CSV field, quoted when it needs to be (RFC 4180).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders a report's `rows` as CSV: the named columns, then (for statements) one column
/// per report column.
pub fn to_csv(report: &Value, fields: &[&str]) -> String {
    let mut out = String::new();
    let column_names: Vec<String> = report
        .get("columns")
        .and_then(Value::as_array)
        .map(|c| c.iter().map(|c| cell(&c["name"])).collect())
        .unwrap_or_default();
    let mut header: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    header.extend(column_names.iter().cloned());
    out.push_str(
        &header
            .iter()
            .map(|h| csv_field(h))
            .collect::<Vec<_>>()
            .join(","),
    );
    out.push_str("\r\n");
    for row in report
        .get("rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut cells: Vec<String> = fields.iter().map(|f| csv_field(&cell(&row[*f]))).collect();
        if let Some(values) = row.get("values").and_then(Value::as_array) {
            cells.extend(values.iter().map(|v| csv_field(&cell(v))));
        }
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}
