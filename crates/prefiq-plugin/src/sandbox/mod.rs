//! The wasmtime sandbox: one engine for the process, one pre-instantiated component per
//! plugin, and a fresh instance from the pooling allocator for every call.
//!
//! A call gets an instruction budget (fuel), a wall-clock deadline (epochs), a memory cap
//! and a bound on its host calls. An instance never outlives its call, so nothing one
//! call (or one tenant) leaves in a plugin's memory is seen by the next.

pub mod componentize;
pub mod host;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

pub use async_trait::async_trait as host_trait;
pub use host::{CallContext, Host, LogLevel};

use crate::{CallFailure, PluginError};

/// How deeply plugin calls may nest: a hook whose host call writes a record, whose hook
/// is another plugin's, and so on.
pub const MAX_NESTING: u32 = 4;

tokio::task_local! {
    /// How many plugin calls the current task runs inside (0 outside any).
    static CALL_DEPTH: u32;
}

/// How many plugin calls the current task runs inside.
pub fn call_depth() -> u32 {
    CALL_DEPTH.try_with(|d| *d).unwrap_or(0)
}

/// How long one epoch tick is: the resolution of call deadlines.
const EPOCH_TICK_MS: u64 = 5;

/// The sandbox's limits (config section `plugins.sandbox`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// The instruction budget of one call (wasmtime fuel: about one unit an instruction).
    pub fuel: u64,
    /// The wall-clock deadline of one call, host calls included.
    pub deadline_ms: u64,
    /// The most linear memory one call's instance may have.
    pub memory_bytes: u64,
    /// How many instances may be alive at once across all plugins: calls beyond it wait
    /// for the pool rather than allocate.
    pub max_instances: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            fuel: 10_000_000,
            deadline_ms: 100,
            memory_bytes: 64 * 1024 * 1024,
            max_instances: 128,
        }
    }
}

/// The data of one call's store.
pub(crate) struct CallState {
    pub(crate) host: Arc<dyn Host>,
    pub(crate) context: CallContext,
    pub(crate) host_calls: u32,
    /// The nesting of this call (1 for a call made outside any other).
    pub(crate) depth: u32,
    limiter: MemoryCap,
}

/// Refuses memory growth past the cap, and remembers that it did, so a failed call can
/// say it ran out of memory rather than merely trapped.
struct MemoryCap {
    cap_bytes: usize,
    exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap_bytes {
            self.exceeded = true;
            // An error (not `false`) traps the guest at once: a plugin that checks
            // `memory.grow`'s answer and retries smaller would otherwise keep going.
            return Err(wasmtime::format_err!("memory cap reached"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The process's plugin engine.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<CallState>,
    config: SandboxConfig,
    ticking: Arc<AtomicBool>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.config)
            .finish()
    }
}

fn engine_error(e: impl std::fmt::Display) -> PluginError {
    PluginError::Invalid {
        plugin: "*".into(),
        message: format!("the plugin engine could not start: {e}"),
    }
}

impl Sandbox {
    /// Starts the engine: cranelift, fuel and epochs, the pooling allocator sized by
    /// `config`, and a thread that ticks the epoch every few milliseconds.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, PluginError> {
        let mut pooling = PoolingAllocationConfig::default();
        // Room for every slot's call and the calls nested in it, which take no slot.
        let instances = config.max_instances.saturating_mul(MAX_NESTING);
        let memory_bytes = usize::try_from(config.memory_bytes).unwrap_or(usize::MAX);
        pooling
            .total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(4))
            .total_memories(instances)
            .total_tables(instances.saturating_mul(4))
            .total_stacks(instances)
            .max_memories_per_component(1)
            .max_memory_size(memory_bytes)
            // A slot's first pages are zeroed in place when it is reused, not given
            // back to the kernel and faulted in again: most calls touch little more.
            .linear_memory_keep_resident(128 * 1024)
            .table_keep_resident(16 * 1024);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 * 1024)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        let engine = Engine::new(&wasm).map_err(engine_error)?;
        let mut linker = Linker::new(&engine);
        host::define(&mut linker).map_err(engine_error)?;

        let ticking = Arc::new(AtomicBool::new(true));
        {
            let (engine, ticking) = (engine.weak(), ticking.clone());
            std::thread::Builder::new()
                .name("plugin-epoch".into())
                .spawn(move || {
                    while ticking.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(EPOCH_TICK_MS));
                        match engine.upgrade() {
                            Some(engine) => engine.increment_epoch(),
                            None => break,
                        }
                    }
                })
                .map_err(engine_error)?;
        }
        let slots = Arc::new(tokio::sync::Semaphore::new(config.max_instances as usize));
        Ok(Sandbox {
            engine,
            linker,
            config,
            ticking,
            slots,
        })
    }

    /// The limits calls run under.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Compiles a plugin (a component, or a core module it wraps first) and links it
    /// against the host interface, so each call only instantiates. Fails, naming the
    /// plugin, when it imports anything but the host interface or lacks an entry point.
    pub fn load(&self, plugin: &str, wasm: &[u8]) -> Result<LoadedPlugin, PluginError> {
        let invalid = |message: String| PluginError::Invalid {
            plugin: plugin.to_owned(),
            message,
        };
        let bytes = componentize::componentize(plugin, wasm)?;
        let component = Component::new(&self.engine, &bytes)
            .map_err(|e| invalid(format!("does not compile: {e:#}")))?;
        let export = |name: &str| {
            component
                .get_export_index(None, name)
                .ok_or_else(|| invalid(format!("does not export {name}")))
        };
        let exports = Exports {
            on_hook: export("on-hook")?,
            on_route: export("on-route")?,
            on_job: export("on-job")?,
            on_event: export("on-event")?,
        };
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            invalid(format!(
                "cannot be linked (it may import only {}): {e:#}",
                host::HOST_INTERFACE
            ))
        })?;
        Ok(LoadedPlugin {
            name: plugin.to_owned(),
            pre,
            exports,
            config: self.config.clone(),
            slots: self.slots.clone(),
        })
    }
}

