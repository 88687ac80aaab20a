//! Invoices, sales and purchase alike: their lines, taxes and totals computed by the
//! rule of [`crate::taxes`] on every save, and their postings written to the ledger in
//! the submit's transaction (reversed in the cancel's).
//!
//! The selling and buying apps declare the entities (`sales_invoice`, `purchase_invoice`
//! and their lines) and register them here with their [`InvoiceKind`]. A sales invoice
//! debits the customer's receivable account with its grand total and credits each line's
//! income account with its net and each tax's account with its tax; a purchase invoice
//! credits the supplier's payable account and debits expense and tax accounts. A return
//! (negative quantities, so a negative total) posts the same lines on the other side.

use std::collections::HashMap;
use std::sync::Arc;

use accounting::documents::{DocumentLine, DocumentPosting, post_document, reverse_document};
use prefiq::{RegisterContext, async_trait};
use prefiq_data::entity::repo::{
    EntityEvent, EntityHook, FieldError, HookInput, RepoError, TenantScope, TransactionHook,
};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};
use prefiq_data::entity::value::{currency_scale, format_scaled, parse_scaled};
use serde_json::{Map, Value, json};

use crate::TradeRepository;
use crate::taxes::{self, DocumentTotals, LineInput, Tax};

/// What differs between a sales and a purchase invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceKind {
    /// `sales_invoice`: a customer, receivable, income.
    Sales,
    /// `purchase_invoice`: a supplier, payable, expense.
    Purchase,
}

impl InvoiceKind {
    /// The invoice entity.
    pub fn entity(self) -> &'static str {
        match self {
            InvoiceKind::Sales => "sales_invoice",
            InvoiceKind::Purchase => "purchase_invoice",
        }
    }

    /// The party's field, entity and table.
    pub fn party(self) -> &'static str {
        match self {
            InvoiceKind::Sales => "customer",
            InvoiceKind::Purchase => "supplier",
        }
    }

    fn party_type(self) -> &'static str {
        match self {
            InvoiceKind::Sales => "Customer",
            InvoiceKind::Purchase => "Supplier",
        }
    }

    fn party_account(self) -> &'static str {
        match self {
            InvoiceKind::Sales => "receivable_account",
            InvoiceKind::Purchase => "payable_account",
        }
    }

    /// The line's (and the item's) account field.
    fn line_account(self) -> &'static str {
        match self {
            InvoiceKind::Sales => "income_account",
            InvoiceKind::Purchase => "expense_account",
        }
    }

    fn entry_type(self) -> &'static str {
        match self {
            InvoiceKind::Sales => "Sales Invoice",
            InvoiceKind::Purchase => "Purchase Invoice",
        }
    }
}

/// The computed fields a caller may not set to other values.
const COMPUTED: [&str; 4] = [
    "net_total",
    "tax_total",
    "grand_total",
    "outstanding_amount",
];

fn invalid(
    pointer: impl Into<String>,
    code: &'static str,
    message: impl Into<String>,
) -> RepoError {
    RepoError::Invalid(vec![FieldError {
        pointer: pointer.into(),
        code,
        message: message.into(),
    }])
}

fn str_of(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn text_arg(value: &str) -> Arg {
    Arg::Text(Some(value.to_owned()))
}

/// Reads the live rows of `table` with these ids: `columns` of each, as text.
async fn rows_by_id(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    table: &str,
    columns: &[&str],
    ids: &[&str],
) -> Result<HashMap<String, Vec<Option<String>>>, RepoError> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    for chunk in ids.chunks(500) {
        let mut sql = Sql::default();
        let tenant = sql.arg(text_arg(scope.tenant()));
        let list: Vec<String> = chunk.iter().map(|id| sql.arg(text_arg(id))).collect();
        let select: Vec<String> = columns
            .iter()
            .map(|c| format!("CAST({c} AS TEXT)"))
            .collect();
        sql.text = format!(
            "SELECT id, {} FROM {table} WHERE tenant_id = {tenant} AND id IN ({}) AND deleted_at IS NULL",
            select.join(", "),
            list.join(", ")
        );
        let types: Vec<SqlType> = std::iter::repeat_n(SqlType::Text, columns.len() + 1).collect();
        for row in conn.fetch(&sql, &types).await? {
            let mut cells = row.into_iter().map(|c| match c {
                Cell::Text(t) => Some(t),
                _ => None,
            });
            if let Some(Some(id)) = cells.next() {
                out.insert(id, cells.collect());
            }
        }
    }
    Ok(out)
}

