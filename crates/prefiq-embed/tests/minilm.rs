//! The Rust forward pass of all-MiniLM-L6-v2 against a numpy float64 reference
//! (tests/fixtures/minilm.json, written by scripts/minilm-fixture.py). Skipped, with the
//! reason printed, when the model is not installed.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use prefiq_embed::{Embedder, MiniLm};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

const TOLERANCE: f32 = 1e-5;

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The model's vector of `input` is within TOLERANCE of `expected`; the difference.
fn check(model: &MiniLm, input: &str, expected: &[f32]) -> f32 {
    let got = model.embed(&[input]).unwrap().remove(0);
    let diff = max_abs_diff(&got, expected);
    assert!(diff <= TOLERANCE, "{input:?}: max abs difference {diff}");
    diff
}

#[test]
fn matches_the_numpy_reference_one_by_one_and_batched() {
    let Some(dir) = common::minilm_dir("matches_the_numpy_reference") else {
        return;
    };
    let model = MiniLm::load(&dir).unwrap();
    assert_eq!((model.id(), model.dims()), ("all-minilm-l6-v2", 384));
    let fixture: Fixture = serde_json::from_str(&common::fixture("minilm.json")).unwrap();
    let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let truncation = tokenizers::TruncationParams {
        max_length: 256,
        ..Default::default()
    };
    tokenizer.with_truncation(Some(truncation)).unwrap();
    tokenizer.with_padding(None);
    let mut worst = 0.0f32;
    for case in &fixture.cases {
        // The same token ids as Python's tokenizers (truncated to 256 by the model).
        let ids = tokenizer.encode(case.text.as_str(), true).unwrap();
        assert_eq!(ids.get_ids(), case.ids, "{:?}", case.text);
        worst = worst.max(check(&model, &case.text, &case.embedding));
    }
    // All at once: padded batches give the same vectors, in input order (the last text,
    // 256 tokens, would be a batch of its own: left out, the forward pass is slow when
    // tests are built unoptimised).
    let texts: Vec<&str> = fixture.cases[..fixture.cases.len() - 1]
        .iter()
        .map(|c| c.text.as_str())
        .collect();
    for (got, case) in model.embed(&texts).unwrap().iter().zip(&fixture.cases) {
        let diff = max_abs_diff(got, &case.embedding);
        assert!(diff <= TOLERANCE, "{:?} batched: {diff}", case.text);
        worst = worst.max(diff);
    }
    eprintln!("max abs difference from the numpy float64 reference: {worst:e}");
}

#[test]
fn empty_texts_give_zero_vectors_and_long_texts_are_truncated() {
    let Some(dir) = common::minilm_dir("empty_and_long_texts") else {
        return;
    };
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    // Truncation at 16 tokens rather than 256 keeps the test quick unoptimised.
    let model = MiniLm::from_bytes(
        "all-minilm-l6-v2",
        &read("config.json"),
        &read("model.safetensors"),
        &read("tokenizer.json"),
        16,
    )
    .unwrap();
    let long = "ledger entry ".repeat(20_000);
    let out = model.embed(&["", "   ", "\n\t", "a", &long]).unwrap();
    assert_eq!(out.len(), 5);
    for zero in &out[..3] {
        assert!(zero.iter().all(|v| *v == 0.0));
    }
    for v in &out[3..] {
        assert!((common::norm(v) - 1.0).abs() < 1e-5);
    }
    // [CLS] + 14 tokens + [SEP]: nothing after the 14th token counts.
    let same = "ledger entry ".repeat(7) + "and then completely different words";
    let again = model.embed(&[&same]).unwrap();
    assert!(max_abs_diff(&again[0], &out[4]) < 1e-6);
    assert!(model.embed(&[]).unwrap().is_empty());
}
