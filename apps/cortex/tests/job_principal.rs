//! A job that acts for a user runs as that user, as a request of theirs would now: its
//! handler gets the user's current principal, and the repository authorizes it. On SQLite
//! and (when configured) PostgreSQL: a System Manager's job may write a `schedule`, a
//! clerk's job may not (the attempt fails with the repository's refusal), and the job of a
//! user disabled since it was enqueued fails without running.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prefiq::{KernelError, RegisterContext, ServiceProvider};
use prefiq_data::entity::repo::{Repository, TenantScope};
use prefiq_data::jobs::NewJob;
use prefiq_data::testing::databases;
use prefiq_worker::{JobHandler, JobInput, Jobs};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// The roles each run saw.
type Seen = Arc<Mutex<Vec<Option<Vec<String>>>>>;

/// Writes a schedule as whoever the job acts for.
struct WriteSchedule {
    repository: Arc<std::sync::OnceLock<Arc<Repository>>>,
    seen: Seen,
}

#[prefiq::async_trait]
impl JobHandler for WriteSchedule {
    fn kind(&self) -> &str {
        "test.write_schedule"
    }

    async fn run(&self, job: &JobInput) -> Result<(), String> {
        self.seen.lock().unwrap().push(
            job.context
                .principal
                .as_ref()
                .map(|principal| principal.roles.clone()),
        );
        let scope = TenantScope::new(&job.context).map_err(|e| e.to_string())?;
        let repository = self.repository.get().ok_or("not booted")?;
        repository
            .create(
                &scope,
                "schedule",
                json!({"title": "from a job", "cron": "0 2 * * *"}),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

struct TestJobs {
    repository: Arc<std::sync::OnceLock<Arc<Repository>>>,
    seen: Seen,
}

#[prefiq::async_trait]
impl ServiceProvider for TestJobs {
    fn name(&self) -> &'static str {
        "test::TestJobs"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        cx.services
            .contribute::<dyn JobHandler>(Arc::new(WriteSchedule {
                repository: self.repository.clone(),
                seen: self.seen.clone(),
            }) as Arc<dyn JobHandler>);
        Ok(())
    }

    async fn boot(&self, cx: &prefiq::BootContext<'_>) -> Result<(), KernelError> {
        let _ = self.repository.set(cx.services.get::<Repository>()?);
        Ok(())
    }
}

/// Runs the job for `user` to its end: its state and last error.
async fn check(api: &common::Api, user: &str, expected: (&str, Option<&str>)) {
    let jobs = api.app.resolver("test").get::<Jobs>().unwrap();
    let mut job = NewJob::new("test.write_schedule", "acme", json!({}));
    job.user = Some(user.to_owned());
    job.max_attempts = 1;
    let id = jobs.enqueue(vec![job]).await.unwrap()[0].unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let row = loop {
        let row = jobs.get("acme", id).await.unwrap().unwrap();
        if row.state == "succeeded" || row.state == "dead" {
            break row;
        }
        assert!(Instant::now() < deadline, "job {id} is still {}", row.state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(row.state, expected.0, "{:?}", row.last_error);
    match expected.1 {
        None => assert_eq!(row.last_error, None),
        Some(part) => {
            let error = row.last_error.unwrap_or_default();
            assert!(error.contains(part), "{error:?} lacks {part:?}");
        }
    }
}

#[tokio::test]
async fn a_job_acts_with_the_rights_its_user_has_when_it_runs() {
    for db in databases("cortex job principal").await {
        let seen: Seen = Arc::default();
        let provider = TestJobs {
            repository: Arc::default(),
            seen: seen.clone(),
        };
        let api = common::boot_with_jobs_and(&db, &[], move |app| app.provider(provider)).await;
        let identity = api.identity();
        identity
            .create_tenant("acme", "admin@acme.test", PASSWORD)
            .await
            .unwrap();
        let clerk = identity
            .create_user(
                "acme",
                "clerk@acme.test",
                PASSWORD,
                &[],
                &Default::default(),
            )
            .await
            .unwrap()
            .id;
        let admin = identity
            .users("acme")
            .await
            .unwrap()
            .into_iter()
            .find(|u| u.email == "admin@acme.test")
            .unwrap()
            .id;

        check(&api, &admin, ("succeeded", None)).await;
        check(&api, &clerk, ("dead", Some("schedule"))).await;
        assert_eq!(
            *seen.lock().unwrap(),
            [Some(vec!["System Manager".to_owned()]), Some(vec![])]
        );
        identity
            .update_user("acme", &clerk, None, None, Some("disabled"))
            .await
            .unwrap();
        check(
            &api,
            &clerk,
            ("dead", Some("not an active user of tenant `acme`")),
        )
        .await;
        assert_eq!(
            seen.lock().unwrap().len(),
            2,
            "the disabled user's job never ran"
        );
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}
