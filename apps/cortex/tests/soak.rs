//! Tenant soak: many tenants, 32 concurrent workers and random requests through the whole
//! HTTP stack — creates, lists with filters, reads, updates and deletes, by their own ids
//! and by ids guessed from other tenants — with 1% of requests lacking any tenant context
//! and some cancelled mid-flight. Not one row of a foreign tenant may ever come back. On
//! SQLite, and on PostgreSQL when configured.
//!
//! CI runs a small size. The full size of the identity issue is a command:
//!
//! ```sh
//! SOAK_TENANTS=50 SOAK_REQUESTS=40000 cargo nextest run --release -p cortex --test soak --no-capture
//! ```
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cortex::identity::Identity;
use prefiq_data::testing::{TestDatabase, databases};
use serde_json::{Value, json};
use tower::ServiceExt;

const WORKERS: usize = 32;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the soak saw.
#[derive(Default)]
struct Tally {
    requests: AtomicUsize,
    cancelled: AtomicUsize,
    anonymous: AtomicUsize,
    foreign_guesses: AtomicUsize,
    rows_checked: AtomicUsize,
    /// Each a description of a leak: a foreign row returned, or a foreign id reachable.
    leaks: Mutex<Vec<String>>,
}

struct Tenant {
    name: String,
    bearer: String,
}

/// A small deterministic generator per worker.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(bearer) = bearer {
        request = request.header("authorization", bearer);
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Records a leak for every row in `body` that is not `tenant`'s.
fn check_rows(tally: &Tally, tenant: &str, what: &str, body: &Value) {
    let rows: Vec<&Value> = match body.get("data").and_then(Value::as_array) {
        Some(rows) => rows.iter().collect(),
        None if body.get("id").is_some() => vec![body],
        None => Vec::new(),
    };
    let marker = format!("{tenant}:");
    for row in rows {
        tally.rows_checked.fetch_add(1, Ordering::Relaxed);
        let description = row["description"].as_str().unwrap_or("");
        if !description.starts_with(&marker) {
            tally
                .leaks
                .lock()
                .unwrap()
                .push(format!("{what} as {tenant} returned {row}"));
        }
    }
}

