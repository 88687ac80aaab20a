//! Payment reconciliation: advances (the unallocated amounts of submitted payments)
//! matched to outstanding invoices of the same party and currency.
//!
//! - `GET /api/v1/trade/reconciliation?company=&party_type=&party=` lists them and
//!   suggests matches: first a payment whose advance equals an invoice's outstanding
//!   amount, then the oldest invoices first (by due date) until each advance is used.
//! - `POST /api/v1/trade/reconciliation` with `{allocations: [{payment, invoice,
//!   amount}]}` (at most [`RECONCILE_MAX`]) applies them in one transaction: each is
//!   added to its payment's allocations, taken off its invoice's outstanding amount and
//!   its payment's advance (both by guarded updates, so a race loses cleanly), and an
//!   invoice booked at another rate than the payment gets a journal entry for the
//!   exchange difference. All apply or none do.

use accounting::documents::{DocumentLine, DocumentPosting, post_document};
use accounting::money::{RATE_ONE, convert_currency};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use prefiq::Context;
use prefiq_data::entity::repo::{RepoError, Repository, TenantScope};
use prefiq_data::entity::sql::{Arg, Conn, Sql, SqlType};
use prefiq_data::entity::value::{civil_now, currency_scale, format_scaled, parse_scaled};
use prefiq_http::{HttpState, Problem};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::figures::{InvoiceKind, money};
use crate::invoice::invoice_row;
use crate::payment::{Direction, booked_rate, gain_loss_account, take_outstanding};
use crate::routes::allowed;
use crate::rows::{cell_text, invalid, text_arg};

/// Reconciling payments with invoices.
pub const RECONCILE: &str = "trade.reconcile";

/// The most allocations one reconciliation applies.
pub const RECONCILE_MAX: usize = 500;

/// The most open payments or invoices one suggestion lists.
const OPEN_MAX: i64 = 1000;

/// `GET /api/v1/trade/reconciliation` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileQuery {
    company: String,
    party_type: String,
    party: Option<String>,
}

/// A submitted payment with an advance left.
#[derive(Debug, Clone)]
struct OpenPayment {
    id: String,
    name: String,
    party: String,
    currency: String,
    left: i64,
    date: String,
}

/// A submitted invoice with an amount outstanding.
#[derive(Debug, Clone)]
struct OpenInvoice {
    id: String,
    name: String,
    party: String,
    currency: String,
    left: i64,
    due: String,
}

fn direction_of(party_type: &str) -> Result<Direction, RepoError> {
    match party_type {
        "Customer" => Ok(Direction::Receive),
        "Supplier" => Ok(Direction::Pay),
        other => Err(invalid(
            "/party_type",
            "wrong_party_type",
            format!("`party_type` is Customer or Supplier, not `{other}`"),
        )),
    }
}

