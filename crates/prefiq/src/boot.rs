//! The boot sequence: config → register → boot providers → modules → routes → ready.
//!
//! The order never changes. Each step is logged as one JSON line (target `prefiq::boot`) with
//! the step, its `duration_ms` and the boot's `trace_id`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::Instrument;

use crate::config::{Config, ConfigOptions};
use crate::context::{Context, TraceId};
use crate::error::KernelError;
use crate::lifecycle::{Hook, HookContext, LifecycleHooks};
use crate::migration::{MigrationPlan, MigrationRunner, ModuleMigrations};
use crate::module::{EntitySources, Module, order_modules};
use crate::provider::{BootContext, RegisterContext, ServiceProvider};
use crate::routes::{RouteAssembler, RouteInfo};
use crate::services::{Registrar, Resolver, Services};
use crate::tenant_config::{ConfigService, TenantConfigStore};

/// Why the app boots; providers and the modules step behave accordingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BootMode {
    /// To serve requests.
    Serve,
    /// To run a CLI command that may read and write.
    Command,
    /// To show the plan: nothing is written and no port is bound.
    DryRun,
}

/// The name the kernel binds its own services under.
pub const KERNEL: &str = "prefiq";

/// A callback run once the config is loaded.
pub type OnConfig = Box<dyn FnOnce(&Config) + Send>;

/// How to boot.
pub struct BootOptions {
    /// Where configuration comes from.
    pub config: ConfigOptions,
    /// Why the app boots.
    pub mode: BootMode,
    /// Whether the modules step applies pending migrations (`serve --no-migrate` says no).
    pub migrate: bool,
    /// Called once the config is loaded, before anything is logged by later steps; the CLI
    /// uses it to apply `log.level`.
    pub on_config: Option<OnConfig>,
}

impl BootOptions {
    /// Options for `mode` with default config sources.
    pub fn new(mode: BootMode) -> Self {
        BootOptions {
            config: ConfigOptions::default(),
            mode,
            migrate: mode != BootMode::DryRun,
            on_config: None,
        }
    }
}

/// The installation: platform providers plus modules.
#[derive(Default)]
pub struct App {
    providers: Vec<Box<dyn ServiceProvider>>,
    modules: Vec<Arc<dyn Module>>,
}

/// A module as booted, for listings.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleSummary {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Description.
    pub description: String,
    /// Dependencies with their version requirements.
    pub depends: Vec<String>,
    /// Provider names.
    pub providers: Vec<String>,
    /// Migration ids.
    pub migrations: Vec<String>,
    /// Routes, as `METHOD /path`.
    pub routes: Vec<String>,
    /// Entity schema files.
    pub entities: Vec<String>,
    /// Declared permissions.
    pub permissions: Vec<String>,
    /// Tenant-level actions granted to roles, as (role, action).
    pub grants: Vec<(String, String)>,
    /// Hooks, as `on_boot:name`.
    pub hooks: Vec<String>,
}

/// The modules of this installation in boot order, bound by the kernel for listings.
#[derive(Debug)]
pub struct InstalledModules {
    registered: Vec<ModuleSummary>,
    booted: std::sync::OnceLock<Vec<ModuleSummary>>,
}

impl InstalledModules {
    /// The modules, with their routes once the routes step has run.
    pub fn list(&self) -> &[ModuleSummary] {
        self.booted.get().unwrap_or(&self.registered)
    }
}

/// What a boot did or, in dry-run, would do.
#[derive(Debug, Clone, Serialize)]
pub struct BootPlan {
    /// The boot's trace id.
    pub trace_id: String,
    /// The environment.
    pub env: String,
    /// Why it booted.
    pub mode: BootMode,
    /// Modules in boot order.
    pub modules: Vec<ModuleSummary>,
    /// Providers in boot order, as `module: provider`.
    pub providers: Vec<String>,
    /// Bound services and who bound them.
    pub services: Vec<String>,
    /// Every route.
    pub routes: Vec<RouteInfo>,
    /// Pending migrations and module upgrades.
    pub migrations: MigrationPlan,
}

