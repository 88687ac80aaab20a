//! The desk: the admin web UI at `/app`, server-rendered from minijinja templates and
//! generated from the entity schemas.
//!
//! The desk is a client of the REST API in the same process: every read and write goes
//! through [`HttpState::call`], with the session's token as the bearer credential, so a
//! page can do exactly what its user could do with `curl` — the same authorization, the
//! same validation and the same problem+json errors, shown next to the fields they name.
//! The desk asks the authorizer only to leave out links and buttons the API would refuse.
//!
//! Sessions are three cookies, all `HttpOnly`, `SameSite=Lax`, path `/app`, and `Secure`
//! outside development: the access token, the refresh token (spent to renew an expired
//! access token) and the CSRF token that every form carries back in `_csrf`. The CSRF
//! token is bound to the session: it is an HMAC of the session's refresh token under a
//! secret derived from the server's signing key, so a token (and a CSRF cookie) taken
//! from another session — the attacker's own — is refused. Before sign-in, the login form
//! uses a random token that must match its cookie.
//! Pages carry a Content-Security-Policy that allows only the desk's own script and
//! stylesheet.
//!
//! Apps add templates, static files and home-page links by contributing a [`DeskLayer`];
//! a template named `entity/{entity}/form.html` or `entity/{entity}/list.html` replaces
//! the generic page for that entity.

// A page's refusal is a whole response (a redirect or an error page), returned by value on
// the cold path as prefiq-http's handlers return their problems.
#![allow(clippy::result_large_err)]

mod admin;
pub mod form;
mod pages;
pub mod render;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use http_body_util::BodyExt;
use prefiq::{Context, Principal};
use prefiq_auth::authz::{CedarAuthorizer, Resource};
use prefiq_data::entity::EntitySchema;
use prefiq_data::entity::repo::TenantScope;
use prefiq_http::{HttpState, RouteSet};
use serde::Serialize;
use serde_json::{Value, json};

use render::{Layer, Renderer};

/// The cookie that holds the access token.
pub const SESSION_COOKIE: &str = "prefiq_session";
/// The cookie that holds the refresh token.
pub const REFRESH_COOKIE: &str = "prefiq_refresh";
/// The cookie that holds the CSRF token.
pub const CSRF_COOKIE: &str = "prefiq_csrf";
/// The cookie that holds the signed-in user's email, for display only.
pub const USER_COOKIE: &str = "prefiq_user";

/// The Content-Security-Policy of every desk page: nothing but the desk's own files.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Longest API answer the desk reads, in bytes.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// A link on the home page, shown when the user may do `action` on the tenant.
#[derive(Debug, Clone, Serialize)]
pub struct DeskLink {
    /// The home page's section (usually the module's name).
    pub section: String,
    /// The link's text.
    pub label: String,
    /// Where it goes (under `/app`).
    pub href: String,
    /// The tenant action the user needs; `None` for every signed-in user.
    pub action: Option<String>,
}

/// What an app adds to the desk: templates and static files over cortex's, and links.
pub struct DeskLayer {
    /// The contributing module.
    pub module: String,
    /// Template name to source.
    pub templates: Vec<(&'static str, &'static str)>,
    /// Static file name to content.
    pub assets: Vec<(&'static str, &'static str)>,
    /// Home-page links.
    pub links: Vec<DeskLink>,
}

/// The core layer: cortex's own templates and static files.
fn core_layer() -> Layer {
    Layer {
        templates: HashMap::from([
            ("base.html", include_str!("../../desk/templates/base.html")),
            (
                "macros.html",
                include_str!("../../desk/templates/macros.html"),
            ),
            (
                "login.html",
                include_str!("../../desk/templates/login.html"),
            ),
            ("home.html", include_str!("../../desk/templates/home.html")),
            ("list.html", include_str!("../../desk/templates/list.html")),
            ("form.html", include_str!("../../desk/templates/form.html")),
            (
                "history.html",
                include_str!("../../desk/templates/history.html"),
            ),
            (
                "audit.html",
                include_str!("../../desk/templates/audit.html"),
            ),
            (
                "users.html",
                include_str!("../../desk/templates/users.html"),
            ),
            ("user.html", include_str!("../../desk/templates/user.html")),
            (
                "roles.html",
                include_str!("../../desk/templates/roles.html"),
            ),
            (
                "settings.html",
                include_str!("../../desk/templates/settings.html"),
            ),
            (
                "message.html",
                include_str!("../../desk/templates/message.html"),
            ),
            ("jobs.html", include_str!("../../desk/templates/jobs.html")),
            ("job.html", include_str!("../../desk/templates/job.html")),
            (
                "schedules.html",
                include_str!("../../desk/templates/schedules.html"),
            ),
        ]),
        assets: HashMap::from([
            ("desk.css", include_str!("../../desk/static/desk.css")),
            ("desk.js", include_str!("../../desk/static/desk.js")),
        ]),
    }
}