async fn open_items(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &str,
    direction: Direction,
    party: Option<&str>,
) -> Result<(Vec<OpenPayment>, Vec<OpenInvoice>), RepoError> {
    let kind = direction.kind();
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let c = sql.arg(text_arg(company));
    let t = sql.arg(text_arg(kind.party_type()));
    let party_filter = match party {
        Some(p) => format!(" AND party = {}", sql.arg(text_arg(p))),
        None => String::new(),
    };
    sql.text = format!(
        "SELECT id, name, party, currency, CAST(unallocated_amount AS TEXT), CAST(posting_date AS TEXT) FROM payment_entry WHERE tenant_id = {tenant} AND company = {c} AND party_type = {t} AND docstatus = 1 AND unallocated_amount > 0 AND deleted_at IS NULL{party_filter} ORDER BY posting_date, name LIMIT {OPEN_MAX}"
    );
    let payments = conn
        .fetch(&sql, &[SqlType::Text; 6])
        .await?
        .iter()
        .map(|r| OpenPayment {
            id: cell_text(r, 0).unwrap_or_default(),
            name: cell_text(r, 1).unwrap_or_default(),
            party: cell_text(r, 2).unwrap_or_default(),
            currency: cell_text(r, 3).unwrap_or_default(),
            left: cell_text(r, 4).and_then(|a| a.parse().ok()).unwrap_or(0),
            date: cell_text(r, 5).unwrap_or_default(),
        })
        .collect();
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let c = sql.arg(text_arg(company));
    let party_filter = match party {
        Some(p) => format!(" AND {} = {}", kind.party(), sql.arg(text_arg(p))),
        None => String::new(),
    };
    sql.text = format!(
        "SELECT id, name, {}, currency, CAST(outstanding_amount AS TEXT), CAST(COALESCE(due_date, posting_date) AS TEXT) FROM {} WHERE tenant_id = {tenant} AND company = {c} AND docstatus = 1 AND outstanding_amount > 0 AND deleted_at IS NULL{party_filter} ORDER BY COALESCE(due_date, posting_date), name LIMIT {OPEN_MAX}",
        kind.party(),
        kind.entity()
    );
    let invoices = conn
        .fetch(&sql, &[SqlType::Text; 6])
        .await?
        .iter()
        .map(|r| OpenInvoice {
            id: cell_text(r, 0).unwrap_or_default(),
            name: cell_text(r, 1).unwrap_or_default(),
            party: cell_text(r, 2).unwrap_or_default(),
            currency: cell_text(r, 3).unwrap_or_default(),
            left: cell_text(r, 4).and_then(|a| a.parse().ok()).unwrap_or(0),
            due: cell_text(r, 5).unwrap_or_default(),
        })
        .collect();
    Ok((payments, invoices))
}

/// The suggested matches: `(payment index, invoice index, amount)`. Exact amounts first,
/// then the oldest invoices first, within one party and currency.
fn suggest(payments: &[OpenPayment], invoices: &[OpenInvoice]) -> Vec<(usize, usize, i64)> {
    let mut pay_left: Vec<i64> = payments.iter().map(|p| p.left).collect();
    let mut inv_left: Vec<i64> = invoices.iter().map(|i| i.left).collect();
    let mut out = Vec::new();
    let same = |p: &OpenPayment, i: &OpenInvoice| p.party == i.party && p.currency == i.currency;
    for (pi, p) in payments.iter().enumerate() {
        if let Some(ii) = invoices
            .iter()
            .enumerate()
            .position(|(ii, i)| same(p, i) && inv_left[ii] == p.left && p.left > 0)
        {
            out.push((pi, ii, p.left));
            inv_left[ii] = 0;
            pay_left[pi] = 0;
        }
    }
    for (pi, p) in payments.iter().enumerate() {
        for (ii, i) in invoices.iter().enumerate() {
            if pay_left[pi] == 0 {
                break;
            }
            if !same(p, i) || inv_left[ii] == 0 {
                continue;
            }
            let amount = pay_left[pi].min(inv_left[ii]);
            out.push((pi, ii, amount));
            pay_left[pi] -= amount;
            inv_left[ii] -= amount;
        }
    }
    out
}

