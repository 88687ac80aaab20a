//! The desk's queue pages (`/app/admin/jobs`, `/app/admin/schedules`) through the
//! installation's router, on SQLite and (when configured) PostgreSQL: a System Manager
//! sees the tenant's jobs (never another tenant's) by queue and state, a page at a time,
//! one job with its input and last error, retries and cancels; everyone else gets the
//! desk's refusal, and the pages render as their snapshots say.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::http::StatusCode;
use common::Api;
use common::browser::{Browser, assert_has, assert_lacks};
use prefiq::{
    App, BootMode, BootOptions, ConfigOptions, KernelError, RegisterContext, ServiceProvider,
};
use prefiq_data::entity::repo::Repository;
use prefiq_data::entity::sql::{Arg, Sql};
use prefiq_data::jobs::{JobRow, NewJob, now_ms};
use prefiq_data::testing::{TestDatabase, databases};
use prefiq_worker::schedule::{CatchUp, Schedule};
use prefiq_worker::{Databases, Jobs};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// Declares one schedule, as a module would.
struct Nightly;

#[prefiq::async_trait]
impl ServiceProvider for Nightly {
    fn name(&self) -> &'static str {
        "test::Nightly"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        cx.services.contribute(Arc::new(Schedule {
            module: "reports".into(),
            name: "nightly".into(),
            cron: "30 2 * * *".into(),
            timezone: Some("Europe/Berlin".into()),
            kind: "reports.nightly".into(),
            payload: json!({}),
            queue: "default".into(),
            catch_up: CatchUp::One,
            timeout_ms: None,
        }));
        Ok(())
    }
}

/// An installation with the job queue (whose runner is not started, so jobs stay where
/// the test puts them), cortex and one schedule; tenants `acme` and `globex`, and in
/// `acme` a user without a role.
async fn boot(db: &TestDatabase) -> Api {
    let mut vars = vec![("PREFIQ__DATABASE__URL".to_owned(), db.url.clone())];
    if let Ok(tenancy) = std::env::var("PREFIQ_TEST_TENANCY") {
        vars.push(("PREFIQ__DATABASE__TENANCY".into(), tenancy));
    }
    let app = App::new()
        .provider(prefiq_data::DatabaseProvider)
        .provider(prefiq_data::audit::AuditProvider::default())
        .provider(prefiq_worker::EventsProvider::default())
        .provider(prefiq_worker::JobsProvider::default())
        .provider(prefiq_http::HttpProvider)
        .provider(Nightly)
        .module(cortex::Cortex::new().unwrap());
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(db.root()),
        vars: Some(vars),
        ..Default::default()
    };
    let app = app.boot(options).await.unwrap();
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    let api = Api {
        router,
        app,
        root: db.root(),
    };
    let identity = api.identity();
    identity
        .create_tenant("acme", "admin@acme.test", PASSWORD)
        .await
        .unwrap();
    identity
        .create_tenant("globex", "admin@globex.test", PASSWORD)
        .await
        .unwrap();
    identity
        .create_user(
            "acme",
            "clerk@acme.test",
            PASSWORD,
            &[],
            &serde_json::Map::new(),
        )
        .await
        .unwrap();
    api
}

fn queue(api: &Api) -> Arc<Jobs> {
    api.app.resolver("test").get::<Jobs>().unwrap()
}

/// A job of `tenant`: `kind` on `queue`, due `in_ms` from now.
fn job(tenant: &str, kind: &str, queue: &str, in_ms: i64) -> NewJob {
    let mut job = NewJob::new(kind, tenant, json!({"for": tenant, "kind": kind}));
    job.queue = queue.into();
    job.run_at_ms = Some(now_ms() + in_ms);
    job
}

