//! How invalidations travel between replicas: Redis pub/sub when `cache.redis_url` is
//! set, else NATS (core, not JetStream: an invalidation is worth nothing once every
//! replica dropped its entries anyway) when `events.nats_url` is.
//!
//! One task per process owns the connection. It publishes this process's invalidations
//! (kept, up to a bound, while it is disconnected), applies other replicas', and drops
//! every local entry whenever it (re)connects, because messages sent meanwhile were lost.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::Receiver;
use tokio::sync::watch;

use crate::CacheError;
use crate::remote::Remote;
use crate::service::{Cache, Core};

/// One invalidation, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidation {
    /// The process that made it.
    #[serde(rename = "o")]
    pub origin: String,
    /// The namespace.
    #[serde(rename = "n")]
    pub namespace: String,
    /// The tenant.
    #[serde(rename = "t")]
    pub tenant: String,
    /// The key, or `None` for all of the tenant's entries.
    #[serde(rename = "k")]
    pub key: Option<String>,
}

/// Where invalidations travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Redis pub/sub at this URL (and the shared tier).
    Redis(String),
    /// NATS at this URL.
    Nats(String),
}

/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a stopping process tries to publish the invalidations it still holds.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

fn connected(core: &Core, now: bool) {
    if now {
        // Whatever was cached while other replicas could not reach us may be stale.
        core.drop_everything();
    }
    core.connected.store(now, Ordering::Release);
    metrics::gauge!("prefiq_cache_transport_connected").set(if now { 1.0 } else { 0.0 });
}

fn receive(core: &Core, payload: &[u8]) {
    match serde_json::from_slice::<Invalidation>(payload) {
        Ok(message) if message.origin != core.origin => {
            metrics::counter!("prefiq_cache_invalidations_total", "namespace" => message.namespace.clone(), "origin" => "remote").increment(1);
            core.apply(&message.namespace, &message.tenant, message.key.as_deref());
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(target: "prefiq::cache", error = %e, "an invalidation message does not read; ignored")
        }
    }
}

impl Cache {
    /// Starts carrying invalidations over `transport` until `stop`; with `None`, entries
    /// stay trusted for `cache.unshared_ttl_ms` only. Call once; later calls do nothing.
    pub fn start(
        &self,
        transport: Option<Transport>,
        stop: watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let transport = transport?;
        let outgoing = self
            .core
            .outgoing_rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()?;
        let core = self.core.clone();
        Some(tokio::spawn(async move {
            match transport {
                Transport::Redis(url) => run_redis(core, url, outgoing, stop).await,
                Transport::Nats(url) => run_nats(core, url, outgoing, stop).await,
            }
        }))
    }
}

impl Cache {
    /// Publishes, over a connection of its own, the invalidations this process made but
    /// never published because no transport task ran (a CLI command that suspended a
    /// tenant, say): called when the process stops.
    pub async fn flush(&self, transport: Option<Transport>) {
        let Some(transport) = transport else { return };
        let outgoing = self
            .core
            .outgoing_rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut outgoing) = outgoing {
            publish_pending(&self.core, &transport, &mut outgoing).await;
        }
    }
}

/// Publishes every invalidation still queued, over a new connection, within
/// [`FLUSH_TIMEOUT`].
async fn publish_pending(
    core: &Core,
    transport: &Transport,
    outgoing: &mut Receiver<Invalidation>,
) {
    let mut pending = Vec::new();
    while let Ok(message) = outgoing.try_recv() {
        pending.push(message);
    }
    if pending.is_empty() {
        return;
    }
    let publish = async {
        match transport {
            Transport::Redis(url) => {
                let failed = |e: redis::RedisError| CacheError::Redis(e.to_string());
                let client = redis::Client::open(url.as_str()).map_err(failed)?;
                let remote = Remote {
                    connection: redis::aio::ConnectionManager::new(client)
                        .await
                        .map_err(failed)?,
                    timeout: Duration::from_millis(core.config.redis_timeout_ms),
                };
                for message in &pending {
                    remote
                        .invalidate(&message.namespace, &message.tenant, message.key.as_deref())
                        .await?;
                    let payload = serde_json::to_vec(message)
                        .map_err(|e| CacheError::Config(e.to_string()))?;
                    remote.publish(&core.config.channel, &payload).await?;
                }
            }
            Transport::Nats(url) => {
                let failed = |e: &dyn std::fmt::Display| CacheError::Nats(e.to_string());
                let client = async_nats::connect(url.as_str())
                    .await
                    .map_err(|e| failed(&e))?;
                for message in &pending {
                    let payload = serde_json::to_vec(message)
                        .map_err(|e| CacheError::Config(e.to_string()))?;
                    client
                        .publish(core.config.channel.clone(), payload.into())
                        .await
                        .map_err(|e| failed(&e))?;
                }
                client.flush().await.map_err(|e| failed(&e))?;
            }
        }
        Ok::<_, CacheError>(())
    };
    match tokio::time::timeout(FLUSH_TIMEOUT, publish).await {
        Ok(Ok(())) => {
            tracing::debug!(target: "prefiq::cache", count = pending.len(), "pending invalidations published")
        }
        Ok(Err(e)) => {
            tracing::warn!(target: "prefiq::cache", error = %e, count = pending.len(), "invalidations were not published; other replicas hold the entries until their TTL")
        }
        Err(_) => {
            tracing::warn!(target: "prefiq::cache", count = pending.len(), "invalidations were not published in time; other replicas hold the entries until their TTL")
        }
    }
}

