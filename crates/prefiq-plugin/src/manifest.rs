//! `plugin.yml`: what a plugin is, what it needs and what it may do.
//!
//! The manifest is the whole of a plugin's authority: the sandbox refuses every host call
//! it does not list, and a tenant's grant can only narrow it. It is parsed strictly
//! (unknown keys are errors) so that a misspelt capability is a refusal at pack time, not
//! a silent no-op at run time.

use std::collections::BTreeMap;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::PluginError;

/// The longest plugin name.
pub const MAX_NAME_LEN: usize = 40;

/// The most entries in any one capability list (entities, hooks, routes, jobs, schedules,
/// subscriptions, hosts): a bound on what a manifest can make the host register.
pub const MAX_CAPABILITIES: usize = 64;

/// A parsed, checked `plugin.yml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginManifest {
    /// `[a-z][a-z0-9-]*`, at most [`MAX_NAME_LEN`] characters: the plugin's principal is
    /// `plugin:{name}` and its routes live under `/api/v1/plugins/{name}/`.
    pub name: String,
    /// Its version.
    pub version: Version,
    /// One line for the registry and the desk.
    #[serde(default)]
    pub description: String,
    /// Who publishes it (shown beside the key that signed it).
    #[serde(default)]
    pub publisher: String,
    /// What it needs.
    #[serde(default)]
    pub requires: Requires,
    /// The settings a tenant can give it, by name.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigField>,
    /// What it may do.
    #[serde(default)]
    pub capabilities: Capabilities,
}

/// A plugin's requirements.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    /// The versions of Codexion (`prefiq`) it runs on; any when absent.
    #[serde(default)]
    pub prefiq: Option<VersionReq>,
    /// Other plugins that must be installed, with their versions.
    #[serde(default)]
    pub plugins: BTreeMap<String, VersionReq>,
}

/// One setting in a plugin's config schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigField {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ConfigType,
    /// Its value when the tenant gives none; a setting without a default is required.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// What it means.
    #[serde(default)]
    pub description: String,
}

/// The type of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigType {
    /// Text.
    String,
    /// A JSON number.
    Number,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
}

/// What a plugin may do. Everything is off unless listed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// The entities it reads or writes, each with its actions (`read`, `create`, `update`).
    #[serde(default)]
    pub entities: BTreeMap<String, Vec<EntityAction>>,
    /// The entity hooks it registers.
    #[serde(default)]
    pub hooks: Vec<HookSpec>,
    /// Its routes, under `/api/v1/plugins/{name}`.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// The jobs it handles, by name.
    #[serde(default)]
    pub jobs: Vec<String>,
    /// Schedules that enqueue its jobs.
    #[serde(default)]
    pub schedules: Vec<ScheduleSpec>,
    /// The events it subscribes to (`{entity}.{action}`, `*` for either part).
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// The hosts it may send HTTP requests to; none by default.
    #[serde(default)]
    pub http: Vec<String>,
    /// Whether it may read the clock.
    #[serde(default)]
    pub clock: bool,
}

/// An action on an entity a plugin may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityAction {
    /// Get and list.
    Read,
    /// Insert.
    Create,
    /// Update.
    Update,
}

impl EntityAction {
    /// The action's name in policies (`read`, `create`, `update`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntityAction::Read => "read",
            EntityAction::Create => "create",
            EntityAction::Update => "update",
        }
    }
}

/// A hook a plugin registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSpec {
    /// The entity.
    pub entity: String,
    /// When it runs.
    pub event: HookEvent,
}

/// The points of the write pipeline open to plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookEvent {
    /// Before field validation; may change the document.
    BeforeValidate,
    /// Validation; may change the document or refuse it.
    Validate,
    /// Before a new row is written.
    BeforeInsert,
    /// Before a changed row is written.
    BeforeUpdate,
    /// After a new row is committed (errors are logged).
    AfterInsert,
    /// After a change is committed (errors are logged).
    AfterUpdate,
}

impl HookEvent {
    /// Every event, in pipeline order.
    pub const ALL: [HookEvent; 6] = [
        HookEvent::BeforeValidate,
        HookEvent::Validate,
        HookEvent::BeforeInsert,
        HookEvent::BeforeUpdate,
        HookEvent::AfterInsert,
        HookEvent::AfterUpdate,
    ];

