//! A namespace: one kind of cached value, per tenant and key.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::service::{Core, LocalEntries};

/// What a namespace is.
#[derive(Debug, Clone)]
pub struct NamespaceSpec {
    /// Its name, the same on every replica (`cortex.api_key`).
    pub name: String,
    /// How long an entry is trusted while invalidations reach this process; `None` for
    /// `cache.ttl_ms`.
    pub ttl: Option<Duration>,
    /// At most this many entries in process; `None` for `cache.max_entries`.
    pub max_entries: Option<u64>,
    /// Entities whose events invalidate the tenant's entries.
    pub depends_on: Vec<String>,
}

impl NamespaceSpec {
    /// A namespace called `name` with the configured TTL and size.
    pub fn new(name: impl Into<String>) -> NamespaceSpec {
        NamespaceSpec {
            name: name.into(),
            ttl: None,
            max_entries: None,
            depends_on: Vec::new(),
        }
    }

    /// Entries are trusted at most `ttl`.
    pub fn ttl(mut self, ttl: Duration) -> NamespaceSpec {
        self.ttl = Some(ttl);
        self
    }

    /// At most `max` entries in process.
    pub fn max_entries(mut self, max: u64) -> NamespaceSpec {
        self.max_entries = Some(max);
        self
    }

    /// An event of `entity` invalidates the tenant's entries.
    pub fn depends_on(mut self, entity: impl Into<String>) -> NamespaceSpec {
        self.depends_on.push(entity.into());
        self
    }
}

/// Taken before a value is read from its source: storing the value with it fails when
/// the namespace was invalidated in between, so that a slow read never caches what an
/// invalidation already replaced.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    changes: u64,
    generation: u64,
}

type Key = (Arc<str>, Arc<str>);

struct Entries<V> {
    local: moka::sync::Cache<Key, (Instant, V)>,
    /// Lookups answered here, from Redis, and by loading.
    hits: AtomicU64,
    shared_hits: AtomicU64,
    misses: AtomicU64,
    /// Bumped by every invalidation of this namespace (here or from elsewhere).
    changes: AtomicU64,
}

impl<V: Clone + Send + Sync + 'static> LocalEntries for Entries<V> {
    fn drop_local(&self, tenant: &str, key: Option<&str>) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        match key {
            Some(key) => self.local.invalidate(&(Arc::from(tenant), Arc::from(key))),
            None => {
                let tenant: Arc<str> = Arc::from(tenant);
                // Predicates are registered only where the builder allows them (below).
                let _ = self
                    .local
                    .invalidate_entries_if(move |(t, _), _| *t == tenant);
            }
        }
    }

    fn drop_all(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.local.invalidate_all();
    }
}

/// One kind of cached value, of type `V`, per tenant and key. Cheap to clone.
pub struct Namespace<V> {
    name: Arc<str>,
    ttl: Duration,
    entries: Arc<Entries<V>>,
    core: Arc<Core>,
}

impl<V> Clone for Namespace<V> {
    fn clone(&self) -> Self {
        Namespace {
            name: self.name.clone(),
            ttl: self.ttl,
            entries: self.entries.clone(),
            core: self.core.clone(),
        }
    }
}

impl<V> std::fmt::Debug for Namespace<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// How a namespace's lookups were answered since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceStats {
    /// From this process.
    pub hits: u64,
    /// From Redis.
    pub shared_hits: u64,
    /// By loading from the source.
    pub misses: u64,
}

