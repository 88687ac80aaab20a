//! Codexion's vector index: approximate nearest neighbours by cosine similarity, one index
//! per tenant, for the memory app.
//!
//! [`VectorIndex`] wraps [usearch](https://github.com/unum-cloud/USearch)'s HNSW graph (C++,
//! built from the crate with the system compiler; chosen by measurement, see `README.md`
//! and `benches/ann.rs`) and files off its sharp edges:
//!
//! - capacity grows on its own (usearch must have room reserved before an insertion);
//! - [`VectorIndex::upsert`] replaces a key's vector (usearch refuses a duplicate key);
//! - every method takes `&self`: searches run concurrently, each in one of a fixed number
//!   of usearch thread contexts (a search waits for a free one rather than failing), while
//!   an insertion or removal has the index to itself;
//! - vectors are normalised on the way in, a zero or non-finite vector or one of the wrong
//!   dimension is an error, never a panic, and key `u64::MAX` (usearch's free-slot marker) is
//!   refused;
//! - filtered search scans the allowed keys exactly when few pass the filter (the graph
//!   alone loses recall and speed there) and asks the graph for a wider search otherwise;
//! - `i8` storage quantises each vector over its own range (usearch's cast scales to the
//!   unit ball, which leaves a normalised 384-dimensional vector about 3 bits);
//! - [`VectorIndex::save`] writes a checksummed file with a header the caller can match
//!   against its database (`stamp`), atomically, and [`VectorIndex::load`] refuses a file it
//!   did not write, a truncated or corrupt one, or one of other options.
//!
//! [`synthetic`] draws sentence-embedding-like vectors for benchmarks and tests.

mod index;
mod persist;
pub mod synthetic;

pub use index::{VectorIndex, quantise_i8};
pub use persist::FORMAT_VERSION;

/// How the index stores vectors: full precision, half precision, or 8-bit integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// 32-bit floats: 4 bytes a dimension.
    F32,
    /// 16-bit floats: 2 bytes a dimension, recall as with `F32` on normalised vectors.
    F16,
    /// 8-bit integers scaled to each vector's range: 1 byte a dimension.
    I8,
}

/// The shape and tuning of an index.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// Dimensions of every vector.
    pub dims: usize,
    /// How vectors are stored.
    pub storage: Storage,
    /// Graph degree (HNSW's `M`): links per node on the upper levels, twice that at the
    /// bottom. More is better recall and more memory.
    pub connectivity: usize,
    /// Candidates considered when inserting (HNSW's `ef_construction`).
    pub expansion_add: usize,
    /// Candidates considered when searching (HNSW's `ef_search`): recall against speed.
    pub expansion_search: usize,
}

impl IndexOptions {
    /// Defaults measured on 50,000 × 384 sentence-embedding-like vectors, one thread
    /// (README.md): `I8` storage, connectivity 16, expansion 128 on insertion and 40 on
    /// search — recall@10 about 0.97 at about 10,000 queries/s and 29 MB. `F32` at the
    /// same settings keeps recall but halves the rate (memory-bound: 1,536 bytes a vector
    /// against 384); `F16` is in between.
    pub fn new(dims: usize) -> Self {
        Self {
            dims,
            storage: Storage::I8,
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 40,
        }
    }

    /// Checks the options are usable.
    pub(crate) fn validate(&self) -> Result<(), IndexError> {
        let bad = |what: &str| Err(IndexError::InvalidOptions(what.to_owned()));
        if self.dims == 0 || self.dims > MAX_DIMS {
            return bad(&format!("dims must be 1..={MAX_DIMS}, not {}", self.dims));
        }
        if !(2..=MAX_CONNECTIVITY).contains(&self.connectivity) {
            return bad(&format!(
                "connectivity must be 2..={MAX_CONNECTIVITY}, not {}",
                self.connectivity
            ));
        }
        if !(1..=MAX_EXPANSION).contains(&self.expansion_add)
            || !(1..=MAX_EXPANSION).contains(&self.expansion_search)
        {
            return bad(&format!("expansions must be 1..={MAX_EXPANSION}"));
        }
        Ok(())
    }
}

/// The most dimensions an index takes.
pub const MAX_DIMS: usize = 65_536;
const MAX_CONNECTIVITY: usize = 256;
const MAX_EXPANSION: usize = 65_536;

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The key the vector was stored under.
    pub key: u64,
    /// Cosine similarity to the query, in `[-1, 1]`: higher is closer.
    pub similarity: f32,
}

/// How [`VectorIndex::search_filtered_using`] finds the allowed nearest keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterStrategy {
    /// Exact scan when few keys pass, the graph otherwise (what `search_filtered` does).
    Auto,
    /// The HNSW graph with the filter applied during the walk.
    Graph,
    /// An exact scan of the keys that pass.
    Exact,
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// A vector or query of the wrong length.
    #[error("vector has {actual} dimensions, the index {expected}")]
    DimensionMismatch {
        /// The index's dimensions.
        expected: usize,
        /// The vector's length.
        actual: usize,
    },
    /// A vector with a NaN or infinite component, or all zeros (it has no direction).
    #[error("invalid vector: {0}")]
    InvalidVector(&'static str),
    /// `u64::MAX` marks free slots inside the index and cannot be a key.
    #[error("key {0} is reserved")]
    ReservedKey(u64),
    /// Options out of range.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A file that is not a readable index: wrong magic, truncated, checksum mismatch.
    #[error("corrupt index file: {0}")]
    Corrupt(String),
    /// A file written by another format version.
    #[error("index file format version {found}, this build reads {expected}")]
    UnsupportedVersion {
        /// The file's version.
        found: u32,
        /// The version this build writes and reads.
        expected: u32,
    },
    /// A well-formed file for another shape of index (dims, storage or connectivity).
    #[error("index file does not match the options: {0}")]
    Incompatible(String),
    /// Reading or writing the file.
    #[error("index file: {0}")]
    Io(#[from] std::io::Error),
    /// An error reported by usearch (out of memory, for one).
    #[error("usearch: {0}")]
    Native(String),
}

/// Maps a usearch exception.
pub(crate) fn usearch_error(e: impl std::fmt::Display) -> IndexError {
    IndexError::Native(e.to_string())
}
