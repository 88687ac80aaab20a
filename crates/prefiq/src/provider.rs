//! Service providers: how code binds services and takes part in boot and shutdown.

use std::sync::Arc;

use async_trait::async_trait;

use crate::boot::BootMode;
use crate::config::Config;
use crate::context::Context;
use crate::error::KernelError;
use crate::services::{Registrar, Resolver};

/// What a provider sees while it binds services. No I/O happens here.
pub struct RegisterContext<'a> {
    /// The validated configuration.
    pub config: &'a Config,
    /// Why the app is booting.
    pub mode: BootMode,
    /// Where bindings go.
    pub services: Registrar<'a>,
}

/// What a provider sees while it boots or shuts down: every service is bound by now.
pub struct BootContext<'a> {
    /// The validated configuration.
    pub config: &'a Arc<Config>,
    /// Why the app is booting. In `DryRun` a provider must not write anything.
    pub mode: BootMode,
    /// The boot's context (trace id, locale).
    pub context: &'a Context,
    /// Resolves services, naming this provider if one is missing.
    pub services: Resolver<'a>,
}

/// A unit that binds services in `register` and sets them up in `boot`.
///
/// Providers boot in registration order and shut down in the reverse order.
#[async_trait]
pub trait ServiceProvider: Send + Sync + 'static {
    /// A stable name for logs and errors, such as `prefiq_data::DatabaseProvider`.
    fn name(&self) -> &'static str;

    /// The config section the provider reads, if any (such as `audit`): a section that
    /// is neither the kernel's nor a module's nor a provider's is refused as a typo.
    fn config_section(&self) -> Option<&'static str> {
        None
    }

    /// Binds services. Must not do I/O: it runs for `boot --dry-run` and every CLI command.
    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError>;

    /// Sets up what the bound services need (connections, caches); may resolve services.
    async fn boot(&self, _cx: &BootContext<'_>) -> Result<(), KernelError> {
        Ok(())
    }

    /// Starts background work once the app is ready (after migrations, modules and
    /// routes; for `serve`, once the port is bound): runs only when the app reaches ready,
    /// never in a dry run or a boot that failed.
    async fn ready(&self, _cx: &BootContext<'_>) -> Result<(), KernelError> {
        Ok(())
    }

    /// Releases what `boot` (and `ready`) acquired.
    async fn shutdown(&self, _cx: &BootContext<'_>) -> Result<(), KernelError> {
        Ok(())
    }
}
