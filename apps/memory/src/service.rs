//! The memory service: the model, the indexes, the hot tier, and the operations the
//! routes, the event subscription and the jobs call.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use futures_util::StreamExt;
use prefiq_data::entity::repo::{Repository, TenantScope};
use prefiq_embed::{Embedder, TokenCounter};
use prefiq_worker::Jobs;
use serde_json::{Value, json};

use crate::cold;
use crate::config::MemoryConfig;
use crate::error::MemoryError;
use crate::index::Indexes;
use crate::items;
use crate::store::{self, MetaRow, NewMeta};

/// The entity memory items are.
pub const ENTITY: &str = "memory_item";

/// The job that embeds a tenant's pending items.
pub const EMBED_JOB: &str = "memory.embed";

/// The job that moves idle items to the cold tier.
pub const TIER_JOB: &str = "memory.tiers";

/// The queue of the memory jobs.
pub const QUEUE: &str = "memory";

/// Writes of one batch in flight at once (they share group commits on SQLite).
const BATCH_CONCURRENCY: usize = 32;

/// Query vectors kept.
const QUERY_CACHE_ENTRIES: u64 = 10_000;

/// Embedding batches one job runs before it hands over to a new job.
const MAX_BATCHES_PER_JOB: usize = 200;

/// The model in use, or why there is none.
pub enum ModelState {
    /// Vectors are made by this model.
    Ready(Arc<dyn Embedder>),
    /// Keyword-only, for this reason.
    Missing(String),
}

