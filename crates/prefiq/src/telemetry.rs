//! W3C trace context across process boundaries, and the switch that keeps tracing spans
//! free while no collector listens.
//!
//! The binary installs the OpenTelemetry layer and turns [`enabled`] on when
//! `telemetry.otlp_endpoint` is set. Code that opens a span only for the trace (a SQL
//! statement, an authorization decision) does so through [`otel_span!`](crate::otel_span),
//! which costs one atomic load when telemetry is off, so the hot paths and the JSON logs
//! are unchanged then.
//!
//! A trace crosses into stored work (a job, an outbox row) as text in the row's `trace_id`
//! column: the full `traceparent` when a span was current, else the bare trace id as
//! before. [`trace_id_of_stored`] reads both forms.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::TraceId;

/// The request header (and message header) that carries the trace and parent span.
pub const TRACEPARENT: &str = "traceparent";
/// The request header that carries vendors' trace state along with `traceparent`.
pub const TRACESTATE: &str = "tracestate";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: only then are the spans made by
/// [`otel_span!`](crate::otel_span) created at all.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns export on or off; the binary calls it once the config is known and the
/// exporter runs.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// An `info_span!` when telemetry is on, else [`tracing::Span::none`]: for spans that exist
/// only for the trace, so that they cost nothing and change no log line while it is off.
#[macro_export]
macro_rules! otel_span {
    ($($arg:tt)*) => {
        if $crate::telemetry::enabled() {
            ::tracing::info_span!($($arg)*)
        } else {
            ::tracing::Span::none()
        }
    };
}

/// The two trace context fields of a carrier (a request, a stored row), as given.
struct Fields<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

impl Extractor for Fields<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(self.traceparent),
            TRACESTATE => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// The remote span context a `traceparent` (and `tracestate`) names, checked by
/// OpenTelemetry's W3C propagator; `None` when it is malformed.
fn remote_context(traceparent: &str, tracestate: Option<&str>) -> Option<opentelemetry::Context> {
    let context = TraceContextPropagator::new().extract(&Fields {
        traceparent,
        tracestate,
    });
    context.span().span_context().is_valid().then_some(context)
}

/// The trace id a `traceparent` names, whether or not telemetry is on; `None` when it is
/// not a valid one.
pub fn trace_id_of_traceparent(traceparent: &str) -> Option<TraceId> {
    let context = remote_context(traceparent, None)?;
    TraceId::from_bytes(context.span().span_context().trace_id().to_bytes())
}

/// Makes `span` (not yet entered) the child of the remote span `traceparent` names. Does
/// nothing when telemetry is off or the header is malformed (the span then starts a trace
/// of its own); says whether the parent was set.
pub fn set_remote_parent(
    span: &tracing::Span,
    traceparent: &str,
    tracestate: Option<&str>,
) -> bool {
    if !enabled() {
        return false;
    }
    match remote_context(traceparent, tracestate) {
        Some(context) => span.set_parent(context).is_ok(),
        None => false,
    }
}

/// The OpenTelemetry trace id of `span`, which starts it if it has not started; `None`
/// when telemetry is off or the span is not exported.
pub fn trace_id_of(span: &tracing::Span) -> Option<TraceId> {
    if !enabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| TraceId::from_bytes(span_context.trace_id().to_bytes()))
        .flatten()
}

/// The `traceparent` and `tracestate` of `span`, for a message or request it causes;
/// `None` when telemetry is off or the span is not exported.
pub fn headers_of(span: &tracing::Span) -> Option<(String, Option<String>)> {
    if !enabled() {
        return None;
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    let traceparent = carrier.remove(TRACEPARENT)?;
    let tracestate = carrier.remove(TRACESTATE).filter(|s| !s.is_empty());
    Some((traceparent, tracestate))
}

/// A `traceparent` naming `trace_id` with a fresh parent span id, flagged not sampled:
/// for a request that leaves while spans are not exported, so that its receiver can still
/// quote the trace id the logs carry.
pub fn unsampled_traceparent(trace_id: TraceId) -> String {
    let mut span = [0u8; 8];
    while span == [0u8; 8] {
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut span);
    }
    let span: String = span.iter().map(|b| format!("{b:02x}")).collect();
    format!("00-{trace_id}-{span}-00")
}

/// [`headers_of`] the current span.
pub fn current_headers() -> Option<(String, Option<String>)> {
    if !enabled() {
        return None;
    }
    headers_of(&tracing::Span::current())
}

/// What a row that continues the current trace stores as its `trace_id`: the current
/// span's `traceparent` when telemetry is on (so the work it stands for joins the trace
/// as a child), else `trace_id` as 32 hex digits.
pub fn stored_trace(trace_id: &str) -> String {
    match current_headers() {
        Some((traceparent, _)) => traceparent,
        None => trace_id.to_owned(),
    }
}

/// The trace id a stored `trace_id` value holds, in either form [`stored_trace`] writes.
pub fn trace_id_of_stored(stored: &str) -> Option<TraceId> {
    TraceId::parse(stored).or_else(|| trace_id_of_traceparent(stored))
}

/// The `traceparent` a stored `trace_id` value holds, if it holds one.
pub fn traceparent_of_stored(stored: &str) -> Option<&str> {
    (stored.len() > 32 && trace_id_of_traceparent(stored).is_some()).then_some(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn traceparent_names_its_trace() {
        assert_eq!(
            trace_id_of_traceparent(PARENT)
                .map(|t| t.to_string())
                .as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319z-b7ad6b7169203331-01",
        ] {
            assert_eq!(trace_id_of_traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stored_forms_both_read() {
        assert_eq!(
            trace_id_of_stored("0af7651916cd43dd8448eb211c80319c").map(|t| t.to_string()),
            Some("0af7651916cd43dd8448eb211c80319c".to_owned())
        );
        assert_eq!(
            trace_id_of_stored(PARENT).map(|t| t.to_string()),
            Some("0af7651916cd43dd8448eb211c80319c".to_owned())
        );
        assert_eq!(traceparent_of_stored(PARENT), Some(PARENT));
        assert_eq!(
            traceparent_of_stored("0af7651916cd43dd8448eb211c80319c"),
            None
        );
        assert_eq!(trace_id_of_stored("nonsense"), None);
    }

    #[test]
    fn unsampled_traceparents_are_valid_and_name_the_trace() {
        let trace = TraceId::generate();
        let parent = unsampled_traceparent(trace);
        assert!(parent.ends_with("-00"), "{parent}");
        assert_eq!(trace_id_of_traceparent(&parent), Some(trace));
        assert_ne!(parent, unsampled_traceparent(trace));
    }

    #[test]
    fn off_means_no_span_and_no_headers() {
        // Nothing in this test binary turns telemetry on.
        assert!(!enabled());
        assert!(crate::otel_span!("sql").is_none());
        assert_eq!(current_headers(), None);
        assert_eq!(
            stored_trace("0af7651916cd43dd8448eb211c80319c"),
            "0af7651916cd43dd8448eb211c80319c"
        );
    }
}
