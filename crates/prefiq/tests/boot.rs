//! The boot sequence as a whole: step and hook order, provider order, failures that name
//! their cause.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use prefiq::{
    App, BootContext, BootMode, BootOptions, ConfigOptions, Hook, KernelError, LifecycleHooks,
    Manifest, Module, RegisterContext, ServiceProvider, async_trait,
};

type Journal = Arc<Mutex<Vec<String>>>;

struct Recorder {
    name: &'static str,
    journal: Journal,
    needs: bool,
}

/// A service nobody binds.
struct Mailer;

#[async_trait]
impl ServiceProvider for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }
    fn register(&self, _cx: &mut RegisterContext<'_>) -> Result<(), KernelError> {
        self.journal
            .lock()
            .unwrap()
            .push(format!("register {}", self.name));
        Ok(())
    }
    async fn boot(&self, cx: &BootContext<'_>) -> Result<(), KernelError> {
        if self.needs {
            cx.services.get::<Mailer>()?;
        }
        self.journal
            .lock()
            .unwrap()
            .push(format!("boot {}", self.name));
        Ok(())
    }
    async fn shutdown(&self, _cx: &BootContext<'_>) -> Result<(), KernelError> {
        self.journal
            .lock()
            .unwrap()
            .push(format!("shutdown {}", self.name));
        Ok(())
    }
}

struct TestModule {
    manifest: Manifest,
    provider: &'static str,
    journal: Journal,
    needs: bool,
    failing_hook: Option<Hook>,
}

impl Module for TestModule {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    fn providers(&self) -> Vec<Box<dyn ServiceProvider>> {
        vec![Box::new(Recorder {
            name: self.provider,
            journal: self.journal.clone(),
            needs: self.needs,
        })]
    }
    fn hooks(&self, hooks: &mut LifecycleHooks) {
        for hook in [
            Hook::PreBoot,
            Hook::Boot,
            Hook::PostBoot,
            Hook::Ready,
            Hook::Shutdown,
            Hook::Upgrade,
        ] {
            let journal = self.journal.clone();
            let name = self.manifest.name.clone();
            let fail = self.failing_hook == Some(hook);
            hooks.on(hook, "record", move |cx| {
                let journal = journal.clone();
                let name = name.clone();
                Box::pin(async move {
                    assert_eq!(cx.services.is_some(), hook != Hook::PreBoot);
                    journal.lock().unwrap().push(format!("{hook} {name}"));
                    if fail {
                        Err("the disk is full".to_owned())
                    } else {
                        Ok(())
                    }
                })
            });
        }
    }
}

fn module(journal: &Journal, yaml: &str, provider: &'static str) -> TestModule {
    TestModule {
        manifest: Manifest::from_yaml(yaml).unwrap(),
        provider,
        journal: journal.clone(),
        needs: false,
        failing_hook: None,
    }
}

fn options(dir: &tempfile::TempDir, mode: BootMode) -> BootOptions {
    let mut options = BootOptions::new(mode);
    options.config = ConfigOptions {
        root: Some(dir.path().to_owned()),
        vars: Some(vec![]),
        ..Default::default()
    };
    options
}

#[tokio::test]
async fn steps_hooks_and_providers_run_in_a_fixed_order() {
    let journal: Journal = Journal::default();
    let dir = tempfile::tempdir().unwrap();
    // Given in the "wrong" order on purpose: ledger depends on core.
    let app = App::new()
        .module(module(
            &journal,
            "name: ledger\nversion: 1.0.0\ndepends: {core: '^1'}\n",
            "ledger::P",
        ))
        .module(module(&journal, "name: core\nversion: 1.2.0\n", "core::P"));
    let mut booted = app.boot(options(&dir, BootMode::Serve)).await.unwrap();
    booted.ready().await.unwrap();
    booted.shutdown().await.unwrap();
    let got = journal.lock().unwrap().clone();
    assert_eq!(
        got,
        [
            "on_preboot core",
            "on_preboot ledger",
            "register core::P",
            "register ledger::P",
            "boot core::P",
            "boot ledger::P",
            "on_boot core",
            "on_boot ledger",
            "on_postboot core",
            "on_postboot ledger",
            "on_ready core",
            "on_ready ledger",
            "on_shutdown core",
            "on_shutdown ledger",
            "shutdown ledger::P",
            "shutdown core::P",
        ]
    );
}

#[tokio::test]
async fn a_dry_run_runs_no_hooks() {
    let journal: Journal = Journal::default();
    let dir = tempfile::tempdir().unwrap();
    let app = App::new().module(module(&journal, "name: core\nversion: 1.0.0\n", "core::P"));
    let mut booted = app.boot(options(&dir, BootMode::DryRun)).await.unwrap();
    booted.ready().await.unwrap();
    let plan = booted.plan().clone();
    booted.shutdown().await.unwrap();
    assert_eq!(
        *journal.lock().unwrap(),
        ["register core::P", "boot core::P", "shutdown core::P"]
    );
    assert_eq!(plan.modules[0].hooks.len(), 6);
    assert_eq!(plan.providers, ["core: core::P"]);
}

#[tokio::test]
async fn a_missing_service_names_the_service_and_the_provider() {
    let journal: Journal = Journal::default();
    let dir = tempfile::tempdir().unwrap();
    let mut m = module(&journal, "name: core\nversion: 1.0.0\n", "core::P");
    m.needs = true;
    let err = App::new()
        .module(m)
        .boot(options(&dir, BootMode::Serve))
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "service `boot::Mailer` is not bound (requested by provider `core::P`)"
    );
}

#[tokio::test]
async fn a_failing_hook_stops_boot_with_its_message() {
    let journal: Journal = Journal::default();
    let dir = tempfile::tempdir().unwrap();
    let mut m = module(&journal, "name: core\nversion: 1.0.0\n", "core::P");
    m.failing_hook = Some(Hook::Boot);
    let err = App::new()
        .module(m)
        .boot(options(&dir, BootMode::Serve))
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "on_boot hook of module `core` failed: the disk is full"
    );
}

#[tokio::test]
async fn an_invalid_config_value_stops_boot_before_any_provider_registers() {
    let journal: Journal = Journal::default();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&dir, BootMode::Serve);
    opts.config.vars = Some(vec![("PREFIQ__LOG__LEVEL".into(), "chatty".into())]);
    let err = App::new()
        .module(module(&journal, "name: core\nversion: 1.0.0\n", "core::P"))
        .boot(opts)
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "invalid config value `log.level` from environment variable `PREFIQ__LOG__LEVEL`: `chatty` is not one of trace, debug, info, warn, error, off"
    );
    assert!(journal.lock().unwrap().is_empty());
}
