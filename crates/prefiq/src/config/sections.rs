//! The kernel's own config sections: what each key means and its default.

use serde::{Deserialize, Serialize};

/// General settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The installation's display name.
    pub name: String,
    /// Default locale (BCP 47).
    pub locale: String,
    /// Default time zone (IANA name, such as `Europe/Zurich`).
    pub timezone: String,
}

/// The HTTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// How long in-flight requests may run after a shutdown signal.
    pub drain_timeout_ms: u64,
    /// How long one request may take before it is answered with a timeout problem.
    pub request_timeout_ms: u64,
    /// Largest accepted request body.
    pub body_limit_bytes: u64,
    /// Requests per minute for one user (by token) or, without a token, one client
    /// address; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    /// Login attempts per minute from one client address to one tenant; 0 turns it off.
    pub login_rate_limit_per_minute: u32,
    /// How a request's host name names its tenant: `{tenant}` stands for one DNS label
    /// (`{tenant}.localhost`, `{tenant}.erp.example.com`); empty turns it off.
    pub tenant_host_pattern: String,
}

/// The application database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (relative to the working directory) or `postgres://...`.
    pub url: String,
    /// Largest pool size (readers on SQLite, all connections on PostgreSQL).
    pub max_connections: u32,
    /// How long SQLite waits on a locked database.
    pub busy_timeout_ms: u64,
    /// How long to wait for a pooled connection.
    pub acquire_timeout_ms: u64,
    /// Where tenants' entity rows live: `shared` (one database, rows keyed by
    /// `tenant_id`) or `database` (a database per tenant: a SQLite file beside the main
    /// one, or a PostgreSQL database named after the main one).
    #[serde(default)]
    pub tenancy: Tenancy,
    /// In `database` tenancy, at most this many tenant databases are open at once; the
    /// longest unused is closed to make room.
    #[serde(default = "default_max_open_tenants")]
    pub max_open_tenants: usize,
    /// In `database` tenancy, the pool size of each tenant database (readers on SQLite):
    /// with PostgreSQL, `max_open_tenants × tenant_max_connections` must fit the server's
    /// `max_connections`.
    #[serde(default = "default_tenant_max_connections")]
    pub tenant_max_connections: u32,
}

pub(super) fn default_tenant_max_connections() -> u32 {
    2
}

pub(super) fn default_max_open_tenants() -> usize {
    64
}

/// Where tenants' entity rows live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tenancy {
    /// One database; every row carries its `tenant_id`.
    #[default]
    Shared,
    /// A database per tenant (rows still carry `tenant_id`, and every check still runs).
    Database,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `trace`, `debug`, `info`, `warn`, `error` or `off`.
    pub level: String,
    /// `json` (one object per line) or `text`.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Trace export over OpenTelemetry (OTLP/HTTP, protobuf). Off while `otlp_endpoint` is
/// empty; every bound keeps a slow or absent collector from costing requests memory or
/// time: spans past the queue are dropped and counted, never waited for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP address, such as `http://127.0.0.1:4318` (spans go to
    /// its `/v1/traces`, unless the address already ends in it); empty turns export off.
    pub otlp_endpoint: String,
    /// The `service.name` resource attribute the spans carry.
    pub service_name: String,
    /// The share of new traces recorded, 0.0 to 1.0; a request that arrives with a
    /// `traceparent` follows its caller's sampling decision instead.
    pub sample_ratio: f64,
    /// Ended spans waiting for export at most; a span past it is dropped and counted.
    pub max_queue_spans: usize,
    /// Spans sent in one export request at most.
    pub max_export_batch: usize,
    /// How long one export request may take before it counts as failed.
    pub export_timeout_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: String::new(),
            service_name: "codexion".into(),
            sample_ratio: 1.0,
            max_queue_spans: 2048,
            max_export_batch: 512,
            export_timeout_ms: 10_000,
        }
    }
}

impl TelemetryConfig {
    /// Whether spans are exported.
    pub fn enabled(&self) -> bool {
        !self.otlp_endpoint.trim().is_empty()
    }

    /// The first bad value as (key under `telemetry.`, why).
    pub(super) fn problem(&self) -> Option<(&'static str, String)> {
        let endpoint = self.otlp_endpoint.trim();
        let web = endpoint.starts_with("http://") || endpoint.starts_with("https://");
        if !(endpoint.is_empty() || web) {
            return Some((
                "otlp_endpoint",
                format!("`{endpoint}` is not an http:// or https:// address"),
            ));
        }
        if self.service_name.trim().is_empty() {
            return Some(("service_name", "must not be empty".into()));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Some((
                "sample_ratio",
                format!("must be between 0.0 and 1.0, got {}", self.sample_ratio),
            ));
        }
        if !(1..=1_000_000).contains(&self.max_queue_spans) {
            return Some((
                "max_queue_spans",
                format!(
                    "must be between 1 and 1000000, got {}",
                    self.max_queue_spans
                ),
            ));
        }
        if !(1..=self.max_queue_spans).contains(&self.max_export_batch) {
            return Some((
                "max_export_batch",
                format!(
                    "must be between 1 and max_queue_spans ({}), got {}",
                    self.max_queue_spans, self.max_export_batch
                ),
            ));
        }
        if !(1..=600_000).contains(&self.export_timeout_ms) {
            return Some((
                "export_timeout_ms",
                format!(
                    "must be between 1 and 600000, got {}",
                    self.export_timeout_ms
                ),
            ));
        }
        None
    }
}
