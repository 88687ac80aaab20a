//! Migrations as modules declare them, and the runner interface the data layer implements.

use async_trait::async_trait;
use serde::Serialize;

use crate::error::KernelError;

/// The database backends the platform runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// One migration of one module: an id that sorts in apply order, and its SQL per backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Sorts in apply order within the module, such as `0001_create_settings`.
    pub id: &'static str,
    /// The SQL for SQLite.
    pub sqlite: &'static str,
    /// The SQL for PostgreSQL.
    pub postgres: &'static str,
}

impl Migration {
    /// A migration whose SQL is the same on both backends.
    pub const fn portable(id: &'static str, sql: &'static str) -> Self {
        Migration {
            id,
            sqlite: sql,
            postgres: sql,
        }
    }

    /// A migration with different SQL per backend.
    pub const fn per_backend(
        id: &'static str,
        sqlite: &'static str,
        postgres: &'static str,
    ) -> Self {
        Migration {
            id,
            sqlite,
            postgres,
        }
    }

    /// The SQL to run on `backend`.
    pub fn sql(&self, backend: Backend) -> &'static str {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }
}

/// The migrations of one module, in the module's boot position.
#[derive(Debug, Clone)]
pub struct ModuleMigrations {
    /// The module's name.
    pub module: String,
    /// The module's version, recorded when its migrations have run.
    pub version: semver::Version,
    /// Its migrations, sorted by id.
    pub migrations: Vec<Migration>,
}

/// A migration that has not run yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingMigration {
    /// The owning module.
    pub module: String,
    /// The migration id.
    pub id: String,
    /// The SQL that would run on the configured backend.
    pub sql: String,
}

/// A module whose recorded version differs from the one now installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleUpgrade {
    /// The module.
    pub module: String,
    /// The version recorded before, `None` on first install.
    pub from: Option<semver::Version>,
    /// The version now installed.
    pub to: semver::Version,
}

/// What the modules step would do: pending migrations and module version changes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MigrationPlan {
    /// The backend the SQL is written for.
    pub backend: Option<Backend>,
    /// Migrations to run, in order.
    pub pending: Vec<PendingMigration>,
    /// Modules whose version changes.
    pub upgrades: Vec<ModuleUpgrade>,
}

/// Plans and applies migrations. The data layer binds one as `dyn MigrationRunner`.
#[async_trait]
pub trait MigrationRunner: Send + Sync {
    /// Compares the modules' migrations with what the database records. An applied
    /// migration whose checksum changed is an error naming its module and id.
    async fn plan(&self, modules: &[ModuleMigrations]) -> Result<MigrationPlan, KernelError>;

    /// Applies the pending migrations of `plan` (each with its record, in one transaction)
    /// and records the modules' versions.
    async fn apply(
        &self,
        plan: &MigrationPlan,
        modules: &[ModuleMigrations],
    ) -> Result<(), KernelError>;
}
