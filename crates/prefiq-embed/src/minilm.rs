//! all-MiniLM-L6-v2 in process: the BERT forward pass over the installed model's files.
//!
//! As the model's sentence-transformers configuration says: WordPiece tokens with `[CLS]`
//! and `[SEP]`, at most `max_seq_length` (256) of them, the transformer, mean pooling over
//! the real tokens, L2 normalisation. Texts go through in batches of [`BATCH`], sorted by
//! length so that little is padded; the output keeps the input order.

use std::path::Path;

use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::{Bert, BertConfig, mean_pool_normalised};
use crate::{EmbedError, Embedder};

/// The installed model's id and directory name.
pub const MINILM_ID: &str = "all-minilm-l6-v2";

/// Texts per forward pass.
pub const BATCH: usize = 32;

/// sentence-transformers' `max_seq_length` when `sentence_bert_config.json` is absent.
const DEFAULT_MAX_SEQ_LENGTH: usize = 256;

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

/// A BERT sentence-embedding model (all-MiniLM-L6-v2) run by this crate's forward pass.
pub struct MiniLm {
    id: String,
    bert: Bert,
    tokenizer: Tokenizer,
    max_seq_length: usize,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm")
            .field("id", &self.id)
            .field("dims", &self.bert.hidden_size())
            .field("max_seq_length", &self.max_seq_length)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path).map_err(|e| EmbedError::io(path, e))
}

impl MiniLm {
    /// Loads a model directory as `install_wheel` leaves it: `config.json`,
    /// `model.safetensors` (f32), `tokenizer.json` and, optionally,
    /// `sentence_bert_config.json` (its `max_seq_length`).
    pub fn load(dir: &Path) -> Result<MiniLm, EmbedError> {
        let id = dir.file_name().map_or_else(
            || MINILM_ID.to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let max_seq_length = match std::fs::read(dir.join("sentence_bert_config.json")) {
            Ok(bytes) => {
                serde_json::from_slice::<SentenceBertConfig>(&bytes)
                    .map_err(|e| {
                        EmbedError::invalid(&id, format!("sentence_bert_config.json: {e}"))
                    })?
                    .max_seq_length
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DEFAULT_MAX_SEQ_LENGTH,
            Err(e) => return Err(EmbedError::io(dir.join("sentence_bert_config.json"), e)),
        };
        MiniLm::from_bytes(
            &id,
            &read(&dir.join("config.json"))?,
            &read(&dir.join("model.safetensors"))?,
            &read(&dir.join("tokenizer.json"))?,
            max_seq_length,
        )
    }

    /// A model from the bytes of its `config.json`, `model.safetensors` and
    /// `tokenizer.json`; texts are truncated to `max_seq_length` tokens.
    pub fn from_bytes(
        id: &str,
        config_json: &[u8],
        safetensors: &[u8],
        tokenizer_json: &[u8],
        max_seq_length: usize,
    ) -> Result<MiniLm, EmbedError> {
        let config: BertConfig = serde_json::from_slice(config_json)
            .map_err(|e| EmbedError::invalid(id, format!("config.json: {e}")))?;
        let bert = Bert::load(id, config, safetensors)?;
        if max_seq_length < 3 || max_seq_length > bert.max_positions() {
            return Err(EmbedError::invalid(
                id,
                format!(
                    "max_seq_length {max_seq_length} is not within 3..={}",
                    bert.max_positions()
                ),
            ));
        }
        let mut tokenizer =
            Tokenizer::from_bytes(tokenizer_json).map_err(|e| EmbedError::tokenizer(id, e))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| EmbedError::tokenizer(id, e))?;
        tokenizer.with_padding(None);
        Ok(MiniLm {
            id: id.to_owned(),
            bert,
            tokenizer,
            max_seq_length,
        })
    }

    /// The token ids of `text` as the model sees them (with `[CLS]`/`[SEP]`, truncated),
    /// or `None` when the text has no token besides those two.
    fn ids(&self, text: &str) -> Result<Option<Vec<u32>>, EmbedError> {
        let encoding = self
            .tokenizer
            .encode_fast(text, true)
            .map_err(|e| EmbedError::tokenizer(&self.id, e))?;
        if encoding.get_special_tokens_mask().iter().all(|&s| s != 0) {
            return Ok(None);
        }
        let vocab = self.bert.vocab_size();
        if let Some(bad) = encoding.get_ids().iter().find(|&&i| i as usize >= vocab) {
            return Err(EmbedError::invalid(
                &self.id,
                format!("the tokenizer gave id {bad}, beyond the model's {vocab} tokens"),
            ));
        }
        Ok(Some(encoding.get_ids().to_vec()))
    }

    /// One forward pass over texts already tokenized; their vectors in the same order.
    fn run_batch(&self, batch: &[&Vec<u32>]) -> Vec<Vec<f32>> {
        let seq = batch.iter().map(|ids| ids.len()).max().unwrap_or(0);
        let mut ids = vec![0u32; batch.len() * seq];
        let mut lens = Vec::with_capacity(batch.len());
        for (row, text) in batch.iter().enumerate() {
            ids[row * seq..row * seq + text.len()].copy_from_slice(text);
            lens.push(text.len());
        }
        let hidden = self.bert.forward(&ids, seq, &lens);
        mean_pool_normalised(&hidden, seq, &lens)
    }
}

/// Consecutive runs of texts sorted by length, at most [`BATCH`] each, a run ending
/// where the next text is much longer than its first (it would pad the rest to its length).
fn batches(sorted: &[(usize, Vec<u32>)]) -> impl Iterator<Item = &[(usize, Vec<u32>)]> {
    let mut rest = sorted;
    std::iter::from_fn(move || {
        let first = rest.first()?.1.len();
        let limit = first + first / 4 + 8;
        let end = rest
            .iter()
            .take(BATCH)
            .position(|(_, ids)| ids.len() > limit)
            .unwrap_or(rest.len().min(BATCH));
        let (batch, tail) = rest.split_at(end.max(1));
        rest = tail;
        Some(batch)
    })
}

impl Embedder for MiniLm {
    fn id(&self) -> &str {
        &self.id
    }

    fn dims(&self) -> usize {
        self.bert.hidden_size()
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = vec![Vec::new(); texts.len()];
        let mut tokenized = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            match self.ids(text)? {
                Some(ids) => tokenized.push((index, ids)),
                None => out[index] = vec![0.0; self.dims()],
            }
        }
        tokenized.sort_by_key(|(_, ids)| ids.len());
        for chunk in batches(&tokenized) {
            let batch: Vec<&Vec<u32>> = chunk.iter().map(|(_, ids)| ids).collect();
            for ((index, _), vector) in chunk.iter().zip(self.run_batch(&batch)) {
                out[*index] = vector;
            }
        }
        Ok(out)
    }
}
