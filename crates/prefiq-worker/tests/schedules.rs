//! Schedules against a real database (SQLite, and PostgreSQL when configured): two
//! schedulers ticking at the same moments (two replicas) enqueue each due run once, a
//! schedule starts from when it is first seen, and runs missed during downtime follow the
//! catch-up policy.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use prefiq_data::testing::{databases, repository};
use prefiq_worker::schedule::{CatchUp, Schedule, Scheduler, Schedules};
use prefiq_worker::{Databases, Jobs};
use serde_json::json;

const NOTE: &str = "name: note\nfields:\n  - {name: body, type: data}\n";

fn ms(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn every_minute(name: &str, catch_up: CatchUp) -> Arc<Schedule> {
    Arc::new(Schedule {
        module: "m".into(),
        name: name.into(),
        cron: "* * * * *".into(),
        timezone: None,
        kind: "m.tick".into(),
        payload: json!({"schedule": name}),
        queue: "default".into(),
        catch_up,
        timeout_ms: None,
    })
}

#[tokio::test]
async fn two_replicas_enqueue_each_due_run_once_and_missed_runs_follow_the_policy() {
    for db in databases("schedules").await {
        let repo = repository(&db, "note.yaml", NOTE).await;
        let declared = vec![
            every_minute("all", CatchUp::All),
            every_minute("one", CatchUp::One),
            every_minute("none", CatchUp::None),
        ];
        let schedules = Schedules::compile(&declared, "UTC").unwrap();
        let a = Scheduler::new(repo.main_database(), schedules.0.clone());
        let b = Scheduler::new(repo.main_database(), schedules.0.clone());
        // First sight: nothing is due yet.
        assert_eq!(a.tick(ms("2026-12-07T10:00:30Z")).await.unwrap(), 0);
        assert_eq!(b.tick(ms("2026-12-07T10:00:30Z")).await.unwrap(), 0);
        // Both replicas tick past 10:01 and 10:02.
        for now in ["2026-12-07T10:01:00.005Z", "2026-12-07T10:02:00.004Z"] {
            a.tick(ms(now)).await.unwrap();
            b.tick(ms(now)).await.unwrap();
        }
        // Down for five minutes, then both come back.
        a.tick(ms("2026-12-07T10:07:10Z")).await.unwrap();
        b.tick(ms("2026-12-07T10:07:10Z")).await.unwrap();

        let jobs = Jobs::new(Databases::of(&repo));
        let rows = jobs.list(None, None, 1_000).await.unwrap();
        let runs = |name: &str| {
            let mut due: Vec<String> = rows
                .iter()
                .filter(|(_, r)| r.payload["schedule"] == name)
                .map(|(_, r)| {
                    jiff::Timestamp::from_millisecond(r.run_at_ms)
                        .unwrap()
                        .to_string()
                })
                .collect();
            due.sort();
            due
        };
        assert_eq!(
            runs("all"),
            [
                "2026-12-07T10:01:00Z",
                "2026-12-07T10:02:00Z",
                "2026-12-07T10:03:00Z",
                "2026-12-07T10:04:00Z",
                "2026-12-07T10:05:00Z",
                "2026-12-07T10:06:00Z",
                "2026-12-07T10:07:00Z"
            ]
        );
        assert_eq!(
            runs("one"),
            [
                "2026-12-07T10:01:00Z",
                "2026-12-07T10:02:00Z",
                "2026-12-07T10:07:00Z"
            ]
        );
        assert_eq!(
            runs("none"),
            [
                "2026-12-07T10:01:00Z",
                "2026-12-07T10:02:00Z",
                "2026-12-07T10:07:00Z"
            ]
        );
        let states = a.states().await.unwrap();
        assert!(
            states
                .iter()
                .all(|(_, last)| *last == Some(ms("2026-12-07T10:07:00Z")))
        );
        db.cleanup().await;
    }
}
