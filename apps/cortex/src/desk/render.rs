//! Templates and static files in layers: cortex's core, then each app's (in boot order),
//! then the tenant's theme on disk. A later layer wins, so an app can restyle a core page
//! and a tenant can override either without a rebuild: `themes/{tenant}/templates/` and
//! `themes/{tenant}/static/` under the installation directory are read at run time, and a
//! template changed there is picked up on the next page.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use minijinja::{Environment, UndefinedBehavior};

/// Longest template or static file read from a theme, in bytes.
const MAX_THEME_FILE_BYTES: u64 = 1024 * 1024;

/// Most theme files looked at per tenant (a bound on the fingerprint's walk).
const MAX_THEME_FILES: usize = 256;

/// Most tenants whose themed environments are kept at once.
const MAX_THEMED_TENANTS: usize = 1024;

/// The embedded files of one layer.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    /// Template name (such as `form.html` or `entity/journal_entry/form.html`) to source.
    pub templates: HashMap<&'static str, &'static str>,
    /// Static file name (such as `desk.css`) to content.
    pub assets: HashMap<&'static str, &'static str>,
}

/// A file name a theme may use: relative, no `..`, plain characters.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('/')
        && name.split('/').all(|part| {
            !part.is_empty()
                && part != ".."
                && part != "."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

/// What a theme's templates looked like when its environment was made: every file's
/// name, size and modification time.
type Fingerprint = Vec<(String, u64, Option<SystemTime>)>;

fn fingerprint(dir: &Path) -> Option<Fingerprint> {
    let mut out = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = pending.pop() {
        let entries = std::fs::read_dir(&path).ok()?;
        for entry in entries.flatten() {
            if out.len() >= MAX_THEME_FILES {
                break;
            }
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if prefix.matches('/').count() < 3 {
                    pending.push((entry.path(), format!("{name}/")));
                }
            } else {
                out.push((name, meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    Some(out)
}

/// The layered templates and static files.
pub struct Renderer {
    layers: Arc<Vec<Layer>>,
    themes: PathBuf,
    base: Arc<Environment<'static>>,
    themed: Mutex<HashMap<String, (Fingerprint, Arc<Environment<'static>>)>>,
}

impl Renderer {
    /// A renderer over `layers` (core first) with tenant themes under `themes`.
    pub fn new(layers: Vec<Layer>, themes: PathBuf) -> Self {
        let layers = Arc::new(layers);
        Renderer {
            base: Arc::new(environment(layers.clone(), None)),
            layers,
            themes,
            themed: Mutex::new(HashMap::new()),
        }
    }

    /// The environment for `tenant`: the shared one, or one over the tenant's theme when it
    /// has a `templates/` folder (made again when a file in it changes).
    pub fn environment(&self, tenant: Option<&str>) -> Arc<Environment<'static>> {
        let Some(tenant) = tenant.filter(|t| prefiq::context::is_tenant_name(t)) else {
            return self.base.clone();
        };
        let dir = self.themes.join(tenant).join("templates");
        let Some(print) = fingerprint(&dir) else {
            return self.base.clone();
        };
        let Ok(mut themed) = self.themed.lock() else {
            return self.base.clone();
        };
        if let Some((seen, env)) = themed.get(tenant)
            && *seen == print
        {
            return env.clone();
        }
        if themed.len() >= MAX_THEMED_TENANTS {
            themed.clear();
        }
        let env = Arc::new(environment(self.layers.clone(), Some(dir)));
        themed.insert(tenant.to_owned(), (print, env.clone()));
        env
    }

    /// A static file for `tenant`: from its theme, else the last layer that has it.
    pub fn asset(&self, tenant: Option<&str>, name: &str) -> Option<Vec<u8>> {
        if !safe_name(name) {
            return None;
        }
        if let Some(tenant) = tenant.filter(|t| prefiq::context::is_tenant_name(t)) {
            let path = self.themes.join(tenant).join("static").join(name);
            if let Some(bytes) = read_bounded(&path) {
                return Some(bytes);
            }
        }
        self.layers
            .iter()
            .rev()
            .find_map(|layer| layer.assets.get(name))
            .map(|text| text.as_bytes().to_vec())
    }

    /// Whether any layer has template `name` (a theme can only override, not add, so that
    /// the choice between an entity's own template and the generic one is the same for
    /// every tenant).
    pub fn has_template(&self, name: &str) -> bool {
        self.layers
            .iter()
            .any(|layer| layer.templates.contains_key(name))
    }
}

fn read_bounded(path: &Path) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_THEME_FILE_BYTES {
        return None;
    }
    std::fs::read(path).ok()
}

fn environment(layers: Arc<Vec<Layer>>, theme: Option<PathBuf>) -> Environment<'static> {
    let mut env = Environment::new();
    // Optional parts of a page (a record's missing field) render as nothing.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_formatter(format_value);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_loader(move |name| {
        if !safe_name(name) {
            return Ok(None);
        }
        if let Some(dir) = &theme
            && let Some(bytes) = read_bounded(&dir.join(name))
        {
            return Ok(Some(String::from_utf8_lossy(&bytes).into_owned()));
        }
        Ok(layers
            .iter()
            .rev()
            .find_map(|layer| layer.templates.get(name))
            .map(|source| (*source).to_owned()))
    });
    env
}

/// Writes a value into a page: nothing for none, and in HTML the five characters that
/// can end a text or an attribute (`& < > " '`) as entities. minijinja's own escaper also
/// encodes `/`, which is safe but makes every URL in an attribute unreadable.
fn format_value(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    if value.is_none() || value.is_undefined() {
        return Ok(());
    }
    if matches!(state.auto_escape(), minijinja::AutoEscape::Html) && !value.is_safe() {
        let text = value.to_string();
        let mut escaped = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '&' => escaped.push_str("&amp;"),
                '<' => escaped.push_str("&lt;"),
                '>' => escaped.push_str("&gt;"),
                '"' => escaped.push_str("&quot;"),
                '\'' => escaped.push_str("&#x27;"),
                c => escaped.push(c),
            }
        }
        return out.write_str(&escaped).map_err(|_| {
            minijinja::Error::new(
                minijinja::ErrorKind::WriteFailure,
                "the page could not be written",
            )
        });
    }
    minijinja::escape_formatter(out, state, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, expected: bool) {
        assert_eq!(safe_name(name), expected, "{name}");
    }

    #[test]
    fn theme_file_names() {
        check("desk.css", true);
        check("entity/account/form.html", true);
        check("../secret", false);
        check("/etc/passwd", false);
        check("a//b", false);
        check("a/./b", false);
        check("", false);
        check("a b.html", false);
        check("a\\b", false);
    }

    #[test]
    fn a_later_layer_wins_and_a_theme_wins_over_all() {
        let core = Layer {
            templates: HashMap::from([("page.html", "core {{ x }}"), ("other.html", "core")]),
            assets: HashMap::from([("desk.css", "core")]),
        };
        let app = Layer {
            templates: HashMap::from([("page.html", "app {{ x }}")]),
            assets: HashMap::new(),
        };
        let dir = tempfile_dir();
        let renderer = Renderer::new(vec![core, app], dir.clone());
        let render = |tenant: Option<&str>, name: &str| {
            renderer
                .environment(tenant)
                .get_template(name)
                .and_then(|t| t.render(minijinja::context! { x => "<b>" }))
                .unwrap_or_else(|e| e.to_string())
        };
        assert_eq!(render(None, "page.html"), "app &lt;b&gt;");
        assert_eq!(render(None, "other.html"), "core");
        std::fs::create_dir_all(dir.join("acme/templates")).unwrap_or(());
        std::fs::write(dir.join("acme/templates/page.html"), "acme {{ x }}").unwrap_or(());
        assert_eq!(render(Some("acme"), "page.html"), "acme &lt;b&gt;");
        assert_eq!(render(Some("other"), "page.html"), "app &lt;b&gt;");
        // Changed on disk: the next render sees it, without a restart.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.join("acme/templates/page.html"), "acme v2 {{ x }}!").unwrap_or(());
        assert_eq!(render(Some("acme"), "page.html"), "acme v2 &lt;b&gt;!");
        std::fs::create_dir_all(dir.join("acme/static")).unwrap_or(());
        std::fs::write(dir.join("acme/static/desk.css"), "acme").unwrap_or(());
        assert_eq!(
            renderer.asset(Some("acme"), "desk.css"),
            Some(b"acme".to_vec())
        );
        assert_eq!(renderer.asset(None, "desk.css"), Some(b"core".to_vec()));
        assert_eq!(
            renderer.asset(Some("acme"), "../acme/static/desk.css"),
            None
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("prefiq-themes-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap_or(());
        dir
    }
}
