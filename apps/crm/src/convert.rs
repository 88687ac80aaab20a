//! `POST /api/v1/crm/leads/{id}/convert`: a lead becomes a customer and its contact.
//!
//! The body is `{customer: {receivable_account, currency?, ...}, contact?: {...}}`: the
//! customer's fields the lead cannot give, and any the caller wants otherwise. The
//! customer is named after the lead's organisation (else the lead), of the lead's
//! company, in its currency unless given; the contact is the lead's person (name, email,
//! phone), the customer's primary contact.
//!
//! Every write goes through the repository as the caller, so each is validated,
//! authorized and audited: the customer, the contact, the lead (Converted, with both
//! links, at the version read first, so two conversions cannot both win) and then each
//! opportunity of the lead, which gets the customer and keeps its lead.
//!
//! The repository writes one record per transaction and offers no transaction that
//! spans several pipelined writes, so the conversion compensates: when a step fails,
//! what the earlier steps wrote is undone in reverse order (the lead and opportunities
//! set back, the contact and customer deleted) before the problem is answered. The undo
//! runs as the system in the caller's name and trace, because the caller may create a
//! customer without being allowed to delete one; the audit log shows both the writes and
//! their undoing. The customer's naming series does not go back, so a failed conversion
//! spends a number.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use prefiq::Context;
use prefiq_data::entity::repo::{FieldError, RepoError, Repository, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Sql, SqlType};
use prefiq_http::{HttpState, Problem};
use serde_json::{Map, Value, json};

use crate::routes::{invalid, repository, signed_in};

/// The customer fields a conversion sets for the caller; the lead decides them.
const LEAD_DECIDES: [&str; 2] = ["company", "customer_name"];

/// The contact fields that tie it to the new customer, which the caller may not change.
const CUSTOMER_DECIDES: [&str; 2] = ["party_type", "party"];

/// Prefixes the pointers of a repository's refusal of a record written from the part of
/// the request at `prefix` (`/customer`), so the problem names the request's field.
fn nested(error: RepoError, prefix: &str) -> Problem {
    let pointer_of = |message: &str| match message.split_once(": ") {
        Some((pointer, _)) if pointer.starts_with('/') && !pointer.contains(' ') => {
            pointer.to_owned()
        }
        _ => String::new(),
    };
    match error {
        RepoError::Invalid(items) => Problem::from(RepoError::Invalid(
            items
                .into_iter()
                .map(|item| FieldError {
                    pointer: format!("{prefix}{}", item.pointer),
                    ..item
                })
                .collect(),
        )),
        RepoError::Unique(item) => Problem::from(RepoError::Unique(FieldError {
            pointer: format!("{prefix}{}", item.pointer),
            ..item
        })),
        RepoError::Rejected { message, .. } => invalid(
            format!("{prefix}{}", pointer_of(&message)),
            "rejected",
            message,
        ),
        other => Problem::from(other),
    }
}

/// Appends `more` to a problem's detail.
fn and_then_say(mut problem: Problem, more: &str) -> Problem {
    problem.detail = Some(match problem.detail.take() {
        Some(detail) => format!("{detail}; {more}"),
        None => more.to_owned(),
    });
    problem
}

/// A part of the body: an object, or nothing when `required` is false.
#[allow(clippy::result_large_err)]
fn part(
    body: &Map<String, Value>,
    name: &str,
    required: bool,
) -> Result<Map<String, Value>, Problem> {
    match body.get(name) {
        Some(Value::Object(fields)) => Ok(fields.clone()),
        None | Some(Value::Null) if !required => Ok(Map::new()),
        None | Some(Value::Null) => Err(invalid(
            format!("/{name}"),
            "required",
            format!(
                "`{name}` holds the {name}'s fields the lead cannot give, such as its receivable_account"
            ),
        )),
        Some(_) => Err(invalid(
            format!("/{name}"),
            "wrong_type",
            format!("`{name}` is an object of the {name}'s fields"),
        )),
    }
}