/// A tax template's taxes and company.
async fn template(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: &str,
) -> Result<Option<(String, Vec<Tax>)>, RepoError> {
    let head = rows_by_id(conn, scope, "tax_template", &["company", "disabled"], &[id]).await?;
    let Some(head) = head.get(id) else {
        return Ok(None);
    };
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let parent = sql.arg(text_arg(id));
    sql.text = format!(
        "SELECT account, CAST(rate AS TEXT), CAST(included_in_price AS TEXT) FROM tax_template_line WHERE tenant_id = {tenant} AND parent_id = {parent} ORDER BY idx"
    );
    let rows = conn
        .fetch(&sql, &[SqlType::Text, SqlType::Text, SqlType::Text])
        .await?;
    let taxes = rows
        .into_iter()
        .map(|r| {
            let cell = |i: usize| match r.get(i) {
                Some(Cell::Text(t)) => t.clone(),
                _ => String::new(),
            };
            Tax {
                account: cell(0),
                // A decimal of scale 4 is stored as its ten-thousandths.
                rate: cell(1).parse::<i64>().unwrap_or_default(),
                included_in_price: matches!(cell(2).as_str(), "1" | "true" | "t"),
            }
        })
        .collect();
    Ok(Some((
        head.first().cloned().flatten().unwrap_or_default(),
        taxes,
    )))
}

/// One invoice line as stored or given.
struct Line {
    item: String,
    qty: i64,
    unit_price: i64,
    account: Option<String>,
}

/// Reads the lines of `doc`; problems name their pointers.
fn lines_of(
    doc: &Map<String, Value>,
    currency: &str,
    kind: InvoiceKind,
) -> Result<Vec<Line>, RepoError> {
    let rows = doc
        .get("lines")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if rows.is_empty() {
        return Err(invalid(
            "/lines",
            "required",
            "an invoice has at least one line",
        ));
    }
    let scale = currency_scale(currency);
    let mut out = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let qty = match row.get("qty") {
            Some(Value::String(q)) => parse_scaled(q, 3).ok(),
            Some(Value::Number(n)) => parse_scaled(&n.to_string(), 3).ok(),
            _ => None,
        };
        let price = row.get("unit_price");
        let price_currency = price
            .and_then(|p| p.get("currency"))
            .and_then(Value::as_str);
        let unit_price = price
            .and_then(|p| p.get("amount"))
            .and_then(Value::as_str)
            .and_then(|a| parse_scaled(a, scale).ok());
        if qty.is_none_or(|q| q == 0) {
            errors.push(FieldError {
                pointer: format!("/lines/{i}/qty"),
                code: "required",
                message: "a line has a quantity other than zero".into(),
            });
        }
        if price_currency.is_some_and(|c| c != currency) {
            errors.push(FieldError {
                pointer: format!("/lines/{i}/unit_price"),
                code: "wrong_currency",
                message: format!("the invoice is in {currency}, so are its prices"),
            });
        }
        if unit_price.is_none_or(|p| p < 0) {
            errors.push(FieldError {
                pointer: format!("/lines/{i}/unit_price"),
                code: "required",
                message: "a line has a unit price, not negative (a return has a negative quantity)"
                    .into(),
            });
        }
        out.push(Line {
            item: str_of(row.get("item")).unwrap_or_default().to_owned(),
            qty: qty.unwrap_or_default(),
            unit_price: unit_price.unwrap_or_default(),
            account: str_of(row.get(kind.line_account())).map(str::to_owned),
        });
    }
    if !errors.is_empty() {
        return Err(RepoError::Invalid(errors));
    }
    Ok(out)
}

