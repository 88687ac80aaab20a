//! The databases of an installation, and how each is snapshotted and put back: SQLite
//! files by `VACUUM INTO` (an online, consistent copy from one read transaction),
//! PostgreSQL databases by `pg_dump` in custom format and `pg_restore`.

use std::path::{Path, PathBuf};
use std::process::Command;

use prefiq::config::{DatabaseConfig, Tenancy};
use prefiq_data::DatabaseUrl;
use sqlx::Connection as _;

use crate::BackupError;

/// Where one database of the installation lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL.
    Postgres(String),
}

/// One database: the main one (`tenant` is `None`) or a tenant's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Whose it is.
    pub tenant: Option<String>,
    /// Where it is.
    pub location: Location,
}

fn database_error(message: impl std::fmt::Display) -> BackupError {
    BackupError::Database(message.to_string())
}

/// The main database's URL, parsed.
pub fn main_url(config: &DatabaseConfig, root: &Path) -> Result<DatabaseUrl, BackupError> {
    DatabaseUrl::parse(&config.url, root).map_err(database_error)
}

/// The folder of a SQLite installation's tenant files.
pub fn tenants_dir(main: &Path) -> PathBuf {
    main.parent()
        .map_or_else(|| PathBuf::from("tenants"), |p| p.join("tenants"))
}

/// Splits a PostgreSQL URL into the part before the database name, the name, and the
/// query (with its `?`).
fn split_postgres_url(url: &str) -> Result<(&str, &str, &str), BackupError> {
    let (base, query) = url.find('?').map_or((url, ""), |i| url.split_at(i));
    let slash = base
        .rfind('/')
        .filter(|i| !base[..*i].ends_with('/'))
        .ok_or_else(|| database_error("the PostgreSQL URL names no database"))?;
    Ok((&base[..slash], &base[slash + 1..], query))
}

/// The database a PostgreSQL URL names.
pub fn postgres_database(url: &str) -> Result<String, BackupError> {
    Ok(split_postgres_url(url)?.1.to_owned())
}

/// `url` with its database replaced by `database`.
pub fn with_postgres_database(url: &str, database: &str) -> Result<String, BackupError> {
    let (base, _, query) = split_postgres_url(url)?;
    Ok(format!("{base}/{database}{query}"))
}

async fn connect(url: &str) -> Result<sqlx::PgConnection, BackupError> {
    sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| database_error(format!("cannot connect to PostgreSQL: {e}")))
}

/// The tenant databases a PostgreSQL installation has, by tenant.
async fn postgres_tenants(url: &str) -> Result<Vec<(String, String)>, BackupError> {
    let main = postgres_database(url)?;
    let mut conn = connect(url).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(format!("{main}__"))
            .fetch_all(&mut conn)
            .await
            .map_err(database_error)?;
    let _ = conn.close().await;
    let mut tenants = Vec::new();
    for name in names {
        // Tenant names hold no `_`, so the database name gives the tenant back.
        let tenant = name[main.len() + 2..].replace('_', "-");
        if prefiq::context::is_tenant_name(&tenant)
            && prefiq_data::tenants::postgres_database_name(&main, &tenant) == name
        {
            tenants.push((tenant, name));
        }
    }
    tenants.sort();
    Ok(tenants)
}