/// Enqueues `jobs`, returning their ids.
async fn enqueue(api: &Api, jobs: Vec<NewJob>) -> Vec<i64> {
    queue(api)
        .enqueue(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect()
}

/// Makes job `id` of `tenant` dead after three attempts, as the runner would.
async fn kill(api: &Api, tenant: &str, id: i64) {
    let repository = api.app.resolver("test").get::<Repository>().unwrap();
    let handle = Databases::of(&repository).of_tenant(tenant).await.unwrap();
    let database = handle.get().unwrap();
    let mut tx = database.begin().await.unwrap();
    let sql = Sql::new(
        "UPDATE prefiq_jobs SET state = 'dead', attempts = 3, max_attempts = 3, finished_at = run_at, last_error = $1 WHERE id = $2",
        vec![
            Arg::Text(Some("receiver answered 503 <Service Unavailable>".into())),
            Arg::Int(Some(id)),
        ],
    );
    assert_eq!(tx.conn().execute(&sql).await.unwrap(), 1);
    tx.commit().await.unwrap();
}

async fn stored(api: &Api, tenant: &str, id: i64) -> JobRow {
    queue(api).get(tenant, id).await.unwrap().unwrap()
}

/// A link to job `id` in a list.
fn link(id: i64) -> String {
    format!("href=\"/app/admin/jobs/{id}\"")
}

#[tokio::test]
async fn a_system_manager_lists_retries_and_cancels_the_tenants_jobs() {
    for db in databases("desk jobs").await {
        let api = boot(&db).await;
        let ids = enqueue(
            &api,
            vec![
                job("acme", "reports.build", "default", 0),
                job("acme", "mail.send", "default", 3_600_000),
                job("acme", "webhooks.deliver", "events", 0),
                job("acme", "reports.build", "default", 0),
            ],
        )
        .await;
        let [queued, scheduled, delivery, dead] = ids[..] else {
            panic!("{ids:?}")
        };
        // With a database per tenant, globex's ids start at 1 as acme's do: more of them
        // give the last one an id that is globex's alone, in either tenancy.
        let foreign = *enqueue(&api, vec![job("globex", "globex.secret", "default", 0); 6])
            .await
            .last()
            .unwrap();
        kill(&api, "acme", dead).await;
        let browser = Browser::new(&api, "acme");
        browser.login("admin@acme.test", PASSWORD).await;

        let home = browser.get("/app").await;
        assert_has(&home, "href=\"/app/admin/jobs\"");
        assert_has(&home, "href=\"/app/admin/schedules\"");

        // (query, jobs listed, jobs not listed): never globex's.
        let check = |query: &'static str, shown: Vec<i64>, hidden: Vec<i64>| {
            let browser = &browser;
            async move {
                let page = browser.get(&format!("/app/admin/jobs{query}")).await;
                assert_eq!(page.status, StatusCode::OK, "{query}: {}", page.body);
                for id in shown {
                    assert_has(&page, &link(id));
                }
                for id in hidden.into_iter().chain([foreign]) {
                    assert_lacks(&page, &link(id));
                }
                assert_lacks(&page, "globex.secret");
                page
            }
        };
        let all = check("", vec![queued, scheduled, delivery, dead], vec![]).await;
        // The summary: per queue, jobs per state and the oldest queued job's wait.
        assert_has(
            &all,
            "href=\"/app/admin/jobs?queue=default&amp;state=dead\" aria-label=\"1 dead in default\"",
        );
        assert_has(
            &all,
            "href=\"/app/admin/jobs?queue=default&amp;state=queued\" aria-label=\"1 queued in default\"",
        );
        assert_has(&all, "waiting <span class=\"age\">");
        assert_has(&all, "<option>events</option>");
        check(
            "?queue=events",
            vec![delivery],
            vec![queued, scheduled, dead],
        )
        .await;
        check("?state=dead", vec![dead], vec![queued, scheduled, delivery]).await;
        check(
            "?queue=default&state=queued",
            vec![queued],
            vec![scheduled, delivery, dead],
        )
        .await;
        check(
            "?queue=nothing",
            vec![],
            vec![queued, scheduled, delivery, dead],
        )
        .await;
        // A page at a time, newest first, with a link to the next.
        let first = check("?limit=2", vec![dead, delivery], vec![scheduled, queued]).await;
        let next = format!("/app/admin/jobs?limit=2&amp;before={delivery}");
        assert_has(&first, &format!("href=\"{next}\" rel=\"next\""));
        let second = browser.get(&next.replace("&amp;", "&")).await;
        assert_has(&second, &link(queued));
        assert_has(&second, &link(scheduled));
        assert_lacks(&second, &link(dead));
        assert_lacks(&second, "rel=\"next\"");
        for (query, why) in [
            ("?state=exploded", "There is no job state “exploded”"),
            ("?limit=1000", "A page shows 1 to 200 jobs."),
            ("?before=soon", "`before` is a whole number."),
        ] {
            let page = browser.get(&format!("/app/admin/jobs{query}")).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{query}");
            assert_has(&page, why);
        }

        // One job: its input, attempts and last error, and what may be done with it.
        let page = browser.get(&format!("/app/admin/jobs/{dead}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_has(&page, "<dd>3 of 3</dd>");
        assert_has(
            &page,
            "receiver answered 503 &lt;Service Unavailable&gt;</pre>",
        );
        assert_has(&page, "&quot;kind&quot;: &quot;reports.build&quot;");
        assert_has(&page, &format!("action=\"/app/admin/jobs/{dead}/retry\""));
        assert_lacks(&page, "/cancel\"");

        // (job, action, status, where it goes or what it says, state after)
        let cases = [
            (
                dead,
                "retry",
                StatusCode::SEE_OTHER,
                "?done=retry",
                "queued",
            ),
            (
                queued,
                "retry",
                StatusCode::CONFLICT,
                "is queued. Only a dead, cancelled or scheduled job can be retried.",
                "queued",
            ),
            (
                scheduled,
                "cancel",
                StatusCode::SEE_OTHER,
                "?done=cancel",
                "cancelled",
            ),
            (
                scheduled,
                "cancel",
                StatusCode::CONFLICT,
                "is cancelled. Only a job that has not finished can be cancelled.",
                "cancelled",
            ),
            (
                scheduled,
                "retry",
                StatusCode::SEE_OTHER,
                "?done=retry",
                "queued",
            ),
            (
                delivery,
                "explode",
                StatusCode::NOT_FOUND,
                "Use retry or cancel.",
                "queued",
            ),
        ];
        for (id, action, status, said, after) in cases {
            let page = browser
                .post(&format!("/app/admin/jobs/{id}/{action}"), &[])
                .await;
            assert_eq!(page.status, status, "{id} {action}: {}", page.body);
            if status == StatusCode::SEE_OTHER {
                assert_eq!(page.location(), format!("/app/admin/jobs/{id}{said}"));
                let shown = browser.get(&page.location()).await;
                assert_has(&shown, "class=\"notice ok\"");
            } else {
                assert_has(&page, said);
            }
            assert_eq!(stored(&api, "acme", id).await.state, after, "{id} {action}");
        }
        // A retried dead job gets one more attempt than it has spent.
        assert_eq!(stored(&api, "acme", dead).await.max_attempts, 4);

        // Another tenant's job is not there, and is left alone.
        for (method, path) in [
            ("GET", format!("/app/admin/jobs/{foreign}")),
            ("POST", format!("/app/admin/jobs/{foreign}/cancel")),
            ("GET", "/app/admin/jobs/not-a-number".to_owned()),
        ] {
            let page = match method {
                "GET" => browser.get(&path).await,
                _ => browser.post(&path, &[]).await,
            };
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
            assert_has(&page, "There is no such job.");
        }
        assert_eq!(stored(&api, "globex", foreign).await.state, "queued");
        // A form without the session's CSRF token changes nothing.
        let forged = browser
            .post(
                &format!("/app/admin/jobs/{delivery}/cancel"),
                &[("_csrf", &"0".repeat(64))],
            )
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        assert_eq!(stored(&api, "acme", delivery).await.state, "queued");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn only_a_system_manager_may_use_the_queue_pages() {
    for db in databases("desk jobs refused").await {
        let api = boot(&db).await;
        let ids = enqueue(&api, vec![job("acme", "reports.build", "default", 0)]).await;
        let id = ids[0];
        let clerk = Browser::new(&api, "acme");
        clerk.login("clerk@acme.test", PASSWORD).await;
        let home = clerk.get("/app").await;
        assert_lacks(&home, "/app/admin/jobs");
        assert_lacks(&home, "/app/admin/schedules");
        // (method, path): each refused with the desk's page, nothing done.
        let check = |method: &'static str, path: String| {
            let clerk = &clerk;
            async move {
                let page = match method {
                    "GET" => clerk.get(&path).await,
                    _ => clerk.post(&path, &[]).await,
                };
                assert_eq!(page.status, StatusCode::FORBIDDEN, "{method} {path}");
                assert_has(&page, "<title>Not allowed · Codexion</title>");
                assert_has(
                    &page,
                    "Only a System Manager of this organisation may see its jobs and schedules.",
                );
            }
        };
        check("GET", "/app/admin/jobs".into()).await;
        check("GET", "/app/admin/jobs?state=queued".into()).await;
        check("GET", format!("/app/admin/jobs/{id}")).await;
        check("POST", format!("/app/admin/jobs/{id}/cancel")).await;
        check("GET", "/app/admin/schedules".into()).await;
        assert_eq!(stored(&api, "acme", id).await.state, "queued");
        // Another tenant's System Manager is not acme's: signed in to globex, the session
        // is not this site's, so acme's pages ask for a sign-in.
        let stranger = Browser::new(&api, "globex");
        stranger.login("admin@globex.test", PASSWORD).await;
        let session = stranger.cookie("prefiq_session").unwrap();
        let intruder = Browser::new(&api, "acme");
        intruder.set_cookie("prefiq_session", &session);
        let page = intruder.get(&format!("/app/admin/jobs/{id}")).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(
            page.location().starts_with("/app/login"),
            "{}",
            page.location()
        );
        // Signed out, the pages lead to the login form and back.
        let anonymous = Browser::new(&api, "acme");
        let page = anonymous.get("/app/admin/schedules").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), "/app/login?next=/app/admin/schedules");
        db.cleanup().await;
    }
}

/// The page with its changing parts (tokens, times, ages) replaced, so that a snapshot
/// is stable.
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let time = rest.find("<time datetime=\"");
        let age = rest.find("<span class=\"age\">");
        let token = rest.find("value=\"");
        let Some(at) = [time, age, token].into_iter().flatten().min() else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if Some(at) == time {
            let end = rest.find("</time>").unwrap() + "</time>".len();
            out.push_str("<time>[time]</time>");
            rest = &rest[end..];
        } else if Some(at) == age {
            let end = rest.find("</span>").unwrap() + "</span>".len();
            out.push_str("<span class=\"age\">[age]</span>");
            rest = &rest[end..];
        } else {
            let value = &rest["value=\"".len()..];
            let end = value.find('"').unwrap();
            let is_token = end == 64 && value[..end].bytes().all(|b| b.is_ascii_hexdigit());
            out.push_str("value=\"");
            out.push_str(if is_token { "[token]" } else { &value[..end] });
            rest = &value[end..];
        }
    }
}

