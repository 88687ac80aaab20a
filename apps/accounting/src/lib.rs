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
pub mod documents;
pub mod hooks;
pub mod import;
pub mod journal;
pub mod ledger;
pub mod money;
pub mod periods;
pub mod reports;
pub mod routes;

use std::sync::Arc;

use prefiq::{
    BootContext, EntitySource, KernelError, Manifest, Module, RegisterContext, ServiceProvider,
    async_trait,
};
use prefiq_data::entity::repo::{Repository, TransactionHook};
use prefiq_http::RouteSet;

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

    fn migrations(&self) -> Vec<prefiq::Migration> {
        vec![ledger::store::migration()]
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

#[async_trait]
impl ServiceProvider for AccountingProvider {
    fn name(&self) -> &'static str {
        "accounting::AccountingProvider"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        let books = Arc::new(Books::default());
        cx.services.singleton(books.clone())?;
        // The ledger store holds tenant data: with a database per tenant, each gets it.
        cx.services
            .contribute(Arc::new(prefiq_data::tenants::TenantDataMigrations {
                module: "accounting".into(),
                migrations: vec![ledger::store::migration()],
            }));
        cx.services
            .contribute::<dyn TransactionHook>(Arc::new(PostingHook) as Arc<dyn TransactionHook>);
        hooks::register(cx, &books);
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
                    "/api/v1/accounting/periods/{id}/reopen",
                    routes::reopen_period,
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
