//! The middleware every request passes through, outermost first: observe (correlation id,
//! context, access log, metrics) → problem details for bare error responses → panic
//! catcher → request timeout → body limit → repeated JSON keys (`json_keys.rs`) → the route.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prefiq::{Context, TraceId};
use tracing::Instrument;

use crate::HttpState;
use crate::problem::{PROBLEM_JSON, Problem};

/// The header that carries the correlation id in and out.
pub const CORRELATION_ID: &str = "x-correlation-id";
/// The header that may name the tenant (checked against the token by the identity layer).
pub const TENANT_HEADER: &str = "x-tenant";

/// A correlation id we accept from a client: 1 to 128 visible, unambiguous characters.
fn accept_correlation_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    ok.then(|| text.to_owned())
}

/// The tenant a host name names under `pattern` (`{tenant}.localhost`): the host without
/// its port must be the pattern with one valid tenant name in place of `{tenant}`.
pub fn tenant_from_host(host: &str, pattern: &str) -> Option<String> {
    let (prefix, suffix) = pattern.split_once("{tenant}")?;
    let host = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let host = host.to_ascii_lowercase();
    let label = host.strip_prefix(prefix)?.strip_suffix(suffix)?;
    (!label.contains('.') && prefiq::context::is_tenant_name(label)).then(|| label.to_owned())
}

/// The tenant the `X-Tenant` header names: `Ok(None)` without the header. A header sent
/// more than once, or whose value is not one tenant name (lower-case letters, digits and
/// `-`: `ACME`, `globex,acme` and ` acme` are all malformed) is refused with the reason,
/// which the caller answers as a 400: a request names at most one tenant, exactly, and is
/// never served with a guess.
pub fn tenant_from_header(headers: &HeaderMap) -> Result<Option<String>, &'static str> {
    let mut values = headers.get_all(TENANT_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("the X-Tenant header is repeated: send it once, naming one tenant");
    }
    match value.to_str() {
        Ok(name) if prefiq::context::is_tenant_name(name) => Ok(Some(name.to_owned())),
        _ => Err(
            "the X-Tenant header is not a tenant name: 1 to 63 of lower-case a-z, 0-9 and `-`, not starting with `-`",
        ),
    }
}

/// Why a request that sends `Host` or `Authorization` more than once is refused: each
/// names one thing (RFC 9110 §7.2, §11.6.2), and serving the first while a proxy checked
/// the second would act for someone else than was checked.
fn repeated_singleton(headers: &HeaderMap) -> Option<&'static str> {
    let twice = |name| headers.get_all(name).iter().nth(1).is_some();
    if twice(header::AUTHORIZATION) {
        Some("the Authorization header is repeated: send one credential")
    } else if twice(header::HOST) {
        Some("the Host header is repeated: send it once")
    } else {
        None
    }
}

