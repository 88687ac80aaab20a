//! Recall against exact search: filtered search at several selectivities, f16 and i8
//! storage, after deletions.
// Each check prints its recall (shown with `--no-capture` or on failure).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::collections::HashSet;
use std::sync::OnceLock;

use common::{dataset, exact, index_of, recall, sorted};
use prefiq_vector::synthetic::Rng;
use prefiq_vector::{FilterStrategy, Storage, VectorIndex};

const N: usize = 4_000;
const DIMS: usize = 64;
const QUERIES: usize = 60;
const K: usize = 10;

type Vectors = Vec<Vec<f32>>;

fn data_and_queries() -> &'static (Vectors, Vectors) {
    static DATA: OnceLock<(Vectors, Vectors)> = OnceLock::new();
    DATA.get_or_init(|| dataset(N, QUERIES, DIMS, 42))
}

fn data() -> &'static [Vec<f32>] {
    &data_and_queries().0
}

fn queries() -> &'static [Vec<f32>] {
    &data_and_queries().1
}

fn f32_index() -> &'static VectorIndex {
    static INDEX: OnceLock<VectorIndex> = OnceLock::new();
    INDEX.get_or_init(|| index_of(data(), Storage::F32))
}

fn i8_index() -> &'static VectorIndex {
    static INDEX: OnceLock<VectorIndex> = OnceLock::new();
    INDEX.get_or_init(|| index_of(data(), Storage::I8))
}

fn index(storage: Storage) -> &'static VectorIndex {
    match storage {
        Storage::I8 => i8_index(),
        _ => f32_index(),
    }
}

/// Keys passing a filter of the given selectivity (a seeded coin per key).
fn allowed(selectivity: f64, seed: u64) -> HashSet<u64> {
    let mut rng = Rng::new(seed);
    (0..N as u64)
        .filter(|_| rng.uniform() < selectivity)
        .collect()
}

/// Mean recall@10 of filtered search against exact search over the allowed keys; every hit
/// must pass the filter.
fn check_filtered(
    storage: Storage,
    selectivity: f64,
    hint: bool,
    strategy: FilterStrategy,
    min_recall: f64,
) {
    let index = index(storage);
    let allowed = allowed(selectivity, (selectivity * 1e6) as u64);
    let allow = |key: u64| allowed.contains(&key);
    let hint = hint.then_some(allowed.len());
    let mut total = 0.0;
    for q in queries() {
        let hits = index
            .search_filtered_using(q, K, &allow, hint, strategy)
            .unwrap();
        assert!(
            hits.iter().all(|h| allowed.contains(&h.key)),
            "a hit the filter refuses"
        );
        assert!(sorted(&hits));
        assert_eq!(
            hits.len(),
            K.min(allowed.len()),
            "selectivity {selectivity}"
        );
        total += recall(&exact(data(), q, K, allow), &hits);
    }
    let mean = total / QUERIES as f64;
    eprintln!("{storage:?} selectivity {selectivity} {strategy:?} hint {hint:?}: recall {mean:.3}");
    assert!(
        mean >= min_recall,
        "{storage:?} selectivity {selectivity} ({} keys) {strategy:?} hint {hint:?}: recall {mean:.3}",
        allowed.len()
    );
}

#[test]
fn filtered_search_keeps_recall_at_every_selectivity() {
    for storage in [Storage::F32, Storage::I8] {
        for selectivity in [0.001, 0.01, 0.1, 0.5] {
            for hint in [true, false] {
                check_filtered(storage, selectivity, hint, FilterStrategy::Auto, 0.95);
            }
        }
    }
}

#[test]
fn both_strategies_are_correct_where_they_are_used() {
    // The scan is exact up to the stored precision.
    for (storage, exact_recall) in [(Storage::F32, 1.0), (Storage::I8, 0.95)] {
        for selectivity in [0.001, 0.01, 0.1, 0.5, 1.0] {
            check_filtered(
                storage,
                selectivity,
                true,
                FilterStrategy::Exact,
                exact_recall,
            );
        }
        for selectivity in [0.1, 0.5, 1.0] {
            check_filtered(storage, selectivity, true, FilterStrategy::Graph, 0.95);
        }
    }
}

