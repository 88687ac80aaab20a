//! The job queue of the signed-in tenant, for its System Manager: a summary per queue
//! (jobs per state, how long the oldest queued job has waited), the jobs filtered by queue
//! and state a page at a time, and one job with its input, attempts and last error, with
//! Retry and Cancel.
//!
//! There is no jobs API to call, so these pages read the queue themselves, and only the
//! tenant's own rows: `Jobs::list` and `jobs::queue_stats` cover every tenant of a
//! database (they serve the operator's command line), so in `shared` tenancy they would
//! show one tenant the jobs of all. One job is read, retried and cancelled through the
//! `Jobs` service, after checking that it is the tenant's.

use prefiq_auth::authz::ADMINISTRATOR;
use prefiq_data::DataError;
use prefiq_data::jobs::{JobRow, STATES, now_ms};
use prefiq_worker::{Databases, DeclaredQueue, Jobs, JobsConfig};

use super::*;

/// Jobs a page shows unless asked for another number.
const PAGE_JOBS: i64 = 50;

/// Most jobs one page shows, whatever is asked.
const MAX_PAGE_JOBS: i64 = 200;

/// Longest queue name a filter takes (queue names are short words).
const MAX_QUEUE_NAME: usize = 100;

/// Characters of a last error the list shows; the job's page shows all of it.
const ERROR_CHARS: usize = 120;

/// Whether the session's user is a System Manager of its tenant, whose pages these are.
pub(super) fn administers(session: &Session) -> bool {
    session.principal.roles.iter().any(|r| r == ADMINISTRATOR)
}

/// The desk's refusal, for a user who is not the tenant's System Manager.
pub(super) fn refuse(state: &HttpState, desk: &Desk, session: &Session) -> Response {
    session.message(
        state,
        desk,
        StatusCode::FORBIDDEN,
        "Not allowed",
        "Only a System Manager of this organisation may see its jobs and schedules.",
    )
}

/// The page that takes the place of one whose data could not be read or changed; the
/// error itself goes to the log, not to the page.
pub(super) fn unavailable(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    what: &str,
    error: &dyn std::fmt::Display,
) -> Response {
    tracing::error!(target: "cortex::desk", error = %error, "{what} is not available");
    session.message(
        state,
        desk,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Error",
        &format!("{what} is not available right now. The error is in the server's log."),
    )
}

/// The queue service, or the page that says this installation runs no jobs.
fn queue_service(state: &HttpState, desk: &Desk, session: &Session) -> Result<Arc<Jobs>, Response> {
    state.services.get::<Jobs>("cortex desk").map_err(|_| {
        session.message(
            state,
            desk,
            StatusCode::NOT_FOUND,
            "Not found",
            "This installation has no job queue.",
        )
    })
}

/// The desk and session of a queue page, or the answer that takes its place (the login
/// form, or the refusal of a user who is not the tenant's System Manager).
async fn open_admin(
    state: &HttpState,
    request: &DeskRequest,
) -> Result<(Arc<Desk>, Session), Response> {
    let (desk, session) = request.open(state).await?;
    if !administers(&session) {
        return Err(refuse(state, &desk, &session));
    }
    Ok((desk, session))
}

/// A time (unix milliseconds) as the pages show it: to the second, in UTC, with its
/// RFC 3339 form for `<time datetime>`.
pub(super) fn time_view(ms: Option<i64>) -> Value {
    match ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()) {
        Some(time) => json!({
            "iso": time.to_string(),
            "text": time.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }),
        None => Value::Null,
    }
}