/// A booted app: its services, config and plan. Call [`BootedApp::ready`] when it serves,
/// and [`BootedApp::shutdown`] at the end.
pub struct BootedApp {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Every bound service.
    pub services: Arc<Services>,
    /// The boot's context.
    pub context: Context,
    /// Why it booted.
    pub mode: BootMode,
    plan: BootPlan,
    providers: Vec<Box<dyn ServiceProvider>>,
    hooks: LifecycleHooks,
    started_at: Instant,
    ready_after: Option<Duration>,
}

fn log_step(trace_id: &TraceId, step: &str, started: Instant, detail: &str) {
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: "prefiq::boot",
        trace_id = %trace_id,
        step,
        duration_ms = (duration_ms * 1000.0).round() / 1000.0,
        detail,
        "boot step"
    );
}

impl App {
    /// An app with no providers and no modules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a platform provider; platform providers register and boot before any module's.
    pub fn provider(mut self, provider: impl ServiceProvider) -> Self {
        self.providers.push(Box::new(provider));
        self
    }

    /// Adds a module.
    pub fn module(mut self, module: impl Module) -> Self {
        self.modules.push(Arc::new(module));
        self
    }

    /// The config sections beyond the kernel's: every module's (named after it) and those
    /// platform providers read.
    pub fn config_sections(&self) -> Vec<String> {
        let mut sections = self.module_names();
        sections.extend(
            self.providers
                .iter()
                .filter_map(|p| p.config_section())
                .map(str::to_owned),
        );
        sections
    }

    /// The names of every module, which are also the config sections they may own.
    pub fn module_names(&self) -> Vec<String> {
        self.modules
            .iter()
            .map(|m| m.manifest().name.clone())
            .collect()
    }

    /// Runs the boot sequence up to (not including) ready. Every log line of the boot,
    /// including those of providers and hooks, carries the boot's trace id.
    pub async fn boot(self, options: BootOptions) -> Result<BootedApp, KernelError> {
        let context = Context::system("en");
        let span = tracing::info_span!("boot", trace_id = %context.trace_id);
        self.boot_in(options, context).instrument(span).await
    }

