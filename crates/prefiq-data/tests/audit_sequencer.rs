//! The audit sequencer on PostgreSQL: a tenant's writes do not wait on its audit head,
//! records a crash left queued are numbered by the next reader, and the log numbers
//! every committed write exactly once, in an order that keeps each record's changes in
//! the order they were made.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use prefiq::Context;
use prefiq_data::Database;
use prefiq_data::audit::{AuditConfig, AuditLog, AuditQuery};
use prefiq_data::entity::repo::TenantScope;
use prefiq_data::testing::{TestDatabase, repository};
use serde_json::{Value, json};

const NOTE: &str = "name: note\nfields:\n  - {name: title, type: data}\n";

fn scope() -> TenantScope {
    TenantScope::new(&Context::system("en").with_tenant("acme").with_user("u-1")).unwrap()
}

/// The PostgreSQL test database, or `None` (with a notice naming why) when none is
/// configured: the sequencer exists only on PostgreSQL.
async fn postgres() -> Option<TestDatabase> {
    TestDatabase::postgres("audit sequencer (PostgreSQL only)").await
}

#[tokio::test]
async fn a_tenants_writes_do_not_wait_on_its_audit_head() {
    let Some(db) = postgres().await else { return };
    let repo = Arc::new(repository(&db, "schema/note.yaml", NOTE).await);
    let scope = scope();
    repo.create(&scope, "note", json!({"title": "first"}))
        .await
        .unwrap();
    let log = AuditLog::new(
        repo.clone(),
        SigningKey::from_bytes(&[7; 32]),
        AuditConfig::default(),
    );
    assert_eq!(log.size("acme").await.unwrap(), 1);
    // Another session holds the tenant's head row, as a write's append used to until its
    // commit. Writes must go on.
    let Database::Postgres(pool) = repo.main_database().get().unwrap().clone() else {
        panic!("not PostgreSQL")
    };
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT size FROM prefiq_audit_heads WHERE tenant_id = 'acme' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let writes = async {
        for i in 0..20 {
            repo.create(&scope, "note", json!({"title": format!("note {i}")}))
                .await
                .unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(10), writes)
        .await
        .expect("writes waited on the audit head's row lock");
    holder.rollback().await.unwrap();
    // Every write has its record, numbered once, and the log verifies.
    assert_eq!(log.size("acme").await.unwrap(), 21);
    log.checkpoint("acme").await.unwrap();
    let report = log.verify("acme", &[], true).await.unwrap();
    assert_eq!((report.size, report.covered), (21, 21));
    drop(log);
    drop(repo);
    db.cleanup().await;
}

#[tokio::test]
async fn records_left_queued_by_a_crash_are_numbered_by_the_next_reader() {
    let Some(db) = postgres().await else { return };
    let repo = Arc::new(repository(&db, "schema/note.yaml", NOTE).await);
    let scope = scope();
    let created = repo
        .create(&scope, "note", json!({"title": "before"}))
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    repo.update(&scope, "note", &id, json!({"title": "after"}), None)
        .await
        .unwrap();
    // A record queued as a write commits, whose process then died before sequencing it.
    let Database::Postgres(pool) = repo.main_database().get().unwrap().clone() else {
        panic!("not PostgreSQL")
    };
    sqlx::query("INSERT INTO prefiq_audit_queue (tenant_id, tail) VALUES ('globex', $1)")
        .bind(r#""tenant":"globex","time":"2026-01-01T00:00:00Z","actor":null,"action":"login","entity":null,"id":"u-9","changes":{},"trace":"t"}"#)
        .execute(&pool)
        .await
        .unwrap();
    let log = AuditLog::new(
        repo.clone(),
        SigningKey::from_bytes(&[7; 32]),
        AuditConfig::default(),
    );
    // The sweep after a restart finds the tenant though it has no head yet.
    assert!(log.tenants().await.unwrap().contains(&"globex".to_owned()));
    assert_eq!(log.size("globex").await.unwrap(), 1);
    // One record's changes keep their order.
    let (records, _) = log
        .list(
            "acme",
            &AuditQuery {
                id: Some(id),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let actions: Vec<String> = records
        .iter()
        .map(|r| {
            let entry: Value = serde_json::from_str(r["entry"].as_str().unwrap()).unwrap();
            format!("{}@{}", entry["action"], entry["seq"])
        })
        .collect();
    assert_eq!(actions, ["\"update\"@2", "\"create\"@1"]);
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM prefiq_audit_queue")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the queue keeps records already numbered");
    drop(log);
    drop(repo);
    db.cleanup().await;
}
