//! Backups of a whole installation and their restores.
//!
//! A backup is one file: a tar of every database's online snapshot (SQLite by `VACUUM
//! INTO`, PostgreSQL by `pg_dump` in custom format), the configuration files and, only
//! when asked, the signing keys and `.env`; its last member is a manifest with the SHA-256
//! of every other. It is written as `NAME.partial` and renamed when complete, so a backup
//! killed halfway leaves nothing under the name asked for.
//!
//! A restore checks the whole file against its manifest before it touches anything, then
//! refuses an installation that holds data unless forced, and puts the databases, missing
//! configuration files and included keys in place. Migrating a backup older than the
//! binary, and verifying the audit logs, are the caller's next steps (the CLI boots the
//! restored installation, which migrates, and runs the audit verification).
//!
//! Scheduled backups ([`provider::BackupProvider`]) run as a job on `backup.schedule` and
//! keep the newest `backup.keep` files.

pub mod archive;
pub mod databases;
pub mod manifest;
pub mod provider;

use std::path::{Path, PathBuf};

use prefiq::Backend;
use prefiq::config::{DatabaseConfig, Tenancy};

use crate::archive::ArchiveWriter;
use crate::databases::Location;
use crate::manifest::{DatabaseMember, FORMAT, Manifest, MemberKind, VERSION};

/// Why a backup or a restore failed. Each variant says what to look at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS's error.
        source: std::io::Error,
    },
    /// The backup file does not match its manifest, or is not a backup.
    #[error("the backup is refused: {0}")]
    Corrupt(String),
    /// The restore would lose data or cannot apply here.
    #[error("{0}")]
    Refused(String),
    /// `pg_dump` or `pg_restore` failed.
    #[error("{tool} failed: {message}")]
    Tool {
        /// The tool.
        tool: &'static str,
        /// Its error output.
        message: String,
    },
    /// A database could not be reached or read.
    #[error("database: {0}")]
    Database(String),
}

/// What a backup or a restore needs to know of the installation.
#[derive(Debug, Clone)]
pub struct Installation {
    /// The installation folder (holding `config/`, `.env` and `data/`).
    pub root: PathBuf,
    /// Its database settings.
    pub database: DatabaseConfig,
    /// The signing keys' files, relative to `root` (the audit key, the token key).
    pub key_files: Vec<PathBuf>,
}

impl Installation {
    /// The installation `config` describes, with the key files the composition root
    /// names.
    pub fn new(config: &prefiq::Config, key_files: Vec<PathBuf>) -> Installation {
        Installation {
            root: config.root.clone(),
            database: config.database.clone(),
            key_files,
        }
    }

    fn backend(&self) -> Result<Backend, BackupError> {
        Ok(databases::main_url(&self.database, &self.root)?.backend())
    }
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

fn tenancy_name(tenancy: Tenancy) -> &'static str {
    match tenancy {
        Tenancy::Shared => "shared",
        Tenancy::Database => "database",
    }
}

/// What a backup wrote.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its manifest.
    pub manifest: Manifest,
}

/// The configuration files of the installation, relative to its root.
fn config_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("config"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| PathBuf::from("config").join(e.file_name()))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn member_name(relative: &Path) -> Result<String, BackupError> {
    let text = relative
        .to_str()
        .ok_or_else(|| BackupError::Refused(format!("{}: not a UTF-8 path", relative.display())))?;
    Ok(format!("installation/{text}"))
}

/// Writes a restored file; keys are readable by their owner only.
fn write_file(target: &Path, bytes: &[u8], kind: MemberKind) -> Result<(), BackupError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mode = if kind == MemberKind::Key {
        0o600
    } else {
        0o644
    };
    let io = |source| BackupError::Io {
        path: target.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(target)
        .map_err(io)?;
    // A file that existed keeps its mode on open: set it.
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Takes an online backup of `installation` into the file `to`; with `include_keys`, the
/// signing keys and `.env` go in too.
pub async fn backup(
    installation: &Installation,
    to: &Path,
    include_keys: bool,
) -> Result<BackupReport, BackupError> {
    let backend = installation.backend()?;
    let sites = databases::discover(&installation.database, &installation.root).await?;
    let folder = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&folder).map_err(|source| BackupError::Io {
        path: folder.clone(),
        source,
    })?;
    // Snapshots are staged beside the backup (same disk) and removed when done.
    let staging = tempfile::Builder::new()
        .prefix(".prefiq-backup-")
        .tempdir_in(&folder)
        .map_err(|source| BackupError::Io {
            path: folder.clone(),
            source,
        })?;
    let created_at = jiff::Timestamp::now().to_string();
    let mut writer = ArchiveWriter::create(to)?;
    let mut database_members = Vec::with_capacity(sites.len());
    for (i, site) in sites.iter().enumerate() {
        let extension = match site.location {
            Location::Sqlite(_) => "sqlite",
            Location::Postgres(_) => "pgdump",
        };
        let member = match &site.tenant {
            None => format!("databases/main.{extension}"),
            Some(tenant) => format!("databases/tenants/{tenant}.{extension}"),
        };
        let staged = staging.path().join(format!("{i}.{extension}"));
        databases::snapshot(site, &staged).await?;
        writer.add_file(&member, &staged, MemberKind::Database)?;
        // Each snapshot leaves the disk once archived, so staging holds one at a time.
        let _ = std::fs::remove_file(&staged);
        database_members.push(DatabaseMember {
            tenant: site.tenant.clone(),
            member,
        });
    }
    for file in config_files(&installation.root) {
        writer.add_file(
            &member_name(&file)?,
            &installation.root.join(&file),
            MemberKind::Config,
        )?;
    }
    if include_keys {
        let mut keys = installation.key_files.clone();
        keys.push(PathBuf::from(".env"));
        for file in keys {
            let path = installation.root.join(&file);
            if path.is_file() {
                writer.add_file(&member_name(&file)?, &path, MemberKind::Key)?;
            }
        }
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        created_at,
        prefiq_version: env!("CARGO_PKG_VERSION").into(),
        backend: backend_name(backend).into(),
        tenancy: tenancy_name(installation.database.tenancy).into(),
        databases: database_members,
        includes_keys: include_keys,
        members: Vec::new(),
    };
    let mut written = manifest.clone();
    written.members = writer.members().to_vec();
    let bytes = writer.finish(manifest)?;
    Ok(BackupReport {
        path: to.to_owned(),
        bytes,
        manifest: written,
    })
}

