//! What a module says about its own routes in the OpenAPI document.
//!
//! A module keeps the OpenAPI description of the routes it contributes beside them, as an
//! embedded YAML fragment (`paths`, `components.schemas`, `components.parameters`,
//! `tags`), and contributes it as
//! an [`ApiDescription`] next to its [`crate::RouteSet`]. The served document is the
//! generated part (built-in routes and one resource per entity) with every contributed
//! description merged in; a test of the assembled installation fails when a served route
//! has no operation or an operation no route.
//!
//! A fragment is checked when it is made, so a broken one stops boot naming its module:
//! every operation has an `operationId`, a `summary` and a success response, every path
//! parameter is declared, and every `$ref` points at one of its own components, an
//! entity's record (`#/components/schemas/fiscal_year`) or a shared component (`Problem`, the problem responses such as
//! `#/components/responses/NotFound`, the `Tenant` header parameter).

use std::collections::BTreeSet;

use prefiq::{ErrorKind, KernelError};
use serde_json::{Map, Value};

use super::shared;

/// The HTTP methods an operation can be under.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The schemas of the generated part that a fragment may refer to.
const SHARED_SCHEMAS: &[&str] = &["Problem"];

/// The most bytes of YAML a fragment may have: it is embedded, so this only stops a
/// mistake (a whole generated file pasted in) from reaching every document served.
const MAX_FRAGMENT_BYTES: usize = 512 * 1024;

/// A module's description of its routes, merged into the served OpenAPI document.
#[derive(Debug, Clone)]
pub struct ApiDescription {
    module: String,
    tags: Vec<Value>,
    paths: Map<String, Value>,
    schemas: Map<String, Value>,
    parameters: Map<String, Value>,
}

/// A fragment that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptionError {
    /// The fragment is not YAML of an object.
    #[error("the OpenAPI description of module `{module}` cannot be read: {message}")]
    Parse {
        /// The module.
        module: String,
        /// What the parser said.
        message: String,
    },
    /// The fragment is YAML but not a usable description.
    #[error("the OpenAPI description of module `{module}` is invalid at `{at}`: {message}")]
    Invalid {
        /// The module.
        module: String,
        /// A JSON pointer into the fragment.
        at: String,
        /// What is wrong.
        message: String,
    },
    /// Two modules describe the same operation or schema.
    #[error("modules `{first}` and `{second}` both describe `{what}` in the OpenAPI document")]
    Duplicate {
        /// The module merged first.
        first: String,
        /// The module merged second.
        second: String,
        /// The operation (`METHOD /path`) or schema.
        what: String,
    },
}

impl From<DescriptionError> for KernelError {
    fn from(error: DescriptionError) -> Self {
        KernelError::service(ErrorKind::Invalid, error)
    }
}

impl ApiDescription {
    /// Reads and checks the YAML fragment of `module`.
    pub fn from_yaml(module: &str, yaml: &str) -> Result<Self, DescriptionError> {
        let parse = |message: String| DescriptionError::Parse {
            module: module.to_owned(),
            message,
        };
        if yaml.len() > MAX_FRAGMENT_BYTES {
            return Err(parse(format!(
                "it is longer than {MAX_FRAGMENT_BYTES} bytes"
            )));
        }
        let value: Value = serde_yaml::from_str(yaml).map_err(|e| parse(e.to_string()))?;
        Self::from_value(module, value)
    }

