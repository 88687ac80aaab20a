//! `POST /api/v1/trade/totals`: a document's lines, taxes and totals under the app's
//! rule ([`crate::taxes`]), before any document is written: what a form shows as the
//! lines are typed, and what a client checks its own figures against.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use prefiq::{Context, ErrorKind, KernelError};
use prefiq_auth::authz::{CedarAuthorizer, Resource, refusal};
use prefiq_data::entity::repo::{FieldError, RepoError, TenantScope};
use prefiq_data::entity::value::{currency_scale, format_scaled, parse_scaled};
use prefiq_http::{HttpState, Problem};
use serde_json::{Map, Value, json};

use crate::taxes::{self, LINES_MAX, LineInput, Tax, TotalsError};

/// Computing totals.
pub const COMPUTE_TOTALS: &str = "trade.compute_totals";

/// The digits of a quantity after the point.
const QTY_DIGITS: u8 = 3;

/// A refusal of the field at `pointer`, as a problem.
pub fn invalid(
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

/// The caller's scope when it may do `action` on its tenant.
#[allow(clippy::result_large_err)]
pub(crate) async fn allowed(
    state: &HttpState,
    context: &Context,
    action: &str,
) -> Result<TenantScope, Problem> {
    if context.principal.is_none() {
        return Err(Problem::from(KernelError::service(
            ErrorKind::Unauthenticated,
            "sign in first: send `Authorization: Bearer <token>`",
        )));
    }
    let scope = TenantScope::new(context).map_err(Problem::from)?;
    let authorizer = state
        .services
        .get::<CedarAuthorizer>("trade routes")
        .map_err(Problem::from)?;
    let decision = authorizer.decide(&scope, action, Resource::Tenant).await;
    if !decision.allowed {
        return Err(Problem::new(StatusCode::FORBIDDEN)
            .with_detail(refusal(action, "the tenant", &decision))
            .with_action(action));
    }
    Ok(scope)
}

/// A decimal given as a JSON string, or also as a number when `numbers` (a quantity;
/// a price is a string, so that no float ever carries money).
#[allow(clippy::result_large_err)]
fn decimal(value: Option<&Value>, pointer: &str, scale: u8, numbers: bool) -> Result<i64, Problem> {
    let text = match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if numbers => n.to_string(),
        None | Some(Value::Null) => {
            return Err(invalid(pointer, "required", "required"));
        }
        Some(_) => {
            return Err(invalid(
                pointer,
                "wrong_type",
                "a decimal number in a string, such as \"12.50\"",
            ));
        }
    };
    parse_scaled(&text, scale).map_err(|e| invalid(pointer, e.code, e.message))
}

/// The lines of the request, checked.
#[allow(clippy::result_large_err)]
fn lines(body: &Map<String, Value>, price_scale: u8) -> Result<Vec<LineInput>, Problem> {
    let Some(rows) = body.get("lines").and_then(Value::as_array) else {
        return Err(invalid(
            "/lines",
            "required",
            "`lines` is an array of {qty, unit_price}",
        ));
    };
    if rows.len() > LINES_MAX {
        return Err(invalid(
            "/lines",
            "out_of_range",
            format!("at most {LINES_MAX} lines, not {}", rows.len()),
        ));
    }
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let Some(row) = row.as_object() else {
                return Err(invalid(
                    format!("/lines/{i}"),
                    "wrong_type",
                    "a line is {qty, unit_price}",
                ));
            };
            if let Some(unknown) = row
                .keys()
                .find(|k| !["qty", "unit_price"].contains(&k.as_str()))
            {
                return Err(invalid(
                    format!("/lines/{i}/{unknown}"),
                    "unknown_field",
                    format!("`{unknown}` is not a field of a line; fields are qty, unit_price"),
                ));
            }
            Ok(LineInput {
                qty: decimal(row.get("qty"), &format!("/lines/{i}/qty"), QTY_DIGITS, true)?,
                unit_price: decimal(
                    row.get("unit_price"),
                    &format!("/lines/{i}/unit_price"),
                    price_scale,
                    false,
                )?,
            })
        })
        .collect()
}