/// `GET /api/v1/trade/reconciliation`: open advances, open invoices and suggestions.
pub async fn suggestions(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<ReconcileQuery>,
) -> Result<Json<Value>, Problem> {
    let scope = allowed(&state, &context, RECONCILE).await?;
    let direction = direction_of(&query.party_type).map_err(Problem::from)?;
    let repository = state
        .services
        .get::<Repository>("trade routes")
        .map_err(Problem::from)?;
    let (company, party) = (query.company.clone(), query.party.clone());
    let s = scope.clone();
    let (payments, invoices) = repository
        .read(
            &scope,
            Box::new(move |conn| {
                let (s, company, party) = (s.clone(), company.clone(), party.clone());
                Box::pin(async move {
                    open_items(conn, &s, &company, direction, party.as_deref()).await
                })
            }),
        )
        .await
        .map_err(Problem::from)?;
    let matches = suggest(&payments, &invoices);
    Ok(Json(json!({
        "payments": payments.iter().map(|p| json!({
            "id": p.id, "name": p.name, "party": p.party, "posting_date": p.date,
            "unallocated_amount": money(p.left, &p.currency),
        })).collect::<Vec<_>>(),
        "invoices": invoices.iter().map(|i| json!({
            "id": i.id, "name": i.name, "party": i.party, "due_date": i.due,
            "outstanding_amount": money(i.left, &i.currency),
        })).collect::<Vec<_>>(),
        "suggestions": matches.iter().map(|(p, i, amount)| json!({
            "payment": payments[*p].id,
            "invoice": invoices[*i].id,
            "amount": money(*amount, &payments[*p].currency),
        })).collect::<Vec<_>>(),
    })))
}

/// One allocation to apply.
#[derive(Clone)]
struct Apply {
    payment: String,
    invoice: String,
    amount: Value,
}

fn parse_body(body: &[u8]) -> Result<Vec<Apply>, RepoError> {
    let body: serde_json::Map<String, Value> = prefiq_http::json_object(body).map_err(|e| {
        invalid(
            "",
            "invalid_json",
            format!("the body is {{allocations: [{{payment, invoice, amount}}]}}: {e}"),
        )
    })?;
    let Some(rows) = body.get("allocations").and_then(Value::as_array) else {
        return Err(invalid(
            "/allocations",
            "required",
            "`allocations` is a list of {payment, invoice, amount}",
        ));
    };
    if rows.len() > RECONCILE_MAX {
        return Err(invalid(
            "/allocations",
            "too_many",
            format!("at most {RECONCILE_MAX} allocations at once"),
        ));
    }
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let text = |f: &str| row.get(f).and_then(Value::as_str).map(str::to_owned);
        let (Some(payment), Some(invoice), Some(amount)) =
            (text("payment"), text("invoice"), row.get("amount").cloned())
        else {
            return Err(invalid(
                format!("/allocations/{i}"),
                "required",
                "an allocation is {payment, invoice, amount}",
            ));
        };
        out.push(Apply {
            payment,
            invoice,
            amount,
        });
    }
    Ok(out)
}

/// The payment's row as reconciliation needs it.
struct PaymentRow {
    name: String,
    direction: Direction,
    company: String,
    party: String,
    party_account: String,
    currency: String,
    rate: i64,
    date: String,
}

async fn payment_row(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: &str,
) -> Result<Option<PaymentRow>, RepoError> {
    let rows = crate::rows::rows_by_id(
        conn,
        scope,
        "payment_entry",
        &[
            "name",
            "payment_type",
            "company",
            "party",
            "party_account",
            "currency",
            "exchange_rate",
            "posting_date",
            "docstatus",
        ],
        &[id],
    )
    .await?;
    Ok(rows.get(id).and_then(|r| {
        let text = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        (text(8) == "1").then(|| PaymentRow {
            name: text(0),
            direction: Direction::of(&text(1)).unwrap_or(Direction::Receive),
            company: text(2),
            party: text(3),
            party_account: text(4),
            currency: text(5),
            rate: text(6).parse().unwrap_or(RATE_ONE),
            date: text(7),
        })
    }))
}

