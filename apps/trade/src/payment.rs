//! Payment entries: money received from a customer or paid to a supplier, allocated
//! against their outstanding invoices, posted to the ledger on submit.
//!
//! The rules, in the order they are applied:
//! - a Receive is from a Customer and allocates to sales invoices, a Pay is to a Supplier
//!   and allocates to purchase invoices; the payment is in the invoices' currency;
//! - the allocations add up to at most the paid amount; the rest is an advance
//!   (`unallocated_amount`), allocated later by reconciliation;
//! - no allocation takes more than its invoice has outstanding, checked again in the
//!   submit's transaction by a guarded update, so two payments racing for one invoice
//!   cannot both take its last amount;
//! - the postings, for a Receive (a Pay is the mirror image): the bank account is debited
//!   with the paid amount at the payment's rate; the party's account is credited with
//!   each allocation at the rate its invoice was booked at, and with the advance at the
//!   payment's rate; what is left in company currency is the exchange gain (credited) or
//!   loss (debited) on the company's exchange gain/loss account.

use std::sync::Arc;

use accounting::documents::{DocumentLine, DocumentPosting, post_document, reverse_document};
use accounting::money::{RATE_ONE, convert_currency};
use prefiq::{RegisterContext, async_trait};
use prefiq_data::entity::repo::{
    EntityEvent, EntityHook, FieldError, HookInput, RepoError, TenantScope, TransactionHook,
};
use prefiq_data::entity::sql::{Arg, Conn, Sql, SqlType};
use prefiq_data::entity::value::{currency_scale, format_scaled, parse_scaled};
use serde_json::{Map, Value, json};

use crate::TradeRepository;
use crate::figures::{InvoiceKind, money, refusal};
use crate::invoice::{InvoiceRow, add_outstanding, invoice_rate, invoice_row};
use crate::rows::{cell_text, invalid, rows_by_id, str_of, text_arg, truthy};

/// The most allocations one payment carries.
pub const ALLOCATIONS_MAX: usize = 500;

/// Receive or pay: which party, which invoices, which side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From a customer, against sales invoices.
    Receive,
    /// To a supplier, against purchase invoices.
    Pay,
}

impl Direction {
    /// Reads `payment_type`.
    pub fn of(payment_type: &str) -> Option<Direction> {
        match payment_type {
            "Receive" => Some(Direction::Receive),
            "Pay" => Some(Direction::Pay),
            _ => None,
        }
    }

    /// The invoices it settles.
    pub fn kind(self) -> InvoiceKind {
        match self {
            Direction::Receive => InvoiceKind::Sales,
            Direction::Pay => InvoiceKind::Purchase,
        }
    }

    /// The `invoice_type` of its allocations.
    pub fn invoice_type(self) -> &'static str {
        match self {
            Direction::Receive => "Sales Invoice",
            Direction::Pay => "Purchase Invoice",
        }
    }
}

/// One allocation as given.
pub(crate) struct Allocation {
    pub(crate) invoice: String,
    pub(crate) amount: i64,
}

/// A payment read and checked: what its figures and postings need.
pub(crate) struct PaymentFacts {
    pub(crate) direction: Direction,
    pub(crate) company: String,
    pub(crate) party: String,
    pub(crate) party_account: String,
    pub(crate) currency: String,
    pub(crate) paid: i64,
    pub(crate) allocations: Vec<Allocation>,
}

impl PaymentFacts {
    /// The sum of the allocations.
    pub(crate) fn allocated(&self) -> i64 {
        self.allocations.iter().map(|a| a.amount).sum()
    }
}

fn amount_of(value: Option<&Value>, currency: &str) -> Option<(i64, Option<String>)> {
    let value = value?;
    let amount = value.get("amount").and_then(Value::as_str)?;
    let amount = parse_scaled(amount, currency_scale(currency)).ok()?;
    let given = value
        .get("currency")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some((amount, given))
}

