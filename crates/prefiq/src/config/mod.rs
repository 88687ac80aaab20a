//! Layered, typed configuration.
//!
//! Lowest to highest precedence: built-in defaults < `config/base.yaml` <
//! `config/{env}.yaml` < `.env` < process environment (`PREFIQ__SECTION__KEY`) <
//! command-line flags < per-tenant overrides (stored by the data layer). Every value keeps
//! the name of the source it came from, so an invalid value names its file and key or its
//! variable, and `prefiq config show` can print where each value came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Yaml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The sections the kernel itself owns; modules may own a section named after themselves.
pub const KERNEL_SECTIONS: &[&str] = &["app", "server", "database", "log", "telemetry"];

/// Keys a tenant may override, besides the sections of modules.
pub const TENANT_OVERRIDABLE: &[&str] = &["app.locale", "app.timezone"];

const ENV_SOURCE: &str = "environment";
const DOTENV_SOURCE: &str = ".env";

pub use redact::{is_secret_key, redact, redact_url_password};
pub use sections::*;
use sections::{default_max_open_tenants, default_tenant_max_connections};

mod redact;
mod sections;

/// The kernel's sections with their built-in defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Defaults {
    app: AppConfig,
    server: ServerConfig,
    database: DatabaseConfig,
    log: LogConfig,
    #[serde(default)]
    telemetry: TelemetryConfig,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            app: AppConfig {
                name: "Codexion".into(),
                locale: "en".into(),
                timezone: "UTC".into(),
            },
            server: ServerConfig {
                host: "127.0.0.1".into(),
                port: 4949,
                drain_timeout_ms: 10_000,
                request_timeout_ms: 30_000,
                body_limit_bytes: 2 * 1024 * 1024,
                rate_limit_per_minute: 3000,
                login_rate_limit_per_minute: 20,
                tenant_host_pattern: "{tenant}.localhost".into(),
            },
            database: DatabaseConfig {
                url: "sqlite://data/codexion.db".into(),
                max_connections: 8,
                busy_timeout_ms: 5_000,
                acquire_timeout_ms: 5_000,
                tenancy: Tenancy::Shared,
                max_open_tenants: default_max_open_tenants(),
                tenant_max_connections: default_tenant_max_connections(),
            },
            log: LogConfig {
                level: "info".into(),
                format: LogFormat::Json,
            },
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// The effective, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The environment name (`development`, `production`, ...).
    pub env: String,
    /// Where `config/` and `.env` were read from.
    pub root: PathBuf,
    /// General settings.
    pub app: AppConfig,
    /// The HTTP server.
    pub server: ServerConfig,
    /// The application database.
    pub database: DatabaseConfig,
    /// Logging.
    pub log: LogConfig,
    /// Trace export.
    pub telemetry: TelemetryConfig,
    /// The tenant whose overrides are applied, if any.
    pub tenant: Option<String>,
    layers: Figment,
}

/// Why configuration could not be loaded. Every variant names where the bad value came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value has the wrong type or fails validation.
    #[error("invalid config value `{key}` from {origin}: {message}")]
    Invalid {
        /// The dotted key, such as `server.port`.
        key: String,
        /// The file and key, or the variable, it came from.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be read or parsed.
    #[error("cannot load config from {origin}: {message}")]
    Unreadable {
        /// The file.
        origin: String,
        /// The parser's or the OS's message.
        message: String,
    },
    /// A top-level section nobody owns (often a typo).
    #[error("unknown config section `{section}` from {origin}; known sections: {known}")]
    UnknownSection {
        /// The section.
        section: String,
        /// Where it came from.
        origin: String,
        /// The sections that exist.
        known: String,
    },
    /// The environment name is not usable.
    #[error("invalid environment name `{0}`: use a-z, 0-9, `-` and `_` (at most 32)")]
    InvalidEnv(String),
    /// A tenant override that is not allowed.
    #[error("config key `{0}` cannot be overridden per tenant")]
    NotTenantOverridable(String),
}

