//! The static model: a token-embedding table, a text's vector the mean of its tokens' rows.
//!
//! The built-in one (`static-minilm-256`) is distilled from all-MiniLM-L6-v2 by
//! `scripts/distill-static-model.py` and compiled into the binary; it is parsed on first
//! use, once per process.

use std::sync::{Arc, OnceLock};

use safetensors::Dtype;
use tokenizers::Tokenizer;

use crate::weights::Weights;
use crate::{EmbedError, Embedder};

/// The built-in model's id, stored with each vector it makes.
pub const STATIC_MINILM_ID: &str = "static-minilm-256";

const BUILTIN_EMBEDDINGS: &[u8] = include_bytes!("../models/static-minilm/embeddings.safetensors");
const BUILTIN_TOKENIZER: &[u8] = include_bytes!("../models/static-minilm/tokenizer.json");

/// The rows, as stored: f16 rows widened to f32 once at load, or int8 rows with one
/// f32 scale each, used as they are.
enum Table {
    F32(Vec<f32>),
    Int8 { rows: Vec<i8>, scales: Vec<f32> },
}

/// A static token-embedding model.
pub struct StaticModel {
    id: String,
    dims: usize,
    table: Table,
    /// Per token id: whether its row takes part (zero rows, i.e. special, unused and
    /// unknown tokens, are skipped rather than averaged in).
    used: Vec<bool>,
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for StaticModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticModel")
            .field("id", &self.id)
            .field("dims", &self.dims)
            .field("vocab", &self.used.len())
            .finish_non_exhaustive()
    }
}

static BUILTIN: OnceLock<Result<Arc<StaticModel>, String>> = OnceLock::new();

impl StaticModel {
    /// The built-in `static-minilm-256`, parsed on first use and shared afterwards.
    pub fn builtin() -> Result<Arc<StaticModel>, EmbedError> {
        BUILTIN
            .get_or_init(|| {
                StaticModel::from_bytes(STATIC_MINILM_ID, BUILTIN_EMBEDDINGS, BUILTIN_TOKENIZER)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|reason| EmbedError::invalid(STATIC_MINILM_ID, reason))
    }

    /// A model from a safetensors file and a tokenizer.json: tensor `embeddings`
    /// `[vocab, dims]` in F16 or F32, or I8 with a tensor `scales` `[vocab]` (F32; a row's
    /// value is its int8 values times its scale). Row `i` belongs to token id `i`.
    pub fn from_bytes(
        id: &str,
        embeddings: &[u8],
        tokenizer_json: &[u8],
    ) -> Result<StaticModel, EmbedError> {
        let weights = Weights::parse(id, embeddings)?;
        let (dtype, shape) = weights.info("embeddings")?;
        let [vocab, dims] = shape[..] else {
            return Err(EmbedError::invalid(
                id,
                format!("tensor embeddings has shape {shape:?}, expected [vocab, dims]"),
            ));
        };
        if vocab == 0 || dims == 0 {
            return Err(EmbedError::invalid(id, "the embedding table is empty"));
        }
        let table = match dtype {
            Dtype::F16 => Table::F32(
                weights
                    .raw("embeddings", Dtype::F16, &shape)?
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
            ),
            Dtype::F32 => Table::F32(weights.f32("embeddings", &shape)?),
            Dtype::I8 => Table::Int8 {
                rows: weights
                    .raw("embeddings", Dtype::I8, &shape)?
                    .iter()
                    .map(|&b| b as i8)
                    .collect(),
                scales: weights.f32("scales", &[vocab])?,
            },
            other => {
                return Err(EmbedError::invalid(
                    id,
                    format!("tensor embeddings is {other:?}; F16, F32 or I8 expected"),
                ));
            }
        };
        let used = (0..vocab)
            .map(|row| match &table {
                Table::F32(values) => values[row * dims..(row + 1) * dims]
                    .iter()
                    .any(|v| *v != 0.0),
                Table::Int8 { rows, scales } => {
                    scales[row] != 0.0 && rows[row * dims..(row + 1) * dims].iter().any(|v| *v != 0)
                }
            })
            .collect();
        let mut tokenizer =
            Tokenizer::from_bytes(tokenizer_json).map_err(|e| EmbedError::tokenizer(id, e))?;
        tokenizer
            .with_truncation(None)
            .map_err(|e| EmbedError::tokenizer(id, e))?;
        tokenizer.with_padding(None);
        if tokenizer.get_vocab_size(true) > vocab {
            return Err(EmbedError::invalid(
                id,
                format!(
                    "the tokenizer has {} tokens, the table only {vocab} rows",
                    tokenizer.get_vocab_size(true)
                ),
            ));
        }
        Ok(StaticModel {
            id: id.to_owned(),
            dims,
            table,
            used,
            tokenizer,
        })
    }

    /// The mean of the rows of `text`'s tokens (special and unknown ones skipped),
    /// L2-normalised; zeros when no token has a row.
    fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut sum = vec![0.0f32; self.dims];
        if text.is_empty() {
            return Ok(sum);
        }
        let encoding = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| EmbedError::tokenizer(&self.id, e))?;
        let dims = self.dims;
        for &id in encoding.get_ids() {
            let id = id as usize;
            if !self.used.get(id).copied().unwrap_or(false) {
                continue;
            }
            match &self.table {
                Table::F32(values) => {
                    for (s, v) in sum.iter_mut().zip(&values[id * dims..(id + 1) * dims]) {
                        *s += v;
                    }
                }
                Table::Int8 { rows, scales } => {
                    let scale = scales[id];
                    for (s, v) in sum.iter_mut().zip(&rows[id * dims..(id + 1) * dims]) {
                        *s += scale * f32::from(*v);
                    }
                }
            }
        }
        // The mean's direction is the sum's: normalising the sum is enough.
        Ok(crate::normalise(sum))
    }
}

impl Embedder for StaticModel {
    fn id(&self) -> &str {
        &self.id
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        texts.iter().map(|text| self.embed_one(text)).collect()
    }
}