/// Reads and checks a payment: its party, accounts, amounts and allocations (the
/// invoices' outstanding amounts are checked too, as they are now).
pub(crate) async fn payment_facts(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    doc: &Map<String, Value>,
) -> Result<PaymentFacts, RepoError> {
    let Some(direction) = str_of(doc.get("payment_type")).and_then(Direction::of) else {
        return Err(invalid(
            "/payment_type",
            "required",
            "a payment is Receive or Pay",
        ));
    };
    let kind = direction.kind();
    let party_type = str_of(doc.get("party_type")).unwrap_or_default();
    if party_type != kind.party_type() {
        return Err(invalid(
            "/party_type",
            "wrong_party_type",
            format!(
                "a {} payment is {} a {}",
                str_of(doc.get("payment_type")).unwrap_or_default(),
                if direction == Direction::Receive {
                    "from"
                } else {
                    "to"
                },
                kind.party_type()
            ),
        ));
    }
    let company = str_of(doc.get("company")).unwrap_or_default().to_owned();
    let currency = str_of(doc.get("currency")).unwrap_or_default().to_owned();
    let party = str_of(doc.get("party")).unwrap_or_default().to_owned();
    let parties = rows_by_id(
        conn,
        scope,
        kind.party(),
        &["company", kind.party_account(), "disabled"],
        &[&party],
    )
    .await?;
    let Some(row) = parties.get(&party) else {
        return Err(invalid(
            "/party",
            "unknown",
            format!("there is no {} `{party}`", kind.party()),
        ));
    };
    if row.first().cloned().flatten().as_deref() != Some(company.as_str()) {
        return Err(invalid(
            "/party",
            "other_company",
            format!("the {} belongs to another company", kind.party()),
        ));
    }
    if truthy(row.get(2).cloned().flatten().as_deref()) {
        return Err(invalid(
            "/party",
            "disabled",
            format!("the {} is disabled", kind.party()),
        ));
    }
    let party_account = str_of(doc.get("party_account"))
        .map(str::to_owned)
        .or_else(|| row.get(1).cloned().flatten())
        .unwrap_or_default();
    let paid = match amount_of(doc.get("paid_amount"), &currency) {
        Some((amount, given)) if amount > 0 && given.as_deref().is_none_or(|g| g == currency) => {
            amount
        }
        _ => {
            return Err(invalid(
                "/paid_amount",
                "required",
                format!("a payment pays more than zero, in its currency {currency}"),
            ));
        }
    };
    let rows = doc
        .get("allocations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if rows.len() > ALLOCATIONS_MAX {
        return Err(invalid(
            "/allocations",
            "too_many",
            format!("a payment has at most {ALLOCATIONS_MAX} allocations"),
        ));
    }
    let mut allocations = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if str_of(row.get("invoice_type")) != Some(direction.invoice_type()) {
            errors.push(FieldError {
                pointer: format!("/allocations/{i}/invoice_type"),
                code: "wrong_type",
                message: format!("this payment allocates to {}s", direction.invoice_type()),
            });
        }
        let amount = match amount_of(row.get("allocated_amount"), &currency) {
            Some((amount, given))
                if amount > 0 && given.as_deref().is_none_or(|g| g == currency) =>
            {
                amount
            }
            _ => {
                errors.push(FieldError {
                    pointer: format!("/allocations/{i}/allocated_amount"),
                    code: "required",
                    message: format!("an allocation is more than zero, in {currency}"),
                });
                0
            }
        };
        allocations.push(Allocation {
            invoice: str_of(row.get("invoice")).unwrap_or_default().to_owned(),
            amount,
        });
    }
    if !errors.is_empty() {
        return Err(RepoError::Invalid(errors));
    }
    let facts = PaymentFacts {
        direction,
        company,
        party,
        party_account,
        currency,
        paid,
        allocations,
    };
    if facts.allocated() > paid {
        let scale = currency_scale(&facts.currency);
        return Err(invalid(
            "/allocations",
            "over_allocated",
            format!(
                "the allocations come to {} {}, more than the {} paid",
                format_scaled(facts.allocated(), scale),
                facts.currency,
                format_scaled(paid, scale)
            ),
        ));
    }
    for (i, allocation) in facts.allocations.iter().enumerate() {
        let row = invoice_row(conn, scope, kind, &allocation.invoice).await?;
        check_allocation(
            &facts,
            row.as_ref(),
            allocation.amount,
            &format!("/allocations/{i}"),
        )?;
    }
    Ok(facts)
}

