//! The buying app: purchase invoices from suppliers, their figures computed by the trade
//! app's rule and their postings (expenses and taxes against payable) written to the
//! ledger in the submit's transaction. Purchase orders come next.

use prefiq::{
    BootContext, EntitySource, KernelError, Manifest, Module, RegisterContext, ServiceProvider,
    async_trait,
};
use trade::TradeRepository;
use trade::invoice::{self, InvoiceKind};

/// The module's manifest source.
pub const MANIFEST: &str = include_str!("../module.yaml");

/// The buying module.
pub struct Buying {
    manifest: Manifest,
}

impl Buying {
    /// The module with its embedded manifest.
    pub fn new() -> Result<Self, prefiq::ManifestError> {
        Ok(Buying {
            manifest: Manifest::from_yaml(MANIFEST)?,
        })
    }
}

impl Module for Buying {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(Provider::default())]
    }

    fn migrations(&self) -> Vec<prefiq::Migration> {
        vec![trade::reports::open_invoices_index(InvoiceKind::Purchase)]
    }

    fn entities(&self) -> Vec<EntitySource> {
        vec![
            EntitySource {
                file: "schema/purchase_order_line.yaml",
                yaml: include_str!("../schema/purchase_order_line.yaml"),
            },
            EntitySource {
                file: "schema/purchase_order.yaml",
                yaml: include_str!("../schema/purchase_order.yaml"),
            },
            EntitySource {
                file: "schema/purchase_invoice.yaml",
                yaml: include_str!("../schema/purchase_invoice.yaml"),
            },
            EntitySource {
                file: "schema/purchase_invoice_line.yaml",
                yaml: include_str!("../schema/purchase_invoice_line.yaml"),
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
        "buying::Provider"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        invoice::register(cx, &self.repository, InvoiceKind::Purchase);
        trade::reports::register_open_invoices_index(cx, "buying", InvoiceKind::Purchase);
        trade::order::register(cx, &self.repository, InvoiceKind::Purchase);
        Ok(())
    }

    async fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        self.repository.boot(cx)
    }
}