    /// Checks an already parsed fragment of `module`.
    pub fn from_value(module: &str, value: Value) -> Result<Self, DescriptionError> {
        let invalid = |at: &str, message: &str| DescriptionError::Invalid {
            module: module.to_owned(),
            at: at.to_owned(),
            message: message.to_owned(),
        };
        let Value::Object(mut top) = value else {
            return Err(invalid("", "the fragment is an object"));
        };
        if let Some(key) = top
            .keys()
            .find(|k| !matches!(k.as_str(), "tags" | "paths" | "components"))
        {
            return Err(invalid(
                &format!("/{key}"),
                "a fragment holds only `tags`, `paths` and `components`",
            ));
        }
        let tags = match top.remove("tags") {
            None => Vec::new(),
            Some(Value::Array(tags)) => tags,
            Some(_) => return Err(invalid("/tags", "`tags` is a list")),
        };
        let mut components = match top.remove("components") {
            None => Map::new(),
            Some(Value::Object(components)) => components,
            Some(_) => return Err(invalid("/components", "`components` is an object")),
        };
        if let Some(key) = components
            .keys()
            .find(|k| !matches!(k.as_str(), "schemas" | "parameters"))
        {
            return Err(invalid(
                &format!("/components/{key}"),
                "a fragment's components are only `schemas` and `parameters`",
            ));
        }
        let mut section = |kind: &str| match components.remove(kind) {
            None => Ok(Map::new()),
            Some(Value::Object(map)) => {
                // Entity components are lower-case entity names; a capital keeps them apart.
                match map
                    .keys()
                    .find(|n| !n.starts_with(|c: char| c.is_ascii_uppercase()))
                {
                    Some(name) => Err(invalid(
                        &format!("/components/{kind}/{name}"),
                        "a module's component names start with a capital letter (entity names do not)",
                    )),
                    None => Ok(map),
                }
            }
            Some(_) => Err(invalid(
                &format!("/components/{kind}"),
                &format!("`{kind}` is an object"),
            )),
        };
        let schemas = section("schemas")?;
        let parameters = section("parameters")?;
        let paths = match top.remove("paths") {
            None => Map::new(),
            Some(Value::Object(paths)) => paths,
            Some(_) => return Err(invalid("/paths", "`paths` is an object")),
        };
        for (path, item) in &paths {
            let at = format!("/paths/{}", escape(path));
            check_path_item(path, item)
                .map_err(|(under, message)| invalid(&format!("{at}{under}"), &message))?;
        }
        let description = ApiDescription {
            module: module.to_owned(),
            tags,
            paths,
            schemas,
            parameters,
        };
        let mut refs = Vec::new();
        collect_refs(
            &Value::Object(description.paths.clone()),
            "/paths",
            &mut refs,
        );
        collect_refs(
            &Value::Object(description.schemas.clone()),
            "/components/schemas",
            &mut refs,
        );
        collect_refs(
            &Value::Object(description.parameters.clone()),
            "/components/parameters",
            &mut refs,
        );
        for (at, target) in refs {
            if !description.resolves(&target) {
                return Err(invalid(
                    &at,
                    &format!(
                        "`{target}` is neither a schema of this fragment nor a shared component"
                    ),
                ));
            }
        }
        Ok(description)
    }