/// Refuses an allocation to an invoice that is not a submitted one of the party, in the
/// payment's currency, with at least `amount` outstanding.
pub(crate) fn check_allocation(
    facts: &PaymentFacts,
    row: Option<&InvoiceRow>,
    amount: i64,
    at: &str,
) -> Result<(), RepoError> {
    let kind = facts.direction.kind();
    let Some(row) = row else {
        return Err(invalid(
            format!("{at}/invoice"),
            "unknown",
            format!("there is no {} with this id", kind.entity()),
        ));
    };
    if row.docstatus != 1 {
        return Err(invalid(
            format!("{at}/invoice"),
            "not_submitted",
            format!("{} is not submitted", row.name),
        ));
    }
    if row.party != facts.party || row.company != facts.company {
        return Err(invalid(
            format!("{at}/invoice"),
            "other_party",
            format!("{} is of another {} or company", row.name, kind.party()),
        ));
    }
    if row.currency != facts.currency {
        return Err(invalid(
            format!("{at}/invoice"),
            "wrong_currency",
            format!(
                "{} is in {}; pay it in {}",
                row.name, row.currency, row.currency
            ),
        ));
    }
    if amount > row.outstanding {
        let scale = currency_scale(&row.currency);
        return Err(invalid(
            format!("{at}/allocated_amount"),
            "over_outstanding",
            format!(
                "{} has {} {} outstanding, less than {}",
                row.name,
                format_scaled(row.outstanding.max(0), scale),
                row.currency,
                format_scaled(amount, scale)
            ),
        ));
    }
    Ok(())
}

/// The validate hook: the payment's allocated and unallocated amounts, and its party
/// account from the party.
async fn validate(
    repository: &TradeRepository,
    input: HookInput,
) -> Result<Map<String, Value>, String> {
    let repository = repository.get()?;
    let scope = input.scope.clone();
    let doc = input.doc.clone();
    let facts = repository
        .read(
            &input.scope,
            Box::new(move |conn| {
                let (scope, doc) = (scope.clone(), doc.clone());
                Box::pin(async move { payment_facts(conn, &scope, &doc).await })
            }),
        )
        .await
        .map_err(|e| refusal(&e))?;
    let mut doc = input.doc;
    for field in ["exchange_gain_loss", "journal_entry"] {
        if doc.get(field).is_some_and(|v| !v.is_null())
            && input.old.as_ref().and_then(|o| o.get(field)) != doc.get(field)
        {
            return Err(format!("/{field}: written on submit, not given"));
        }
    }
    doc.insert("party_account".into(), json!(facts.party_account));
    doc.insert(
        "allocated_amount".into(),
        money(facts.allocated(), &facts.currency),
    );
    doc.insert(
        "unallocated_amount".into(),
        money(facts.paid - facts.allocated(), &facts.currency),
    );
    if let Some(rows) = doc.get_mut("allocations").and_then(Value::as_array_mut) {
        for row in rows.iter_mut().filter_map(Value::as_object_mut) {
            // Allocations made on a draft have no exchange entry of their own.
            row.remove("journal_entry");
        }
    }
    Ok(doc)
}

/// The rate an invoice was booked at: the one it stored on submit, else (an invoice from
/// before rates were stored) the stored rate of its date.
pub(crate) async fn booked_rate(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    row: &InvoiceRow,
    base: &str,
) -> Result<Option<i64>, RepoError> {
    if row.currency == base {
        return Ok(Some(RATE_ONE));
    }
    if let Some(rate) = row.rate {
        return Ok(Some(rate));
    }
    Ok(
        accounting::ledger::load_rate(conn, scope, &row.currency, base, &row.posting_date)
            .await?
            .map(|(rate, _)| rate),
    )
}

/// A posting line of a payment.
fn posting_line(
    account: &str,
    debit: bool,
    amount: i64,
    party: Option<(&str, &str)>,
    source: String,
    currency_rate: Option<(String, i64)>,
) -> DocumentLine {
    DocumentLine {
        account: account.to_owned(),
        debit: if debit { amount } else { 0 },
        credit: if debit { 0 } else { amount },
        party_type: party.map(|(t, _)| t.to_owned()),
        party: party.map(|(_, p)| p.to_owned()),
        remark: None,
        source,
        currency_rate,
    }
}

