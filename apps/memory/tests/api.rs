//! The memory API on SQLite and PostgreSQL: items are found again by meaning and by
//! keyword, never across tenants or permissions; bad input names its pointer and writes
//! nothing; context packs stay within budget; tiers move by schedule; forgetting erases.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Api, boot};
use prefiq_data::testing::databases;
use serde_json::{Value, json};

fn items() -> Value {
    json!([
        {"kind": "fact", "subject": "maria", "text": "Maria adopted a beagle puppy named Pico last spring.", "tags": ["pets"], "occurred_at": "2026-03-10T09:00:00Z"},
        {"kind": "episode", "subject": "tom", "text": "Tom ordered forty chairs on purchase order PO-2026-00417 for the new office.", "tags": ["purchasing"], "occurred_at": "2026-04-02T15:30:00Z"},
        {"kind": "note", "text": "The quarterly board meeting moved to Thursday afternoon.", "occurred_at": "2026-04-20T08:00:00Z"},
        {"kind": "fact", "subject": "ana", "text": "Ana is allergic to peanuts and avoids Thai takeaway.", "tags": ["health"], "occurred_at": "2026-01-15T12:00:00Z"},
        {"kind": "episode", "subject": "li", "text": "Li flew to Osaka to visit the packaging supplier about the delayed shipment.", "tags": ["travel"], "occurred_at": "2026-05-05T07:00:00Z"},
        {"kind": "fact", "subject": "maria", "text": "Maria moved from Porto to Lisbon in June to be closer to her sister.", "tags": ["home"], "occurred_at": "2026-06-01T10:00:00Z"},
    ])
}

#[tokio::test]
async fn items_are_found_by_meaning_and_keyword_and_never_across_tenants() {
    for db in databases("memory_search").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let globex = api.tenant("globex").await;
        let ids = api.add(&acme, items()).await;
        let theirs = api
            .add(&globex, json!([{"kind": "fact", "subject": "maria", "text": "Maria adopted a beagle puppy named Pico last spring."}]))
            .await;
        api.embedded(&acme, 6).await;
        api.embedded(&globex, 1).await;

        // By meaning, by keyword, and both.
        let dog = api
            .search(
                &acme,
                json!({"query": "what kind of dog does Maria have?", "mode": "vector"}),
            )
            .await;
        assert_eq!(dog.first(), Some(&ids[0]), "{dog:?}");
        let order = api
            .search(&acme, json!({"query": "PO-2026-00417", "mode": "keyword"}))
            .await;
        assert_eq!(order, vec![ids[1].clone()]);
        for query in ["what kind of dog does Maria have?", "PO-2026-00417"] {
            let hybrid = api.search(&acme, json!({"query": query})).await;
            let expected = if query.starts_with("PO") {
                &ids[1]
            } else {
                &ids[0]
            };
            assert!(
                hybrid.iter().take(3).any(|id| id == expected),
                "{query}: {hybrid:?}"
            );
            assert!(
                !hybrid.contains(&theirs[0]),
                "another tenant's item came back"
            );
        }
        let (_, answer) = api
            .call(
                "POST",
                "/api/v1/memory/search",
                &acme,
                Some(json!({"query": "beagle"})),
            )
            .await;
        let hit = &answer["data"][0];
        assert_eq!(
            hit["text"],
            "Maria adopted a beagle puppy named Pico last spring."
        );
        assert_eq!(hit["kind"], "fact");
        assert_eq!(hit["subject"], "maria");
        assert_eq!(hit["occurred_at"], "2026-03-10T09:00:00Z");
        assert!(hit["score"].as_f64().unwrap() > 0.0);
        assert_eq!(answer["mode"], "hybrid");

        // Filters and as_of.
        let facts = api
            .search(
                &acme,
                json!({"query": "Maria", "filters": [["kind", "=", "fact"]], "limit": 20}),
            )
            .await;
        assert!(
            !facts.is_empty()
                && facts
                    .iter()
                    .all(|id| [&ids[0], &ids[3], &ids[5]].contains(&id)),
            "{facts:?}"
        );
        let tagged = api
            .search(&acme, json!({"query": "where does Maria live", "filters": [["tags", "=", "home"]], "mode": "vector"}))
            .await;
        assert_eq!(tagged, vec![ids[5].clone()]);
        let before = api
            .search(&acme, json!({"query": "where does Maria live", "as_of": "2026-05-01T00:00:00Z", "limit": 20}))
            .await;
        assert!(
            !before.contains(&ids[5]),
            "as_of let a later item through: {before:?}"
        );
        let between = api
            .search(&acme, json!({"query": "Maria", "mode": "vector", "filters": [["occurred_at", "between", ["2026-03-01T00:00:00Z", "2026-03-31T00:00:00Z"]]]}))
            .await;
        assert_eq!(between, vec![ids[0].clone()]);

        // The other tenant sees only its own.
        let other = api
            .search(
                &globex,
                json!({"query": "dog Maria PO-2026-00417", "limit": 100}),
            )
            .await;
        assert_eq!(other, theirs);
        db.cleanup().await;
    }
}

