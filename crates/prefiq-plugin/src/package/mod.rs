//! The plugin package (`.cxp`): what `prefiq plugin pack` writes and what an installation
//! opens.
//!
//! A package is an uncompressed ustar archive holding, in this order:
//!
//! 1. `MANIFEST.json`, the digest manifest:
//!    `{"format":1,"plugin":NAME,"version":VERSION,"files":{PATH:SHA256,…}}`, files sorted
//!    by path, covering every other entry but `SIGNATURE`. It must be byte for byte the
//!    compact form [`pack_files`] writes, so that one content has one manifest and a
//!    duplicated key cannot mean one thing to the signer and another to the reader;
//! 2. `SIGNATURE` (absent when unsigned): `{"key":BASE64,"signature":BASE64}`, a detached
//!    Ed25519 signature over the exact bytes of `MANIFEST.json`;
//! 3. the plugin's files: `plugin.yml`, `plugin.wasm`, and optionally `schema/*.yaml`,
//!    `templates/**`, `static/**` and `locales/**`. Nothing else.
//!
//! [`open`] checks all of it in memory, bounded by [`MAX_PACKAGE_BYTES`], [`MAX_FILE_BYTES`]
//! and [`MAX_FILES`], and writes nothing to disk.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::manifest::PluginManifest;

mod archive;
mod signing;

pub use signing::{PublicKey, TrustPolicy, generate_key, parse_secret_key};

/// The largest package, in bytes.
pub const MAX_PACKAGE_BYTES: u64 = 64 * 1024 * 1024;

/// The largest file in a package, in bytes.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// The most entries in a package, besides `MANIFEST.json` and `SIGNATURE`.
pub const MAX_FILES: usize = 1000;

/// The version of the package format this crate writes and reads.
const FORMAT: u32 = 1;

/// What is wrong with a package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// A file of the plugin's directory could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// The bytes are not a package: not a tar archive, or its layout is wrong.
    #[error("malformed package: {0}")]
    Malformed(String),
    /// The package, one of its files, or the number of its files is over a bound.
    #[error("package too large: {0}")]
    TooLarge(String),
    /// An entry's path or kind is not allowed (absolute, `..`, a link, a device, a name
    /// outside the layout, a duplicate).
    #[error("bad path {0}")]
    BadPath(String),
    /// A file's content is not what `MANIFEST.json` says.
    #[error("{file}: {message}")]
    Tampered {
        /// The file.
        file: String,
        /// What differs.
        message: String,
    },
    /// A required file, or one `MANIFEST.json` lists, is not in the package.
    #[error("{0}: missing from the package")]
    Missing(String),
    /// A file is in the package but not in `MANIFEST.json`.
    #[error("{0}: in the package but not listed in MANIFEST.json")]
    Unexpected(String),
    /// The package has no signature and the trust policy wants one.
    #[error(
        "package is not signed (production refuses unsigned packages; sign it with `prefiq plugin sign`)"
    )]
    Unsigned,
    /// The signature is unreadable or does not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The signature verifies, under a key the trust policy does not list.
    #[error(
        "signed by {0}, which this installation does not trust (add it to plugins.trusted_keys)"
    )]
    Untrusted(String),
    /// `plugin.yml` is invalid, or disagrees with `MANIFEST.json`.
    #[error("{0}")]
    Manifest(String),
    /// A public or secret key is unreadable.
    #[error("bad key: {0}")]
    Key(String),
}

/// The bounds a package is read and written within: [`MAX_PACKAGE_BYTES`],
/// [`MAX_FILE_BYTES`] and [`MAX_FILES`], lowered in tests.
#[derive(Debug, Clone, Copy)]
struct Limits {
    package_bytes: u64,
    file_bytes: u64,
    files: usize,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        package_bytes: MAX_PACKAGE_BYTES,
        file_bytes: MAX_FILE_BYTES,
        files: MAX_FILES,
    };
}

/// `MANIFEST.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DigestManifest {
    format: u32,
    plugin: String,
    version: semver::Version,
    files: BTreeMap<String, String>,
}

impl DigestManifest {
    fn to_bytes(&self) -> Result<Vec<u8>, PackageError> {
        serde_json::to_vec(self)
            .map_err(|e| PackageError::Malformed(format!("{}: {e}", archive::MANIFEST)))
    }

