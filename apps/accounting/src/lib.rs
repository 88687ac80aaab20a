//! The accounting app: a double-entry general ledger on the Codexion kernel.
//!
//! It is built only through the kernel's public surface: entity schemas (company, chart of
//! accounts, cost centers, fiscal years, periods, currencies and rates, journal entries,
//! GL entries, per-period balances), entity hooks, one transaction hook (a journal entry's
//! postings are written in its submit's transaction), routes and Cedar grants for its
//! roles (Accountant, Accounts Manager, Auditor).

pub mod books;
pub mod dates;
pub mod desk;
pub mod import;
pub mod journal;
pub mod ledger;
pub mod money;
pub mod reports;
pub mod routes;

use std::sync::Arc;

use prefiq::{
    BootContext, EntitySource, KernelError, Manifest, Module, RegisterContext, ServiceProvider,
    async_trait,
};
use prefiq_data::entity::repo::{
    EntityEvent, EntityHook, EntityHookFn, HookInput, Repository, TransactionHook,
};
use prefiq_http::RouteSet;
use serde_json::{Map, Value};

use crate::books::{Books, PostingHook};

/// The module's manifest source.
pub const MANIFEST: &str = include_str!("../module.yaml");

/// The accounting module.
pub struct Accounting {
    manifest: Manifest,
}

impl Accounting {
    /// The module with its embedded manifest.
    pub fn new() -> Result<Self, prefiq::ManifestError> {
        Ok(Accounting {
            manifest: Manifest::from_yaml(MANIFEST)?,
        })
    }
}

impl Module for Accounting {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(AccountingProvider)]
    }

    fn entities(&self) -> Vec<EntitySource> {
        macro_rules! schema {
            ($file:literal) => {
                EntitySource {
                    file: $file,
                    yaml: include_str!(concat!("../", $file)),
                }
            };
        }
        vec![
            schema!("schema/company.yaml"),
            schema!("schema/account.yaml"),
            schema!("schema/cost_center.yaml"),
            schema!("schema/fiscal_year.yaml"),
            schema!("schema/accounting_period.yaml"),
            schema!("schema/currency.yaml"),
            schema!("schema/exchange_rate.yaml"),
            schema!("schema/journal_entry.yaml"),
            schema!("schema/journal_entry_line.yaml"),
            schema!("schema/gl_entry.yaml"),
            schema!("schema/account_balance.yaml"),
        ]
    }
}

struct AccountingProvider;

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

#[async_trait]
impl ServiceProvider for AccountingProvider {
    fn name(&self) -> &'static str {
        "accounting::AccountingProvider"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        let books = Arc::new(Books::default());
        cx.services.singleton(books.clone())?;
        cx.services
            .contribute::<dyn TransactionHook>(Arc::new(PostingHook) as Arc<dyn TransactionHook>);
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
                        _ => Ok(input.doc),
                    }
                })
            }),
        ));
        // A period's status changes only by closing it, which posts the closing entry.
        cx.services.contribute(hook(
            "accounting_period",
            EntityEvent::BeforeUpdate,
            "status",
            Arc::new(|input: HookInput| {
                Box::pin(async move {
                    let before = input.old.as_ref().and_then(|o| text_field(o, "status"));
                    let after = text_field(&input.doc, "status");
                    if after.is_some() && before != after {
                        return Err("close a period with POST /api/v1/accounting/periods/{id}/close; a closed period is not reopened".into());
                    }
                    Ok(input.doc)
                })
            }),
        ));
        {
            let books = books.clone();
            cx.services.contribute(hook(
                "account",
                EntityEvent::BeforeDelete,
                "no_postings",
                Arc::new(move |input: HookInput| {
                    let books = books.clone();
                    Box::pin(async move {
                        let id = text_field(&input.doc, "id").unwrap_or_default();
                        match books.has_postings(&input.scope, &id).await {
                            Ok(false) => Ok(input.doc),
                            Ok(true) => Err("the account has postings; freeze it instead".into()),
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
                    if let (Some(start), Some(end)) = (start, end)
                        && start > end
                    {
                        return Err(format!(
                            "the fiscal year ends ({end}) before it starts ({start})"
                        ));
                    }
                    Ok(input.doc)
                })
            }),
        ));
        cx.services.contribute(Arc::new(desk::layer()));
        cx.services.contribute(Arc::new(desk::routes()));
        cx.services
            .contribute(Arc::new(prefiq_http::openapi::ApiDescription::from_yaml(
                "accounting",
                include_str!("../openapi/routes.yaml"),
            )?));
        cx.services.contribute(Arc::new(
            RouteSet::new("accounting")
                .get(
                    "/api/v1/accounting/reports/trial-balance",
                    routes::trial_balance,
                )
                .get(
                    "/api/v1/accounting/reports/general-ledger",
                    routes::general_ledger,
                )
                .get(
                    "/api/v1/accounting/reports/balance-sheet",
                    routes::balance_sheet,
                )
                .get(
                    "/api/v1/accounting/reports/profit-and-loss",
                    routes::profit_and_loss,
                )
                .post(
                    "/api/v1/accounting/periods/{id}/close",
                    routes::close_period,
                )
                .post(
                    "/api/v1/accounting/fiscal-years/{id}/close",
                    routes::close_fiscal_year,
                ),
        ));
        Ok(())
    }

    async fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        if cx.mode != prefiq::BootMode::DryRun {
            let repository = cx.services.get::<Repository>()?;
            cx.services.get::<Books>()?.set_repository(repository);
        }
        Ok(())
    }
}
