//! Orders: what of each order line is invoiced (`billed_qty`), kept in the invoice's
//! submit and cancel transactions so that no invoice takes a line past its quantity, and
//! the order's `billing_status` that follows from it. A sales order checks the credit
//! limit on submit; an order with invoiced lines cannot be cancelled.

use std::sync::Arc;

use prefiq::{RegisterContext, async_trait};
use prefiq_data::entity::repo::{EntityEvent, RepoError, TenantScope, TransactionHook};
use prefiq_data::entity::sql::{Arg, Conn, Sql, SqlType};
use prefiq_data::entity::value::format_scaled;
use serde_json::{Map, Value};

use crate::TradeRepository;
use crate::credit::{Exposure, check_credit_limit};
use crate::figures::{self, DocumentSpec, InvoiceKind, Line, Stage, facts};
use crate::invoice::invoice_rate;
use crate::rows::{cell_text, invalid, str_of, text_arg};

/// The order entity of a kind of invoice.
pub fn order_entity(kind: InvoiceKind) -> &'static str {
    match kind {
        InvoiceKind::Sales => "sales_order",
        InvoiceKind::Purchase => "purchase_order",
    }
}

/// Adds `direction` times each line's quantity to the `billed_qty` of the order line it
/// invoices (1 on submit, -1 on cancel), refusing on submit a line of another party,
/// company, currency or item, of an order not submitted, or past what is left.
pub(crate) async fn bill(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: InvoiceKind,
    doc: &Map<String, Value>,
    lines: &[Line],
    direction: i64,
) -> Result<(), RepoError> {
    let order = order_entity(kind);
    let party = str_of(doc.get(kind.party())).unwrap_or_default();
    let company = str_of(doc.get("company")).unwrap_or_default();
    let currency = str_of(doc.get("currency")).unwrap_or_default();
    let mut orders = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(order_line) = &line.order_line else {
            continue;
        };
        let mut sql = Sql::default();
        let tenant = sql.arg(text_arg(scope.tenant()));
        let id = sql.arg(text_arg(order_line));
        let qty = sql.arg(Arg::Int(Some(direction * line.qty)));
        let (p, c, cur, item) = (
            sql.arg(text_arg(party)),
            sql.arg(text_arg(company)),
            sql.arg(text_arg(currency)),
            sql.arg(text_arg(&line.item)),
        );
        let guard = if direction > 0 {
            format!(
                " AND COALESCE(billed_qty, 0) + {qty} <= qty AND item = {item} AND parent_id IN (SELECT id FROM {order} WHERE tenant_id = {tenant} AND docstatus = 1 AND {} = {p} AND company = {c} AND currency = {cur} AND deleted_at IS NULL)",
                kind.party()
            )
        } else {
            String::new()
        };
        sql.text = format!(
            "UPDATE {order}_line SET billed_qty = COALESCE(billed_qty, 0) + {qty} WHERE tenant_id = {tenant} AND id = {id}{guard}"
        );
        if conn.execute(&sql).await? == 0 && direction > 0 {
            return Err(why_not_billed(conn, scope, kind, i, line, doc).await?);
        }
        orders.push(order_line.clone());
    }
    if !orders.is_empty() {
        set_billing_status(conn, scope, order, &orders).await?;
    }
    Ok(())
}

/// Why an order line could not take an invoice line: the refusal, with its pointer.
async fn why_not_billed(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    kind: InvoiceKind,
    i: usize,
    line: &Line,
    doc: &Map<String, Value>,
) -> Result<RepoError, RepoError> {
    let order = order_entity(kind);
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let id = sql.arg(text_arg(line.order_line.as_deref().unwrap_or_default()));
    sql.text = format!(
        "SELECT CAST(l.qty AS TEXT), CAST(l.billed_qty AS TEXT), l.item, CAST(o.docstatus AS TEXT), o.{}, o.company, o.currency FROM {order}_line l JOIN {order} o ON o.tenant_id = l.tenant_id AND o.id = l.parent_id WHERE l.tenant_id = {tenant} AND l.id = {id} AND o.deleted_at IS NULL",
        kind.party()
    );
    let rows = conn.fetch(&sql, &[SqlType::Text; 7]).await?;
    let pointer = format!("/lines/{i}/order_line");
    let Some(row) = rows.first() else {
        return Ok(invalid(
            pointer,
            "unknown",
            format!("there is no line of a {order} with this id"),
        ));
    };
    let text = |i: usize| cell_text(row, i).unwrap_or_default();
    let same = |field: &str, i: usize| str_of(doc.get(field)) == Some(text(i).as_str());
    if text(3) != "1" {
        return Ok(invalid(
            pointer,
            "not_submitted",
            format!("the {order} is not submitted"),
        ));
    }
    if !same(kind.party(), 4) || !same("company", 5) || !same("currency", 6) {
        return Ok(invalid(
            pointer,
            "other_party",
            format!(
                "the {order} is of another {}, company or currency",
                kind.party()
            ),
        ));
    }
    if text(2) != line.item {
        return Ok(invalid(
            format!("/lines/{i}/item"),
            "other_item",
            "the order line is of another item",
        ));
    }
    let qty = text(0).parse::<i64>().unwrap_or(0);
    let billed = text(1).parse::<i64>().unwrap_or(0);
    Ok(invalid(
        format!("/lines/{i}/qty"),
        "past_order",
        format!(
            "the order line has {} left to invoice, not {}",
            format_scaled(qty - billed, 3),
            format_scaled(line.qty, 3)
        ),
    ))
}

