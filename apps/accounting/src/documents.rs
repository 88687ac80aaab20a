//! Documents of other apps that post to the ledger (sales and purchase invoices, later
//! payments): each submitted document gets a journal entry written by the ledger, in
//! the document's own transaction, checked by the same posting rules as a journal entry
//! typed by hand (open period, leaf accounts of the company, balanced in company
//! currency, exchange rates); its cancel reverses those postings and cancels the entry.
//!
//! The entry carries the document's name and an `entry_type` naming the kind of document,
//! and is audited with the digest of its postings, like a closing or imported entry.

use prefiq_data::entity::repo::{FieldError, RepoError, TenantScope};
use prefiq_data::entity::sql::{Conn, Sql};
use prefiq_data::entity::value::{civil_now, currency_scale, format_scaled};
use serde_json::{Map, Value, json};

use crate::books::append;
use crate::ledger::{self, LedgerEntry, text};
use crate::money::RATE_ONE;

/// The entry types documents post with; only the ledger writes them.
pub const DOCUMENT_ENTRY_TYPES: &[&str] = &[
    "Sales Invoice",
    "Purchase Invoice",
    "Payment Entry",
    "Stock Entry",
    "Delivery Note",
    "Purchase Receipt",
];

/// One line of a document's postings, in the document's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentLine {
    /// The account id.
    pub account: String,
    /// Debit in the document's currency (minor units; zero or the credit is).
    pub debit: i64,
    /// Credit in the document's currency.
    pub credit: i64,
    /// `Customer` or `Supplier`, on the party's line.
    pub party_type: Option<String>,
    /// The party's id.
    pub party: Option<String>,
    /// A remark.
    pub remark: Option<String>,
    /// The pointer, in the document, of what this line comes from: a refusal of the line
    /// names it (`/customer` for the receivable line, `/lines/2/income_account`, …).
    pub source: String,
    /// This line's own currency and exchange rate (scaled by 10^9), when they are not the
    /// document's: a payment settles an invoice at the invoice's rate, and posts the
    /// exchange gain or loss in the company's currency.
    pub currency_rate: Option<(String, i64)>,
}

/// What a document posts.
#[derive(Debug, Clone)]
pub struct DocumentPosting<'a> {
    /// One of [`DOCUMENT_ENTRY_TYPES`].
    pub entry_type: &'a str,
    /// The document's name (`SINV-2026-00001`): the entry's name too.
    pub name: String,
    /// The company id.
    pub company: String,
    /// The posting date (`YYYY-MM-DD`).
    pub posting_date: String,
    /// The document's currency.
    pub currency: String,
    /// Company-currency units per unit of the document's currency, scaled by 10^9; `None`
    /// takes the stored rate of the date (and 1 in the company's own currency).
    pub exchange_rate: Option<i64>,
    /// The postings.
    pub lines: Vec<DocumentLine>,
}

/// Writes the journal entry of a submitted document and its postings, in the caller's
/// transaction; returns the entry's id. Refusals name the document's fields.
pub async fn post_document(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    posting: &DocumentPosting<'_>,
) -> Result<String, RepoError> {
    let id = uuid::Uuid::now_v7().to_string();
    let scale = currency_scale(&posting.currency);
    let money = |amount: i64, line: &DocumentLine| {
        let (currency, scale) = match &line.currency_rate {
            Some((currency, _)) => (currency.as_str(), currency_scale(currency)),
            None => (posting.currency.as_str(), scale),
        };
        (amount != 0).then(|| json!({"amount": format_scaled(amount, scale), "currency": currency}))
    };
    let rate = posting
        .exchange_rate
        .map(|r| format_scaled(r, 9))
        .unwrap_or_else(|| format_scaled(RATE_ONE, 9));
    let lines: Vec<Value> = posting
        .lines
        .iter()
        .map(|l| {
            let mut line = Map::new();
            line.insert("account".into(), json!(l.account));
            if let Some(debit) = money(l.debit, l) {
                line.insert("debit".into(), debit);
            }
            if let Some(credit) = money(l.credit, l) {
                line.insert("credit".into(), credit);
            }
            if let Some((_, own)) = &l.currency_rate {
                line.insert("exchange_rate".into(), json!(format_scaled(*own, 9)));
            } else if posting.exchange_rate.is_some() {
                line.insert("exchange_rate".into(), json!(rate));
            }
            if let Some(p) = &l.party_type {
                line.insert("party_type".into(), json!(p));
            }
            if let Some(p) = &l.party {
                line.insert("party".into(), json!(p));
            }
            if let Some(r) = &l.remark {
                line.insert("remark".into(), json!(r));
            }
            Value::Object(line)
        })
        .collect();
    let doc = json!({
        "company": posting.company,
        "posting_date": posting.posting_date,
        "lines": lines,
    });
    let doc = doc.as_object().cloned().unwrap_or_default();
    let (company, voucher) = ledger::prepare_voucher(conn, scope, &id, &doc)
        .await
        .map_err(|e| name_sources(e, &posting.lines))?;
    let hash = ledger::postings_hash(&voucher);
    let now = civil_now();
    let entry = LedgerEntry {
        id: id.clone(),
        name: posting.name.clone(),
        entry_type: posting.entry_type,
        title: Some(format!("{} {}", posting.entry_type, posting.name)),
        remark: None,
        voucher,
    };
    ledger::write_entries(conn, scope, &company, std::slice::from_ref(&entry), &now).await?;
    append(
        conn,
        scope,
        &now,
        "submit",
        "journal_entry",
        &id,
        ledger::audit_changes(&[
            ("name", json!(posting.name)),
            ("entry_type", json!(posting.entry_type)),
            ("posting_date", json!(posting.posting_date)),
            ("postings_sha256", json!(hash)),
            ("docstatus", json!(1)),
        ]),
    )
    .await?;
    Ok(id)
}