/// The memory service (a singleton).
pub struct Memory {
    /// Its config.
    pub config: MemoryConfig,
    /// Where installed models and tokenizers live.
    pub models_dir: PathBuf,
    model: ModelState,
    indexes: Option<Indexes>,
    query_vectors: moka::sync::Cache<String, Arc<Vec<f32>>>,
    hot: moka::sync::Cache<(String, i64), Arc<MetaRow>>,
    counters: Mutex<HashMap<String, Arc<dyn TokenCounter>>>,
    repository: OnceLock<Arc<Repository>>,
    jobs: OnceLock<Arc<Jobs>>,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Memory {
    /// The service for `config`, in the installation at `root`.
    pub fn new(config: MemoryConfig, root: &std::path::Path) -> Memory {
        let models_dir = config
            .models_dir
            .as_ref()
            .map(|d| root.join(d))
            .unwrap_or_else(|| root.join("data").join("models"));
        let wanted = match config.model.as_str() {
            "auto" if models_dir.join(prefiq_embed::MINILM_ID).exists() => prefiq_embed::MINILM_ID,
            "auto" => crate::config::STATIC_MODEL,
            other => other,
        };
        let model = match wanted {
            "none" | "" => ModelState::Missing("memory.model is `none`".into()),
            name => match prefiq_embed::load(&models_dir, name) {
                Ok(model) => ModelState::Ready(model),
                Err(e) => {
                    tracing::warn!(model = name, error = %e, "memory runs keyword-only");
                    ModelState::Missing(e.to_string())
                }
            },
        };
        let index_dir = match config.index_dir.as_deref() {
            Some("") => None,
            Some(dir) => Some(root.join(dir)),
            None => Some(root.join("data").join("memory")),
        };
        let indexes = match &model {
            ModelState::Ready(m) => {
                let mut options = prefiq_vector::IndexOptions::new(m.dims());
                options.storage = config.storage;
                Some(Indexes::new(m.id(), options, index_dir))
            }
            ModelState::Missing(_) => None,
        };
        let hot_bytes = config.hot_bytes;
        Memory {
            config,
            models_dir,
            model,
            indexes,
            query_vectors: moka::sync::Cache::new(QUERY_CACHE_ENTRIES),
            hot: moka::sync::Cache::builder()
                .max_capacity(hot_bytes)
                .weigher(|_, row: &Arc<MetaRow>| {
                    u32::try_from(row.text.len() + 160).unwrap_or(u32::MAX)
                })
                .build(),
            counters: Mutex::new(HashMap::new()),
            repository: OnceLock::new(),
            jobs: OnceLock::new(),
        }
    }

    /// Binds the repository and the job queue (at boot).
    pub fn connect(&self, repository: Arc<Repository>, jobs: Arc<Jobs>) {
        let _ = self.repository.set(repository);
        let _ = self.jobs.set(jobs);
    }

    /// The repository.
    pub fn repository(&self) -> Result<&Repository, MemoryError> {
        self.repository
            .get()
            .map(|r| r.as_ref())
            .ok_or_else(|| MemoryError::Index("the memory service is not connected".into()))
    }

    /// The model, when there is one.
    pub fn model(&self) -> Option<&Arc<dyn Embedder>> {
        match &self.model {
            ModelState::Ready(m) => Some(m),
            ModelState::Missing(_) => None,
        }
    }

    /// Why memory is keyword-only, when it is.
    pub fn keyword_only_reason(&self) -> Option<&str> {
        match &self.model {
            ModelState::Ready(_) => None,
            ModelState::Missing(reason) => Some(reason),
        }
    }

    /// The indexes (none when keyword-only).
    pub fn indexes(&self) -> Option<&Indexes> {
        self.indexes.as_ref()
    }

    /// Adds items for the caller, in order: each is checked first (so a bad one writes
    /// nothing), then created through the entity pipeline.
    pub async fn add(
        &self,
        caller: &TenantScope,
        items: &[Value],
        pointer_of: impl Fn(usize) -> String,
    ) -> Result<Vec<Value>, MemoryError> {
        let now = jiff::Timestamp::now();
        let records = items
            .iter()
            .enumerate()
            .map(|(i, item)| items::check_new(item, &pointer_of(i), now))
            .collect::<Result<Vec<_>, _>>()?;
        let repository = self.repository()?;
        let created: Vec<Result<Value, MemoryError>> =
            futures_util::stream::iter(records.into_iter().map(|record| async move {
                repository
                    .create(caller, ENTITY, record)
                    .await
                    .map_err(MemoryError::from)
            }))
            .buffered(BATCH_CONCURRENCY)
            .collect()
            .await;
        created
            .into_iter()
            .map(|r| r.map(|record| items::to_api(&record, "warm")))
            .collect()
    }

    /// Indexes a `memory_item` record after its write committed (the event subscription),
    /// and asks for its vector.
    pub async fn index_record(
        &self,
        scope: &TenantScope,
        item_id: &str,
        fields: items::IndexFields,
        created_by: Option<String>,
    ) -> Result<(), MemoryError> {
        let (kind, text, subject, tags, occurred_at_ms, priority_permille, source) = fields;
        let repository = self.repository()?;
        let key = store::upsert(
            repository,
            scope,
            &NewMeta {
                item_id: item_id.to_owned(),
                kind,
                subject,
                tags,
                text,
                occurred_at_ms,
                priority_permille,
                source,
                created_by,
                now_ms: now_ms(),
            },
        )
        .await?;
        self.hot.invalidate(&(scope.tenant().to_owned(), key));
        self.request_embedding(scope.tenant()).await
    }

    /// Forgets an item's index row (and its vector) after its record went.
    pub async fn unindex(&self, scope: &TenantScope, item_id: &str) -> Result<(), MemoryError> {
        if let Some(key) = store::remove(self.repository()?, scope, item_id).await? {
            self.hot.invalidate(&(scope.tenant().to_owned(), key));
        }
        Ok(())
    }

    /// Enqueues the tenant's embedding job for the next 200 ms slot (one job per slot
    /// however many writes fall in it).
    pub async fn request_embedding(&self, tenant: &str) -> Result<(), MemoryError> {
        if self.model().is_none() {
            return Ok(());
        }
        let Some(jobs) = self.jobs.get() else {
            return Ok(());
        };
        const SLOT_MS: i64 = 200;
        let now = now_ms();
        let mut job = prefiq_data::jobs::NewJob::new(EMBED_JOB, tenant, json!({}));
        job.queue = QUEUE.into();
        job.run_at_ms = Some((now / SLOT_MS + 1) * SLOT_MS);
        job.unique = Some((tenant.to_owned(), SLOT_MS));
        job.timeout_ms = 300_000;
        jobs.enqueue(vec![job])
            .await
            .map_err(|e| MemoryError::Repo(e.into()))?;
        Ok(())
    }

    /// Embeds the tenant's pending items in batches (the embedding job). Returns how many
    /// it embedded; when more are pending than one job should take, it enqueues the next.
    pub async fn embed_pending(&self, scope: &TenantScope) -> Result<usize, MemoryError> {
        let Some(model) = self.model().cloned() else {
            return Ok(0);
        };
        let repository = self.repository()?;
        let mut done = 0;
        for _ in 0..MAX_BATCHES_PER_JOB {
            let pending = store::pending(repository, scope, self.config.embed_batch).await?;
            if pending.is_empty() {
                return Ok(done);
            }
            let model = model.clone();
            let n = pending.len();
            let (keys, texts): (Vec<i64>, Vec<String>) = pending.into_iter().unzip();
            let started = std::time::Instant::now();
            let vectors = tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                model.embed(&refs)
            })
            .await
            .map_err(|e| MemoryError::Embed(e.to_string()))?
            .map_err(|e| MemoryError::Embed(e.to_string()))?;
            metrics::histogram!("memory_embed_batch_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("memory_items_embedded_total").increment(n as u64);
            let id = model_id(self.model());
            store::store_vectors(
                repository,
                scope,
                &id,
                keys.into_iter().zip(vectors).collect(),
            )
            .await?;
            done += n;
        }
        self.request_embedding(scope.tenant()).await?;
        Ok(done)
    }

