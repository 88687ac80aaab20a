//! The `memory` config section.

use serde::Deserialize;

/// How hybrid search fuses the vector and keyword rankings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    /// A convex combination of the scores, each divided by its ranking's best.
    Convex,
    /// Reciprocal-rank fusion.
    Rrf,
}

/// The built-in model's id.
pub const STATIC_MODEL: &str = "static-minilm-256";

/// How the memory app runs (`memory:` in the config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// The embedding model: `auto` (the default: all-minilm-l6-v2 when it is installed,
    /// else the built-in model), `static-minilm-256` (built in), `all-minilm-l6-v2`
    /// (installed with `prefiq memory model-install`), or `none` for keyword-only memory.
    pub model: String,
    /// Where installed models live; default `data/models` under the installation.
    pub models_dir: Option<String>,
    /// Where each tenant's vector index is saved; default `data/memory` under the
    /// installation. Empty keeps indexes in memory only (rebuilt from the database).
    pub index_dir: Option<String>,
    /// How the index stores vectors: `i8` (the default), `f16` or `f32`.
    pub storage: prefiq_vector::Storage,
    /// The hot tier: bytes of recently used items kept in process.
    pub hot_bytes: u64,
    /// Priority halves every this many days unless the item is used.
    pub half_life_days: f64,
    /// How much priority (after decay) raises a result: its score times
    /// `1 + priority_weight × priority`.
    pub priority_weight: f64,
    /// Items unused for this many days move to the cold tier.
    pub cold_after_days: f64,
    /// When the tier job runs (cron, in the tenant's zone).
    pub tier_cron: String,
    /// Items embedded per model call.
    pub embed_batch: usize,
    /// How hybrid search fuses its two rankings: `rrf` (the default: reciprocal-rank
    /// fusion with `fusion_k`) or `convex` (each score divided by the best of its ranking,
    /// then `(1 − keyword_weight) × vector + keyword_weight × keyword`; it measured worse on
    /// the evaluation, see apps/memory/eval/README.md).
    pub fusion: Fusion,
    /// Reciprocal-rank fusion's constant: smaller trusts each retriever's first ranks more.
    pub fusion_k: f64,
    /// The keyword ranking's weight in the fusion: in `convex`, its share (0 to 1); in
    /// `rrf`, its weight beside the vector ranking's 1.
    pub keyword_weight: f64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            model: "auto".to_owned(),
            models_dir: None,
            index_dir: None,
            // int8 rows: the only storage that met 8,000 queries/s at recall@10 ≥ 0.95 on
            // 50,000 × 384 (crates/prefiq-vector/README.md).
            storage: prefiq_vector::Storage::I8,
            hot_bytes: 64 << 20,
            half_life_days: 30.0,
            priority_weight: 0.25,
            cold_after_days: 90.0,
            tier_cron: "17 3 * * *".into(),
            embed_batch: 64,
            fusion: Fusion::Rrf,
            // Measured on the evaluation with all-minilm-l6-v2: hybrid recall@10 0.758 at
            // k = 60, 0.877 at 10, 0.907 at 5.
            fusion_k: 5.0,
            keyword_weight: 1.0,
        }
    }
}

impl MemoryConfig {
    /// Checks the values; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        if self.half_life_days.is_nan() || self.half_life_days <= 0.0 {
            return Err("memory.half_life_days must be more than 0".into());
        }
        if self.cold_after_days.is_nan() || self.cold_after_days <= 0.0 {
            return Err("memory.cold_after_days must be more than 0".into());
        }
        if !(0.0..=10.0).contains(&self.priority_weight) {
            return Err("memory.priority_weight is between 0 and 10".into());
        }
        if !(1..=512).contains(&self.embed_batch) {
            return Err("memory.embed_batch is between 1 and 512".into());
        }
        if !(1.0..=1000.0).contains(&self.fusion_k) {
            return Err("memory.fusion_k is between 1 and 1000".into());
        }
        if !(0.0..=10.0).contains(&self.keyword_weight) {
            return Err("memory.keyword_weight is between 0 and 10".into());
        }
        if self.hot_bytes > 16 << 30 {
            return Err("memory.hot_bytes is at most 16 GiB".into());
        }
        Ok(())
    }
}
