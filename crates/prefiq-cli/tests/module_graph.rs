//! Boot refuses a broken module graph, naming the modules, through the CLI's own entry point.
#![allow(clippy::unwrap_used)]

use clap::Parser;
use prefiq::{App, Manifest, Module};
use prefiq_cli::{Cli, logging, run};

struct Bare(Manifest);

impl Module for Bare {
    fn manifest(&self) -> &Manifest {
        &self.0
    }
}

fn module(yaml: &str) -> Bare {
    Bare(Manifest::from_yaml(yaml).unwrap())
}

async fn check(modules: Vec<Bare>, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut app = App::new()
        .provider(prefiq_data::DatabaseProvider)
        .provider(prefiq_http::HttpProvider);
    for m in modules {
        app = app.module(m);
    }
    let cli = Cli::parse_from([
        "prefiq",
        "--dir",
        dir.path().to_str().unwrap(),
        "boot",
        "--dry-run",
    ]);
    let logs = logging::init("warn");
    let err = run(cli, app, &logs).await.unwrap_err();
    assert_eq!(err.to_string(), expected);
}

#[tokio::test]
async fn cycles_missing_and_incompatible_dependencies_stop_boot() {
    check(
        vec![
            module("name: billing\nversion: 1.0.0\ndepends: {ledger: '*'}\n"),
            module("name: ledger\nversion: 1.0.0\ndepends: {billing: '*'}\n"),
        ],
        "modules depend on each other in a cycle: billing -> ledger -> billing",
    )
    .await;
    check(
        vec![module(
            "name: billing\nversion: 1.0.0\ndepends: {ledger: '^1'}\n",
        )],
        "module `billing` depends on `ledger`, which is not installed",
    )
    .await;
    check(
        vec![
            module("name: billing\nversion: 1.0.0\ndepends: {ledger: '^2'}\n"),
            module("name: ledger\nversion: 1.3.0\n"),
        ],
        "module `billing` requires `ledger` ^2, but 1.3.0 is installed",
    )
    .await;
}
