//! Each tenant's vector index, in process: loaded from its saved file or rebuilt from
//! the database, then kept up to date from the tenant's change log (`memory_changes`), so
//! every process serving the tenant converges on the same vectors whichever of them
//! embedded an item. With the index go the facts the vector search filters on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use prefiq_data::entity::repo::{Repository, TenantScope};
use prefiq_vector::{Hit, IndexOptions, VectorIndex};
use tokio::sync::RwLock;

use crate::error::MemoryError;
use crate::filters::{Facts, Filters};
use crate::store::{self, MetaRow};

/// Up to this many vectors, a tenant's searches rank exactly instead of walking the graph.
pub const EXACT_BELOW: usize = 10_000;

/// Rows read per page while rebuilding.
const REBUILD_PAGE: usize = 1_000;

/// Changes applied per catch-up read; a tenant further behind is rebuilt.
const MAX_CATCH_UP: usize = 20_000;

/// Changes applied since the last save after which the index is saved again.
const SAVE_EVERY: usize = 2_000;

/// One tenant's index and the facts of its items.
pub struct TenantIndex {
    /// The vectors.
    pub vectors: VectorIndex,
    /// What filters read, by key.
    pub facts: HashMap<u64, Facts>,
    /// The last change applied.
    pub version: i64,
    unsaved: usize,
}

impl TenantIndex {
    fn new(options: &IndexOptions) -> Result<TenantIndex, String> {
        Ok(TenantIndex {
            vectors: VectorIndex::new(options.clone()).map_err(|e| e.to_string())?,
            facts: HashMap::new(),
            version: 0,
            unsaved: 0,
        })
    }

    fn add(&mut self, row: MetaRow, vector: &[f32]) -> Result<(), String> {
        let key = row.key as u64;
        // A text without a known token (punctuation, a lone symbol) embeds to zero: it has
        // no direction to be near, so it stays out of the index (keyword search finds it).
        if vector.iter().all(|x| *x == 0.0) || vector.iter().any(|x| !x.is_finite()) {
            return Ok(());
        }
        self.vectors
            .upsert(key, vector)
            .map_err(|e| e.to_string())?;
        self.facts.insert(key, facts_of(row));
        Ok(())
    }

    fn remove(&mut self, key: u64) -> Result<(), String> {
        self.vectors.remove(key).map_err(|e| e.to_string())?;
        self.facts.remove(&key);
        Ok(())
    }

    /// The nearest `k` items passing `filters`: `(key, similarity)`. A tenant with up to
    /// [`EXACT_BELOW`] vectors is ranked exactly: a scan that small takes well under a
    /// millisecond, and its results do not depend on the graph's insertion order.
    pub fn search(&self, query: &[f32], k: usize, filters: &Filters) -> Result<Vec<Hit>, String> {
        if self.vectors.len() <= EXACT_BELOW {
            let keys: Vec<u64> = self
                .facts
                .iter()
                .filter(|(_, f)| filters.matches(f))
                .map(|(key, _)| *key)
                .collect();
            return self
                .vectors
                .rank_exact(query, &keys, k)
                .map_err(|e| e.to_string());
        }
        if filters.is_empty() {
            return self.vectors.search(query, k).map_err(|e| e.to_string());
        }
        // The facts are in memory, so how many items pass is known exactly: few enough and
        // they are ranked exactly, otherwise the graph search skips the others.
        let allowed: Vec<u64> = self
            .facts
            .iter()
            .filter(|(_, f)| filters.matches(f))
            .map(|(k, _)| *k)
            .collect();
        let facts = &self.facts;
        self.vectors
            .search_filtered(
                query,
                k,
                &|key| facts.get(&key).is_some_and(|f| filters.matches(f)),
                Some(allowed.len()),
            )
            .map_err(|e| e.to_string())
    }
}

fn facts_of(row: MetaRow) -> Facts {
    Facts {
        kind: row.kind,
        subject: row.subject,
        tags: row.tags,
        occurred_at_ms: row.occurred_at_ms,
    }
}

