//! Secret key files: a 32-byte seed kept as 64 hex characters. Outside production a
//! missing file is made on first use, so a development installation needs no set-up; in
//! production its absence is an error, so a server never signs with a key nobody keeps.
//!
//! A made file is readable by its owner only (mode 0600) from the moment it exists: it is
//! written under a temporary name created with that mode, then linked into place, so there
//! is no window in which another user could read it and no half-written key is ever seen.
//! Reading a key file whose mode lets its group or others read it logs a warning naming
//! the file and its mode.

use std::io::Write as _;
use std::path::Path;

/// Reads the seed in `path`, or (when `env` is not `production` and the file does not
/// exist) writes a new one from `make`. The error is one sentence naming the file.
pub fn read_or_make_seed(
    path: &Path,
    env: &str,
    make: impl FnOnce() -> [u8; 32],
) -> Result<[u8; 32], String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            if let Some(warning) = loose_permissions(path) {
                tracing::warn!(target: "prefiq::secret", path = %path.display(), mode = %warning.mode, "{}", warning.message);
            }
            decode(text.trim()).ok_or_else(|| {
                format!(
                    "{} must hold 64 hex characters (an Ed25519 seed)",
                    path.display()
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && env != "production" => {
            let seed = make();
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            let text: String = seed.iter().map(|b| format!("{b:02x}")).collect();
            match write_private(path, &(text + "\n")) {
                Ok(()) => {
                    tracing::warn!(target: "prefiq::secret", path = %path.display(), "generated a signing key for development");
                    Ok(seed)
                }
                // Another process made the key between our read and our link: use its.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    decode(text.trim()).ok_or_else(|| {
                        format!(
                            "{} must hold 64 hex characters (an Ed25519 seed)",
                            path.display()
                        )
                    })
                }
                Err(e) => Err(format!("{}: {e}", path.display())),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "{} does not exist; in production the signing key must be provided",
            path.display()
        )),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// A key file's mode that lets others than its owner read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoosePermissions {
    /// The permission bits, in octal (`644`).
    pub mode: String,
    /// The sentence to log.
    pub message: String,
}

/// Whether the file at `path` may be read by its group or by others, and if so its mode.
/// `None` when it may not, when the file cannot be inspected, or off Unix.
pub fn loose_permissions(path: &Path) -> Option<LoosePermissions> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| LoosePermissions {
            mode: format!("{mode:o}"),
            message: format!(
                "the key file {} has mode {mode:o}: its group or others may read it; make it 600 (chmod 600)",
                path.display()
            ),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Writes `text` to a new file at `path`, readable by its owner only, atomically: the
/// content goes to a temporary file created with mode 0600 beside it, which is then
/// hard-linked to `path`. Fails with `AlreadyExists` when `path` exists, so a key made
/// by another process at the same time is never replaced.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{:016x}.tmp", rand::random::<u64>()));
    let temporary = path.with_file_name(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let written = (|| {
        let mut file = options.open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&temporary, path)
    })();
    let _ = std::fs::remove_file(&temporary);
    written
}

fn decode(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect();
    bytes?.try_into().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn made_in_development_refused_in_production_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/k");
        let missing = read_or_make_seed(&path, "production", || [1; 32]).unwrap_err();
        assert!(
            missing.contains("in production the signing key must be provided"),
            "{missing}"
        );
        assert_eq!(
            read_or_make_seed(&path, "development", || [7; 32]).unwrap(),
            [7; 32]
        );
        assert_eq!(
            read_or_make_seed(&path, "production", || [1; 32]).unwrap(),
            [7; 32]
        );
        std::fs::write(&path, "not hex").unwrap();
        let bad = read_or_make_seed(&path, "development", || [1; 32]).unwrap_err();
        assert!(bad.contains("must hold 64 hex characters"), "{bad}");
    }

    #[cfg(unix)]
    #[test]
    fn made_key_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        // A permissive umask would leave a plainly written file world-readable.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/auth-ed25519.key");
        read_or_make_seed(&path, "development", || [3; 32]).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(format!("{mode:o}"), "600");
        // Nothing but the key is left in its folder.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("auth-ed25519.key")]);
        assert_eq!(loose_permissions(&path), None);
    }

    #[cfg(unix)]
    #[test]
    fn key_readable_by_others_is_named_with_its_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "07".repeat(32)).unwrap();
        for (mode, expected) in [
            (0o600, None),
            (0o400, None),
            (0o640, Some("640")),
            (0o604, Some("604")),
            (0o644, Some("644")),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let got = loose_permissions(&path);
            assert_eq!(got.as_ref().map(|w| w.mode.as_str()), expected, "{mode:o}");
            if let Some(warning) = got {
                assert!(
                    warning.message.contains(&path.display().to_string()),
                    "{}",
                    warning.message
                );
            }
            // The key still reads: a warning, not a refusal.
            assert_eq!(
                read_or_make_seed(&path, "production", || [1; 32]).unwrap(),
                [7; 32]
            );
        }
    }

    #[test]
    fn existing_key_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "07".repeat(32)).unwrap();
        let error = write_private(&path, &"01".repeat(32)).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(
            read_or_make_seed(&path, "development", || [1; 32]).unwrap(),
            [7; 32]
        );
    }
}
