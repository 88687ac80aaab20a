//! Log output on stderr: JSON lines by default, text if `log.format` says so, at the level
//! `log.level` says once the config is loaded (`RUST_LOG` wins when set). The
//! OpenTelemetry layer (`telemetry.rs`) sits beside them, inert until the config names a
//! collector.

use prefiq::config::LogFormat;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry, fmt, reload};

type Filtered = Layered<reload::Layer<EnvFilter, Registry>, Registry>;
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