/// Takes `amount` off an invoice's outstanding amount if it still has it: the guard
/// against two payments racing for the same amount. False when it no longer has it.
pub(crate) async fn take_outstanding(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: InvoiceKind,
    invoice: &str,
    amount: i64,
) -> Result<bool, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let row = sql.arg(text_arg(invoice));
    let a = sql.arg(Arg::Int(Some(amount)));
    sql.text = format!(
        "UPDATE {} SET outstanding_amount = outstanding_amount - {a} WHERE tenant_id = {tenant} AND id = {row} AND docstatus = 1 AND outstanding_amount >= {a}",
        kind.entity()
    );
    Ok(conn.execute(&sql).await? == 1)
}

/// The company's exchange gain/loss account, or the refusal that names what is missing.
pub(crate) fn gain_loss_account(
    company: &accounting::ledger::Company,
) -> Result<String, RepoError> {
    company.exchange_gain_loss_account.clone().ok_or_else(|| {
        invalid(
            "/company",
            "no_gain_loss_account",
            "the payment has an exchange difference and the company has no exchange gain/loss account",
        )
    })
}

/// Posts a payment on submit, reverses it on cancel.
struct PaymentPosting;

impl PaymentPosting {
    async fn submit(
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        doc: &Map<String, Value>,
    ) -> Result<(), RepoError> {
        let facts = payment_facts(conn, scope, doc).await?;
        let kind = facts.direction.kind();
        let id = str_of(doc.get("id")).unwrap_or_default().to_owned();
        let Some(company) = accounting::ledger::load_company(conn, scope, &facts.company).await?
        else {
            return Err(invalid("/company", "unknown", "there is no such company"));
        };
        let base = company.base_currency.clone();
        let Some(rate) = invoice_rate(conn, scope, doc, &facts.company, &facts.currency).await?
        else {
            return Err(invalid(
                "/exchange_rate",
                "no_rate",
                format!(
                    "no exchange rate {} to {base} on or before the posting date; give one",
                    facts.currency
                ),
            ));
        };
        let convert = |amount: i64, rate: i64| {
            convert_currency(amount, &facts.currency, rate, &base).ok_or_else(|| {
                invalid(
                    "/exchange_rate",
                    "overflow",
                    "the converted amount overflows",
                )
            })
        };
        // The party's side: credit on a Receive, debit on a Pay.
        let party_debit = facts.direction == Direction::Pay;
        let party = Some((kind.party_type(), facts.party.as_str()));
        let own = |r: i64| Some((facts.currency.clone(), r));
        let mut lines = vec![posting_line(
            str_of(doc.get("account")).unwrap_or_default(),
            !party_debit,
            facts.paid,
            None,
            "/account".into(),
            own(rate),
        )];
        let mut difference = convert(facts.paid, rate)?;
        for (i, allocation) in facts.allocations.iter().enumerate() {
            let at = format!("/allocations/{i}");
            let row = invoice_row(conn, scope, kind, &allocation.invoice).await?;
            if !take_outstanding(conn, scope, kind, &allocation.invoice, allocation.amount).await? {
                check_allocation(&facts, row.as_ref(), allocation.amount, &at)?;
                return Err(invalid(
                    format!("{at}/allocated_amount"),
                    "over_outstanding",
                    "the invoice no longer has this much outstanding",
                ));
            }
            let Some(row) = row else { continue };
            let Some(booked) = booked_rate(conn, scope, &row, &base).await? else {
                return Err(invalid(
                    format!("{at}/invoice"),
                    "no_rate",
                    format!("{} has no exchange rate to settle it at", row.name),
                ));
            };
            difference -= convert(allocation.amount, booked)?;
            lines.push(posting_line(
                &facts.party_account,
                party_debit,
                allocation.amount,
                party,
                format!("{at}/allocated_amount"),
                own(booked),
            ));
        }
        let advance = facts.paid - facts.allocated();
        if advance > 0 {
            difference -= convert(advance, rate)?;
            lines.push(posting_line(
                &facts.party_account,
                party_debit,
                advance,
                party,
                "/unallocated_amount".into(),
                own(rate),
            ));
        }
        // Received more in company currency than the invoices were booked at: a gain, on
        // the party's side; less: a loss, on the bank's. For a Pay, the mirror image.
        if difference != 0 {
            lines.push(posting_line(
                &gain_loss_account(&company)?,
                if difference > 0 {
                    party_debit
                } else {
                    !party_debit
                },
                difference.abs(),
                None,
                "/company".into(),
                Some((base.clone(), RATE_ONE)),
            ));
        }
        let posting = DocumentPosting {
            entry_type: "Payment Entry",
            name: str_of(doc.get("name")).unwrap_or(&id).to_owned(),
            company: facts.company.clone(),
            posting_date: str_of(doc.get("posting_date"))
                .unwrap_or_default()
                .to_owned(),
            currency: facts.currency.clone(),
            exchange_rate: Some(rate),
            lines,
        };
        let entry = post_document(conn, scope, &posting).await?;
        // A gain is positive: on a Receive, more came in than was booked.
        let gain = if facts.direction == Direction::Receive {
            difference
        } else {
            -difference
        };
        let mut sql = Sql::default();
        let tenant = sql.arg(text_arg(scope.tenant()));
        let row = sql.arg(text_arg(&id));
        let e = sql.arg(text_arg(&entry));
        let g = sql.arg(Arg::Int(Some(gain)));
        let b = sql.arg(text_arg(&base));
        let r = sql.arg(Arg::Int(Some(rate)));
        sql.text = format!(
            "UPDATE payment_entry SET journal_entry = {e}, exchange_gain_loss = {g}, exchange_gain_loss_currency = {b}, exchange_rate = {r} WHERE tenant_id = {tenant} AND id = {row}"
        );
        conn.execute(&sql).await?;
        Ok(())
    }

