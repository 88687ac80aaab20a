//! The tar container: reading a package's entries within bounds, writing them, and which
//! paths a package may hold.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use super::{Limits, PackageError};

/// The digest manifest's entry.
pub(super) const MANIFEST: &str = "MANIFEST.json";
/// The signature's entry.
pub(super) const SIGNATURE: &str = "SIGNATURE";
/// The plugin's manifest.
pub(super) const PLUGIN_YML: &str = "plugin.yml";
/// The plugin's module.
pub(super) const WASM: &str = "plugin.wasm";

/// The directories whose whole trees a package may hold.
const TREES: [&str; 3] = ["templates", "static", "locales"];
/// The directory of entity schemas: `*.yaml` files, no subdirectories.
const SCHEMA: &str = "schema";
/// The longest path in a package.
const MAX_PATH_LEN: usize = 255;
/// The size of a tar block.
const BLOCK: u64 = 512;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// A package's entries, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Contents {
    /// `MANIFEST.json`.
    pub(super) manifest: Vec<u8>,
    /// `SIGNATURE`, when signed.
    pub(super) signature: Option<Vec<u8>>,
    /// Every other file.
    pub(super) files: BTreeMap<String, Vec<u8>>,
}

pub(super) fn bad_path(path: &str, reason: impl std::fmt::Display) -> PackageError {
    PackageError::BadPath(format!("{path:?}: {reason}"))
}

fn malformed(error: impl std::fmt::Display) -> PackageError {
    PackageError::Malformed(error.to_string())
}

fn unreadable(error: std::io::Error) -> PackageError {
    PackageError::Malformed(format!("not a readable tar archive: {error}"))
}

