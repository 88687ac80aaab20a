//! `prefiq tenant export` and `prefiq tenant import`: one tenant's rows, custom fields,
//! runtime entities, users and audit log as one file (docs/tenant-export.md), loaded into
//! another installation on either backend.
//!
//! The file is a tar: `manifest.json` first, then one `tables/{database}/{table}.jsonl`
//! per table (one JSON object per row). The export writes `FILE.partial` and renames it
//! when complete, so an interrupted export leaves nothing that looks finished. The import
//! reads the whole file once, checking every member against the manifest's digest, before
//! it writes anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prefiq::{App, BootMode, BootedApp};
use prefiq_audit::checkpoint;
use prefiq_audit::merkle;
use prefiq_audit::verify::{hex, record_prefix, unhex};
use prefiq_data::audit::{AuditLog, AuditRecord};
use prefiq_data::entity::repo::Repository;
use prefiq_data::entity::schema::FieldDef;
use prefiq_data::entity::sql::{Cell, Sql, SqlType};
use prefiq_data::entity::{Entities, custom};
use prefiq_data::transfer::{self, CHUNK_ROWS, Row, Snapshot, TableInfo};
use prefiq_data::{Database, DatabaseHandle};
use serde_json::Value;

use crate::{Cli, CliError, boot, logging};

mod archive;
mod keys;

pub use archive::{AuditEvidence, FORMAT, Manifest, TableMember, VERSION};
use archive::{MemberWriter, RowReader, Unpacked, unpack, write_archive};

/// Tables with a `tenant_id` that hold no data of the tenant's, only work in flight or
/// state that means nothing in another installation: queues, the outbox, sessions and
/// one-time tokens, caches and rate limits, idempotency keys. The audit log's checkpoints
/// and snapshots are signed by the source's key and name the source's log; the import
/// checks the source's latest one (kept in the manifest) and signs its own.
const SKIPPED: &[&str] = &[
    "prefiq_outbox",
    "prefiq_audit_queue",
    "prefiq_audit_checkpoints",
    "prefiq_audit_snapshots",
    "prefiq_jobs",
    "prefiq_job_schedules",
    "cortex_refresh_tokens",
    "cortex_reset_tokens",
    "memory_idempotency",
    "memory_changes",
    "webhooks_delivery",
];

/// Credentials that go only with `--include-password-hashes`: API keys (their hashes)
/// and webhook signing secrets.
const CREDENTIAL_TABLES: &[&str] = &["cortex_api_keys", "webhooks_secret"];

/// Tables the platform reads from the main database even in `database` tenancy (they
/// exist in tenant databases too, unused).
const MAIN_ONLY: &[&str] = &["prefiq_tenant_config"];

fn message(text: impl Into<String>) -> CliError {
    CliError::Message(text.into())
}

fn data(e: impl std::fmt::Display) -> CliError {
    message(e.to_string())
}

fn backend_name(database: &Database) -> &'static str {
    match database.backend() {
        prefiq::Backend::Sqlite => "sqlite",
        prefiq::Backend::Postgres => "postgres",
    }
}

/// The services a transfer needs from a booted installation.
struct Installation {
    repository: Arc<Repository>,
    entities: Arc<Entities>,
    log: Arc<AuditLog>,
    main: Arc<DatabaseHandle>,
}

impl Installation {
    fn of(booted: &BootedApp) -> Result<Self, CliError> {
        let resolver = booted.resolver("prefiq tenant");
        let repository = resolver.get::<Repository>()?;
        Ok(Installation {
            main: repository.main_database(),
            entities: resolver.get::<Entities>()?,
            log: resolver.get::<AuditLog>()?,
            repository,
        })
    }

    /// The tenant's database, and whether it is another than the main one.
    async fn tenant_database(&self, tenant: &str) -> Result<(Arc<DatabaseHandle>, bool), CliError> {
        let handle = self
            .repository
            .tenant_database(tenant)
            .await
            .map_err(data)?;
        let own = !Arc::ptr_eq(&handle, &self.main);
        Ok((handle, own))
    }