fn lookup<V>(name: &str, entries: &Entries<V>, outcome: &'static str) {
    let counter = match outcome {
        "hit" => &entries.hits,
        "shared_hit" => &entries.shared_hits,
        _ => &entries.misses,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("prefiq_cache_lookups_total", "namespace" => name.to_owned(), "outcome" => outcome).increment(1);
}

impl<V: Clone + Send + Sync + 'static> Namespace<V> {
    pub(crate) fn new(core: Arc<Core>, spec: &NamespaceSpec) -> Namespace<V> {
        let ttl = spec
            .ttl
            .unwrap_or(Duration::from_millis(core.config.ttl_ms))
            .min(Duration::from_millis(core.config.ttl_ms));
        let local = moka::sync::Cache::builder()
            .max_capacity(spec.max_entries.unwrap_or(core.config.max_entries))
            .time_to_live(ttl)
            .support_invalidation_closures()
            .build();
        Namespace {
            name: Arc::from(spec.name.as_str()),
            ttl,
            entries: Arc::new(Entries {
                local,
                hits: AtomicU64::new(0),
                shared_hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                changes: AtomicU64::new(0),
            }),
            core,
        }
    }

    pub(crate) fn entries(&self) -> Arc<dyn LocalEntries> {
        self.entries.clone()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `tenant`'s entry `key`, when this process holds one it still trusts (counted as a
    /// hit or a miss).
    pub fn get(&self, tenant: &str, key: &str) -> Option<V> {
        let found = self.held(tenant, key);
        lookup(
            &self.name,
            &self.entries,
            if found.is_some() { "hit" } else { "miss" },
        );
        found
    }

    fn held(&self, tenant: &str, key: &str) -> Option<V> {
        self.entries
            .local
            .get(&(Arc::from(tenant), Arc::from(key)))
            .filter(|(stored_at, _)| stored_at.elapsed() < self.core.trusted_for(self.ttl))
            .map(|(_, value)| value)
    }

    /// A ticket to store a value read from now on (see [`Ticket`]).
    pub fn ticket(&self) -> Ticket {
        Ticket {
            changes: self.entries.changes.load(Ordering::Acquire),
            generation: self.core.generation.load(Ordering::Acquire),
        }
    }

    /// Stores `value` as `tenant`'s entry `key`, unless the namespace was invalidated
    /// since `ticket` was taken. Returns whether it was stored.
    pub fn insert(&self, tenant: &str, key: &str, value: V, ticket: Ticket) -> bool {
        let key = (Arc::from(tenant), Arc::from(key));
        if !self.still_valid(ticket) {
            return false;
        }
        self.entries
            .local
            .insert(key.clone(), (Instant::now(), value));
        // An invalidation that raced the insert may have missed the new entry: drop it.
        if !self.still_valid(ticket) {
            self.entries.local.invalidate(&key);
            return false;
        }
        true
    }

    fn still_valid(&self, ticket: Ticket) -> bool {
        self.entries.changes.load(Ordering::Acquire) == ticket.changes
            && self.core.generation.load(Ordering::Acquire) == ticket.generation
    }

    /// `tenant`'s entry `key`: from this process, or else `load`ed and stored.
    pub async fn get_or_load<E, F, Fut>(&self, tenant: &str, key: &str, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if let Some(value) = self.get(tenant, key) {
            return Ok(value);
        }
        let ticket = self.ticket();
        let value = load().await?;
        self.insert(tenant, key, value.clone(), ticket);
        Ok(value)
    }

    /// Drops `tenant`'s entry `key` here, in Redis and on every other replica.
    pub fn invalidate(&self, tenant: &str, key: &str) {
        self.core.invalidate(&self.name, tenant, Some(key));
    }

    /// Drops all of `tenant`'s entries here, in Redis and on every other replica.
    pub fn invalidate_tenant(&self, tenant: &str) {
        self.core.invalidate(&self.name, tenant, None);
    }

    /// Drops `tenant`'s entries that `matches` selects here, and all of `tenant`'s
    /// entries on other replicas (a predicate cannot travel).
    pub fn invalidate_matching(
        &self,
        tenant: &str,
        matches: impl Fn(&str, &V) -> bool + Send + Sync + 'static,
    ) {
        let owner: Arc<str> = Arc::from(tenant);
        self.entries.changes.fetch_add(1, Ordering::AcqRel);
        let _ = self
            .entries
            .local
            .invalidate_entries_if(move |(t, k), (_, v)| *t == owner && matches(k, v));
        self.core.publish(&self.name, tenant, None);
    }

    /// Drops every entry of this process only (for benchmarks and tests that measure or
    /// need the uncached path).
    pub fn clear_local(&self) {
        self.entries.changes.fetch_add(1, Ordering::AcqRel);
        self.entries.local.invalidate_all();
    }

    /// How its lookups were answered so far.
    pub fn stats(&self) -> NamespaceStats {
        NamespaceStats {
            hits: self.entries.hits.load(Ordering::Relaxed),
            shared_hits: self.entries.shared_hits.load(Ordering::Relaxed),
            misses: self.entries.misses.load(Ordering::Relaxed),
        }
    }

    /// How many entries this process holds (approximately; for tests and metrics).
    pub fn local_len(&self) -> u64 {
        self.entries.local.run_pending_tasks();
        self.entries.local.entry_count()
    }
}

impl<V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static> Namespace<V> {
    /// `tenant`'s entry `key`: from this process, else from Redis (when
    /// `cache.redis_url` is set and reachable), else `load`ed and stored in both, so
    /// that other replicas find it.
    pub async fn get_or_load_shared<E, F, Fut>(
        &self,
        tenant: &str,
        key: &str,
        load: F,
    ) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if let Some(value) = self.held(tenant, key) {
            lookup(&self.name, &self.entries, "hit");
            return Ok(value);
        }
        let ticket = self.ticket();
        let remote = self.core.remote();
        let mut shared_generation = None;
        if let Some(remote) = &remote {
            match remote.get(&self.name, tenant, key).await {
                Ok((generation, Some(bytes))) => match serde_json::from_slice::<V>(&bytes) {
                    Ok(value) => {
                        lookup(&self.name, &self.entries, "shared_hit");
                        self.insert(tenant, key, value.clone(), ticket);
                        return Ok(value);
                    }
                    Err(e) => {
                        tracing::warn!(target: "prefiq::cache", namespace = %self.name, error = %e, "a shared entry does not read; loading it again");
                        shared_generation = Some(generation);
                    }
                },
                Ok((generation, None)) => shared_generation = Some(generation),
                Err(e) => {
                    tracing::debug!(target: "prefiq::cache", namespace = %self.name, error = %e, "the shared tier did not answer")
                }
            }
        }
        lookup(&self.name, &self.entries, "miss");
        let value = load().await?;
        if self.insert(tenant, key, value.clone(), ticket)
            && let (Some(remote), Some(generation)) = (remote, shared_generation)
            && let Ok(bytes) = serde_json::to_vec(&value)
        {
            let (name, tenant, key, ttl) = (
                self.name.clone(),
                tenant.to_owned(),
                key.to_owned(),
                self.ttl,
            );
            tokio::spawn(async move {
                if let Err(e) = remote
                    .set(&name, &tenant, &key, generation, &bytes, ttl)
                    .await
                {
                    tracing::debug!(target: "prefiq::cache", namespace = %name, error = %e, "the shared tier did not store an entry");
                }
            });
        }
        Ok(value)
    }
}
