//! Period and fiscal-year close, and the one way back: reopening the latest closed period.
//!
//! Each is one transaction with its audit records. A closed period and a closed fiscal
//! year are otherwise immutable (the entity hooks in `hooks.rs` refuse edits and deletes
//! through the pipeline), so no posting can land in, or leave, a closed period.

use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Arg, Conn, Sql, SqlType};
use prefiq_data::entity::value::civil_now;
use serde_json::{Value, json};

use crate::books::{Books, append};
use crate::ledger::{
    self, LedgerEntry, Period, PostingLine, RootType, Voucher, invalid, store, text,
};

/// The body of one of the books' own transactions, for the row `id`.
type Body = for<'a, 'c> fn(
    &'a mut Conn<'c>,
    TenantScope,
    String,
) -> futures_util::future::BoxFuture<'a, Result<Value, RepoError>>;

impl Books {
    /// Runs `body` for the row `id` in one transaction of the scope's database.
    async fn in_books_transaction(
        &self,
        scope: &TenantScope,
        id: &str,
        body: Body,
    ) -> Result<Value, RepoError> {
        let id = id.to_owned();
        let scope_for = scope.clone();
        self.repository()?
            .in_transaction(
                scope,
                Box::new(move |conn| body(conn, scope_for.clone(), id.clone())),
            )
            .await
    }

    /// Closes a period: posts the closing entry that moves its income and expense to the
    /// company's retained earnings, and locks it, in one transaction with their audit
    /// records. Earlier periods of the company must be closed first.
    pub async fn close_period(
        &self,
        scope: &TenantScope,
        period_id: &str,
    ) -> Result<Value, RepoError> {
        self.in_books_transaction(scope, period_id, |conn, scope, id| {
            Box::pin(async move { close_in(conn, &scope, &id).await })
        })
        .await
    }

    /// Reopens a closed period: reverses its closing entry and opens it again, audited as
    /// `reopen`. Only the company's latest closed period of an open fiscal year can be
    /// reopened, so closed periods stay a prefix of the calendar.
    pub async fn reopen_period(
        &self,
        scope: &TenantScope,
        period_id: &str,
    ) -> Result<Value, RepoError> {
        self.in_books_transaction(scope, period_id, |conn, scope, id| {
            Box::pin(async move { reopen_in(conn, &scope, &id).await })
        })
        .await
    }

    /// Closes every open period of a fiscal year in date order, then the year, in one
    /// transaction: a failure part way closes nothing.
    pub async fn close_fiscal_year(
        &self,
        scope: &TenantScope,
        year_id: &str,
    ) -> Result<Value, RepoError> {
        let mut closed = self
            .in_books_transaction(scope, year_id, |conn, scope, id| {
                Box::pin(async move { close_year_in(conn, &scope, &id).await })
            })
            .await?;
        // The answer carries the year as a read of it shows it.
        closed["fiscal_year"] = self
            .repository()?
            .get(scope, "fiscal_year", year_id)
            .await?;
        Ok(closed)
    }
}

/// A fiscal year's company and status.
async fn load_year(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    year_id: &str,
) -> Result<(String, String, String, i64), RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let id = sql.arg(text(year_id));
    let lock = match conn.backend() {
        prefiq::Backend::Postgres => " FOR UPDATE",
        prefiq::Backend::Sqlite => "",
    };
    sql.text = format!(
        "SELECT company, year_name, status, version FROM fiscal_year WHERE tenant_id = {tenant} AND id = {id} AND deleted_at IS NULL{lock}"
    );
    let rows = conn
        .fetch(
            &sql,
            &[SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Int],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Err(RepoError::NotFound {
            entity: "fiscal_year".into(),
            id: year_id.to_owned(),
        });
    };
    Ok((
        ledger::cell_text(row.first()).unwrap_or_default(),
        ledger::cell_text(row.get(1)).unwrap_or_default(),
        ledger::cell_text(row.get(2)).unwrap_or_default(),
        ledger::cell_int(row.get(3)),
    ))
}

