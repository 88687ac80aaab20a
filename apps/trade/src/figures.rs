//! The figures of every selling and buying document (quotation, order, invoice): their
//! lines, taxes and totals computed by the rule of [`crate::taxes`] on every save, the
//! party and items checked, and figures given by a client that disagree refused.
//!
//! The selling and buying apps declare the entities and register them here with their
//! [`DocumentSpec`]; [`crate::invoice`] posts the invoices, [`crate::order`] tracks what
//! of an order is invoiced.

use prefiq::RegisterContext;
use prefiq_data::entity::repo::{
    EntityEvent, EntityHook, FieldError, HookInput, RepoError, TenantScope,
};
use prefiq_data::entity::sql::Conn;
use prefiq_data::entity::value::{currency_scale, format_scaled, parse_scaled};
use serde_json::{Map, Value, json};
use std::sync::Arc;

use crate::TradeRepository;
use crate::rows::{invalid, rows_by_id, str_of, template, truthy};
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

    pub(crate) fn party_type(self) -> &'static str {
        match self {
            InvoiceKind::Sales => "Customer",
            InvoiceKind::Purchase => "Supplier",
        }
    }

    pub(crate) fn party_account(self) -> &'static str {
        match self {
            InvoiceKind::Sales => "receivable_account",
            InvoiceKind::Purchase => "payable_account",
        }
    }

    /// The line's (and the item's) account field.
    pub(crate) fn line_account(self) -> &'static str {
        match self {
            InvoiceKind::Sales => "income_account",
            InvoiceKind::Purchase => "expense_account",
        }
    }

    pub(crate) fn entry_type(self) -> &'static str {
        match self {
            InvoiceKind::Sales => "Sales Invoice",
            InvoiceKind::Purchase => "Purchase Invoice",
        }
    }
}

/// Where in its life a document is: what it computes and whether it posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A quotation: figures only.
    Quotation,
    /// An order: figures, and what of each line is invoiced.
    Order,
    /// An invoice: figures, an outstanding amount and postings.
    Invoice,
}

/// One selling or buying document entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentSpec {
    /// The entity (`sales_order`).
    pub entity: &'static str,
    /// Sales or purchase.
    pub kind: InvoiceKind,
    /// Quotation, order or invoice.
    pub stage: Stage,
}

impl DocumentSpec {
    /// The computed fields a caller may not set to other values.
    fn computed(self) -> &'static [&'static str] {
        match self.stage {
            Stage::Invoice => &COMPUTED,
            _ => &COMPUTED[..3],
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

/// One document line as stored or given.
pub(crate) struct Line {
    pub(crate) item: String,
    pub(crate) qty: i64,
    pub(crate) unit_price: i64,
    pub(crate) account: Option<String>,
    /// The order line it invoices (an id of the order's line table).
    pub(crate) order_line: Option<String>,
}

/// Reads the lines of `doc`; problems name their pointers.
pub(crate) fn lines_of(
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
            "a document has at least one line",
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
            order_line: str_of(row.get("order_line")).map(str::to_owned),
        });
    }
    if !errors.is_empty() {
        return Err(RepoError::Invalid(errors));
    }
    Ok(out)
}

/// Everything a document's figures and postings need, read and checked.
pub(crate) struct Facts {
    pub(crate) company: String,
    pub(crate) currency: String,
    pub(crate) party_account: String,
    pub(crate) party_terms_days: i64,
    /// Each line's income or expense account; empty on a quotation or order line whose
    /// item has none (only invoices post).
    pub(crate) accounts: Vec<String>,
    pub(crate) taxes: Vec<Tax>,
    pub(crate) totals: DocumentTotals,
    /// The lines as given.
    pub(crate) lines: Vec<Line>,
}

/// Reads and checks what `doc` refers to, and computes its figures.
pub(crate) async fn facts(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    spec: DocumentSpec,
    doc: &Map<String, Value>,
) -> Result<Facts, RepoError> {
    let kind = spec.kind;
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
    if truthy(row.get(3).cloned().flatten().as_deref()) {
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
        if truthy(item.get(1).cloned().flatten().as_deref()) {
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
            None if spec.stage != Stage::Invoice => accounts.push(String::new()),
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
        lines,
    })
}

