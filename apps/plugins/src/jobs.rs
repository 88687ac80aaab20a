//! Plugins' jobs and schedules: a plugin declares the jobs it handles and the cron
//! schedules that run them; for each tenant that enabled it, each schedule ticks as a
//! tenant schedule (in the tenant's `app.timezone`, once per due time across replicas) and
//! enqueues a `plugins.job` job, which calls the plugin's `on-job` in that tenant.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use prefiq::async_trait;
use prefiq_worker::schedule::{CatchUp, Schedule, compile};
use prefiq_worker::{JobHandler, JobInput, ScheduleSource, TenantSchedule};
use serde_json::{Value, json};

use prefiq_plugin::manifest::ScheduleSpec;

use crate::dispatch::guarded;
use crate::host::RepositoryHost;
use crate::service::Plugins;

/// The job kind of every plugin job.
pub const JOB_KIND: &str = "plugins.job";

/// How long the compiled schedules are reused: the scheduler asks every second.
const SCHEDULES_TTL: Duration = Duration::from_secs(5);

/// Runs `plugins.job` jobs: `{"plugin", "job", "payload"}` in the job's tenant.
pub struct PluginJobs {
    plugins: Weak<Plugins>,
    host: Arc<RepositoryHost>,
}

impl PluginJobs {
    /// The handler of `plugins`' jobs.
    pub fn new(plugins: &Arc<Plugins>, host: Arc<RepositoryHost>) -> PluginJobs {
        PluginJobs {
            plugins: Arc::downgrade(plugins),
            host,
        }
    }
}

#[async_trait]
impl JobHandler for PluginJobs {
    fn kind(&self) -> &str {
        JOB_KIND
    }

    async fn run(&self, job: &JobInput) -> Result<(), String> {
        let plugins = self
            .plugins
            .upgrade()
            .ok_or("the installation is shutting down")?;
        let tenant = job
            .context
            .tenant
            .as_deref()
            .ok_or("a plugin job has no tenant")?;
        let text = |key: &str| {
            job.payload
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let (name, job_name) = (text("plugin"), text("job"));
        let state = plugins.loaded_state().await.map_err(|e| e.to_string())?;
        let Some(active) = state
            .active_for(tenant)
            .iter()
            .find(|a| a.installed.manifest.name == name)
        else {
            // Disabled or uninstalled since it was enqueued: nothing to do.
            tracing::info!(target: "plugins", plugin = name, tenant, job = job_name, "a job of a plugin that is no longer enabled is dropped");
            return Ok(());
        };
        if !active
            .installed
            .manifest
            .capabilities
            .jobs
            .iter()
            .any(|j| j == job_name)
        {
            return Err(format!("plugin {name} declares no job {job_name:?}"));
        }
        let payload = job
            .payload
            .get("payload")
            .cloned()
            .unwrap_or(json!({}))
            .to_string();
        let context = plugins.call_context(active, tenant, &job.context.trace_id.to_string());
        guarded(
            &plugins,
            tenant,
            name,
            active
                .installed
                .plugin
                .job(self.host.clone(), context, job_name, &payload),
        )
        .await
        .map_err(|e| e.to_string())?
        .map_err(|message| format!("plugin {name}: job {job_name}: {message}"))
    }
}

/// Compiled schedules: when, and at which generation of the plugins' tables.
type Compiled = (Instant, i64, Vec<Arc<TenantSchedule>>);

/// The schedules of the plugins each tenant enabled.
pub struct PluginSchedules {
    plugins: Weak<Plugins>,
    cached: Mutex<Option<Compiled>>,
}

impl PluginSchedules {
    /// The schedules of `plugins`.
    pub fn new(plugins: &Arc<Plugins>) -> PluginSchedules {
        PluginSchedules {
            plugins: Arc::downgrade(plugins),
            cached: Mutex::default(),
        }
    }
}

/// The schedule a plugin's `index`-th schedule is for `tenant`.
pub fn schedule_of(tenant: &str, plugin: &str, index: usize, spec: &ScheduleSpec) -> Schedule {
    Schedule {
        module: format!("tenant:{tenant}"),
        name: format!("plugin:{plugin}:{index}"),
        cron: spec.cron.clone(),
        timezone: None,
        kind: JOB_KIND.into(),
        payload: json!({"plugin": plugin, "job": spec.job, "payload": spec.payload}),
        queue: "default".into(),
        catch_up: CatchUp::One,
        timeout_ms: None,
    }
}

#[async_trait]
impl ScheduleSource for PluginSchedules {
    async fn schedules(&self) -> Result<Vec<Arc<TenantSchedule>>, String> {
        let Some(plugins) = self.plugins.upgrade() else {
            return Ok(Vec::new());
        };
        let state = plugins.loaded_state().await.map_err(|e| e.to_string())?;
        let generation = plugins.generation();
        if let Ok(cached) = self.cached.lock()
            && let Some((at, seen, schedules)) = cached.as_ref()
            && *seen == generation
            && at.elapsed() < SCHEDULES_TTL
        {
            return Ok(schedules.clone());
        }
        let mut all = Vec::new();
        for (tenant, active) in &state.active {
            if !active
                .iter()
                .any(|p| !p.installed.manifest.capabilities.schedules.is_empty())
            {
                continue;
            }
            let zone = plugins.tenant_zone(tenant).await;
            for plugin in active {
                let manifest = &plugin.installed.manifest;
                for (index, spec) in manifest.capabilities.schedules.iter().enumerate() {
                    let schedule = schedule_of(tenant, &manifest.name, index, spec);
                    match compile(&schedule, &zone) {
                        Ok(compiled) => all.push(Arc::new(TenantSchedule {
                            tenant: tenant.clone(),
                            compiled,
                            title: format!("{} {}", manifest.name, spec.job),
                        })),
                        Err(e) => {
                            tracing::warn!(target: "plugins", plugin = %manifest.name, tenant = %tenant, error = %e, "a plugin's schedule does not compile; it does not tick")
                        }
                    }
                }
            }
        }
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((Instant::now(), generation, all.clone()));
        }
        Ok(all)
    }
}
