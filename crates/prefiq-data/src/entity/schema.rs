//! Entity schemas: YAML in an app's `schema/` folder, parsed and checked at boot.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::permission::{Permission, RawPermission};

/// Columns every entity table has; no field may take these names.
pub const SYSTEM_COLUMNS: &[&str] = &[
    "tenant_id",
    "id",
    "name",
    "created_at",
    "created_by",
    "modified_at",
    "modified_by",
    "version",
    "docstatus",
    "deleted_at",
    "custom",
    "parent_id",
    "parent_field",
    "idx",
    "amended_from",
];

/// Longest accepted `text` value, in characters.
pub const TEXT_MAX_CHARS: u32 = 1_000_000;

/// How an entity's `name` is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Naming {
    /// The name is the id (a UUIDv7).
    Uuid,
    /// A naming series such as `JE-.YYYY.-.#####`: literal parts, `.YYYY.`/`.YY.`/`.MM.`/`.DD.`
    /// date parts and a run of `#` for the counter.
    Series(String),
}

/// How a tree entity stores its hierarchy.
///
/// Only a closure table is offered: unlike a nested set it needs no renumbering of the
/// whole tree on insert, so concurrent writers do not contend on every row, and "all
/// descendants" is one indexed lookup on both backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TreeKind {
    /// A closure table `{entity}__tree` of (ancestor, descendant, depth) rows, every node
    /// its own ancestor at depth 0.
    Closure,
}

/// The type of a field, with what each type needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldKind {
    /// A short string (default at most 140 characters).
    Data,
    /// A long string.
    Text,
    /// A 64-bit integer.
    Int,
    /// A fixed-scale decimal, carried as a string, stored as a scaled integer.
    Decimal {
        /// Digits after the point, 0 to 12.
        scale: u8,
    },
    /// An amount in integer minor units with its currency, carried as
    /// `{"amount": "12.34", "currency": "EUR"}`.
    Money,
    /// True or false.
    Bool,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339, stored in UTC.
    Datetime,
    /// One of `options`.
    Select {
        /// The allowed values.
        options: Vec<String>,
    },
    /// The id of a row of `target` in the same tenant.
    Link {
        /// The linked entity.
        target: String,
    },
    /// Child rows of the `entity` child entity.
    Table {
        /// The child entity.
        entity: String,
    },
    /// Any JSON value.
    Json,
    /// An email address.
    Email,
}

impl FieldKind {
    /// The type's name as written in YAML.
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldKind::Data => "data",
            FieldKind::Text => "text",
            FieldKind::Int => "int",
            FieldKind::Decimal { .. } => "decimal",
            FieldKind::Money => "money",
            FieldKind::Bool => "bool",
            FieldKind::Date => "date",
            FieldKind::Datetime => "datetime",
            FieldKind::Select { .. } => "select",
            FieldKind::Link { .. } => "link",
            FieldKind::Table { .. } => "table",
            FieldKind::Json => "json",
            FieldKind::Email => "email",
        }
    }

    /// Whether values of this type are stored in a column of the entity's own table.
    pub fn has_column(&self) -> bool {
        !matches!(self, FieldKind::Table { .. })
    }
}

/// One field of an entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDef {
    /// snake_case name; also the column name.
    pub name: String,
    /// Human label.
    pub label: String,
    /// The type.
    #[serde(flatten)]
    pub kind: FieldKind,
    /// A value must be given (or defaulted) on create.
    pub required: bool,
    /// No two live rows of a tenant share a value.
    pub unique: bool,
    /// The value used on create when none is given.
    pub default: Option<serde_json::Value>,
    /// Longest value in characters (data, email, text).
    pub max_length: Option<u32>,
    /// Clients may not set it.
    pub read_only: bool,
    /// Has an index.
    pub indexed: bool,
    /// Personal data: hashed in the audit log.
    pub pii: bool,
    /// What the field means.
    pub description: String,
    /// For a data field, the value names a row of another entity by a unique field
    /// (`currency.code`); for a money field, its currency does. The row need not exist
    /// (the value is checked as its type says), but while this row stands past draft it
    /// protects that row from deletion, as a link does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
}