/// A money value as the API writes it.
pub(crate) fn money(amount: i64, currency: &str) -> Value {
    json!({"amount": format_scaled(amount, currency_scale(currency)), "currency": currency})
}

/// The validate hook: computes every line's and the invoice's figures, the due date from
/// the party's terms, and refuses figures given that disagree with them.
async fn validate(
    repository: &TradeRepository,
    spec: DocumentSpec,
    input: HookInput,
) -> Result<Map<String, Value>, String> {
    let kind = spec.kind;
    let repository = repository.get()?;
    let scope = input.scope.clone();
    let doc = input.doc.clone();
    let (mut doc, facts) = repository
        .read(
            &input.scope,
            Box::new(move |conn| {
                let (scope, mut doc) = (scope.clone(), doc.clone());
                Box::pin(async move {
                    crate::prices::fill_prices(conn, &scope, spec, &mut doc).await?;
                    let facts = facts(conn, &scope, spec, &doc).await?;
                    Ok((doc, facts))
                })
            }),
        )
        .await
        .map_err(|e| refusal(&e))?;
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
                if !account.is_empty() {
                    row.insert(kind.line_account().into(), json!(account));
                }
                if spec.stage == Stage::Order {
                    // A draft order is invoiced by nothing yet (an amended copy neither).
                    row.insert("billed_qty".into(), json!("0"));
                    // Nor delivered or received (the stock app's notes keep these).
                    let moved = match kind {
                        InvoiceKind::Sales => "delivered_qty",
                        InvoiceKind::Purchase => "received_qty",
                    };
                    row.insert(moved.into(), json!("0"));
                }
            }
        }
    }
    let computed = [
        ("net_total", facts.totals.net_total),
        ("tax_total", facts.totals.tax_total),
        ("grand_total", facts.totals.grand_total),
        ("outstanding_amount", facts.totals.grand_total),
    ];
    for (field, value) in computed.into_iter().take(spec.computed().len()) {
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
                spec.computed().join(", ")
            ));
        }
        doc.insert(field.into(), wanted);
    }
    if spec.stage == Stage::Invoice {
        check_return(&doc, &facts)?;
    }
    if let Some(entry) = doc.get("journal_entry").filter(|v| !v.is_null())
        && input.old.as_ref().and_then(|o| o.get("journal_entry")) != Some(entry)
    {
        return Err("/journal_entry: the journal entry is the ledger's, written on submit".into());
    }
    let posting_date = str_of(doc.get("posting_date"))
        .filter(|_| spec.stage == Stage::Invoice)
        .map(str::to_owned);
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
pub(crate) fn refusal(error: &RepoError) -> String {
    match error {
        RepoError::Invalid(errors) => errors
            .iter()
            .map(|e| format!("{}: {}", e.pointer, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// A return (`return_against` set) has only negative quantities, and an invoice that is
/// not a return only positive ones; a return is not made from an order.
fn check_return(doc: &Map<String, Value>, facts: &Facts) -> Result<(), String> {
    let is_return = str_of(doc.get("return_against")).is_some();
    for (i, line) in facts.lines.iter().enumerate() {
        let negative = line.qty < 0;
        if is_return && !negative {
            return Err(format!(
                "/lines/{i}/qty: a return gives back, so its quantities are negative"
            ));
        }
        if !is_return && negative {
            return Err(format!(
                "/lines/{i}/qty: a negative quantity is a return: set return_against to the invoice it returns"
            ));
        }
        if is_return && line.order_line.is_some() {
            return Err(format!(
                "/lines/{i}/order_line: a return is made against its invoice, not an order"
            ));
        }
    }
    Ok(())
}

/// Registers a document entity's validate hook, which computes its figures.
pub fn register(cx: &mut RegisterContext<'_>, repository: &TradeRepository, spec: DocumentSpec) {
    let repository = repository.clone();
    cx.services.contribute(Arc::new(EntityHook {
        module: "trade".into(),
        name: "figures".into(),
        entity: spec.entity.into(),
        event: EntityEvent::Validate,
        run: Arc::new(move |input: HookInput| {
            let repository = repository.clone();
            Box::pin(async move { validate(&repository, spec, input).await })
        }),
    }));
}
