//! Verification of a stored log against its signed checkpoints, record by record, as a
//! walk that the caller feeds in sequence order (so a million records never sit in
//! memory), and the offline checks of proofs a server hands out.
//!
//! A record is one line of canonical JSON that begins `{"seq":N,"tenant":"T",`; its leaf
//! is `SHA-256(0x00 || line)`. The walk finds, and names:
//! - a missing record (a gap in the sequence) and a truncated tail (a checkpoint larger
//!   than what is stored);
//! - a record stored under a sequence number or tenant it does not name (swapped,
//!   duplicated or moved);
//! - a changed record: the tree of the records up to a checkpoint must give its signed
//!   root. Each checkpoint also keeps the leaves it covers; when those give the signed root
//!   they are authentic, and the first stored record whose leaf differs is named exactly.
//!   When they were rewritten too, the first record after the last checkpoint that still
//!   holds is named, with the range the failing checkpoint covers.

use crate::checkpoint::Checkpoint;
use crate::merkle::{self, Frontier, Hash};

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// The bytes of lower- or upper-case hex; `None` when it is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A 32-byte hash from hex.
pub fn unhex_hash(text: &str) -> Option<Hash> {
    unhex(text)?.try_into().ok()
}

/// The prefix every record of `tenant` at `seq` starts with.
pub fn record_prefix(seq: u64, tenant: &str) -> String {
    format!("{{\"seq\":{seq},\"tenant\":{},", serde_json_string(tenant))
}

/// A JSON string literal (tenant names are `[a-z0-9-]`, but be exact anyway).
fn serde_json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What is wrong with a log: the first problem found, naming the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A sequence number has no record.
    #[error("record {seq} is missing (the next stored record is {found})")]
    Missing {
        /// The missing record.
        seq: u64,
        /// The record stored next.
        found: u64,
    },
    /// The records end before a signed checkpoint does.
    #[error(
        "the log was truncated: {stored} records are stored, but a signed checkpoint covers {size}; record {} is the first missing",
        .stored + 1
    )]
    Truncated {
        /// Records stored.
        stored: u64,
        /// The size a checkpoint signs.
        size: u64,
    },
    /// A record does not name the position it is stored at.
    #[error("record {seq} does not belong where it is stored: {reason}")]
    Misplaced {
        /// The position.
        seq: u64,
        /// What it names instead.
        reason: String,
    },
    /// A record's content changed since a checkpoint signed it.
    #[error(
        "record {seq} was changed: it does not match the signed checkpoint of size {checkpoint}"
    )]
    Changed {
        /// The record.
        seq: u64,
        /// The checkpoint it fails.
        checkpoint: u64,
    },
    /// Records changed, and the leaves kept with the checkpoint were rewritten too, so
    /// only the range is known.
    #[error(
        "record {first} or one after it up to {last} was changed or rehashed: records {first} to {last} do not give the root that the checkpoint of size {last} signs, and no leaves kept with it name one"
    )]
    ChangedWithin {
        /// The first record not covered by a checkpoint that holds.
        first: u64,
        /// The failing checkpoint's size.
        last: u64,
    },
    /// Two signed checkpoints of the same size disagree (a forked log).
    #[error("two signed checkpoints of size {size} have different roots: the log was forked")]
    Forked {
        /// The size.
        size: u64,
    },
}

/// A checkpoint whose signature was checked, with the leaves it covers as stored.
#[derive(Debug, Clone)]
pub struct TrustedCheckpoint {
    /// What the signature says.
    pub checkpoint: Checkpoint,
    /// The leaves from the previous stored checkpoint to this one (may be empty when not
    /// kept, as for a checkpoint held outside the server).
    pub leaves: Vec<Hash>,
}

/// The walk over a log's records in sequence order.
pub struct Walk {
    tenant: String,
    frontier: Frontier,
    /// Sorted by size, deduplicated; the ones still ahead.
    checkpoints: std::collections::VecDeque<TrustedCheckpoint>,
    /// Leaves since the last checkpoint that held, for exact naming.
    since: Vec<Hash>,
    /// The tree as it was at the last checkpoint that held.
    good: Frontier,
    /// How many checkpoints were checked.
    checked: u64,
}

