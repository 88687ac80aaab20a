//! The webhooks at work: a subscription to every event that turns each one into a
//! delivery job per matching webhook of its tenant, and the job that POSTs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tracing::Instrument;

use prefiq_cache::{Cache, Namespace, NamespaceSpec};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use prefiq::Context;
use prefiq_data::entity::repo::{ListQuery, RepoError, Repository, TenantScope};
use prefiq_data::jobs::NewJob;
use prefiq_worker::{Event, EventHandler, JobHandler, JobInput, Jobs};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::destination::{GuardedResolver, check_url};
use crate::{signing, store};

/// The job kind of one delivery.
pub const DELIVER_JOB: &str = "webhooks.deliver";

/// The queue deliveries run on.
pub const QUEUE: &str = "webhooks";

/// The `webhooks` config section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Whether URLs may point at private and loopback addresses; unset: on outside
    /// production, off in production.
    pub allow_private_destinations: Option<bool>,
    /// How long one delivery may take.
    pub timeout_ms: u64,
    /// How long a failing delivery is retried before its webhook is marked failing.
    pub retry_for_ms: i64,
    /// How long the secret before a rotation still signs.
    pub rotation_overlap_ms: i64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allow_private_destinations: None,
            timeout_ms: 10_000,
            retry_for_ms: 24 * 3_600_000,
            rotation_overlap_ms: 24 * 3_600_000,
        }
    }
}

/// A webhook as deliveries need it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hook {
    id: String,
    url: String,
    patterns: Vec<String>,
    status: String,
}

impl Hook {
    fn of(record: &Value) -> Option<Hook> {
        Some(Hook {
            id: record.get("id")?.as_str()?.to_owned(),
            url: record.get("url")?.as_str()?.to_owned(),
            patterns: record
                .get("events")?
                .as_array()?
                .iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect(),
            status: record
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("active")
                .to_owned(),
        })
    }
}

/// How long a tenant's webhooks are trusted without re-reading them. Changes to webhooks
/// come through the relay as events and drop the entry at once; this bounds the rest.
const HOOKS_TTL: Duration = Duration::from_secs(60);

/// Tenants whose webhooks are cached at once; past it the cache starts over.
const MAX_CACHED_TENANTS: usize = 10_000;

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

/// The webhooks service: fan-out, delivery, and what the routes share.
pub struct Webhooks {
    repository: OnceLock<Arc<Repository>>,
    jobs: OnceLock<Arc<Jobs>>,
    /// The effective config.
    pub config: WebhooksConfig,
    /// Whether private destinations are allowed (the config, or the environment's default).
    pub allow_private: bool,
    client: HttpClient,
    /// Each tenant's webhooks, in the cache service: they depend on the `webhook` entity,
    /// so a change through any replica drops them on every replica.
    hooks: OnceLock<Namespace<Arc<Vec<Hook>>>>,
    secrets: Mutex<HashMap<(String, String), (Instant, store::Secrets)>>,
}

/// The cache namespace of tenants' webhooks.
pub const HOOKS_NAMESPACE: &str = "webhooks.hooks";

