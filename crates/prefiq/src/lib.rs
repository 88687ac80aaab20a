//! The Codexion kernel.
//!
//! It boots an installation in a fixed order — config, register providers, boot providers,
//! modules, routes, ready — and gives every other crate the pieces they share: the typed
//! service registry, module manifests, lifecycle hooks, layered config and the operation
//! [`Context`]. It knows no app, no database driver and no HTTP: those plug in through the
//! traits defined here ([`MigrationRunner`], [`RouteAssembler`], [`ReadinessCheck`],
//! [`TenantConfigStore`]).

pub mod boot;
pub mod config;
pub mod context;
pub mod error;
pub mod identity;
pub mod lifecycle;
pub mod mail;
pub mod migration;
pub mod module;
pub mod provider;
pub mod readiness;
pub mod routes;
pub mod secret;
pub mod services;
pub mod telemetry;
pub mod tenant_config;

pub use async_trait::async_trait;
pub use boot::{App, BootMode, BootOptions, BootPlan, BootedApp, InstalledModules, ModuleSummary};
pub use config::{Config, ConfigError, ConfigOptions};
pub use context::{Context, TraceId};
pub use error::{ErrorKind, KernelError};
pub use identity::{Authenticator, Principal};
pub use lifecycle::{Hook, HookContext, HookResult, LifecycleHooks};
pub use mail::{FileMailer, Mail, Mailer};
pub use migration::{
    Backend, Migration, MigrationPlan, MigrationRunner, ModuleMigrations, ModuleUpgrade,
    PendingMigration,
};
pub use module::{EntitySource, EntitySources, Manifest, ManifestError, Module, ModuleGraphError};
pub use provider::{BootContext, RegisterContext, ServiceProvider};
pub use readiness::ReadinessCheck;
pub use routes::{RouteAssembler, RouteInfo};
pub use services::{Registrar, Resolver, Services};
pub use tenant_config::{ConfigService, TenantConfigStore};
