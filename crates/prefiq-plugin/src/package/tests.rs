//! The package format's tests: packing, signing and opening, and what opening refuses.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;

use super::*;

fn demo() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        (
            "plugin.yml".to_owned(),
            b"name: demo\nversion: 0.1.0\n".to_vec(),
        ),
        ("plugin.wasm".to_owned(), b"\0asm\x01\0\0\0".to_vec()),
    ])
}

fn with(
    mut files: BTreeMap<String, Vec<u8>>,
    path: &str,
    content: &[u8],
) -> BTreeMap<String, Vec<u8>> {
    files.insert(path.to_owned(), content.to_vec());
    files
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn trusting(keys: &[&SigningKey], allow_unsigned: bool) -> TrustPolicy {
    TrustPolicy {
        keys: keys.iter().map(|k| PublicKey::of(k)).collect(),
        allow_unsigned,
    }
}

fn ok<T>(result: Result<T, PackageError>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

fn signed(files: &BTreeMap<String, Vec<u8>>, key: &SigningKey) -> Vec<u8> {
    ok(sign(&ok(pack_files(files)), key))
}

/// Rewrites a package's entries as they are, past every check but the tar format's.
fn rewrite(package: &[u8], change: impl FnOnce(&mut archive::Contents)) -> Vec<u8> {
    let mut contents = ok(archive::read(package, &Limits::DEFAULT));
    change(&mut contents);
    ok(archive::write(
        &contents.manifest,
        contents.signature.as_deref(),
        &contents.files,
    ))
}

fn refused<T: std::fmt::Debug>(result: Result<T, PackageError>, fragment: &str) -> PackageError {
    match result {
        Err(e) if e.to_string().contains(fragment) => e,
        got => panic!("{got:?}, wanted an error with {fragment:?}"),
    }
}

#[test]
fn packages_round_trip_signed() {
    let files = with(demo(), "schema/todo.yaml", b"name: todo\n");
    assert_eq!(
        ok(pack_files(&files)),
        ok(pack_files(&files)),
        "packing is reproducible"
    );
    let package = signed(&files, &key(1));
    let opened = ok(open(&package, &trusting(&[&key(2), &key(1)], false)));
    assert_eq!(opened.manifest.name, "demo");
    assert_eq!(opened.manifest.version.to_string(), "0.1.0");
    assert_eq!(opened.files, files);
    assert_eq!(opened.wasm(), b"\0asm\x01\0\0\0");
    assert_eq!(opened.file("schema/todo.yaml"), Some(&b"name: todo\n"[..]));
    assert_eq!(opened.file("MANIFEST.json"), None);
    assert_eq!(opened.signer, Some(PublicKey::of(&key(1))));
    assert_eq!(opened.digest, digest_hex(&package));
    assert_eq!(
        digest_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // Signing again replaces the signature.
    let resigned = ok(sign(&package, &key(2)));
    assert_eq!(
        ok(open(&resigned, &trusting(&[&key(2)], false))).signer,
        Some(PublicKey::of(&key(2)))
    );
    refused(
        open(&resigned, &trusting(&[&key(1)], false)),
        "does not trust",
    );
}

#[test]
fn signatures_and_trust_are_enforced() {
    let unsigned = ok(pack_files(&demo()));
    let package = signed(&demo(), &key(1));
    let a = PublicKey::of(&key(1)).to_string();
    let swapped = rewrite(&package, |contents| {
        let text =
            String::from_utf8_lossy(contents.signature.as_deref().unwrap_or_default()).into_owned();
        let b = PublicKey::of(&key(2)).to_string();
        contents.signature = Some(
            text.replace(&a["ed25519:".len()..], &b["ed25519:".len()..])
                .into_bytes(),
        );
    });
    assert!(matches!(
        open(&unsigned, &trusting(&[&key(1)], false)),
        Err(PackageError::Unsigned)
    ));
    refused(
        open(&unsigned, &trusting(&[], false)),
        "production refuses unsigned packages",
    );
    assert_eq!(ok(open(&unsigned, &trusting(&[], true))).signer, None);
    let e = refused(
        open(&package, &trusting(&[&key(2)], true)),
        &format!("signed by {a}, which"),
    );
    assert_eq!(e, PackageError::Untrusted(a.clone()));
    for trust in [trusting(&[&key(1), &key(2)], false), trusting(&[], true)] {
        assert!(matches!(
            open(&swapped, &trust),
            Err(PackageError::BadSignature(_))
        ));
    }
}

fn wasm_range(package: &[u8]) -> std::ops::Range<usize> {
    let mut archive = tar::Archive::new(package);
    for entry in archive.entries().unwrap_or_else(|e| panic!("{e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        if &*entry.path_bytes() == b"plugin.wasm" {
            let start = entry.raw_file_position() as usize;
            return start..start + entry.size() as usize;
        }
    }
    panic!("no plugin.wasm");
}

#[test]
fn every_changed_byte_of_the_module_is_refused_naming_it() {
    let package = signed(&demo(), &key(1));
    let range = wasm_range(&package);
    assert_eq!(range.len(), 8);
    for at in range {
        for flip in [0x01, 0x80, 0xff] {
            let mut tampered = package.clone();
            tampered[at] ^= flip;
            let e = refused(
                open(&tampered, &trusting(&[&key(1)], true)),
                "plugin.wasm: digest mismatch (manifest says ",
            );
            assert!(
                matches!(e, PackageError::Tampered { ref file, .. } if file == "plugin.wasm"),
                "{e:?}"
            );
        }
    }
}

proptest! {
    #[test]
    fn a_changed_byte_anywhere_in_the_module_is_refused(
        wasm in proptest::collection::vec(any::<u8>(), 1..2000),
        at in any::<prop::sample::Index>(),
        flip in 1u8..,
    ) {
        let package = signed(&with(demo(), "plugin.wasm", &wasm), &key(1));
        let range = wasm_range(&package);
        let mut tampered = package.clone();
        tampered[range.start + at.index(range.len())] ^= flip;
        let e = open(&tampered, &trusting(&[&key(1)], false)).err();
        prop_assert!(
            matches!(&e, Some(PackageError::Tampered { file, .. }) if file == "plugin.wasm"),
            "{e:?}"
        );
    }
}

#[test]
fn the_manifest_must_cover_the_files_exactly() {
    let package = signed(&with(demo(), "templates/a.html", b"<p>"), &key(1));
    let trust = trusting(&[&key(1)], false);
    let added = rewrite(&package, |c| {
        c.files
            .insert("static/extra.js".into(), b"steal()".to_vec());
    });
    assert_eq!(
        open(&added, &trust).err(),
        Some(PackageError::Unexpected("static/extra.js".into()))
    );
    let removed = rewrite(&package, |c| {
        c.files.remove("templates/a.html");
    });
    assert_eq!(
        open(&removed, &trust).err(),
        Some(PackageError::Missing("templates/a.html".into()))
    );
    let outside = rewrite(&package, |c| {
        c.manifest = String::from_utf8_lossy(&c.manifest)
            .replace("\"files\":{", "\"files\":{\"../x\":\"00\",")
            .into_bytes();
    });
    refused(open(&outside, &trust), "bad path \"../x\"");
    for (from, to, fragment) in [
        ("\"format\":1", "\"format\":2", "format 2 is not one"),
        ("\"format\":1", "\"format\": 1", "canonical form"),
        ("\"plugin\"", "\"extra\":1,\"plugin\"", "unknown field"),
    ] {
        let changed = rewrite(&package, |c| {
            c.manifest = String::from_utf8_lossy(&c.manifest)
                .replacen(from, to, 1)
                .into_bytes();
        });
        refused(open(&changed, &trusting(&[], true)), fragment);
    }
}

#[test]
fn plugin_yml_must_agree_with_the_manifest() {
    for (plugin, version, fragment) in [
        (
            "other",
            "0.1.0",
            "name \"demo\" is not the plugin \"other\"",
        ),
        ("demo", "0.2.0", "version 0.1.0 is not the version 0.2.0"),
    ] {
        let package = rewrite(&ok(pack_files(&demo())), |c| {
            let Ok(mut manifest) = DigestManifest::parse(&c.manifest) else {
                panic!("parse")
            };
            manifest.plugin = plugin.into();
            manifest.version = ok(version
                .parse()
                .map_err(|e: semver::Error| PackageError::Malformed(e.to_string())));
            c.manifest = ok(manifest.to_bytes());
        });
        refused(sign(&package, &key(1)), fragment);
        let package = rewrite(&package, |c| {
            c.signature = Some(ok(signing::signature_file(&key(1), &c.manifest)))
        });
        assert!(matches!(
            refused(open(&package, &trusting(&[&key(1)], false)), fragment),
            PackageError::Manifest(_)
        ));
    }
}

#[test]
fn packing_checks_the_files() {
    let mut missing = demo();
    missing.remove("plugin.wasm");
    for (files, fragment) in [
        (missing, "plugin.wasm: missing from the package"),
        (
            with(demo(), "plugin.yml", b"name: Demo\nversion: 0.1.0\n"),
            "plugin.yml: name \"Demo\"",
        ),
        (with(demo(), "plugin.yml", b"\xff"), "plugin.yml: not UTF-8"),
        (
            with(demo(), "notes.txt", b""),
            "bad path \"notes.txt\": not part of a plugin",
        ),
        (
            with(demo(), "schema/todo.json", b""),
            "bad path \"schema/todo.json\"",
        ),
        (
            with(demo(), "MANIFEST.json", b""),
            "bad path \"MANIFEST.json\"",
        ),
        (with(demo(), "../x", b""), "bad path \"../x\""),
        (
            with(with(demo(), "static/a", b""), "static/a/b", b""),
            "both a file and a directory",
        ),
    ] {
        refused(pack_files(&files), fragment);
    }
}

#[test]
fn bounds_are_enforced() {
    // MANIFEST.json (about 330 bytes) is a file under the bounds too.
    let files = with(demo(), "static/big.bin", &[7; 1000]);
    let limits = |package_bytes, file_bytes, files| Limits {
        package_bytes,
        file_bytes,
        files,
    };
    let package = ok(pack_files(&files));
    let size = package.len() as u64;
    let trust = trusting(&[], true);
    assert!(open_with(&package, &trust, &limits(size, 1000, 3)).is_ok());
    for (limits, fragment) in [
        (limits(size - 1, 1000, 3), "bytes; at most"),
        (
            limits(size, 999, 3),
            "static/big.bin is 1000 bytes; at most 999 per file",
        ),
        (limits(size, 1000, 2), "more than 2 entries"),
    ] {
        assert!(matches!(
            refused(open_with(&package, &trust, &limits), fragment),
            PackageError::TooLarge(_)
        ));
        assert!(matches!(
            refused(sign_with(&package, &key(1), &limits), fragment),
            PackageError::TooLarge(_)
        ));
    }
    // Signing adds SIGNATURE: a package at the bound cannot be signed past it.
    refused(
        sign_with(&package, &key(1), &limits(size, 1000, 3)),
        "bytes; at most",
    );
    for (limits, fragment) in [
        (
            limits(1000, 1000, 3),
            "its files hold 1034 bytes; at most 1000",
        ),
        (limits(1100, 1000, 3), "bytes; at most 1100"),
        (limits(size, 999, 3), "static/big.bin is 1000 bytes"),
        (limits(size, 1000, 2), "3 files; at most 2"),
    ] {
        assert!(matches!(
            refused(pack_files_with(&files, &limits), fragment),
            PackageError::TooLarge(_)
        ));
    }
    refused(
        open(&[0; 1024], &trust),
        "malformed package: no MANIFEST.json",
    );
    refused(
        open(&[0; 10], &trust),
        "malformed package: not a readable tar archive",
    );
    refused(
        open(&[1; 600], &trust),
        "malformed package: not a readable tar archive",
    );
}

#[test]
fn directories_are_packed_within_the_layout() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let write = |path: &str, content: &[u8]| {
        let path = dir.path().join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(path, content).unwrap_or_else(|e| panic!("{e}"));
    };
    for (path, content) in demo() {
        write(&path, &content);
    }
    write("schema/x.yaml", b"name: x\n");
    write("templates/todo/list.html", b"<ul>");
    std::fs::create_dir(dir.path().join("static")).unwrap_or_else(|e| panic!("{e}"));
    let opened = ok(open(&ok(pack_dir(dir.path())), &trusting(&[], true)));
    assert_eq!(
        opened.files.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "plugin.wasm",
            "plugin.yml",
            "schema/x.yaml",
            "templates/todo/list.html"
        ]
    );
    assert_eq!(opened.file("schema/x.yaml"), Some(&b"name: x\n"[..]));

    write("notes.txt", b"todo");
    refused(
        pack_dir(dir.path()),
        "bad path \"notes.txt\": not part of a plugin",
    );
    std::fs::remove_file(dir.path().join("notes.txt")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(dir.path().join("docs")).unwrap_or_else(|e| panic!("{e}"));
    refused(pack_dir(dir.path()), "bad path \"docs\"");
    std::fs::remove_dir(dir.path().join("docs")).unwrap_or_else(|e| panic!("{e}"));
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("static/passwd"))
            .unwrap_or_else(|e| panic!("{e}"));
        refused(
            pack_dir(dir.path()),
            "bad path \"static/passwd\": a symbolic link",
        );
        std::fs::remove_file(dir.path().join("static/passwd")).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::remove_file(dir.path().join("plugin.wasm")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        pack_dir(dir.path()).err(),
        Some(PackageError::Missing("plugin.wasm".into()))
    );
    assert!(matches!(
        pack_dir(&dir.path().join("nowhere")),
        Err(PackageError::Io { .. })
    ));
}
