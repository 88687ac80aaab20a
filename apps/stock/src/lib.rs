//! The stock app: warehouses, stock entries and the stock ledger, posted to the books as
//! perpetual inventory.
//!
//! - `warehouse`: a tree per company; a leaf holds stock and names its Stock account.
//! - Items (trade's `item`) carry a valuation method (FIFO or moving average) and whether
//!   they allow negative stock.
//! - `stock_entry` (Receipt, Issue, Transfer) with its `stock_entry_line`s: submitting it
//!   values each line ([`valuation`]), appends the stock ledger rows ([`ledger`]) and
//!   posts the stock accounts, all in one transaction ([`entry`]); cancelling reverses
//!   both.
//! - `GET /api/v1/stock/reports/stock-balance` and `stock-ledger` ([`reports`]).
//! - Backdated entries and cancels repost later entries and their postings ([`repost`]).
//! - `reorder_level`, the items below it, the reorder job and
//!   `POST /api/v1/stock/reorder/run` ([`reorder`]); `stock-ageing` ([`ageing`]).

pub mod ageing;
pub mod bins;
pub mod desk;
pub mod entry;
pub mod ledger;
pub mod make;
mod orders;
pub mod profit;
pub mod reorder;
pub mod reports;
pub mod repost;
mod rows;
mod tracking;
mod units;
pub mod valuation;
pub mod voucher;
pub mod warehouse;

use std::sync::Arc;

use prefiq::{
    BootContext, EntitySource, KernelError, Manifest, Module, RegisterContext, ServiceProvider,
    async_trait,
};
use prefiq_http::RouteSet;
use trade::TradeRepository;

/// The module's manifest source.
pub const MANIFEST: &str = include_str!("../module.yaml");

/// The stock module.
pub struct Stock {
    manifest: Manifest,
}

impl Stock {
    /// The module with its embedded manifest.
    pub fn new() -> Result<Self, prefiq::ManifestError> {
        Ok(Stock {
            manifest: Manifest::from_yaml(MANIFEST)?,
        })
    }
}

impl Module for Stock {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(StockProvider::default())]
    }

    fn migrations(&self) -> Vec<prefiq::Migration> {
        vec![
            ledger::migration(),
            bins::migration(),
            tracking::migration(),
            ledger::month_migration(),
            reorder::migration(),
        ]
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
            schema!("schema/warehouse.yaml"),
            schema!("schema/batch.yaml"),
            schema!("schema/stock_entry_line.yaml"),
            schema!("schema/stock_entry.yaml"),
            schema!("schema/delivery_note_line.yaml"),
            schema!("schema/delivery_note.yaml"),
            schema!("schema/purchase_receipt_line.yaml"),
            schema!("schema/purchase_receipt.yaml"),
            schema!("schema/reorder_level.yaml"),
        ]
    }
}

#[derive(Default)]
struct StockProvider {
    repository: TradeRepository,
    identity: Arc<std::sync::OnceLock<Arc<cortex::identity::Identity>>>,
}

#[async_trait]
impl ServiceProvider for StockProvider {
    fn name(&self) -> &'static str {
        "stock::StockProvider"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        // The stock ledger holds tenant data: with a database per tenant, each gets it.
        cx.services
            .contribute(Arc::new(prefiq_data::tenants::TenantDataMigrations {
                module: "stock".into(),
                migrations: vec![
                    ledger::migration(),
                    bins::migration(),
                    tracking::migration(),
                    ledger::month_migration(),
                    reorder::migration(),
                ],
            }));
        cx.services.contribute(Arc::new(desk::layer()));
        cx.services.contribute(Arc::new(desk::routes()));
        warehouse::register(cx, &self.repository);
        entry::register(cx, &self.repository);
        reorder::register(cx, &self.repository);
        reorder::register_job(cx, &self.repository, &self.identity)?;
        cx.services
            .contribute(Arc::new(prefiq_http::openapi::ApiDescription::from_yaml(
                "stock",
                include_str!("../openapi/routes.yaml"),
            )?));
        cx.services.contribute(Arc::new(
            RouteSet::new("stock")
                .get(
                    "/api/v1/stock/reports/stock-balance",
                    reports::stock_balance_report,
                )
                .get(
                    "/api/v1/stock/reports/stock-ledger",
                    reports::stock_ledger_report,
                )
                .get(
                    "/api/v1/stock/reports/gross-profit",
                    profit::gross_profit_report,
                )
                .post("/api/v1/stock/{entity}/{id}/make/{target}", make::make)
                .get(
                    "/api/v1/stock/reports/below-reorder",
                    reorder::below_reorder_route,
                )
                .get(
                    "/api/v1/stock/reports/stock-ageing",
                    ageing::stock_ageing_report,
                )
                .post("/api/v1/stock/reorder/run", reorder::run_route),
        ));
        Ok(())
    }

    async fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        if cx.mode != prefiq::BootMode::DryRun
            && let Some(identity) = cx.services.try_get::<cortex::identity::Identity>()
        {
            let _ = self.identity.set(identity);
        }
        self.repository.boot(cx)
    }
}
