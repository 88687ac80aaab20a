//! Schedules that are not declared at boot: a tenant administrator's own, read while the
//! scheduler runs from whatever keeps them (cortex's `schedule` entity).
//!
//! Each ticks like a declared schedule, with two differences. Its state row (in the main
//! database, as every schedule's) is named `tenant:{tenant}::{id}`. Its runs are jobs of its
//! tenant, so with a database per tenant they go to the tenant's database, in a
//! transaction apart from the state row's: the jobs first, then the row. A crash between
//! the two makes the next tick compute the same runs again, and their unique keys (the
//! schedule and its due time) drop them, so a due run is still enqueued once.

use std::sync::Arc;

use prefiq_data::DataError;
use prefiq_data::jobs::{self, NewJob};

use crate::databases::Databases;
use crate::schedule::Compiled;

/// A tenant's schedule, compiled. Its `schedule.module` is `tenant:{tenant}`.
#[derive(Debug, Clone)]
pub struct TenantSchedule {
    /// The tenant whose jobs its runs are.
    pub tenant: String,
    /// The schedule.
    pub compiled: Compiled,
    /// What people call it.
    pub title: String,
}

/// Where schedules that are not declared at boot come from (bound as a service).
#[async_trait::async_trait]
pub trait ScheduleSource: Send + Sync {
    /// Every schedule that should tick now. Called every second: keep it cached.
    async fn schedules(&self) -> Result<Vec<Arc<TenantSchedule>>, String>;
}

/// Several sources as one: every schedule of each. A source that fails is logged and the
/// others still tick.
pub struct AllSources(pub Vec<Arc<dyn ScheduleSource>>);

#[async_trait::async_trait]
impl ScheduleSource for AllSources {
    async fn schedules(&self) -> Result<Vec<Arc<TenantSchedule>>, String> {
        let mut all = Vec::new();
        for source in &self.0 {
            match source.schedules().await {
                Ok(schedules) => all.extend(schedules),
                Err(e) => {
                    tracing::warn!(target: "prefiq::schedule", error = %e, "a schedule source could not be read")
                }
            }
        }
        Ok(all)
    }
}

/// One tick of `schedules` at `now_ms`; returns how many runs were enqueued.
pub(crate) async fn tick(
    databases: &Databases,
    schedules: &[Arc<TenantSchedule>],
    now_ms: i64,
) -> Result<usize, DataError> {
    let main = databases.main().get()?;
    let mut enqueued = 0;
    for schedule in schedules {
        let key = schedule.compiled.schedule.key();
        let last = {
            let mut reader = main.reader().await?;
            jobs::last_due(&mut reader.conn(), &key).await?
        };
        let Some(last) = last else {
            let mut tx = main.begin().await?;
            jobs::advance_schedule(&mut tx.conn(), &key, now_ms).await?;
            tx.commit().await?;
            continue;
        };
        let due = schedule.compiled.runs_due(last, now_ms);
        let Some(newest) = due.last().copied() else {
            continue;
        };
        let runs: Vec<NewJob> = due
            .into_iter()
            .map(|d| {
                let mut job = schedule.compiled.job(d);
                job.tenant.clone_from(&schedule.tenant);
                job
            })
            .collect();
        enqueued += runs.len();
        let handle = databases.of_tenant(&schedule.tenant).await?;
        let tenant_database = handle.get()?;
        let mut tx = tenant_database.begin().await?;
        jobs::enqueue(&mut tx.conn(), &runs).await?;
        tx.commit().await?;
        let mut tx = main.begin().await?;
        jobs::advance_schedule(&mut tx.conn(), &key, newest).await?;
        tx.commit().await?;
    }
    Ok(enqueued)
}