#[tokio::test]
async fn rendered_queue_pages_match_their_snapshots() {
    // SQLite only: the pages are the same on both backends, and one snapshot is enough.
    let db = TestDatabase::sqlite().unwrap();
    let api = boot(&db).await;
    let ids = enqueue(
        &api,
        vec![
            job("acme", "reports.build", "default", 0),
            job("acme", "mail.send", "default", 3_600_000),
            job("acme", "webhooks.deliver", "events", 0),
        ],
    )
    .await;
    kill(&api, "acme", ids[2]).await;
    // The schedule last enqueued a run at a known time.
    let repository = api.app.resolver("test").get::<Repository>().unwrap();
    let main = repository.main_database();
    let database = main.get().unwrap();
    let mut tx = database.begin().await.unwrap();
    prefiq_data::jobs::advance_schedule(&mut tx.conn(), "reports::nightly", 1_773_538_200_000)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let admin = Browser::new(&api, "acme");
    admin.login("admin@acme.test", PASSWORD).await;
    insta::assert_snapshot!("jobs", redact(&admin.get("/app/admin/jobs").await.body));
    insta::assert_snapshot!(
        "dead_job",
        redact(&admin.get(&format!("/app/admin/jobs/{}", ids[2])).await.body)
    );
    // And the tenant has a schedule of its own, in its zone.
    let scope = prefiq_data::entity::repo::TenantScope::new(
        &prefiq::Context::system("en").with_tenant("acme"),
    )
    .unwrap();
    let own = repository
        .create(
            &scope,
            "schedule",
            json!({"title": "Nightly export", "cron": "0 2 * * *", "timezone": "Europe/Zurich"}),
        )
        .await
        .unwrap();
    let own = own["id"].as_str().unwrap().to_owned();
    let schedules = admin.get("/app/admin/schedules").await;
    assert_has(&schedules, "datetime=\"2026-03-15T01:30:00Z\"");
    assert_has(&schedules, "Nightly export");
    insta::assert_snapshot!(
        "schedules",
        redact(&schedules.body.replace(&own, "[schedule id]"))
    );
    let clerk = Browser::new(&api, "acme");
    clerk.login("clerk@acme.test", PASSWORD).await;
    insta::assert_snapshot!(
        "jobs_refused",
        redact(&clerk.get("/app/admin/jobs").await.body)
    );
    db.cleanup().await;
}
