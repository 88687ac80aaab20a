//! Invoices, sales and purchase alike: their postings written to the ledger in the
//! submit's transaction (reversed in the cancel's), with what goes with them there: the
//! exchange rate fixed, the credit limit checked, the order lines they invoice billed,
//! and a return's amount taken off the invoice it returns.
//!
//! A sales invoice debits the customer's receivable account with its grand total and
//! credits each line's income account with its net and each tax's account with its tax;
//! a purchase invoice credits the supplier's payable account and debits expense and tax
//! accounts. A return (`return_against` set, negative quantities, so a negative total)
//! posts the same lines on the other side, and reduces what is outstanding on the
//! invoice it returns (what it cannot reduce, the invoice being paid, stays on the
//! return as a negative outstanding amount: a credit the party holds).

use std::collections::HashMap;
use std::sync::Arc;

use accounting::documents::{DocumentLine, DocumentPosting, post_document, reverse_document};
use prefiq::{RegisterContext, async_trait};
use prefiq_data::entity::repo::{EntityEvent, RepoError, TenantScope, TransactionHook};
use prefiq_data::entity::sql::{Arg, Conn, Sql, SqlType};
use prefiq_data::entity::value::{format_scaled, parse_scaled};
use serde_json::{Map, Value};

use crate::TradeRepository;
pub use crate::credit::OVERRIDE_CREDIT_LIMIT;
use crate::credit::{Exposure, check_credit_limit};
pub use crate::figures::InvoiceKind;
use crate::figures::{self, DocumentSpec, Facts, Stage, facts};
use crate::rows::{cell_text, invalid, rows_by_id, str_of, text_arg};

/// The postings of an invoice, in its currency.
fn postings(kind: InvoiceKind, facts: &Facts, party: &str) -> Vec<DocumentLine> {
    // Sales debit the party and credit income and taxes; purchases the other way round.
    let party_debits = kind == InvoiceKind::Sales;
    let line = |account: &str, amount: i64, debit: bool, source: String, party: Option<&str>| {
        // A negative amount (a return) goes to the other side.
        let debit = debit == (amount >= 0);
        DocumentLine {
            account: account.to_owned(),
            debit: if debit { amount.abs() } else { 0 },
            credit: if debit { 0 } else { amount.abs() },
            party_type: party.map(|_| kind.party_type().to_owned()),
            party: party.map(str::to_owned),
            remark: None,
            source,
            currency_rate: None,
        }
    };
    let mut out = vec![line(
        &facts.party_account,
        facts.totals.grand_total,
        party_debits,
        format!("/{}", kind.party()),
        Some(party),
    )];
    for (i, (totals, account)) in facts.totals.lines.iter().zip(&facts.accounts).enumerate() {
        if totals.net != 0 {
            out.push(line(
                account,
                totals.net,
                !party_debits,
                format!("/lines/{i}/{}", kind.line_account()),
                None,
            ));
        }
    }
    for (tax, amount) in facts.taxes.iter().zip(&facts.totals.tax_totals) {
        if *amount != 0 {
            out.push(line(
                &tax.account,
                *amount,
                !party_debits,
                "/tax_template".into(),
                None,
            ));
        }
    }
    out
}

/// Posts an invoice's journal entry on submit and reverses it on cancel.
struct InvoicePosting {
    spec: DocumentSpec,
    services: TradeRepository,
}

/// The exchange rate an invoice posts at, scaled by 10^9: the one given, else the stored
/// rate of its date (1 in the company's currency). `None` when there is none: the
/// ledger then refuses the posting with its pointer.
pub(crate) async fn invoice_rate(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    doc: &Map<String, Value>,
    company: &str,
    currency: &str,
) -> Result<Option<i64>, RepoError> {
    if let Some(Value::String(r)) = doc.get("exchange_rate") {
        return parse_scaled(r, 9)
            .ok()
            .filter(|r| *r > 0)
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    "/exchange_rate",
                    "wrong_type",
                    "an exchange rate is more than zero",
                )
            });
    }
    let Some(company) = accounting::ledger::load_company(conn, scope, company).await? else {
        return Ok(None);
    };
    if company.base_currency == currency {
        return Ok(Some(accounting::money::RATE_ONE));
    }
    let date = str_of(doc.get("posting_date")).unwrap_or_default();
    Ok(
        accounting::ledger::load_rate(conn, scope, currency, &company.base_currency, date)
            .await?
            .map(|(rate, _)| rate),
    )
}

