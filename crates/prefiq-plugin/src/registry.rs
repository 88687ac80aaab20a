//! The registry index: a static JSON file that lists packages, their versions, the
//! SHA-256 of each package file, and the publishers' keys — groundwork for a marketplace.
//!
//! The index is only a catalogue. What an installation runs is still decided by the
//! package's own signature against the installation's trusted keys; the index's digest
//! is checked before a downloaded package is even opened, and the signer must be one of
//! the keys the index lists for the package's publisher.
//!
//! ```json
//! {"format": 1,
//!  "publishers": {"acme-tools": ["ed25519:…"]},
//!  "packages": {"journal-guard": {"publisher": "acme-tools", "description": "…",
//!    "versions": {"0.1.0": {"file": "journal-guard-0.1.0.cxp", "sha256": "…"}}}}}
//! ```

use std::collections::BTreeMap;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::manifest::is_plugin_name;
use crate::package::{PublicKey, digest_hex};

/// The largest index read.
pub const MAX_INDEX_BYTES: usize = 8 * 1024 * 1024;

/// Why the index cannot be used, or does not have what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The index is not a valid index.
    #[error("the registry index is invalid: {0}")]
    Invalid(String),
    /// No such package, or no version that matches.
    #[error("{0}")]
    NotFound(String),
    /// The downloaded package is not the one the index lists.
    #[error(
        "{file}: the registry lists sha256 {listed}, the download is {actual}; nothing was unpacked"
    )]
    DigestMismatch {
        /// The package file.
        file: String,
        /// The digest the index lists.
        listed: String,
        /// The digest of what was downloaded.
        actual: String,
    },
    /// The package is signed by a key the index does not list for its publisher.
    #[error("{0}")]
    WrongPublisher(String),
}

/// The index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryIndex {
    /// The format's version: 1.
    pub format: u32,
    /// Each publisher's keys.
    #[serde(default)]
    pub publishers: BTreeMap<String, Vec<PublicKey>>,
    /// The packages, by plugin name.
    #[serde(default)]
    pub packages: BTreeMap<String, Listing>,
}

/// One package in the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listing {
    /// Who publishes it (a key of `publishers`).
    pub publisher: String,
    /// One line about it.
    #[serde(default)]
    pub description: String,
    /// Its versions.
    pub versions: BTreeMap<Version, Release>,
}

/// One version of a package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The package file, relative to the index.
    pub file: String,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// The Codexion versions it runs on, as its manifest says (for `search`).
    #[serde(default)]
    pub prefiq: Option<VersionReq>,
}

/// A package and version picked from the index.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    /// The plugin.
    pub name: String,
    /// The version.
    pub version: Version,
    /// Where and what it is.
    pub release: Release,
    /// Its publisher's keys, as the index lists them.
    pub keys: Vec<PublicKey>,
}

impl RegistryIndex {
    /// Parses and checks an index.
    pub fn parse(bytes: &[u8]) -> Result<RegistryIndex, RegistryError> {
        if bytes.len() > MAX_INDEX_BYTES {
            return Err(RegistryError::Invalid(format!(
                "it is {} bytes; at most {MAX_INDEX_BYTES}",
                bytes.len()
            )));
        }
        let index: RegistryIndex =
            serde_json::from_slice(bytes).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        if index.format != 1 {
            return Err(RegistryError::Invalid(format!(
                "format {} is not one this installation reads (1)",
                index.format
            )));
        }
        for (name, listing) in &index.packages {
            if !is_plugin_name(name) {
                return Err(RegistryError::Invalid(format!(
                    "{name:?} is not a plugin name"
                )));
            }
            if !index.publishers.contains_key(&listing.publisher) {
                return Err(RegistryError::Invalid(format!(
                    "{name}: publisher {:?} is not among the publishers",
                    listing.publisher
                )));
            }
            for (version, release) in &listing.versions {
                let hex = release.sha256.len() == 64
                    && release
                        .sha256
                        .chars()
                        .all(|c| matches!(c, '0'..='9' | 'a'..='f'));
                let plain_file = !release.file.is_empty()
                    && !release.file.contains("..")
                    && !release.file.starts_with('/')
                    && !release.file.contains('\\');
                if !hex || !plain_file {
                    return Err(RegistryError::Invalid(format!(
                        "{name} {version}: `file` must be a relative path and `sha256` 64 lowercase hex digits"
                    )));
                }
            }
        }
        Ok(index)
    }

    /// Packages whose name or description contains `query` (any case); all for "".
    pub fn search(&self, query: &str) -> Vec<(&String, &Listing)> {
        let query = query.to_lowercase();
        self.packages
            .iter()
            .filter(|(name, listing)| {
                name.contains(&query) || listing.description.to_lowercase().contains(&query)
            })
            .collect()
    }

