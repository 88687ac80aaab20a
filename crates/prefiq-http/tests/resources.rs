//! The REST contract of generated resources, on SQLite and (when configured) PostgreSQL.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use prefiq::{
    App, BootMode, BootOptions, ConfigOptions, EntitySource, KernelError, Manifest, Module,
    RegisterContext, ServiceProvider, async_trait,
};
use prefiq_data::DatabaseProvider;
use prefiq_data::entity::repo::{EntityEvent, EntityHook};
use prefiq_data::testing::{TestDatabase, databases};
use prefiq_http::HttpProvider;
use serde_json::{Value, json};
use tower::ServiceExt;

const TODO: &str = "name: todo
fields:
  - {name: description, type: text, required: true}
  - {name: status, type: select, options: [Open, Closed, Cancelled], default: Open, indexed: true}
  - {name: priority, type: select, options: [Low, Medium, High], default: Medium}
  - {name: date, type: date}
  - {name: allocated_to, type: email}
  - {name: estimate, type: int}
";

const CUSTOMER: &str = "name: customer
fields:
  - {name: title, type: data, required: true, max_length: 20}
  - {name: code, type: data, unique: true}
";

const INVOICE: &str = "name: invoice
naming: 'INV-.YYYY.-.#####'
submittable: true
fields:
  - {name: customer, type: link, target: customer, required: true}
  - {name: total, type: money}
  - {name: rate, type: decimal, scale: 3}
  - {name: paid, type: bool, default: false}
  - {name: meta, type: json}
  - {name: items, type: table, entity: invoice_item}
";

const INVOICE_ITEM: &str = "name: invoice_item
child: true
fields:
  - {name: item, type: data, required: true}
  - {name: qty, type: int, required: true}
";

type Journal = Arc<Mutex<Vec<String>>>;

struct Sample {
    manifest: Manifest,
    journal: Journal,
}

struct Hooks(Journal);

#[async_trait]
impl ServiceProvider for Hooks {
    fn name(&self) -> &'static str {
        "sample::Hooks"
    }
    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        let hook = |entity: &str,
                    event: EntityEvent,
                    name: &str,
                    run: prefiq_data::entity::repo::EntityHookFn| {
            Arc::new(EntityHook {
                module: "sample".into(),
                name: name.into(),
                entity: entity.into(),
                event,
                run,
            })
        };
        // Trims descriptions before validation.
        cx.services.contribute(hook(
            "todo",
            EntityEvent::BeforeValidate,
            "trim",
            Arc::new(|input| {
                Box::pin(async move {
                    let mut doc = input.doc;
                    if let Some(Value::String(d)) = doc.get("description").cloned() {
                        doc.insert("description".into(), json!(d.trim()));
                    }
                    Ok(doc)
                })
            }),
        ));
        // Refuses a forbidden word before insert.
        cx.services.contribute(hook(
            "todo",
            EntityEvent::BeforeInsert,
            "no_forbidden",
            Arc::new(|input| {
                Box::pin(async move {
                    if input
                        .doc
                        .get("description")
                        .and_then(Value::as_str)
                        .is_some_and(|d| d.contains("forbidden"))
                    {
                        return Err("descriptions may not say forbidden".to_owned());
                    }
                    Ok(input.doc)
                })
            }),
        ));
        let journal = self.0.clone();
        cx.services.contribute(hook(
            "*",
            EntityEvent::AfterInsert,
            "journal",
            Arc::new(move |input| {
                let journal = journal.clone();
                Box::pin(async move {
                    journal.lock().unwrap().push(format!(
                        "{} after_insert {}",
                        input.entity.name,
                        input.scope.tenant()
                    ));
                    Ok(input.doc)
                })
            }),
        ));
        Ok(())
    }
}

impl Module for Sample {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(Hooks(self.journal.clone()))]
    }
    fn entities(&self) -> Vec<EntitySource> {
        vec![
            EntitySource {
                file: "schema/todo.yaml",
                yaml: TODO,
            },
            EntitySource {
                file: "schema/customer.yaml",
                yaml: CUSTOMER,
            },
            EntitySource {
                file: "schema/invoice.yaml",
                yaml: INVOICE,
            },
            EntitySource {
                file: "schema/invoice_item.yaml",
                yaml: INVOICE_ITEM,
            },
        ]
    }
}

