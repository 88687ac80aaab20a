//! Units of measure on stock lines: a line may count in another unit than the item's
//! stock unit when the item says how many stock units one of it holds (trade's
//! `item_uom`). The stock ledger counts in stock units only, so a line is converted
//! before it is valued: its quantity to stock units (rounded to thousandths, half away
//! from zero) and, for a receipt, its value kept exactly as given (quantity times rate
//! in the line's unit), so converting never changes what the goods cost.

use std::collections::HashMap;

use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Cell, Conn, Sql, SqlType};

use crate::entry::Line;
use crate::rows::text_arg;
use crate::valuation::{QTY_SCALE, div_round};

/// The scale of a conversion factor: millionths.
const FACTOR_SCALE: i64 = 1_000_000;

/// Each (item, unit) the items convert, with its factor in millionths of a stock unit.
pub(crate) async fn conversions(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    items: &[&str],
) -> Result<HashMap<(String, String), i64>, RepoError> {
    if items.is_empty() {
        return Ok(HashMap::new());
    }
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let list: Vec<String> = items.iter().map(|id| sql.arg(text_arg(id))).collect();
    sql.text = format!(
        "SELECT parent_id, uom, CAST(factor AS BIGINT) FROM item_uom WHERE tenant_id = {tenant} AND parent_id IN ({})",
        list.join(", ")
    );
    let rows = conn
        .fetch(&sql, &[SqlType::Text, SqlType::Text, SqlType::Int])
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let text = |k: usize| match r.get(k) {
                Some(Cell::Text(s)) => Some(s.clone()),
                _ => None,
            };
            Some(((text(0)?, text(1)?), r.get(2).and_then(Cell::as_int)?))
        })
        .collect())
}

/// Why a line's unit could not be converted.
#[derive(Debug)]
pub(crate) struct UnitError {
    /// The line's field at fault.
    pub(crate) field: &'static str,
    /// A machine-readable code.
    pub(crate) code: &'static str,
    /// What is wrong.
    pub(crate) message: String,
}

/// Converts a line to the item's stock unit: its quantity, and for a line with a rate
/// its exact value ([`Line::value`]).
pub(crate) fn convert(
    line: &mut Line,
    stock_uom: Option<&str>,
    conversions: &HashMap<(String, String), i64>,
) -> Result<(), UnitError> {
    let value = div_round(
        i128::from(line.qty) * i128::from(line.rate),
        i128::from(QTY_SCALE),
    )
    .ok_or_else(|| UnitError {
        field: "qty",
        code: "overflow",
        message: "the line's value overflows".into(),
    })?;
    // A value given with the line (an invoice's net amount) is kept.
    line.value = Some(line.value.unwrap_or(value));
    let Some(uom) = line.uom.as_deref().filter(|u| Some(*u) != stock_uom) else {
        return Ok(());
    };
    let Some(factor) = conversions.get(&(line.item.clone(), uom.to_owned())) else {
        return Err(UnitError {
            field: "uom",
            code: "no_conversion",
            message: format!(
                "the item has no conversion from `{uom}` to its stock unit `{}`",
                stock_uom.unwrap_or_default()
            ),
        });
    };
    let qty = div_round(
        i128::from(line.qty) * i128::from(*factor),
        i128::from(FACTOR_SCALE),
    )
    .filter(|q| *q > 0)
    .ok_or_else(|| UnitError {
        field: "qty",
        code: "too_small",
        message: "the quantity is less than a thousandth of the stock unit".into(),
    })?;
    line.qty = qty;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(qty: i64, uom: Option<&str>, rate: i64) -> Line {
        Line {
            index: 0,
            item: "bolt".into(),
            qty,
            uom: uom.map(str::to_owned),
            source: None,
            target: None,
            rate,
            value: None,
            batch: None,
            serials: Vec::new(),
        }
    }

    #[test]
    fn lines_convert_to_the_stock_unit_and_keep_their_value() {
        let conversions = HashMap::from([
            (("bolt".to_owned(), "box".to_owned()), 12 * FACTOR_SCALE),
            (("bolt".to_owned(), "half".to_owned()), FACTOR_SCALE / 2),
        ]);
        // (qty, unit, rate) -> (stock qty, value) or the field refused.
        let check = |given: (i64, Option<&str>, i64), expected: Result<(i64, i64), &str>| {
            let mut l = line(given.0, given.1, given.2);
            let got = convert(&mut l, Some("nos"), &conversions)
                .map(|()| (l.qty, l.value.unwrap_or(-1)))
                .map_err(|e| e.code);
            assert_eq!(got, expected, "{given:?}");
        };
        check((3000, Some("box"), 1000), Ok((36_000, 3000)));
        check((3000, None, 1000), Ok((3000, 3000)));
        check((3000, Some("nos"), 250), Ok((3000, 750)));
        check((1, Some("half"), 1000), Ok((1, 1)));
        check((1000, Some("crate"), 0), Err("no_conversion"));
        check((3000, Some("box"), 333), Ok((36_000, 999)));
    }
}
