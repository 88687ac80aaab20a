//! The app's tables, on the installation's database: the installed packages (the signed
//! `.cxp` bytes themselves, so every replica loads the same verified package) and each
//! tenant's choice for each plugin (enabled or not, and its settings).

use prefiq_data::DataError;
use prefiq_data::Database;
use prefiq_data::entity::sql::{Arg, Cell, Sql, SqlType};
use prefiq_data::entity::value::civil_now;

/// The migration of both tables.
pub fn migration() -> prefiq::Migration {
    prefiq::Migration::per_backend(
        "0001_plugins_store",
        include_str!("store_sqlite.sql"),
        include_str!("store_postgres.sql"),
    )
}

/// An installed package as stored.
#[derive(Debug, Clone)]
pub struct InstalledRow {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// SHA-256 of the package.
    pub digest: String,
    /// The key that signed it, if any.
    pub signer: Option<String>,
    /// The package bytes.
    pub package: Vec<u8>,
    /// When it was installed.
    pub installed_at: String,
}

/// A tenant's choice for a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    /// The tenant.
    pub tenant: String,
    /// The plugin.
    pub plugin: String,
    /// Whether it runs for the tenant.
    pub enabled: bool,
    /// The tenant's settings (a JSON object, as given).
    pub config: serde_json::Map<String, serde_json::Value>,
}

const BUMP: &str = "UPDATE plugins_generation SET generation = generation + 1 WHERE id = 1";

/// The generation of the tables: it moves with every change.
pub async fn generation(database: &Database) -> Result<i64, DataError> {
    let sql = Sql::new(
        "SELECT generation FROM plugins_generation WHERE id = 1",
        vec![],
    );
    let mut reading = database.reader().await?;
    let row = reading.conn().fetch_optional(&sql, &[SqlType::Int]).await?;
    Ok(row
        .and_then(|r| r.into_iter().next())
        .and_then(|c| c.as_int())
        .unwrap_or(0))
}

fn text(value: &str) -> Arg {
    Arg::Text(Some(value.to_owned()))
}

/// Every installed package.
pub async fn installed(database: &Database) -> Result<Vec<InstalledRow>, DataError> {
    let sql = Sql::new(
        "SELECT name, version, digest, signer, package, installed_at FROM plugins_installed ORDER BY name",
        vec![],
    );
    let mut reading = database.reader().await?;
    let rows = reading
        .conn()
        .fetch(
            &sql,
            &[
                SqlType::Text,
                SqlType::Text,
                SqlType::Text,
                SqlType::Text,
                SqlType::Bytes,
                SqlType::Text,
            ],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut cells = row.into_iter();
            let mut next_text = || cells.next().and_then(Cell::into_text);
            let (name, version, digest, signer) =
                (next_text(), next_text(), next_text(), next_text());
            let package = cells.next().and_then(Cell::into_bytes).unwrap_or_default();
            let installed_at = cells.next().and_then(Cell::into_text).unwrap_or_default();
            InstalledRow {
                name: name.unwrap_or_default(),
                version: version.unwrap_or_default(),
                digest: digest.unwrap_or_default(),
                signer,
                package,
                installed_at,
            }
        })
        .collect())
}

/// Stores a package, replacing the one of the same name (an upgrade).
pub async fn put_installed(
    database: &Database,
    name: &str,
    version: &str,
    digest: &str,
    signer: Option<&str>,
    package: &[u8],
) -> Result<(), DataError> {
    let now = civil_now();
    let sql = Sql::new(
        "INSERT INTO plugins_installed (name, version, digest, signer, package, installed_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (name) DO UPDATE SET version = excluded.version, digest = excluded.digest, \
         signer = excluded.signer, package = excluded.package, updated_at = excluded.updated_at",
        vec![
            text(name),
            text(version),
            text(digest),
            Arg::Text(signer.map(str::to_owned)),
            Arg::Bytes(Some(package.to_vec())),
            text(&now),
        ],
    );
    let mut tx = database.begin().await?;
    tx.conn().execute(&sql).await?;
    tx.conn().execute(&Sql::new(BUMP, vec![])).await?;
    tx.commit().await
}

/// Removes a package, and with `purge` every tenant's settings of it; `false` when it
/// was not installed.
pub async fn remove_installed(
    database: &Database,
    name: &str,
    purge: bool,
) -> Result<bool, DataError> {
    let mut tx = database.begin().await?;
    if purge {
        tx.conn()
            .execute(&Sql::new(
                "DELETE FROM plugins_tenant WHERE plugin = $1",
                vec![text(name)],
            ))
            .await?;
    }
    let removed = tx
        .conn()
        .execute(&Sql::new(
            "DELETE FROM plugins_installed WHERE name = $1",
            vec![text(name)],
        ))
        .await?;
    tx.conn().execute(&Sql::new(BUMP, vec![])).await?;
    tx.commit().await?;
    Ok(removed > 0)
}

/// Every tenant's choices.
pub async fn tenant_rows(database: &Database) -> Result<Vec<TenantRow>, DataError> {
    let sql = Sql::new(
        "SELECT tenant_id, plugin, enabled, config FROM plugins_tenant ORDER BY tenant_id, plugin",
        vec![],
    );
    let mut reading = database.reader().await?;
    let rows = reading
        .conn()
        .fetch(
            &sql,
            &[SqlType::Text, SqlType::Text, SqlType::Bool, SqlType::Text],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut cells = row.into_iter();
            let tenant = cells.next().and_then(Cell::into_text).unwrap_or_default();
            let plugin = cells.next().and_then(Cell::into_text).unwrap_or_default();
            let enabled = cells.next().and_then(|c| c.as_bool()).unwrap_or(false);
            let config = cells
                .next()
                .and_then(Cell::into_text)
                .and_then(|t: String| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            TenantRow {
                tenant,
                plugin,
                enabled,
                config,
            }
        })
        .collect())
}

/// Records a tenant's choice for a plugin.
pub async fn put_tenant(
    database: &Database,
    row: &TenantRow,
    changed_by: Option<&str>,
) -> Result<(), DataError> {
    let sql = Sql::new(
        "INSERT INTO plugins_tenant (tenant_id, plugin, enabled, config, changed_at, changed_by) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, plugin) DO UPDATE SET enabled = excluded.enabled, \
         config = excluded.config, changed_at = excluded.changed_at, changed_by = excluded.changed_by",
        vec![
            text(&row.tenant),
            text(&row.plugin),
            Arg::Bool(Some(row.enabled)),
            text(&serde_json::Value::Object(row.config.clone()).to_string()),
            text(&civil_now()),
            Arg::Text(changed_by.map(str::to_owned)),
        ],
    );
    let mut tx = database.begin().await?;
    tx.conn().execute(&sql).await?;
    tx.conn().execute(&Sql::new(BUMP, vec![])).await?;
    tx.commit().await
}