/// Every database of the installation: the main one first, then in `database` tenancy
/// each tenant's that exists.
pub async fn discover(config: &DatabaseConfig, root: &Path) -> Result<Vec<Site>, BackupError> {
    let main = main_url(config, root)?;
    let mut sites = Vec::new();
    match &main {
        DatabaseUrl::Sqlite(path) => {
            sites.push(Site {
                tenant: None,
                location: Location::Sqlite(path.clone()),
            });
            if config.tenancy == Tenancy::Database {
                let mut tenants = Vec::new();
                if let Ok(entries) = std::fs::read_dir(tenants_dir(path)) {
                    for entry in entries.flatten() {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if let Some(tenant) = name.strip_suffix(".db")
                            && prefiq::context::is_tenant_name(tenant)
                        {
                            tenants.push((tenant.to_owned(), entry.path()));
                        }
                    }
                }
                tenants.sort();
                sites.extend(tenants.into_iter().map(|(tenant, path)| Site {
                    tenant: Some(tenant),
                    location: Location::Sqlite(path),
                }));
            }
        }
        DatabaseUrl::Postgres(url) => {
            sites.push(Site {
                tenant: None,
                location: Location::Postgres(url.clone()),
            });
            if config.tenancy == Tenancy::Database {
                for (tenant, name) in postgres_tenants(url).await? {
                    sites.push(Site {
                        tenant: Some(tenant),
                        location: Location::Postgres(with_postgres_database(url, &name)?),
                    });
                }
            }
        }
    }
    Ok(sites)
}

/// Runs a PostgreSQL client tool, its error output becoming the error.
fn run_tool(tool: &'static str, args: &[&str]) -> Result<(), BackupError> {
    let output = Command::new(tool)
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .map_err(|e| BackupError::Tool {
            tool,
            message: format!("cannot run it ({e}); install the PostgreSQL client tools"),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = stderr.lines().take(5).collect::<Vec<_>>().join(" / ");
    Err(BackupError::Tool {
        tool,
        message: prefiq::config::redact_url_password(&message),
    })
}

/// Writes a consistent copy of `site` to `dest` while the installation keeps serving.
pub async fn snapshot(site: &Site, dest: &Path) -> Result<(), BackupError> {
    let dest = dest.to_owned();
    match &site.location {
        Location::Sqlite(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open_with_flags(
                    &path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| database_error(format!("{}: {e}", path.display())))?;
                conn.busy_timeout(std::time::Duration::from_secs(30))
                    .map_err(database_error)?;
                let target = dest.to_str().ok_or_else(|| {
                    database_error(format!("{}: not a UTF-8 path", dest.display()))
                })?;
                conn.execute("VACUUM INTO ?1", [target])
                    .map_err(|e| database_error(format!("{}: {e}", path.display())))?;
                Ok(())
            })
            .await
            .map_err(database_error)?
        }
        Location::Postgres(url) => {
            let url = url.clone();
            tokio::task::spawn_blocking(move || {
                let file = dest.to_string_lossy().into_owned();
                run_tool(
                    "pg_dump",
                    &[
                        "--format=custom",
                        "--no-owner",
                        "--file",
                        &file,
                        "--dbname",
                        &url,
                    ],
                )
            })
            .await
            .map_err(database_error)?
        }
    }
}

/// What stands in the way of a restore: the databases that hold data now, named.
pub async fn occupied(config: &DatabaseConfig, root: &Path) -> Result<Vec<String>, BackupError> {
    let mut occupied = Vec::new();
    match main_url(config, root)? {
        DatabaseUrl::Sqlite(path) => {
            if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
                occupied.push(path.display().to_string());
            }
            if let Ok(entries) = std::fs::read_dir(tenants_dir(&path)) {
                for entry in entries.flatten() {
                    if entry.file_name().to_string_lossy().ends_with(".db") {
                        occupied.push(entry.path().display().to_string());
                    }
                }
            }
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn = connect(&url).await?;
            let tables: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                    .fetch_one(&mut conn)
                    .await
                    .map_err(database_error)?;
            let _ = conn.close().await;
            if tables > 0 {
                occupied.push(format!(
                    "{} ({tables} tables)",
                    prefiq::config::redact_url_password(&url)
                ));
            }
            for (_, name) in postgres_tenants(&url).await? {
                occupied.push(format!("PostgreSQL database {name}"));
            }
        }
    }
    Ok(occupied)
}