/// The desk's templates, links and cookie settings, made on first use from every
/// contributed [`DeskLayer`].
pub struct Desk {
    renderer: Renderer,
    links: Vec<DeskLink>,
    secure_cookies: bool,
    /// The key of the CSRF tokens' HMAC.
    csrf_secret: [u8; 32],
}

impl Desk {
    /// The desk over the core layer and `layers`, with themes under `root/themes`.
    pub fn new(layers: &[Arc<DeskLayer>], root: &std::path::Path, env: &str) -> Self {
        let mut all = vec![core_layer()];
        let mut links = Vec::new();
        for layer in layers {
            all.push(Layer {
                templates: layer.templates.iter().copied().collect(),
                assets: layer.assets.iter().copied().collect(),
            });
            links.extend(layer.links.iter().cloned());
        }
        Desk {
            renderer: Renderer::new(all, root.join("themes")),
            links,
            secure_cookies: env != "development" && env != "test",
            csrf_secret: rand::random(),
        }
    }

    /// The same desk binding CSRF tokens under `secret` (the same on every replica), not
    /// under the random one of this process.
    pub fn with_csrf_secret(mut self, secret: [u8; 32]) -> Self {
        self.csrf_secret = secret;
        self
    }

    /// The CSRF token of the session whose secret (refresh token) is `session_secret`:
    /// HMAC-SHA-256 under the desk's secret, 64 hex characters.
    pub fn csrf_token(&self, session_secret: &str) -> String {
        use hmac::Mac as _;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.csrf_secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"desk csrf\0");
        mac.update(session_secret.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The layered templates and files.
    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// `name` for `tenant`, with `context`, as an HTML page with the desk's headers.
    pub fn render(
        &self,
        tenant: Option<&str>,
        status: StatusCode,
        name: &str,
        context: &Value,
    ) -> Response {
        let env = self.renderer.environment(tenant);
        let html = env
            .get_template(name)
            .and_then(|template| template.render(context));
        match html {
            Ok(html) => page_response(status, html),
            Err(error) => {
                tracing::error!(target: "cortex::desk", template = name, error = %format!("{error:#}"), "template failed");
                // In development the page says why; elsewhere only the log does.
                let why = if self.secure_cookies {
                    String::new()
                } else {
                    format!("<pre>{}</pre>", form::escape(&format!("{error:#}")))
                };
                page_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "<!doctype html><title>Error</title><p>This page could not be shown. The error is in the server's log.</p>{why}"
                    ),
                )
            }
        }
    }

    /// The `Set-Cookie` value of `name` (an empty value clears it).
    fn cookie(&self, name: &str, value: &str, max_age_s: i64) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        let age = if value.is_empty() { 0 } else { max_age_s };
        format!("{name}={value}; Path=/app; HttpOnly; SameSite=Lax; Max-Age={age}{secure}")
    }
}

/// An HTML answer with the desk's security headers.
pub fn page_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(headers);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The parts of a request a desk page needs: headers, the context the middleware made,
/// the client's address and the URI.
pub struct DeskRequest {
    headers: HeaderMap,
    context: Context,
    connect: Option<ConnectInfo<SocketAddr>>,
    uri: Uri,
}

impl<S: Send + Sync> FromRequestParts<S> for DeskRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(DeskRequest {
            headers: parts.headers.clone(),
            context: parts
                .extensions
                .get::<Context>()
                .cloned()
                .unwrap_or_else(|| Context::system("en")),
            connect: parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned(),
            uri: parts.uri.clone(),
        })
    }
}