/// The figures of a submitted invoice row that payments and returns work with.
pub(crate) struct InvoiceRow {
    pub(crate) party: String,
    pub(crate) company: String,
    pub(crate) currency: String,
    pub(crate) docstatus: i64,
    pub(crate) grand_total: i64,
    pub(crate) outstanding: i64,
    pub(crate) rate: Option<i64>,
    pub(crate) name: String,
    pub(crate) posting_date: String,
}

/// Reads one invoice's row, as of this transaction.
pub(crate) async fn invoice_row(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: InvoiceKind,
    id: &str,
) -> Result<Option<InvoiceRow>, RepoError> {
    let rows = rows_by_id(
        conn,
        scope,
        kind.entity(),
        &[
            kind.party(),
            "company",
            "currency",
            "docstatus",
            "grand_total",
            "outstanding_amount",
            "exchange_rate",
            "name",
            "posting_date",
        ],
        &[id],
    )
    .await?;
    Ok(rows.get(id).map(|r| {
        let text = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        let int = |i: usize| text(i).parse::<i64>().unwrap_or(0);
        InvoiceRow {
            party: text(0),
            company: text(1),
            currency: text(2),
            docstatus: int(3),
            grand_total: int(4),
            outstanding: int(5),
            rate: text(6).parse::<i64>().ok(),
            name: text(7),
            posting_date: text(8),
        }
    }))
}

/// Adds `delta` to an invoice's outstanding amount.
pub(crate) async fn add_outstanding(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: InvoiceKind,
    id: &str,
    delta: i64,
) -> Result<(), RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let row = sql.arg(text_arg(id));
    let delta = sql.arg(Arg::Int(Some(delta)));
    sql.text = format!(
        "UPDATE {} SET outstanding_amount = outstanding_amount + {delta} WHERE tenant_id = {tenant} AND id = {row}",
        kind.entity()
    );
    conn.execute(&sql).await?;
    Ok(())
}

/// Sets an invoice's outstanding amount and the rate it posted at.
async fn set_outstanding_and_rate(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: InvoiceKind,
    id: &str,
    outstanding: i64,
    currency: &str,
    rate: Option<i64>,
) -> Result<(), RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let row = sql.arg(text_arg(id));
    let amount = sql.arg(Arg::Int(Some(outstanding)));
    let c = sql.arg(text_arg(currency));
    let rate = match rate {
        Some(rate) => format!(", exchange_rate = {}", sql.arg(Arg::Int(Some(rate)))),
        None => String::new(),
    };
    sql.text = format!(
        "UPDATE {} SET outstanding_amount = {amount}, outstanding_amount_currency = {c}{rate} WHERE tenant_id = {tenant} AND id = {row}",
        kind.entity()
    );
    conn.execute(&sql).await?;
    Ok(())
}

/// Quantities per item of the submitted lines of these invoices.
async fn qty_by_item(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: InvoiceKind,
    filter: &str,
    args: &[&str],
) -> Result<HashMap<String, i64>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let mut filter = filter.to_owned();
    for (i, a) in args.iter().enumerate() {
        let p = sql.arg(text_arg(a));
        filter = filter.replace(&format!("${i}"), &p);
    }
    let entity = kind.entity();
    sql.text = format!(
        "SELECT l.item, CAST(SUM(l.qty) AS TEXT) FROM {entity}_line l JOIN {entity} i ON i.tenant_id = l.tenant_id AND i.id = l.parent_id WHERE l.tenant_id = {tenant} AND i.deleted_at IS NULL AND {filter} GROUP BY l.item"
    );
    let mut out = HashMap::new();
    for r in conn.fetch(&sql, &[SqlType::Text, SqlType::Text]).await? {
        if let (Some(item), Some(qty)) = (cell_text(&r, 0), cell_text(&r, 1)) {
            out.insert(item, qty.parse::<i64>().unwrap_or(0));
        }
    }
    Ok(out)
}

