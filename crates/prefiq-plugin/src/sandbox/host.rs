//! What a plugin can reach: the `codexion:plugin/host` interface, bound to a [`Host`] that
//! the application implements.
//!
//! The sandbox checks what it can without the application (call counts, the clock and
//! outbound hosts against the manifest); the application checks entities against the
//! manifest and the tenant's grant, and runs every read and write through its repository
//! as the plugin's principal.

use std::sync::Arc;

use async_trait::async_trait;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, LinkerInstance};

use super::CallState;

/// The interface's name as the component imports it.
pub const HOST_INTERFACE: &str = "codexion:plugin/host@0.1.0";

/// The most host calls one plugin call may make: a plugin in a loop of reads is stopped
/// by this before its instruction budget, which host calls do not consume.
pub const MAX_HOST_CALLS: u32 = 1_000;

/// The longest string a plugin may hand the host in one call (a document, a log line).
pub const MAX_HOST_ARG_BYTES: usize = 1024 * 1024;

/// Who a call is for: the plugin, the tenant, the trace and the tenant's settings.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The plugin's name.
    pub plugin: String,
    /// The tenant the call acts for; every host call is scoped to it.
    pub tenant: String,
    /// The trace of the request, job or event that made the call.
    pub trace_id: String,
    /// The tenant's resolved settings of the plugin (a JSON object).
    pub config: Arc<str>,
    /// Whether the plugin may read the clock.
    pub clock: bool,
    /// The hosts it may send HTTP requests to.
    pub http_hosts: Arc<[String]>,
}

/// The severity of a plugin's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

impl LogLevel {
    fn from_wire(level: u8) -> LogLevel {
        match level {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            _ => LogLevel::Error,
        }
    }
}

/// The application's side of the host interface. Each method answers what the plugin
/// receives: `Err` is a message for the plugin, never a failure of the call.
#[async_trait]
pub trait Host: Send + Sync + 'static {
    /// A log line from the plugin.
    fn log(&self, context: &CallContext, level: LogLevel, message: &str) {
        let (plugin, tenant, trace) = (&context.plugin, &context.tenant, &context.trace_id);
        match level {
            LogLevel::Trace => {
                tracing::trace!(target: "prefiq::plugin", plugin, tenant, trace_id = trace, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "prefiq::plugin", plugin, tenant, trace_id = trace, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "prefiq::plugin", plugin, tenant, trace_id = trace, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "prefiq::plugin", plugin, tenant, trace_id = trace, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "prefiq::plugin", plugin, tenant, trace_id = trace, "{message}")
            }
        }
    }

    /// One record of `entity` as JSON.
    async fn get(&self, context: &CallContext, entity: &str, id: &str) -> Result<String, String>;

    /// Records of `entity` selected by `query` (JSON), as a JSON array.
    async fn list(
        &self,
        context: &CallContext,
        entity: &str,
        query: &str,
    ) -> Result<String, String>;

    /// Creates a record; answers it as stored.
    async fn insert(
        &self,
        context: &CallContext,
        entity: &str,
        doc: &str,
    ) -> Result<String, String>;

    /// Changes a record; answers it as stored.
    async fn update(
        &self,
        context: &CallContext,
        entity: &str,
        id: &str,
        patch: &str,
    ) -> Result<String, String>;

    /// An outbound HTTP request to a host the sandbox already checked against the
    /// manifest. Without an implementation, plugins cannot send any.
    async fn fetch(&self, context: &CallContext, request: &str) -> Result<String, String> {
        let _ = (context, request);
        Err("outbound HTTP is not available on this installation".into())
    }
}

type HostFuture<'a, R> = Box<dyn std::future::Future<Output = wasmtime::Result<(R,)>> + Send + 'a>;

/// Counts a host call against the call's bound; `Err` is what the plugin receives.
fn admit(state: &mut CallState, args: &[&str]) -> Result<(), String> {
    state.host_calls += 1;
    if state.host_calls > MAX_HOST_CALLS {
        return Err(format!(
            "too many host calls: at most {MAX_HOST_CALLS} in one call"
        ));
    }
    if args.iter().map(|a| a.len()).sum::<usize>() > MAX_HOST_ARG_BYTES {
        return Err(format!(
            "host call arguments too large: at most {MAX_HOST_ARG_BYTES} bytes"
        ));
    }
    Ok(())
}

/// The host of `url` (`https://host[:port]/…`), if it is an http(s) URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') {
        return None;
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    (!host.is_empty()).then_some(host)
}

/// Whether `request` (the JSON of a `fetch`) goes to one of `hosts`.
fn fetch_allowed(request: &str, hosts: &[String]) -> Result<(), String> {
    let request: serde_json::Value = serde_json::from_str(request)
        .map_err(|e| format!("fetch: the request is not JSON: {e}"))?;
    let url = request
        .get("url")
        .and_then(|u| u.as_str())
        .ok_or("fetch: the request has no url")?;
    let host = url_host(url).ok_or_else(|| format!("fetch: {url} is not an http(s) URL"))?;
    if hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        Ok(())
    } else {
        Err(format!(
            "fetch: {host} is not a host this plugin was granted (capabilities.http)"
        ))
    }
}

/// Runs a host call's work on a task of its own, at one more level of nesting. Plugin code
/// runs on a small fiber stack; the repository and the policy engine under a host call
/// need a thread's stack (Cedar refuses to evaluate near the end of one).
async fn on_task<F>(depth: u32, work: F) -> Result<String, String>
where
    F: std::future::Future<Output = Result<String, String>> + Send + 'static,
{
    tokio::spawn(super::CALL_DEPTH.scope(depth + 1, work))
        .await
        .unwrap_or_else(|e| Err(format!("the host call failed: {e}")))
}

