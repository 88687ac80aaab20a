//! The second pass, inside the import's one transaction: a parser thread reads the file
//! again and makes each batch's rows (statement text and arguments, or `COPY` data on
//! PostgreSQL) and audit records, while the transaction writes the batch before. A bounded
//! channel between them keeps at most [`BATCHES_IN_FLIGHT`] batches in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prefiq::Backend;
use prefiq_data::audit::{AuditRecord, append_records};
use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Conn, Sql, SqlType};
use prefiq_data::entity::value::civil_now;
use serde_json::{Value, json};

use super::{BATCH_POSTINGS, Job, MAX_REPORTED_ERRORS, Rates, currency_of, minor};
use crate::journal::{self, Item, JournalError, Reader};
use crate::ledger::{
    self, BalanceSums, EntryRows, LedgerEntry, PostingLine, Stamp, Voucher, cell_int, cell_text,
    store, text,
};
use crate::money::{self, RATE_ONE};

/// Batches the parser thread may make ahead of the writer. It waits when they are
/// queued, so memory stays bounded (two batches of [`BATCH_POSTINGS`] postings) whatever
/// the size of the file, and it never runs further ahead than the writer can follow.
const BATCHES_IN_FLIGHT: usize = 2;

/// The second pass, inside the import's transaction. Returns (transactions, postings,
/// transactions skipped for a reason only this pass sees).
pub(super) async fn write_all(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    job: &Arc<Job>,
    read: &AtomicU64,
) -> Result<(u64, u64, Vec<JournalError>), RepoError> {
    still_open(conn, scope, job).await?;
    let now = civil_now();
    write_entries_of(conn, scope, job, &now, read).await
}

/// One batch of the parser thread: its rows, and per entry the audit record's subject and
/// changes.
struct Batch {
    rows: EntryRows,
    audit: Vec<(String, Value)>,
    /// Bytes of the file read when the batch was made, for the progress bar.
    bytes_read: u64,
}

/// What the parser thread found once the file is read.
struct Parsed {
    transactions: u64,
    postings: u64,
    /// Every batch's additions to the balance rows: written once, after the last batch.
    sums: BalanceSums,
    /// Transactions refused for a reason only this pass sees.
    late: Vec<JournalError>,
}

async fn write_entries_of(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    job: &Arc<Job>,
    now: &str,
    read: &AtomicU64,
) -> Result<(u64, u64, Vec<JournalError>), RepoError> {
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
    write_rates(conn, scope, job, now).await?;
    let stamp = Stamp::new(scope, &job.company, now);
    // Every key the postings need is known before the parser starts: the company, its
    // currency, the journal's accounts and currencies, the periods.
    let company = &job.company;
    let ids = [company.id.as_str(), company.base_currency.as_str()]
        .into_iter()
        .chain(company.rounding_account.as_deref())
        .chain(job.accounts.values().map(String::as_str))
        .chain(job.currencies.iter().map(String::as_str))
        .chain(job.periods.iter().map(|p| p.id.as_str()));
    let keys = Arc::new(store::Keys::resolve(conn, scope, ids).await?);
    let batch = store::open_batch(conn, scope, now).await?;
    let postings = store::Postings::new(conn.backend(), scope, company, &keys, batch)?;
    let (sender, mut receiver) = tokio::sync::mpsc::channel(BATCHES_IN_FLIGHT);
    let parser = {
        let (job, stamp, backend) = (job.clone(), stamp.clone(), conn.backend());
        tokio::task::spawn_blocking(move || {
            parse(&job, &rates, backend, &stamp, &keys, &postings, &sender)
        })
    };
    let mut failed = None;
    while let Some(batch) = receiver.recv().await {
        let bytes_read = batch.bytes_read;
        if let Err(e) = write_batch(conn, scope, batch, now).await {
            failed = Some(e);
            break;
        }
        read.store(bytes_read, Ordering::Relaxed);
    }
    // A writer that failed stops the parser at its next batch.
    drop(receiver);
    let parsed = parser
        .await
        .map_err(|e| ledger::invalid("", "io", format!("the import's reader stopped: {e}")))?;
    if let Some(e) = failed {
        return Err(e);
    }
    let parsed = parsed?;
    parsed.sums.write(conn, &stamp).await?;
    let Parsed {
        transactions,
        postings,
        late,
        ..
    } = parsed;
    if !late.is_empty() && !job.skip.is_empty() {
        // Skipping was asked for: these are reported, not fatal.
        return Ok((transactions, postings, late));
    }
    if !late.is_empty() {
        return Err(RepoError::Invalid(
            late.into_iter()
                .take(MAX_REPORTED_ERRORS)
                .map(|e| prefiq_data::entity::repo::FieldError {
                    pointer: format!("/line/{}", e.line),
                    code: "invalid",
                    message: e.message,
                })
                .collect(),
        ));
    }
    Ok((transactions, postings, late))
}

