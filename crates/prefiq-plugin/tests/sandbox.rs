//! The sandbox against the hostile fixtures: each failing call names the plugin and what
//! happened, and the next call on the same sandbox succeeds.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prefiq_plugin::sandbox::{CallContext, Host, LoadedPlugin, Sandbox, SandboxConfig};
use prefiq_plugin::testing::{HookBody, wat};
use prefiq_plugin::{CallFailure, PluginError};

/// Records keyed by (tenant, id): a host that scopes every call to the call's tenant, as
/// the application's does.
#[derive(Default)]
struct MapHost {
    records: Mutex<HashMap<(String, String), String>>,
}

#[prefiq_plugin::sandbox::host_trait]
impl Host for MapHost {
    async fn get(&self, cx: &CallContext, entity: &str, id: &str) -> Result<String, String> {
        self.records
            .lock()
            .unwrap()
            .get(&(cx.tenant.clone(), id.to_owned()))
            .cloned()
            .ok_or_else(|| format!("{entity} {id} not found"))
    }
    async fn list(&self, _: &CallContext, _: &str, _: &str) -> Result<String, String> {
        Ok("[]".into())
    }
    async fn insert(&self, cx: &CallContext, entity: &str, doc: &str) -> Result<String, String> {
        if entity != "granted" {
            return Err(format!("plugin {} may not create {entity}", cx.plugin));
        }
        self.records
            .lock()
            .unwrap()
            .insert((cx.tenant.clone(), "n1".into()), doc.to_owned());
        Ok(doc.to_owned())
    }
    async fn update(&self, _: &CallContext, _: &str, _: &str, _: &str) -> Result<String, String> {
        Err("no".into())
    }
}

fn context(tenant: &str) -> CallContext {
    CallContext {
        plugin: "fixture".into(),
        tenant: tenant.into(),
        trace_id: "t".into(),
        config: "{}".into(),
        clock: false,
        http_hosts: Arc::from(Vec::new()),
    }
}

fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        fuel: 1_000_000,
        deadline_ms: 200,
        memory_bytes: 4 * 1024 * 1024,
        max_instances: 8,
    })
    .unwrap()
}

fn load(sandbox: &Sandbox, body: HookBody) -> LoadedPlugin {
    let wasm = wat::parse_str(wat(body)).unwrap();
    sandbox.load("fixture", &wasm).unwrap()
}

async fn hook(
    plugin: &LoadedPlugin,
    host: &Arc<MapHost>,
    tenant: &str,
    doc: &str,
) -> Result<Result<String, String>, PluginError> {
    plugin
        .hook(host.clone(), context(tenant), "validate", "note", doc, "")
        .await
}

/// One case: the fixture, the document, and what the call must come to.
async fn check(
    sandbox: &Sandbox,
    host: &Arc<MapHost>,
    body: HookBody,
    doc: &str,
    expected: Result<Result<&str, &str>, CallFailure>,
) {
    let plugin = load(sandbox, body);
    let got = hook(&plugin, host, "acme", doc).await;
    match (&got, &expected) {
        (Ok(Ok(a)), Ok(Ok(b))) if a == b => {}
        (Ok(Err(a)), Ok(Err(b))) if a.contains(b) => {}
        (Err(PluginError::Call { plugin, failure }), Err(wanted)) if plugin == "fixture" => {
            match (failure, wanted) {
                (CallFailure::Trap(_), CallFailure::Trap(_)) => {}
                (a, b) => assert_eq!(a, b, "{body:?}"),
            }
            let message = got
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(message.starts_with("plugin fixture: "), "{message}");
        }
        _ => panic!("{body:?} on {doc:?} → {got:?}, wanted {expected:?}"),
    }
    // Contained: the sandbox serves the next call.
    let fine = load(sandbox, HookBody::Echo);
    assert_eq!(
        hook(&fine, host, "acme", "{}").await.unwrap(),
        Ok("{}".into()),
        "after {body:?}"
    );
}