async fn soak(db: &TestDatabase, tenants: usize, requests: usize) {
    let api = common::boot_with(
        db,
        &[
            ("PREFIQ__SERVER__RATE_LIMIT_PER_MINUTE", "0"),
            ("PREFIQ__SERVER__LOGIN_RATE_LIMIT_PER_MINUTE", "0"),
        ],
    )
    .await;
    let (app, router) = (api.app, api.router);
    let identity = app.resolver("soak").get::<Identity>().unwrap();
    let mut all = Vec::new();
    for i in 0..tenants {
        let name = format!("t{i:02}");
        identity
            .create_tenant(&name, &format!("admin@{name}.test"), "soak-password")
            .await
            .unwrap();
        let session = identity
            .login(
                &name,
                &format!("admin@{name}.test"),
                "soak-password",
                "127.0.0.1",
            )
            .await
            .unwrap();
        all.push(Tenant {
            name,
            bearer: format!("Bearer {}", session.access_token),
        });
    }
    let all = Arc::new(all);
    // Every id created so far, with its tenant: workers guess from it.
    let ids: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (router, all, ids, tally, next) = (
                router.clone(),
                all.clone(),
                ids.clone(),
                tally.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    tally.requests.fetch_add(1, Ordering::Relaxed);
                    let t = rng.below(all.len());
                    let tenant = &all[t];
                    // 1%: no tenant context at all.
                    if rng.below(100) == 0 {
                        tally.anonymous.fetch_add(1, Ordering::Relaxed);
                        let (status, body) =
                            call(&router, "GET", "/api/v1/resources/todo", None, None).await;
                        if status.is_success() {
                            tally.leaks.lock().unwrap().push(format!(
                                "an anonymous list answered {status}: {body}"
                            ));
                        }
                        continue;
                    }
                    let known = {
                        let ids = ids.lock().unwrap();
                        (!ids.is_empty()).then(|| ids[rng.below(ids.len())].clone())
                    };
                    let op = rng.below(10);
                    // Some requests are cancelled mid-flight, as when a client goes away.
                    let cancel_after = (rng.below(50) == 0)
                        .then(|| Duration::from_micros(rng.below(2000) as u64));
                    let future = async {
                        match (op, known) {
                            (0..=2, _) | (_, None) => {
                                let (status, body) = call(
                                    &router,
                                    "POST",
                                    "/api/v1/resources/todo",
                                    Some(&tenant.bearer),
                                    Some(json!({
                                        "description": format!("{}:{}", tenant.name, rng.below(1_000_000)),
                                        "status": (["Open", "Closed"][rng.below(2)]),
                                    })),
                                )
                                .await;
                                if status == StatusCode::CREATED {
                                    check_rows(&tally, &tenant.name, "create", &body);
                                    ids.lock()
                                        .unwrap()
                                        .push((t, body["id"].as_str().unwrap().to_owned()));
                                }
                            }
                            (3..=5, _) => {
                                let filter = ["", "&filters=%5B%5B%22status%22%2C%22%3D%22%2C%22Open%22%5D%5D"]
                                    [rng.below(2)];
                                let path = format!("/api/v1/resources/todo?limit=50{filter}");
                                let (_, body) =
                                    call(&router, "GET", &path, Some(&tenant.bearer), None).await;
                                check_rows(&tally, &tenant.name, "list", &body);
                            }
                            (op, Some((owner, id))) => {
                                let method = ["GET", "PATCH", "DELETE"][op % 3];
                                let body = (method == "PATCH").then(|| {
                                    json!({"description": format!("{}:edited", tenant.name)})
                                });
                                let path = format!("/api/v1/resources/todo/{id}");
                                let (status, body) =
                                    call(&router, method, &path, Some(&tenant.bearer), body).await;
                                if owner == t {
                                    check_rows(&tally, &tenant.name, method, &body);
                                } else {
                                    tally.foreign_guesses.fetch_add(1, Ordering::Relaxed);
                                    if status != StatusCode::NOT_FOUND {
                                        tally.leaks.lock().unwrap().push(format!(
                                            "{method} of {}'s {id} as {} answered {status}: {body}",
                                            all[owner].name, tenant.name
                                        ));
                                    }
                                }
                            }
                        }
                    };
                    if let Some(limit) = cancel_after {
                        if tokio::time::timeout(limit, future).await.is_err() {
                            tally.cancelled.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        future.await;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    // After the storm, every tenant's full list is still only its own.
    for tenant in all.iter() {
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/resources/todo?limit=500&cursor={c}"),
                None => "/api/v1/resources/todo?limit=500".to_owned(),
            };
            let (status, body) = call(&router, "GET", &path, Some(&tenant.bearer), None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            check_rows(&tally, &tenant.name, "final list", &body);
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
    }
    let leaks = tally.leaks.lock().unwrap().clone();
    println!(
        "soak {}: {tenants} tenants, {WORKERS} workers, {} requests in {:.1} s ({:.0}/s): {} anonymous, {} cancelled, {} foreign-id guesses, {} rows checked, {} leaks",
        db.url,
        tally.requests.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        tally.requests.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        tally.anonymous.load(Ordering::Relaxed),
        tally.cancelled.load(Ordering::Relaxed),
        tally.foreign_guesses.load(Ordering::Relaxed),
        tally.rows_checked.load(Ordering::Relaxed),
        leaks.len(),
    );
    assert!(
        leaks.is_empty(),
        "{} leaks, first: {:?}",
        leaks.len(),
        leaks.first()
    );
    assert!(
        tally.foreign_guesses.load(Ordering::Relaxed) > 0,
        "no foreign id was tried"
    );
    assert!(
        tally.rows_checked.load(Ordering::Relaxed) > 0,
        "no row was checked"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_ever_sees_another_tenants_rows_on_backends() {
    let tenants = env_or("SOAK_TENANTS", 8).max(2);
    let requests = env_or("SOAK_REQUESTS", 2000);
    for db in databases("cortex tenant soak").await {
        soak(&db, tenants, requests).await;
        db.cleanup().await;
    }
}