    /// Parses `MANIFEST.json`, which must be in the form [`DigestManifest::to_bytes`]
    /// writes.
    fn parse(bytes: &[u8]) -> Result<DigestManifest, PackageError> {
        let malformed =
            |message: String| PackageError::Malformed(format!("{}: {message}", archive::MANIFEST));
        let manifest: DigestManifest =
            serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        if manifest.format != FORMAT {
            return Err(malformed(format!(
                "format {} is not one this installation reads (it reads {FORMAT})",
                manifest.format
            )));
        }
        if manifest.to_bytes()? != bytes {
            return Err(malformed(
                "not in canonical form (compact JSON, keys in order, each once)".into(),
            ));
        }
        for (path, digest) in &manifest.files {
            archive::check_path(path, archive::Kind::File)?;
            if digest.len() != 64
                || !digest
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(malformed(format!(
                    "the digest of {path} is not 64 lowercase hex digits"
                )));
            }
        }
        Ok(manifest)
    }
}

/// An opened, verified package.
#[derive(Debug, Clone)]
pub struct Package {
    /// Its `plugin.yml`.
    pub manifest: PluginManifest,
    /// Its files by path, all but `MANIFEST.json` and `SIGNATURE`.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The trusted key that signed it; `None` when it is unsigned (and the trust policy
    /// allowed that).
    pub signer: Option<PublicKey>,
    /// The SHA-256 of the whole package, in hex.
    pub digest: String,
}

impl Package {
    /// The plugin's module (`plugin.wasm`).
    pub fn wasm(&self) -> &[u8] {
        self.file(archive::WASM).unwrap_or_default()
    }

    /// One of its files, by path (`schema/todo.yaml`, `templates/…`).
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn digest_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses `plugin.yml`.
fn plugin_manifest(files: &BTreeMap<String, Vec<u8>>) -> Result<PluginManifest, PackageError> {
    let source = files
        .get(archive::PLUGIN_YML)
        .ok_or_else(|| PackageError::Missing(archive::PLUGIN_YML.into()))?;
    let source = std::str::from_utf8(source)
        .map_err(|_| PackageError::Manifest(format!("{}: not UTF-8", archive::PLUGIN_YML)))?;
    PluginManifest::from_yaml(source).map_err(|e| PackageError::Manifest(e.to_string()))
}

/// Packs a plugin's directory, unsigned: `plugin.yml` and `plugin.wasm` (both required),
/// and `schema/*.yaml`, `templates/`, `static/` and `locales/` when present. Nothing is
/// skipped silently: any other entry, a symbolic link or a special file is an error
/// naming it.
pub fn pack_dir(dir: &Path) -> Result<Vec<u8>, PackageError> {
    let files = collect_dir(dir, &Limits::DEFAULT)?;
    pack_files(&files)
}

/// Reads a plugin's directory into its files, by relative `/`-separated path: every
/// entry must be in the layout ([`archive::check_path`]) and be a regular file or a directory.
/// Sizes and counts are checked before contents are read.
fn collect_dir(dir: &Path, limits: &Limits) -> Result<BTreeMap<String, Vec<u8>>, PackageError> {
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    walk(dir, dir, "", limits, &mut files, &mut total)?;
    Ok(files)
}

fn io_error(path: &Path, error: std::io::Error) -> PackageError {
    PackageError::Io {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

fn walk(
    root: &Path,
    dir: &Path,
    prefix: &str,
    limits: &Limits,
    files: &mut BTreeMap<String, Vec<u8>>,
    total: &mut u64,
) -> Result<(), PackageError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        entries.push(entry);
    }
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(archive::bad_path(
                &format!("{prefix}{}", name.to_string_lossy()),
                "not UTF-8",
            ));
        };
        let path = format!("{prefix}{name}");
        let full = root.join(&path);
        let meta = std::fs::symlink_metadata(&full).map_err(|e| io_error(&full, e))?;
        if meta.is_dir() {
            archive::check_path(&path, archive::Kind::Dir)?;
            walk(root, &full, &format!("{path}/"), limits, files, total)?;
        } else if meta.is_file() {
            archive::check_path(&path, archive::Kind::File)?;
            if files.len() >= limits.files {
                return Err(PackageError::TooLarge(format!(
                    "more than {} files",
                    limits.files
                )));
            }
            archive::check_file_size(&path, meta.len(), limits)?;
            *total = total.saturating_add(meta.len());
            if *total > limits.package_bytes {
                return Err(PackageError::TooLarge(format!(
                    "its files hold more than {} bytes",
                    limits.package_bytes
                )));
            }
            let file = std::fs::File::open(&full).map_err(|e| io_error(&full, e))?;
            let mut content = Vec::new();
            // One byte over the bound tells a file that grew since its metadata was read.
            file.take(limits.file_bytes.saturating_add(1))
                .read_to_end(&mut content)
                .map_err(|e| io_error(&full, e))?;
            archive::check_file_size(&path, content.len() as u64, limits)?;
            files.insert(path, content);
        } else if meta.file_type().is_symlink() {
            return Err(archive::bad_path(
                &path,
                "a symbolic link (packing follows none)",
            ));
        } else {
            return Err(archive::bad_path(
                &path,
                "not a regular file or a directory",
            ));
        }
    }
    Ok(())
}

