//! Helpers shared by the tests: synthetic data, exact search, recall.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashSet;

use prefiq_vector::synthetic::{Generator, Spec};
use prefiq_vector::{Hit, IndexOptions, Storage, VectorIndex};

/// `n` sentence-embedding-like unit vectors of `dims` dimensions, then `q` more from the
/// same distribution (queries). Topics hold about 16 vectors each, as in the benchmark; the
/// latent space has 24 dimensions (the benchmark's 48 make generation slow unoptimised).
pub fn dataset(n: usize, q: usize, dims: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let spec = Spec {
        clusters: (n / 16).max(1),
        latent_dims: dims.min(24),
        ..Spec::with(dims, seed)
    };
    let mut generator = Generator::new(spec);
    let mut draw = |count: usize| -> Vec<Vec<f32>> {
        (0..count)
            .map(|_| {
                let mut v = vec![0.0; dims];
                generator.fill(&mut v);
                v
            })
            .collect()
    };
    let data = draw(n);
    (data, draw(q))
}

/// `n` vectors as [`dataset`] draws them.
pub fn vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    dataset(n, 0, dims, seed).0
}

/// An index of `storage` holding `data[i]` under key `i`.
pub fn index_of(data: &[Vec<f32>], storage: Storage) -> VectorIndex {
    let mut options = IndexOptions::new(data[0].len());
    options.storage = storage;
    let index = VectorIndex::new(options).unwrap();
    for (key, v) in data.iter().enumerate() {
        index.upsert(key as u64, v).unwrap();
    }
    index
}

/// Dot product, in chunks so that it is quick even unoptimised.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((sum, x), y) in sums.iter_mut().zip(x).zip(y) {
            *sum += x * y;
        }
    }
    sums.iter().sum::<f32>() + tail
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// The exact `k` nearest keys among those `allow` passes (`data` and `query` unit vectors).
pub fn exact(data: &[Vec<f32>], query: &[f32], k: usize, allow: impl Fn(u64) -> bool) -> Vec<u64> {
    let mut scored: Vec<(f32, u64)> = data
        .iter()
        .enumerate()
        .filter(|(key, _)| allow(*key as u64))
        .map(|(key, v)| (dot(query, v), key as u64))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, key)| key).collect()
}

/// The share of `truth` that `found` holds (1.0 for an empty truth).
pub fn recall(truth: &[u64], found: &[Hit]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let found: HashSet<u64> = found.iter().map(|h| h.key).collect();
    truth.iter().filter(|k| found.contains(k)).count() as f64 / truth.len() as f64
}

/// Whether hits are sorted most similar first.
pub fn sorted(hits: &[Hit]) -> bool {
    hits.windows(2).all(|w| w[0].similarity >= w[1].similarity)
}
