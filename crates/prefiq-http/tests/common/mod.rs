//! The set-up the smaller REST suites share: an installation with a few declared entities
//! (no identity module, so `X-Tenant` names the tenant) and raw calls through its router.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use prefiq::{
    App, BootMode, BootOptions, ConfigOptions, EntitySource, KernelError, Manifest, Module,
    RegisterContext, ServiceProvider, async_trait,
};
use prefiq_data::DatabaseProvider;
use prefiq_data::entity::repo::{EntityEvent, EntityHook, EntityHookFn, ListQuery, Repository};
use prefiq_data::testing::TestDatabase;
use prefiq_http::{HttpProvider, RouteSet};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const TODO: &str = "name: todo
fields:
  - {name: description, type: text, required: true}
  - {name: status, type: select, options: [Open, Closed], default: Open}
  - {name: estimate, type: int}
";

pub const CUSTOMER: &str = "name: customer
fields:
  - {name: title, type: data, required: true}
";

struct Sample(Manifest);

/// The repository of the installation booted last, for the hooks.
static HOOK_REPOSITORY: Mutex<Option<Weak<Repository>>> = Mutex::new(None);

fn hook_repository() -> Option<Arc<Repository>> {
    HOOK_REPOSITORY.lock().ok()?.as_ref()?.upgrade()
}

struct EchoRoutes;

/// A module route that reads its body as JSON: what `/demo/echo` answers is the body's
/// `value` member.
async fn echo(body: axum::body::Bytes) -> String {
    serde_json::from_slice::<Value>(&body)
        .map(|v| v["value"].to_string())
        .unwrap_or_else(|e| e.to_string())
}

#[async_trait]
impl ServiceProvider for EchoRoutes {
    fn name(&self) -> &'static str {
        "sample::EchoRoutes"
    }
    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        cx.services
            .contribute(Arc::new(RouteSet::new("sample").post("/demo/echo", echo)));
        // Hooks on `customer` that update records themselves, through the repository: a
        // change of a customer's title to `nested` changes every todo's status before the
        // customer is written, and upper-cases the customer's title after.
        let hook = |event, name: &str, run: EntityHookFn| {
            Arc::new(EntityHook {
                module: "sample".into(),
                name: name.into(),
                entity: "customer".into(),
                event,
                run,
            })
        };
        cx.services.contribute(hook(
            EntityEvent::BeforeUpdate,
            "close_todos",
            Arc::new(|input| {
                Box::pin(async move {
                    if input.doc.get("title") == Some(&json!("nested"))
                        && let Some(repository) = hook_repository()
                    {
                        let todos = repository
                            .list(&input.scope, "todo", &ListQuery::default())
                            .await
                            .map_err(|e| e.to_string())?;
                        for todo in &todos.data {
                            let id = todo["id"].as_str().unwrap_or_default();
                            repository
                                .update(&input.scope, "todo", id, json!({"status": "Closed"}), None)
                                .await
                                .map_err(|e| e.to_string())?;
                        }
                    }
                    Ok(input.doc)
                })
            }),
        ));
        cx.services.contribute(hook(
            EntityEvent::AfterUpdate,
            "shout",
            Arc::new(|input| {
                Box::pin(async move {
                    if input.doc.get("title") == Some(&json!("nested"))
                        && let Some(repository) = hook_repository()
                        && let Some(id) = input.doc.get("id").and_then(Value::as_str)
                    {
                        repository
                            .update(
                                &input.scope,
                                "customer",
                                id,
                                json!({"title": "NESTED"}),
                                None,
                            )
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(input.doc)
                })
            }),
        ));
        Ok(())
    }
}

impl Module for Sample {
    fn manifest(&self) -> &Manifest {
        &self.0
    }
    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(EchoRoutes)]
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
        ]
    }
}

pub struct Api {
    pub router: axum::Router,
    pub url: String,
    pub app: prefiq::BootedApp,
}

/// Boots the sample installation on `db` with the extra configuration `vars`.
pub async fn boot(db: &TestDatabase, vars: &[(&str, &str)]) -> Api {
    let app = App::new()
        .provider(DatabaseProvider)
        .provider(HttpProvider)
        .module(Sample(
            Manifest::from_yaml("name: sample\nversion: 1.0.0\n").unwrap(),
        ));
    let mut env: Vec<(String, String)> = vec![("PREFIQ__DATABASE__URL".into(), db.url.clone())];
    // CI runs the suites again with a database per tenant; a suite may choose its own.
    if let Ok(tenancy) = std::env::var("PREFIQ_TEST_TENANCY")
        && !vars.iter().any(|(k, _)| *k == "PREFIQ__DATABASE__TENANCY")
    {
        env.push(("PREFIQ__DATABASE__TENANCY".into(), tenancy));
    }
    env.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(db.root()),
        vars: Some(env),
        ..Default::default()
    };
    let app = app.boot(options).await.unwrap();
    let repository = app.resolver("tests").get::<Repository>().unwrap();
    *HOOK_REPOSITORY.lock().unwrap() = Some(Arc::downgrade(&repository));
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    Api {
        router,
        url: db.url.clone(),
        app,
    }
}

impl Api {
    /// Sends `body` as it is written (so it can repeat a key) with `headers`.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    /// Sends `body` (JSON, or nothing) as the tenant `tenant`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        tenant: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let text = body.map(Value::to_string).unwrap_or_default();
        self.raw(method, path, &[("x-tenant", tenant)], &text).await
    }
}

/// The `(status, pointer, code)` of a problem's first error.
pub fn first_error(status: StatusCode, problem: &Value) -> (StatusCode, String, String) {
    let error = &problem["errors"][0];
    (
        status,
        error["pointer"].as_str().unwrap_or("-").to_owned(),
        error["code"].as_str().unwrap_or("-").to_owned(),
    )
}

/// The rows of `table` that `column` says belong to `value`, read straight from the main
/// database at `url`.
pub async fn count_rows(url: &str, table: &str, column: &str, value: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        // Audit records of PostgreSQL writes are numbered by the sequencer after commit;
        // number what is queued, as every reader of the log does.
        let database = prefiq_data::Database::Postgres(pool.clone());
        for tenant in prefiq_data::audit_sequencer::queued_tenants(&database)
            .await
            .unwrap()
        {
            prefiq_data::audit_sequencer::sequence(&database, &tenant)
                .await
                .unwrap();
        }
        let n = sqlx::query_scalar(&sql)
            .bind(value)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    } else {
        sqlite_file(url)
            .query_row(&sql, [value], |row| row.get(0))
            .unwrap()
    }
}

/// A connection of its own to the SQLite file at `url`.
pub fn sqlite_file(url: &str) -> rusqlite::Connection {
    let Ok(prefiq_data::DatabaseUrl::Sqlite(path)) =
        prefiq_data::DatabaseUrl::parse(url, std::path::Path::new("/"))
    else {
        panic!("not a SQLite URL: {url}");
    };
    rusqlite::Connection::open(path).unwrap()
}