impl FieldDef {
    /// The `(entity, field)` a data or money field's value names, if it names one.
    pub fn key_reference(&self) -> Option<(&str, &str)> {
        self.references.as_deref()?.split_once('.')
    }

    /// The effective maximum length for string types.
    pub fn max_chars(&self) -> Option<u32> {
        match self.kind {
            FieldKind::Data => Some(self.max_length.unwrap_or(140)),
            FieldKind::Email => Some(self.max_length.unwrap_or(254)),
            FieldKind::Text => Some(self.max_length.unwrap_or(TEXT_MAX_CHARS)),
            _ => None,
        }
    }
}

/// A validated entity schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntitySchema {
    /// snake_case, unique across modules and within a tenant's runtime entities; the table
    /// name of a declared entity (see [`EntitySchema::table`]).
    pub name: String,
    /// Human label.
    pub label: String,
    /// The module that declares it.
    pub module: String,
    /// The file it came from.
    pub file: String,
    /// How names are made.
    pub naming: Naming,
    /// Has the draft → submitted → cancelled lifecycle.
    pub submittable: bool,
    /// Rows form a tree.
    pub tree: Option<TreeKind>,
    /// Changes are recorded field by field.
    pub track_changes: bool,
    /// Rows only exist inside a parent's `table` field.
    pub child: bool,
    /// The fields, in declared order.
    pub fields: Vec<FieldDef>,
    /// Role → what it may do, enforced by the authorization layer.
    pub permissions: BTreeMap<String, Permission>,
    /// The table, when it is not the entity's name: a runtime entity's table is named
    /// after its tenant and its name ([`runtime_table`]), so two tenants may each have an
    /// entity of the same name. Recorded with the schema, so a table keeps its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The shape of the generated field indexes the table was made or last migrated with
    /// ([`super::ddl::INDEX_LAYOUT`]); snapshots recorded before it existed read as 0, so
    /// the next migration rebuilds their indexes.
    #[serde(default)]
    pub index_layout: u8,
    /// Where the rows live: a table the engine makes and writes (the default), or a view
    /// the declaring module makes in its own migration over tables it owns and writes.
    #[serde(default, skip_serializing_if = "Storage::is_table")]
    pub storage: Storage,
    /// The fields whose text the memory app keeps as `record` memory items, so records
    /// are found by meaning (`memory: {fields: [title, description]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemorySpec>,
}

/// An entity's `memory` block: which fields make up a record's memory text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySpec {
    /// Text-like fields (data, text, select, email), joined in this order.
    pub fields: Vec<String>,
}

/// Where an entity's rows live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// A table the engine makes, migrates and writes.
    #[default]
    Table,
    /// A read-only view with the columns a table of the entity would have, made by the
    /// declaring module's migration (on PostgreSQL with `security_invoker`, so the
    /// row-level security of the tables under it holds). The engine makes no table for
    /// it, refuses writes and custom fields, and reads it like a table.
    View,
}

impl Storage {
    /// Whether rows live in an engine-made table.
    pub fn is_table(&self) -> bool {
        *self == Storage::Table
    }
}

/// The longest identifier PostgreSQL keeps (longer ones are cut, silently, to 63 bytes).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// `name` made to fit [`MAX_IDENTIFIER_BYTES`]: unchanged when it does, else its first
/// bytes and 12 hex digits of its SHA-256, so two long names that share a beginning stay
/// two names (PostgreSQL would cut both to the same 63 bytes).
pub fn fit_identifier(name: String) -> String {
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name;
    }
    use sha2::Digest as _;
    let digest: String = sha2::Sha256::digest(name.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    // Identifiers are ASCII, so any byte is a character boundary.
    let keep = MAX_IDENTIFIER_BYTES - digest.len() - 1;
    format!("{}_{digest}", &name[..keep])
}

