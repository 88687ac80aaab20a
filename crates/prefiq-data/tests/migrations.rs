//! Migrations and tenant config against real databases: SQLite always, PostgreSQL when
//! `PREFIQ_TEST_POSTGRES_URL` is set.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use prefiq::config::DatabaseConfig;
use prefiq::{BootMode, Migration, MigrationRunner, ModuleMigrations, TenantConfigStore};
use prefiq_data::entity::sql::{Cell, Sql, SqlType};
use prefiq_data::testing::{TestDatabase, databases};
use prefiq_data::{
    Database, DatabaseHandle, DatabaseUrl, SqlMigrationRunner, SqlTenantConfigStore,
};

fn db_config(url: &str) -> DatabaseConfig {
    DatabaseConfig {
        url: url.to_owned(),
        max_connections: 4,
        busy_timeout_ms: 5000,
        acquire_timeout_ms: 5000,
        tenancy: prefiq::config::Tenancy::Shared,
        max_open_tenants: 64,
        tenant_max_connections: 2,
    }
}

async fn connect(db: &TestDatabase, mode: BootMode) -> Arc<DatabaseHandle> {
    let url = DatabaseUrl::parse(&db.url, Path::new("/")).unwrap();
    let handle = DatabaseHandle::new(url);
    if let Some(database) = Database::connect(&db_config(&db.url), Path::new("/"), mode)
        .await
        .unwrap()
    {
        handle.set(database);
    }
    Arc::new(handle)
}

fn module(name: &str, version: &str, migrations: Vec<Migration>) -> ModuleMigrations {
    ModuleMigrations {
        module: name.to_owned(),
        version: semver::Version::parse(version).unwrap(),
        migrations,
    }
}

const NOTES: Migration = Migration::portable(
    "0001_notes",
    "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL);",
);
const NOTES_INDEX: Migration = Migration::portable(
    "0002_notes_body",
    "CREATE INDEX notes_body ON notes (body);",
);