#[test]
fn filtered_search_with_nothing_or_everything_allowed() {
    let index = f32_index();
    let q = &queries()[0];
    for hint in [None, Some(0)] {
        assert!(
            index
                .search_filtered(q, K, &|_| false, hint)
                .unwrap()
                .is_empty()
        );
    }
    let all = index.search_filtered(q, K, &|_| true, None).unwrap();
    assert_eq!(all, index.search(q, K).unwrap());
    // A wrong hint costs speed, not correctness.
    let few: HashSet<u64> = (0..N as u64).step_by(97).collect();
    let hits = index
        .search_filtered(q, K, &|k| few.contains(&k), Some(N))
        .unwrap();
    assert!(hits.iter().all(|h| few.contains(&h.key)));
}

#[test]
fn a_panicking_filter_panics_the_caller_not_the_process() {
    let index = f32_index();
    let q = &queries()[0];
    for strategy in [FilterStrategy::Graph, FilterStrategy::Exact] {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            index.search_filtered_using(q, K, &|key| key != 7 && panic!("filter"), None, strategy)
        }));
        assert!(outcome.is_err(), "{strategy:?}");
    }
    // The index is still usable.
    assert_eq!(index.search(q, K).unwrap().len(), K);
}

/// Mean recall@10 of plain search with `storage` against exact f32 search.
fn check_storage(storage: Storage, min_recall: f64) {
    let index = index_of(data(), storage);
    let mut total = 0.0;
    for q in queries() {
        let hits = index.search(q, K).unwrap();
        assert!(sorted(&hits));
        total += recall(&exact(data(), q, K, |_| true), &hits);
        // Similarities are cosines, within quantisation error.
        let best = common::cosine(q, &data()[hits[0].key as usize]);
        assert!(
            (hits[0].similarity - best).abs() < 0.02,
            "{storage:?} {hits:?} {best}"
        );
    }
    let mean = total / QUERIES as f64;
    eprintln!("{storage:?}: recall {mean:.3}");
    assert!(mean >= min_recall, "{storage:?}: recall {mean:.3}");
}

#[test]
fn every_storage_keeps_recall() {
    for (storage, min) in [
        (Storage::F32, 0.95),
        (Storage::F16, 0.95),
        (Storage::I8, 0.9),
    ] {
        check_storage(storage, min);
    }
}

#[test]
fn quantised_filtered_and_exact_paths_work() {
    for storage in [Storage::F16, Storage::I8] {
        let index = index_of(&data()[..1_000], storage);
        let q = &queries()[1];
        let allowed: HashSet<u64> = (0..1_000).step_by(50).collect();
        let allow = |k: u64| allowed.contains(&k);
        let hits = index.search_filtered(q, K, &allow, None).unwrap();
        let truth = exact(&data()[..1_000], q, K, allow);
        assert!(recall(&truth, &hits) >= 0.9, "{storage:?}");
        let ranked = index.rank_exact(q, &truth, K).unwrap();
        assert!(recall(&truth, &ranked) == 1.0, "{storage:?}");
    }
}

#[test]
fn recall_holds_after_deletions_and_replacements() {
    let index = index_of(data(), Storage::F32);
    // Remove every third key, move every fifth to another vector.
    for key in (0..N as u64).step_by(3) {
        assert!(index.remove(key).unwrap());
    }
    // Moved to the normalised mean of itself and another vector: still in distribution.
    let moved: Vec<Vec<f32>> = (0..N)
        .map(|i| {
            let other = &data()[(i * 7_919 + 13) % N];
            let sum: Vec<f32> = data()[i].iter().zip(other).map(|(a, b)| a + b).collect();
            let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
            sum.iter().map(|x| x / norm).collect()
        })
        .collect();
    for key in (1..N as u64).step_by(5) {
        index.upsert(key, &moved[key as usize]).unwrap();
    }
    // A moved key that had been removed is back.
    let live = |key: u64| !key.is_multiple_of(3) || key % 5 == 1;
    let current: Vec<Vec<f32>> = (0..N)
        .map(|i| {
            if i % 5 == 1 {
                moved[i].clone()
            } else {
                data()[i].clone()
            }
        })
        .collect();
    let mut total = 0.0;
    for q in queries() {
        let hits = index.search(q, K).unwrap();
        assert!(hits.iter().all(|h| live(h.key)), "a removed key was found");
        total += recall(&exact(&current, q, K, live), &hits);
    }
    let mean = total / QUERIES as f64;
    eprintln!("recall after deletions and replacements: {mean:.3}");
    assert!(mean >= 0.95, "recall after deletions {mean:.3}");
    assert_eq!(index.len(), (0..N as u64).filter(|&k| live(k)).count());
}
