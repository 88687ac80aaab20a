//! The export file: a tar of `manifest.json` and one JSON-lines member per table
//! (docs/tenant-export.md), written to `FILE.partial` and renamed when complete, and read
//! back with every member checked against the manifest before anything is used.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use prefiq_audit::verify::hex;
use prefiq_data::transfer::{self, CHUNK_ROWS, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::{CliError, data, message};

/// The format's name, in every manifest.
pub const FORMAT: &str = "codexion-tenant-export";
/// The format's version; an import refuses any other.
pub const VERSION: u32 = 1;
/// The longest row line an import reads (a row is a record, not a file).
const MAX_LINE: usize = 32 * 1024 * 1024;
/// The largest manifest an import reads.
const MAX_MANIFEST: u64 = 64 * 1024 * 1024;
/// The most members a file may hold.
const MAX_MEMBERS: usize = 100_000;

/// The export's manifest (`manifest.json`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// The tenant exported.
    pub tenant: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// `shared` or `database`.
    pub tenancy: String,
    /// The `prefiq` that wrote it.
    pub prefiq_version: String,
    /// When (RFC 3339, UTC).
    pub created_at: String,
    /// Whether users' password hashes (and API keys) are in it.
    pub password_hashes: bool,
    /// The migrations the source had applied, per module.
    pub migrations: BTreeMap<String, Vec<String>>,
    /// The tenant's row in `cortex_tenants`.
    pub tenant_row: Row,
    /// The tenant's runtime entities: their stored schemas.
    pub runtime_entities: Vec<Value>,
    /// The audit log's evidence.
    pub audit: AuditEvidence,
    /// Every table member, in the file's order.
    pub tables: Vec<TableMember>,
}

/// What proves the exported audit log is the source's.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuditEvidence {
    /// The source's checkpoint key (Ed25519, hex).
    pub public_key: String,
    /// Records in the exported log.
    pub size: u64,
    /// The source's latest signed checkpoint of the tenant's log (signed-note text), if
    /// it has one.
    pub checkpoint: Option<String>,
}

/// One table's member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableMember {
    /// Its path in the tar.
    pub member: String,
    /// `main` or `tenant`: the source database it came from.
    pub database: String,
    /// The table.
    pub table: String,
    /// The columns every row carries.
    pub columns: Vec<transfer::Column>,
    /// Rows (lines).
    pub rows: u64,
    /// SHA-256 of the member, hex.
    pub sha256: String,
}

/// A member being written: a temporary file, its digest and its row count.
pub(super) struct MemberWriter {
    path: PathBuf,
    out: BufWriter<File>,
    hash: Sha256,
    rows: u64,
}

impl MemberWriter {
    pub(super) fn create(path: PathBuf) -> Result<Self, CliError> {
        let file = File::create(&path).map_err(|e| message(format!("{}: {e}", path.display())))?;
        Ok(MemberWriter {
            path,
            out: BufWriter::new(file),
            hash: Sha256::new(),
            rows: 0,
        })
    }

    pub(super) fn row(&mut self, row: &Row) -> Result<(), CliError> {
        let mut line = serde_json::to_vec(row).map_err(data)?;
        line.push(b'\n');
        self.hash.update(&line);
        self.rows += 1;
        self.out
            .write_all(&line)
            .map_err(|e| message(format!("{}: {e}", self.path.display())))
    }

    pub(super) fn finish(mut self) -> Result<(PathBuf, String, u64), CliError> {
        self.out
            .flush()
            .map_err(|e| message(format!("{}: {e}", self.path.display())))?;
        Ok((self.path, hex(&self.hash.finalize()), self.rows))
    }
}

/// Writes the tar to `to.partial`, then renames it to `to`.
pub(super) fn write_archive(
    to: &Path,
    manifest: &Manifest,
    members: &[(TableMember, PathBuf)],
) -> Result<(), CliError> {
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let written = write_partial(to, &partial, manifest, members);
    if written.is_err() {
        // A failure that is reported leaves nothing behind; a killed export leaves only
        // the `.partial` file, which no import mistakes for an export.
        let _ = std::fs::remove_file(&partial);
    }
    written
}

fn write_partial(
    to: &Path,
    partial: &Path,
    manifest: &Manifest,
    members: &[(TableMember, PathBuf)],
) -> Result<(), CliError> {
    let fail = |e: std::io::Error| message(format!("{}: {e}", partial.display()));
    let file = File::create(partial).map_err(fail)?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let manifest_json = serde_json::to_vec_pretty(manifest).map_err(data)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest_json.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "manifest.json", manifest_json.as_slice())
        .map_err(fail)?;
    for (member, path) in members {
        let mut source = File::open(path).map_err(fail)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(source.metadata().map_err(fail)?.len());
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, &member.member, &mut source)
            .map_err(fail)?;
    }
    let out = tar.into_inner().map_err(fail)?;
    let file = out.into_inner().map_err(|e| fail(e.into_error()))?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(partial, to).map_err(|e| message(format!("{}: {e}", to.display())))?;
    Ok(())
}

/// An export read and checked: its manifest, and its members unpacked into `dir`.
pub(super) struct Unpacked {
    pub(super) manifest: Manifest,
    pub(super) dir: tempfile::TempDir,
}

impl Unpacked {
    pub(super) fn path(&self, member: &TableMember) -> PathBuf {
        self.dir.path().join(member_file(&member.member))
    }
}