/// Packs a plugin's files (path → content, paths `/`-separated and relative), unsigned.
/// `plugin.yml` must parse, and the layout is the one [`pack_dir`] takes.
pub fn pack_files(files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, PackageError> {
    pack_files_with(files, &Limits::DEFAULT)
}

fn pack_files_with(
    files: &BTreeMap<String, Vec<u8>>,
    limits: &Limits,
) -> Result<Vec<u8>, PackageError> {
    if files.len() > limits.files {
        return Err(PackageError::TooLarge(format!(
            "{} files; at most {}",
            files.len(),
            limits.files
        )));
    }
    let mut total = 0u64;
    for (path, content) in files {
        archive::check_path(path, archive::Kind::File)?;
        let size = content.len() as u64;
        archive::check_file_size(path, size, limits)?;
        total = total.saturating_add(size);
    }
    archive::check_tree(files.keys().map(String::as_str), &Default::default())?;
    if total > limits.package_bytes {
        return Err(PackageError::TooLarge(format!(
            "its files hold {total} bytes; at most {}",
            limits.package_bytes
        )));
    }
    for required in [archive::PLUGIN_YML, archive::WASM] {
        if !files.contains_key(required) {
            return Err(PackageError::Missing(required.into()));
        }
    }
    let plugin = plugin_manifest(files)?;
    let manifest = DigestManifest {
        format: FORMAT,
        plugin: plugin.name,
        version: plugin.version,
        files: files
            .iter()
            .map(|(path, content)| (path.clone(), digest_hex(content)))
            .collect(),
    };
    let package = archive::write(&manifest.to_bytes()?, None, files)?;
    check_package_size(package.len(), limits)?;
    Ok(package)
}

fn check_package_size(len: usize, limits: &Limits) -> Result<(), PackageError> {
    let len = len as u64;
    if len > limits.package_bytes {
        return Err(PackageError::TooLarge(format!(
            "{len} bytes; at most {}",
            limits.package_bytes
        )));
    }
    Ok(())
}

/// A package whose layout, digests and `plugin.yml` are checked, but not its signature.
struct Checked {
    manifest_bytes: Vec<u8>,
    files: BTreeMap<String, Vec<u8>>,
    plugin: PluginManifest,
}

/// Everything [`open`] checks but the signature, in its order (the signature is checked
/// between the digests and `plugin.yml`, see [`open_with`]).
fn check_layout(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(archive::Contents, DigestManifest), PackageError> {
    check_package_size(bytes.len(), limits)?;
    let contents = archive::read(bytes, limits)?;
    let manifest = DigestManifest::parse(&contents.manifest)?;
    for (path, content) in &contents.files {
        let Some(listed) = manifest.files.get(path) else {
            return Err(PackageError::Unexpected(path.clone()));
        };
        let actual = digest_hex(content);
        if &actual != listed {
            return Err(PackageError::Tampered {
                file: path.clone(),
                message: format!("digest mismatch (manifest says {listed}, file is {actual})"),
            });
        }
    }
    for path in manifest.files.keys() {
        if !contents.files.contains_key(path) {
            return Err(PackageError::Missing(path.clone()));
        }
    }
    for required in [archive::PLUGIN_YML, archive::WASM] {
        if !contents.files.contains_key(required) {
            return Err(PackageError::Missing(required.into()));
        }
    }
    Ok((contents, manifest))
}

/// Parses `plugin.yml` and checks it names the plugin and version `MANIFEST.json` does.
fn check_plugin(
    (contents, manifest): (archive::Contents, DigestManifest),
) -> Result<Checked, PackageError> {
    let plugin = plugin_manifest(&contents.files)?;
    if plugin.name != manifest.plugin {
        return Err(PackageError::Manifest(format!(
            "{}: name {:?} is not the plugin {:?} that {} names",
            archive::PLUGIN_YML,
            plugin.name,
            manifest.plugin,
            archive::MANIFEST
        )));
    }
    if plugin.version != manifest.version {
        return Err(PackageError::Manifest(format!(
            "{}: version {} is not the version {} that {} names",
            archive::PLUGIN_YML,
            plugin.version,
            manifest.version,
            archive::MANIFEST
        )));
    }
    Ok(Checked {
        manifest_bytes: contents.manifest,
        files: contents.files,
        plugin,
    })
}

/// Adds `SIGNATURE` to a package (replacing any it has): `key`'s signature over its
/// `MANIFEST.json`. The package is checked first (layout, digests, `plugin.yml`), so a
/// tampered package is refused rather than signed.
pub fn sign(package: &[u8], key: &ed25519_dalek::SigningKey) -> Result<Vec<u8>, PackageError> {
    sign_with(package, key, &Limits::DEFAULT)
}

fn sign_with(
    package: &[u8],
    key: &ed25519_dalek::SigningKey,
    limits: &Limits,
) -> Result<Vec<u8>, PackageError> {
    let checked = check_plugin(check_layout(package, limits)?)?;
    let signature = signing::signature_file(key, &checked.manifest_bytes)?;
    let signed = archive::write(&checked.manifest_bytes, Some(&signature), &checked.files)?;
    check_package_size(signed.len(), limits)?;
    Ok(signed)
}

/// The key that signed a package, once its layout is checked and its signature verifies
/// under that key — whether the key is trusted is not asked (for tools that catalogue
/// packages, such as `prefiq plugin index`). `None` for an unsigned package.
pub fn signer_of(bytes: &[u8]) -> Result<Option<PublicKey>, PackageError> {
    let (contents, _) = check_layout(bytes, &Limits::DEFAULT)?;
    contents
        .signature
        .as_deref()
        .map(|signature| signing::verified_signer(&contents.manifest, signature))
        .transpose()
}

/// Opens and verifies a package, in memory (nothing is written to disk):
///
/// 1. its size, each entry's size, and the number of entries are within bounds;
/// 2. each entry is a regular file or a directory, at a relative path without `..`, in
///    the package's layout, and there once;
/// 3. each file's SHA-256 is the one `MANIFEST.json` lists (a changed byte fails naming
///    the file), and no file is missing from or extra to it;
/// 4. the signature: none is [`PackageError::Unsigned`] unless `trust.allow_unsigned`; one
///    that does not verify is [`PackageError::BadSignature`]; one that verifies under a key
///    `trust.keys` does not hold is [`PackageError::Untrusted`] (even when unsigned
///    packages are allowed);
/// 5. `plugin.yml` parses, and names the plugin and version `MANIFEST.json` does.
pub fn open(bytes: &[u8], trust: &TrustPolicy) -> Result<Package, PackageError> {
    open_with(bytes, trust, &Limits::DEFAULT)
}

fn open_with(bytes: &[u8], trust: &TrustPolicy, limits: &Limits) -> Result<Package, PackageError> {
    let (contents, manifest) = check_layout(bytes, limits)?;
    let signer = signing::verify(&contents.manifest, contents.signature.as_deref(), trust)?;
    let checked = check_plugin((contents, manifest))?;
    Ok(Package {
        manifest: checked.plugin,
        files: checked.files,
        signer,
        digest: digest_hex(bytes),
    })
}

#[cfg(test)]
mod tests;
