//! Property: after any sequence of upserts and removes, `len` and `contains` match a model
//! set, and every key present is found by a search for its own vector.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use prefiq_vector::{IndexOptions, VectorIndex};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Upsert(u64, [i8; 4]),
    Remove(u64),
}

fn op() -> impl Strategy<Value = Op> {
    // Few keys, so replacements and removals of present keys are common.
    prop_oneof![
        3 => (0..40u64, any::<[i8; 4]>()).prop_map(|(k, v)| Op::Upsert(k, v)),
        2 => (0..40u64).prop_map(Op::Remove),
    ]
}

/// A vector that is never zero (a zero vector is refused).
fn vector(raw: [i8; 4]) -> Vec<f32> {
    let mut v: Vec<f32> = raw.iter().map(|&x| f32::from(x)).collect();
    v.push(1.0);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn len_and_contains_match_a_model(ops in prop::collection::vec(op(), 0..200)) {
        let index = VectorIndex::new(IndexOptions::new(5)).unwrap();
        let mut model = HashSet::new();
        for op in &ops {
            match op {
                Op::Upsert(key, raw) => {
                    index.upsert(*key, &vector(*raw)).unwrap();
                    model.insert(*key);
                }
                Op::Remove(key) => {
                    prop_assert_eq!(index.remove(*key).unwrap(), model.remove(key));
                }
            }
            prop_assert_eq!(index.len(), model.len());
        }
        for key in 0..40u64 {
            prop_assert_eq!(index.contains(key), model.contains(&key), "key {}", key);
        }
        let hits = index.search(&[1.0, 0.0, 0.0, 0.0, 0.0], 100).unwrap();
        let found: HashSet<u64> = hits.iter().map(|h| h.key).collect();
        prop_assert_eq!(found, model);
    }
}
