//! The plugins' screen of the desk: every plugin installed on this installation, with
//! what it may do, whether it is enabled for the signed-in user's tenant and the tenant's
//! settings; a form per plugin that enables it (or saves its settings) and a button that
//! disables it. Below, the plugins a registry offers ([`available`]).
//!
//! Like the API's plugin routes, the page needs the action `plugins.manage` on the tenant
//! (a System Manager has it); anyone else gets the desk's refusal page. Enabling and
//! disabling go through [`Plugins::enable`] and [`Plugins::disable`], as the API's routes
//! do, and a refusal (a setting of the wrong type, a missing plugin) is shown above the
//! list with the status the API would answer.

// A page's refusal is a whole response, returned by value on the cold path as the
// desk's own handlers return theirs.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use cortex::desk::form::{FormData, dom_id, url_encode};
use cortex::desk::{Desk, DeskLayer, DeskLink, DeskRequest, Session};
use prefiq_auth::authz::{CedarAuthorizer, Resource, refusal};
use prefiq_data::entity::repo::TenantScope;
use prefiq_http::{HttpState, RouteSet};
use prefiq_plugin::manifest::{ConfigField, ConfigType, PluginManifest};
use serde::Serialize;
use serde_json::{Map, Number, Value, json};

use crate::routes::MANAGE;
use crate::service::{Installed, Plugins, State as PluginsState};
use crate::store::TenantRow;

/// Characters of a signer's key (after its `ed25519:` prefix) the page shows.
const KEY_CHARS: usize = 12;