    /// `NAME` (the latest version) or `NAME@VERSION` (a version or a range such as `^1`).
    pub fn pick(&self, spec: &str) -> Result<Pick, RegistryError> {
        let (name, wanted) = match spec.split_once('@') {
            Some((name, version)) => {
                let req = VersionReq::parse(&format!("={version}"))
                    .or_else(|_| VersionReq::parse(version))
                    .map_err(|e| RegistryError::NotFound(format!("{spec}: {e}")))?;
                (name, Some(req))
            }
            None => (spec, None),
        };
        let listing = self
            .packages
            .get(name)
            .ok_or_else(|| RegistryError::NotFound(format!("the registry has no plugin {name}")))?;
        let (version, release) = listing
            .versions
            .iter()
            .rev()
            .find(|(v, _)| wanted.as_ref().is_none_or(|req| req.matches(v)))
            .ok_or_else(|| {
                RegistryError::NotFound(format!(
                    "the registry has no version of {name} matching {}",
                    spec.split_once('@').map_or("*", |(_, v)| v)
                ))
            })?;
        Ok(Pick {
            name: name.to_owned(),
            version: version.clone(),
            release: release.clone(),
            keys: self
                .publishers
                .get(&listing.publisher)
                .cloned()
                .unwrap_or_default(),
        })
    }
}

impl Pick {
    /// Checks downloaded bytes against the index's digest, before anything reads them.
    pub fn check_digest(&self, bytes: &[u8]) -> Result<(), RegistryError> {
        let actual = digest_hex(bytes);
        if actual == self.release.sha256 {
            Ok(())
        } else {
            Err(RegistryError::DigestMismatch {
                file: self.release.file.clone(),
                listed: self.release.sha256.clone(),
                actual,
            })
        }
    }

    /// Checks that the package's signer is one of its publisher's keys in the index.
    pub fn check_signer(&self, signer: Option<&PublicKey>) -> Result<(), RegistryError> {
        match signer {
            Some(key) if self.keys.contains(key) => Ok(()),
            Some(key) => Err(RegistryError::WrongPublisher(format!(
                "{} {} is signed by {key}, which the registry does not list for its publisher",
                self.name, self.version
            ))),
            None => Err(RegistryError::WrongPublisher(format!(
                "{} {} from the registry is not signed",
                self.name, self.version
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> RegistryIndex {
        let (_, key) = crate::package::generate_key();
        let digest = "a".repeat(64);
        RegistryIndex::parse(
            serde_json::json!({
                "format": 1,
                "publishers": {"acme": [key.to_string()]},
                "packages": {
                    "guard": {"publisher": "acme", "description": "Guards journal entries", "versions": {
                        "0.1.0": {"file": "guard-0.1.0.cxp", "sha256": digest},
                        "0.2.0": {"file": "guard-0.2.0.cxp", "sha256": digest},
                        "1.0.0": {"file": "guard-1.0.0.cxp", "sha256": digest}
                    }},
                    "notes": {"publisher": "acme", "versions": {"1.0.0": {"file": "n.cxp", "sha256": digest}}}
                }
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn check(spec: &str, expected: Result<&str, &str>) {
        match (index().pick(spec), expected) {
            (Ok(pick), Ok(version)) => assert_eq!(pick.version.to_string(), version, "{spec}"),
            (Err(e), Err(fragment)) => assert!(e.to_string().contains(fragment), "{spec}: {e}"),
            (got, _) => panic!("{spec}: {got:?}, wanted {expected:?}"),
        }
    }

    #[test]
    fn names_and_versions_pick_a_release() {
        check("guard", Ok("1.0.0"));
        check("guard@0.1.0", Ok("0.1.0"));
        check("guard@^0.1", Ok("0.1.0"));
        check("guard@<1", Ok("0.2.0"));
        check("guard@2.0.0", Err("no version of guard matching 2.0.0"));
        check("nothing", Err("no plugin nothing"));
        check("guard@not.a.version", Err("guard@not.a.version"));
    }

    #[test]
    fn search_looks_at_names_and_descriptions() {
        let index = index();
        let names = |q: &str| {
            index
                .search(q)
                .into_iter()
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(""), ["guard", "notes"]);
        assert_eq!(names("JOURNAL"), ["guard"]);
        assert_eq!(names("note"), ["notes"]);
        assert!(names("zzz").is_empty());
    }

    #[test]
    fn bad_indexes_are_refused() {
        for (index, fragment) in [
            (r#"{"format": 2}"#, "format 2"),
            (r#"{"format": 1, "extra": 1}"#, "unknown field"),
            (
                r#"{"format": 1, "packages": {"Bad": {"publisher": "p", "versions": {}}}}"#,
                "not a plugin name",
            ),
            (
                r#"{"format": 1, "packages": {"ok": {"publisher": "p", "versions": {}}}}"#,
                "publisher \"p\"",
            ),
            (
                r#"{"format": 1, "publishers": {"p": []}, "packages": {"ok": {"publisher": "p", "versions": {"1.0.0": {"file": "../x", "sha256": "00"}}}}}"#,
                "relative path",
            ),
        ] {
            let e = RegistryIndex::parse(index.as_bytes())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(fragment), "{index}: {e}");
        }
    }

    #[test]
    fn digests_and_signers_are_checked() {
        let pick = index().pick("guard").unwrap_or_else(|e| panic!("{e}"));
        let e = pick
            .check_digest(b"other bytes")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("guard-1.0.0.cxp: the registry lists sha256 aaaa"),
            "{e}"
        );
        let (_, stranger) = crate::package::generate_key();
        assert!(pick.check_signer(Some(&stranger)).is_err());
        assert!(pick.check_signer(None).is_err());
        assert!(pick.check_signer(pick.keys.first()).is_ok());
    }
}