/// Everything an invoice's figures and postings need, read and checked.
struct Facts {
    company: String,
    currency: String,
    party_account: String,
    party_terms_days: i64,
    accounts: Vec<String>,
    taxes: Vec<Tax>,
    totals: DocumentTotals,
}

/// Reads and checks what `doc` refers to, and computes its figures.
async fn facts(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: InvoiceKind,
    doc: &Map<String, Value>,
) -> Result<Facts, RepoError> {
    let party_field = kind.party();
    let party = str_of(doc.get(party_field)).unwrap_or_default();
    let company = str_of(doc.get("company")).unwrap_or_default().to_owned();
    let currency = str_of(doc.get("currency")).unwrap_or_default().to_owned();
    let parties = rows_by_id(
        conn,
        scope,
        party_field,
        &[
            "company",
            kind.party_account(),
            "payment_terms_days",
            "disabled",
        ],
        &[party],
    )
    .await?;
    let Some(row) = parties.get(party) else {
        return Err(invalid(
            format!("/{party_field}"),
            "unknown",
            format!("there is no {party_field} `{party}`"),
        ));
    };
    if row.first().cloned().flatten().as_deref() != Some(company.as_str()) {
        return Err(invalid(
            format!("/{party_field}"),
            "other_company",
            format!("the {party_field} belongs to another company"),
        ));
    }
    if matches!(
        row.get(3).cloned().flatten().as_deref(),
        Some("1" | "true" | "t")
    ) {
        return Err(invalid(
            format!("/{party_field}"),
            "disabled",
            format!("the {party_field} is disabled"),
        ));
    }
    let party_account = row.get(1).cloned().flatten().unwrap_or_default();
    let party_terms_days = row
        .get(2)
        .cloned()
        .flatten()
        .and_then(|d| d.parse::<i64>().ok())
        .unwrap_or(0);
    let lines = lines_of(doc, &currency, kind)?;
    let item_ids: Vec<&str> = lines.iter().map(|l| l.item.as_str()).collect();
    let items = rows_by_id(
        conn,
        scope,
        "item",
        &[kind.line_account(), "disabled"],
        &item_ids,
    )
    .await?;
    let mut accounts = Vec::with_capacity(lines.len());
    let mut errors = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(item) = items.get(&line.item) else {
            errors.push(FieldError {
                pointer: format!("/lines/{i}/item"),
                code: "unknown",
                message: format!("there is no item `{}`", line.item),
            });
            continue;
        };
        if matches!(
            item.get(1).cloned().flatten().as_deref(),
            Some("1" | "true" | "t")
        ) {
            errors.push(FieldError {
                pointer: format!("/lines/{i}/item"),
                code: "disabled",
                message: "the item is disabled".into(),
            });
        }
        match line
            .account
            .clone()
            .or_else(|| item.first().cloned().flatten())
        {
            Some(account) => accounts.push(account),
            None => errors.push(FieldError {
                pointer: format!("/lines/{i}/{}", kind.line_account()),
                code: "required",
                message: format!(
                    "the item has no {}: give one on the line",
                    kind.line_account().replace('_', " ")
                ),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(RepoError::Invalid(errors));
    }
    let taxes = match str_of(doc.get("tax_template")) {
        None => Vec::new(),
        Some(id) => match template(conn, scope, id).await? {
            None => {
                return Err(invalid(
                    "/tax_template",
                    "unknown",
                    format!("there is no tax template `{id}`"),
                ));
            }
            Some((owner, _)) if owner != company => {
                return Err(invalid(
                    "/tax_template",
                    "other_company",
                    "the tax template belongs to another company",
                ));
            }
            Some((_, taxes)) => taxes,
        },
    };
    let inputs: Vec<LineInput> = lines
        .iter()
        .map(|l| LineInput {
            qty: l.qty,
            unit_price: l.unit_price,
        })
        .collect();
    let totals = taxes::compute(&inputs, &taxes)
        .map_err(|e| invalid("/lines", "out_of_range", e.to_string()))?;
    Ok(Facts {
        company,
        currency,
        party_account,
        party_terms_days,
        accounts,
        taxes,
        totals,
    })
}

fn money(amount: i64, currency: &str) -> Value {
    json!({"amount": format_scaled(amount, currency_scale(currency)), "currency": currency})
}

/// The validate hook: computes every line's and the invoice's figures, the due date from
/// the party's terms, and refuses figures given that disagree with them.
async fn validate(
    repository: &TradeRepository,
    kind: InvoiceKind,
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
                Box::pin(async move { facts(conn, &scope, kind, &doc).await })
            }),
        )
        .await
        .map_err(|e| refusal(&e))?;
    let mut doc = input.doc;
    let currency = facts.currency.clone();
    if let Some(rows) = doc.get_mut("lines").and_then(Value::as_array_mut) {
        for ((row, line), account) in rows
            .iter_mut()
            .zip(&facts.totals.lines)
            .zip(&facts.accounts)
        {
            if let Some(row) = row.as_object_mut() {
                row.insert("amount".into(), money(line.amount, &currency));
                row.insert("net_amount".into(), money(line.net, &currency));
                row.insert("tax_amount".into(), money(line.total - line.net, &currency));
                row.insert(kind.line_account().into(), json!(account));
            }
        }
    }
    let computed = [
        ("net_total", facts.totals.net_total),
        ("tax_total", facts.totals.tax_total),
        ("grand_total", facts.totals.grand_total),
        ("outstanding_amount", facts.totals.grand_total),
    ];
    for (field, value) in computed {
        let wanted = money(value, &currency);
        let given = doc.get(field).filter(|v| !v.is_null());
        let before = input.old.as_ref().and_then(|o| o.get(field));
        if let Some(given) = given
            && Some(given) != before
            && !same_money(given, &wanted)
        {
            return Err(format!(
                "/{field}: the lines add up to {} {currency}, not {}; leave {} to be computed",
                format_scaled(value, currency_scale(&currency)),
                given
                    .get("amount")
                    .and_then(Value::as_str)
                    .unwrap_or("that"),
                COMPUTED.join(", ")
            ));
        }
        doc.insert(field.into(), wanted);
    }
    if let Some(entry) = doc.get("journal_entry").filter(|v| !v.is_null())
        && input.old.as_ref().and_then(|o| o.get("journal_entry")) != Some(entry)
    {
        return Err("/journal_entry: the journal entry is the ledger's, written on submit".into());
    }
    let posting_date = str_of(doc.get("posting_date")).map(str::to_owned);
    if let Some(posting_date) = posting_date
        .as_deref()
        .and_then(|d| d.parse::<jiff::civil::Date>().ok())
    {
        match str_of(doc.get("due_date")).map(|d| d.parse::<jiff::civil::Date>()) {
            None => {
                let due = posting_date
                    .checked_add(jiff::Span::new().days(facts.party_terms_days))
                    .unwrap_or(posting_date);
                doc.insert("due_date".into(), json!(due.to_string()));
            }
            Some(Ok(due)) if due < posting_date => {
                return Err("/due_date: an invoice is due on or after its posting date".into());
            }
            Some(_) => {}
        }
    }
    Ok(doc)
}

