//! The cache service: its namespaces, the caches kept elsewhere that listen, the entities
//! namespaces depend on, and the state of the transport.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::config::CacheConfig;
use crate::namespace::{Namespace, NamespaceSpec};
use crate::remote::Remote;
use crate::transport::Invalidation;

/// Invalidations waiting to be published; past this many, the oldest are dropped (and
/// counted): a transport that cannot keep up is a transport that is down, and every
/// replica drops its entries when it comes back.
pub(crate) const OUTGOING_CAPACITY: usize = 4_096;

/// A namespace as the service sees it, whatever its value type.
pub(crate) trait LocalEntries: Send + Sync {
    /// Drops `tenant`'s entry `key`, or all of `tenant`'s entries when `key` is `None`.
    fn drop_local(&self, tenant: &str, key: Option<&str>);
    /// Drops every entry.
    fn drop_all(&self);
}

/// A cache kept elsewhere that wants other replicas' invalidations of one namespace.
type Listener = Arc<dyn Fn(&str, Option<&str>) + Send + Sync>;

pub(crate) struct Core {
    pub(crate) config: CacheConfig,
    /// Tells this process's own messages from other replicas'.
    pub(crate) origin: String,
    /// Whether other replicas' invalidations reach this process now.
    pub(crate) connected: AtomicBool,
    /// Bumped whenever every entry is dropped (a reconnection): a load that began before
    /// must not store what it read.
    pub(crate) generation: AtomicU64,
    namespaces: RwLock<HashMap<String, Vec<Arc<dyn LocalEntries>>>>,
    listeners: RwLock<HashMap<String, Vec<Listener>>>,
    /// Entity name to the namespaces its events invalidate.
    dependencies: RwLock<HashMap<String, Vec<String>>>,
    pub(crate) outgoing: tokio::sync::mpsc::Sender<Invalidation>,
    pub(crate) outgoing_rx: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Invalidation>>>,
    pub(crate) remote: RwLock<Option<Remote>>,
}

impl Core {
    /// How long an entry is trusted now.
    pub(crate) fn trusted_for(&self, ttl: Duration) -> Duration {
        if self.connected.load(Ordering::Acquire) {
            ttl
        } else {
            ttl.min(Duration::from_millis(self.config.unshared_ttl_ms))
        }
    }

    pub(crate) fn remote(&self) -> Option<Remote> {
        self.remote
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Applies an invalidation here: the namespace's entries and its listeners.
    pub(crate) fn apply(&self, namespace: &str, tenant: &str, key: Option<&str>) {
        if let Some(entries) = self
            .namespaces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(namespace)
        {
            for entries in entries {
                entries.drop_local(tenant, key);
            }
        }
        let listeners = self
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(namespace)
            .cloned()
            .unwrap_or_default();
        for listener in listeners {
            listener(tenant, key);
        }
    }

    /// Drops every local entry (after a reconnection, when messages may have been
    /// missed), including those of listening caches (told with tenant `*`).
    pub(crate) fn drop_everything(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for entries in self
            .namespaces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .flatten()
        {
            entries.drop_all();
        }
        let listeners: Vec<Listener> = self
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .flatten()
            .cloned()
            .collect();
        for listener in listeners {
            listener("*", None);
        }
    }

    /// Invalidates here, in the shared tier, and on every other replica.
    pub(crate) fn invalidate(&self, namespace: &str, tenant: &str, key: Option<&str>) {
        metrics::counter!("prefiq_cache_invalidations_total", "namespace" => namespace.to_owned(), "origin" => "local").increment(1);
        self.apply(namespace, tenant, key);
        self.publish(namespace, tenant, key);
    }

    /// Sends an invalidation to every other replica (and the shared tier) only.
    pub(crate) fn publish(&self, namespace: &str, tenant: &str, key: Option<&str>) {
        let message = Invalidation {
            origin: self.origin.clone(),
            namespace: namespace.to_owned(),
            tenant: tenant.to_owned(),
            key: key.map(str::to_owned),
        };
        if self.outgoing.try_send(message).is_err() {
            metrics::counter!("prefiq_cache_invalidations_dropped_total").increment(1);
            tracing::warn!(target: "prefiq::cache", namespace, tenant, "the invalidation queue is full; this invalidation reaches other replicas only through their TTL");
        }
    }
}

/// The cache service. Cheap to clone; every clone is the same cache.
#[derive(Clone)]
pub struct Cache {
    pub(crate) core: Arc<Core>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("origin", &self.core.origin)
            .field("connected", &self.core.connected.load(Ordering::Relaxed))
            .finish()
    }
}