async fn backoff(attempt: &mut u32, stop: &mut watch::Receiver<bool>) -> bool {
    let wait = Duration::from_millis(100u64 << (*attempt).min(6)).min(MAX_BACKOFF);
    *attempt += 1;
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = stop.changed() => false,
    }
}

async fn run_redis(
    core: Arc<Core>,
    url: String,
    mut outgoing: Receiver<Invalidation>,
    mut stop: watch::Receiver<bool>,
) {
    let mut attempt = 0;
    loop {
        if *stop.borrow() {
            break;
        }
        match redis_session(&core, &url, &mut outgoing, &mut stop, &mut attempt).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(target: "prefiq::cache", error = %e, "the cache's Redis connection failed; entries are trusted for cache.unshared_ttl_ms until it is back")
            }
        }
        *core
            .remote
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        connected(&core, false);
        if !backoff(&mut attempt, &mut stop).await {
            break;
        }
    }
    connected(&core, false);
    publish_pending(&core, &Transport::Redis(url), &mut outgoing).await;
}

/// One connection's life: `Ok(true)` when told to stop, `Ok(false)` when the server went.
async fn redis_session(
    core: &Arc<Core>,
    url: &str,
    outgoing: &mut Receiver<Invalidation>,
    stop: &mut watch::Receiver<bool>,
    attempt: &mut u32,
) -> Result<bool, CacheError> {
    let failed = |e: redis::RedisError| CacheError::Redis(e.to_string());
    let client = redis::Client::open(url).map_err(failed)?;
    let timeout = Duration::from_millis(core.config.redis_timeout_ms);
    let connect = async {
        let manager = redis::aio::ConnectionManager::new(client.clone()).await?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&core.config.channel).await?;
        Ok::<_, redis::RedisError>((manager, pubsub))
    };
    let (manager, mut pubsub) = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| CacheError::Redis("no answer in time".into()))?
        .map_err(failed)?;
    let remote = Remote {
        connection: manager,
        timeout,
    };
    *core
        .remote
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(remote.clone());
    connected(core, true);
    *attempt = 0;
    tracing::info!(target: "prefiq::cache", "cache invalidations travel on Redis");
    let mut messages = pubsub.on_message();
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => receive(core, message.get_payload_bytes()),
                None => return Ok(false),
            },
            Some(message) = outgoing.recv() => {
                remote.invalidate(&message.namespace, &message.tenant, message.key.as_deref()).await?;
                let payload = serde_json::to_vec(&message).map_err(|e| CacheError::Config(e.to_string()))?;
                remote.publish(&core.config.channel, &payload).await?;
            }
            _ = stop.changed() => return Ok(true),
        }
    }
}

async fn run_nats(
    core: Arc<Core>,
    url: String,
    mut outgoing: Receiver<Invalidation>,
    mut stop: watch::Receiver<bool>,
) {
    let mut attempt = 0;
    let client = loop {
        let events = core.clone();
        let options = async_nats::ConnectOptions::new().event_callback(move |event| {
            let core = events.clone();
            async move {
                match event {
                    async_nats::Event::Connected => connected(&core, true),
                    async_nats::Event::Disconnected => connected(&core, false),
                    _ => {}
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(5), options.connect(url.as_str())).await {
            Ok(Ok(client)) => break client,
            Ok(Err(e)) => {
                tracing::warn!(target: "prefiq::cache", error = %e, "the cache cannot reach NATS; entries are trusted for cache.unshared_ttl_ms until it can")
            }
            Err(_) => {
                tracing::warn!(target: "prefiq::cache", "the cache cannot reach NATS in time")
            }
        }
        if !backoff(&mut attempt, &mut stop).await {
            publish_pending(&core, &Transport::Nats(url), &mut outgoing).await;
            return;
        }
    };
    let mut subscription = match client.subscribe(core.config.channel.clone()).await {
        Ok(subscription) => subscription,
        Err(e) => {
            tracing::error!(target: "prefiq::cache", error = %e, "the cache cannot subscribe on NATS; entries are trusted for cache.unshared_ttl_ms");
            return;
        }
    };
    // The client reconnects by itself and keeps the subscription; its events say when.
    connected(&core, true);
    tracing::info!(target: "prefiq::cache", "cache invalidations travel on NATS");
    loop {
        tokio::select! {
            message = subscription.next() => match message {
                Some(message) => receive(&core, &message.payload),
                None => break,
            },
            Some(message) = outgoing.recv() => {
                let Ok(payload) = serde_json::to_vec(&message) else { continue };
                if let Err(e) = client.publish(core.config.channel.clone(), payload.into()).await {
                    tracing::warn!(target: "prefiq::cache", error = %e, "an invalidation was not published on NATS");
                }
            }
            _ = stop.changed() => break,
        }
    }
    while let Ok(message) = outgoing.try_recv() {
        let Ok(payload) = serde_json::to_vec(&message) else {
            continue;
        };
        let _ = client
            .publish(core.config.channel.clone(), payload.into())
            .await;
    }
    if tokio::time::timeout(FLUSH_TIMEOUT, client.flush())
        .await
        .is_err()
    {
        tracing::warn!(target: "prefiq::cache", "invalidations were not flushed to NATS in time");
    }
    connected(&core, false);
}
