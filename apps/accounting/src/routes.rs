//! The accounting API: reports (JSON, or CSV with `format=csv`) and period close. The
//! entities themselves are served by the generic resource routes.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use prefiq::{Context, ErrorKind, KernelError};
use prefiq_auth::authz::{CedarAuthorizer, Resource, refusal};
use prefiq_data::entity::repo::{FieldError, RepoError, TenantScope};
use prefiq_http::{HttpState, Problem};
use serde::Deserialize;
use serde_json::Value;

use crate::books::Books;
use crate::reports::{self, LedgerFilter};

/// Reading reports.
pub const READ_REPORTS: &str = "accounting.read_reports";
/// Closing periods and fiscal years.
pub const CLOSE_PERIOD: &str = "accounting.close_period";
/// Reopening the latest closed period.
pub const REOPEN_PERIOD: &str = "accounting.reopen_period";

/// The caller's scope when it may do `action` on its tenant.
#[allow(clippy::result_large_err)]
async fn allowed(
    state: &HttpState,
    context: &Context,
    action: &str,
) -> Result<(TenantScope, Arc<Books>), Problem> {
    if context.principal.is_none() {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Unauthenticated,
            "sign in first: send `Authorization: Bearer <token>`",
        )));
    }
    let scope = TenantScope::new(context).map_err(Problem::from)?;
    let authorizer = state
        .services
        .get::<CedarAuthorizer>("accounting routes")
        .map_err(Problem::from)?;
    let decision = authorizer.decide(&scope, action, Resource::Tenant).await;
    if !decision.allowed {
        return Err(Problem::new(StatusCode::FORBIDDEN)
            .with_detail(refusal(action, "the tenant", &decision))
            .with_action(action));
    }
    let books = state
        .services
        .get::<Books>("accounting routes")
        .map_err(Problem::from)?;
    Ok((scope, books))
}

/// Query of the trial balance, balance sheet and profit and loss.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    company: String,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

/// Refuses a `format` other than `json` (the default) and `csv`, rather than answer JSON
/// to a client that asked for something else.
#[allow(clippy::result_large_err)]
fn check_format(format: Option<&str>) -> Result<(), Problem> {
    match format {
        None | Some("json" | "csv") => Ok(()),
        Some(other) => Err(Problem::from(RepoError::Invalid(vec![FieldError {
            pointer: "/format".into(),
            code: "unknown_format",
            message: format!("`format` is `json` or `csv`, not `{other}`"),
        }]))),
    }
}

fn answer(report: Value, format: Option<&str>, fields: &[&str]) -> Response {
    if format == Some("csv") {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            reports::to_csv(&report, fields),
        )
            .into_response()
    } else {
        Json(report).into_response()
    }
}

const TRIAL_BALANCE_FIELDS: &[&str] = &[
    "account_path",
    "account_name",
    "root_type",
    "is_group",
    "opening_debit",
    "opening_credit",
    "debit",
    "credit",
    "closing_debit",
    "closing_credit",
];

const STATEMENT_FIELDS: &[&str] = &["account_path", "account_name", "root_type", "is_group"];

const LEDGER_FIELDS: &[&str] = &[
    "posting_date",
    "account_path",
    "journal_entry_name",
    "debit",
    "credit",
    "currency",
    "debit_in_currency",
    "credit_in_currency",
    "party",
    "remark",
    "balance",
];

/// `GET /api/v1/accounting/reports/trial-balance`.
pub async fn trial_balance(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, Problem> {
    let (scope, books) = allowed(&state, &context, READ_REPORTS).await?;
    check_format(query.format.as_deref())?;
    let to = query.to.clone().unwrap_or_else(reports::today);
    let report =
        reports::trial_balance(&books, &scope, &query.company, query.from.as_deref(), &to).await?;
    Ok(answer(
        report,
        query.format.as_deref(),
        TRIAL_BALANCE_FIELDS,
    ))
}

/// `GET /api/v1/accounting/reports/general-ledger`.
pub async fn general_ledger(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(filter): Query<LedgerFilter>,
) -> Result<Response, Problem> {
    let (scope, books) = allowed(&state, &context, READ_REPORTS).await?;
    check_format(filter.format.as_deref())?;
    let report = reports::general_ledger(&books, &scope, &filter).await?;
    Ok(answer(report, filter.format.as_deref(), LEDGER_FIELDS))
}

/// `GET /api/v1/accounting/reports/balance-sheet`.
pub async fn balance_sheet(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, Problem> {
    let (scope, books) = allowed(&state, &context, READ_REPORTS).await?;
    check_format(query.format.as_deref())?;
    let to = query.to.clone().unwrap_or_else(reports::today);
    let report = reports::balance_sheet(&books, &scope, &query.company, &to).await?;
    Ok(answer(report, query.format.as_deref(), STATEMENT_FIELDS))
}

/// `GET /api/v1/accounting/reports/profit-and-loss`.
pub async fn profit_and_loss(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, Problem> {
    let (scope, books) = allowed(&state, &context, READ_REPORTS).await?;
    check_format(query.format.as_deref())?;
    let to = query.to.clone().unwrap_or_else(reports::today);
    let report =
        reports::profit_and_loss(&books, &scope, &query.company, query.from.as_deref(), &to)
            .await?;
    Ok(answer(report, query.format.as_deref(), STATEMENT_FIELDS))
}

/// `POST /api/v1/accounting/periods/{id}/close`.
pub async fn close_period(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let (scope, books) = allowed(&state, &context, CLOSE_PERIOD).await?;
    Ok(Json(books.close_period(&scope, &id).await?))
}

/// `POST /api/v1/accounting/fiscal-years/{id}/close`.
pub async fn close_fiscal_year(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let (scope, books) = allowed(&state, &context, CLOSE_PERIOD).await?;
    Ok(Json(books.close_fiscal_year(&scope, &id).await?))
}

/// `POST /api/v1/accounting/periods/{id}/reopen`: its own action, so reopening the books
/// can be granted apart from closing them.
pub async fn reopen_period(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let (scope, books) = allowed(&state, &context, REOPEN_PERIOD).await?;
    Ok(Json(books.reopen_period(&scope, &id).await?))
}