fn text<'a>(record: &'a Value, field: &str) -> Option<&'a str> {
    record
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// The lead's name as a contact's first and last name: the first word, and the rest.
pub fn split_name(name: &str) -> (String, Option<String>) {
    let name = name.trim();
    match name.split_once(char::is_whitespace) {
        Some((first, rest)) if !rest.trim().is_empty() => {
            (first.to_owned(), Some(rest.trim().to_owned()))
        }
        _ => (name.to_owned(), None),
    }
}

/// The customer `lead` becomes: named after its organisation (else the person), of its
/// company, with its email, in `currency` (the company's), then the caller's `fields`.
fn customer_of(
    lead: &Value,
    currency: Option<String>,
    fields: Map<String, Value>,
) -> Map<String, Value> {
    let mut customer = Map::new();
    let person = text(lead, "lead_name").unwrap_or_default();
    let organisation = text(lead, "company_name").unwrap_or(person);
    customer.insert("customer_name".into(), json!(organisation));
    customer.insert("company".into(), json!(text(lead, "company")));
    if let Some(currency) = currency {
        customer.insert("currency".into(), json!(currency));
    }
    if let Some(email) = text(lead, "email") {
        customer.insert("email".into(), json!(email));
    }
    customer.extend(fields);
    customer
}

/// The contact `lead` becomes: its person, email and phone, the primary contact of the
/// new `customer`, with the caller's `fields` (which cannot tie it to another party).
fn contact_of(lead: &Value, customer: &str, fields: Map<String, Value>) -> Map<String, Value> {
    let (first_name, last_name) = split_name(text(lead, "lead_name").unwrap_or_default());
    let mut contact = Map::new();
    contact.insert("first_name".into(), json!(first_name));
    contact.insert("last_name".into(), json!(last_name));
    for field in ["email", "phone"] {
        if let Some(value) = text(lead, field) {
            contact.insert(field.into(), json!(value));
        }
    }
    contact.insert("is_primary".into(), json!(true));
    contact.extend(fields);
    contact.insert("party_type".into(), json!("Customer"));
    contact.insert("party".into(), json!(customer));
    contact
}

/// What a conversion wrote so far, to undo when a later step fails.
struct Undo<'r> {
    repository: &'r Repository,
    system: TenantScope,
    customer: Option<String>,
    contact: Option<String>,
    /// The lead and the status it had.
    lead: Option<(String, Value)>,
    opportunities: Vec<String>,
}

impl Undo<'_> {
    /// Undoes every step in reverse order: the lead first, since it links the customer
    /// and the contact, which cannot be deleted while a live record links them; then
    /// the opportunities, whose customer would otherwise come back from the lead. Says
    /// what could not be undone, when something could not.
    async fn run(self) -> Result<(), String> {
        let repository = self.repository;
        let scope = &self.system;
        let mut left = Vec::new();
        if let Some((lead, status)) = &self.lead {
            let back = json!({"status": status, "customer": null, "contact": null});
            if let Err(e) = repository.update(scope, "lead", lead, back, None).await {
                left.push(format!("lead `{lead}` still converted ({e})"));
            }
        }
        for id in &self.opportunities {
            let back = json!({"customer": null});
            if let Err(e) = repository
                .update(scope, "opportunity", id, back, None)
                .await
            {
                left.push(format!("opportunity `{id}` still has the customer ({e})"));
            }
        }
        for (entity, id) in [("contact", &self.contact), ("customer", &self.customer)] {
            if let Some(id) = id
                && let Err(e) = repository.delete(scope, entity, id).await
            {
                left.push(format!("{entity} `{id}` is left ({e})"));
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        let left = left.join(", ");
        tracing::error!(target: "crm::convert", left = %left, "a failed lead conversion could not be undone");
        Err(left)
    }

    /// Undoes what was written and answers `problem`, telling also what could not be
    /// undone.
    async fn fail(self, problem: Problem) -> Problem {
        match self.run().await {
            Ok(()) => problem,
            Err(left) => and_then_say(problem, &format!("undoing the conversion failed: {left}")),
        }
    }
}

/// The ids of the live opportunities of `lead`, every one (not only those the caller may
/// list): each is then updated as the caller, who must be allowed to.
async fn opportunities_of(
    repository: &Repository,
    scope: &TenantScope,
    lead: &str,
) -> Result<Vec<String>, RepoError> {
    let (tenant, lead) = (scope.tenant().to_owned(), lead.to_owned());
    let rows = repository
        .read(
            scope,
            Box::new(move |conn| {
                let mut sql = Sql::default();
                let t = sql.arg(Arg::Text(Some(tenant.clone())));
                let l = sql.arg(Arg::Text(Some(lead.clone())));
                sql.text = format!(
                    "SELECT id FROM opportunity WHERE tenant_id = {t} AND lead = {l} AND deleted_at IS NULL ORDER BY id"
                );
                Box::pin(async move { Ok(conn.fetch(&sql, &[SqlType::Text]).await?) })
            }),
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| row.into_iter().next().and_then(Cell::into_text))
        .collect())
}

