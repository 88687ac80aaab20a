//! The manifest: what a backup holds and the digest of every member. It is the archive's
//! last member, so a file cut short anywhere lacks it and is refused as incomplete.

use serde::{Deserialize, Serialize};

use crate::BackupError;

/// The manifest's member name.
pub const MANIFEST: &str = "manifest.json";

/// The format's name, so a stray tar is not mistaken for a backup.
pub const FORMAT: &str = "codexion-backup";

/// The format version this build writes and reads.
pub const VERSION: u32 = 1;

/// The largest manifest read (a manifest lists members, not data).
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// The most members a backup may hold (databases, config files and keys).
pub const MAX_MEMBERS: usize = 100_000;

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version ([`VERSION`]).
    pub version: u32,
    /// When the snapshot was taken (UTC, RFC 3339).
    pub created_at: String,
    /// The version of `prefiq` that took it.
    pub prefiq_version: String,
    /// `sqlite` or `postgres`: a backup restores onto the same backend.
    pub backend: String,
    /// `shared` or `database`.
    pub tenancy: String,
    /// The databases, main first.
    pub databases: Vec<DatabaseMember>,
    /// Whether signing keys (and `.env`) are inside.
    pub includes_keys: bool,
    /// Every other member with its digest, in archive order.
    pub members: Vec<Member>,
}

/// One database's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseMember {
    /// `None` for the main database; the tenant of a tenant database.
    pub tenant: Option<String>,
    /// The member holding it: a SQLite file, or a `pg_dump` custom-format archive.
    pub member: String,
}

/// One member and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The path inside the archive.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// What it is: `database`, `config`, `key`.
    pub kind: MemberKind,
}

/// What a member is, which decides where a restore puts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberKind {
    /// A database snapshot (`databases/...`).
    Database,
    /// A configuration file (`installation/config/...`).
    Config,
    /// A signing key or the `.env` file (`installation/...`).
    Key,
}

impl Manifest {
    /// Parses and checks a manifest's text: format, version, and that every member path
    /// is a safe relative path.
    pub fn parse(text: &[u8]) -> Result<Manifest, BackupError> {
        let manifest: Manifest = serde_json::from_slice(text)
            .map_err(|e| BackupError::Corrupt(format!("the manifest is not valid: {e}")))?;
        if manifest.format != FORMAT {
            return Err(BackupError::Corrupt(format!(
                "not a Codexion backup (format `{}`, expected `{FORMAT}`)",
                manifest.format
            )));
        }
        if manifest.version != VERSION {
            return Err(BackupError::Corrupt(format!(
                "backup format version {} is not supported (this build reads version {VERSION})",
                manifest.version
            )));
        }
        for member in &manifest.members {
            check_member_path(&member.path)?;
        }
        for database in &manifest.databases {
            if !manifest.members.iter().any(|m| m.path == database.member) {
                return Err(BackupError::Corrupt(format!(
                    "the manifest names the database member {} but does not list it",
                    database.member
                )));
            }
        }
        if manifest.members.len() > MAX_MEMBERS {
            return Err(BackupError::Corrupt(format!(
                "the manifest lists {} members, more than {MAX_MEMBERS}",
                manifest.members.len()
            )));
        }
        Ok(manifest)
    }

    /// The member at `path`.
    pub fn member(&self, path: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.path == path)
    }
}

/// Refuses a member path that could land outside the folder it is unpacked into.
pub fn check_member_path(path: &str) -> Result<(), BackupError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(BackupError::Corrupt(format!(
            "the member path `{}` is not a plain relative path",
            path.escape_debug()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, safe: bool) {
        assert_eq!(check_member_path(path).is_ok(), safe, "{path}");
    }

    #[test]
    fn member_paths() {
        check("databases/main.sqlite", true);
        check("installation/config/default.yaml", true);
        check("../etc/passwd", false);
        check("databases/../../x", false);
        check("/etc/passwd", false);
        check("a//b", false);
        check("a/./b", false);
        check("a\\b", false);
        check("", false);
    }

    fn manifest_text(format: &str, version: u32) -> String {
        serde_json::json!({
            "format": format, "version": version, "created_at": "2026-12-07T00:00:00Z",
            "prefiq_version": "0.1.0", "backend": "sqlite", "tenancy": "shared",
            "databases": [{"tenant": null, "member": "databases/main.sqlite"}],
            "includes_keys": false,
            "members": [{"path": "databases/main.sqlite", "bytes": 1, "sha256": "00", "kind": "database"}]
        })
        .to_string()
    }

    #[test]
    fn manifests_of_another_format_or_version_are_refused() {
        assert!(Manifest::parse(manifest_text(FORMAT, VERSION).as_bytes()).is_ok());
        let other = Manifest::parse(manifest_text("something", VERSION).as_bytes());
        assert!(
            other
                .expect_err("refused")
                .to_string()
                .contains("not a Codexion backup")
        );
        let newer = Manifest::parse(manifest_text(FORMAT, VERSION + 1).as_bytes());
        assert!(
            newer
                .expect_err("refused")
                .to_string()
                .contains("version 2")
        );
        let garbage = Manifest::parse(b"{\"format\":");
        assert!(
            garbage
                .expect_err("refused")
                .to_string()
                .contains("manifest is not valid")
        );
    }
}
