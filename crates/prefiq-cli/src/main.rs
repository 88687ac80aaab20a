//! The `prefiq` binary.

use std::process::ExitCode;

use clap::Parser;
use prefiq_cli::{Cli, Command, installation, logging, run};

/// mimalloc instead of glibc's malloc: under load the server spends a fifth of its time in
/// glibc's allocator (arena locks and consolidation across worker threads).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands whose output is the point log only warnings until the config says otherwise.
    let initial = match cli.command {
        Command::Serve { .. } | Command::Boot { .. } => "info",
        _ => "warn",
    };
    let logs = logging::init(initial);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        let app = installation()?;
        let result = run(cli, app, &logs).await;
        // Spans still queued go out before the runtime (which runs their export) ends.
        prefiq_cli::telemetry::shutdown().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&anyhow::Error::new(e)),
    }
}

#[allow(clippy::print_stderr)]
fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::FAILURE
}