    async fn boot_in(
        self,
        options: BootOptions,
        mut context: Context,
    ) -> Result<BootedApp, KernelError> {
        let started_at = Instant::now();
        let trace_id = context.trace_id;

        // Step 1: config, and the module graph the config sections depend on.
        let step = Instant::now();
        let mut config_options = options.config;
        config_options.module_sections = self.config_sections();
        // Tenants may override module sections, not a platform provider's.
        let tenant_sections = self.module_names();
        let config = Arc::new(Config::load(&config_options)?);
        if let Some(on_config) = options.on_config {
            on_config(&config);
        }
        context.locale.clone_from(&config.app.locale);
        let manifests: Vec<_> = self.modules.iter().map(|m| m.manifest()).collect();
        let order = order_modules(&manifests)?;
        let modules: Vec<Arc<dyn Module>> =
            order.iter().map(|&i| self.modules[i].clone()).collect();
        let mut hooks = LifecycleHooks::default();
        for module in &modules {
            hooks.for_module(&module.manifest().name);
            module.hooks(&mut hooks);
        }
        let names: Vec<&str> = modules.iter().map(|m| m.manifest().name.as_str()).collect();
        log_step(
            &trace_id,
            "config",
            step,
            &format!("env={} modules={}", config.env, names.join(",")),
        );

        let run_hooks = options.mode != BootMode::DryRun;
        if run_hooks {
            run_hook(&hooks, Hook::PreBoot, &context, &config, None, &trace_id).await?;
        }

        // Step 2: register every provider, platform first, then modules in order.
        let step = Instant::now();
        let mut services = Services::new();
        let mut providers: Vec<(String, Box<dyn ServiceProvider>)> = self
            .providers
            .into_iter()
            .map(|p| (KERNEL.to_owned(), p))
            .collect();
        let mut summaries = Vec::new();
        for module in &modules {
            let manifest = module.manifest();
            let module_providers = module.providers();
            summaries.push(ModuleSummary {
                name: manifest.name.clone(),
                version: manifest.version.to_string(),
                description: manifest.description.clone(),
                depends: manifest
                    .depends
                    .iter()
                    .map(|(n, r)| format!("{n} {r}"))
                    .collect(),
                providers: module_providers
                    .iter()
                    .map(|p| p.name().to_owned())
                    .collect(),
                migrations: module
                    .migrations()
                    .iter()
                    .map(|m| m.id.to_owned())
                    .collect(),
                routes: Vec::new(),
                entities: manifest.entities.clone(),
                permissions: manifest.permissions.clone(),
                grants: manifest
                    .grants
                    .iter()
                    .flat_map(|(role, actions)| actions.iter().map(|a| (role.clone(), a.clone())))
                    .collect(),
                hooks: hooks
                    .all()
                    .iter()
                    .filter(|h| h.module == manifest.name)
                    .map(|h| format!("{}:{}", h.hook, h.name))
                    .collect(),
            });
            providers.extend(
                module_providers
                    .into_iter()
                    .map(|p| (manifest.name.clone(), p)),
            );
        }
        {
            let mut kernel = Registrar::new(&mut services, KERNEL);
            kernel.singleton(config.clone())?;
            let sources = modules
                .iter()
                .flat_map(|m| {
                    m.entities()
                        .into_iter()
                        .map(|e| (m.manifest().name.clone(), e))
                })
                .collect();
            kernel.singleton(Arc::new(EntitySources(sources)))?;
            kernel.singleton(Arc::new(InstalledModules {
                registered: summaries.clone(),
                booted: std::sync::OnceLock::new(),
            }))?;
        }
        for (_, provider) in &providers {
            let mut cx = RegisterContext {
                config: &config,
                mode: options.mode,
                services: Registrar::new(&mut services, provider.name()),
            };
            provider.register(&mut cx)?;
        }
        {
            let base = config.clone();
            let sections = tenant_sections;
            Registrar::new(&mut services, KERNEL).lazy_singleton::<ConfigService, _>(move |r| {
                Ok(Arc::new(ConfigService::new(
                    base.clone(),
                    sections.clone(),
                    r.try_get::<dyn TenantConfigStore>(),
                )))
            })?;
        }
        let services = Arc::new(services);
        log_step(
            &trace_id,
            "register",
            step,
            &format!("providers={}", providers.len()),
        );

        // Step 3: boot providers in registration order.
        let step = Instant::now();
        for (_, provider) in &providers {
            let requester = format!("provider `{}`", provider.name());
            let cx = BootContext {
                config: &config,
                mode: options.mode,
                context: &context,
                services: Resolver::new(&services, &requester),
            };
            provider.boot(&cx).await.map_err(|e| match e {
                e @ KernelError::MissingService { .. } => e,
                other => KernelError::Provider {
                    provider: provider.name().to_owned(),
                    phase: "boot",
                    message: other.to_string(),
                },
            })?;
        }
        log_step(
            &trace_id,
            "boot",
            step,
            &format!("providers={}", providers.len()),
        );
        if run_hooks {
            run_hook(
                &hooks,
                Hook::Boot,
                &context,
                &config,
                Some(&services),
                &trace_id,
            )
            .await?;
        }

        // Step 4: modules — migrations in module order, then on_upgrade for changed versions.
        let step = Instant::now();
        let module_migrations: Vec<ModuleMigrations> = modules
            .iter()
            .map(|m| {
                let mut migrations = m.migrations();
                migrations.sort_by_key(|mig| mig.id);
                ModuleMigrations {
                    module: m.manifest().name.clone(),
                    version: m.manifest().version.clone(),
                    migrations,
                }
            })
            .collect();
        let runner = Resolver::new(&services, "the modules step").try_get::<dyn MigrationRunner>();
        let mut plan = MigrationPlan::default();
        if let Some(runner) = &runner {
            plan = runner.plan(&module_migrations).await?;
            if options.migrate && options.mode != BootMode::DryRun {
                runner.apply(&plan, &module_migrations).await?;
                for upgrade in &plan.upgrades {
                    for hook in hooks
                        .at(Hook::Upgrade)
                        .filter(|h| h.module == upgrade.module)
                    {
                        let hook_started = Instant::now();
                        let cx = HookContext {
                            context: &context,
                            config: &config,
                            services: Some(&services),
                            upgrade: Some(upgrade),
                        };
                        hook.run(&cx).await.map_err(|message| KernelError::Hook {
                            hook: Hook::Upgrade.name(),
                            module: hook.module.clone(),
                            message,
                        })?;
                        log_step(
                            &trace_id,
                            "hook",
                            hook_started,
                            &format!("{} {}::{}", Hook::Upgrade, hook.module, hook.name),
                        );
                    }
                }
            } else if !plan.pending.is_empty() && options.mode != BootMode::DryRun {
                tracing::warn!(target: "prefiq::boot", trace_id = %trace_id, pending = plan.pending.len(), "pending migrations were not applied (--no-migrate)");
            }
        }
        log_step(
            &trace_id,
            "modules",
            step,
            &format!(
                "modules={} pending_migrations={} applied={}",
                modules.len(),
                plan.pending.len(),
                options.migrate && options.mode != BootMode::DryRun && runner.is_some()
            ),
        );

        // Step 5: routes.
        let step = Instant::now();
        let routes =
            match Resolver::new(&services, "the routes step").try_get::<dyn RouteAssembler>() {
                Some(assembler) => assembler.assemble(&services)?,
                None => Vec::new(),
            };
        for summary in &mut summaries {
            summary.routes = routes
                .iter()
                .filter(|r| r.module == summary.name)
                .map(|r| format!("{} {}", r.method, r.path))
                .collect();
        }
        log_step(
            &trace_id,
            "routes",
            step,
            &format!("routes={}", routes.len()),
        );
        if run_hooks {
            run_hook(
                &hooks,
                Hook::PostBoot,
                &context,
                &config,
                Some(&services),
                &trace_id,
            )
            .await?;
        }

        if let Some(installed) = Resolver::new(&services, KERNEL).try_get::<InstalledModules>() {
            let _ = installed.booted.set(summaries.clone());
        }
        let plan = BootPlan {
            trace_id: trace_id.to_string(),
            env: config.env.clone(),
            mode: options.mode,
            modules: summaries,
            providers: providers
                .iter()
                .map(|(m, p)| format!("{m}: {}", p.name()))
                .collect(),
            services: services
                .bindings()
                .iter()
                .map(|(s, by)| format!("{s} (bound by {by})"))
                .collect(),
            routes,
            migrations: plan,
        };
        Ok(BootedApp {
            config,
            services,
            context,
            mode: options.mode,
            plan,
            providers: providers.into_iter().map(|(_, p)| p).collect(),
            hooks,
            started_at,
            ready_after: None,
        })
    }
}

