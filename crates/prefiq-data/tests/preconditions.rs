//! `If-Match` on deletes and status changes is checked by the repository itself, in the
//! write: an expected version other than the stored one is `PreconditionFailed`, on SQLite
//! and PostgreSQL.
#![allow(clippy::unwrap_used)]

use prefiq::Context;
use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::testing::{databases, repository};
use serde_json::json;

const NOTE: &str = "name: note\nsubmittable: true\nfields:\n  - {name: title, type: data}\n";

/// The version an outcome reports as stored, or `Ok` when the write went through.
fn check(outcome: Result<(), RepoError>, expected: Result<(), Option<i64>>) {
    match (outcome, expected) {
        (Ok(()), Ok(())) => {}
        (Err(RepoError::PreconditionFailed { actual, .. }), Err(stored)) => {
            assert_eq!(actual, stored);
        }
        (outcome, expected) => panic!("{outcome:?}, expected {expected:?}"),
    }
}

#[tokio::test]
async fn stale_if_match_on_delete_submit_and_cancel_is_refused_on_backends() {
    for db in databases("data_preconditions").await {
        let repository = repository(&db, "schema/note.yaml", NOTE).await;
        let scope = TenantScope::new(&Context::system("en").with_tenant("acme")).unwrap();
        let note = repository
            .create(&scope, "note", json!({"title": "a"}))
            .await
            .unwrap();
        let id = note["id"].as_str().unwrap().to_owned();
        repository
            .update(&scope, "note", &id, json!({"title": "b"}), None)
            .await
            .unwrap();
        let drop_value = |r: Result<serde_json::Value, RepoError>| r.map(|_| ());
        check(
            repository.delete_at(&scope, "note", &id, Some(1)).await,
            Err(Some(2)),
        );
        check(
            drop_value(repository.submit_at(&scope, "note", &id, Some(1)).await),
            Err(Some(2)),
        );
        check(
            drop_value(repository.submit_at(&scope, "note", &id, Some(2)).await),
            Ok(()),
        );
        check(
            drop_value(repository.cancel_at(&scope, "note", &id, Some(2)).await),
            Err(Some(3)),
        );
        check(
            drop_value(repository.cancel_at(&scope, "note", &id, Some(3)).await),
            Ok(()),
        );
        check(
            repository.delete_at(&scope, "note", &id, Some(4)).await,
            Ok(()),
        );
    }
}