/// The table of the runtime entity `name` of `tenant`: `t`, 12 hex digits of the SHA-256 of
/// the tenant's name, `_`, the entity's name; at most 62 bytes (names are at most 48).
/// The tenant's name itself (up to 63 bytes, with `-`) would not fit beside the entity's.
pub fn runtime_table(tenant: &str, name: &str) -> String {
    use sha2::Digest as _;
    let digest: String = sha2::Sha256::digest(tenant.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t{digest}_{name}")
}

/// Words an entity may not be called: the entity becomes a Cedar entity type, and Cedar
/// reserves these.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "if",
    "then",
    "else",
    "in",
    "is",
    "like",
    "has",
    "permit",
    "forbid",
    "when",
    "unless",
    "principal",
    "action",
    "resource",
    "context",
];

/// Runtime entities belong to the pseudo-module `tenant:{tenant}` of the tenant that
/// created them.
pub const RUNTIME_MODULE_PREFIX: &str = "tenant:";

impl EntitySchema {
    /// The tenant that created this entity at run time; `None` for declared entities.
    pub fn owner_tenant(&self) -> Option<&str> {
        self.module.strip_prefix(RUNTIME_MODULE_PREFIX)
    }

    /// Whether `tenant` may see this entity: declared entities are everyone's, a runtime
    /// entity only its tenant's.
    pub fn visible_to(&self, tenant: Option<&str>) -> bool {
        self.owner_tenant()
            .is_none_or(|owner| tenant == Some(owner))
    }

    /// For a tree entity, the link field to its parent row: `parent_{entity}`, as in
    /// Frappe (`parent_account`).
    pub fn tree_parent(&self) -> Option<String> {
        self.tree.map(|_| format!("parent_{}", self.name))
    }

    /// For a tree entity, its closure table.
    pub fn tree_table(&self) -> Option<String> {
        self.tree
            .map(|_| fit_identifier(format!("{}__tree", self.table())))
    }

    /// The table that holds the rows: the entity's name, but for runtime entities.
    pub fn table(&self) -> &str {
        self.table.as_deref().unwrap_or(&self.name)
    }