    /// The query's vector, from the cache or the model.
    pub async fn query_vector(&self, query: &str) -> Result<Option<Arc<Vec<f32>>>, MemoryError> {
        let Some(model) = self.model().cloned() else {
            return Ok(None);
        };
        if let Some(v) = self.query_vectors.get(query) {
            return Ok(Some(v));
        }
        let text = query.to_owned();
        // The built-in model takes microseconds; a transformer takes milliseconds and
        // runs off the async threads.
        let vector = if model.id() == crate::config::STATIC_MODEL {
            model.embed(&[text.as_str()])
        } else {
            tokio::task::spawn_blocking(move || model.embed(&[text.as_str()]))
                .await
                .map_err(|e| MemoryError::Embed(e.to_string()))?
        }
        .map_err(|e| MemoryError::Embed(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| MemoryError::Embed("the model returned no vector".into()))?;
        let vector = Arc::new(vector);
        self.query_vectors.insert(query.to_owned(), vector.clone());
        Ok(Some(vector))
    }

    /// The index rows of these keys: from the hot tier, the rest from the database (and
    /// then kept hot); and the keys the hot tier had.
    pub async fn rows(
        &self,
        scope: &TenantScope,
        keys: &[i64],
    ) -> Result<(HashMap<i64, Arc<MetaRow>>, std::collections::HashSet<i64>), MemoryError> {
        let tenant = scope.tenant().to_owned();
        let mut out = HashMap::with_capacity(keys.len());
        let mut hot = std::collections::HashSet::new();
        let mut missing = Vec::new();
        for key in keys {
            match self.hot.get(&(tenant.clone(), *key)) {
                Some(row) => {
                    out.insert(*key, row);
                    hot.insert(*key);
                }
                None => missing.push(*key),
            }
        }
        if !missing.is_empty() {
            for row in store::rows(self.repository()?, scope, &missing).await? {
                let row = Arc::new(row);
                self.hot.insert((tenant.clone(), row.key), row.clone());
                out.insert(row.key, row);
            }
        }
        Ok((out, hot))
    }

    /// Forgets a cached row (it changed).
    pub fn forget_hot(&self, tenant: &str, key: i64) {
        self.hot.invalidate(&(tenant.to_owned(), key));
    }

    /// How many of the tenant's items the hot tier holds.
    pub fn hot_count(&self, tenant: &str) -> usize {
        self.hot.run_pending_tasks();
        self.hot.iter().filter(|(k, _)| k.0 == tenant).count()
    }

    /// Records use of these items (their priority stops decaying from now), in the
    /// background, for those not used within the last hour.
    pub fn used(&self, scope: &TenantScope, rows: &[Arc<MetaRow>]) {
        let now = now_ms();
        let stale: Vec<i64> = rows
            .iter()
            .filter(|r| now - r.last_used_ms > 3_600_000)
            .map(|r| r.key)
            .collect();
        if stale.is_empty() {
            return;
        }
        for key in &stale {
            self.forget_hot(scope.tenant(), *key);
        }
        let Some(repository) = self.repository.get().cloned() else {
            return;
        };
        let scope = scope.clone();
        tokio::spawn(async move {
            if let Err(e) = store::touch(&repository, &scope, &stale, now).await {
                tracing::debug!(error = %e, "memory use not recorded");
            }
        });
    }

    /// A tokenizer by name (cached; the tiktoken tables take a moment to build).
    pub async fn counter(&self, name: &str) -> Result<Arc<dyn TokenCounter>, MemoryError> {
        if let Some(c) = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
        {
            return Ok(c.clone());
        }
        let (dir, owned) = (self.models_dir.clone(), name.to_owned());
        let counter =
            tokio::task::spawn_blocking(move || prefiq_embed::token_counter(&owned, &dir))
                .await
                .map_err(|e| MemoryError::Tokenizer(e.to_string()))?
                .map_err(|e| MemoryError::Tokenizer(e.to_string()))?;
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), counter.clone());
        Ok(counter)
    }

    /// Moves the tenant's items idle past `memory.cold_after_days` to the cold tier, and
    /// prunes the index change log. Returns how many moved.
    pub async fn run_tiers(&self, scope: &TenantScope, now_ms: i64) -> Result<usize, MemoryError> {
        let repository = self.repository()?;
        let idle_before = now_ms - (self.config.cold_after_days * 86_400_000.0) as i64;
        let mut moved = 0;
        loop {
            let keys = cold::idle(repository, scope, idle_before, store::MAX_KEYS).await?;
            if keys.is_empty() {
                break;
            }
            cold::to_cold(repository, scope, &keys, now_ms).await?;
            for key in &keys {
                self.forget_hot(scope.tenant(), *key);
            }
            moved += keys.len();
            if keys.len() < store::MAX_KEYS {
                break;
            }
        }
        store::prune_changes(repository, scope, 100_000).await?;
        if let Some(indexes) = &self.indexes {
            // Bring the index up to date (the moved vectors leave it) and save it.
            indexes.current(repository, scope).await?;
            indexes.save_all().await;
        }
        metrics::counter!("memory_items_cooled_total").increment(moved as u64);
        Ok(moved)
    }

    /// Brings a cold item back to the warm tier. `Ok(false)` when it was not cold.
    pub async fn restore(&self, scope: &TenantScope, key: i64) -> Result<bool, MemoryError> {
        let model = model_id(self.model());
        let restored = cold::restore(self.repository()?, scope, key, &model, now_ms()).await?;
        self.forget_hot(scope.tenant(), key);
        if restored {
            self.request_embedding(scope.tenant()).await?;
        }
        Ok(restored)
    }
}

/// The id of the model in use, or `none`.
pub fn model_id(model: Option<&Arc<dyn Embedder>>) -> String {
    model.map_or_else(|| "none".to_owned(), |m| m.id().to_owned())
}
