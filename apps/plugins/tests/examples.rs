//! The example plugins end to end, on SQLite and PostgreSQL: signed, installed, enabled
//! for one tenant, and changing that tenant's behaviour only. journal-guard (Rust)
//! refuses large journal entries without a remark and serves its policy; todo-followup
//! (C) answers a High todo's event with a follow-up todo written as its own principal,
//! which the audit log records, and serves the count of open todos.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use axum::http::StatusCode;
use common::{Api, boot, eventually, example};
use prefiq_data::testing::databases;
use serde_json::{Value, json};

async fn company(api: &Api, admin: &str) -> (String, String, String) {
    let (status, company) = api
        .call(
            "POST",
            "/api/v1/resources/company",
            admin,
            Some(json!({"company_name": "Acme Ltd", "abbr": "ACME", "currency": "USD"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{company}");
    let company = company["id"].as_str().unwrap().to_owned();
    let account = |path: &'static str| {
        let company = company.clone();
        async move {
            let filters =
                json!([["company", "=", company], ["account_path", "=", path]]).to_string();
            let (_, body) = api
                .call(
                    "GET",
                    &format!(
                        "/api/v1/resources/account?filters={}",
                        common::encode(&filters)
                    ),
                    admin,
                    None,
                )
                .await;
            body["data"][0]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{path}: {body}"))
                .to_owned()
        }
    };
    let bank = account("assets:current:bank").await;
    let sales = account("income:sales").await;
    (company, bank, sales)
}

async fn journal_entry(
    api: &Api,
    admin: &str,
    books: &(String, String, String),
    amount: &str,
    remark: Option<&str>,
) -> (StatusCode, Value) {
    let (company, bank, sales) = books;
    let mut entry = json!({
        "company": company,
        "posting_date": "2026-03-01",
        "lines": [
            {"account": bank, "debit": {"amount": amount, "currency": "USD"}},
            {"account": sales, "credit": {"amount": amount, "currency": "USD"}},
        ],
    });
    if let Some(remark) = remark {
        entry["remark"] = json!(remark);
    }
    api.call(
        "POST",
        "/api/v1/resources/journal_entry",
        admin,
        Some(entry),
    )
    .await
}

#[tokio::test]
async fn journal_guard_refuses_large_entries_without_a_remark_for_the_tenant_that_enabled_it() {
    let Some(files) = example("journal-guard") else {
        return;
    };
    for db in databases("plugins_journal_guard").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let globex = api.tenant("globex").await;
        api.plugins()
            .install(&api.signed(&files), false)
            .await
            .unwrap();
        let (status, body) = api
            .call(
                "POST",
                "/api/v1/plugins/journal-guard/enable",
                &acme,
                Some(json!({"config": {"max_amount": 1000}})),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let acme_books = company(&api, &acme).await;
        let globex_books = company(&api, &globex).await;

        // acme: refused above the limit without a remark, naming the plugin.
        let (status, problem) = journal_entry(&api, &acme, &acme_books, "5000.00", None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.starts_with("journal-guard: "), "{problem}");
        assert!(detail.contains("1000.00"), "{problem}");
        // With a remark, or under the limit, it passes.
        let (status, body) = journal_entry(
            &api,
            &acme,
            &acme_books,
            "5000.00",
            Some("Annual rent, approved"),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = journal_entry(&api, &acme, &acme_books, "999.00", None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        // globex did not enable it.
        let (status, body) = journal_entry(&api, &globex, &globex_books, "5000.00", None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");

        // Its route, for acme only.
        let (status, body) = api
            .call("GET", "/api/v1/plugins/journal-guard/policy", &acme, None)
            .await;
        assert_eq!(
            (status, &body),
            (
                StatusCode::OK,
                &json!({"max_amount": 1000, "plugin": "journal-guard"})
            )
        );
        let (status, _) = api
            .call("GET", "/api/v1/plugins/journal-guard/policy", &globex, None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // The route requires reading journal entries: a user of acme who may not is refused.
        let nobody = api.user("acme", "nobody@acme.test", &[]).await;
        let (status, problem) = api
            .call("GET", "/api/v1/plugins/journal-guard/policy", &nobody, None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("needs `read` on journal_entry"),
            "{problem}"
        );
        let (status, _) = api
            .call("GET", "/api/v1/plugins/journal-guard/other", &acme, None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Disabled, it is inert for acme at once.
        let (status, _) = api
            .call("POST", "/api/v1/plugins/journal-guard/disable", &acme, None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, body) = journal_entry(&api, &acme, &acme_books, "5000.00", None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (_, listed) = api.call("GET", "/api/v1/plugins", &acme, None).await;
        assert_eq!(listed["data"][0]["name"], "journal-guard", "{listed}");
        assert_eq!(listed["data"][0]["enabled"], false, "{listed}");
        assert_eq!(
            listed["data"][0]["config"],
            json!({"max_amount": 1000}),
            "{listed}"
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn todo_followup_answers_high_todos_with_a_follow_up_written_as_the_plugin() {
    let Some(files) = example("todo-followup") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,prefiq::http=warn")
        .with_test_writer()
        .try_init();
    for db in databases("plugins_todo_followup").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let globex = api.tenant("globex").await;
        api.plugins()
            .install(&api.signed(&files), false)
            .await
            .unwrap();
        let (status, body) = api
            .call("POST", "/api/v1/plugins/todo-followup/enable", &acme, None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

        for bearer in [&acme, &globex] {
            let (status, body) = api
                .call(
                    "POST",
                    "/api/v1/resources/todo",
                    bearer,
                    Some(json!({"description": "Call the bank", "priority": "High"})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            let (status, body) = api
                .call(
                    "POST",
                    "/api/v1/resources/todo",
                    bearer,
                    Some(json!({"description": "Water the plants", "priority": "Low"})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let follow_ups = |bearer: String| {
            let api = &api;
            async move {
                let filters = common::encode(
                    &json!([["description", "=", "Follow up: Call the bank"]]).to_string(),
                );
                let (_, body) = api
                    .call(
                        "GET",
                        &format!(
                            "/api/v1/resources/todo?filters={filters}&fields={}",
                            common::encode(r#"["id","created_by","priority"]"#)
                        ),
                        &bearer,
                        None,
                    )
                    .await;
                body["data"]
                    .as_array()
                    .cloned()
                    .unwrap_or_else(|| panic!("{body}"))
            }
        };
        eventually("acme's follow-up todo", || {
            let f = follow_ups(acme.clone());
            async move { f.await.len() == 1 }
        })
        .await;
        let acme_follow_up = follow_ups(acme.clone()).await;
        assert_eq!(
            acme_follow_up[0]["created_by"], "plugin:todo-followup",
            "{acme_follow_up:?}"
        );
        assert_eq!(acme_follow_up[0]["priority"], "Medium");
        // The follow-up's own event does not chain, and globex never gets one.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(follow_ups(acme.clone()).await.len(), 1);
        assert!(follow_ups(globex.clone()).await.is_empty());

        // The audit log records the write under the plugin's principal.
        let id = acme_follow_up[0]["id"].as_str().unwrap();
        let (status, records) = api
            .call(
                "GET",
                &format!("/api/v1/audit?entity=todo&id={id}&actor=plugin:todo-followup"),
                &acme,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{records}");
        assert_eq!(
            records["data"].as_array().map(Vec::len),
            Some(1),
            "{records}"
        );

        // Its route counts acme's open todos (the two made here and the follow-up).
        let (status, body) = api
            .call("GET", "/api/v1/plugins/todo-followup/open", &acme, None)
            .await;
        assert_eq!((status, body), (StatusCode::OK, json!({"open": 3})));
        db.cleanup().await;
    }
}
