//! Save and load: round trip, and every kind of bad file is an error.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{index_of, vectors};
use prefiq_vector::{IndexError, IndexOptions, Storage, VectorIndex};

fn options(dims: usize, storage: Storage) -> IndexOptions {
    IndexOptions {
        storage,
        ..IndexOptions::new(dims)
    }
}

#[test]
fn round_trip_keeps_keys_results_and_stamp() {
    let dir = tempfile::tempdir().unwrap();
    for storage in [Storage::F32, Storage::F16, Storage::I8] {
        let data = vectors(1_500, 32, 11);
        let index = index_of(&data, storage);
        index.remove(10).unwrap();
        index.remove(11).unwrap();
        let path = dir.path().join(format!("{storage:?}.idx"));
        index.save(&path, 0xdead_beef).unwrap();
        // Saving again over the file replaces it.
        index.save(&path, 0xfeed).unwrap();
        let (loaded, stamp) = VectorIndex::load(&path, options(32, storage)).unwrap();
        assert_eq!(stamp, 0xfeed);
        assert_eq!(loaded.len(), index.len());
        assert!(!loaded.contains(10) && loaded.contains(12));
        for q in &data[..20] {
            assert_eq!(loaded.search(q, 10).unwrap(), index.search(q, 10).unwrap());
            let allow = |k: u64| k.is_multiple_of(7);
            assert_eq!(
                loaded.search_filtered(q, 5, &allow, None).unwrap(),
                index.search_filtered(q, 5, &allow, None).unwrap()
            );
        }
        // The loaded index takes more, reuses removed slots, and removes.
        for key in 2_000..2_100u64 {
            loaded.upsert(key, &data[(key - 2_000) as usize]).unwrap();
        }
        assert!(loaded.remove(12).unwrap());
        assert_eq!(loaded.len(), index.len() + 99);
        // Key 2005 holds the same vector as key 5.
        let best = loaded.search(&data[5], 1).unwrap()[0].key;
        assert!(best == 5 || best == 2_005, "{best}");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| !n.to_string_lossy().contains(".tmp.")),
            "{names:?}"
        );
    }
}

#[test]
fn empty_index_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.idx");
    VectorIndex::new(IndexOptions::new(8))
        .unwrap()
        .save(&path, 1)
        .unwrap();
    let (loaded, stamp) = VectorIndex::load(&path, IndexOptions::new(8)).unwrap();
    assert_eq!((loaded.len(), stamp), (0, 1));
    loaded.upsert(3, &[1.0; 8]).unwrap();
    assert_eq!(loaded.search(&[1.0; 8], 1).unwrap()[0].key, 3);
}

/// Writes a good file, spoils it with `spoil`, and expects `load` to fail with `want`.
fn check_bad(name: &str, spoil: impl Fn(&Path, Vec<u8>), load_options: IndexOptions, want: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    let index = index_of(&vectors(300, 16, 5), Storage::F32);
    index.save(&path, 9).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    spoil(&path, bytes);
    match VectorIndex::load(&path, load_options) {
        Ok(_) => panic!("{name}: loaded"),
        Err(error) => assert!(
            format!("{error:?}").starts_with(want),
            "{name}: {error:?}, not {want}"
        ),
    }
}

#[test]
fn bad_files_are_errors() {
    let write = |path: &Path, bytes: Vec<u8>| std::fs::write(path, bytes).unwrap();
    let good = || options(16, Storage::F32);
    let flip = |at: usize| {
        move |path: &Path, mut bytes: Vec<u8>| {
            let at = at.min(bytes.len() - 1);
            bytes[at] ^= 0x40;
            std::fs::write(path, bytes).unwrap();
        }
    };
    let cut = |keep: usize| {
        move |path: &Path, mut bytes: Vec<u8>| {
            bytes.truncate(keep.min(bytes.len()));
            std::fs::write(path, bytes).unwrap();
        }
    };
    check_bad(
        "missing",
        |path, _| std::fs::remove_file(path).unwrap(),
        good(),
        "Io",
    );
    check_bad("empty", cut(0), good(), "Corrupt");
    check_bad("half a header", cut(30), good(), "Corrupt");
    check_bad("header only", cut(64), good(), "Corrupt");
    check_bad(
        "truncated by one",
        |p, b| cut(b.len() - 1)(p, b),
        good(),
        "Corrupt",
    );
    check_bad("half", |p, b| cut(b.len() / 2)(p, b), good(), "Corrupt");
    check_bad(
        "one byte more",
        |p, mut b| {
            b.push(0);
            write(p, b)
        },
        good(),
        "Corrupt",
    );
    check_bad(
        "garbage",
        |p, _| write(p, (0..10_000u32).map(|i| (i * 7919 % 251) as u8).collect()),
        good(),
        "Corrupt",
    );
    check_bad(
        "zeros",
        |p, b| write(p, vec![0; b.len()]),
        good(),
        "Corrupt",
    );
    check_bad("magic", flip(0), good(), "Corrupt");
    check_bad("a key", flip(64), good(), "Corrupt");
    check_bad(
        "usearch's header",
        flip(64 + 300 * 8 + 10),
        good(),
        "Corrupt",
    );
    check_bad("the last byte", flip(usize::MAX), good(), "Corrupt");
    check_bad(
        "the middle",
        |p, b| flip(b.len() / 2)(p, b),
        good(),
        "Corrupt",
    );
    check_bad("the length", flip(32), good(), "Corrupt");
    check_bad("the stamp", flip(40), good(), "Corrupt");
    check_bad(
        "version",
        |p, mut b| {
            b[8] = 2;
            write(p, b)
        },
        good(),
        "UnsupportedVersion",
    );
    check_bad(
        "other dims",
        |_, _| {},
        options(32, Storage::F32),
        "Incompatible",
    );
    check_bad(
        "other storage",
        |_, _| {},
        options(16, Storage::I8),
        "Incompatible",
    );
    check_bad(
        "other connectivity",
        |_, _| {},
        IndexOptions {
            connectivity: 32,
            ..good()
        },
        "Incompatible",
    );
    check_bad(
        "bad options",
        |_, _| {},
        IndexOptions { dims: 0, ..good() },
        "InvalidOptions",
    );
}

#[test]
fn loading_takes_the_callers_expansion() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    index_of(&vectors(100, 16, 1), Storage::F32)
        .save(&path, 0)
        .unwrap();
    let wanted = IndexOptions {
        expansion_search: 200,
        ..options(16, Storage::F32)
    };
    let (loaded, _) = VectorIndex::load(&path, wanted).unwrap();
    assert_eq!(loaded.options().expansion_search, 200);
}

#[test]
fn saving_to_a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let index = VectorIndex::new(IndexOptions::new(4)).unwrap();
    let error = index
        .save(&dir.path().join("no/such/dir/index"), 0)
        .unwrap_err();
    assert!(matches!(error, IndexError::Io(_)), "{error:?}");
}
