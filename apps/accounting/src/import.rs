//! Plain-text accounting import and export (the journal format hledger and ledger-cli
//! read).
//!
//! Import reads the file twice, streaming, holding one batch at a time. The first pass
//! parses and balances every transaction and collects the accounts, commodities, prices
//! and dates; any invalid transaction is reported with its line, and unless invalid ones
//! are to be skipped nothing is written. The second pass runs in one database transaction:
//! entries, lines, GL entries and balances go in with multi-row statements, each entry
//! with its audit record, so an import is whole or absent.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prefiq_data::audit::{AuditRecord, append_records};
use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Conn, Sql, SqlType};
use prefiq_data::entity::value::{civil_now, currency_scale};
use serde_json::json;

use crate::books::Books;
use crate::journal::{self, Item, JournalError, Reader};
use crate::ledger::{self, Company, LedgerEntry, PostingLine, Voucher, cell_int, cell_text, text};
use crate::money::{self, RATE_ONE, RATE_SCALE};

/// Postings written per batch of statements.
pub const BATCH_POSTINGS: usize = 20_000;

/// Most invalid transactions one import reports (the rest are counted).
pub const MAX_REPORTED_ERRORS: usize = 1_000;

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The reason.
        message: String,
    },
    /// The journal has invalid transactions and nothing was written.
    #[error("{} invalid transaction(s); nothing was written", .0.len())]
    Invalid(Vec<JournalError>),
    /// The books refused.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// Something else is wrong with the request.
    #[error("{0}")]
    Other(String),
}

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The company (id, name or abbreviation).
    pub company: String,
    /// Creates the company with this base currency (and an empty chart) when it does not
    /// exist.
    pub create_currency: Option<String>,
    /// Skips invalid transactions instead of writing nothing.
    pub skip_invalid: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportReport {
    /// Transactions written.
    pub transactions: u64,
    /// Postings written.
    pub postings: u64,
    /// Invalid transactions (skipped, or the reason nothing was written).
    pub invalid: Vec<String>,
    /// Invalid transactions beyond those listed.
    pub more_invalid: u64,
}

/// Maps a journal commodity to an ISO 4217 code: the code itself, the four common signs,
/// or the company's currency for a bare number.
pub fn currency_of(commodity: &str, base: &str) -> Option<String> {
    Some(match commodity {
        "" => base.to_owned(),
        "$" => "USD".into(),
        "€" => "EUR".into(),
        "£" => "GBP".into(),
        "¥" => "JPY".into(),
        c if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => c.to_owned(),
        _ => return None,
    })
}

/// Exact minor units of a quantity in a currency; `None` when it has more decimals.
fn minor(quantity: journal::Quantity, currency: &str) -> Option<i64> {
    quantity
        .rescale(currency_scale(currency))
        .and_then(|v| i64::try_from(v).ok())
}

/// Rate lookups: per currency, (date, rate) in date order.
#[derive(Debug, Default, Clone)]
struct Rates(HashMap<String, Vec<(String, i64)>>);

impl Rates {
    fn add(&mut self, currency: &str, date: &str, rate: i64) {
        self.0
            .entry(currency.to_owned())
            .or_default()
            .push((date.to_owned(), rate));
    }

    fn sort(&mut self) {
        for list in self.0.values_mut() {
            list.sort();
        }
    }

    fn at(&self, currency: &str, date: &str) -> Option<i64> {
        let list = self.0.get(currency)?;
        let at = list.partition_point(|(d, _)| d.as_str() <= date);
        at.checked_sub(1).map(|i| list[i].1)
    }
}

/// What the first pass learnt.
#[derive(Debug, Default)]
struct Survey {
    accounts: BTreeMap<String, std::collections::BTreeSet<String>>,
    prices: Vec<(String, String, String, i64, usize)>,
    first: Option<String>,
    last: Option<String>,
    invalid: Vec<JournalError>,
    invalid_count: u64,
    bad_lines: std::collections::HashSet<usize>,
}

