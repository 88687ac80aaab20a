//! What notes deliver and receive of orders: a delivery note line naming a sales order
//! line adds its quantity (in stock units) to that line's `delivered_qty`, and a
//! purchase receipt line naming a purchase order line to its `received_qty`, in the
//! note's transaction; cancelling the note takes it back. The update is guarded, so a
//! line of an order that is not submitted, of another customer or supplier, company or
//! item, or past what the order line holds, is refused at its pointer and nothing is
//! written.

use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Arg, Conn, Sql};
use serde_json::{Map, Value};

use crate::entry::invalid;
use crate::rows::{str_of, text_arg};
use crate::voucher::VoucherKind;

/// The order entity, its party field, the order line field of a note's line, and the
/// quantity the note keeps on the order's lines.
fn order_of(
    kind: &VoucherKind,
) -> Option<(&'static str, &'static str, &'static str, &'static str)> {
    match kind.entity {
        "delivery_note" => Some((
            "sales_order",
            "customer",
            "sales_order_line",
            "delivered_qty",
        )),
        "purchase_receipt" => Some((
            "purchase_order",
            "supplier",
            "purchase_order_line",
            "received_qty",
        )),
        _ => None,
    }
}

/// Adds `direction` times each line's stock quantity (`qty`, in the lines' order) to
/// the order line it names: 1 on submit, -1 on cancel.
pub(crate) async fn apply(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: &VoucherKind,
    doc: &Map<String, Value>,
    qty: &[i64],
    direction: i64,
) -> Result<(), RepoError> {
    let Some((order, party_field, line_field, kept)) = order_of(kind) else {
        return Ok(());
    };
    let party = str_of(doc.get(party_field)).unwrap_or_default();
    let company = str_of(doc.get("company")).unwrap_or_default();
    let header = str_of(doc.get(order));
    let lines = doc
        .get("lines")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, (line, qty)) in lines.iter().zip(qty).enumerate() {
        let Some(order_line) = str_of(line.get(line_field)) else {
            continue;
        };
        let item = str_of(line.get("item")).unwrap_or_default();
        let mut sql = Sql::default();
        let tenant = sql.arg(text_arg(scope.tenant()));
        let id = sql.arg(text_arg(order_line));
        let moved = sql.arg(Arg::Int(Some(direction * qty)));
        let guard = if direction > 0 {
            let (p, c, it) = (
                sql.arg(text_arg(party)),
                sql.arg(text_arg(company)),
                sql.arg(text_arg(item)),
            );
            let same_order = match header {
                Some(h) => format!(" AND id = {}", sql.arg(text_arg(h))),
                None => String::new(),
            };
            format!(
                " AND COALESCE({kept}, 0) + {moved} <= qty AND item = {it} AND parent_id IN (SELECT id FROM {order} WHERE tenant_id = {tenant} AND docstatus = 1 AND {party_field} = {p} AND company = {c} AND deleted_at IS NULL{same_order})"
            )
        } else {
            String::new()
        };
        sql.text = format!(
            "UPDATE {order}_line SET {kept} = COALESCE({kept}, 0) + {moved} WHERE tenant_id = {tenant} AND id = {id}{guard}"
        );
        if conn.execute(&sql).await? == 0 && direction > 0 {
            return Err(invalid(
                format!("/lines/{i}/{line_field}"),
                "not_open",
                format!(
                    "the line is not an open line of a submitted {} of this {party_field}, company and item, or it holds less than is left of it",
                    order.replace('_', " ")
                ),
            ));
        }
    }
    Ok(())
}
