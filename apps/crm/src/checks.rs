//! The rules of leads and opportunities that their schemas cannot say, as validate hooks.
//! Each refusal starts with the JSON pointer of the field at fault, which the API answers
//! as a 422 problem naming it.
//!
//! An opportunity:
//! - is of a lead or of a customer: at least one. Both only once the lead is converted,
//!   and then the customer is the lead's; an opportunity of a converted lead that names
//!   no customer gets the lead's, so the lead's history follows it to the customer;
//! - has a lead and a customer of its own company;
//! - has a probability from 0 to 100%; an empty one is the stage's
//!   ([`default_probability`]), and one that was its old stage's follows a new stage;
//! - has an amount that is not negative, in its currency (the amount's when empty).
//!
//! A lead is Converted only with its customer, which is of its company, and its contact is
//! one of that customer's.

use std::sync::Arc;

use prefiq::RegisterContext;
use prefiq_data::entity::repo::{
    EntityEvent, EntityHook, HookInput, RepoError, Repository, TenantScope,
};
use prefiq_data::entity::sql::{Arg, Cell, Sql, SqlType};
use prefiq_data::entity::value::{format_scaled, parse_scaled};
use serde_json::{Map, Value};
use trade::TradeRepository;

/// The digits of a probability after the point.
pub const PROBABILITY_SCALE: u8 = 2;

/// 100% as a probability of [`PROBABILITY_SCALE`] digits.
pub const CERTAIN: i64 = 10_000;

/// The stages of an opportunity in pipeline order, each with its default probability in
/// hundredths of a percent.
pub const STAGES: [(&str, i64); 6] = [
    ("Prospecting", 1_000),
    ("Qualification", 2_000),
    ("Proposal", 5_000),
    ("Negotiation", 7_500),
    ("Won", 10_000),
    ("Lost", 0),
];

/// The stage a new opportunity has when none is given (the schema's default).
const FIRST_STAGE: &str = "Prospecting";

/// The default probability of `stage`, in hundredths of a percent; `None` for an unknown
/// stage (which field validation refuses).
pub fn default_probability(stage: &str) -> Option<i64> {
    STAGES.iter().find(|(s, _)| *s == stage).map(|(_, p)| *p)
}

/// Where `stage` comes in the pipeline.
pub fn stage_order(stage: &str) -> Option<usize> {
    STAGES.iter().position(|(s, _)| *s == stage)
}

/// A refusal of the field at `pointer`.
fn refuse(pointer: &str, message: impl std::fmt::Display) -> String {
    format!("{pointer}: {message}")
}

fn str_field<'a>(doc: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    doc.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A probability as given: `None` when empty, `Some(None)` when it is not a number this
/// hook reads (field validation then says what is wrong), else its hundredths.
fn probability_of(value: Option<&Value>) -> Option<Option<i64>> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(parse_scaled(s.trim(), PROBABILITY_SCALE).ok()),
        Some(Value::Number(n)) if n.is_i64() => {
            Some(parse_scaled(&n.to_string(), PROBABILITY_SCALE).ok())
        }
        Some(_) => Some(None),
    }
}

/// Fills an empty probability from the stage, moves one that was the old stage's default
/// to the new stage's, and refuses one outside 0 to 100%.
pub fn settle_probability(
    doc: &mut Map<String, Value>,
    old: Option<&Map<String, Value>>,
) -> Result<(), String> {
    let stage = match doc.get("stage") {
        None | Some(Value::Null) => FIRST_STAGE.to_owned(),
        Some(Value::String(s)) => s.clone(),
        // Not a stage: field validation refuses it with its own pointer.
        Some(_) => return Ok(()),
    };
    let Some(default) = default_probability(&stage) else {
        return Ok(());
    };
    let set = |doc: &mut Map<String, Value>, p: i64| {
        doc.insert(
            "probability".into(),
            Value::String(format_scaled(p, PROBABILITY_SCALE)),
        );
    };
    match probability_of(doc.get("probability")) {
        None => set(doc, default),
        Some(None) => {}
        Some(Some(p)) if !(0..=CERTAIN).contains(&p) => {
            return Err(refuse(
                "/probability",
                format!(
                    "a probability is a percentage from 0 to 100, not {}",
                    format_scaled(p, PROBABILITY_SCALE)
                ),
            ));
        }
        Some(Some(p)) => {
            // An update sends the stored probability along with a new stage: when that
            // was the old stage's default, nobody chose it, so it follows the stage.
            let Some(old) = old else {
                return Ok(());
            };
            let old_stage = old.get("stage").and_then(Value::as_str);
            let old_probability = probability_of(old.get("probability")).flatten();
            if old_stage != Some(stage.as_str())
                && old_probability == Some(p)
                && old_stage.and_then(default_probability) == Some(p)
            {
                set(doc, default);
            }
        }
    }
    Ok(())
}

