//! The audit log on both backends: every entity change is a record written with it (and
//! none without it), `pii` fields are only hashed, the database refuses to change or remove
//! records, and every kind of tampering — a flipped bit anywhere in a record, a deleted,
//! swapped or duplicated record, a truncated tail, a rewritten record with everything
//! after it rehashed — makes verification fail naming the record.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use prefiq::Context;
use prefiq_audit::merkle::{self, Frontier};
use prefiq_data::Database;
use prefiq_data::audit::{AuditConfig, AuditLog};
use prefiq_data::entity::repo::{Repository, TenantScope};
use prefiq_data::entity::sql::Sql;
use prefiq_data::testing::{TestDatabase, databases, repository};
use serde_json::json;

const NOTE: &str = "name: note\nfields:\n  - {name: title, type: data, unique: true}\n  - {name: email, type: data, pii: true}\n";

struct Log {
    repo: Arc<Repository>,
    log: AuditLog,
    scope: TenantScope,
}

/// Ten notes, checkpointed at 4, 8 and 10.
async fn ten_notes(db: &TestDatabase) -> Log {
    let repo = Arc::new(repository(db, "schema/note.yaml", NOTE).await);
    let log = AuditLog::new(
        repo.clone(),
        SigningKey::from_bytes(&[9; 32]),
        AuditConfig::default(),
    );
    let scope =
        TenantScope::new(&Context::system("en").with_tenant("acme").with_user("u-1")).unwrap();
    for i in 1..=10 {
        repo.create(
            &scope,
            "note",
            json!({"title": format!("note {i}"), "email": format!("p{i}@acme.test")}),
        )
        .await
        .unwrap();
        if i % 4 == 0 || i == 10 {
            log.checkpoint("acme").await.unwrap();
        }
    }
    Log { repo, log, scope }
}

fn database(log: &Log) -> Arc<prefiq_data::DatabaseHandle> {
    log.repo.main_database()
}

/// Runs `sql` as the connecting user with the append-only triggers out of the way: what
/// someone with the database's files or its owner's password could do.
async fn tamper(log: &Log, sql: &str) {
    let handle = database(log);
    match handle.get().unwrap() {
        database @ Database::Sqlite(_) => {
            let mut writing = database.writer().await.unwrap();
            let mut conn = writing.conn();
            // The record table is rebuilt without its generated index columns, whose JSON
            // functions would refuse bytes that are not JSON: someone writing the file
            // directly is not stopped by them either.
            conn.execute_script(
                "DROP TRIGGER IF EXISTS prefiq_audit_no_update; DROP TRIGGER IF EXISTS prefiq_audit_no_delete; DROP TRIGGER IF EXISTS prefiq_audit_checkpoints_no_update; DROP TRIGGER IF EXISTS prefiq_audit_checkpoints_no_delete; CREATE TABLE IF NOT EXISTS forged (tenant_id TEXT NOT NULL, seq INTEGER NOT NULL, entry TEXT NOT NULL, entity TEXT, record_id TEXT, PRIMARY KEY (tenant_id, seq)); INSERT OR IGNORE INTO forged SELECT tenant_id, seq, entry, entity, record_id FROM prefiq_audit; DROP TABLE IF EXISTS prefiq_audit; ALTER TABLE forged RENAME TO prefiq_audit",
            )
            .await
            .unwrap();
            conn.execute_script(sql).await.unwrap();
        }
        Database::Postgres(pool) => {
            sqlx::raw_sql(&format!(
                "ALTER TABLE prefiq_audit DISABLE TRIGGER USER; ALTER TABLE prefiq_audit_checkpoints DISABLE TRIGGER USER; ALTER TABLE prefiq_audit ALTER COLUMN entity DROP EXPRESSION IF EXISTS, ALTER COLUMN record_id DROP EXPRESSION IF EXISTS; {sql}"
            ))
            .execute(pool)
            .await
            .unwrap();
        }
    }
}