/// Sets `billing_status` of the orders of these order lines from their lines.
async fn set_billing_status(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    order: &str,
    order_lines: &[String],
) -> Result<(), RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let ids: Vec<String> = order_lines.iter().map(|l| sql.arg(text_arg(l))).collect();
    let line = format!("{order}_line");
    sql.text = format!(
        "UPDATE {order} SET billing_status = CASE \
         WHEN NOT EXISTS (SELECT 1 FROM {line} l WHERE l.tenant_id = {order}.tenant_id AND l.parent_id = {order}.id AND l.billed_qty > 0) THEN 'Not Billed' \
         WHEN EXISTS (SELECT 1 FROM {line} l WHERE l.tenant_id = {order}.tenant_id AND l.parent_id = {order}.id AND l.billed_qty < l.qty) THEN 'Partly Billed' \
         ELSE 'Fully Billed' END \
         WHERE tenant_id = {tenant} AND id IN (SELECT parent_id FROM {line} WHERE tenant_id = {tenant} AND id IN ({}))",
        ids.join(", ")
    );
    conn.execute(&sql).await?;
    Ok(())
}

/// An order's submit (the credit limit, for a sales order) and cancel (refused while
/// any of its lines is invoiced).
struct OrderHook {
    spec: DocumentSpec,
    services: TradeRepository,
}

#[async_trait]
impl TransactionHook for OrderHook {
    fn entity(&self) -> &str {
        self.spec.entity
    }

    async fn run(
        &self,
        conn: &mut Conn<'_>,
        scope: &TenantScope,
        event: EntityEvent,
        doc: &Map<String, Value>,
    ) -> Result<(), RepoError> {
        let id = str_of(doc.get("id")).unwrap_or_default();
        match event {
            EntityEvent::OnSubmit if self.spec.kind == InvoiceKind::Sales => {
                let facts = facts(conn, scope, self.spec, doc).await?;
                let rate = invoice_rate(conn, scope, doc, &facts.company, &facts.currency).await?;
                check_credit_limit(
                    conn,
                    scope,
                    &self.services,
                    &Exposure {
                        company: &facts.company,
                        customer: str_of(doc.get("customer")).unwrap_or_default(),
                        id,
                        amount: facts.totals.grand_total,
                        currency: &facts.currency,
                        rate,
                        date: str_of(doc.get("posting_date")).unwrap_or_default(),
                    },
                )
                .await
            }
            EntityEvent::OnCancel => {
                let mut sql = Sql::default();
                let tenant = sql.arg(text_arg(scope.tenant()));
                let parent = sql.arg(text_arg(id));
                sql.text = format!(
                    "SELECT id FROM {}_line WHERE tenant_id = {tenant} AND parent_id = {parent} AND billed_qty <> 0",
                    self.spec.entity
                );
                if conn.fetch(&sql, &[SqlType::Text]).await?.is_empty() {
                    Ok(())
                } else {
                    Err(invalid(
                        "/lines",
                        "invoiced",
                        "the order is invoiced; cancel its invoices first",
                    ))
                }
            }
            _ => Ok(()),
        }
    }
}

/// Registers an order entity (`sales_order`, `purchase_order`): its figures and its
/// submit and cancel rules.
pub fn register(cx: &mut RegisterContext<'_>, repository: &TradeRepository, kind: InvoiceKind) {
    let spec = DocumentSpec {
        entity: order_entity(kind),
        kind,
        stage: Stage::Order,
    };
    figures::register(cx, repository, spec);
    cx.services
        .contribute::<dyn TransactionHook>(Arc::new(OrderHook {
            spec,
            services: repository.clone(),
        }) as Arc<dyn TransactionHook>);
}

/// Registers the quotation entity: its figures.
pub fn register_quotation(cx: &mut RegisterContext<'_>, repository: &TradeRepository) {
    figures::register(
        cx,
        repository,
        DocumentSpec {
            entity: "quotation",
            kind: InvoiceKind::Sales,
            stage: Stage::Quotation,
        },
    );
}
