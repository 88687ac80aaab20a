//! Secret key files: a 32-byte seed kept as 64 hex characters. Outside production a
//! missing file is made on first use, so a development installation needs no set-up; in
//! production its absence is an error, so a server never signs with a key nobody keeps.

use std::path::Path;

/// Reads the seed in `path`, or (when `env` is not `production` and the file does not
/// exist) writes a new one from `make`. The error is one sentence naming the file.
pub fn read_or_make_seed(
    path: &Path,
    env: &str,
    make: impl FnOnce() -> [u8; 32],
) -> Result<[u8; 32], String> {
    match std::fs::read_to_string(path) {
        Ok(text) => decode(text.trim()).ok_or_else(|| {
            format!(
                "{} must hold 64 hex characters (an Ed25519 seed)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && env != "production" => {
            let seed = make();
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            let text: String = seed.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
            tracing::warn!(target: "prefiq::secret", path = %path.display(), "generated a signing key for development");
            Ok(seed)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "{} does not exist; in production the signing key must be provided",
            path.display()
        )),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
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
}
