//! The queue's storage, on SQLite and (when configured) PostgreSQL: claim order and
//! per-tenant fairness, unique jobs, scheduled jobs, retries to dead, leases that run out,
//! release, cancel and retry, and jobs enqueued in a transaction that rolls back.
#![allow(clippy::unwrap_used)]

use prefiq_data::jobs::{self, ClaimedJob, Failure, NewJob};
use prefiq_data::testing::{TestDatabase, databases, repository};
use prefiq_data::{Database, DatabaseHandle};
use serde_json::json;

const NOTE: &str = "name: note\nfields:\n  - {name: body, type: data}\n";

async fn database(db: &TestDatabase) -> std::sync::Arc<DatabaseHandle> {
    repository(db, "note.yaml", NOTE).await.main_database()
}

fn job(tenant: &str, n: i64) -> NewJob {
    NewJob::new("test.noop", tenant, json!({"n": n}))
}

async fn enqueue(database: &Database, jobs_to_add: &[NewJob]) -> Vec<Option<i64>> {
    let mut tx = database.begin().await.unwrap();
    let ids = jobs::enqueue(&mut tx.conn(), jobs_to_add).await.unwrap();
    tx.commit().await.unwrap();
    ids
}

async fn claim(database: &Database, worker: &str, limit: i64, lease_ms: i64) -> Vec<ClaimedJob> {
    let mut tx = database.begin().await.unwrap();
    let claimed = jobs::claim(&mut tx.conn(), "default", worker, limit, lease_ms)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    claimed
}

async fn state(database: &Database, id: i64) -> (String, i64) {
    let mut reader = database.reader().await.unwrap();
    let row = jobs::get(&mut reader.conn(), id).await.unwrap().unwrap();
    (row.state, row.attempts)
}

/// Runs `body` in a write transaction and commits.
macro_rules! write {
    ($database:expr, |$conn:ident| $body:expr) => {{
        let mut tx = $database.begin().await.unwrap();
        let result = {
            let $conn = &mut tx.conn();
            $body.await.unwrap()
        };
        tx.commit().await.unwrap();
        result
    }};
}

