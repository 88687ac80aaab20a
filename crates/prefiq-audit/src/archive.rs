//! Archives of a log for cold storage, checked offline. An archive is text: for each log,
//!
//! ```text
//! codexion-audit-archive 1 {origin} {records}
//! {record 1}
//! …
//! {record n}
//! {signed checkpoint of size n, in its text form, ending with a blank line}
//! ```
//!
//! Records are the log's own lines (canonical JSON, one per line), so the archive needs
//! nothing but the verifying key to be checked: the records must give the signed root.

use crate::checkpoint::{self, Checkpoint};
use crate::merkle::Frontier;
use crate::verify::{LogError, TrustedCheckpoint, Walk};

/// The first word of a section's header.
pub const MAGIC: &str = "codexion-audit-archive 1";

/// Writes one log's section: `records` are the lines of seq 1 to n, `checkpoint` the
/// signed text of size n.
pub fn write_section(
    out: &mut impl std::io::Write,
    origin: &str,
    records: &[String],
    checkpoint: &str,
) -> std::io::Result<()> {
    writeln!(out, "{MAGIC} {origin} {}", records.len())?;
    for record in records {
        writeln!(out, "{record}")?;
    }
    write!(out, "{checkpoint}")?;
    if !checkpoint.ends_with("\n\n") {
        writeln!(out)?;
    }
    Ok(())
}

/// Why an archive does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Not an archive, or cut short.
    #[error("line {line}: {message}")]
    Malformed {
        /// The line (from 1).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint's signature does not verify with the key.
    #[error("the checkpoint of {origin} does not verify: {error}")]
    Checkpoint {
        /// The log.
        origin: String,
        /// Why.
        error: checkpoint::CheckpointError,
    },
    /// The records do not give the signed tree.
    #[error("{origin}: {error}")]
    Log {
        /// The log.
        origin: String,
        /// The first problem.
        error: LogError,
    },
}

/// One checked section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The log's origin.
    pub origin: String,
    /// The checkpoint that covers it.
    pub checkpoint: Checkpoint,
}

/// Checks every section of `text` against `key`: each log's records must give the root its
/// checkpoint signs. The tenant a record names must be the last part of the origin.
pub fn verify(text: &str, key: &ed25519_dalek::VerifyingKey) -> Result<Vec<Section>, ArchiveError> {
    let lines: Vec<&str> = text.split('\n').collect();
    let malformed = |line: usize, message: &str| ArchiveError::Malformed {
        line: line + 1,
        message: message.to_owned(),
    };
    let mut sections = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].is_empty() {
            i += 1;
            continue;
        }
        let header = lines[i]
            .strip_prefix(MAGIC)
            .and_then(|h| h.strip_prefix(' '))
            .ok_or_else(|| malformed(i, "expected a section header"))?;
        let (origin, count) = header
            .rsplit_once(' ')
            .ok_or_else(|| malformed(i, "the header is `magic origin count`"))?;
        let count: usize = count
            .parse()
            .map_err(|_| malformed(i, "the record count is not a number"))?;
        let tenant = origin.rsplit('/').next().unwrap_or(origin);
        if i + count >= lines.len() {
            return Err(malformed(lines.len(), "the archive ends inside a section"));
        }
        // The checkpoint: the lines after the records up to and including its signature.
        let start = i + 1 + count;
        let Some(end) = (start..lines.len()).find(|&j| lines[j].starts_with('\u{2014}')) else {
            return Err(malformed(start, "no signed checkpoint after the records"));
        };
        let note = format!("{}\n", lines[start..=end].join("\n"));
        let checkpoint =
            checkpoint::verify(&note, origin, key).map_err(|error| ArchiveError::Checkpoint {
                origin: origin.to_owned(),
                error,
            })?;
        let log_error = |error| ArchiveError::Log {
            origin: origin.to_owned(),
            error,
        };
        let mut walk = Walk::new(
            tenant,
            Frontier::new(),
            vec![TrustedCheckpoint {
                checkpoint: checkpoint.clone(),
                leaves: Vec::new(),
            }],
        )
        .map_err(log_error)?;
        for (n, record) in lines[i + 1..start].iter().enumerate() {
            walk.push(n as u64 + 1, record.as_bytes())
                .map_err(log_error)?;
        }
        let verified = walk.finish().map_err(log_error)?;
        if verified.size != checkpoint.size {
            return Err(log_error(LogError::ChangedWithin {
                first: checkpoint.size.min(verified.size) + 1,
                last: checkpoint.size.max(verified.size),
            }));
        }
        sections.push(Section {
            origin: origin.to_owned(),
            checkpoint,
        });
        i = end + 1;
    }
    if sections.is_empty() {
        return Err(malformed(0, "no section"));
    }
    Ok(sections)
}
