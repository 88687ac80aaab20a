//! Tenants' own schedules, declared by their administrators through the API (the
//! `schedule` entity, `/api/v1/resources/schedule`) or the desk.
//!
//! - A write is checked by a validation hook: the cron expression and the time zone
//!   compile, so a bad one is a 422 naming the field, never a schedule that cannot tick.
//! - [`TenantSchedules`] gives the job runner's scheduler every enabled schedule of every
//!   active tenant. Each tenant's list sits in the cache service and depends on the
//!   `schedule` entity, so a change reaches every replica's scheduler with its event.
//! - Each due run is a `schedules.fire` job of the tenant ([`FireSchedule`]), which adds one
//!   to the record's `runs` and sets `last_run_at`, through the repository.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prefiq::ConfigService;
use prefiq_cache::{Cache, Namespace, NamespaceSpec};
use prefiq_data::entity::repo::{ListQuery, Repository, TenantScope};
use prefiq_worker::schedule::{CatchUp, Schedule, compile};
use prefiq_worker::{JobHandler, JobInput, ScheduleSource, TenantSchedule};
use serde_json::{Map, Value, json};

use crate::caching::PLATFORM_SCOPE;
use crate::identity::Identity;

/// The entity.
pub const ENTITY: &str = "schedule";
/// The job kind of a run.
pub const FIRE_KIND: &str = "schedules.fire";
/// At most this many enabled schedules of one tenant tick (the oldest first).
pub const MAX_SCHEDULES_PER_TENANT: u32 = 100;
/// How long the list of tenants is trusted (a new tenant's schedules tick within it).
const TENANTS_TTL: Duration = Duration::from_secs(10);

fn system_scope(tenant: &str) -> Result<TenantScope, String> {
    TenantScope::new(&prefiq::Context::system("en").with_tenant(tenant)).map_err(|e| e.to_string())
}

fn text<'a>(doc: &'a Map<String, Value>, field: &str) -> &'a str {
    doc.get(field).and_then(Value::as_str).unwrap_or("")
}

/// The schedule a record describes, for `tenant`; `default_zone` when it names none.
pub fn schedule_of(tenant: &str, record: &Map<String, Value>) -> Schedule {
    let catch_up = match text(record, "catch_up") {
        "all" => CatchUp::All,
        "none" => CatchUp::None,
        _ => CatchUp::One,
    };
    Schedule {
        module: format!("tenant:{tenant}"),
        name: text(record, "id").to_owned(),
        cron: text(record, "cron").to_owned(),
        timezone: Some(text(record, "timezone"))
            .filter(|zone| !zone.is_empty())
            .map(str::to_owned),
        kind: FIRE_KIND.into(),
        payload: json!({"id": text(record, "id")}),
        queue: "default".into(),
        catch_up,
        timeout_ms: None,
    }
}

/// Checks a record about to be written: its cron expression and time zone compile. The
/// error is `/field: message`.
pub fn check(record: &Map<String, Value>) -> Result<(), String> {
    let schedule = schedule_of("check", record);
    compile(&schedule, "UTC").map(|_| ()).map_err(|e| {
        // `compile` names the schedule first; the client knows which one it wrote.
        let message = e.split_once(": ").map_or(e.as_str(), |(_, m)| m).to_owned();
        let field = if message.starts_with("unknown time zone") {
            "/timezone"
        } else {
            "/cron"
        };
        format!("{field}: {message}")
    })
}

/// Every enabled schedule of every active tenant, for the scheduler.
pub struct TenantSchedules {
    identity: Arc<Identity>,
    repository: Arc<Repository>,
    config: Arc<ConfigService>,
    tenants: Namespace<Arc<Vec<String>>>,
    lists: Namespace<Arc<Vec<Arc<TenantSchedule>>>>,
}