#[derive(Clone, Copy)]
struct Exports {
    on_hook: ComponentExportIndex,
    on_route: ComponentExportIndex,
    on_job: ComponentExportIndex,
    on_event: ComponentExportIndex,
}

/// A compiled, linked plugin: each call instantiates it afresh.
#[derive(Clone)]
pub struct LoadedPlugin {
    name: String,
    pre: InstancePre<CallState>,
    exports: Exports,
    config: SandboxConfig,
    slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .finish()
    }
}

type HookParams<'a> = (&'a str, &'a str, &'a str, &'a str);

impl LoadedPlugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn store(
        &self,
        host: Arc<dyn Host>,
        context: CallContext,
        depth: u32,
    ) -> Result<Store<CallState>, PluginError> {
        let mut store = Store::new(
            self.pre.engine(),
            CallState {
                host,
                context,
                host_calls: 0,
                depth,
                limiter: MemoryCap {
                    cap_bytes: usize::try_from(self.config.memory_bytes).unwrap_or(usize::MAX),
                    exceeded: false,
                },
            },
        );
        store.limiter(|state| &mut state.limiter);
        store
            .set_fuel(self.config.fuel)
            .map_err(|e| self.failure(&store, e))?;
        store.set_epoch_deadline(self.config.deadline_ms.div_ceil(EPOCH_TICK_MS).max(1) + 1);
        store.epoch_deadline_trap();
        Ok(store)
    }

    /// What a failed call's error means, naming the plugin.
    fn failure(&self, store: &Store<CallState>, error: wasmtime::Error) -> PluginError {
        let failure = if store.data().limiter.exceeded {
            CallFailure::Memory {
                cap_bytes: self.config.memory_bytes,
            }
        } else {
            match error.downcast_ref::<wasmtime::Trap>() {
                Some(wasmtime::Trap::OutOfFuel) => CallFailure::Budget {
                    fuel: self.config.fuel,
                },
                Some(wasmtime::Trap::Interrupt) => CallFailure::Deadline {
                    deadline_ms: self.config.deadline_ms,
                },
                Some(trap) => CallFailure::Trap(trap.to_string()),
                None => CallFailure::Trap(format!("{error:#}")),
            }
        };
        PluginError::Call {
            plugin: self.name.clone(),
            failure,
        }
    }

    async fn call<P, R>(
        &self,
        host: Arc<dyn Host>,
        context: CallContext,
        export: ComponentExportIndex,
        params: P,
    ) -> Result<R, PluginError>
    where
        P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower + Send + Sync,
        R: wasmtime::component::ComponentNamedList
            + wasmtime::component::Lift
            + Send
            + Sync
            + 'static,
    {
        let depth = call_depth();
        if depth >= MAX_NESTING {
            return Err(PluginError::Call {
                plugin: self.name.clone(),
                failure: CallFailure::Trap(format!(
                    "plugin calls nest more than {MAX_NESTING} deep"
                )),
            });
        }
        // A slot of the pool for the whole call: past the pool's size calls wait here
        // instead of failing to allocate. A nested call runs in its caller's slot: were it
        // to wait for one, callers holding every slot could wait for each other forever.
        let _slot = if depth == 0 {
            Some(self.slots.acquire().await.map_err(|_| PluginError::Call {
                plugin: self.name.clone(),
                failure: CallFailure::Trap("the sandbox is shutting down".into()),
            })?)
        } else {
            None
        };
        let mut store = self.store(host, context, depth)?;
        let instance = match self.pre.instantiate_async(&mut store).await {
            Ok(instance) => instance,
            Err(e) => return Err(self.failure(&store, e)),
        };
        let func = match instance.get_typed_func::<P, R>(&mut store, export) {
            Ok(func) => func,
            Err(e) => {
                return Err(PluginError::Call {
                    plugin: self.name.clone(),
                    failure: CallFailure::BadAnswer(format!("{e:#}")),
                });
            }
        };
        match func.call_async(&mut store, params).await {
            Ok(answer) => Ok(answer),
            Err(e) => Err(self.failure(&store, e)),
        }
    }

    /// Instantiates the plugin and drops the instance, calling nothing: what every call
    /// pays before the plugin runs (for the benchmark, and to warm the pool).
    pub async fn instantiate(
        &self,
        host: Arc<dyn Host>,
        context: CallContext,
    ) -> Result<(), PluginError> {
        let mut store = self.store(host, context, 1)?;
        match self.pre.instantiate_async(&mut store).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.failure(&store, e)),
        }
    }

    /// Runs an entity hook: `Ok(Ok(doc))` is the document to write, `Ok(Err(message))`
    /// the plugin refusing it, `Err` the call failing.
    pub async fn hook(
        &self,
        host: Arc<dyn Host>,
        context: CallContext,
        event: &str,
        entity: &str,
        doc: &str,
        old: &str,
    ) -> Result<Result<String, String>, PluginError> {
        let params: HookParams<'_> = (event, entity, doc, old);
        let (answer,) = self
            .call::<HookParams<'_>, (Result<String, String>,)>(
                host,
                context,
                self.exports.on_hook,
                params,
            )
            .await?;
        Ok(answer)
    }

    /// Serves a route: the request and the response are JSON (see the WIT).
    pub async fn route(
        &self,
        host: Arc<dyn Host>,
        context: CallContext,
        request: &str,
    ) -> Result<String, PluginError> {
        let (answer,) = self
            .call::<(&str,), (String,)>(host, context, self.exports.on_route, (request,))
            .await?;
        Ok(answer)
    }

    /// Runs a job: `Ok(Err(message))` is the job failing by the plugin's own account.
    pub async fn job(
        &self,
        host: Arc<dyn Host>,
        context: CallContext,
        name: &str,
        payload: &str,
    ) -> Result<Result<(), String>, PluginError> {
        let (answer,) = self
            .call::<(&str, &str), (Result<(), String>,)>(
                host,
                context,
                self.exports.on_job,
                (name, payload),
            )
            .await?;
        Ok(answer)
    }

    /// Delivers an event (its envelope as JSON).
    pub async fn event(
        &self,
        host: Arc<dyn Host>,
        context: CallContext,
        event: &str,
    ) -> Result<Result<(), String>, PluginError> {
        let (answer,) = self
            .call::<(&str,), (Result<(), String>,)>(host, context, self.exports.on_event, (event,))
            .await?;
        Ok(answer)
    }
}
