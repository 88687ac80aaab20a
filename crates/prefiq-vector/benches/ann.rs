//! Approximate nearest neighbours measured: `cargo bench -p prefiq-vector --bench ann`.
//! A markdown table on stdout, progress on stderr.
//!
//! Each candidate indexes the same `ANN_N` (default 50,000) L2-normalised vectors of
//! `ANN_DIMS` (default 384) dimensions on one thread, then answers `ANN_QUERIES` (default
//! 1,000) held-out queries at each `ef_search` of `ANN_EF` (default
//! `16,24,32,40,48,64,96,128,192,256`), one thread. Measured: build seconds, recall@10 against
//! exact search, queries per second, and memory (the growth of the process's resident set
//! while building, in a child process of its own so candidates do not share a heap).
//!
//! The vectors come from `prefiq_vector::synthetic` (a seeded Gaussian mixture of topics in
//! a low-dimensional latent space mapped to 384 dimensions: see that module) unless
//! `ANN_VECTORS=path` names a raw little-endian f32 file of `rows × ANN_DIMS` values (real
//! embeddings); then the last `ANN_QUERIES` rows are the queries and the first rows (at
//! most `ANN_N`) the data. `ANN_CANDIDATES` picks candidates (comma-separated, default all):
//! `exact`, `usearch-f32`, `usearch-f16`, `usearch-i8`, `hnsw_rs`, `instant-distance`,
//! `prefiq-vector` (the crate itself, default options), `filtered` (filtered search at
//! several selectivities, graph walk against exact scan; `ANN_FILTER_STORAGE=f32|f16|i8`
//! overrides the default storage). `ANN_M` sets the graph degree (default 16),
//! `ANN_EF_ADD` the construction expansion (default 128).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::too_many_arguments,
    missing_docs
)]

use std::collections::HashSet;
use std::process::Command;
use std::time::Instant;

use numkong::Dot;
use prefiq_vector::synthetic::{Generator, Rng, Spec};
use prefiq_vector::{FilterStrategy, IndexOptions, Storage, VectorIndex};

const K: usize = 10;
const ALL: &str =
    "exact,usearch-f32,usearch-f16,usearch-i8,hnsw_rs,instant-distance,prefiq-vector,filtered";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

struct Data {
    dims: usize,
    base: Vec<f32>,
    queries: Vec<f32>,
}

impl Data {
    fn n(&self) -> usize {
        self.base.len() / self.dims
    }
    fn row(&self, i: usize) -> &[f32] {
        &self.base[i * self.dims..][..self.dims]
    }
    fn query(&self, i: usize) -> &[f32] {
        &self.queries[i * self.dims..][..self.dims]
    }
    fn q(&self) -> usize {
        self.queries.len() / self.dims
    }
}

fn normalise(rows: &mut [f32], dims: usize) {
    for row in rows.chunks_exact_mut(dims) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|x| *x /= norm);
        }
    }
}

