//! The credit limit: a customer's open invoices (each by what is still outstanding) plus
//! the document being submitted, in the company's currency, may not pass the customer's
//! limit unless the caller holds [`OVERRIDE_CREDIT_LIMIT`]. Sales orders and sales
//! invoices are both checked on submit.

use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Conn, Sql, SqlType};
use prefiq_data::entity::value::{currency_scale, format_scaled};

use crate::TradeRepository;
use crate::rows::{cell_text, invalid, rows_by_id, text_arg};

/// Who may submit a sales document past its customer's credit limit.
pub const OVERRIDE_CREDIT_LIMIT: &str = "trade.override_credit_limit";

/// The document being submitted, as the credit check sees it.
pub(crate) struct Exposure<'a> {
    /// The company id.
    pub(crate) company: &'a str,
    /// The customer id.
    pub(crate) customer: &'a str,
    /// The document's id (its own invoice row is not counted twice).
    pub(crate) id: &'a str,
    /// Its grand total, in `currency`.
    pub(crate) amount: i64,
    /// Its currency.
    pub(crate) currency: &'a str,
    /// Its exchange rate, when given.
    pub(crate) rate: Option<i64>,
    /// Its posting date, for the stored rate.
    pub(crate) date: &'a str,
}

/// Refuses `doc` when it takes its customer past the credit limit, unless the caller
/// may override it. Open invoices are converted at their own rate (or the stored rate
/// of their date).
pub(crate) async fn check_credit_limit(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    services: &TradeRepository,
    doc: &Exposure<'_>,
) -> Result<(), RepoError> {
    let row = rows_by_id(conn, scope, "customer", &["credit_limit"], &[doc.customer]).await?;
    let Some(limit) = row
        .get(doc.customer)
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|l| l.parse::<i64>().ok())
    else {
        return Ok(());
    };
    let Some(company) = accounting::ledger::load_company(conn, scope, doc.company).await? else {
        return Ok(());
    };
    let base = company.base_currency.clone();
    let mut open = vec![(
        doc.amount,
        doc.currency.to_owned(),
        doc.rate,
        doc.date.to_owned(),
    )];
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let party = sql.arg(text_arg(doc.customer));
    let this = sql.arg(text_arg(doc.id));
    sql.text = format!(
        "SELECT CAST(outstanding_amount AS TEXT), outstanding_amount_currency, CAST(exchange_rate AS TEXT), posting_date FROM sales_invoice WHERE tenant_id = {tenant} AND customer = {party} AND docstatus = 1 AND id <> {this} AND deleted_at IS NULL"
    );
    for r in conn.fetch(&sql, &[SqlType::Text; 4]).await? {
        let amount = cell_text(&r, 0)
            .and_then(|a| a.parse::<i64>().ok())
            .unwrap_or(0);
        let currency = cell_text(&r, 1).unwrap_or_else(|| base.clone());
        let rate = cell_text(&r, 2).and_then(|r| r.parse::<i64>().ok());
        open.push((amount, currency, rate, cell_text(&r, 3).unwrap_or_default()));
    }
    let mut exposure: i64 = 0;
    for (amount, currency, rate, date) in open {
        let rate = if currency == base {
            Some(accounting::money::RATE_ONE)
        } else {
            match rate {
                Some(r) => Some(r),
                None => accounting::ledger::load_rate(conn, scope, &currency, &base, &date)
                    .await?
                    .map(|(r, _)| r),
            }
        };
        let converted = rate
            .and_then(|r| accounting::money::convert_currency(amount, &currency, r, &base))
            .unwrap_or(0);
        exposure = exposure.saturating_add(converted);
    }
    if exposure <= limit {
        return Ok(());
    }
    let may_override = match services.authorizer() {
        Some(authorizer) => {
            authorizer
                .decide(
                    scope,
                    OVERRIDE_CREDIT_LIMIT,
                    prefiq_auth::authz::Resource::Tenant,
                )
                .await
                .allowed
        }
        None => false,
    };
    if may_override {
        return Ok(());
    }
    let scale = currency_scale(&base);
    Err(invalid(
        "/customer",
        "credit_limit",
        format!(
            "the customer's open invoices would come to {} {base}, over its credit limit of {} {base}; a role with {OVERRIDE_CREDIT_LIMIT} may submit it",
            format_scaled(exposure, scale),
            format_scaled(limit, scale)
        ),
    ))
}
