//! Prices from a price list: a document that names a `price_list` takes the unit price of
//! each line that has none from the list's `item_price` of that item, the one valid on the
//! document's date (the latest `valid_from` on or before it; a price without one is valid
//! always). The list must be in the document's currency and be for selling (sales
//! documents) or buying (purchase documents). A price typed on a line wins.

use prefiq_data::entity::repo::{FieldError, RepoError, TenantScope};
use prefiq_data::entity::sql::{Conn, Sql, SqlType};
use prefiq_data::entity::value::{currency_scale, format_scaled};
use serde_json::{Map, Value, json};

use crate::figures::{DocumentSpec, InvoiceKind};
use crate::rows::{cell_text, invalid, rows_by_id, str_of, text_arg, truthy};

/// Fills the unit prices of `doc`'s lines that have none from its price list.
pub(crate) async fn fill_prices(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    spec: DocumentSpec,
    doc: &mut Map<String, Value>,
) -> Result<(), RepoError> {
    let Some(list) = str_of(doc.get("price_list")).map(str::to_owned) else {
        return Ok(());
    };
    let rows = rows_by_id(
        conn,
        scope,
        "price_list",
        &["currency", "selling", "buying", "enabled"],
        &[&list],
    )
    .await?;
    let Some(row) = rows.get(&list) else {
        return Err(invalid(
            "/price_list",
            "unknown",
            format!("there is no price list `{list}`"),
        ));
    };
    let text = |i: usize| row.get(i).cloned().flatten();
    let currency = str_of(doc.get("currency")).unwrap_or_default().to_owned();
    if text(0).as_deref() != Some(currency.as_str()) {
        return Err(invalid(
            "/price_list",
            "wrong_currency",
            format!(
                "the price list is in {}, the document in {currency}",
                text(0).unwrap_or_default()
            ),
        ));
    }
    let (flag, side) = match spec.kind {
        InvoiceKind::Sales => (1, "selling"),
        InvoiceKind::Purchase => (2, "buying"),
    };
    if !truthy(text(flag).as_deref()) || !truthy(text(3).as_deref()) {
        return Err(invalid(
            "/price_list",
            "not_for_this_side",
            format!("the price list is disabled or not for {side}"),
        ));
    }
    let date = str_of(doc.get("posting_date"))
        .unwrap_or("9999-12-31")
        .to_owned();
    let scale = currency_scale(&currency);
    let mut errors = Vec::new();
    let Some(lines) = doc.get_mut("lines").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for (i, line) in lines.iter_mut().enumerate() {
        let Some(line) = line.as_object_mut() else {
            continue;
        };
        if line.get("unit_price").is_some_and(|p| !p.is_null()) {
            continue;
        }
        let item = str_of(line.get("item")).unwrap_or_default().to_owned();
        match price(conn, scope, &list, &item, &date).await? {
            Some(amount) => {
                line.insert(
                    "unit_price".into(),
                    json!({"amount": format_scaled(amount, scale), "currency": currency}),
                );
            }
            None => errors.push(FieldError {
                pointer: format!("/lines/{i}/unit_price"),
                code: "no_price",
                message: format!("the price list has no price for this item on {date}: give one"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RepoError::Invalid(errors))
    }
}

/// The rate of `item` in `list` valid on `date`, in minor units.
async fn price(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    list: &str,
    item: &str,
    date: &str,
) -> Result<Option<i64>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let l = sql.arg(text_arg(list));
    let i = sql.arg(text_arg(item));
    let d = sql.arg(text_arg(date));
    sql.text = format!(
        "SELECT CAST(rate AS TEXT) FROM item_price WHERE tenant_id = {tenant} AND price_list = {l} AND item = {i} AND deleted_at IS NULL \
         AND (valid_from IS NULL OR CAST(valid_from AS TEXT) <= {d}) ORDER BY COALESCE(CAST(valid_from AS TEXT), '') DESC LIMIT 1"
    );
    Ok(conn
        .fetch(&sql, &[SqlType::Text])
        .await?
        .first()
        .and_then(|r| cell_text(r, 0))
        .and_then(|a| a.parse().ok()))
}
