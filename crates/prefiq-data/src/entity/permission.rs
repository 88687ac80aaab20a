//! The permissions block of an entity schema: which role may do what, on which rows, and
//! with which fields. The block is data; the authorization layer compiles it into Cedar
//! policies and the repository turns its record rules into SQL predicates, so both read
//! the same rules from here.
//!
//! ```yaml
//! permissions:
//!   Accounts Manager: [read, create, update, submit]
//!   Clerk:
//!     actions: [read, update]
//!     when: [owner, "amount <= principal.approval_limit", "department == principal.department"]
//!     hidden: [salary]
//!     read_only: [amount]
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::collections::BTreeMap;

use prefiq::identity::Principal;

use super::schema::{EntitySchema, FieldDef, FieldKind};

/// What one role may do with one entity.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Permission {
    /// The actions granted (`read`, `create`, …, or `app.action`).
    pub actions: Vec<String>,
    /// Conditions every row must meet for the grant to apply (all of them).
    pub when: Vec<RecordRule>,
    /// Fields this role does not see.
    pub hidden: Vec<String>,
    /// Fields this role may not set or change.
    pub read_only: Vec<String>,
}

/// A condition on a row, relative to the acting principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordRule {
    /// The row was created by the principal (`created_by` is the principal's user id).
    Owner,
    /// `field op operand`.
    Compare {
        /// A field of the entity.
        field: String,
        /// The comparison.
        op: CompareOp,
        /// What the field is compared with.
        operand: Operand,
    },
}

/// A comparison of a record rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareOp {
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

impl CompareOp {
    /// The operator as Cedar writes it.
    pub fn cedar(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }

    /// The operator as a list filter writes it.
    pub fn filter(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            other => other.cedar(),
        }
    }

    fn ordering(self) -> bool {
        !matches!(self, CompareOp::Eq | CompareOp::Ne)
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operand {
    /// An attribute of the principal (`principal.approval_limit`).
    Principal(String),
    /// A constant, as the API carries the field's value.
    Literal(Value),
}

/// The role every principal has: `All: [read]` grants reading to everyone.
pub const ALL_ROLE: &str = "All";

/// Which rows of an entity a principal may read, for a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowAccess {
    /// Every row of the tenant.
    All,
    /// Rows that meet every condition of at least one of these sets; no rows when empty.
    AnyOf(Vec<Vec<RowCondition>>),
    /// Rows the authorizer has to check one by one (policies the SQL form cannot express).
    EachRow,
}

/// `field op value` on a stored row; a `None` value is a condition no row meets (the
/// principal lacks the attribute the rule compares with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowCondition {
    /// The field (or `created_by`).
    pub field: String,
    /// The comparison.
    pub op: CompareOp,
    /// The value, as the API carries it.
    pub value: Option<Value>,
}

/// Fields a principal may not see, and fields it may not set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldAccess {
    /// Left out of every record the principal reads.
    pub hidden: Vec<String>,
    /// Refused when the principal sets or changes them.
    pub read_only: Vec<String>,
}

/// The grants of `schema` that apply to a principal with `roles`.
fn grants<'a>(
    schema: &'a EntitySchema,
    roles: &'a [String],
) -> impl Iterator<Item = &'a Permission> + 'a {
    schema
        .permissions
        .iter()
        .filter(|(role, _)| *role == ALL_ROLE || roles.iter().any(|r| r == *role))
        .map(|(_, p)| p)
}

/// The value a rule compares with, for this principal: `None` when the principal lacks
/// the attribute or its value does not fit the field, so the rule holds for no row.
pub fn operand_value(
    schema: &EntitySchema,
    field: &str,
    operand: &Operand,
    attributes: &BTreeMap<String, Value>,
) -> Option<Value> {
    let value = match operand {
        Operand::Literal(value) => value.clone(),
        Operand::Principal(name) => attributes.get(name).filter(|v| !v.is_null())?.clone(),
    };
    let def = schema.field(field)?;
    super::value::coerce(def, &value).ok().map(|_| value)
}

/// The rows of `schema` that `principal` may read under its permissions block: the SQL
/// twin of the Cedar policies compiled from the same block.
pub fn row_access(schema: &EntitySchema, principal: &Principal) -> RowAccess {
    let mut any_of = Vec::new();
    for grant in grants(schema, &principal.roles).filter(|g| g.actions.iter().any(|a| a == "read"))
    {
        if grant.when.is_empty() {
            return RowAccess::All;
        }
        let conditions = grant
            .when
            .iter()
            .map(|rule| match rule {
                RecordRule::Owner => RowCondition {
                    field: "created_by".into(),
                    op: CompareOp::Eq,
                    value: Some(Value::String(principal.user.clone())),
                },
                RecordRule::Compare { field, op, operand } => RowCondition {
                    field: field.clone(),
                    op: *op,
                    value: operand_value(schema, field, operand, &principal.attributes),
                },
            })
            .collect();
        any_of.push(conditions);
    }
    RowAccess::AnyOf(any_of)
}