/// Takes an empty currency from the amount, and refuses a negative amount or one in
/// another currency than the opportunity's.
pub fn settle_currency(doc: &mut Map<String, Value>) -> Result<(), String> {
    let Some(amount) = doc.get("amount").and_then(Value::as_object) else {
        return Ok(());
    };
    if amount
        .get("amount")
        .and_then(Value::as_str)
        .is_some_and(|a| a.trim_start().starts_with('-'))
    {
        return Err(refuse("/amount", "an opportunity's amount is not negative"));
    }
    let Some(in_currency) = amount
        .get("currency")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Ok(());
    };
    match str_field(doc, "currency") {
        None => {
            doc.insert("currency".into(), Value::String(in_currency));
        }
        Some(currency) if currency != in_currency => {
            return Err(refuse(
                "/amount",
                format!(
                    "the amount is in {in_currency} and the opportunity's currency is {currency}; give them in one currency"
                ),
            ));
        }
        Some(_) => {}
    }
    Ok(())
}

/// `columns` (as text) of the live row `id` of `table`, or `None` when there is none.
/// `table` and `columns` are this app's own names, never a client's.
pub async fn row_of(
    repository: &Repository,
    scope: &TenantScope,
    table: &'static str,
    columns: &'static [&'static str],
    id: &str,
) -> Result<Option<Vec<Option<String>>>, RepoError> {
    let (tenant, id) = (scope.tenant().to_owned(), id.to_owned());
    let rows = repository
        .read(
            scope,
            Box::new(move |conn| {
                let mut sql = Sql::default();
                let t = sql.arg(Arg::Text(Some(tenant.clone())));
                let i = sql.arg(Arg::Text(Some(id.clone())));
                let select: Vec<String> = columns
                    .iter()
                    .map(|c| format!("CAST({c} AS TEXT)"))
                    .collect();
                sql.text = format!(
                    "SELECT {} FROM {table} WHERE tenant_id = {t} AND id = {i} AND deleted_at IS NULL",
                    select.join(", ")
                );
                let types = vec![SqlType::Text; columns.len()];
                Box::pin(async move { Ok(conn.fetch(&sql, &types).await?) })
            }),
        )
        .await?;
    Ok(rows.into_iter().next().map(|row| {
        row.into_iter()
            .map(Cell::into_text)
            .map(|t| t.filter(|t| !t.is_empty()))
            .collect()
    }))
}

/// The one column of a row read by [`row_of`].
fn column(row: &[Option<String>], i: usize) -> Option<&str> {
    row.get(i).and_then(Option::as_deref)
}

