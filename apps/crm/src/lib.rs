//! The CRM app: the selling side before there is a customer.
//!
//! - `lead` (`LEAD-#####`): someone who may buy, with their organisation, email, phone,
//!   source and status, for one company.
//! - `opportunity` (`OPP-#####`): a sale in the making, of a lead or of a customer, with a
//!   stage, a probability (from the stage unless given), an expected close date and an
//!   amount. [`checks`] holds the rules the schemas cannot say.
//! - Converting a lead ([`convert`], `POST /api/v1/crm/leads/{id}/convert`) makes a
//!   `customer` and its `contact` (the trade app's parties) through the repository, marks
//!   the lead Converted, and gives its opportunities the customer.
//! - The pipeline ([`pipeline`], `GET /api/v1/crm/reports/pipeline`): open and won
//!   opportunities by stage and month of expected close, in the company's currency, with
//!   the amount weighted by the probability; JSON or CSV, and a desk page ([`desk`]).

pub mod checks;
pub mod convert;
pub mod desk;
pub mod pipeline;
pub mod routes;

use std::sync::Arc;

use prefiq::{
    BootContext, EntitySource, KernelError, Manifest, Module, RegisterContext, ServiceProvider,
    async_trait,
};
use prefiq_http::RouteSet;
use trade::TradeRepository;

/// The module's manifest source.
pub const MANIFEST: &str = include_str!("../module.yaml");

/// The CRM module.
pub struct Crm {
    manifest: Manifest,
}

impl Crm {
    /// The module with its embedded manifest.
    pub fn new() -> Result<Self, prefiq::ManifestError> {
        Ok(Crm {
            manifest: Manifest::from_yaml(MANIFEST)?,
        })
    }
}

impl Module for Crm {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(CrmProvider::default())]
    }

    fn entities(&self) -> Vec<EntitySource> {
        vec![
            EntitySource {
                file: "schema/lead.yaml",
                yaml: include_str!("../schema/lead.yaml"),
            },
            EntitySource {
                file: "schema/opportunity.yaml",
                yaml: include_str!("../schema/opportunity.yaml"),
            },
        ]
    }
}

/// Registers the checks, the routes, their description and the desk's page. The checks
/// read leads, customers and contacts through the repository, which the trade app's
/// [`TradeRepository`] holds once booted.
#[derive(Default)]
struct CrmProvider {
    repository: TradeRepository,
}

#[async_trait]
impl ServiceProvider for CrmProvider {
    fn name(&self) -> &'static str {
        "crm::CrmProvider"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        checks::register(cx, &self.repository);
        cx.services
            .contribute(Arc::new(prefiq_http::openapi::ApiDescription::from_yaml(
                "crm",
                include_str!("../openapi/routes.yaml"),
            )?));
        cx.services.contribute(Arc::new(desk::layer()));
        cx.services.contribute(Arc::new(desk::routes()));
        cx.services.contribute(Arc::new(
            RouteSet::new("crm")
                .post("/api/v1/crm/leads/{id}/convert", convert::convert)
                .get("/api/v1/crm/reports/pipeline", routes::pipeline),
        ));
        Ok(())
    }

    async fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        self.repository.boot(cx)
    }
}