    /// Whether `tenant` has audit records or a log head (left by a tenant of that name
    /// that was removed): read directly, since asking the log would make its head.
    async fn has_log(&self, tenant: &str) -> Result<bool, CliError> {
        let (handle, _) = self.tenant_database(tenant).await?;
        let database = handle.get().map_err(data)?;
        let mut snapshot = Snapshot::open(database, tenant).await.map_err(data)?;
        let found = async {
            for name in ["prefiq_audit_heads", "prefiq_audit", "prefiq_audit_queue"] {
                let conn = &mut snapshot.conn();
                let Some(table) = transfer::table_info(conn, name).await.map_err(data)? else {
                    continue;
                };
                if !transfer::read_chunk(conn, &table, "tenant_id", tenant, 0, 1)
                    .await
                    .map_err(data)?
                    .is_empty()
                {
                    return Ok(true);
                }
            }
            Ok::<_, CliError>(false)
        }
        .await;
        snapshot.close().await.map_err(data)?;
        found
    }

    /// The tenant's row in `cortex_tenants`, if it exists.
    async fn tenant_row(&self, tenant: &str) -> Result<Option<Row>, CliError> {
        let database = self.main.get().map_err(data)?;
        let mut snapshot = Snapshot::open(database, tenant).await.map_err(data)?;
        let row = async {
            let Some(table) = transfer::table_info(&mut snapshot.conn(), "cortex_tenants")
                .await
                .map_err(data)?
            else {
                return Ok(None);
            };
            Ok::<_, CliError>(
                transfer::read_chunk(&mut snapshot.conn(), &table, "name", tenant, 0, 1)
                    .await
                    .map_err(data)?
                    .into_iter()
                    .next(),
            )
        }
        .await;
        snapshot.close().await.map_err(data)?;
        row
    }
}

/// The applied migrations of the main database, per module (runtime entities' own
/// pseudo-modules left out: they are per tenant).
async fn applied_migrations(
    database: &Database,
) -> Result<BTreeMap<String, Vec<String>>, CliError> {
    let mut reading = database.reader().await.map_err(data)?;
    let rows = reading
        .conn()
        .fetch(
            &Sql::new(
                "SELECT module, id FROM prefiq_migrations WHERE module NOT LIKE 'tenant:%' ORDER BY module, id",
                vec![],
            ),
            &[SqlType::Text, SqlType::Text],
        )
        .await
        .map_err(data)?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        let mut cells = row.into_iter().map(Cell::into_text);
        if let (Some(Some(module)), Some(Some(id))) = (cells.next(), cells.next()) {
            out.entry(module).or_default().push(id);
        }
    }
    Ok(out)
}

/// Runs `prefiq tenant export`.
pub async fn export(
    app: App,
    cli: &Cli,
    logs: &logging::LogControl,
    tenant: &str,
    to: &Path,
    include_hashes: bool,
) -> Result<String, CliError> {
    if !prefiq::context::is_tenant_name(tenant) {
        return Err(message(format!("tenant `{tenant}` does not exist")));
    }
    let booted = boot(app, cli, BootMode::Command, true, vec![], logs, true).await?;
    let result = export_booted(&booted, tenant, to, include_hashes).await;
    booted.shutdown().await?;
    result
}