/// The row `id` of `table` (a lead or a customer) that an opportunity of `company` names:
/// `columns` of it, the first being its company, which must be the opportunity's.
async fn party_row(
    repository: &Repository,
    scope: &TenantScope,
    (table, columns): (&'static str, &'static [&'static str]),
    id: &str,
    company: Option<&str>,
) -> Result<Vec<Option<String>>, String> {
    let pointer = format!("/{table}");
    let row = row_of(repository, scope, table, columns, id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| refuse(&pointer, format!("there is no {table} `{id}`")))?;
    if let (Some(company), Some(theirs)) = (company, column(&row, 0))
        && company != theirs
    {
        return Err(refuse(
            &pointer,
            format!("the {table} belongs to another company than the opportunity"),
        ));
    }
    Ok(row)
}

/// An opportunity: its lead or customer, probability and currency.
async fn check_opportunity(
    services: &TradeRepository,
    input: HookInput,
) -> Result<Map<String, Value>, String> {
    let mut doc = input.doc;
    settle_probability(&mut doc, input.old.as_ref())?;
    settle_currency(&mut doc)?;
    let company = str_field(&doc, "company").map(str::to_owned);
    let lead = str_field(&doc, "lead").map(str::to_owned);
    let customer = str_field(&doc, "customer").map(str::to_owned);
    if lead.is_none() && customer.is_none() {
        return Err(refuse(
            "/lead",
            "an opportunity is of a lead or of a customer: give `lead` or `customer`",
        ));
    }
    let repository = services.get()?;
    let scope = &input.scope;
    if let Some(lead) = &lead {
        let row = party_row(
            repository,
            scope,
            ("lead", &["company", "customer"]),
            lead,
            company.as_deref(),
        )
        .await?;
        match (&customer, column(&row, 1)) {
            // The lead became a customer: its opportunities are that customer's too.
            (None, Some(converted)) => {
                doc.insert("customer".into(), Value::String(converted.to_owned()));
            }
            (Some(given), Some(converted)) if given != converted => {
                return Err(refuse(
                    "/customer",
                    format!(
                        "the lead was converted to the customer `{converted}`, so that is the opportunity's customer"
                    ),
                ));
            }
            (Some(_), None) => {
                return Err(refuse(
                    "/customer",
                    "give the lead or the customer, not both: a lead's opportunities get its customer when the lead is converted",
                ));
            }
            _ => {}
        }
    }
    if let Some(customer) = str_field(&doc, "customer").map(str::to_owned) {
        party_row(
            repository,
            scope,
            ("customer", &["company"]),
            &customer,
            company.as_deref(),
        )
        .await?;
    }
    Ok(doc)
}

/// A lead: Converted only with its customer, of its company, and a contact of that
/// customer.
async fn check_lead(
    services: &TradeRepository,
    input: HookInput,
) -> Result<Map<String, Value>, String> {
    let doc = input.doc;
    let customer = str_field(&doc, "customer");
    if str_field(&doc, "status") == Some("Converted") && customer.is_none() {
        return Err(refuse(
            "/status",
            "a lead is Converted with its customer: convert it (POST /api/v1/crm/leads/{id}/convert), or link the customer it became",
        ));
    }
    let repository = services.get()?;
    if let Some(customer) = customer {
        let row = row_of(repository, &input.scope, "customer", &["company"], customer)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| refuse("/customer", format!("there is no customer `{customer}`")))?;
        if let (Some(company), Some(theirs)) = (str_field(&doc, "company"), column(&row, 0))
            && company != theirs
        {
            return Err(refuse(
                "/customer",
                "the customer belongs to another company than the lead",
            ));
        }
    }
    if let Some(contact) = str_field(&doc, "contact") {
        let row = row_of(
            repository,
            &input.scope,
            "contact",
            &["party_type", "party"],
            contact,
        )
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| refuse("/contact", format!("there is no contact `{contact}`")))?;
        if column(&row, 0) != Some("Customer") || column(&row, 1) != customer {
            return Err(refuse(
                "/contact",
                "the lead's contact is one of the lead's customer's contacts",
            ));
        }
    }
    Ok(doc)
}

/// Which check a hook runs.
#[derive(Debug, Clone, Copy)]
enum Check {
    Lead,
    Opportunity,
}

