//! The stock entry: its checks (a validate hook, on every save) and its submit and
//! cancel (a transaction hook, in the document's transaction).
//!
//! The rules, in the order they are applied:
//! - a Receipt's lines have a target warehouse and a rate and no source; an Issue's a
//!   source and no target; a Transfer's both, and not the same one
//!   (`/lines/{i}/t_warehouse`); every quantity is more than zero;
//! - a Receipt or an Issue names the account the stock is posted against
//!   (`/expense_account`);
//! - the items are stock items, not disabled; the warehouses are leaves of the entry's
//!   company with a stock account, not disabled;
//! - on submit, each line is valued from the rows of its bin up to its posting date;
//!   the bin values it ([`crate::valuation`]); an issue beyond what is held
//!   is refused at `/lines/{i}/qty` unless the item allows negative stock; nothing is
//!   written then;
//! - the stock ledger rows are appended and the postings written through
//!   `accounting::documents` as a `Stock Entry`: a Receipt debits the target's stock
//!   account and credits the expense account, an Issue the mirror image, a Transfer
//!   debits the target's stock account and credits the source's at the moved value;
//! - a backdated entry (its bins have rows after its date) then reposts those later rows
//!   and their postings ([`crate::repost`]);
//! - cancel appends the reversing rows, reverses the postings, and reposts what came
//!   after the entry in its bins.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use accounting::documents::{DocumentLine, DocumentPosting, post_document, reverse_document};
use prefiq::Backend;
use prefiq::{RegisterContext, async_trait};
use prefiq_data::entity::repo::{
    EntityEvent, EntityHook, FieldError, HookInput, RepoError, TenantScope, TransactionHook,
};
use prefiq_data::entity::sql::{Conn, Sql, SqlType};
use prefiq_data::entity::value::{civil_now, currency_scale, format_scaled, parse_scaled};
use serde_json::{Map, Value};
use trade::TradeRepository;

use crate::bins;
use crate::ledger::{self, LedgerRow};
use crate::orders;
use crate::repost::{self, Work};
pub use crate::rows::invalid;
pub(crate) use crate::rows::rows_by_id;
use crate::rows::{str_of, text_arg, truthy};
use crate::tracking;
use crate::units;
use crate::valuation::{Bin, Method, Movement, QTY_SCALE, ValuationError, div_round};
use crate::voucher::{self, VoucherKind};

/// The most lines one stock entry carries.
pub const LINES_MAX: usize = 500;

/// What a stock entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Into a target warehouse, at a given rate.
    Receipt,
    /// Out of a source warehouse, at its valuation.
    Issue,
    /// From a source to a target warehouse, at the source's valuation.
    Transfer,
    /// Consumes the lines with a source warehouse and produces the lines with a target
    /// warehouse at what the consumed lines cost, shared by quantity.
    Manufacture,
}

impl Purpose {
    /// Reads `purpose`.
    pub fn of(text: &str) -> Option<Purpose> {
        match text {
            "Receipt" => Some(Purpose::Receipt),
            "Issue" => Some(Purpose::Issue),
            "Transfer" => Some(Purpose::Transfer),
            "Manufacture" => Some(Purpose::Manufacture),
            _ => None,
        }
    }
}

/// A line as given and checked.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// Its position among the document's lines (pointers and the ledger name it by it).
    pub(crate) index: usize,
    pub(crate) item: String,
    /// In the line's unit until the facts convert it to the item's stock unit.
    pub(crate) qty: i64,
    /// The line's unit, when not the stock unit.
    pub(crate) uom: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) target: Option<String>,
    /// A receipt's rate per unit of the line's unit.
    pub(crate) rate: i64,
    /// A receipt's value (quantity times rate), set when the facts convert the line.
    pub(crate) value: Option<i64>,
    /// The batch it moves.
    pub(crate) batch: Option<String>,
    /// The serial numbers it moves.
    pub(crate) serials: Vec<String>,
}

/// An item as the ledger needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ItemRule {
    pub(crate) method: Method,
    pub(crate) allow_negative: bool,
}

/// A stock entry read and checked.
pub(crate) struct EntryFacts {
    pub(crate) purpose: Purpose,
    pub(crate) company: String,
    pub(crate) currency: String,
    pub(crate) posting_date: String,
    pub(crate) day: i64,
    pub(crate) expense_account: Option<String>,
    pub(crate) lines: Vec<Line>,
    pub(crate) items: HashMap<String, ItemRule>,
    /// Each warehouse's stock account.
    pub(crate) stock_accounts: HashMap<String, String>,
}

