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

/// Past `keyword::SCORED_ROWS_MAX` matching rows the keyword search relaxes the query
/// instead of scoring every row (see `src/keyword.rs`): the rows matching all its words
/// still come first, and a rare identifier is still found. SQLite only: PostgreSQL ranks
/// the plain `OR` of the words with `ts_rank_cd`, unbounded.
#[tokio::test]
async fn a_query_of_common_words_over_many_rows_still_ranks_the_full_match_first() {
    {
        let db = prefiq_data::testing::TestDatabase::sqlite().unwrap();
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let rows = memory::keyword::SCORED_ROWS_MAX as usize + 500;
        let filler: Vec<serde_json::Value> = (0..rows)
            .map(|i| {
                let who = ["Maria", "Tom", "Ana", "Li"][i % 4];
                let what = ["invoice", "report", "contract"][i % 3];
                json!({"text": format!("{who} filed the {what} for the week, ref W-{i:05}.")})
            })
            .collect();
        for chunk in filler.chunks(500) {
            api.add(&acme, serde_json::Value::Array(chunk.to_vec()))
                .await;
        }
        let ids = api
            .add(
                &acme,
                json!([{"text": "Maria disputed the freight invoice from Porto."}]),
            )
            .await;
        api.embedded(&acme, rows + 1).await;
        let found = |query: &str| {
            let (api, acme) = (&api, &acme);
            let query = query.to_owned();
            async move {
                api.search(acme, json!({"query": query, "mode": "keyword", "limit": 5}))
                    .await
            }
        };
        // `the` is in every row, `Maria` and `invoice` in thousands: relaxed, not scored.
        let hits = found("what did Maria say about the freight invoice from Porto?").await;
        assert_eq!(hits.first(), Some(&ids[0]), "{hits:?}");
        let (_, answer) = api
            .call(
                "POST",
                "/api/v1/memory/search",
                &acme,
                Some(json!({"query": "the invoice Maria disputed", "mode": "keyword", "limit": 5})),
            )
            .await;
        assert_eq!(answer["data"][0]["id"], ids[0].as_str(), "{answer}");
        assert_eq!(found("the week W-01234").await.len(), 5);
        let (_, answer) = api
            .call(
                "POST",
                "/api/v1/memory/search",
                &acme,
                Some(json!({"query": "W-01234", "mode": "keyword"})),
            )
            .await;
        assert_eq!(answer["data"].as_array().unwrap().len(), 1, "{answer}");
        assert!(
            answer["data"][0]["text"]
                .as_str()
                .unwrap()
                .contains("W-01234")
        );
        db.cleanup().await;
    }
}