impl Walk {
    /// A walk from `start` (a frontier already verified, or empty), checking against
    /// `checkpoints` (signatures already checked).
    pub fn new(
        tenant: &str,
        start: Frontier,
        checkpoints: Vec<TrustedCheckpoint>,
    ) -> Result<Self, LogError> {
        let mut sorted = checkpoints;
        sorted.sort_by_key(|c| c.checkpoint.size);
        let mut ahead: std::collections::VecDeque<TrustedCheckpoint> =
            std::collections::VecDeque::new();
        for c in sorted {
            if c.checkpoint.size <= start.size() {
                continue;
            }
            match ahead.back_mut() {
                Some(last) if last.checkpoint.size == c.checkpoint.size => {
                    if last.checkpoint.root != c.checkpoint.root {
                        return Err(LogError::Forked {
                            size: c.checkpoint.size,
                        });
                    }
                    if last.leaves.is_empty() {
                        last.leaves = c.leaves;
                    }
                }
                _ => ahead.push_back(c),
            }
        }
        Ok(Walk {
            tenant: tenant.to_owned(),
            good: start.clone(),
            frontier: start,
            checkpoints: ahead,
            since: Vec::new(),
            checked: 0,
        })
    }

    /// The next stored record: its sequence number as stored and its bytes (which need
    /// not be valid UTF-8 when someone changed them).
    pub fn push(&mut self, seq: u64, entry: &[u8]) -> Result<(), LogError> {
        let expected = self.frontier.size() + 1;
        if seq != expected {
            return Err(if seq > expected {
                LogError::Missing {
                    seq: expected,
                    found: seq,
                }
            } else {
                LogError::Misplaced {
                    seq,
                    reason: "its sequence number is stored twice".into(),
                }
            });
        }
        if !entry.starts_with(record_prefix(seq, &self.tenant).as_bytes()) {
            let named: String = String::from_utf8_lossy(entry).chars().take(48).collect();
            return Err(LogError::Misplaced {
                seq,
                reason: format!("it begins `{named}`"),
            });
        }
        let leaf = merkle::leaf_hash(entry);
        self.frontier.push(leaf);
        self.since.push(leaf);
        while let Some(next) = self.checkpoints.front() {
            if next.checkpoint.size != self.frontier.size() {
                break;
            }
            let Some(next) = self.checkpoints.pop_front() else {
                break;
            };
            self.check(next)?;
        }
        Ok(())
    }

    fn check(&mut self, checkpoint: TrustedCheckpoint) -> Result<(), LogError> {
        self.checked += 1;
        let size = checkpoint.checkpoint.size;
        if self.frontier.root() == checkpoint.checkpoint.root {
            self.good = self.frontier.clone();
            self.since.clear();
            return Ok(());
        }
        // Are the leaves kept with the checkpoint authentic? They are when the tree of
        // the prefix that held, extended by them, gives the signed root.
        let first = self.good.size() + 1;
        if checkpoint.leaves.len() as u64 == size - self.good.size() {
            let mut kept = self.good.clone();
            for leaf in &checkpoint.leaves {
                kept.push(*leaf);
            }
            if kept.root() == checkpoint.checkpoint.root
                && let Some(offset) = self
                    .since
                    .iter()
                    .zip(&checkpoint.leaves)
                    .position(|(stored, kept)| stored != kept)
            {
                return Err(LogError::Changed {
                    seq: first + offset as u64,
                    checkpoint: size,
                });
            }
        }
        Err(LogError::ChangedWithin { first, last: size })
    }

    /// Ends the walk: a checkpoint beyond the stored records means a truncated log.
    pub fn finish(self) -> Result<Verified, LogError> {
        if let Some(next) = self.checkpoints.front() {
            return Err(LogError::Truncated {
                stored: self.frontier.size(),
                size: next.checkpoint.size,
            });
        }
        Ok(Verified {
            size: self.frontier.size(),
            root: self.frontier.root(),
            covered: self.good.size(),
            checkpoints: self.checked,
            covered_frontier: self.good,
            frontier: self.frontier,
        })
    }
}

/// What a successful walk found.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Records walked (including the starting frontier).
    pub size: u64,
    /// The tree head over them.
    pub root: Hash,
    /// The size of the last signed checkpoint that covers them.
    pub covered: u64,
    /// Checkpoints checked in this walk.
    pub checkpoints: u64,
    /// The frontier at the end.
    pub frontier: Frontier,
    /// The frontier at the last signed checkpoint that held: where a later walk may
    /// start from.
    pub covered_frontier: Frontier,
}

/// Checks an inclusion proof offline: `entry` is record `seq` of the log that `checkpoint`
/// signs (its signature already checked).
pub fn check_inclusion(checkpoint: &Checkpoint, seq: u64, entry: &str, proof: &[Hash]) -> bool {
    seq >= 1
        && merkle::verify_inclusion(
            &merkle::leaf_hash(entry.as_bytes()),
            seq - 1,
            checkpoint.size,
            proof,
            &checkpoint.root,
        )
}

/// Checks a consistency proof offline: the log that `old` signs is a prefix of the one
/// `new` signs (signatures already checked).
pub fn check_consistency(old: &Checkpoint, new: &Checkpoint, proof: &[Hash]) -> bool {
    old.origin == new.origin
        && merkle::verify_consistency(old.size, new.size, &old.root, &new.root, proof)
}
