//! The retrieval evaluation: the project's LoCoMo-style dataset (`eval/dataset.json`,
//! written by `eval/generate.py`) is added to a fresh tenant through the API; every
//! question is asked in `keyword`, `vector` and `hybrid` mode; recall@5, recall@10 and
//! MRR are reported per mode and per kind of question (paraphrase, keyword, temporal).
//!
//! `cargo bench -p memory --bench recall` runs it for the built-in model and, when it is
//! installed (`prefiq memory model-install`, into `data/models` at the workspace root or
//! `MEMORY_EVAL_MODELS_DIR`), for all-minilm-l6-v2. `MEMORY_EVAL_MODELS=a,b` picks models.
//! Targets (issue 19): hybrid recall@10 at least 0.90, and above keyword and vector alone.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};

use memory::eval::{Dataset, Report};
use prefiq_data::testing::TestDatabase;
use serde_json::json;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let root = support::workspace();
    let dataset_path = std::env::var("MEMORY_EVAL_DATASET")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("apps/memory/eval/dataset.json"));
    let dataset: Dataset = serde_json::from_slice(&std::fs::read(&dataset_path).unwrap()).unwrap();
    let models_dir = std::env::var("MEMORY_EVAL_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("data/models"));
    let models: Vec<String> = match std::env::var("MEMORY_EVAL_MODELS") {
        Ok(list) => list.split(',').map(str::to_owned).collect(),
        Err(_) => {
            let mut m = vec!["static-minilm-256".to_owned()];
            if models_dir.join("all-minilm-l6-v2").exists() {
                m.push("all-minilm-l6-v2".to_owned());
            } else {
                println!(
                    "all-minilm-l6-v2 is not installed in {}: evaluating the built-in model only",
                    models_dir.display()
                );
            }
            m
        }
    };
    println!(
        "dataset {}: {} items, {} questions",
        dataset_path.display(),
        dataset.items.len(),
        dataset.questions.len()
    );
    let mut summary = BTreeMap::new();
    for model in models {
        let db = TestDatabase::sqlite().unwrap();
        // `MEMORY_EVAL_CONFIG=PREFIQ__MEMORY__FUSION_K=10;…` tries other settings.
        let extra = std::env::var("MEMORY_EVAL_CONFIG").unwrap_or_default();
        let mut vars: Vec<(&str, String)> = vec![
            ("PREFIQ__MEMORY__MODEL", model.clone()),
            (
                "PREFIQ__MEMORY__MODELS_DIR",
                models_dir.display().to_string(),
            ),
        ];
        for pair in extra.split(';').filter(|p| !p.is_empty()) {
            if let Some((k, v)) = pair.split_once('=') {
                vars.push((k, v.to_owned()));
            }
        }
        if !extra.is_empty() {
            println!("with {extra}");
        }
        let bench = support::boot(&db, &vars).await;
        let started = std::time::Instant::now();
        let bodies: Vec<_> = dataset.items.iter().map(|i| i.body()).collect();
        let ids = bench.add(&bodies).await;
        bench.settled(ids.len()).await;
        let load_s = started.elapsed().as_secs_f64();
        let id_of: HashMap<&str, &str> = dataset
            .items
            .iter()
            .zip(&ids)
            .map(|(item, id)| (item.id.as_str(), id.as_str()))
            .collect();
        let mut report = Report::default();
        let mut latencies = Vec::new();
        for question in &dataset.questions {
            let gold: Vec<String> = question
                .gold
                .iter()
                .map(|g| id_of[g.as_str()].to_owned())
                .collect();
            for mode in ["keyword", "vector", "hybrid"] {
                let t = std::time::Instant::now();
                let (status, answer) = bench
                    .call("POST", "/api/v1/memory/search", Some(question.body(mode)))
                    .await;
                latencies.push(t.elapsed());
                assert!(status.is_success(), "{answer}");
                let ranked: Vec<String> = answer["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h["id"].as_str().unwrap().to_owned())
                    .collect();
                report.add(mode, &question.kind, &gold, &ranked);
            }
        }
        latencies.sort();
        println!(
            "\nmodel {model}: {} items added and embedded in {load_s:.1} s; search p50 {:.2} ms, p99 {:.2} ms",
            ids.len(),
            support::quantile_ms(&latencies, 0.5),
            support::quantile_ms(&latencies, 0.99)
        );
        print!("{}", report.table());
        let (keyword, vector, hybrid) = (
            report.overall("keyword").recall_at_10,
            report.overall("vector").recall_at_10,
            report.overall("hybrid").recall_at_10,
        );
        let verdict = if hybrid >= 0.90 && hybrid > keyword && hybrid > vector {
            "meets the target"
        } else {
            "MISSES the target"
        };
        println!(
            "hybrid recall@10 {hybrid:.3} (keyword {keyword:.3}, vector {vector:.3}): {verdict} (at least 0.90 and above both)"
        );
        summary.insert(model.clone(), json!({"table": report.table(), "load_s": load_s, "hybrid": hybrid, "keyword": keyword, "vector": vector}));
        bench.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
    let out = root.join("target/memory-eval.json");
    std::fs::write(&out, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    println!("\nwritten to {}", out.display());
}
