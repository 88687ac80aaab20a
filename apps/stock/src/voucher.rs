//! The stock vouchers: what the stock entry, the delivery note and the purchase receipt
//! have in common (lines moving items into or out of warehouses, valued by the stock
//! ledger and posted against one account), and how the notes read their lines.
//!
//! - A stock entry says its purpose; its lines name a source and a target warehouse
//!   (`s_warehouse`, `t_warehouse`) and a receipt's rate (`basic_rate`).
//! - A delivery note is an issue: each line's `warehouse` is its source, and it is
//!   posted against cost of goods sold.
//! - A purchase receipt is a receipt: each line's `warehouse` is its target, its `rate`
//!   what one unit cost, and it is posted against stock received but not billed.

use serde_json::{Map, Value};

use prefiq_data::entity::repo::{FieldError, RepoError};
use prefiq_data::entity::value::{currency_scale, parse_scaled};

use crate::entry::{Line, Purpose, invalid};
use crate::rows::str_of;

/// A kind of stock voucher.
#[derive(Debug, PartialEq, Eq)]
pub struct VoucherKind {
    /// Its entity (and table).
    pub entity: &'static str,
    /// The voucher type of its stock ledger rows and journal entries.
    pub voucher_type: &'static str,
    /// The line fields naming the source and the target warehouse.
    pub warehouse_fields: (&'static str, &'static str),
    /// The line field of a receipt's rate.
    pub rate_field: &'static str,
    /// The company field whose account it is posted against when it names none.
    pub default_account: Option<&'static str>,
    /// Its field naming the account it is posted against.
    pub account_field: &'static str,
    /// Its field naming the journal entry of its stock postings.
    pub journal_field: &'static str,
    /// The field that must be set for it to move stock at all (an invoice's
    /// `update_stock`); `None` when it always does.
    pub gate: Option<&'static str>,
}

/// The stock entry.
pub static STOCK_ENTRY: VoucherKind = VoucherKind {
    entity: "stock_entry",
    voucher_type: "Stock Entry",
    warehouse_fields: ("s_warehouse", "t_warehouse"),
    rate_field: "basic_rate",
    default_account: None,
    account_field: "expense_account",
    journal_field: "journal_entry",
    gate: None,
};

/// The delivery note.
pub static DELIVERY_NOTE: VoucherKind = VoucherKind {
    entity: "delivery_note",
    voucher_type: "Delivery Note",
    warehouse_fields: ("warehouse", "warehouse"),
    rate_field: "rate",
    default_account: Some("cost_of_goods_sold_account"),
    account_field: "expense_account",
    journal_field: "journal_entry",
    gate: None,
};

/// The purchase receipt.
pub static PURCHASE_RECEIPT: VoucherKind = VoucherKind {
    entity: "purchase_receipt",
    voucher_type: "Purchase Receipt",
    warehouse_fields: ("warehouse", "warehouse"),
    rate_field: "rate",
    default_account: Some("stock_received_not_billed_account"),
    account_field: "expense_account",
    journal_field: "journal_entry",
    gate: None,
};

/// A sales invoice that updates stock: an issue of its lines that name a warehouse,
/// posted to cost of goods sold (its invoice's own entry posts the sale).
pub static SALES_INVOICE: VoucherKind = VoucherKind {
    entity: "sales_invoice",
    voucher_type: "Sales Invoice",
    warehouse_fields: ("warehouse", "warehouse"),
    rate_field: "net_amount",
    default_account: Some("cost_of_goods_sold_account"),
    account_field: "stock_posting_account",
    journal_field: "stock_journal_entry",
    gate: Some("update_stock"),
};

/// A purchase invoice that updates stock: a receipt of its lines that name a warehouse
/// at their net amount, posted against stock received but not billed, which the
/// invoice's own entry debits for those lines (so the two clear).
pub static PURCHASE_INVOICE: VoucherKind = VoucherKind {
    entity: "purchase_invoice",
    voucher_type: "Purchase Invoice",
    warehouse_fields: ("warehouse", "warehouse"),
    rate_field: "net_amount",
    default_account: Some("stock_received_not_billed_account"),
    account_field: "stock_posting_account",
    journal_field: "stock_journal_entry",
    gate: Some("update_stock"),
};

/// Every kind.
pub static KINDS: [&VoucherKind; 5] = [
    &STOCK_ENTRY,
    &DELIVERY_NOTE,
    &PURCHASE_RECEIPT,
    &SALES_INVOICE,
    &PURCHASE_INVOICE,
];

/// The kind whose rows carry `voucher_type`.
pub fn by_type(voucher_type: &str) -> Option<&'static VoucherKind> {
    KINDS
        .iter()
        .copied()
        .find(|k| k.voucher_type == voucher_type)
}

impl VoucherKind {
    /// The purpose of a note (a stock entry says its own).
    pub fn fixed_purpose(&self) -> Option<Purpose> {
        match self.entity {
            "delivery_note" | "sales_invoice" => Some(Purpose::Issue),
            "purchase_receipt" | "purchase_invoice" => Some(Purpose::Receipt),
            _ => None,
        }
    }

