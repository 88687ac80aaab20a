//! Plain-text accounting import and export (the journal format hledger and ledger-cli
//! read).
//!
//! Import reads the file twice, streaming, holding one batch at a time. The first pass
//! parses and balances every transaction and collects the accounts, commodities, prices
//! and dates; any invalid transaction is reported with its line, and unless invalid ones
//! are to be skipped nothing is written. The second pass runs in one database transaction:
//! entries, lines, postings and balances go in with multi-row statements, each entry
//! with its audit record, so an import is whole or absent.

//!
//! One concern per file: the first pass (`survey.rs`), the second (`write.rs`: a parser
//! thread makes the rows of each batch while the transaction writes the previous one) and
//! export (`export.rs`).

mod export;
mod survey;
mod write;

pub use export::export;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Conn, Sql, SqlType};
use prefiq_data::entity::value::currency_scale;
use serde_json::json;

use crate::books::Books;
use crate::journal::{self, Item, JournalError, Reader};
use crate::ledger::{self, Company, cell_int, cell_text, text};
use crate::money::RATE_SCALE;

/// Postings per batch the parser thread hands to the writer. A batch's rows are held as
/// bound arguments (about 50 per posting), so four batches (two queued, one being
/// written, one being made) must stay well under the import's memory budget; 5,000
/// postings is five full statements per table, enough to keep the writer busy.
pub const BATCH_POSTINGS: usize = 5_000;

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
    let survey = survey::survey(path, &base, progress)?;
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
        currencies: survey.accounts.values().flatten().cloned().collect(),
        rates,
        prices: survey.prices.clone(),
        skip: survey.bad_lines.clone(),
        import_id: uuid::Uuid::now_v7().simple().to_string()[..12].to_owned(),
    });
    let scope_for = scope.clone();
    // Bytes the writing pass's reader has read: the transaction body must own what it
    // uses, so progress is read from here while it runs.
    let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let read_for = read.clone();
    let transaction = repository.in_transaction(
        scope,
        Box::new(move |conn| {
            let job = job.clone();
            let scope = scope_for.clone();
            let read = read_for.clone();
            Box::pin(async move { write::write_all(conn, &scope, &job, &read).await })
        }),
    );
    tokio::pin!(transaction);
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let written = loop {
        tokio::select! {
            written = &mut transaction => break written,
            () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                progress(size + read.load(std::sync::atomic::Ordering::Relaxed));
            }
        }
    };
    progress(size.saturating_mul(2));
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
    analyse(&repository, scope).await;
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

/// On PostgreSQL, refreshes the planner's statistics of the tables an import filled, so
/// the first reports after it are not planned for empty tables. Runs as the connecting
/// user (who owns the tables; the application role may not analyse them), after the
/// import committed: a failure is logged, not the import's.
async fn analyse(repository: &prefiq_data::entity::repo::Repository, scope: &TenantScope) {
    let Ok(handle) = repository.tenant_database(scope.tenant()).await else {
        return;
    };
    let Ok(prefiq_data::Database::Postgres(pool)) = handle.get() else {
        return;
    };
    let outcome = async {
        let mut connection = pool.acquire().await.map_err(prefiq_data::DataError::from)?;
        Conn::Postgres(&mut connection)
            .execute(&Sql {
                text: "ANALYZE journal_entry, journal_entry_line, ledger_posting, ledger_key, ledger_batch, account_balance, exchange_rate".into(),
                args: Vec::new(),
            })
            .await
    }
    .await;
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "analysing the imported tables failed");
    }
}

/// What the writing pass needs; shared by every run of the transaction body.
struct Job {
    path: PathBuf,
    company: Company,
    periods: Vec<ledger::Period>,
    accounts: HashMap<String, String>,
    /// Every currency of the journal's lines.
    currencies: std::collections::BTreeSet<String>,
    rates: Rates,
    prices: Vec<(String, String, String, i64, usize)>,
    skip: std::collections::HashSet<usize>,
    import_id: String,
}