/// The value of cookie `name` in `headers`.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty() && value.len() <= 4096)
}

/// A random token for CSRF: 32 bytes as hex.
fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two tokens in time that does not depend on where they differ.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The API's answer to an in-process call.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its body as JSON (`null` when empty or not JSON).
    pub body: Value,
    /// Its `ETag`, when it has one.
    pub etag: Option<String>,
}

impl Answer {
    /// Whether the call succeeded.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The problem's `detail` (or `title`), for a failed call.
    pub fn message(&self) -> String {
        self.body
            .get("detail")
            .or_else(|| self.body.get("title"))
            .and_then(Value::as_str)
            .map_or_else(
                || format!("the request failed ({})", self.status),
                str::to_owned,
            )
    }

    /// The problem's field errors as `(pointer, message)`.
    pub fn field_errors(&self) -> Vec<(String, String)> {
        self.body
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        (
                            e.get("pointer")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                            e.get("message")
                                .and_then(Value::as_str)
                                .unwrap_or("is invalid")
                                .to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A signed-in user of the desk.
pub struct Session {
    /// Who the token stands for.
    pub principal: Arc<Principal>,
    /// The email shown in the header.
    pub email: String,
    /// The CSRF token every form must carry.
    pub csrf: String,
    token: String,
    context: Context,
    host: Option<HeaderValue>,
    connect: Option<ConnectInfo<SocketAddr>>,
    /// `Set-Cookie` values the answer must carry (a renewed session, a new CSRF token).
    set_cookies: Vec<String>,
}

impl DeskRequest {
    /// The request's context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The tenant the host name (or `X-Tenant`) names, if any.
    pub fn tenant_hint(&self) -> Option<&str> {
        self.context.tenant.as_deref()
    }

    /// Calls the API without a session (the login form).
    pub async fn call_anonymous(
        &self,
        state: &HttpState,
        method: Method,
        uri: &str,
        tenant: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut extra = Vec::new();
        if let Some(tenant) = tenant {
            extra.push(("x-tenant", tenant.to_owned()));
        }
        call(
            state,
            CallParts {
                method,
                uri,
                token: None,
                host: self.headers.get(header::HOST).cloned(),
                connect: self.connect,
                correlation: &self.context.correlation_id,
                extra: &extra,
                body,
            },
        )
        .await
    }

    /// The signed-in session, renewed with the refresh token when the access token has
    /// expired; otherwise a redirect to the login page that comes back here.
    pub async fn session(&self, state: &HttpState, desk: &Desk) -> Result<Session, Response> {
        let to_login = || {
            let next = self
                .uri
                .path_and_query()
                .map_or("/app", |p| p.as_str())
                .to_owned();
            let target = format!("/app/login?next={}", form::url_encode(&next));
            Redirect::to(&target).into_response()
        };
        let Some(authenticator) = state.authenticator.clone() else {
            return Err(to_login());
        };
        let mut set_cookies = Vec::new();
        let mut principal = None;
        let mut renewed_refresh = None;
        let mut token = cookie_value(&self.headers, SESSION_COOKIE).unwrap_or_default();
        if !token.is_empty() {
            principal = authenticator.authenticate(&token).await.ok();
        }
        if principal.is_none()
            && let Some(refresh) = cookie_value(&self.headers, REFRESH_COOKIE)
        {
            let answer = self
                .call_anonymous(
                    state,
                    Method::POST,
                    "/api/v1/auth/refresh",
                    None,
                    Some(&json!({ "refresh_token": refresh })),
                )
                .await;
            if answer.ok()
                && let (Some(access), Some(refresh)) = (
                    answer.body.get("access_token").and_then(Value::as_str),
                    answer.body.get("refresh_token").and_then(Value::as_str),
                )
            {
                token = access.to_owned();
                principal = authenticator.authenticate(&token).await.ok();
                let refresh_s = answer
                    .body
                    .get("refresh_expires_in")
                    .and_then(Value::as_i64)
                    .unwrap_or(3600);
                set_cookies.push(desk.cookie(SESSION_COOKIE, &token, refresh_s));
                set_cookies.push(desk.cookie(REFRESH_COOKIE, refresh, refresh_s));
                renewed_refresh = Some(refresh.to_owned());
            }
        }
        let Some(principal) = principal else {
            return Err(to_login());
        };
        // A session of another tenant than the host names is not this site's session.
        if let Some(hint) = self.tenant_hint()
            && hint != principal.tenant
        {
            return Err(to_login());
        }
        // Bound to the session the page is rendered for: a renewed one has a new secret.
        let csrf = match renewed_refresh.as_deref() {
            Some(refresh) => desk.csrf_token(refresh),
            None => desk.csrf_token(&self.session_secret().unwrap_or_else(|| token.clone())),
        };
        if cookie_value(&self.headers, CSRF_COOKIE).as_deref() != Some(csrf.as_str()) {
            set_cookies.push(desk.cookie(CSRF_COOKIE, &csrf, 30 * 24 * 3600));
        }
        let principal = Arc::new(principal);
        let mut context = self.context.clone();
        context.tenant = Some(principal.tenant.clone());
        context.user = Some(principal.user.clone());
        context.principal = Some(principal.clone());
        Ok(Session {
            email: cookie_value(&self.headers, USER_COOKIE)
                .map(|e| form::url_decode(&e))
                .unwrap_or_else(|| principal.user.clone()),
            principal,
            csrf,
            token,
            context,
            host: self.headers.get(header::HOST).cloned(),
            connect: self.connect,
            set_cookies,
        })
    }

    /// The desk and the signed-in session, or the answer that takes the page's place (the
    /// login form).
    pub async fn open(&self, state: &HttpState) -> Result<(Arc<Desk>, Session), Response> {
        let desk = desk(state)?;
        let session = self.session(state, &desk).await?;
        Ok((desk, session))
    }

    /// [`DeskRequest::open`] for a posted form: also the form, its CSRF token checked.
    pub async fn open_form(
        &self,
        state: &HttpState,
        body: &[u8],
    ) -> Result<(Arc<Desk>, Session, form::FormData), Response> {
        let (desk, session) = self.open(state).await?;
        let form = form::FormData::parse(body).unwrap_or_default();
        self.check_form(&desk, &form)?;
        Ok((desk, session, form))
    }

    /// The secret a signed-in request's CSRF token is bound to: its refresh token, else
    /// its access token; `None` before sign-in.
    fn session_secret(&self) -> Option<String> {
        cookie_value(&self.headers, REFRESH_COOKIE)
            .or_else(|| cookie_value(&self.headers, SESSION_COOKIE))
    }

    /// The CSRF token this request's forms must carry: the one bound to its session, or
    /// before sign-in the random one of its CSRF cookie (`None` when there is none).
    pub fn expected_csrf(&self, desk: &Desk) -> Option<String> {
        match self.session_secret() {
            Some(secret) => Some(desk.csrf_token(&secret)),
            None => cookie_value(&self.headers, CSRF_COOKIE).filter(|c| c.len() == 64),
        }
    }

    /// Refuses a form whose `_csrf` is not the token of this request's session (so a
    /// token of another session, even with that session's CSRF cookie, is refused), or
    /// that comes from another site.
    pub fn check_form(&self, desk: &Desk, form: &form::FormData) -> Result<(), Response> {
        let cookie = self.expected_csrf(desk).unwrap_or_default();
        let given = form.get("_csrf").unwrap_or_default();
        let cross_site = self
            .headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|site| site == "cross-site");
        if cookie.len() != 64 || !same_token(&cookie, given) || cross_site {
            return Err(page_response(
                StatusCode::FORBIDDEN,
                "<!doctype html><html lang=\"en\"><title>Refused</title><h1>Refused</h1><p>This form has expired or did not come from this site. Go back, reload the page and try again.</p></html>".to_owned(),
            ));
        }
        Ok(())
    }
}

impl Session {
    /// The session's scope, for authorization questions.
    pub fn scope(&self) -> Option<TenantScope> {
        TenantScope::new(&self.context).ok()
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.principal.tenant
    }

    /// Calls the API as this session's user.
    pub async fn call(
        &self,
        state: &HttpState,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Answer {
        self.call_with(state, method, uri, body, &[]).await
    }

    /// Calls the API as this session's user, with extra headers (`If-Match`).
    pub async fn call_with(
        &self,
        state: &HttpState,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        extra: &[(&str, String)],
    ) -> Answer {
        call(
            state,
            CallParts {
                method,
                uri,
                token: Some(&self.token),
                host: self.host.clone(),
                connect: self.connect,
                correlation: &self.context.correlation_id,
                extra,
                body,
            },
        )
        .await
    }

    /// Whether the user may do `action` on the tenant.
    pub async fn may(&self, state: &HttpState, action: &str) -> bool {
        let (Some(scope), Ok(authorizer)) = (
            self.scope(),
            state.services.get::<CedarAuthorizer>("cortex desk"),
        ) else {
            return false;
        };
        authorizer
            .decide(&scope, action, Resource::Tenant)
            .await
            .allowed
    }

    /// Whether the user may do `action` on `doc` of `schema` (on the entity when `None`).
    pub async fn may_on(
        &self,
        state: &HttpState,
        schema: &EntitySchema,
        action: &str,
        doc: Option<&serde_json::Map<String, Value>>,
    ) -> bool {
        let (Some(scope), Ok(authorizer)) = (
            self.scope(),
            state.services.get::<CedarAuthorizer>("cortex desk"),
        ) else {
            return false;
        };
        let id = doc
            .and_then(|d| d.get("id"))
            .and_then(Value::as_str)
            .unwrap_or("");
        authorizer
            .decide(&scope, action, Resource::Record { schema, id, doc })
            .await
            .allowed
    }

    /// The page context every template gets: the app, the user and the CSRF token.
    pub fn base_context(&self, state: &HttpState) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        map.insert("app_name".into(), json!(state.config.app.name));
        map.insert(
            "user".into(),
            json!({ "email": self.email, "id": self.principal.user, "tenant": self.principal.tenant, "roles": self.principal.roles }),
        );
        map.insert("csrf".into(), json!(self.csrf));
        map
    }

    /// Renders `name` with `context` (over [`Session::base_context`]) for this session.
    pub fn render(
        &self,
        state: &HttpState,
        desk: &Desk,
        status: StatusCode,
        name: &str,
        context: Value,
    ) -> Response {
        let mut map = self.base_context(state);
        if let Value::Object(extra) = context {
            map.extend(extra);
        }
        let response = desk.render(Some(self.tenant()), status, name, &Value::Object(map));
        self.finish(response)
    }

    /// Adds the session's pending cookies to `response`.
    pub fn finish(&self, mut response: Response) -> Response {
        for cookie in &self.set_cookies {
            if let Ok(value) = HeaderValue::from_str(cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response
    }

    /// A redirect (303) to `to`, with the session's pending cookies.
    pub fn redirect(&self, to: &str) -> Response {
        self.finish(Redirect::to(to).into_response())
    }

    /// A page that says `message` (an error or a refusal) with `status`.
    pub fn message(
        &self,
        state: &HttpState,
        desk: &Desk,
        status: StatusCode,
        title: &str,
        message: &str,
    ) -> Response {
        self.render(
            state,
            desk,
            status,
            "message.html",
            json!({ "title": title, "message": message }),
        )
    }
}

struct CallParts<'a> {
    method: Method,
    uri: &'a str,
    token: Option<&'a str>,
    host: Option<HeaderValue>,
    connect: Option<ConnectInfo<SocketAddr>>,
    correlation: &'a str,
    extra: &'a [(&'a str, String)],
    body: Option<&'a Value>,
}

async fn call(state: &HttpState, parts: CallParts<'_>) -> Answer {
    let failed = |detail: String| Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        body: json!({ "title": "Internal Server Error", "detail": detail }),
        etag: None,
    };
    let mut builder = axum::http::Request::builder()
        .method(parts.method)
        .uri(parts.uri)
        .header("x-correlation-id", parts.correlation);
    if let Some(token) = parts.token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(host) = parts.host {
        builder = builder.header(header::HOST, host);
    }
    for (name, value) in parts.extra {
        builder = builder.header(*name, value.as_str());
    }
    let body = match parts.body {
        Some(value) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(value.to_string())
        }
        None => Body::empty(),
    };
    let mut request = match builder.body(body) {
        Ok(request) => request,
        Err(e) => return failed(format!("the desk built a bad request: {e}")),
    };
    if let Some(connect) = parts.connect {
        request.extensions_mut().insert(connect);
    }
    let response = state.call(request).await;
    let status = response.status();
    let etag = response
        .headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limited = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES);
    let bytes: Bytes = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return failed(format!("the API's answer could not be read: {e}")),
    };
    Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        etag,
    }
}