async fn export_booted(
    booted: &BootedApp,
    tenant: &str,
    to: &Path,
    include_hashes: bool,
) -> Result<String, CliError> {
    let install = Installation::of(booted)?;
    let Some(tenant_row) = install.tenant_row(tenant).await? else {
        return Err(message(format!("tenant `{tenant}` does not exist")));
    };
    let main = install.main.get().map_err(data)?;
    // Number what is queued, then sign a checkpoint of all of it: the manifest carries
    // the latest one, and the import checks the log against it.
    install.log.checkpoint(tenant).await.map_err(data)?;
    let checkpoint = install.log.latest_checkpoint(tenant).await.map_err(data)?;
    let (tenant_handle, own) = install.tenant_database(tenant).await?;
    let work = tempfile::tempdir().map_err(data)?;
    let mut members: Vec<(TableMember, PathBuf)> = Vec::new();
    let mut databases: Vec<(&str, &Database)> = vec![("main", main)];
    if own {
        databases.push(("tenant", tenant_handle.get().map_err(data)?));
    }
    for (label, database) in databases {
        std::fs::create_dir_all(work.path().join(label)).map_err(data)?;
        let mut snapshot = Snapshot::open(database, tenant).await.map_err(data)?;
        let result = async {
            let tables = transfer::tenant_tables(&mut snapshot.conn())
                .await
                .map_err(data)?;
            for table in tables {
                if SKIPPED.contains(&table.name.as_str())
                    || (!include_hashes && CREDENTIAL_TABLES.contains(&table.name.as_str()))
                {
                    continue;
                }
                let path = work
                    .path()
                    .join(label)
                    .join(format!("{}.jsonl", table.name));
                let mut writer = MemberWriter::create(path)?;
                let mut offset = 0;
                loop {
                    let rows = transfer::read_chunk(
                        &mut snapshot.conn(),
                        &table,
                        "tenant_id",
                        tenant,
                        offset,
                        CHUNK_ROWS,
                    )
                    .await
                    .map_err(data)?;
                    for mut row in rows.iter().cloned() {
                        if table.name == "cortex_users" && !include_hashes {
                            // Without the hash the user must reset the password; an
                            // empty hash never verifies.
                            row.insert("password_hash".into(), Value::String(String::new()));
                        }
                        writer.row(&row)?;
                    }
                    offset += rows.len();
                    if rows.len() < CHUNK_ROWS {
                        break;
                    }
                }
                let (path, sha256, rows) = writer.finish()?;
                if rows == 0 {
                    continue;
                }
                members.push((
                    TableMember {
                        member: format!("tables/{label}/{}.jsonl", table.name),
                        database: label.to_owned(),
                        table: table.name.clone(),
                        columns: table.columns.clone(),
                        rows,
                        sha256,
                    },
                    path,
                ));
            }
            Ok::<_, CliError>(())
        }
        .await;
        snapshot.close().await.map_err(data)?;
        result?;
    }
    let size = members
        .iter()
        .filter(|(m, _)| m.table == "prefiq_audit")
        .map(|(m, _)| m.rows)
        .sum();
    let runtime_entities = transfer::runtime_snapshots(main, tenant)
        .await
        .map_err(data)?
        .iter()
        .filter_map(|text| serde_json::from_str(text).ok())
        .collect();
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        tenant: tenant.into(),
        backend: backend_name(main).into(),
        tenancy: if own { "database" } else { "shared" }.into(),
        prefiq_version: env!("CARGO_PKG_VERSION").into(),
        created_at: jiff::Timestamp::now().to_string(),
        password_hashes: include_hashes,
        migrations: applied_migrations(main).await?,
        tenant_row,
        runtime_entities,
        audit: AuditEvidence {
            public_key: hex(install.log.verifying_key().as_bytes()),
            size,
            checkpoint,
        },
        tables: members.iter().map(|(m, _)| m.clone()).collect(),
    };
    write_archive(to, &manifest, &members)?;
    let rows: u64 = members.iter().map(|(m, _)| m.rows).sum();
    let mut out = format!(
        "exported tenant `{tenant}` to {}: {rows} rows in {} tables, {} audit records\n",
        to.display(),
        members.len(),
        manifest.audit.size
    );
    if !include_hashes {
        out.push_str(
            "password hashes, API keys and webhook secrets were left out: imported users must reset their passwords\n",
        );
    }
    Ok(out)
}