/// Checks a return against its invoice and takes its amount off that invoice's
/// outstanding amount; returns the return's own outstanding amount.
async fn apply_return(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: InvoiceKind,
    doc: &Map<String, Value>,
    facts: &Facts,
    original: &str,
) -> Result<i64, RepoError> {
    let this = str_of(doc.get("id")).unwrap_or_default();
    let party = str_of(doc.get(kind.party())).unwrap_or_default();
    let Some(row) = invoice_row(conn, scope, kind, original).await? else {
        return Err(invalid(
            "/return_against",
            "unknown",
            format!("there is no {} `{original}`", kind.entity()),
        ));
    };
    if row.docstatus != 1 {
        return Err(invalid(
            "/return_against",
            "not_submitted",
            "a return is made against a submitted invoice",
        ));
    }
    if row.party != party || row.company != facts.company || row.currency != facts.currency {
        return Err(invalid(
            "/return_against",
            "other_party",
            format!(
                "the invoice returned is of another {}, company or currency",
                kind.party()
            ),
        ));
    }
    // What was invoiced, less what earlier returns gave back, bounds this return.
    let invoiced = qty_by_item(conn, scope, kind, "i.id = $0", &[original]).await?;
    let returned = qty_by_item(
        conn,
        scope,
        kind,
        "i.return_against = $0 AND i.docstatus = 1 AND i.id <> $1",
        &[original, this],
    )
    .await?;
    let mut this_return: HashMap<&str, (i64, usize)> = HashMap::new();
    for (i, line) in facts.lines.iter().enumerate() {
        let entry = this_return.entry(line.item.as_str()).or_insert((0, i));
        entry.0 += line.qty;
    }
    for (item, (qty, first)) in this_return {
        let left =
            invoiced.get(item).copied().unwrap_or(0) + returned.get(item).copied().unwrap_or(0);
        if left + qty < 0 {
            return Err(invalid(
                format!("/lines/{first}/qty"),
                "over_returned",
                format!(
                    "the invoice has {} of this item left to return, not {}",
                    format_scaled(left, 3),
                    format_scaled(-qty, 3)
                ),
            ));
        }
    }
    let applied = (-facts.totals.grand_total).min(row.outstanding.max(0));
    add_outstanding(conn, scope, kind, original, -applied).await?;
    Ok(facts.totals.grand_total + applied)
}

/// Refuses to cancel an invoice that payments or returns still point at.
async fn check_unreferenced(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: InvoiceKind,
    id: &str,
) -> Result<(), RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let row = sql.arg(text_arg(id));
    let entity = kind.entity();
    sql.text = format!(
        "SELECT name FROM {entity} WHERE tenant_id = {tenant} AND return_against = {row} AND docstatus = 1 AND deleted_at IS NULL \
         UNION ALL SELECT p.name FROM payment_allocation r JOIN payment_entry p ON p.tenant_id = r.tenant_id AND p.id = r.parent_id \
         WHERE r.tenant_id = {tenant} AND r.invoice = {row} AND p.docstatus = 1 AND p.deleted_at IS NULL"
    );
    let names: Vec<String> = conn
        .fetch(&sql, &[SqlType::Text])
        .await?
        .iter()
        .filter_map(|r| cell_text(r, 0))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    Err(invalid(
        "",
        "referenced",
        format!(
            "the invoice is settled or returned by {}; cancel those first",
            names.join(", ")
        ),
    ))
}