/// The indexes of every tenant this process has served, for one model.
pub struct Indexes {
    options: IndexOptions,
    model: String,
    dir: Option<PathBuf>,
    tenants: std::sync::Mutex<HashMap<String, Arc<RwLock<Option<TenantIndex>>>>>,
}

impl Indexes {
    /// Indexes of `dims`-wide vectors made by `model`, saved under `dir`.
    pub fn new(model: &str, options: IndexOptions, dir: Option<PathBuf>) -> Indexes {
        Indexes {
            options,
            model: model.to_owned(),
            dir,
            tenants: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn file(&self, tenant: &str) -> Option<PathBuf> {
        // Tenant names are identifiers, but the path is built defensively anyway.
        let safe: String = tenant
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir
            .as_ref()
            .map(|d| d.join(safe).join(format!("{}.index", self.model)))
    }

    fn slot(&self, tenant: &str) -> Arc<RwLock<Option<TenantIndex>>> {
        let mut tenants = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tenants.entry(tenant.to_owned()).or_default().clone()
    }

    /// The tenant's index, up to date with its change log.
    pub async fn current(
        &self,
        repository: &Repository,
        scope: &TenantScope,
    ) -> Result<Arc<RwLock<Option<TenantIndex>>>, MemoryError> {
        let slot = self.slot(scope.tenant());
        let newest = store::version(repository, scope).await?;
        {
            let index = slot.read().await;
            if index.as_ref().is_some_and(|i| i.version >= newest) {
                drop(index);
                return Ok(slot);
            }
        }
        let mut index = slot.write().await;
        if index.is_none() {
            *index = Some(self.open(repository, scope).await?);
        }
        if let Some(current) = index.as_mut() {
            if current.version < newest {
                let caught_up = self.catch_up(repository, scope, current).await?;
                if !caught_up {
                    *index = Some(self.rebuild(repository, scope).await?);
                }
            }
            if let Some(current) = index.as_mut()
                && current.unsaved >= SAVE_EVERY
            {
                self.save(scope.tenant(), current);
            }
        }
        drop(index);
        Ok(slot)
    }

    /// The saved index with the facts of its items, or a rebuilt one.
    async fn open(
        &self,
        repository: &Repository,
        scope: &TenantScope,
    ) -> Result<TenantIndex, MemoryError> {
        if let Some(path) = self.file(scope.tenant())
            && path.exists()
        {
            let options = self.options.clone();
            let loaded =
                tokio::task::spawn_blocking(move || VectorIndex::load(&path, options)).await;
            match loaded {
                Ok(Ok((vectors, stamp))) => {
                    let mut index = TenantIndex {
                        vectors,
                        facts: HashMap::new(),
                        version: stamp as i64,
                        unsaved: 0,
                    };
                    // The facts come from the rows; the vectors from the file.
                    let mut after = 0;
                    loop {
                        let page = store::vectors_page(
                            repository,
                            scope,
                            &self.model,
                            after,
                            REBUILD_PAGE,
                        )
                        .await?;
                        let Some(last) = page.last().map(|(r, _)| r.key) else {
                            break;
                        };
                        for (row, vector) in page {
                            let key = row.key as u64;
                            if !index.vectors.contains(key) {
                                // Added after the save: its change will say so too.
                                let _ = index.vectors.upsert(key, &vector);
                            }
                            index.facts.insert(key, facts_of(row));
                        }
                        after = last;
                    }
                    if self.catch_up(repository, scope, &mut index).await? {
                        return Ok(index);
                    }
                    tracing::info!(
                        tenant = scope.tenant(),
                        "memory index file is stale: rebuilding"
                    );
                }
                Ok(Err(e)) => {
                    tracing::warn!(tenant = scope.tenant(), error = %e, "memory index file unreadable: rebuilding");
                }
                Err(e) => {
                    tracing::warn!(tenant = scope.tenant(), error = %e, "memory index load failed: rebuilding");
                }
            }
        }
        self.rebuild(repository, scope).await
    }

    /// An index of every warm vector of the tenant, read from the database.
    pub async fn rebuild(
        &self,
        repository: &Repository,
        scope: &TenantScope,
    ) -> Result<TenantIndex, MemoryError> {
        let started = std::time::Instant::now();
        let version = store::version(repository, scope).await?;
        let mut index = TenantIndex::new(&self.options).map_err(failed)?;
        let mut after = 0;
        loop {
            let page =
                store::vectors_page(repository, scope, &self.model, after, REBUILD_PAGE).await?;
            let Some(last) = page.last().map(|(r, _)| r.key) else {
                break;
            };
            for (row, vector) in page {
                index.add(row, &vector).map_err(failed)?;
            }
            after = last;
        }
        index.version = version;
        index.unsaved = SAVE_EVERY;
        tracing::info!(
            tenant = scope.tenant(),
            vectors = index.vectors.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "memory index rebuilt"
        );
        self.save(scope.tenant(), &mut index);
        Ok(index)
    }

    /// Applies the tenant's changes after the index's version; `false` when the log no
    /// longer reaches back that far (the index must be rebuilt).
    async fn catch_up(
        &self,
        repository: &Repository,
        scope: &TenantScope,
        index: &mut TenantIndex,
    ) -> Result<bool, MemoryError> {
        loop {
            let (changes, complete) =
                store::changes_since(repository, scope, index.version, MAX_CATCH_UP).await?;
            if !complete {
                return Ok(false);
            }
            let Some(last) = changes.last().map(|c| c.0) else {
                return Ok(true);
            };
            // The last change of each key decides: added keys are read with their vectors.
            let mut net: HashMap<i64, bool> = HashMap::new();
            for (_, key, add) in &changes {
                net.insert(*key, *add);
            }
            let added: Vec<i64> = net.iter().filter(|(_, a)| **a).map(|(k, _)| *k).collect();
            for (key, add) in &net {
                if !add {
                    index.remove(*key as u64).map_err(failed)?;
                }
            }
            for chunk in added.chunks(store::MAX_KEYS) {
                let rows = store::vectors_of(repository, scope, &self.model, chunk).await?;
                let found: std::collections::HashSet<i64> =
                    rows.iter().map(|(r, _)| r.key).collect();
                for (row, vector) in rows {
                    index.add(row, &vector).map_err(failed)?;
                }
                // Added, then changed or moved since: not in the index now.
                for key in chunk.iter().filter(|k| !found.contains(k)) {
                    index.remove(*key as u64).map_err(failed)?;
                }
            }
            index.unsaved += changes.len();
            index.version = last;
            if changes.len() < MAX_CATCH_UP {
                return Ok(true);
            }
        }
    }

    fn save(&self, tenant: &str, index: &mut TenantIndex) {
        let Some(path) = self.file(tenant) else {
            return;
        };
        if let Some(parent) = path.parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            tracing::warn!(error = %e, "memory index directory cannot be made");
            return;
        }
        match index.vectors.save(&path, index.version.max(0) as u64) {
            Ok(()) => index.unsaved = 0,
            Err(e) => tracing::warn!(tenant, error = %e, "memory index not saved"),
        }
    }

    /// Saves every loaded index that changed since it was saved.
    pub async fn save_all(&self) {
        let slots: Vec<(String, Arc<RwLock<Option<TenantIndex>>>)> = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(t, s)| (t.clone(), s.clone()))
            .collect();
        for (tenant, slot) in slots {
            let mut index = slot.write().await;
            if let Some(index) = index.as_mut()
                && index.unsaved > 0
            {
                self.save(&tenant, index);
            }
        }
    }

    /// `(vectors, bytes)` of the tenant's index as loaded in this process.
    pub async fn size(&self, tenant: &str) -> (usize, usize) {
        let slot = self.slot(tenant);
        let index = slot.read().await;
        index
            .as_ref()
            .map(|i| (i.vectors.len(), i.vectors.memory_bytes()))
            .unwrap_or_default()
    }

    /// Forgets the tenant's index in this process and on disk (it is rebuilt on next use).
    pub async fn drop_tenant(&self, tenant: &str) {
        let slot = self.slot(tenant);
        *slot.write().await = None;
        if let Some(path) = self.file(tenant) {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn failed(e: String) -> MemoryError {
    MemoryError::Index(e)
}