#[tokio::test]
async fn every_hostile_fixture_is_contained() {
    let sandbox = sandbox();
    let host = Arc::new(MapHost::default());
    host.records
        .lock()
        .unwrap()
        .insert(("globex".into(), "g1".into()), "{\"secret\":1}".into());
    host.records
        .lock()
        .unwrap()
        .insert(("acme".into(), "a1".into()), "{\"mine\":1}".into());

    check(
        &sandbox,
        &host,
        HookBody::Echo,
        "{\"a\":1}",
        Ok(Ok("{\"a\":1}")),
    )
    .await;
    check(
        &sandbox,
        &host,
        HookBody::Refuse,
        "{}",
        Ok(Err("refused by the fixture")),
    )
    .await;
    check(
        &sandbox,
        &host,
        HookBody::EndlessLoop,
        "{}",
        Err(CallFailure::Budget { fuel: 1_000_000 }),
    )
    .await;
    check(
        &sandbox,
        &host,
        HookBody::MemoryBomb,
        "{}",
        Err(CallFailure::Memory {
            cap_bytes: 4 * 1024 * 1024,
        }),
    )
    .await;
    check(
        &sandbox,
        &host,
        HookBody::Trap,
        "{}",
        Err(CallFailure::Trap(String::new())),
    )
    .await;
    // A capability the host refuses: the plugin receives the refusal, nothing is written.
    check(
        &sandbox,
        &host,
        HookBody::InsertDoc,
        "{}",
        Ok(Err("may not create")),
    )
    .await;
    // Another tenant's record is not found from this tenant; this tenant's is.
    check(
        &sandbox,
        &host,
        HookBody::GetByDoc,
        "g1",
        Ok(Err("not found")),
    )
    .await;
    check(
        &sandbox,
        &host,
        HookBody::GetByDoc,
        "a1",
        Ok(Ok("{\"mine\":1}")),
    )
    .await;
    // The clock is refused unless granted.
    check(
        &sandbox,
        &host,
        HookBody::ReadClock,
        "{}",
        Ok(Err("the clock was not granted")),
    )
    .await;
}

#[tokio::test]
async fn a_slow_plugin_is_stopped_by_its_deadline_when_fuel_is_plenty() {
    let sandbox = Sandbox::new(SandboxConfig {
        fuel: u64::MAX / 2,
        deadline_ms: 20,
        memory_bytes: 4 * 1024 * 1024,
        max_instances: 4,
    })
    .unwrap();
    let host = Arc::new(MapHost::default());
    let plugin = load(&sandbox, HookBody::EndlessLoop);
    let started = std::time::Instant::now();
    let got = hook(&plugin, &host, "acme", "{}").await;
    assert!(
        matches!(
            got,
            Err(PluginError::Call {
                failure: CallFailure::Deadline { deadline_ms: 20 },
                ..
            })
        ),
        "{got:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn a_module_that_does_not_fit_the_world_is_refused_naming_the_plugin() {
    let sandbox = sandbox();
    for (wasm, fragment) in [
        (b"not wasm".to_vec(), "not a WebAssembly binary"),
        (wat::parse_str("(module)").unwrap(), "plugin fixture:"),
        (
            wat::parse_str(r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))))"#).unwrap(),
            "plugin fixture:",
        ),
    ] {
        let e = sandbox.load("fixture", &wasm).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains(fragment), "{e}");
    }
}

#[tokio::test]
async fn calls_from_many_tasks_share_the_pool() {
    let sandbox = sandbox();
    let host = Arc::new(MapHost::default());
    let plugin = load(&sandbox, HookBody::Echo);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (plugin, host) = (plugin.clone(), host.clone());
        tasks.push(tokio::spawn(async move {
            hook(&plugin, &host, "acme", &format!("{{\"i\":{i}}}")).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await.unwrap().unwrap(), Ok(format!("{{\"i\":{i}}}")));
    }
}