/// Where to load configuration from.
#[derive(Debug, Clone, Default)]
pub struct ConfigOptions {
    /// The directory holding `config/` and `.env`; the working directory if `None`.
    pub root: Option<PathBuf>,
    /// The environment from `--env`; wins over `PREFIQ_ENV`.
    pub env: Option<String>,
    /// The process environment; `None` reads the real one. Tests pass their own.
    pub vars: Option<Vec<(String, String)>>,
    /// Values from command-line flags, as dotted keys: `("server.port", 8080)`.
    pub flags: Vec<(String, serde_json::Value)>,
    /// Module sections that may appear besides the kernel's.
    pub module_sections: Vec<String>,
}

/// One configuration value and where it came from, for `config show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigEntry {
    /// Dotted key.
    pub key: String,
    /// The value as JSON text, with secrets redacted.
    pub value: String,
    /// The source: a file, a variable, a flag, a tenant override or `built-in default`.
    pub source: String,
}

/// A provider wrapper that gives another provider a name of our choosing.
struct Named<P> {
    inner: P,
    metadata: Metadata,
}

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.inner.data()
    }
}

/// Key/value pairs shaped like `PREFIQ__SECTION__KEY=value` from a source other than the
/// process environment (the `.env` file).
struct EnvPairs {
    pairs: Vec<(String, String)>,
    metadata: Metadata,
}

impl Provider for EnvPairs {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (name, raw) in &self.pairs {
            let Some(path) = env_key_path(name) else {
                continue;
            };
            let value: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.clone()));
            insert_path(&mut dict, &path, value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// `PREFIQ__SERVER__PORT` → `["server", "port"]`; other names → `None`.
fn env_key_path(name: &str) -> Option<Vec<String>> {
    let rest = name.strip_prefix("PREFIQ__")?;
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    (!path.iter().any(String::is_empty)).then_some(path)
}

fn insert_path(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            } else {
                let mut inner = Dict::new();
                insert_path(&mut inner, rest, value);
                *entry = Value::from(inner);
            }
        }
    }
}

fn json_to_figment(value: &serde_json::Value) -> Value {
    Value::serialize(value).unwrap_or_else(|_| Value::from(value.to_string()))
}

fn dotted_dict(pairs: &[(String, serde_json::Value)]) -> Dict {
    let mut dict = Dict::new();
    for (key, value) in pairs {
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        insert_path(&mut dict, &path, json_to_figment(value));
    }
    dict
}