/// The desk's routes.
pub fn routes() -> RouteSet {
    RouteSet::new("cortex")
        .get("/app", pages::home)
        .get("/app/login", pages::login_page)
        .post("/app/login", pages::login)
        .post("/app/logout", pages::logout)
        .get("/app/static/{file}", pages::asset)
        .get("/app/e/{entity}", pages::list)
        .post("/app/e/{entity}", pages::bulk)
        .get("/app/e/{entity}/new", pages::new_form)
        .post("/app/e/{entity}/new", pages::create)
        .get("/app/e/{entity}/{id}", pages::view)
        .post("/app/e/{entity}/{id}", pages::save)
        .post("/app/e/{entity}/{id}/do/{action}", pages::act)
        .get("/app/e/{entity}/{id}/history", pages::history)
        .get("/app/search/{entity}", pages::search)
        .get("/app/audit", pages::audit_status)
        .get("/app/admin/users", admin::users)
        .post("/app/admin/users", admin::create_user)
        .get("/app/admin/users/{id}", admin::user)
        .post("/app/admin/users/{id}", admin::update_user)
        .get("/app/admin/roles", admin::roles)
        .post("/app/admin/roles", admin::add_policy)
        .post("/app/admin/roles/{id}/remove", admin::remove_policy)
        .get("/app/admin/settings", admin::settings)
        .post("/app/admin/settings", admin::save_settings)
        .get("/app/admin/jobs", pages::jobs_list)
        .get("/app/admin/jobs/{id}", pages::job_detail)
        .post("/app/admin/jobs/{id}/{action}", pages::job_act)
        .get("/app/admin/schedules", pages::schedules_list)
}

