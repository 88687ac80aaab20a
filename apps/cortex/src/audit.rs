//! The audit log's API: records of the caller's tenant, its latest signed checkpoint, and
//! inclusion and consistency proofs that a client checks without trusting the server
//! (`prefiq audit verify-proof`, or `prefiq_audit::verify::check_inclusion`). Every route
//! is the action `cortex.read_audit` on the tenant: administrators have it, and a tenant
//! policy can grant it to an auditor role.

use axum::extract::{Query, State};
use axum::{Extension, Json};
use prefiq::{Context, ErrorKind, KernelError};
use prefiq_audit::verify::hex;
use prefiq_auth::authz::CedarAuthorizer;
use prefiq_data::audit::{AuditError, AuditLog, AuditQuery};
use prefiq_http::{HttpState, Problem};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::allowed;

/// The action of reading a tenant's audit log.
pub const READ_AUDIT: &str = "cortex.read_audit";

fn problem(error: AuditError) -> Problem {
    let kind = match &error {
        AuditError::Invalid(_) => ErrorKind::Invalid,
        _ => ErrorKind::Internal,
    };
    Problem::from(KernelError::service(kind, error))
}

async fn scope(
    state: &HttpState,
    context: &Context,
    what: &'static str,
) -> Result<(std::sync::Arc<AuditLog>, String), Problem> {
    let authorizer = state
        .services
        .get::<CedarAuthorizer>(what)
        .map_err(Problem::from)?;
    let scope = allowed(&authorizer, context, READ_AUDIT).await?;
    let log = state
        .services
        .get::<AuditLog>(what)
        .map_err(Problem::from)?;
    Ok((log, scope.tenant().to_owned()))
}

/// The query of `GET /api/v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    entity: Option<String>,
    id: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<u64>,
    limit: Option<u32>,
}

/// Most records one page of `GET /api/v1/audit` holds (the store clamps to it too).
const MAX_PAGE: u32 = 500;

/// `GET /api/v1/audit`: the tenant's records, newest first. A page size out of range is
/// refused rather than quietly clamped, so a client never takes a short page for the last.
pub async fn list(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, Problem> {
    let (log, tenant) = scope(&state, &context, "cortex audit list").await?;
    if let Some(limit) = params.limit
        && !(1..=MAX_PAGE).contains(&limit)
    {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Invalid,
            format!("`limit` is 1 to {MAX_PAGE}, not {limit}"),
        )));
    }
    let query = AuditQuery {
        entity: params.entity,
        id: params.id,
        actor: params.actor,
        since: params.since,
        until: params.until,
        before: params.before,
        limit: params.limit,
    };
    let (data, next) = log.list(&tenant, &query).await.map_err(problem)?;
    Ok(Json(json!({ "data": data, "next_before": next })))
}

/// `GET /api/v1/audit/checkpoint`: the latest signed checkpoint, as text and parsed.
pub async fn checkpoint(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
) -> Result<Json<Value>, Problem> {
    let (log, tenant) = scope(&state, &context, "cortex audit checkpoint").await?;
    // A client asking for a checkpoint wants the records so far covered.
    log.checkpoint(&tenant).await.map_err(problem)?;
    let Some(text) = log.latest_checkpoint(&tenant).await.map_err(problem)? else {
        return Err(Problem::from(KernelError::service(
            ErrorKind::NotFound,
            "the audit log of this tenant has no records yet",
        )));
    };
    let parsed =
        prefiq_audit::checkpoint::verify(&text, &log.origin(&tenant), &log.verifying_key())
            .map_err(|e| Problem::from(KernelError::service(ErrorKind::Internal, e)))?;
    Ok(Json(json!({
        "origin": parsed.origin,
        "size": parsed.size,
        "root": hex(&parsed.root),
        "time_ms": parsed.time_ms,
        "checkpoint": text,
        "public_key": hex(log.verifying_key().as_bytes()),
    })))
}

/// The query of `GET /api/v1/audit/proof/inclusion`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionParams {
    seq: u64,
    size: u64,
}

/// `GET /api/v1/audit/proof/inclusion?seq=…&size=…`: record `seq` and its path to the
/// root of the tree of `size` records.
pub async fn inclusion(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(params): Query<InclusionParams>,
) -> Result<Json<Value>, Problem> {
    let (log, tenant) = scope(&state, &context, "cortex audit inclusion").await?;
    let (entry, proof) = log
        .inclusion_proof(&tenant, params.seq, params.size)
        .await
        .map_err(problem)?;
    Ok(Json(json!({
        "seq": params.seq,
        "size": params.size,
        "entry": entry,
        "proof": proof.iter().map(|h| hex(h)).collect::<Vec<_>>(),
    })))
}

/// The query of `GET /api/v1/audit/proof/consistency`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    from: u64,
    to: u64,
}

/// `GET /api/v1/audit/proof/consistency?from=…&to=…`: that the tree of `from` records is
/// a prefix of the tree of `to`.
pub async fn consistency(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Query(params): Query<ConsistencyParams>,
) -> Result<Json<Value>, Problem> {
    let (log, tenant) = scope(&state, &context, "cortex audit consistency").await?;
    let proof = log
        .consistency_proof(&tenant, params.from, params.to)
        .await
        .map_err(problem)?;
    Ok(Json(json!({
        "from": params.from,
        "to": params.to,
        "proof": proof.iter().map(|h| hex(h)).collect::<Vec<_>>(),
    })))
}

/// `GET /api/v1/audit/verify`: recomputes the tenant's log from where the last
/// verification left off and checks it against every signed checkpoint. A changed,
/// missing or reordered record is a 409 naming it; the desk shows this as the log's
/// verification status. The records before that point are not read again: `trusted`
/// says how many, so the answer never counts them as verified (`prefiq audit verify`
/// without `--incremental` reads every record).
pub async fn verify(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
) -> Result<Json<Value>, Problem> {
    let (log, tenant) = scope(&state, &context, "cortex audit verify").await?;
    // Records since the last checkpoint are signed first, so the answer covers them too.
    log.checkpoint(&tenant).await.map_err(problem)?;
    match log.verify(&tenant, &[], false).await {
        Ok(report) => Ok(Json(json!({
            "status": "verified",
            "size": report.size,
            "walked": report.walked,
            "trusted": report.size - report.walked.min(report.size),
            "checkpoints": report.checkpoints,
            "covered": report.covered,
        }))),
        Err(AuditError::Invalid(message)) => Err(Problem::from(KernelError::service(
            ErrorKind::Invalid,
            message,
        ))),
        Err(error) => {
            Err(Problem::new(axum::http::StatusCode::CONFLICT).with_detail(error.to_string()))
        }
    }
}