/// The body of a fiscal-year close, inside its transaction.
async fn close_year_in(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    year_id: &str,
) -> Result<Value, RepoError> {
    let (company, year_name, status, version) = load_year(conn, scope, year_id).await?;
    if status == "Closed" {
        return Err(invalid(
            "/status",
            "already_closed",
            format!("the fiscal year {year_name} is already closed"),
        ));
    }
    let periods = ledger::load_periods(conn, scope, &company).await?;
    let mut closed = Vec::new();
    for period in periods
        .iter()
        .filter(|p| p.fiscal_year == year_id && p.open)
    {
        closed.push(close_in(conn, scope, &period.id).await?);
    }
    let now = civil_now();
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let id = sql.arg(text(year_id));
    let version_arg = sql.arg(Arg::Int(Some(version)));
    let at = sql.arg(text(&now));
    let user = sql.arg(ledger::opt_text(scope.user()));
    sql.text = format!(
        "UPDATE fiscal_year SET status = 'Closed', version = version + 1, modified_at = {at}, modified_by = {user} WHERE tenant_id = {tenant} AND id = {id} AND version = {version_arg}"
    );
    if conn.execute(&sql).await? == 0 {
        return Err(RepoError::VersionConflict {
            entity: "fiscal_year".into(),
            expected: version,
            actual: version + 1,
        });
    }
    append(
        conn,
        scope,
        &now,
        "close",
        "fiscal_year",
        year_id,
        json!({"status": {"before": "Open", "after": "Closed"}}),
    )
    .await?;
    Ok(json!({
        "fiscal_year": {"id": year_id, "year_name": year_name, "status": "Closed", "version": version + 1},
        "closed_periods": closed,
    }))
}

/// Sets a period's status (`Closed` or `Open`) and records the change in the audit log.
async fn set_status(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    period: &Period,
    now: &str,
    status: &str,
) -> Result<(), RepoError> {
    let (before, action) = match status {
        "Closed" => ("Open", "close"),
        _ => ("Closed", "reopen"),
    };
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let id = sql.arg(text(&period.id));
    let version = sql.arg(Arg::Int(Some(period.version)));
    let at = sql.arg(text(now));
    let user = sql.arg(ledger::opt_text(scope.user()));
    let status_arg = sql.arg(text(status));
    sql.text = format!(
        "UPDATE accounting_period SET status = {status_arg}, version = version + 1, modified_at = {at}, modified_by = {user} WHERE tenant_id = {tenant} AND id = {id} AND version = {version}"
    );
    if conn.execute(&sql).await? == 0 {
        return Err(RepoError::VersionConflict {
            entity: "accounting_period".into(),
            expected: period.version,
            actual: period.version + 1,
        });
    }
    append(
        conn,
        scope,
        now,
        action,
        "accounting_period",
        &period.id,
        json!({"status": {"before": before, "after": status}}),
    )
    .await
}

/// A period's company, read before its row is locked.
async fn period_company(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    period_id: &str,
) -> Result<String, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let id = sql.arg(text(period_id));
    sql.text = format!(
        "SELECT company FROM accounting_period WHERE tenant_id = {tenant} AND id = {id} AND deleted_at IS NULL"
    );
    let rows = conn.fetch(&sql, &[SqlType::Text]).await?;
    rows.first()
        .and_then(|r| ledger::cell_text(r.first()))
        .ok_or_else(|| RepoError::NotFound {
            entity: "accounting_period".into(),
            id: period_id.to_owned(),
        })
}

