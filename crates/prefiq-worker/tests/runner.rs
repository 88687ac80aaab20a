//! The job runner against a real database (SQLite, and PostgreSQL when configured):
//! handlers run with their context; an error, a panic or a timeout is a failed attempt that
//! retries and then dies while the runner keeps going; a shutdown lets running jobs finish
//! within the drain time and gives back the rest.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prefiq_data::jobs::{JobRow, NewJob};
use prefiq_data::testing::{databases, repository};
use prefiq_worker::runner::Runner;
use prefiq_worker::{Databases, JobHandler, JobHandlers, JobInput, Jobs, JobsConfig};
use serde_json::{Value, json};

const NOTE: &str = "name: note\nfields:\n  - {name: body, type: data}\n";

/// Records what it ran; fails while `payload.fail_until` is above the attempt; panics or
/// sleeps when asked.
#[derive(Default)]
struct Probe {
    ran: Mutex<Vec<(Option<String>, Value, i64)>>,
}

#[async_trait::async_trait]
impl JobHandler for Probe {
    fn kind(&self) -> &str {
        "test.probe"
    }

    async fn run(&self, job: &JobInput) -> Result<(), String> {
        self.ran.lock().unwrap().push((
            job.context.tenant.clone(),
            job.payload.clone(),
            job.attempt,
        ));
        if let Some(ms) = job.payload.get("sleep_ms").and_then(Value::as_u64) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if job.payload.get("panic").is_some() {
            panic!("the probe was told to panic");
        }
        let fail_until = job
            .payload
            .get("fail_until")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if job.attempt < fail_until {
            return Err(format!("attempt {} fails", job.attempt));
        }
        Ok(())
    }
}

fn probe_job(tenant: &str, payload: Value) -> NewJob {
    let mut job = NewJob::new("test.probe", tenant, payload);
    job.max_attempts = 3;
    job
}

fn config() -> JobsConfig {
    JobsConfig {
        poll_ms: 20,
        backoff_ms: 10,
        max_backoff_ms: 40,
        lease_ms: 5_000,
        ..JobsConfig::default()
    }
}

/// Waits until `check` holds of the jobs, for at most 15 s.
async fn until(
    jobs: &Jobs,
    what: &str,
    check: impl Fn(&[(String, JobRow)]) -> bool,
) -> Vec<(String, JobRow)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows = jobs.list(None, None, 1_000).await.unwrap();
        if check(&rows) {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state_of(rows: &[(String, JobRow)], n: i64) -> Option<&JobRow> {
    rows.iter().map(|(_, r)| r).find(|r| r.payload["n"] == n)
}

#[tokio::test]
async fn jobs_run_retry_and_die_and_a_panic_or_a_timeout_leaves_the_runner_running() {
    for db in databases("job runner").await {
        let repo = repository(&db, "note.yaml", NOTE).await;
        let databases = Databases::of(&repo);
        let probe = Arc::new(Probe::default());
        let handlers = Arc::new(JobHandlers::new(vec![probe.clone()]));
        let jobs = Jobs::new(databases.clone());
        let runner = Runner::new(databases, handlers, config(), None, Duration::from_secs(1));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(runner.run(repo.commits(), jobs.enqueued(), stopped));

        let mut timed = probe_job("acme", json!({"n": 4, "sleep_ms": 5_000}));
        timed.timeout_ms = 50;
        timed.max_attempts = 1;
        let mut unknown = NewJob::new("test.nobody", "acme", json!({"n": 5}));
        unknown.max_attempts = 1;
        jobs.enqueue(vec![
            probe_job("acme", json!({"n": 1})),
            probe_job("globex", json!({"n": 2, "fail_until": 3})),
            probe_job("acme", json!({"n": 3, "panic": true})),
            timed,
            unknown,
        ])
        .await
        .unwrap();
        let rows = until(&jobs, "every job to finish", |rows| {
            rows.len() == 5
                && rows
                    .iter()
                    .all(|(_, r)| r.state == "succeeded" || r.state == "dead")
        })
        .await;
        let check = |n: i64, state: &str, attempts: i64, error: Option<&str>| {
            let row = state_of(&rows, n).unwrap();
            assert_eq!(
                (row.state.as_str(), row.attempts),
                (state, attempts),
                "job {n}: {row:?}"
            );
            match error {
                Some(part) => assert!(
                    row.last_error.as_deref().unwrap_or_default().contains(part),
                    "job {n}: {:?}",
                    row.last_error
                ),
                None => assert_eq!(row.last_error, None, "job {n}"),
            }
        };
        check(1, "succeeded", 1, None);
        check(2, "succeeded", 3, None);
        check(3, "dead", 3, Some("the probe was told to panic"));
        check(4, "dead", 1, Some("timeout of 50 ms"));
        check(
            5,
            "dead",
            1,
            Some("no handler runs jobs of kind `test.nobody`"),
        );
        // The handler ran with the job's tenant.
        let ran = probe.ran.lock().unwrap().clone();
        assert!(
            ran.iter()
                .any(|(t, p, _)| t.as_deref() == Some("globex") && p["n"] == 2)
        );
        // After all that the runner still runs jobs.
        jobs.enqueue(vec![probe_job("acme", json!({"n": 6}))])
            .await
            .unwrap();
        until(&jobs, "a job after the failures", |rows| {
            state_of(rows, 6).is_some_and(|r| r.state == "succeeded")
        })
        .await;
        stop.send(true).unwrap();
        task.await.unwrap();
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_shutdown_lets_short_jobs_finish_and_gives_back_long_ones() {
    for db in databases("job drain").await {
        let repo = repository(&db, "note.yaml", NOTE).await;
        let databases = Databases::of(&repo);
        let probe = Arc::new(Probe::default());
        let handlers = Arc::new(JobHandlers::new(vec![probe.clone()]));
        let jobs = Jobs::new(databases.clone());
        let runner = Runner::new(
            databases,
            handlers,
            config(),
            None,
            Duration::from_millis(400),
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(runner.run(repo.commits(), jobs.enqueued(), stopped));
        jobs.enqueue(vec![
            probe_job("acme", json!({"n": 1, "sleep_ms": 100})),
            probe_job("acme", json!({"n": 2, "sleep_ms": 10_000})),
        ])
        .await
        .unwrap();
        until(&jobs, "both jobs to start", |rows| {
            rows.iter().filter(|(_, r)| r.state == "running").count() == 2
        })
        .await;
        stop.send(true).unwrap();
        task.await.unwrap();
        let rows = jobs.list(None, None, 10).await.unwrap();
        let short = state_of(&rows, 1).unwrap();
        let long = state_of(&rows, 2).unwrap();
        assert_eq!(short.state, "succeeded", "{short:?}");
        assert_eq!(
            (long.state.as_str(), long.attempts),
            ("queued", 0),
            "{long:?}"
        );
        assert_eq!(long.locked_by, None);
        db.cleanup().await;
    }
}
