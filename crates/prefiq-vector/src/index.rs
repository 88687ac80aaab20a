//! [`VectorIndex`]: usearch's HNSW behind a safe, `&self`, growable, filter-aware API.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use numkong::Angular;
use usearch::{Index, MetricKind, ScalarKind};

use crate::{FilterStrategy, Hit, IndexError, IndexOptions, Storage, usearch_error};

/// `search_filtered` scans the allowed keys exactly when at most this fraction of the keys
/// pass (by the caller's hint or a sample), and walks the graph otherwise. Measured on
/// 50,000 × 384 (README.md): the scan calls the filter once per key and reads each allowed
/// vector; the filtered walk visits about `ef / fraction` nodes. They cost the same near
/// 7% of the keys in f32, 3% in i8 (whose vectors are cheaper to walk) and 3% in f16
/// (whose vectors usearch converts to f32 one component at a time for the scan), and below
/// that the walk's cost explodes (0.1%: 22 against 1,230 queries/s in f32).
pub(crate) fn exact_scan_fraction(storage: Storage) -> f64 {
    match storage {
        Storage::F32 => 0.07,
        Storage::F16 | Storage::I8 => 0.03,
    }
}
/// ... or at most this many keys, whichever is larger (small indexes).
pub(crate) const EXACT_SCAN_AT_LEAST: usize = 300;
/// Up to this many keys, `search` scans them all: exact, and no slower than the graph.
pub(crate) const EXACT_SEARCH_UP_TO: usize = 256;
/// Keys sampled to estimate a filter's selectivity when the caller gives no hint.
const SELECTIVITY_SAMPLE: usize = 512;
/// Capacity reserved up front, and the least a growth adds.
const INITIAL_CAPACITY: usize = 1_024;

/// The usearch index and the key table beside it (usearch cannot list its keys).
pub(crate) struct Native {
    pub(crate) index: Index,
    /// Every key present, in no particular order.
    pub(crate) keys: Vec<u64>,
    /// Where each key sits in `keys`.
    pub(crate) positions: HashMap<u64, usize>,
    /// Removed slots usearch keeps in the graph (reused by the next insertions).
    pub(crate) tombstones: usize,
}

impl Native {
    pub(crate) fn new(options: &IndexOptions, contexts: usize) -> Result<Self, IndexError> {
        let index = Index::new(&native_options(options)).map_err(usearch_error)?;
        index
            .reserve_capacity_and_threads(INITIAL_CAPACITY, contexts)
            .map_err(usearch_error)?;
        Ok(Self {
            index,
            keys: Vec::new(),
            positions: HashMap::new(),
            tombstones: 0,
        })
    }

    fn insert_key(&mut self, key: u64) {
        self.positions.insert(key, self.keys.len());
        self.keys.push(key);
    }

    fn remove_key(&mut self, key: u64) -> bool {
        let Some(position) = self.positions.remove(&key) else {
            return false;
        };
        self.keys.swap_remove(position);
        if let Some(&moved) = self.keys.get(position) {
            self.positions.insert(moved, position);
        }
        true
    }
}

/// usearch's options for ours: inner product on the normalised vectors we store (f32, f16),
/// cosine on i8 (each vector is scaled to its own range, so norms differ).
pub(crate) fn native_options(options: &IndexOptions) -> usearch::IndexOptions {
    usearch::IndexOptions {
        dimensions: options.dims,
        metric: match options.storage {
            Storage::I8 => MetricKind::Cos,
            Storage::F32 | Storage::F16 => MetricKind::IP,
        },
        quantization: match options.storage {
            Storage::F32 => ScalarKind::F32,
            Storage::F16 => ScalarKind::F16,
            Storage::I8 => ScalarKind::I8,
        },
        connectivity: options.connectivity,
        expansion_add: options.expansion_add,
        expansion_search: options.expansion_search,
        multi: false,
    }
}

/// How many searches may run inside usearch at once: each needs a thread context of its
/// own, reserved up front. More wait for a free one.
pub(crate) fn search_contexts() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get() * 2)
        .clamp(4, 64)
}

/// A counting semaphore over usearch's thread contexts.
struct Contexts {
    /// (free contexts, threads waiting for one).
    state: Mutex<(usize, usize)>,
    freed: Condvar,
}

struct Permit<'a>(&'a Contexts);