    /// The name the guest receives (`before_validate`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::BeforeValidate => "before_validate",
            HookEvent::Validate => "validate",
            HookEvent::BeforeInsert => "before_insert",
            HookEvent::BeforeUpdate => "before_update",
            HookEvent::AfterInsert => "after_insert",
            HookEvent::AfterUpdate => "after_update",
        }
    }
}

/// A route a plugin serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// The path under the plugin's prefix, starting with `/`; `{name}` segments match one
    /// segment each.
    pub path: String,
    /// What the caller must be allowed, else the route answers 403: an action on an
    /// entity as a whole (not on one row), as the tenant's policies decide it for the
    /// caller. Without it, any signed-in user of the tenant may call the route.
    #[serde(default)]
    pub requires: Option<RouteRequirement>,
}

/// A caller's permission a route requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRequirement {
    /// The entity.
    pub entity: String,
    /// The action on it (`read`, `create`, `update`, `delete`, `submit`, `cancel`, …).
    pub action: String,
}

/// A schedule that enqueues one of the plugin's jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// A cron expression, in the tenant's time zone.
    pub cron: String,
    /// The job (one of `capabilities.jobs`).
    pub job: String,
    /// The payload each run hands the job (a JSON object).
    #[serde(default)]
    pub payload: serde_json::Map<String, serde_json::Value>,
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

fn invalid(message: impl Into<String>) -> PluginError {
    PluginError::Manifest(message.into())
}

/// Whether `name` can name a plugin: `[a-z][a-z0-9-]*`, at most [`MAX_NAME_LEN`].
pub fn is_plugin_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= MAX_NAME_LEN
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
        && !name.ends_with('-')
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_route_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 200
        && path[1..].split('/').all(|segment| {
            let inner = segment
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .unwrap_or(segment);
            segment.is_empty() && path == "/"
                || (!inner.is_empty()
                    && inner
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        })
}

fn is_pattern(pattern: &str) -> bool {
    pattern == "*"
        || pattern.split_once('.').is_some_and(|(entity, action)| {
            (entity == "*" || is_identifier(entity))
                && (action == "*"
                    || ["created", "updated", "deleted", "submitted", "cancelled"]
                        .contains(&action))
        })
}