/// The checks that need nothing but the document: purpose, warehouses, rates and
/// quantities of each line, and the expense account. Every refusal is collected.
pub(crate) fn shape(
    doc: &Map<String, Value>,
    currency: Option<&str>,
) -> Result<(Purpose, Vec<Line>), RepoError> {
    let Some(purpose) = str_of(doc.get("purpose")).and_then(Purpose::of) else {
        return Err(invalid(
            "/purpose",
            "required",
            "a stock entry is a Receipt, an Issue, a Transfer or a Manufacture",
        ));
    };
    let rows = doc
        .get("lines")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if rows.is_empty() {
        return Err(invalid(
            "/lines",
            "required",
            "a stock entry moves at least one line",
        ));
    }
    if rows.len() > LINES_MAX {
        return Err(invalid(
            "/lines",
            "too_many",
            format!("a stock entry has at most {LINES_MAX} lines"),
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
    if matches!(purpose, Purpose::Receipt | Purpose::Issue)
        && str_of(doc.get("expense_account")).is_none()
    {
        refuse(
            "/expense_account".into(),
            "required",
            "a Receipt or an Issue names the account its stock is posted against",
        );
    }
    let mut lines = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let qty = match row.get("qty") {
            Some(Value::String(q)) => parse_scaled(q, 3).ok(),
            Some(Value::Number(n)) => parse_scaled(&n.to_string(), 3).ok(),
            _ => None,
        };
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
        let source = str_of(row.get("s_warehouse")).map(str::to_owned);
        let target = str_of(row.get("t_warehouse")).map(str::to_owned);
        let (wants_source, wants_target) = match purpose {
            Purpose::Receipt => (false, true),
            Purpose::Issue => (true, false),
            Purpose::Transfer => (true, true),
            // A line is consumed or produced: one warehouse, either one.
            Purpose::Manufacture => (target.is_none(), source.is_none()),
        };
        for (given, wanted, field) in [
            (source.is_some(), wants_source, "s_warehouse"),
            (target.is_some(), wants_target, "t_warehouse"),
        ] {
            if given && !wanted {
                refuse(
                    format!("/lines/{i}/{field}"),
                    "not_allowed",
                    "this purpose has no such warehouse",
                );
            } else if !given && wanted {
                refuse(
                    format!("/lines/{i}/{field}"),
                    "required",
                    "this purpose needs this warehouse",
                );
            }
        }
        if purpose == Purpose::Transfer && source.is_some() && source == target {
            refuse(
                format!("/lines/{i}/t_warehouse"),
                "same_warehouse",
                "a transfer moves stock into another warehouse",
            );
        }
        let price = row.get("basic_rate").filter(|v| !v.is_null());
        let rate = match (purpose, price) {
            (Purpose::Receipt, None) => {
                refuse(
                    format!("/lines/{i}/basic_rate"),
                    "required",
                    "a receipt gives its rate",
                );
                0
            }
            (Purpose::Receipt, Some(price)) => {
                let given = price.get("currency").and_then(Value::as_str);
                let scale = currency_scale(currency.or(given).unwrap_or_default());
                let amount = price
                    .get("amount")
                    .and_then(Value::as_str)
                    .and_then(|a| parse_scaled(a, scale).ok());
                match amount {
                    Some(a) if a >= 0 && (currency.is_none() || given == currency) => a,
                    _ => {
                        refuse(
                            format!("/lines/{i}/basic_rate"),
                            "wrong_type",
                            "a rate is zero or more, in the company's currency",
                        );
                        0
                    }
                }
            }
            (_, Some(_)) => {
                refuse(
                    format!("/lines/{i}/basic_rate"),
                    "not_allowed",
                    "only a receipt gives a rate; the others are valued by the stock ledger",
                );
                0
            }
            (_, None) => 0,
        };
        lines.push(Line {
            index: i,
            item: str_of(row.get("item")).unwrap_or_default().to_owned(),
            qty: qty.unwrap_or(0),
            uom: str_of(row.get("uom")).map(str::to_owned),
            source,
            target,
            rate,
            value: None,
            batch: str_of(row.get("batch")).map(str::to_owned),
            serials: tracking::serials_of(row.get("serial_nos")),
        });
    }
    if purpose == Purpose::Manufacture
        && !(lines.iter().any(|l| l.source.is_some()) && lines.iter().any(|l| l.target.is_some()))
    {
        refuse(
            "/lines".into(),
            "required",
            "a manufacture consumes at least one line and produces at least one",
        );
    }
    if errors.is_empty() {
        Ok((purpose, lines))
    } else {
        Err(RepoError::Invalid(errors))
    }
}

/// Reads and checks a stock voucher: its shape, company, items (and the units its
/// lines are in) and warehouses.
pub(crate) async fn entry_facts(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: &'static VoucherKind,
    doc: &Map<String, Value>,
) -> Result<EntryFacts, RepoError> {
    let company = str_of(doc.get("company")).unwrap_or_default().to_owned();
    let Some(found) = accounting::ledger::load_company(conn, scope, &company).await? else {
        return Err(invalid("/company", "unknown", "there is no such company"));
    };
    let currency = found.base_currency.clone();
    let (purpose, mut lines) = if kind.fixed_purpose().is_some() {
        voucher::note_lines(kind, doc, Some(&currency))?
    } else {
        shape(doc, Some(&currency))?
    };
    let posting_date = str_of(doc.get("posting_date"))
        .unwrap_or_default()
        .to_owned();
    let Some(day) = accounting::ledger::store::day_number(&posting_date) else {
        return Err(invalid(
            "/posting_date",
            "required",
            "a stock entry has a posting date",
        ));
    };
    let item_ids: Vec<&str> = lines
        .iter()
        .map(|l| l.item.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let item_rows = rows_by_id(
        conn,
        scope,
        "item",
        &[
            "is_stock_item",
            "valuation_method",
            "allow_negative_stock",
            "disabled",
            "stock_uom",
            "has_batch_no",
            "has_serial_no",
        ],
        &item_ids,
    )
    .await?;
    let conversions = units::conversions(conn, scope, &item_ids).await?;
    let warehouse_ids: Vec<&str> = lines
        .iter()
        .flat_map(|l| [l.source.as_deref(), l.target.as_deref()])
        .flatten()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let warehouse_rows = rows_by_id(
        conn,
        scope,
        "warehouse",
        &["company", "is_group", "stock_account", "disabled"],
        &warehouse_ids,
    )
    .await?;
    let mut items = HashMap::new();
    let mut stock_accounts = HashMap::new();
    let mut errors = Vec::new();
    let (source_field, target_field) = kind.warehouse_fields;
    let mut tracked = HashMap::new();
    for line in lines.iter_mut() {
        let i = line.index;
        let cell = |row: &Vec<Option<String>>, k: usize| row.get(k).cloned().flatten();
        if let Some(row) = item_rows.get(&line.item) {
            tracked.insert(
                line.item.clone(),
                tracking::Tracking {
                    batches: truthy(cell(row, 5).as_deref()),
                    serials: truthy(cell(row, 6).as_deref()),
                },
            );
            let stock_uom = cell(row, 4);
            if let Err(error) = units::convert(line, stock_uom.as_deref(), &conversions) {
                errors.push(FieldError {
                    pointer: format!("/lines/{i}/{}", error.field),
                    code: error.code,
                    message: error.message,
                });
            }
        }
        match item_rows.get(&line.item) {
            None => errors.push(FieldError {
                pointer: format!("/lines/{i}/item"),
                code: "unknown",
                message: format!("there is no item `{}`", line.item),
            }),
            Some(row) => {
                let is_stock = cell(row, 0);
                // An item stored before the flag existed counts as a stock item.
                if is_stock.is_some() && !truthy(is_stock.as_deref())
                    || truthy(cell(row, 3).as_deref())
                {
                    errors.push(FieldError {
                        pointer: format!("/lines/{i}/item"),
                        code: "not_stock_item",
                        message: "the item is not a stock item, or is disabled".into(),
                    });
                }
                let method = cell(row, 1);
                items.insert(
                    line.item.clone(),
                    ItemRule {
                        method: Method::of(method.as_deref()).unwrap_or(Method::Fifo),
                        allow_negative: truthy(cell(row, 2).as_deref()),
                    },
                );
            }
        }
        for (warehouse, field) in [(&line.source, source_field), (&line.target, target_field)] {
            let Some(warehouse) = warehouse else { continue };
            let pointer = format!("/lines/{i}/{field}");
            let fault = match warehouse_rows.get(warehouse) {
                None => Some(("unknown", "there is no such warehouse")),
                Some(row) if cell(row, 0).as_deref() != Some(found.id.as_str()) => {
                    Some(("other_company", "the warehouse belongs to another company"))
                }
                Some(row) if truthy(cell(row, 1).as_deref()) => {
                    Some(("group", "a group warehouse holds no stock"))
                }
                Some(row) if truthy(cell(row, 3).as_deref()) => {
                    Some(("disabled", "the warehouse is disabled"))
                }
                Some(row) => match cell(row, 2).filter(|a| !a.is_empty()) {
                    None => Some(("no_stock_account", "the warehouse has no stock account")),
                    Some(account) => {
                        stock_accounts.insert(warehouse.clone(), account);
                        None
                    }
                },
            };
            if let Some((code, message)) = fault {
                errors.push(FieldError {
                    pointer,
                    code,
                    message: message.into(),
                });
            }
        }
    }
    tracking::check_lines(conn, scope, &lines, &tracked, &posting_date, &mut errors).await?;
    if !errors.is_empty() {
        return Err(RepoError::Invalid(errors));
    }
    let expense_account = match (str_of(doc.get(kind.account_field)), kind.default_account) {
        (Some(given), _) => Some(given.to_owned()),
        (None, Some(field)) => {
            let company =
                rows_by_id(conn, scope, "company", &[field], &[found.id.as_str()]).await?;
            match company
                .get(&found.id)
                .and_then(|r| r.first().cloned().flatten())
            {
                Some(account) => Some(account),
                None => {
                    return Err(invalid(
                        format!("/{}", kind.account_field),
                        "required",
                        format!(
                            "the company has no {}; name the account",
                            field.replace('_', " ")
                        ),
                    ));
                }
            }
        }
        (None, None) => None,
    };
    Ok(EntryFacts {
        purpose,
        company: found.id,
        currency,
        posting_date,
        day,
        expense_account,
        lines,
        items,
        stock_accounts,
    })
}

/// The validate hook: every check that can be made before submit.
async fn validate(
    repository: &TradeRepository,
    kind: &'static VoucherKind,
    input: HookInput,
) -> Result<Map<String, Value>, String> {
    let mut doc = input.doc;
    let journal = kind.journal_field;
    if doc.get(journal).is_some_and(|v| !v.is_null())
        && input.old.as_ref().and_then(|o| o.get(journal)) != doc.get(journal)
    {
        return Err(format!("/{journal}: written on submit, not given"));
    }
    if !kind.moves_stock(&doc) {
        return Ok(doc);
    }
    let repository = repository.get()?;
    let scope = input.scope.clone();
    let read = doc.clone();
    let (stock_qty, account) = repository
        .read(
            &input.scope,
            Box::new(move |conn| {
                let (scope, doc) = (scope.clone(), read.clone());
                Box::pin(async move {
                    let facts = entry_facts(conn, &scope, kind, &doc).await?;
                    let qty: Vec<i64> = facts.lines.iter().map(|l| l.qty).collect();
                    Ok((qty, facts.expense_account))
                })
            }),
        )
        .await
        .map_err(|e| refusal(&e))?;
    // A note keeps each line's quantity in the stock unit and the account it posts to.
    if kind.fixed_purpose().is_some() {
        if let (None, Some(Value::Array(lines))) = (kind.gate, doc.get_mut("lines")) {
            for (line, qty) in lines.iter_mut().zip(stock_qty) {
                if let Value::Object(line) = line {
                    line.insert("stock_qty".into(), Value::String(format_scaled(qty, 3)));
                }
            }
        }
        if let Some(account) = account {
            // A purchase invoice's stock lines are debited to the account its stock
            // postings credit, so the two clear.
            if kind.gate.is_some()
                && kind.fixed_purpose() == Some(Purpose::Receipt)
                && let Some(Value::Array(lines)) = doc.get_mut("lines")
            {
                for line in lines.iter_mut().filter_map(Value::as_object_mut) {
                    if str_of(line.get("warehouse")).is_some() {
                        line.insert("expense_account".into(), Value::String(account.clone()));
                    }
                }
            }
            doc.insert(kind.account_field.into(), Value::String(account));
        }
    }
    Ok(doc)
}

/// A refusal as the validate hook answers it: each error's pointer, then its message.
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

/// On PostgreSQL, locks the items' rows until the transaction ends, so two entries of
/// one item value its bins one after the other (SQLite's writes are serial).
async fn lock_items(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    items: &[&str],
) -> Result<(), RepoError> {
    if conn.backend() != Backend::Postgres || items.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let list: Vec<String> = items.iter().map(|id| sql.arg(text_arg(id))).collect();
    sql.text = format!(
        "SELECT id FROM item WHERE tenant_id = {tenant} AND id IN ({}) ORDER BY id FOR UPDATE",
        list.join(", ")
    );
    conn.fetch(&sql, &[SqlType::Text]).await?;
    Ok(())
}

/// The postings of one line of `purpose` moving `value`: a Receipt debits the target's
/// stock account and credits the expense account, an Issue the mirror image, a Transfer
/// debits the target's stock account and credits the source's. `accounts` are the
/// source's, the target's and the expense account.
pub(crate) fn line_postings(
    kind: &VoucherKind,
    purpose: Purpose,
    i: usize,
    accounts: (&str, &str, &str),
    value: i64,
    remark: &str,
) -> Vec<DocumentLine> {
    let (source, target, expense) = accounts;
    let (source_field, target_field) = kind.warehouse_fields;
    let (s, t, e) = (
        (source, format!("/lines/{i}/{source_field}")),
        (target, format!("/lines/{i}/{target_field}")),
        (expense, format!("/{}", kind.account_field)),
    );
    match purpose {
        Purpose::Receipt => pair(t, e, value, remark),
        Purpose::Issue => pair(e, s, value, remark),
        Purpose::Transfer => pair(t, s, value, remark),
        // One side each: the consumed lines credit their source, the produced lines
        // debit their target, and the two add up to the same.
        Purpose::Manufacture if !source.is_empty() => single(s, false, value, remark),
        Purpose::Manufacture => single(t, true, value, remark),
    }
}

/// One posting of `value` to an account, a debit or a credit; nothing for zero.
fn single(
    (account, source): (&str, String),
    is_debit: bool,
    value: i64,
    remark: &str,
) -> Vec<DocumentLine> {
    if value == 0 {
        return Vec::new();
    }
    let is_debit = is_debit == (value > 0);
    let amount = value.abs();
    vec![DocumentLine {
        account: account.to_owned(),
        debit: if is_debit { amount } else { 0 },
        credit: if is_debit { 0 } else { amount },
        party_type: None,
        party: None,
        remark: Some(remark.to_owned()),
        source,
        currency_rate: None,
    }]
}

/// Shares `total` among `weights` in proportion, rounding half away from zero, the
/// last taking what rounding left so that the shares add up to `total`.
pub(crate) fn shares(total: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i64 = weights.iter().sum();
    let mut left = total;
    let mut out = Vec::with_capacity(weights.len());
    for (k, weight) in weights.iter().enumerate() {
        let share = if k + 1 == weights.len() || sum == 0 {
            left
        } else {
            div_round(i128::from(total) * i128::from(*weight), i128::from(sum)).unwrap_or(0)
        };
        left -= share;
        out.push(share);
    }
    out
}

/// The valuation rules of these items.
pub(crate) async fn item_rules(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    items: &[&str],
) -> Result<HashMap<String, ItemRule>, RepoError> {
    let rows = rows_by_id(
        conn,
        scope,
        "item",
        &["valuation_method", "allow_negative_stock"],
        items,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, r)| {
            let cell = |k: usize| r.get(k).cloned().flatten();
            let rule = ItemRule {
                method: Method::of(cell(0).as_deref()).unwrap_or(Method::Fifo),
                allow_negative: truthy(cell(1).as_deref()),
            };
            (id, rule)
        })
        .collect())
}

/// A debit of `debit` against a credit of `credit` for `value` (sides swapped when it
/// is negative); nothing for zero.
fn pair(
    debit: (&str, String),
    credit: (&str, String),
    value: i64,
    remark: &str,
) -> Vec<DocumentLine> {
    let (debit, credit) = if value < 0 {
        (credit, debit)
    } else {
        (debit, credit)
    };
    let amount = value.abs();
    if amount == 0 {
        return Vec::new();
    }
    let line = |(account, source): (&str, String), is_debit: bool| DocumentLine {
        account: account.to_owned(),
        debit: if is_debit { amount } else { 0 },
        credit: if is_debit { 0 } else { amount },
        party_type: None,
        party: None,
        remark: Some(remark.to_owned()),
        source,
        currency_rate: None,
    };
    vec![line(debit, true), line(credit, false)]
}

/// The transaction hook of a kind of voucher: posts on submit, reverses on cancel.
struct StockPosting {
    kind: &'static VoucherKind,
}

impl StockPosting {
    /// The bin of an item in a warehouse as it stands before a movement on `day`, and
    /// whether that movement is its latest. A bin whose cached state is of `day` or
    /// before starts from it; otherwise its rows up to `day` are replayed, and when it
    /// has rows after `day` a repost of them is queued in `reposts`.
    async fn open_bin(
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        (item, warehouse): (&str, &str),
        rule: ItemRule,
        day: i64,
        reposts: &mut Vec<Work>,
    ) -> Result<(Bin, bool), RepoError> {
        let cached = bins::load(conn, scope, item, warehouse)
            .await?
            .filter(|c| c.method == Some(rule.method) && c.last_day <= day);
        if let Some(cached) = cached {
            return Ok((
                Bin::restore(rule.method, rule.allow_negative, cached.state),
                true,
            ));
        }
        // Later movements of the bin are revalued once this entry is written.
        let later = ledger::later_rows(conn, scope, item, warehouse, day, None).await?;
        if later {
            reposts.push(Work {
                item: item.to_owned(),
                warehouse: warehouse.to_owned(),
                after: (day, i64::MAX),
                carried: HashMap::new(),
            });
        }
        let bin = ledger::load_bin(
            conn,
            scope,
            item,
            warehouse,
            (rule.method, rule.allow_negative),
            Some(day),
        )
        .await?;
        Ok((bin, !later))
    }

    async fn submit(
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        kind: &'static VoucherKind,
        doc: &Map<String, Value>,
    ) -> Result<(), RepoError> {
        let facts = entry_facts(conn, scope, kind, doc).await?;
        let id = str_of(doc.get("id")).unwrap_or_default().to_owned();
        let name = str_of(doc.get("name")).unwrap_or(&id).to_owned();
        let mut items: Vec<&str> = facts.items.keys().map(String::as_str).collect();
        items.sort_unstable();
        lock_items(conn, scope, &items).await?;
        let negative: HashMap<String, bool> = facts
            .items
            .iter()
            .map(|(item, rule)| (item.clone(), rule.allow_negative))
            .collect();
        tracking::check_batch_stock(conn, scope, &facts.lines, &negative).await?;
        tracking::move_serials(conn, scope, &id, &facts.lines, false).await?;
        let mut bins: HashMap<(String, String), Bin> = HashMap::new();
        // The bins this entry is the latest movement of, and their company: their state
        // after it is cached. The others are reposted, which caches theirs.
        let mut latest: HashMap<(String, String), String> = HashMap::new();
        let mut reposts = Vec::new();
        let mut rows = Vec::new();
        let mut postings = Vec::new();
        let expense = facts.expense_account.clone().unwrap_or_default();
        // A manufacture consumes first: what it produces is valued at that cost.
        let mut order: Vec<usize> = (0..facts.lines.len()).collect();
        order.sort_by_key(|&i| facts.lines.get(i).is_some_and(|l| l.source.is_none()));
        let mut lines = facts.lines.clone();
        let mut consumed: i64 = 0;
        let mut shared = false;
        for i in order {
            if facts.purpose == Purpose::Manufacture
                && !shared
                && lines.get(i).is_some_and(|l| l.source.is_none())
            {
                shared = true;
                let produced: Vec<usize> = (0..lines.len())
                    .filter(|&k| lines[k].source.is_none())
                    .collect();
                let weights: Vec<i64> = produced.iter().map(|&k| lines[k].qty).collect();
                for (k, share) in produced.into_iter().zip(shares(consumed, &weights)) {
                    lines[k].value = Some(share);
                }
            }
            let Some(line) = lines.get(i) else {
                continue;
            };
            let i = line.index;
            let Some(rule) = facts.items.get(&line.item).copied() else {
                continue;
            };
            // The source goes first: a transfer brings in what the source gave.
            let mut moved = None;
            for (warehouse, outgoing) in [(&line.source, true), (&line.target, false)] {
                let Some(warehouse) = warehouse else { continue };
                let key = (line.item.clone(), warehouse.clone());
                if !bins.contains_key(&key) {
                    let bin = Self::open_bin(
                        conn,
                        scope,
                        (&line.item, warehouse),
                        rule,
                        facts.day,
                        &mut reposts,
                    )
                    .await?;
                    if bin.1 {
                        latest.insert(key.clone(), facts.company.clone());
                    }
                    bins.insert(key.clone(), bin.0);
                }
                let Some(bin) = bins.get_mut(&key) else {
                    continue;
                };
                let movement = if outgoing {
                    Movement::Issue { qty: line.qty }
                } else if let Some(value) = moved {
                    Movement::Receipt {
                        qty: line.qty,
                        value,
                    }
                } else if let Some(value) = line.value {
                    Movement::Receipt {
                        qty: line.qty,
                        value,
                    }
                } else {
                    Movement::receipt_at_rate(line.qty, line.rate).ok_or_else(|| {
                        invalid(
                            format!("/lines/{i}/basic_rate"),
                            "overflow",
                            "the line's value overflows",
                        )
                    })?
                };
                let out = bin.apply(movement).map_err(|e| match e {
                    ValuationError::NegativeStock { held, wanted } => invalid(
                        format!("/lines/{i}/qty"),
                        "negative_stock",
                        format!(
                            "only {} is in stock in the warehouse on {}, less than {}",
                            format_scaled(held, 3),
                            facts.posting_date,
                            format_scaled(wanted, 3)
                        ),
                    ),
                    other => invalid(format!("/lines/{i}/qty"), "overflow", other.to_string()),
                })?;
                if outgoing {
                    moved = Some(-out.value_change);
                    consumed = consumed.saturating_sub(out.value_change);
                }
                let incoming_rate = match movement {
                    Movement::Receipt { qty, value } => {
                        div_round(i128::from(value) * i128::from(QTY_SCALE), i128::from(qty))
                            .unwrap_or(0)
                    }
                    Movement::Issue { .. } => 0,
                };
                rows.push(LedgerRow {
                    company: facts.company.clone(),
                    item: line.item.clone(),
                    warehouse: warehouse.clone(),
                    posting_date: facts.posting_date.clone(),
                    day: facts.day,
                    voucher_type: kind.voucher_type.into(),
                    batch: line.batch.clone(),
                    voucher_id: id.clone(),
                    voucher_line: i64::try_from(i).unwrap_or(i64::MAX),
                    is_reversal: false,
                    adjusts: None,
                    qty_change: if outgoing { -line.qty } else { line.qty },
                    incoming_rate,
                    valuation_rate: out.valuation_rate,
                    qty_after: out.qty_after,
                    stock_value_after: out.stock_value_after,
                    stock_value_change: out.value_change,
                });
            }
            let account = |w: &Option<String>| {
                w.as_ref()
                    .and_then(|w| facts.stock_accounts.get(w))
                    .cloned()
                    .unwrap_or_default()
            };
            let (source, target) = (account(&line.source), account(&line.target));
            let value = moved.unwrap_or_else(|| {
                rows.last()
                    .map(|r: &LedgerRow| r.stock_value_change)
                    .unwrap_or(0)
            });
            postings.extend(line_postings(
                kind,
                facts.purpose,
                i,
                (&source, &target, &expense),
                value,
                &format!("{name} line {}", i + 1),
            ));
        }
        if !postings.is_empty() {
            let posting = DocumentPosting {
                entry_type: kind.voucher_type,
                name: kind.journal_name(&name),
                company: facts.company.clone(),
                posting_date: facts.posting_date.clone(),
                currency: facts.currency.clone(),
                exchange_rate: None,
                lines: postings,
            };
            let entry = post_document(conn, scope, &posting).await?;
            let mut sql = Sql::default();
            let tenant = sql.arg(text_arg(scope.tenant()));
            let row = sql.arg(text_arg(&id));
            let e = sql.arg(text_arg(&entry));
            sql.text = format!(
                "UPDATE {} SET {} = {e} WHERE tenant_id = {tenant} AND id = {row}",
                kind.entity, kind.journal_field
            );
            conn.execute(&sql).await?;
        }
        ledger::append(conn, scope, &rows, &civil_now()).await?;
        let stock_qty: Vec<i64> = facts.lines.iter().map(|l| l.qty).collect();
        orders::apply(conn, scope, kind, doc, &stock_qty, 1).await?;
        for ((item, warehouse), company) in &latest {
            let (Some(bin), Some(rule)) = (
                bins.get(&(item.clone(), warehouse.clone())),
                facts.items.get(item),
            ) else {
                continue;
            };
            bins::store(
                conn,
                scope,
                (item, warehouse, company),
                rule.method,
                facts.day,
                bin,
            )
            .await?;
        }
        if !reposts.is_empty() {
            let changed = repost::run(conn, scope, &facts.items, reposts, &id).await?;
            for voucher in changed {
                repost::repost_postings(conn, scope, &voucher).await?;
            }
        }
        Ok(())
    }

    async fn cancel(
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        kind: &'static VoucherKind,
        doc: &Map<String, Value>,
    ) -> Result<(), RepoError> {
        let id = str_of(doc.get("id")).unwrap_or_default();
        if ledger::reversed(conn, scope, id).await? {
            return Ok(());
        }
        let rows = ledger::voucher_rows(conn, scope, id).await?;
        // What each line moved, in stock units, goes back to the order line it named.
        let count = doc
            .get("lines")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let mut moved = vec![0; count];
        for (_, row) in &rows {
            if let Some(qty) = usize::try_from(row.voucher_line)
                .ok()
                .and_then(|i| moved.get_mut(i))
            {
                *qty = row.qty_change.abs();
            }
        }
        orders::apply(conn, scope, kind, doc, &moved, -1).await?;
        // Serial numbers go back to where they were.
        let lines = if kind.fixed_purpose().is_some() {
            voucher::note_lines(kind, doc, None).map(|(_, l)| l)
        } else {
            shape(doc, None).map(|(_, l)| l)
        };
        if let Ok(lines) = lines {
            tracking::move_serials(conn, scope, id, &lines, true).await?;
        }
        let mut items: Vec<&str> = rows.iter().map(|(_, r)| r.item.as_str()).collect();
        items.sort_unstable();
        items.dedup();
        lock_items(conn, scope, &items).await?;
        let reversals: Vec<LedgerRow> = rows
            .iter()
            .rev()
            .map(|(_, r)| ledger::reversal_of(r))
            .collect();
        ledger::append(conn, scope, &reversals, &civil_now()).await?;
        if let Some(entry) = str_of(doc.get(kind.journal_field)) {
            let company = str_of(doc.get("company")).unwrap_or_default();
            reverse_document(conn, scope, entry, company).await?;
        }
        // Later movements of its bins are revalued without it.
        let mut work: Vec<Work> = Vec::new();
        for (seq, row) in &rows {
            if !work
                .iter()
                .any(|w| w.item == row.item && w.warehouse == row.warehouse)
            {
                work.push(Work {
                    item: row.item.clone(),
                    warehouse: row.warehouse.clone(),
                    after: (row.day, seq - 1),
                    carried: HashMap::new(),
                });
            }
        }
        let rules = item_rules(conn, scope, &items).await?;
        let changed = repost::run(conn, scope, &rules, work, id).await?;
        for voucher in changed {
            repost::repost_postings(conn, scope, &voucher).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl TransactionHook for StockPosting {
    fn entity(&self) -> &str {
        self.kind.entity
    }

    async fn run(
        &self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        event: EntityEvent,
        doc: &Map<String, Value>,
    ) -> Result<(), RepoError> {
        if !self.kind.moves_stock(doc) {
            return Ok(());
        }
        match event {
            EntityEvent::OnSubmit => Self::submit(conn, scope, self.kind, doc).await,
            EntityEvent::OnCancel => Self::cancel(conn, scope, self.kind, doc).await,
            _ => Ok(()),
        }
    }
}

/// Registers each stock voucher's validate hook and its posting.
pub fn register(cx: &mut RegisterContext<'_>, repository: &TradeRepository) {
    for kind in voucher::KINDS {
        let repository = repository.clone();
        cx.services.contribute(Arc::new(EntityHook {
            module: "stock".into(),
            name: kind.entity.into(),
            entity: kind.entity.into(),
            event: EntityEvent::Validate,
            run: Arc::new(move |input: HookInput| {
                let repository = repository.clone();
                Box::pin(async move { validate(&repository, kind, input).await })
            }),
        }));
        cx.services.contribute::<dyn TransactionHook>(
            Arc::new(StockPosting { kind }) as Arc<dyn TransactionHook>
        );
    }
}