impl Contexts {
    fn new(count: usize) -> Self {
        Self {
            state: Mutex::new((count, 0)),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) -> Permit<'_> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.0 == 0 {
            state.1 += 1;
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.1 -= 1;
        }
        state.0 -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.0 += 1;
            state.1
        };
        // Waking costs a system call: only when someone waits.
        if waiting > 0 {
            self.0.freed.notify_one();
        }
    }
}

/// Quantises a vector to `i8` over its own range: the largest magnitude becomes ±127. This
/// is what [`Storage::I8`] stores; cosine similarity does not see the per-vector scale.
pub fn quantise_i8(vector: &[f32]) -> Vec<i8> {
    let max = vector.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if !(max > 0.0 && max.is_finite()) {
        return vec![0; vector.len()];
    }
    let scale = 127.0 / max;
    vector
        .iter()
        .map(|x| (x * scale).round().clamp(-127.0, 127.0) as i8)
        .collect()
}

/// A vector as the index takes it: checked, normalised, quantised if the storage is i8.
enum Prepared {
    F32(Vec<f32>),
    I8(Vec<i8>),
}

/// An approximate nearest-neighbour index by cosine similarity, keyed by `u64`.
///
/// `Send + Sync`; every method takes `&self`. Searches run concurrently with each other;
/// an insertion or removal waits for running searches and holds the index briefly alone.
pub struct VectorIndex {
    pub(crate) options: IndexOptions,
    pub(crate) native: RwLock<Native>,
    contexts: Contexts,
    pub(crate) context_count: usize,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("options", &self.options)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl VectorIndex {
    /// An empty index.
    pub fn new(options: IndexOptions) -> Result<Self, IndexError> {
        options.validate()?;
        let context_count = search_contexts();
        let native = Native::new(&options, context_count)?;
        Ok(Self::from_parts(options, native, context_count))
    }

    pub(crate) fn from_parts(options: IndexOptions, native: Native, context_count: usize) -> Self {
        Self {
            options,
            native: RwLock::new(native),
            contexts: Contexts::new(context_count),
            context_count,
        }
    }

    /// The options the index was made (or loaded) with.
    pub fn options(&self) -> &IndexOptions {
        &self.options
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Native> {
        self.native.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Native> {
        self.native.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks the length and normalises; a zero or non-finite vector is an error.
    fn normalised(&self, vector: &[f32]) -> Result<Vec<f32>, IndexError> {
        if vector.len() != self.options.dims {
            return Err(IndexError::DimensionMismatch {
                expected: self.options.dims,
                actual: vector.len(),
            });
        }
        if vector.iter().any(|x| !x.is_finite()) {
            return Err(IndexError::InvalidVector("a component is NaN or infinite"));
        }
        let norm = vector
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            return Err(IndexError::InvalidVector("the vector is zero"));
        }
        Ok(vector
            .iter()
            .map(|&x| (f64::from(x) / norm) as f32)
            .collect())
    }

    fn prepare(&self, vector: &[f32]) -> Result<Prepared, IndexError> {
        let unit = self.normalised(vector)?;
        Ok(match self.options.storage {
            Storage::I8 => Prepared::I8(quantise_i8(&unit)),
            Storage::F32 | Storage::F16 => Prepared::F32(unit),
        })
    }

    /// Adds or replaces the vector under `key` (grows capacity as needed).
    pub fn upsert(&self, key: u64, vector: &[f32]) -> Result<(), IndexError> {
        if key == u64::MAX {
            return Err(IndexError::ReservedKey(key));
        }
        let prepared = self.prepare(vector)?;
        let mut native = self.write();
        if native.positions.contains_key(&key) {
            native.index.remove(key).map_err(usearch_error)?;
            native.remove_key(key);
            native.tombstones += 1;
        }
        let slots = native.keys.len() + native.tombstones;
        let capacity = native.index.capacity();
        if slots >= capacity {
            let grown = (capacity * 2).max(slots + INITIAL_CAPACITY);
            native
                .index
                .reserve_capacity_and_threads(grown, self.context_count)
                .map_err(usearch_error)?;
        }
        let add = |index: &Index| match &prepared {
            Prepared::F32(v) => index.add::<f32>(key, v),
            Prepared::I8(v) => index.add::<i8>(key, v),
        };
        if add(&native.index).is_err() {
            // Out of reserved slots, if our count of usearch's removed slots was off: grow,
            // then try once more (another failure is reported).
            let grown = (native.index.capacity() * 2).max(INITIAL_CAPACITY);
            native
                .index
                .reserve_capacity_and_threads(grown, self.context_count)
                .map_err(usearch_error)?;
            add(&native.index).map_err(usearch_error)?;
        }
        // usearch fills a removed slot before it takes a new one.
        native.tombstones = native.tombstones.saturating_sub(1);
        native.insert_key(key);
        Ok(())
    }

    /// Removes `key`; `false` if it was not there.
    pub fn remove(&self, key: u64) -> Result<bool, IndexError> {
        let mut native = self.write();
        if !native.positions.contains_key(&key) {
            return Ok(false);
        }
        native.index.remove(key).map_err(usearch_error)?;
        native.remove_key(key);
        native.tombstones += 1;
        Ok(true)
    }

    /// Whether `key` has a vector.
    pub fn contains(&self, key: u64) -> bool {
        self.read().positions.contains_key(&key)
    }

    /// How many keys have a vector.
    pub fn len(&self) -> usize {
        self.read().keys.len()
    }

    /// Whether no key has a vector.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the index holds in memory (vectors + graph), approximately.
    pub fn memory_bytes(&self) -> usize {
        let native = self.read();
        native.index.memory_usage()
            + native.keys.capacity() * size_of::<u64>()
            + native.positions.capacity() * (size_of::<(u64, usize)>() + 1)
    }

    /// The `k` keys most similar to `query`, most similar first.
    pub fn search(&self, query_vector: &[f32], k: usize) -> Result<Vec<Hit>, IndexError> {
        let query = self.prepare(query_vector)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        {
            // The permit first: a writer then waits for running searches only, not for
            // searches queued for a context while holding the lock.
            let _permit = self.contexts.acquire();
            let native = self.read();
            let len = native.keys.len();
            // usearch allocates room for `k` results up front: never ask for more than
            // there are.
            let k = k.min(len);
            if len > EXACT_SEARCH_UP_TO {
                let matches = match &query {
                    Prepared::F32(q) => native.index.search::<f32>(q, k),
                    Prepared::I8(q) => native.index.search::<i8>(q, k),
                }
                .map_err(usearch_error)?;
                // Fewer hits than keys: part of the graph was out of reach (replacing a
                // vector relinks its node, and can strand a neighbour). Scan instead.
                if matches.keys.len() >= k.min(len) {
                    return Ok(hits(&matches.keys, &matches.distances, k));
                }
            }
        }
        let unit = self.normalised(query_vector)?;
        let native = self.read();
        scan(&native, &unit, native.keys.iter().copied(), k)
    }

    /// Only keys for which `allow` is true. Keeps its recall when `allow` passes a small
    /// fraction of the keys: up to 3% (i8, f16) or 7% (f32) of the keys, or 300 keys,
    /// it scans the allowed keys exactly (the crossovers measured in README.md); above, it
    /// walks the graph with the filter applied. `allowed_hint` is the caller's estimate of
    /// how many keys pass; without one a sample of keys is tested. A caller that already
    /// holds the short list of allowed keys saves the filter calls with
    /// [`rank_exact`](Self::rank_exact). A panic in `allow` is passed on to the caller after
    /// the search.
    pub fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        allow: &(dyn Fn(u64) -> bool + Sync),
        allowed_hint: Option<usize>,
    ) -> Result<Vec<Hit>, IndexError> {
        self.search_filtered_using(query, k, allow, allowed_hint, FilterStrategy::Auto)
    }

    /// [`search_filtered`](Self::search_filtered) with the strategy chosen by the caller
    /// (for measurement: `Auto` is what `search_filtered` does).
    pub fn search_filtered_using(
        &self,
        query: &[f32],
        k: usize,
        allow: &(dyn Fn(u64) -> bool + Sync),
        allowed_hint: Option<usize>,
        strategy: FilterStrategy,
    ) -> Result<Vec<Hit>, IndexError> {
        let prepared = self.prepare(query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let native = self.read();
        let total = native.keys.len();
        let exact = match strategy {
            FilterStrategy::Exact => true,
            FilterStrategy::Graph => false,
            FilterStrategy::Auto => {
                let allowed = allowed_hint.unwrap_or_else(|| estimate_allowed(&native.keys, allow));
                let fraction = exact_scan_fraction(self.options.storage);
                let threshold = EXACT_SCAN_AT_LEAST.max((total as f64 * fraction) as usize);
                allowed <= threshold
            }
        };
        if exact {
            let unit = match &prepared {
                Prepared::F32(v) => v.clone(),
                Prepared::I8(_) => self.normalised(query)?,
            };
            let candidates = native.keys.iter().copied().filter(|&key| allow(key));
            return scan(&native, &unit, candidates, k);
        }
        // The graph walk calls `allow` from C++: a panic must not cross it. Catch it, refuse
        // that key and every later one, and re-raise it once usearch has returned.
        let panicked: Mutex<Option<Box<dyn std::any::Any + Send>>> = Mutex::new(None);
        let failed = AtomicBool::new(false);
        let filter = |key: u64| {
            if failed.load(Ordering::Relaxed) {
                return false;
            }
            match catch_unwind(AssertUnwindSafe(|| allow(key))) {
                Ok(pass) => pass,
                Err(payload) => {
                    failed.store(true, Ordering::Relaxed);
                    let mut slot = panicked.lock().unwrap_or_else(PoisonError::into_inner);
                    slot.get_or_insert(payload);
                    false
                }
            }
        };
        // Release the lock and take a context, in the order `search` takes them.
        drop(native);
        let result = {
            let _permit = self.contexts.acquire();
            let native = self.read();
            let k = k.min(native.keys.len());
            match &prepared {
                Prepared::F32(q) => native.index.filtered_search::<f32, _>(q, k, filter),
                Prepared::I8(q) => native.index.filtered_search::<i8, _>(q, k, filter),
            }
        };
        if let Some(payload) = panicked
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            resume_unwind(payload);
        }
        let matches = result.map_err(usearch_error)?;
        if matches.keys.len() >= k {
            return Ok(hits(&matches.keys, &matches.distances, k));
        }
        // Fewer than k: either fewer keys pass, or part of the graph was out of reach.
        // The walk has visited everything it could reach, so a scan costs no more.
        let unit = self.normalised(query)?;
        let native = self.read();
        let candidates = native.keys.iter().copied().filter(|&key| allow(key));
        scan(&native, &unit, candidates, k)
    }

    /// Exact similarity ranking among the given keys (keys not in the index are skipped,
    /// repeated keys count once), most similar first.
    pub fn rank_exact(
        &self,
        query: &[f32],
        keys: &[u64],
        k: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        let unit = self.normalised(query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let native = self.read();
        let mut seen = HashSet::with_capacity(keys.len());
        let candidates = keys
            .iter()
            .copied()
            .filter(|key| native.positions.contains_key(key) && seen.insert(*key));
        scan(&native, &unit, candidates, k)
    }
}

/// Estimates how many keys pass `allow` from a strided sample of them.
fn estimate_allowed(keys: &[u64], allow: &(dyn Fn(u64) -> bool + Sync)) -> usize {
    if keys.len() <= SELECTIVITY_SAMPLE {
        return keys.iter().filter(|&&key| allow(key)).count();
    }
    let step = keys.len() / SELECTIVITY_SAMPLE;
    let passed = keys
        .iter()
        .step_by(step)
        .take(SELECTIVITY_SAMPLE)
        .filter(|&&key| allow(key))
        .count();
    passed * keys.len() / SELECTIVITY_SAMPLE
}

/// The `k` most similar of `candidates`, by cosine against the stored (dequantised) vector.
fn scan(
    native: &Native,
    unit_query: &[f32],
    candidates: impl Iterator<Item = u64>,
    k: usize,
) -> Result<Vec<Hit>, IndexError> {
    let mut buffer = vec![0.0f32; unit_query.len()];
    let mut scored = Vec::new();
    for key in candidates {
        let found = native
            .index
            .get::<f32>(key, &mut buffer)
            .map_err(usearch_error)?;
        if found == 0 {
            continue;
        }
        let distance = f32::angular(unit_query, &buffer).unwrap_or(1.0);
        scored.push(Hit {
            key,
            similarity: (1.0 - distance) as f32,
        });
    }
    Ok(top_k(scored, k))
}

/// Sorts by similarity (then key, for ties) and keeps `k`.
fn top_k(mut hits: Vec<Hit>, k: usize) -> Vec<Hit> {
    let order = |a: &Hit, b: &Hit| {
        b.similarity
            .total_cmp(&a.similarity)
            .then(a.key.cmp(&b.key))
    };
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, order);
        hits.truncate(k);
    }
    hits.sort_by(order);
    hits
}

/// usearch's matches as hits: its distance is `1 − cosine` for both metrics we use.
fn hits(keys: &[u64], distances: &[f32], k: usize) -> Vec<Hit> {
    keys.iter()
        .zip(distances)
        .take(k)
        .map(|(&key, &distance)| Hit {
            key,
            similarity: 1.0 - distance,
        })
        .collect()
}