/// A length of time as a person reads it: `45 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`.
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1_000;
    match s {
        0..60 => format!("{s} s"),
        60..3_600 => format!("{} min {} s", s / 60, s % 60),
        3_600..86_400 => format!("{} h {} min", s / 3_600, s % 3_600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// Which jobs a page lists.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filter {
    queue: Option<String>,
    state: Option<String>,
    /// Only jobs with a smaller id (the next page).
    before: Option<i64>,
    limit: i64,
}

impl Filter {
    /// The filter a query string asks for, or why it cannot be used.
    fn parse(query: &FormData) -> Result<Filter, String> {
        let given = |name: &str| {
            query
                .get(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let queue = given("queue");
        if queue.as_ref().is_some_and(|q| q.len() > MAX_QUEUE_NAME) {
            return Err(format!(
                "A queue's name has at most {MAX_QUEUE_NAME} characters."
            ));
        }
        let state = given("state");
        if let Some(state) = &state
            && !STATES.contains(&state.as_str())
        {
            return Err(format!(
                "There is no job state “{state}”; use one of {}.",
                STATES.join(", ")
            ));
        }
        let number = |name: &str| -> Result<Option<i64>, String> {
            given(name)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| format!("`{name}` is a whole number."))
                })
                .transpose()
        };
        let before = number("before")?;
        let limit = number("limit")?.unwrap_or(PAGE_JOBS);
        if !(1..=MAX_PAGE_JOBS).contains(&limit) {
            return Err(format!("A page shows 1 to {MAX_PAGE_JOBS} jobs."));
        }
        Ok(Filter {
            queue,
            state,
            before,
            limit,
        })
    }

    /// The query string of this filter on another page (`before`), or the first one.
    fn href(&self, before: Option<i64>) -> String {
        let mut parts = Vec::new();
        if let Some(queue) = &self.queue {
            parts.push(format!("queue={}", url_encode(queue)));
        }
        if let Some(state) = &self.state {
            parts.push(format!("state={}", url_encode(state)));
        }
        if self.limit != PAGE_JOBS {
            parts.push(format!("limit={}", self.limit));
        }
        if let Some(before) = before {
            parts.push(format!("before={before}"));
        }
        if parts.is_empty() {
            "/app/admin/jobs".to_owned()
        } else {
            format!("/app/admin/jobs?{}", parts.join("&"))
        }
    }
}

/// The tenant's jobs the filter selects, newest first, one more than its limit (so the
/// page knows whether there is a next).
async fn tenant_jobs(
    databases: &Databases,
    tenant: &str,
    filter: &Filter,
) -> Result<Vec<JobRow>, DataError> {
    let handle = databases.of_tenant(tenant).await?;
    let mut reader = handle.get()?.reader().await?;
    prefiq_data::jobs::list_where(
        &mut reader.conn(),
        &prefiq_data::jobs::JobQuery {
            tenant: Some(tenant.to_owned()),
            queue: filter.queue.clone(),
            state: filter.state.clone(),
            before: filter.before,
            limit: filter.limit + 1,
        },
    )
    .await
}

/// One queue of the tenant: jobs per state, and when its oldest queued job became due.
type QueueSummary = prefiq_data::jobs::QueueStats;

/// The tenant's queues that hold any of its jobs, by name.
async fn tenant_queues(
    databases: &Databases,
    tenant: &str,
) -> Result<Vec<QueueSummary>, DataError> {
    let handle = databases.of_tenant(tenant).await?;
    let mut reader = handle.get()?.reader().await?;
    prefiq_data::jobs::queue_stats_of(&mut reader.conn(), Some(tenant)).await
}

/// The summary table's rows: every state's count (with a link to those jobs) and the
/// oldest queued job's age.
fn summary_view(summaries: &[QueueSummary], now: i64) -> Vec<Value> {
    summaries
        .iter()
        .map(|s| {
            let counts: Vec<Value> = STATES
                .iter()
                .map(|state| {
                    let count = s
                        .states
                        .iter()
                        .find(|(name, _)| name == state)
                        .map_or(0, |(_, n)| *n);
                    json!({
                        "state": state,
                        "count": count,
                        "href": format!("/app/admin/jobs?queue={}&state={state}", url_encode(&s.queue)),
                    })
                })
                .collect();
            json!({
                "queue": s.queue,
                "href": format!("/app/admin/jobs?queue={}", url_encode(&s.queue)),
                "counts": counts,
                "oldest": s.oldest_queued_ms.map(|ms| age(now - ms)),
            })
        })
        .collect()
}

/// Every queue the filter offers: those configured, those modules declare, and those that
/// hold the tenant's jobs.
fn known_queues(state: &HttpState, summaries: &[QueueSummary]) -> Vec<String> {
    let mut queues = std::collections::BTreeSet::new();
    if let Ok(config) = state.services.get::<JobsConfig>("cortex desk") {
        queues.extend(config.queues.keys().cloned());
    }
    queues.extend(
        state
            .services
            .all::<DeclaredQueue>()
            .iter()
            .map(|q| q.name.clone()),
    );
    queues.extend(summaries.iter().map(|s| s.queue.clone()));
    queues.into_iter().collect()
}

/// A job as a list row.
fn row_view(row: &JobRow) -> Value {
    let error = row.last_error.as_deref().map(|e| {
        let mut short: String = e.chars().take(ERROR_CHARS).collect();
        if short.len() < e.len() {
            short.push('…');
        }
        short
    });
    json!({
        "id": row.id,
        "href": format!("/app/admin/jobs/{}", row.id),
        "kind": row.kind,
        "queue": row.queue,
        "state": row.state,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "run_at": time_view(Some(row.run_at_ms)),
        "created_at": time_view(Some(row.created_at_ms)),
        "error": error,
    })
}