/// Checks the backup `from` against its manifest without restoring it.
pub fn check(from: &Path) -> Result<Manifest, BackupError> {
    let scratch = tempfile::tempdir().map_err(|source| BackupError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    archive::unpack(from, scratch.path())
}

/// What a restore put back.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// Databases restored: `main` or the tenant.
    pub databases: Vec<String>,
    /// Files written into the installation (config files it lacked, keys).
    pub written: Vec<String>,
    /// Configuration files of the backup that the installation already had, kept as
    /// they are.
    pub kept: Vec<String>,
}

/// Restores the backup `from` into `installation`. The whole file is checked first; an
/// installation holding data is refused unless `force`, which replaces its databases
/// (and keys that differ).
pub async fn restore(
    installation: &Installation,
    from: &Path,
    force: bool,
) -> Result<RestoreReport, BackupError> {
    let data = installation.root.join("data");
    std::fs::create_dir_all(&data).map_err(|source| BackupError::Io {
        path: data.clone(),
        source,
    })?;
    let staging = tempfile::Builder::new()
        .prefix(".prefiq-restore-")
        .tempdir_in(&data)
        .map_err(|source| BackupError::Io {
            path: data.clone(),
            source,
        })?;
    let manifest = archive::unpack(from, staging.path())?;
    let backend = backend_name(installation.backend()?);
    if manifest.backend != backend {
        return Err(BackupError::Refused(format!(
            "this backup is of a {} installation and this one runs on {backend}; move tenants \
             across backends with `prefiq tenant export` and `prefiq tenant import`",
            manifest.backend
        )));
    }
    let tenancy = tenancy_name(installation.database.tenancy);
    if manifest.tenancy != tenancy {
        return Err(BackupError::Refused(format!(
            "this backup is of `{}` tenancy and this installation is configured for `{tenancy}` \
             (database.tenancy)",
            manifest.tenancy
        )));
    }
    let occupied = databases::occupied(&installation.database, &installation.root).await?;
    if !occupied.is_empty() && !force {
        return Err(BackupError::Refused(format!(
            "the installation is not empty ({}); restoring replaces it: stop its servers and \
             workers, and run again with --force",
            occupied.join(", ")
        )));
    }
    // Keys before databases: a key that differs is refused before anything is replaced.
    let mut written = Vec::new();
    let mut kept = Vec::new();
    let mut to_write = Vec::new();
    for member in &manifest.members {
        let Some(relative) = member.path.strip_prefix("installation/") else {
            continue;
        };
        let target = installation.root.join(relative);
        let source = staging.path().join(&member.path);
        let existing = std::fs::read(&target).ok();
        let incoming = std::fs::read(&source).map_err(|e| BackupError::Io {
            path: source.clone(),
            source: e,
        })?;
        match (member.kind, existing) {
            (_, Some(current)) if current == incoming => {}
            (MemberKind::Key, Some(_)) if !force => {
                return Err(BackupError::Refused(format!(
                    "{relative} differs from the backup's; restoring replaces it (audit \
                     checkpoints and tokens signed with the current key stop verifying): run \
                     again with --force"
                )));
            }
            (MemberKind::Config, Some(_)) => kept.push(relative.to_owned()),
            _ => to_write.push((target, incoming, relative.to_owned(), member.kind)),
        }
    }
    if !occupied.is_empty() {
        databases::clear(&installation.database, &installation.root).await?;
    }
    for (target, bytes, relative, kind) in to_write {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|source| BackupError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        write_file(&target, &bytes, kind)?;
        written.push(relative);
    }
    let mut restored = Vec::new();
    for database in &manifest.databases {
        databases::put_back(
            &installation.database,
            &installation.root,
            database.tenant.as_deref(),
            &staging.path().join(&database.member),
        )
        .await?;
        restored.push(database.tenant.clone().unwrap_or_else(|| "main".into()));
    }
    Ok(RestoreReport {
        manifest,
        databases: restored,
        written,
        kept,
    })
}
