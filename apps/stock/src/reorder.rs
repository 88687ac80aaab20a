//! Reorder levels and the reorder job.
//!
//! - `reorder_level` (per item and leaf warehouse): its checks, as a validate hook
//!   (`/item` a stock item, `/warehouse` a leaf warehouse not disabled, `/company` the
//!   warehouse's and filled in from it, `/level` zero or more, `/reorder_qty` more than
//!   zero, `/supplier` of the same company and not disabled, one per item and warehouse);
//! - [`below_reorder`]: the reorder levels whose warehouse holds (by the stock ledger)
//!   no more than `level`, with what is on open purchase orders for the item;
//! - the reorder job (`stock.reorder`, on the `stock.reorder_cron` schedule, daily by
//!   default) and `POST /api/v1/stock/reorder/run`: per tenant, one draft purchase order
//!   per company and supplier for the levels below that name a supplier, each line the
//!   level's `reorder_qty`, created through the repository as the system (so validated
//!   and audited like any order). A draft is remembered per item and warehouse
//!   (`stock_reorder_draft`), and an item and warehouse whose remembered order is still
//!   open (draft or submitted, not deleted, cancelled or fully billed) is skipped: a run
//!   after a run drafts nothing new. Runs in one process take turns; two processes
//!   running at the same moment, or a crash between drafting an order and remembering
//!   it, can still draft an order twice (the order is a draft, for a person to check).
//!
//! Purchase orders (the buying app) carry no warehouse: the quantity on order is counted
//! per item and company. The buying app is optional: without it the report shows no
//! quantity on order and the run refuses.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::{Extension, Json};
use prefiq::{Context, ErrorKind, KernelError, Migration, RegisterContext};
use prefiq_data::entity::repo::{
    EntityEvent, EntityHook, FieldError, HookInput, RepoError, Repository, TenantScope,
};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};
use prefiq_data::entity::value::{civil_now, currency_scale, format_scaled, parse_scaled};
use prefiq_http::{HttpState, Problem};
use prefiq_worker::{CatchUp, JobHandler, JobInput, Schedule};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use trade::TradeRepository;

use crate::reports;
use crate::rows::{invalid, rows_by_id, str_of, text_arg, truthy};

/// Running the reorder on demand.
pub const RUN_REORDER: &str = "stock.run_reorder";

/// The reorder job's kind.
pub const REORDER_JOB: &str = "stock.reorder";

/// The entity of purchase orders (the buying app's).
pub const PURCHASE_ORDER: &str = "purchase_order";

/// What the reorder job writes on the orders it drafts.
pub const REMARK: &str = "Drafted by the stock reorder job: items at or below their reorder level.";

/// The migration that makes `stock_reorder_draft`.
pub fn migration() -> Migration {
    Migration::per_backend(
        "0005_stock_reorder_drafts",
        include_str!("reorder_sqlite.sql"),
        include_str!("reorder_postgres.sql"),
    )
}

/// The `stock` config section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StockConfig {
    /// When the reorder job runs (cron, in the application's time zone); daily by
    /// default.
    pub reorder_cron: String,
}

impl Default for StockConfig {
    fn default() -> Self {
        StockConfig {
            reorder_cron: "40 2 * * *".into(),
        }
    }
}

fn quantity(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::String(q)) => parse_scaled(q, 3).ok(),
        Some(Value::Number(n)) => parse_scaled(&n.to_string(), 3).ok(),
        _ => None,
    }
}

fn text(r: &[Cell], i: usize) -> String {
    match r.get(i) {
        Some(Cell::Text(t)) => t.clone(),
        _ => String::new(),
    }
}

fn int(r: &[Cell], i: usize) -> i64 {
    r.get(i).and_then(Cell::as_int).unwrap_or(0)
}

