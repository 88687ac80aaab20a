//! How a request names its tenant: the `X-Tenant` header, the host name and the token,
//! and which disagreements are refused with which status.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Extension;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use prefiq::{
    App, Authenticator, BootMode, BootOptions, BootedApp, ConfigOptions, Context, ErrorKind,
    KernelError, Manifest, Module, Principal, RegisterContext, ServiceProvider, async_trait,
};
use prefiq_data::DatabaseProvider;
use prefiq_data::testing::TestDatabase;
use prefiq_http::{HttpProvider, RouteSet};
use tower::ServiceExt;

/// Knows one token, `globex-token`, issued for the tenant `globex`.
struct OneToken;

#[async_trait]
impl Authenticator for OneToken {
    async fn authenticate(&self, bearer: &str) -> Result<Principal, KernelError> {
        if bearer != "globex-token" {
            return Err(KernelError::service(
                ErrorKind::Unauthenticated,
                "unknown token",
            ));
        }
        Ok(Principal {
            tenant: "globex".into(),
            user: "u1".into(),
            roles: vec![],
            attributes: Default::default(),
            api_key: None,
        })
    }
}

/// Answers the tenant the request acts in.
async fn tenant(Extension(context): Extension<Context>) -> String {
    context.tenant.unwrap_or_else(|| "-".into())
}

struct Probe(Manifest);

struct ProbeProvider;

#[async_trait]
impl ServiceProvider for ProbeProvider {
    fn name(&self) -> &'static str {
        "test::ProbeProvider"
    }
    fn register(&self, cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        cx.services
            .singleton::<dyn Authenticator>(Arc::new(OneToken))?;
        cx.services.contribute(Arc::new(
            RouteSet::new("probe").get("/probe/tenant", tenant),
        ));
        Ok(())
    }
}

impl Module for Probe {
    fn manifest(&self) -> &Manifest {
        &self.0
    }
    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(ProbeProvider)]
    }
}

async fn boot(db: &TestDatabase) -> BootedApp {
    let app = App::new()
        .provider(DatabaseProvider)
        .provider(HttpProvider)
        .module(Probe(
            Manifest::from_yaml("name: probe\nversion: 1.0.0\n").unwrap(),
        ));
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(db.root()),
        vars: Some(vec![("PREFIQ__DATABASE__URL".into(), db.url.clone())]),
        ..Default::default()
    };
    app.boot(options).await.unwrap()
}

/// Sends `headers` to the probe and compares the status with `status` and the answer
/// (the tenant acted in, or a part of the problem's detail) with `answer`.
async fn check(router: &axum::Router, headers: &[(&str, &str)], status: StatusCode, answer: &str) {
    let mut request = Request::get("/probe/tenant");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let got = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let shown = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(problem) => problem["detail"].as_str().unwrap_or_default().to_owned(),
        Err(_) => text,
    };
    assert_eq!(got, status, "{headers:?}: {shown}");
    assert!(
        shown.contains(answer),
        "{headers:?}: `{shown}` does not say `{answer}`"
    );
}

#[tokio::test]
async fn x_tenant_malformed_or_repeated_is_400_and_another_tenant_is_403() {
    let db = TestDatabase::sqlite().unwrap();
    let app = boot(&db).await;
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    let token = ("authorization", "Bearer globex-token");
    let ok = StatusCode::OK;
    let bad = StatusCode::BAD_REQUEST;
    // The token's tenant, named again or not at all.
    check(&router, &[token], ok, "globex").await;
    check(&router, &[token, ("x-tenant", "globex")], ok, "globex").await;
    // A well-formed name of another tenant than the token's: forbidden.
    check(
        &router,
        &[token, ("x-tenant", "acme")],
        StatusCode::FORBIDDEN,
        "another tenant",
    )
    .await;
    // Malformed or repeated: refused before the token is looked at, never served with
    // the token's tenant.
    for value in ["ACME", "GLOBEX", "Globex", "globex,acme", "globex acme", ""] {
        check(
            &router,
            &[token, ("x-tenant", value)],
            bad,
            "not a tenant name",
        )
        .await;
    }
    check(
        &router,
        &[token, ("x-tenant", "globex"), ("x-tenant", "acme")],
        bad,
        "repeated",
    )
    .await;
    check(
        &router,
        &[token, ("x-tenant", "globex"), ("x-tenant", "globex")],
        bad,
        "repeated",
    )
    .await;
    // Without a token (a login): the answer says what is wrong with the header.
    check(&router, &[("x-tenant", "ACME")], bad, "not a tenant name").await;
    check(&router, &[("x-tenant", "acme")], ok, "acme").await;
    // Host name and header must agree; the host name is case-insensitive (DNS).
    check(
        &router,
        &[("host", "ACME.localhost"), ("x-tenant", "acme")],
        ok,
        "acme",
    )
    .await;
    check(
        &router,
        &[("host", "acme.localhost"), ("x-tenant", "globex")],
        bad,
        "different tenants",
    )
    .await;
    // One credential, one host: a repeated one is refused, whichever comes first.
    check(
        &router,
        &[token, ("authorization", "Bearer acme-token")],
        bad,
        "Authorization header is repeated",
    )
    .await;
    check(
        &router,
        &[("authorization", "Bearer acme-token"), token],
        bad,
        "Authorization header is repeated",
    )
    .await;
    check(
        &router,
        &[("host", "acme.localhost"), ("host", "globex.localhost")],
        bad,
        "Host header is repeated",
    )
    .await;
    drop(router);
    drop(app);
}
