//! The built-in static model: shape, normalisation, edge cases, corrupt input.
#![allow(clippy::unwrap_used)]

mod common;

use prefiq_embed::{EmbedError, Embedder, StaticModel};

const TOKENIZER: &[u8] = include_bytes!("../models/static-minilm/tokenizer.json");

fn model() -> std::sync::Arc<dyn Embedder> {
    prefiq_embed::builtin().unwrap()
}

/// Of `candidates`, `query`'s nearest is `expected`.
fn check(query: &str, candidates: &[&str], expected: &str) {
    let model = model();
    let q = model.embed(&[query]).unwrap().remove(0);
    let vectors = model.embed(candidates).unwrap();
    let best = vectors
        .iter()
        .zip(candidates)
        .max_by(|a, b| common::dot(&q, a.0).total_cmp(&common::dot(&q, b.0)))
        .map(|(_, c)| *c)
        .unwrap();
    assert_eq!(best, expected, "nearest to {query:?}");
}

#[test]
fn builtin_is_the_256_dimensional_static_minilm_and_shared() {
    let a = model();
    assert_eq!((a.id(), a.dims()), ("static-minilm-256", 256));
    let b = prefiq_embed::load(std::path::Path::new("/nonexistent"), "static-minilm-256").unwrap();
    assert_eq!(b.id(), a.id());
    assert!(std::sync::Arc::ptr_eq(
        &StaticModel::builtin().unwrap(),
        &StaticModel::builtin().unwrap()
    ));
}

#[test]
fn vectors_are_normalised_in_order_and_deterministic() {
    let texts = [
        "The invoice was paid.",
        "Stock is low in warehouse B",
        "ÄÖÜ straße 東京 🙂",
    ];
    let out = model().embed(&texts).unwrap();
    assert_eq!(out.len(), 3);
    for v in &out {
        assert_eq!(v.len(), 256);
        assert!((common::norm(v) - 1.0).abs() < 1e-5);
    }
    for (text, v) in texts.iter().zip(&out) {
        assert_eq!(&model().embed(&[text]).unwrap()[0], v);
    }
}

#[test]
fn texts_without_known_tokens_give_zero_vectors() {
    // Empty, whitespace, only special tokens, only characters outside the vocabulary.
    for text in ["", "   \n\t", "[CLS] [SEP] [PAD]", "\u{1F9FF}\u{1FAE0}"] {
        let v = model().embed(&[text]).unwrap().remove(0);
        assert_eq!(v.len(), 256);
        assert!(v.iter().all(|x| *x == 0.0), "{text:?}");
    }
    assert!(model().embed(&[]).unwrap().is_empty());
}

#[test]
fn very_long_texts_embed() {
    let long = "the customer paid the invoice late again. ".repeat(3_000);
    let v = model().embed(&[&long]).unwrap().remove(0);
    assert!((common::norm(&v) - 1.0).abs() < 1e-5);
    let short = model()
        .embed(&["the customer paid the invoice late again."])
        .unwrap();
    // The mean of a repeated text is the text's mean.
    assert!(common::dot(&v, &short[0]) > 0.9999);
}

#[test]
fn nearest_neighbours_make_sense() {
    let notes = [
        "Refunds above 500 euros need approval from the finance lead.",
        "The warehouse in Leipzig closes at 4 pm on Fridays.",
        "Passwords for service accounts are rotated every 90 days.",
    ];
    check("who approves a large refund?", &notes, notes[0]);
    check("when does the depot close on friday", &notes, notes[1]);
    check(
        "how often do we change service account credentials",
        &notes,
        notes[2],
    );
}

fn expect_invalid(result: Result<StaticModel, EmbedError>, contains: &str) {
    match result {
        Err(EmbedError::InvalidModel { reason, .. }) => {
            assert!(reason.contains(contains), "{reason}")
        }
        other => panic!("expected InvalidModel containing {contains:?}, got {other:?}"),
    }
}

fn safetensors(tensors: Vec<(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)>) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap();
            ((*name).to_owned(), view)
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn corrupt_or_mismatched_tables_are_refused() {
    use safetensors::Dtype;
    expect_invalid(
        StaticModel::from_bytes("t", b"not safetensors", TOKENIZER),
        "safetensors",
    );
    expect_invalid(StaticModel::from_bytes("t", &[], TOKENIZER), "safetensors");
    // Truncated: the header promises more data than there is.
    let good = safetensors(vec![(
        "embeddings",
        Dtype::F16,
        vec![30522, 2],
        vec![0; 30522 * 4],
    )]);
    expect_invalid(
        StaticModel::from_bytes("t", &good[..good.len() - 10], TOKENIZER),
        "safetensors",
    );
    let wrong_name = safetensors(vec![("weights", Dtype::F16, vec![4, 2], vec![0; 16])]);
    expect_invalid(
        StaticModel::from_bytes("t", &wrong_name, TOKENIZER),
        "embeddings",
    );
    let wrong_rank = safetensors(vec![("embeddings", Dtype::F16, vec![8], vec![0; 16])]);
    expect_invalid(
        StaticModel::from_bytes("t", &wrong_rank, TOKENIZER),
        "shape",
    );
    let wrong_dtype = safetensors(vec![("embeddings", Dtype::I32, vec![4, 2], vec![0; 32])]);
    expect_invalid(StaticModel::from_bytes("t", &wrong_dtype, TOKENIZER), "I32");
    let int8_without_scales = safetensors(vec![(
        "embeddings",
        Dtype::I8,
        vec![30522, 2],
        vec![1; 30522 * 2],
    )]);
    expect_invalid(
        StaticModel::from_bytes("t", &int8_without_scales, TOKENIZER),
        "scales",
    );
    // Fewer rows than the tokenizer has tokens.
    let small = safetensors(vec![("embeddings", Dtype::F16, vec![4, 2], vec![0; 16])]);
    expect_invalid(StaticModel::from_bytes("t", &small, TOKENIZER), "rows");
    assert!(matches!(
        StaticModel::from_bytes("t", &good, b"{not json"),
        Err(EmbedError::Tokenizer { .. })
    ));
}

#[test]
fn an_int8_table_with_scales_embeds() {
    use safetensors::Dtype;
    // Two dims; only token "in" (id 1999) has a row, [1, 0] * 0.5; "the" (1996) has none.
    let mut rows = vec![0u8; 30522 * 2];
    let mut scales = vec![0f32; 30522];
    rows[1999 * 2] = 1;
    scales[1999] = 0.5;
    let bytes = safetensors(vec![
        ("embeddings", Dtype::I8, vec![30522, 2], rows),
        (
            "scales",
            Dtype::F32,
            vec![30522],
            scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
        ),
    ]);
    let model = StaticModel::from_bytes("tiny", &bytes, TOKENIZER).unwrap();
    assert_eq!(model.dims(), 2);
    let out = model.embed(&["in", "the", "in the"]).unwrap();
    assert_eq!(out[0], vec![1.0, 0.0]);
    assert_eq!(out[1], vec![0.0, 0.0]);
    assert_eq!(out[2], vec![1.0, 0.0]);
}
