//! The webhooks' desk pages through the installation's router, on SQLite and (when
//! configured) PostgreSQL: a System Manager sees the tenant's webhooks (never another
//! tenant's) and each one's deliveries, and sends a delivery again; everyone else gets the
//! API's refusal; the pages render as their snapshots say.
#![allow(clippy::unwrap_used)]

#[path = "../../cortex/tests/common/browser.rs"]
mod browser;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use browser::{Browser, assert_has, assert_lacks, redact_ids as redact};
use prefiq::{App, BootMode, BootOptions, ConfigOptions};
use prefiq_data::entity::repo::Repository;
use prefiq_data::testing::{TestDatabase, databases};
use prefiq_worker::{Event, Jobs};
use serde_json::{Value, json};
use tower::ServiceExt;
use webhooks::service::{DELIVER_JOB, system_scope};
use webhooks::store::{self, Delivery};

const PASSWORD: &str = "correct horse battery";

/// The installation the browser talks to.
pub struct Api {
    /// Its router, which the browser sends requests through.
    pub router: axum::Router,
    /// The booted installation, for its services.
    pub app: prefiq::BootedApp,
}

/// An installation with the job queue (its runner not started, so a redelivery stays
/// queued), cortex and webhooks; tenants `acme` and `globex`, and in `acme` a user
/// without a role.
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
        .module(cortex::Cortex::new().unwrap())
        .module(webhooks::WebhooksModule::new().unwrap());
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(db.root()),
        vars: Some(vars),
        ..Default::default()
    };
    let app = app.boot(options).await.unwrap();
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    let identity = app
        .resolver("test")
        .get::<cortex::identity::Identity>()
        .unwrap();
    for tenant in ["acme", "globex"] {
        identity
            .create_tenant(tenant, &format!("admin@{tenant}.test"), PASSWORD)
            .await
            .unwrap();
    }
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
    Api { router, app }
}