/// Checks the exported audit log against the source's signed checkpoint: the signature
/// with the manifest's key, then the root of the first `size` records as the file holds
/// them. Returns the checkpoint checked, if the source had one.
fn check_source_log(unpacked: &Unpacked) -> Result<Option<checkpoint::Checkpoint>, CliError> {
    let manifest = &unpacked.manifest;
    let Some(text) = &manifest.audit.checkpoint else {
        // An export signs a checkpoint of any log it carries.
        if manifest.audit.size > 0 {
            return Err(message(
                "the file carries audit records but no signed checkpoint of them",
            ));
        }
        return Ok(None);
    };
    let key_bytes: [u8; 32] = unhex(&manifest.audit.public_key)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| message("the manifest's audit public key is not 64 hex characters"))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes).map_err(data)?;
    let origin = text.lines().next().unwrap_or_default();
    if !origin.ends_with(&format!("/{}", manifest.tenant)) {
        return Err(message(format!(
            "the source's checkpoint is of log `{origin}`, not of tenant `{}`",
            manifest.tenant
        )));
    }
    let signed = checkpoint::verify(text, origin, &key).map_err(|e| {
        message(format!(
            "the source's signed checkpoint does not verify: {e}"
        ))
    })?;
    let entries = unpacked
        .manifest
        .tables
        .iter()
        .find(|m| m.table == "prefiq_audit");
    // The member is in sequence order (the export reads by primary key); the tree head
    // is kept as its frontier, so a log of any length takes O(log n) here.
    let mut frontier = merkle::Frontier::new();
    if let Some(member) = entries {
        let mut reader = RowReader::open(unpacked, member)?;
        'read: loop {
            let chunk = reader.chunk()?;
            if chunk.is_empty() {
                break;
            }
            for row in chunk {
                let seq = row.get("seq").and_then(Value::as_u64).unwrap_or(0);
                if seq > signed.size || seq != frontier.size() + 1 {
                    break 'read;
                }
                let entry = row.get("entry").and_then(Value::as_str).unwrap_or_default();
                frontier.push(merkle::leaf_hash(entry.as_bytes()));
            }
        }
    }
    if frontier.size() != signed.size || frontier.root() != signed.root {
        return Err(message(format!(
            "the audit log in the file does not match the source's signed checkpoint of size {}",
            signed.size
        )));
    }
    Ok(Some(signed))
}

/// Where one member's rows go in the target.
struct Placement<'a> {
    member: &'a TableMember,
    table: TableInfo,
    /// True for the tenant's own database (database tenancy), false for the main one.
    tenant_database: bool,
}

/// Runs `prefiq tenant import`.
pub async fn import(
    app: App,
    cli: &Cli,
    logs: &logging::LogControl,
    file: &Path,
    as_name: Option<&str>,
) -> Result<String, CliError> {
    let unpacked = unpack(file)?;
    let source = unpacked.manifest.tenant.clone();
    let target = as_name.unwrap_or(&source).to_owned();
    if !prefiq::context::is_tenant_name(&target) {
        return Err(message(format!(
            "`{target}` is not a tenant name: use 1 to 63 of a-z, 0-9 and `-`, not starting with `-`"
        )));
    }
    let evidence = check_source_log(&unpacked)?;
    let booted = boot(app, cli, BootMode::Command, true, vec![], logs, true).await?;
    let result = import_booted(&booted, &unpacked, &target, evidence.as_ref()).await;
    booted.shutdown().await?;
    result
}

