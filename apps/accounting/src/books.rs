//! The books service: a company's chart and periods, posting on submit and cancel (the
//! transaction hook), period and fiscal-year close, and the hooks that keep ledger rows
//! immutable. Everything goes through the kernel's repository.

use std::sync::{Arc, OnceLock};

use prefiq::async_trait;
use prefiq_data::audit::{AuditRecord, append_statement};
use prefiq_data::entity::repo::{EntityEvent, RepoError, Repository, TenantScope, TransactionHook};
use prefiq_data::entity::sql::{Arg, Conn, Sql, SqlType};
use prefiq_data::entity::value::civil_now;
use serde_json::{Map, Value, json};

use crate::dates;
use crate::ledger::{self, Company, RootType, invalid, store, text};

/// The standard chart of accounts a new company gets: (path, root type, account type,
/// is group). Paths are colon-separated, as in plain-text accounting.
pub const STANDARD_CHART: &[(&str, RootType, Option<&str>, bool)] = &[
    ("assets", RootType::Asset, None, true),
    ("assets:current", RootType::Asset, None, true),
    ("assets:current:bank", RootType::Asset, Some("Bank"), false),
    ("assets:current:cash", RootType::Asset, Some("Cash"), false),
    (
        "assets:current:receivable",
        RootType::Asset,
        Some("Receivable"),
        false,
    ),
    (
        "assets:current:stock",
        RootType::Asset,
        Some("Stock"),
        false,
    ),
    (
        "assets:current:input-tax",
        RootType::Asset,
        Some("Tax"),
        false,
    ),
    ("assets:fixed", RootType::Asset, None, true),
    (
        "assets:fixed:equipment",
        RootType::Asset,
        Some("Fixed Asset"),
        false,
    ),
    (
        "assets:fixed:accumulated-depreciation",
        RootType::Asset,
        Some("Depreciation"),
        false,
    ),
    ("liabilities", RootType::Liability, None, true),
    ("liabilities:current", RootType::Liability, None, true),
    (
        "liabilities:current:payable",
        RootType::Liability,
        Some("Payable"),
        false,
    ),
    (
        "liabilities:current:output-tax",
        RootType::Liability,
        Some("Tax"),
        false,
    ),
    (
        "liabilities:current:payroll",
        RootType::Liability,
        None,
        false,
    ),
    (
        "liabilities:current:stock-received-not-billed",
        RootType::Liability,
        None,
        false,
    ),
    ("liabilities:loans", RootType::Liability, None, false),
    ("equity", RootType::Equity, None, true),
    ("equity:capital", RootType::Equity, None, false),
    (
        "equity:retained-earnings",
        RootType::Equity,
        Some("Retained Earnings"),
        false,
    ),
    ("income", RootType::Income, None, true),
    ("income:sales", RootType::Income, Some("Income"), false),
    ("income:services", RootType::Income, Some("Income"), false),
    ("income:other", RootType::Income, Some("Income"), false),
    ("expenses", RootType::Expense, None, true),
    (
        "expenses:cost-of-goods-sold",
        RootType::Expense,
        Some("Cost of Goods Sold"),
        false,
    ),
    (
        "expenses:salaries",
        RootType::Expense,
        Some("Expense"),
        false,
    ),
    ("expenses:rent", RootType::Expense, Some("Expense"), false),
    (
        "expenses:utilities",
        RootType::Expense,
        Some("Expense"),
        false,
    ),
    (
        "expenses:depreciation",
        RootType::Expense,
        Some("Depreciation"),
        false,
    ),
    (
        "expenses:bank-charges",
        RootType::Expense,
        Some("Expense"),
        false,
    ),
    (
        "expenses:exchange-rounding",
        RootType::Expense,
        Some("Round Off"),
        false,
    ),
    (
        "expenses:exchange-gain-loss",
        RootType::Expense,
        Some("Expense"),
        false,
    ),
];

/// The root type a plain-text account path starts with (`assets:bank` is an asset).
pub fn root_of_path(path: &str) -> Option<RootType> {
    let first = path.split(':').next()?.to_ascii_lowercase();
    Some(match first.as_str() {
        "assets" | "asset" => RootType::Asset,
        "liabilities" | "liability" => RootType::Liability,
        "equity" => RootType::Equity,
        "income" | "revenue" | "revenues" => RootType::Income,
        "expenses" | "expense" => RootType::Expense,
        _ => return None,
    })
}

