//! The backup file: a plain tar whose members are hashed as they are written, with the
//! manifest last. It is written beside its final name and renamed only once complete and
//! synced, so a backup killed halfway never leaves a file under the name asked for.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::BackupError;
use crate::manifest::{MANIFEST, MAX_MANIFEST_BYTES, MAX_MEMBERS, Manifest, Member, MemberKind};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            use std::fmt::Write as _;
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The name a backup is written under until it is complete: `{name}.partial`.
pub fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

/// Writes a backup file.
pub struct ArchiveWriter {
    target: PathBuf,
    partial: PathBuf,
    builder: tar::Builder<BufWriter<File>>,
    members: Vec<Member>,
}

impl ArchiveWriter {
    /// Starts `target` (written as `target.partial` until [`ArchiveWriter::finish`]).
    pub fn create(target: &Path) -> Result<ArchiveWriter, BackupError> {
        let partial = partial_path(target);
        // Only the owner may read it: a backup holds every tenant's data.
        let file = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&partial)
                .map_err(io(&partial))?
        };
        let mut builder = tar::Builder::new(BufWriter::new(file));
        builder.mode(tar::HeaderMode::Deterministic);
        Ok(ArchiveWriter {
            target: target.to_owned(),
            partial,
            builder,
            members: Vec::new(),
        })
    }

    /// Adds the file `source` as `path`, hashing it on the way.
    pub fn add_file(
        &mut self,
        path: &str,
        source: &Path,
        kind: MemberKind,
    ) -> Result<(), BackupError> {
        crate::manifest::check_member_path(path)?;
        let file = File::open(source).map_err(io(source))?;
        let size = file.metadata().map_err(io(source))?.len();
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        let mut reader = Hashing {
            inner: file.take(size),
            hasher: Sha256::new(),
            bytes: 0,
        };
        self.builder
            .append_data(&mut header, path, &mut reader)
            .map_err(io(&self.partial))?;
        if reader.bytes != size {
            return Err(BackupError::Io {
                path: source.to_owned(),
                source: std::io::Error::other("the file changed size while it was archived"),
            });
        }
        self.members.push(Member {
            path: path.to_owned(),
            bytes: size,
            sha256: hex(&reader.hasher.finalize()),
            kind,
        });
        Ok(())
    }

    /// The members written so far.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Appends `manifest` (its members replaced by those written), syncs the file and
    /// renames it to its final name. Answers the file's size.
    pub fn finish(mut self, mut manifest: Manifest) -> Result<u64, BackupError> {
        manifest.members = std::mem::take(&mut self.members);
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Io {
            path: self.partial.clone(),
            source: std::io::Error::other(e),
        })?;
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        self.builder
            .append_data(&mut header, MANIFEST, text.as_slice())
            .map_err(io(&self.partial))?;
        let writer = self.builder.into_inner().map_err(io(&self.partial))?;
        let file = writer.into_inner().map_err(|e| BackupError::Io {
            path: self.partial.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io(&self.partial))?;
        let size = file.metadata().map_err(io(&self.partial))?.len();
        drop(file);
        std::fs::rename(&self.partial, &self.target).map_err(io(&self.target))?;
        if let Some(dir) = self.target.parent()
            && let Ok(dir) = File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })
        {
            // The rename is durable only once the folder is synced.
            let _ = dir.sync_all();
        }
        Ok(size)
    }
}

/// Reads the manifest of the backup `archive` without checking the members (which
/// [`unpack`] does): a quick look at what a file holds.
pub fn read_manifest(archive: &Path) -> Result<Manifest, BackupError> {
    let file = File::open(archive).map_err(io(archive))?;
    let damaged = |e: std::io::Error| {
        BackupError::Corrupt(format!(
            "{}: the archive is damaged or cut short: {e}",
            archive.display()
        ))
    };
    let mut tar = tar::Archive::new(file);
    for entry in tar.entries_with_seek().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let is_manifest = entry.path().map_err(damaged)?.to_str() == Some(MANIFEST);
        if is_manifest && entry.size() <= MAX_MANIFEST_BYTES {
            let mut text = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut text).map_err(damaged)?;
            return Manifest::parse(&text);
        }
    }
    Err(BackupError::Corrupt(format!(
        "{}: the backup has no manifest: it was cut short or never finished",
        archive.display()
    )))
}

