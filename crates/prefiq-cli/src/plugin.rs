//! `prefiq plugin …`: make publisher keys, scaffold, pack, sign and verify plugin packages,
//! and install, upgrade, uninstall, list, enable and disable them on this installation.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use prefiq::{App, BootMode};
use prefiq_plugin::package::{self, TrustPolicy};
use prefiq_plugin::sandbox::componentize::pack_dir_as_component;

use crate::{Cli, CliError, boot, logging, print_out, to_json};

/// `prefiq plugin ...`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Make a publisher key pair: the secret key goes to a file (mode 0600), the public
    /// key (`ed25519:…`, for `plugins.trusted_keys`) is printed.
    Keygen {
        /// Where to write the secret key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Scaffold a plugin in Rust (built with Debian's rustc for wasm32): sources in
    /// NAME/src, the package's files (plugin.yml, then plugin.wasm) in NAME/package.
    New {
        /// The plugin's name (lowercase letters, digits and '-').
        name: String,
        /// The folder to create it in (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Pack a plugin folder (plugin.yml, plugin.wasm, …) into a .cxp, wrapping a core
    /// module into a component of the codexion:plugin world.
    Pack {
        /// The folder.
        dir: PathBuf,
        /// The package to write (default: NAME-VERSION.cxp in the current folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Sign it with this secret key file as well.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Sign a package with a secret key (replacing any signature).
    Sign {
        /// The package.
        package: PathBuf,
        /// The secret key file (from `prefiq plugin keygen`).
        #[arg(long)]
        key: PathBuf,
    },
    /// Check a package: every file's digest and the signature against this installation's
    /// trusted keys (or the key given).
    Verify {
        /// The package.
        package: PathBuf,
        /// Trust this public key (`ed25519:…`) instead of the installation's keys.
        #[arg(long)]
        trust: Option<String>,
    },
    /// Install a package on this installation (once; tenants then enable it): a .cxp
    /// file, or NAME[@VERSION] from the registry (plugins.registry).
    Install {
        /// The package file, or NAME[@VERSION].
        package: String,
    },
    /// Upgrade an installed plugin to a later version of it: a .cxp file, or
    /// NAME[@VERSION] from the registry.
    Upgrade {
        /// The package file, or NAME[@VERSION].
        package: String,
    },
    /// Search the registry (plugins.registry) by name or description.
    Search {
        /// Words to look for (all packages when absent).
        query: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a registry index (index.json) for the signed packages in a folder.
    Index {
        /// The folder of .cxp files; index.json is written into it.
        dir: PathBuf,
    },
    /// Uninstall a plugin; the records it wrote stay, and so do its tenants' settings
    /// unless --purge.
    Uninstall {
        /// The plugin.
        name: String,
        /// Also forget every tenant's settings of it.
        #[arg(long)]
        purge: bool,
    },
    /// List the installed plugins and the tenants that enabled them.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enable a plugin for a tenant.
    Enable {
        /// The plugin.
        name: String,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Its settings, as a JSON object.
        #[arg(long)]
        config: Option<String>,
    },
    /// Disable a plugin for a tenant.
    Disable {
        /// The plugin.
        name: String,
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
}

fn message(e: impl std::fmt::Display) -> CliError {
    CliError::Message(e.to_string())
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    let size = std::fs::metadata(path)
        .map_err(|e| message(format!("{}: {e}", path.display())))?
        .len();
    if size > package::MAX_PACKAGE_BYTES {
        return Err(message(format!(
            "{}: {size} bytes; a package is at most {} bytes",
            path.display(),
            package::MAX_PACKAGE_BYTES
        )));
    }
    std::fs::read(path).map_err(|e| message(format!("{}: {e}", path.display())))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes).map_err(|e| message(format!("{}: {e}", path.display())))
}

fn secret_key(path: &Path) -> Result<ed25519_dalek::SigningKey, CliError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| message(format!("{}: {e}", path.display())))?;
    package::parse_secret_key(&text).map_err(|e| message(format!("{}: {e}", path.display())))
}

/// Runs `prefiq plugin …`.
pub async fn command(
    command: &PluginCommand,
    app: App,
    cli: &Cli,
    logs: &logging::LogControl,
) -> Result<(), CliError> {
    match command {
        PluginCommand::Keygen { out } => keygen(out),
        PluginCommand::New { name, dir } => scaffold(name, dir.as_deref()),
        PluginCommand::Pack { dir, out, key } => pack(dir, out.as_deref(), key.as_deref()),
        PluginCommand::Sign { package: path, key } => {
            let signed = package::sign(&read(path)?, &secret_key(key)?).map_err(message)?;
            write(path, &signed)?;
            print_out(&format!("signed {}\n", path.display()));
            Ok(())
        }
        PluginCommand::Verify {
            package: path,
            trust,
        } => {
            let bytes = read(path)?;
            let policy = match trust {
                Some(key) => TrustPolicy {
                    keys: vec![key.parse().map_err(message)?],
                    allow_unsigned: false,
                },
                None => {
                    let booted =
                        boot(app, cli, BootMode::DryRun, false, vec![], logs, true).await?;
                    let plugins = booted
                        .resolver("prefiq plugin verify")
                        .get::<plugins::Plugins>()?;
                    let trust = plugins.trust().map_err(message);
                    booted.shutdown().await?;
                    trust?
                }
            };
            let opened = package::open(&bytes, &policy).map_err(message)?;
            let signer = opened
                .signer
                .map_or_else(|| "unsigned".to_owned(), |k| format!("signed by {k}"));
            print_out(&format!(
                "{} {}: {} files verified, {signer}, sha256 {}\n",
                opened.manifest.name,
                opened.manifest.version,
                opened.files.len(),
                opened.digest
            ));
            Ok(())
        }
        PluginCommand::Index { dir } => index(dir),
        _ => installation(command, app, cli, logs).await,
    }
}

fn keygen(out: &Path) -> Result<(), CliError> {
    if out.exists() {
        return Err(message(format!(
            "{} exists; a key is never overwritten",
            out.display()
        )));
    }
    let (secret, public) = package::generate_key();
    write_private(out, secret.as_bytes())?;
    print_out(&format!(
        "secret key written to {}\npublic key: {public}\n(add the public key to plugins.trusted_keys of the installations that install your packages)\n",
        out.display()
    ));
    Ok(())
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| message(format!("{}: {e}", path.display())))?;
    file.write_all(bytes)
        .map_err(|e| message(format!("{}: {e}", path.display())))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    write(path, bytes)
}

