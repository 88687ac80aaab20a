//! Scheduled backups: the `backup` config section, the `backup.run` job and its schedule.
//! A run writes `{dir}/codexion-{UTC time}.backup` (never with keys) and then removes the
//! oldest backups of that folder beyond `keep`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prefiq::{ErrorKind, KernelError, RegisterContext};
use prefiq_worker::{CatchUp, JobHandler, JobInput, Schedule};
use serde::Deserialize;

use crate::Installation;

/// The job kind of a scheduled backup.
pub const BACKUP_JOB: &str = "backup.run";

/// The `backup` config section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// A cron expression (as `jobs` schedules take) for scheduled backups; empty turns
    /// them off.
    pub schedule: String,
    /// Where scheduled backups go, relative to the installation folder.
    pub dir: PathBuf,
    /// How many scheduled backups to keep (at least 1).
    pub keep: usize,
    /// How long one scheduled backup may run before it is stopped and retried.
    pub timeout_ms: i64,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            schedule: String::new(),
            dir: PathBuf::from("data/backups"),
            keep: 7,
            timeout_ms: 3_600_000,
        }
    }
}

/// Registers the scheduled backup when `backup.schedule` is set.
#[derive(Debug, Default)]
pub struct BackupProvider;

#[prefiq::async_trait]
impl prefiq::ServiceProvider for BackupProvider {
    fn name(&self) -> &'static str {
        "prefiq_backup::BackupProvider"
    }

    fn config_section(&self) -> Option<&'static str> {
        Some("backup")
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        let config: BackupConfig = cx
            .config
            .section("backup")
            .map_err(|e| KernelError::service(ErrorKind::Invalid, e))?
            .unwrap_or_default();
        if config.keep == 0 {
            return Err(KernelError::service(
                ErrorKind::Invalid,
                "backup.keep must be at least 1",
            ));
        }
        if config.schedule.trim().is_empty() {
            return Ok(());
        }
        let job = ScheduledBackup {
            installation: Installation::new(cx.config, Vec::new()),
            dir: cx.config.root.join(&config.dir),
            keep: config.keep,
        };
        cx.services
            .contribute::<dyn JobHandler>(Arc::new(job) as Arc<dyn JobHandler>);
        cx.services.contribute(Arc::new(Schedule {
            module: "backup".into(),
            name: "scheduled".into(),
            cron: config.schedule,
            timezone: None,
            kind: BACKUP_JOB.into(),
            payload: serde_json::json!({}),
            queue: "default".into(),
            catch_up: CatchUp::One,
            timeout_ms: Some(config.timeout_ms),
        }));
        Ok(())
    }
}

/// The scheduled backup job.
pub struct ScheduledBackup {
    installation: Installation,
    dir: PathBuf,
    keep: usize,
}

/// The file name of a scheduled backup taken at `now`: names sort by time.
pub fn scheduled_name(now: jiff::Timestamp) -> String {
    format!("codexion-{}.backup", now.strftime("%Y%m%dT%H%M%S%.3fZ"))
}

fn is_scheduled_name(name: &str) -> bool {
    name.starts_with("codexion-") && name.ends_with(".backup")
}

/// Removes the oldest scheduled backups in `dir` beyond the newest `keep`; answers the
/// files removed. Other files in the folder are left alone.
pub fn prune(dir: &Path, keep: usize) -> std::io::Result<Vec<PathBuf>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_scheduled_name(n))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep.max(1));
    let mut removed = Vec::with_capacity(excess);
    for name in names.into_iter().take(excess) {
        let path = dir.join(name);
        std::fs::remove_file(&path)?;
        removed.push(path);
    }
    Ok(removed)
}

#[prefiq::async_trait]
impl JobHandler for ScheduledBackup {
    fn kind(&self) -> &str {
        BACKUP_JOB
    }

    async fn run(&self, _job: &JobInput) -> Result<(), String> {
        let path = self.dir.join(scheduled_name(jiff::Timestamp::now()));
        let report = crate::backup(&self.installation, &path, false)
            .await
            .map_err(|e| e.to_string())?;
        let removed = prune(&self.dir, self.keep).map_err(|e| e.to_string())?;
        tracing::info!(target: "prefiq::backup", path = %report.path.display(), bytes = report.bytes, removed = removed.len(), "scheduled backup written");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_scheduled_backups_and_nothing_else_is_touched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = [
            "codexion-20261201T000000.000Z.backup",
            "codexion-20261202T000000.000Z.backup",
            "codexion-20261203T000000.000Z.backup",
            "codexion-20261204T000000.000Z.backup.partial",
            "manual.backup",
        ];
        for name in names {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        let removed = prune(dir.path(), 2).expect("prune");
        assert_eq!(
            removed,
            vec![dir.path().join("codexion-20261201T000000.000Z.backup")]
        );
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, names[1..].to_vec());
    }

    #[test]
    fn scheduled_names_sort_by_time() {
        let early: jiff::Timestamp = "2026-12-07T09:05:00Z".parse().expect("time");
        let late: jiff::Timestamp = "2026-12-07T10:00:00.5Z".parse().expect("time");
        assert_eq!(
            scheduled_name(early),
            "codexion-20261207T090500.000Z.backup"
        );
        assert!(scheduled_name(early) < scheduled_name(late));
    }
}