    /// The name of the index (or another object beside the table) `suffix` of the table:
    /// `{table}__{suffix}`, made to fit PostgreSQL's identifiers.
    pub fn index_name(&self, suffix: &str) -> String {
        fit_identifier(format!("{}__{suffix}", self.table()))
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Why a schema is invalid: names the file and, where there is one, the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid entity schema {file}{}: {message}", field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
pub struct SchemaError {
    /// The file.
    pub file: String,
    /// The field, if the problem is in one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    name: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    naming: Option<String>,
    #[serde(default)]
    submittable: bool,
    #[serde(default)]
    tree: Option<TreeKind>,
    #[serde(default)]
    track_changes: bool,
    #[serde(default)]
    child: bool,
    #[serde(default)]
    storage: Storage,
    fields: Vec<RawField>,
    #[serde(default)]
    permissions: BTreeMap<String, RawPermission>,
    #[serde(default)]
    memory: Option<MemorySpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    #[serde(rename = "type")]
    field_type: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    unique: bool,
    #[serde(default)]
    default: Option<serde_json::Value>,
    #[serde(default)]
    max_length: Option<u32>,
    #[serde(default)]
    options: Option<Vec<String>>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    entity: Option<String>,
    #[serde(default)]
    scale: Option<u8>,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    indexed: bool,
    #[serde(default)]
    pii: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    references: Option<String>,
}

/// Whether `name` is a usable entity or field name: `[a-z][a-z0-9_]*`, at most 48 bytes.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 48
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn label_of(name: &str) -> String {
    let text = name.replace('_', " ");
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// Actions a permissions block may grant (custom actions are `app.action` names).
pub const ACTIONS: &[&str] = &[
    "read", "create", "update", "delete", "submit", "cancel", "amend", "export",
];

/// Checks a naming series such as `JE-.YYYY.-.#####`.
pub fn check_series(series: &str) -> Result<(), String> {
    let hashes = series.matches('#').count();
    if !(1..=10).contains(&hashes) {
        return Err("a naming series needs a run of 1 to 10 `#` for its counter".into());
    }
    let run = "#".repeat(hashes);
    if !series.contains(&run) {
        return Err("the `#` of a naming series must form one run".into());
    }
    if series.len() > 64
        || !series
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./#".contains(c))
    {
        return Err("a naming series uses letters, digits and `-_./#`, at most 64".into());
    }
    Ok(())
}

/// Parses one schema file of `module` without cross-entity checks (see [`check_links`]).
pub fn parse_schema(module: &str, file: &str, yaml: &str) -> Result<EntitySchema, SchemaError> {
    let error = |field: Option<&str>, message: String| SchemaError {
        file: file.to_owned(),
        field: field.map(str::to_owned),
        message,
    };
    let raw: RawSchema = serde_yaml::from_str(yaml).map_err(|e| {
        let message = e.to_string();
        // serde names a bad field by its index; name it by its `name` too when it has one.
        let index = message
            .strip_prefix("fields[")
            .and_then(|rest| rest.split(']').next())
            .and_then(|n| n.parse::<usize>().ok());
        let field_name = index.and_then(|i| {
            let value: serde_yaml::Value = serde_yaml::from_str(yaml).ok()?;
            value
                .get("fields")?
                .get(i)?
                .get("name")?
                .as_str()
                .map(str::to_owned)
        });
        error(field_name.as_deref(), message)
    })?;
    if !is_identifier(&raw.name)
        || raw.name.starts_with("prefiq")
        || RESERVED.contains(&raw.name.as_str())
    {
        return Err(error(
            None,
            format!(
                "entity name `{}` must be snake_case (a-z, 0-9, _), at most 48, and not start with `prefiq`",
                raw.name
            ),
        ));
    }
    let naming = match raw.naming.as_deref() {
        None | Some("uuid") => Naming::Uuid,
        Some(series) => {
            check_series(series).map_err(|m| error(None, m))?;
            Naming::Series(series.to_owned())
        }
    };
    if raw.child && (raw.submittable || raw.tree.is_some()) {
        return Err(error(
            None,
            "a child entity cannot be submittable or a tree".into(),
        ));
    }
    if raw.storage == Storage::View && (raw.child || raw.submittable || raw.tree.is_some()) {
        return Err(error(
            None,
            "a view entity cannot be a child, submittable or a tree".into(),
        ));
    }
    if raw.fields.is_empty() {
        return Err(error(None, "an entity needs at least one field".into()));
    }
    if raw.fields.len() > 1000 {
        return Err(error(None, "an entity has at most 1000 fields".into()));
    }
    let mut seen = BTreeSet::new();
    let mut fields = Vec::with_capacity(raw.fields.len());
    for f in raw.fields {
        let name = f.name.clone();
        let bad = |message: String| error(Some(&name), message);
        if !is_identifier(&f.name) {
            return Err(bad(
                "a field name is snake_case (a-z, 0-9, _), at most 48".into()
            ));
        }
        if SYSTEM_COLUMNS.contains(&f.name.as_str()) || f.name.ends_with("_currency") {
            return Err(bad("the name is reserved for a system column".into()));
        }
        if !seen.insert(f.name.clone()) {
            return Err(bad("the field is declared twice".into()));
        }
        let only = |what: &str, present: bool, allowed: bool| {
            if present && !allowed {
                Err(bad(format!(
                    "`{what}` does not apply to a {} field",
                    f.field_type
                )))
            } else {
                Ok(())
            }
        };
        let kind = match f.field_type.as_str() {
            "data" => FieldKind::Data,
            "text" => FieldKind::Text,
            "int" => FieldKind::Int,
            "decimal" => {
                let scale = f.scale.unwrap_or(2);
                if scale > 12 {
                    return Err(bad("`scale` is at most 12".into()));
                }
                FieldKind::Decimal { scale }
            }
            "money" => FieldKind::Money,
            "bool" => FieldKind::Bool,
            "date" => FieldKind::Date,
            "datetime" => FieldKind::Datetime,
            "select" => {
                let options = f.options.clone().unwrap_or_default();
                if options.is_empty() || options.iter().any(|o| o.is_empty() || o.len() > 140) {
                    return Err(bad(
                        "a select field needs `options`: non-empty strings of at most 140".into(),
                    ));
                }
                if options.iter().collect::<BTreeSet<_>>().len() != options.len() {
                    return Err(bad("`options` repeat a value".into()));
                }
                FieldKind::Select { options }
            }
            "link" => match &f.target {
                Some(target) if is_identifier(target) => FieldKind::Link {
                    target: target.clone(),
                },
                _ => {
                    return Err(bad(
                        "a link field needs `target`: the linked entity's name".into()
                    ));
                }
            },
            "table" => match &f.entity {
                Some(entity) if is_identifier(entity) => FieldKind::Table {
                    entity: entity.clone(),
                },
                _ => {
                    return Err(bad(
                        "a table field needs `entity`: the child entity's name".into()
                    ));
                }
            },
            "json" => FieldKind::Json,
            "email" => FieldKind::Email,
            other => {
                return Err(bad(format!(
                    "unknown type `{other}`; use data, text, int, decimal, money, bool, date, datetime, select, link, table, json or email"
                )));
            }
        };
        only(
            "options",
            f.options.is_some(),
            matches!(kind, FieldKind::Select { .. }),
        )?;
        only(
            "target",
            f.target.is_some(),
            matches!(kind, FieldKind::Link { .. }),
        )?;
        only(
            "entity",
            f.entity.is_some(),
            matches!(kind, FieldKind::Table { .. }),
        )?;
        only(
            "scale",
            f.scale.is_some(),
            matches!(kind, FieldKind::Decimal { .. }),
        )?;
        only(
            "max_length",
            f.max_length.is_some(),
            matches!(kind, FieldKind::Data | FieldKind::Email | FieldKind::Text),
        )?;
        only(
            "unique",
            f.unique,
            !matches!(
                kind,
                FieldKind::Table { .. } | FieldKind::Json | FieldKind::Text | FieldKind::Money
            ),
        )?;
        only(
            "indexed",
            f.indexed,
            kind.has_column() && !matches!(kind, FieldKind::Json),
        )?;
        only("default", f.default.is_some(), kind.has_column())?;
        if let Some(max) = f.max_length
            && (max == 0 || max > TEXT_MAX_CHARS)
        {
            return Err(bad(format!(
                "`max_length` is between 1 and {TEXT_MAX_CHARS}"
            )));
        }
        let field = FieldDef {
            label: f.label.unwrap_or_else(|| label_of(&f.name)),
            name: f.name,
            kind,
            required: f.required,
            unique: f.unique,
            default: None,
            max_length: f.max_length,
            read_only: f.read_only,
            indexed: f.indexed,
            pii: f.pii,
            description: f.description.unwrap_or_default(),
            references: f.references,
        };
        if let Some(reference) = &field.references {
            only(
                "references",
                true,
                matches!(field.kind, FieldKind::Data | FieldKind::Money),
            )?;
            if !reference
                .split_once('.')
                .is_some_and(|(e, f)| is_identifier(e) && is_identifier(f))
            {
                return Err(bad(format!(
                    "`references` names an entity and its unique field, such as `currency.code`, not `{reference}`"
                )));
            }
        }
        let default = match f.default {
            Some(value) => Some(
                crate::entity::value::coerce(&field, &value)
                    .map(|_| value)
                    .map_err(|e| bad(format!("`default` is invalid: {}", e.message)))?,
            ),
            None => None,
        };
        fields.push(FieldDef { default, ..field });
    }
    let mut permissions = BTreeMap::new();
    for (role, entry) in raw.permissions {
        let permission = super::permission::parse(&role, entry, &fields, |a| {
            ACTIONS.contains(&a) || is_custom_action(a)
        })
        .map_err(|m| {
            error(
                None,
                format!("{m}; actions are {} or `app.action`", ACTIONS.join(", ")),
            )
        })?;
        permissions.insert(role, permission);
    }
    let label = raw.label.unwrap_or_else(|| label_of(&raw.name));
    if raw.tree.is_some() {
        // A tree links every row to its parent; a schema may declare that field itself
        // (to give it a label or make it required) but only as a link to the entity.
        let parent = format!("parent_{}", raw.name);
        match fields.iter().find(|f| f.name == parent) {
            Some(f)
                if f.kind
                    != (FieldKind::Link {
                        target: raw.name.clone(),
                    }) =>
            {
                return Err(error(
                    Some(&parent),
                    format!("in a tree the parent field is a link to `{}`", raw.name),
                ));
            }
            Some(_) => {}
            None => fields.push(FieldDef {
                name: parent,
                label: format!("Parent {label}"),
                kind: FieldKind::Link {
                    target: raw.name.clone(),
                },
                required: false,
                unique: false,
                default: None,
                max_length: None,
                read_only: false,
                indexed: true,
                pii: false,
                description: "The parent row in the tree; none for a root.".into(),
                references: None,
            }),
        }
    }
    if let Some(memory) = &raw.memory {
        if memory.fields.is_empty() || memory.fields.len() > 16 {
            return Err(error(
                None,
                "`memory.fields` names between 1 and 16 text fields".into(),
            ));
        }
        for name in &memory.fields {
            match fields.iter().find(|f| &f.name == name) {
                Some(f)
                    if matches!(
                        f.kind,
                        FieldKind::Data
                            | FieldKind::Text
                            | FieldKind::Select { .. }
                            | FieldKind::Email
                    ) => {}
                Some(_) => {
                    return Err(error(
                        Some(name),
                        "a `memory` field is a data, text, select or email field".into(),
                    ));
                }
                None => {
                    return Err(error(
                        None,
                        format!("`memory.fields` names `{name}`, which is not a field"),
                    ));
                }
            }
        }
    }
    Ok(EntitySchema {
        label,
        name: raw.name,
        module: module.to_owned(),
        file: file.to_owned(),
        naming,
        submittable: raw.submittable,
        tree: raw.tree,
        track_changes: raw.track_changes,
        child: raw.child,
        fields,
        permissions,
        table: None,
        index_layout: super::ddl::INDEX_LAYOUT,
        storage: raw.storage,
        memory: raw.memory,
    })
}

fn is_custom_action(action: &str) -> bool {
    action
        .split_once('.')
        .is_some_and(|(app, name)| is_identifier(app) && is_identifier(name))
}

/// Checks what needs every schema: unique names, link targets and child tables.
pub fn check_links(schemas: &[EntitySchema]) -> Result<(), SchemaError> {
    check_links_of(&schemas.iter().collect::<Vec<_>>())
}

/// [`check_links`] over borrowed schemas.
pub fn check_links_of(schemas: &[&EntitySchema]) -> Result<(), SchemaError> {
    let mut by_name: BTreeMap<&str, &EntitySchema> = BTreeMap::new();
    for &schema in schemas {
        if let Some(first) = by_name.insert(&schema.name, schema) {
            return Err(SchemaError {
                file: schema.file.clone(),
                field: None,
                message: format!(
                    "entity `{}` is also declared by module `{}` in {}",
                    schema.name, first.module, first.file
                ),
            });
        }
    }
    for &schema in schemas {
        for field in &schema.fields {
            let bad = |message: String| SchemaError {
                file: schema.file.clone(),
                field: Some(field.name.clone()),
                message,
            };
            if let Some((entity, key)) = field.key_reference() {
                let unique_key = by_name
                    .get(entity)
                    .and_then(|t| t.field(key))
                    .is_some_and(|k| k.unique && matches!(k.kind, FieldKind::Data));
                if !unique_key {
                    return Err(bad(format!(
                        "references `{entity}.{key}`, which is not a unique data field of a declared entity"
                    )));
                }
            }
            match &field.kind {
                FieldKind::Link { target } => match by_name.get(target.as_str()) {
                    None => {
                        return Err(bad(format!(
                            "links to `{target}`, which no module declares"
                        )));
                    }
                    Some(t) if t.child => {
                        return Err(bad(format!("links to `{target}`, a child entity")));
                    }
                    Some(_) => {}
                },
                FieldKind::Table { entity } => match by_name.get(entity.as_str()) {
                    None => {
                        return Err(bad(format!(
                            "holds rows of `{entity}`, which no module declares"
                        )));
                    }
                    Some(c) if !c.child => {
                        return Err(bad(format!(
                            "holds rows of `{entity}`, which is not declared `child: true`"
                        )));
                    }
                    Some(_) if schema.child => {
                        return Err(bad("a child entity cannot hold child rows".into()));
                    }
                    Some(_) => {}
                },
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str, expected: &str) {
        let got = match parse_schema("m", "schema/x.yaml", yaml) {
            Ok(s) => format!("ok {} fields", s.fields.len()),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expected, "{yaml}");
    }

    #[test]
    fn schemas() {
        check(
            "name: todo\nfields:\n  - {name: description, type: text, required: true}\n",
            "ok 1 fields",
        );
        check(
            "name: todo\nfields:\n  - {name: c, type: data, references: currency.code}\n  - {name: m, type: money, references: currency.code}\n",
            "ok 2 fields",
        );
        check(
            "name: todo\nfields:\n  - {name: c, type: int, references: currency.code}\n",
            "invalid entity schema schema/x.yaml, field `c`: `references` does not apply to a int field",
        );
        check(
            "name: todo\nfields:\n  - {name: c, type: data, references: currency}\n",
            "invalid entity schema schema/x.yaml, field `c`: `references` names an entity and its unique field, such as `currency.code`, not `currency`",
        );
        check(
            "name: Todo\nfields:\n  - {name: a, type: data}\n",
            "invalid entity schema schema/x.yaml: entity name `Todo` must be snake_case (a-z, 0-9, _), at most 48, and not start with `prefiq`",
        );
        check(
            "name: todo\nfields: []\n",
            "invalid entity schema schema/x.yaml: an entity needs at least one field",
        );
        check(
            "name: todo\nfields:\n  - {name: a, type: string}\n",
            "invalid entity schema schema/x.yaml, field `a`: unknown type `string`; use data, text, int, decimal, money, bool, date, datetime, select, link, table, json or email",
        );
        check(
            "name: todo\nfields:\n  - {name: version, type: int}\n",
            "invalid entity schema schema/x.yaml, field `version`: the name is reserved for a system column",
        );
        check(
            "name: todo\nfields:\n  - {name: a, type: int}\n  - {name: a, type: int}\n",
            "invalid entity schema schema/x.yaml, field `a`: the field is declared twice",
        );
        check(
            "name: todo\nfields:\n  - {name: s, type: select}\n",
            "invalid entity schema schema/x.yaml, field `s`: a select field needs `options`: non-empty strings of at most 140",
        );
        check(
            "name: todo\nfields:\n  - {name: s, type: select, options: [A, B], default: C}\n",
            "invalid entity schema schema/x.yaml, field `s`: `default` is invalid: `C` is not one of A, B",
        );
        check(
            "name: todo\nfields:\n  - {name: n, type: int, default: 'x'}\n",
            "invalid entity schema schema/x.yaml, field `n`: `default` is invalid: expected an integer",
        );
        check(
            "name: todo\nfields:\n  - {name: n, type: int, options: [a]}\n",
            "invalid entity schema schema/x.yaml, field `n`: `options` does not apply to a int field",
        );
        check(
            "name: todo\nfields:\n  - {name: l, type: link}\n",
            "invalid entity schema schema/x.yaml, field `l`: a link field needs `target`: the linked entity's name",
        );
        check(
            "name: todo\nfields:\n  - {name: d, type: decimal, scale: 13}\n",
            "invalid entity schema schema/x.yaml, field `d`: `scale` is at most 12",
        );
        check(
            "name: todo\nnaming: 'T-.YYYY.-.##-##'\nfields:\n  - {name: a, type: data}\n",
            "invalid entity schema schema/x.yaml: the `#` of a naming series must form one run",
        );
        check(
            "name: todo\nnaming: 'T-.YYYY.-.#####'\nfields:\n  - {name: a, type: data}\n",
            "ok 1 fields",
        );
        check(
            "name: todo\nfields:\n  - {name: a, type: data, colour: red}\n",
            "invalid entity schema schema/x.yaml, field `a`: fields[0]: unknown field `colour`, expected one of `name`, `type`, `label`, `required`, `unique`, `default`, `max_length`, `options`, `target`, `entity`, `scale`, `read_only`, `indexed`, `pii`, `description`, `references` at line 3 column 27",
        );
        check(
            "name: todo\nfields:\n  - {name: a, type: data}\npermissions:\n  Clerk: [read, fly]\n",
            "invalid entity schema schema/x.yaml: role `Clerk` is granted unknown action `fly`; actions are read, create, update, delete, submit, cancel, amend, export or `app.action`",
        );
        check(
            "name: todo\nfields:\n  - {name: a, type: data}\npermissions:\n  Clerk: [read, accounting.close_period]\n",
            "ok 1 fields",
        );
        // A tree gets its parent link, or keeps a declared one that links to itself.
        check(
            "name: account\ntree: closure\nfields:\n  - {name: a, type: data}\n",
            "ok 2 fields",
        );
        check(
            "name: account\ntree: closure\nfields:\n  - {name: parent_account, type: link, target: account, required: true}\n",
            "ok 1 fields",
        );
        check(
            "name: account\ntree: closure\nfields:\n  - {name: parent_account, type: data}\n",
            "invalid entity schema schema/x.yaml, field `parent_account`: in a tree the parent field is a link to `account`",
        );
        check(
            "name: account\ntree: nested_set\nfields:\n  - {name: a, type: data}\n",
            "invalid entity schema schema/x.yaml: tree: unknown variant `nested_set`, expected `closure` at line 2 column 7",
        );
    }

    #[test]
    fn cross_checks() {
        let parse =
            |file: &str, yaml: &str| parse_schema("m", file, yaml).map_err(|e| e.to_string());
        let order = parse("a.yaml", "name: sales_order\nfields:\n  - {name: customer, type: link, target: customer}\n  - {name: items, type: table, entity: sales_order_item}\n").unwrap_or_else(|e| panic!("{e}"));
        let item = parse(
            "b.yaml",
            "name: sales_order_item\nchild: true\nfields:\n  - {name: qty, type: int}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let customer = parse(
            "c.yaml",
            "name: customer\nfields:\n  - {name: title, type: data}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let all = |s: &[&EntitySchema]| {
            check_links(&s.iter().map(|x| (*x).clone()).collect::<Vec<_>>())
                .map_err(|e| e.to_string())
        };
        assert_eq!(all(&[&order, &item, &customer]), Ok(()));
        assert_eq!(all(&[&order, &item]), Err("invalid entity schema a.yaml, field `customer`: links to `customer`, which no module declares".into()));
        assert_eq!(all(&[&order, &customer]), Err("invalid entity schema a.yaml, field `items`: holds rows of `sales_order_item`, which no module declares".into()));
        assert_eq!(all(&[&customer, &customer]), Err("invalid entity schema c.yaml: entity `customer` is also declared by module `m` in c.yaml".into()));
        // A key reference names a unique data field of a declared entity.
        let currency = parse(
            "d.yaml",
            "name: currency\nfields:\n  - {name: code, type: data, unique: true}\n  - {name: label, type: data}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let priced = |reference: &str| {
            parse(
                "e.yaml",
                &format!("name: price\nfields:\n  - {{name: amount, type: money, references: {reference}}}\n"),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(all(&[&currency, &priced("currency.code")]), Ok(()));
        for bad in ["currency.label", "currency.nothing", "money.code"] {
            assert_eq!(
                all(&[&currency, &priced(bad)]),
                Err(format!(
                    "invalid entity schema e.yaml, field `amount`: references `{bad}`, which is not a unique data field of a declared entity"
                )),
            );
        }
    }
}