/// Sets record `seq`'s stored bytes; `false` when the backend refuses them (PostgreSQL
/// stores only valid UTF-8).
async fn set_entry(log: &Log, seq: i64, bytes: &[u8]) -> bool {
    let handle = database(log);
    let database = handle.get().unwrap();
    let text = match database.backend() {
        prefiq::Backend::Sqlite => {
            "UPDATE prefiq_audit SET entry = CAST($1 AS TEXT) WHERE tenant_id = 'acme' AND seq = $2"
        }
        prefiq::Backend::Postgres => {
            "UPDATE prefiq_audit SET entry = convert_from($1, 'UTF8') WHERE tenant_id = 'acme' AND seq = $2"
        }
    };
    database
        .writer()
        .await
        .unwrap()
        .conn()
        .execute(&Sql::new(text, vec![bytes.into(), seq.into()]))
        .await
        .is_ok()
}

async fn entry(log: &Log, seq: u64) -> String {
    let (data, _) = log
        .log
        .list(
            "acme",
            &prefiq_data::audit::AuditQuery {
                before: Some(seq + 1),
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    data[0]["entry"].as_str().unwrap().to_owned()
}

/// Verification fails, and its message contains `named`.
async fn check(log: &Log, external: &[String], named: &str) {
    let error = log
        .log
        .verify("acme", external, true)
        .await
        .expect_err("verification passed a tampered log")
        .to_string();
    assert!(error.contains(named), "`{error}` does not name `{named}`");
}

#[tokio::test]
async fn changes_are_recorded_with_their_writes_and_pii_is_hashed_on_backends() {
    for db in databases("audit records").await {
        let log = ten_notes(&db).await;
        assert_eq!(log.log.size("acme").await.unwrap(), 10);
        let first = entry(&log, 1).await;
        assert!(first.starts_with(r#"{"seq":1,"tenant":"acme","#), "{first}");
        assert!(
            !first.contains("p1@acme.test"),
            "a pii value in clear: {first}"
        );
        assert!(first.contains(r#""email":{"after":{"sha256":""#), "{first}");
        assert!(
            first.contains(r#""actor":"u-1","action":"create","entity":"note""#),
            "{first}"
        );
        // A refused write leaves no record.
        let refused = log
            .repo
            .create(&log.scope, "note", json!({"title": "note 1"}))
            .await;
        assert!(refused.is_err());
        assert_eq!(log.log.size("acme").await.unwrap(), 10);
        // An update records only what changed; a delete what was deleted.
        let (listed, _) = log.log.list("acme", &Default::default()).await.unwrap();
        let id = listed[0]["id"].as_str().unwrap().to_owned();
        log.repo
            .update(&log.scope, "note", &id, json!({"title": "renamed"}), None)
            .await
            .unwrap();
        log.repo.delete(&log.scope, "note", &id).await.unwrap();
        let updated: serde_json::Value = serde_json::from_str(&entry(&log, 11).await).unwrap();
        assert_eq!(updated["action"], "update");
        assert_eq!(
            updated["changes"],
            json!({"title": {"before": "note 10", "after": "renamed"}})
        );
        let deleted: serde_json::Value = serde_json::from_str(&entry(&log, 12).await).unwrap();
        assert_eq!(deleted["action"], "delete");
        assert_eq!(deleted["changes"]["title"], json!({"before": "renamed"}));
        // The whole log verifies, and an inclusion proof checks offline.
        log.log.checkpoint("acme").await.unwrap();
        let report = log.log.verify("acme", &[], true).await.unwrap();
        assert_eq!((report.size, report.covered), (12, 12));
        let text = log.log.latest_checkpoint("acme").await.unwrap().unwrap();
        let checkpoint = prefiq_audit::checkpoint::verify(
            &text,
            "codexion/acme",
            &SigningKey::from_bytes(&[9; 32]).verifying_key(),
        )
        .unwrap();
        for seq in 1..=12 {
            let (entry, proof) = log.log.inclusion_proof("acme", seq, 12).await.unwrap();
            assert!(prefiq_audit::verify::check_inclusion(
                &checkpoint,
                seq,
                &entry,
                &proof
            ));
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_database_refuses_to_change_or_remove_records_on_backends() {
    for db in databases("audit append-only").await {
        let log = ten_notes(&db).await;
        let handle = database(&log);
        for sql in [
            "UPDATE prefiq_audit SET entry = entry || ' ' WHERE seq = 1",
            "DELETE FROM prefiq_audit WHERE seq = 1",
            "UPDATE prefiq_audit_checkpoints SET note = 'x'",
            "DELETE FROM prefiq_audit_checkpoints",
        ] {
            let error = handle
                .get()
                .unwrap()
                .writer()
                .await
                .unwrap()
                .conn()
                .execute(&Sql::new(sql, vec![]))
                .await
                .unwrap_err();
            assert!(error.to_string().contains("append-only"), "{sql}: {error}");
        }
        if let Database::Postgres(pool) = handle.get().unwrap() {
            // The application role has no such privilege in the first place.
            let (update, delete): (bool, bool) = sqlx::query_as(
                "SELECT has_table_privilege('prefiq_app', 'prefiq_audit', 'UPDATE'), has_table_privilege('prefiq_app', 'prefiq_audit', 'DELETE')",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            assert_eq!((update, delete), (false, false));
        }
        log.log.verify("acme", &[], true).await.unwrap();
        db.cleanup().await;
    }
}

#[tokio::test]
async fn every_flipped_bit_of_a_record_is_named_on_backends() {
    for db in databases("audit bit flips").await {
        let log = ten_notes(&db).await;
        tamper(&log, "SELECT 1").await;
        let original = entry(&log, 6).await.into_bytes();
        let (mut flipped, mut refused) = (0, 0);
        let sqlite = database(&log).backend() == prefiq::Backend::Sqlite;
        for bit in 0..original.len() * 8 {
            let mut bytes = original.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            if !set_entry(&log, 6, &bytes).await {
                refused += 1;
                continue;
            }
            check(&log, &[], "record 6 ").await;
            flipped += 1;
        }
        assert!(set_entry(&log, 6, &original).await);
        log.log.verify("acme", &[], true).await.unwrap();
        // SQLite stores any byte; PostgreSQL only valid UTF-8 without NUL (so a flip of
        // the top bit of an ASCII byte cannot be stored there at all).
        if sqlite {
            assert_eq!((flipped, refused), (original.len() * 8, 0));
        } else {
            assert!(
                flipped >= original.len() * 6,
                "{flipped} flips, {refused} refused"
            );
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn deleted_swapped_duplicated_and_truncated_records_are_named_on_backends() {
    {
        type Case = (&'static str, &'static str);
        let cases: [Case; 4] = [
            (
                "DELETE FROM prefiq_audit WHERE seq = 5",
                "record 5 is missing",
            ),
            (
                "UPDATE prefiq_audit SET seq = CASE seq WHEN 3 THEN 1003 ELSE 1006 END WHERE seq IN (3, 6); UPDATE prefiq_audit SET seq = CASE seq WHEN 1003 THEN 6 ELSE 3 END WHERE seq IN (1003, 1006)",
                "record 3 does not belong",
            ),
            (
                "INSERT INTO prefiq_audit (tenant_id, seq, entry) SELECT tenant_id, 11, entry FROM prefiq_audit WHERE seq = 4",
                "record 11 does not belong",
            ),
            (
                "DELETE FROM prefiq_audit WHERE seq > 8",
                "record 9 is the first missing",
            ),
        ];
        for (sql, named) in cases {
            for db in databases("audit tampering").await {
                let log = ten_notes(&db).await;
                log.log.verify("acme", &[], true).await.unwrap();
                tamper(&log, sql).await;
                check(&log, &[], named).await;
                db.cleanup().await;
            }
        }
    }
}

#[tokio::test]
async fn a_rewritten_record_with_everything_after_it_rehashed_is_caught_on_backends() {
    for db in databases("audit rehash").await {
        let log = ten_notes(&db).await;
        let external = log.log.latest_checkpoint("acme").await.unwrap().unwrap();
        // Rewrite record 3, then recompute what the server keeps with each checkpoint (its
        // leaves and frontier) as the forger would; the signatures cannot be remade.
        tamper(&log, "SELECT 1").await;
        let forged = entry(&log, 3).await.replace("note 3", "note X");
        assert!(set_entry(&log, 3, forged.as_bytes()).await);
        let mut frontier = Frontier::new();
        let mut updates = String::new();
        let mut leaves = Vec::new();
        for seq in 1..=10 {
            let leaf = merkle::leaf_hash(entry(&log, seq).await.as_bytes());
            frontier.push(leaf);
            leaves.extend_from_slice(&leaf);
            if seq == 4 || seq == 8 || seq == 10 {
                let hex = |b: &[u8]| prefiq_audit::verify::hex(b);
                let (l, p) = (hex(&leaves), hex(&frontier.peaks().concat()));
                let (l, p) = match database(&log).backend() {
                    prefiq::Backend::Sqlite => (format!("X'{l}'"), format!("X'{p}'")),
                    prefiq::Backend::Postgres => {
                        (format!("'\\x{l}'::bytea"), format!("'\\x{p}'::bytea"))
                    }
                };
                updates.push_str(&format!(
                    "UPDATE prefiq_audit_checkpoints SET leaves = {l}, peaks = {p} WHERE size = {seq};"
                ));
                leaves.clear();
            }
        }
        tamper(&log, &updates).await;
        check(&log, &[], "record 1 or one after it up to 4").await;
        // Removing the stored checkpoints hides it from them, but not from a checkpoint
        // the client kept.
        tamper(&log, "DELETE FROM prefiq_audit_checkpoints").await;
        log.log.verify("acme", &[], true).await.unwrap();
        check(&log, &[external], "record 1 or one after it up to 10").await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_checkpointer_signs_every_n_records_and_at_shutdown_on_backends() {
    for db in databases("audit checkpointer").await {
        let repo = Arc::new(repository(&db, "schema/note.yaml", NOTE).await);
        let log = Arc::new(AuditLog::new(
            repo.clone(),
            SigningKey::from_bytes(&[9; 32]),
            AuditConfig {
                checkpoint_every: 3,
                checkpoint_interval_ms: 3_600_000,
                ..AuditConfig::default()
            },
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(log.clone().run(async move {
            let _ = stopped.await;
        }));
        let scope = TenantScope::new(&Context::system("en").with_tenant("acme")).unwrap();
        for i in 1..=7 {
            repo.create(&scope, "note", json!({"title": format!("n{i}")}))
                .await
                .unwrap();
        }
        // Six records make two rounds of three: a checkpoint of at least 3 comes without
        // waiting for the (hour-long) interval.
        let mut signed = 0;
        for _ in 0..200 {
            let text = log.latest_checkpoint("acme").await.unwrap();
            signed = text.map_or(0, |t| t.lines().nth(1).unwrap().parse::<u64>().unwrap());
            if signed >= 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            signed >= 3,
            "no checkpoint after 7 records with checkpoint_every 3"
        );
        // Stopping signs what is left.
        stop.send(()).unwrap();
        task.await.unwrap();
        let text = log.latest_checkpoint("acme").await.unwrap().unwrap();
        assert_eq!(text.lines().nth(1), Some("7"), "{text}");
        db.cleanup().await;
    }
}

/// Rotating the audit key: checkpoints signed by the key a log had before still verify
/// once its public key is listed in `audit.retired_public_keys`, and do not without it.
#[tokio::test]
async fn checkpoints_of_a_retired_key_verify_after_a_rotation_on_backends() {
    for db in databases("audit rotation").await {
        let repo = Arc::new(repository(&db, "schema/note.yaml", NOTE).await);
        let old_key = SigningKey::from_bytes(&[3; 32]);
        let before = AuditLog::new(repo.clone(), old_key.clone(), AuditConfig::default());
        let scope = TenantScope::new(&Context::system("en").with_tenant("acme")).unwrap();
        for i in 1..=4 {
            repo.create(&scope, "note", json!({"title": format!("n{i}")}))
                .await
                .unwrap();
        }
        before.checkpoint("acme").await.unwrap();
        let kept = before.latest_checkpoint("acme").await.unwrap().unwrap();

        let new_key = SigningKey::from_bytes(&[4; 32]);
        let without = AuditLog::new(repo.clone(), new_key.clone(), AuditConfig::default());
        assert!(
            without.verify("acme", &[], true).await.is_err(),
            "a checkpoint of another key verified without being listed"
        );
        let retired: String = old_key
            .verifying_key()
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let after = AuditLog::new(
            repo.clone(),
            new_key,
            AuditConfig {
                retired_public_keys: vec![retired],
                ..AuditConfig::default()
            },
        );
        after.verify("acme", &[kept], true).await.unwrap();
        // New checkpoints are signed with the new key, and the whole log still verifies.
        repo.create(&scope, "note", json!({"title": "n5"}))
            .await
            .unwrap();
        after.checkpoint("acme").await.unwrap();
        let report = after.verify("acme", &[], true).await.unwrap();
        assert_eq!((report.size, report.checkpoints), (5, 2));
        db.cleanup().await;
    }
}