    /// The module that gave this description.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// Every operation described, as (upper-case method, path).
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (path, item) in &self.paths {
            if let Value::Object(item) = item {
                for method in item.keys().filter(|k| METHODS.contains(&k.as_str())) {
                    out.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    /// Whether `target` names a component the merged document will have.
    fn resolves(&self, target: &str) -> bool {
        if let Some(name) = target.strip_prefix("#/components/schemas/") {
            // A lower-case name is an entity's record, generated from the registry: only
            // the assembled document can tell (the installation's test resolves them).
            return self.schemas.contains_key(name)
                || SHARED_SCHEMAS.contains(&name)
                || name.starts_with(|c: char| c.is_ascii_lowercase());
        }
        if let Some(name) = target.strip_prefix("#/components/responses/") {
            return shared::PROBLEM_RESPONSES.iter().any(|(n, _, _)| *n == name);
        }
        if let Some(name) = target.strip_prefix("#/components/parameters/") {
            return self.parameters.contains_key(name) || shared::parameters().contains_key(name);
        }
        false
    }
}

/// Escapes a key for a JSON pointer (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Checks one path item; an error is (pointer below the item, message).
fn check_path_item(path: &str, item: &Value) -> Result<(), (String, String)> {
    if !path.starts_with('/') {
        return Err((String::new(), "a path starts with `/`".into()));
    }
    let Value::Object(item) = item else {
        return Err((String::new(), "a path item is an object".into()));
    };
    let item_parameters = declared_path_parameters(item.get("parameters"));
    let mut operations = 0;
    for (key, operation) in item {
        if matches!(key.as_str(), "parameters" | "summary" | "description") {
            continue;
        }
        if !METHODS.contains(&key.as_str()) {
            return Err((
                format!("/{key}"),
                "a path item holds operations under lower-case HTTP methods".into(),
            ));
        }
        operations += 1;
        let at = format!("/{key}");
        let Value::Object(op) = operation else {
            return Err((at, "an operation is an object".into()));
        };
        for required in ["operationId", "summary"] {
            if !op.get(required).is_some_and(Value::is_string) {
                return Err((at, format!("an operation needs `{required}`")));
            }
        }
        let Some(Value::Object(responses)) = op.get("responses") else {
            return Err((at, "an operation has `responses`".into()));
        };
        if !responses.keys().any(|s| s.starts_with('2')) {
            return Err((
                format!("{at}/responses"),
                "an operation has a success (2xx) response".into(),
            ));
        }
        let mut declared = declared_path_parameters(op.get("parameters"));
        declared.extend(item_parameters.iter().cloned());
        for name in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        {
            if !declared.contains(name) {
                return Err((
                    format!("{at}/parameters"),
                    format!("the path parameter `{name}` is not declared"),
                ));
            }
        }
    }
    if operations == 0 {
        return Err((
            String::new(),
            "a path item has at least one operation".into(),
        ));
    }
    Ok(())
}

/// The names of the path parameters declared inline in `parameters`.
fn declared_path_parameters(parameters: Option<&Value>) -> BTreeSet<String> {
    parameters
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "path" && p["required"] == true)
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

/// Every `$ref` under `value`, with its JSON pointer.
fn collect_refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let here = format!("{at}/{}", escape(key));
                match (key.as_str(), item) {
                    ("$ref", Value::String(target)) => out.push((here, target.clone())),
                    _ => collect_refs(item, &here, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_refs(item, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Merges `descriptions` into `document` (made by [`super::openapi_document`]): their
/// paths, schemas and tags. Two descriptions of the same operation or schema are an error.
pub fn merge_descriptions<'d>(
    document: &mut Value,
    descriptions: impl IntoIterator<Item = &'d ApiDescription>,
) -> Result<(), DescriptionError> {
    // Who described each operation and schema, to name both in a duplicate.
    let mut owners: std::collections::BTreeMap<String, String> = Default::default();
    for description in descriptions {
        for (path, item) in &description.paths {
            let Value::Object(item) = item else { continue };
            let Some(paths) = document["paths"].as_object_mut() else {
                continue;
            };
            let entry = paths
                .entry(path.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(target) = entry else {
                continue;
            };
            for (key, operation) in item {
                if target.contains_key(key) && key != "parameters" {
                    let what = format!("{} {path}", key.to_uppercase());
                    let first = owners
                        .get(&what)
                        .cloned()
                        .unwrap_or_else(|| "prefiq".into());
                    return Err(duplicate(&first, &description.module, &what));
                }
                owners.insert(
                    format!("{} {path}", key.to_uppercase()),
                    description.module.clone(),
                );
                target.insert(key.clone(), operation.clone());
            }
        }
        for (kind, components) in [
            ("schemas", &description.schemas),
            ("parameters", &description.parameters),
        ] {
            let Some(target) = document["components"][kind].as_object_mut() else {
                continue;
            };
            for (name, component) in components {
                let what = format!("#/components/{kind}/{name}");
                if target.contains_key(name) {
                    let first = owners
                        .get(&what)
                        .cloned()
                        .unwrap_or_else(|| "prefiq".into());
                    return Err(duplicate(&first, &description.module, &what));
                }
                owners.insert(what, description.module.clone());
                target.insert(name.clone(), component.clone());
            }
        }
        if let Some(tags) = document["tags"].as_array_mut() {
            for tag in &description.tags {
                if !tags.iter().any(|t| t["name"] == tag["name"]) {
                    tags.push(tag.clone());
                }
            }
        }
    }
    Ok(())
}

fn duplicate(first: &str, second: &str, what: &str) -> DescriptionError {
    DescriptionError::Duplicate {
        first: first.to_owned(),
        second: second.to_owned(),
        what: what.to_owned(),
    }
}