/// The base currency of `company`, read as the system: selling roles need not read
/// companies to convert a lead of one.
async fn company_currency(
    repository: &Repository,
    scope: &TenantScope,
    company: &str,
) -> Result<Option<String>, RepoError> {
    let (scope_for, company) = (scope.clone(), company.to_owned());
    repository
        .read(
            scope,
            Box::new(move |conn| {
                let (scope, company) = (scope_for.clone(), company.clone());
                Box::pin(async move {
                    Ok(accounting::ledger::load_company(conn, &scope, &company)
                        .await?
                        .map(|c| c.base_currency))
                })
            }),
        )
        .await
}

/// `POST /api/v1/crm/leads/{id}/convert` → 201 `{customer, contact, lead, opportunities}`:
/// the new customer and contact, the converted lead, and the ids of the opportunities
/// that now carry the customer.
pub async fn convert(
    State(state): State<HttpState>,
    Extension(context): Extension<Context>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let scope = signed_in(&context)?;
    let repository = repository(&state)?;
    // A caller who may not make the records learns so before anything is read or written.
    for (entity, action) in [
        ("lead", "update"),
        ("customer", "create"),
        ("contact", "create"),
    ] {
        repository.check_route(&scope, entity, action).await?;
    }
    let body: Map<String, Value> = prefiq_http::json_object(&body).map_err(|e| {
        invalid(
            "",
            "invalid_json",
            format!(
                "the body must be {{customer: {{receivable_account, ...}}, contact?: {{...}}}}: {e}"
            ),
        )
    })?;
    if let Some(unknown) = body
        .keys()
        .find(|k| !["customer", "contact"].contains(&k.as_str()))
    {
        return Err(invalid(
            format!("/{unknown}"),
            "unknown_field",
            format!("`{unknown}` is not a field here; fields are customer, contact"),
        ));
    }
    let customer_fields = part(&body, "customer", true)?;
    let contact_fields = part(&body, "contact", false)?;
    for (fields, decided, name, why) in [
        (
            &customer_fields,
            &LEAD_DECIDES[..],
            "customer",
            "the lead's",
        ),
        (
            &contact_fields,
            &CUSTOMER_DECIDES[..],
            "contact",
            "the new customer's",
        ),
    ] {
        if let Some(field) = decided.iter().find(|f| fields.contains_key(**f)) {
            return Err(invalid(
                format!("/{name}/{field}"),
                "read_only",
                format!("the {name}'s `{field}` is {why}; leave it out"),
            ));
        }
    }

    let lead = repository.get(&scope, "lead", &id).await?;
    let lead_name = text(&lead, "name").unwrap_or(&id).to_owned();
    if text(&lead, "status") == Some("Converted") || text(&lead, "customer").is_some() {
        return Err(Problem::new(StatusCode::CONFLICT).with_detail(format!(
            "lead {lead_name} is already converted, to customer `{}`; a lead converts once",
            text(&lead, "customer").unwrap_or("?")
        )));
    }
    let company = text(&lead, "company").unwrap_or_default().to_owned();
    let status = text(&lead, "status").unwrap_or("Open").to_owned();
    let version = lead.get("version").and_then(Value::as_i64);
    let system = TenantScope::new(&Context {
        principal: None,
        ..context.clone()
    })?;
    // Asked now so that a caller who may not move the lead's history is refused before
    // anything is written; the list is read again once the lead is converted.
    if !opportunities_of(&repository, &system, &id)
        .await?
        .is_empty()
    {
        repository
            .check_route(&scope, "opportunity", "update")
            .await?;
    }

    let currency = company_currency(&repository, &system, &company).await?;
    let customer = customer_of(&lead, currency, customer_fields);
    let customer = repository
        .create(&scope, "customer", Value::Object(customer))
        .await
        .map_err(|e| nested(e, "/customer"))?;
    let customer_id = text(&customer, "id").unwrap_or_default().to_owned();
    let mut undo = Undo {
        repository: &repository,
        system,
        customer: Some(customer_id.clone()),
        contact: None,
        lead: None,
        opportunities: Vec::new(),
    };

    let contact = contact_of(&lead, &customer_id, contact_fields);
    let contact = match repository
        .create(&scope, "contact", Value::Object(contact))
        .await
    {
        Ok(contact) => contact,
        Err(e) => return Err(undo.fail(nested(e, "/contact")).await),
    };
    let contact_id = text(&contact, "id").unwrap_or_default().to_owned();
    undo.contact = Some(contact_id.clone());

    let converted = json!({"status": "Converted", "customer": customer_id, "contact": contact_id});
    let lead = match repository
        .update(&scope, "lead", &id, converted, version)
        .await
    {
        Ok(lead) => lead,
        Err(RepoError::PreconditionFailed { .. }) => {
            let problem = Problem::new(StatusCode::CONFLICT).with_detail(format!(
                "lead {lead_name} changed while it was being converted (another conversion or an edit); nothing of this conversion was kept: read the lead and convert it again"
            ));
            return Err(undo.fail(problem).await);
        }
        Err(e) => {
            let problem = and_then_say(
                Problem::from(e),
                &format!("the lead {lead_name} was not converted"),
            );
            return Err(undo.fail(problem).await);
        }
    };
    undo.lead = Some((id.clone(), json!(status)));

    // The lead's history comes along: its opportunities are the customer's now. They are
    // listed after the lead is converted, since one made from then on takes the customer
    // from the lead by itself, so none made meanwhile is missed.
    let opportunities = match opportunities_of(&repository, &undo.system, &id).await {
        Ok(opportunities) => opportunities,
        Err(e) => return Err(undo.fail(Problem::from(e)).await),
    };
    for opportunity in &opportunities {
        let patch = json!({"customer": customer_id});
        if let Err(e) = repository
            .update(&scope, "opportunity", opportunity, patch, None)
            .await
        {
            let problem = and_then_say(
                Problem::from(e),
                &format!(
                    "opportunity `{opportunity}` could not take the customer, so the lead was not converted"
                ),
            );
            return Err(undo.fail(problem).await);
        }
        undo.opportunities.push(opportunity.clone());
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "customer": customer,
            "contact": contact,
            "lead": lead,
            "opportunities": opportunities,
        })),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_leads_name_is_a_first_name_and_the_rest() {
        for (name, first, last) in [
            ("Ana", "Ana", None),
            ("Ana Müller", "Ana", Some("Müller")),
            ("  Ana  Maria Müller ", "Ana", Some("Maria Müller")),
            ("", "", None),
        ] {
            assert_eq!(
                split_name(name),
                (first.to_owned(), last.map(str::to_owned)),
                "{name}"
            );
        }
    }

    #[test]
    fn refusals_of_a_record_name_the_part_of_the_request_it_came_from() {
        let pointers = |error: RepoError| {
            nested(error, "/customer")
                .errors
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["pointer"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let field = |pointer: &str| FieldError {
            pointer: pointer.into(),
            code: "missing_required",
            message: "required".into(),
        };
        assert_eq!(
            pointers(RepoError::Invalid(vec![field("/currency"), field("")])),
            ["/customer/currency", "/customer"]
        );
        let rejected = |message: &str| RepoError::Rejected {
            hook: "trade::receivable_account".into(),
            message: message.into(),
        };
        assert_eq!(
            pointers(rejected("/receivable_account: not a Receivable account")),
            ["/customer/receivable_account"]
        );
        assert_eq!(pointers(rejected("the period is closed")), ["/customer"]);
        assert_eq!(
            pointers(RepoError::Unique(field("/tax_id"))),
            ["/customer/tax_id"]
        );
    }
}