/// Whether `env` is a usable environment name (it becomes part of a file name).
pub fn is_env_name(env: &str) -> bool {
    !env.is_empty()
        && env.len() <= 32
        && env
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Describes a value's source for messages: the file (relative to `root`) or the variable.
fn describe_source(metadata: Option<&Metadata>, key: &[String], root: &Path) -> String {
    let Some(metadata) = metadata else {
        return "an unknown source".into();
    };
    if let Some(figment::Source::File(path)) = &metadata.source {
        let shown = path.strip_prefix(root).unwrap_or(path);
        return format!("{} (key `{}`)", shown.display(), key.join("."));
    }
    // Only the variable-backed sources name the variable; the others are named as a whole.
    if metadata.name == ENV_SOURCE || metadata.name == DOTENV_SOURCE {
        let keys: Vec<&str> = key.iter().map(String::as_str).collect();
        return metadata.interpolate(&Profile::Default, &keys);
    }
    metadata.name.to_string()
}

impl Config {
    /// Loads, merges and validates every layer.
    pub fn load(options: &ConfigOptions) -> Result<Config, ConfigError> {
        let root = match &options.root {
            Some(root) => root.clone(),
            None => std::env::current_dir().map_err(|e| ConfigError::Unreadable {
                origin: "the working directory".into(),
                message: e.to_string(),
            })?,
        };
        let vars: Vec<(String, String)> = options
            .vars
            .clone()
            .unwrap_or_else(|| std::env::vars().collect());
        let dotenv_path = root.join(".env");
        let dotenv = read_dotenv(&dotenv_path)?;
        let env = options
            .env
            .clone()
            .or_else(|| {
                vars.iter()
                    .find(|(k, _)| k == "PREFIQ_ENV")
                    .map(|(_, v)| v.clone())
            })
            .or_else(|| {
                dotenv
                    .iter()
                    .find(|(k, _)| k == "PREFIQ_ENV")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| "development".into());
        if !is_env_name(&env) {
            return Err(ConfigError::InvalidEnv(env));
        }

        let process_env: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("PREFIQ__"))
            .collect();
        let mut layers = Figment::new()
            .merge(Named {
                inner: Serialized::defaults(Defaults::default()),
                metadata: Metadata::named("built-in default"),
            })
            .merge(yaml_layer(&root, "base.yaml")?)
            .merge(yaml_layer(&root, &format!("{env}.yaml"))?)
            .merge(EnvPairs {
                pairs: dotenv,
                metadata: Metadata::named(DOTENV_SOURCE).interpolater(|_, keys| {
                    format!(
                        ".env (variable `PREFIQ__{}`)",
                        keys.join("__").to_ascii_uppercase()
                    )
                }),
            })
            .merge(EnvPairs {
                pairs: process_env,
                metadata: Metadata::named(ENV_SOURCE).interpolater(|_, keys| {
                    format!(
                        "environment variable `PREFIQ__{}`",
                        keys.join("__").to_ascii_uppercase()
                    )
                }),
            });
        if !options.flags.is_empty() {
            let flags = dotted_dict(&options.flags);
            layers = layers.merge(Named {
                inner: Serialized::defaults(flags),
                metadata: Metadata::named("command-line flag"),
            });
        }
        Config::from_layers(env, root, layers, None, &options.module_sections)
    }

    fn from_layers(
        env: String,
        root: PathBuf,
        layers: Figment,
        tenant: Option<String>,
        module_sections: &[String],
    ) -> Result<Config, ConfigError> {
        let fail = |e: figment::Error| figment_error(e, &root);
        let data = layers.data().map_err(fail)?;
        if let Some(dict) = data.get(&Profile::Default) {
            for (section, value) in dict {
                let known = KERNEL_SECTIONS.contains(&section.as_str())
                    || module_sections.iter().any(|m| m == section);
                if !known {
                    let source = describe_source(
                        layers.get_metadata(value.tag()),
                        std::slice::from_ref(section),
                        &root,
                    );
                    let mut names: Vec<&str> = KERNEL_SECTIONS.to_vec();
                    names.extend(module_sections.iter().map(String::as_str));
                    return Err(ConfigError::UnknownSection {
                        section: section.clone(),
                        origin: source,
                        known: names.join(", "),
                    });
                }
            }
        }
        let sections: Defaults = layers.extract().map_err(fail)?;
        let config = Config {
            app: sections.app,
            server: sections.server,
            database: sections.database,
            log: sections.log,
            telemetry: sections.telemetry,
            env,
            root,
            tenant,
            layers,
        };
        config.validate()?;
        Ok(config)
    }

    /// The source of `key` as shown in messages.
    pub fn source_of(&self, key: &str) -> String {
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        describe_source(self.layers.find_metadata(key), &path, &self.root)
    }

    fn invalid(&self, key: &str, message: impl fmt::Display) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_owned(),
            origin: self.source_of(key),
            message: message.to_string(),
        }
    }

    /// Checks what types alone cannot.
    fn validate(&self) -> Result<(), ConfigError> {
        let in_range = |key: &str, value: u64, min: u64, max: u64| {
            if value < min || value > max {
                Err(self.invalid(key, format!("must be between {min} and {max}, got {value}")))
            } else {
                Ok(())
            }
        };
        if let Some((key, message)) = self.telemetry.problem() {
            return Err(self.invalid(&format!("telemetry.{key}"), message));
        }
        if self.app.name.trim().is_empty() {
            return Err(self.invalid("app.name", "must not be empty"));
        }
        if !is_locale(&self.app.locale) {
            return Err(self.invalid(
                "app.locale",
                format!(
                    "`{}` is not a BCP 47 locale such as `en` or `de-CH`",
                    self.app.locale
                ),
            ));
        }
        if let Err(why) = check_timezone(&self.app.timezone) {
            return Err(self.invalid(
                "app.timezone",
                format!(
                    "`{}` is not a time zone name such as `UTC` or `Europe/Zurich` ({why})",
                    self.app.timezone
                ),
            ));
        }
        if self.server.host.trim().is_empty() {
            return Err(self.invalid("server.host", "must not be empty"));
        }
        in_range(
            "server.drain_timeout_ms",
            self.server.drain_timeout_ms,
            0,
            600_000,
        )?;
        in_range(
            "server.request_timeout_ms",
            self.server.request_timeout_ms,
            1,
            600_000,
        )?;
        in_range(
            "server.body_limit_bytes",
            self.server.body_limit_bytes,
            1,
            1 << 30,
        )?;
        in_range(
            "server.rate_limit_per_minute",
            u64::from(self.server.rate_limit_per_minute),
            0,
            10_000_000,
        )?;
        in_range(
            "server.login_rate_limit_per_minute",
            u64::from(self.server.login_rate_limit_per_minute),
            0,
            100_000,
        )?;
        let pattern = &self.server.tenant_host_pattern;
        if !pattern.is_empty()
            && (pattern.matches("{tenant}").count() != 1 || pattern.contains(':'))
        {
            return Err(self.invalid(
                "server.tenant_host_pattern",
                "must hold `{tenant}` exactly once and no port, such as `{tenant}.localhost`",
            ));
        }
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(self.invalid(
                "database.url",
                "must start with `sqlite:`, `postgres://` or `postgresql://`",
            ));
        }
        in_range(
            "database.max_connections",
            u64::from(self.database.max_connections),
            1,
            1000,
        )?;
        in_range(
            "database.busy_timeout_ms",
            self.database.busy_timeout_ms,
            0,
            600_000,
        )?;
        in_range(
            "database.acquire_timeout_ms",
            self.database.acquire_timeout_ms,
            1,
            600_000,
        )?;
        if !["trace", "debug", "info", "warn", "error", "off"].contains(&self.log.level.as_str()) {
            return Err(self.invalid(
                "log.level",
                format!(
                    "`{}` is not one of trace, debug, info, warn, error, off",
                    self.log.level
                ),
            ));
        }
        Ok(())
    }

    /// Extracts a module's own section as `T`; a bad value names its source.
    pub fn section<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ConfigError> {
        if !self.layers.contains(name) {
            return Ok(None);
        }
        self.layers
            .focus(name)
            .extract()
            .map(Some)
            .map_err(|mut e| {
                // `focus` drops the section from the path; put it back for the message.
                e.path.insert(0, name.to_owned());
                figment_error(e, &self.root)
            })
    }

    /// This configuration with a tenant's overrides (dotted keys) applied on top.
    ///
    /// Only [`TENANT_OVERRIDABLE`] keys and keys in module sections may be overridden.
    pub fn for_tenant(
        &self,
        tenant: &str,
        overrides: &BTreeMap<String, serde_json::Value>,
        module_sections: &[String],
    ) -> Result<Config, ConfigError> {
        for key in overrides.keys() {
            check_tenant_key(key, module_sections)?;
        }
        let pairs: Vec<(String, serde_json::Value)> = overrides
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let layers = self.layers.clone().merge(Named {
            inner: Serialized::defaults(dotted_dict(&pairs)),
            metadata: Metadata::named(format!("tenant override ({tenant})")),
        });
        Config::from_layers(
            self.env.clone(),
            self.root.clone(),
            layers,
            Some(tenant.to_owned()),
            module_sections,
        )
    }

    /// Every leaf value with its source, sorted by key, secrets redacted.
    pub fn entries(&self) -> Vec<ConfigEntry> {
        let mut out = Vec::new();
        if let Ok(data) = self.layers.data()
            && let Some(dict) = data.get(&Profile::Default)
        {
            let mut walk = Vec::new();
            for (key, value) in dict {
                walk.push((key.clone(), value));
            }
            while let Some((key, value)) = walk.pop() {
                match value {
                    Value::Dict(_, inner) if !inner.is_empty() => {
                        for (k, v) in inner {
                            walk.push((format!("{key}.{k}"), v));
                        }
                    }
                    leaf => {
                        let json = leaf
                            .deserialize::<serde_json::Value>()
                            .map(|v| redact(&key, &v).to_string())
                            .unwrap_or_else(|_| "?".into());
                        out.push(ConfigEntry {
                            source: self.source_of(&key),
                            key,
                            value: json,
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

/// Refuses tenant overrides of keys that are not tenant-scoped.
pub fn check_tenant_key(key: &str, module_sections: &[String]) -> Result<(), ConfigError> {
    let section = key.split('.').next().unwrap_or_default();
    let ok = TENANT_OVERRIDABLE.contains(&key)
        || (module_sections.iter().any(|m| m == section) && key.len() > section.len() + 1);
    if ok {
        Ok(())
    } else {
        Err(ConfigError::NotTenantOverridable(key.to_owned()))
    }
}

fn is_locale(text: &str) -> bool {
    let mut parts = text.split('-');
    let lang = parts.next().unwrap_or_default();
    (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Checks that `text` names a zone of the time zone database jiff reads (on Linux the
/// system's `/usr/share/zoneinfo`, or `TZDIR`; jiff never downloads one), and says why not.
///
/// The shape is checked first so that no text that could be a path (`../`) reaches the
/// lookup, and so that a name is refused the same way wherever the database is read.
fn check_timezone(text: &str) -> Result<(), String> {
    let shaped = !text.is_empty()
        && text.len() <= 64
        && text.split('/').all(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
        });
    if !shaped {
        return Err("an IANA name has letters, digits, `_`, `+`, `-` and `/`".into());
    }
    jiff::tz::TimeZone::get(text)
        .map(|_| ())
        .map_err(|_| "the time zone database has no zone of that name".into())
}

/// `config/NAME` as a layer named after its file; a missing file is an empty layer, and a
/// file that is not YAML is an error naming the file.
fn yaml_layer(
    root: &Path,
    name: &str,
) -> Result<Named<figment::providers::Data<Yaml>>, ConfigError> {
    let path = root.join("config").join(name);
    let shown = format!("config/{name}");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(ConfigError::Unreadable {
                origin: shown,
                message: e.to_string(),
            });
        }
    };
    match serde_yaml::from_str::<serde_yaml::Value>(&text) {
        Err(e) => {
            return Err(ConfigError::Unreadable {
                origin: shown,
                message: e.to_string(),
            });
        }
        Ok(serde_yaml::Value::Mapping(_) | serde_yaml::Value::Null) => {}
        Ok(_) => {
            let message = "the top level must be a mapping of sections".into();
            return Err(ConfigError::Unreadable {
                origin: shown,
                message,
            });
        }
    }
    Ok(Named {
        inner: Yaml::string(&text),
        metadata: Metadata::from(shown, path.as_path()),
    })
}

fn read_dotenv(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let unreadable = |message: String| ConfigError::Unreadable {
        origin: ".env".into(),
        message,
    };
    let iter = dotenvy::from_path_iter(path).map_err(|e| unreadable(e.to_string()))?;
    iter.map(|item| item.map_err(|e| unreadable(e.to_string())))
        .collect()
}

fn figment_error(error: figment::Error, root: &Path) -> ConfigError {
    let key = error.path.join(".");
    let source = describe_source(error.metadata.as_ref(), &error.path, root);
    if error.path.is_empty() {
        return ConfigError::Unreadable {
            origin: source,
            message: error.kind.to_string(),
        };
    }
    ConfigError::Invalid {
        key,
        origin: source,
        message: error.kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    struct Setup {
        dir: tempfile::TempDir,
    }

    fn setup(files: &[(&str, &str)]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        Setup { dir }
    }

    fn load(
        setup: &Setup,
        env: Option<&str>,
        vars: &[(&str, &str)],
    ) -> Result<Config, ConfigError> {
        Config::load(&ConfigOptions {
            root: Some(setup.dir.path().to_owned()),
            env: env.map(str::to_owned),
            vars: Some(
                vars.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            flags: vec![],
            module_sections: vec!["accounting".into()],
        })
    }

    /// Loads with the given files and variables and compares `key = value from source`.
    fn check(files: &[(&str, &str)], vars: &[(&str, &str)], key: &str, expected: &str) {
        let s = setup(files);
        let got = match load(&s, None, vars) {
            Ok(config) => {
                let entry = config.entries().into_iter().find(|e| e.key == key).unwrap();
                format!("{} from {}", entry.value, entry.source)
            }
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expected);
    }

    const BASE: (&str, &str) = ("config/base.yaml", "server:\n  port: 5000\n");
    const DEV: (&str, &str) = ("config/development.yaml", "server:\n  port: 5001\n");
    const DOTENV: (&str, &str) = (".env", "PREFIQ__SERVER__PORT=5002\n");

    #[test]
    fn precedence() {
        check(&[], &[], "server.port", "4949 from built-in default");
        check(
            &[BASE],
            &[],
            "server.port",
            "5000 from config/base.yaml (key `server.port`)",
        );
        check(
            &[BASE, DEV],
            &[],
            "server.port",
            "5001 from config/development.yaml (key `server.port`)",
        );
        check(
            &[BASE, DEV, DOTENV],
            &[],
            "server.port",
            "5002 from .env (variable `PREFIQ__SERVER__PORT`)",
        );
        check(
            &[BASE, DEV, DOTENV],
            &[("PREFIQ__SERVER__PORT", "5003")],
            "server.port",
            "5003 from environment variable `PREFIQ__SERVER__PORT`",
        );
        // Another environment's file is not read.
        check(
            &[("config/production.yaml", "server:\n  port: 1\n")],
            &[],
            "server.port",
            "4949 from built-in default",
        );
    }

    #[test]
    fn invalid_values_name_their_source() {
        check(
            &[("config/base.yaml", "server:\n  port: lots\n")],
            &[],
            "server.port",
            "error: invalid config value `server.port` from config/base.yaml (key `server.port`): invalid type: found string \"lots\", expected u16",
        );
        check(
            &[],
            &[("PREFIQ__SERVER__PORT", "70000")],
            "server.port",
            "error: invalid config value `server.port` from environment variable `PREFIQ__SERVER__PORT`: invalid value unsigned int `70000`, expected u16",
        );
        check(
            &[(".env", "PREFIQ__LOG__LEVEL=loud\n")],
            &[],
            "log.level",
            "error: invalid config value `log.level` from .env (variable `PREFIQ__LOG__LEVEL`): `loud` is not one of trace, debug, info, warn, error, off",
        );
        check(
            &[("config/development.yaml", "database:\n  url: mysql://x\n")],
            &[],
            "database.url",
            "error: invalid config value `database.url` from config/development.yaml (key `database.url`): must start with `sqlite:`, `postgres://` or `postgresql://`",
        );
        check(
            &[("config/base.yaml", "server:\n  prot: 1\n")],
            &[],
            "server.port",
            "error: invalid config value `server.prot` from config/base.yaml (key `server.prot`): unknown field: found `prot`, expected `one of `host`, `port`, `drain_timeout_ms`, `request_timeout_ms`, `body_limit_bytes`, `rate_limit_per_minute`, `login_rate_limit_per_minute`, `tenant_host_pattern``",
        );
        check(
            &[("config/base.yaml", "sever:\n  port: 1\n")],
            &[],
            "server.port",
            "error: unknown config section `sever` from config/base.yaml (key `sever`); known sections: app, server, database, log, telemetry, accounting",
        );
        check(
            &[],
            &[("PREFIQ__SERVER__REQUEST_TIMEOUT_MS", "0")],
            "server.port",
            "error: invalid config value `server.request_timeout_ms` from environment variable `PREFIQ__SERVER__REQUEST_TIMEOUT_MS`: must be between 1 and 600000, got 0",
        );
        check(
            &[("config/base.yaml", "server: [1, 2\n")],
            &[],
            "server.port",
            "error: cannot load config from config/base.yaml: did not find expected ',' or ']' at line 2 column 1, while parsing a flow sequence at line 1 column 9",
        );
        check(
            &[("config/base.yaml", "- 1\n")],
            &[],
            "server.port",
            "error: cannot load config from config/base.yaml: the top level must be a mapping of sections",
        );
    }

    #[test]
    fn environment_selection() {
        let s = setup(&[("config/staging.yaml", "app:\n  name: Staging\n")]);
        assert_eq!(load(&s, None, &[]).unwrap().env, "development");
        assert_eq!(
            load(&s, None, &[("PREFIQ_ENV", "staging")])
                .unwrap()
                .app
                .name,
            "Staging"
        );
        assert_eq!(
            load(&s, Some("production"), &[("PREFIQ_ENV", "staging")])
                .unwrap()
                .env,
            "production"
        );
        assert_eq!(
            load(&s, Some("../etc"), &[]).unwrap_err().to_string(),
            "invalid environment name `../etc`: use a-z, 0-9, `-` and `_` (at most 32)"
        );
        let s = setup(&[(".env", "PREFIQ_ENV=staging\n")]);
        assert_eq!(load(&s, None, &[]).unwrap().env, "staging");
    }

    #[test]
    fn secrets_are_redacted() {
        check(
            &[],
            &[(
                "PREFIQ__DATABASE__URL",
                "postgres://app:hunter2@db:5432/erp",
            )],
            "database.url",
            "\"postgres://app:***@db:5432/erp\" from environment variable `PREFIQ__DATABASE__URL`",
        );
        check(
            &[("config/base.yaml", "accounting:\n  api_token: abc\n")],
            &[],
            "accounting.api_token",
            "\"***\" from config/base.yaml (key `accounting.api_token`)",
        );
        for (key, secret) in [
            ("a.password", true),
            ("a.signing_key", true),
            ("a.key", true),
            ("a.keyboard", false),
            ("a.port", false),
        ] {
            assert_eq!(is_secret_key(key), secret, "{key}");
        }
        assert_eq!(
            redact_url_password("sqlite://data/x.db"),
            "sqlite://data/x.db"
        );
        assert_eq!(
            redact_url_password("postgres://u@h/db"),
            "postgres://u@h/db"
        );
        assert_eq!(
            redact_url_password("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
    }

    #[test]
    fn tenant_overrides_win_and_are_limited() {
        let s = setup(&[(
            "config/base.yaml",
            "app:\n  locale: en\naccounting:\n  rounding: 2\n",
        )]);
        let config = load(&s, None, &[]).unwrap();
        let modules = vec!["accounting".to_owned()];
        let overrides: BTreeMap<String, serde_json::Value> = [
            ("app.locale".to_owned(), serde_json::json!("de-CH")),
            ("accounting.rounding".to_owned(), serde_json::json!(3)),
        ]
        .into();
        let tenant = config.for_tenant("acme", &overrides, &modules).unwrap();
        assert_eq!(tenant.app.locale, "de-CH");
        assert_eq!(tenant.source_of("app.locale"), "tenant override (acme)");
        #[derive(Deserialize)]
        struct Accounting {
            rounding: u8,
        }
        assert_eq!(
            tenant
                .section::<Accounting>("accounting")
                .unwrap()
                .unwrap()
                .rounding,
            3
        );
        assert_eq!(config.app.locale, "en");

        let bad: BTreeMap<String, serde_json::Value> =
            [("database.url".to_owned(), serde_json::json!("sqlite://x"))].into();
        assert_eq!(
            config
                .for_tenant("acme", &bad, &modules)
                .unwrap_err()
                .to_string(),
            "config key `database.url` cannot be overridden per tenant"
        );
        let invalid: BTreeMap<String, serde_json::Value> =
            [("app.locale".to_owned(), serde_json::json!("not a locale"))].into();
        assert_eq!(
            config
                .for_tenant("acme", &invalid, &modules)
                .unwrap_err()
                .to_string(),
            "invalid config value `app.locale` from tenant override (acme): `not a locale` is not a BCP 47 locale such as `en` or `de-CH`"
        );
        let zone: BTreeMap<String, serde_json::Value> =
            [("app.timezone".to_owned(), serde_json::json!("Mars/Olympus"))].into();
        assert_eq!(
            config
                .for_tenant("acme", &zone, &modules)
                .unwrap_err()
                .to_string(),
            "invalid config value `app.timezone` from tenant override (acme): `Mars/Olympus` is not a time zone name such as `UTC` or `Europe/Zurich` (the time zone database has no zone of that name)"
        );
        let zurich: BTreeMap<String, serde_json::Value> = [(
            "app.timezone".to_owned(),
            serde_json::json!("Europe/Zurich"),
        )]
        .into();
        assert_eq!(
            config
                .for_tenant("acme", &zurich, &modules)
                .unwrap()
                .app
                .timezone,
            "Europe/Zurich"
        );
    }

    #[test]
    fn flags_beat_the_environment() {
        let s = setup(&[]);
        let config = Config::load(&ConfigOptions {
            root: Some(s.dir.path().to_owned()),
            vars: Some(vec![("PREFIQ__SERVER__PORT".into(), "5003".into())]),
            flags: vec![("server.port".into(), serde_json::json!(6000))],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.server.port, 6000);
        assert_eq!(config.source_of("server.port"), "command-line flag");
    }
}
