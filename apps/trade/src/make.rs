//! `POST /api/v1/trade/{entity}/{id}/make/{target}`: a draft made from a submitted
//! document, as ERP users expect from "Make" buttons:
//!
//! | from | to | what is carried |
//! |---|---|---|
//! | `opportunity` (the crm app's, converted) | `quotation` | its customer, company and currency; the body gives the lines |
//! | `quotation` | `sales_order` | the party, currency, taxes and lines |
//! | `sales_order` | `sales_invoice` | each line's quantity not yet invoiced, with its `order_line` |
//! | `purchase_order` | `purchase_invoice` | the same |
//! | `sales_invoice` | `sales_invoice` | a credit note: every line negated, `return_against` set |
//! | `purchase_invoice` | `purchase_invoice` | a debit note, the same |
//! | `sales_invoice`, `purchase_invoice` | `payment_entry` | the outstanding amount, allocated to it |
//!
//! The body, a JSON object, may give more fields of the draft (`posting_date`, a
//! payment's `account`) or override carried ones. The source is read and the draft
//! created as the caller, through the repository: both are authorized and the draft is
//! audited like any other.

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use prefiq::{Context, ErrorKind, KernelError};
use prefiq_data::entity::repo::{Repository, TenantScope};
use prefiq_data::entity::value::{civil_now, format_scaled, parse_scaled};
use prefiq_http::{HttpState, Problem};
use serde_json::{Map, Value, json};

use crate::routes::invalid;

/// The fields a made document carries from its source, when the source has them.
const HEAD_FIELDS: &[&str] = &[
    "customer",
    "supplier",
    "company",
    "currency",
    "exchange_rate",
    "tax_template",
    "price_list",
];

/// The line fields carried.
const LINE_FIELDS: &[&str] = &[
    "item",
    "description",
    "unit_price",
    "income_account",
    "expense_account",
];

/// A quantity as stored (a decimal string, or a number), in thousandths.
fn qty_of(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::String(s)) => parse_scaled(s, 3).unwrap_or(0),
        Some(Value::Number(n)) => parse_scaled(&n.to_string(), 3).unwrap_or(0),
        _ => 0,
    }
}

fn carried(source: &Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|f| {
            source
                .get(*f)
                .filter(|v| !v.is_null())
                .map(|v| ((*f).to_owned(), v.clone()))
        })
        .collect()
}

