//! Two replicas on one database (each with its own connections, runner and scheduler):
//! 10,000 unique jobs that both enqueue run once each, none twice to completion, and a
//! schedule ticking in both fires once per due second. On SQLite and (when configured)
//! PostgreSQL, where claims skip what the other replica has locked.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prefiq_data::jobs::NewJob;
use prefiq_data::testing::{databases, repository};
use prefiq_worker::runner::Runner;
use prefiq_worker::schedule::{CatchUp, Schedule, Scheduler, Schedules};
use prefiq_worker::{Databases, JobHandler, JobHandlers, JobInput, Jobs, JobsConfig, QueueConfig};
use serde_json::json;

const NOTE: &str = "name: note\nfields:\n  - {name: body, type: data}\n";
const JOBS: usize = 10_000;

/// Counts completions per key, and which replica ran each.
#[derive(Default)]
struct Counter {
    runs: Mutex<HashMap<String, Vec<&'static str>>>,
    replica: &'static str,
}

#[async_trait::async_trait]
impl JobHandler for Counter {
    fn kind(&self) -> &str {
        "test.count"
    }

    async fn run(&self, job: &JobInput) -> Result<(), String> {
        let key = job.payload["key"].as_str().unwrap_or("tick").to_owned();
        self.runs
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .push(self.replica);
        Ok(())
    }
}

fn unique_job(n: usize) -> NewJob {
    let mut job = NewJob::new("test.count", "acme", json!({"key": format!("k{n}")}));
    job.unique = Some((format!("k{n}"), 3_600_000));
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_run_each_unique_job_once_and_each_scheduled_second_once() {
    for db in databases("two replicas").await {
        let replicas = [
            Arc::new(repository(&db, "note.yaml", NOTE).await),
            Arc::new(repository(&db, "note.yaml", NOTE).await),
        ];
        let counters = [
            Arc::new(Counter {
                replica: "a",
                ..Counter::default()
            }),
            Arc::new(Counter {
                replica: "b",
                ..Counter::default()
            }),
        ];
        let schedule = Arc::new(Schedule {
            module: "test".into(),
            name: "every_second".into(),
            cron: "* * * * * *".into(),
            timezone: None,
            kind: "test.count".into(),
            payload: json!({"key": "tick"}),
            queue: "ticks".into(),
            catch_up: CatchUp::None,
            timeout_ms: None,
        });
        let schedules = Schedules::compile(&[schedule], "UTC").unwrap();
        let mut stops = Vec::new();
        let mut tasks = Vec::new();
        for (repo, counter) in replicas.iter().zip(&counters) {
            let databases = Databases::of(repo);
            let jobs = Jobs::new(databases.clone());
            let mut config = JobsConfig {
                poll_ms: 20,
                claim_batch: 100,
                ..JobsConfig::default()
            };
            config
                .queues
                .insert("default".into(), QueueConfig { concurrency: 8 });
            config
                .queues
                .insert("ticks".into(), QueueConfig { concurrency: 1 });
            let handlers = Arc::new(JobHandlers::new(vec![counter.clone()]));
            let runner = Runner::new(databases, handlers, config, None, Duration::from_secs(2));
            let scheduler = Scheduler::new(repo.main_database(), schedules.0.clone());
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let enqueued = jobs.enqueued();
            tasks.push(tokio::spawn(runner.run(
                repo.commits(),
                enqueued.clone(),
                stopped.clone(),
            )));
            tasks.push(tokio::spawn(scheduler.run(enqueued, stopped)));
            stops.push(stop);
        }
        // Both replicas enqueue the same 10,000 unique jobs, in batches, at once.
        let enqueue = |repo: Arc<prefiq_data::entity::repo::Repository>| async move {
            let jobs = Jobs::new(Databases::of(&repo));
            for chunk in (0..JOBS).collect::<Vec<_>>().chunks(1_000) {
                jobs.enqueue(chunk.iter().map(|n| unique_job(*n)).collect())
                    .await
                    .unwrap();
            }
        };
        let (a, b) = tokio::join!(enqueue(replicas[0].clone()), enqueue(replicas[1].clone()));
        let ((), ()) = (a, b);
        let started = tokio::time::Instant::now();
        let total = || {
            counters
                .iter()
                .map(|c| {
                    c.runs
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(k, _)| *k != "tick")
                        .map(|(_, v)| v.len())
                        .sum::<usize>()
                })
                .sum::<usize>()
        };
        while total() < JOBS {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "ran {} of {JOBS}",
                total()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let the scheduler tick a few more seconds while both replicas run.
        tokio::time::sleep(Duration::from_millis(3_200)).await;
        for stop in &stops {
            stop.send(true).unwrap();
        }
        for task in tasks {
            task.await.unwrap();
        }
        let mut runs: HashMap<String, Vec<&'static str>> = HashMap::new();
        for counter in &counters {
            for (key, by) in counter.runs.lock().unwrap().iter() {
                runs.entry(key.clone()).or_default().extend(by);
            }
        }
        let ticks = runs.remove("tick").unwrap_or_default();
        assert_eq!(runs.len(), JOBS);
        let twice: Vec<_> = runs
            .iter()
            .filter(|(_, by)| by.len() != 1)
            .take(5)
            .collect();
        assert!(twice.is_empty(), "jobs that ran more than once: {twice:?}");
        let shares: Vec<usize> = counters
            .iter()
            .map(|c| c.runs.lock().unwrap().values().flatten().count())
            .collect();
        assert!(
            shares.iter().all(|n| *n > 0),
            "both replicas ran jobs: {shares:?}"
        );
        // The schedule: one job per due second, however many replicas ticked.
        let jobs = Jobs::new(Databases::of(&replicas[0]));
        let scheduled: Vec<i64> = jobs
            .list(Some("ticks"), None, 1_000)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, r)| r.run_at_ms)
            .collect();
        let mut seconds = scheduled.clone();
        seconds.sort_unstable();
        seconds.dedup();
        assert!(
            scheduled.len() >= 3,
            "a schedule every second ticked {} times",
            scheduled.len()
        );
        assert_eq!(
            scheduled.len(),
            seconds.len(),
            "one job per due second: {scheduled:?}"
        );
        assert!(
            ticks.len() <= scheduled.len(),
            "ticks ran {} times for {} due seconds",
            ticks.len(),
            scheduled.len()
        );
        db.cleanup().await;
    }
}