/// Sets up the request's context and span, then logs and measures the response.
pub async fn observe(State(state): State<HttpState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let given = request
        .headers()
        .get(CORRELATION_ID)
        .and_then(accept_correlation_id);
    let traced = prefiq::telemetry::enabled();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let template = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let span = request_span(traced, &method, template);
    let trace_id = trace_of(&request, &span, given.as_deref());
    let correlation_id = given.unwrap_or_else(|| trace_id.to_string());
    span.record("trace_id", tracing::field::display(trace_id));
    span.record("correlation_id", tracing::field::display(&correlation_id));
    let (tenant, mut rejection) = match repeated_singleton(request.headers())
        .map_or_else(|| tenant_from_header(request.headers()), Err)
    {
        Ok(tenant) => (tenant, None),
        Err(reason) => (
            None,
            Some(Problem::new(StatusCode::BAD_REQUEST).with_detail(reason)),
        ),
    };
    let mut context = Context {
        correlation_id: correlation_id.clone(),
        trace_id,
        tenant,
        user: None,
        principal: None,
        locale: state.config.app.locale.clone(),
    };
    let from_host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| tenant_from_host(h, &state.config.server.tenant_host_pattern));
    match (&context.tenant, from_host) {
        _ if rejection.is_some() => {}
        (Some(header), Some(host)) if *header != host => {
            rejection = Some(
                Problem::new(StatusCode::BAD_REQUEST)
                    .with_detail("the host name and X-Tenant name different tenants"),
            );
        }
        (None, Some(host)) => context.tenant = Some(host),
        _ => {}
    }
    // Probes answer for the process, not for a caller: a credential sent with one (a
    // client that sends its token everywhere, even a revoked one) is not looked at.
    let probe = UNLIMITED.contains(&request.uri().path());
    if rejection.is_none()
        && !probe
        && let Some(credential) = request.headers().get(header::AUTHORIZATION)
    {
        // A refused credential is answered here, before the rate-limit layer runs, so it is
        // counted here against the client address; past the limit the answer is 429. A
        // valid token is never held up by its address: it counts per user.
        rejection = identify(&state, credential, &mut context).await.err();
        let limit = state.config.server.rate_limit_per_minute;
        if rejection.is_some() && limit > 0 {
            let key = format!("ip:{}", client_address(&request));
            if !state
                .rate_limiter
                .check(&key, limit, Instant::now())
                .allowed
            {
                rejection = Some(too_many_requests(limit, WINDOW_S));
            }
        }
    }
    if traced {
        if let Some(tenant) = &context.tenant {
            span.record("tenant", tenant.as_str());
        }
        if let Some(user) = &context.user {
            span.record("user.id", user.as_str());
        }
    }
    // The access line is the only later reader of the tenant and user: they are kept only
    // when it is written, and the context itself moves into the request.
    let logged = tracing::enabled!(target: "prefiq::access", tracing::Level::INFO)
        .then(|| (context.tenant.clone(), context.user.clone()));
    request.extensions_mut().insert(context);
    let mut response = match rejection {
        Some(mut problem) => {
            problem.trace_id = Some(trace_id.to_string());
            let status = problem.status;
            let unauthenticated = status == StatusCode::UNAUTHORIZED.as_u16();
            let mut response = problem.into_response();
            if unauthenticated {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            if status == StatusCode::TOO_MANY_REQUESTS.as_u16() {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(WINDOW_S));
            }
            response
        }
        None => next.run(request).instrument(span.clone()).await,
    };

    let status = response.status().as_u16();
    if traced {
        span.record("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
    }
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        response.headers_mut().insert(CORRELATION_ID, value);
    }
    let elapsed = started.elapsed();
    let route = template;
    if let Some((tenant, user)) = logged {
        tracing::info!(
            target: "prefiq::access",
            trace_id = %trace_id,
            correlation_id = %correlation_id,
            method = %method,
            route = %route,
            status,
            duration_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            tenant = tenant.as_deref().unwrap_or("-"),
            user = user.as_deref().unwrap_or("-"),
            "request"
        );
    }
    state
        .request_metrics
        .record(&method, route, status, elapsed.as_secs_f64());
    response
}

/// The request's span. With trace export on it carries the OpenTelemetry fields (route
/// template, method, status, tenant and user id: never a name or an address); off, only
/// the trace and correlation ids, as the JSON logs always had.
fn request_span(traced: bool, method: &axum::http::Method, route: &str) -> tracing::Span {
    use tracing::field::Empty;
    if traced {
        tracing::info_span!(
            "request",
            trace_id = Empty,
            correlation_id = Empty,
            otel.name = format!("{method} {route}").as_str(),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = method.as_str(),
            http.route = route,
            http.response.status_code = Empty,
            tenant = Empty,
            user.id = Empty,
        )
    } else {
        tracing::info_span!("request", trace_id = Empty, correlation_id = Empty)
    }
}

/// The request's trace id: with trace export on, the OpenTelemetry trace of its span
/// (the caller's, when a valid `traceparent` came with it); off, the `traceparent`'s
/// trace, else a correlation id that is a trace id, else a fresh one.
fn trace_of(request: &Request, span: &tracing::Span, correlation_id: Option<&str>) -> TraceId {
    let headers = request.headers();
    let single = |name: &str| {
        let mut values = headers.get_all(name).iter();
        let value = values.next()?.to_str().ok()?;
        values.next().is_none().then_some(value)
    };
    let traceparent = single(prefiq::telemetry::TRACEPARENT);
    if let Some(parent) = traceparent {
        let state = single(prefiq::telemetry::TRACESTATE);
        prefiq::telemetry::set_remote_parent(span, parent, state);
    }
    prefiq::telemetry::trace_id_of(span)
        .or_else(|| traceparent.and_then(prefiq::telemetry::trace_id_of_traceparent))
        .or_else(|| correlation_id.and_then(TraceId::parse))
        .unwrap_or_else(TraceId::generate)
}