/// `GET /app/admin/jobs`: the queue summary and a page of jobs by queue and state.
pub async fn jobs_list(
    State(state): State<HttpState>,
    request: DeskRequest,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session) = try_page!(open_admin(&state, &request).await);
    try_page!(queue_service(&state, &desk, &session));
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let filter = match Filter::parse(&query) {
        Ok(filter) => filter,
        Err(message) => {
            return session.message(
                &state,
                &desk,
                StatusCode::BAD_REQUEST,
                "Not shown",
                &message,
            );
        }
    };
    let Ok(repository) = state.services.get::<Repository>("cortex desk") else {
        return unavailable(&state, &desk, &session, "The job queue", &"no repository");
    };
    let databases = Databases::of(&repository);
    let tenant = session.tenant().to_owned();
    let (summaries, mut rows) = match tokio::try_join!(
        tenant_queues(&databases, &tenant),
        tenant_jobs(&databases, &tenant, &filter)
    ) {
        Ok(read) => read,
        Err(e) => return unavailable(&state, &desk, &session, "The job queue", &e),
    };
    let more = rows.len() as i64 > filter.limit;
    rows.truncate(usize::try_from(filter.limit).unwrap_or(0));
    let next = more
        .then(|| rows.last().map(|r| filter.href(Some(r.id))))
        .flatten();
    let first = filter.before.is_some().then(|| filter.href(None));
    session.render(
        &state,
        &desk,
        StatusCode::OK,
        "jobs.html",
        json!({
            "title": "Jobs",
            "states": STATES,
            "summary": summary_view(&summaries, now_ms()),
            "queues": known_queues(&state, &summaries),
            "queue": filter.queue,
            "state": filter.state,
            "jobs": rows.iter().map(row_view).collect::<Vec<_>>(),
            "shown": rows.len(),
            "next": next,
            "first": first,
        }),
    )
}

/// Job `id` of the session's tenant, or the page that says there is none.
async fn own_job(
    jobs: &Jobs,
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    id: &str,
) -> Result<JobRow, Response> {
    let missing = || {
        session.message(
            state,
            desk,
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such job.",
        )
    };
    let Ok(number) = id.parse::<i64>() else {
        return Err(missing());
    };
    match jobs.get(session.tenant(), number).await {
        // Another tenant's job (in a shared database) is as good as none.
        Ok(Some(row)) if row.tenant == session.tenant() => Ok(row),
        Ok(_) => Err(missing()),
        Err(e) => Err(unavailable(state, desk, session, "The job", &e)),
    }
}

/// The job's page, with `notice` or `problem`.
fn job_page(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    row: &JobRow,
    status: StatusCode,
    notice: Option<String>,
    problem: Option<String>,
) -> Response {
    let mut actions = Vec::new();
    if ["dead", "cancelled", "scheduled"].contains(&row.state.as_str()) {
        let label = if row.state == "scheduled" {
            "Run now"
        } else {
            "Retry"
        };
        actions.push(json!({ "action": "retry", "label": label, "primary": true }));
    }
    if ["scheduled", "queued", "running"].contains(&row.state.as_str()) {
        actions.push(json!({ "action": "cancel", "label": "Cancel", "danger": true }));
    }
    let payload = serde_json::to_string_pretty(&row.payload).unwrap_or_default();
    session.render(
        state,
        desk,
        status,
        "job.html",
        json!({
            "title": format!("Job {}", row.id),
            "job": {
                "id": row.id,
                "kind": row.kind,
                "queue": row.queue,
                "queue_href": format!("/app/admin/jobs?queue={}", url_encode(&row.queue)),
                "state": row.state,
                "attempts": row.attempts,
                "max_attempts": row.max_attempts,
                "run_at": time_view(Some(row.run_at_ms)),
                "created_at": time_view(Some(row.created_at_ms)),
                "finished_at": time_view(row.finished_at_ms),
                "locked_by": row.locked_by,
                "last_error": row.last_error,
                "payload": payload,
            },
            "actions": actions,
            "notice": notice,
            "problem": problem,
        }),
    )
}