    /// The name of the journal entry of a document's stock postings: the document's
    /// own, or with `-STOCK` for an invoice, whose own entry has its name already.
    pub fn journal_name(&self, name: &str) -> String {
        if self.gate.is_some() {
            format!("{name}-STOCK")
        } else {
            name.to_owned()
        }
    }

    /// Whether the document moves stock: always, or when its gate is set.
    pub fn moves_stock(&self, doc: &Map<String, Value>) -> bool {
        self.gate.is_none_or(|gate| {
            doc.get(gate)
                .is_some_and(|v| v.as_bool() == Some(true) || v.as_i64() == Some(1))
        })
    }
}

/// The most lines one note carries.
pub const LINES_MAX: usize = crate::entry::LINES_MAX;

/// A quantity as given: a string or a number with at most 3 decimals.
pub(crate) fn qty_of(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::String(q)) => parse_scaled(q, 3).ok(),
        Some(Value::Number(n)) => parse_scaled(&n.to_string(), 3).ok(),
        _ => None,
    }
}

/// The lines of a delivery note or a purchase receipt, checked for what needs nothing
/// but the document; every refusal is collected.
pub(crate) fn note_lines(
    kind: &VoucherKind,
    doc: &Map<String, Value>,
    currency: Option<&str>,
) -> Result<(Purpose, Vec<Line>), RepoError> {
    let purpose = kind.fixed_purpose().unwrap_or(Purpose::Receipt);
    let rows = doc
        .get("lines")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if rows.is_empty() {
        return Err(invalid(
            "/lines",
            "required",
            "a note moves at least one line",
        ));
    }
    if rows.len() > LINES_MAX {
        return Err(invalid(
            "/lines",
            "too_many",
            format!("a note has at most {LINES_MAX} lines"),
        ));
    }
    let mut errors = Vec::new();
    let mut refuse = |pointer: String, code: &'static str, message: &str| {
        errors.push(FieldError {
            pointer,
            code,
            message: message.to_owned(),
        });
    };
    let invoice = kind.gate.is_some();
    let mut lines = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        // An invoice's lines without a warehouse (services) move no stock.
        if invoice && str_of(row.get("warehouse")).is_none() {
            continue;
        }
        let qty = qty_of(row.get("qty"));
        if invoice && qty.is_some_and(|q| q < 0) {
            refuse(
                format!("/lines/{i}/qty"),
                "return_not_supported",
                "a return does not update stock yet: leave its warehouse empty and move the goods with a stock entry",
            );
            continue;
        }
        if qty.is_none_or(|q| q <= 0) {
            refuse(
                format!("/lines/{i}/qty"),
                "required",
                "a line moves more than zero, with at most 3 decimals",
            );
        }
        if str_of(row.get("item")).is_none() {
            refuse(
                format!("/lines/{i}/item"),
                "required",
                "a line names its item",
            );
        }
        let warehouse = str_of(row.get("warehouse")).map(str::to_owned);
        if warehouse.is_none() {
            refuse(
                format!("/lines/{i}/warehouse"),
                "required",
                "a line names its warehouse",
            );
        }
        let rate = if purpose == Purpose::Receipt {
            let price = row.get(kind.rate_field).filter(|v| !v.is_null());
            let given = price
                .and_then(|p| p.get("currency"))
                .and_then(Value::as_str);
            let scale = currency_scale(currency.or(given).unwrap_or_default());
            let amount = price
                .and_then(|p| p.get("amount"))
                .and_then(Value::as_str)
                .and_then(|a| parse_scaled(a, scale).ok());
            match amount {
                Some(a) if a >= 0 && (currency.is_none() || given == currency) => a,
                _ => {
                    refuse(
                        format!("/lines/{i}/{}", kind.rate_field),
                        "required",
                        "a received line gives its rate, zero or more, in the company's currency",
                    );
                    0
                }
            }
        } else {
            0
        };
        let (source, target) = match purpose {
            Purpose::Issue => (warehouse, None),
            _ => (None, warehouse),
        };
        // An invoice's line is received at its net amount: that is its value.
        let (rate, value) = if invoice && purpose == Purpose::Receipt {
            let per_unit = match qty {
                Some(q) if q > 0 => crate::valuation::div_round(
                    i128::from(rate) * i128::from(crate::valuation::QTY_SCALE),
                    i128::from(q),
                )
                .unwrap_or(0),
                _ => 0,
            };
            (per_unit, Some(rate))
        } else {
            (rate, None)
        };
        lines.push(Line {
            index: i,
            item: str_of(row.get("item")).unwrap_or_default().to_owned(),
            qty: qty.unwrap_or(0),
            uom: str_of(row.get("uom")).map(str::to_owned),
            source,
            target,
            rate,
            value,
            batch: str_of(row.get("batch")).map(str::to_owned),
            serials: crate::tracking::serials_of(row.get("serial_nos")),
        });
    }
    if invoice && lines.is_empty() && errors.is_empty() {
        errors.push(FieldError {
            pointer: "/update_stock".into(),
            code: "no_stock_lines",
            message: "the invoice updates stock, but none of its lines names a warehouse".into(),
        });
    }
    if errors.is_empty() {
        Ok((purpose, lines))
    } else {
        Err(RepoError::Invalid(errors))
    }
}