/// The display name of a path's last part: `accumulated-depreciation` → `Accumulated Depreciation`.
pub fn display_name(path: &str) -> String {
    let last = path.rsplit(':').next().unwrap_or(path);
    last.split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The accounting service; bound as a singleton, given the repository at boot.
#[derive(Default)]
pub struct Books {
    repository: OnceLock<Arc<Repository>>,
}

fn id_of(value: &Value) -> String {
    value
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn field<'a>(doc: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    doc.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

impl Books {
    /// Sets the repository (once, at boot).
    pub fn set_repository(&self, repository: Arc<Repository>) {
        let _ = self.repository.set(repository);
    }

    /// The repository.
    pub fn repository(&self) -> Result<&Arc<Repository>, RepoError> {
        self.repository.get().ok_or_else(|| {
            RepoError::Database(prefiq_data::DataError::Batch(
                "the accounting service is used before boot".into(),
            ))
        })
    }

    /// Reads one company by id, name or abbreviation.
    pub async fn company(&self, scope: &TenantScope, key: &str) -> Result<Company, RepoError> {
        let asked = key.to_owned();
        let key = key.to_owned();
        let scope_for = scope.clone();
        let found = self
            .repository()?
            .read(
                scope,
                Box::new(move |conn| {
                    let key = key.clone();
                    let scope = scope_for.clone();
                    Box::pin(async move { ledger::load_company(conn, &scope, &key).await })
                }),
            )
            .await?;
        found.ok_or_else(|| RepoError::NotFound {
            entity: "company".into(),
            id: asked,
        })
    }

    /// Creates accounts for `paths` (and every group above them) that the company lacks;
    /// returns every account of the company afterwards. `currency` sets a new leaf's
    /// account currency.
    pub async fn ensure_accounts(
        &self,
        scope: &TenantScope,
        company: &Company,
        paths: &[(String, Option<String>)],
    ) -> Result<Vec<ledger::Account>, RepoError> {
        let repository = self.repository()?;
        let mut existing = self.accounts(scope, &company.id).await?;
        let mut by_path: std::collections::HashMap<String, (String, bool)> = existing
            .iter()
            .map(|a| (a.path.clone(), (a.id.clone(), a.is_group)))
            .collect();
        let mut wanted: Vec<(String, bool, Option<String>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (path, currency) in paths {
            let parts: Vec<&str> = path.split(':').collect();
            for depth in 1..=parts.len() {
                let prefix = parts[..depth].join(":");
                let leaf = depth == parts.len();
                if seen.insert(prefix.clone()) {
                    wanted.push((prefix, !leaf, if leaf { currency.clone() } else { None }));
                } else if !leaf && let Some(w) = wanted.iter_mut().find(|w| w.0 == prefix) {
                    w.1 = true;
                }
            }
        }
        wanted.sort_by(|a, b| {
            a.0.split(':')
                .count()
                .cmp(&b.0.split(':').count())
                .then(a.0.cmp(&b.0))
        });
        let mut created = false;
        for (path, group, currency) in wanted {
            if let Some((_, is_group)) = by_path.get(&path) {
                if group && !is_group {
                    return Err(invalid(
                        "",
                        "leaf_has_children",
                        format!("account {path} takes postings, so it cannot have sub-accounts"),
                    ));
                }
                continue;
            }
            let Some(root) = root_of_path(&path) else {
                return Err(invalid(
                    "",
                    "no_root",
                    format!(
                        "account {path} must start with assets, liabilities, equity, income or expenses"
                    ),
                ));
            };
            let parent = path
                .rsplit_once(':')
                .and_then(|(p, _)| by_path.get(p))
                .map(|(id, _)| id.clone());
            let record = repository
                .create(
                    scope,
                    "account",
                    json!({
                        "account_name": display_name(&path),
                        "account_path": path,
                        "company": company.id,
                        "root_type": root.as_str(),
                        "is_group": group,
                        "currency": currency,
                        "parent_account": parent,
                    }),
                )
                .await?;
            by_path.insert(path, (id_of(&record), group));
            created = true;
        }
        if created {
            existing = self.accounts(scope, &company.id).await?;
        }
        Ok(existing)
    }

    /// Every account of a company.
    pub async fn accounts(
        &self,
        scope: &TenantScope,
        company: &str,
    ) -> Result<Vec<ledger::Account>, RepoError> {
        let company = company.to_owned();
        let scope_for = scope.clone();
        self.repository()?
            .read(
                scope,
                Box::new(move |conn| {
                    let company = company.clone();
                    let scope = scope_for.clone();
                    Box::pin(async move { ledger::load_accounts(conn, &scope, &company).await })
                }),
            )
            .await
    }

    /// Every period of a company, in date order.
    pub async fn periods(
        &self,
        scope: &TenantScope,
        company: &str,
    ) -> Result<Vec<ledger::Period>, RepoError> {
        let company = company.to_owned();
        let scope_for = scope.clone();
        self.repository()?
            .read(
                scope,
                Box::new(move |conn| {
                    let company = company.clone();
                    let scope = scope_for.clone();
                    Box::pin(async move { ledger::load_periods(conn, &scope, &company).await })
                }),
            )
            .await
    }

    /// Creates the standard chart for a new company and points its retained-earnings and
    /// rounding accounts into it.
    pub async fn create_standard_chart(
        &self,
        scope: &TenantScope,
        company: &Company,
    ) -> Result<(), RepoError> {
        let repository = self.repository()?;
        let mut ids: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
        for (path, root, account_type, group) in STANDARD_CHART {
            let parent = path.rsplit_once(':').and_then(|(p, _)| ids.get(p)).cloned();
            let record = repository
                .create(
                    scope,
                    "account",
                    json!({
                        "account_name": display_name(path),
                        "account_path": path,
                        "company": company.id,
                        "root_type": root.as_str(),
                        "account_type": account_type,
                        "is_group": group,
                        "parent_account": parent,
                    }),
                )
                .await?;
            ids.insert(path, id_of(&record));
        }
        repository
            .update(
                scope,
                "company",
                &company.id,
                json!({
                    "retained_earnings_account": ids.get("equity:retained-earnings"),
                    "rounding_account": ids.get("expenses:exchange-rounding"),
                    "exchange_gain_loss_account": ids.get("expenses:exchange-gain-loss"),
                    "cost_of_goods_sold_account": ids.get("expenses:cost-of-goods-sold"),
                    "stock_received_not_billed_account": ids.get("liabilities:current:stock-received-not-billed"),
                }),
                None,
            )
            .await?;
        Ok(())
    }

    /// Creates the monthly periods of a new fiscal year.
    pub async fn create_periods(
        &self,
        scope: &TenantScope,
        year: &Map<String, Value>,
    ) -> Result<(), RepoError> {
        let repository = self.repository()?;
        let (Some(id), Some(company), Some(start), Some(end)) = (
            field(year, "id"),
            field(year, "company"),
            field(year, "start_date"),
            field(year, "end_date"),
        ) else {
            return Ok(());
        };
        for (from, to) in dates::months(start, end) {
            repository
                .create(
                    scope,
                    "accounting_period",
                    json!({
                        "period_name": from[..7],
                        "company": company,
                        "fiscal_year": id,
                        "start_date": from,
                        "end_date": to,
                    }),
                )
                .await?;
        }
        Ok(())
    }

    /// Creates a calendar fiscal year (with its periods) for every year in
    /// `first..=last` that no fiscal year of the company covers.
    pub async fn ensure_years(
        &self,
        scope: &TenantScope,
        company: &Company,
        first: &str,
        last: &str,
    ) -> Result<(), RepoError> {
        let repository = self.repository()?;
        let periods = self.periods(scope, &company.id).await?;
        let (Some(a), Some(b)) = (dates::parse(first), dates::parse(last)) else {
            return Ok(());
        };
        for year in a.year()..=b.year() {
            // Every year between two real dates is one jiff takes.
            let Ok(first_day) = jiff::civil::Date::new(year, 1, 1) else {
                continue;
            };
            let start = dates::format(first_day);
            let end = dates::format(first_day.last_of_year());
            if periods.iter().any(|p| p.start <= end && p.end >= start) {
                continue;
            }
            repository
                .create(
                    scope,
                    "fiscal_year",
                    json!({"year_name": format!("{} {year}", company.abbr), "company": company.id, "start_date": start, "end_date": end}),
                )
                .await?;
        }
        Ok(())
    }

    /// Whether any GL entry posts to the company or the account `id` (`column` is
    /// `company` or `account`).
    pub async fn has_postings(
        &self,
        scope: &TenantScope,
        column: PostingsOf,
        id: &str,
    ) -> Result<bool, RepoError> {
        let id = id.to_owned();
        let scope_for = scope.clone();
        self.repository()?
            .read(
                scope,
                Box::new(move |conn| {
                    let id = id.clone();
                    let scope = scope_for.clone();
                    Box::pin(async move {
                        let mut sql = Sql::default();
                        let key = store::key_of(&mut sql, scope.tenant(), &id);
                        let tenant = sql.arg(text(scope.tenant()));
                        let column = match column {
                            PostingsOf::Company => "company",
                            PostingsOf::Account => "account",
                        };
                        sql.text = format!(
                            "SELECT 1 FROM ledger_posting WHERE tenant_id = {tenant} AND {column} = {key} LIMIT 1"
                        );
                        Ok(!conn.fetch(&sql, &[SqlType::Int]).await?.is_empty())
                    })
                }),
            )
            .await
    }
}

/// What [`Books::has_postings`] asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostingsOf {
    /// A company.
    Company,
    /// An account.
    Account,
}

/// Appends an audit record in the caller's transaction.
pub async fn append(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    now: &str,
    action: &str,
    entity: &str,
    id: &str,
    changes: Value,
) -> Result<(), RepoError> {
    let trace = scope.trace_id().to_owned();
    let record = AuditRecord {
        tenant: scope.tenant(),
        time: now,
        actor: scope.user(),
        action,
        entity: Some(entity),
        id: Some(id),
        changes,
        trace: &trace,
    };
    let mut sql = Sql::default();
    sql.text = append_statement(&mut sql, conn.backend(), &record);
    conn.execute(&sql).await?;
    Ok(())
}

/// Posts a journal entry's GL entries in its submit's transaction, and reverses them in
/// its cancel's.
pub struct PostingHook;

#[async_trait]
impl TransactionHook for PostingHook {
    fn entity(&self) -> &str {
        "journal_entry"
    }

    async fn run(
        &self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        event: EntityEvent,
        doc: &Map<String, Value>,
    ) -> Result<(), RepoError> {
        let id = field(doc, "id").unwrap_or_default().to_owned();
        if let Some(kind) = field(doc, "entry_type")
            && crate::documents::DOCUMENT_ENTRY_TYPES.contains(&kind)
        {
            // The entry of an invoice moves with its document: cancelling the entry alone
            // would leave a submitted invoice without postings.
            return Err(invalid(
                "/entry_type",
                "owned_by_document",
                format!("a `{kind}` entry is cancelled by cancelling its document"),
            ));
        }
        let (company, voucher) = match event {
            EntityEvent::OnSubmit => ledger::prepare_voucher(conn, scope, &id, doc).await?,
            EntityEvent::OnCancel => ledger::reversal_voucher(conn, scope, &id, doc).await?,
            _ => return Ok(()),
        };
        ledger::write_postings(
            conn,
            scope,
            &company,
            std::slice::from_ref(&voucher),
            &civil_now(),
        )
        .await?;
        if event == EntityEvent::OnSubmit {
            // The entry's totals in company currency, as posted (rounding line included).
            let mut sql = Sql::default();
            let debit: i64 = voucher.lines.iter().map(|l| l.debit).sum();
            let credit: i64 = voucher.lines.iter().map(|l| l.credit).sum();
            let debit = sql.arg(Arg::Int(Some(debit)));
            let credit = sql.arg(Arg::Int(Some(credit)));
            let currency = sql.arg(text(&company.base_currency));
            let tenant = sql.arg(text(scope.tenant()));
            let id = sql.arg(text(&id));
            sql.text = format!(
                "UPDATE journal_entry SET total_debit = {debit}, total_debit_currency = {currency}, total_credit = {credit}, total_credit_currency = {currency} WHERE tenant_id = {tenant} AND id = {id}"
            );
            conn.execute(&sql).await?;
        }
        Ok(())
    }
}

/// Checks an account against its parent: a group of the same company and root type.
pub async fn check_account(
    books: &Books,
    scope: &TenantScope,
    doc: &Map<String, Value>,
) -> Result<(), String> {
    let Some(parent) = field(doc, "parent_account") else {
        return Ok(());
    };
    let parent = parent.to_owned();
    let scope_for = scope.clone();
    let found = books
        .repository()
        .map_err(|e| e.to_string())?
        .read(
            scope,
            Box::new(move |conn| {
                let parent = parent.clone();
                let scope = scope_for.clone();
                Box::pin(async move {
                    ledger::load_accounts_by_id(conn, &scope, &[parent.as_str()]).await
                })
            }),
        )
        .await
        .map_err(|e| e.to_string())?;
    let Some(parent) = found.into_values().next() else {
        return Ok(());
    };
    if !parent.is_group {
        return Err(format!("the parent account {} is not a group", parent.path));
    }
    if field(doc, "company").is_some_and(|c| c != parent.company) {
        return Err(format!(
            "the parent account {} belongs to another company",
            parent.path
        ));
    }
    if field(doc, "root_type").is_some_and(|r| r != parent.root_type.as_str()) {
        return Err(format!(
            "the parent account {} is of root type {}",
            parent.path,
            parent.root_type.as_str()
        ));
    }
    Ok(())
}
