//! Signed checkpoints: a tree size, its root hash and a time, signed with Ed25519, in the
//! signed-note text form of transparency logs (C2SP `tlog-checkpoint`): the body, a blank
//! line, and one signature line `— {origin} {base64(key_id || signature)}` where the key
//! id is the first four bytes of SHA-256 of `origin || "\n" || 0x01 || public key`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, Verifier as _};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// Why a checkpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Not the text form.
    #[error("the checkpoint is malformed: {0}")]
    Malformed(&'static str),
    /// Signed by another key, or for another log.
    #[error("the checkpoint is signed by another key or for another log")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the checkpoint's signature is invalid")]
    Signature,
}

/// What a checkpoint says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name.
    pub origin: String,
    /// The number of records.
    pub size: u64,
    /// The tree head over them.
    pub root: Hash,
    /// When it was made (Unix milliseconds).
    pub time_ms: i64,
}

impl Checkpoint {
    /// The signed body.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root),
            self.time_ms
        )
    }
}

/// The four bytes that name a key in a signature line.
pub fn key_id(origin: &str, key: &ed25519_dalek::VerifyingKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(origin.as_bytes());
    hasher.update(b"\n\x01");
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Signs `checkpoint`, answering its text form.
pub fn sign(checkpoint: &Checkpoint, key: &ed25519_dalek::SigningKey) -> String {
    let body = checkpoint.body();
    let signature = key.sign(body.as_bytes());
    let mut blob = key_id(&checkpoint.origin, &key.verifying_key()).to_vec();
    blob.extend_from_slice(&signature.to_bytes());
    format!(
        "{body}\n\u{2014} {} {}\n",
        checkpoint.origin,
        STANDARD.encode(blob)
    )
}

/// Longest checkpoint text accepted.
pub const MAX_CHECKPOINT_BYTES: usize = 4096;

/// Reads and checks a signed checkpoint of the log `origin` signed by `key`.
pub fn verify(
    text: &str,
    origin: &str,
    key: &ed25519_dalek::VerifyingKey,
) -> Result<Checkpoint, CheckpointError> {
    if text.len() > MAX_CHECKPOINT_BYTES {
        return Err(CheckpointError::Malformed("too long"));
    }
    let (body, signatures) = text.split_once("\n\n").ok_or(CheckpointError::Malformed(
        "no blank line before the signature",
    ))?;
    let body = format!("{body}\n");
    let mut lines = body.lines();
    let (Some(name), Some(size), Some(root), Some(time), None) = (
        lines.next(),
        lines.next(),
        lines.next(),
        lines.next(),
        lines.next(),
    ) else {
        return Err(CheckpointError::Malformed("the body is four lines"));
    };
    let size: u64 = size
        .parse()
        .map_err(|_| CheckpointError::Malformed("the size is not a number"))?;
    let root: Hash = STANDARD
        .decode(root)
        .ok()
        .and_then(|r| r.try_into().ok())
        .ok_or(CheckpointError::Malformed(
            "the root is not 32 bytes of base64",
        ))?;
    let time_ms: i64 = time
        .parse()
        .map_err(|_| CheckpointError::Malformed("the time is not a number"))?;
    if name != origin {
        return Err(CheckpointError::UnknownKey);
    }
    let wanted = key_id(origin, key);
    for line in signatures.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return Err(CheckpointError::Malformed(
                "a signature line starts with an em dash",
            ));
        };
        let Some((signer, blob)) = rest.split_once(' ') else {
            return Err(CheckpointError::Malformed(
                "a signature line is `— name base64`",
            ));
        };
        let blob = STANDARD
            .decode(blob)
            .map_err(|_| CheckpointError::Malformed("a signature is not base64"))?;
        if signer != origin || blob.len() != 68 || blob[..4] != wanted {
            continue;
        }
        let signature: [u8; 64] = blob[4..]
            .try_into()
            .map_err(|_| CheckpointError::Malformed("a signature is 64 bytes"))?;
        key.verify(
            body.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .map_err(|_| CheckpointError::Signature)?;
        return Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            time_ms,
        });
    }
    Err(CheckpointError::UnknownKey)
}