fn same_money(a: &Value, b: &Value) -> bool {
    let amount = |v: &Value, currency: &str| {
        v.get("amount")
            .and_then(Value::as_str)
            .and_then(|a| parse_scaled(a, currency_scale(currency)).ok())
    };
    let currency = b
        .get("currency")
        .and_then(Value::as_str)
        .unwrap_or_default();
    a.get("currency").and_then(Value::as_str) == Some(currency)
        && amount(a, currency) == amount(b, currency)
}

/// A repository error as a hook's refusal: `pointer: message` of its first problem.
fn refusal(error: &RepoError) -> String {
    match error {
        RepoError::Invalid(errors) => errors
            .iter()
            .map(|e| format!("{}: {}", e.pointer, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

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
    kind: InvoiceKind,
    services: TradeRepository,
}

/// Who may submit a sales invoice past its customer's credit limit.
pub const OVERRIDE_CREDIT_LIMIT: &str = "trade.override_credit_limit";

impl InvoicePosting {
    /// Refuses a sales invoice that takes its customer's open invoices past the credit
    /// limit (in company currency), unless the caller may override it. Open invoices are
    /// the customer's other submitted ones, each by its outstanding amount, converted at
    /// its own rate (or the stored rate of its date).
    async fn check_credit_limit(
        &self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        doc: &Map<String, Value>,
        facts: &Facts,
        customer: &str,
        rate: Option<i64>,
    ) -> Result<(), RepoError> {
        let row = rows_by_id(conn, scope, "customer", &["credit_limit"], &[customer]).await?;
        let Some(limit) = row
            .get(customer)
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|l| l.parse::<i64>().ok())
        else {
            return Ok(());
        };
        let Some(company) = accounting::ledger::load_company(conn, scope, &facts.company).await?
        else {
            return Ok(());
        };
        let base = company.base_currency.clone();
        let id = str_of(doc.get("id")).unwrap_or_default();
        let posting_date = str_of(doc.get("posting_date"))
            .unwrap_or_default()
            .to_owned();
        let mut open = vec![(
            facts.totals.grand_total,
            facts.currency.clone(),
            rate,
            posting_date,
        )];
        let mut sql = Sql::default();
        let tenant = sql.arg(text_arg(scope.tenant()));
        let party = sql.arg(text_arg(customer));
        let this = sql.arg(text_arg(id));
        sql.text = format!(
            "SELECT CAST(outstanding_amount AS TEXT), outstanding_amount_currency, CAST(exchange_rate AS TEXT), posting_date FROM sales_invoice WHERE tenant_id = {tenant} AND customer = {party} AND docstatus = 1 AND id <> {this} AND deleted_at IS NULL"
        );
        for r in conn
            .fetch(
                &sql,
                &[SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text],
            )
            .await?
        {
            let cell = |i: usize| match r.get(i) {
                Some(Cell::Text(t)) => Some(t.clone()),
                _ => None,
            };
            let amount = cell(0).and_then(|a| a.parse::<i64>().ok()).unwrap_or(0);
            let currency = cell(1).unwrap_or_else(|| base.clone());
            let rate = cell(2).and_then(|r| r.parse::<i64>().ok());
            open.push((amount, currency, rate, cell(3).unwrap_or_default()));
        }
        let mut exposure: i64 = 0;
        for (amount, currency, rate, date) in open {
            let rate = if currency == base {
                Some(accounting::money::RATE_ONE)
            } else {
                match rate {
                    Some(r) => Some(r),
                    None => accounting::ledger::load_rate(conn, scope, &currency, &base, &date)
                        .await?
                        .map(|(r, _)| r),
                }
            };
            let converted = rate
                .and_then(|r| accounting::money::convert_currency(amount, &currency, r, &base))
                .unwrap_or(0);
            exposure = exposure.saturating_add(converted);
        }
        if exposure <= limit {
            return Ok(());
        }
        let may_override = match self.services.authorizer() {
            Some(authorizer) => {
                authorizer
                    .decide(
                        scope,
                        OVERRIDE_CREDIT_LIMIT,
                        prefiq_auth::authz::Resource::Tenant,
                    )
                    .await
                    .allowed
            }
            None => false,
        };
        if may_override {
            return Ok(());
        }
        let scale = currency_scale(&base);
        Err(invalid(
            "/customer",
            "credit_limit",
            format!(
                "the customer's open invoices would come to {} {base}, over its credit limit of {} {base}; a role with {OVERRIDE_CREDIT_LIMIT} may submit it",
                format_scaled(exposure, scale),
                format_scaled(limit, scale)
            ),
        ))
    }
}

#[async_trait]
impl TransactionHook for InvoicePosting {
    fn entity(&self) -> &str {
        self.kind.entity()
    }

    async fn run(
        &self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        event: EntityEvent,
        doc: &Map<String, Value>,
    ) -> Result<(), RepoError> {
        let kind = self.kind;
        let id = str_of(doc.get("id")).unwrap_or_default().to_owned();
        let mut sql = Sql::default();
        let tenant = sql.arg(text_arg(scope.tenant()));
        let row = sql.arg(text_arg(&id));
        match event {
            EntityEvent::OnSubmit => {
                let facts = facts(conn, scope, kind, doc).await?;
                let party = str_of(doc.get(kind.party())).unwrap_or_default();
                let rate = match doc.get("exchange_rate") {
                    Some(Value::String(r)) => {
                        Some(parse_scaled(r, 9).ok().filter(|r| *r > 0).ok_or_else(|| {
                            invalid(
                                "/exchange_rate",
                                "wrong_type",
                                "an exchange rate is more than zero",
                            )
                        })?)
                    }
                    _ => None,
                };
                if kind == InvoiceKind::Sales {
                    self.check_credit_limit(conn, scope, doc, &facts, party, rate)
                        .await?;
                }
                let posting = DocumentPosting {
                    entry_type: kind.entry_type(),
                    name: str_of(doc.get("name")).unwrap_or(&id).to_owned(),
                    company: facts.company.clone(),
                    posting_date: str_of(doc.get("posting_date"))
                        .unwrap_or_default()
                        .to_owned(),
                    currency: facts.currency.clone(),
                    exchange_rate: rate,
                    lines: postings(kind, &facts, party),
                };
                let entry = post_document(conn, scope, &posting).await?;
                let e = sql.arg(text_arg(&entry));
                sql.text = format!(
                    "UPDATE {} SET journal_entry = {e} WHERE tenant_id = {tenant} AND id = {row}",
                    kind.entity()
                );
                conn.execute(&sql).await?;
            }
            EntityEvent::OnCancel => {
                let Some(entry) = str_of(doc.get("journal_entry")) else {
                    return Ok(());
                };
                let company = str_of(doc.get("company")).unwrap_or_default();
                reverse_document(conn, scope, entry, company).await?;
                let currency = str_of(doc.get("currency")).unwrap_or_default();
                let zero = sql.arg(Arg::Int(Some(0)));
                let c = sql.arg(text_arg(currency));
                sql.text = format!(
                    "UPDATE {} SET outstanding_amount = {zero}, outstanding_amount_currency = {c} WHERE tenant_id = {tenant} AND id = {row}",
                    kind.entity()
                );
                conn.execute(&sql).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Registers an invoice entity's validate hook and its posting.
pub fn register(cx: &mut RegisterContext<'_>, repository: &TradeRepository, kind: InvoiceKind) {
    let repository_for_posting = repository.clone();
    let repository = repository.clone();
    cx.services.contribute(Arc::new(EntityHook {
        module: "trade".into(),
        name: "figures".into(),
        entity: kind.entity().into(),
        event: EntityEvent::Validate,
        run: Arc::new(move |input: HookInput| {
            let repository = repository.clone();
            Box::pin(async move { validate(&repository, kind, input).await })
        }),
    }));
    cx.services
        .contribute::<dyn TransactionHook>(Arc::new(InvoicePosting {
            kind,
            services: repository_for_posting,
        }) as Arc<dyn TransactionHook>);
}
