//! The backup file at its boundary: what is written unpacks to the same bytes, and every
//! kind of damage is refused naming what does not match.

use std::path::{Path, PathBuf};

use prefiq_backup::archive::{ArchiveWriter, partial_path, unpack};
use prefiq_backup::manifest::{DatabaseMember, FORMAT, Manifest, MemberKind, VERSION};

fn manifest() -> Manifest {
    Manifest {
        format: FORMAT.into(),
        version: VERSION,
        created_at: "2026-12-07T00:00:00Z".into(),
        prefiq_version: "0.1.0".into(),
        backend: "sqlite".into(),
        tenancy: "shared".into(),
        databases: vec![DatabaseMember {
            tenant: None,
            member: "databases/main.sqlite".into(),
        }],
        includes_keys: false,
        members: Vec::new(),
    }
}

/// Writes a backup of two members into `dir` and answers its path.
fn write_backup(dir: &Path) -> PathBuf {
    let database = dir.join("main.sqlite");
    std::fs::write(&database, vec![7u8; 10_000]).expect("write");
    let config = dir.join("default.yaml");
    std::fs::write(&config, b"app:\n  name: drill\n").expect("write");
    let target = dir.join("out.backup");
    let mut writer = ArchiveWriter::create(&target).expect("create");
    assert!(
        partial_path(&target).exists(),
        "written under .partial first"
    );
    assert!(
        !target.exists(),
        "nothing under the final name until finished"
    );
    writer
        .add_file("databases/main.sqlite", &database, MemberKind::Database)
        .expect("add");
    writer
        .add_file(
            "installation/config/default.yaml",
            &config,
            MemberKind::Config,
        )
        .expect("add");
    writer.finish(manifest()).expect("finish");
    assert!(!partial_path(&target).exists());
    target
}

/// Unpacks `bytes` as a backup file: Ok(member count) or the error's text.
fn check(bytes: &[u8]) -> Result<usize, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("in.backup");
    std::fs::write(&file, bytes).expect("write");
    let into = dir.path().join("unpacked");
    unpack(&file, &into)
        .map(|m| m.members.len())
        .map_err(|e| e.to_string())
}

fn expect_refused(bytes: &[u8], needle: &str) {
    match check(bytes) {
        Ok(n) => panic!("accepted ({n} members), expected a refusal naming `{needle}`"),
        Err(message) => assert!(
            message.contains(needle),
            "`{message}` does not contain `{needle}`"
        ),
    }
}

#[test]
fn a_backup_unpacks_to_the_bytes_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = write_backup(dir.path());
    let into = dir.path().join("unpacked");
    let manifest = unpack(&backup, &into).expect("unpack");
    assert_eq!(manifest.members.len(), 2);
    assert_eq!(
        std::fs::read(into.join("databases/main.sqlite")).expect("read"),
        vec![7u8; 10_000]
    );
    assert_eq!(
        manifest.member("databases/main.sqlite").map(|m| m.bytes),
        Some(10_000)
    );
}

#[test]
fn damage_is_refused_naming_what_does_not_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read(write_backup(dir.path())).expect("read");
    assert_eq!(check(&good), Ok(2));

    // A byte of the first member's data changed (its header is the first 512 bytes).
    let mut changed = good.clone();
    changed[512 + 100] ^= 0xFF;
    expect_refused(&changed, "databases/main.sqlite does not match its SHA-256");

    // Cut short at several places: before the manifest, inside a member, inside a header.
    for cut in [good.len() - 2048, good.len() / 2, 700, 100] {
        let refused = check(&good[..cut]);
        assert!(refused.is_err(), "a file cut at {cut} bytes was accepted");
    }
    expect_refused(&good[..10_000 + 1024 + 512], "cut short");

    // Not a tar at all.
    expect_refused(b"hello, this is not a backup", "refused");

    // The manifest's own text changed: it no longer parses or no longer matches.
    let at = good
        .windows(FORMAT.len())
        .rposition(|w| w == FORMAT.as_bytes())
        .expect("the manifest names its format");
    let mut renamed = good.clone();
    renamed[at] = b'X';
    expect_refused(&renamed, "not a Codexion backup");
}

#[test]
fn an_unfinished_backup_leaves_only_its_partial_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("x.backup");
    let source = dir.path().join("data");
    std::fs::write(&source, b"data").expect("write");
    let mut writer = ArchiveWriter::create(&target).expect("create");
    writer
        .add_file("databases/main.sqlite", &source, MemberKind::Database)
        .expect("add");
    // Dropped without finishing, as a killed process would leave it.
    drop(writer);
    assert!(!target.exists());
    let refused = unpack(&partial_path(&target), &dir.path().join("u"));
    assert!(refused.is_err());
}

#[test]
fn member_paths_that_escape_are_refused_when_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("data");
    std::fs::write(&source, b"data").expect("write");
    let mut writer = ArchiveWriter::create(&dir.path().join("x.backup")).expect("create");
    let refused = writer.add_file("../escape", &source, MemberKind::Config);
    assert!(refused.is_err());
}
