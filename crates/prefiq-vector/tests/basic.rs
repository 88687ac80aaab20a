//! Upsert, replace, remove, contains, len; exact nearest on small sets; bad input.
#![allow(clippy::unwrap_used)]

mod common;

use common::{cosine, dataset, exact, index_of, sorted, vectors};
use prefiq_vector::{IndexError, IndexOptions, Storage, VectorIndex};

/// An operation on a 4-dimensional index; vectors are axis-aligned so results are exact.
#[derive(Debug, Clone, Copy)]
enum Op {
    Upsert(u64, usize),
    Remove(u64, bool),
}

fn axis(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; 4];
    v[i % 4] = 1.0;
    v
}

/// Applies `ops`, then checks `len`, which keys are present, and which key the search for
/// each axis finds first.
fn check(ops: &[Op], present: &[u64], absent: &[u64], nearest: &[(usize, Option<u64>)]) {
    let index = VectorIndex::new(IndexOptions::new(4)).unwrap();
    for op in ops {
        match *op {
            Op::Upsert(key, a) => index.upsert(key, &axis(a)).unwrap(),
            Op::Remove(key, was) => assert_eq!(index.remove(key).unwrap(), was, "{op:?}"),
        }
    }
    assert_eq!(index.len(), present.len(), "{ops:?}");
    assert_eq!(index.is_empty(), present.is_empty());
    for key in present {
        assert!(index.contains(*key), "{key} missing after {ops:?}");
    }
    for key in absent {
        assert!(!index.contains(*key), "{key} present after {ops:?}");
    }
    for &(a, want) in nearest {
        let hits = index.search(&axis(a), 1).unwrap();
        assert_eq!(hits.first().map(|h| h.key), want, "axis {a} after {ops:?}");
        if let Some(hit) = hits.first() {
            assert!((hit.similarity - 1.0).abs() < 1e-4, "{hit:?}");
        }
    }
}

#[test]
fn upsert_replace_remove() {
    use Op::*;
    check(&[], &[], &[0, 1], &[(0, None)]);
    check(&[Upsert(1, 0)], &[1], &[0], &[(0, Some(1))]);
    check(
        &[Upsert(1, 0), Upsert(2, 1)],
        &[1, 2],
        &[],
        &[(0, Some(1)), (1, Some(2))],
    );
    // Replacing moves the key, and len stays.
    check(&[Upsert(1, 0), Upsert(1, 2)], &[1], &[], &[(2, Some(1))]);
    check(&[Upsert(1, 0), Upsert(1, 0)], &[1], &[], &[(0, Some(1))]);
    check(&[Upsert(1, 0), Remove(1, true)], &[], &[1], &[(0, None)]);
    check(&[Remove(7, false)], &[], &[7], &[]);
    check(
        &[Upsert(1, 0), Remove(1, true), Remove(1, false)],
        &[],
        &[1],
        &[],
    );
    // Removed, then added again under the same key.
    check(
        &[Upsert(1, 0), Remove(1, true), Upsert(1, 3)],
        &[1],
        &[],
        &[(3, Some(1))],
    );
    check(
        &[Upsert(1, 0), Upsert(2, 1), Remove(1, true), Upsert(3, 0)],
        &[2, 3],
        &[1],
        &[(0, Some(3)), (1, Some(2))],
    );
    check(
        &[Upsert(0, 0), Upsert(u64::MAX - 1, 1)],
        &[0, u64::MAX - 1],
        &[],
        &[(1, Some(u64::MAX - 1))],
    );
}

#[test]
fn grows_past_its_initial_capacity_and_reuses_removed_slots() {
    let data = vectors(3_000, 16, 3);
    let index = index_of(&data, Storage::F32);
    assert_eq!(index.len(), 3_000);
    for key in 0..1_500u64 {
        assert!(index.remove(key).unwrap());
    }
    for key in 0..1_500u64 {
        index.upsert(key + 10_000, &data[key as usize]).unwrap();
    }
    assert_eq!(index.len(), 3_000);
    let hits = index.search(&data[5], 1).unwrap();
    assert_eq!(hits[0].key, 10_005);
}

/// The index's top `k` equals exact search on small sets.
fn check_exact(n: usize, dims: usize, k: usize, seed: u64) {
    let (data, queries) = dataset(n, 10, dims, seed);
    let index = index_of(&data, Storage::F32);
    for q in &queries {
        let hits = index.search(q, k).unwrap();
        assert_eq!(hits.len(), k.min(n));
        assert!(sorted(&hits));
        let keys: Vec<u64> = hits.iter().map(|h| h.key).collect();
        assert_eq!(
            keys,
            exact(&data, q, k, |_| true),
            "n={n} dims={dims} k={k}"
        );
        for hit in &hits {
            let want = cosine(q, &data[hit.key as usize]);
            assert!((hit.similarity - want).abs() < 1e-4, "{hit:?} vs {want}");
        }
    }
}

