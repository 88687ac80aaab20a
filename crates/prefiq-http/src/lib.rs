//! The Codexion HTTP layer.
//!
//! [`HttpProvider`] registers the route assembler and the built-in routes (`/healthz`,
//! `/readyz`, `/metrics`); modules contribute [`RouteSet`]s; [`router`] wraps the assembled
//! routes in the middleware stack; [`serve`] runs it until a shutdown signal, lets
//! in-flight requests drain, and shuts the app down. This is the only crate that knows HTTP
//! status codes.

mod json_keys;
mod middleware;
pub mod openapi;
mod problem;
pub mod rate_limit;
pub mod request_metrics;
mod resources;
mod routes;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Router, middleware as mw};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use prefiq::{
    BootedApp, Config, KernelError, ReadinessCheck, RegisterContext, RouteAssembler,
    ServiceProvider, Services, async_trait,
};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;

pub use json_keys::json_object;
pub use middleware::{CORRELATION_ID, TENANT_HEADER};
pub use problem::{PROBLEM_JSON, Problem, status_for};
pub use routes::{HttpAssembler, RouteSet};

/// The module name the built-in routes are listed under.
pub const BUILTIN: &str = "prefiq";

/// What every handler can reach through `State<HttpState>`: the [`HttpShared`] parts,
/// behind one `Arc`.
///
/// axum clones the state for every middleware layer and handler a request passes through
/// (`from_fn_with_state`, `State`): one reference count per clone instead of one per part
/// keeps that cheap (each count is an atomic write on a line every core shares).
#[derive(Clone)]
pub struct HttpState(Arc<HttpShared>);

impl std::ops::Deref for HttpState {
    type Target = HttpShared;

    fn deref(&self) -> &HttpShared {
        &self.0
    }
}

/// The parts of [`HttpState`].
pub struct HttpShared {
    /// Every bound service.
    pub services: Arc<Services>,
    /// The installation's configuration.
    pub config: Arc<Config>,
    /// False until the app is ready, and again once shutdown begins.
    pub ready: Arc<AtomicBool>,
    /// Checks `Authorization: Bearer` credentials, when an identity module binds one.
    pub authenticator: Option<Arc<dyn prefiq::Authenticator>>,
    /// Request counters for the rate limits.
    pub rate_limiter: Arc<rate_limit::RateLimiter>,
    /// The handles of the per-request metrics.
    pub request_metrics: Arc<request_metrics::RequestMetrics>,
    /// The whole router, middleware included, once it is built: what [`HttpState::call`]
    /// answers with. (It holds this state in turn; the cycle lives as long as the app.)
    api: OnceLock<Router>,
}

impl HttpState {
    /// Answers `request` in process exactly as a client on the network would be answered:
    /// the same middleware (authentication, rate limits, problem details, logs) and the
    /// same handlers. The admin UI is a client of the API this way, so a page can do only
    /// what its user could do with `curl`.
    pub async fn call(&self, request: axum::extract::Request) -> Response {
        use tower::ServiceExt;
        match self.api.get() {
            Some(router) => match router.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            None => Problem::new(StatusCode::SERVICE_UNAVAILABLE)
                .with_detail("the router is not built yet")
                .into_response(),
        }
    }
}

/// An error from the HTTP layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The routes step did not run, so there is nothing to serve.
    #[error("the HTTP provider is not registered or the routes step has not run")]
    NotAssembled,
    /// The listener failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel failed (for example while shutting down).
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// How often the recorder's histogram samples are folded into their buckets while serving
/// (what `PrometheusBuilder::install` would do; we build the recorder ourselves).
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// The Prometheus recorder, installed once per process.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ],
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding program's); ours then
        // still renders what it was given directly.
        let _ = metrics::set_global_recorder(recorder);
        metrics::describe_counter!(
            "http_requests_total",
            "HTTP requests answered, by method, route and status."
        );
        metrics::describe_histogram!(
            "http_request_duration_seconds",
            metrics::Unit::Seconds,
            "Time to answer an HTTP request, by method, route and status."
        );
        metrics::describe_gauge!(
            "prefiq_boot_duration_seconds",
            metrics::Unit::Seconds,
            "Time from process start to ready."
        );
        metrics::describe_gauge!(
            "prefiq_build_info",
            "Build information; the value is always 1."
        );
        handle
    })
}

/// Registers the route assembler and the built-in routes.
pub struct HttpProvider;

