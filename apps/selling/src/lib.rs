//! The selling app: sales invoices to customers, their figures computed by the trade
//! app's rule and their postings (receivable against income and taxes) written to the
//! ledger in the submit's transaction. CRM (leads, opportunities, quotations) and sales
//! orders come next.

use prefiq::{
    BootContext, EntitySource, KernelError, Manifest, Module, RegisterContext, ServiceProvider,
    async_trait,
};
use trade::TradeRepository;
use trade::invoice::{self, InvoiceKind};

/// The module's manifest source.
pub const MANIFEST: &str = include_str!("../module.yaml");

/// The selling module.
pub struct Selling {
    manifest: Manifest,
}

impl Selling {
    /// The module with its embedded manifest.
    pub fn new() -> Result<Self, prefiq::ManifestError> {
        Ok(Selling {
            manifest: Manifest::from_yaml(MANIFEST)?,
        })
    }
}

impl Module for Selling {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(Provider::default())]
    }

    fn migrations(&self) -> Vec<prefiq::Migration> {
        vec![trade::reports::open_invoices_index(InvoiceKind::Sales)]
    }

    fn entities(&self) -> Vec<EntitySource> {
        vec![
            EntitySource {
                file: "schema/quotation_line.yaml",
                yaml: include_str!("../schema/quotation_line.yaml"),
            },
            EntitySource {
                file: "schema/quotation.yaml",
                yaml: include_str!("../schema/quotation.yaml"),
            },
            EntitySource {
                file: "schema/sales_order_line.yaml",
                yaml: include_str!("../schema/sales_order_line.yaml"),
            },
            EntitySource {
                file: "schema/sales_order.yaml",
                yaml: include_str!("../schema/sales_order.yaml"),
            },
            EntitySource {
                file: "schema/sales_invoice.yaml",
                yaml: include_str!("../schema/sales_invoice.yaml"),
            },
            EntitySource {
                file: "schema/sales_invoice_line.yaml",
                yaml: include_str!("../schema/sales_invoice_line.yaml"),
            },
        ]
    }
}

#[derive(Default)]
struct Provider {
    repository: TradeRepository,
}

#[async_trait]
impl ServiceProvider for Provider {
    fn name(&self) -> &'static str {
        "selling::Provider"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        invoice::register(cx, &self.repository, InvoiceKind::Sales);
        trade::reports::register_open_invoices_index(cx, "selling", InvoiceKind::Sales);
        trade::order::register(cx, &self.repository, InvoiceKind::Sales);
        trade::order::register_quotation(cx, &self.repository);
        Ok(())
    }

    async fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        self.repository.boot(cx)
    }
}
