//! Database-per-tenant tenancy: each tenant's rows live in a database of its own (a
//! SQLite file beside the main one, or a PostgreSQL database named after it), made and
//! migrated on first use; the main database holds none of them; a tenant database closed
//! to make room opens again with its rows. On SQLite and (when configured) PostgreSQL.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use prefiq::Context;
use prefiq::config::{DatabaseConfig, Tenancy};
use prefiq_data::entity::repo::{ListQuery, TenantScope};
use prefiq_data::entity::sql::{Sql, SqlType};
use prefiq_data::tenants::TenantDatabases;
use prefiq_data::testing::{databases, repository};
use prefiq_data::{Database, DatabaseHandle, DatabaseUrl};
use serde_json::json;

const NOTE: &str = "name: note\nfields:\n  - {name: body, type: data, unique: true}\n";

fn scope(tenant: &str) -> TenantScope {
    TenantScope::new(&Context::system("en").with_tenant(tenant)).unwrap()
}

async fn count(database: &Database) -> i64 {
    let rows = database
        .reader()
        .await
        .unwrap()
        .conn()
        .fetch(
            &Sql::new("SELECT COUNT(*) FROM note", vec![]),
            &[SqlType::Int],
        )
        .await
        .unwrap();
    rows[0][0].as_int().unwrap()
}

#[tokio::test]
async fn each_tenant_has_a_database_of_its_own() {
    for db in databases("database per tenant").await {
        let repo = repository(&db, "note.yaml", NOTE).await;
        let main = Arc::new(DatabaseHandle::new(
            DatabaseUrl::parse(&db.url, Path::new("/")).unwrap(),
        ));
        main.set(
            Database::connect(
                &DatabaseConfig {
                    url: db.url.clone(),
                    max_connections: 2,
                    busy_timeout_ms: 5000,
                    acquire_timeout_ms: 5000,
                    tenancy: Tenancy::Shared,
                    max_open_tenants: 2,
                    tenant_max_connections: 1,
                },
                Path::new("/"),
                prefiq::BootMode::Command,
            )
            .await
            .unwrap()
            .unwrap(),
        );
        let entities = Arc::new(prefiq_data::entity::Entities::default());
        entities.set(repo.registry().as_ref().clone());
        let config = DatabaseConfig {
            url: db.url.clone(),
            max_connections: 2,
            busy_timeout_ms: 5000,
            acquire_timeout_ms: 5000,
            tenancy: Tenancy::Database,
            max_open_tenants: 2,
            tenant_max_connections: 1,
        };
        let tenants = Arc::new(TenantDatabases::new(
            main.clone(),
            entities,
            config,
            Path::new("/"),
        ));
        let repo = repo.with_tenant_databases(tenants.clone());
        for (tenant, body) in [
            ("acme", "a1"),
            ("acme", "a2"),
            ("globex", "same"),
            ("acme", "same"),
        ] {
            repo.create(&scope(tenant), "note", json!({ "body": body }))
                .await
                .unwrap();
        }
        let listed = repo
            .list(&scope("acme"), "note", &ListQuery::default())
            .await
            .unwrap();
        assert_eq!(listed.data.len(), 3);
        // The rows are where the mode says: none in the main database.
        assert_eq!(count(main.get().unwrap()).await, 0);
        let acme = tenants.handle("acme").await.unwrap();
        assert_eq!(count(acme.get().unwrap()).await, 3);
        let globex = tenants.handle("globex").await.unwrap();
        assert_eq!(count(globex.get().unwrap()).await, 1);
        match acme.get().unwrap() {
            Database::Sqlite(sqlite) => {
                assert!(
                    sqlite.path.ends_with("tenants/acme.db"),
                    "{}",
                    sqlite.path.display()
                );
            }
            Database::Postgres(pool) => {
                let name: String = sqlx::query_scalar("SELECT current_database()::text")
                    .fetch_one(pool)
                    .await
                    .unwrap();
                assert!(name.ends_with("__acme"), "{name}");
            }
        }
        // A third tenant closes the longest unused one, which opens again with its rows.
        repo.create(&scope("initech"), "note", json!({"body": "i1"}))
            .await
            .unwrap();
        repo.create(&scope("globex"), "note", json!({"body": "g2"}))
            .await
            .unwrap();
        let page = repo
            .list(&scope("acme"), "note", &ListQuery::default())
            .await
            .unwrap();
        assert_eq!(page.data.len(), 3);
        let page = repo
            .list(&scope("globex"), "note", &ListQuery::default())
            .await
            .unwrap();
        assert_eq!(page.data.len(), 2);
        db.cleanup().await;
    }
}
