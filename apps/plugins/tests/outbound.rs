//! A plugin's outbound HTTP, on SQLite and PostgreSQL: a request to a host its manifest
//! grants goes out and its answer comes back; a request to any other host is refused
//! before anything is sent.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{boot, files};
use prefiq_data::testing::databases;
use prefiq_plugin::sandbox::CallContext;
use prefiq_plugin::testing::HookBody;
use serde_json::{Value, json};

#[tokio::test]
async fn a_plugin_reaches_the_hosts_it_was_granted_and_no_other() {
    let app = axum::Router::new().route(
        "/rates",
        axum::routing::post(|body: String| async move { format!("{{\"echo\":{body}}}") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    for db in databases("plugins_outbound").await {
        let api = boot(&db).await;
        let manifest = "name: rates\nversion: 0.1.0\ncapabilities:\n  http: [127.0.0.1]\n  hooks:\n    - {entity: todo, event: validate}\n";
        api.plugins()
            .install(&api.signed(&files(manifest, HookBody::FetchDoc)), false)
            .await
            .unwrap();
        let acme = api.tenant("acme").await;
        let (s, _) = api
            .call("POST", "/api/v1/plugins/rates/enable", &acme, None)
            .await;
        assert_eq!(s, axum::http::StatusCode::NO_CONTENT);
        let state = api.plugins().state();
        let plugin = state.installed.get("rates").unwrap().clone();
        let host = api
            .app
            .resolver("test")
            .get::<plugins::host::RepositoryHost>()
            .unwrap();
        let context = CallContext {
            plugin: "rates".into(),
            tenant: "acme".into(),
            trace_id: String::new(),
            config: "{}".into(),
            clock: false,
            http_hosts: Arc::from(vec!["127.0.0.1".to_owned()]),
        };
        let call = |request: Value| {
            let (plugin, host, context) = (plugin.clone(), host.clone(), context.clone());
            async move {
                plugin
                    .plugin
                    .hook(host, context, "validate", "todo", &request.to_string(), "")
                    .await
                    .unwrap()
            }
        };
        let answer = call(json!({"method": "POST", "url": format!("http://127.0.0.1:{port}/rates"), "body": {"from": "EUR"}}))
            .await
            .unwrap();
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["status"], 200, "{answer}");
        assert_eq!(answer["body"], "{\"echo\":{\"from\":\"EUR\"}}", "{answer}");
        let refused = call(json!({"url": format!("http://localhost:{port}/rates")}))
            .await
            .unwrap_err();
        assert!(
            refused.contains("localhost is not a host this plugin was granted"),
            "{refused}"
        );
        let refused = call(json!({"url": "http://example.com/"}))
            .await
            .unwrap_err();
        assert!(refused.contains("example.com is not a host"), "{refused}");
        db.cleanup().await;
    }
}