#[async_trait]
impl ServiceProvider for HttpProvider {
    fn name(&self) -> &'static str {
        "prefiq_http::HttpProvider"
    }

    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        let assembler = routes::shared_assembler();
        cx.services.singleton(assembler.clone())?;
        cx.services.singleton::<dyn RouteAssembler>(assembler)?;
        cx.services.contribute(Arc::new(
            RouteSet::new(BUILTIN)
                .get("/healthz", healthz)
                .get("/readyz", readyz)
                .get("/metrics", metrics_text),
        ));
        cx.services.contribute(Arc::new(resources::routes()));
        cx.services
            .contribute(Arc::new(openapi::ApiDescription::from_yaml(
                BUILTIN,
                include_str!("openapi/customize.yaml"),
            )?));
        Ok(())
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize)]
struct CheckResult {
    name: String,
    status: &'static str,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    checks: Vec<CheckResult>,
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if !state.ready.load(Ordering::Acquire) {
        let body = Readiness {
            status: "not_ready",
            checks: vec![],
        };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let checks = state.services.all::<dyn ReadinessCheck>();
    let results = futures_util::future::join_all(checks.iter().map(|check| async move {
        let started = std::time::Instant::now();
        let outcome = check.check().await;
        CheckResult {
            name: check.name().to_owned(),
            status: if outcome.is_ok() { "ok" } else { "fail" },
            duration_ms: (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
            error: outcome.err(),
            detail: check.detail(),
        }
    }))
    .await;
    let ok = results.iter().all(|r| r.status == "ok");
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if ok { "ok" } else { "fail" },
            checks: results,
        }),
    )
        .into_response()
}

async fn metrics_text() -> Response {
    let body = metrics_handle().render();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The full router: assembled routes, the fallback and the middleware stack.
pub fn router(app: &BootedApp, ready: Arc<AtomicBool>) -> Result<Router, HttpError> {
    let assembler = app
        .resolver("prefiq-http")
        .get::<HttpAssembler>()
        .map_err(|_| HttpError::NotAssembled)?;
    let routes = assembler.router().ok_or(HttpError::NotAssembled)?;
    let _ = metrics_handle();
    let state = HttpState(Arc::new(HttpShared {
        // A bound authenticator that cannot be made (a missing key) is an error, never a
        // silent switch to anonymous access.
        authenticator: if app.services.contains::<dyn prefiq::Authenticator>() {
            Some(
                app.services
                    .get::<dyn prefiq::Authenticator>("prefiq-http router")?,
            )
        } else {
            None
        },
        services: app.services.clone(),
        config: app.config.clone(),
        ready,
        rate_limiter: Arc::default(),
        request_metrics: Arc::default(),
        api: OnceLock::new(),
    }));
    let body_limit = usize::try_from(app.config.server.body_limit_bytes).unwrap_or(usize::MAX);
    let router: Router = routes
        .fallback(|| async {
            Problem::new(StatusCode::NOT_FOUND).with_detail("no route matches this path")
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(mw::from_fn_with_state(
            state.clone(),
            json_keys::refuse_repeated_keys,
        ))
        .layer(mw::from_fn_with_state(
            state.clone(),
            middleware::body_limit,
        ))
        .layer(mw::from_fn_with_state(
            state.clone(),
            middleware::request_timeout,
        ))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(mw::from_fn(middleware::problem_details))
        .layer(mw::from_fn_with_state(
            state.clone(),
            middleware::rate_limit,
        ))
        .layer(mw::from_fn_with_state(state.clone(), middleware::observe))
        .with_state(state.clone());
    // A second router from the same app keeps the first's: in-process calls never switch.
    let _ = state.api.set(router.clone());
    Ok(router)
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish for up to `server.drain_timeout_ms`, and shuts the app down
/// (`on_shutdown` hooks, then providers in reverse order).
pub async fn serve(
    mut app: BootedApp,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    let ready = Arc::new(AtomicBool::new(false));
    let router = router(&app, ready.clone())?;
    let drain = Duration::from_millis(app.config.server.drain_timeout_ms);
    let address = listener.local_addr()?;
    let trace_id = app.trace_id();

    app.ready().await?;
    if let Some(duration) = app.boot_duration() {
        metrics::gauge!("prefiq_boot_duration_seconds").set(duration.as_secs_f64());
    }
    metrics::gauge!("prefiq_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    ready.store(true, Ordering::Release);
    tracing::info!(target: "prefiq::http", trace_id = %trace_id, address = %address, "listening");

    // `build_recorder` spawns no upkeep task: without one, every histogram sample stays in
    // memory until the next scrape (unbounded growth when nobody scrapes `/metrics`), and
    // each scrape pays for all of them at once.
    let upkeep = tokio::spawn(async {
        let mut every = tokio::time::interval(METRICS_UPKEEP);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            metrics_handle().run_upkeep();
        }
    });
    let signalled = Arc::new(Notify::new());
    let notify = signalled.clone();
    let not_ready = ready.clone();
    let router = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        not_ready.store(false, Ordering::Release);
        tracing::info!(target: "prefiq::http", trace_id = %trace_id, drain_timeout_ms = drain.as_millis() as u64, "shutdown signal: no new connections, draining");
        notify.notify_one();
    });
    let mut server = std::pin::pin!(server.into_future());
    let served = tokio::select! {
        result = &mut server => result,
        () = signalled.notified() => match tokio::time::timeout(drain, &mut server).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(target: "prefiq::http", trace_id = %trace_id, "drain timeout reached; closing remaining connections");
                Ok(())
            }
        },
    };
    upkeep.abort();
    let shutdown_result = app.shutdown().await;
    served?;
    shutdown_result?;
    Ok(())
}
