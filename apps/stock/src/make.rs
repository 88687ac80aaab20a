//! `POST /api/v1/stock/{entity}/{id}/make/{target}`: the stock app's "Make" pairs, made
//! like trade's (read and created as the caller, through the repository):
//!
//! | from | to | what is carried |
//! |---|---|---|
//! | `sales_order` | `delivery_note` | the customer, company, and each line's quantity not yet delivered, with its `sales_order_line` |
//! | `purchase_order` | `purchase_receipt` | the supplier, company, and each line's quantity not yet received at its unit price, with its `purchase_order_line` |
//! | `purchase_receipt` | `purchase_invoice` | the supplier, company, each line at its rate, posted to the receipt's stock received but not billed account, which the invoice clears |
//!
//! The body's fields are added to the draft; a `warehouse` in it goes to every line.

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use prefiq::Context;
use prefiq_data::entity::value::{civil_now, format_scaled};
use prefiq_http::{HttpState, Problem};
use serde_json::{Map, Value, json};
use trade::routes::invalid;

use crate::voucher::qty_of;

fn lines(source: &Map<String, Value>) -> impl Iterator<Item = &Map<String, Value>> {
    source
        .get("lines")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_object)
}

fn field(source: &Map<String, Value>, name: &str) -> Value {
    source.get(name).cloned().unwrap_or(Value::Null)
}

/// The draft of `target` made from `source` (a submitted `entity`).
#[allow(clippy::result_large_err)]
pub fn draft(entity: &str, target: &str, source: &Map<String, Value>) -> Result<Value, Problem> {
    let id = field(source, "id");
    let today = civil_now().get(..10).unwrap_or_default().to_owned();
    let mut doc = Map::new();
    doc.insert("company".into(), field(source, "company"));
    doc.insert("posting_date".into(), json!(today));
    let rows: Vec<Value> = match (entity, target) {
        ("sales_order", "delivery_note") | ("purchase_order", "purchase_receipt") => {
            let sales = entity == "sales_order";
            let (party, kept, line_field) = if sales {
                ("customer", "delivered_qty", "sales_order_line")
            } else {
                ("supplier", "received_qty", "purchase_order_line")
            };
            doc.insert(party.into(), field(source, party));
            doc.insert(entity.into(), id);
            lines(source)
                .filter_map(|l| {
                    let left = qty_of(l.get("qty")).unwrap_or(0) - qty_of(l.get(kept)).unwrap_or(0);
                    (left > 0).then(|| {
                        let mut row = Map::new();
                        row.insert("item".into(), field(l, "item"));
                        row.insert("qty".into(), json!(format_scaled(left, 3)));
                        row.insert(line_field.into(), field(l, "id"));
                        if !sales {
                            row.insert("rate".into(), field(l, "unit_price"));
                        }
                        Value::Object(row)
                    })
                })
                .collect()
        }
        ("purchase_receipt", "purchase_invoice") => {
            doc.insert("supplier".into(), field(source, "supplier"));
            let account = field(source, "expense_account");
            let mut currency = Value::Null;
            let rows = lines(source)
                .map(|l| {
                    let rate = field(l, "rate");
                    if currency.is_null() {
                        currency = rate.get("currency").cloned().unwrap_or(Value::Null);
                    }
                    let mut row = Map::new();
                    row.insert("item".into(), field(l, "item"));
                    row.insert("qty".into(), field(l, "qty"));
                    row.insert("unit_price".into(), rate);
                    row.insert("expense_account".into(), account.clone());
                    if let Some(order_line) = l.get("purchase_order_line").filter(|v| !v.is_null())
                    {
                        row.insert("order_line".into(), order_line.clone());
                    }
                    Value::Object(row)
                })
                .collect();
            doc.insert("currency".into(), currency);
            rows
        }
        _ => {
            return Err(Problem::new(StatusCode::NOT_FOUND).with_detail(format!(
                "a {target} is not made from a {entity}; see the table in the API description"
            )));
        }
    };
    if rows.is_empty() && !source.is_empty() {
        return Err(invalid(
            "/lines",
            "nothing_left",
            "every line of the source is delivered, received or billed",
        ));
    }
    doc.insert("lines".into(), Value::Array(rows));
    Ok(Value::Object(doc))
}

/// `POST /api/v1/stock/{entity}/{id}/make/{target}`.
pub async fn make(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path((entity, id, target)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Problem> {
    // A `warehouse` in the body is every line's, not the head's.
    let mut extra: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        prefiq_http::json_object(&body).map_err(|e| {
            invalid(
                "",
                "invalid_json",
                format!("the body is a JSON object of the draft's fields: {e}"),
            )
        })?
    };
    let warehouse = extra.remove("warehouse");
    let body = serde_json::to_vec(&extra).unwrap_or_default();
    #[allow(clippy::result_large_err)]
    let drafter = move |entity: &str, target: &str, source: &Map<String, Value>| {
        let mut doc = draft(entity, target, source)?;
        if let (Some(warehouse), Some(Value::Array(rows))) = (&warehouse, doc.get_mut("lines")) {
            for row in rows.iter_mut().filter_map(Value::as_object_mut) {
                row.insert("warehouse".into(), warehouse.clone());
            }
        }
        Ok(doc)
    };
    trade::make::make_with(&state, &context, (&entity, &id, &target), &body, &drafter).await
}
