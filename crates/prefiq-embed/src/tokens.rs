//! Token counting for context packing: OpenAI's BPE encodings (tiktoken-rs, the BPE
//! files compiled in) or any installed model's `tokenizer.json`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use tiktoken_rs::CoreBPE;
use tokenizers::Tokenizer;

use crate::EmbedError;

/// Counts the tokens a text takes in some model's vocabulary.
pub trait TokenCounter: Send + Sync {
    /// The tokenizer's name, e.g. `cl100k_base`.
    fn name(&self) -> &str;
    /// How many tokens `text` is (no special tokens added; special-token text such as
    /// `<|endoftext|>` counts as ordinary text).
    fn count(&self, text: &str) -> usize;
}

/// The tiktoken encodings compiled in.
pub const TIKTOKEN_ENCODINGS: [&str; 2] = ["cl100k_base", "o200k_base"];

struct Tiktoken {
    name: &'static str,
    bpe: CoreBPE,
}

/// Text longer than this is counted piece by piece, which bounds the regex engine's
/// work on pathological input. Pieces are cut before a space that follows a
/// non-space and precedes a letter, where both encodings' patterns start a new token
/// anyway, so the count is exact; text without such a place within a piece is cut at
/// other whitespace or anywhere, which can add one token per cut.
const TIKTOKEN_PIECE_BYTES: usize = 1 << 16;

impl TokenCounter for Tiktoken {
    fn name(&self) -> &str {
        self.name
    }

    fn count(&self, text: &str) -> usize {
        split_at_whitespace(text, TIKTOKEN_PIECE_BYTES)
            .map(|piece| self.count_piece(piece))
            .sum()
    }
}

impl Tiktoken {
    fn count_piece(&self, piece: &str) -> usize {
        // tiktoken-rs unwraps the regex engine's result, which fails (a panic) when
        // fancy-regex gives up backtracking; such a piece is then counted in halves.
        let bpe = &self.bpe;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            bpe.encode_ordinary(piece).len()
        })) {
            Ok(n) => n,
            Err(_) if piece.len() > 64 => {
                let mut middle = piece.len() / 2;
                while !piece.is_char_boundary(middle) {
                    middle -= 1;
                }
                self.count_piece(&piece[..middle]) + self.count_piece(&piece[middle..])
            }
            Err(_) => piece.len(),
        }
    }
}

/// Pieces of at most `max` bytes (see [`TIKTOKEN_PIECE_BYTES`] for where they are cut).
fn split_at_whitespace(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if rest.len() <= max {
            return Some(std::mem::take(&mut rest));
        }
        let mut end = max;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let window = &rest[..end];
        let word_start = window.match_indices(' ').rev().map(|(i, _)| i).find(|&i| {
            i > 0
                && !window[..i].ends_with(char::is_whitespace)
                && rest[i + 1..].starts_with(char::is_alphabetic)
        });
        let cut = word_start
            .or_else(|| window.rfind(char::is_whitespace).filter(|&i| i > 0))
            .unwrap_or(end.max(1));
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

/// A Hugging Face `tokenizer.json`.
struct HfCounter {
    name: String,
    tokenizer: Tokenizer,
}

impl TokenCounter for HfCounter {
    fn name(&self) -> &str {
        &self.name
    }

    fn count(&self, text: &str) -> usize {
        self.tokenizer
            .encode_fast(text, false)
            .map_or(0, |encoding| encoding.len())
    }
}

type Cached = OnceLock<Result<Arc<Tiktoken>, String>>;
static CL100K: Cached = OnceLock::new();
static O200K: Cached = OnceLock::new();

fn tiktoken(name: &'static str) -> Result<Arc<dyn TokenCounter>, EmbedError> {
    let cell = if name == "cl100k_base" {
        &CL100K
    } else {
        &O200K
    };
    let counter = cell
        .get_or_init(|| {
            let bpe = if name == "cl100k_base" {
                tiktoken_rs::cl100k_base()
            } else {
                tiktoken_rs::o200k_base()
            };
            bpe.map(|bpe| Arc::new(Tiktoken { name, bpe }))
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|reason| EmbedError::tokenizer(name, reason))?;
    Ok(counter)
}

/// The counter called `name`: `cl100k_base` or `o200k_base` (built on first use, then
/// shared by the whole process), or else the `tokenizer.json` of the installed model
/// `models_dir/name/`.
pub fn token_counter(name: &str, models_dir: &Path) -> Result<Arc<dyn TokenCounter>, EmbedError> {
    if let Some(&known) = TIKTOKEN_ENCODINGS.iter().find(|n| **n == name) {
        return tiktoken(known);
    }
    let unknown = || EmbedError::UnknownTokenizer {
        name: name.to_owned(),
        available: tokenizers_available(models_dir),
    };
    if !is_plain_name(name) {
        return Err(unknown());
    }
    let path = models_dir.join(name).join("tokenizer.json");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(unknown()),
        Err(e) => return Err(EmbedError::io(path, e)),
    };
    let mut tokenizer =
        Tokenizer::from_bytes(&bytes).map_err(|e| EmbedError::tokenizer(name, e))?;
    tokenizer
        .with_truncation(None)
        .map_err(|e| EmbedError::tokenizer(name, e))?;
    tokenizer.with_padding(None);
    Ok(Arc::new(HfCounter {
        name: name.to_owned(),
        tokenizer,
    }))
}

/// A directory name without separators or dots: no way out of the models directory.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The names `token_counter` accepts: the tiktoken encodings, then each directory of
/// `models_dir` with a `tokenizer.json`, sorted.
pub fn tokenizers_available(models_dir: &Path) -> Vec<String> {
    let mut installed: Vec<String> = std::fs::read_dir(models_dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| {
            is_plain_name(name) && models_dir.join(name).join("tokenizer.json").is_file()
        })
        .collect();
    installed.sort();
    TIKTOKEN_ENCODINGS
        .iter()
        .map(|n| (*n).to_owned())
        .chain(installed)
        .collect()
}
