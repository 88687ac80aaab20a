//! Searches from several threads while another upserts and removes: no panic, no deadlock,
//! and every result is well-formed.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{index_of, sorted, vectors};
use prefiq_vector::{Storage, VectorIndex};

fn check_concurrent(storage: Storage, searchers: usize) {
    let data = Arc::new(vectors(2_000, 32, 21));
    let index: Arc<VectorIndex> = Arc::new(index_of(&data[..1_000], storage));
    let stop = Arc::new(AtomicBool::new(false));
    let searches = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..searchers)
        .map(|t| {
            let (index, data, stop, searches) =
                (index.clone(), data.clone(), stop.clone(), searches.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let q = &data[i % data.len()];
                    let hits = match i % 3 {
                        0 => index.search(q, 10).unwrap(),
                        1 => index
                            .search_filtered(q, 10, &|k| k.is_multiple_of(2), None)
                            .unwrap(),
                        _ => index.rank_exact(q, &[1, 2, 3, 500, 1_500], 3).unwrap(),
                    };
                    assert!(sorted(&hits) && hits.len() <= 10);
                    let _ = (index.len(), index.contains(i as u64), index.memory_bytes());
                    searches.fetch_add(1, Ordering::Relaxed);
                    i += searchers;
                }
            })
        })
        .collect();
    // The writer: adds the second thousand (growing capacity), replaces and removes.
    let started = Instant::now();
    let mut model: std::collections::HashSet<u64> = (0..1_000).collect();
    for key in 1_000..2_000u64 {
        index.upsert(key, &data[key as usize]).unwrap();
        model.insert(key);
        if key.is_multiple_of(3) {
            index
                .upsert(key - 1_000, &data[(key - 500) as usize])
                .unwrap();
            model.insert(key - 1_000);
        }
        if key.is_multiple_of(7) {
            assert_eq!(index.remove(key - 900).unwrap(), model.remove(&(key - 900)));
        }
    }
    // Give the searchers time to run against the final state as well.
    while searches.load(Ordering::Relaxed) < 200 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(searches.load(Ordering::Relaxed) >= 200, "searchers starved");
    assert_eq!(index.len(), model.len());
    assert!(model.iter().all(|&k| index.contains(k)));
}

#[test]
fn concurrent_searches_while_writing() {
    // More searchers than usearch has thread contexts, to exercise the waiting.
    for (storage, searchers) in [(Storage::F32, 4), (Storage::I8, 3), (Storage::F16, 12)] {
        check_concurrent(storage, searchers);
    }
}

#[test]
fn index_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<VectorIndex>();
}