/// The reorder level's checks; answers the document with its company filled in.
pub(crate) async fn check_level(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    doc: &Map<String, Value>,
) -> Result<Map<String, Value>, RepoError> {
    let mut errors: Vec<FieldError> = Vec::new();
    macro_rules! refuse {
        ($pointer:expr, $code:expr, $message:expr $(,)?) => {
            errors.push(FieldError {
                pointer: $pointer.into(),
                code: $code,
                message: $message.into(),
            })
        };
    }
    let mut doc = doc.clone();
    if let Some(item) = str_of(doc.get("item")) {
        let items =
            rows_by_id(conn, scope, "item", &["is_stock_item", "disabled"], &[item]).await?;
        match items.get(item) {
            None => refuse!("/item", "unknown", "there is no such item"),
            Some(row) => {
                let is_stock = row.first().cloned().flatten();
                if is_stock.is_some() && !truthy(is_stock.as_deref())
                    || truthy(row.get(1).cloned().flatten().as_deref())
                {
                    refuse!(
                        "/item",
                        "not_stock_item",
                        "the item is not a stock item, or is disabled",
                    );
                }
            }
        }
    }
    let mut company = None;
    if let Some(warehouse) = str_of(doc.get("warehouse")) {
        let rows = rows_by_id(
            conn,
            scope,
            "warehouse",
            &["company", "is_group", "disabled"],
            &[warehouse],
        )
        .await?;
        match rows.get(warehouse) {
            None => refuse!("/warehouse", "unknown", "there is no such warehouse"),
            Some(row) if truthy(row.get(1).cloned().flatten().as_deref()) => refuse!(
                "/warehouse",
                "group",
                "a group warehouse holds no stock; name a leaf",
            ),
            Some(row) if truthy(row.get(2).cloned().flatten().as_deref()) => {
                refuse!("/warehouse", "disabled", "the warehouse is disabled")
            }
            Some(row) => company = row.first().cloned().flatten(),
        }
    }
    if let Some(company) = &company {
        match str_of(doc.get("company")) {
            Some(given) if given != company => refuse!(
                "/company",
                "other_company",
                "the company is the warehouse's; leave it empty",
            ),
            _ => {
                doc.insert("company".into(), Value::String(company.clone()));
            }
        }
    }
    match doc.get("level").filter(|v| !v.is_null()) {
        None => {}
        Some(v) if quantity(Some(v)).is_some_and(|q| q >= 0) => {}
        Some(_) => refuse!(
            "/level",
            "wrong_type",
            "a level is zero or more, with at most 3 decimals",
        ),
    }
    match doc.get("reorder_qty").filter(|v| !v.is_null()) {
        None => {}
        Some(v) if quantity(Some(v)).is_some_and(|q| q > 0) => {}
        Some(_) => refuse!(
            "/reorder_qty",
            "wrong_type",
            "a reorder quantity is more than zero, with at most 3 decimals",
        ),
    }
    if let Some(supplier) = str_of(doc.get("supplier")) {
        let rows = rows_by_id(
            conn,
            scope,
            "supplier",
            &["company", "disabled"],
            &[supplier],
        )
        .await?;
        match rows.get(supplier) {
            None => refuse!("/supplier", "unknown", "there is no such supplier"),
            Some(row) if company.is_some() && row.first().cloned().flatten() != company => {
                refuse!(
                    "/supplier",
                    "other_company",
                    "the supplier belongs to another company",
                )
            }
            Some(row) if truthy(row.get(1).cloned().flatten().as_deref()) => {
                refuse!("/supplier", "disabled", "the supplier is disabled")
            }
            Some(_) => {}
        }
    }
    if let (Some(item), Some(warehouse)) = (str_of(doc.get("item")), str_of(doc.get("warehouse")))
        && errors.is_empty()
    {
        let mut sql = Sql::default();
        let tenant = sql.arg(text_arg(scope.tenant()));
        let i = sql.arg(text_arg(item));
        let w = sql.arg(text_arg(warehouse));
        let me = sql.arg(text_arg(str_of(doc.get("id")).unwrap_or_default()));
        sql.text = format!(
            "SELECT id FROM reorder_level WHERE tenant_id = {tenant} AND item = {i} AND warehouse = {w} AND id <> {me} AND deleted_at IS NULL LIMIT 1"
        );
        if !conn.fetch(&sql, &[SqlType::Text]).await?.is_empty() {
            refuse!(
                "/warehouse",
                "duplicate",
                "the item has a reorder level in this warehouse already",
            );
        }
    }
    if errors.is_empty() {
        Ok(doc)
    } else {
        Err(RepoError::Invalid(errors))
    }
}

