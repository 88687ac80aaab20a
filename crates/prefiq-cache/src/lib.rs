//! Codexion's cache: tenant-aware, bounded, and invalidated across replicas.
//!
//! - A [`Namespace`] is one kind of cached value (an API key's principal, a tenant's
//!   status, a tenant's webhooks). Its entries live in process in moka, keyed by tenant
//!   and key, so that no value of one tenant can answer another's lookup.
//! - A namespace declared `shared` also keeps its entries in Redis when
//!   `cache.redis_url` is set, so that a value one replica loaded serves the others.
//! - An invalidation ([`Namespace::invalidate`], [`Namespace::invalidate_tenant`]) drops
//!   the entry here and is published to every other replica ([`transport`]): on Redis
//!   pub/sub when Redis is configured, else on NATS when `events.nats_url` is, else
//!   nowhere (one process, or replicas that accept `cache.unshared_ttl_ms` of staleness).
//! - A namespace may depend on entities: an event of such an entity (after its write
//!   commits) invalidates the tenant's entries, on every replica.
//! - Caches kept elsewhere (the authorizer's compiled models) take part through
//!   [`Cache::listen`] and [`Cache::announce`].
//!
//! While no transport is connected, entries are trusted for `cache.unshared_ttl_ms`
//! only (1 s by default), as other replicas' changes cannot reach this one; after a
//! reconnection every local entry is dropped, as messages may have been missed.

pub mod config;
mod namespace;
mod provider;
mod remote;
mod service;
pub mod transport;

pub use config::CacheConfig;
pub use namespace::{Namespace, NamespaceSpec, NamespaceStats, Ticket};
pub use provider::CacheProvider;
pub use service::Cache;

/// An error of the cache's connections.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Redis could not be reached or refused a command.
    #[error("Redis: {0}")]
    Redis(String),
    /// NATS could not be reached or refused a message.
    #[error("NATS: {0}")]
    Nats(String),
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
}

/// Describes the metrics this crate records, for `/metrics`' HELP lines.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "prefiq_cache_lookups_total",
        "Cache lookups by namespace and outcome (hit, shared_hit, miss)."
    );
    metrics::describe_counter!(
        "prefiq_cache_invalidations_total",
        "Invalidations by namespace and origin (local, remote, event)."
    );
    metrics::describe_gauge!(
        "prefiq_cache_transport_connected",
        "1 while the invalidation transport (Redis or NATS) is connected."
    );
}