macro_rules! try_page {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

/// What plugins adds to the desk.
pub fn layer() -> DeskLayer {
    DeskLayer {
        module: "plugins".into(),
        templates: vec![("plugins/index.html", include_str!("../desk/index.html"))],
        assets: vec![],
        links: vec![DeskLink {
            section: "plugins".into(),
            label: "Plugins".into(),
            href: "/app/plugins".into(),
            action: Some(MANAGE.into()),
        }],
    }
}

/// The routes of the plugins' screen.
pub fn routes() -> RouteSet {
    RouteSet::new("plugins")
        .get("/app/plugins", index)
        .post("/app/plugins/{name}/enable", enable)
        .post("/app/plugins/{name}/disable", disable)
}

/// A plugin a registry offers.
#[derive(Debug, Clone, Serialize)]
pub struct AvailablePlugin {
    /// Its name.
    pub name: String,
    /// Its latest version.
    pub version: String,
    /// Its one-line description.
    pub description: String,
    /// Who publishes it.
    pub publisher: String,
}

/// The plugins the registry (`plugins.registry`) offers that are not installed, or in a
/// later version than the installed one, for the page's "Available" section: empty when
/// no registry is configured or it cannot be read (which is logged).
pub async fn available(plugins: &Plugins) -> Vec<AvailablePlugin> {
    let Ok(registry) = plugins.registry() else {
        return Vec::new();
    };
    let index = match registry.index().await {
        Ok(index) => index,
        Err(e) => {
            tracing::warn!(target: "plugins", error = %e, "the registry could not be read for the desk");
            return Vec::new();
        }
    };
    let state = plugins.state();
    index
        .packages
        .iter()
        .filter_map(|(name, listing)| {
            let latest = listing.versions.keys().next_back()?;
            let newer = state
                .installed
                .get(name)
                .is_none_or(|p| &p.manifest.version < latest);
            newer.then(|| AvailablePlugin {
                name: name.clone(),
                version: latest.to_string(),
                description: listing.description.clone(),
                publisher: listing.publisher.clone(),
            })
        })
        .collect()
}

/// A signer's key as the page shows it: its algorithm and the first characters of the
/// key, then `…` (the whole key is the element's title).
pub fn short_key(key: &str) -> String {
    let (prefix, rest) = key.split_once(':').unwrap_or(("", key));
    let shown: String = rest.chars().take(KEY_CHARS).collect();
    let ellipsis = if shown.len() < rest.len() { "…" } else { "" };
    if prefix.is_empty() {
        format!("{shown}{ellipsis}")
    } else {
        format!("{prefix}:{shown}{ellipsis}")
    }
}

/// The name of a setting's input in the enable form.
fn input_name(key: &str) -> String {
    format!("config.{key}")
}

/// The settings a submitted enable form gives a plugin, typed by its config schema.
///
/// An empty input is left out (the setting's default applies); a checkbox counts when
/// its hidden `.present` marker came with the form. A value that does not parse as its
/// type is passed on as text, so that the plugin's own check names the setting and
/// what it must be.
pub fn settings_of(manifest: &PluginManifest, form: &FormData) -> Map<String, Value> {
    let mut settings = Map::new();
    for (key, field) in &manifest.config {
        let name = input_name(key);
        if field.kind == ConfigType::Boolean {
            if form.get(&format!("{name}.present")).is_some() || form.get(&name).is_some() {
                settings.insert(key.clone(), Value::Bool(form.get(&name).is_some()));
            }
            continue;
        }
        let Some(raw) = form.get(&name) else {
            continue;
        };
        let text = raw.trim();
        if text.is_empty() {
            continue;
        }
        let value = match field.kind {
            ConfigType::String | ConfigType::Boolean => Value::String(raw.to_owned()),
            ConfigType::Integer => whole(text).unwrap_or_else(|| Value::String(text.to_owned())),
            ConfigType::Number => whole(text)
                .or_else(|| {
                    text.parse::<f64>()
                        .ok()
                        .and_then(Number::from_f64)
                        .map(Value::Number)
                })
                .unwrap_or_else(|| Value::String(text.to_owned())),
        };
        settings.insert(key.clone(), value);
    }
    settings
}

/// `text` as a whole JSON number, if it is one.
fn whole(text: &str) -> Option<Value> {
    text.parse::<i64>()
        .map(Value::from)
        .or_else(|_| text.parse::<u64>().map(Value::from))
        .ok()
}

/// The user's scope and the service, when the user may manage the tenant's plugins;
/// otherwise the desk's refusal page, saying what the API would.
async fn manager(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
) -> Result<(TenantScope, Arc<Plugins>), Response> {
    let unavailable = |message: String| {
        session.message(
            state,
            desk,
            StatusCode::SERVICE_UNAVAILABLE,
            "Not shown",
            &message,
        )
    };
    let Some(scope) = session.scope() else {
        return Err(session.message(
            state,
            desk,
            StatusCode::FORBIDDEN,
            "Not allowed",
            "this session belongs to no tenant",
        ));
    };
    let authorizer = state
        .services
        .get::<CedarAuthorizer>("plugins desk")
        .map_err(|e| unavailable(e.to_string()))?;
    let decision = authorizer.decide(&scope, MANAGE, Resource::Tenant).await;
    if !decision.allowed {
        return Err(session.message(
            state,
            desk,
            StatusCode::FORBIDDEN,
            "Not allowed",
            &refusal(MANAGE, "the tenant", &decision),
        ));
    }
    let plugins = state
        .services
        .get::<Plugins>("plugins desk")
        .map_err(|e| unavailable(e.to_string()))?;
    Ok((scope, plugins))
}

/// What the page says besides the list: a notice, or a problem with the status it is
/// shown with and the form that caused it (its values stay in the plugin's inputs).
struct Outcome {
    status: StatusCode,
    notice: Option<String>,
    problem: Option<String>,
    retry: Option<(String, FormData)>,
}

/// `GET /app/plugins`: the installed plugins and what the tenant chose for each;
/// `?enabled=`, `?saved=` or `?disabled=` name the plugin a form just changed.
pub async fn index(
    State(state): State<HttpState>,
    request: DeskRequest,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    let (scope, plugins) = try_page!(manager(&state, &desk, &session).await);
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let snapshot = plugins.state();
    // Only a plugin that is installed is named: the query is the visitor's to write.
    let changed = |key: &str| {
        query
            .get(key)
            .filter(|name| snapshot.installed.contains_key(*name))
            .map(str::to_owned)
    };
    let notice = if let Some(name) = changed("enabled") {
        Some(format!("{name} is enabled for this organisation."))
    } else if let Some(name) = changed("saved") {
        Some(format!("The settings of {name} are saved."))
    } else {
        changed("disabled")
            .map(|name| format!("{name} is disabled for this organisation; its settings are kept."))
    };
    let outcome = Outcome {
        status: StatusCode::OK,
        notice,
        problem: None,
        retry: None,
    };
    page(&state, &desk, &session, &scope, &plugins, outcome).await
}

async fn page(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    scope: &TenantScope,
    plugins: &Plugins,
    outcome: Outcome,
) -> Response {
    let snapshot = match plugins.loaded_state().await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            return session.message(
                state,
                desk,
                StatusCode::SERVICE_UNAVAILABLE,
                "Not shown",
                &e.to_string(),
            );
        }
    };
    let views: Vec<Value> = snapshot
        .installed
        .values()
        .map(|installed| {
            let retry = outcome
                .retry
                .as_ref()
                .filter(|(name, _)| *name == installed.manifest.name)
                .map(|(_, form)| form);
            plugin_view(
                installed,
                choice(&snapshot, scope.tenant(), installed),
                retry,
            )
        })
        .collect();
    session.render(
        state,
        desk,
        outcome.status,
        "plugins/index.html",
        json!({
            "title": "Plugins",
            "plugins": views,
            "available": available(plugins).await,
            "notice": outcome.notice,
            "problem": outcome.problem,
        }),
    )
}