    async fn cancel(
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        doc: &Map<String, Value>,
    ) -> Result<(), RepoError> {
        let Some(direction) = str_of(doc.get("payment_type")).and_then(Direction::of) else {
            return Ok(());
        };
        let company = str_of(doc.get("company")).unwrap_or_default();
        let id = str_of(doc.get("id")).unwrap_or_default();
        // Every allocation as stored, reconciliation's included.
        let mut sql = Sql::default();
        let tenant = sql.arg(text_arg(scope.tenant()));
        let parent = sql.arg(text_arg(id));
        sql.text = format!(
            "SELECT invoice, CAST(allocated_amount AS TEXT), journal_entry FROM payment_allocation WHERE tenant_id = {tenant} AND parent_id = {parent}"
        );
        for r in conn.fetch(&sql, &[SqlType::Text; 3]).await? {
            let invoice = cell_text(&r, 0).unwrap_or_default();
            let amount = cell_text(&r, 1)
                .and_then(|a| a.parse::<i64>().ok())
                .unwrap_or(0);
            add_outstanding(conn, scope, direction.kind(), &invoice, amount).await?;
            if let Some(entry) = cell_text(&r, 2).filter(|e| !e.is_empty()) {
                reverse_document(conn, scope, &entry, company).await?;
            }
        }
        if let Some(entry) = str_of(doc.get("journal_entry")) {
            reverse_document(conn, scope, entry, company).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl TransactionHook for PaymentPosting {
    fn entity(&self) -> &str {
        "payment_entry"
    }

    async fn run(
        &self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        event: EntityEvent,
        doc: &Map<String, Value>,
    ) -> Result<(), RepoError> {
        match event {
            EntityEvent::OnSubmit => Self::submit(conn, scope, doc).await,
            EntityEvent::OnCancel => Self::cancel(conn, scope, doc).await,
            _ => Ok(()),
        }
    }
}

/// Registers the payment entry's validate hook and its posting.
pub fn register(cx: &mut RegisterContext<'_>, repository: &TradeRepository) {
    let repository = repository.clone();
    cx.services.contribute(Arc::new(EntityHook {
        module: "trade".into(),
        name: "payment".into(),
        entity: "payment_entry".into(),
        event: EntityEvent::Validate,
        run: Arc::new(move |input: HookInput| {
            let repository = repository.clone();
            Box::pin(async move { validate(&repository, input).await })
        }),
    }));
    cx.services
        .contribute::<dyn TransactionHook>(Arc::new(PaymentPosting) as Arc<dyn TransactionHook>);
}
