//! The trade app: what selling and buying share.
//!
//! - Parties: `customer` (with the receivable account its invoices debit) and `supplier`
//!   (with the payable account its invoices credit), a currency, payment terms and a
//!   credit limit; `contact` and `address` of either.
//! - Items: `item` with its group (`item_group`, a tree), its stock unit and other units
//!   (`uom`, `item_uom`), its income and expense accounts and its tax template.
//! - Prices: `price_list` (one currency) and `item_price`.
//! - Taxes: `tax_template` with its lines, each a rate into a Tax account, exclusive or
//!   inclusive of the price, and [`taxes`], the rule that turns a document's lines into
//!   taxes and totals to the minor unit. `POST /api/v1/trade/totals` applies it.
//!
//! The selling and buying documents build on it. It knows accounts only through the
//! accounting app's reads; it posts nothing.

pub mod checks;
pub mod credit;
pub mod desk;
pub mod figures;
pub mod invoice;
pub mod make;
pub mod order;
pub mod payment;
mod prices;
pub mod reconcile;
pub mod reports;
pub mod routes;
pub mod rows;
pub mod taxes;

use std::sync::{Arc, OnceLock};

use prefiq::{
    BootContext, EntitySource, KernelError, Manifest, Module, RegisterContext, ServiceProvider,
    async_trait,
};
use prefiq_data::entity::repo::Repository;
use prefiq_http::RouteSet;

/// The module's manifest source.
pub const MANIFEST: &str = include_str!("../module.yaml");

/// The trade module.
pub struct Trade {
    manifest: Manifest,
}

impl Trade {
    /// The module with its embedded manifest.
    pub fn new() -> Result<Self, prefiq::ManifestError> {
        Ok(Trade {
            manifest: Manifest::from_yaml(MANIFEST)?,
        })
    }
}

impl Module for Trade {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(TradeProvider::default())]
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
            schema!("schema/customer.yaml"),
            schema!("schema/supplier.yaml"),
            schema!("schema/contact.yaml"),
            schema!("schema/address.yaml"),
            schema!("schema/uom.yaml"),
            schema!("schema/item_group.yaml"),
            schema!("schema/item_uom.yaml"),
            schema!("schema/item.yaml"),
            schema!("schema/price_list.yaml"),
            schema!("schema/item_price.yaml"),
            schema!("schema/tax_template_line.yaml"),
            schema!("schema/tax_template.yaml"),
            schema!("schema/payment_allocation.yaml"),
            schema!("schema/payment_entry.yaml"),
        ]
    }
}

/// The services the hooks need, set once booted: the repository (the checks read
/// accounts, parties and price lists) and the authorizer (who may override a credit
/// limit).
#[derive(Default, Clone)]
pub struct TradeRepository {
    repository: Arc<OnceLock<Arc<Repository>>>,
    authorizer: Arc<OnceLock<Arc<prefiq_auth::authz::CedarAuthorizer>>>,
}

impl TradeRepository {
    /// Sets the services at boot (the first call wins).
    pub fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        if cx.mode != prefiq::BootMode::DryRun {
            let _ = self.repository.set(cx.services.get::<Repository>()?);
            let _ = self
                .authorizer
                .set(cx.services.get::<prefiq_auth::authz::CedarAuthorizer>()?);
        }
        Ok(())
    }

    /// The repository, or why not yet.
    pub fn get(&self) -> Result<&Arc<Repository>, String> {
        self.repository
            .get()
            .ok_or_else(|| "the repository is not ready".to_owned())
    }

    /// The authorizer, once booted.
    pub fn authorizer(&self) -> Option<&Arc<prefiq_auth::authz::CedarAuthorizer>> {
        self.authorizer.get()
    }
}

#[derive(Default)]
struct TradeProvider {
    repository: TradeRepository,
}

#[async_trait]
impl ServiceProvider for TradeProvider {
    fn name(&self) -> &'static str {
        "trade::TradeProvider"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        checks::register(cx, &self.repository);
        payment::register(cx, &self.repository);
        cx.services.contribute(Arc::new(desk::layer()));
        cx.services.contribute(Arc::new(desk::routes()));
        cx.services
            .contribute(Arc::new(prefiq_http::openapi::ApiDescription::from_yaml(
                "trade",
                include_str!("../openapi/routes.yaml"),
            )?));
        cx.services.contribute(Arc::new(
            RouteSet::new("trade")
                .post("/api/v1/trade/totals", routes::totals)
                .post("/api/v1/trade/{entity}/{id}/make/{target}", make::make)
                .get("/api/v1/trade/reconciliation", reconcile::suggestions)
                .post("/api/v1/trade/reconciliation", reconcile::reconcile)
                .get(
                    "/api/v1/trade/reports/receivable-ageing",
                    reports::receivable_ageing,
                )
                .get(
                    "/api/v1/trade/reports/payable-ageing",
                    reports::payable_ageing,
                )
                .get(
                    "/api/v1/trade/reports/sales-register",
                    reports::sales_register,
                )
                .get(
                    "/api/v1/trade/reports/purchase-register",
                    reports::purchase_register,
                )
                .get(
                    "/api/v1/trade/reports/gross-profit",
                    reports::gross_profit_report,
                ),
        ));
        Ok(())
    }

    async fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        self.repository.boot(cx)
    }
}
