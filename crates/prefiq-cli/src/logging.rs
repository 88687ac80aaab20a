//! Log output on stderr: JSON lines by default, text if `log.format` says so, at the level
//! `log.level` says once the config is loaded (`RUST_LOG` wins when set). The
//! OpenTelemetry layer (`telemetry.rs`) sits beside them, inert until the config names a
//! collector.

use prefiq::config::LogFormat;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry, fmt, reload};

type Filtered = Layered<SpanGate<reload::Layer<EnvFilter, Registry>>, Registry>;
type Format = Box<dyn Layer<Filtered> + Send + Sync>;

/// Switches the log level and format once the config is known.
#[derive(Clone)]
pub struct LogControl {
    handles: Option<(
        reload::Handle<EnvFilter, Registry>,
        reload::Handle<Format, Filtered>,
    )>,
}

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level))
}

fn format(format: LogFormat, span_list: bool) -> Format {
    // Neither layer carries its own filter: a per-layer filter cannot be swapped by reload.
    match format {
        // With trace export on, spans nest below the request's (a statement's, an
        // authorization's), so a line names them all: the request's trace id stays on it.
        LogFormat::Json => Box::new(
            fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(span_list)
                .with_writer(std::io::stderr),
        ),
        LogFormat::Text => Box::new(fmt::layer().with_writer(std::io::stderr)),
    }
}

/// Installs the subscriber: JSON at `initial_level` until [`LogControl::apply`].
pub fn init(initial_level: &str) -> LogControl {
    let (filter_layer, filter_handle) = reload::Layer::new(filter(initial_level));
    let filter_layer = SpanGate(filter_layer);
    let (format_layer, format_handle) = reload::Layer::new(format(LogFormat::Json, false));
    let installed = tracing_subscriber::registry()
        .with(filter_layer)
        .with(format_layer)
        .with(crate::telemetry::layer())
        .try_init()
        .is_ok();
    LogControl {
        handles: installed.then_some((filter_handle, format_handle)),
    }
}

impl LogControl {
    /// Applies `log.level` and `log.format`; `quiet` caps the level at `warn` for commands
    /// whose own output is the point.
    pub fn apply(&self, config: &prefiq::Config, quiet: bool) {
        let level = if quiet && !matches!(config.log.level.as_str(), "warn" | "error" | "off") {
            "warn"
        } else {
            config.log.level.as_str()
        };
        let traced = match crate::telemetry::start(&config.telemetry) {
            Ok(()) => config.telemetry.enabled(),
            Err(e) => {
                tracing::error!(target: "prefiq::telemetry", error = %e, "trace export stays off");
                false
            }
        };
        if let Some((filter_handle, format_handle)) = &self.handles {
            let _ = filter_handle.reload(filter(level));
            if config.log.format != LogFormat::Json || traced {
                let _ = format_handle.reload(format(config.log.format, traced));
            }
        }
    }
}

/// The log level's filter, except that while trace export is on it lets `info` spans
/// through whatever the level (`warn` would otherwise leave traces empty). Events, the
/// log lines, are filtered by the level alone.
pub struct SpanGate<L>(L);

impl<L> SpanGate<L> {
    fn traces(metadata: &tracing::Metadata<'_>) -> bool {
        metadata.is_span() && *metadata.level() <= tracing::Level::INFO
    }
}

impl<S, L> Layer<S> for SpanGate<L>
where
    S: tracing::Subscriber,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber);
    }

    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        let interest = self.0.register_callsite(metadata);
        // Asked again on every span while export may be switched on.
        if interest.is_never() && Self::traces(metadata) {
            tracing::subscriber::Interest::sometimes()
        } else {
            interest
        }
    }

    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        self.0.enabled(metadata, ctx) || (Self::traces(metadata) && prefiq::telemetry::enabled())
    }

    fn max_level_hint(&self) -> Option<tracing_subscriber::filter::LevelFilter> {
        // Read when the interest cache is rebuilt, which the filter's reload does after
        // export started.
        let hint = self.0.max_level_hint();
        if prefiq::telemetry::enabled() {
            hint.map(|level| level.max(tracing_subscriber::filter::LevelFilter::INFO))
        } else {
            hint
        }
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.on_new_span(attrs, id, ctx);
    }

    fn on_record(
        &self,
        span: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.on_record(span, values, ctx);
    }

    fn on_follows_from(
        &self,
        span: &tracing::span::Id,
        follows: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        self.0.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_event(event, ctx);
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_exit(id, ctx);
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_close(id, ctx);
    }

    fn on_id_change(
        &self,
        old: &tracing::span::Id,
        new: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.on_id_change(old, new, ctx);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Counts the spans and events that reach it.
    #[derive(Clone, Default)]
    struct Seen {
        spans: Arc<AtomicUsize>,
        events: Arc<AtomicUsize>,
    }

    impl<S: tracing::Subscriber> Layer<S> for Seen {
        fn on_new_span(
            &self,
            _: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.spans.fetch_add(1, Ordering::Relaxed);
        }

        fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            self.events.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn info_spans_pass_a_warn_level_only_while_traces_are_exported() {
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry()
            .with(SpanGate(EnvFilter::new("warn")))
            .with(seen.clone());
        tracing::subscriber::with_default(subscriber, || {
            let emit = || {
                let span = tracing::info_span!("request");
                let _entered = span.enter();
                tracing::info!("an info line");
                tracing::warn!("a warning");
                tracing::debug_span!("detail").in_scope(|| {});
            };
            emit();
            assert_eq!(seen.spans.load(Ordering::Relaxed), 0);
            assert_eq!(seen.events.load(Ordering::Relaxed), 1);
            // What `LogControl::apply` does: export starts, then the filter's reload
            // rebuilds the callsites' interest (and the level hint).
            prefiq::telemetry::set_enabled(true);
            tracing::callsite::rebuild_interest_cache();
            emit();
            prefiq::telemetry::set_enabled(false);
            // The info span only: debug spans and info lines stay filtered.
            assert_eq!(seen.spans.load(Ordering::Relaxed), 1);
            assert_eq!(seen.events.load(Ordering::Relaxed), 2);
        });
    }
}
