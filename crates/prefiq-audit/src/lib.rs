//! The verifiable audit log's mechanisms: the RFC 9162 Merkle tree with inclusion and
//! consistency proofs ([`merkle`]), Ed25519-signed checkpoints ([`checkpoint`]), the
//! record-by-record verification of a stored log against them ([`verify`]) and archives
//! for cold storage ([`archive`]). Everything here checks a log without the server: a
//! verifier needs records or a proof, and a signed checkpoint. Where records are stored
//! and when checkpoints are made is the business of the crates that write the log.

pub mod archive;
pub mod checkpoint;
pub mod merkle;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use merkle::{Frontier, Hash};
pub use verify::{LogError, TrustedCheckpoint, Verified, Walk};
