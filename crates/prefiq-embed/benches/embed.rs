//! Embedding throughput on one thread: `cargo bench -p prefiq-embed --bench embed`.
//! One JSON object per measurement on stdout, progress on stderr.
//!
//! Batches of 32 realistic sentences (10 to 30 words: the notes of
//! tests/fixtures/recall.json, short ones joined in pairs) go through `Embedder::embed`
//! for the built-in static model and, when it is installed (`$PREFIQ_MINILM_DIR` or
//! `data/models/all-minilm-l6-v2`), all-MiniLM-L6-v2. Everything runs on the calling
//! thread: tokenizers' single-text encode, ndarray's matrix products without rayon or
//! matrixmultiply's threading. Also: model load times, and token counting with
//! cl100k_base and o200k_base (first-use build time, texts/s).
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use prefiq_embed::Embedder;
use serde_json::{Value, json};

const BATCH: usize = 32;

fn sentences() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recall.json");
    let set: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let docs: Vec<&str> = set["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let words = |s: &str| s.split_whitespace().count();
    let mut out: Vec<String> = docs
        .iter()
        .filter(|d| (10..=30).contains(&words(d)))
        .map(|d| (*d).to_owned())
        .collect();
    for pair in docs.chunks(2) {
        let joined = pair.join(" ");
        if words(&joined) <= 30 && pair.iter().any(|d| words(d) < 10) {
            out.push(joined);
        }
    }
    out
}

/// Runs `embed` over `batches` until `budget` has passed (at least once); texts/s.
fn throughput(model: &dyn Embedder, batches: &[Vec<&str>], budget: Duration) -> (f64, usize) {
    let started = Instant::now();
    let mut texts = 0;
    while started.elapsed() < budget || texts == 0 {
        for batch in batches {
            let out = model.embed(batch).unwrap();
            texts += out.len();
        }
    }
    (texts as f64 / started.elapsed().as_secs_f64(), texts)
}

fn report(value: Value) {
    println!("{value}");
}

fn main() {
    let sentences = sentences();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let batches: Vec<Vec<&str>> = refs.chunks(BATCH).map(<[&str]>::to_vec).collect();
    let words = refs
        .iter()
        .map(|s| s.split_whitespace().count())
        .sum::<usize>() as f64
        / refs.len() as f64;
    eprintln!(
        "{} sentences, {words:.1} words on average, batches of {BATCH}",
        refs.len()
    );

    let started = Instant::now();
    let model = prefiq_embed::builtin().unwrap();
    let load = started.elapsed();
    eprintln!("static model: measuring");
    let (rate, texts) = throughput(model.as_ref(), &batches, Duration::from_secs(3));
    report(
        json!({"model": model.id(), "dims": model.dims(), "threads": 1, "batch": BATCH,
        "avg_words": (words * 10.0).round() / 10.0, "texts": texts, "texts_per_s": rate.round(),
        "load_ms": load.as_secs_f64() * 1e3}),
    );

    let dir = std::env::var_os("PREFIQ_MINILM_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models/all-minilm-l6-v2"),
        PathBuf::from,
    );
    match dir
        .parent()
        .filter(|_| dir.join("model.safetensors").is_file())
    {
        None => eprintln!(
            "all-minilm-l6-v2: skipped, not installed in {}",
            dir.display()
        ),
        Some(models_dir) => {
            let started = Instant::now();
            let model = prefiq_embed::load(models_dir, "all-minilm-l6-v2").unwrap();
            let load = started.elapsed();
            eprintln!("all-minilm-l6-v2: measuring");
            let (rate, texts) = throughput(model.as_ref(), &batches, Duration::from_secs(10));
            report(
                json!({"model": model.id(), "dims": model.dims(), "threads": 1, "batch": BATCH,
                "avg_words": (words * 10.0).round() / 10.0, "texts": texts,
                "texts_per_s": (rate * 10.0).round() / 10.0, "load_ms": load.as_secs_f64() * 1e3}),
            );
        }
    }

    for name in prefiq_embed::TIKTOKEN_ENCODINGS {
        let started = Instant::now();
        let counter = prefiq_embed::token_counter(name, std::path::Path::new(".")).unwrap();
        let build = started.elapsed();
        let started = Instant::now();
        let mut texts = 0usize;
        let mut tokens = 0usize;
        while started.elapsed() < Duration::from_secs(2) {
            for text in &refs {
                tokens += counter.count(text);
                texts += 1;
            }
        }
        report(
            json!({"tokenizer": name, "threads": 1, "build_ms": build.as_secs_f64() * 1e3,
            "texts_per_s": (texts as f64 / started.elapsed().as_secs_f64()).round(),
            "tokens_per_text": (tokens as f64 / texts as f64 * 10.0).round() / 10.0}),
        );
    }
}