/// The parser thread: reads the file, makes each batch's rows and sends it to the writer.
/// Stops early, without an error of its own, when the writer has stopped listening.
fn parse(
    job: &Job,
    rates: &Rates,
    backend: Backend,
    stamp: &Stamp,
    keys: &Arc<store::Keys>,
    postings: &store::Postings,
    sender: &tokio::sync::mpsc::Sender<Batch>,
) -> Result<Parsed, RepoError> {
    let file = std::fs::File::open(&job.path).map_err(|e| {
        ledger::invalid("", "io", format!("cannot read {}: {e}", job.path.display()))
    })?;
    let mut reader = Reader::new(std::io::BufReader::with_capacity(1 << 16, file));
    let mut parsed = Parsed {
        transactions: 0,
        postings: 0,
        sums: BalanceSums::default(),
        late: Vec::new(),
    };
    let new_batch = || Batch {
        rows: EntryRows::new(backend, stamp.clone(), keys.clone(), postings.fresh()),
        audit: Vec::new(),
        bytes_read: 0,
    };
    let mut batch = new_batch();
    // Once a transaction is refused here and skipping was not asked for, nothing will be
    // kept: the rest is read only to report every such transaction.
    let mut doomed = false;
    while let Some(item) = reader.next() {
        let Ok(Item::Transaction(tx)) = item else {
            continue;
        };
        if job.skip.contains(&tx.line) {
            continue;
        }
        let Ok(balanced) = journal::balance(&tx) else {
            continue;
        };
        let entry = match entry_of(job, rates, &tx, &balanced, parsed.transactions) {
            Ok(entry) => entry,
            Err(e) => {
                doomed |= job.skip.is_empty();
                if parsed.late.len() < MAX_REPORTED_ERRORS {
                    parsed.late.push(e);
                }
                continue;
            }
        };
        parsed.transactions += 1;
        if doomed {
            continue;
        }
        parsed.sums.add(&entry.voucher)?;
        batch.audit.push((entry.id.clone(), audit_changes(&entry)));
        batch.rows.push(&entry)?;
        if batch.rows.postings() >= BATCH_POSTINGS {
            parsed.postings += batch.rows.postings() as u64;
            batch.bytes_read = reader.bytes_read();
            if sender
                .blocking_send(std::mem::replace(&mut batch, new_batch()))
                .is_err()
            {
                return Ok(parsed);
            }
        }
    }
    if !doomed && !batch.rows.is_empty() {
        parsed.postings += batch.rows.postings() as u64;
        batch.bytes_read = reader.bytes_read();
        // A writer that stopped has its own error to report.
        let _ = sender.blocking_send(batch);
    }
    Ok(parsed)
}

/// The audit record of an imported entry: what it is, and the SHA-256 of its postings
/// ([`ledger::postings_hash`]), so verifying the log covers every amount written.
fn audit_changes(entry: &LedgerEntry<'_>) -> Value {
    ledger::audit_changes(&[
        ("name", json!(entry.name)),
        ("posting_date", json!(entry.voucher.posting_date)),
        ("entry_type", json!("Import")),
        ("postings", json!(entry.voucher.lines.len())),
        (
            "postings_sha256",
            json!(ledger::postings_hash(&entry.voucher)),
        ),
        ("docstatus", json!(1)),
    ])
}

/// Writes one batch: its rows, then one audit record per entry.
async fn write_batch(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    batch: Batch,
    now: &str,
) -> Result<(), RepoError> {
    batch.rows.write(conn).await?;
    let trace = scope.trace_id().to_owned();
    let (ids, changes): (Vec<String>, Vec<Value>) = batch.audit.into_iter().unzip();
    let records: Vec<AuditRecord<'_>> = ids
        .iter()
        .zip(changes)
        .map(|(id, changes)| AuditRecord {
            tenant: scope.tenant(),
            time: now,
            actor: scope.user(),
            action: "submit",
            entity: Some("journal_entry"),
            id: Some(id),
            changes,
            trace: &trace,
        })
        .collect();
    append_records(conn, scope.tenant(), &records)
        .await
        .map_err(RepoError::Database)
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
            rounding: false,
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
        lines.push(PostingLine::exchange_rounding(
            job.company.rounding_account.clone().unwrap_or_default(),
            difference,
            base,
            true,
        ));
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
