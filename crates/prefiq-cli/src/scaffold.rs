//! `prefiq make:module NAME`: a new app crate with a manifest, an entity schema, a
//! migration, a route and a test. It compiles and its test passes as generated.

use std::path::{Path, PathBuf};

/// Why a module could not be scaffolded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The name is not usable as a module and crate name.
    #[error("invalid module name `{name}`: {why}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The target directory exists already.
    #[error("{0} already exists; choose another name or remove it")]
    Exists(PathBuf),
    /// Writing failed (the partial directory is removed).
    #[error("cannot write {path}: {message}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS's message.
        message: String,
    },
}

/// Names a module may not take: Rust keywords (the crate name becomes a path) and the
/// platform's own crates.
const RESERVED: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "crate", "dyn", "else", "enum",
    "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro",
    "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return", "self", "static",
    "struct", "super", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use",
    "virtual", "where", "while", "yield", "abstract", "become", "do", "std", "core", "alloc",
    "test", "prefiq", "cortex", "axum", "serde", "tokio", "sqlx", "tower",
];

const FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/module/Cargo.toml.tmpl"),
    ),
    (
        "module.yaml",
        include_str!("../templates/module/module.yaml.tmpl"),
    ),
    (
        "schema/__name___item.yaml",
        include_str!("../templates/module/schema.yaml.tmpl"),
    ),
    (
        "migrations/0001_create___name___items.sql",
        include_str!("../templates/module/migration.sql.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/module/lib.rs.tmpl"),
    ),
    (
        "tests/module.rs",
        include_str!("../templates/module/test.rs.tmpl"),
    ),
];

/// Checks that `name` can be a module and crate name.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let invalid = |why| ScaffoldError::InvalidName {
        name: name.to_owned(),
        why,
    };
    if !prefiq::module::is_module_name(name) {
        return Err(invalid(
            "use snake_case: a-z, 0-9 and _, starting with a letter, at most 64",
        ));
    }
    if name.ends_with('_') || name.contains("__") {
        return Err(invalid("no trailing or doubled underscores"));
    }
    if RESERVED.contains(&name) {
        return Err(invalid(
            "it is reserved (a Rust keyword or a platform crate)",
        ));
    }
    Ok(())
}

fn type_name(name: &str) -> String {
    let mut out: String = name
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    out.push_str("Module");
    out
}

fn label(name: &str) -> String {
    let text = name.replace('_', " ");
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The files of a new module, as (relative path, contents).
pub fn render(name: &str) -> Result<Vec<(String, String)>, ScaffoldError> {
    check_name(name)?;
    let fill = |text: &str| {
        text.replace("__Type__", &type_name(name))
            .replace("__Label__", &label(name))
            .replace("__name__", name)
    };
    Ok(FILES
        .iter()
        .map(|(path, body)| (fill(path), fill(body)))
        .collect())
}

/// Writes the module to `apps_dir/NAME`. Nothing is left behind if a write fails.
pub fn make_module(apps_dir: &Path, name: &str) -> Result<PathBuf, ScaffoldError> {
    let files = render(name)?;
    let target = apps_dir.join(name);
    if target.exists() {
        return Err(ScaffoldError::Exists(target));
    }
    let io = |path: &Path, e: std::io::Error| ScaffoldError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(apps_dir).map_err(|e| io(apps_dir, e))?;
    // Build in a hidden sibling and rename into place, so a failure leaves no half module.
    let staging = apps_dir.join(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&staging);
    let written = files.iter().try_for_each(|(path, body)| {
        let file = staging.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&file, body).map_err(|e| io(&file, e))
    });
    let moved =
        written.and_then(|()| std::fs::rename(&staging, &target).map_err(|e| io(&target, e)));
    if moved.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    moved.map(|()| target)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check(name: &str, expected: &str) {
        let got = match check_name(name) {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expected, "{name:?}");
    }

    #[test]
    fn names() {
        check("demo", "ok");
        check("sales_orders", "ok");
        check("crm2", "ok");
        check(
            "Demo",
            "invalid module name `Demo`: use snake_case: a-z, 0-9 and _, starting with a letter, at most 64",
        );
        check(
            "2fa",
            "invalid module name `2fa`: use snake_case: a-z, 0-9 and _, starting with a letter, at most 64",
        );
        check(
            "my-app",
            "invalid module name `my-app`: use snake_case: a-z, 0-9 and _, starting with a letter, at most 64",
        );
        check(
            "../etc",
            "invalid module name `../etc`: use snake_case: a-z, 0-9 and _, starting with a letter, at most 64",
        );
        check(
            "",
            "invalid module name ``: use snake_case: a-z, 0-9 and _, starting with a letter, at most 64",
        );
        check(
            "a__b",
            "invalid module name `a__b`: no trailing or doubled underscores",
        );
        check(
            "type",
            "invalid module name `type`: it is reserved (a Rust keyword or a platform crate)",
        );
        check(
            "cortex",
            "invalid module name `cortex`: it is reserved (a Rust keyword or a platform crate)",
        );
    }

    #[test]
    fn rendering_fills_every_placeholder() {
        let files = render("sales_orders").unwrap();
        let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "Cargo.toml",
                "module.yaml",
                "schema/sales_orders_item.yaml",
                "migrations/0001_create_sales_orders_items.sql",
                "src/lib.rs",
                "tests/module.rs"
            ]
        );
        for (path, body) in &files {
            for placeholder in ["__name__", "__Type__", "__Label__"] {
                assert!(!body.contains(placeholder), "{path} keeps {placeholder}");
            }
        }
        let lib = &files[4].1;
        assert!(lib.contains("pub struct SalesOrdersModule"));
        let manifest = prefiq::Manifest::from_yaml(&files[1].1).unwrap();
        assert_eq!(manifest.name, "sales_orders");
        assert_eq!(manifest.entities, ["schema/sales_orders_item.yaml"]);
    }

    #[test]
    fn an_existing_directory_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let created = make_module(dir.path(), "demo").unwrap();
        assert!(created.join("src/lib.rs").exists());
        std::fs::write(created.join("src/lib.rs"), "// mine").unwrap();
        let err = make_module(dir.path(), "demo").unwrap_err();
        assert!(
            err.to_string()
                .ends_with("already exists; choose another name or remove it")
        );
        assert_eq!(
            std::fs::read_to_string(created.join("src/lib.rs")).unwrap(),
            "// mine"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no staging directory left"
        );
    }
}
