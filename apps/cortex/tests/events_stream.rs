//! `GET /api/v1/events/stream`: the caller's tenant's events, as server-sent events, as
//! the relay delivers them; another tenant's never; an entity the caller may not read is
//! refused. On SQLite and (when configured) PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt;
use prefiq::{App, BootMode, BootOptions, ConfigOptions};
use prefiq_data::testing::databases;
use serde_json::{Value, json};
use tower::ServiceExt;

#[tokio::test]
async fn a_listener_sees_its_tenants_events_as_they_commit() {
    for db in databases("events stream").await {
        let app = App::new()
            .provider(prefiq_data::DatabaseProvider)
            .provider(prefiq_data::audit::AuditProvider::default())
            .provider(prefiq_worker::EventsProvider::default())
            .provider(prefiq_worker::JobsProvider::default())
            .provider(prefiq_http::HttpProvider)
            .module(cortex::Cortex::new().unwrap());
        let mut options = BootOptions::new(BootMode::Serve);
        options.config = ConfigOptions {
            root: Some(db.root()),
            vars: Some(vec![("PREFIQ__DATABASE__URL".into(), db.url.clone())]),
            ..Default::default()
        };
        let mut app = app.boot(options).await.unwrap();
        app.ready().await.unwrap();
        let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
        let identity = app
            .resolver("test")
            .get::<cortex::identity::Identity>()
            .unwrap();
        identity
            .create_tenant("acme", "admin@acme.test", "correct horse")
            .await
            .unwrap();
        identity
            .create_tenant("globex", "admin@globex.test", "battery staple")
            .await
            .unwrap();
        let call = |method: &str, path: &str, tenant: &str, token: &str, body: Option<Value>| {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json")
                .header("x-tenant", tenant)
                .header("authorization", format!("Bearer {token}"))
                .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
                .unwrap();
            router.clone().oneshot(request)
        };
        let login = |tenant: &'static str, email: &'static str, password: &'static str| {
            let router = router.clone();
            async move {
                let request = Request::builder()
                    .method("POST")
                    .uri("/api/v1/auth/login")
                    .header("content-type", "application/json")
                    .header("x-tenant", tenant)
                    .body(Body::from(
                        json!({"email": email, "password": password}).to_string(),
                    ))
                    .unwrap();
                let response = router.oneshot(request).await.unwrap();
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap();
                body["access_token"].as_str().unwrap().to_owned()
            }
        };
        let acme = login("acme", "admin@acme.test", "correct horse").await;
        let globex = login("globex", "admin@globex.test", "battery staple").await;

        // Unknown entities are refused before the stream opens.
        let refused = call(
            "GET",
            "/api/v1/events/stream?entities=nope",
            "acme",
            &acme,
            None,
        )
        .await
        .unwrap();
        assert_eq!(refused.status(), StatusCode::NOT_FOUND);

        let response = call(
            "GET",
            "/api/v1/events/stream?entities=todo",
            "acme",
            &acme,
            None,
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let mut body = response.into_body().into_data_stream();

        // Another tenant's write first, then acme's own.
        let (status, _) = {
            let r = call(
                "POST",
                "/api/v1/resources/todo",
                "globex",
                &globex,
                Some(json!({"description": "theirs"})),
            )
            .await
            .unwrap();
            (r.status(), ())
        };
        assert_eq!(status, StatusCode::CREATED);
        let created = call(
            "POST",
            "/api/v1/resources/todo",
            "acme",
            &acme,
            Some(json!({"description": "ours"})),
        )
        .await
        .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);

        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !text.contains("\n\n") || !text.contains("event: todo.created") {
            let chunk = tokio::time::timeout_at(deadline, body.next())
                .await
                .expect("an event within 15 s")
                .unwrap()
                .unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(text.contains("event: todo.created"), "{text}");
        let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        let event: Value = serde_json::from_str(data).unwrap();
        assert_eq!(event["data"]["description"], "ours", "{text}");
        assert!(!text.contains("theirs"), "{text}");
        drop(body);
        app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}