fn pack(dir: &Path, out: Option<&Path>, key: Option<&Path>) -> Result<(), CliError> {
    let mut packed = pack_dir_as_component(dir).map_err(message)?;
    let opened = package::open(
        &packed,
        &TrustPolicy {
            keys: Vec::new(),
            allow_unsigned: true,
        },
    )
    .map_err(message)?;
    // It must load: a module that does not fit the world is refused now, not at install.
    let sandbox = prefiq_plugin::sandbox::Sandbox::new(Default::default()).map_err(message)?;
    sandbox
        .load(&opened.manifest.name, opened.wasm())
        .map_err(message)?;
    if let Some(key) = key {
        packed = package::sign(&packed, &secret_key(key)?).map_err(message)?;
    }
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}-{}.cxp",
            opened.manifest.name, opened.manifest.version
        ))
    });
    write(&out, &packed)?;
    print_out(&format!(
        "packed {} {} into {} ({} bytes, sha256 {}){}\n",
        opened.manifest.name,
        opened.manifest.version,
        out.display(),
        packed.len(),
        package::digest_hex(&packed),
        if key.is_some() {
            ", signed"
        } else {
            ", unsigned"
        }
    ));
    Ok(())
}

/// Writes `index.json` for the signed packages in `dir`: each package's name, version,
/// file and digest, and each publisher's signing keys.
fn index(dir: &Path) -> Result<(), CliError> {
    use prefiq_plugin::registry::{Listing, RegistryIndex, Release};
    let mut index = RegistryIndex {
        format: 1,
        publishers: Default::default(),
        packages: Default::default(),
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| message(format!("{}: {e}", dir.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|x| x == "cxp"))
        .collect();
    entries.sort();
    for path in &entries {
        let bytes = read(path)?;
        // Opened only to read who signed it; the index does not vouch for anything.
        let signer = package::signer_of(&bytes)
            .map_err(|e| message(format!("{}: {e}", path.display())))?
            .ok_or_else(|| {
                message(format!(
                    "{}: not signed; a registry lists signed packages only",
                    path.display()
                ))
            })?;
        let opened = package::open(
            &bytes,
            &TrustPolicy {
                keys: vec![signer],
                allow_unsigned: false,
            },
        )
        .map_err(|e| message(format!("{}: {e}", path.display())))?;
        let manifest = opened.manifest;
        let publisher = if manifest.publisher.is_empty() {
            signer.to_string()
        } else {
            manifest.publisher.clone()
        };
        let keys = index.publishers.entry(publisher.clone()).or_default();
        if !keys.contains(&signer) {
            keys.push(signer);
        }
        let listing = index
            .packages
            .entry(manifest.name.clone())
            .or_insert_with(|| Listing {
                publisher: publisher.clone(),
                description: manifest.description.clone(),
                versions: Default::default(),
            });
        listing.versions.insert(
            manifest.version.clone(),
            Release {
                file: path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: opened.digest,
                prefiq: manifest.requires.prefiq.clone(),
            },
        );
    }
    let out = dir.join("index.json");
    write(&out, to_json(&index)?.as_bytes())?;
    print_out(&format!(
        "wrote {} ({} packages)\n",
        out.display(),
        entries.len()
    ));
    Ok(())
}

/// The Rust SDK, copied into a scaffolded plugin.
const RUST_SDK: &str = include_str!("../../../examples/plugins/sdk/rust/codexion.rs");

fn scaffold(name: &str, dir: Option<&Path>) -> Result<(), CliError> {
    if !prefiq_plugin::manifest::is_plugin_name(name) {
        return Err(message(format!(
            "{name:?} is not a plugin name: lowercase letters, digits and '-', starting with a letter"
        )));
    }
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        return Err(message(format!("{} exists", dir.display())));
    }
    // Sources in src/, the package's files in package/ (a package holds no sources).
    std::fs::create_dir_all(dir.join("package"))
        .map_err(|e| message(format!("{}: {e}", dir.display())))?;
    std::fs::create_dir_all(dir.join("src"))
        .map_err(|e| message(format!("{}: {e}", dir.display())))?;
    let manifest = format!(
        "name: {name}\nversion: 0.1.0\ndescription: What {name} does.\npublisher: you\nrequires:\n  prefiq: \">=0.1.0, <0.2.0\"\ncapabilities:\n  routes:\n    - {{method: GET, path: /hello}}\n"
    );
    let lib = format!(
        r#"//! The {name} plugin.
#[macro_use]
#[path = "codexion.rs"]
mod codexion;

use codexion::Plugin;

struct Hello;

impl Plugin for Hello {{
    fn on_route(request: &str) -> String {{
        let _ = request;
        codexion::response(200, "{{\"hello\":\"from {name}\"}}")
    }}
}}

export_plugin!(Hello);
"#
    );
    write(&dir.join("package/plugin.yml"), manifest.as_bytes())?;
    write(&dir.join("src/lib.rs"), lib.as_bytes())?;
    write(&dir.join("src/codexion.rs"), RUST_SDK.as_bytes())?;
    let mut out = format!("created plugin `{name}` in {}\n", dir.display());
    let _ = writeln!(
        out,
        "  /usr/bin/rustc --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib -C opt-level=s -C panic=abort -C lto -C strip=symbols -o {0}/package/plugin.wasm {0}/src/lib.rs",
        dir.display()
    );
    let _ = writeln!(
        out,
        "  prefiq plugin pack {}/package --key publisher.key",
        dir.display()
    );
    print_out(&out);
    Ok(())
}

