//! PostgreSQL row-level security as a second wall behind the repository's own tenant
//! filter: statements that forget the tenant still see only the tenant of their
//! transaction, and a transaction that set none sees nothing.
#![allow(clippy::unwrap_used)]

use prefiq::Context;
use prefiq_data::entity::repo::TenantScope;
use prefiq_data::testing::{TestDatabase, repository};
use serde_json::json;
use sqlx::{Connection, Row};

const NOTE: &str = "name: note\nfields:\n  - {name: body, type: data, unique: true}\n";

fn scope(tenant: &str) -> TenantScope {
    TenantScope::new(&Context::system("en").with_tenant(tenant)).unwrap()
}

/// Runs `sql` in a transaction acting as the application role, with `tenant` set (or
/// not), and answers the rows' first column as text, or the error.
async fn as_app(
    conn: &mut sqlx::PgConnection,
    tenant: Option<&str>,
    sql: &str,
) -> Result<Vec<String>, String> {
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('role', 'prefiq_app', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    if let Some(tenant) = tenant {
        sqlx::query("SELECT set_config('prefiq.tenant', $1, true)")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let rows = sqlx::query(sql)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    tx.rollback().await.unwrap();
    Ok(rows
        .iter()
        .map(|r| {
            r.try_get::<String, _>(0)
                .or_else(|_| r.try_get::<i64, _>(0).map(|n| n.to_string()))
                .unwrap()
        })
        .collect())
}

#[tokio::test]
async fn a_statement_that_forgets_the_tenant_still_sees_only_its_own() {
    let Some(db) = TestDatabase::postgres("row-level security").await else {
        return;
    };
    let repo = repository(&db, "note.yaml", NOTE).await;
    for (tenant, body) in [("acme", "a1"), ("acme", "a2"), ("globex", "g1")] {
        repo.create(&scope(tenant), "note", json!({ "body": body }))
            .await
            .unwrap();
    }
    // The same unique value in another tenant is allowed: unique keys include tenant_id.
    repo.create(&scope("globex"), "note", json!({"body": "a1"}))
        .await
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();

    let flags = sqlx::query(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'note'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(
        flags.get::<bool, _>(0) && flags.get::<bool, _>(1),
        "RLS enabled and forced"
    );
    let role = sqlx::query(
        "SELECT rolbypassrls, rolsuper, rolcanlogin FROM pg_roles WHERE rolname = 'prefiq_app'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(!role.get::<bool, _>(0) && !role.get::<bool, _>(1) && !role.get::<bool, _>(2));
    let unique: Vec<String> = sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE tablename = 'note' AND indexdef LIKE 'CREATE UNIQUE%'")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(unique.len() >= 3, "{unique:?}");
    assert!(unique.iter().all(|i| i.contains("tenant_id")), "{unique:?}");

    // No tenant set, or an empty one: nothing, whatever the statement asks.
    for tenant in [None, Some("")] {
        assert_eq!(
            as_app(&mut conn, tenant, "SELECT count(*) FROM note")
                .await
                .unwrap(),
            ["0"],
            "{tenant:?}"
        );
    }
    // With a tenant: only its rows, even without a WHERE clause or with another tenant's.
    assert_eq!(
        as_app(
            &mut conn,
            Some("acme"),
            "SELECT body FROM note ORDER BY body"
        )
        .await
        .unwrap(),
        ["a1", "a2"]
    );
    assert_eq!(
        as_app(
            &mut conn,
            Some("acme"),
            "SELECT body FROM note WHERE tenant_id = 'globex'"
        )
        .await
        .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        as_app(
            &mut conn,
            Some("acme"),
            "UPDATE note SET body = 'x' WHERE tenant_id = 'globex' RETURNING id"
        )
        .await
        .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        as_app(
            &mut conn,
            Some("acme"),
            "DELETE FROM note RETURNING tenant_id"
        )
        .await
        .unwrap(),
        ["acme", "acme"]
    );
    // Writing a row into another tenant is refused by the policy's check.
    let refused = as_app(
        &mut conn,
        Some("acme"),
        "INSERT INTO note (tenant_id, id, name, created_at, modified_at, body) VALUES ('globex', 'x', 'x', '', '', 'smuggled') RETURNING id",
    )
    .await
    .unwrap_err();
    assert!(refused.contains("row-level security"), "{refused}");
    let moved = as_app(
        &mut conn,
        Some("acme"),
        "UPDATE note SET tenant_id = 'globex' RETURNING id",
    )
    .await
    .unwrap_err();
    assert!(moved.contains("row-level security"), "{moved}");
    // The repository itself still reads through the wall.
    let page = repo
        .list(&scope("globex"), "note", &Default::default())
        .await
        .unwrap();
    assert_eq!(page.data.len(), 2);
    conn.close().await.unwrap();
    db.cleanup().await;
}