fn load_data() -> Data {
    let dims = env_usize("ANN_DIMS", 384);
    let n = env_usize("ANN_N", 50_000);
    let q = env_usize("ANN_QUERIES", 1_000);
    if let Ok(path) = std::env::var("ANN_VECTORS") {
        let bytes = std::fs::read(&path).expect("ANN_VECTORS is readable");
        let mut all: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let rows = all.len() / dims;
        assert!(
            rows > q,
            "{path}: {rows} rows of {dims}, need more than {q}"
        );
        all.truncate(rows * dims);
        normalise(&mut all, dims);
        let queries = all.split_off((rows - q) * dims);
        all.truncate(n.min(rows - q) * dims);
        return Data {
            dims,
            base: all,
            queries,
        };
    }
    let mut generator = Generator::new(Spec::with(dims, Spec::default().seed));
    let base = generator.take(n);
    let queries = generator.take(q);
    Data {
        dims,
        base,
        queries,
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    f32::dot(a, b).unwrap_or(0.0) as f32
}

/// Exact top-k by inner product (the vectors are normalised: cosine).
fn exact_top(data: &Data, query: &[f32], k: usize) -> Vec<u64> {
    let mut scored: Vec<(f32, u64)> = (0..data.n())
        .map(|i| (dot(query, data.row(i)), i as u64))
        .collect();
    let k = k.min(scored.len());
    scored.select_nth_unstable_by(k.saturating_sub(1), |a, b| b.0.total_cmp(&a.0));
    scored.truncate(k);
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().map(|(_, key)| key).collect()
}

fn ground_truth(data: &Data) -> Vec<Vec<u64>> {
    (0..data.q())
        .map(|i| exact_top(data, data.query(i), K))
        .collect()
}

fn recall(truth: &[Vec<u64>], found: &[Vec<u64>]) -> f64 {
    let hits: usize = truth
        .iter()
        .zip(found)
        .map(|(t, f)| {
            let t: HashSet<_> = t.iter().collect();
            f.iter().take(K).filter(|key| t.contains(key)).count()
        })
        .sum();
    hits as f64 / (truth.len() * K) as f64
}

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Nanoseconds this thread has run on a CPU (`/proc/thread-self/schedstat`): other work
/// on the machine does not count, where wall time would.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A stopwatch of both wall time and this thread's CPU time.
struct Watch(Instant, u64);

impl Watch {
    fn start() -> Self {
        Self(Instant::now(), cpu_ns())
    }
    /// (CPU seconds, wall seconds).
    fn stop(&self) -> (f64, f64) {
        let cpu = cpu_ns().saturating_sub(self.1) as f64 / 1e9;
        (cpu, self.0.elapsed().as_secs_f64())
    }
}

/// One row of the table: printed by a child as a line `ROW\t...`. Rates and build times
/// are per CPU second of the measuring thread; `wall_qps` is per wall second.
fn emit(name: &str, ef: usize, recall: f64, qps: f64, wall_qps: f64, build: f64, mem: usize) {
    println!(
        "ROW\t{name}\t{ef}\t{recall:.4}\t{qps:.0}\t{wall_qps:.0}\t{build:.1}\t{:.1}",
        mem as f64 / 1e6
    );
}

/// Runs every query through `search` at each ef (after `set_ef`), timing the pass.
fn sweep(
    name: &str,
    data: &Data,
    truth: &[Vec<u64>],
    build: f64,
    mem: usize,
    efs: &[usize],
    mut set_ef: impl FnMut(usize),
    mut search: impl FnMut(&[f32]) -> Vec<u64>,
) {
    for &ef in efs {
        set_ef(ef);
        // Warm the caches with a few queries first.
        for i in 0..data.q().min(50) {
            std::hint::black_box(search(data.query(i)));
        }
        let watch = Watch::start();
        let found: Vec<Vec<u64>> = (0..data.q()).map(|i| search(data.query(i))).collect();
        // The CPU clock advances in scheduler ticks: repeat the queries until the run is
        // long enough for a tick not to matter (half a CPU second, or two wall seconds).
        let mut done = data.q();
        loop {
            let (cpu, wall) = watch.stop();
            if cpu >= 0.5 || wall >= 2.0 {
                break;
            }
            for i in 0..data.q() {
                std::hint::black_box(search(data.query(i)));
            }
            done += data.q();
        }
        let (cpu, wall) = watch.stop();
        let r = recall(truth, &found);
        let (qps, wall_qps) = (done as f64 / cpu, done as f64 / wall);
        eprintln!("  {name} ef={ef}: recall@10 {r:.4}, {qps:.0} q/s ({wall_qps:.0} wall)");
        emit(name, ef, r, qps, wall_qps, build, mem);
    }
}

fn efs() -> Vec<usize> {
    std::env::var("ANN_EF")
        .unwrap_or_else(|_| "16,24,32,40,48,64,96,128,192,256".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn run_usearch(data: &Data, truth: &[Vec<u64>], storage: Storage) {
    use usearch::{Index, MetricKind, ScalarKind};
    let m = env_usize("ANN_M", 16);
    let options = usearch::IndexOptions {
        dimensions: data.dims,
        metric: if storage == Storage::I8 {
            MetricKind::Cos
        } else {
            MetricKind::IP
        },
        quantization: match storage {
            Storage::F32 => ScalarKind::F32,
            Storage::F16 => ScalarKind::F16,
            Storage::I8 => ScalarKind::I8,
        },
        connectivity: m,
        expansion_add: env_usize("ANN_EF_ADD", 128),
        expansion_search: 64,
        multi: false,
    };
    let name = format!("usearch-{storage:?}").to_lowercase();
    let before = rss_bytes();
    let watch = Watch::start();
    let index = Index::new(&options).unwrap();
    index.reserve_capacity_and_threads(data.n(), 1).unwrap();
    let quantise = |v: &[f32]| prefiq_vector::quantise_i8(v);
    for i in 0..data.n() {
        match storage {
            Storage::I8 => index.add::<i8>(i as u64, &quantise(data.row(i))).unwrap(),
            _ => index.add::<f32>(i as u64, data.row(i)).unwrap(),
        }
    }
    let build = watch.stop().0;
    let mem = rss_bytes().saturating_sub(before);
    eprintln!(
        "  {name}: built in {build:.1}s, rss +{:.1} MB, usearch says {:.1} MB, {}",
        mem as f64 / 1e6,
        index.memory_usage() as f64 / 1e6,
        index.hardware_acceleration()
    );
    sweep(
        &name,
        data,
        truth,
        build,
        mem,
        &efs(),
        |ef| index.change_expansion_search(ef),
        |q| {
            let matches = match storage {
                Storage::I8 => index.search::<i8>(&quantise(q), K),
                _ => index.search::<f32>(q, K),
            };
            matches.unwrap().keys
        },
    );
}

fn run_hnsw_rs(data: &Data, truth: &[Vec<u64>]) {
    use hnsw_rs::prelude::{DistDot, Hnsw};
    let m = env_usize("ANN_M", 16);
    let before = rss_bytes();
    let watch = Watch::start();
    let hnsw: Hnsw<'_, f32, DistDot> =
        Hnsw::new(m, data.n(), 16, env_usize("ANN_EF_ADD", 128), DistDot {});
    for i in 0..data.n() {
        hnsw.insert_slice((data.row(i), i));
    }
    let build = watch.stop().0;
    let mem = rss_bytes().saturating_sub(before);
    eprintln!(
        "  hnsw_rs: built in {build:.1}s, rss +{:.1} MB",
        mem as f64 / 1e6
    );
    let ef = std::cell::Cell::new(64);
    sweep(
        "hnsw_rs",
        data,
        truth,
        build,
        mem,
        &efs(),
        |e| ef.set(e),
        |q| {
            hnsw.search(q, K, ef.get())
                .into_iter()
                .map(|n| n.d_id as u64)
                .collect()
        },
    );
}

#[derive(Clone)]
struct Point(Vec<f32>);

impl instant_distance::Point for Point {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.0, &other.0)
    }
}

fn run_instant_distance(data: &Data, truth: &[Vec<u64>]) {
    // Its ef_search is fixed when it is built, and a build takes minutes: one or two.
    let efs: Vec<usize> = std::env::var("ANN_EF_INSTANT")
        .unwrap_or_else(|_| "64".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for ef in efs {
        let before = rss_bytes();
        let watch = Watch::start();
        let points: Vec<Point> = (0..data.n()).map(|i| Point(data.row(i).to_vec())).collect();
        let values: Vec<u64> = (0..data.n() as u64).collect();
        let map = pool.install(|| {
            instant_distance::Builder::default()
                .ef_construction(env_usize("ANN_EF_ADD", 128))
                .ef_search(ef)
                .seed(7)
                .build(points, values)
        });
        // The build runs on the pool's one thread, not this one: wall time.
        let build = watch.stop().1;
        let mem = rss_bytes().saturating_sub(before);
        eprintln!(
            "  instant-distance: built in {build:.1}s, rss +{:.1} MB",
            mem as f64 / 1e6
        );
        let mut search = instant_distance::Search::default();
        sweep(
            "instant-distance",
            data,
            truth,
            build,
            mem,
            &[ef],
            |_| {},
            |q| {
                map.search(&Point(q.to_vec()), &mut search)
                    .take(K)
                    .map(|item| *item.value)
                    .collect()
            },
        );
    }
}

fn run_exact(data: &Data, truth: &[Vec<u64>]) {
    let q = data.q().min(300);
    let watch = Watch::start();
    let found: Vec<Vec<u64>> = (0..q).map(|i| exact_top(data, data.query(i), K)).collect();
    let (cpu, wall) = watch.stop();
    let r = recall(&truth[..q], &found);
    emit(
        "exact",
        0,
        r,
        q as f64 / cpu,
        q as f64 / wall,
        0.0,
        data.base.len() * 4,
    );
}

fn build_index(data: &Data, storage: Option<Storage>) -> (VectorIndex, f64, usize) {
    let mut options = IndexOptions::new(data.dims);
    if let Some(storage) = storage {
        options.storage = storage;
    }
    let storage = options.storage;
    let before = rss_bytes();
    let watch = Watch::start();
    let index = VectorIndex::new(options).unwrap();
    for i in 0..data.n() {
        index.upsert(i as u64, data.row(i)).unwrap();
    }
    let build = watch.stop().0;
    let mem = rss_bytes().saturating_sub(before);
    eprintln!(
        "  prefiq-vector {storage:?}: built in {build:.1}s, rss +{:.1} MB, memory_bytes {:.1} MB",
        mem as f64 / 1e6,
        index.memory_bytes() as f64 / 1e6
    );
    (index, build, mem)
}

fn run_prefiq(data: &Data, truth: &[Vec<u64>]) {
    let (index, build, mem) = build_index(data, None);
    let default_ef = index.options().expansion_search;
    let name = format!("prefiq-vector ({:?}, defaults)", index.options().storage);
    sweep(
        &name,
        data,
        truth,
        build,
        mem,
        &[default_ef],
        |_| {},
        |q| {
            index
                .search(q, K)
                .unwrap()
                .into_iter()
                .map(|h| h.key)
                .collect()
        },
    );
}

/// Filtered search at several selectivities: the graph (predicate inside HNSW) against an
/// exact scan of the allowed keys. The crossover is `search_filtered`'s threshold.
fn run_filtered(data: &Data) {
    let storage = std::env::var("ANN_FILTER_STORAGE")
        .ok()
        .and_then(|s| serde_json::from_value(serde_json::Value::String(s)).ok());
    let (index, _, _) = build_index(data, storage);
    let q = data.q().min(200);
    for &selectivity in &[0.001, 0.003, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5] {
        let mut rng = Rng::new(99);
        let allowed: HashSet<u64> = (0..data.n() as u64)
            .filter(|_| rng.uniform() < selectivity)
            .collect();
        let allow = |key: u64| allowed.contains(&key);
        let truth: Vec<Vec<u64>> = (0..q)
            .map(|i| {
                index
                    .search_filtered_using(data.query(i), K, &allow, None, FilterStrategy::Exact)
                    .unwrap()
                    .into_iter()
                    .map(|h| h.key)
                    .collect()
            })
            .collect();
        for strategy in [
            FilterStrategy::Graph,
            FilterStrategy::Exact,
            FilterStrategy::Auto,
        ] {
            let watch = Watch::start();
            let found: Vec<Vec<u64>> = (0..q)
                .map(|i| {
                    let hits = index.search_filtered_using(
                        data.query(i),
                        K,
                        &allow,
                        Some(allowed.len()),
                        strategy,
                    );
                    hits.unwrap().into_iter().map(|h| h.key).collect()
                })
                .collect();
            let (cpu, wall) = watch.stop();
            let (qps, wall_qps) = (q as f64 / cpu, q as f64 / wall);
            let r = recall(&truth, &found);
            let name = format!("filtered-{strategy:?}-{selectivity}").to_lowercase();
            eprintln!(
                "  {name}: recall@10 {r:.4}, {qps:.0} q/s ({} allowed)",
                allowed.len()
            );
            emit(&name, 0, r, qps, wall_qps, 0.0, 0);
        }
    }
}

fn child(candidate: &str) {
    let data = load_data();
    let started = Instant::now();
    let truth = ground_truth(&data);
    eprintln!(
        "{candidate}: {} × {} vectors, {} queries, ground truth in {:.1}s",
        data.n(),
        data.dims,
        data.q(),
        started.elapsed().as_secs_f64()
    );
    match candidate {
        "exact" => run_exact(&data, &truth),
        "usearch-f32" => run_usearch(&data, &truth, Storage::F32),
        "usearch-f16" => run_usearch(&data, &truth, Storage::F16),
        "usearch-i8" => run_usearch(&data, &truth, Storage::I8),
        "hnsw_rs" => run_hnsw_rs(&data, &truth),
        "instant-distance" => run_instant_distance(&data, &truth),
        "prefiq-vector" => run_prefiq(&data, &truth),
        "filtered" => run_filtered(&data),
        other => eprintln!("unknown candidate {other}"),
    }
}

/// How the data set looks: mean cosine of random pairs, of the 1st and 10th neighbour.
fn describe(data: &Data) {
    let mut rng = Rng::new(5);
    let pairs = 2_000;
    let random: f32 = (0..pairs)
        .map(|_| dot(data.row(rng.below(data.n())), data.row(rng.below(data.n()))))
        .sum::<f32>()
        / pairs as f32;
    let (mut first, mut tenth) = (0.0, 0.0);
    let sample = data.q().min(100);
    for i in 0..sample {
        let top = exact_top(data, data.query(i), K);
        first += dot(data.query(i), data.row(top[0] as usize));
        tenth += dot(data.query(i), data.row(top[K - 1] as usize));
    }
    println!(
        "Data: {} × {}, {} queries. Mean cosine: random pair {random:.3}, 1st neighbour {:.3}, 10th neighbour {:.3}.\n",
        data.n(),
        data.dims,
        data.q(),
        first / sample as f32,
        tenth / sample as f32
    );
}

fn main() {
    if let Ok(candidate) = std::env::var("ANN_CHILD") {
        child(&candidate);
        return;
    }
    describe(&load_data());
    let candidates = std::env::var("ANN_CANDIDATES").unwrap_or_else(|_| ALL.into());
    let exe = std::env::current_exe().unwrap();
    let mut rows = Vec::new();
    for candidate in candidates
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        let output = Command::new(&exe)
            .env("ANN_CHILD", candidate)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap();
        if !output.status.success() {
            eprintln!("{candidate} failed: {}", output.status);
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if let Some(row) = line.strip_prefix("ROW\t") {
                rows.push(row.split('\t').map(str::to_owned).collect::<Vec<_>>());
            }
        }
    }
    println!(
        "| candidate | ef_search | recall@10 | queries/s (CPU) | queries/s (wall) | build s | memory MB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
}