/// Once an opportunity is made for an open lead, the lead is at the Opportunity stage.
/// A lead already further (Converted, Lost) keeps its status.
async fn lead_has_an_opportunity(
    services: &TradeRepository,
    input: HookInput,
) -> Result<Map<String, Value>, String> {
    let Some(lead) = input
        .doc
        .get("lead")
        .and_then(Value::as_str)
        .filter(|l| !l.is_empty())
    else {
        return Ok(input.doc);
    };
    let repository = services.get()?;
    let stored = repository
        .get(&input.scope, "lead", lead)
        .await
        .map_err(|e| e.to_string())?;
    if matches!(
        stored.get("status").and_then(Value::as_str),
        Some("Open" | "Replied")
    ) {
        repository
            .update(
                &input.scope,
                "lead",
                lead,
                serde_json::json!({"status": "Opportunity"}),
                None,
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(input.doc)
}

/// Registers the checks as validate hooks of their entities, and the lead's move to the
/// Opportunity stage.
pub fn register(cx: &mut RegisterContext<'_>, services: &TradeRepository) {
    {
        let services = services.clone();
        cx.services.contribute(Arc::new(EntityHook {
            module: "crm".into(),
            name: "lead_status".into(),
            entity: "opportunity".into(),
            event: EntityEvent::AfterInsert,
            run: Arc::new(move |input: HookInput| {
                let services = services.clone();
                Box::pin(async move { lead_has_an_opportunity(&services, input).await })
            }),
        }));
    }
    for (entity, name, check) in [
        ("lead", "conversion", Check::Lead),
        ("opportunity", "party_and_figures", Check::Opportunity),
    ] {
        let services = services.clone();
        cx.services.contribute(Arc::new(EntityHook {
            module: "crm".into(),
            name: name.into(),
            entity: entity.into(),
            event: EntityEvent::Validate,
            run: Arc::new(move |input: HookInput| {
                let services = services.clone();
                Box::pin(async move {
                    match check {
                        Check::Lead => check_lead(&services, input).await,
                        Check::Opportunity => check_opportunity(&services, input).await,
                    }
                })
            }),
        }));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settled(doc: Value, old: Option<Value>) -> Result<Value, String> {
        let mut doc = doc.as_object().unwrap().clone();
        let old = old.map(|o| o.as_object().unwrap().clone());
        settle_probability(&mut doc, old.as_ref())?;
        settle_currency(&mut doc)?;
        Ok(Value::Object(doc))
    }

    fn check(doc: Value, old: Option<Value>, expected: Result<Value, &str>) {
        assert_eq!(
            settled(doc.clone(), old),
            expected.map_err(str::to_owned),
            "{doc}"
        );
    }

    #[test]
    fn an_empty_probability_is_the_stages() {
        for (stage, probability) in [
            ("Prospecting", "10.00"),
            ("Qualification", "20.00"),
            ("Proposal", "50.00"),
            ("Negotiation", "75.00"),
            ("Won", "100.00"),
            ("Lost", "0.00"),
        ] {
            check(
                json!({"stage": stage}),
                None,
                Ok(json!({"stage": stage, "probability": probability})),
            );
            check(
                json!({"stage": stage, "probability": ""}),
                None,
                Ok(json!({"stage": stage, "probability": probability})),
            );
        }
        // No stage is the first stage.
        check(json!({}), None, Ok(json!({"probability": "10.00"})));
        // An unknown stage is left to field validation, which names it.
        check(
            json!({"stage": "Dreaming"}),
            None,
            Ok(json!({"stage": "Dreaming"})),
        );
    }

    #[test]
    fn a_given_probability_is_kept_within_0_to_100() {
        check(
            json!({"stage": "Proposal", "probability": "33.5"}),
            None,
            Ok(json!({"stage": "Proposal", "probability": "33.5"})),
        );
        check(
            json!({"stage": "Proposal", "probability": 100}),
            None,
            Ok(json!({"stage": "Proposal", "probability": 100})),
        );
        check(
            json!({"stage": "Proposal", "probability": "150"}),
            None,
            Err("/probability: a probability is a percentage from 0 to 100, not 150.00"),
        );
        check(
            json!({"stage": "Proposal", "probability": -1}),
            None,
            Err("/probability: a probability is a percentage from 0 to 100, not -1.00"),
        );
        // What this check cannot read is field validation's to refuse.
        check(
            json!({"stage": "Proposal", "probability": "a lot"}),
            None,
            Ok(json!({"stage": "Proposal", "probability": "a lot"})),
        );
    }

    #[test]
    fn a_default_probability_follows_a_new_stage_and_a_chosen_one_stays() {
        let old = json!({"stage": "Prospecting", "probability": "10.00"});
        check(
            json!({"stage": "Negotiation", "probability": "10.00"}),
            Some(old.clone()),
            Ok(json!({"stage": "Negotiation", "probability": "75.00"})),
        );
        let chosen = json!({"stage": "Prospecting", "probability": "35.00"});
        check(
            json!({"stage": "Negotiation", "probability": "35.00"}),
            Some(chosen),
            Ok(json!({"stage": "Negotiation", "probability": "35.00"})),
        );
        // The same stage: nothing moves.
        check(
            json!({"stage": "Prospecting", "probability": "10.00"}),
            Some(old),
            Ok(json!({"stage": "Prospecting", "probability": "10.00"})),
        );
    }

    #[test]
    fn the_currency_comes_from_the_amount_and_agrees_with_it() {
        let eur = json!({"amount": "1000.00", "currency": "EUR"});
        check(
            json!({"stage": "Won", "probability": "100", "amount": eur}),
            None,
            Ok(json!({"stage": "Won", "probability": "100", "amount": eur, "currency": "EUR"})),
        );
        check(
            json!({"stage": "Won", "probability": "100", "amount": eur, "currency": "USD"}),
            None,
            Err(
                "/amount: the amount is in EUR and the opportunity's currency is USD; give them in one currency",
            ),
        );
        check(
            json!({"stage": "Won", "probability": "100", "amount": {"amount": "-1.00", "currency": "EUR"}}),
            None,
            Err("/amount: an opportunity's amount is not negative"),
        );
    }

    #[test]
    fn stages_are_in_pipeline_order() {
        assert_eq!(stage_order("Prospecting"), Some(0));
        assert_eq!(stage_order("Won"), Some(4));
        assert_eq!(stage_order("Dreaming"), None);
        assert_eq!(default_probability("Negotiation"), Some(7_500));
    }
}
