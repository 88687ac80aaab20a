//! Lifecycle hooks that modules register: `on_preboot` to `on_shutdown`, and `on_upgrade`.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::Config;
use crate::context::Context;
use crate::migration::ModuleUpgrade;
use crate::services::Services;

/// The points of the lifecycle a hook can attach to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// After config is loaded, before any provider registers.
    PreBoot,
    /// After every provider has booted, before the modules step.
    Boot,
    /// After the modules and routes steps.
    PostBoot,
    /// When the app is ready (for `serve`: the port is bound).
    Ready,
    /// On shutdown, before providers shut down in reverse order.
    Shutdown,
    /// In the modules step, for a module whose version changed since the last boot.
    Upgrade,
}

impl Hook {
    /// The hook's name as modules know it, such as `on_boot`.
    pub fn name(self) -> &'static str {
        match self {
            Hook::PreBoot => "on_preboot",
            Hook::Boot => "on_boot",
            Hook::PostBoot => "on_postboot",
            Hook::Ready => "on_ready",
            Hook::Shutdown => "on_shutdown",
            Hook::Upgrade => "on_upgrade",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a hook receives.
pub struct HookContext<'a> {
    /// The boot's (or shutdown's) context.
    pub context: &'a Context,
    /// The validated configuration.
    pub config: &'a Config,
    /// Every bound service. `None` for `on_preboot`, which runs before registration.
    pub services: Option<&'a Services>,
    /// For `on_upgrade`: the module's version change.
    pub upgrade: Option<&'a ModuleUpgrade>,
}

/// A hook's result: an error message aborts boot (or is logged at shutdown).
pub type HookResult = Result<(), String>;

type HookFn = Arc<dyn for<'a> Fn(&'a HookContext<'a>) -> BoxFuture<'a, HookResult> + Send + Sync>;

/// One registered hook.
#[derive(Clone)]
pub struct RegisteredHook {
    /// The lifecycle point.
    pub hook: Hook,
    /// The module that registered it.
    pub module: String,
    /// A name for logs, such as `warm_cache`.
    pub name: String,
    run: HookFn,
}

impl RegisteredHook {
    /// Runs the hook.
    pub fn run<'a>(&self, cx: &'a HookContext<'a>) -> BoxFuture<'a, HookResult> {
        (self.run)(cx)
    }
}

impl fmt::Debug for RegisteredHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}::{}", self.hook, self.module, self.name)
    }
}

/// The hooks registered by every module, kept in module order.
#[derive(Default, Clone, Debug)]
pub struct LifecycleHooks {
    module: String,
    hooks: Vec<RegisteredHook>,
}

impl LifecycleHooks {
    /// Sets the module that the next registrations belong to.
    pub(crate) fn for_module(&mut self, module: &str) {
        module.clone_into(&mut self.module);
    }

    /// Registers `run` at `hook` under `name`.
    pub fn on<F>(&mut self, hook: Hook, name: &str, run: F)
    where
        F: for<'a> Fn(&'a HookContext<'a>) -> BoxFuture<'a, HookResult> + Send + Sync + 'static,
    {
        self.hooks.push(RegisteredHook {
            hook,
            module: self.module.clone(),
            name: name.to_owned(),
            run: Arc::new(run),
        });
    }

    /// The hooks registered at `hook`, in module order.
    pub fn at(&self, hook: Hook) -> impl Iterator<Item = &RegisteredHook> {
        self.hooks.iter().filter(move |h| h.hook == hook)
    }

    /// Every registered hook, in module order.
    pub fn all(&self) -> &[RegisteredHook] {
        &self.hooks
    }
}