/// Routes that probes call: never limited, and never authenticated.
const UNLIMITED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Routes that guess at credentials (login and password reset), limited per client
/// address and tenant under `login_rate_limit_per_minute`.
const CREDENTIAL_ROUTES: [&str; 3] = [
    "/api/v1/auth/login",
    "/api/v1/auth/password/reset",
    "/api/v1/auth/password/reset/confirm",
];

/// The window of the rate limits, in seconds (the longest a refused client waits).
const WINDOW_S: u64 = crate::rate_limit::WINDOW.as_secs();

/// The address a request came from (`unknown` when the server was not told).
fn client_address(request: &Request) -> String {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

/// The 429 problem of a spent window.
fn too_many_requests(limit: u32, reset_s: u64) -> Problem {
    Problem::new(StatusCode::TOO_MANY_REQUESTS).with_detail(format!(
        "more than {limit} requests in a minute; try again in {reset_s} s"
    ))
}

/// Counts the request against its key's window (see [`crate::rate_limit`]) and answers 429
/// when the window is spent; every limited answer carries the `X-RateLimit-*` headers.
pub async fn rate_limit(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    if route.is_some_and(|r| UNLIMITED.contains(&r)) {
        return next.run(request).await;
    }
    let server = &state.config.server;
    let login = route.is_some_and(|r| CREDENTIAL_ROUTES.contains(&r));
    let limit = if login {
        server.login_rate_limit_per_minute
    } else {
        server.rate_limit_per_minute
    };
    // Nothing to count: the key is not even made.
    if limit == 0 {
        return next.run(request).await;
    }
    let context = request.extensions().get::<Context>();
    let tenant = context.and_then(|c| c.tenant.as_deref()).unwrap_or("-");
    let key = if login {
        format!("login:{}:{tenant}", client_address(&request))
    } else if let Some(api_key) = context
        .and_then(|c| c.principal.as_deref())
        .and_then(|p| p.api_key.as_deref())
    {
        // A key has a window of its own: one busy integration does not spend its user's.
        format!("apikey:{tenant}:{api_key}")
    } else if let Some(user) = context.and_then(|c| c.user.as_deref()) {
        format!("user:{tenant}:{user}")
    } else {
        format!("ip:{}", client_address(&request))
    };
    let decision = state.rate_limiter.check(&key, limit, Instant::now());
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        let mut problem = too_many_requests(limit, decision.reset_s);
        problem.trace_id = context.map(|c| c.trace_id.to_string());
        let mut response = problem.into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(decision.reset_s));
        response
    };
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(decision.remaining),
    );
    headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_s));
    response
}

/// Checks an `Authorization` header and puts its principal into `context`: the token's
/// tenant becomes the request's, and an `X-Tenant` naming another tenant is refused.
async fn identify(
    state: &HttpState,
    credential: &HeaderValue,
    context: &mut Context,
) -> Result<(), Problem> {
    let Some(authenticator) = &state.authenticator else {
        // No identity module: credentials mean nothing here.
        return Ok(());
    };
    let bearer = credential
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Problem::new(StatusCode::UNAUTHORIZED)
                .with_detail("the Authorization header must be `Bearer <token>`")
        })?;
    let principal = authenticator
        .authenticate(bearer)
        .await
        .map_err(Problem::from)?;
    if context
        .tenant
        .as_ref()
        .is_some_and(|asked| *asked != principal.tenant)
    {
        return Err(Problem::new(StatusCode::FORBIDDEN)
            .with_detail("the token was issued for another tenant than the request names"));
    }
    context.tenant = Some(principal.tenant.clone());
    context.user = Some(principal.user.clone());
    context.principal = Some(std::sync::Arc::new(principal));
    Ok(())
}

