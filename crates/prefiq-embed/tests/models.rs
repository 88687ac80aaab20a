//! Loading models by name, and what a models directory holds.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use prefiq_embed::{EmbedError, installed, load};

fn load_err(models_dir: &Path, name: &str) -> EmbedError {
    match load(models_dir, name) {
        Ok(model) => panic!("{name} loaded as {}", model.id()),
        Err(e) => e,
    }
}

#[test]
fn a_missing_minilm_is_not_installed_and_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_err(dir.path(), "all-minilm-l6-v2");
    match &e {
        EmbedError::NotInstalled {
            name,
            path,
            command,
        } => {
            assert_eq!(name, "all-minilm-l6-v2");
            assert_eq!(path, &dir.path().join("all-minilm-l6-v2"));
            assert_eq!(command, "prefiq memory model-install");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("prefiq memory model-install"), "{e}");
    assert!(installed(dir.path()).is_empty());
    // A directory without the weights is not installed either.
    std::fs::create_dir(dir.path().join("all-minilm-l6-v2")).unwrap();
    std::fs::write(dir.path().join("all-minilm-l6-v2/config.json"), "{}").unwrap();
    assert!(matches!(
        load_err(dir.path(), "all-minilm-l6-v2"),
        EmbedError::NotInstalled { .. }
    ));
    assert!(installed(dir.path()).is_empty());
    // And a models directory that does not exist has nothing installed.
    assert!(installed(&dir.path().join("nope")).is_empty());
}

#[test]
fn unknown_model_names_list_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["", "minilm", "../all-minilm-l6-v2", "STATIC-MINILM-256"] {
        match load_err(dir.path(), name) {
            EmbedError::UnknownModel { available, .. } => {
                assert_eq!(available, ["static-minilm-256", "all-minilm-l6-v2"])
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }
}

/// A models directory whose all-minilm-l6-v2 has the given files (the rest copied from
/// the installed model when there is one, else made up).
fn fake_install(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("all-minilm-l6-v2");
    std::fs::create_dir(&model).unwrap();
    let config = br#"{"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
        "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}"#;
    std::fs::write(model.join("config.json"), config).unwrap();
    std::fs::write(
        model.join("tokenizer.json"),
        include_bytes!("../models/static-minilm/tokenizer.json"),
    )
    .unwrap();
    for (name, bytes) in files {
        std::fs::write(model.join(name), bytes).unwrap();
    }
    dir
}

fn check_invalid(files: &[(&str, &[u8])], contains: &str) {
    let dir = fake_install(files);
    assert_eq!(installed(dir.path()), ["all-minilm-l6-v2"]);
    match load_err(dir.path(), "all-minilm-l6-v2") {
        EmbedError::InvalidModel { reason, .. } => assert!(reason.contains(contains), "{reason}"),
        other => panic!("expected InvalidModel with {contains:?}: {other:?}"),
    }
}

#[test]
fn corrupt_model_files_are_invalid_not_a_panic() {
    check_invalid(&[("model.safetensors", b"garbage")], "safetensors");
    check_invalid(&[("model.safetensors", &[0xff; 8])], "safetensors");
    let empty = safetensors::serialize(
        Vec::<(String, safetensors::tensor::TensorView<'_>)>::new(),
        None,
    )
    .unwrap();
    check_invalid(
        &[("model.safetensors", &empty)],
        "embeddings.word_embeddings.weight",
    );
    check_invalid(
        &[("model.safetensors", &empty), ("config.json", b"{")],
        "config.json",
    );
    check_invalid(
        &[
            ("model.safetensors", &empty),
            ("config.json", br#"{"vocab_size": 1}"#),
        ],
        "config.json",
    );
    let relu = br#"{"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
        "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "relu"}"#;
    check_invalid(
        &[("model.safetensors", &empty), ("config.json", relu)],
        "relu",
    );
    let heads = br#"{"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
        "num_attention_heads": 7, "intermediate_size": 1536, "max_position_embeddings": 512,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12}"#;
    check_invalid(
        &[("model.safetensors", &empty), ("config.json", heads)],
        "multiple",
    );
    check_invalid(
        &[
            ("model.safetensors", &empty),
            ("sentence_bert_config.json", b"[]"),
        ],
        "sentence_bert_config.json",
    );
}

#[test]
fn a_truncated_real_model_is_invalid() {
    let Some(dir) = common::minilm_dir("a_truncated_real_model_is_invalid") else {
        return;
    };
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    check_invalid(
        &[("model.safetensors", &weights[..weights.len() / 2])],
        "safetensors",
    );
}

#[test]
fn the_installed_minilm_loads_by_name() {
    let Some(models_dir) = common::models_dir("the_installed_minilm_loads_by_name") else {
        return;
    };
    assert!(installed(&models_dir).contains(&"all-minilm-l6-v2".to_owned()));
    let model = load(&models_dir, "all-minilm-l6-v2").unwrap();
    assert_eq!((model.id(), model.dims()), ("all-minilm-l6-v2", 384));
}
