//! How memory runs without its model (keyword-only, and says so), and how the vector
//! index survives a restart: reloaded from its file, rebuilt from the database when the
//! file is missing or corrupt.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{boot, boot_with};
use prefiq_data::testing::databases;
use serde_json::json;

#[tokio::test]
async fn without_its_model_memory_is_keyword_only_and_says_so() {
    for db in databases("memory_keyword_only").await {
        let models = tempfile::tempdir().unwrap();
        let api = boot_with(
            &db,
            &[
                ("PREFIQ__MEMORY__MODEL", "all-minilm-l6-v2"),
                (
                    "PREFIQ__MEMORY__MODELS_DIR",
                    models.path().to_str().unwrap(),
                ),
            ],
        )
        .await;
        let acme = api.tenant("acme").await;
        let (status, ready) = api.call("GET", "/readyz", "", None).await;
        assert_eq!(status, StatusCode::OK, "{ready}");
        let line = ready["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "memory")
            .cloned()
            .unwrap();
        assert!(
            line["detail"].as_str().unwrap().starts_with("keyword-only"),
            "{line}"
        );
        assert!(
            line["detail"]
                .as_str()
                .unwrap()
                .contains("prefiq memory model-install"),
            "{line}"
        );

        let ids = api
            .add(
                &acme,
                json!([{"text": "Invoice INV-88123 was paid twice by mistake."}]),
            )
            .await;
        let (_, stats) = api.call("GET", "/api/v1/memory/stats", &acme, None).await;
        assert_eq!(stats["mode"], "keyword-only", "{stats}");
        assert_eq!(stats["model"], serde_json::Value::Null);
        assert!(stats["reason"].as_str().is_some());
        common::eventually("keyword search finds the item", || async {
            let (_, answer) = api
                .call(
                    "POST",
                    "/api/v1/memory/search",
                    &acme,
                    Some(json!({"query": "INV-88123"})),
                )
                .await;
            answer["mode"] == "keyword" && answer["data"][0]["id"] == ids[0].as_str()
        })
        .await;
        let (status, answer) = api
            .call(
                "POST",
                "/api/v1/memory/search",
                &acme,
                Some(json!({"query": "x", "mode": "vector"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer["errors"][0]["pointer"], "/mode");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_saved_index_is_reloaded_and_a_corrupt_one_rebuilt() {
    for db in databases("memory_index_file").await {
        let query = json!({"query": "what dog does Maria have", "mode": "vector"});
        let id = {
            let api = boot(&db).await;
            let acme = api.tenant("acme").await;
            let ids = api
                .add(&acme, json!([{"text": "Maria adopted a beagle puppy."}, {"text": "The printer on floor two is out of toner."}]))
                .await;
            api.embedded(&acme, 2).await;
            assert_eq!(
                api.search(&acme, query.clone()).await.first(),
                Some(&ids[0])
            );
            api.memory().indexes().unwrap().save_all().await;
            api.app.shutdown().await.unwrap();
            ids[0].clone()
        };
        let file = db.root().join("data/memory/acme/static-minilm-256.index");
        assert!(file.exists(), "no index file at {}", file.display());

        // Reloaded from its file.
        let api = boot(&db).await;
        let acme = api.login("acme", "admin@acme.test").await;
        assert_eq!(api.search(&acme, query.clone()).await.first(), Some(&id));
        api.app.shutdown().await.unwrap();

        // Corrupt: rebuilt from the database.
        std::fs::write(&file, b"not an index").unwrap();
        let api = boot(&db).await;
        let acme = api.login("acme", "admin@acme.test").await;
        assert_eq!(api.search(&acme, query.clone()).await.first(), Some(&id));
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}