struct Api {
    router: axum::Router,
    journal: Journal,
    url: String,
    _app: prefiq::BootedApp,
}

async fn boot(db: &TestDatabase) -> Api {
    let journal = Journal::default();
    let sample = Sample {
        manifest: Manifest::from_yaml("name: sample\nversion: 1.0.0\n").unwrap(),
        journal: journal.clone(),
    };
    let app = App::new()
        .provider(DatabaseProvider)
        .provider(HttpProvider)
        .module(sample);
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(db.root()),
        vars: Some(vec![("PREFIQ__DATABASE__URL".into(), db.url.clone())]),
        ..Default::default()
    };
    let app = app.boot(options).await.unwrap();
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    Api {
        router,
        journal,
        url: db.url.clone(),
        _app: app,
    }
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        tenant: Option<&str>,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(tenant) = tenant {
            request = request.header("x-tenant", tenant);
        }
        if let Some(v) = if_match {
            request = request.header("if-match", v);
        }
        let body = body
            .map(|b| Body::from(b.to_string()))
            .unwrap_or_else(Body::empty);
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some("acme"), Some(body), None)
            .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, Some("acme"), None, None).await
    }

    async fn count(&self, entity: &str) -> usize {
        let (_, page) = self
            .get(&format!("/api/v1/resources/{entity}?limit=500"))
            .await;
        page["data"].as_array().map_or(0, Vec::len)
    }
}

