//! Recall on a small labelled retrieval set (tests/fixtures/recall.json: 89 questions,
//! each with one relevant note among 109), the figures MODELS.md reports; a drop below
//! the floors fails. scripts/embed-recall.py measures the same in numpy.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use prefiq_embed::Embedder;
use serde::Deserialize;

#[derive(Deserialize)]
struct Set {
    documents: Vec<String>,
    queries: Vec<Query>,
}

#[derive(Deserialize)]
struct Query {
    query: String,
    relevant: usize,
}

struct Recall {
    at1: f64,
    at5: f64,
    at10: f64,
    mrr: f64,
}

fn recall(model: &dyn Embedder) -> Recall {
    let set: Set = serde_json::from_str(&common::fixture("recall.json")).unwrap();
    let docs: Vec<&str> = set.documents.iter().map(String::as_str).collect();
    let queries: Vec<&str> = set.queries.iter().map(|q| q.query.as_str()).collect();
    let doc_vectors = model.embed(&docs).unwrap();
    let query_vectors = model.embed(&queries).unwrap();
    let ranks: Vec<usize> = set
        .queries
        .iter()
        .zip(&query_vectors)
        .map(|(q, v)| {
            let target = common::dot(v, &doc_vectors[q.relevant]);
            1 + doc_vectors
                .iter()
                .filter(|d| common::dot(v, d) > target)
                .count()
        })
        .collect();
    let n = ranks.len() as f64;
    let within = |k: usize| ranks.iter().filter(|&&r| r <= k).count() as f64 / n;
    Recall {
        at1: within(1),
        at5: within(5),
        at10: within(10),
        mrr: ranks.iter().map(|&r| 1.0 / r as f64).sum::<f64>() / n,
    }
}

/// `model`'s recall@5 is at least `floor`.
fn check(model: &dyn Embedder, floor: f64) {
    let r = recall(model);
    eprintln!(
        "{}: recall@1 {:.3}, recall@5 {:.3}, recall@10 {:.3}, MRR {:.3}",
        model.id(),
        r.at1,
        r.at5,
        r.at10,
        r.mrr
    );
    assert!(
        r.at5 >= floor,
        "{} recall@5 {} < {floor}",
        model.id(),
        r.at5
    );
}

#[test]
fn the_static_model_recalls() {
    check(prefiq_embed::builtin().unwrap().as_ref(), 0.65);
}

#[test]
fn minilm_recalls_better() {
    if cfg!(debug_assertions) {
        eprintln!(
            "skipped minilm_recalls_better: 200 forward passes take minutes unoptimised; run `cargo nextest run -p prefiq-embed --release --test recall`"
        );
        return;
    }
    let Some(models_dir) = common::models_dir("minilm_recalls_better") else {
        return;
    };
    check(
        prefiq_embed::load(&models_dir, "all-minilm-l6-v2")
            .unwrap()
            .as_ref(),
        0.9,
    );
}