/// `GET /app/admin/jobs/{id}`: one job, with Retry and Cancel as its state allows.
pub async fn job_detail(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session) = try_page!(open_admin(&state, &request).await);
    let jobs = try_page!(queue_service(&state, &desk, &session));
    let row = try_page!(own_job(&jobs, &state, &desk, &session, &id).await);
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let notice = match query.get("done") {
        Some("retry") => Some("Queued to run now.".to_owned()),
        Some("cancel") => Some("Cancelled.".to_owned()),
        _ => None,
    };
    job_page(&state, &desk, &session, &row, StatusCode::OK, notice, None)
}

/// `POST /app/admin/jobs/{id}/{action}`: retry or cancel the job, then back to its page.
pub async fn job_act(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (desk, session, _) = try_page!(request.open_form(&state, &body).await);
    if !administers(&session) {
        return refuse(&state, &desk, &session);
    }
    let jobs = try_page!(queue_service(&state, &desk, &session));
    let row = try_page!(own_job(&jobs, &state, &desk, &session, &id).await);
    let (done, refusal) = match action.as_str() {
        "retry" => (
            jobs.retry(session.tenant(), row.id).await,
            "Only a dead, cancelled or scheduled job can be retried.",
        ),
        "cancel" => (
            jobs.cancel(session.tenant(), row.id).await,
            "Only a job that has not finished can be cancelled.",
        ),
        _ => {
            return session.message(
                &state,
                &desk,
                StatusCode::NOT_FOUND,
                "Unknown action",
                "Use retry or cancel.",
            );
        }
    };
    match done {
        Ok(true) => session.redirect(&format!("/app/admin/jobs/{}?done={action}", row.id)),
        // The job moved on since its page was shown: show where it is now.
        Ok(false) => {
            let now = try_page!(own_job(&jobs, &state, &desk, &session, &id).await);
            let problem = format!("Job {} is {}. {refusal}", now.id, now.state);
            job_page(
                &state,
                &desk,
                &session,
                &now,
                StatusCode::CONFLICT,
                None,
                Some(problem),
            )
        }
        Err(e) => unavailable(&state, &desk, &session, "The job", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter of `queue`, `state`, `before` and `limit`, as a query would give it.
    fn filter(queue: Option<&str>, state: Option<&str>, before: Option<i64>, limit: i64) -> Filter {
        Filter {
            queue: queue.map(str::to_owned),
            state: state.map(str::to_owned),
            before,
            limit,
        }
    }

    /// `query` parses to `expected`, or is refused with a message that has its text.
    fn check(query: &str, expected: Result<Filter, &str>) {
        let parsed = Filter::parse(&FormData::parse(query.as_bytes()).unwrap_or_default());
        match (parsed, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{query}"),
            (Err(message), Err(part)) => assert!(message.contains(part), "{query}: {message}"),
            (got, _) => panic!("{query}: {got:?}"),
        }
    }

    #[test]
    fn filters_are_checked() {
        check("", Ok(filter(None, None, None, PAGE_JOBS)));
        check(
            "queue=webhooks&state=dead&before=40&limit=10",
            Ok(filter(Some("webhooks"), Some("dead"), Some(40), 10)),
        );
        check("queue=&state=", Ok(filter(None, None, None, PAGE_JOBS)));
        check("state=exploded", Err("no job state “exploded”"));
        check("limit=0", Err("1 to 200"));
        check("limit=201", Err("1 to 200"));
        check("before=x", Err("`before` is a whole number"));
        check(&format!("queue={}", "q".repeat(101)), Err("at most 100"));
    }

    #[test]
    fn pages_keep_their_filter() {
        let dead = filter(Some("a b"), Some("dead"), Some(9), PAGE_JOBS);
        assert_eq!(
            dead.href(Some(3)),
            "/app/admin/jobs?queue=a%20b&state=dead&before=3"
        );
        assert_eq!(dead.href(None), "/app/admin/jobs?queue=a%20b&state=dead");
        let all = filter(None, None, None, 10);
        assert_eq!(all.href(None), "/app/admin/jobs?limit=10");
    }

    #[test]
    fn ages_read_as_people_say_them() {
        for (ms, expected) in [
            (-5, "0 s"),
            (45_000, "45 s"),
            (200_000, "3 min 20 s"),
            (7_500_000, "2 h 5 min"),
            (273_600_000, "3 d 4 h"),
        ] {
            assert_eq!(age(ms), expected, "{ms}");
        }
        assert_eq!(
            time_view(Some(1_773_568_923_456))["text"],
            "2026-03-15 10:02:03 UTC"
        );
        assert_eq!(time_view(None), Value::Null);
    }
}
