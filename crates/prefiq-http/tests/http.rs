//! The HTTP layer end to end: built-in routes, middleware, problem details, shutdown.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use prefiq::{
    App, BootMode, BootOptions, BootedApp, ConfigOptions, KernelError, Manifest, Module,
    RegisterContext, ServiceProvider, async_trait,
};
use prefiq_data::DatabaseProvider;
use prefiq_data::testing::TestDatabase;
use prefiq_http::{HttpProvider, HttpState, RouteSet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

struct TestModule {
    manifest: Manifest,
    routes: fn() -> RouteSet,
}

struct TestRoutes(fn() -> RouteSet);

#[async_trait]
impl ServiceProvider for TestRoutes {
    fn name(&self) -> &'static str {
        "test::TestRoutes"
    }
    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        cx.services.contribute(Arc::new((self.0)()));
        Ok(())
    }
}

impl Module for TestModule {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(TestRoutes(self.routes))]
    }
}

fn module(name: &str, routes: fn() -> RouteSet) -> TestModule {
    TestModule {
        manifest: Manifest::from_yaml(&format!("name: {name}\nversion: 1.0.0\n")).unwrap(),
        routes,
    }
}

/// How many `/demo/slow` requests have reached their handler (nextest runs each test in a
/// process of its own).
static SLOW_STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn slow(State(_): State<HttpState>) -> &'static str {
    SLOW_STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    "slow done"
}

async fn boom() -> &'static str {
    panic!("handler exploded")
}

async fn echo(body: String) -> String {
    body
}

fn demo_routes() -> RouteSet {
    RouteSet::new("demo")
        .get("/demo/slow", slow)
        .get("/demo/panic", boom)
        .post("/demo/echo", echo)
}

async fn boot_with(
    db: &TestDatabase,
    modules: Vec<TestModule>,
    vars: &[(&str, &str)],
) -> Result<BootedApp, KernelError> {
    let mut app = App::new().provider(DatabaseProvider).provider(HttpProvider);
    for m in modules {
        app = app.module(m);
    }
    let mut env: Vec<(String, String)> = vec![("PREFIQ__DATABASE__URL".into(), db.url.clone())];
    env.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(db.root()),
        vars: Some(env),
        ..Default::default()
    };
    app.boot(options).await
}

async fn boot(db: &TestDatabase) -> BootedApp {
    boot_with(
        db,
        vec![module("demo", demo_routes)],
        &[
            ("PREFIQ__SERVER__REQUEST_TIMEOUT_MS", "200"),
            ("PREFIQ__SERVER__BODY_LIMIT_BYTES", "16"),
        ],
    )
    .await
    .unwrap()
}

fn router(app: &BootedApp) -> axum::Router {
    prefiq_http::router(app, Arc::new(AtomicBool::new(true))).unwrap()
}

async fn send(router: &axum::Router, request: Request<Body>) -> (StatusCode, Response) {
    let response = router.clone().oneshot(request).await.unwrap();
    (response.status(), response)
}

async fn body_json(response: Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()))
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// Sends `request` and compares status, content type and body (trace ids and durations
/// replaced) with a snapshot.
async fn check(router: &axum::Router, request: Request<Body>, name: &str) {
    let (status, response) = send(router, request).await;
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = body_json(response).await;
    insta::assert_json_snapshot!(name, serde_json::json!({"status": status.as_u16(), "content_type": content_type, "body": body}), {
        ".body.trace_id" => "[trace_id]",
        ".body.checks[].duration_ms" => "[duration]",
    });
}