impl Webhooks {
    /// The service for environment `env` with `config`.
    pub fn new(config: WebhooksConfig, env: &str) -> Webhooks {
        let allow_private = config
            .allow_private_destinations
            .unwrap_or(env != "production");
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_private });
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_millis(config.timeout_ms)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Webhooks {
            repository: OnceLock::new(),
            jobs: OnceLock::new(),
            config,
            allow_private,
            client,
            hooks: OnceLock::new(),
            secrets: Mutex::default(),
        }
    }

    /// Gives the service its repository and queue (at boot).
    pub fn connect(&self, repository: Arc<Repository>, jobs: Arc<Jobs>) {
        let _ = self.repository.set(repository);
        let _ = self.jobs.set(jobs);
    }

    /// Keeps tenants' webhooks in `cache` (at boot; without it, in a cache of this
    /// process alone).
    pub fn use_cache(&self, cache: &Cache) {
        let _ = self.hooks.set(Self::hooks_namespace(cache));
    }

    fn hooks_namespace(cache: &Cache) -> Namespace<Arc<Vec<Hook>>> {
        cache.namespace(
            NamespaceSpec::new(HOOKS_NAMESPACE)
                .ttl(HOOKS_TTL)
                .max_entries(MAX_CACHED_TENANTS as u64)
                .depends_on("webhook"),
        )
    }

    fn hooks(&self) -> &Namespace<Arc<Vec<Hook>>> {
        self.hooks.get_or_init(|| {
            Self::hooks_namespace(&Cache::new(prefiq_cache::CacheConfig::default()))
        })
    }

    /// The repository.
    pub fn repository(&self) -> Result<&Arc<Repository>, String> {
        self.repository
            .get()
            .ok_or_else(|| "the webhooks service has not booted".to_owned())
    }

    /// The queue.
    pub fn jobs(&self) -> Result<&Arc<Jobs>, String> {
        self.jobs
            .get()
            .ok_or_else(|| "the webhooks service has not booted".to_owned())
    }

    /// Forgets `tenant`'s cached webhooks.
    pub fn forget(&self, tenant: &str) {
        self.hooks().invalidate_tenant(tenant);
    }

    /// Forgets the cached secrets of `webhook` (after a rotation through this process;
    /// another replica keeps signing with the old one until its entry expires, which
    /// receivers accept during the rotation's overlap).
    pub fn forget_secrets(&self, tenant: &str, webhook: &str) {
        self.secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(tenant.to_owned(), webhook.to_owned()));
    }

    /// The secrets of `webhook`, cached for [`HOOKS_TTL`].
    async fn secrets_of(
        &self,
        scope: &TenantScope,
        webhook: &str,
    ) -> Result<store::Secrets, String> {
        let key = (scope.tenant().to_owned(), webhook.to_owned());
        if let Some((at, secrets)) = self
            .secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && at.elapsed() < HOOKS_TTL
        {
            return Ok(secrets.clone());
        }
        let secrets = store::secrets(self.repository()?, scope, webhook)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the webhook has no secret (rotate it to make one)")?;
        let mut cache = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_TENANTS {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), secrets.clone()));
        Ok(secrets)
    }

    /// `tenant`'s webhooks that are not disabled.
    async fn hooks_of(&self, tenant: &str) -> Result<Arc<Vec<Hook>>, String> {
        self.hooks()
            .get_or_load(tenant, "hooks", || self.read_hooks(tenant))
            .await
    }

    async fn read_hooks(&self, tenant: &str) -> Result<Arc<Vec<Hook>>, String> {
        let scope = system_scope(tenant).map_err(|e| e.to_string())?;
        let mut hooks = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .repository()?
                .list(
                    &scope,
                    "webhook",
                    &ListQuery {
                        limit: Some(500),
                        cursor,
                        ..ListQuery::default()
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            hooks.extend(
                page.data
                    .iter()
                    .filter_map(Hook::of)
                    .filter(|h| h.status != "disabled"),
            );
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(Arc::new(hooks))
    }

    /// The delivery jobs of `event`: one per matching webhook of its tenant.
    async fn fan_out(&self, event: &Event) -> Result<(), String> {
        if event.entity == "webhook" {
            // A change to a webhook: what this cache holds is stale. Webhooks' own events
            // are not delivered (they would tell receivers about each other).
            self.forget(&event.tenant);
            return Ok(());
        }
        let hooks = self.hooks_of(&event.tenant).await?;
        let jobs: Vec<NewJob> = hooks
            .iter()
            .filter(|hook| hook.patterns.iter().any(|p| event.matches(p)))
            .map(|hook| {
                let mut job = delivery_job(&hook.id, event);
                // A relay that re-sends the event after a crash adds no second delivery.
                job.unique = Some((format!("{}:{}", hook.id, event.id), 7 * 24 * 3_600_000));
                job
            })
            .collect();
        if jobs.is_empty() {
            return Ok(());
        }
        self.jobs()?
            .enqueue(jobs)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// One delivery attempt of the job `job`.
    async fn deliver(&self, job: &JobInput) -> Result<(), String> {
        let webhook = job
            .payload
            .get("webhook")
            .and_then(Value::as_str)
            .ok_or("the job names no webhook")?;
        let event: Event =
            serde_json::from_value(job.payload.get("event").cloned().unwrap_or_default())
                .map_err(|e| format!("the job's event cannot be read: {e}"))?;
        let tenant = job.context.tenant.clone().unwrap_or_default();
        let scope = system_scope(&tenant).map_err(|e| e.to_string())?;
        let repository = self.repository()?;
        // The tenant's webhooks as the fan-out caches them (changes to a webhook drop the
        // entry as their events pass); one that is not there is read.
        let cached = self
            .hooks_of(&tenant)
            .await?
            .iter()
            .find(|h| h.id == webhook)
            .cloned();
        let hook = match cached {
            Some(hook) => hook,
            None => match repository.get(&scope, "webhook", webhook).await {
                Ok(record) => Hook::of(&record).ok_or("the webhook record cannot be read")?,
                // Deleted since: nothing to deliver to.
                Err(RepoError::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            },
        };
        if hook.status == "disabled" {
            return Ok(());
        }
        let body = serde_json::to_vec(&json!({
            "type": event.name(),
            "timestamp": event.occurred_at,
            "data": event,
        }))
        .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let outcome = self.post(&scope, &hook, &event, &body).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status, code, error) = match &outcome {
            Ok(code) if (200..300).contains(code) => ("succeeded", Some(*code), None),
            Ok(code) => (
                "failed",
                Some(*code),
                Some(format!("the receiver answered {code}")),
            ),
            Err(e) => ("failed", None, Some(e.clone())),
        };
        static DESCRIBED: std::sync::Once = std::sync::Once::new();
        DESCRIBED.call_once(|| {
            metrics::describe_counter!(
                "prefiq_webhook_deliveries_total",
                "Webhook delivery attempts by outcome (succeeded, failed)."
            );
        });
        metrics::counter!("prefiq_webhook_deliveries_total", "outcome" => status).increment(1);
        let delivery = store::Delivery {
            id: 0,
            webhook_id: hook.id.clone(),
            event_id: event.id.clone(),
            event: event.name(),
            attempt: job.attempt,
            status: status.into(),
            response_code: code,
            duration_ms,
            error: error.clone(),
            created_at: prefiq_data::entity::value::civil_now(),
        };
        store::record(
            repository,
            &scope,
            &delivery,
            &String::from_utf8_lossy(&body),
        )
        .await
        .map_err(|e| e.to_string())?;
        let Some(error) = error else {
            if hook.status == "failing" {
                self.set_status(&scope, &hook.id, "active").await?;
            }
            return Ok(());
        };
        let age_ms = event
            .occurred_at
            .parse::<jiff::Timestamp>()
            .map(|at| jiff::Timestamp::now().duration_since(at).as_millis() as i64)
            .unwrap_or(0);
        if age_ms >= self.config.retry_for_ms {
            // Retried for as long as promised: the webhook is marked failing and this
            // event is given up.
            self.set_status(&scope, &hook.id, "failing").await?;
            return Ok(());
        }
        Err(error)
    }

    /// POSTs `body` to the hook, signed; the receiver's status code, or why there is none.
    async fn post(
        &self,
        scope: &TenantScope,
        hook: &Hook,
        event: &Event,
        body: &[u8],
    ) -> Result<i64, String> {
        let uri = check_url(&hook.url, self.allow_private)?;
        let secrets = self.secrets_of(scope, &hook.id).await?;
        let now = jiff::Timestamp::now().as_second();
        let mut keys = vec![signing::secret_key(&secrets.secret)?];
        if let Some((previous, rotated_at)) = &secrets.previous
            && (now - rotated_at) * 1_000 < self.config.rotation_overlap_ms
        {
            keys.push(signing::secret_key(previous)?);
        }
        let span = delivery_span(hook, event, &uri);
        let mut request = hyper::Request::post(uri);
        // The delivery's span is the receiver's parent: one trace from the write to here.
        // Without export the receiver still learns the write's trace id (not sampled).
        match prefiq::telemetry::headers_of(&span) {
            Some((traceparent, tracestate)) => {
                request = request.header(prefiq::telemetry::TRACEPARENT, traceparent);
                if let Some(tracestate) = tracestate {
                    request = request.header(prefiq::telemetry::TRACESTATE, tracestate);
                }
            }
            None => {
                if let Some(trace) = prefiq::TraceId::parse(&event.trace_id) {
                    request = request.header(
                        prefiq::telemetry::TRACEPARENT,
                        prefiq::telemetry::unsampled_traceparent(trace),
                    );
                }
            }
        }
        let request = request
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("Codexion-Webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", now.to_string())
            .header(
                "webhook-signature",
                signing::signature_header(&keys, &event.id, now, body),
            )
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| e.to_string())?;
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let response = tokio::time::timeout(timeout, self.client.request(request))
            .instrument(span.clone())
            .await
            .map_err(|_| format!("no answer within {} ms", self.config.timeout_ms))
            .and_then(|answer| answer.map_err(|e| connection_error(&e)));
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                span.record("otel.status_code", "ERROR");
                span.record("error.message", error.as_str());
                return Err(error);
            }
        };
        let code = i64::from(response.status().as_u16());
        span.record("http.response.status_code", code);
        // Read (a bounded part of) the body so the connection can be reused.
        let _ = tokio::time::timeout(
            timeout,
            http_body_util::Limited::new(response.into_body(), 64 * 1024).collect(),
        )
        .await;
        Ok(code)
    }

    async fn set_status(
        &self,
        scope: &TenantScope,
        webhook: &str,
        status: &str,
    ) -> Result<(), String> {
        let failing_since = if status == "failing" {
            json!(prefiq_data::entity::value::civil_now())
        } else {
            Value::Null
        };
        self.repository()?
            .update(
                scope,
                "webhook",
                webhook,
                json!({"status": status, "failing_since": failing_since}),
                None,
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The span of one delivery's request (only while trace export is on): the webhook, the
/// event and the receiver's host, never the whole address (its query may hold a token).
fn delivery_span(hook: &Hook, event: &Event, uri: &hyper::Uri) -> tracing::Span {
    use tracing::field::Empty;
    if !prefiq::telemetry::enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "webhook.deliver",
        otel.name = format!("webhook.deliver {}", event.name()).as_str(),
        otel.kind = "client",
        otel.status_code = Empty,
        webhook.id = hook.id.as_str(),
        event.id = event.id.as_str(),
        tenant = event.tenant.as_str(),
        http.request.method = "POST",
        server.address = uri.host().unwrap_or(""),
        http.response.status_code = Empty,
        error.message = Empty,
    )
}

/// The most useful part of a client error: hyper's own message names only the layer.
fn connection_error(error: &hyper_util::client::legacy::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        message = format!("{message}: {inner}");
        source = inner.source();
    }
    message
}

