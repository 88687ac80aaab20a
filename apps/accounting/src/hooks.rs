//! The accounting app's entity hooks: what the ledger owns, what posted books protect,
//! and the checks of master data the schemas cannot say.

use std::sync::Arc;

use prefiq::RegisterContext;
use prefiq_data::entity::repo::{EntityEvent, EntityHook, EntityHookFn, HookInput};
use serde_json::{Map, Value};

use crate::books::{Books, PostingsOf};

fn hook(entity: &str, event: EntityEvent, name: &str, run: EntityHookFn) -> Arc<EntityHook> {
    Arc::new(EntityHook {
        module: "accounting".into(),
        name: name.into(),
        entity: entity.into(),
        event,
        run,
    })
}

/// A hook that refuses every write of a ledger-owned entity made through the pipeline.
fn written_by_the_ledger(entity: &'static str) -> EntityHookFn {
    Arc::new(move |_input: HookInput| {
        Box::pin(async move {
            Err(format!(
                "{entity} rows are written by posting journal entries, never directly"
            ))
        })
    })
}

fn text_field(doc: &Map<String, Value>, name: &str) -> Option<String> {
    doc.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The longest fiscal year, in days: two years, for a first or changed year that runs
/// longer than twelve months.
pub const MAX_FISCAL_YEAR_DAYS: i64 = 731;

/// Registers every hook of the app.
pub fn register(cx: &mut RegisterContext<'_>, books: &Arc<Books>) {
    for entity in ["gl_entry", "account_balance"] {
        for event in [
            EntityEvent::BeforeInsert,
            EntityEvent::BeforeUpdate,
            EntityEvent::BeforeDelete,
        ] {
            cx.services.contribute(hook(
                entity,
                event,
                "immutable",
                written_by_the_ledger(entity),
            ));
        }
    }
    // Only the ledger writes closing and imported entries.
    cx.services.contribute(hook(
        "journal_entry",
        EntityEvent::Validate,
        "entry_type",
        Arc::new(|input: HookInput| {
            Box::pin(async move {
                match input.doc.get("entry_type").and_then(Value::as_str) {
                    Some(kind @ ("Closing Entry" | "Import")) => Err(format!(
                        "a `{kind}` is written by the ledger (period close, import), not by hand"
                    )),
                    Some(kind) if crate::documents::DOCUMENT_ENTRY_TYPES.contains(&kind) => {
                        Err(format!(
                            "/entry_type: a `{kind}` entry is written by submitting its document, and cancelled by cancelling it"
                        ))
                    }
                    _ => Ok(input.doc),
                }
            })
        }),
    ));
    closed_books(cx);
    {
        let books = books.clone();
        cx.services.contribute(hook(
            "company",
            EntityEvent::BeforeUpdate,
            "currency",
            Arc::new(move |input: HookInput| {
                let books = books.clone();
                Box::pin(async move {
                    let before = input.old.as_ref().and_then(|o| text_field(o, "currency"));
                    let after = text_field(&input.doc, "currency");
                    if after.is_none() || before == after {
                        return Ok(input.doc);
                    }
                    let id = input.old.as_ref().and_then(|o| text_field(o, "id")).unwrap_or_default();
                    match books.has_postings(&input.scope, PostingsOf::Company, &id).await {
                        Ok(false) => Ok(input.doc),
                        Ok(true) => Err("the company has postings in its currency; its currency does not change".into()),
                        Err(e) => Err(e.to_string()),
                    }
                })
            }),
        ));
    }
    // Reports group postings by the account's company and root type, and post only to
    // leaves: once an account has postings, none of those changes.
    {
        let books = books.clone();
        cx.services.contribute(hook(
            "account",
            EntityEvent::BeforeUpdate,
            "posted",
            Arc::new(move |input: HookInput| {
                let books = books.clone();
                Box::pin(async move {
                    let old = input.old.clone().unwrap_or_default();
                    let changed: Vec<&str> = ["company", "root_type", "is_group", "currency"]
                        .into_iter()
                        .filter(|f| input.doc.get(*f).is_some() && input.doc.get(*f) != old.get(*f))
                        .collect();
                    if changed.is_empty() {
                        return Ok(input.doc);
                    }
                    let id = input.old.as_ref().and_then(|o| text_field(o, "id")).unwrap_or_default();
                    match books.has_postings(&input.scope, PostingsOf::Account, &id).await {
                        Ok(false) => Ok(input.doc),
                        Ok(true) => Err(format!(
                            "the account has postings; its {} does not change (freeze it and open another)",
                            changed.join(", ")
                        )),
                        Err(e) => Err(e.to_string()),
                    }
                })
            }),
        ));
    }
    {
        let books = books.clone();
        cx.services.contribute(hook(
            "company",
            EntityEvent::AfterInsert,
            "standard_chart",
            Arc::new(move |input: HookInput| {
                let books = books.clone();
                Box::pin(async move {
                    if input.doc.get("chart").and_then(Value::as_str) == Some("empty") {
                        return Ok(input.doc);
                    }
                    let id = text_field(&input.doc, "id").unwrap_or_default();
                    let company = books
                        .company(&input.scope, &id)
                        .await
                        .map_err(|e| e.to_string())?;
                    books
                        .create_standard_chart(&input.scope, &company)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(input.doc)
                })
            }),
        ));
    }
    {
        let books = books.clone();
        cx.services.contribute(hook(
            "fiscal_year",
            EntityEvent::AfterInsert,
            "periods",
            Arc::new(move |input: HookInput| {
                let books = books.clone();
                Box::pin(async move {
                    books
                        .create_periods(&input.scope, &input.doc)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(input.doc)
                })
            }),
        ));
    }
    {
        let books = books.clone();
        cx.services.contribute(hook(
            "account",
            EntityEvent::Validate,
            "parent",
            Arc::new(move |input: HookInput| {
                let books = books.clone();
                Box::pin(async move {
                    crate::books::check_account(&books, &input.scope, &input.doc).await?;
                    Ok(input.doc)
                })
            }),
        ));
    }
    // A currency's minor unit is ISO 4217's, which money fields already use.
    cx.services.contribute(hook(
        "currency",
        EntityEvent::Validate,
        "fraction_digits",
        Arc::new(|input: HookInput| {
            Box::pin(async move {
                let code = text_field(&input.doc, "code").unwrap_or_default();
                let digits = input.doc.get("fraction_digits").and_then(Value::as_i64);
                let iso = i64::from(prefiq_data::entity::value::currency_scale(&code));
                match digits {
                    Some(d) if d != iso => Err(format!(
                        "{code} has {iso} digits in its minor unit (ISO 4217), not {d}"
                    )),
                    _ => Ok(input.doc),
                }
            })
        }),
    ));
    // A rate is positive, between two different ISO 4217 codes.
    cx.services.contribute(hook(
        "exchange_rate",
        EntityEvent::Validate,
        "rate",
        Arc::new(|input: HookInput| {
            Box::pin(async move {
                let code = |name: &str| {
                    text_field(&input.doc, name)
                        .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
                };
                let (Some(from), Some(to)) = (code("from_code"), code("to_code")) else {
                    return Err("from_code and to_code are ISO 4217 codes such as EUR".into());
                };
                if from == to {
                    return Err(format!("a rate from {from} to itself is always 1"));
                }
                let positive = match input.doc.get("rate") {
                    Some(Value::String(text)) => crate::money::parse_rate(text).is_some(),
                    Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n > 0),
                    _ => true,
                };
                if !positive {
                    return Err("an exchange rate is positive".into());
                }
                Ok(input.doc)
            })
        }),
    ));
    cx.services.contribute(hook(
        "fiscal_year",
        EntityEvent::Validate,
        "dates",
        Arc::new(|input: HookInput| {
            Box::pin(async move {
                let start = text_field(&input.doc, "start_date");
                let end = text_field(&input.doc, "end_date");
                if let (Some(start), Some(end)) = (start, end) {
                    if start > end {
                        return Err(format!(
                            "the fiscal year ends ({end}) before it starts ({start})"
                        ));
                    }
                    // Its periods are made month by month: a year of centuries would make
                    // thousands of them in one request.
                    let days = |date: &str| crate::dates::parse(date).map(crate::dates::day_number);
                    if let (Some(a), Some(b)) = (days(&start), days(&end))
                        && b - a >= MAX_FISCAL_YEAR_DAYS
                    {
                        return Err(format!(
                            "a fiscal year is at most {MAX_FISCAL_YEAR_DAYS} days long (two years); {start} to {end} is longer"
                        ));
                    }
                }
                Ok(input.doc)
            })
        }),
    ));
}

