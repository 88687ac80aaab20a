//! The CRM API beside the generic resources: the pipeline report (JSON, or CSV with
//! `format=csv`), and what the conversion route ([`crate::convert`]) shares with it.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use prefiq::{Context, ErrorKind, KernelError};
use prefiq_auth::authz::{CedarAuthorizer, Resource, refusal};
use prefiq_data::entity::repo::{FieldError, RepoError, Repository, TenantScope};
use prefiq_http::{HttpState, Problem};
use serde::Deserialize;
use std::sync::Arc;

use crate::pipeline;

/// Reading the CRM's reports.
pub const READ_REPORTS: &str = "crm.read_reports";

/// The columns of the pipeline's CSV, in order.
pub const PIPELINE_FIELDS: &[&str] = &[
    "stage",
    "month",
    "count",
    "amount",
    "weighted_amount",
    "currency",
];

/// A 422 problem naming one part of the request.
pub(crate) fn invalid(
    pointer: impl Into<String>,
    code: &'static str,
    message: impl Into<String>,
) -> Problem {
    Problem::from(RepoError::Invalid(vec![FieldError {
        pointer: pointer.into(),
        code,
        message: message.into(),
    }]))
}

/// The caller's scope, when a signed-in principal makes the call (401 otherwise).
#[allow(clippy::result_large_err)]
pub(crate) fn signed_in(context: &Context) -> Result<TenantScope, Problem> {
    if context.principal.is_none() {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Unauthenticated,
            "sign in first: send `Authorization: Bearer <token>`",
        )));
    }
    TenantScope::new(context).map_err(Problem::from)
}

/// The repository the routes read and write through.
#[allow(clippy::result_large_err)]
pub(crate) fn repository(state: &HttpState) -> Result<Arc<Repository>, Problem> {
    state
        .services
        .get::<Repository>("crm routes")
        .map_err(Problem::from)
}

/// The caller's scope when it may do `action` on its tenant (403 naming it otherwise).
async fn allowed(
    state: &HttpState,
    context: &Context,
    action: &str,
) -> Result<TenantScope, Problem> {
    let scope = signed_in(context)?;
    let authorizer = state
        .services
        .get::<CedarAuthorizer>("crm routes")
        .map_err(Problem::from)?;
    let decision = authorizer.decide(&scope, action, Resource::Tenant).await;
    if !decision.allowed {
        return Err(Problem::new(StatusCode::FORBIDDEN)
            .with_detail(refusal(action, "the tenant", &decision))
            .with_action(action));
    }
    Ok(scope)
}

/// The query of the pipeline report.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineQuery {
    /// The company: its id, name or abbreviation.
    pub company: String,
    /// The first expected close date taken in (`YYYY-MM-DD`); empty is none.
    pub from: Option<String>,
    /// The last expected close date taken in (`YYYY-MM-DD`); empty is none.
    pub to: Option<String>,
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
}

/// Refuses a `format` other than `json` and `csv`, rather than answer JSON to a client
/// that asked for something else.
#[allow(clippy::result_large_err)]
fn check_format(format: Option<&str>) -> Result<(), Problem> {
    match format {
        None | Some("json" | "csv") => Ok(()),
        Some(other) => Err(invalid(
            "/format",
            "unknown_format",
            format!("`format` is `json` or `csv`, not `{other}`"),
        )),
    }
}

/// `GET /api/v1/crm/reports/pipeline?company=&from=&to=&format=`: open and won
/// opportunities by stage and month of expected close, in the company's currency.
pub async fn pipeline(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(query): Query<PipelineQuery>,
) -> Result<Response, Problem> {
    let scope = allowed(&state, &context, READ_REPORTS).await?;
    check_format(query.format.as_deref())?;
    let repository = repository(&state)?;
    // A date is a date: an empty one is refused like any other that is not (the desk
    // leaves a blank date out of its call).
    let report = pipeline::report(
        &repository,
        &scope,
        &query.company,
        query.from.as_deref(),
        query.to.as_deref(),
    )
    .await?;
    Ok(if query.format.as_deref() == Some("csv") {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            accounting::reports::to_csv(&report, PIPELINE_FIELDS),
        )
            .into_response()
    } else {
        Json(report).into_response()
    })
}
