//! The providers: `events` (the bus and the relay) and `jobs` (the queue service and the
//! runner). Register them after `DatabaseProvider`, so that they shut down first.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use prefiq::{BootContext, BootMode, ErrorKind, KernelError, RegisterContext, ServiceProvider};
use prefiq_data::DataError;
use prefiq_data::entity::repo::Repository;
use prefiq_data::jobs::{self, JobRow, NewJob};

use crate::bus::{EventBus, Subscription};
use crate::config::{EventsConfig, JobsConfig};
use crate::databases::Databases;
use crate::handlers::{DeliverEvent, JobHandler, JobHandlers};
use crate::relay::Relay;
use crate::runner::Runner;
use crate::schedule::{Schedule, Scheduler, Schedules};
use crate::schedule_sources::ScheduleSource;

/// A background task and the switch that stops it.
type Task = Mutex<
    Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )>,
>;

async fn stop(task: &Task) {
    let task = task.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some((stop, handle)) = task {
        let _ = stop.send(true);
        if let Err(e) = handle.await {
            tracing::error!(target: "prefiq::worker", error = %e, "a background task failed");
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> KernelError {
    KernelError::service(ErrorKind::Invalid, e.to_string())
}

/// The queue as a service: enqueue, inspect, retry and cancel, in the right database.
pub struct Jobs {
    databases: Databases,
    enqueued: Arc<tokio::sync::Notify>,
}

impl Jobs {
    /// The queue over `databases`.
    pub fn new(databases: Databases) -> Jobs {
        Jobs {
            databases,
            enqueued: Arc::default(),
        }
    }

    /// What the runner waits on besides commits.
    pub fn enqueued(&self) -> Arc<tokio::sync::Notify> {
        self.enqueued.clone()
    }

    /// Enqueues `jobs` on their own (not in a business write's transaction; for that,
    /// call [`prefiq_data::jobs::enqueue`] with the transaction's connection). Each goes
    /// to its tenant's database. Returns the ids, `None` for a unique job dropped.
    pub async fn enqueue(&self, jobs_to_add: Vec<NewJob>) -> Result<Vec<Option<i64>>, DataError> {
        if jobs_to_add.len() > jobs::MAX_BATCH * 100 {
            return Err(DataError::Batch(
                format!("at most {} jobs at once", jobs::MAX_BATCH * 100).into(),
            ));
        }
        let mut ids = vec![None; jobs_to_add.len()];
        let mut by_tenant: std::collections::BTreeMap<String, Vec<(usize, NewJob)>> =
            Default::default();
        for (i, job) in jobs_to_add.into_iter().enumerate() {
            by_tenant
                .entry(job.tenant.clone())
                .or_default()
                .push((i, job));
        }
        for (tenant, group) in by_tenant {
            let handle = self.databases.of_tenant(&tenant).await?;
            let database = handle.get()?;
            let (positions, group): (Vec<usize>, Vec<NewJob>) = group.into_iter().unzip();
            let mut tx = database.begin().await?;
            let given = jobs::enqueue(&mut tx.conn(), &group).await?;
            tx.commit().await?;
            for (i, id) in positions.into_iter().zip(given) {
                ids[i] = id;
            }
        }
        self.enqueued.notify_one();
        Ok(ids)
    }

    /// Jobs of every database, newest first, optionally of one queue and state.
    pub async fn list(
        &self,
        queue: Option<&str>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, JobRow)>, DataError> {
        let mut all = Vec::new();
        for (label, handle) in self.databases.all().await {
            let mut reader = handle.get()?.reader().await?;
            for row in jobs::list(&mut reader.conn(), queue, state, limit).await? {
                all.push((label.clone(), row));
            }
        }
        all.sort_by(|a, b| {
            b.1.created_at_ms
                .cmp(&a.1.created_at_ms)
                .then(b.1.id.cmp(&a.1.id))
        });
        all.truncate(usize::try_from(limit.max(1)).unwrap_or(usize::MAX));
        Ok(all)
    }

    /// One job of `tenant`'s database (`""`: the main one).
    pub async fn get(&self, tenant: &str, id: i64) -> Result<Option<JobRow>, DataError> {
        let handle = self.databases.of_tenant(tenant).await?;
        let mut reader = handle.get()?.reader().await?;
        jobs::get(&mut reader.conn(), id).await
    }

    /// Retries a dead, cancelled or waiting job now; whether it was in such a state.
    pub async fn retry(&self, tenant: &str, id: i64) -> Result<bool, DataError> {
        let done = self.change(tenant, id, Change::Retry).await?;
        self.enqueued.notify_one();
        Ok(done)
    }

    /// Cancels a job that has not finished; whether it was cancelled.
    pub async fn cancel(&self, tenant: &str, id: i64) -> Result<bool, DataError> {
        self.change(tenant, id, Change::Cancel).await
    }

    async fn change(&self, tenant: &str, id: i64, change: Change) -> Result<bool, DataError> {
        let handle = self.databases.of_tenant(tenant).await?;
        let database = handle.get()?;
        let mut tx = database.begin().await?;
        let done = match change {
            Change::Retry => jobs::retry(&mut tx.conn(), id).await?,
            Change::Cancel => jobs::cancel(&mut tx.conn(), id).await?,
        };
        tx.commit().await?;
        Ok(done)
    }
}

enum Change {
    Retry,
    Cancel,
}

/// Binds [`Jobs`], [`JobHandlers`] (from every `dyn JobHandler` contribution) and
/// [`Schedules`] (from every [`Schedule`] contribution, compiled at boot); when
/// ready to serve with `jobs.run_in_serve` (or in `prefiq worker`), runs the [`Runner`], draining
/// within `server.drain_timeout_ms` at shutdown, and the scheduler beside it.
#[derive(Default)]
pub struct JobsProvider {
    task: Task,
}

#[prefiq::async_trait]
impl ServiceProvider for JobsProvider {
    fn name(&self) -> &'static str {
        "prefiq_worker::JobsProvider"
    }

    fn config_section(&self) -> Option<&'static str> {
        Some("jobs")
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        let config: JobsConfig = cx
            .config
            .section("jobs")
            .map_err(invalid)?
            .unwrap_or_default();
        if config.queues.is_empty() {
            return Err(invalid("jobs.queues names no queue"));
        }
        cx.services.singleton(Arc::new(config))?;
        cx.services.lazy_singleton::<Jobs, _>(|r| {
            let repository = r.get::<Repository>()?;
            Ok(Arc::new(Jobs::new(Databases::of(&repository))))
        })?;
        let zone = cx.config.app.timezone.clone();
        cx.services.lazy_singleton::<Schedules, _>(move |r| {
            let declared = r.services().all::<Schedule>();
            Ok(Arc::new(
                Schedules::compile(&declared, &zone).map_err(invalid)?,
            ))
        })?;
        cx.services.lazy_singleton::<JobHandlers, _>(|r| {
            let handlers = r.services().all::<dyn JobHandler>();
            JobHandlers::check(&handlers).map_err(invalid)?;
            let mut handlers = JobHandlers::new(handlers);
            // A job that acts for a user runs with the user's principal, as read by the
            // installation's authenticator when it starts.
            if r.services().contains::<dyn prefiq::Authenticator>() {
                handlers = handlers.with_principals(r.get::<dyn prefiq::Authenticator>()?);
            }
            Ok(Arc::new(handlers))
        })?;
        Ok(())
    }

    async fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        // A schedule that does not compile stops boot, naming it.
        cx.services.get::<Schedules>()?;
        Ok(())
    }

    async fn ready(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        // The recorder is installed by now (the HTTP layer's router, or none at all).
        crate::describe_metrics();
        let mut config = (*cx.services.get::<JobsConfig>()?).clone();
        for declared in cx.services.services().all::<crate::config::DeclaredQueue>() {
            config
                .queues
                .entry(declared.name.clone())
                .or_insert_with(|| declared.config.clone());
        }
        if let Some(unknown) = config
            .run_queues
            .iter()
            .flatten()
            .find(|q| !config.queues.contains_key(*q))
        {
            return Err(invalid(format!(
                "there is no queue `{unknown}` (jobs.queues and the modules declare {})",
                config.queues.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let runs = match cx.mode {
            BootMode::Serve => config.run_in_serve,
            BootMode::Command => config.run_in_command,
            BootMode::DryRun => false,
        };
        if !runs {
            return Ok(());
        }
        let repository = cx.services.get::<Repository>()?;
        let jobs = cx.services.get::<Jobs>()?;
        let runner = Runner::new(
            Databases::of(&repository),
            cx.services.get::<JobHandlers>()?,
            config.clone(),
            config.run_queues.as_deref(),
            Duration::from_millis(cx.config.server.drain_timeout_ms),
        );
        tracing::info!(target: "prefiq::jobs", worker = runner.worker(), queues = ?config.queues.keys().collect::<Vec<_>>(), "the job runner starts");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut scheduler = Scheduler::new(
            repository.main_database(),
            cx.services.get::<Schedules>()?.0.clone(),
        );
        // Schedules that are not declared at boot: tenants' own, when a module keeps them
        // (cortex's `schedule` entity, bound as the service), and those other modules
        // contribute (the plugins' of each tenant that enabled them).
        let mut sources = cx.services.services().all::<dyn ScheduleSource>();
        if cx.services.services().contains::<dyn ScheduleSource>() {
            sources.insert(0, cx.services.get::<dyn ScheduleSource>()?);
        }
        if !sources.is_empty() {
            scheduler = scheduler.with_source(
                Databases::of(&repository),
                Arc::new(crate::schedule_sources::AllSources(sources)),
            );
        }
        let scheduling = tokio::spawn(scheduler.run(jobs.enqueued(), stop_rx.clone()));
        let running = runner.run(repository.commits(), jobs.enqueued(), stop_rx);
        let handle = tokio::spawn(async move {
            running.await;
            let _ = scheduling.await;
        });
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some((stop_tx, handle));
        Ok(())
    }

    async fn shutdown(&self, _cx: &BootContext<'_>) -> Result<(), KernelError> {
        stop(&self.task).await;
        Ok(())
    }
}

/// Binds the [`EventBus`] (from every [`Subscription`] contribution) and contributes the
/// `events.deliver` job handler; when serving with `events.relay`, runs the [`Relay`].
#[derive(Default)]
pub struct EventsProvider {
    task: Task,
    bus: Arc<OnceLock<Arc<EventBus>>>,
}

#[prefiq::async_trait]
impl ServiceProvider for EventsProvider {
    fn name(&self) -> &'static str {
        "prefiq_worker::EventsProvider"
    }

    fn config_section(&self) -> Option<&'static str> {
        Some("events")
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        let config: EventsConfig = cx
            .config
            .section("events")
            .map_err(invalid)?
            .unwrap_or_default();
        if config.batch_size < 1 || config.batch_size > prefiq_data::outbox::MAX_READ {
            return Err(invalid(format!(
                "events.batch_size must be between 1 and {}",
                prefiq_data::outbox::MAX_READ
            )));
        }
        cx.services.singleton(Arc::new(config))?;
        let bus = self.bus.clone();
        cx.services.lazy_singleton::<EventBus, _>(move |r| {
            let subscriptions = r.services().all::<Subscription>();
            Ok(bus
                .get_or_init(|| Arc::new(EventBus::new(subscriptions)))
                .clone())
        })?;
        cx.services
            .contribute::<dyn JobHandler>(Arc::new(DeliverEvent::new(self.bus.clone())));
        Ok(())
    }

    async fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        if cx.mode != BootMode::DryRun {
            // Resolving makes the bus, so that `events.deliver` jobs find it.
            cx.services.get::<EventBus>()?;
        }
        Ok(())
    }

    async fn ready(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        crate::describe_metrics();
        let bus = cx.services.get::<EventBus>()?;
        let config = cx.services.get::<EventsConfig>()?;
        if cx.mode != BootMode::Serve {
            return Ok(());
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // Other replicas' events for this process's live listeners (with NATS).
        let bridge = tokio::spawn(crate::live::bridge(
            (*config).clone(),
            bus.clone(),
            crate::live::origin().to_owned(),
            stop_rx.clone(),
        ));
        let relay = if config.relay {
            let repository = cx.services.get::<Repository>()?;
            let relay = Relay::new(Databases::of(&repository), bus, (*config).clone());
            Some(tokio::spawn(relay.run(repository.commits(), stop_rx)))
        } else {
            None
        };
        let handle = tokio::spawn(async move {
            if let Some(relay) = relay {
                let _ = relay.await;
            }
            let _ = bridge.await;
        });
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some((stop_tx, handle));
        Ok(())
    }

    async fn shutdown(&self, _cx: &BootContext<'_>) -> Result<(), KernelError> {
        stop(&self.task).await;
        Ok(())
    }
}
