//! Route sets that modules contribute, and their assembly into one router.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use prefiq::{KernelError, RouteAssembler, RouteInfo, Services};

use crate::HttpState;

/// The routes one module contributes. Build it in a provider's `register` and contribute it
/// with `cx.services.contribute(Arc::new(set))`.
pub struct RouteSet {
    module: String,
    routes: Vec<(RouteInfo, MethodRouter<HttpState>)>,
}

impl RouteSet {
    /// An empty set for `module`.
    pub fn new(module: impl Into<String>) -> Self {
        RouteSet {
            module: module.into(),
            routes: Vec::new(),
        }
    }

    /// Adds `handler` for `method` on `path` (axum syntax: `/items/{id}`).
    pub fn on<H, T>(mut self, method: Method, path: &str, handler: H) -> Self
    where
        H: Handler<T, HttpState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        let info = RouteInfo {
            path: path.to_owned(),
            method: method.as_str().to_owned(),
            module: self.module.clone(),
        };
        self.routes.push((info, on(filter, handler)));
        self
    }

    /// Adds a GET route.
    pub fn get<H: Handler<T, HttpState>, T: 'static>(self, path: &str, handler: H) -> Self {
        self.on(Method::GET, path, handler)
    }

    /// Adds a POST route.
    pub fn post<H: Handler<T, HttpState>, T: 'static>(self, path: &str, handler: H) -> Self {
        self.on(Method::POST, path, handler)
    }

    /// Adds a PUT route.
    pub fn put<H: Handler<T, HttpState>, T: 'static>(self, path: &str, handler: H) -> Self {
        self.on(Method::PUT, path, handler)
    }

    /// Adds a PATCH route.
    pub fn patch<H: Handler<T, HttpState>, T: 'static>(self, path: &str, handler: H) -> Self {
        self.on(Method::PATCH, path, handler)
    }

    /// Adds a DELETE route.
    pub fn delete<H: Handler<T, HttpState>, T: 'static>(self, path: &str, handler: H) -> Self {
        self.on(Method::DELETE, path, handler)
    }
}

/// Checks a path before axum sees it, because axum panics on bad ones.
fn check_path(info: &RouteInfo) -> Result<(), KernelError> {
    let bad = |why: &str| {
        KernelError::service(
            prefiq::ErrorKind::Invalid,
            format!(
                "route {} {} of module `{}` is invalid: {why}",
                info.method, info.path, info.module
            ),
        )
    };
    if !info.path.starts_with('/') {
        return Err(bad("a path starts with `/`"));
    }
    if info.path.len() > 1 && info.path.contains("//") {
        return Err(bad("a path has no empty segments"));
    }
    for segment in info.path.split('/') {
        if segment.starts_with(':') || segment.starts_with('*') {
            return Err(bad("write parameters as `{name}`"));
        }
        if segment.starts_with('{') != segment.ends_with('}') || segment.matches('{').count() > 1 {
            return Err(bad("a parameter is a whole segment such as `{id}`"));
        }
    }
    Ok(())
}

/// Assembles every contributed [`RouteSet`] into one router in the routes step.
#[derive(Default)]
pub struct HttpAssembler {
    router: Mutex<Option<Router<HttpState>>>,
    routes: Mutex<Vec<RouteInfo>>,
}

impl HttpAssembler {
    /// The assembled router, once the routes step has run.
    pub fn router(&self) -> Option<Router<HttpState>> {
        self.router.lock().ok().and_then(|r| r.clone())
    }

    /// Every assembled route, sorted by path and method.
    pub fn routes(&self) -> Vec<RouteInfo> {
        self.routes.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl RouteAssembler for HttpAssembler {
    fn assemble(&self, services: &Services) -> Result<Vec<RouteInfo>, KernelError> {
        let mut by_path: BTreeMap<String, Vec<(RouteInfo, MethodRouter<HttpState>)>> =
            BTreeMap::new();
        let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
        for set in services.all::<RouteSet>() {
            for (info, method_router) in &set.routes {
                check_path(info)?;
                let key = (info.method.clone(), info.path.clone());
                if let Some(first) = seen.insert(key, info.module.clone()) {
                    return Err(KernelError::RouteConflict {
                        method: info.method.clone(),
                        path: info.path.clone(),
                        first,
                        second: info.module.clone(),
                    });
                }
                by_path
                    .entry(info.path.clone())
                    .or_default()
                    .push((info.clone(), method_router.clone()));
            }
        }
        let mut router = Router::new();
        let mut routes = Vec::new();
        for (path, handlers) in by_path {
            let mut merged: Option<MethodRouter<HttpState>> = None;
            for (info, handler) in handlers {
                routes.push(info);
                merged = Some(match merged {
                    None => handler,
                    Some(existing) => existing.merge(handler),
                });
            }
            if let Some(merged) = merged {
                router = router.route(&path, merged);
            }
        }
        routes.sort();
        if let Ok(mut slot) = self.router.lock() {
            *slot = Some(router);
        }
        if let Ok(mut slot) = self.routes.lock() {
            slot.clone_from(&routes);
        }
        Ok(routes)
    }
}

/// Lets code hold the assembler both as itself and as `dyn RouteAssembler`.
pub(crate) fn shared_assembler() -> Arc<HttpAssembler> {
    Arc::new(HttpAssembler::default())
}