impl TenantSchedules {
    /// The source over these services, caching in `cache`.
    pub fn new(
        identity: Arc<Identity>,
        repository: Arc<Repository>,
        config: Arc<ConfigService>,
        cache: &Cache,
    ) -> TenantSchedules {
        TenantSchedules {
            identity,
            repository,
            config,
            tenants: cache.namespace(NamespaceSpec::new("cortex.tenants").ttl(TENANTS_TTL)),
            lists: cache.namespace(NamespaceSpec::new("cortex.schedules").depends_on(ENTITY)),
        }
    }

    async fn active_tenants(&self) -> Result<Arc<Vec<String>>, String> {
        self.tenants
            .get_or_load(PLATFORM_SCOPE, "active", || async {
                let tenants = self.identity.tenants().await.map_err(|e| e.to_string())?;
                Ok::<_, String>(Arc::new(
                    tenants
                        .into_iter()
                        .filter(|t| t.status == "active")
                        .map(|t| t.name)
                        .collect(),
                ))
            })
            .await
    }

    async fn read(&self, tenant: &str) -> Result<Arc<Vec<Arc<TenantSchedule>>>, String> {
        let scope = system_scope(tenant)?;
        let page = self
            .repository
            .list(
                &scope,
                ENTITY,
                &ListQuery {
                    filters: Some(json!([["enabled", "=", true]])),
                    order_by: Some("created_at asc".into()),
                    limit: Some(MAX_SCHEDULES_PER_TENANT),
                    ..ListQuery::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let zone = self
            .config
            .for_tenant(tenant)
            .await
            .map(|config| config.app.timezone.clone())
            .unwrap_or_else(|_| "UTC".into());
        let mut schedules = Vec::with_capacity(page.data.len());
        for record in page.data.iter().filter_map(Value::as_object) {
            match compile(&schedule_of(tenant, record), &zone) {
                Ok(compiled) => schedules.push(Arc::new(TenantSchedule {
                    tenant: tenant.to_owned(),
                    compiled,
                    title: text(record, "title").to_owned(),
                })),
                // The validation hook keeps these out; a zone the tenant's settings
                // changed to could still fail here, and the others still tick.
                Err(e) => {
                    tracing::warn!(target: "cortex::schedules", tenant, error = %e, "a schedule does not compile; it does not tick")
                }
            }
        }
        Ok(Arc::new(schedules))
    }

    /// The compiled schedules of `tenant` (cached).
    pub async fn of_tenant(&self, tenant: &str) -> Result<Arc<Vec<Arc<TenantSchedule>>>, String> {
        self.lists
            .get_or_load(tenant, "enabled", || self.read(tenant))
            .await
    }
}

#[prefiq::async_trait]
impl ScheduleSource for TenantSchedules {
    async fn schedules(&self) -> Result<Vec<Arc<TenantSchedule>>, String> {
        let mut all = Vec::new();
        for tenant in self.active_tenants().await?.iter() {
            match self.of_tenant(tenant).await {
                Ok(schedules) => all.extend(schedules.iter().cloned()),
                Err(e) => {
                    tracing::warn!(target: "cortex::schedules", tenant = %tenant, error = %e, "a tenant's schedules could not be read")
                }
            }
        }
        Ok(all)
    }
}

/// Runs a tenant schedule's due run: one more in `runs`, `last_run_at` now.
pub struct FireSchedule {
    pub(crate) repository: Arc<OnceLock<Arc<Repository>>>,
}

#[prefiq::async_trait]
impl JobHandler for FireSchedule {
    fn kind(&self) -> &str {
        FIRE_KIND
    }

    async fn run(&self, job: &JobInput) -> Result<(), String> {
        let repository = self.repository.get().ok_or("the repository is not ready")?;
        let tenant = job
            .context
            .tenant
            .as_deref()
            .ok_or("a schedule's run has no tenant")?;
        let id = job
            .payload
            .get("id")
            .and_then(Value::as_str)
            .ok_or("a schedule's run names no schedule")?;
        let scope = system_scope(tenant)?;
        let record = match repository.get(&scope, ENTITY, id).await {
            Ok(record) => record,
            // Deleted since the run was enqueued: nothing to run.
            Err(prefiq_data::entity::repo::RepoError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        if record.get("enabled") == Some(&Value::Bool(false)) {
            return Ok(());
        }
        let runs = record.get("runs").and_then(Value::as_i64).unwrap_or(0);
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map_err(|e| e.to_string())?;
        repository
            .update(
                &scope,
                ENTITY,
                id,
                json!({"runs": runs + 1, "last_run_at": now.to_string()}),
                record.get("version").and_then(Value::as_i64),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Registers the scheduler's source of tenant schedules, the run's job handler and the
/// validation hook; `repository` is set at boot.
pub(crate) fn register(
    cx: &mut prefiq::RegisterContext<'_>,
    repository: &Arc<OnceLock<Arc<Repository>>>,
) -> Result<(), prefiq::KernelError> {
    cx.services.lazy_singleton::<TenantSchedules, _>(|r| {
        let identity = r.get::<Identity>()?;
        let cache = identity.cache().clone();
        Ok(Arc::new(TenantSchedules::new(
            identity,
            r.get::<Repository>()?,
            r.get::<ConfigService>()?,
            &cache,
        )))
    })?;
    cx.services.lazy_singleton::<dyn ScheduleSource, _>(|r| {
        Ok(r.get::<TenantSchedules>()? as Arc<dyn ScheduleSource>)
    })?;
    cx.services
        .contribute::<dyn JobHandler>(Arc::new(FireSchedule {
            repository: repository.clone(),
        }) as Arc<dyn JobHandler>);
    cx.services
        .contribute(Arc::new(prefiq_data::entity::repo::EntityHook {
            module: "cortex".into(),
            name: "check_schedule".into(),
            entity: ENTITY.into(),
            event: prefiq_data::entity::repo::EntityEvent::Validate,
            run: Arc::new(|input: prefiq_data::entity::repo::HookInput| {
                Box::pin(async move {
                    check(&input.doc)?;
                    // `runs` and `last_run_at` are the scheduler's (read-only to people
                    // once the record exists; at its creation, refused here).
                    if input.old.is_none() {
                        for field in ["runs", "last_run_at"] {
                            let given = input
                                .doc
                                .get(field)
                                .filter(|v| !v.is_null() && **v != json!(0));
                            if given.is_some() {
                                return Err(format!(
                                    "/{field}: {field} is kept by the scheduler and cannot be given"
                                ));
                            }
                        }
                    }
                    Ok(input.doc)
                })
            }),
        }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cron: &str, timezone: &str) -> Map<String, Value> {
        json!({"id": "s1", "title": "t", "cron": cron, "timezone": timezone})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    fn check_record(cron: &str, timezone: &str, expected: Result<(), &str>) {
        let got = check(&record(cron, timezone));
        match expected {
            Ok(()) => assert_eq!(got, Ok(()), "{cron} {timezone}"),
            Err(prefix) => {
                let error = got.expect_err(cron);
                assert!(error.starts_with(prefix), "{cron} {timezone}: {error}");
            }
        }
    }

    #[test]
    fn writes_are_checked_before_they_are_stored() {
        check_record("*/5 * * * *", "", Ok(()));
        check_record("0 9 * * 1-5", "Europe/Zurich", Ok(()));
        check_record("*/2 * * * * *", "", Ok(()));
        check_record(
            "0 9 * * 1-5",
            "Mars/Olympus",
            Err("/timezone: unknown time zone"),
        );
        check_record("every day", "", Err("/cron: `every day` has 2 fields"));
        check_record(
            "61 * * * *",
            "",
            Err("/cron: `61 * * * *` is not a cron expression"),
        );
        check_record("", "", Err("/cron: `` has 0 fields"));
    }
}
