//! The `prefiq` command line: the composition root that knows which apps are installed,
//! and the only crate that knows the terminal.

#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod accounting;
pub mod audit;
pub mod backup;
pub mod jobs;
pub mod logging;
pub mod memory_models;
pub mod plugin;
pub mod scaffold;
pub mod telemetry;
pub mod tenant_transfer;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use prefiq::{
    App, BootMode, BootOptions, BootPlan, BootedApp, Config, ConfigOptions, ConfigService,
    KernelError,
};
use prefiq_data::{DatabaseHandle, DatabaseProvider};
use prefiq_http::HttpProvider;

/// Codexion's command line.
#[derive(Debug, Parser)]
#[command(
    name = "prefiq",
    version,
    about = "Boot, serve and operate a Codexion installation."
)]
pub struct Cli {
    /// The environment (selects config/{env}.yaml); overrides PREFIQ_ENV. Default: development.
    #[arg(long, global = true)]
    pub env: Option<String>,
    /// The installation directory holding config/, .env and data/. Default: the working directory.
    #[arg(long, global = true)]
    pub dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot every module and serve the API until SIGTERM or SIGINT.
    Serve {
        /// Port to listen on (overrides server.port).
        #[arg(long)]
        port: Option<u16>,
        /// Address to bind (overrides server.host).
        #[arg(long)]
        host: Option<String>,
        /// Do not apply pending migrations at boot.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Run the boot sequence up to ready; with --dry-run, write nothing and print the plan.
    Boot {
        /// Bind no port and write nothing; print modules, providers, routes and pending migrations.
        #[arg(long)]
        dry_run: bool,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply pending migrations; with --dry-run, print their SQL instead.
    Migrate {
        /// Print the SQL that would run on the configured backend, and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List installed modules in boot order.
    Modules {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List every route.
    Routes {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show or change configuration.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check the config, the database and the migrations.
    Doctor,
    /// Create, list, suspend and resume tenants.
    Tenant {
        /// What to do.
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Verify, checkpoint, export and check the audit logs.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Take an online backup of the whole installation (every database, the config, and
    /// with --include-keys the signing keys) into one file checked by its manifest.
    Backup {
        /// The backup file to write (written as FILE.partial until complete).
        #[arg(long)]
        to: PathBuf,
        /// Put the audit and token signing keys and .env in the backup too.
        #[arg(long)]
        include_keys: bool,
    },
    /// Restore a backup: check it against its manifest, put it in place, migrate, and
    /// verify every audit log before reporting success.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Replace an installation that holds data (its databases, and keys that differ).
        #[arg(long)]
        force: bool,
        /// A signed checkpoint kept outside the server that the restored logs must match
        /// (repeatable).
        #[arg(long)]
        checkpoint: Vec<PathBuf>,
        /// Only check the file against its manifest; restore nothing.
        #[arg(long)]
        check_only: bool,
    },
    /// Import and export journals, and print the trial balance and balances.
    Accounting {
        /// What to do.
        #[command(subcommand)]
        command: accounting::AccountingCommand,
    },
    /// Run jobs (no HTTP) until SIGTERM or SIGINT, then let running ones finish within
    /// server.drain_timeout_ms.
    Worker {
        /// Only these queues (comma-separated; default: every queue in jobs.queues).
        #[arg(long, value_delimiter = ',')]
        queues: Vec<String>,
    },
    /// List, show, retry and cancel jobs.
    Jobs {
        /// What to do.
        #[command(subcommand)]
        command: jobs::JobsCommand,
    },
    /// List the cron schedules modules declare.
    Schedules {
        /// What to do.
        #[command(subcommand)]
        command: jobs::SchedulesCommand,
    },
    /// Follow events as writes commit them.
    Events {
        /// What to do.
        #[command(subcommand)]
        command: jobs::EventsCommand,
    },
    /// Plugins: keys, packages, and what this installation runs.
    Plugin {
        /// What to do.
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
    /// Experience memory: its embedding models.
    Memory {
        /// What to do.
        #[command(subcommand)]
        command: memory_models::MemoryCommand,
    },
    /// Scaffold a new app crate under apps/.
    #[command(name = "make:module")]
    MakeModule {
        /// The module name (snake_case).
        name: String,
        /// Where app crates live.
        #[arg(long, default_value = "apps")]
        apps_dir: PathBuf,
    },
}

/// `prefiq tenant ...`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first user, an administrator.
    Create {
        /// The tenant name (a-z, 0-9, `-`; also its host label).
        name: String,
        /// The administrator's email.
        #[arg(long)]
        admin_email: String,
        /// The administrator's password (at least 8 characters).
        #[arg(long, env = "PREFIQ_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: String,
    },
    /// List tenants.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Suspend a tenant: its tokens stop working and its users cannot log in.
    Suspend {
        /// The tenant.
        name: String,
    },
    /// Make a suspended tenant active again.
    Resume {
        /// The tenant.
        name: String,
    },
    /// Break-glass: remove the tenant's own policies and restore an administrator
    /// (re-enable it and give it `System Manager`, or create it); recorded in the
    /// tenant's audit log.
    Recover {
        /// The tenant.
        name: String,
        /// The administrator to restore (default: the tenant's first System Manager).
        #[arg(long)]
        admin_email: Option<String>,
        /// The password of an administrator that does not exist yet and is created.
        #[arg(long, env = "PREFIQ_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
    },
    /// Write one tenant's data (records, custom fields, runtime entities, users, audit
    /// log) to a file (docs/tenant-export.md).
    Export {
        /// The tenant.
        name: String,
        /// The file to write.
        #[arg(long)]
        to: PathBuf,
        /// Include users' password hashes, API keys and webhook secrets (without them users
        /// must reset their passwords).
        #[arg(long)]
        include_password_hashes: bool,
    },
    /// Load a tenant export into this installation, as a new tenant.
    Import {
        /// The export file.
        file: PathBuf,
        /// The new tenant's name (default: the exported tenant's).
        #[arg(long = "as")]
        as_name: Option<String>,
    },
}

/// `prefiq config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective config with each value's source; secrets are redacted.
    Show {
        /// Apply this tenant's overrides.
        #[arg(long)]
        tenant: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Store a tenant override. VALUE is JSON, or else taken as a string.
    Set {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The dotted key, such as app.locale.
        key: String,
        /// The value.
        value: String,
    },
    /// Remove a tenant override.
    Unset {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The dotted key.
        key: String,
    },
}

/// A failed command: one line for the terminal and a non-zero exit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The kernel refused (config, modules, migrations, providers).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The HTTP layer failed.
    #[error(transparent)]
    Http(#[from] prefiq_http::HttpError),
    /// Something else, already phrased for the user.
    #[error("{0}")]
    Message(String),
}

/// The installation this binary serves: the platform providers and every compiled-in app.
/// Adding an app means adding it here (and to this crate's dependencies).
pub fn installation() -> Result<App, CliError> {
    let cortex = cortex::Cortex::new().map_err(|e| CliError::Message(e.to_string()))?;
    let accounting =
        ::accounting::Accounting::new().map_err(|e| CliError::Message(e.to_string()))?;
    let webhooks =
        ::webhooks::WebhooksModule::new().map_err(|e| CliError::Message(e.to_string()))?;
    let plugins = ::plugins::PluginsModule::new().map_err(|e| CliError::Message(e.to_string()))?;
    let memory = ::memory::MemoryModule::new().map_err(|e| CliError::Message(e.to_string()))?;
    let trade = ::trade::Trade::new().map_err(|e| CliError::Message(e.to_string()))?;
    let crm = ::crm::Crm::new().map_err(|e| CliError::Message(e.to_string()))?;
    let selling = ::selling::Selling::new().map_err(|e| CliError::Message(e.to_string()))?;
    let buying = ::buying::Buying::new().map_err(|e| CliError::Message(e.to_string()))?;
    let stock = ::stock::Stock::new().map_err(|e| CliError::Message(e.to_string()))?;
    Ok(App::new()
        .provider(DatabaseProvider)
        .provider(prefiq_data::audit::AuditProvider::default())
        .provider(prefiq_worker::EventsProvider::default())
        .provider(prefiq_worker::JobsProvider::default())
        .provider(prefiq_cache::CacheProvider::default())
        .provider(prefiq_backup::provider::BackupProvider)
        .provider(HttpProvider)
        .module(cortex)
        .module(accounting)
        .module(webhooks)
        .module(plugins)
        .module(memory)
        .module(trade)
        .module(crm)
        .module(selling)
        .module(buying)
        .module(stock))
}

fn config_options(cli: &Cli, flags: Vec<(String, serde_json::Value)>) -> ConfigOptions {
    ConfigOptions {
        root: cli.dir.clone(),
        env: cli.env.clone(),
        flags,
        ..Default::default()
    }
}

async fn boot(
    app: App,
    cli: &Cli,
    mode: BootMode,
    migrate: bool,
    flags: Vec<(String, serde_json::Value)>,
    logs: &logging::LogControl,
    quiet: bool,
) -> Result<BootedApp, CliError> {
    let mut options = BootOptions::new(mode);
    options.migrate = migrate;
    options.config = config_options(cli, flags);
    let logs = logs.clone();
    options.on_config = Some(Box::new(move |config: &Config| logs.apply(config, quiet)));
    let booted = app.boot(options).await?;
    // The metrics recorder exists once the providers booted.
    telemetry::describe_metrics();
    Ok(booted)
}

/// Runs `cli` against `app`. Output goes to stdout; logs to stderr.
pub async fn run(cli: Cli, app: App, logs: &logging::LogControl) -> Result<(), CliError> {
    match &cli.command {
        Command::Serve {
            port,
            host,
            no_migrate,
        } => {
            let mut flags = Vec::new();
            if let Some(port) = port {
                flags.push(("server.port".to_owned(), serde_json::json!(port)));
            }
            if let Some(host) = host {
                flags.push(("server.host".to_owned(), serde_json::json!(host)));
            }
            let booted = boot(app, &cli, BootMode::Serve, !no_migrate, flags, logs, false).await?;
            let address = format!(
                "{}:{}",
                booted.config.server.host, booted.config.server.port
            );
            let listener = match tokio::net::TcpListener::bind(&address).await {
                Ok(listener) => listener,
                Err(e) => {
                    let _ = booted.shutdown().await;
                    return Err(CliError::Message(format!(
                        "cannot listen on {address}: {e}"
                    )));
                }
            };
            prefiq_http::serve(booted, listener, shutdown_signal()).await?;
            Ok(())
        }
        Command::Boot { dry_run, json } => {
            let mode = if *dry_run {
                BootMode::DryRun
            } else {
                BootMode::Command
            };
            let mut booted = boot(app, &cli, mode, !dry_run, vec![], logs, false).await?;
            booted.ready().await?;
            let plan = booted.plan().clone();
            booted.shutdown().await?;
            print_out(&if *json {
                to_json(&plan)?
            } else {
                render_plan(&plan)
            });
            Ok(())
        }
        Command::Migrate { dry_run } => {
            let mode = if *dry_run {
                BootMode::DryRun
            } else {
                BootMode::Command
            };
            let booted = boot(app, &cli, mode, !dry_run, vec![], logs, true).await?;
            let plan = booted.plan().migrations.clone();
            booted.shutdown().await?;
            let mut out = String::new();
            let backend = plan
                .backend
                .map(|b| format!("{b:?}").to_lowercase())
                .unwrap_or_else(|| "none".into());
            if plan.pending.is_empty() {
                let _ = writeln!(out, "nothing to migrate ({backend})");
            } else if *dry_run {
                let _ = writeln!(
                    out,
                    "-- {} pending migration(s) for {backend}; nothing was run",
                    plan.pending.len()
                );
                for m in &plan.pending {
                    let _ = writeln!(out, "\n-- {}/{}\n{}", m.module, m.id, m.sql.trim_end());
                }
            } else {
                for m in &plan.pending {
                    let _ = writeln!(out, "applied {}/{}", m.module, m.id);
                }
            }
            print_out(&out);
            Ok(())
        }
        Command::Modules { json } => {
            let booted = boot(app, &cli, BootMode::DryRun, false, vec![], logs, true).await?;
            let plan = booted.plan().clone();
            booted.shutdown().await?;
            if *json {
                print_out(&to_json(&plan.modules)?);
            } else {
                let mut out = String::new();
                for (i, m) in plan.modules.iter().enumerate() {
                    let deps = if m.depends.is_empty() {
                        "-".to_owned()
                    } else {
                        m.depends.join(", ")
                    };
                    let _ = writeln!(
                        out,
                        "{}. {} {}  depends: {}",
                        i + 1,
                        m.name,
                        m.version,
                        deps
                    );
                    let _ = writeln!(out, "   providers: {}", list(&m.providers));
                    let _ = writeln!(out, "   migrations: {}", list(&m.migrations));
                    let _ = writeln!(out, "   routes: {}", list(&m.routes));
                    let _ = writeln!(out, "   entities: {}", list(&m.entities));
                    let _ = writeln!(out, "   permissions: {}", list(&m.permissions));
                    let _ = writeln!(out, "   hooks: {}", list(&m.hooks));
                }
                print_out(&out);
            }
            Ok(())
        }
        Command::Routes { json } => {
            let booted = boot(app, &cli, BootMode::DryRun, false, vec![], logs, true).await?;
            let routes = booted.plan().routes.clone();
            booted.shutdown().await?;
            if *json {
                print_out(&to_json(&routes)?);
            } else {
                let mut out = String::new();
                for r in &routes {
                    let _ = writeln!(out, "{:<7} {:<32} {}", r.method, r.path, r.module);
                }
                print_out(&out);
            }
            Ok(())
        }
        Command::Config { command } => config_command(command, app, &cli, logs).await,
        Command::Doctor => doctor(app, &cli, logs).await,
        Command::Tenant { command } => tenant_command(command, app, &cli, logs).await,
        Command::Audit { command } => audit::command(command, app, &cli, logs).await,
        Command::Accounting { command } => accounting::command(command, app, &cli, logs).await,
        Command::Backup { to, include_keys } => {
            backup::backup(app, &cli, to, *include_keys, logs).await
        }
        Command::Restore {
            file,
            force,
            checkpoint,
            check_only,
        } => backup::restore(app, &cli, file, *force, checkpoint, *check_only, logs).await,
        Command::Worker { queues } => jobs::worker(app, &cli, queues.clone(), logs).await,
        Command::Jobs { command } => jobs::jobs(command, app, &cli, logs).await,
        Command::Events { command } => jobs::events(command, app, &cli, logs).await,
        Command::Schedules { command } => jobs::schedules(command, app, &cli, logs).await,
        Command::Plugin { command } => plugin::command(command, app, &cli, logs).await,
        Command::Memory { command } => memory_models::command(command, app, &cli, logs).await,
        Command::MakeModule { name, apps_dir } => {
            let root = cli.dir.clone().unwrap_or_else(|| PathBuf::from("."));
            let created = scaffold::make_module(&root.join(apps_dir), name)
                .map_err(|e| CliError::Message(e.to_string()))?;
            let mut out = format!("created module `{name}` in {}\n", created.display());
            let _ = writeln!(out, "  cargo test -p {name}          # run its test");
            let _ = writeln!(
                out,
                "  to serve it: add `{name}` to crates/prefiq-cli/Cargo.toml and `.module({name}::module()?)` to installation()"
            );
            print_out(&out);
            Ok(())
        }
    }
}

async fn tenant_command(
    command: &TenantCommand,
    app: App,
    cli: &Cli,
    logs: &logging::LogControl,
) -> Result<(), CliError> {
    match command {
        TenantCommand::Export {
            name,
            to,
            include_password_hashes,
        } => {
            let out =
                tenant_transfer::export(app, cli, logs, name, to, *include_password_hashes).await?;
            print_out(&out);
            return Ok(());
        }
        TenantCommand::Import { file, as_name } => {
            let out = tenant_transfer::import(app, cli, logs, file, as_name.as_deref()).await?;
            print_out(&out);
            return Ok(());
        }
        _ => {}
    }
    let booted = boot(app, cli, BootMode::Command, true, vec![], logs, true).await?;
    let identity = booted
        .resolver("prefiq tenant")
        .get::<cortex::identity::Identity>()?;
    let result = match command {
        TenantCommand::Create {
            name,
            admin_email,
            admin_password,
        } => identity
            .create_tenant(name, admin_email, admin_password)
            .await
            .map(|t| {
                format!(
                    "created tenant `{}` with administrator {admin_email}\n",
                    t.name
                )
            }),
        TenantCommand::List { json } => identity.tenants().await.map(|tenants| {
            if *json {
                serde_json::to_string_pretty(&tenants).unwrap_or_default() + "\n"
            } else if tenants.is_empty() {
                "no tenants\n".to_owned()
            } else {
                let mut out = String::new();
                for t in &tenants {
                    let _ = writeln!(out, "{:<32} {:<10} {}", t.name, t.status, t.created_at);
                }
                out
            }
        }),
        TenantCommand::Suspend { name } => identity
            .set_status(name, "suspended")
            .await
            .map(|()| format!("suspended tenant `{name}`\n")),
        TenantCommand::Resume { name } => identity
            .set_status(name, "active")
            .await
            .map(|()| format!("resumed tenant `{name}`\n")),
        TenantCommand::Recover {
            name,
            admin_email,
            admin_password,
        } => identity
            .recover_tenant(name, admin_email.as_deref(), admin_password.as_deref())
            .await
            .map(|recovery| recovery.to_string()),
        TenantCommand::Export { .. } | TenantCommand::Import { .. } => Ok(String::new()),
    };
    booted.shutdown().await?;
    print_out(&result.map_err(|e| CliError::Message(e.to_string()))?);
    Ok(())
}

async fn config_command(
    command: &ConfigCommand,
    app: App,
    cli: &Cli,
    logs: &logging::LogControl,
) -> Result<(), CliError> {
    match command {
        ConfigCommand::Show { tenant: None, json } => {
            let mut options = config_options(cli, vec![]);
            options.module_sections = app.config_sections();
            let config = Config::load(&options).map_err(KernelError::from)?;
            show_config(&config, *json)
        }
        ConfigCommand::Show {
            tenant: Some(tenant),
            json,
        } => {
            let booted = boot(app, cli, BootMode::DryRun, false, vec![], logs, true).await?;
            let effective = tenant_config(&booted, tenant).await;
            booted.shutdown().await?;
            show_config(&effective?, *json)
        }
        ConfigCommand::Set { tenant, key, value } => {
            let value = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.clone()));
            set_override(app, cli, logs, tenant, key, Some(value)).await
        }
        ConfigCommand::Unset { tenant, key } => {
            set_override(app, cli, logs, tenant, key, None).await
        }
    }
}

async fn tenant_config(booted: &BootedApp, tenant: &str) -> Result<Config, CliError> {
    let service = booted.resolver("prefiq config").get::<ConfigService>()?;
    if booted
        .resolver("prefiq config")
        .get::<DatabaseHandle>()?
        .get()
        .is_err()
    {
        return Err(CliError::Message(
            "the database does not exist yet; run `prefiq migrate` first".into(),
        ));
    }
    if !booted.plan().migrations.pending.is_empty() {
        return Err(CliError::Message(format!(
            "the database has {} pending migration(s); run `prefiq migrate` first",
            booted.plan().migrations.pending.len()
        )));
    }
    Ok(service.for_tenant(tenant).await?)
}

async fn set_override(
    app: App,
    cli: &Cli,
    logs: &logging::LogControl,
    tenant: &str,
    key: &str,
    value: Option<serde_json::Value>,
) -> Result<(), CliError> {
    if !prefiq::context::is_tenant_name(tenant) {
        return Err(CliError::Message(format!(
            "invalid tenant `{tenant}`: use a-z, 0-9 and `-`, at most 63"
        )));
    }
    prefiq::config::check_tenant_key(key, &app.module_names()).map_err(KernelError::from)?;
    let booted = boot(app, cli, BootMode::Command, false, vec![], logs, true).await?;
    let result = async {
        tenant_config(&booted, tenant).await?;
        let service = booted.resolver("prefiq config").get::<ConfigService>()?;
        service.set_override(tenant, key, value.clone()).await?;
        // The change is in the tenant's audit log; a secret's value only as a hash.
        let log = booted
            .resolver("prefiq config")
            .get::<prefiq_data::audit::AuditLog>()?;
        let shown = |v: &serde_json::Value| {
            if prefiq::config::is_secret_key(key) {
                serde_json::json!({"sha256": prefiq_data::audit::pii_hash(tenant, v)})
            } else {
                v.clone()
            }
        };
        let time = prefiq_data::entity::value::civil_now();
        log.record(&prefiq_data::audit::AuditRecord {
            tenant,
            time: &time,
            actor: None,
            action: if value.is_some() {
                "config_set"
            } else {
                "config_unset"
            },
            entity: None,
            id: Some(key),
            changes: serde_json::json!({ key: {"after": value.as_ref().map(shown)} }),
            trace: "",
        })
        .await
        .map_err(|e| CliError::Message(e.to_string()))?;
        Ok::<_, CliError>(())
    }
    .await;
    booted.shutdown().await?;
    result?;
    match value {
        Some(value) => print_out(&format!("{tenant}: {key} = {value}\n")),
        None => print_out(&format!("{tenant}: {key} removed\n")),
    }
    Ok(())
}

fn show_config(config: &Config, json: bool) -> Result<(), CliError> {
    let entries = config.entries();
    if json {
        let map: BTreeMap<&str, serde_json::Value> = entries
            .iter()
            .map(|e| (e.key.as_str(), serde_json::json!({"value": serde_json::from_str::<serde_json::Value>(&e.value).unwrap_or_default(), "source": e.source})))
            .collect();
        print_out(&to_json(
            &serde_json::json!({"env": config.env, "tenant": config.tenant, "values": map}),
        )?);
    } else {
        let width = entries.iter().map(|e| e.key.len()).max().unwrap_or(0);
        let value_width = entries
            .iter()
            .map(|e| e.value.len())
            .max()
            .unwrap_or(0)
            .min(48);
        let mut out = format!(
            "# env: {}{}\n",
            config.env,
            config
                .tenant
                .as_ref()
                .map(|t| format!(", tenant: {t}"))
                .unwrap_or_default()
        );
        for e in &entries {
            let _ = writeln!(
                out,
                "{:<width$} = {:<value_width$}  # {}",
                e.key, e.value, e.source
            );
        }
        print_out(&out);
    }
    Ok(())
}

async fn doctor(app: App, cli: &Cli, logs: &logging::LogControl) -> Result<(), CliError> {
    let mut out = String::new();
    let mut failed = false;
    let mut line = |out: &mut String, check: &str, status: &str, detail: &str| {
        failed |= status == "FAIL";
        let _ = writeln!(out, "{check:<11} {status:<4}  {detail}");
    };
    let mut options = config_options(cli, vec![]);
    options.module_sections = app.config_sections();
    match Config::load(&options) {
        Ok(config) => {
            let detail = format!(
                "env {}, database {}",
                config.env,
                prefiq::config::redact_url_password(&config.database.url)
            );
            line(&mut out, "config", "ok", &detail);
        }
        Err(e) => {
            line(&mut out, "config", "FAIL", &e.to_string());
            line(&mut out, "database", "SKIP", "the config is invalid");
            line(&mut out, "migrations", "SKIP", "the config is invalid");
            print_out(&out);
            return Err(CliError::Message("doctor found problems".into()));
        }
    }
    match boot(app, cli, BootMode::DryRun, false, vec![], logs, true).await {
        Ok(booted) => {
            let handle = booted.resolver("prefiq doctor").get::<DatabaseHandle>()?;
            match handle.get() {
                Ok(database) => match database.ping().await {
                    Ok(()) => line(
                        &mut out,
                        "database",
                        "ok",
                        &format!("{} reachable", handle.url().display()),
                    ),
                    Err(e) => line(&mut out, "database", "FAIL", &e.to_string()),
                },
                Err(_) => line(
                    &mut out,
                    "database",
                    "warn",
                    &format!(
                        "{} does not exist yet; `prefiq serve` or `prefiq migrate` creates it",
                        handle.url().display()
                    ),
                ),
            }
            let plan = &booted.plan().migrations;
            if plan.pending.is_empty() {
                line(&mut out, "migrations", "ok", "all applied");
            } else {
                let names: Vec<String> = plan
                    .pending
                    .iter()
                    .map(|m| format!("{}/{}", m.module, m.id))
                    .collect();
                line(
                    &mut out,
                    "migrations",
                    "warn",
                    &format!("{} pending: {}", names.len(), names.join(", ")),
                );
            }
            booted.shutdown().await?;
        }
        Err(CliError::Kernel(KernelError::Migration(message))) => {
            line(&mut out, "database", "ok", "reachable");
            line(&mut out, "migrations", "FAIL", &message);
        }
        Err(e) => {
            line(&mut out, "database", "FAIL", &e.to_string());
            line(&mut out, "migrations", "SKIP", "the database is not usable");
        }
    }
    print_out(&out);
    if failed {
        Err(CliError::Message("doctor found problems".into()))
    } else {
        Ok(())
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| CliError::Message(e.to_string()))
}

fn print_out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`prefiq routes | head`) is not an error worth a panic.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// The plan as text for `boot --dry-run`.
pub fn render_plan(plan: &BootPlan) -> String {
    let mut out = String::new();
    let mode = match plan.mode {
        BootMode::DryRun => "dry run: nothing was written and no port was bound",
        BootMode::Command => "booted and shut down",
        BootMode::Serve => "serve",
    };
    let _ = writeln!(
        out,
        "boot plan, env {} ({mode}), trace {}",
        plan.env, plan.trace_id
    );
    let _ = writeln!(out, "\nmodules, in boot order:");
    for (i, m) in plan.modules.iter().enumerate() {
        let deps = if m.depends.is_empty() {
            String::new()
        } else {
            format!("  (depends on {})", m.depends.join(", "))
        };
        let _ = writeln!(out, "  {}. {} {}{deps}", i + 1, m.name, m.version);
    }
    let _ = writeln!(out, "\nproviders, in boot order:");
    for p in &plan.providers {
        let _ = writeln!(out, "  {p}");
    }
    let _ = writeln!(out, "\nroutes:");
    for r in &plan.routes {
        let _ = writeln!(out, "  {:<7} {:<32} {}", r.method, r.path, r.module);
    }
    let backend = plan
        .migrations
        .backend
        .map(|b| format!("{b:?}").to_lowercase())
        .unwrap_or_else(|| "none".into());
    let _ = writeln!(out, "\npending migrations ({backend}):");
    if plan.migrations.pending.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for m in &plan.migrations.pending {
        let _ = writeln!(out, "  {}/{}", m.module, m.id);
    }
    let hooks: Vec<String> = plan
        .modules
        .iter()
        .flat_map(|m| m.hooks.iter().map(move |h| format!("{}:{h}", m.name)))
        .collect();
    let _ = writeln!(out, "\nhooks: {}", list(&hooks));
    out
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