/// The taxes of the template `id`, as the caller may read it.
async fn template_taxes(
    state: &HttpState,
    scope: &TenantScope,
    id: &str,
) -> Result<Vec<Tax>, Problem> {
    let repository = state
        .services
        .get::<prefiq_data::entity::repo::Repository>("trade routes")
        .map_err(Problem::from)?;
    let record = match repository.get(scope, "tax_template", id).await {
        Ok(record) => record,
        Err(RepoError::NotFound { .. }) => {
            return Err(invalid(
                "/tax_template",
                "unknown",
                format!("there is no tax template `{id}`"),
            ));
        }
        Err(e) => return Err(Problem::from(e)),
    };
    if record.get("disabled") == Some(&Value::Bool(true)) {
        return Err(invalid(
            "/tax_template",
            "disabled",
            "the tax template is disabled",
        ));
    }
    Ok(record
        .get("lines")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|line| Tax {
            account: line
                .get("account")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            rate: line
                .get("rate")
                .and_then(Value::as_str)
                .and_then(|r| parse_scaled(r, 4).ok())
                .unwrap_or_default(),
            included_in_price: line.get("included_in_price") == Some(&Value::Bool(true)),
        })
        .collect())
}

/// `POST /api/v1/trade/totals`: `{currency, tax_template?, lines: [{qty, unit_price}]}` →
/// each line's amount, net, taxes and total, each tax's total, and the document's.
pub async fn totals(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let scope = allowed(&state, &context, COMPUTE_TOTALS).await?;
    let body: Map<String, Value> = prefiq_http::json_object(&body).map_err(|e| {
        invalid(
            "",
            "invalid_json",
            format!("the body must be {{currency, tax_template, lines}}: {e}"),
        )
    })?;
    if let Some(unknown) = body
        .keys()
        .find(|k| !["currency", "tax_template", "lines"].contains(&k.as_str()))
    {
        return Err(invalid(
            format!("/{unknown}"),
            "unknown_field",
            format!("`{unknown}` is not a field here; fields are currency, tax_template, lines"),
        ));
    }
    let currency = match body.get("currency").and_then(Value::as_str) {
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => c.to_owned(),
        _ => {
            return Err(invalid(
                "/currency",
                "wrong_type",
                "`currency` is an ISO 4217 code such as \"EUR\"",
            ));
        }
    };
    let scale = currency_scale(&currency);
    let lines = lines(&body, scale)?;
    let taxes = match body.get("tax_template") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(id)) => template_taxes(&state, &scope, id).await?,
        Some(_) => {
            return Err(invalid(
                "/tax_template",
                "wrong_type",
                "`tax_template` is a tax template's id",
            ));
        }
    };
    let computed = taxes::compute(&lines, &taxes).map_err(|e| match e {
        TotalsError::Overflow { index } => invalid(
            format!("/lines/{index}"),
            "out_of_range",
            "the line's amount is too large",
        ),
        TotalsError::Rate { .. } => invalid(
            "/tax_template",
            "out_of_range",
            "the template holds a rate outside 0 to 100%",
        ),
        other => invalid("/lines", "out_of_range", other.to_string()),
    })?;
    let money = |v: i64| format_scaled(v, scale);
    Ok(Json(json!({
        "currency": currency,
        "lines": computed.lines.iter().map(|l| json!({
            "amount": money(l.amount),
            "net": money(l.net),
            "taxes": l.taxes.iter().map(|t| money(*t)).collect::<Vec<_>>(),
            "total": money(l.total),
        })).collect::<Vec<_>>(),
        "taxes": taxes.iter().zip(&computed.tax_totals).map(|(t, amount)| json!({
            "account": t.account,
            "rate": format_scaled(t.rate, 4),
            "included_in_price": t.included_in_price,
            "amount": money(*amount),
        })).collect::<Vec<_>>(),
        "net_total": money(computed.net_total),
        "tax_total": money(computed.tax_total),
        "grand_total": money(computed.grand_total),
    })))
}
