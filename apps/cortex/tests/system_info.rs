//! Cortex boots through the same path as every app and serves its route.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use prefiq::{App, BootMode, BootOptions, ConfigOptions};
use prefiq_data::DatabaseProvider;
use prefiq_data::testing::TestDatabase;
use prefiq_http::HttpProvider;
use tower::ServiceExt;

#[tokio::test]
async fn system_info_lists_the_installed_modules() {
    let db = TestDatabase::sqlite().unwrap();
    let app = App::new()
        .provider(DatabaseProvider)
        .provider(HttpProvider)
        .module(cortex::Cortex::new().unwrap());
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(db.root()),
        vars: Some(vec![("PREFIQ__DATABASE__URL".into(), db.url.clone())]),
        ..Default::default()
    };
    let app = app.boot(options).await.unwrap();
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    let response = router
        .oneshot(
            Request::get("/api/v1/system/info")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["name"], "Codexion");
    assert_eq!(body["env"], "development");
    assert_eq!(body["modules"][0]["name"], "cortex");
    assert_eq!(body["modules"][0]["permissions"][0], "cortex.system.read");
    assert_eq!(
        body["modules"][0]["hooks"],
        serde_json::json!(["on_ready:announce", "on_upgrade:record"])
    );
    app.shutdown().await.unwrap();
}