/// Removes every database of the installation (for a forced restore).
pub async fn clear(config: &DatabaseConfig, root: &Path) -> Result<(), BackupError> {
    match main_url(config, root)? {
        DatabaseUrl::Sqlite(path) => {
            let mut files = vec![path.clone()];
            if let Ok(entries) = std::fs::read_dir(tenants_dir(&path)) {
                files.extend(
                    entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|e| e == "db")),
                );
            }
            for file in files {
                for suffix in ["", "-wal", "-shm"] {
                    let mut name = file.clone().into_os_string();
                    name.push(suffix);
                    let name = PathBuf::from(name);
                    match std::fs::remove_file(&name) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => return Err(BackupError::Io { path: name, source }),
                    }
                }
            }
        }
        DatabaseUrl::Postgres(url) => {
            let tenants = postgres_tenants(&url).await?;
            let mut conn = connect(&url).await?;
            for (_, name) in tenants {
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .map_err(database_error)?;
            }
            sqlx::raw_sql("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
                .execute(&mut conn)
                .await
                .map_err(database_error)?;
            let _ = conn.close().await;
        }
    }
    Ok(())
}

/// Puts the snapshot `source` back as the database of `tenant` (the main one if `None`).
pub async fn put_back(
    config: &DatabaseConfig,
    root: &Path,
    tenant: Option<&str>,
    source: &Path,
) -> Result<(), BackupError> {
    match main_url(config, root)? {
        DatabaseUrl::Sqlite(path) => {
            let target = match tenant {
                None => path,
                Some(tenant) => tenants_dir(&path).join(format!("{tenant}.db")),
            };
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|source| BackupError::Io {
                    path: parent.to_owned(),
                    source,
                })?;
            }
            // Renamed within one file system where possible; copied across them.
            if std::fs::rename(source, &target).is_err() {
                std::fs::copy(source, &target).map_err(|e| BackupError::Io {
                    path: target.clone(),
                    source: e,
                })?;
            }
            Ok(())
        }
        DatabaseUrl::Postgres(url) => {
            let target = match tenant {
                None => url.clone(),
                Some(tenant) => {
                    let main = postgres_database(&url)?;
                    let name = prefiq_data::tenants::postgres_database_name(&main, tenant);
                    let mut conn = connect(&url).await?;
                    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                        .execute(&mut conn)
                        .await
                        .map_err(database_error)?;
                    let _ = conn.close().await;
                    with_postgres_database(&url, &name)?
                }
            };
            // The role the dump's grants name exists per server, not per database.
            let mut conn = connect(&target).await?;
            sqlx::raw_sql(&format!(
                "DO $$ BEGIN CREATE ROLE {} NOLOGIN NOBYPASSRLS; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;",
                prefiq_data::entity::ddl::APP_ROLE
            ))
            .execute(&mut conn)
            .await
            .map_err(database_error)?;
            let _ = conn.close().await;
            let file = source.to_string_lossy().into_owned();
            tokio::task::spawn_blocking(move || {
                run_tool(
                    "pg_restore",
                    &[
                        "--no-owner",
                        "--exit-on-error",
                        "--single-transaction",
                        "--dbname",
                        &target,
                        &file,
                    ],
                )
            })
            .await
            .map_err(database_error)?
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_change_their_database() {
        let check = |url: &str, name: &str, expected: &str| {
            assert_eq!(
                with_postgres_database(url, name).ok().as_deref(),
                Some(expected)
            );
        };
        check(
            "postgres://u@h:5432/test",
            "test__acme",
            "postgres://u@h:5432/test__acme",
        );
        check(
            "postgres://u:p@h/main?sslmode=disable",
            "main__a",
            "postgres://u:p@h/main__a?sslmode=disable",
        );
        assert!(with_postgres_database("postgres://h", "x").is_err());
        assert_eq!(
            postgres_database("postgres://u@h/test?x=1").ok().as_deref(),
            Some("test")
        );
    }
}