/// Unpacks the backup `archive` into the folder `into`, checking every member against the
/// manifest: a member missing, added, resized or changed, and a file cut short, are
/// refused naming what does not match. Answers the checked manifest.
pub fn unpack(archive: &Path, into: &Path) -> Result<Manifest, BackupError> {
    let file = File::open(archive).map_err(io(archive))?;
    let damaged = |e: std::io::Error| {
        BackupError::Corrupt(format!(
            "{}: the archive is damaged or cut short: {e}",
            archive.display()
        ))
    };
    let mut tar = tar::Archive::new(std::io::BufReader::new(file));
    let mut found: Vec<(String, u64, String)> = Vec::new();
    let mut manifest_text: Option<Vec<u8>> = None;
    for entry in tar.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let path = entry
            .path()
            .map_err(damaged)?
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| BackupError::Corrupt("a member's name is not UTF-8".into()))?;
        if manifest_text.is_some() {
            return Err(BackupError::Corrupt(format!(
                "the member {path} follows the manifest, which must be last"
            )));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(BackupError::Corrupt(format!(
                "the member {path} is not a regular file"
            )));
        }
        if path == MANIFEST {
            if entry.size() > MAX_MANIFEST_BYTES {
                return Err(BackupError::Corrupt(format!(
                    "the manifest is {} bytes, more than {MAX_MANIFEST_BYTES}",
                    entry.size()
                )));
            }
            let mut text = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut text).map_err(damaged)?;
            manifest_text = Some(text);
            continue;
        }
        crate::manifest::check_member_path(&path)?;
        if found.len() >= MAX_MEMBERS {
            return Err(BackupError::Corrupt(format!(
                "the archive holds more than {MAX_MEMBERS} members"
            )));
        }
        if found.iter().any(|(p, _, _)| *p == path) {
            return Err(BackupError::Corrupt(format!(
                "the member {path} appears twice"
            )));
        }
        let target = into.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut out = BufWriter::new(File::create(&target).map_err(io(&target))?);
        let mut reader = Hashing {
            inner: &mut entry,
            hasher: Sha256::new(),
            bytes: 0,
        };
        std::io::copy(&mut reader, &mut out).map_err(damaged)?;
        out.flush().map_err(io(&target))?;
        found.push((path, reader.bytes, hex(&reader.hasher.finalize())));
    }
    let text = manifest_text.ok_or_else(|| {
        BackupError::Corrupt(format!(
            "{}: the backup has no manifest: it was cut short or never finished",
            archive.display()
        ))
    })?;
    let manifest = Manifest::parse(&text)?;
    for member in &manifest.members {
        let Some((_, bytes, sha256)) = found.iter().find(|(p, _, _)| *p == member.path) else {
            return Err(BackupError::Corrupt(format!(
                "the member {} is in the manifest but not in the archive",
                member.path
            )));
        };
        if *bytes != member.bytes {
            return Err(BackupError::Corrupt(format!(
                "the member {} is {bytes} bytes, the manifest says {}",
                member.path, member.bytes
            )));
        }
        if *sha256 != member.sha256 {
            return Err(BackupError::Corrupt(format!(
                "the member {} does not match its SHA-256 in the manifest (found {sha256}, expected {})",
                member.path, member.sha256
            )));
        }
    }
    if let Some((path, _, _)) = found.iter().find(|(p, _, _)| manifest.member(p).is_none()) {
        return Err(BackupError::Corrupt(format!(
            "the member {path} is not in the manifest"
        )));
    }
    Ok(manifest)
}