/// Defines the host interface in `linker`.
pub(crate) fn define(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    let mut host: LinkerInstance<'_, CallState> = linker.instance(HOST_INTERFACE)?;
    host.func_wrap(
        "log",
        |mut store: StoreContextMut<'_, CallState>, (level, message): (u8, String)| {
            let state = store.data_mut();
            if admit(state, &[&message]).is_ok() {
                state
                    .host
                    .log(&state.context, LogLevel::from_wire(level), &message);
            }
            Ok(())
        },
    )?;
    host.func_wrap("config", |store: StoreContextMut<'_, CallState>, (): ()| {
        Ok((store.data().context.config.to_string(),))
    })?;
    host.func_wrap(
        "now-ms",
        |mut store: StoreContextMut<'_, CallState>, (): ()| {
            let state = store.data_mut();
            let answer = admit(state, &[]).and_then(|()| {
                if !state.context.clock {
                    return Err(
                        "the clock was not granted to this plugin (capabilities.clock)".into(),
                    );
                }
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    .map_err(|e| e.to_string())
            });
            Ok((answer,))
        },
    )?;
    host.func_wrap_async(
        "get",
        |mut store: StoreContextMut<'_, CallState>,
         (entity, id): (String, String)|
         -> HostFuture<'_, Result<String, String>> {
            Box::new(async move {
                let state = store.data_mut();
                if let Err(e) = admit(state, &[&entity, &id]) {
                    return Ok((Err(e),));
                }
                let (host, context, depth) =
                    (state.host.clone(), state.context.clone(), state.depth);
                Ok((on_task(depth, async move { host.get(&context, &entity, &id).await }).await,))
            })
        },
    )?;
    host.func_wrap_async(
        "list",
        |mut store: StoreContextMut<'_, CallState>,
         (entity, query): (String, String)|
         -> HostFuture<'_, Result<String, String>> {
            Box::new(async move {
                let state = store.data_mut();
                if let Err(e) = admit(state, &[&entity, &query]) {
                    return Ok((Err(e),));
                }
                let (host, context, depth) =
                    (state.host.clone(), state.context.clone(), state.depth);
                Ok((on_task(
                    depth,
                    async move { host.list(&context, &entity, &query).await },
                )
                .await,))
            })
        },
    )?;
    host.func_wrap_async(
        "insert",
        |mut store: StoreContextMut<'_, CallState>,
         (entity, doc): (String, String)|
         -> HostFuture<'_, Result<String, String>> {
            Box::new(async move {
                let state = store.data_mut();
                if let Err(e) = admit(state, &[&entity, &doc]) {
                    return Ok((Err(e),));
                }
                let (host, context, depth) =
                    (state.host.clone(), state.context.clone(), state.depth);
                Ok((on_task(
                    depth,
                    async move { host.insert(&context, &entity, &doc).await },
                )
                .await,))
            })
        },
    )?;
    host.func_wrap_async(
        "update",
        |mut store: StoreContextMut<'_, CallState>,
         (entity, id, patch): (String, String, String)|
         -> HostFuture<'_, Result<String, String>> {
            Box::new(async move {
                let state = store.data_mut();
                if let Err(e) = admit(state, &[&entity, &id, &patch]) {
                    return Ok((Err(e),));
                }
                let (host, context, depth) =
                    (state.host.clone(), state.context.clone(), state.depth);
                Ok((on_task(depth, async move {
                    host.update(&context, &entity, &id, &patch).await
                })
                .await,))
            })
        },
    )?;
    host.func_wrap_async(
        "fetch",
        |mut store: StoreContextMut<'_, CallState>,
         (request,): (String,)|
         -> HostFuture<'_, Result<String, String>> {
            Box::new(async move {
                let state = store.data_mut();
                if let Err(e) = admit(state, &[&request])
                    .and_then(|()| fetch_allowed(&request, &state.context.http_hosts))
                {
                    return Ok((Err(e),));
                }
                let (host, context, depth) =
                    (state.host.clone(), state.context.clone(), state.depth);
                Ok((on_task(depth, async move { host.fetch(&context, &request).await }).await,))
            })
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(request: &str, hosts: &[&str], expected: Result<(), &str>) {
        let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        let got = fetch_allowed(request, &hosts);
        match (&got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(fragment)) if e.contains(fragment) => {}
            _ => panic!("{request} with {hosts:?} → {got:?}, wanted {expected:?}"),
        }
    }

    #[test]
    fn outbound_requests_go_only_to_granted_hosts() {
        check(
            r#"{"url":"https://api.example.com/x"}"#,
            &["api.example.com"],
            Ok(()),
        );
        check(
            r#"{"url":"https://API.example.com:8443/x"}"#,
            &["api.example.com"],
            Ok(()),
        );
        check(
            r#"{"url":"https://evil.com/x"}"#,
            &["api.example.com"],
            Err("evil.com is not a host"),
        );
        check(
            r#"{"url":"https://api.example.com@evil.com/"}"#,
            &["api.example.com"],
            Err("not an http(s) URL"),
        );
        check(
            r#"{"url":"file:///etc/passwd"}"#,
            &["api.example.com"],
            Err("not an http(s) URL"),
        );
        check(
            r#"{"url":"https://api.example.com/"}"#,
            &[],
            Err("not a host this plugin was granted"),
        );
        check("nope", &["a.b"], Err("not JSON"));
        check("{}", &["a.b"], Err("no url"));
    }
}