async fn run_hook(
    hooks: &LifecycleHooks,
    hook: Hook,
    context: &Context,
    config: &Config,
    services: Option<&Services>,
    trace_id: &TraceId,
) -> Result<(), KernelError> {
    for registered in hooks.at(hook) {
        let started = Instant::now();
        let cx = HookContext {
            context,
            config,
            services,
            upgrade: None,
        };
        registered
            .run(&cx)
            .await
            .map_err(|message| KernelError::Hook {
                hook: hook.name(),
                module: registered.module.clone(),
                message,
            })?;
        log_step(
            trace_id,
            "hook",
            started,
            &format!("{hook} {}::{}", registered.module, registered.name),
        );
    }
    Ok(())
}

impl BootedApp {
    /// The plan: modules, providers, services, routes and migrations.
    pub fn plan(&self) -> &BootPlan {
        &self.plan
    }

    /// The boot's trace id.
    pub fn trace_id(&self) -> TraceId {
        self.context.trace_id
    }

    /// When the process began booting.
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// How long the boot took up to ready, once ready.
    pub fn boot_duration(&self) -> Option<Duration> {
        self.ready_after
    }

    /// A resolver for code outside providers (commands, the HTTP layer).
    pub fn resolver<'a>(&'a self, requested_by: &'a str) -> Resolver<'a> {
        Resolver::new(&self.services, requested_by)
    }