/// Registers the reorder level's check.
pub fn register(cx: &mut RegisterContext<'_>, repository: &TradeRepository) {
    let repository = repository.clone();
    cx.services.contribute(Arc::new(EntityHook {
        module: "stock".into(),
        name: "reorder_level".into(),
        entity: "reorder_level".into(),
        event: EntityEvent::Validate,
        run: Arc::new(move |input: HookInput| {
            let repository = repository.clone();
            Box::pin(async move {
                let repository = repository.get()?;
                let scope = input.scope.clone();
                let doc = input.doc.clone();
                repository
                    .read(
                        &input.scope,
                        Box::new(move |conn| {
                            let (scope, doc) = (scope.clone(), doc.clone());
                            Box::pin(async move { check_level(conn, &scope, &doc).await })
                        }),
                    )
                    .await
                    .map_err(|e| match e {
                        // The first refusal, as `pointer: message` (the hook's answer).
                        RepoError::Invalid(errors) => errors
                            .first()
                            .map(|e| format!("{}: {}", e.pointer, e.message))
                            .unwrap_or_default(),
                        other => other.to_string(),
                    })
            })
        }),
    }));
}

/// A reorder level at or below its level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Below {
    /// The reorder level's id.
    pub id: String,
    /// The item.
    pub item: String,
    /// The warehouse.
    pub warehouse: String,
    /// The company.
    pub company: String,
    /// Thousandths held now.
    pub held: i64,
    /// The level, thousandths.
    pub level: i64,
    /// The quantity to order, thousandths.
    pub reorder_qty: i64,
    /// Who to order from.
    pub supplier: Option<String>,
}

/// The reorder levels (of `company` and `warehouse` when given) whose warehouse holds,
/// by the stock ledger, no more than their level; in no particular order. Levels of a
/// disabled (or deleted) item or warehouse are left out.
pub async fn below_reorder(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: Option<&str>,
    warehouse: Option<&str>,
) -> Result<Vec<Below>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let mut filters = String::new();
    for (column, value) in [("r.company", company), ("r.warehouse", warehouse)] {
        if let Some(value) = value {
            let v = sql.arg(text_arg(value));
            filters.push_str(&format!(" AND {column} = {v}"));
        }
    }
    // The quantity held is the sum of every row's change: a cancelled voucher's rows and
    // their reversals cancel out, repost rows move no quantity.
    sql.text = format!(
        "SELECT r.id, r.item, r.warehouse, r.company, CAST(COALESCE(r.level, 0) AS BIGINT), CAST(COALESCE(r.reorder_qty, 0) AS BIGINT), r.supplier, CAST(COALESCE((SELECT SUM(e.qty_change) FROM stock_ledger_entry e WHERE e.tenant_id = r.tenant_id AND e.item = r.item AND e.warehouse = r.warehouse), 0) AS BIGINT) FROM reorder_level r WHERE r.tenant_id = {tenant} AND r.deleted_at IS NULL{filters} AND EXISTS (SELECT 1 FROM item i WHERE i.tenant_id = r.tenant_id AND i.id = r.item AND i.deleted_at IS NULL AND COALESCE(CAST(i.disabled AS INTEGER), 0) = 0) AND EXISTS (SELECT 1 FROM warehouse w WHERE w.tenant_id = r.tenant_id AND w.id = r.warehouse AND w.deleted_at IS NULL AND COALESCE(CAST(w.disabled AS INTEGER), 0) = 0)"
    );
    use SqlType::{Int, Text};
    let rows = conn
        .fetch(&sql, &[Text, Text, Text, Text, Int, Int, Text, Int])
        .await?;
    Ok(rows
        .iter()
        .map(|r| Below {
            id: text(r, 0),
            item: text(r, 1),
            warehouse: text(r, 2),
            company: text(r, 3),
            level: int(r, 4),
            reorder_qty: int(r, 5),
            supplier: Some(text(r, 6)).filter(|s| !s.is_empty()),
            held: int(r, 7),
        })
        .filter(|b| b.held <= b.level)
        .collect())
}