#[tokio::test]
async fn a_late_tenant_starts_level_with_the_head_of_the_queue() {
    for db in databases("job fairness").await {
        let handle = database(&db).await;
        let database = handle.get().unwrap();
        let busy: Vec<NewJob> = (0..2_000).map(|n| job("busy", n)).collect();
        enqueue(database, &busy).await;
        let quiet: Vec<NewJob> = (0..10).map(|n| job("quiet", n)).collect();
        enqueue(database, &quiet).await;
        // The ten quiet jobs interleave with the busy tenant's first ten.
        let first = claim(database, "w", 20, 60_000).await;
        let tenants: Vec<&str> = first.iter().map(|j| j.tenant.as_str()).collect();
        assert_eq!(
            tenants.iter().filter(|t| **t == "quiet").count(),
            10,
            "{tenants:?}"
        );
        // A tenant that arrives after 500 busy jobs ran starts at the head, not behind
        // the 1,490 busy jobs still queued.
        for _ in 0..5 {
            claim(database, "w", 100, 60_000).await;
        }
        enqueue(database, &[job("late", 0), job("late", 1)]).await;
        let next = claim(database, "w", 4, 60_000).await;
        let late = next.iter().filter(|j| j.tenant == "late").count();
        assert_eq!(
            late,
            2,
            "{:?}",
            next.iter().map(|j| &j.tenant).collect::<Vec<_>>()
        );
        // Priority comes before fairness.
        let mut urgent = job("busy", 9_999);
        urgent.priority = -1;
        let ids = enqueue(database, &[urgent]).await;
        assert_eq!(claim(database, "w", 1, 60_000).await[0].id, ids[0].unwrap());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn unique_jobs_are_dropped_within_their_window_of_scheduled_time() {
    for db in databases("unique jobs").await {
        let handle = database(&db).await;
        let database = handle.get().unwrap();
        let hour = 3_600_000;
        let at = |ms: i64| {
            let mut j = job("acme", 0);
            j.unique = Some(("daily-report".into(), hour));
            j.run_at_ms = Some(ms);
            j
        };
        let base = (jobs::now_ms() / hour + 1) * hour;
        // Two replicas enqueueing the same scheduled run, and a later one in the window.
        let ids = enqueue(database, &[at(base), at(base), at(base + 60_000)]).await;
        assert!(ids[0].is_some());
        assert_eq!(&ids[1..], &[None, None]);
        // The next window is a new job; so is another tenant's.
        let mut other = at(base);
        other.tenant = "globex".into();
        let ids = enqueue(database, &[at(base + hour), other]).await;
        assert!(ids.iter().all(Option::is_some), "{ids:?}");
        // Still dropped in a later call, and after the job finished.
        let now = jobs::now_ms();
        let ids = enqueue(database, &[at(now), at(now)]).await;
        assert_eq!(ids[1], None);
        let claimed = claim(database, "w", 10, 60_000).await;
        assert_eq!(claimed.len(), 1, "only the job due now");
        write!(database, |conn| jobs::complete(conn, "w", &[claimed[0].id]));
        assert_eq!(enqueue(database, &[at(now)]).await, vec![None]);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn failed_attempts_retry_then_die_and_an_operator_can_retry_them() {
    for db in databases("job retries").await {
        let handle = database(&db).await;
        let database = handle.get().unwrap();
        let mut flaky = job("acme", 0);
        flaky.max_attempts = 2;
        let id = enqueue(database, &[flaky]).await[0].unwrap();
        let fail = |retry_at_ms| Failure {
            id,
            error: "boom".into(),
            retry_at_ms,
        };
        let claimed = claim(database, "w", 1, 60_000).await;
        assert_eq!(claimed[0].attempt, 1);
        // A retry in the future is not claimable until it is due and promoted.
        let soon = jobs::now_ms() + 50;
        write!(database, |conn| jobs::fail(conn, "w", &[fail(Some(soon))]));
        assert_eq!(state(database, id).await, ("scheduled".into(), 1));
        assert!(claim(database, "w", 1, 60_000).await.is_empty());
        tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        assert_eq!(write!(database, |conn| jobs::promote_due(conn)), 1);
        let claimed = claim(database, "w", 1, 60_000).await;
        assert_eq!(claimed[0].attempt, 2);
        write!(database, |conn| jobs::fail(conn, "w", &[fail(None)]));
        assert_eq!(state(database, id).await, ("dead".into(), 2));
        let mut reader = database.reader().await.unwrap();
        let row = jobs::get(&mut reader.conn(), id).await.unwrap().unwrap();
        assert_eq!(row.last_error.as_deref(), Some("boom"));
        drop(reader);
        assert!(write!(database, |conn| jobs::retry(conn, id)));
        let claimed = claim(database, "w", 1, 60_000).await;
        assert_eq!((claimed[0].attempt, claimed[0].max_attempts), (3, 3));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_job_whose_lease_ran_out_runs_again_and_its_first_worker_cannot_finish_it() {
    for db in databases("job leases").await {
        let handle = database(&db).await;
        let database = handle.get().unwrap();
        let id = enqueue(database, &[job("acme", 0)]).await[0].unwrap();
        claim(database, "killed", 1, 1).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(write!(database, |conn| jobs::rescue_expired(conn)), 1);
        assert_eq!(state(database, id).await, ("queued".into(), 1));
        let claimed = claim(database, "alive", 1, 60_000).await;
        assert_eq!(claimed[0].id, id);
        // The first worker comes back: its outcome no longer counts.
        assert_eq!(
            write!(database, |conn| jobs::complete(conn, "killed", &[id])),
            0
        );
        assert_eq!(
            write!(database, |conn| jobs::heartbeat(
                conn,
                "killed",
                &[id],
                60_000
            )),
            0
        );
        assert_eq!(
            write!(database, |conn| jobs::heartbeat(
                conn,
                "alive",
                &[id],
                60_000
            )),
            1
        );
        assert_eq!(
            write!(database, |conn| jobs::complete(conn, "alive", &[id])),
            1
        );
        assert_eq!(state(database, id).await, ("succeeded".into(), 2));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn released_jobs_go_back_uncounted_and_cancelled_ones_never_finish() {
    for db in databases("job release").await {
        let handle = database(&db).await;
        let database = handle.get().unwrap();
        let ids = enqueue(database, &[job("acme", 0), job("acme", 1)]).await;
        let (a, b) = (ids[0].unwrap(), ids[1].unwrap());
        claim(database, "w", 2, 60_000).await;
        assert_eq!(write!(database, |conn| jobs::release(conn, "w", &[a])), 1);
        assert_eq!(state(database, a).await, ("queued".into(), 0));
        assert!(write!(database, |conn| jobs::cancel(conn, b)));
        assert_eq!(write!(database, |conn| jobs::complete(conn, "w", &[b])), 0);
        assert_eq!(state(database, b).await.0, "cancelled");
        assert!(!write!(database, |conn| jobs::cancel(conn, b)));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_job_enqueued_in_a_transaction_that_rolls_back_does_not_exist() {
    for db in databases("jobs in a transaction").await {
        let handle = database(&db).await;
        let database = handle.get().unwrap();
        let mut tx = database.begin().await.unwrap();
        jobs::enqueue(&mut tx.conn(), &[job("acme", 0)])
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert!(claim(database, "w", 10, 60_000).await.is_empty());
        let mut reader = database.reader().await.unwrap();
        assert!(
            jobs::list(&mut reader.conn(), None, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn queue_stats_count_states_and_age() {
    for db in databases("queue stats").await {
        let handle = database(&db).await;
        let database = handle.get().unwrap();
        let mut later = job("acme", 2);
        later.run_at_ms = Some(jobs::now_ms() + 60_000);
        enqueue(database, &[job("acme", 0), job("acme", 1), later]).await;
        claim(database, "w", 1, 60_000).await;
        let mut reader = database.reader().await.unwrap();
        let stats = jobs::queue_stats(&mut reader.conn()).await.unwrap();
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].queue, "default");
        let mut states = stats[0].states.clone();
        states.sort();
        assert_eq!(
            states,
            vec![
                ("queued".into(), 1),
                ("running".into(), 1),
                ("scheduled".into(), 1)
            ]
        );
        assert!(stats[0].oldest_queued_ms.is_some());
        db.cleanup().await;
    }
}