impl Cache {
    /// A cache with `config`, not yet connected to any transport (see
    /// [`Cache::start`]): until it is, entries are trusted for `unshared_ttl_ms`.
    pub fn new(config: CacheConfig) -> Cache {
        let (outgoing, outgoing_rx) = tokio::sync::mpsc::channel(OUTGOING_CAPACITY);
        Cache {
            core: Arc::new(Core {
                config,
                origin: uuid::Uuid::now_v7().simple().to_string(),
                connected: AtomicBool::new(false),
                generation: AtomicU64::new(0),
                namespaces: RwLock::default(),
                listeners: RwLock::default(),
                dependencies: RwLock::default(),
                outgoing,
                outgoing_rx: std::sync::Mutex::new(Some(outgoing_rx)),
                remote: RwLock::new(None),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &CacheConfig {
        &self.core.config
    }

    /// Whether other replicas' invalidations reach this process now.
    pub fn connected(&self) -> bool {
        self.core.connected.load(Ordering::Acquire)
    }

    /// A namespace of values of type `V`. Namespaces of one name made twice are two
    /// caches that invalidate together.
    pub fn namespace<V: Clone + Send + Sync + 'static>(&self, spec: NamespaceSpec) -> Namespace<V> {
        let namespace = Namespace::new(self.core.clone(), &spec);
        self.core
            .namespaces
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(spec.name.clone())
            .or_default()
            .push(namespace.entries());
        let mut dependencies = self
            .core
            .dependencies
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for entity in &spec.depends_on {
            let names = dependencies.entry(entity.clone()).or_default();
            if !names.contains(&spec.name) {
                names.push(spec.name.clone());
            }
        }
        namespace
    }

    /// Calls `listener(tenant, key)` whenever namespace `name` is invalidated, here or on
    /// another replica (`key` is `None` for all of the tenant's entries; tenant `*`
    /// means every entry, after a reconnection). For caches kept outside this service.
    pub fn listen(
        &self,
        name: &str,
        listener: impl Fn(&str, Option<&str>) + Send + Sync + 'static,
    ) {
        self.core
            .listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_default()
            .push(Arc::new(listener));
    }

    /// Invalidates `tenant`'s entries of namespace `name` (only `key`, when given), here
    /// and on every other replica. What [`Namespace::invalidate`] does, for caches kept
    /// outside this service.
    pub fn announce(&self, name: &str, tenant: &str, key: Option<&str>) {
        self.core.invalidate(name, tenant, key);
    }

    /// The namespaces an event of `entity` invalidates.
    pub fn dependents_of(&self, entity: &str) -> Vec<String> {
        self.core
            .dependencies
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(entity)
            .cloned()
            .unwrap_or_default()
    }

    /// Invalidates, on every replica, `tenant`'s entries of each namespace that depends
    /// on `entity`, after an event of it. Returns how many namespaces that was.
    pub fn entity_changed(&self, tenant: &str, entity: &str) -> usize {
        let names = self.dependents_of(entity);
        for name in &names {
            metrics::counter!("prefiq_cache_invalidations_total", "namespace" => name.clone(), "origin" => "event").increment(1);
            self.core.invalidate(name, tenant, None);
        }
        names.len()
    }
}