fn lines(source: &Map<String, Value>) -> &[Value] {
    source
        .get("lines")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The draft of `target` made from `source` (a submitted `entity`).
#[allow(clippy::result_large_err)]
pub fn draft(entity: &str, target: &str, source: &Map<String, Value>) -> Result<Value, Problem> {
    let id = source.get("id").cloned().unwrap_or(Value::Null);
    let today = civil_now().get(..10).unwrap_or_default().to_owned();
    let mut doc = carried(source, HEAD_FIELDS);
    doc.insert("posting_date".into(), json!(today));
    match (entity, target) {
        ("opportunity", "quotation") => {
            if source.get("customer").is_none_or(Value::is_null) && !source.is_empty() {
                return Err(invalid(
                    "/customer",
                    "not_converted",
                    "the opportunity's lead is not a customer yet: convert it first",
                ));
            }
            let mut quotation = carried(source, &["customer", "company", "currency"]);
            quotation.insert("opportunity".into(), id);
            quotation.insert("posting_date".into(), json!(today));
            doc = quotation;
        }
        ("quotation", "sales_order") => {
            doc.insert("quotation".into(), id);
            let rows: Vec<Value> = lines(source)
                .iter()
                .filter_map(Value::as_object)
                .map(|l| {
                    let mut row = carried(l, LINE_FIELDS);
                    row.insert("qty".into(), l.get("qty").cloned().unwrap_or(Value::Null));
                    Value::Object(row)
                })
                .collect();
            doc.insert("lines".into(), Value::Array(rows));
        }
        ("sales_order", "sales_invoice") | ("purchase_order", "purchase_invoice") => {
            doc.insert(entity.into(), id);
            let rows: Vec<Value> = lines(source)
                .iter()
                .filter_map(Value::as_object)
                .filter_map(|l| {
                    let left = qty_of(l.get("qty")) - qty_of(l.get("billed_qty"));
                    (left > 0).then(|| {
                        let mut row = carried(l, LINE_FIELDS);
                        row.insert("qty".into(), json!(format_scaled(left, 3)));
                        row.insert(
                            "order_line".into(),
                            l.get("id").cloned().unwrap_or_default(),
                        );
                        Value::Object(row)
                    })
                })
                .collect();
            if rows.is_empty() {
                return Err(invalid(
                    "/lines",
                    "fully_billed",
                    "every line of the order is invoiced",
                ));
            }
            doc.insert("lines".into(), Value::Array(rows));
        }
        ("sales_invoice", "sales_invoice") | ("purchase_invoice", "purchase_invoice") => {
            if source.get("return_against").is_some_and(|v| !v.is_null()) {
                return Err(invalid(
                    "/return_against",
                    "is_return",
                    "this is a return already",
                ));
            }
            doc.insert("return_against".into(), id);
            let rows: Vec<Value> = lines(source)
                .iter()
                .filter_map(Value::as_object)
                .map(|l| {
                    let mut row = carried(l, LINE_FIELDS);
                    row.insert("qty".into(), json!(format_scaled(-qty_of(l.get("qty")), 3)));
                    Value::Object(row)
                })
                .collect();
            doc.insert("lines".into(), Value::Array(rows));
        }
        ("sales_invoice" | "purchase_invoice", "payment_entry") => {
            let sales = entity == "sales_invoice";
            let outstanding = source
                .get("outstanding_amount")
                .cloned()
                .unwrap_or(Value::Null);
            let positive = outstanding
                .get("amount")
                .and_then(Value::as_str)
                .is_some_and(|a| {
                    !a.starts_with('-') && a.chars().any(|c| c.is_ascii_digit() && c != '0')
                });
            if !positive {
                return Err(invalid(
                    "/outstanding_amount",
                    "nothing_outstanding",
                    "the invoice has nothing outstanding",
                ));
            }
            let party = if sales { "customer" } else { "supplier" };
            let mut payment = Map::new();
            payment.insert(
                "payment_type".into(),
                json!(if sales { "Receive" } else { "Pay" }),
            );
            payment.insert(
                "party_type".into(),
                json!(if sales { "Customer" } else { "Supplier" }),
            );
            payment.insert(
                "party".into(),
                source.get(party).cloned().unwrap_or_default(),
            );
            for field in ["company", "currency"] {
                payment.insert(field.into(), source.get(field).cloned().unwrap_or_default());
            }
            payment.insert("posting_date".into(), json!(today));
            payment.insert("paid_amount".into(), outstanding.clone());
            payment.insert(
                "allocations".into(),
                json!([{
                    "invoice_type": if sales { "Sales Invoice" } else { "Purchase Invoice" },
                    "invoice": id,
                    "allocated_amount": outstanding,
                }]),
            );
            doc = payment;
        }
        _ => {
            return Err(Problem::new(StatusCode::NOT_FOUND).with_detail(format!(
                "a {target} is not made from a {entity}; see the table in the API description"
            )));
        }
    }
    Ok(Value::Object(doc))
}

/// How a draft is made from its source: [`draft`] here, another app's for its pairs.
pub type Drafter<'a> =
    &'a (dyn Fn(&str, &str, &Map<String, Value>) -> Result<Value, Problem> + Sync);

/// `POST /api/v1/trade/{entity}/{id}/make/{target}`: creates the draft and answers it.
pub async fn make(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path((entity, id, target)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Problem> {
    make_with(&state, &context, (&entity, &id, &target), &body, &draft).await
}

/// Makes a draft of `target` from the submitted `entity` `id` with `drafter`, as the
/// caller; the body's fields are added to the draft. An app with its own pairs (stock's
/// notes) serves its own route with its own drafter.
pub async fn make_with(
    state: &HttpState,
    context: &Context,
    (entity, id, target): (&str, &str, &str),
    body: &[u8],
    drafter: Drafter<'_>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let (entity, id, target) = (entity.to_owned(), id.to_owned(), target.to_owned());
    if context.principal.is_none() {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Unauthenticated,
            "sign in first: send `Authorization: Bearer <token>`",
        )));
    }
    let extra: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        prefiq_http::json_object(body).map_err(|e| {
            invalid(
                "",
                "invalid_json",
                format!("the body is a JSON object of the draft's fields: {e}"),
            )
        })?
    };
    // Refuse an unknown pair before reading anything.
    if let Err(problem) = drafter(&entity, &target, &Map::new())
        && problem.status_code() == StatusCode::NOT_FOUND
    {
        return Err(problem);
    }
    let scope = TenantScope::new(context).map_err(Problem::from)?;
    let repository = state
        .services
        .get::<Repository>("trade routes")
        .map_err(Problem::from)?;
    let source = repository
        .get(&scope, &entity, &id)
        .await
        .map_err(Problem::from)?;
    let Some(source) = source.as_object() else {
        return Err(Problem::new(StatusCode::NOT_FOUND));
    };
    // An opportunity is not submitted: it is quoted while it is open.
    if entity != "opportunity" && source.get("docstatus").and_then(Value::as_i64) != Some(1) {
        return Err(invalid(
            "/docstatus",
            "not_submitted",
            format!("a {target} is made from a submitted {entity}"),
        ));
    }
    let mut doc = drafter(&entity, &target, source)?;
    if let Some(doc) = doc.as_object_mut() {
        doc.extend(extra);
    }
    let created = repository
        .create(&scope, &target, doc)
        .await
        .map_err(Problem::from)?;
    Ok((StatusCode::CREATED, Json(created)))
}