/// Whether some grant of `schema` that applies to `principal` includes `action`, whatever
/// the row: the route's check, made before the request body is even read.
pub fn may_attempt(schema: &EntitySchema, principal: &Principal, action: &str) -> bool {
    grants(schema, &principal.roles).any(|g| g.actions.iter().any(|a| a == action))
}

/// The hidden and read-only fields of `schema` for `principal`: a field is hidden when
/// every role that lets the principal read hides it, and read-only when every role that
/// lets it create or update makes it read-only (or hides it).
pub fn field_access(schema: &EntitySchema, principal: &Principal) -> FieldAccess {
    let every = |action: &[&str], pick: &dyn Fn(&Permission) -> Vec<&String>| -> Vec<String> {
        let granting: Vec<&Permission> = grants(schema, &principal.roles)
            .filter(|g| g.actions.iter().any(|a| action.contains(&a.as_str())))
            .collect();
        let Some(first) = granting.first() else {
            return Vec::new();
        };
        pick(first)
            .into_iter()
            .filter(|f| granting.iter().all(|g| pick(g).contains(f)))
            .cloned()
            .collect()
    };
    FieldAccess {
        hidden: every(&["read"], &|g| g.hidden.iter().collect()),
        read_only: every(&["create", "update"], &|g| {
            g.read_only.iter().chain(&g.hidden).collect()
        }),
    }
}

/// A permissions entry as written: a list of actions, or the full form. It is read from
/// YAML by hand so that an error names the role.
pub(crate) type RawPermission = serde_yaml::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFullPermission {
    actions: Vec<String>,
    #[serde(default)]
    when: Vec<String>,
    #[serde(default)]
    hidden: Vec<String>,
    #[serde(default)]
    read_only: Vec<String>,
}

/// Whether a field's values can be compared by a record rule: its Cedar type is `String`
/// (text-like fields, equality only), `Long` (int and decimal, all comparisons) or `Bool`.
pub fn rule_type(kind: &FieldKind) -> Option<RuleType> {
    Some(match kind {
        FieldKind::Data
        | FieldKind::Text
        | FieldKind::Select { .. }
        | FieldKind::Link { .. }
        | FieldKind::Email
        | FieldKind::Date
        | FieldKind::Datetime => RuleType::String,
        FieldKind::Int | FieldKind::Decimal { .. } => RuleType::Long,
        FieldKind::Bool => RuleType::Bool,
        FieldKind::Money | FieldKind::Json | FieldKind::Table { .. } => return None,
    })
}

/// The Cedar type of a field in rules and policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleType {
    /// Cedar `String`.
    String,
    /// Cedar `Long`.
    Long,
    /// Cedar `Bool`.
    Bool,
}

impl RuleType {
    /// The type's name in a Cedar schema.
    pub fn cedar(self) -> &'static str {
        match self {
            RuleType::String => "String",
            RuleType::Long => "Long",
            RuleType::Bool => "Bool",
        }
    }
}