impl Api {
    /// One API call as the tenant's administrator: status and JSON body.
    async fn call(
        &self,
        tenant: &str,
        method: &str,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let send = |request: Request<Body>| async move {
            let response = self.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        };
        let (_, login) = send(
            Request::builder()
                .method("POST")
                .uri("/api/v1/auth/login")
                .header("content-type", "application/json")
                .header("x-tenant", tenant)
                .body(Body::from(
                    json!({"email": format!("admin@{tenant}.test"), "password": PASSWORD})
                        .to_string(),
                ))
                .unwrap(),
        )
        .await;
        let token = login["access_token"].as_str().unwrap();
        send(
            Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json")
                .header("x-tenant", tenant)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    /// A webhook of `tenant` to `url`, made through the API; its id.
    async fn webhook(&self, tenant: &str, url: &str) -> String {
        let (status, hook) = self
            .call(
                tenant,
                "POST",
                "/api/v1/webhooks",
                json!({"url": url, "events": ["todo.created"], "description": "Orders desk"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{hook}");
        hook["id"].as_str().unwrap().to_owned()
    }

    fn jobs(&self) -> Arc<Jobs> {
        self.app.resolver("test").get::<Jobs>().unwrap()
    }
}

/// Logs two attempts to deliver event `event_id` to webhook `hook` of `tenant` (a 503,
/// then a 204), as the delivery job would; their ids, oldest first.
async fn log_attempts(api: &Api, tenant: &str, hook: &str, event_id: &str) -> Vec<i64> {
    let repository = api.app.resolver("test").get::<Repository>().unwrap();
    let scope = system_scope(tenant).unwrap();
    let event = Event {
        id: event_id.into(),
        tenant: tenant.into(),
        entity: "todo".into(),
        record_id: "0195f2a4-0000-7000-8000-000000000001".into(),
        action: "created".into(),
        data: json!({"description": "Call the bank"}),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        trace_parent: None,
        occurred_at: "2026-03-15T10:02:03Z".into(),
        seq: 1,
    };
    let payload =
        json!({"type": "todo.created", "timestamp": "2026-03-15T10:02:03Z", "data": event})
            .to_string();
    for (attempt, status, code, error, at) in [
        (
            1,
            "failed",
            503,
            Some("the receiver answered 503"),
            "2026-03-15T10:02:03Z",
        ),
        (2, "succeeded", 204, None, "2026-03-15T10:02:05.250Z"),
    ] {
        let delivery = Delivery {
            id: 0,
            webhook_id: hook.into(),
            event_id: event_id.into(),
            event: "todo.created".into(),
            attempt,
            status: status.into(),
            response_code: Some(code),
            duration_ms: 40 + attempt,
            error: error.map(str::to_owned),
            created_at: at.into(),
        };
        store::record(&repository, &scope, &delivery, &payload)
            .await
            .unwrap();
    }
    let mut ids: Vec<i64> = store::deliveries(&repository, &scope, hook, 10, None)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    ids.reverse();
    ids
}

/// The ids of the tenant's delivery jobs.
async fn delivery_jobs(api: &Api) -> Vec<i64> {
    api.jobs()
        .list(Some(webhooks::service::QUEUE), None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, row)| row.kind == DELIVER_JOB)
        .map(|(_, row)| row.id)
        .collect()
}

#[tokio::test]
async fn a_system_manager_sees_deliveries_and_sends_one_again() {
    for db in databases("webhooks desk").await {
        let api = boot(&db).await;
        let hook = api.webhook("acme", "http://127.0.0.1:9/orders").await;
        let foreign = api.webhook("globex", "http://127.0.0.1:9/globex").await;
        let event = "0195f2a4-1111-7000-8000-00000000000a";
        let [first, second] = log_attempts(&api, "acme", &hook, event).await[..] else {
            panic!("two attempts")
        };
        let browser = Browser::new(&api, "acme");
        browser.login("admin@acme.test", PASSWORD).await;

        // Links: from home, from the webhook's record and from the generic list.
        let deliveries = format!("/app/webhooks/{hook}");
        // (page, link it has)
        let links = [
            ("/app".to_owned(), "href=\"/app/webhooks\"".to_owned()),
            (
                "/app/e/webhook".to_owned(),
                "href=\"/app/webhooks\"".to_owned(),
            ),
            (
                format!("/app/e/webhook/{hook}"),
                format!("href=\"{deliveries}\""),
            ),
            ("/app/webhooks".to_owned(), format!("href=\"{deliveries}\"")),
        ];
        for (path, link) in links {
            let page = browser.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
            assert_has(&page, &link);
            assert_lacks(&page, &foreign);
        }

        // The log: every attempt with its status, response, duration and time.
        let page = browser.get(&deliveries).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for text in [
            "<h1>Deliveries to http://127.0.0.1:9/orders",
            "<span class=\"status status-failed\">failed</span>",
            "<td class=\"num\">503</td>",
            "<td class=\"num\">41 ms</td>",
            "the receiver answered 503",
            "<time datetime=\"2026-03-15T10:02:05.25Z\">2026-03-15 10:02:05 UTC</time>",
            &format!("action=\"{deliveries}/deliveries/{first}/redeliver\""),
            &format!("action=\"{deliveries}/deliveries/{second}/redeliver\""),
        ] {
            assert_has(&page, text);
        }
        // Paging back: before the newest, only the first attempt.
        let older = browser.get(&format!("{deliveries}?before={second}")).await;
        assert_has(&older, &format!("/deliveries/{first}/redeliver"));
        assert_lacks(&older, &format!("/deliveries/{second}/redeliver"));
        assert_has(&older, "Newest deliveries");

        // Redeliver: a new delivery job of the same event, and a notice that links it.
        let before = delivery_jobs(&api).await;
        let sent = browser
            .post(&format!("{deliveries}/deliveries/{first}/redeliver"), &[])
            .await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
        let after = delivery_jobs(&api).await;
        assert_eq!(after.len(), before.len() + 1, "{before:?} {after:?}");
        let job = after.iter().max().copied().unwrap();
        assert_eq!(
            sent.location(),
            format!("{deliveries}?redelivered={first}&job={job}")
        );
        let stored = api.jobs().get("acme", job).await.unwrap().unwrap();
        assert_eq!(
            (
                stored.state.as_str(),
                stored.payload["webhook"].as_str(),
                stored.payload["event"]["id"].as_str()
            ),
            ("queued", Some(hook.as_str()), Some(event))
        );
        let shown = browser.get(&sent.location()).await;
        assert_has(
            &shown,
            &format!("Delivery {first} is queued to be sent again, as job {job}."),
        );
        assert_has(&shown, &format!("href=\"/app/admin/jobs/{job}\""));

        // (method, path, status, what the page says): nothing else is sent.
        let cases = [
            (
                "POST",
                format!("{deliveries}/deliveries/999999/redeliver"),
                StatusCode::NOT_FOUND,
                "webhook delivery",
            ),
            (
                "POST",
                format!("{deliveries}/deliveries/x/redeliver"),
                StatusCode::NOT_FOUND,
                "webhook delivery",
            ),
            (
                "GET",
                format!("/app/webhooks/{foreign}"),
                StatusCode::NOT_FOUND,
                "Not shown",
            ),
            (
                "POST",
                format!("/app/webhooks/{foreign}/deliveries/{first}/redeliver"),
                StatusCode::NOT_FOUND,
                "Not shown",
            ),
            (
                "GET",
                format!("{deliveries}?before=soon"),
                StatusCode::BAD_REQUEST,
                "`before` is the number of a delivery.",
            ),
        ];
        for (method, path, status, said) in cases {
            let page = match method {
                "GET" => browser.get(&path).await,
                _ => browser.post(&path, &[]).await,
            };
            assert_eq!(page.status, status, "{method} {path}: {}", page.body);
            assert_has(&page, said);
        }
        assert_eq!(delivery_jobs(&api).await, after);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn only_those_who_manage_webhooks_see_the_pages() {
    for db in databases("webhooks desk refused").await {
        let api = boot(&db).await;
        let hook = api.webhook("acme", "http://127.0.0.1:9/orders").await;
        let first =
            log_attempts(&api, "acme", &hook, "0195f2a4-1111-7000-8000-00000000000b").await[0];
        let clerk = Browser::new(&api, "acme");
        clerk.login("clerk@acme.test", PASSWORD).await;
        assert_lacks(&clerk.get("/app").await, "/app/webhooks");
        let before = delivery_jobs(&api).await;
        // (method, path): each refused with the desk's page.
        for (method, path) in [
            ("GET", "/app/webhooks".to_owned()),
            ("GET", format!("/app/webhooks/{hook}")),
            (
                "POST",
                format!("/app/webhooks/{hook}/deliveries/{first}/redeliver"),
            ),
        ] {
            let page = match method {
                "GET" => clerk.get(&path).await,
                _ => clerk.post(&path, &[]).await,
            };
            assert_eq!(
                page.status,
                StatusCode::FORBIDDEN,
                "{method} {path}: {}",
                page.body
            );
            assert_has(&page, "<title>Not allowed · Codexion</title>");
            assert_has(&page, "webhooks.manage");
        }
        assert_eq!(delivery_jobs(&api).await, before, "nothing was sent again");
        // A forged form (another token) is refused before anything is asked.
        let admin = Browser::new(&api, "acme");
        admin.login("admin@acme.test", PASSWORD).await;
        let forged = admin
            .post(
                &format!("/app/webhooks/{hook}/deliveries/{first}/redeliver"),
                &[("_csrf", &"0".repeat(64))],
            )
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        assert_eq!(delivery_jobs(&api).await, before);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn rendered_webhook_pages_match_their_snapshots() {
    // SQLite only: the pages are the same on both backends, and one snapshot is enough.
    let db = TestDatabase::sqlite().unwrap();
    let api = boot(&db).await;
    let hook = api.webhook("acme", "http://127.0.0.1:9/orders").await;
    let ids = log_attempts(&api, "acme", &hook, "0195f2a4-1111-7000-8000-00000000000c").await;
    let admin = Browser::new(&api, "acme");
    admin.login("admin@acme.test", PASSWORD).await;
    insta::assert_snapshot!("webhooks", redact(&admin.get("/app/webhooks").await.body));
    insta::assert_snapshot!(
        "deliveries",
        redact(&admin.get(&format!("/app/webhooks/{hook}")).await.body)
    );
    let sent = admin
        .post(
            &format!("/app/webhooks/{hook}/deliveries/{}/redeliver", ids[0]),
            &[],
        )
        .await;
    insta::assert_snapshot!(
        "deliveries_after_redelivery",
        redact(&admin.get(&sent.location()).await.body)
    );
    let clerk = Browser::new(&api, "acme");
    clerk.login("clerk@acme.test", PASSWORD).await;
    insta::assert_snapshot!(
        "deliveries_refused",
        redact(&clerk.get(&format!("/app/webhooks/{hook}")).await.body)
    );
    db.cleanup().await;
}
