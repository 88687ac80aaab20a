//! Outgoing mail: a [`Mailer`] that modules bind or use. The development backend,
//! [`FileMailer`], appends each message to a file instead of sending it, so a developer (or
//! a test) reads the password-reset link there.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::{ErrorKind, KernelError, async_trait};

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

/// Longest body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Sends mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `mail`, or says why it could not.
    async fn send(&self, mail: Mail) -> Result<(), KernelError>;
}

/// Writes every message as one JSON line to a file (development and tests).
#[derive(Debug, Clone)]
pub struct FileMailer {
    path: PathBuf,
    lock: std::sync::Arc<std::sync::Mutex<()>>,
}

impl FileMailer {
    /// A mailer appending to `path` (its directory is made on first use).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileMailer {
            path: path.into(),
            lock: std::sync::Arc::default(),
        }
    }

    /// The file messages go to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every message written so far, oldest first.
    pub fn read_all(path: &Path) -> Result<Vec<Mail>, KernelError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(path, &e)),
        };
        text.lines()
            .map(|line| {
                serde_json::from_str(line).map_err(|e| {
                    KernelError::service(ErrorKind::Internal, format!("{}: {e}", path.display()))
                })
            })
            .collect()
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> KernelError {
    KernelError::service(ErrorKind::Unavailable, format!("{}: {e}", path.display()))
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, mail: Mail) -> Result<(), KernelError> {
        if mail.body.len() > MAX_BODY_BYTES || mail.to.contains(['\r', '\n']) {
            return Err(KernelError::service(
                ErrorKind::Invalid,
                "a mail body is at most 64 KiB and an address is one line",
            ));
        }
        let line = serde_json::to_string(&mail)
            .map_err(|e| KernelError::service(ErrorKind::Internal, e.to_string()))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _guard = this.lock.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(dir) = this.path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&this.path)
                .map_err(|e| io_error(&this.path, &e))?;
            file.write_all(format!("{line}\n").as_bytes())
                .map_err(|e| io_error(&this.path, &e))
        })
        .await
        .map_err(|e| KernelError::service(ErrorKind::Internal, e.to_string()))?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_are_appended_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = FileMailer::new(dir.path().join("mail/outbox.jsonl"));
        for n in 0..3 {
            mailer
                .send(Mail {
                    to: format!("u{n}@acme.test"),
                    subject: "s".into(),
                    body: "line one\nline two".into(),
                })
                .await
                .unwrap();
        }
        let all = FileMailer::read_all(mailer.path()).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].to, "u2@acme.test");
        assert_eq!(all[0].body, "line one\nline two");
        let refused = mailer
            .send(Mail {
                to: "a@b.test\r\nBcc: x@y.test".into(),
                subject: "s".into(),
                body: String::new(),
            })
            .await;
        assert!(refused.is_err());
        assert_eq!(FileMailer::read_all(mailer.path()).unwrap().len(), 3);
    }
}