/// Sends an invalid create and checks status, the (pointer, code) of every error, and that
/// nothing was written.
async fn check_invalid(
    api: &Api,
    entity: &str,
    body: Value,
    status: StatusCode,
    expected: &[(&str, &str)],
) {
    let before = api.count(entity).await;
    let (got, problem) = api
        .post(&format!("/api/v1/resources/{entity}"), body.clone())
        .await;
    assert_eq!(got, status, "{} {body}: {problem}", api.url);
    let errors: Vec<(String, String)> = problem["errors"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| {
            (
                e["pointer"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(errors, expected, "{body}: {problem}");
    assert_eq!(
        api.count(entity).await,
        before,
        "a refused write left a row behind: {body}"
    );
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn rest_contract_on_backends() {
    for db in databases("prefiq-http REST contract").await {
        let api = boot(&db).await;
        crud(&api).await;
        invalid_input(&api).await;
        error_bodies(&api).await;
        lists(&api).await;
        documents(&api).await;
        lifecycle_refusals_read_as_sentences(&api).await;
        custom_fields(&api).await;
        // A second replica on the same database, booted before the entity exists.
        let replica = boot(&db).await;
        runtime_entities(&api).await;
        runtime_entities_after_restart(&replica).await;
        drop(replica);
        drop(api);
        // After a restart the runtime entity is still there: table, resource and schema.
        let api = boot(&db).await;
        runtime_entities_after_restart(&api).await;
        db.cleanup().await;
    }
}

async fn crud(api: &Api) {
    let (status, todo) = api.post("/api/v1/resources/todo", json!({"description": "  Write the contract  ", "priority": "High", "date": "2026-12-01"})).await;
    assert_eq!(status, StatusCode::CREATED, "{todo}");
    assert_eq!(
        todo["description"], "Write the contract",
        "the before_validate hook trimmed it"
    );
    assert_eq!(todo["status"], "Open", "defaulted");
    assert_eq!(todo["version"], 1);
    let id = todo["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/resources/todo/{id}");
    let (status, read) = api.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, todo, "what create returns is what get returns");

    // Another tenant sees nothing of it.
    let (status, _) = api.call("GET", &path, Some("globex"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = api
        .call("GET", "/api/v1/resources/todo", Some("globex"), None, None)
        .await;
    assert_eq!(page["data"], json!([]));
    let (status, _) = api.call("GET", &path, None, None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no tenant, no data");

    // PATCH with a stale version fails its precondition; with the current one it applies.
    let (status, problem) = api
        .call(
            "PATCH",
            &path,
            Some("acme"),
            Some(json!({"status": "Closed"})),
            Some("\"7\""),
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{problem}");
    let (status, updated) = api
        .call(
            "PATCH",
            &path,
            Some("acme"),
            Some(json!({"status": "Closed"})),
            Some("\"1\""),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (
            updated["status"].as_str(),
            updated["version"].as_i64(),
            updated["priority"].as_str()
        ),
        (Some("Closed"), Some(2), Some("High"))
    );
    let (_, reread) = api.get(&path).await;
    assert_eq!(reread, updated);
    let (status, problem) = api
        .call(
            "PATCH",
            &path,
            Some("acme"),
            Some(json!({"status": "Done"})),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["pointer"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/status"))
    );

    // A before-hook's refusal reaches the caller and writes nothing.
    check_invalid(
        api,
        "todo",
        json!({"description": "a forbidden thing"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("", "rejected")],
    )
    .await;

    // DELETE is soft: gone from get and list.
    let (status, _) = api.call("DELETE", &path, Some("acme"), None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        api.call("DELETE", &path, Some("acme"), None, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(
        api.journal
            .lock()
            .unwrap()
            .contains(&"todo after_insert acme".to_owned())
    );
    assert_eq!(
        api.get("/api/v1/resources/nothing").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/api/v1/resources/invoice_item").await.0,
        StatusCode::NOT_FOUND,
        "child entities are reached through their parent"
    );
}

/// Error bodies are part of the contract: snapshot them (the same on every backend).
async fn error_bodies(api: &Api) {
    let redact = |mut v: Value| {
        v["trace_id"] = json!("[trace_id]");
        v
    };
    let (_, body) = api
        .post(
            "/api/v1/resources/todo",
            json!({"colour": "red", "status": "Done", "date": "2026-02-30", "estimate": 1.5}),
        )
        .await;
    insta::assert_json_snapshot!("invalid_todo", redact(body));
    let (_, body) = api
        .post(
            "/api/v1/resources/customer",
            json!({"title": "Twin", "code": "C1"}),
        )
        .await;
    insta::assert_json_snapshot!("unique_violation", redact(body));
    let (_, body) = api
        .call("GET", "/api/v1/resources/todo", None, None, None)
        .await;
    insta::assert_json_snapshot!("no_tenant", redact(body));
    let (_, body) = api
        .get("/api/v1/resources/todo/01900000-0000-7000-8000-000000000000")
        .await;
    insta::assert_json_snapshot!("not_found", redact(body));
}

async fn invalid_input(api: &Api) {
    let (_, customer) = api
        .post(
            "/api/v1/resources/customer",
            json!({"title": "Acme", "code": "C1"}),
        )
        .await;
    let customer_id = customer["id"].as_str().unwrap().to_owned();
    check_invalid(
        api,
        "todo",
        json!({"description": "x", "colour": "red"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/colour", "unknown_field")],
    )
    .await;
    check_invalid(
        api,
        "todo",
        json!({"description": 5}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/description", "wrong_type")],
    )
    .await;
    check_invalid(
        api,
        "todo",
        json!({"estimate": "five"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[
            ("/description", "missing_required"),
            ("/estimate", "wrong_type"),
        ],
    )
    .await;
    check_invalid(
        api,
        "customer",
        json!({"title": "x".repeat(21)}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/title", "too_long")],
    )
    .await;
    check_invalid(
        api,
        "todo",
        json!({"description": "x", "status": "Done"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/status", "invalid_option")],
    )
    .await;
    check_invalid(
        api,
        "todo",
        json!({"description": "x", "allocated_to": "nobody"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/allocated_to", "invalid_email")],
    )
    .await;
    check_invalid(
        api,
        "invoice",
        json!({"customer": "01900000-0000-7000-8000-000000000000"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/customer", "dangling_link")],
    )
    .await;
    check_invalid(
        api,
        "customer",
        json!({"title": "Other", "code": "C1"}),
        StatusCode::CONFLICT,
        &[("/code", "unique")],
    )
    .await;
    check_invalid(
        api,
        "invoice",
        json!({"customer": customer_id, "items": [{"item": "ok", "qty": 1}, {"item": "bad", "qty": "two"}]}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/items/1/qty", "wrong_type")],
    )
    .await;
    check_invalid(
        api,
        "invoice",
        json!({"customer": customer_id, "total": {"amount": "1.234", "currency": "EUR"}}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/total", "too_precise")],
    )
    .await;
    check_invalid(
        api,
        "todo",
        json!([1, 2]),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("", "wrong_type")],
    )
    .await;
    let (status, problem) = api
        .call("POST", "/api/v1/resources/todo", Some("acme"), None, None)
        .await;
    assert_eq!(
        (status, problem["errors"][0]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let (status, problem) = api
        .get(&format!(
            "/api/v1/resources/todo?filters={}",
            encode(r#"[["colour","=","red"]]"#)
        ))
        .await;
    assert_eq!(
        (status, problem["errors"][0]["pointer"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/filters/0/0"))
    );
    let (status, problem) = api
        .get(&format!(
            "/api/v1/resources/todo?filters={}",
            encode(r#"[["status","~","Open"]]"#)
        ))
        .await;
    assert_eq!(
        (status, problem["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_operator"))
    );
    assert_eq!(
        api.get("/api/v1/resources/todo?limit=100000").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Regression: an empty `limit=` was taken as no limit (found by schemathesis).
    let (status, problem) = api.get("/api/v1/resources/todo?limit=").await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(problem["errors"][0]["pointer"], "/limit");
    // `total=true` counts the selected rows; anything but true or false is refused.
    let (status, problem) = api.get("/api/v1/resources/todo?total=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["errors"][0]["pointer"], "/total");
    let (status, page) = api.get("/api/v1/resources/todo?total=true&limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page["total"].as_u64().unwrap() >= page["data"].as_array().unwrap().len() as u64);
    let (_, page) = api
        .get(&format!(
            "/api/v1/resources/todo?total=true&filters={}",
            encode(r#"[["description","=","no such row"]]"#)
        ))
        .await;
    assert_eq!(page["total"], 0);
    let (_, page) = api.get("/api/v1/resources/todo").await;
    assert!(page.get("total").is_none(), "counted only when asked");
    assert_eq!(
        api.get("/api/v1/resources/todo?cursor=zz").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Regression: a cursor with non-ASCII characters made the server panic (found by schemathesis).
    assert_eq!(
        api.get("/api/v1/resources/todo?cursor=-%C2%B0%0D").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn lists(api: &Api) {
    // 23 todos with estimates 0..23, every third without an estimate.
    for i in 0..23 {
        let estimate = if i % 3 == 0 { Value::Null } else { json!(i) };
        let priority = ["Low", "Medium", "High"][i % 3];
        let (status, body) = api.post("/api/v1/resources/todo", json!({"description": format!("task {i:02}"), "estimate": estimate, "priority": priority})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let list = |filters: &str| {
        format!(
            "/api/v1/resources/todo?limit=500&filters={}",
            encode(filters)
        )
    };
    let count = |page: &Value| page["data"].as_array().map_or(0, Vec::len);
    for (filters, expected) in [
        (r#"[["priority","=","High"]]"#, 7),
        (r#"[["priority","!=","High"]]"#, 16),
        (r#"[["estimate",">",10]]"#, 8),
        (r#"[["estimate","between",[4,8]]]"#, 4),
        (r#"[["estimate","is","not set"]]"#, 8),
        (
            r#"[["estimate","is","set"],["priority","in",["Medium","High"]]]"#,
            15,
        ),
        (r#"[["description","like","TASK 1%"]]"#, 10),
        (r#"[["description","not like","%1%"]]"#, 11),
        (r#"[["priority","in",[]]]"#, 0),
        (r#"[["priority","not in",["Low"]]]"#, 15),
    ] {
        let (status, page) = api.get(&list(filters)).await;
        assert_eq!(
            (status, count(&page)),
            (StatusCode::OK, expected),
            "{} {filters}: {page}",
            api.url
        );
    }
    // Keyset pages over a nullable column, both directions: every row exactly once, in order.
    for order in [
        "estimate asc",
        "estimate desc",
        "description asc",
        "modified_at desc",
    ] {
        let mut seen: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!(
                "/api/v1/resources/todo?limit=4&order_by={}&fields={}",
                encode(order),
                encode(r#"["estimate","description"]"#)
            );
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = api.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            seen.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 23, "{} {order}", api.url);
        let mut ids: Vec<&str> = seen.iter().map(|r| r["id"].as_str().unwrap()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 23, "a row came twice ({order})");
        assert_eq!(
            seen[0].as_object().unwrap().len(),
            3,
            "fields limits the properties: {}",
            seen[0]
        );
        if order == "estimate asc" {
            let estimates: Vec<Value> = seen.iter().map(|r| r["estimate"].clone()).collect();
            assert_eq!(estimates[0], json!(1));
            assert!(
                estimates[15..].iter().all(Value::is_null),
                "nulls last ascending: {estimates:?}"
            );
        }
        if order == "estimate desc" {
            assert!(
                seen[..8].iter().all(|r| r["estimate"].is_null()),
                "nulls first descending"
            );
            assert_eq!(seen[8]["estimate"], json!(22));
        }
    }
}

async fn documents(api: &Api) {
    let (_, customer) = api
        .post(
            "/api/v1/resources/customer",
            json!({"title": "Globex", "code": "C2"}),
        )
        .await;
    let body = json!({
        "customer": customer["id"],
        "total": {"amount": "1234.5", "currency": "EUR"},
        "rate": "0.125",
        "meta": {"source": "test", "tags": [1, 2]},
        "items": [{"item": "Widget", "qty": 2}, {"item": "Gadget", "qty": 1}]
    });
    let (status, invoice) = api.post("/api/v1/resources/invoice", body).await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");
    let year = &invoice["created_at"].as_str().unwrap()[..4];
    assert_eq!(invoice["name"], format!("INV-{year}-00001"));
    assert_eq!(
        invoice["total"],
        json!({"amount": "1234.50", "currency": "EUR"})
    );
    assert_eq!(invoice["rate"], "0.125");
    assert_eq!(invoice["paid"], false);
    let id = invoice["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/resources/invoice/{id}");
    let (_, read) = api.get(&path).await;
    assert_eq!(read["meta"], json!({"source": "test", "tags": [1, 2]}));
    let items: Vec<(String, i64, i64)> = read["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["item"].as_str().unwrap().to_owned(),
                r["qty"].as_i64().unwrap(),
                r["idx"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        items,
        [("Widget".to_owned(), 2, 1), ("Gadget".to_owned(), 1, 2)]
    );

    // Child rows are replaced with their parent, in one write.
    let (status, updated) = api
        .call(
            "PATCH",
            &path,
            Some("acme"),
            Some(json!({"items": [{"item": "Gizmo", "qty": 5}]})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let (_, read) = api.get(&path).await;
    assert_eq!(read["items"].as_array().unwrap().len(), 1);
    assert_eq!(read["items"][0]["item"], "Gizmo");

    let (status, submitted) = api.post(&format!("{path}/submit"), json!({})).await;
    assert_eq!(
        (status, submitted["docstatus"].as_i64()),
        (StatusCode::OK, Some(1)),
        "{submitted}"
    );
    let (status, problem) = api
        .call(
            "PATCH",
            &path,
            Some("acme"),
            Some(json!({"rate": "1"})),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("document_submitted"))
    );
    assert_eq!(
        api.call("DELETE", &path, Some("acme"), None, None).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (status, cancelled) = api.post(&format!("{path}/cancel"), json!({})).await;
    assert_eq!(
        (status, cancelled["docstatus"].as_i64()),
        (StatusCode::OK, Some(2))
    );
    let (status, amended) = api.post(&format!("{path}/amend"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{amended}");
    assert_eq!(amended["name"], format!("INV-{year}-00001-1"));
    assert_eq!(amended["amended_from"], id.as_str());
    assert_eq!(amended["docstatus"], 0);
    assert_eq!(amended["items"][0]["item"], "Gizmo");
    let (_, second) = api
        .post(
            "/api/v1/resources/invoice",
            json!({"customer": customer["id"]}),
        )
        .await;
    assert_eq!(second["name"], format!("INV-{year}-00002"));
    assert_eq!(
        api.post("/api/v1/resources/todo/x/submit", json!({}))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

/// 500 custom fields on one entity: defined at run time, validated, stored, filtered,
/// sorted, merged on update, and visible only in that tenant's OpenAPI.
async fn custom_fields(api: &Api) {
    let kinds = |i: usize| match i % 4 {
        0 => json!({"name": format!("cf_{i:03}"), "type": "int", "indexed": i == 0}),
        1 => json!({"name": format!("cf_{i:03}"), "type": "data", "max_length": 10}),
        2 => json!({"name": format!("cf_{i:03}"), "type": "select", "options": ["A", "B", "C"]}),
        _ => json!({"name": format!("cf_{i:03}"), "type": "decimal", "scale": 2}),
    };
    for i in 0..500 {
        let (status, body) = api.post("/api/v1/customize/todo/fields", kinds(i)).await;
        assert_eq!(status, StatusCode::CREATED, "{} field {i}: {body}", api.url);
    }
    let (status, problem) = api.post("/api/v1/customize/todo/fields", kinds(7)).await;
    assert_eq!(
        (status, problem["errors"][0]["code"].as_str()),
        (StatusCode::CONFLICT, Some("unique"))
    );
    let (status, problem) = api
        .post(
            "/api/v1/customize/todo/fields",
            json!({"name": "status", "type": "data"}),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_definition"))
    );
    let (status, _) = api
        .post(
            "/api/v1/customize/todo/fields",
            json!({"name": "cf_x", "type": "colour"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, listed) = api.get("/api/v1/customize/todo/fields").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 500);

    let value = |i: usize, n: i64| match i % 4 {
        0 => json!(n * 1000 + i as i64),
        1 => json!(format!("v{i}")),
        2 => json!(["A", "B", "C"][i % 3]),
        _ => json!(format!("{i}.5")),
    };
    let mut ids = Vec::new();
    for n in 0..3 {
        let custom: serde_json::Map<String, Value> = (0..500)
            .map(|i| (format!("cf_{i:03}"), value(i, n)))
            .collect();
        let (status, todo) = api
            .post(
                "/api/v1/resources/todo",
                json!({"description": format!("custom {n}"), "custom": custom}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{todo}");
        assert_eq!(todo["custom"].as_object().unwrap().len(), 500);
        ids.push(todo["id"].as_str().unwrap().to_owned());
    }
    let (_, read) = api.get(&format!("/api/v1/resources/todo/{}", ids[1])).await;
    assert_eq!(read["custom"].as_object().unwrap().len(), 500);
    assert_eq!(
        (
            &read["custom"]["cf_003"],
            &read["custom"]["cf_004"],
            &read["custom"]["cf_001"]
        ),
        (&json!("3.50"), &json!(1004), &json!("v1"))
    );

    // Filter and sort on custom fields.
    let (status, page) = api
        .get(&format!(
            "/api/v1/resources/todo?filters={}",
            encode(r#"[["custom.cf_004", ">=", 1004]]"#)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let (_, page) = api
        .get(&format!(
            "/api/v1/resources/todo?filters={}",
            encode(r#"[["custom.cf_003", "=", "3.5"]]"#)
        ))
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    let (status, page) = api
        .get(&format!(
            "/api/v1/resources/todo?limit=2&order_by={}&filters={}",
            encode("custom.cf_000 desc"),
            encode(r#"[["custom.cf_000", "is", "set"]]"#)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"][0]["id"], ids[2].as_str());
    let (_, next) = api
        .get(&format!(
            "/api/v1/resources/todo?limit=2&order_by={}&filters={}&cursor={}",
            encode("custom.cf_000 desc"),
            encode(r#"[["custom.cf_000", "is", "set"]]"#),
            page["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(next["data"].as_array().unwrap().len(), 1);
    assert_eq!(next["data"][0]["id"], ids[0].as_str());

    // PATCH merges custom values; invalid ones are pointed at.
    let path = format!("/api/v1/resources/todo/{}", ids[0]);
    let (status, updated) = api
        .call(
            "PATCH",
            &path,
            Some("acme"),
            Some(json!({"custom": {"cf_001": "changed"}})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (&updated["custom"]["cf_001"], &updated["custom"]["cf_004"]),
        (&json!("changed"), &json!(4))
    );
    let (status, problem) = api
        .call(
            "PATCH",
            &path,
            Some("acme"),
            Some(json!({"custom": {"cf_001": "far too long", "nope": 1, "cf_002": "Z"}})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["/custom/nope", "/custom/cf_001", "/custom/cf_002"]
    );

    // A required custom field on another entity is enforced on create.
    let (status, _) = api.post("/api/v1/customize/customer/fields", json!({"name": "cf_region", "type": "select", "options": ["EU", "US"], "required": true})).await;
    assert_eq!(status, StatusCode::CREATED);
    check_invalid(
        api,
        "customer",
        json!({"title": "Initech", "code": "C9"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/custom/cf_region", "missing_required")],
    )
    .await;

    // The tenant's OpenAPI shows its custom fields; another tenant's does not.
    let (_, mine) = api.get("/api/v1/openapi.json").await;
    assert_eq!(
        mine["components"]["schemas"]["todo"]["properties"]["custom"]["properties"]
            .as_object()
            .unwrap()
            .len(),
        500
    );
    assert_eq!(
        mine["components"]["schemas"]["customer_create"]["properties"]["custom"]["required"],
        json!(["cf_region"])
    );
    let (_, theirs) = api
        .call("GET", "/api/v1/openapi.json", Some("globex"), None, None)
        .await;
    assert_eq!(
        theirs["components"]["schemas"]["todo"]["properties"]["custom"]["properties"],
        json!({})
    );
    schema_lists_custom_fields(api).await;
    let (_, other) = api
        .call(
            "GET",
            "/api/v1/customize/todo/fields",
            Some("globex"),
            None,
            None,
        )
        .await;
    assert_eq!(other["data"], json!([]));

    // Removing a definition hides its values.
    assert_eq!(
        api.call(
            "DELETE",
            "/api/v1/customize/todo/fields/cf_499",
            Some("acme"),
            None,
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (_, read) = api.get(&path).await;
    assert_eq!(read["custom"].as_object().unwrap().len(), 499);
}

/// A lifecycle action on a document in the wrong state says so in plain English (the
/// regression: "only a draft documents can be submited").
async fn lifecycle_refusals_read_as_sentences(api: &Api) {
    let (_, customer) = api
        .post(
            "/api/v1/resources/customer",
            json!({"title": "Initrode", "code": "C7"}),
        )
        .await;
    let (status, invoice) = api
        .post(
            "/api/v1/resources/invoice",
            json!({"customer": customer["id"], "total": {"amount": "1", "currency": "EUR"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");
    let path = format!(
        "/api/v1/resources/invoice/{}",
        invoice["id"].as_str().unwrap()
    );
    for (action, expected) in [
        ("cancel", "only submitted documents can be cancelled"),
        ("amend", "only cancelled documents can be amended"),
        ("submit", ""),
        ("submit", "only draft documents can be submitted"),
    ] {
        let (status, body) = api.post(&format!("{path}/{action}"), json!({})).await;
        if expected.is_empty() {
            assert_eq!(status, StatusCode::OK, "{action}: {body}");
            continue;
        }
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{action}: {body}");
        assert_eq!(body["detail"], expected, "{action}");
        assert_eq!(body["errors"][0]["code"], "wrong_status", "{action}");
    }
}

/// `/api/v1/schema/{entity}` describes the tenant's custom fields in `custom`, which
/// create and PATCH write, so it is not read-only (the regression: it left them out and
/// marked `custom` read-only).
async fn schema_lists_custom_fields(api: &Api) {
    for mode in ["read", "create", "update"] {
        let (status, schema) = api
            .get(&format!("/api/v1/schema/customer?mode={mode}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{mode}");
        let custom = &schema["properties"]["custom"];
        assert!(custom.get("readOnly").is_none(), "{mode}: {custom}");
        insta::assert_json_snapshot!(format!("schema_custom_fields_{mode}"), custom);
        // A create must send `custom`, as the tenant has a required custom field.
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            required.contains(&json!("custom")),
            mode != "update",
            "{mode}: {required:?}"
        );
    }
    // Another tenant's schema has none of them, and accepts no custom value but null or {}.
    let (_, theirs) = api
        .call(
            "GET",
            "/api/v1/schema/customer?mode=update",
            Some("globex"),
            None,
            None,
        )
        .await;
    assert_eq!(theirs["properties"]["custom"]["properties"], json!({}));
    assert_eq!(
        theirs["properties"]["custom"]["additionalProperties"],
        json!(false)
    );
}

/// The migrations recorded for `module`, read straight from the database.
async fn recorded_migrations(url: &str, module: &str) -> Vec<String> {
    let sql = "SELECT id FROM prefiq_migrations WHERE module = $1 ORDER BY id";
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let ids = sqlx::query_scalar(sql)
            .bind(module)
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        ids
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let ids = sqlx::query_scalar(sql)
            .bind(module)
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        ids
    }
}

const VEHICLE: &str = r#"{"name": "vehicle", "label": "Vehicle", "fields": [
    {"name": "plate", "type": "data", "required": true, "unique": true, "max_length": 12},
    {"name": "owner", "type": "link", "target": "customer"},
    {"name": "seats", "type": "int", "indexed": true}
]}"#;

async fn runtime_entities(api: &Api) {
    let vehicle: Value = serde_json::from_str(VEHICLE).unwrap();
    let (status, created) = api
        .post("/api/v1/customize/entities", vehicle.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{} {created}", api.url);
    assert_eq!(created["resource"], "/api/v1/resources/vehicle");
    assert_eq!(created["schema"]["module"], "tenant:acme");
    let migrations = recorded_migrations(&api.url, "tenant:acme").await;
    assert!(
        migrations.len() == 1 && migrations[0].starts_with("entity_vehicle_"),
        "{migrations:?}"
    );

    // At once a resource with the engine's validation.
    let (status, car) = api
        .post(
            "/api/v1/resources/vehicle",
            json!({"plate": "AB-123", "seats": 4}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{car}");
    check_invalid(
        api,
        "vehicle",
        json!({"plate": "AB-123"}),
        StatusCode::CONFLICT,
        &[("/plate", "unique")],
    )
    .await;
    check_invalid(
        api,
        "vehicle",
        json!({"seats": 2}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/plate", "missing_required")],
    )
    .await;
    check_invalid(
        api,
        "vehicle",
        json!({"plate": "X", "owner": "nobody"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/owner", "dangling_link")],
    )
    .await;
    let (status, page) = api
        .get(&format!(
            "/api/v1/resources/vehicle?filters={}",
            encode(r#"[["seats",">=",4]]"#)
        ))
        .await;
    assert_eq!(
        (status, page["data"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1)),
        "{page}"
    );

    // In this tenant's OpenAPI and JSON Schema; invisible to every other tenant.
    let (_, document) = api.get("/api/v1/openapi.json").await;
    assert!(document["paths"]["/api/v1/resources/vehicle"].is_object());
    let (status, _) = api.get("/api/v1/schema/vehicle").await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/api/v1/resources/vehicle", "/api/v1/schema/vehicle"] {
        let (status, _) = api.call("GET", path, Some("globex"), None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} for another tenant");
    }
    let (status, _) = api
        .call(
            "POST",
            "/api/v1/resources/vehicle",
            Some("globex"),
            Some(json!({"plate": "Z"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, document) = api
        .call("GET", "/api/v1/openapi.json", Some("globex"), None, None)
        .await;
    assert!(document["paths"]["/api/v1/resources/vehicle"].is_null());
    let (_, document) = api
        .call("GET", "/api/v1/openapi.json", None, None, None)
        .await;
    assert!(document["paths"]["/api/v1/resources/vehicle"].is_null());
    let (_, listed) = api.get("/api/v1/customize/entities").await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    let (_, listed) = api
        .call(
            "GET",
            "/api/v1/customize/entities",
            Some("globex"),
            None,
            None,
        )
        .await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(0), "{listed}");

    // Refused definitions name the part that is wrong and create nothing.
    for (definition, status, pointer, code) in [
        (vehicle.clone(), StatusCode::CONFLICT, "/name", "unique"),
        (
            json!({"name": "todo", "fields": [{"name": "x", "type": "int"}]}),
            StatusCode::CONFLICT,
            "/name",
            "unique",
        ),
        (
            json!({"name": "boat", "fields": [{"name": "hull", "type": "steel"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/fields/0",
            "invalid_schema",
        ),
        (
            json!({"name": "boat", "fields": [{"name": "hull", "type": "data"}, {"name": "port", "type": "link", "target": "harbour"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/fields/1",
            "invalid_schema",
        ),
        (
            json!({"name": "Boat", "fields": [{"name": "x", "type": "int"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
            "invalid_schema",
        ),
        (
            json!([1, 2]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
            "invalid_schema",
        ),
    ] {
        let (got, problem) = api
            .post("/api/v1/customize/entities", definition.clone())
            .await;
        assert_eq!(
            (
                got,
                problem["errors"][0]["pointer"].as_str(),
                problem["errors"][0]["code"].as_str()
            ),
            (status, Some(pointer), Some(code)),
            "{definition}: {problem}"
        );
    }
    // Refused definitions recorded nothing. (Another tenant's namespace is its own: see
    // tests/runtime_entities.rs.)
    assert_eq!(recorded_migrations(&api.url, "tenant:acme").await.len(), 1);
    assert!(
        recorded_migrations(&api.url, "tenant:globex")
            .await
            .is_empty()
    );
}

async fn runtime_entities_after_restart(api: &Api) {
    let (status, page) = api.get("/api/v1/resources/vehicle").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"][0]["plate"], "AB-123", "{page}");
    let (status, _) = api
        .call(
            "GET",
            "/api/v1/resources/vehicle",
            Some("globex"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