#[tokio::test]
async fn responses() {
    let db = TestDatabase::sqlite().unwrap();
    let app = boot(&db).await;
    let r = router(&app);
    check(&r, get("/healthz"), "healthz").await;
    check(&r, get("/readyz"), "readyz").await;
    check(&r, get("/nope"), "not_found").await;
    check(
        &r,
        Request::delete("/healthz").body(Body::empty()).unwrap(),
        "method_not_allowed",
    )
    .await;
    check(&r, get("/demo/panic"), "handler_panic").await;
    check(&r, get("/demo/slow"), "request_timeout").await;
    check(
        &r,
        Request::post("/demo/echo")
            .body(Body::from("this body is longer than sixteen bytes"))
            .unwrap(),
        "body_too_large",
    )
    .await;
    check(
        &r,
        Request::post("/demo/echo")
            .header("content-length", "100")
            .body(Body::from("x".repeat(100)))
            .unwrap(),
        "declared_body_too_large",
    )
    .await;
    check(
        &r,
        Request::post("/demo/echo")
            .body(Body::from("short"))
            .unwrap(),
        "echo",
    )
    .await;
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_panic_does_not_take_the_server_down() {
    let db = TestDatabase::sqlite().unwrap();
    let app = boot(&db).await;
    let r = router(&app);
    for _ in 0..3 {
        assert_eq!(
            send(&r, get("/demo/panic")).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(send(&r, get("/healthz")).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn correlation_ids_are_echoed_or_generated() {
    let db = TestDatabase::sqlite().unwrap();
    let app = boot(&db).await;
    let r = router(&app);
    let with = |value: &str| {
        Request::get("/healthz")
            .header("x-correlation-id", value)
            .body(Body::empty())
            .unwrap()
    };
    let header = |response: &Response| {
        response.headers()["x-correlation-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };

    let (_, response) = send(&r, with("order-42.retry:1")).await;
    assert_eq!(header(&response), "order-42.retry:1");
    let (_, response) = send(&r, get("/healthz")).await;
    assert_eq!(header(&response).len(), 32, "a generated id is a trace id");
    let (_, response) = send(&r, with("<script>")).await;
    assert_ne!(header(&response), "<script>", "an unsafe id is replaced");
    // A 32-hex correlation id becomes the trace id quoted in problem details.
    let (_, response) = send(
        &r,
        Request::get("/missing")
            .header("x-correlation-id", "0af7651916cd43dd8448eb211c80319c")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        body_json(response).await["trace_id"],
        "0af7651916cd43dd8448eb211c80319c"
    );
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let db = TestDatabase::sqlite().unwrap();
    let app = boot(&db).await;
    let r = router(&app);
    assert_eq!(send(&r, get("/readyz")).await.0, StatusCode::OK);
    app.resolver("test")
        .get::<prefiq_data::DatabaseHandle>()
        .unwrap()
        .get()
        .unwrap()
        .close()
        .await;
    let (status, response) = send(&r, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let body = body_json(response).await;
    assert_eq!(body["status"], "fail");
    assert_eq!(body["checks"][0]["name"], "database");
    assert_eq!(body["checks"][0]["status"], "fail");
    // Not ready (starting or draining) is a 503 too.
    let not_ready = prefiq_http::router(&app, Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(
        send(&not_ready, get("/readyz")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn metrics_are_exposed() {
    let db = TestDatabase::sqlite().unwrap();
    let app = boot(&db).await;
    let r = router(&app);
    send(&r, get("/healthz")).await;
    let (status, response) = send(&r, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = match body_json(response).await {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    for needle in [
        "# TYPE http_requests_total counter",
        "http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"}",
        "# TYPE http_request_duration_seconds histogram",
        "http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",status=\"200\",le=\"0.001\"}",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[tokio::test]
async fn route_conflicts_and_bad_paths_stop_boot() {
    fn twin() -> RouteSet {
        RouteSet::new("twin").get("/demo/slow", slow)
    }
    fn colon() -> RouteSet {
        RouteSet::new("colon").get("/items/:id", slow)
    }
    let db = TestDatabase::sqlite().unwrap();
    let err = boot_with(
        &db,
        vec![module("demo", demo_routes), module("twin", twin)],
        &[],
    )
    .await
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "route GET /demo/slow is declared by both `demo` and `twin`"
    );
    let err = boot_with(&db, vec![module("colon", colon)], &[])
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "route GET /items/:id of module `colon` is invalid: write parameters as `{name}`"
    );
}

async fn raw_get(address: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut out = String::new();
    stream.read_to_string(&mut out).await?;
    Ok(out)
}

/// A server on a free port with the given drain timeout: its address, the sender that
/// stops it, and its task. The database directory lives as long as the returned guard.
type Running = (
    TestDatabase,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), prefiq_http::HttpError>>,
);

async fn start_server(drain_timeout_ms: &str) -> Running {
    let db = TestDatabase::sqlite().unwrap();
    let app = boot_with(
        &db,
        vec![module("demo", demo_routes)],
        &[("PREFIQ__SERVER__DRAIN_TIMEOUT_MS", drain_timeout_ms)],
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(prefiq_http::serve(app, listener, async move {
        let _ = stopped.await;
    }));
    (db, address, stop, server)
}

/// Waits (at most 5 s) until a `/demo/slow` request beyond the first `before` is running.
async fn wait_for_slow_request(before: usize) {
    let started = std::time::Instant::now();
    while SLOW_STARTED.load(std::sync::atomic::Ordering::SeqCst) <= before {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the slow request never reached its handler"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_request_in_flight_at_shutdown_completes() {
    let (_db, address, stop, server) = start_server("5000").await;
    let before = SLOW_STARTED.load(std::sync::atomic::Ordering::SeqCst);
    let in_flight = tokio::spawn(async move { raw_get(address, "/demo/slow").await });
    // Stop only once the request is in its handler: a fixed sleep was not enough on a
    // loaded machine, and the connection was then refused rather than drained.
    wait_for_slow_request(before).await;
    stop.send(()).unwrap();
    let response = in_flight.await.unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("slow done"), "{response}");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        raw_get(address, "/healthz").await.is_err(),
        "the listener is closed after shutdown"
    );
}

#[tokio::test]
async fn the_drain_timeout_bounds_shutdown() {
    let (_db, address, stop, server) = start_server("50").await;
    let before = SLOW_STARTED.load(std::sync::atomic::Ordering::SeqCst);
    let _in_flight = tokio::spawn(async move { raw_get(address, "/demo/slow").await });
    wait_for_slow_request(before).await;
    let started = std::time::Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "shutdown waited for the slow request"
    );
}

#[tokio::test]
async fn boot_migrate_and_readiness_on_backends() {
    for db in prefiq_data::testing::databases("prefiq-http readiness").await {
        let app = boot_with(&db, vec![module("demo", demo_routes)], &[])
            .await
            .unwrap();
        let pending: Vec<String> = app
            .plan()
            .migrations
            .pending
            .iter()
            .map(|m| format!("{}/{}", m.module, m.id))
            .collect();
        assert_eq!(
            pending,
            [
                "prefiq/0000_migrations",
                "prefiq/0001_tenant_config",
                "prefiq/0002_entities",
                "prefiq/0003_custom_fields",
                "prefiq/0004_audit",
                "prefiq/0005_audit_queue",
                "prefiq/0006_outbox_sequence",
                "prefiq/0007_jobs"
            ],
            "{}",
            db.url
        );
        let r = router(&app);
        let (status, response) = send(&r, get("/readyz")).await;
        assert_eq!(status, StatusCode::OK, "{}", db.url);
        assert_eq!(body_json(response).await["checks"][0]["status"], "ok");
        app.shutdown().await.unwrap();
        // A second boot on the same database has nothing left to migrate.
        let again = boot_with(&db, vec![module("demo", demo_routes)], &[])
            .await
            .unwrap();
        assert!(again.plan().migrations.pending.is_empty(), "{}", db.url);
        again.shutdown().await.unwrap();
        db.cleanup().await;
    }
}

#[tokio::test]
async fn rate_limits_answer_429_with_headers_and_spare_probes() {
    let db = TestDatabase::sqlite().unwrap();
    let app = boot_with(
        &db,
        vec![module("demo", demo_routes)],
        &[("PREFIQ__SERVER__RATE_LIMIT_PER_MINUTE", "3")],
    )
    .await
    .unwrap();
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    let header = |response: &Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for remaining in ["2", "1", "0"] {
        let (status, response) = send(&router, get("/demo/missing")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(header(&response, "x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(
            header(&response, "x-ratelimit-remaining").as_deref(),
            Some(remaining)
        );
    }
    let (status, response) = send(&router, get("/demo/missing")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("application/problem+json")
    );
    let retry_after: u64 = header(&response, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body = body_json(response).await;
    assert_eq!(body["status"], 429);
    // Probes are never limited.
    for _ in 0..5 {
        let (status, _) = send(&router, get("/healthz")).await;
        assert_eq!(status, StatusCode::OK);
    }
    app.shutdown().await.unwrap();
}
