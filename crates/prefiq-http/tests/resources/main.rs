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

mod crud;
mod custom_fields;
mod documents;
mod runtime;

use crud::*;
use custom_fields::*;
use documents::*;
use runtime::*;

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
