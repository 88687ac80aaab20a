//! The per-request metrics (`http_requests_total`, `http_request_duration_seconds`), with
//! their handles kept by method, route and status.
//!
//! Naming a metric through the `metrics` macros builds its key every time: three label
//! strings copied, a vector of labels, and a hash and lookup in the recorder's registry, for
//! the counter and again for the histogram. Those were a visible share of a request that
//! does little else (`/healthz`); a handle found once is reused instead.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::Method;
use metrics::{Counter, Histogram};

/// Handles kept at most; the label set is bounded already (matched routes, `unmatched`,
/// standard statuses) save for unusual methods, which past this are simply not kept.
pub const MAX_HANDLES: usize = 4096;

/// One route's handles, by method and status (a handful per route).
type RouteHandles = Vec<(Method, u16, Counter, Histogram)>;

/// The request metrics' handles by route, then method and status.
#[derive(Default)]
pub struct RequestMetrics {
    handles: RwLock<HashMap<String, RouteHandles>>,
    kept: AtomicUsize,
}

impl RequestMetrics {
    /// Counts one answered request and records how long it took.
    pub fn record(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let found = self.handles.read().ok().and_then(|handles| {
            handles.get(route).and_then(|of_route| {
                of_route
                    .iter()
                    .find(|(m, s, _, _)| *s == status && m == method)
                    .map(|(_, _, counter, histogram)| (counter.clone(), histogram.clone()))
            })
        });
        let (counter, histogram) = match found {
            Some(handles) => handles,
            None => self.register(method, route, status),
        };
        counter.increment(1);
        histogram.record(seconds);
    }

    fn register(&self, method: &Method, route: &str, status: u16) -> (Counter, Histogram) {
        let labels = [
            ("method", method.as_str().to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        let handles = (
            metrics::counter!("http_requests_total", &labels),
            metrics::histogram!("http_request_duration_seconds", &labels),
        );
        if self.kept.load(Ordering::Relaxed) < MAX_HANDLES
            && let Ok(mut kept) = self.handles.write()
        {
            let of_route = kept.entry(route.to_owned()).or_default();
            // Two requests may have registered the same labels at once: one entry is kept.
            if !of_route
                .iter()
                .any(|(m, s, _, _)| *s == status && m == method)
            {
                of_route.push((method.clone(), status, handles.0.clone(), handles.1.clone()));
                self.kept.fetch_add(1, Ordering::Relaxed);
            }
        }
        handles
    }

    /// How many (method, route, status) handles are kept.
    pub fn len(&self) -> usize {
        self.kept.load(Ordering::Relaxed)
    }

    /// Whether no handle is kept yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::{MAX_HANDLES, RequestMetrics};

    #[test]
    fn handles_are_kept_once_per_label_set_and_bounded() {
        let metrics = RequestMetrics::default();
        metrics.record(&Method::GET, "/healthz", 200, 0.001);
        metrics.record(&Method::GET, "/healthz", 200, 0.001);
        metrics.record(&Method::GET, "/healthz", 503, 0.001);
        metrics.record(&Method::POST, "/healthz", 200, 0.001);
        assert_eq!(metrics.len(), 3);
        for i in 0..(MAX_HANDLES + 10) {
            let method = Method::from_bytes(format!("M{i}").as_bytes()).expect("a method");
            metrics.record(&method, "unmatched", 405, 0.001);
        }
        assert_eq!(metrics.len(), MAX_HANDLES);
    }
}