    /// The last step: starts the providers' background work (`ServiceProvider::ready`),
    /// runs `on_ready` hooks (neither in a dry run) and logs `ready`.
    pub async fn ready(&mut self) -> Result<(), KernelError> {
        let step = Instant::now();
        if self.mode != BootMode::DryRun {
            for provider in &self.providers {
                let requester = format!("provider `{}`", provider.name());
                let cx = BootContext {
                    config: &self.config,
                    mode: self.mode,
                    context: &self.context,
                    services: Resolver::new(&self.services, &requester),
                };
                provider
                    .ready(&cx)
                    .await
                    .map_err(|e| KernelError::Provider {
                        provider: provider.name().to_owned(),
                        phase: "ready",
                        message: e.to_string(),
                    })?;
            }
            run_hook(
                &self.hooks,
                Hook::Ready,
                &self.context,
                &self.config,
                Some(&self.services),
                &self.context.trace_id,
            )
            .await?;
        }
        self.ready_after = Some(self.started_at.elapsed());
        log_step(
            &self.context.trace_id,
            "ready",
            step,
            &format!(
                "total_ms={:.3}",
                self.started_at.elapsed().as_secs_f64() * 1000.0
            ),
        );
        Ok(())
    }

    /// Runs `on_shutdown` hooks, then shuts providers down in reverse boot order. Every
    /// provider is given its chance even if an earlier one fails; the first error is returned.
    pub async fn shutdown(self) -> Result<(), KernelError> {
        let step = Instant::now();
        let trace_id = self.context.trace_id;
        let mut first_error = None;
        if self.mode != BootMode::DryRun {
            for hook in self.hooks.at(Hook::Shutdown) {
                let cx = HookContext {
                    context: &self.context,
                    config: &self.config,
                    services: Some(&self.services),
                    upgrade: None,
                };
                if let Err(message) = hook.run(&cx).await {
                    tracing::error!(target: "prefiq::boot", trace_id = %trace_id, module = %hook.module, hook = %hook.name, error = %message, "on_shutdown hook failed");
                    first_error.get_or_insert(KernelError::Hook {
                        hook: Hook::Shutdown.name(),
                        module: hook.module.clone(),
                        message,
                    });
                }
            }
        }
        for provider in self.providers.iter().rev() {
            let requester = format!("provider `{}`", provider.name());
            let cx = BootContext {
                config: &self.config,
                mode: self.mode,
                context: &self.context,
                services: Resolver::new(&self.services, &requester),
            };
            if let Err(e) = provider.shutdown(&cx).await {
                tracing::error!(target: "prefiq::boot", trace_id = %trace_id, provider = provider.name(), error = %e, "provider shutdown failed");
                first_error.get_or_insert(KernelError::Provider {
                    provider: provider.name().to_owned(),
                    phase: "shutdown",
                    message: e.to_string(),
                });
            }
        }
        log_step(
            &trace_id,
            "shutdown",
            step,
            &format!("providers={}", self.providers.len()),
        );
        first_error.map_or(Ok(()), Err)
    }
}