/// Applies one allocation in the caller's transaction.
async fn apply_one(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    at: &str,
    apply: &Apply,
    now: &str,
) -> Result<Value, RepoError> {
    let Some(payment) = payment_row(conn, scope, &apply.payment).await? else {
        return Err(invalid(
            format!("{at}/payment"),
            "unknown",
            "there is no submitted payment entry with this id",
        ));
    };
    let kind: InvoiceKind = payment.direction.kind();
    let amount = apply
        .amount
        .get("amount")
        .and_then(Value::as_str)
        .and_then(|a| parse_scaled(a, currency_scale(&payment.currency)).ok())
        .filter(|a| *a > 0);
    let given = apply.amount.get("currency").and_then(Value::as_str);
    let (Some(amount), true) = (amount, given.is_none_or(|c| c == payment.currency)) else {
        return Err(invalid(
            format!("{at}/amount"),
            "required",
            format!(
                "an amount more than zero, as {{amount, currency}} in {}",
                payment.currency
            ),
        ));
    };
    let Some(invoice) = invoice_row(conn, scope, kind, &apply.invoice).await? else {
        return Err(invalid(
            format!("{at}/invoice"),
            "unknown",
            format!("there is no {} with this id", kind.entity()),
        ));
    };
    if invoice.docstatus != 1
        || invoice.party != payment.party
        || invoice.company != payment.company
        || invoice.currency != payment.currency
    {
        return Err(invalid(
            format!("{at}/invoice"),
            "other_party",
            format!(
                "{} is not a submitted invoice of the payment's {}, company and currency",
                invoice.name,
                kind.party()
            ),
        ));
    }
    // The advance, then the invoice: each guarded, so that a race loses cleanly.
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let row = sql.arg(text_arg(&apply.payment));
    let a = sql.arg(Arg::Int(Some(amount)));
    sql.text = format!(
        "UPDATE payment_entry SET unallocated_amount = unallocated_amount - {a}, allocated_amount = allocated_amount + {a} WHERE tenant_id = {tenant} AND id = {row} AND docstatus = 1 AND unallocated_amount >= {a}"
    );
    if conn.execute(&sql).await? != 1 {
        return Err(invalid(
            format!("{at}/amount"),
            "over_unallocated",
            format!("{} has less than this left to allocate", payment.name),
        ));
    }
    if !take_outstanding(conn, scope, kind, &apply.invoice, amount).await? {
        return Err(invalid(
            format!("{at}/amount"),
            "over_outstanding",
            format!(
                "{} has {} outstanding, less than this",
                invoice.name,
                format_scaled(invoice.outstanding, currency_scale(&invoice.currency))
            ),
        ));
    }
    let Some(company) = accounting::ledger::load_company(conn, scope, &payment.company).await?
    else {
        return Err(invalid(format!("{at}/payment"), "unknown", "no company"));
    };
    let base = company.base_currency.clone();
    let Some(booked) = booked_rate(conn, scope, &invoice, &base).await? else {
        return Err(invalid(
            format!("{at}/invoice"),
            "no_rate",
            format!("{} has no exchange rate to settle it at", invoice.name),
        ));
    };
    let overflow = || invalid(format!("{at}/amount"), "overflow", "the amount overflows");
    let at_payment =
        convert_currency(amount, &payment.currency, payment.rate, &base).ok_or_else(overflow)?;
    let at_invoice =
        convert_currency(amount, &payment.currency, booked, &base).ok_or_else(overflow)?;
    // The advance credited the party at the payment's rate, the invoice debited it at its
    // own: the difference moves between the party's account and gain or loss.
    let difference = at_payment - at_invoice;
    // The allocation's place in the payment's table names its exchange entry.
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let parent = sql.arg(text_arg(&apply.payment));
    sql.text = format!(
        "SELECT CAST(COALESCE(MAX(idx), 0) + 1 AS TEXT) FROM payment_allocation WHERE tenant_id = {tenant} AND parent_id = {parent}"
    );
    let idx: i64 = conn
        .fetch(&sql, &[SqlType::Text])
        .await?
        .first()
        .and_then(|r| cell_text(r, 0))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let entry = if difference != 0 {
        let receive = payment.direction == Direction::Receive;
        // A Receive whose advance is worth more than the invoice was booked at: the party
        // is credited too much, so debit it and credit the gain.
        let party_debit = (difference > 0) == receive;
        let line = |account: &str, debit: bool, party: bool, source: &str| DocumentLine {
            account: account.to_owned(),
            debit: if debit { difference.abs() } else { 0 },
            credit: if debit { 0 } else { difference.abs() },
            party_type: party.then(|| kind.party_type().to_owned()),
            party: party.then(|| payment.party.clone()),
            remark: Some(format!(
                "exchange difference of {} on {}",
                payment.name, invoice.name
            )),
            source: source.to_owned(),
            currency_rate: None,
        };
        let posting = DocumentPosting {
            entry_type: "Payment Entry",
            name: format!("{}-{idx}", payment.name),
            company: payment.company.clone(),
            posting_date: payment.date.clone().max(invoice.posting_date.clone()),
            currency: base.clone(),
            exchange_rate: None,
            lines: vec![
                line(
                    &payment.party_account,
                    party_debit,
                    true,
                    &format!("{at}/payment"),
                ),
                line(
                    &gain_loss_account(&company)?,
                    !party_debit,
                    false,
                    &format!("{at}/payment"),
                ),
            ],
        };
        Some(post_document(conn, scope, &posting).await?)
    } else {
        None
    };
    // The allocation joins the payment's table, after its last row.
    let id = uuid::Uuid::now_v7().to_string();
    let mut sql = Sql::default();
    let args = [
        sql.arg(text_arg(scope.tenant())),
        sql.arg(text_arg(&id)),
        sql.arg(text_arg(now)),
        sql.arg(text_arg(&apply.payment)),
        sql.arg(text_arg(payment.direction.invoice_type())),
        sql.arg(text_arg(&apply.invoice)),
        sql.arg(Arg::Int(Some(amount))),
        sql.arg(text_arg(&payment.currency)),
        sql.arg(Arg::Text(entry.clone())),
        sql.arg(Arg::Int(Some(idx))),
    ];
    let [tenant, id_arg, at_now, parent, itype, inv, amt, cur, je, n] = &args;
    sql.text = format!(
        "INSERT INTO payment_allocation (tenant_id, id, name, created_at, modified_at, parent_id, parent_field, idx, invoice_type, invoice, allocated_amount, allocated_amount_currency, journal_entry) \
         VALUES ({tenant}, {id_arg}, {id_arg}, {at_now}, {at_now}, {parent}, 'allocations', {n}, {itype}, {inv}, {amt}, {cur}, {je})"
    );
    conn.execute(&sql).await?;
    accounting::books::append(
        conn,
        scope,
        now,
        "reconcile",
        "payment_entry",
        &apply.payment,
        json!({
            "allocations": {"new": [{"invoice": apply.invoice, "allocated_amount": amount}]},
        }),
    )
    .await?;
    Ok(json!({
        "payment": apply.payment,
        "invoice": apply.invoice,
        "amount": money(amount, &payment.currency),
        "exchange_gain_loss": money(if payment.direction == Direction::Receive { difference } else { -difference }, &base),
        "journal_entry": entry,
    }))
}

/// `POST /api/v1/trade/reconciliation`: applies allocations, all or none.
pub async fn reconcile(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let scope = allowed(&state, &context, RECONCILE).await?;
    let allocations = parse_body(&body).map_err(Problem::from)?;
    let repository = state
        .services
        .get::<Repository>("trade routes")
        .map_err(Problem::from)?;
    let s = scope.clone();
    let applied = repository
        .in_transaction(
            &scope,
            Box::new(move |conn| {
                let (s, allocations) = (s.clone(), allocations.clone());
                Box::pin(async move {
                    let now = civil_now();
                    let mut applied = Vec::with_capacity(allocations.len());
                    for (i, apply) in allocations.iter().enumerate() {
                        let at = format!("/allocations/{i}");
                        applied.push(apply_one(conn, &s, &at, apply, &now).await?);
                    }
                    Ok(applied)
                })
            }),
        )
        .await
        .map_err(Problem::from)?;
    Ok(Json(json!({"data": applied})))
}