/// What is on open purchase orders (draft or submitted) per item and company: each
/// line's quantity less what purchase receipts received of it. Empty without the buying
/// app.
pub async fn on_order(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    has_orders: bool,
) -> Result<HashMap<(String, String), i64>, RepoError> {
    if !has_orders {
        return Ok(HashMap::new());
    }
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    sql.text = format!(
        "SELECT l.item, p.company, CAST(SUM(CASE WHEN l.qty > COALESCE(l.received_qty, 0) THEN l.qty - COALESCE(l.received_qty, 0) ELSE 0 END) AS BIGINT) FROM purchase_order_line l JOIN purchase_order p ON p.tenant_id = l.tenant_id AND p.id = l.parent_id WHERE l.tenant_id = {tenant} AND p.deleted_at IS NULL AND p.docstatus IN (0, 1) GROUP BY l.item, p.company"
    );
    let rows = conn
        .fetch(&sql, &[SqlType::Text, SqlType::Text, SqlType::Int])
        .await?;
    Ok(rows
        .iter()
        .map(|r| ((text(r, 0), text(r, 1)), int(r, 2).max(0)))
        .collect())
}

/// The columns of the below-reorder report's CSV.
pub const BELOW_FIELDS: &[&str] = &[
    "reorder_level",
    "item",
    "item_code",
    "item_name",
    "warehouse",
    "warehouse_name",
    "company",
    "qty",
    "level",
    "reorder_qty",
    "on_order_qty",
    "supplier",
    "supplier_name",
];

/// The below-reorder report: the reorder levels at or below, by item code and warehouse
/// name.
pub async fn below_reorder_report(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: Option<&str>,
    warehouse: Option<&str>,
    has_orders: bool,
) -> Result<Value, RepoError> {
    let company = match company {
        None => None,
        Some(c) => match accounting::ledger::load_company(conn, scope, c).await? {
            Some(found) => Some(found.id),
            None => {
                return Err(invalid(
                    "/company",
                    "unknown",
                    format!("there is no company `{c}`"),
                ));
            }
        },
    };
    if let Some(w) = warehouse
        && rows_by_id(conn, scope, "warehouse", &["company"], &[w])
            .await?
            .is_empty()
    {
        return Err(invalid(
            "/warehouse",
            "unknown",
            format!("there is no warehouse `{w}`"),
        ));
    }
    let below = below_reorder(conn, scope, company.as_deref(), warehouse).await?;
    let ordered = on_order(conn, scope, has_orders).await?;
    let ids = |f: fn(&Below) -> Option<&str>| -> Vec<&str> {
        below
            .iter()
            .filter_map(f)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect()
    };
    let items = rows_by_id(
        conn,
        scope,
        "item",
        &["item_code", "item_name"],
        &ids(|b| Some(b.item.as_str())),
    )
    .await?;
    let warehouses = rows_by_id(
        conn,
        scope,
        "warehouse",
        &["warehouse_name"],
        &ids(|b| Some(b.warehouse.as_str())),
    )
    .await?;
    let suppliers = rows_by_id(
        conn,
        scope,
        "supplier",
        &["supplier_name"],
        &ids(|b| b.supplier.as_deref()),
    )
    .await?;
    let cell = |map: &HashMap<String, Vec<Option<String>>>, id: &str, k: usize| {
        map.get(id)
            .and_then(|r| r.get(k).cloned().flatten())
            .unwrap_or_default()
    };
    let mut rows: Vec<(String, String, Value)> = below
        .iter()
        .map(|b| {
            let supplier = b.supplier.clone().unwrap_or_default();
            let on_order = ordered
                .get(&(b.item.clone(), b.company.clone()))
                .copied()
                .unwrap_or(0);
            (
                cell(&items, &b.item, 0),
                cell(&warehouses, &b.warehouse, 0),
                json!({
                    "reorder_level": b.id,
                    "item": b.item,
                    "item_code": cell(&items, &b.item, 0),
                    "item_name": cell(&items, &b.item, 1),
                    "warehouse": b.warehouse,
                    "warehouse_name": cell(&warehouses, &b.warehouse, 0),
                    "company": b.company,
                    "qty": format_scaled(b.held, 3),
                    "level": format_scaled(b.level, 3),
                    "reorder_qty": format_scaled(b.reorder_qty, 3),
                    "on_order_qty": format_scaled(on_order, 3),
                    "supplier": b.supplier,
                    "supplier_name": cell(&suppliers, &supplier, 0),
                }),
            )
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(json!({
        "company": company,
        "warehouse": warehouse,
        "rows": rows.into_iter().map(|r| r.2).collect::<Vec<_>>(),
    }))
}

/// The item and warehouse pairs an open order the job drafted covers.
async fn covered(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
) -> Result<HashSet<(String, String)>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    sql.text = format!(
        "SELECT DISTINCT d.item, d.warehouse FROM stock_reorder_draft d JOIN purchase_order p ON p.tenant_id = d.tenant_id AND p.id = d.purchase_order WHERE d.tenant_id = {tenant} AND p.deleted_at IS NULL AND p.docstatus IN (0, 1) AND COALESCE(p.billing_status, '') <> 'Fully Billed'"
    );
    let rows = conn.fetch(&sql, &[SqlType::Text, SqlType::Text]).await?;
    Ok(rows.iter().map(|r| (text(r, 0), text(r, 1))).collect())
}

/// The latest incoming rate (minor units per unit) of an item in a warehouse, from the
/// bin's index; zero when nothing came in.
async fn last_rate(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    item: &str,
    warehouse: &str,
) -> Result<i64, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let i = sql.arg(text_arg(item));
    let w = sql.arg(text_arg(warehouse));
    sql.text = format!(
        "SELECT incoming_rate FROM stock_ledger_entry WHERE tenant_id = {tenant} AND item = {i} AND warehouse = {w} AND incoming_rate > 0 AND is_reversal = 0 AND adjusts IS NULL ORDER BY day DESC, seq DESC LIMIT 1"
    );
    let rows = conn.fetch(&sql, &[SqlType::Int]).await?;
    Ok(rows.first().map_or(0, |r| int(r, 0)))
}