/// Reverses the postings of a document's journal entry and cancels the entry, in the
/// caller's transaction: refused when its period is closed.
pub async fn reverse_document(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    journal_entry: &str,
    company: &str,
) -> Result<(), RepoError> {
    let doc = json!({"company": company});
    let doc = doc.as_object().cloned().unwrap_or_default();
    let (company, voucher) = ledger::reversal_voucher(conn, scope, journal_entry, &doc).await?;
    let now = civil_now();
    ledger::write_postings(conn, scope, &company, std::slice::from_ref(&voucher), &now).await?;
    let mut sql = Sql::default();
    let at = sql.arg(text(&now));
    let user = sql.arg(ledger::opt_text(scope.user()));
    let tenant = sql.arg(text(scope.tenant()));
    let entry = sql.arg(text(journal_entry));
    sql.text = format!(
        "UPDATE journal_entry SET docstatus = 2, modified_at = {at}, modified_by = {user} WHERE tenant_id = {tenant} AND id = {entry} AND docstatus = 1"
    );
    conn.execute(&sql).await?;
    append(
        conn,
        scope,
        &now,
        "cancel",
        "journal_entry",
        journal_entry,
        ledger::audit_changes(&[
            ("postings_sha256", json!(ledger::postings_hash(&voucher))),
            ("docstatus", json!(2)),
        ]),
    )
    .await
}

/// The posting rules' refusals, with each `/lines/{i}/…` pointer replaced by the
/// document's field that line comes from.
fn name_sources(error: RepoError, lines: &[DocumentLine]) -> RepoError {
    match error {
        RepoError::Invalid(errors) => RepoError::Invalid(
            errors
                .into_iter()
                .map(|e| FieldError {
                    pointer: source_of(&e.pointer, lines),
                    ..e
                })
                .collect(),
        ),
        other => other,
    }
}

fn source_of(pointer: &str, lines: &[DocumentLine]) -> String {
    let Some(rest) = pointer.strip_prefix("/lines/") else {
        return pointer.to_owned();
    };
    let index = rest.split('/').next().and_then(|i| i.parse::<usize>().ok());
    match index.and_then(|i| lines.get(i)) {
        Some(line) => line.source.clone(),
        None => pointer.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_a_line_name_the_field_it_comes_from() {
        let line = |source: &str| DocumentLine {
            account: "a".into(),
            debit: 1,
            credit: 0,
            party_type: None,
            party: None,
            remark: None,
            source: source.into(),
            currency_rate: None,
        };
        let lines = [line("/customer"), line("/lines/0/income_account")];
        for (pointer, expected) in [
            ("/lines/0/account", "/customer"),
            ("/lines/1/exchange_rate", "/lines/0/income_account"),
            ("/lines/7/account", "/lines/7/account"),
            ("/lines", "/lines"),
            ("/posting_date", "/posting_date"),
        ] {
            assert_eq!(source_of(pointer, &lines), expected, "{pointer}");
        }
    }
}
