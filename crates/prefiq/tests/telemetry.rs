//! The `telemetry` config section and W3C trace context through the OpenTelemetry layer.

use opentelemetry::trace::TracerProvider as _;
use prefiq::config::TelemetryConfig;
use prefiq::{Config, ConfigError, ConfigOptions};
use tracing_subscriber::layer::SubscriberExt;

fn load(files: &[(&str, &str)], vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, body) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a directory");
        std::fs::write(path, body).expect("a file");
    }
    Config::load(&ConfigOptions {
        root: Some(dir.path().to_owned()),
        env: None,
        vars: Some(
            vars.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        flags: vec![],
        module_sections: vec![],
    })
}

#[test]
fn telemetry_is_off_by_default_with_bounded_defaults() {
    let config = load(&[], &[]).expect("the defaults load");
    assert_eq!(config.telemetry, TelemetryConfig::default());
    assert!(!config.telemetry.enabled());
    assert_eq!(config.telemetry.service_name, "codexion");
    assert!((config.telemetry.sample_ratio - 1.0).abs() < f64::EPSILON);
    assert_eq!(config.telemetry.max_queue_spans, 2048);
    assert_eq!(config.telemetry.max_export_batch, 512);
    assert_eq!(config.telemetry.export_timeout_ms, 10_000);
}

#[test]
fn telemetry_reads_files_and_variables() {
    let config = load(
        &[(
            "config/base.yaml",
            "telemetry:\n  otlp_endpoint: http://127.0.0.1:4318\n  sample_ratio: 0.25\n",
        )],
        &[("PREFIQ__TELEMETRY__SERVICE_NAME", "erp-eu")],
    )
    .expect("the config loads");
    assert!(config.telemetry.enabled());
    assert_eq!(config.telemetry.otlp_endpoint, "http://127.0.0.1:4318");
    assert_eq!(config.telemetry.service_name, "erp-eu");
    assert!((config.telemetry.sample_ratio - 0.25).abs() < f64::EPSILON);
    // The rest keep their defaults.
    assert_eq!(config.telemetry.max_queue_spans, 2048);
}

#[test]
fn bad_telemetry_values_name_their_key() {
    for (yaml, key) in [
        (
            "telemetry:\n  sample_ratio: 1.5\n",
            "telemetry.sample_ratio",
        ),
        (
            "telemetry:\n  otlp_endpoint: 127.0.0.1:4318\n",
            "telemetry.otlp_endpoint",
        ),
        (
            "telemetry:\n  max_queue_spans: 0\n",
            "telemetry.max_queue_spans",
        ),
        (
            "telemetry:\n  max_queue_spans: 10\n  max_export_batch: 11\n",
            "telemetry.max_export_batch",
        ),
        (
            "telemetry:\n  export_timeout_ms: 0\n",
            "telemetry.export_timeout_ms",
        ),
        (
            "telemetry:\n  service_name: ' '\n",
            "telemetry.service_name",
        ),
    ] {
        match load(&[("config/base.yaml", yaml)], &[]) {
            Err(ConfigError::Invalid { key: got, .. }) => assert_eq!(got, key, "{yaml}"),
            other => panic!("{yaml}: expected an invalid {key}, got {other:?}"),
        }
    }
    let typo = load(&[("config/base.yaml", "telemetry:\n  endpoint: x\n")], &[]);
    assert!(
        matches!(&typo, Err(ConfigError::Invalid { key, .. }) if key.starts_with("telemetry")),
        "{typo:?}"
    );
}

/// A request's `traceparent` becomes the parent of its span, the span's trace id is the
/// caller's, and what the span passes on names the same trace with the span as parent.
#[test]
fn traceparent_round_trip_through_the_layer() {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    prefiq::telemetry::set_enabled(true);
    tracing::subscriber::with_default(subscriber, || {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let span = tracing::info_span!("request");
        assert!(prefiq::telemetry::set_remote_parent(
            &span,
            incoming,
            Some("congo=t61rcWkgMzE")
        ));
        assert_eq!(
            prefiq::telemetry::trace_id_of(&span).map(|t| t.to_string()),
            Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned())
        );
        let (outgoing, state) = prefiq::telemetry::headers_of(&span).expect("headers");
        let parts: Vec<&str> = outgoing.split('-').collect();
        assert_eq!(parts.len(), 4, "{outgoing}");
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(
            parts[2], "00f067aa0ba902b7",
            "the span itself is the new parent"
        );
        assert_eq!(parts[3], "01");
        assert_eq!(state.as_deref(), Some("congo=t61rcWkgMzE"));

        // Inside the span, what a job stores continues it.
        let stored = span.in_scope(|| prefiq::telemetry::stored_trace("unused"));
        assert_eq!(stored, outgoing);
        assert_eq!(
            prefiq::telemetry::trace_id_of_stored(&stored).map(|t| t.to_string()),
            Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned())
        );

        // A malformed header leaves the span a trace of its own.
        let other = tracing::info_span!("request");
        assert!(!prefiq::telemetry::set_remote_parent(
            &other,
            "00-nonsense",
            None
        ));
        let own = prefiq::telemetry::trace_id_of(&other).expect("a trace id");
        assert_ne!(own.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    });
    prefiq::telemetry::set_enabled(false);
}