#[test]
fn search_finds_the_exact_nearest_on_small_sets() {
    for (n, dims, k) in [
        (1, 8, 1),
        (1, 8, 5),
        (5, 3, 5),
        (20, 8, 3),
        (100, 16, 10),
        (300, 32, 5),
    ] {
        check_exact(n, dims, k, n as u64);
    }
}

#[test]
fn rank_exact_ranks_given_keys() {
    let (data, queries) = dataset(200, 1, 16, 9);
    let index = index_of(&data, Storage::F32);
    let q = &queries[0];
    let keys = [3u64, 17, 17, 42, 999, 150];
    let hits = index.rank_exact(q, &keys, 10).unwrap();
    let wanted = [3u64, 17, 42, 150];
    let want = exact(&data, q, 10, |key| wanted.contains(&key));
    assert_eq!(hits.iter().map(|h| h.key).collect::<Vec<_>>(), want);
    assert_eq!(index.rank_exact(q, &keys, 2).unwrap().len(), 2);
    assert!(index.rank_exact(q, &[], 5).unwrap().is_empty());
    assert!(index.rank_exact(q, &keys, 0).unwrap().is_empty());
}

#[test]
fn similarity_is_cosine_for_unnormalised_input() {
    let index = VectorIndex::new(IndexOptions::new(3)).unwrap();
    index.upsert(1, &[3.0, 0.0, 0.0]).unwrap();
    index.upsert(2, &[1.0, 1.0, 0.0]).unwrap();
    let hits = index.search(&[10.0, 0.0, 0.0], 2).unwrap();
    assert_eq!(hits[0].key, 1);
    assert!((hits[0].similarity - 1.0).abs() < 1e-5);
    assert!((hits[1].similarity - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-4);
}

fn check_error(result: Result<impl std::fmt::Debug, IndexError>, want: &str) {
    let error = result.unwrap_err();
    assert!(
        format!("{error:?}").starts_with(want),
        "{error:?} is not {want}"
    );
}

#[test]
fn bad_input_is_an_error() {
    let index = VectorIndex::new(IndexOptions::new(4)).unwrap();
    index.upsert(1, &axis(0)).unwrap();
    check_error(index.upsert(2, &[1.0; 3]), "DimensionMismatch");
    check_error(index.upsert(2, &[1.0; 5]), "DimensionMismatch");
    check_error(index.upsert(2, &[]), "DimensionMismatch");
    check_error(index.upsert(2, &[0.0; 4]), "InvalidVector");
    check_error(index.upsert(2, &[f32::NAN, 0.0, 0.0, 1.0]), "InvalidVector");
    check_error(
        index.upsert(2, &[f32::INFINITY, 0.0, 0.0, 1.0]),
        "InvalidVector",
    );
    check_error(index.upsert(u64::MAX, &axis(0)), "ReservedKey");
    check_error(index.search(&[1.0; 3], 1), "DimensionMismatch");
    check_error(index.search(&[0.0; 4], 1), "InvalidVector");
    check_error(
        index.search_filtered(&[1.0; 5], 1, &|_| true, None),
        "DimensionMismatch",
    );
    check_error(index.rank_exact(&[1.0; 2], &[1], 1), "DimensionMismatch");
    assert_eq!(index.len(), 1);
    assert!(index.search(&axis(0), 0).unwrap().is_empty());
    // Huge values normalise without overflow.
    index.upsert(3, &[f32::MAX, f32::MAX, 0.0, 0.0]).unwrap();
    assert_eq!(index.search(&[1.0, 1.0, 0.0, 0.0], 1).unwrap()[0].key, 3);
}

#[test]
fn bad_options_are_an_error() {
    let with = |f: fn(&mut IndexOptions)| {
        let mut options = IndexOptions::new(8);
        f(&mut options);
        VectorIndex::new(options)
    };
    check_error(with(|o| o.dims = 0), "InvalidOptions");
    check_error(with(|o| o.connectivity = 0), "InvalidOptions");
    check_error(with(|o| o.connectivity = 1), "InvalidOptions");
    check_error(with(|o| o.expansion_add = 0), "InvalidOptions");
    check_error(with(|o| o.expansion_search = 0), "InvalidOptions");
    assert!(with(|o| o.storage = Storage::I8).is_ok());
}

#[test]
fn memory_covers_the_vectors() {
    // usearch allocates in arenas, so small indexes look alike: check bounds only.
    let data = vectors(2_000, 64, 1);
    let full = index_of(&data, Storage::F32).memory_bytes();
    assert!(full > 2_000 * 64 * 4, "{full}");
    let small = index_of(&data, Storage::I8).memory_bytes();
    assert!(small <= full, "i8 {small} vs f32 {full}");
}

#[test]
fn storage_names_serialise_lowercase() {
    for (storage, name) in [
        (Storage::F32, "\"f32\""),
        (Storage::F16, "\"f16\""),
        (Storage::I8, "\"i8\""),
    ] {
        assert_eq!(serde_json::to_string(&storage).unwrap(), name);
        assert_eq!(serde_json::from_str::<Storage>(name).unwrap(), storage);
    }
}