/// Checks that `path` may name an entry of `kind` among a plugin's files: relative,
/// `/`-separated, without empty, `.` or `..` components, backslashes, colons or control
/// characters, and in the layout (`plugin.yml`, `plugin.wasm`, `schema/*.yaml`,
/// `templates/**`, `static/**`, `locales/**`).
pub(super) fn check_path(path: &str, kind: Kind) -> Result<(), PackageError> {
    if path.is_empty() {
        return Err(bad_path(path, "an empty path"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(bad_path(
            path,
            format_args!("longer than {MAX_PATH_LEN} bytes"),
        ));
    }
    if path.starts_with('/') {
        return Err(bad_path(path, "an absolute path"));
    }
    if let Some(c) = path
        .chars()
        .find(|c| c.is_control() || matches!(c, '\\' | ':'))
    {
        return Err(bad_path(path, format_args!("a path may not hold {c:?}")));
    }
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts {
        match *part {
            "" => return Err(bad_path(path, "an empty path component")),
            "." | ".." => {
                return Err(bad_path(path, format_args!("a path may not hold {part:?}")));
            }
            _ => {}
        }
    }
    let allowed = match (kind, parts.as_slice()) {
        (Kind::File, [name]) => *name == PLUGIN_YML || *name == WASM,
        (Kind::File, [SCHEMA, name]) => name.len() > ".yaml".len() && name.ends_with(".yaml"),
        (Kind::File, [top, _, ..]) => TREES.contains(top),
        (Kind::Dir, [SCHEMA]) => true,
        (Kind::Dir, [top, ..]) => TREES.contains(top),
        _ => false,
    };
    if !allowed {
        return Err(bad_path(
            path,
            "not part of a plugin (a package holds plugin.yml, plugin.wasm, schema/*.yaml, \
             templates/, static/ and locales/)",
        ));
    }
    Ok(())
}

/// Checks that no path is both a file and a directory.
pub(super) fn check_tree<'a>(
    files: impl Iterator<Item = &'a str> + Clone,
    dirs: &BTreeSet<String>,
) -> Result<(), PackageError> {
    let all: BTreeSet<&str> = files.clone().collect();
    for file in files {
        if dirs.contains(file) {
            return Err(bad_path(file, "both a file and a directory"));
        }
        for (at, _) in file.match_indices('/') {
            let parent = &file[..at];
            if all.contains(parent) {
                return Err(bad_path(parent, "both a file and a directory"));
            }
        }
    }
    Ok(())
}

/// Checks one file's size against the bound.
pub(super) fn check_file_size(path: &str, size: u64, limits: &Limits) -> Result<(), PackageError> {
    if size > limits.file_bytes {
        return Err(PackageError::TooLarge(format!(
            "{path} is {size} bytes; at most {} per file",
            limits.file_bytes
        )));
    }
    Ok(())
}

/// Reads a package's entries: `MANIFEST.json` first, then `SIGNATURE` if signed, then the
/// plugin's files. Each entry's kind, path and size are checked before its content is
/// read; directories are checked and dropped. Nothing may follow the archive's end but
/// zeros.
pub(super) fn read(bytes: &[u8], limits: &Limits) -> Result<Contents, PackageError> {
    let mut archive = tar::Archive::new(bytes);
    let entries = archive.entries().map_err(unreadable)?;
    let mut manifest = None;
    let mut signature = None;
    let mut files = BTreeMap::new();
    let mut dirs = BTreeSet::new();
    let mut total = 0u64;
    let mut end = 0u64;
    for (index, entry) in entries.enumerate() {
        let mut entry = entry.map_err(unreadable)?;
        let raw_path = entry.path_bytes();
        let path = match std::str::from_utf8(&raw_path) {
            Ok(path) => path.to_owned(),
            Err(_) => return Err(bad_path(&String::from_utf8_lossy(&raw_path), "not UTF-8")),
        };
        let entry_type = entry.header().entry_type();
        let size = entry.size();
        end = entry
            .raw_file_position()
            .checked_add(size.div_ceil(BLOCK) * BLOCK)
            .ok_or_else(|| malformed(format_args!("{path}: size overflow")))?;

        let kind = if entry_type.is_file() {
            Kind::File
        } else if entry_type.is_dir() {
            Kind::Dir
        } else if entry_type.is_symlink() {
            return Err(bad_path(
                &path,
                "a symbolic link (a package holds only regular files and directories)",
            ));
        } else if entry_type.is_hard_link() {
            return Err(bad_path(
                &path,
                "a hard link (a package holds only regular files and directories)",
            ));
        } else {
            return Err(bad_path(
                &path,
                format_args!(
                    "an entry of type {entry_type:?} (a package holds only regular files and directories)"
                ),
            ));
        };

        if !matches!(path.as_str(), MANIFEST | SIGNATURE)
            && files.len() + dirs.len() >= limits.files
        {
            return Err(PackageError::TooLarge(format!(
                "more than {} entries besides {MANIFEST} and {SIGNATURE}",
                limits.files
            )));
        }
        match (index, path.as_str(), kind) {
            (_, MANIFEST | SIGNATURE, Kind::Dir) => {
                return Err(bad_path(&path, "a directory, where a file must be"));
            }
            (0, MANIFEST, _) => {}
            (0, _, _) => {
                return Err(malformed(format_args!(
                    "the first entry must be {MANIFEST}, not {path:?}"
                )));
            }
            (_, MANIFEST, _) => return Err(bad_path(&path, "in the package twice")),
            (1, SIGNATURE, _) => {}
            (_, SIGNATURE, _) => {
                return Err(malformed(format_args!(
                    "{SIGNATURE} must directly follow {MANIFEST}"
                )));
            }
            (_, _, Kind::Dir) => {
                let dir = path.strip_suffix('/').unwrap_or(&path);
                check_path(dir, Kind::Dir)?;
                if size != 0 {
                    return Err(malformed(format_args!("directory {dir} has content")));
                }
                if !dirs.insert(dir.to_owned()) {
                    return Err(bad_path(dir, "in the package twice"));
                }
                continue;
            }
            (_, _, Kind::File) => {
                check_path(&path, Kind::File)?;
                if files.contains_key(&path) {
                    return Err(bad_path(&path, "in the package twice"));
                }
            }
        }

        check_file_size(&path, size, limits)?;
        total = total.saturating_add(size);
        if total > limits.package_bytes {
            return Err(PackageError::TooLarge(format!(
                "its files hold more than {} bytes",
                limits.package_bytes
            )));
        }
        let capacity = usize::try_from(size).unwrap_or(usize::MAX).min(bytes.len());
        let mut content = Vec::with_capacity(capacity);
        entry
            .read_to_end(&mut content)
            .map_err(|e| malformed(format_args!("{path}: {e}")))?;
        if content.len() as u64 != size {
            return Err(malformed(format_args!("{path} is truncated")));
        }
        match (index, path.as_str()) {
            (0, _) => manifest = Some(content),
            (1, SIGNATURE) => signature = Some(content),
            _ => {
                files.insert(path, content);
            }
        }
    }
    let trailing = usize::try_from(end)
        .ok()
        .and_then(|end| bytes.get(end..))
        .ok_or_else(|| malformed("the archive is truncated"))?;
    if trailing.iter().any(|b| *b != 0) {
        return Err(malformed("data after the end of the archive"));
    }
    let manifest = manifest.ok_or_else(|| malformed(format_args!("no {MANIFEST}")))?;
    check_tree(files.keys().map(String::as_str), &dirs)?;
    Ok(Contents {
        manifest,
        signature,
        files,
    })
}

/// Writes a package: `MANIFEST.json`, `SIGNATURE` if given, then `files` in path order,
/// as ustar entries with fixed metadata (mode 0644, owner 0, time 0) so that the same
/// files make the same bytes.
pub(super) fn write(
    manifest: &[u8],
    signature: Option<&[u8]>,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<u8>, PackageError> {
    let mut builder = tar::Builder::new(Vec::new());
    append(&mut builder, MANIFEST, manifest)?;
    if let Some(signature) = signature {
        append(&mut builder, SIGNATURE, signature)?;
    }
    for (path, content) in files {
        append(&mut builder, path, content)?;
    }
    builder.into_inner().map_err(malformed)
}

fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    content: &[u8],
) -> Result<(), PackageError> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    builder
        .append_data(&mut header, path, content)
        .map_err(|e| malformed(format_args!("{path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, kind: Kind, expected: Result<(), &str>) {
        match (check_path(path, kind), expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(fragment)) => {
                assert!(
                    e.to_string().contains(fragment),
                    "{path} → {e}, wanted {fragment:?}"
                );
            }
            (got, expected) => panic!("{path} ({kind:?}) → {got:?}, wanted {expected:?}"),
        }
    }

    #[test]
    fn paths_are_checked() {
        use Kind::{Dir, File};
        let outside = "not part of a plugin";
        for (path, kind, expected) in [
            ("plugin.yml", File, Ok(())),
            ("plugin.wasm", File, Ok(())),
            ("schema/todo.yaml", File, Ok(())),
            ("templates/todo/list.html", File, Ok(())),
            ("static/app.css", File, Ok(())),
            ("locales/fr.ftl", File, Ok(())),
            ("schema", Dir, Ok(())),
            ("templates", Dir, Ok(())),
            ("static/img", Dir, Ok(())),
            ("", File, Err("empty path")),
            ("/etc/passwd", File, Err("absolute")),
            ("../x", File, Err("\"..\"")),
            ("templates/../plugin.wasm", File, Err("\"..\"")),
            ("templates/./a", File, Err("\".\"")),
            ("templates//a", File, Err("empty path component")),
            ("templates/a\\b", File, Err("'\\\\'")),
            ("C:/x", File, Err("':'")),
            ("templates/a\nb", File, Err("'\\n'")),
            ("notes.txt", File, Err(outside)),
            ("MANIFEST.json", File, Err(outside)),
            ("SIGNATURE", File, Err(outside)),
            ("Plugin.wasm", File, Err(outside)),
            ("schema/todo.yml", File, Err(outside)),
            ("schema/.yaml", File, Err(outside)),
            ("schema/sub/todo.yaml", File, Err(outside)),
            ("templates", File, Err(outside)),
            ("schema/sub", Dir, Err(outside)),
            ("docs", Dir, Err(outside)),
            ("plugin.yml", Dir, Err(outside)),
        ] {
            check(path, kind, expected);
        }
        check(
            &format!("templates/{}", "a".repeat(300)),
            File,
            Err("longer than"),
        );
    }

    fn manifest_entry(builder: &mut tar::Builder<Vec<u8>>) {
        let Ok(()) = append(builder, MANIFEST, b"{}") else {
            panic!("append");
        };
    }

    /// Appends an entry whose name is written into the header's bytes, past the tar
    /// crate's own checks.
    fn raw_entry(
        builder: &mut tar::Builder<Vec<u8>>,
        name: &[u8],
        entry_type: tar::EntryType,
        link: Option<&str>,
        content: &[u8],
    ) {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_entry_type(entry_type);
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        if let Some(link) = link {
            header.set_link_name(link).unwrap_or_else(|e| panic!("{e}"));
        }
        header.set_cksum();
        builder
            .append(&header, content)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn finish(builder: tar::Builder<Vec<u8>>) -> Vec<u8> {
        builder.into_inner().unwrap_or_else(|e| panic!("{e}"))
    }

    fn read_err(bytes: &[u8]) -> String {
        match read(bytes, &Limits::DEFAULT) {
            Ok(contents) => panic!("read {contents:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn hostile_entries_are_refused() {
        use tar::EntryType;
        for (name, entry_type, link, fragment) in [
            (&b"../x"[..], EntryType::Regular, None, "bad path \"../x\""),
            (b"/etc/passwd", EntryType::Regular, None, "absolute"),
            (b"templates/../../x", EntryType::Regular, None, "\"..\""),
            (
                b"plugin.wasm",
                EntryType::Symlink,
                Some("/etc/passwd"),
                "symbolic link",
            ),
            (
                b"templates/a",
                EntryType::Link,
                Some("plugin.wasm"),
                "hard link",
            ),
            (b"templates/tty", EntryType::Char, None, "Char"),
            (b"templates/fifo", EntryType::Fifo, None, "Fifo"),
            (b"static/\xff", EntryType::Regular, None, "not UTF-8"),
            (
                b"notes.txt",
                EntryType::Regular,
                None,
                "not part of a plugin",
            ),
            (
                b"SIGNATURE",
                EntryType::Directory,
                None,
                "a directory, where a file must be",
            ),
        ] {
            let mut builder = tar::Builder::new(Vec::new());
            manifest_entry(&mut builder);
            raw_entry(&mut builder, name, entry_type, link, b"x");
            let bytes = finish(builder);
            let got = read_err(&bytes);
            assert!(
                got.contains(fragment),
                "{:?}: {got}, wanted {fragment:?}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn layout_is_enforced() {
        use tar::EntryType::{Directory, Regular};
        type Entry<'a> = (&'a [u8], tar::EntryType, &'a [u8]);
        let cases: [(&[Entry<'_>], &str); 8] = [
            (&[], "no MANIFEST.json"),
            (
                &[(b"plugin.yml", Regular, b"x")],
                "the first entry must be MANIFEST.json",
            ),
            (
                &[
                    (b"MANIFEST.json", Regular, b"{}"),
                    (b"plugin.yml", Regular, b"x"),
                    (b"SIGNATURE", Regular, b"x"),
                ],
                "SIGNATURE must directly follow",
            ),
            (
                &[
                    (b"MANIFEST.json", Regular, b"{}"),
                    (b"MANIFEST.json", Regular, b"{}"),
                ],
                "in the package twice",
            ),
            (
                &[
                    (b"MANIFEST.json", Regular, b"{}"),
                    (b"plugin.yml", Regular, b"a"),
                    (b"plugin.yml", Regular, b"b"),
                ],
                "\"plugin.yml\": in the package twice",
            ),
            (
                &[
                    (b"MANIFEST.json", Regular, b"{}"),
                    (b"static/", Directory, b""),
                    (b"static", Directory, b""),
                ],
                "\"static\": in the package twice",
            ),
            (
                &[
                    (b"MANIFEST.json", Regular, b"{}"),
                    (b"static/a", Regular, b"x"),
                    (b"static/a/b", Regular, b"y"),
                ],
                "\"static/a\": both a file and a directory",
            ),
            (
                &[
                    (b"MANIFEST.json", Regular, b"{}"),
                    (b"static/a", Regular, b"x"),
                    (b"static/a", Directory, b""),
                ],
                "\"static/a\": both a file and a directory",
            ),
        ];
        for (entries, fragment) in cases {
            let mut builder = tar::Builder::new(Vec::new());
            for (name, entry_type, content) in entries {
                raw_entry(&mut builder, name, *entry_type, None, content);
            }
            let got = read_err(&finish(builder));
            assert!(got.contains(fragment), "{got}, wanted {fragment:?}");
        }
    }

    #[test]
    fn truncation_and_trailing_data_are_refused() {
        let files = BTreeMap::from([("plugin.wasm".to_owned(), vec![7u8; 700])]);
        let bytes = write(b"{}", Some(b"sig"), &files).unwrap_or_else(|e| panic!("{e}"));
        let Ok(contents) = read(&bytes, &Limits::DEFAULT) else {
            panic!("read");
        };
        assert_eq!(contents.files, files);
        assert_eq!(contents.signature.as_deref(), Some(&b"sig"[..]));
        // Cut inside plugin.wasm's content (headers: 3 × 512, contents 512 + 512 before it).
        let got = read_err(&bytes[..512 * 5 + 100]);
        assert!(got.contains("plugin.wasm is truncated"), "{got}");
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"hidden");
        assert!(read_err(&trailing).contains("data after the end"));
        let mut zeros = bytes;
        zeros.extend_from_slice(&[0; 9216]);
        assert!(read(&zeros, &Limits::DEFAULT).is_ok());
        assert!(read_err(b"not a tar archive").contains("malformed"));
    }

    #[test]
    fn long_paths_round_trip() {
        let deep = format!("templates/{}/{}.html", "d".repeat(120), "f".repeat(110));
        let files = BTreeMap::from([(deep.clone(), b"<p>".to_vec())]);
        let bytes = write(b"{}", None, &files).unwrap_or_else(|e| panic!("{e}"));
        let contents = read(&bytes, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(contents.files.keys().collect::<Vec<_>>(), [&deep]);
    }

    #[test]
    fn entries_and_sizes_are_bounded_before_reading() {
        let files: BTreeMap<String, Vec<u8>> = (0..5)
            .map(|i| (format!("static/{i}"), vec![1u8; 10]))
            .collect();
        let bytes = write(b"{}", Some(b"s"), &files).unwrap_or_else(|e| panic!("{e}"));
        let limits = |package_bytes, file_bytes, files| Limits {
            package_bytes,
            file_bytes,
            files,
        };
        assert!(read(&bytes, &limits(1 << 20, 10, 5)).is_ok());
        for (limits, fragment) in [
            (limits(1 << 20, 10, 4), "more than 4 entries"),
            (
                limits(1 << 20, 9, 5),
                "static/0 is 10 bytes; at most 9 per file",
            ),
            (limits(40, 10, 5), "more than 40 bytes"),
        ] {
            match read(&bytes, &limits) {
                Err(e @ PackageError::TooLarge(_)) => {
                    assert!(e.to_string().contains(fragment), "{e}, wanted {fragment:?}")
                }
                got => panic!("{got:?}, wanted {fragment:?}"),
            }
        }
    }
}