/// The body of a reopen, inside its transaction.
async fn reopen_in(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    period_id: &str,
) -> Result<Value, RepoError> {
    let company_id = period_company(conn, scope, period_id).await?;
    ledger::lock_period(conn, scope, period_id, "FOR UPDATE").await?;
    let Some(company) = ledger::load_company(conn, scope, &company_id).await? else {
        return Err(invalid(
            "/company",
            "unknown_company",
            "the period's company does not exist",
        ));
    };
    let periods = ledger::load_periods(conn, scope, &company.id).await?;
    let Some(period) = periods.iter().find(|p| p.id == period_id).cloned() else {
        return Err(invalid("", "unknown_period", "no such period"));
    };
    if period.open {
        return Err(invalid(
            "/status",
            "not_closed",
            format!("the period {} is open", period.name),
        ));
    }
    if let Some(later) = periods.iter().find(|p| !p.open && p.start > period.end) {
        return Err(invalid(
            "/status",
            "later_closed",
            format!("reopen the later period {} first", later.name),
        ));
    }
    let (_, year_name, year_status, _) = load_year(conn, scope, &period.fiscal_year).await?;
    if year_status == "Closed" {
        return Err(invalid(
            "/fiscal_year",
            "year_closed",
            format!("the fiscal year {year_name} is closed; its periods are not reopened"),
        ));
    }
    let now = civil_now();
    // Open first: the reversal is refused in a closed period.
    set_status(conn, scope, &period, &now, "Open").await?;
    let mut sql = Sql::default();
    let closing = closing_postings(&mut sql, scope, &period.id);
    sql.text = format!(
        "SELECT DISTINCT p.journal_entry FROM ledger_posting p JOIN journal_entry j ON j.tenant_id = p.tenant_id AND j.id = p.journal_entry WHERE {closing} AND j.docstatus = 1"
    );
    let closing: Vec<String> = conn
        .fetch(&sql, &[SqlType::Text])
        .await?
        .iter()
        .filter_map(|r| ledger::cell_text(r.first()))
        .collect();
    let mut doc = serde_json::Map::new();
    doc.insert("company".into(), json!(company.id));
    for entry in &closing {
        let (company, mut voucher) = ledger::reversal_voucher(conn, scope, entry, &doc).await?;
        voucher.is_closing = true;
        ledger::write_postings(conn, scope, &company, std::slice::from_ref(&voucher), &now).await?;
        let mut sql = Sql::default();
        let tenant = sql.arg(text(scope.tenant()));
        let id = sql.arg(text(entry));
        let at = sql.arg(text(&now));
        let user = sql.arg(ledger::opt_text(scope.user()));
        sql.text = format!(
            "UPDATE journal_entry SET docstatus = 2, version = version + 1, modified_at = {at}, modified_by = {user} WHERE tenant_id = {tenant} AND id = {id}"
        );
        conn.execute(&sql).await?;
        append(
            conn,
            scope,
            &now,
            "cancel",
            "journal_entry",
            entry,
            ledger::audit_changes(&[
                ("entry_type", json!("Closing Entry")),
                ("period", json!(period.id)),
                ("docstatus", json!(2)),
            ]),
        )
        .await?;
    }
    Ok(json!({
        "period": period.id,
        "period_name": period.name,
        "status": "Open",
        "reversed_closing_entries": closing,
    }))
}