/// Fields that never change after the row is created, and why.
fn fixed(fields: &'static [&'static str], why: &'static str) -> EntityHookFn {
    Arc::new(move |input: HookInput| {
        Box::pin(async move {
            let old = input.old.clone().unwrap_or_default();
            for field in fields {
                let (before, after) = (old.get(*field), input.doc.get(*field));
                if after.is_some() && before != after {
                    return Err(format!("`{field}` does not change: {why}"));
                }
            }
            Ok(input.doc)
        })
    })
}

/// Refuses any change of a row whose stored `status` is `Closed`.
fn unless_closed(what: &'static str, action: &'static str) -> EntityHookFn {
    Arc::new(move |input: HookInput| {
        Box::pin(async move {
            let name = |doc: &Map<String, Value>| {
                text_field(doc, "period_name")
                    .or_else(|| text_field(doc, "year_name"))
                    .unwrap_or_default()
            };
            match &input.old {
                Some(old) if text_field(old, "status").as_deref() == Some("Closed") => Err(
                    format!("the {what} {} is closed and cannot be {action}", name(old)),
                ),
                _ => Ok(input.doc),
            }
        })
    })
}

/// A closed period and a closed fiscal year are immutable, and no period or year changes
/// its company or dates, so no posting can land in or leave a closed period by an edit.
/// Closing and reopening are their own audited routes; deletes of what postings use are
/// refused by the engine's referential rule.
fn closed_books(cx: &mut RegisterContext<'_>) {
    const REOPEN: &str = "close a period with POST /api/v1/accounting/periods/{id}/close and reopen the latest closed one with POST /api/v1/accounting/periods/{id}/reopen";
    for (entity, what, dates_why) in [
        (
            "accounting_period",
            "period",
            "postings are filed in the period by date",
        ),
        (
            "fiscal_year",
            "fiscal year",
            "its periods were made from these dates",
        ),
    ] {
        cx.services.contribute(hook(
            entity,
            EntityEvent::BeforeUpdate,
            "closed",
            unless_closed(what, "changed"),
        ));
        cx.services.contribute(hook(
            entity,
            EntityEvent::BeforeDelete,
            "closed",
            unless_closed(what, "deleted"),
        ));
        cx.services.contribute(hook(
            entity,
            EntityEvent::BeforeUpdate,
            "fixed_dates",
            fixed(&["company", "start_date", "end_date"], dates_why),
        ));
        cx.services.contribute(hook(
            entity,
            EntityEvent::BeforeUpdate,
            "status",
            fixed(&["status"], REOPEN),
        ));
    }
    cx.services.contribute(hook(
        "accounting_period",
        EntityEvent::BeforeUpdate,
        "fixed_year",
        fixed(
            &["fiscal_year"],
            "a period belongs to the year it was made for",
        ),
    ));
}