/// The desk service from the state (made on first use).
#[allow(clippy::result_large_err)]
pub fn desk(state: &HttpState) -> Result<Arc<Desk>, Response> {
    state.services.get::<Desk>("cortex desk").map_err(|e| {
        page_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "<!doctype html><title>Error</title><p>The desk is not available: {}</p>",
                form::escape(&e.to_string())
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cookies: &str, name: &str, expected: Option<&str>) {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(cookies).unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(
            cookie_value(&headers, name).as_deref(),
            expected,
            "{cookies}"
        );
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        check("prefiq_session=abc", "prefiq_session", Some("abc"));
        check(
            "a=1; prefiq_session=abc; b=2",
            "prefiq_session",
            Some("abc"),
        );
        check("xprefiq_session=abc", "prefiq_session", None);
        check("prefiq_session=", "prefiq_session", None);
        check("prefiq_session_x=1", "prefiq_session", None);
        check("", "prefiq_session", None);
    }

    #[test]
    fn cookies_are_secure_outside_development() {
        let root = std::env::temp_dir();
        let check = |env: &str, secure: bool| {
            let cookie = Desk::new(&[], &root, env).cookie(SESSION_COOKIE, "abc", 60);
            assert!(
                cookie.starts_with(
                    "prefiq_session=abc; Path=/app; HttpOnly; SameSite=Lax; Max-Age=60"
                ),
                "{cookie}"
            );
            assert_eq!(cookie.ends_with("; Secure"), secure, "{env}: {cookie}");
        };
        check("production", true);
        check("staging", true);
        check("development", false);
        check("test", false);
        // Clearing a cookie ends it at once.
        assert!(
            Desk::new(&[], &root, "production")
                .cookie(SESSION_COOKIE, "", 60)
                .contains("Max-Age=0")
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
        assert!(!same_token("", "a"));
        assert_eq!(random_token().len(), 64);
        assert_ne!(random_token(), random_token());
    }
}