/// Sends `body` to `path` as the caller and expects a 422 naming `pointer` and `code`.
async fn check_refused(
    api: &Api,
    bearer: &str,
    path: &str,
    body: Value,
    pointer: &str,
    code: &str,
) {
    let (status, answer) = api.call("POST", path, bearer, Some(body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {answer}");
    assert_eq!(answer["errors"][0]["pointer"], pointer, "{answer}");
    assert_eq!(answer["errors"][0]["code"], code, "{answer}");
}

#[tokio::test]
async fn bad_input_names_its_pointer_and_writes_nothing() {
    for db in databases("memory_bad_input").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let items = "/api/v1/memory/items";
        let batch = "/api/v1/memory/items/batch";
        let search = "/api/v1/memory/search";
        let context = "/api/v1/memory/context";
        check_refused(
            &api,
            &acme,
            items,
            json!({"text": "x".repeat(20 * 1024)}),
            "/text",
            "too_long",
        )
        .await;
        check_refused(
            &api,
            &acme,
            items,
            json!({"kind": "dream", "text": "x"}),
            "/kind",
            "invalid_option",
        )
        .await;
        check_refused(
            &api,
            &acme,
            items,
            json!({"text": "x", "priority": 2}),
            "/priority",
            "out_of_range",
        )
        .await;
        let mut many: Vec<Value> = (0..5)
            .map(|i| json!({"text": format!("item {i}")}))
            .collect();
        many[3] = json!({"text": "y".repeat(11 * 1024)});
        check_refused(
            &api,
            &acme,
            batch,
            json!({"items": many}),
            "/items/3/text",
            "too_long",
        )
        .await;
        let too_many: Vec<Value> = (0..501)
            .map(|i| json!({"text": format!("item {i}")}))
            .collect();
        check_refused(
            &api,
            &acme,
            batch,
            json!({"items": too_many}),
            "/items",
            "out_of_range",
        )
        .await;
        check_refused(
            &api,
            &acme,
            batch,
            json!({"items": []}),
            "/items",
            "out_of_range",
        )
        .await;
        check_refused(
            &api,
            &acme,
            batch,
            json!({"items": [], "extra": 1}),
            "/extra",
            "unknown_field",
        )
        .await;
        check_refused(
            &api,
            &acme,
            search,
            json!({"query": "q".repeat(10 * 1024 + 1)}),
            "/query",
            "too_long",
        )
        .await;
        check_refused(
            &api,
            &acme,
            search,
            json!({"query": ""}),
            "/query",
            "required",
        )
        .await;
        check_refused(
            &api,
            &acme,
            search,
            json!({"query": "x", "limit": 101}),
            "/limit",
            "out_of_range",
        )
        .await;
        check_refused(
            &api,
            &acme,
            search,
            json!({"query": "x", "limit": 0}),
            "/limit",
            "out_of_range",
        )
        .await;
        check_refused(
            &api,
            &acme,
            search,
            json!({"query": "x", "mode": "fuzzy"}),
            "/mode",
            "invalid_option",
        )
        .await;
        check_refused(
            &api,
            &acme,
            search,
            json!({"query": "x", "filters": [["colour", "=", "red"]]}),
            "/filters/0/0",
            "unknown_field",
        )
        .await;
        check_refused(
            &api,
            &acme,
            search,
            json!({"query": "x", "as_of": "yesterday"}),
            "/as_of",
            "invalid_datetime",
        )
        .await;
        check_refused(
            &api,
            &acme,
            context,
            json!({"query": "x", "budget_tokens": 0}),
            "/budget_tokens",
            "out_of_range",
        )
        .await;
        check_refused(
            &api,
            &acme,
            context,
            json!({"query": "x", "budget_tokens": 10, "tokenizer": "gpt-99"}),
            "/tokenizer",
            "unknown_tokenizer",
        )
        .await;

        // Nothing of the refused batches was written.
        let (_, stats) = api.call("GET", "/api/v1/memory/stats", &acme, None).await;
        assert_eq!(stats["tiers"]["warm"], 0, "{stats}");
        let (status, _) = api
            .call("POST", search, "", Some(json!({"query": "x"})))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = api.call("POST", items, &acme, Some(json!({"text": "a 10 KB text is fine: ".to_owned() + &"z".repeat(10 * 1024 - 22)}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn permissions_decide_what_a_search_returns() {
    for db in databases("memory_permissions").await {
        let api = boot(&db).await;
        let admin = api.tenant("acme").await;
        let alice = api.user("acme", "alice@acme.test", &["Memory User"]).await;
        let bob = api.user("acme", "bob@acme.test", &["Memory User"]).await;
        let carol = api
            .user("acme", "carol@acme.test", &["Memory Reader"])
            .await;
        let dave = api.user("acme", "dave@acme.test", &[]).await;
        let hers = api
            .add(
                &alice,
                json!([{"text": "Alice keeps the spare office key in the blue drawer."}]),
            )
            .await;
        let his = api
            .add(
                &bob,
                json!([{"text": "Bob keeps the spare van key under the office plant."}]),
            )
            .await;
        api.embedded(&admin, 2).await;

        let query = json!({"query": "where is the spare key kept?", "limit": 10});
        assert_eq!(api.search(&alice, query.clone()).await, hers);
        assert_eq!(api.search(&bob, query.clone()).await, his);
        let all = api.search(&carol, query.clone()).await;
        assert!(all.contains(&hers[0]) && all.contains(&his[0]), "{all:?}");
        let (status, _) = api
            .call("POST", "/api/v1/memory/search", &dave, Some(query.clone()))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/memory/items",
                &carol,
                Some(json!({"text": "x"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // Bob cannot forget Alice's item.
        let (status, _) = api
            .call(
                "DELETE",
                &format!("/api/v1/memory/items/{}", hers[0]),
                &bob,
                None,
            )
            .await;
        assert!(
            matches!(status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN),
            "{status}"
        );

        // Records as memory: a record's text comes back only to those who may read it.
        let (status, body) = api
            .call(
                "POST",
                "/api/v1/customize/entities",
                &admin,
                Some(json!({
                    "name": "deal",
                    "fields": [{"name": "title", "type": "data"}, {"name": "notes", "type": "text"}],
                    "memory": {"fields": ["title", "notes"]},
                    "permissions": {"System Manager": ["read", "create", "update", "delete"], "Memory Reader": ["read"]},
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, deal) = api
            .call("POST", "/api/v1/resources/deal", &admin, Some(json!({"title": "Harbour cranes", "notes": "The harbour authority wants two cranes refurbished before the autumn storms."})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{deal}");
        let record_id = format!("deal:{}", deal["id"].as_str().unwrap());
        let cranes = json!({"query": "refurbishing cranes at the port", "limit": 10});
        common::eventually("the deal is remembered", || async {
            api.search(&admin, cranes.clone())
                .await
                .contains(&record_id)
        })
        .await;
        assert!(
            api.search(&carol, cranes.clone())
                .await
                .contains(&record_id)
        );
        assert!(
            !api.search(&alice, cranes.clone())
                .await
                .contains(&record_id),
            "a record leaked to a user who may not read it"
        );
        // A changed record is remembered as it is now.
        let (status, _) = api
            .call(
                "PATCH",
                &format!("/api/v1/resources/deal/{}", deal["id"].as_str().unwrap()),
                &admin,
                Some(json!({"notes": "Cancelled: the authority bought new cranes instead."})),
            )
            .await;
        assert!(status.is_success(), "{status}");
        common::eventually("the change is remembered", || async {
            let (_, answer) = api
                .call(
                    "POST",
                    "/api/v1/memory/search",
                    &admin,
                    Some(json!({"query": "bought new cranes", "mode": "keyword"})),
                )
                .await;
            answer["data"][0]["id"] == record_id.as_str()
                && answer["data"][0]["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("Cancelled")
        })
        .await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn context_packs_never_exceed_their_budget() {
    for db in databases("memory_context").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let many: Vec<Value> = (0..40)
            .map(|i| json!({"subject": "ops", "text": format!("Incident {i}: the nightly export to the warehouse failed {i} times because the disk filled up; Müller rotated the logs and added {i} GB. 🚚")}))
            .collect();
        api.add(&acme, Value::Array(many)).await;
        api.embedded(&acme, 40).await;
        let models = std::path::PathBuf::from("/nonexistent");
        for tokenizer in ["cl100k_base", "o200k_base"] {
            let counter = prefiq_embed::token_counter(tokenizer, &models).unwrap();
            let mut previous = 0;
            for budget in [1, 7, 20, 33, 64, 150, 500, 4000] {
                let (status, packed) = api
                    .call("POST", "/api/v1/memory/context", &acme, Some(json!({"query": "why did the export fail?", "budget_tokens": budget, "tokenizer": tokenizer})))
                    .await;
                assert_eq!(status, StatusCode::OK, "{packed}");
                let tokens = packed["tokens"].as_u64().unwrap() as usize;
                assert!(
                    tokens <= budget,
                    "{tokenizer}: {tokens} tokens in a budget of {budget}"
                );
                assert_eq!(
                    counter.count(packed["text"].as_str().unwrap()),
                    tokens,
                    "{tokenizer} at {budget}"
                );
                let items = packed["items"].as_array().unwrap();
                assert_eq!(
                    items.len() + packed["dropped"].as_u64().unwrap() as usize,
                    40,
                    "{packed}"
                );
                assert!(tokens >= previous, "a larger budget packed less");
                previous = tokens;
            }
            assert!(previous > 1000, "4000 tokens took only {previous}");
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn tiers_move_items_by_schedule_and_stats_show_it() {
    for db in databases("memory_tiers").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let ids = api.add(&acme, items()).await;
        api.embedded(&acme, 6).await;
        api.search(&acme, json!({"query": "beagle"})).await;
        let (_, stats) = api.call("GET", "/api/v1/memory/stats", &acme, None).await;
        assert_eq!(stats["tiers"]["warm"], 6, "{stats}");
        assert_eq!(stats["tiers"]["cold"], 0);
        assert!(stats["tiers"]["hot"].as_u64().unwrap() >= 1, "{stats}");
        assert_eq!(stats["index"]["vectors"], 6);
        assert!(stats["index"]["bytes"].as_u64().unwrap() > 0);
        assert_eq!(stats["model"]["name"], "static-minilm-256");
        assert_eq!(stats["mode"], "hybrid");

        // The schedule's job, run 91 days from now, finds every item idle.
        let scope = memory::events::tenant_scope("acme").unwrap();
        let later = jiff::Timestamp::now().as_millisecond() + 91 * 86_400_000;
        assert_eq!(api.memory().run_tiers(&scope, later).await.unwrap(), 6);
        let (_, stats) = api.call("GET", "/api/v1/memory/stats", &acme, None).await;
        assert_eq!(
            (
                stats["tiers"]["warm"].as_i64(),
                stats["tiers"]["cold"].as_i64()
            ),
            (Some(0), Some(6)),
            "{stats}"
        );
        assert_eq!(stats["index"]["vectors"], 0);
        // Cold items stay keyword-searchable and leave the vector index.
        let (_, answer) = api
            .call(
                "POST",
                "/api/v1/memory/search",
                &acme,
                Some(json!({"query": "PO-2026-00417"})),
            )
            .await;
        assert_eq!(answer["data"][0]["id"], ids[1].as_str());
        assert_eq!(answer["data"][0]["tier"], "cold");
        assert!(
            api.search(&acme, json!({"query": "dog", "mode": "vector"}))
                .await
                .is_empty()
        );
        // Restored, an item is warm and in the index again.
        let (status, item) = api
            .call(
                "POST",
                &format!("/api/v1/memory/items/{}/restore", ids[0]),
                &acme,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{item}");
        let (_, stats) = api.call("GET", "/api/v1/memory/stats", &acme, None).await;
        assert_eq!(
            (
                stats["tiers"]["warm"].as_i64(),
                stats["index"]["vectors"].as_i64()
            ),
            (Some(1), Some(1)),
            "{stats}"
        );
        assert_eq!(
            api.search(
                &acme,
                json!({"query": "what dog does Maria have", "mode": "vector"})
            )
            .await,
            vec![ids[0].clone()]
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn forgetting_erases_the_text_from_every_tier_and_the_audit_log() {
    for db in databases("memory_forget").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let secret = "Zanzibar-7731 is the door code of the server room.";
        let ids = api
            .add(
                &acme,
                json!([{"kind": "fact", "text": secret}, {"text": "The canteen opens at noon."}]),
            )
            .await;
        api.embedded(&acme, 2).await;
        assert_eq!(
            api.search(&acme, json!({"query": "Zanzibar-7731"}))
                .await
                .first(),
            Some(&ids[0])
        );
        let (status, _) = api
            .call(
                "DELETE",
                &format!("/api/v1/memory/items/{}", ids[0]),
                &acme,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = api
            .call(
                "GET",
                &format!("/api/v1/memory/items/{}", ids[0]),
                &acme,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        for mode in ["keyword", "vector", "hybrid"] {
            let found = api
                .search(
                    &acme,
                    json!({"query": "Zanzibar-7731 door code server room", "mode": mode}),
                )
                .await;
            assert!(
                !found.contains(&ids[0]),
                "{mode} still finds a forgotten item"
            );
        }
        let (_, stats) = api.call("GET", "/api/v1/memory/stats", &acme, None).await;
        assert_eq!(
            (
                stats["tiers"]["warm"].as_i64(),
                stats["index"]["vectors"].as_i64()
            ),
            (Some(1), Some(1)),
            "{stats}"
        );
        // The audit log holds the text only as a hash, before and after the forgetting.
        let (status, audit) = api
            .call(
                "GET",
                "/api/v1/audit?entity=memory_item&limit=50",
                &acme,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{audit}");
        let audit = audit.to_string();
        assert!(audit.contains("sha256"), "{audit}");
        assert!(
            !audit.contains("Zanzibar"),
            "the audit log holds the forgotten text"
        );
        // Forgetting twice is a 404.
        let (status, _) = api
            .call(
                "DELETE",
                &format!("/api/v1/memory/items/{}", ids[0]),
                &acme,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_write_repeated_with_its_idempotency_key_stores_once() {
    for db in databases("memory_idempotency").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let send = |key: &'static str, text: &'static str| {
            let router = api.router.clone();
            let acme = acme.clone();
            async move {
                let request = axum::http::Request::builder()
                    .method("POST")
                    .uri("/api/v1/memory/items")
                    .header("content-type", "application/json")
                    .header("authorization", acme)
                    .header("idempotency-key", key)
                    .body(axum::body::Body::from(json!({"text": text}).to_string()))
                    .unwrap();
                let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap();
                (
                    status,
                    serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
                )
            }
        };
        let (status, first) = send("k-1", "stored once").await;
        assert_eq!(status, StatusCode::CREATED, "{first}");
        let (status, again) = send("k-1", "stored once").await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(first["id"], again["id"]);
        let (_, other) = send("k-2", "stored once").await;
        assert_ne!(first["id"], other["id"]);
        let (status, _) = send("", "x").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        common::eventually("two items are indexed", || async {
            let (_, stats) = api.call("GET", "/api/v1/memory/stats", &acme, None).await;
            stats["tiers"]["warm"] == 2
        })
        .await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_query_without_a_known_token_finds_by_keyword_alone() {
    for db in databases("memory_zero_query").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let ids = api
            .add(&acme, json!([{"text": "0000000000"}, {"text": "a note"}]))
            .await;
        api.embedded(&acme, 2).await;
        for mode in ["hybrid", "vector", "keyword"] {
            let (status, answer) = api
                .call(
                    "POST",
                    "/api/v1/memory/search",
                    &acme,
                    Some(json!({"query": "0000000000", "mode": mode})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{mode}: {answer}");
            if mode != "vector" {
                assert_eq!(answer["data"][0]["id"], ids[0].as_str(), "{mode}: {answer}");
            }
        }
        let (status, answer) = api
            .call(
                "POST",
                "/api/v1/memory/context",
                &acme,
                Some(json!({"query": "0".repeat(10 * 1024), "budget_tokens": 50})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        db.cleanup().await;
    }
}
