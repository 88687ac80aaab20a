//! What the audit log costs, measured: `cargo bench -p prefiq-data --bench audit`.
//!
//! 1. Creates through the entity pipeline on embedded SQLite (8 concurrent writers, group
//!    commit), with audit records and, as the baseline in the same run, without: the
//!    ratio is what the record costs (target: under 20% of create throughput).
//! 2. `verify` of a log of `AUDIT_BENCH_RECORDS` records (default 1,000,000; target under
//!    2 s), written straight into the table in bulk, then checkpointed as the server
//!    does.
//!
//! Sizes: `AUDIT_BENCH_CREATES` (default 20,000 per run), `AUDIT_BENCH_RECORDS`.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use ed25519_dalek::SigningKey;
use prefiq::Context;
use prefiq_data::Database;
use prefiq_data::audit::{AuditConfig, AuditLog};
use prefiq_data::entity::repo::{Repository, TenantScope};
use prefiq_data::entity::sql::Sql;
use prefiq_data::testing::{TestDatabase, repository};
use serde_json::json;

const TODO: &str = include_str!("../../../apps/cortex/schema/todo.yaml");

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn creates_per_second(repo: Arc<Repository>, creates: usize) -> f64 {
    let scope =
        TenantScope::new(&Context::system("en").with_tenant("acme").with_user("u-1")).unwrap();
    let started = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (repo, scope) = (repo.clone(), scope.clone());
            tokio::spawn(async move {
                for i in (w..creates).step_by(8) {
                    repo.create(
                        &scope,
                        "todo",
                        json!({"description": format!("todo {i}"), "priority": "High"}),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    creates as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let creates = size("AUDIT_BENCH_CREATES", 20_000);
    let records = size("AUDIT_BENCH_RECORDS", 1_000_000);

    // 1. Create throughput with and without audit records, alternating, best of three.
    let (mut audited, mut baseline) = (0f64, 0f64);
    for _ in 0..3 {
        for with_audit in [false, true] {
            let db = TestDatabase::sqlite().unwrap();
            let repo = repository(&db, "schema/todo.yaml", TODO).await;
            let repo = Arc::new(if with_audit {
                repo
            } else {
                repo.unaudited_for_benchmarks()
            });
            let rate = creates_per_second(repo, creates).await;
            if with_audit {
                audited = audited.max(rate);
            } else {
                baseline = baseline.max(rate);
            }
            db.cleanup().await;
        }
    }
    println!(
        "creates (SQLite, 8 writers, {creates} per run, best of 3): without audit {baseline:.0}/s, with audit {audited:.0}/s: ratio {:.3}, the audit record costs {:.1}%",
        audited / baseline,
        (1.0 - audited / baseline) * 100.0
    );

    // 2. Verify a large log.
    let db = TestDatabase::sqlite().unwrap();
    let repo = Arc::new(repository(&db, "schema/todo.yaml", TODO).await);
    let log = AuditLog::new(
        repo.clone(),
        SigningKey::from_bytes(&[3; 32]),
        AuditConfig::default(),
    );
    let started = Instant::now();
    if let database @ Database::Sqlite(_) = repo.main_database().get().unwrap() {
        let mut tx = database.begin().await.unwrap();
        let batch = 500;
        for start in (1..=records).step_by(batch) {
            let end = (start + batch - 1).min(records);
            let mut sql = String::from("INSERT INTO prefiq_audit (tenant_id, seq, entry) VALUES ");
            for seq in start..=end {
                if seq > start {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "('acme', {seq}, '{{\"seq\":{seq},\"tenant\":\"acme\",\"time\":\"2026-12-02T10:00:00.000000Z\",\"actor\":\"01a23684-3ea6-7693-af73-e80ddf3255bc\",\"action\":\"create\",\"entity\":\"todo\",\"id\":\"01a23684-47c0-725a-994e-{seq:012}\",\"changes\":{{\"description\":{{\"after\":\"todo {seq}\"}},\"status\":{{\"after\":\"Open\"}}}},\"trace\":\"efeee43d601746955cd43e5f19d33192\"}}')"
                ));
            }
            tx.conn().execute_script(&sql).await.unwrap();
        }
        tx.conn()
            .execute(&Sql::new(
                "INSERT INTO prefiq_audit_heads (tenant_id, size) VALUES ('acme', $1)",
                vec![(records as i64).into()],
            ))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let written = started.elapsed();
    let started = Instant::now();
    log.checkpoint("acme").await.unwrap();
    let checkpointed = started.elapsed();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let report = log.verify("acme", &[], true).await.unwrap();
        best = best.min(started.elapsed().as_secs_f64());
        assert_eq!(report.size, records as u64);
    }
    println!(
        "verify of {records} records (SQLite): best of 3 {best:.3} s ({:.0} records/s); written in {:.1} s, checkpointed in {:.2} s",
        records as f64 / best,
        written.as_secs_f64(),
        checkpointed.as_secs_f64()
    );
    db.cleanup().await;
}