fn open(path: &Path) -> Result<std::io::BufReader<std::fs::File>, ImportError> {
    std::fs::File::open(path)
        .map(|f| std::io::BufReader::with_capacity(1 << 16, f))
        .map_err(|e| ImportError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

fn note(survey: &mut Survey, error: JournalError, transaction_line: usize) {
    survey.bad_lines.insert(transaction_line);
    survey.invalid_count += 1;
    if survey.invalid.len() < MAX_REPORTED_ERRORS {
        survey.invalid.push(error);
    }
}

fn survey(path: &Path, base: &str, progress: &dyn Fn(u64)) -> Result<Survey, ImportError> {
    let mut survey = Survey::default();
    let mut reader = Reader::new(open(path)?);
    let mut n = 0u64;
    while let Some(item) = reader.next() {
        n += 1;
        if n.is_multiple_of(4096) {
            progress(reader.bytes_read());
        }
        match item {
            Err(e) => {
                let line = e.line;
                note(&mut survey, e, line);
            }
            Ok(Item::Account { name, .. }) => {
                survey.accounts.entry(name).or_default();
            }
            Ok(Item::Commodity { .. }) => {}
            Ok(Item::Price {
                line,
                date,
                commodity,
                price,
            }) => {
                let (Some(from), Some(to)) = (
                    currency_of(&commodity, base),
                    currency_of(&price.commodity, base),
                ) else {
                    note(
                        &mut survey,
                        JournalError {
                            line,
                            message: format!(
                                "price of `{commodity}` in `{}`: only currencies are supported",
                                price.commodity
                            ),
                        },
                        line,
                    );
                    continue;
                };
                let Some(rate) = price
                    .quantity
                    .rescale(RATE_SCALE)
                    .and_then(|r| i64::try_from(r).ok())
                    .filter(|r| *r > 0)
                else {
                    note(
                        &mut survey,
                        JournalError {
                            line,
                            message: "a price is positive with at most 9 decimals".into(),
                        },
                        line,
                    );
                    continue;
                };
                survey.prices.push((from, to, date, rate, line));
            }
            Ok(Item::Transaction(tx)) => {
                let postings = match journal::balance(&tx) {
                    Ok(p) => p,
                    Err(e) => {
                        note(&mut survey, e, tx.line);
                        continue;
                    }
                };
                let mut bad = None;
                for p in &postings {
                    match currency_of(&p.amount.commodity, base) {
                        None => {
                            bad = Some(JournalError {
                                line: p.line,
                                message: format!(
                                    "commodity `{}` is not a currency: use an ISO 4217 code such as EUR (or $ € £ ¥)",
                                    p.amount.commodity
                                ),
                            });
                        }
                        Some(c) if minor(p.amount.quantity, &c).is_none() => {
                            bad = Some(JournalError {
                                line: p.line,
                                message: format!(
                                    "{} has more decimals than {c}'s minor unit",
                                    p.amount
                                ),
                            });
                        }
                        Some(c) => {
                            if crate::books::root_of_path(&p.account).is_none() {
                                bad = Some(JournalError {
                                    line: p.line,
                                    message: format!(
                                        "account {} must start with assets, liabilities, equity, income or expenses",
                                        p.account
                                    ),
                                });
                            } else {
                                survey
                                    .accounts
                                    .entry(p.account.clone())
                                    .or_default()
                                    .insert(c);
                            }
                        }
                    }
                }
                if let Some(e) = bad {
                    note(&mut survey, e, tx.line);
                    continue;
                }
                if survey.first.as_deref().is_none_or(|f| tx.date.as_str() < f) {
                    survey.first = Some(tx.date.clone());
                }
                if survey.last.as_deref().is_none_or(|l| tx.date.as_str() > l) {
                    survey.last = Some(tx.date.clone());
                }
            }
        }
    }
    progress(reader.bytes_read());
    // An account that takes postings cannot also be a group of others.
    let names: Vec<String> = survey.accounts.keys().cloned().collect();
    for pair in names.windows(2) {
        if pair[1].starts_with(&format!("{}:", pair[0])) && !survey.accounts[&pair[0]].is_empty() {
            return Err(ImportError::Other(format!(
                "account {} takes postings and has the sub-account {}: only leaf accounts take postings here",
                pair[0], pair[1]
            )));
        }
    }
    Ok(survey)
}

/// Imports a journal file into a company; see the module documentation.
pub async fn import_file(
    books: &Books,
    scope: &TenantScope,
    path: &Path,
    options: &ImportOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ImportReport, ImportError> {
    let repository = books.repository()?.clone();
    let company = match books.company(scope, &options.company).await {
        Ok(c) => c,
        Err(RepoError::NotFound { .. }) if options.create_currency.is_some() => {
            let currency = options.create_currency.clone().unwrap_or_default();
            let abbr: String = options
                .company
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(10)
                .collect();
            repository
                .create(scope, "company", json!({"company_name": options.company, "abbr": if abbr.is_empty() { "CO".to_owned() } else { abbr }, "currency": currency, "chart": "empty"}))
                .await?;
            books.company(scope, &options.company).await?
        }
        Err(e) => return Err(e.into()),
    };
    let base = company.base_currency.clone();
    let survey = survey(path, &base, progress)?;
    if !survey.invalid.is_empty() && !options.skip_invalid {
        return Err(ImportError::Invalid(survey.invalid));
    }
    // Accounts (a leaf that sees one currency takes only that one), the rounding account
    // when any line is foreign, and calendar fiscal years over the journal's dates.
    let foreign = survey
        .accounts
        .values()
        .any(|c| c.iter().any(|c| *c != base));
    let mut paths: Vec<(String, Option<String>)> = survey
        .accounts
        .iter()
        .map(|(path, currencies)| {
            let only = (currencies.len() == 1)
                .then(|| currencies.iter().next().cloned())
                .flatten();
            (path.clone(), only)
        })
        .collect();
    let mut company = company;
    if foreign && company.rounding_account.is_none() {
        paths.push(("expenses:exchange-rounding".into(), Some(base.clone())));
    }
    let accounts = books.ensure_accounts(scope, &company, &paths).await?;
    if foreign && company.rounding_account.is_none() {
        let rounding = accounts
            .iter()
            .find(|a| a.path == "expenses:exchange-rounding")
            .map(|a| a.id.clone());
        repository
            .update(
                scope,
                "company",
                &company.id,
                json!({"rounding_account": rounding}),
                None,
            )
            .await?;
        company.rounding_account = rounding;
    }
    if let (Some(first), Some(last)) = (&survey.first, &survey.last) {
        books.ensure_years(scope, &company, first, last).await?;
    }
    let periods = books.periods(scope, &company.id).await?;
    let account_ids: HashMap<String, String> = accounts
        .iter()
        .map(|a| (a.path.clone(), a.id.clone()))
        .collect();
    let mut rates = Rates::default();
    for (from, to, date, rate, _) in &survey.prices {
        if *to == base {
            rates.add(from, date, *rate);
        }
    }
    let job = Arc::new(Job {
        path: path.to_owned(),
        company,
        periods,
        accounts: account_ids,
        rates,
        prices: survey.prices.clone(),
        skip: survey.bad_lines.clone(),
        import_id: uuid::Uuid::now_v7().simple().to_string()[..12].to_owned(),
    });
    let scope_for = scope.clone();
    let written = repository
        .in_transaction(
            scope,
            Box::new(move |conn| {
                let job = job.clone();
                let scope = scope_for.clone();
                Box::pin(async move { write_all(conn, &scope, &job).await })
            }),
        )
        .await;
    let (transactions, postings, late_invalid) = match written {
        Ok(counts) => counts,
        Err(RepoError::Invalid(errors)) => {
            return Err(ImportError::Invalid(
                errors
                    .into_iter()
                    .map(|e| JournalError {
                        line: e.pointer.trim_start_matches("/line/").parse().unwrap_or(0),
                        message: e.message,
                    })
                    .collect(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let mut invalid: Vec<String> = survey.invalid.iter().map(ToString::to_string).collect();
    invalid.extend(late_invalid.iter().map(ToString::to_string));
    Ok(ImportReport {
        transactions,
        postings,
        invalid,
        more_invalid: survey
            .invalid_count
            .saturating_sub(survey.invalid.len() as u64),
    })
}

/// What the writing pass needs; shared by every run of the transaction body.
struct Job {
    path: PathBuf,
    company: Company,
    periods: Vec<ledger::Period>,
    accounts: HashMap<String, String>,
    rates: Rates,
    prices: Vec<(String, String, String, i64, usize)>,
    skip: std::collections::HashSet<usize>,
    import_id: String,
}

/// The second pass, inside the import's transaction. Returns (transactions, postings,
/// transactions skipped for a reason only this pass sees).
async fn write_all(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    job: &Job,
) -> Result<(u64, u64, Vec<JournalError>), RepoError> {
    still_open(conn, scope, job).await?;
    let now = civil_now();
    write_entries_of(conn, scope, job, &now).await
}

/// The first pass read the books outside this transaction: a period closed or an account
/// deleted since then must not receive postings. Inside the transaction (on PostgreSQL
/// with share locks, so a close or a delete waits for the import), the periods the first
/// pass found open are open still and the accounts live.
async fn still_open(conn: &mut Conn<'_>, scope: &TenantScope, job: &Job) -> Result<(), RepoError> {
    for period in job.periods.iter().filter(|p| p.open) {
        let locked = ledger::lock_period(conn, scope, &period.id, "FOR SHARE").await?;
        if locked.as_deref() == Some("Closed") {
            return Err(ledger::invalid(
                "",
                "period_closed",
                format!(
                    "the accounting period {} was closed during the import",
                    period.name
                ),
            ));
        }
    }
    let now = ledger::load_periods(conn, scope, &job.company.id).await?;
    if let Some(closed) = job
        .periods
        .iter()
        .filter(|p| p.open)
        .find(|p| !now.iter().any(|n| n.id == p.id && n.open))
    {
        return Err(ledger::invalid(
            "",
            "period_closed",
            format!(
                "the accounting period {} was closed during the import",
                closed.name
            ),
        ));
    }
    let ids: Vec<&str> = job.accounts.values().map(String::as_str).collect();
    let live = ledger::lock_accounts(conn, scope, &ids).await?;
    if let Some(gone) = job
        .accounts
        .iter()
        .find(|(_, id)| !live.contains(id.as_str()))
    {
        return Err(ledger::invalid(
            "",
            "unknown_account",
            format!("the account {} was deleted during the import", gone.0),
        ));
    }
    Ok(())
}

async fn write_entries_of(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    job: &Job,
    now: &str,
) -> Result<(u64, u64, Vec<JournalError>), RepoError> {
    let now = now.to_owned();
    let base = job.company.base_currency.as_str();
    let mut rates = job.rates.clone();
    // Rates already in the books count too; the journal's own are added to them.
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let to = sql.arg(text(base));
    sql.text = format!(
        "SELECT from_code, date, rate FROM exchange_rate WHERE tenant_id = {tenant} AND to_code = {to} AND deleted_at IS NULL"
    );
    for row in conn
        .fetch(&sql, &[SqlType::Text, SqlType::Text, SqlType::Int])
        .await?
    {
        rates.add(
            &cell_text(row.first()).unwrap_or_default(),
            &cell_text(row.get(1)).unwrap_or_default(),
            cell_int(row.get(2)),
        );
    }
    rates.sort();
    write_rates(conn, scope, job, &now).await?;
    let file = std::fs::File::open(&job.path).map_err(|e| {
        ledger::invalid("", "io", format!("cannot read {}: {e}", job.path.display()))
    })?;
    let reader = Reader::new(std::io::BufReader::with_capacity(1 << 16, file));
    let mut batch: Vec<LedgerEntry<'static>> = Vec::new();
    let mut batch_postings = 0usize;
    let (mut transactions, mut postings) = (0u64, 0u64);
    let mut late = Vec::new();
    let mut errors = Vec::new();
    for item in reader {
        let Ok(Item::Transaction(tx)) = item else {
            continue;
        };
        if job.skip.contains(&tx.line) {
            continue;
        }
        let Ok(balanced) = journal::balance(&tx) else {
            continue;
        };
        match entry_of(job, &rates, &tx, &balanced, transactions) {
            Ok(entry) => {
                batch_postings += entry.voucher.lines.len();
                batch.push(entry);
                transactions += 1;
            }
            Err(e) => {
                late.push(e.clone());
                errors.push(ledger::invalid(
                    &format!("/line/{}", e.line),
                    "invalid",
                    e.message,
                ));
                continue;
            }
        }
        if batch_postings >= BATCH_POSTINGS {
            postings += flush(conn, scope, job, &mut batch, &now).await?;
            batch_postings = 0;
        }
    }
    postings += flush(conn, scope, job, &mut batch, &now).await?;
    if !late.is_empty() && !job.skip.is_empty() {
        // Skipping was asked for: these are reported, not fatal.
        return Ok((transactions, postings, late));
    }
    if !late.is_empty() {
        let all = errors
            .into_iter()
            .flat_map(|e| match e {
                RepoError::Invalid(list) => list,
                _ => Vec::new(),
            })
            .take(MAX_REPORTED_ERRORS)
            .collect();
        return Err(RepoError::Invalid(all));
    }
    Ok((transactions, postings, late))
}

/// The journal's prices, as exchange rates of the books.
async fn write_rates(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    job: &Job,
    now: &str,
) -> Result<(), RepoError> {
    for chunk in job.prices.chunks(1_000) {
        let mut sql = Sql::default();
        let tenant = sql.arg(text(scope.tenant()));
        let at = sql.arg(text(now));
        let user = sql.arg(ledger::opt_text(scope.user()));
        let mut values = Vec::new();
        for (from, to, date, rate, _) in chunk {
            let id = sql.arg(text(&uuid::Uuid::now_v7().to_string()));
            let from = sql.arg(text(from));
            let to = sql.arg(text(to));
            let date = sql.arg(text(date));
            let rate = sql.arg(prefiq_data::entity::sql::Arg::Int(Some(*rate)));
            values.push(format!(
                "({tenant},{id},{id},{at},{user},{at},{user},{from},{to},{date},{rate})"
            ));
        }
        sql.text = format!(
            "INSERT INTO exchange_rate (tenant_id, id, name, created_at, created_by, modified_at, modified_by, from_code, to_code, date, rate) VALUES {}",
            values.join(",")
        );
        ledger::run(conn, sql).await?;
    }
    Ok(())
}

fn entry_of(
    job: &Job,
    rates: &Rates,
    tx: &journal::Transaction,
    balanced: &[journal::Balanced],
    n: u64,
) -> Result<LedgerEntry<'static>, JournalError> {
    let base = job.company.base_currency.as_str();
    let Some(period) = ledger::period_of(&job.periods, &tx.date) else {
        return Err(JournalError {
            line: tx.line,
            message: format!("no accounting period holds {}", tx.date),
        });
    };
    if !period.open {
        return Err(JournalError {
            line: tx.line,
            message: format!("the accounting period {} is closed", period.name),
        });
    }
    let mut lines = Vec::with_capacity(balanced.len() + 1);
    let (mut debit_total, mut credit_total, mut converted) = (0i64, 0i64, 0i64);
    for p in balanced {
        let currency = currency_of(&p.amount.commodity, base).unwrap_or_default();
        let amount = minor(p.amount.quantity, &currency).unwrap_or_default();
        let rate = if currency == base {
            RATE_ONE
        } else {
            converted += 1;
            rates.at(&currency, &tx.date).ok_or_else(|| JournalError {
                line: p.line,
                message: format!("no price of {currency} in {base} on or before {}", tx.date),
            })?
        };
        let base_amount =
            money::convert_currency(amount.abs(), &currency, rate, base).ok_or_else(|| {
                JournalError {
                    line: p.line,
                    message: "the amount overflows".into(),
                }
            })?;
        let account = job.accounts.get(&p.account).cloned().unwrap_or_default();
        let debit = amount >= 0;
        if debit {
            debit_total += base_amount;
        } else {
            credit_total += base_amount;
        }
        lines.push(PostingLine {
            account,
            debit: if debit { base_amount } else { 0 },
            credit: if debit { 0 } else { base_amount },
            currency,
            debit_in_currency: if debit { amount } else { 0 },
            credit_in_currency: if debit { 0 } else { -amount },
            party_type: None,
            party: None,
            cost_center: None,
            remark: p.comment.clone(),
            rate: Some(rate),
            rate_source: None,
        });
    }
    let difference = debit_total - credit_total;
    if difference != 0 {
        if difference.abs() > converted {
            return Err(JournalError {
                line: tx.line,
                message: format!(
                    "converted to {base} the transaction is off by {}",
                    money::format_minor(difference, base)
                ),
            });
        }
        lines.push(PostingLine {
            account: job.company.rounding_account.clone().unwrap_or_default(),
            debit: if difference < 0 { -difference } else { 0 },
            credit: if difference > 0 { difference } else { 0 },
            currency: base.to_owned(),
            debit_in_currency: 0,
            credit_in_currency: 0,
            party_type: None,
            party: None,
            cost_center: None,
            remark: Some("exchange rounding".into()),
            rate: Some(RATE_ONE),
            rate_source: None,
        });
    }
    let id = uuid::Uuid::now_v7().to_string();
    Ok(LedgerEntry {
        name: format!("IMP-{}-{:07}", job.import_id, n + 1),
        entry_type: "Import",
        title: Some(tx.description.clone()).filter(|d| !d.is_empty()),
        remark: tx.comment.clone(),
        voucher: Voucher {
            journal_entry: id.clone(),
            posting_date: tx.date.clone(),
            period: period.id.clone(),
            lines,
            is_reversal: false,
            is_closing: false,
        },
        id,
    })
}

async fn flush(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    job: &Job,
    batch: &mut Vec<LedgerEntry<'static>>,
    now: &str,
) -> Result<u64, RepoError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let postings: u64 = batch.iter().map(|e| e.voucher.lines.len() as u64).sum();
    ledger::write_entries(conn, scope, &job.company, batch, now).await?;
    let changes: Vec<serde_json::Value> = batch
        .iter()
        .map(|e| {
            ledger::audit_changes(&[
                ("name", json!(e.name)),
                ("posting_date", json!(e.voucher.posting_date)),
                ("entry_type", json!("Import")),
                ("postings", json!(e.voucher.lines.len())),
                ("docstatus", json!(1)),
            ])
        })
        .collect();
    let trace = scope.trace_id().to_owned();
    let records: Vec<AuditRecord<'_>> = batch
        .iter()
        .zip(&changes)
        .map(|(e, changes)| AuditRecord {
            tenant: scope.tenant(),
            time: now,
            actor: scope.user(),
            action: "submit",
            entity: Some("journal_entry"),
            id: Some(&e.id),
            changes: changes.clone(),
            trace: &trace,
        })
        .collect();
    append_records(conn, scope.tenant(), &records)
        .await
        .map_err(RepoError::Database)?;
    batch.clear();
    Ok(postings)
}

/// Writes a company's submitted entries in the journal format: account directives, the
/// exchange rates as `P` directives, then one transaction per entry in date order. An
/// entry whose lines balance in each currency is written in those currencies; one that
/// balances only in company currency is written in company currency, with each line's own
/// amount in a comment.
pub async fn export(
    books: &Books,
    scope: &TenantScope,
    company: &str,
    out: &mut (dyn std::io::Write + Send),
) -> Result<u64, ImportError> {
    let company = books.company(scope, company).await?;
    let accounts = books.accounts(scope, &company.id).await?;
    let paths: HashMap<String, String> = accounts
        .iter()
        .map(|a| (a.id.clone(), a.path.clone()))
        .collect();
    let io = |e: std::io::Error| ImportError::Io {
        path: "output".into(),
        message: e.to_string(),
    };
    let mut head = String::new();
    for a in accounts.iter().filter(|a| !a.is_group) {
        let _ = journal::write_account(&mut head, &a.path);
    }
    out.write_all(head.as_bytes()).map_err(io)?;
    let repository = books.repository()?.clone();
    let scope_for = scope.clone();
    let company_id = company.id.clone();
    let base = company.base_currency.clone();
    // Read in pages of entries so memory stays bounded whatever the size of the books.
    let mut after: Option<(String, String)> = None;
    let mut written = 0u64;
    {
        let scope2 = scope_for.clone();
        let base2 = base.clone();
        let rates = repository
            .read(scope, Box::new(move |conn| {
                let scope = scope2.clone();
                let base = base2.clone();
                Box::pin(async move {
                    let mut sql = Sql::default();
                    let tenant = sql.arg(text(scope.tenant()));
                    let to = sql.arg(text(&base));
                    sql.text = format!("SELECT from_code, date, rate FROM exchange_rate WHERE tenant_id = {tenant} AND to_code = {to} AND deleted_at IS NULL ORDER BY date, from_code");
                    conn.fetch(&sql, &[SqlType::Text, SqlType::Text, SqlType::Int]).await.map_err(RepoError::from)
                })
            }))
            .await?;
        let mut text_out = String::new();
        for r in rates {
            let currency = cell_text(r.first()).unwrap_or_default();
            let quantity = journal::Quantity {
                mantissa: i128::from(cell_int(r.get(2))),
                scale: RATE_SCALE,
            };
            let _ = journal::write_price(
                &mut text_out,
                &cell_text(r.get(1)).unwrap_or_default(),
                &currency,
                &journal::Amount::new(base.clone(), quantity),
            );
        }
        out.write_all(text_out.as_bytes()).map_err(io)?;
    }
    loop {
        let scope = scope_for.clone();
        let company_id = company_id.clone();
        let after_for = after.clone();
        let page = repository
            .read(&scope_for, Box::new(move |conn| {
                let scope = scope.clone();
                let company_id = company_id.clone();
                let after = after_for.clone();
                Box::pin(async move {
                    let mut sql = Sql::default();
                    let tenant = sql.arg(text(scope.tenant()));
                    let company = sql.arg(text(&company_id));
                    let cursor = match &after {
                        Some((date, name)) => {
                            let d = sql.arg(text(date));
                            let n = sql.arg(text(name));
                            format!(" AND (j.posting_date > {d} OR (j.posting_date = {d} AND j.name > {n}))")
                        }
                        None => String::new(),
                    };
                    sql.text = format!(
                        "SELECT j.id, j.name, j.posting_date, j.title FROM journal_entry j WHERE j.tenant_id = {tenant} AND j.company = {company} AND j.docstatus = 1 AND j.deleted_at IS NULL{cursor} ORDER BY j.posting_date, j.name LIMIT 2000"
                    );
                    let entries = conn.fetch(&sql, &[SqlType::Text; 4]).await?;
                    let mut out = Vec::with_capacity(entries.len());
                    for e in entries {
                        let id = cell_text(e.first()).unwrap_or_default();
                        let mut sql = Sql::default();
                        let tenant = sql.arg(text(scope.tenant()));
                        let entry = sql.arg(text(&id));
                        sql.text = format!("SELECT account, debit, credit, line_debit_currency, line_debit, line_credit FROM gl_entry WHERE tenant_id = {tenant} AND journal_entry = {entry} AND is_reversal = FALSE ORDER BY created_at, id");
                        let lines = conn.fetch(&sql, &[SqlType::Text, SqlType::Int, SqlType::Int, SqlType::Text, SqlType::Int, SqlType::Int]).await?;
                        out.push((e, lines));
                    }
                    Ok(out)
                })
            }))
            .await?;
        if page.is_empty() {
            break;
        }
        let mut text_out = String::new();
        for (entry, lines) in &page {
            let date = cell_text(entry.get(2)).unwrap_or_default();
            let title = cell_text(entry.get(3))
                .or_else(|| cell_text(entry.get(1)))
                .unwrap_or_default();
            let mut per_currency: HashMap<String, i64> = HashMap::new();
            for l in lines {
                *per_currency
                    .entry(cell_text(l.get(3)).unwrap_or_default())
                    .or_default() += cell_int(l.get(4)) - cell_int(l.get(5));
            }
            let in_currencies = per_currency.values().all(|v| *v == 0);
            let postings: Vec<(String, journal::Amount)> = lines
                .iter()
                .filter(|l| !in_currencies || cell_int(l.get(4)) != 0 || cell_int(l.get(5)) != 0)
                .map(|l| {
                    let account = paths
                        .get(&cell_text(l.first()).unwrap_or_default())
                        .cloned()
                        .unwrap_or_default();
                    let (currency, amount) = if in_currencies {
                        (
                            cell_text(l.get(3)).unwrap_or_default(),
                            cell_int(l.get(4)) - cell_int(l.get(5)),
                        )
                    } else {
                        (base.clone(), cell_int(l.get(1)) - cell_int(l.get(2)))
                    };
                    let quantity = journal::Quantity {
                        mantissa: i128::from(amount),
                        scale: currency_scale(&currency),
                    };
                    (account, journal::Amount::new(currency, quantity))
                })
                .collect();
            let _ = journal::write_transaction(&mut text_out, &date, &title, &postings);
            written += 1;
        }
        out.write_all(text_out.as_bytes()).map_err(io)?;
        after = page.last().map(|(e, _)| {
            (
                cell_text(e.get(2)).unwrap_or_default(),
                cell_text(e.get(1)).unwrap_or_default(),
            )
        });
    }
    Ok(written)
}
