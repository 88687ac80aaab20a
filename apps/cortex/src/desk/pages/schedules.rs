//! The schedules, for a tenant's System Manager: the tenant's own (its `schedule`
//! records that are enabled) and each cron schedule a module declares, with its time zone
//! and catch-up policy, the last run it enqueued and the next one due — what `prefiq
//! schedules list` prints.

use prefiq_data::jobs::now_ms;
use prefiq_worker::Schedules;
use prefiq_worker::schedule::Scheduler;

use super::jobs::{administers, refuse, time_view, unavailable};
use super::*;

/// `GET /app/admin/schedules`.
pub async fn schedules_list(State(state): State<HttpState>, request: DeskRequest) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    if !administers(&session) {
        return refuse(&state, &desk, &session);
    }
    let (Ok(repository), Ok(schedules)) = (
        state.services.get::<Repository>("cortex desk"),
        state.services.get::<Schedules>("cortex desk"),
    ) else {
        return session.message(
            &state,
            &desk,
            StatusCode::NOT_FOUND,
            "Not found",
            "This installation has no job queue, so no schedules.",
        );
    };
    // Where each schedule stands is kept in the main database, whatever the tenancy.
    let scheduler = Scheduler::new(repository.main_database(), schedules.0.clone());
    let states = match scheduler.states().await {
        Ok(states) => states,
        Err(e) => return unavailable(&state, &desk, &session, "The schedules", &e),
    };
    // The tenant's own, when cortex's source of them is bound (it is wherever jobs run).
    let own = match state
        .services
        .get::<crate::schedules::TenantSchedules>("cortex desk")
    {
        Ok(source) => match source.of_tenant(session.tenant()).await {
            Ok(own) => {
                let compiled = own.iter().map(|s| s.compiled.clone()).collect();
                match Scheduler::new(repository.main_database(), compiled)
                    .states()
                    .await
                {
                    // `states` keeps the order it was given.
                    Ok(states) => own.iter().map(|s| s.title.clone()).zip(states).collect(),
                    Err(e) => return unavailable(&state, &desk, &session, "The schedules", &e),
                }
            }
            Err(e) => {
                tracing::warn!(target: "cortex::desk", error = %e, "a tenant's schedules could not be read");
                Vec::new()
            }
        },
        Err(_) => Vec::new(),
    };
    let now = now_ms();
    let row = |compiled: &prefiq_worker::schedule::Compiled, last: &Option<i64>| {
        let schedule = &compiled.schedule;
        let next = compiled.next_after(last.unwrap_or(now).max(now));
        json!({
            "id": schedule.name,
            "cron": schedule.cron,
            "zone": compiled.zone_name(),
            "catch_up": serde_json::to_value(schedule.catch_up).unwrap_or(Value::Null),
            "last_due": time_view(*last),
            "next_due": time_view(next),
        })
    };
    let own: Vec<Value> = own
        .iter()
        .map(|(title, (c, last))| {
            let mut shown = row(c, last);
            shown["title"] = json!(title);
            shown
        })
        .collect();
    let rows: Vec<Value> = states
        .iter()
        .map(|(compiled, last)| {
            let schedule = &compiled.schedule;
            // A schedule never seen starts from now; one that is behind runs its missed
            // runs at the next tick, so the next run is never in the past.
            let next = compiled.next_after(last.unwrap_or(now).max(now));
            json!({
                "name": schedule.key(),
                "cron": schedule.cron,
                "zone": compiled.zone_name(),
                "kind": schedule.kind,
                "queue": schedule.queue,
                "catch_up": serde_json::to_value(schedule.catch_up).unwrap_or(Value::Null),
                "last_due": time_view(*last),
                "next_due": time_view(next),
            })
        })
        .collect();
    session.render(
        &state,
        &desk,
        StatusCode::OK,
        "schedules.html",
        json!({ "title": "Schedules", "schedules": rows, "own": own }),
    )
}