/// A member's file name in the unpacked directory (the path's slashes flattened).
pub(super) fn member_file(member: &str) -> String {
    member.replace('/', "__")
}

/// Reads `file` once: the manifest first, then every member, each checked against the
/// manifest's digest and row count while it is unpacked. Anything missing, extra,
/// truncated or changed is refused, naming it.
pub(super) fn unpack(file: &Path) -> Result<Unpacked, CliError> {
    let shown = file.display().to_string();
    let bad = |what: String| message(format!("{shown}: {what}"));
    let reader = File::open(file).map_err(|e| bad(e.to_string()))?;
    let mut archive = tar::Archive::new(BufReader::new(reader));
    let mut entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tenant export: {e}")))?;
    let mut first = entries
        .next()
        .ok_or_else(|| bad("not a tenant export: it is empty".into()))?
        .map_err(|e| bad(format!("not a tenant export: {e}")))?;
    let name = first
        .path()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name != "manifest.json" {
        return Err(bad(format!(
            "not a tenant export: the first member is `{name}`, not manifest.json"
        )));
    }
    let mut text = Vec::new();
    (&mut first)
        .take(MAX_MANIFEST + 1)
        .read_to_end(&mut text)
        .map_err(|e| bad(format!("member `manifest.json` is truncated: {e}")))?;
    if text.len() as u64 > MAX_MANIFEST {
        return Err(bad("member `manifest.json` is too large".into()));
    }
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| bad(format!("member `manifest.json` does not parse: {e}")))?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        return Err(bad(format!(
            "format `{}` version {} is not {FORMAT} version {VERSION}",
            manifest.format, manifest.version
        )));
    }
    if !prefiq::context::is_tenant_name(&manifest.tenant) {
        return Err(bad(format!(
            "the manifest names `{}`, which is not a tenant name",
            manifest.tenant
        )));
    }
    let expected: BTreeMap<&str, &TableMember> = manifest
        .tables
        .iter()
        .map(|m| (m.member.as_str(), m))
        .collect();
    for member in &manifest.tables {
        let valid_name = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !valid_name(&member.table)
            || !(member.database == "main" || member.database == "tenant")
            || member.member != format!("tables/{}/{}.jsonl", member.database, member.table)
        {
            return Err(bad(format!(
                "the manifest names a bad member `{}`",
                member.member
            )));
        }
    }
    let dir = tempfile::tempdir().map_err(data)?;
    let mut seen = HashSet::new();
    for (count, entry) in entries.enumerate() {
        if count >= MAX_MEMBERS {
            return Err(bad("too many members".into()));
        }
        let mut entry = entry.map_err(|e| {
            bad(format!(
                "truncated or damaged after {} members: {e}",
                count + 1
            ))
        })?;
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(member) = expected.get(name.as_str()) else {
            return Err(bad(format!("member `{name}` is not in the manifest")));
        };
        if !seen.insert(name.clone()) {
            return Err(bad(format!("member `{name}` appears twice")));
        }
        let path = dir.path().join(member_file(&name));
        let mut out = BufWriter::new(File::create(&path).map_err(data)?);
        let mut hash = Sha256::new();
        let mut lines = 0u64;
        let mut read = 0u64;
        let size = entry.header().size().unwrap_or(0);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| bad(format!("member `{name}` is truncated: {e}")))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            hash.update(&buf[..n]);
            lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
            out.write_all(&buf[..n]).map_err(data)?;
        }
        out.flush().map_err(data)?;
        // The tar reader stops quietly where a cut file ends.
        if read < size {
            return Err(bad(format!(
                "member `{name}` is truncated: {read} of {size} bytes"
            )));
        }
        if hex(&hash.finalize()) != member.sha256 || lines != member.rows {
            return Err(bad(format!(
                "member `{name}` does not match its SHA-256 digest in the manifest"
            )));
        }
    }
    if let Some(missing) = manifest.tables.iter().find(|m| !seen.contains(&m.member)) {
        return Err(bad(format!(
            "member `{}` is missing (the file is truncated)",
            missing.member
        )));
    }
    Ok(Unpacked { manifest, dir })
}

/// Reads a member's rows in chunks of [`CHUNK_ROWS`], each line at most [`MAX_LINE`].
pub(super) struct RowReader {
    reader: BufReader<File>,
    member: String,
    line: u64,
}

impl RowReader {
    pub(super) fn open(unpacked: &Unpacked, member: &TableMember) -> Result<Self, CliError> {
        let file = File::open(unpacked.path(member)).map_err(data)?;
        Ok(RowReader {
            reader: BufReader::new(file),
            member: member.member.clone(),
            line: 0,
        })
    }

    /// The next chunk; empty at the end.
    pub(super) fn chunk(&mut self) -> Result<Vec<Row>, CliError> {
        let mut rows = Vec::new();
        let mut buf = Vec::new();
        while rows.len() < CHUNK_ROWS {
            buf.clear();
            let n = (&mut self.reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(data)?;
            if n == 0 {
                break;
            }
            self.line += 1;
            if buf.len() > MAX_LINE {
                return Err(message(format!(
                    "member `{}` line {}: longer than {MAX_LINE} bytes",
                    self.member, self.line
                )));
            }
            let row: Row = serde_json::from_slice(&buf).map_err(|e| {
                message(format!("member `{}` line {}: {e}", self.member, self.line))
            })?;
            rows.push(row);
        }
        Ok(rows)
    }
}