async fn import_booted(
    booted: &BootedApp,
    unpacked: &Unpacked,
    target: &str,
    evidence: Option<&checkpoint::Checkpoint>,
) -> Result<String, CliError> {
    let manifest = &unpacked.manifest;
    let source = manifest.tenant.as_str();
    let install = Installation::of(booted)?;
    let main = install.main.get().map_err(data)?;
    if install.tenant_row(target).await?.is_some() || install.has_log(target).await? {
        return Err(message(format!("tenant `{target}` already exists")));
    }
    let applied = applied_migrations(main).await?;
    for (module, ids) in &manifest.migrations {
        if let Some(id) = ids
            .iter()
            .find(|id| !applied.get(module).is_some_and(|mine| mine.contains(id)))
        {
            return Err(message(format!(
                "this installation has not applied migration {module}/{id}, which the export was made with: upgrade it first"
            )));
        }
    }
    // Runtime entities first: their tables are named after the tenant.
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    for schema in &manifest.runtime_entities {
        let source_table = schema
            .get("table")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let table = transfer::create_runtime_entity(
            &install.repository,
            &install.entities,
            target,
            &schema.to_string(),
        )
        .await
        .map_err(data)?;
        renamed.insert(source_table, table);
    }
    let (tenant_handle, own) = install.tenant_database(target).await?;
    let tenant_db = tenant_handle.get().map_err(data)?;
    let mut placements = Vec::new();
    for member in &manifest.tables {
        // A runtime entity's own tables (its closure table `{table}__tree`) follow it.
        let name = renamed
            .iter()
            .find_map(|(from, to)| {
                member
                    .table
                    .strip_prefix(from.as_str())
                    .filter(|rest| rest.is_empty() || rest.starts_with("__"))
                    .map(|rest| format!("{to}{rest}"))
            })
            .unwrap_or_else(|| member.table.clone());
        let mut in_tenant = false;
        let mut info = None;
        if own && !MAIN_ONLY.contains(&name.as_str()) {
            let mut reading = tenant_db.reader().await.map_err(data)?;
            info = transfer::table_info(&mut reading.conn(), &name)
                .await
                .map_err(data)?;
            in_tenant = info.is_some();
        }
        if info.is_none() {
            let mut reading = main.reader().await.map_err(data)?;
            info = transfer::table_info(&mut reading.conn(), &name)
                .await
                .map_err(data)?;
        }
        let table = info.ok_or_else(|| {
            message(format!(
                "table `{name}` of the export does not exist in this installation (is a module missing?)"
            ))
        })?;
        placements.push(Placement {
            member,
            table,
            tenant_database: in_tenant,
        });
    }
    // The tenant's own database first, the main one (with the tenant's row) last: the
    // tenant exists only once everything is in.
    let mut rows_written = 0u64;
    if own {
        rows_written += load(
            tenant_db,
            unpacked,
            &placements,
            true,
            target,
            None,
            &install.entities,
        )
        .await?;
    }
    let tenant_row = tenant_row_for(&manifest.tenant_row, target);
    rows_written += load(
        main,
        unpacked,
        &placements,
        false,
        target,
        Some(&tenant_row),
        &install.entities,
    )
    .await?;

    let mut out = format!(
        "imported tenant `{source}`{} from {} ({}) into {}: {rows_written} rows in {} tables\n",
        if target == source {
            String::new()
        } else {
            format!(" as `{target}`")
        },
        manifest.backend,
        manifest.created_at,
        backend_name(main),
        manifest.tables.len()
    );
    // The log as stored now, against the source's signature.
    if let Some(signed) = evidence {
        let root = stored_root(install.repository.as_ref(), target, source, signed.size).await?;
        if root != signed.root {
            return Err(message(format!(
                "the imported audit log of `{target}` does not match the source's signed checkpoint of size {}",
                signed.size
            )));
        }
        out.push_str(&format!(
            "audit: the imported log's first {} records match the source's signed checkpoint (root {}, key {})\n",
            signed.size,
            hex(&signed.root),
            manifest.audit.public_key
        ));
    }
    let time = prefiq_data::entity::value::civil_now();
    let changes = serde_json::json!({
        "source": {"after": {
            "tenant": source,
            "backend": manifest.backend,
            "created_at": manifest.created_at,
            "records": manifest.audit.size,
            "checkpoint_root": evidence.map(|c| hex(&c.root)),
        }}
    });
    install
        .log
        .record(&AuditRecord {
            tenant: target,
            time: &time,
            actor: None,
            action: "tenant_imported",
            entity: None,
            id: Some(target),
            changes,
            trace: "",
        })
        .await
        .map_err(data)?;
    install.log.checkpoint(target).await.map_err(data)?;
    let report = install.log.verify(target, &[], true).await.map_err(data)?;
    out.push_str(&crate::audit::verified_summary(&report));
    out.push('\n');
    if !manifest.password_hashes {
        out.push_str("the export holds no password hashes: users must reset their passwords (or an administrator sets them: `prefiq tenant recover`)\n");
    }
    Ok(out)
}