/// Turns error responses that are not problem details (axum's rejections, 404, 405, 413)
/// into problem details, keeping a short plain-text reason as the detail.
pub async fn problem_details(request: Request, next: Next) -> Response {
    let trace_id = request
        .extensions()
        .get::<Context>()
        .map(|c| c.trace_id.to_string());
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let is_other_json = !is_problem
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    // A handler that answers an error with its own JSON (`/readyz`) or its own page (the
    // desk's forms shown again with their errors) means it.
    if !(status.is_client_error() || status.is_server_error()) || is_other_json || is_html {
        return response;
    }
    let (parts, body) = response.into_parts();
    let mut problem = if is_problem {
        match axum::body::to_bytes(body, 64 * 1024)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<Problem>(&b).ok())
        {
            Some(problem) => problem,
            None => Problem::new(status),
        }
    } else {
        let detail = axum::body::to_bytes(body, 4096)
            .await
            .ok()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let mut problem = Problem::new(status);
        problem.detail = detail;
        problem
    };
    if problem.trace_id.is_none() {
        problem.trace_id = trace_id;
    }
    let mut out = problem.into_response();
    // Keep headers such as `Allow` on a 405 and `Retry-After` on a 503.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// Answers with a problem when the handler takes longer than `server.request_timeout_ms`.
pub async fn request_timeout(
    State(state): State<HttpState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = Duration::from_millis(state.config.server.request_timeout_ms);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(StatusCode::SERVICE_UNAVAILABLE)
            .with_detail(format!(
                "the request did not complete within {} ms",
                limit.as_millis()
            ))
            .into_response(),
    }
}

/// Refuses a declared body larger than `server.body_limit_bytes` before reading it; bodies
/// without a length are cut off at the same limit by axum's extractors.
pub async fn body_limit(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    let limit = state.config.server.body_limit_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Problem::new(StatusCode::PAYLOAD_TOO_LARGE)
            .with_detail(format!("the request body is larger than {limit} bytes"))
            .into_response();
    }
    next.run(request).await
}

/// What a panicking handler answers: a 500 problem; the panic message goes to the log only.
pub fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    tracing::error!(target: "prefiq::http", panic = message, "handler panicked");
    Problem::new(StatusCode::INTERNAL_SERVER_ERROR)
        .with_detail("an internal error occurred")
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::{TENANT_HEADER, tenant_from_header, tenant_from_host};

    /// Reads the `X-Tenant` values `sent` (in order): `Ok(tenant)` or `Err(part of the
    /// detail)`.
    fn check_header(sent: &[&[u8]], expected: Result<Option<&str>, &str>) {
        let mut headers = HeaderMap::new();
        for value in sent {
            headers.append(
                TENANT_HEADER,
                HeaderValue::from_bytes(value).expect("a test header value"),
            );
        }
        match (tenant_from_header(&headers), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got.as_deref(), want, "{sent:?}"),
            (Err(reason), Err(part)) => {
                assert!(reason.contains(part), "{sent:?}: `{reason}` lacks `{part}`");
            }
            (got, want) => panic!("{sent:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn x_tenant_is_one_well_formed_tenant_name() {
        check_header(&[], Ok(None));
        check_header(&[b"acme"], Ok(Some("acme")));
        check_header(&[b"acme-2"], Ok(Some("acme-2")));
        check_header(&[b"ACME"], Err("not a tenant name"));
        check_header(&[b"Acme"], Err("not a tenant name"));
        check_header(&[b"globex,acme"], Err("not a tenant name"));
        check_header(&[b"globex, acme"], Err("not a tenant name"));
        check_header(&[b""], Err("not a tenant name"));
        check_header(&[b"-acme"], Err("not a tenant name"));
        check_header(&[b"acme\xff"], Err("not a tenant name"));
        check_header(&[&[b'a'; 64]], Err("not a tenant name"));
        check_header(&[b"globex", b"acme"], Err("repeated"));
        check_header(&[b"acme", b"acme"], Err("repeated"));
    }

    fn check(host: &str, pattern: &str, expected: Option<&str>) {
        assert_eq!(
            tenant_from_host(host, pattern).as_deref(),
            expected,
            "{host} under {pattern}"
        );
    }

    #[test]
    fn tenants_from_host_names() {
        let local = "{tenant}.localhost";
        check("acme.localhost", local, Some("acme"));
        check("acme.localhost:4949", local, Some("acme"));
        check("ACME.localhost", local, Some("acme"));
        check("localhost", local, None);
        check("localhost:4949", local, None);
        check("a.b.localhost", local, None);
        check("-x.localhost", local, None);
        check("acme.localhost.evil.com", local, None);
        check("127.0.0.1:4949", local, None);
        let hosted = "{tenant}.erp.example.com";
        check("globex.erp.example.com", hosted, Some("globex"));
        check("globex.example.com", hosted, None);
        check("acme.localhost", "", None);
        check(
            "erp-acme.example.com",
            "erp-{tenant}.example.com",
            Some("acme"),
        );
    }
}
