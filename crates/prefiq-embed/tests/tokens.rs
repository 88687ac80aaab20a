//! Token counting: tiktoken-rs against Python tiktoken (tests/fixtures/tiktoken.json,
//! written by scripts/tiktoken-fixture.py), tokenizer.json counters, unknown names.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use prefiq_embed::{EmbedError, TokenCounter, token_counter, tokenizers_available};
use serde_json::Value;

/// `counter` counts `expected` tokens in `input`.
fn check(counter: &dyn TokenCounter, input: &str, expected: usize) {
    let shown: String = input.chars().take(80).collect();
    assert_eq!(
        counter.count(input),
        expected,
        "{} of {shown:?}",
        counter.name()
    );
}

#[test]
fn tiktoken_rs_gives_the_ids_python_tiktoken_gives() {
    let fixture: Value = serde_json::from_str(&common::fixture("tiktoken.json")).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for name in ["cl100k_base", "o200k_base"] {
        let bpe = match name {
            "cl100k_base" => tiktoken_rs::cl100k_base().unwrap(),
            _ => tiktoken_rs::o200k_base().unwrap(),
        };
        let counter = token_counter(name, Path::new("/nonexistent")).unwrap();
        assert_eq!(counter.name(), name);
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let expected: Vec<u32> = case[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| u32::try_from(v.as_u64().unwrap()).unwrap())
                .collect();
            assert_eq!(
                bpe.encode_ordinary(text),
                expected,
                "{name} ids of {text:?}"
            );
            check(counter.as_ref(), text, expected.len());
        }
    }
}

#[test]
fn tiktoken_counters_are_built_once() {
    let a = token_counter("cl100k_base", Path::new("x")).unwrap();
    let b = token_counter("cl100k_base", Path::new("y")).unwrap();
    assert!(std::ptr::addr_eq(
        std::sync::Arc::as_ptr(&a),
        std::sync::Arc::as_ptr(&b)
    ));
}

#[test]
fn pathological_texts_count_without_panicking() {
    let counter = token_counter("cl100k_base", Path::new("x")).unwrap();
    check(counter.as_ref(), "", 0);
    // Long whitespace runs (the pattern's look-ahead) and long runs without any.
    let spaces = " ".repeat(200_000) + "x";
    assert!(counter.count(&spaces) > 0);
    let letters = "a".repeat(300_000);
    assert!(counter.count(&letters) > 0);
    // Long text is counted in pieces, cut where a word starts: the same as whole.
    let whole = tiktoken_rs::cl100k_base().unwrap();
    let prose = "Die Rechnung über 1.234,56 € wurde bezahlt.\n\n  It's   paid, see #42. ";
    for text in ["word ".repeat(100_000), prose.repeat(3_000)] {
        check(counter.as_ref(), &text, whole.encode_ordinary(&text).len());
    }
    // Without such places it may be off by one token per 64 KiB piece.
    let odd = "a  b\n\n c\t".repeat(30_000);
    let exact = whole.encode_ordinary(&odd).len();
    assert!(counter.count(&odd).abs_diff(exact) <= odd.len() / 65_536 + 1);
}

/// A models directory holding `names`, each with the in-tree tokenizer.json.
fn models_with(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::create_dir(dir.path().join(name)).unwrap();
        std::fs::write(
            dir.path().join(name).join("tokenizer.json"),
            include_bytes!("../models/static-minilm/tokenizer.json"),
        )
        .unwrap();
    }
    std::fs::create_dir(dir.path().join("no-tokenizer")).unwrap();
    dir
}

#[test]
fn installed_tokenizer_json_counts_without_special_tokens() {
    let dir = models_with(&["all-minilm-l6-v2"]);
    let counter = token_counter("all-minilm-l6-v2", dir.path()).unwrap();
    assert_eq!(counter.name(), "all-minilm-l6-v2");
    check(counter.as_ref(), "", 0);
    check(
        counter.as_ref(),
        "The invoice was paid by bank transfer on Friday.",
        12,
    );
    // No truncation at the model's 128 or 256 tokens.
    check(counter.as_ref(), &"ledger ".repeat(1000), 1000);
}

#[test]
fn available_tokenizers_are_listed_and_unknown_ones_refused() {
    let dir = models_with(&["zeta", "all-minilm-l6-v2"]);
    assert_eq!(
        tokenizers_available(dir.path()),
        ["cl100k_base", "o200k_base", "all-minilm-l6-v2", "zeta"]
    );
    assert_eq!(
        tokenizers_available(&dir.path().join("missing")),
        ["cl100k_base", "o200k_base"]
    );
    for name in [
        "p50k_base",
        "no-tokenizer",
        "",
        "../zeta",
        "zeta/..",
        "/etc",
    ] {
        match token_counter(name, dir.path()).map(|c| c.name().to_owned()) {
            Err(EmbedError::UnknownTokenizer { name: n, available }) => {
                assert_eq!(n, name);
                assert_eq!(available.len(), 4);
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }
    let e = token_counter("gpt2", dir.path()).map(|_| ()).unwrap_err();
    assert!(
        e.to_string()
            .contains("cl100k_base, o200k_base, all-minilm-l6-v2, zeta"),
        "{e}"
    );
    // A broken tokenizer.json is a tokenizer error, not unknown.
    std::fs::write(dir.path().join("zeta/tokenizer.json"), b"{").unwrap();
    assert!(matches!(
        token_counter("zeta", dir.path()).map(|_| ()),
        Err(EmbedError::Tokenizer { .. })
    ));
}
