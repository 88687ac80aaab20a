//! The verifiable audit log's mechanisms: the RFC 9162 Merkle tree with inclusion and
//! consistency proofs ([`merkle`]) and Ed25519-signed checkpoints ([`checkpoint`]).
//! Everything here checks a log without the server: a verifier needs a record, a proof
//! and a signed checkpoint. Where records are stored and when checkpoints are made is the
//! business of the crates that write the log.

pub mod checkpoint;
pub mod merkle;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use merkle::{Frontier, Hash};
