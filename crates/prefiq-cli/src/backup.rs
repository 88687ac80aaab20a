//! `prefiq backup` and `prefiq restore`: the whole installation to one checked file and
//! back. A restore reports success only after the restored installation has booted
//! (migrating a backup older than this binary) and every audit log has verified.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use prefiq::{App, BootMode};
use prefiq_backup::{BackupError, Installation};
use prefiq_data::audit::{AuditConfig, AuditLog};

use crate::{Cli, CliError, boot, logging, print_out};

fn failed(e: BackupError) -> CliError {
    CliError::Message(e.to_string())
}

/// The installation as its config describes it, read by a dry-run boot (which validates
/// every section and writes nothing), with the signing keys' files of the audit log and
/// of the token issuer.
async fn installation(
    app: App,
    cli: &Cli,
    logs: &logging::LogControl,
) -> Result<Installation, CliError> {
    Ok(installation_and_env(app, cli, logs).await?.0)
}

/// [`installation`] and the environment's name.
async fn installation_and_env(
    app: App,
    cli: &Cli,
    logs: &logging::LogControl,
) -> Result<(Installation, String), CliError> {
    let booted = boot(app, cli, BootMode::DryRun, false, vec![], logs, true).await?;
    let config = booted.config.clone();
    booted.shutdown().await?;
    let audit: AuditConfig = config
        .section("audit")
        .map_err(|e| CliError::Message(e.to_string()))?
        .unwrap_or_default();
    let identity: cortex::identity::IdentityConfig = config
        .section("cortex")
        .map_err(|e| CliError::Message(e.to_string()))?
        .unwrap_or_default();
    Ok((
        Installation::new(
            &config,
            vec![audit.signing_key_file, identity.signing_key_file],
        ),
        config.env.clone(),
    ))
}

/// `prefiq backup --to FILE [--include-keys]`.
pub async fn backup(
    app: App,
    cli: &Cli,
    to: &Path,
    include_keys: bool,
    logs: &logging::LogControl,
) -> Result<(), CliError> {
    let installation = installation(app, cli, logs).await?;
    if include_keys {
        eprintln!(
            "warning: --include-keys puts the audit and token signing keys (and .env) in the \
             backup: whoever holds the file can sign audit checkpoints and issue tokens for \
             this installation. Store it encrypted, apart from ordinary backups."
        );
    }
    let report = prefiq_backup::backup(&installation, to, include_keys)
        .await
        .map_err(failed)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "backup written to {} ({} bytes, {} database{}, {} member{}, keys {})",
        report.path.display(),
        report.bytes,
        report.manifest.databases.len(),
        if report.manifest.databases.len() == 1 {
            ""
        } else {
            "s"
        },
        report.manifest.members.len(),
        if report.manifest.members.len() == 1 {
            ""
        } else {
            "s"
        },
        if include_keys {
            "included"
        } else {
            "not included"
        }
    );
    print_out(&out);
    Ok(())
}

/// `prefiq restore FILE [--force] [--checkpoint F]... [--check-only]`.
pub async fn restore(
    app: App,
    cli: &Cli,
    file: &Path,
    force: bool,
    checkpoints: &[PathBuf],
    check_only: bool,
    logs: &logging::LogControl,
) -> Result<(), CliError> {
    if check_only {
        let manifest = prefiq_backup::check(file).map_err(failed)?;
        print_out(&format!(
            "{}: a complete {} backup of {} database{} taken {} by prefiq {}; every member matches its manifest\n",
            file.display(),
            manifest.backend,
            manifest.databases.len(),
            if manifest.databases.len() == 1 {
                ""
            } else {
                "s"
            },
            manifest.created_at,
            manifest.prefiq_version
        ));
        return Ok(());
    }
    let (installation, env) = installation_and_env(app, cli, logs).await?;
    // In production a key is never made at boot: a backup without keys restores only
    // where the keys already are, and that is checked before anything is replaced.
    let manifest = prefiq_backup::archive::read_manifest(file).map_err(failed)?;
    let missing: Vec<String> = installation
        .key_files
        .iter()
        .filter(|k| !installation.root.join(k).exists())
        .map(|k| k.display().to_string())
        .collect();
    if env == "production" && !manifest.includes_keys && !missing.is_empty() {
        return Err(CliError::Message(format!(
            "the backup holds no signing keys and this installation lacks {}: put the keys \
             in place, or restore a backup taken with --include-keys",
            missing.join(" and ")
        )));
    }
    let report = prefiq_backup::restore(&installation, file, force)
        .await
        .map_err(failed)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "restored {} (taken {} by prefiq {}): databases {}",
        file.display(),
        report.manifest.created_at,
        report.manifest.prefiq_version,
        report.databases.join(", ")
    );
    for written in &report.written {
        let _ = writeln!(out, "  wrote {written}");
    }
    for kept in &report.kept {
        let _ = writeln!(
            out,
            "  kept this installation's {kept} (the backup's differs)"
        );
    }
    if !report.manifest.includes_keys {
        let _ = writeln!(
            out,
            "  the backup holds no signing keys: this installation's keys are used"
        );
    }
    // What was put back is said before the boot, which may still fail (a key missing).
    print_out(&out);
    out.clear();
    // The restored installation boots (migrating a backup older than this binary), then
    // every audit log is recomputed and checked against its signed checkpoints.
    let booted = boot(
        crate::installation()?,
        cli,
        BootMode::Command,
        true,
        vec![],
        logs,
        true,
    )
    .await?;
    let applied = booted.plan().migrations.pending.len();
    let verified = verify_audit(&booted, checkpoints).await;
    booted.shutdown().await?;
    if applied > 0 {
        let _ = writeln!(
            out,
            "  migrated: {applied} migration(s) applied (the backup is older than this binary)"
        );
    }
    let (lines, failures) = verified?;
    out.push_str(&lines);
    print_out(&out);
    if failures.is_empty() {
        print_out("restore complete: every audit log verified\n");
        Ok(())
    } else {
        Err(CliError::Message(format!(
            "the data was restored but the audit verification failed: {}",
            failures.join("; ")
        )))
    }
}

/// Verifies every tenant's audit log, with `checkpoints` kept outside the server.
async fn verify_audit(
    booted: &prefiq::BootedApp,
    checkpoints: &[PathBuf],
) -> Result<(String, Vec<String>), CliError> {
    let log = booted.resolver("prefiq restore").get::<AuditLog>()?;
    let mut external = Vec::new();
    for path in checkpoints {
        let text = crate::audit::checkpoint_text(path)?;
        let origin = text.lines().next().unwrap_or_default().to_owned();
        external.push((origin, text));
    }
    let mut out = String::new();
    let mut failures = Vec::new();
    let tenants = log
        .tenants()
        .await
        .map_err(|e| CliError::Message(e.to_string()))?;
    for tenant in &tenants {
        let origin = log.origin(tenant);
        let mine: Vec<String> = external
            .iter()
            .filter(|(o, _)| *o == origin)
            .map(|(_, t)| t.clone())
            .collect();
        match log.verify(tenant, &mine, true).await {
            Ok(report) => {
                let _ = writeln!(out, "  {}", crate::audit::verified_summary(&report));
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    for (origin, _) in &external {
        if !tenants.iter().any(|t| log.origin(t) == *origin) {
            failures.push(format!(
                "a given checkpoint is of the log `{origin}`, which the backup does not hold"
            ));
        }
    }
    Ok((out, failures))
}