#[async_trait]
impl TransactionHook for InvoicePosting {
    fn entity(&self) -> &str {
        self.spec.entity
    }

    async fn run(
        &self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        event: EntityEvent,
        doc: &Map<String, Value>,
    ) -> Result<(), RepoError> {
        let kind = self.spec.kind;
        let id = str_of(doc.get("id")).unwrap_or_default().to_owned();
        match event {
            EntityEvent::OnSubmit => {
                let facts = facts(conn, scope, self.spec, doc).await?;
                let party = str_of(doc.get(kind.party())).unwrap_or_default();
                let rate = invoice_rate(conn, scope, doc, &facts.company, &facts.currency).await?;
                let posting_date = str_of(doc.get("posting_date")).unwrap_or_default();
                let outstanding = match str_of(doc.get("return_against")) {
                    Some(original) => {
                        apply_return(conn, scope, kind, doc, &facts, original).await?
                    }
                    None => facts.totals.grand_total,
                };
                if kind == InvoiceKind::Sales && outstanding > 0 {
                    check_credit_limit(
                        conn,
                        scope,
                        &self.services,
                        &Exposure {
                            company: &facts.company,
                            customer: party,
                            id: &id,
                            amount: facts.totals.grand_total,
                            currency: &facts.currency,
                            rate,
                            date: posting_date,
                        },
                    )
                    .await?;
                }
                crate::order::bill(conn, scope, kind, doc, &facts.lines, 1).await?;
                let posting = DocumentPosting {
                    entry_type: kind.entry_type(),
                    name: str_of(doc.get("name")).unwrap_or(&id).to_owned(),
                    company: facts.company.clone(),
                    posting_date: posting_date.to_owned(),
                    currency: facts.currency.clone(),
                    exchange_rate: rate,
                    lines: postings(kind, &facts, party),
                };
                let entry = post_document(conn, scope, &posting).await?;
                set_outstanding_and_rate(
                    conn,
                    scope,
                    kind,
                    &id,
                    outstanding,
                    &facts.currency,
                    rate,
                )
                .await?;
                let mut sql = Sql::default();
                let tenant = sql.arg(text_arg(scope.tenant()));
                let row = sql.arg(text_arg(&id));
                let e = sql.arg(text_arg(&entry));
                sql.text = format!(
                    "UPDATE {} SET journal_entry = {e} WHERE tenant_id = {tenant} AND id = {row}",
                    kind.entity()
                );
                conn.execute(&sql).await?;
            }
            EntityEvent::OnCancel => {
                check_unreferenced(conn, scope, kind, &id).await?;
                let Some(entry) = str_of(doc.get("journal_entry")) else {
                    return Ok(());
                };
                let company = str_of(doc.get("company")).unwrap_or_default();
                reverse_document(conn, scope, entry, company).await?;
                // The lines as they were submitted: their items may be disabled since.
                let currency = str_of(doc.get("currency")).unwrap_or_default();
                let lines = figures::lines_of(doc, currency, kind)?;
                crate::order::bill(conn, scope, kind, doc, &lines, -1).await?;
                if let Some(original) = str_of(doc.get("return_against"))
                    && let Some(row) = invoice_row(conn, scope, kind, &id).await?
                {
                    // What the return took off its invoice goes back on.
                    let applied = row.outstanding - row.grand_total;
                    add_outstanding(conn, scope, kind, original, applied).await?;
                }
                set_outstanding_and_rate(conn, scope, kind, &id, 0, currency, None).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Registers an invoice entity: its figures and its posting.
pub fn register(cx: &mut RegisterContext<'_>, repository: &TradeRepository, kind: InvoiceKind) {
    let spec = DocumentSpec {
        entity: kind.entity(),
        kind,
        stage: Stage::Invoice,
    };
    figures::register(cx, repository, spec);
    cx.services
        .contribute::<dyn TransactionHook>(Arc::new(InvoicePosting {
            spec,
            services: repository.clone(),
        }) as Arc<dyn TransactionHook>);
}