/// The body of a period close, inside its transaction.
async fn close_in(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    period_id: &str,
) -> Result<Value, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let id = sql.arg(text(period_id));
    sql.text = format!(
        "SELECT company FROM accounting_period WHERE tenant_id = {tenant} AND id = {id} AND deleted_at IS NULL"
    );
    let rows = conn.fetch(&sql, &[SqlType::Text]).await?;
    let Some(company_id) = rows.first().and_then(|r| ledger::cell_text(r.first())) else {
        return Err(RepoError::NotFound {
            entity: "accounting_period".into(),
            id: period_id.to_owned(),
        });
    };
    // Posts into the period wait for the close, and the close for them (PostgreSQL).
    ledger::lock_period(conn, scope, period_id, "FOR UPDATE").await?;
    let Some(company) = ledger::load_company(conn, scope, &company_id).await? else {
        return Err(invalid(
            "/company",
            "unknown_company",
            "the period's company does not exist",
        ));
    };
    let periods = ledger::load_periods(conn, scope, &company.id).await?;
    let Some(period) = periods.iter().find(|p| p.id == period_id).cloned() else {
        return Err(invalid("", "unknown_period", "no such period"));
    };
    if !period.open {
        return Err(invalid(
            "/status",
            "already_closed",
            format!("the period {} is already closed", period.name),
        ));
    }
    if let Some(earlier) = periods.iter().find(|p| p.open && p.end < period.start) {
        return Err(invalid(
            "/status",
            "earlier_open",
            format!("close the earlier period {} first", earlier.name),
        ));
    }
    let Some(retained) = company.retained_earnings_account.clone() else {
        return Err(invalid(
            "/retained_earnings_account",
            "no_retained_earnings",
            format!("company {} has no retained earnings account", company.name),
        ));
    };
    // The period's income and expense, per account, from the balances kept as entries post.
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let period_arg = sql.arg(text(&period.id));
    sql.text = format!(
        "SELECT b.account, CAST(SUM(b.debit) AS BIGINT), CAST(SUM(b.credit) AS BIGINT), a.root_type FROM account_balance b JOIN account a ON a.tenant_id = b.tenant_id AND a.id = b.account WHERE b.tenant_id = {tenant} AND b.period = {period_arg} GROUP BY b.account, a.root_type ORDER BY b.account"
    );
    let rows = conn
        .fetch(
            &sql,
            &[SqlType::Text, SqlType::Int, SqlType::Int, SqlType::Text],
        )
        .await?;
    let base = company.base_currency.clone();
    let mut lines = Vec::new();
    let mut net_to_retained: i64 = 0;
    let line = |account: String, debit: i64, credit: i64| PostingLine {
        account,
        debit,
        credit,
        currency: base.clone(),
        debit_in_currency: debit,
        credit_in_currency: credit,
        party_type: None,
        party: None,
        cost_center: None,
        remark: Some("period closing".into()),
        rate: Some(crate::money::RATE_ONE),
        rate_source: None,
        rounding: false,
    };
    for row in &rows {
        let root = RootType::parse(&ledger::cell_text(row.get(3)).unwrap_or_default());
        if !root.is_some_and(RootType::is_profit_and_loss) {
            continue;
        }
        let net = ledger::cell_int(row.get(1)) - ledger::cell_int(row.get(2));
        if net == 0 {
            continue;
        }
        let account = ledger::cell_text(row.first()).unwrap_or_default();
        lines.push(if net > 0 {
            line(account, 0, net)
        } else {
            line(account, -net, 0)
        });
        net_to_retained += net;
    }
    let now = civil_now();
    let entry_id = uuid::Uuid::now_v7().to_string();
    let posted = !lines.is_empty();
    if posted {
        lines.push(if net_to_retained > 0 {
            line(retained, net_to_retained, 0)
        } else {
            line(retained, 0, -net_to_retained)
        });
        let entry = LedgerEntry {
            id: entry_id.clone(),
            name: closing_name(conn, scope, &company.abbr, &period).await?,
            entry_type: "Closing Entry",
            title: Some(format!("Closing of {}", period.name)),
            remark: None,
            voucher: Voucher {
                journal_entry: entry_id.clone(),
                posting_date: period.end.clone(),
                period: period.id.clone(),
                lines,
                is_reversal: false,
                is_closing: true,
            },
        };
        ledger::write_entries(conn, scope, &company, std::slice::from_ref(&entry), &now).await?;
        append(
            conn,
            scope,
            &now,
            "submit",
            "journal_entry",
            &entry_id,
            ledger::audit_changes(&[
                ("entry_type", json!("Closing Entry")),
                ("period", json!(period.id)),
                ("docstatus", json!(1)),
            ]),
        )
        .await?;
    }
    set_status(conn, scope, &period, &now, "Closed").await?;
    Ok(json!({
        "period": period.id,
        "period_name": period.name,
        "status": "Closed",
        "closing_entry": posted.then_some(entry_id),
        "net_profit": crate::money::format_minor(-net_to_retained, &base),
        "currency": base,
    }))
}

/// The name of a period's closing entry: `CLOSE-{abbr}-{period}`, and `…/2`, `…/3` for the
/// closes that follow a reopen (the earlier closing entries stay, cancelled).
async fn closing_name(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    abbr: &str,
    period: &Period,
) -> Result<String, RepoError> {
    let mut sql = Sql::default();
    let closing = closing_postings(&mut sql, scope, &period.id);
    sql.text = format!(
        "SELECT CAST(COUNT(DISTINCT p.journal_entry) AS BIGINT) FROM ledger_posting p WHERE {closing}"
    );
    let rows = conn.fetch(&sql, &[SqlType::Int]).await?;
    let earlier = rows.first().map_or(0, |r| ledger::cell_int(r.first()));
    let base = format!("CLOSE-{abbr}-{}", period.name);
    Ok(if earlier == 0 {
        base
    } else {
        format!("{base}/{}", earlier + 1)
    })
}

/// The condition on `ledger_posting p` that selects the closing postings (not their
/// reversals) of the period `period` of the scope's tenant.
fn closing_postings(sql: &mut Sql, scope: &TenantScope, period: &str) -> String {
    let period_key = store::key_of(sql, scope.tenant(), period);
    let tenant = sql.arg(text(scope.tenant()));
    let kinds = sql.arg(Arg::Int(Some(store::kind::CLOSING | store::kind::REVERSAL)));
    let closing = sql.arg(Arg::Int(Some(store::kind::CLOSING)));
    format!("p.tenant_id = {tenant} AND p.period = {period_key} AND p.kind & {kinds} = {closing}")
}