/// The tenant's choice for a plugin, if it ever made one.
fn choice<'a>(
    state: &'a PluginsState,
    tenant: &str,
    installed: &Installed,
) -> Option<&'a TenantRow> {
    state
        .choices
        .iter()
        .find(|c| c.tenant == tenant && c.plugin == installed.manifest.name)
}

/// What the template needs of one installed plugin.
fn plugin_view(
    installed: &Installed,
    choice: Option<&TenantRow>,
    retry: Option<&FormData>,
) -> Value {
    let manifest = &installed.manifest;
    let name = &manifest.name;
    let enabled = choice.is_some_and(|c| c.enabled);
    let given = choice.map(|c| &c.config);
    let settings: Vec<Value> = manifest
        .config
        .iter()
        .map(|(key, field)| setting_view(name, key, field, given.and_then(|g| g.get(key)), retry))
        .collect();
    let requires: Vec<String> = manifest
        .requires
        .plugins
        .iter()
        .map(|(plugin, range)| format!("{plugin} {range}"))
        .collect();
    let base = format!("/app/plugins/{}", url_encode(name));
    json!({
        "name": name,
        "dom_id": dom_id(&format!("plugin-{name}")),
        "version": manifest.version.to_string(),
        "description": manifest.description,
        "publisher": manifest.publisher,
        "signer": installed.signer,
        "signer_short": installed.signer.as_deref().map(short_key),
        "digest": installed.digest,
        "installed_at": installed.installed_at,
        "requires": requires,
        "requires_prefiq": manifest.requires.prefiq.as_ref().map(ToString::to_string),
        "may": may_view(manifest),
        "enabled": enabled,
        "settings": settings,
        "enable": format!("{base}/enable"),
        "disable": format!("{base}/disable"),
    })
}

/// What a plugin may do, from its manifest's capabilities: a list per kind.
fn may_view(manifest: &PluginManifest) -> Value {
    let caps = &manifest.capabilities;
    let entities: Vec<Value> = caps
        .entities
        .iter()
        .map(|(entity, actions)| {
            let actions: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
            json!({ "entity": entity, "actions": actions.join(", ") })
        })
        .collect();
    let hooks: Vec<Value> = caps
        .hooks
        .iter()
        .map(|h| json!({ "entity": h.entity, "event": h.event.as_str() }))
        .collect();
    let routes: Vec<Value> = caps
        .routes
        .iter()
        .map(|r| {
            json!({
                "method": r.method,
                "path": format!("/api/v1/plugins/{}{}", manifest.name, r.path),
            })
        })
        .collect();
    let schedules: Vec<Value> = caps
        .schedules
        .iter()
        .map(|s| json!({ "cron": s.cron, "job": s.job }))
        .collect();
    let nothing = caps.entities.is_empty()
        && caps.hooks.is_empty()
        && caps.routes.is_empty()
        && caps.subscriptions.is_empty()
        && caps.jobs.is_empty()
        && caps.schedules.is_empty()
        && caps.http.is_empty()
        && !caps.clock;
    json!({
        "entities": entities,
        "hooks": hooks,
        "routes": routes,
        "subscriptions": caps.subscriptions,
        "jobs": caps.jobs,
        "schedules": schedules,
        "http": caps.http,
        "clock": caps.clock,
        "nothing": nothing,
    })
}

/// One setting: its input (typed by the schema) and what it holds — the submitted value
/// after a refused form, else the tenant's value, else the default.
fn setting_view(
    plugin: &str,
    key: &str,
    field: &ConfigField,
    given: Option<&Value>,
    retry: Option<&FormData>,
) -> Value {
    let input = input_name(key);
    let current = given.or(field.default.as_ref());
    let (input_type, step, type_name) = match field.kind {
        ConfigType::String => ("text", None, "Text"),
        ConfigType::Number => ("number", Some("any"), "A number"),
        ConfigType::Integer => ("number", Some("1"), "A whole number"),
        ConfigType::Boolean => ("checkbox", None, "Yes or no"),
    };
    let (value, checked) = match retry {
        Some(form) => (
            form.get(&input).unwrap_or_default().to_owned(),
            form.get(&input).is_some(),
        ),
        None => match current {
            None | Some(Value::Null) => (String::new(), false),
            Some(Value::String(text)) => (text.clone(), false),
            Some(Value::Bool(on)) => (String::new(), *on),
            Some(other) => (other.to_string(), false),
        },
    };
    let shown = match current {
        None => None,
        Some(Value::Bool(true)) => Some("yes".to_owned()),
        Some(Value::Bool(false)) => Some("no".to_owned()),
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => Some(other.to_string()),
    };
    let default = field.default.as_ref().map(|d| match d {
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    });
    json!({
        "key": key,
        "input": input,
        "dom_id": dom_id(&format!("plugin-{plugin}-{key}")),
        "input_type": input_type,
        "step": step,
        "type": type_name,
        "value": value,
        "checked": checked,
        "shown": shown,
        "given": given.is_some(),
        "default": default,
        "required": field.default.is_none(),
        "description": field.description,
    })
}