/// What a run found to draft: per company and supplier, its lines.
struct Plan {
    /// (company, supplier) → the levels to order, with the company's currency and each
    /// line's rate.
    orders: BTreeMap<(String, String), Vec<(Below, i64)>>,
    currencies: HashMap<String, String>,
    warehouse_names: HashMap<String, String>,
}

async fn plan(conn: &mut Conn<'_>, scope: &TenantScope) -> Result<Plan, RepoError> {
    let below = below_reorder(conn, scope, None, None).await?;
    let covered = covered(conn, scope).await?;
    let mut orders: BTreeMap<(String, String), Vec<(Below, i64)>> = BTreeMap::new();
    for b in below {
        let Some(supplier) = b.supplier.clone() else {
            continue;
        };
        if b.reorder_qty <= 0 || covered.contains(&(b.item.clone(), b.warehouse.clone())) {
            continue;
        }
        let rate = last_rate(conn, scope, &b.item, &b.warehouse).await?;
        orders
            .entry((b.company.clone(), supplier))
            .or_default()
            .push((b, rate));
    }
    for lines in orders.values_mut() {
        lines.sort_by(|a, b| (&a.0.item, &a.0.warehouse).cmp(&(&b.0.item, &b.0.warehouse)));
    }
    let mut currencies = HashMap::new();
    for (company, _) in orders.keys() {
        if !currencies.contains_key(company)
            && let Some(found) = accounting::ledger::load_company(conn, scope, company).await?
        {
            currencies.insert(company.clone(), found.base_currency);
        }
    }
    let warehouse_ids: Vec<&str> = orders
        .values()
        .flatten()
        .map(|(b, _)| b.warehouse.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let warehouse_names = rows_by_id(
        conn,
        scope,
        "warehouse",
        &["warehouse_name"],
        &warehouse_ids,
    )
    .await?
    .into_iter()
    .map(|(id, r)| (id, r.into_iter().next().flatten().unwrap_or_default()))
    .collect();
    Ok(Plan {
        orders,
        currencies,
        warehouse_names,
    })
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// The ids of the purchase orders drafted.
    pub drafted: Vec<String>,
    /// The (company, supplier) pairs whose order could not be drafted, and why.
    pub skipped: Vec<(String, String, String)>,
}

/// Whether the buying app's purchase orders are installed.
pub fn has_orders(repository: &Repository) -> bool {
    repository.registry().get(PURCHASE_ORDER).is_some()
}

/// Held while a run plans, drafts and remembers.
static RUNNING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs the reorder for the scope's tenant: drafts, as the system, one purchase order per
/// company and supplier for the levels below that name a supplier and are not on an open
/// order the job drafted already.
pub async fn run(repository: &Repository, tenant: &str) -> Result<RunOutcome, RepoError> {
    let scope = TenantScope::new(&Context::system("en").with_tenant(tenant))?;
    if !has_orders(repository) {
        return Err(invalid(
            "/",
            "no_purchase_orders",
            "purchase orders are the buying app's, which is not installed",
        ));
    }
    // One run at a time in this process, so two runs (the schedule's and one on demand)
    // do not both draft what neither has remembered yet.
    let _running = RUNNING.lock().await;
    let s = scope.clone();
    let plan = repository
        .read(
            &scope,
            Box::new(move |conn| {
                let s = s.clone();
                Box::pin(async move { plan(conn, &s).await })
            }),
        )
        .await?;
    let today = jiff::Zoned::now().date().to_string();
    let mut outcome = RunOutcome::default();
    for ((company, supplier), lines) in plan.orders {
        let Some(currency) = plan.currencies.get(&company) else {
            continue;
        };
        let scale = currency_scale(currency);
        let body = json!({
            "supplier": supplier,
            "company": company,
            "posting_date": today,
            "currency": currency,
            "remarks": REMARK,
            "lines": lines.iter().map(|(b, rate)| json!({
                "item": b.item,
                "qty": format_scaled(b.reorder_qty, 3),
                "unit_price": {"amount": format_scaled(*rate, scale), "currency": currency},
                "description": format!(
                    "Reorder for {}",
                    plan.warehouse_names.get(&b.warehouse).map_or(b.warehouse.as_str(), String::as_str)
                ),
            })).collect::<Vec<_>>(),
        });
        let created = match repository.create(&scope, PURCHASE_ORDER, body).await {
            Ok(created) => created,
            Err(e @ (RepoError::Invalid(_) | RepoError::Rejected { .. })) => {
                tracing::warn!(target: "stock::reorder", tenant, company, supplier, error = %e, "a reorder purchase order was refused");
                outcome.skipped.push((company, supplier, e.to_string()));
                continue;
            }
            Err(e) => return Err(e),
        };
        let id = str_of(created.get("id")).unwrap_or_default().to_owned();
        let (s, order) = (scope.clone(), id.clone());
        let drafts: Vec<(String, String, i64)> = lines
            .iter()
            .map(|(b, _)| (b.item.clone(), b.warehouse.clone(), b.reorder_qty))
            .collect();
        let (c, p) = (company.clone(), supplier.clone());
        repository
            .in_transaction(
                &scope,
                Box::new(move |conn| {
                    let (s, order, drafts, c, p) = (
                        s.clone(),
                        order.clone(),
                        drafts.clone(),
                        c.clone(),
                        p.clone(),
                    );
                    Box::pin(async move { remember(conn, &s, &order, &c, &p, &drafts).await })
                }),
            )
            .await?;
        outcome.drafted.push(id);
    }
    Ok(outcome)
}

/// Remembers the item and warehouse pairs a drafted order covers.
async fn remember(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    order: &str,
    company: &str,
    supplier: &str,
    drafts: &[(String, String, i64)],
) -> Result<(), RepoError> {
    if drafts.is_empty() {
        return Ok(());
    }
    let now = civil_now();
    let mut sql = Sql::default();
    let mut values = Vec::with_capacity(drafts.len());
    for (item, warehouse, qty) in drafts {
        let cells = [
            sql.arg(text_arg(scope.tenant())),
            sql.arg(text_arg(order)),
            sql.arg(text_arg(company)),
            sql.arg(text_arg(supplier)),
            sql.arg(text_arg(item)),
            sql.arg(text_arg(warehouse)),
            sql.arg(Arg::Int(Some(*qty))),
            sql.arg(text_arg(&now)),
        ];
        values.push(format!("({})", cells.join(", ")));
    }
    sql.text = format!(
        "INSERT INTO stock_reorder_draft (tenant_id, purchase_order, company, supplier, item, warehouse, qty, created_at) VALUES {}",
        values.join(", ")
    );
    conn.execute(&sql).await?;
    Ok(())
}

/// The reorder job: for its tenant, or every active tenant when it has none (a declared
/// schedule's runs).
pub struct ReorderJob {
    /// The repository (bound at boot).
    pub repository: TradeRepository,
    /// Who knows the tenants (bound at boot).
    pub identity: Arc<std::sync::OnceLock<Arc<cortex::identity::Identity>>>,
}

#[prefiq::async_trait]
impl JobHandler for ReorderJob {
    fn kind(&self) -> &str {
        REORDER_JOB
    }

    async fn run(&self, job: &JobInput) -> Result<(), String> {
        let repository = self.repository.get()?;
        if !has_orders(repository) {
            tracing::info!(target: "stock::reorder", "no purchase orders installed: nothing to reorder");
            return Ok(());
        }
        let tenants = match job.context.tenant.clone().filter(|t| !t.is_empty()) {
            Some(tenant) => vec![tenant],
            None => self
                .identity
                .get()
                .ok_or("the reorder job runs after boot")?
                .tenants()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|t| t.status == "active")
                .map(|t| t.name)
                .collect(),
        };
        for tenant in tenants {
            let outcome = run(repository, &tenant)
                .await
                .map_err(|e| format!("tenant {tenant}: {e}"))?;
            tracing::info!(target: "stock::reorder", tenant, drafted = outcome.drafted.len(), skipped = outcome.skipped.len(), "reorder run");
        }
        Ok(())
    }
}

