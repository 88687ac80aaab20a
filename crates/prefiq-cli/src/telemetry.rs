//! Trace export: the OpenTelemetry layer beside the JSON log layer, and the bounded
//! queue that takes ended spans to an OTLP/HTTP collector.
//!
//! The layer is installed with the subscriber at start, before the config is read, and
//! stays inert (one atomic load per span, [`prefiq::telemetry::enabled`]) until
//! [`start`] finds `telemetry.otlp_endpoint` set. Ended spans then go into a queue of
//! `telemetry.max_queue_spans` with a `try_send`: a full queue drops the span and counts
//! it (`prefiq_telemetry_spans_dropped_total{reason="queue_full"}`), so a request never
//! waits on the collector. One task on the runtime takes batches of
//! `telemetry.max_export_batch` off the queue and posts each under
//! `telemetry.export_timeout_ms`; a batch that fails is counted under
//! `reason="export_failed"` and not retried (the next batch is already waiting).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler, SamplingResult, SdkTracer, SdkTracerProvider, ShouldSample, SpanData, SpanExporter,
    SpanProcessor,
};
use prefiq::config::TelemetryConfig;
use tokio::sync::{Notify, mpsc};
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;

/// The longest a batch waits to fill before it is sent anyway.
const BATCH_DELAY: Duration = Duration::from_millis(500);
/// The largest collector answer read (the OTLP answer is a few bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Dropped spans, by reason.
const DROPPED: &str = "prefiq_telemetry_spans_dropped_total";
/// Spans the collector accepted.
const EXPORTED: &str = "prefiq_telemetry_spans_exported_total";

/// Why export could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter refused its settings (the endpoint).
    #[error("cannot set up trace export to {endpoint}: {message}")]
    Exporter {
        /// The collector address.
        endpoint: String,
        /// The exporter's message.
        message: String,
    },
    /// Export needs the async runtime, and none was running.
    #[error("cannot start trace export: no async runtime")]
    NoRuntime,
}

/// The sampler the config chooses, set once by [`start`]; parent-based, so a request
/// that arrives with a `traceparent` follows its caller's decision.
#[derive(Debug, Clone, Default)]
struct ConfiguredSampler(Arc<OnceLock<Sampler>>);

impl ShouldSample for ConfiguredSampler {
    fn should_sample(
        &self,
        parent_context: Option<&opentelemetry::Context>,
        trace_id: opentelemetry::trace::TraceId,
        name: &str,
        span_kind: &opentelemetry::trace::SpanKind,
        attributes: &[opentelemetry::KeyValue],
        links: &[opentelemetry::trace::Link],
    ) -> SamplingResult {
        match self.0.get() {
            Some(sampler) => {
                sampler.should_sample(parent_context, trace_id, name, span_kind, attributes, links)
            }
            None => Sampler::AlwaysOff.should_sample(
                parent_context,
                trace_id,
                name,
                span_kind,
                attributes,
                links,
            ),
        }
    }
}

/// The span processor: hands sampled ended spans to the export queue without waiting.
#[derive(Debug, Default, Clone)]
struct Queue(Arc<OnceLock<mpsc::Sender<SpanData>>>);

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if let Some(sender) = self.0.get()
            && sender.try_send(span).is_err()
        {
            metrics::counter!(DROPPED, "reason" => "queue_full").increment(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// What the layer and the export task share for the life of the process.
struct Pipeline {
    provider: SdkTracerProvider,
    sampler: ConfiguredSampler,
    queue: Queue,
    /// The export task, once started.
    running: Mutex<Option<Exporting>>,
}

/// The running export task: its stop signal, its handle and its export timeout.
type Exporting = (Arc<Notify>, tokio::task::JoinHandle<()>, Duration);

fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let sampler = ConfiguredSampler::default();
        let queue = Queue::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler.clone())
            .with_span_processor(queue.clone())
            .build();
        Pipeline {
            provider,
            sampler,
            queue,
            running: Mutex::new(None),
        }
    })
}

/// The OpenTelemetry layer, for the subscriber (see [`crate::logging::init`]).
///
/// It carries no per-layer filter: with one, behind the reloadable global filter, spans
/// were now and then left out of the trace (their children then hung from the
/// grandparent). While telemetry is off the only spans it sees are those that exist
/// anyway (the request's); the trace-only ones are never made
/// ([`prefiq::otel_span`]), and what it builds is sampled out and dropped at once.
pub fn layer<S>() -> tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let tracer = pipeline().provider.tracer("codexion");
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
}