/// Pending migrations as `module/id` strings.
async fn pending(
    runner: &SqlMigrationRunner,
    modules: &[ModuleMigrations],
) -> Result<Vec<String>, String> {
    runner
        .plan(modules)
        .await
        .map(|plan| {
            plan.pending
                .iter()
                .map(|p| format!("{}/{}", p.module, p.id))
                .collect()
        })
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn migrations_apply_once_in_order_and_detect_edits_on_backends() {
    for db in databases("prefiq-data migrations").await {
        let handle = connect(&db, BootMode::Command).await;
        let runner = SqlMigrationRunner::new(handle.clone(), Default::default());
        let v1 = vec![module("notes", "0.1.0", vec![NOTES])];
        assert_eq!(
            pending(&runner, &v1).await.unwrap(),
            [
                "prefiq/0000_migrations",
                "prefiq/0001_tenant_config",
                "prefiq/0002_entities",
                "prefiq/0003_custom_fields",
                "prefiq/0004_audit",
                "prefiq/0005_audit_queue",
                "prefiq/0006_outbox_sequence",
                "prefiq/0007_jobs",
                "notes/0001_notes"
            ]
        );
        let plan = runner.plan(&v1).await.unwrap();
        assert_eq!(plan.upgrades.len(), 1);
        assert_eq!(plan.upgrades[0].from, None);
        runner.apply(&plan, &v1).await.unwrap();
        assert_eq!(pending(&runner, &v1).await.unwrap(), Vec::<String>::new());
        assert!(runner.plan(&v1).await.unwrap().upgrades.is_empty());

        // A new version with a new migration: only that one is pending, and the module upgrades.
        let v2 = vec![module("notes", "0.2.0", vec![NOTES_INDEX, NOTES])];
        let plan = runner.plan(&v2).await.unwrap();
        assert_eq!(
            plan.pending
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>(),
            ["0002_notes_body"]
        );
        assert_eq!(
            plan.upgrades[0]
                .from
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("0.1.0")
        );
        runner.apply(&plan, &v2).await.unwrap();

        // Editing an applied migration stops the plan and names it.
        let edited = vec![module(
            "notes",
            "0.2.0",
            vec![
                Migration::portable("0001_notes", "CREATE TABLE notes (id TEXT);"),
                NOTES_INDEX,
            ],
        )];
        let err = pending(&runner, &edited).await.unwrap_err();
        assert!(
            err.starts_with(
                "migration error: migration `notes/0001_notes` was changed after it was applied"
            ),
            "{err}"
        );

        // A migration declared twice is refused.
        let twice = vec![module("notes", "0.2.0", vec![NOTES, NOTES])];
        assert_eq!(
            pending(&runner, &twice).await.unwrap_err(),
            "migration error: module `notes` declares migration `0001_notes` twice"
        );

        // A failing migration leaves nothing behind: neither its table nor its record.
        let broken = vec![module(
            "notes",
            "0.2.0",
            vec![
                NOTES,
                NOTES_INDEX,
                Migration::portable(
                    "0003_broken",
                    "CREATE TABLE half (id TEXT); SELECT * FROM no_such_table;",
                ),
            ],
        )];
        let plan = runner.plan(&broken).await.unwrap();
        let err = runner.apply(&plan, &broken).await.unwrap_err().to_string();
        assert!(
            err.contains("migration `notes/0003_broken` failed"),
            "{err}"
        );
        assert_eq!(
            pending(&runner, &broken).await.unwrap(),
            ["notes/0003_broken"]
        );
        let database = handle.get().unwrap();
        let half = match database.backend() {
            prefiq::Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE name = 'half'",
            prefiq::Backend::Postgres => "SELECT COUNT(*) FROM pg_tables WHERE tablename = 'half'",
        };
        let rows = database
            .reader()
            .await
            .unwrap()
            .conn()
            .fetch(&Sql::new(half, vec![]), &[SqlType::Int])
            .await
            .unwrap();
        let half_exists = rows[0][0].as_int().unwrap();
        assert_eq!(half_exists, 0);
        handle.get().unwrap().close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn dry_run_on_a_missing_sqlite_file_creates_nothing() {
    let db = TestDatabase::sqlite().unwrap();
    let handle = connect(&db, BootMode::DryRun).await;
    assert!(handle.get().is_err());
    let runner = SqlMigrationRunner::new(handle, Default::default());
    let modules = vec![module("notes", "0.1.0", vec![NOTES])];
    assert_eq!(pending(&runner, &modules).await.unwrap().len(), 9);
    assert_eq!(
        std::fs::read_dir(db.dir.path()).unwrap().count(),
        0,
        "the dry run wrote a file"
    );
}

#[tokio::test]
async fn tenant_overrides_round_trip_on_backends() {
    for db in databases("prefiq-data tenant config").await {
        let handle = connect(&db, BootMode::Command).await;
        let runner = SqlMigrationRunner::new(handle.clone(), Default::default());
        let plan = runner.plan(&[]).await.unwrap();
        runner.apply(&plan, &[]).await.unwrap();
        let store = SqlTenantConfigStore::new(handle.clone());
        store
            .set("acme", "app.locale", Some(&serde_json::json!("de-CH")))
            .await
            .unwrap();
        store
            .set("acme", "app.locale", Some(&serde_json::json!("fr-CH")))
            .await
            .unwrap();
        store
            .set(
                "acme",
                "accounting.rounding",
                Some(&serde_json::json!({"places": 2})),
            )
            .await
            .unwrap();
        store
            .set("globex", "app.locale", Some(&serde_json::json!("en")))
            .await
            .unwrap();
        let expected: BTreeMap<String, serde_json::Value> = [
            (
                "accounting.rounding".to_owned(),
                serde_json::json!({"places": 2}),
            ),
            ("app.locale".to_owned(), serde_json::json!("fr-CH")),
        ]
        .into();
        assert_eq!(store.overrides("acme").await.unwrap(), expected);
        store.set("acme", "app.locale", None).await.unwrap();
        assert_eq!(store.overrides("acme").await.unwrap().len(), 1);
        assert!(store.overrides("nobody").await.unwrap().is_empty());
        handle.get().unwrap().close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn sqlite_pragmas_are_set() {
    let db = TestDatabase::sqlite().unwrap();
    let handle = connect(&db, BootMode::Command).await;
    let database = handle.get().unwrap();
    let mut writing = database.writer().await.unwrap();
    let mut pragma = async |name: &str, ty: SqlType| {
        let rows = writing
            .conn()
            .fetch(&Sql::new(format!("PRAGMA {name}"), vec![]), &[ty])
            .await
            .unwrap();
        rows[0][0].clone()
    };
    let mode = pragma("journal_mode", SqlType::Text).await;
    let fk = pragma("foreign_keys", SqlType::Int).await;
    let sync = pragma("synchronous", SqlType::Int).await;
    assert_eq!(
        (mode, fk, sync),
        (Cell::Text("wal".into()), Cell::Int(1), Cell::Int(1))
    );
    drop(writing);
    let err = database
        .reader()
        .await
        .unwrap()
        .conn()
        .execute(&Sql::new("CREATE TABLE x (id INT)", vec![]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("readonly"), "{err}");
}

#[test]
fn database_urls() {
    let check = |url: &str, expected: &str| {
        let got = match DatabaseUrl::parse(url, Path::new("/srv")) {
            Ok(u) => u.display(),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expected, "{url}");
    };
    check(
        "sqlite://data/codexion.db",
        "sqlite:///srv/data/codexion.db",
    );
    check("sqlite:///abs/x.db", "sqlite:///abs/x.db");
    check("sqlite:x.db?mode=rwc", "sqlite:///srv/x.db");
    check("postgres://u:pw@h/db", "postgres://u:***@h/db");
    check(
        "sqlite::memory:",
        "error: invalid database url `sqlite::memory:`: an in-memory or empty path cannot be shared by the writer and the readers; name a file",
    );
    check(
        "mysql://x",
        "error: invalid database url `mysql://x`: use sqlite://PATH or postgres://...",
    );
}