/// The job of delivering `event` to `webhook`, in the event's tenant and trace.
pub fn delivery_job(webhook: &str, event: &Event) -> NewJob {
    let mut job = NewJob::new(
        DELIVER_JOB,
        &event.tenant,
        json!({"webhook": webhook, "event": event}),
    );
    job.queue = QUEUE.into();
    // A child of the current span (the relay's delivery of the event) when trace export
    // is on, else of the write.
    job.trace_id = prefiq::telemetry::stored_trace(&event.stored_trace());
    // Attempts are bounded by time (`retry_for_ms`), not by count.
    job.max_attempts = 10_000;
    job.timeout_ms = 60_000;
    job
}

/// The scope of the platform acting for `tenant`: no principal, so the repository does
/// not restrict it (the routes check the caller before they use it).
pub fn system_scope(tenant: &str) -> Result<TenantScope, RepoError> {
    TenantScope::new(&Context::system("en").with_tenant(tenant))
}

/// The subscription to every event.
pub struct FanOut(pub Arc<Webhooks>);

#[async_trait::async_trait]
impl EventHandler for FanOut {
    async fn handle(&self, event: &Event) -> Result<(), String> {
        self.0.fan_out(event).await
    }
}

/// The delivery job's handler.
pub struct Deliver(pub Arc<Webhooks>);

#[async_trait::async_trait]
impl JobHandler for Deliver {
    fn kind(&self) -> &str {
        DELIVER_JOB
    }

    async fn run(&self, job: &JobInput) -> Result<(), String> {
        self.0.deliver(job).await
    }
}