/// Starts export when `config` names a collector; a second call does nothing. Spans are
/// made only from then on.
pub fn start(config: &TelemetryConfig) -> Result<(), TelemetryError> {
    if !config.enabled() {
        return Ok(());
    }
    let pipeline = pipeline();
    let mut running = pipeline
        .running
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if running.is_some() {
        return Ok(());
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
    let endpoint = traces_url(&config.otlp_endpoint);
    let timeout = Duration::from_millis(config.export_timeout_ms);
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OtlpClient::new(timeout))
        .with_endpoint(endpoint.clone())
        .with_timeout(timeout)
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: endpoint.clone(),
            message: e.to_string(),
        })?;
    exporter.set_resource(
        &Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .build(),
    );
    let _ = pipeline
        .sampler
        .0
        .set(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))));
    let (sender, receiver) = mpsc::channel(config.max_queue_spans);
    let _ = pipeline.queue.0.set(sender);
    let stop = Arc::new(Notify::new());
    let task = runtime.spawn(export(
        receiver,
        exporter,
        config.max_export_batch,
        timeout,
        Arc::clone(&stop),
    ));
    *running = Some((stop, task, timeout));
    prefiq::telemetry::set_enabled(true);
    tracing::info!(target: "prefiq::telemetry", endpoint = %endpoint, service = %config.service_name, sample_ratio = config.sample_ratio, "trace export on");
    Ok(())
}

/// Stops making spans, sends what is queued (within one export timeout) and stops the
/// export task. The binary calls it before the runtime ends.
pub async fn shutdown() {
    prefiq::telemetry::set_enabled(false);
    let running = pipeline()
        .running
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some((stop, task, timeout)) = running {
        stop.notify_one();
        // The last batch may be cut short: a process that is stopping does not wait
        // on a collector for longer than one export may take.
        let _ = tokio::time::timeout(timeout + BATCH_DELAY, task).await;
    }
}

/// Describes the counters for `/metrics` (once the recorder is installed) and shows them
/// at zero, so that a scrape sees them before the first drop.
pub fn describe_metrics() {
    metrics::describe_counter!(
        DROPPED,
        "Spans not exported, by reason: queue_full (the export queue was at telemetry.max_queue_spans) or export_failed (the collector refused, was unreachable or timed out)."
    );
    metrics::describe_counter!(EXPORTED, "Spans the OTLP collector accepted.");
    if prefiq::telemetry::enabled() {
        for reason in ["queue_full", "export_failed"] {
            metrics::counter!(DROPPED, "reason" => reason).increment(0);
        }
        metrics::counter!(EXPORTED).increment(0);
    }
}

/// The collector's traces URL: `{endpoint}/v1/traces` unless the endpoint ends in it.
fn traces_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim().trim_end_matches('/');
    if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    }
}

/// The export task: batches off the queue, one export at a time, until stopped.
async fn export(
    mut receiver: mpsc::Receiver<SpanData>,
    exporter: opentelemetry_otlp::SpanExporter,
    batch_size: usize,
    timeout: Duration,
    stop: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(batch_size);
    let mut stopping = false;
    loop {
        if stopping {
            // Whatever is queued now is the last of it.
            while batch.len() < batch_size {
                match receiver.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return;
            }
        } else {
            tokio::select! {
                got = receiver.recv_many(&mut batch, batch_size) => {
                    if got == 0 {
                        return;
                    }
                }
                () = stop.notified() => {
                    stopping = true;
                    continue;
                }
            }
            // A batch fills for at most BATCH_DELAY: fewer, larger requests under load,
            // and a span waits less than a second when it is quiet.
            let deadline = tokio::time::Instant::now() + BATCH_DELAY;
            while batch.len() < batch_size {
                let more = batch_size - batch.len();
                match tokio::time::timeout_at(deadline, receiver.recv_many(&mut batch, more)).await
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        let count = batch.len() as u64;
        let spans = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
        match tokio::time::timeout(timeout, exporter.export(spans)).await {
            Ok(Ok(())) => metrics::counter!(EXPORTED).increment(count),
            Ok(Err(e)) => {
                metrics::counter!(DROPPED, "reason" => "export_failed").increment(count);
                tracing::debug!(target: "prefiq::telemetry", error = %e, spans = count, "span export failed");
            }
            Err(_) => {
                metrics::counter!(DROPPED, "reason" => "export_failed").increment(count);
                tracing::debug!(target: "prefiq::telemetry", spans = count, "span export timed out");
            }
        }
    }
}

/// The OTLP exporter's HTTP client: the workspace's hyper (and rustls for `https://`
/// collectors), on the process's runtime.
#[derive(Debug, Clone)]
struct OtlpClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl OtlpClient {
    fn new(timeout: Duration) -> OtlpClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        OtlpClient { client, timeout }
    }
}

#[prefiq::async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = request.map(Full::new);
        let answer = tokio::time::timeout(self.timeout, async {
            let response = self.client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        })
        .await;
        match answer {
            Ok(answer) => answer,
            Err(_) => Err("the collector did not answer in time".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_url_appends_the_path_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example/v1/traces"),
            "https://otel.example/v1/traces"
        );
    }
}