/// `POST /app/plugins/{name}/enable`: enables the plugin for the tenant with the form's
/// settings (or saves them when it is enabled already), then back to the list.
pub async fn enable(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (desk, session, form) = try_page!(request.open_form(&state, &body).await);
    let (scope, plugins) = try_page!(manager(&state, &desk, &session).await);
    let snapshot = plugins.state();
    let settings = snapshot
        .installed
        .get(&name)
        .map(|p| settings_of(&p.manifest, &form))
        .unwrap_or_default();
    let was_enabled = snapshot
        .active_for(scope.tenant())
        .iter()
        .any(|a| a.installed.manifest.name == name);
    match plugins
        .enable(scope.tenant(), &name, Some(settings), scope.user())
        .await
    {
        Ok(()) => {
            tracing::info!(target: "plugins", tenant = scope.tenant(), plugin = %name, "plugin enabled from the desk");
            let said = if was_enabled { "saved" } else { "enabled" };
            session.redirect(&format!("/app/plugins?{said}={}", url_encode(&name)))
        }
        Err(e) => {
            let outcome = Outcome {
                problem: Some(e.to_string()),
                status: crate::routes::problem(e).status_code(),
                notice: None,
                retry: Some((name, form)),
            };
            page(&state, &desk, &session, &scope, &plugins, outcome).await
        }
    }
}

/// `POST /app/plugins/{name}/disable`: disables the plugin for the tenant (its settings
/// are kept), then back to the list.
pub async fn disable(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (desk, session, _) = try_page!(request.open_form(&state, &body).await);
    let (scope, plugins) = try_page!(manager(&state, &desk, &session).await);
    match plugins.disable(scope.tenant(), &name, scope.user()).await {
        Ok(()) => {
            tracing::info!(target: "plugins", tenant = scope.tenant(), plugin = %name, "plugin disabled from the desk");
            session.redirect(&format!("/app/plugins?disabled={}", url_encode(&name)))
        }
        Err(e) => {
            let outcome = Outcome {
                problem: Some(e.to_string()),
                status: crate::routes::problem(e).status_code(),
                notice: None,
                retry: None,
            };
            page(&state, &desk, &session, &scope, &plugins, outcome).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> PluginManifest {
        PluginManifest::from_yaml(
            "name: demo\nversion: 0.1.0\nconfig:\n  limit: {type: integer, default: 5}\n  ratio: {type: number, default: 1.5}\n  label: {type: string, default: Acme}\n  strict: {type: boolean, default: false}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn settings(form: &str) -> Value {
        let form = FormData::parse(form.as_bytes()).unwrap_or_default();
        Value::Object(settings_of(&manifest(), &form))
    }

    #[test]
    fn forms_become_settings_of_their_schema_types() {
        // (form, settings)
        let cases = [
            ("", json!({})),
            (
                "config.limit=7&config.ratio=2.25&config.label=Globex+Ltd&config.strict.present=1&config.strict=on",
                json!({"limit": 7, "ratio": 2.25, "label": "Globex Ltd", "strict": true}),
            ),
            ("config.strict.present=1", json!({"strict": false})),
            ("config.ratio=3", json!({"ratio": 3})),
            ("config.limit=+&config.label=", json!({})),
            (
                "config.limit=seven&config.ratio=NaN",
                json!({"limit": "seven", "ratio": "NaN"}),
            ),
            ("config.limit=7.5", json!({"limit": "7.5"})),
            ("config.other=1&_csrf=x", json!({})),
        ];
        for (form, expected) in cases {
            assert_eq!(settings(form), expected, "{form}");
        }
    }

    #[test]
    fn keys_are_shortened_after_their_algorithm() {
        assert_eq!(
            short_key("ed25519:MCowBQYDK2VwAyEAabcdefgh"),
            "ed25519:MCowBQYDK2Vw…"
        );
        assert_eq!(short_key("ed25519:short"), "ed25519:short");
        assert_eq!(short_key("plain"), "plain");
    }
}