/// The source's `cortex_tenants` row under the target's name.
fn tenant_row_for(row: &Row, target: &str) -> Row {
    let mut row = row.clone();
    row.insert("name".into(), Value::String(target.to_owned()));
    row
}

/// Loads the members placed in one database (`tenant_database` says which) in one
/// transaction, with the tenant's row when `tenant_row` is given. Returns the rows
/// written.
async fn load(
    database: &Database,
    unpacked: &Unpacked,
    placements: &[Placement<'_>],
    tenant_database: bool,
    target: &str,
    tenant_row: Option<&Row>,
    entities: &Entities,
) -> Result<u64, CliError> {
    let source = unpacked.manifest.tenant.as_str();
    let mine: Vec<&Placement<'_>> = placements
        .iter()
        .filter(|p| p.tenant_database == tenant_database)
        .collect();
    let tables: Vec<String> = mine.iter().map(|p| p.table.name.clone()).collect();
    let mut tx = database.begin().await.map_err(data)?;
    let result = async {
        let conn = &mut tx.conn();
        transfer::enter(conn, target).await.map_err(data)?;
        let suspended = transfer::suspend_triggers(conn, &tables)
            .await
            .map_err(data)?;
        let shifts = keys::shifts(conn, unpacked, &mine).await?;
        let mut custom_fields: Vec<Row> = Vec::new();
        let mut written = 0;
        if let Some(row) = tenant_row {
            let table = transfer::table_info(conn, "cortex_tenants")
                .await
                .map_err(data)?
                .ok_or_else(|| message("this installation has no cortex_tenants table"))?;
            let columns: Vec<String> = row.keys().cloned().collect();
            transfer::insert_rows(conn, &table, &columns, std::slice::from_ref(row))
                .await
                .map_err(data)?;
        }
        for placement in &mine {
            let columns: Vec<String> = placement
                .member
                .columns
                .iter()
                .map(|c| c.name.clone())
                .collect();
            let mut reader = RowReader::open(unpacked, placement.member)?;
            loop {
                let mut rows = reader.chunk()?;
                if rows.is_empty() {
                    break;
                }
                for row in &mut rows {
                    rewrite(row, &placement.table.name, source, target).map_err(|e| {
                        message(format!("member `{}`: {e}", placement.member.member))
                    })?;
                    keys::apply(&shifts, &placement.table.name, row);
                    if placement.table.name == "prefiq_custom_fields" {
                        custom_fields.push(row.clone());
                    }
                }
                written += transfer::insert_rows(conn, &placement.table, &columns, &rows)
                    .await
                    .map_err(data)?;
            }
            transfer::bump_sequences(conn, &placement.table)
                .await
                .map_err(data)?;
        }
        // An indexed custom field's index is partial to its tenant, and named after it.
        for row in &custom_fields {
            let entity = row
                .get("entity")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let definition = match row.get("definition") {
                Some(Value::String(text)) => serde_json::from_str(text).ok(),
                Some(other) => serde_json::from_value(other.clone()).ok(),
                None => None,
            };
            let Some(field) = definition.filter(|f: &FieldDef| f.indexed) else {
                continue;
            };
            if let Some(schema) = entities.registry().get_for(Some(target), entity) {
                let statement = custom::index_statement(schema, &field, target, conn.backend());
                conn.execute_script(&statement).await.map_err(data)?;
            }
        }
        transfer::restore_triggers(conn, suspended)
            .await
            .map_err(data)?;
        Ok::<_, CliError>(written)
    }
    .await;
    match result {
        Ok(written) => {
            tx.commit().await.map_err(data)?;
            Ok(written)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// Puts `row` under the target tenant: its `tenant_id`, and for an audit record the
/// tenant its text starts with (`{"seq":N,"tenant":"…",`), since verification reads a
/// record as its tenant's only if it says so. The rest of the record is left as it was
/// hashed, so the import can check the stored log against the source's signature by
/// putting the source's name back ([`stored_root`]).
fn rewrite(row: &mut Row, table: &str, source: &str, target: &str) -> Result<(), String> {
    if row.contains_key("tenant_id") {
        row.insert("tenant_id".into(), Value::String(target.to_owned()));
    }
    if table == "prefiq_audit" && source != target {
        let seq = row.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let entry = row
            .get("entry")
            .and_then(Value::as_str)
            .ok_or("an audit record without its text")?;
        let from = record_prefix(seq, source);
        let rest = entry.strip_prefix(&from).ok_or_else(|| {
            format!("audit record {seq} does not start as a record of `{source}`")
        })?;
        let renamed = format!("{}{rest}", record_prefix(seq, target));
        row.insert("entry".into(), Value::String(renamed));
    }
    Ok(())
}

/// The tree head of the first `size` records of `target`'s stored log, each read as the
/// source wrote it (its tenant's name put back).
async fn stored_root(
    repository: &Repository,
    target: &str,
    source: &str,
    size: u64,
) -> Result<merkle::Hash, CliError> {
    let handle = repository.tenant_database(target).await.map_err(data)?;
    let database = handle.get().map_err(data)?;
    let mut snapshot = Snapshot::open(database, target).await.map_err(data)?;
    let result = async {
        let conn = &mut snapshot.conn();
        let table = transfer::table_info(conn, "prefiq_audit")
            .await
            .map_err(data)?
            .ok_or_else(|| message("this installation has no audit log"))?;
        let mut frontier = merkle::Frontier::new();
        let mut offset = 0;
        'read: while frontier.size() < size {
            let rows = transfer::read_chunk(conn, &table, "tenant_id", target, offset, CHUNK_ROWS)
                .await
                .map_err(data)?;
            if rows.is_empty() {
                break;
            }
            offset += rows.len();
            for row in rows {
                let seq = row.get("seq").and_then(Value::as_u64).unwrap_or(0);
                if seq > size || seq != frontier.size() + 1 {
                    break 'read;
                }
                let entry = row.get("entry").and_then(Value::as_str).unwrap_or_default();
                let original = match entry.strip_prefix(&record_prefix(seq, target)) {
                    Some(rest) if source != target => {
                        format!("{}{rest}", record_prefix(seq, source))
                    }
                    _ => entry.to_owned(),
                };
                frontier.push(merkle::leaf_hash(original.as_bytes()));
            }
        }
        Ok::<_, CliError>(frontier.root())
    }
    .await;
    snapshot.close().await.map_err(data)?;
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn row(value: Value) -> Row {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn a_renamed_audit_record_changes_only_its_tenant_prefix_and_key() {
        let entry =
            r#"{"seq":3,"tenant":"acme","time":"t","action":"create","changes":{"tenant":"acme"}}"#;
        let mut r = row(json!({"tenant_id": "acme", "seq": 3, "entry": entry}));
        rewrite(&mut r, "prefiq_audit", "acme", "globex").unwrap();
        assert_eq!(r["tenant_id"], "globex");
        assert_eq!(
            r["entry"],
            r#"{"seq":3,"tenant":"globex","time":"t","action":"create","changes":{"tenant":"acme"}}"#
        );
        // A record that does not name the source tenant where it must is refused.
        let mut forged = row(json!({"tenant_id": "acme", "seq": 4, "entry": entry}));
        assert!(rewrite(&mut forged, "prefiq_audit", "acme", "globex").is_err());
        // Without a rename the text stays as it was hashed.
        let mut same = row(json!({"tenant_id": "acme", "seq": 3, "entry": entry}));
        rewrite(&mut same, "prefiq_audit", "acme", "acme").unwrap();
        assert_eq!(same["entry"], entry);
    }
}