impl PluginManifest {
    /// Parses and checks `plugin.yml`; the error names the first problem.
    pub fn from_yaml(source: &str) -> Result<PluginManifest, PluginError> {
        let manifest: PluginManifest =
            serde_yaml::from_str(source).map_err(|e| invalid(format!("plugin.yml: {e}")))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Checks what serde cannot: names, paths, patterns, bounds, defaults.
    pub fn check(&self) -> Result<(), PluginError> {
        if !is_plugin_name(&self.name) {
            return Err(invalid(format!(
                "plugin.yml: name {:?} must be lowercase letters, digits and '-', start with a letter, at most {MAX_NAME_LEN} characters",
                self.name
            )));
        }
        for plugin in self.requires.plugins.keys() {
            if !is_plugin_name(plugin) || plugin == &self.name {
                return Err(invalid(format!(
                    "plugin.yml: requires.plugins names {plugin:?}, which is not another plugin's name"
                )));
            }
        }
        for (key, field) in &self.config {
            if !is_identifier(key) {
                return Err(invalid(format!(
                    "plugin.yml: config key {key:?} must be lowercase letters, digits and '_'"
                )));
            }
            if let Some(default) = &field.default {
                field
                    .check(default)
                    .map_err(|e| invalid(format!("plugin.yml: config.{key}.default {e}")))?;
            }
        }
        let caps = &self.capabilities;
        let lengths = [
            ("entities", caps.entities.len()),
            ("hooks", caps.hooks.len()),
            ("routes", caps.routes.len()),
            ("jobs", caps.jobs.len()),
            ("schedules", caps.schedules.len()),
            ("subscriptions", caps.subscriptions.len()),
            ("http", caps.http.len()),
        ];
        for (what, len) in lengths {
            if len > MAX_CAPABILITIES {
                return Err(invalid(format!(
                    "plugin.yml: capabilities.{what} has {len} entries; at most {MAX_CAPABILITIES}"
                )));
            }
        }
        for (entity, actions) in &caps.entities {
            if !is_identifier(entity) || actions.is_empty() {
                return Err(invalid(format!(
                    "plugin.yml: capabilities.entities.{entity} must name an entity and list its actions (read, create, update)"
                )));
            }
        }
        for hook in &caps.hooks {
            if !is_identifier(&hook.entity) {
                return Err(invalid(format!(
                    "plugin.yml: capabilities.hooks names {:?}, which is not an entity name",
                    hook.entity
                )));
            }
        }
        let mut seen_routes = std::collections::BTreeSet::new();
        for route in &caps.routes {
            if !METHODS.contains(&route.method.as_str()) {
                return Err(invalid(format!(
                    "plugin.yml: route method {:?} is not one of {}",
                    route.method,
                    METHODS.join(", ")
                )));
            }
            if !is_route_path(&route.path) {
                return Err(invalid(format!(
                    "plugin.yml: route path {:?} must start with '/' and hold only letters, digits, '-', '_' and {{name}} segments",
                    route.path
                )));
            }
            if ["/enable", "/disable"].contains(&route.path.trim_end_matches('/')) {
                return Err(invalid(format!(
                    "plugin.yml: route path {:?} is reserved for enabling and disabling the plugin",
                    route.path
                )));
            }
            if let Some(requires) = &route.requires
                && (!is_identifier(&requires.entity) || !is_identifier(&requires.action))
            {
                return Err(invalid(format!(
                    "plugin.yml: route {} {} requires {:?} on {:?}, which are not an action and an entity name",
                    route.method, route.path, requires.action, requires.entity
                )));
            }
            if !seen_routes.insert((route.method.clone(), route.path.clone())) {
                return Err(invalid(format!(
                    "plugin.yml: route {} {} is listed twice",
                    route.method, route.path
                )));
            }
        }
        for job in &caps.jobs {
            if !is_identifier(job) {
                return Err(invalid(format!(
                    "plugin.yml: job name {job:?} must be lowercase letters, digits and '_'"
                )));
            }
        }
        for schedule in &caps.schedules {
            if !caps.jobs.contains(&schedule.job) {
                return Err(invalid(format!(
                    "plugin.yml: schedule {:?} runs job {:?}, which capabilities.jobs does not list",
                    schedule.cron, schedule.job
                )));
            }
        }
        for pattern in &caps.subscriptions {
            if !is_pattern(pattern) {
                return Err(invalid(format!(
                    "plugin.yml: subscription {pattern:?} must be entity.action (created, updated, deleted, submitted, cancelled), '*' for either part"
                )));
            }
        }
        for host in &caps.http {
            if !is_host(host) {
                return Err(invalid(format!(
                    "plugin.yml: http host {host:?} must be a host name (no scheme, port or path)"
                )));
            }
        }
        Ok(())
    }

    /// The principal the plugin acts as: `plugin:{name}`.
    pub fn principal(&self) -> String {
        format!("plugin:{}", self.name)
    }

    /// Whether the manifest allows `action` on `entity`.
    pub fn allows(&self, entity: &str, action: EntityAction) -> bool {
        self.capabilities
            .entities
            .get(entity)
            .is_some_and(|actions| actions.contains(&action))
    }

    /// The tenant's settings checked against the schema, with defaults filled in: the
    /// object the plugin's `config()` call answers.
    pub fn resolve_config(
        &self,
        given: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, PluginError> {
        let mut resolved = serde_json::Map::new();
        for key in given.keys() {
            if !self.config.contains_key(key) {
                return Err(PluginError::Config(format!(
                    "{key}: {} has no such setting",
                    self.name
                )));
            }
        }
        for (key, field) in &self.config {
            match given.get(key).or(field.default.as_ref()) {
                Some(value) => {
                    field
                        .check(value)
                        .map_err(|e| PluginError::Config(format!("{key}: {e}")))?;
                    resolved.insert(key.clone(), value.clone());
                }
                None => {
                    return Err(PluginError::Config(format!(
                        "{key}: required by {}, and it has no default",
                        self.name
                    )));
                }
            }
        }
        Ok(resolved)
    }
}

impl ConfigField {
    fn check(&self, value: &serde_json::Value) -> Result<(), String> {
        let fits = match self.kind {
            ConfigType::String => value.is_string(),
            ConfigType::Number => value.is_number(),
            ConfigType::Integer => value.is_i64() || value.is_u64(),
            ConfigType::Boolean => value.is_boolean(),
        };
        if fits {
            Ok(())
        } else {
            Err(format!("must be a {:?}, not {value}", self.kind).to_lowercase())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: journal-guard\nversion: 0.1.0\n";

    fn check(yaml: &str, expected: Result<(), &str>) {
        let got = PluginManifest::from_yaml(yaml).map(|_| ());
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(fragment)) => {
                assert!(
                    e.to_string().contains(fragment),
                    "{yaml}\n→ {e}\nwanted {fragment:?}"
                )
            }
            (got, expected) => panic!("{yaml}\n→ {got:?}, wanted {expected:?}"),
        }
    }

    #[test]
    fn manifests_are_checked() {
        check(GOOD, Ok(()));
        check("name: Journal\nversion: 0.1.0\n", Err("name \"Journal\""));
        check("name: a-\nversion: 0.1.0\n", Err("name \"a-\""));
        check("name: x\nversion: one\n", Err("plugin.yml"));
        check(
            &format!("{GOOD}colour: red\n"),
            Err("unknown field `colour`"),
        );
        check(
            &format!("{GOOD}capabilities:\n  entities:\n    todo: [read, delete]\n"),
            Err("unknown variant `delete`"),
        );
        check(
            &format!("{GOOD}capabilities:\n  entities:\n    todo: []\n"),
            Err("capabilities.entities.todo"),
        );
        check(
            &format!(
                "{GOOD}capabilities:\n  routes:\n    - {{method: GET, path: /a}}\n    - {{method: GET, path: /a}}\n"
            ),
            Err("listed twice"),
        );
        check(
            &format!("{GOOD}capabilities:\n  routes:\n    - {{method: GET, path: ../etc}}\n"),
            Err("route path"),
        );
        check(
            &format!(
                "{GOOD}capabilities:\n  routes:\n    - {{method: GET, path: \"/items/{{id}}\"}}\n"
            ),
            Ok(()),
        );
        check(
            &format!("{GOOD}capabilities:\n  routes:\n    - {{method: TRACE, path: /a}}\n"),
            Err("route method"),
        );
        check(
            &format!("{GOOD}capabilities:\n  http: [\"https://api.example.com\"]\n"),
            Err("http host"),
        );
        check(
            &format!(
                "{GOOD}capabilities:\n  subscriptions: [todo.created, \"*.submitted\", \"*\"]\n"
            ),
            Ok(()),
        );
        check(
            &format!("{GOOD}capabilities:\n  subscriptions: [todo.eaten]\n"),
            Err("subscription \"todo.eaten\""),
        );
        check(
            &format!("{GOOD}capabilities:\n  schedules: [{{cron: \"0 * * * *\", job: tidy}}]\n"),
            Err("capabilities.jobs does not list"),
        );
        check(
            &format!("{GOOD}config:\n  max_amount: {{type: number, default: yes}}\n"),
            Err("config.max_amount.default must be a number"),
        );
        check(
            &format!(
                "{GOOD}requires:\n  prefiq: \">=0.1, <0.2\"\n  plugins: {{journal-guard: \"^1\"}}\n"
            ),
            Err("requires.plugins"),
        );
    }

    #[test]
    fn config_is_resolved_against_its_schema() {
        let manifest = PluginManifest::from_yaml(&format!(
            "{GOOD}config:\n  max_amount: {{type: number, default: 10000}}\n  label: {{type: string}}\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let given = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
        let resolved = manifest
            .resolve_config(&given(serde_json::json!({"label": "x"})))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            serde_json::Value::Object(resolved),
            serde_json::json!({"label": "x", "max_amount": 10000})
        );
        for (settings, fragment) in [
            (serde_json::json!({}), "label: required"),
            (serde_json::json!({"label": 3}), "label: must be a string"),
            (
                serde_json::json!({"label": "x", "colour": 1}),
                "colour: journal-guard has no such setting",
            ),
        ] {
            let e = manifest.resolve_config(&given(settings)).err();
            assert!(
                e.as_ref().is_some_and(|e| e.to_string().contains(fragment)),
                "{e:?} wanted {fragment}"
            );
        }
    }
}