/// Registers the job and its schedule (`stock.reorder_cron`).
pub fn register_job(
    cx: &mut RegisterContext<'_>,
    repository: &TradeRepository,
    identity: &Arc<std::sync::OnceLock<Arc<cortex::identity::Identity>>>,
) -> Result<(), KernelError> {
    let config: StockConfig = cx
        .config
        .section("stock")
        .map_err(|e| KernelError::service(ErrorKind::Invalid, e.to_string()))?
        .unwrap_or_default();
    cx.services
        .contribute::<dyn JobHandler>(Arc::new(ReorderJob {
            repository: repository.clone(),
            identity: identity.clone(),
        }) as Arc<dyn JobHandler>);
    cx.services.contribute(Arc::new(Schedule {
        module: "stock".into(),
        name: "reorder".into(),
        cron: config.reorder_cron,
        timezone: None,
        kind: REORDER_JOB.into(),
        payload: json!({}),
        queue: "default".into(),
        catch_up: CatchUp::One,
        timeout_ms: None,
    }));
    Ok(())
}

/// `POST /api/v1/stock/reorder/run`: runs the reorder for the caller's tenant now.
pub async fn run_route(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
) -> Result<Json<Value>, Problem> {
    let scope = crate::reports::allowed(&state, &context, RUN_REORDER).await?;
    let repository = state
        .services
        .get::<Repository>("stock reorder")
        .map_err(Problem::from)?;
    let outcome = run(&repository, scope.tenant())
        .await
        .map_err(Problem::from)?;
    Ok(Json(json!({
        "purchase_orders": outcome.drafted,
        "skipped": outcome.skipped.iter().map(|(company, supplier, reason)| json!({
            "company": company, "supplier": supplier, "reason": reason,
        })).collect::<Vec<_>>(),
    })))
}

/// The below-reorder report's query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BelowQuery {
    company: Option<String>,
    warehouse: Option<String>,
    format: Option<String>,
}

/// `GET /api/v1/stock/reports/below-reorder`.
pub async fn below_reorder_route(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<BelowQuery>,
) -> Result<Response, Problem> {
    let scope = reports::allowed(&state, &context, reports::READ_REPORTS).await?;
    reports::check_format(query.format.as_deref())?;
    let repository = state
        .services
        .get::<Repository>("stock reports")
        .map_err(Problem::from)?;
    let orders = has_orders(&repository);
    let s = scope.clone();
    let filter = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    let (company, warehouse) = (filter(&query.company), filter(&query.warehouse));
    let report = repository
        .read(
            &scope,
            Box::new(move |conn| {
                let (s, company, warehouse) = (s.clone(), company.clone(), warehouse.clone());
                Box::pin(async move {
                    below_reorder_report(conn, &s, company.as_deref(), warehouse.as_deref(), orders)
                        .await
                })
            }),
        )
        .await
        .map_err(Problem::from)?;
    Ok(reports::answer(
        report,
        query.format.as_deref(),
        BELOW_FIELDS,
    ))
}