/// Checks one permissions entry against the entity's fields.
pub(crate) fn parse(
    role: &str,
    raw: RawPermission,
    fields: &[FieldDef],
    is_action: impl Fn(&str) -> bool,
) -> Result<Permission, String> {
    let full = if raw.is_sequence() {
        RawFullPermission {
            actions: serde_yaml::from_value(raw)
                .map_err(|e| format!("role `{role}`: the actions are a list of names: {e}"))?,
            when: vec![],
            hidden: vec![],
            read_only: vec![],
        }
    } else {
        serde_yaml::from_value::<RawFullPermission>(raw).map_err(|e| {
            format!("role `{role}`: a list of actions or {{actions, when, hidden, read_only}}: {e}")
        })?
    };
    if role.trim().is_empty() || role.len() > 64 || role.chars().any(char::is_control) {
        return Err(format!(
            "role name `{role}` must be 1 to 64 characters without control characters"
        ));
    }
    if let Some(action) = full.actions.iter().find(|a| !is_action(a)) {
        return Err(format!(
            "role `{role}` is granted unknown action `{action}`"
        ));
    }
    let field = |name: &str| fields.iter().find(|f| f.name == name);
    for name in full.hidden.iter().chain(&full.read_only) {
        if field(name).is_none() {
            return Err(format!(
                "role `{role}` names `{name}`, which is not a field of this entity"
            ));
        }
    }
    let when = full
        .when
        .iter()
        .map(|text| {
            parse_rule(text, &field).map_err(|e| format!("role `{role}`, rule `{text}`: {e}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Permission {
        actions: full.actions,
        when,
        hidden: full.hidden,
        read_only: full.read_only,
    })
}

/// Parses `owner`, `field op principal.attribute` or `field op literal`.
fn parse_rule<'a>(
    text: &str,
    field: &impl Fn(&str) -> Option<&'a FieldDef>,
) -> Result<RecordRule, String> {
    let text = text.trim();
    if text == "owner" {
        return Ok(RecordRule::Owner);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .ok_or("expected `owner` or `field op value`")?;
    let (name, rest) = text.split_at(split);
    let rest = rest.trim_start();
    let (op, rest) = [
        ("==", CompareOp::Eq),
        ("!=", CompareOp::Ne),
        ("<=", CompareOp::Le),
        (">=", CompareOp::Ge),
        ("<", CompareOp::Lt),
        (">", CompareOp::Gt),
    ]
    .iter()
    .find_map(|(token, op)| rest.strip_prefix(token).map(|r| (*op, r.trim())))
    .ok_or("expected one of == != < <= > >= after the field")?;
    let def = field(name).ok_or_else(|| format!("`{name}` is not a field of this entity"))?;
    let ty = rule_type(&def.kind)
        .ok_or_else(|| format!("`{name}` is of a type that rules cannot compare"))?;
    if op.ordering() && ty != RuleType::Long {
        return Err(format!(
            "`{name}` can only be compared with == or != (ordering needs an int or decimal field)"
        ));
    }
    let operand = if let Some(attribute) = rest.strip_prefix("principal.") {
        if !super::schema::is_identifier(attribute) {
            return Err(format!("`{attribute}` is not an attribute name"));
        }
        Operand::Principal(attribute.to_owned())
    } else {
        let value = literal(rest)
            .ok_or("the value is `principal.name`, a number, true, false or a quoted string")?;
        super::value::coerce(def, &value).map_err(|e| e.message)?;
        Operand::Literal(value)
    };
    Ok(RecordRule::Compare {
        field: name.to_owned(),
        op,
        operand,
    })
}

fn literal(text: &str) -> Option<Value> {
    for quote in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
            return (!inner.contains(quote)).then(|| Value::String(inner.to_owned()));
        }
    }
    match text {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    if let Ok(n) = text.parse::<i64>() {
        return Some(Value::from(n));
    }
    // A decimal constant travels as the API carries decimals: a string.
    let digits = text.strip_prefix('-').unwrap_or(text);
    (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .then(|| Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use crate::entity::schema::parse_schema;

    fn check(permissions: &str, expected: Result<&str, &str>) {
        let yaml = format!(
            "name: claim\nfields:\n  - {{name: amount, type: decimal, scale: 2}}\n  - {{name: qty, type: int}}\n  - {{name: department, type: data}}\n  - {{name: data, type: json}}\npermissions:\n{permissions}"
        );
        let got = parse_schema("test", "claim.yaml", &yaml)
            .map(|s| {
                format!(
                    "{:?}",
                    s.permissions.values().next().cloned().unwrap_or_default()
                )
            })
            .map_err(|e| e.message);
        match (got, expected) {
            (Ok(got), Ok(expected)) => assert!(got.contains(expected), "{got}"),
            (Err(got), Err(expected)) => assert!(got.contains(expected), "{got}"),
            (got, expected) => panic!("{permissions}: {got:?} vs {expected:?}"),
        }
    }

    #[test]
    fn permission_entries() {
        check("  Clerk: [read]\n", Ok("actions: [\"read\"]"));
        check(
            "  Clerk: {actions: [read], when: [owner]}\n",
            Ok("when: [Owner]"),
        );
        check(
            "  Clerk: {actions: [read], when: [\"amount <= principal.approval_limit\"]}\n",
            Ok("op: Le, operand: Principal(\"approval_limit\")"),
        );
        check(
            "  Clerk: {actions: [read], when: [\"department == principal.department\"]}\n",
            Ok("op: Eq"),
        );
        check(
            "  Clerk: {actions: [read], when: [\"qty > 10\"]}\n",
            Ok("Literal(Number(10))"),
        );
        check(
            "  Clerk: {actions: [read], when: [\"amount >= 12.50\"]}\n",
            Ok("Literal(String(\"12.50\"))"),
        );
        check(
            "  Clerk: {actions: [read], when: [\"department == 'Sales'\"]}\n",
            Ok("Literal(String(\"Sales\"))"),
        );
        check(
            "  Clerk: {actions: [read], hidden: [amount], read_only: [qty]}\n",
            Ok("hidden: [\"amount\"], read_only: [\"qty\"]"),
        );
        check("  Clerk: [read, fly]\n", Err("unknown action `fly`"));
        check(
            "  Clerk: {actions: [read], when: [\"nope == 1\"]}\n",
            Err("`nope` is not a field"),
        );
        check(
            "  Clerk: {actions: [read], when: [\"department < principal.d\"]}\n",
            Err("only be compared with == or !="),
        );
        check(
            "  Clerk: {actions: [read], when: [\"data == 1\"]}\n",
            Err("cannot compare"),
        );
        check(
            "  Clerk: {actions: [read], when: [\"qty == 'x'\"]}\n",
            Err("rule `qty == 'x'`"),
        );
        check(
            "  Clerk: {actions: [read], when: [\"qty ~ 1\"]}\n",
            Err("expected one of"),
        );
        check(
            "  Clerk: {actions: [read], when: [\"qty == principal.\"]}\n",
            Err("not an attribute name"),
        );
        check(
            "  Clerk: {actions: [read], hidden: [nope]}\n",
            Err("`nope`, which is not a field"),
        );
        check("  Clerk: {actions: [read], colour: red}\n", Err("Clerk"));
    }
}