async fn installation(
    command: &PluginCommand,
    app: App,
    cli: &Cli,
    logs: &logging::LogControl,
) -> Result<(), CliError> {
    let booted = boot(app, cli, BootMode::Command, true, vec![], logs, true).await?;
    let plugins = booted.resolver("prefiq plugin").get::<plugins::Plugins>()?;
    let result = run(command, &plugins).await;
    booted.shutdown().await?;
    print_out(&result?);
    Ok(())
}

async fn run(command: &PluginCommand, plugins: &plugins::Plugins) -> Result<String, CliError> {
    Ok(match command {
        PluginCommand::Install { package: spec } | PluginCommand::Upgrade { package: spec } => {
            let upgrade = matches!(command, PluginCommand::Upgrade { .. });
            let path = Path::new(spec);
            let manifest = if path.exists() || spec.ends_with(".cxp") {
                plugins.install(&read(path)?, upgrade).await
            } else {
                plugins.install_from_registry(spec, upgrade).await
            }
            .map_err(message)?;
            format!(
                "{} {} {}\n",
                if upgrade { "upgraded" } else { "installed" },
                manifest.name,
                manifest.version
            )
        }
        PluginCommand::Uninstall { name, purge } => {
            plugins.uninstall(name, *purge).await.map_err(message)?;
            format!(
                "uninstalled {name}{}\n",
                if *purge { " (settings purged)" } else { "" }
            )
        }
        PluginCommand::Enable {
            name,
            tenant,
            config,
        } => {
            let settings = match config {
                Some(text) => match serde_json::from_str(text) {
                    Ok(serde_json::Value::Object(map)) => Some(map),
                    _ => return Err(message("--config must be a JSON object")),
                },
                None => None,
            };
            plugins
                .enable(tenant, name, settings, None)
                .await
                .map_err(message)?;
            format!("enabled {name} for {tenant}\n")
        }
        PluginCommand::Disable { name, tenant } => {
            plugins.disable(tenant, name, None).await.map_err(message)?;
            format!("disabled {name} for {tenant}\n")
        }
        PluginCommand::List { json } => {
            let state = plugins.loaded_state().await.map_err(message)?;
            let rows: Vec<serde_json::Value> = state
                .installed
                .values()
                .map(|p| {
                    let tenants: Vec<&str> = state
                        .choices
                        .iter()
                        .filter(|c| c.enabled && c.plugin == p.manifest.name)
                        .map(|c| c.tenant.as_str())
                        .collect();
                    serde_json::json!({
                        "name": p.manifest.name,
                        "version": p.manifest.version.to_string(),
                        "digest": p.digest,
                        "signer": p.signer,
                        "enabled_for": tenants,
                    })
                })
                .collect();
            if *json {
                to_json(&rows)?
            } else if rows.is_empty() {
                "no plugins installed\n".to_owned()
            } else {
                let mut out = String::new();
                for row in &rows {
                    let _ = writeln!(
                        out,
                        "{:<24} {:<10} enabled for: {}",
                        row["name"].as_str().unwrap_or_default(),
                        row["version"].as_str().unwrap_or_default(),
                        row["enabled_for"]
                            .as_array()
                            .map(|t| t
                                .iter()
                                .filter_map(|v| v.as_str())
                                .collect::<Vec<_>>()
                                .join(", "))
                            .filter(|t| !t.is_empty())
                            .unwrap_or_else(|| "(none)".into())
                    );
                }
                out
            }
        }
        PluginCommand::Search { query, json } => {
            let index = plugins
                .registry()
                .map_err(message)?
                .index()
                .await
                .map_err(message)?;
            let found = index.search(query.as_deref().unwrap_or(""));
            let installed = plugins.loaded_state().await.map_err(message)?;
            let rows: Vec<serde_json::Value> = found
                .iter()
                .map(|(name, listing)| {
                    serde_json::json!({
                        "name": name,
                        "description": listing.description,
                        "publisher": listing.publisher,
                        "versions": listing.versions.keys().map(ToString::to_string).collect::<Vec<_>>(),
                        "installed": installed.installed.get(*name).map(|p| p.manifest.version.to_string()),
                    })
                })
                .collect();
            if *json {
                to_json(&rows)?
            } else if rows.is_empty() {
                "nothing found\n".to_owned()
            } else {
                let mut out = String::new();
                for row in &rows {
                    let versions: Vec<&str> = row["versions"]
                        .as_array()
                        .map(|v| v.iter().filter_map(|v| v.as_str()).collect())
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "{:<24} {:<20} {}{}",
                        row["name"].as_str().unwrap_or_default(),
                        versions.join(", "),
                        row["description"].as_str().unwrap_or_default(),
                        row["installed"]
                            .as_str()
                            .map(|v| format!(" (installed: {v})"))
                            .unwrap_or_default()
                    );
                }
                out
            }
        }
        PluginCommand::Keygen { .. }
        | PluginCommand::Index { .. }
        | PluginCommand::New { .. }
        | PluginCommand::Pack { .. }
        | PluginCommand::Sign { .. }
        | PluginCommand::Verify { .. } => String::new(),
    })
}
