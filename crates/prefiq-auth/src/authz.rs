//! Authorization with Cedar: the permissions blocks of the entity schemas compile into a
//! Cedar schema and policy set, a tenant's administrators add policies of their own, and
//! every call of the entity pipeline asks the compiled model.
//!
//! The generated model:
//! - `User in [Role]` with `id`, `tenant` and the attributes record rules compare with;
//! - one entity type per entity (its `tenant`, `created_by`, `docstatus` and every field
//!   whose values rules can compare), and `Tenant` for actions on the tenant itself;
//! - `forbid … unless { principal.tenant == resource.tenant }` ("tenant-isolation");
//! - `permit (principal in Role::"System Manager", action, resource)` ("administrator");
//! - per entity and role, `permit (principal in Role::"R", action in [...], resource is E)
//!   when { record rules }`, with the id `E/R` (`All` is every principal).
//!
//! Cedar decides single records. Lists use the SQL twin of the same permissions blocks
//! ([`permission::row_access`]); when a tenant has policies of its own, which have no SQL
//! twin, lists are checked row by row instead.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cedar_policy as cedar;
use prefiq::{Principal, async_trait};
use prefiq_data::entity::permission::{
    self, ALL_ROLE, FieldAccess, Operand, RecordRule, RowAccess, rule_type,
};
use prefiq_data::entity::repo::{EntityAuthorizer, TenantScope};
use prefiq_data::entity::schema::ACTIONS;
use prefiq_data::entity::value::{Stored, coerce};
use prefiq_data::entity::{Entities, EntityRegistry, EntitySchema, FieldDef};
use serde::Serialize;
use serde_json::{Map, Value};

/// The role that may do everything in its tenant (Frappe's name for it).
pub const ADMINISTRATOR: &str = "System Manager";

/// The entity type of actions on the tenant itself (managing users and policies).
pub const TENANT_TYPE: &str = "Tenant";

/// Actions every entity has beyond [`ACTIONS`]: changing its custom fields.
pub const CUSTOMIZE: &str = "customize";

/// Longest policy text a tenant may add.
pub const MAX_POLICY_BYTES: usize = 16 * 1024;

/// At most this many policies per tenant.
pub const MAX_TENANT_POLICIES: usize = 200;

/// How long a tenant's policies are trusted before they are read again, unless
/// [`CedarAuthorizer::with_ttl`] says otherwise; changes made through this process apply
/// at once.
pub const TENANT_POLICY_TTL: Duration = Duration::from_secs(1);

/// Why a model could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthzError {
    /// The generated schema or policies are invalid: a defect, or schemas that disagree.
    #[error("the authorization model cannot be built: {0}")]
    Model(String),
    /// A tenant's policy does not parse.
    #[error("policy `{id}` does not parse: {message}")]
    Parse {
        /// The policy.
        id: String,
        /// The parser's message.
        message: String,
    },
    /// A tenant's policy fails validation against the generated schema.
    #[error("policy `{id}` fails validation: {message}")]
    Invalid {
        /// The policy.
        id: String,
        /// The validator's message.
        message: String,
    },
}

/// A policy a tenant administrator added, in Cedar syntax.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantPolicy {
    /// Its id, unique in the tenant.
    pub id: String,
    /// One Cedar policy.
    pub text: String,
}

/// What a decision is about.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    /// A row of an entity (`doc` is `None` for the entity as a whole).
    Record {
        /// The entity.
        schema: &'a EntitySchema,
        /// The row's id (empty for a new row or the entity as a whole).
        id: &'a str,
        /// The row, as the API carries it.
        doc: Option<&'a Map<String, Value>>,
    },
    /// The tenant itself.
    Tenant,
}

/// A decision and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The policies that decided: the permits that allowed it, or the forbids that
    /// denied it (none when nothing permitted it).
    pub policies: Vec<DecidingPolicy>,
    /// Policies that could not be evaluated (they count as not applying).
    pub errors: Vec<String>,
}

/// A policy that decided, for `authz/explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecidingPolicy {
    /// The policy id (`todo/Clerk`, `tenant-isolation`, or a tenant policy's id).
    pub id: String,
    /// `permit` or `forbid`.
    pub effect: &'static str,
    /// The policy's Cedar text.
    pub text: String,
}

/// A compiled authorization model.
pub struct Model {
    schema_text: String,
    policies: cedar::PolicySet,
    texts: BTreeMap<String, String>,
    /// Principal attribute → the field its values are read as.
    principal_attributes: BTreeMap<String, FieldDef>,
    /// Whether tenant policies are part of it.
    custom: bool,
    authorizer: cedar::Authorizer,
    schema: cedar::Schema,
    /// Entity type names, parsed once: parsing one costs more than a decision's evaluation.
    type_names: HashMap<String, cedar::EntityTypeName>,
}

/// Every action the model knows: the standard ones, `customize`, those the schemas grant
/// and those modules declare.
fn all_actions(registry: &EntityRegistry, declared: &[String]) -> Vec<String> {
    let mut actions: Vec<String> = ACTIONS.iter().map(|a| (*a).to_owned()).collect();
    actions.push(CUSTOMIZE.to_owned());
    for schema in registry.all() {
        for grant in schema.permissions.values() {
            actions.extend(grant.actions.iter().cloned());
        }
    }
    actions.extend(declared.iter().cloned());
    let mut seen = HashSet::new();
    actions.retain(|a| seen.insert(a.clone()));
    actions
}

/// A Cedar string literal.
fn lit(text: &str) -> String {
    format!("\"{}\"", text.escape_default())
}

/// A field value as a Cedar constant, as rules write it.
fn cedar_constant(stored: &Stored) -> Option<String> {
    match stored {
        Stored::Text(text) => Some(lit(text)),
        Stored::Int(n) => Some(n.to_string()),
        Stored::Bool(b) => Some(b.to_string()),
        Stored::Null | Stored::Money { .. } => None,
    }
}

fn restricted(stored: Stored) -> Option<cedar::RestrictedExpression> {
    match stored {
        Stored::Text(text) => Some(cedar::RestrictedExpression::new_string(text)),
        Stored::Int(n) => Some(cedar::RestrictedExpression::new_long(n)),
        Stored::Bool(b) => Some(cedar::RestrictedExpression::new_bool(b)),
        Stored::Null | Stored::Money { .. } => None,
    }
}

/// The Cedar condition of one record rule.
fn rule_condition(schema: &EntitySchema, rule: &RecordRule) -> Result<String, AuthzError> {
    Ok(match rule {
        RecordRule::Owner => {
            "(resource has \"created_by\" && resource[\"created_by\"] == principal[\"id\"])"
                .to_owned()
        }
        RecordRule::Compare { field, op, operand } => {
            let f = lit(field);
            match operand {
                Operand::Principal(attribute) => {
                    let a = lit(attribute);
                    format!(
                        "(resource has {f} && principal has {a} && resource[{f}] {} principal[{a}])",
                        op.cedar()
                    )
                }
                Operand::Literal(value) => {
                    let def = schema.field(field).ok_or_else(|| {
                        AuthzError::Model(format!("{}: no field `{field}`", schema.name))
                    })?;
                    let constant = coerce(def, value)
                        .ok()
                        .as_ref()
                        .and_then(cedar_constant)
                        .ok_or_else(|| {
                            AuthzError::Model(format!("{}: `{field}` constant", schema.name))
                        })?;
                    format!(
                        "(resource has {f} && resource[{f}] {} {constant})",
                        op.cedar()
                    )
                }
            }
        }
    })
}

impl Model {
    /// Compiles the permissions blocks of `registry` (and the actions modules declare),
    /// with `tenant_policies` added and validated against the generated schema.
    pub fn compile(
        registry: &EntityRegistry,
        declared_actions: &[String],
        tenant_policies: &[TenantPolicy],
    ) -> Result<Model, AuthzError> {
        Self::compile_with_grants(registry, declared_actions, &[], tenant_policies)
    }

    /// [`Model::compile`] with the role grants of tenant-level actions that modules
    /// declare (`(role, action)`), each a permit on the `Tenant` resource.
    pub fn compile_with_grants(
        registry: &EntityRegistry,
        declared_actions: &[String],
        grants: &[(String, String)],
        tenant_policies: &[TenantPolicy],
    ) -> Result<Model, AuthzError> {
        let mut schemas: Vec<&Arc<EntitySchema>> = registry.all().collect();
        schemas.sort_by(|a, b| a.name.cmp(&b.name));
        // Principal attributes, typed by the fields rules compare them with.
        let mut principal_attributes: BTreeMap<String, FieldDef> = BTreeMap::new();
        for schema in &schemas {
            for grant in schema.permissions.values() {
                for rule in &grant.when {
                    let RecordRule::Compare {
                        field,
                        operand: Operand::Principal(attribute),
                        ..
                    } = rule
                    else {
                        continue;
                    };
                    let Some(def) = schema.field(field) else {
                        continue;
                    };
                    match principal_attributes.get(attribute) {
                        Some(seen) if seen.kind != def.kind => {
                            return Err(AuthzError::Model(format!(
                                "principal.{attribute} is compared with fields of different types ({} and {}.{field})",
                                seen.name, schema.name
                            )));
                        }
                        Some(_) => {}
                        None => {
                            principal_attributes.insert(attribute.clone(), def.clone());
                        }
                    }
                }
            }
        }
        let mut text = String::from(
            "entity Role;\nentity User in [Role] {\n  \"id\": String,\n  \"tenant\": String,\n",
        );
        for (attribute, def) in &principal_attributes {
            if let Some(ty) = rule_type(&def.kind) {
                let _ = writeln!(text, "  {}?: {},", lit(attribute), ty.cedar());
            }
        }
        text.push_str("};\nentity Tenant {\n  \"tenant\": String,\n};\n");
        for schema in &schemas {
            let _ = writeln!(
                text,
                "entity {} {{\n  \"tenant\": String,\n  \"docstatus\": Long,\n  \"created_by\"?: String,",
                schema.name
            );
            for field in &schema.fields {
                if let Some(ty) = rule_type(&field.kind) {
                    let _ = writeln!(text, "  {}?: {},", lit(&field.name), ty.cedar());
                }
            }
            text.push_str("};\n");
        }
        let mut resources: Vec<&str> = schemas.iter().map(|s| s.name.as_str()).collect();
        resources.push(TENANT_TYPE);
        let actions = all_actions(registry, declared_actions);
        let _ = writeln!(
            text,
            "action {} appliesTo {{\n  principal: [User],\n  resource: [{}],\n}};",
            actions
                .iter()
                .map(|a| lit(a))
                .collect::<Vec<_>>()
                .join(", "),
            resources.join(", ")
        );
        let (schema, _warnings) = cedar::Schema::from_cedarschema_str(&text)
            .map_err(|e| AuthzError::Model(format!("generated schema: {e}")))?;

        let mut base: Vec<(String, String)> = vec![
            (
                "tenant-isolation".into(),
                "forbid (principal, action, resource)\nunless { principal.tenant == resource.tenant };".into(),
            ),
            (
                "administrator".into(),
                format!("permit (principal in Role::{}, action, resource);", lit(ADMINISTRATOR)),
            ),
        ];
        for schema in &schemas {
            for (role, grant) in &schema.permissions {
                if grant.actions.is_empty() {
                    continue;
                }
                let principal = if role == ALL_ROLE {
                    "principal".to_owned()
                } else {
                    format!("principal in Role::{}", lit(role))
                };
                let actions = grant
                    .actions
                    .iter()
                    .map(|a| format!("Action::{}", lit(a)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut policy = format!(
                    "permit ({principal}, action in [{actions}], resource is {})",
                    schema.name
                );
                if !grant.when.is_empty() {
                    let conditions = grant
                        .when
                        .iter()
                        .map(|rule| rule_condition(schema, rule))
                        .collect::<Result<Vec<_>, _>>()?;
                    let _ = write!(policy, "\nwhen {{ {} }}", conditions.join(" && "));
                }
                policy.push(';');
                base.push((format!("{}/{role}", schema.name), policy));
            }
        }
        let mut granted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (role, action) in grants {
            if !actions.iter().any(|a| a == action) {
                return Err(AuthzError::Model(format!(
                    "role `{role}` is granted `{action}`, which no module declares"
                )));
            }
            granted.entry(role).or_default().push(action);
        }
        for (role, actions) in granted {
            let actions = actions
                .iter()
                .map(|a| format!("Action::{}", lit(a)))
                .collect::<Vec<_>>()
                .join(", ");
            base.push((
                format!("grant/{role}"),
                format!(
                    "permit (principal in Role::{}, action in [{actions}], resource is {TENANT_TYPE});",
                    lit(role)
                ),
            ));
        }
        let mut policies = cedar::PolicySet::new();
        let mut texts = BTreeMap::new();
        for (id, source) in &base {
            let policy = cedar::Policy::parse(Some(cedar::PolicyId::new(id)), source)
                .map_err(|e| AuthzError::Model(format!("policy {id}: {e}")))?;
            policies
                .add(policy)
                .map_err(|e| AuthzError::Model(format!("policy {id}: {e}")))?;
            texts.insert(id.clone(), source.clone());
        }
        let validator = cedar::Validator::new(schema.clone());
        // The generated policies come from the schemas and grants, which are checked when
        // they are loaded; validating them all against the schema costs seconds in a debug
        // build on the first request of each tenant, so it is done by
        // [`Model::check_generated`] in the tests, not on every compile.
        for policy in tenant_policies {
            check_tenant_policy(&validator, &texts, policy)?;
            let parsed = cedar::Policy::parse(Some(cedar::PolicyId::new(&policy.id)), &policy.text)
                .map_err(|e| AuthzError::Parse {
                    id: policy.id.clone(),
                    message: e.to_string(),
                })?;
            policies.add(parsed).map_err(|e| AuthzError::Invalid {
                id: policy.id.clone(),
                message: e.to_string(),
            })?;
            texts.insert(policy.id.clone(), policy.text.clone());
        }
        let mut type_names = HashMap::new();
        for name in ["User", "Role", "Action", TENANT_TYPE]
            .into_iter()
            .chain(schemas.iter().map(|s| s.name.as_str()))
        {
            let parsed = cedar::EntityTypeName::from_str(name)
                .map_err(|e| AuthzError::Model(format!("type {name}: {e}")))?;
            type_names.insert(name.to_owned(), parsed);
        }
        Ok(Model {
            type_names,
            schema_text: text,
            policies,
            texts,
            principal_attributes,
            custom: !tenant_policies.is_empty(),
            authorizer: cedar::Authorizer::new(),
            schema,
        })
    }

    /// Validates every policy of the model against its schema, strictly: the generated
    /// ones included (which compiling leaves out for speed). For tests of the policies the
    /// modules' schemas and grants generate.
    pub fn check_generated(&self) -> Result<(), AuthzError> {
        let validator = cedar::Validator::new(self.schema.clone());
        let result = validator.validate(&self.policies, cedar::ValidationMode::Strict);
        if result.validation_passed() {
            return Ok(());
        }
        let message = result
            .validation_errors()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Err(AuthzError::Model(format!("generated policies: {message}")))
    }

    fn uid(&self, type_name: &str, id: &str) -> Result<cedar::EntityUid, String> {
        let type_name = match self.type_names.get(type_name) {
            Some(parsed) => parsed.clone(),
            None => cedar::EntityTypeName::from_str(type_name).map_err(|e| e.to_string())?,
        };
        Ok(cedar::EntityUid::from_type_name_and_id(
            type_name,
            cedar::EntityId::new(id),
        ))
    }

    /// The generated Cedar schema, as text.
    pub fn schema_text(&self) -> &str {
        &self.schema_text
    }

    /// Every policy, by id.
    pub fn policies(&self) -> &BTreeMap<String, String> {
        &self.texts
    }

    /// Checks a policy a tenant wants to add: it must be one policy that parses and
    /// validates against the schema; the error carries the validator's message.
    pub fn check_policy(&self, policy: &TenantPolicy) -> Result<(), AuthzError> {
        let validator = cedar::Validator::new(self.schema.clone());
        check_tenant_policy(&validator, &self.texts, policy)
    }

    fn principal_entity(&self, principal: &Principal) -> Result<cedar::Entity, String> {
        let mut attrs = HashMap::new();
        attrs.insert(
            "id".to_owned(),
            cedar::RestrictedExpression::new_string(principal.user.clone()),
        );
        attrs.insert(
            "tenant".to_owned(),
            cedar::RestrictedExpression::new_string(principal.tenant.clone()),
        );
        for (name, value) in &principal.attributes {
            // An attribute is read as the field rules compare it with; one that does not
            // fit is left out, so rules on it do not hold.
            if let Some(def) = self.principal_attributes.get(name)
                && let Some(value) = coerce(def, value).ok().and_then(restricted)
            {
                attrs.insert(name.clone(), value);
            }
        }
        let parents = principal
            .roles
            .iter()
            .map(|role| self.uid("Role", role))
            .collect::<Result<HashSet<_>, _>>()?;
        cedar::Entity::new(self.uid("User", &principal.user)?, attrs, parents)
            .map_err(|e| e.to_string())
    }

    fn resource_entity(
        &self,
        tenant: &str,
        resource: Resource<'_>,
    ) -> Result<cedar::Entity, String> {
        let mut attrs = HashMap::new();
        attrs.insert(
            "tenant".to_owned(),
            cedar::RestrictedExpression::new_string(tenant.to_owned()),
        );
        match resource {
            Resource::Tenant => {
                cedar::Entity::new(self.uid(TENANT_TYPE, tenant)?, attrs, HashSet::new())
                    .map_err(|e| e.to_string())
            }
            Resource::Record { schema, id, doc } => {
                let docstatus = doc
                    .and_then(|d| d.get("docstatus"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                attrs.insert(
                    "docstatus".to_owned(),
                    cedar::RestrictedExpression::new_long(docstatus),
                );
                if let Some(doc) = doc {
                    if let Some(owner) = doc.get("created_by").and_then(Value::as_str) {
                        attrs.insert(
                            "created_by".to_owned(),
                            cedar::RestrictedExpression::new_string(owner.to_owned()),
                        );
                    }
                    for field in &schema.fields {
                        if rule_type(&field.kind).is_none() {
                            continue;
                        }
                        if let Some(value) = doc
                            .get(&field.name)
                            .filter(|v| !v.is_null())
                            .and_then(|v| coerce(field, v).ok())
                            .and_then(restricted)
                        {
                            attrs.insert(field.name.clone(), value);
                        }
                    }
                }
                cedar::Entity::new(self.uid(&schema.name, id)?, attrs, HashSet::new())
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Decides whether `principal` may do `action` on `resource` in `tenant` (the tenant
    /// the call is scoped to, which the isolation policy compares with the principal's).
    pub fn decide(
        &self,
        principal: &Principal,
        tenant: &str,
        action: &str,
        resource: Resource<'_>,
    ) -> Decision {
        let refused = |error: String| Decision {
            allowed: false,
            policies: Vec::new(),
            errors: vec![error],
        };
        let principal_entity = match self.principal_entity(principal) {
            Ok(entity) => entity,
            Err(e) => return refused(e),
        };
        let resource_entity = match self.resource_entity(tenant, resource) {
            Ok(entity) => entity,
            Err(e) => return refused(e),
        };
        let request = match self.uid("Action", action).and_then(|action_uid| {
            cedar::Request::new(
                principal_entity.uid(),
                action_uid,
                resource_entity.uid(),
                cedar::Context::empty(),
                None,
            )
            .map_err(|e| e.to_string())
        }) {
            Ok(request) => request,
            Err(e) => return refused(e),
        };
        let entities =
            match cedar::Entities::from_entities([principal_entity, resource_entity], None) {
                Ok(entities) => entities,
                Err(e) => return refused(e.to_string()),
            };
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        let policies = response
            .diagnostics()
            .reason()
            .map(|id| {
                let effect = match self.policies.policy(id).map(cedar::Policy::effect) {
                    Some(cedar::Effect::Forbid) => "forbid",
                    _ => "permit",
                };
                DecidingPolicy {
                    id: id.to_string(),
                    effect,
                    text: self.texts.get(&id.to_string()).cloned().unwrap_or_default(),
                }
            })
            .collect();
        Decision {
            allowed: response.decision() == cedar::Decision::Allow,
            policies,
            errors: response
                .diagnostics()
                .errors()
                .map(ToString::to_string)
                .collect(),
        }
    }
}

fn check_tenant_policy(
    validator: &cedar::Validator,
    taken: &BTreeMap<String, String>,
    policy: &TenantPolicy,
) -> Result<(), AuthzError> {
    let invalid = |message: String| AuthzError::Invalid {
        id: policy.id.clone(),
        message,
    };
    if policy.id.is_empty()
        || policy.id.len() > 64
        || !policy
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            "a policy id is 1 to 64 characters of a-z, A-Z, 0-9, - and _".into(),
        ));
    }
    if taken.contains_key(&policy.id) {
        return Err(invalid("a policy with this id exists".into()));
    }
    if policy.text.len() > MAX_POLICY_BYTES {
        return Err(invalid(format!(
            "a policy is at most {MAX_POLICY_BYTES} bytes"
        )));
    }
    let parsed = cedar::Policy::parse(Some(cedar::PolicyId::new(&policy.id)), &policy.text)
        .map_err(|e| AuthzError::Parse {
            id: policy.id.clone(),
            message: e.to_string(),
        })?;
    let mut alone = cedar::PolicySet::new();
    alone.add(parsed).map_err(|e| invalid(e.to_string()))?;
    let result = validator.validate(&alone, cedar::ValidationMode::Strict);
    if !result.validation_passed() {
        return Err(invalid(
            result
                .validation_errors()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    Ok(())
}

/// Where a tenant's own policies are kept (cortex keeps them in its database).
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// The tenant's policies.
    async fn tenant_policies(&self, tenant: &str) -> Result<Vec<TenantPolicy>, String>;
}

/// A store with no tenant policies.
pub struct NoTenantPolicies;

#[async_trait]
impl PolicyStore for NoTenantPolicies {
    async fn tenant_policies(&self, _tenant: &str) -> Result<Vec<TenantPolicy>, String> {
        Ok(Vec::new())
    }
}

type Compiled = Result<Arc<Model>, AuthzError>;

struct TenantEntry {
    read_at: Instant,
    registry: Arc<EntityRegistry>,
    model: Compiled,
}

/// At most this many tenants' models are cached; the cache is cleared when full.
const MAX_CACHED_TENANTS: usize = 10_000;

/// The entity pipeline's authorizer: Cedar over the compiled model of the scope's tenant.
/// Calls without a principal (boot, CLI commands, system jobs) are not restricted.
pub struct CedarAuthorizer {
    entities: Arc<Entities>,
    declared_actions: Vec<String>,
    grants: Vec<(String, String)>,
    store: Arc<dyn PolicyStore>,
    base: Mutex<Option<(Arc<EntityRegistry>, Compiled)>>,
    tenants: Mutex<HashMap<String, TenantEntry>>,
    ttl: Box<dyn Fn() -> Duration + Send + Sync>,
    /// How many times a tenant's model was not cached and its policies were read.
    models_read: std::sync::atomic::AtomicU64,
}

impl CedarAuthorizer {
    /// An authorizer over the entities of `entities`, knowing the actions modules declare
    /// and reading tenant policies from `store`.
    pub fn new(
        entities: Arc<Entities>,
        declared_actions: Vec<String>,
        store: Arc<dyn PolicyStore>,
    ) -> Self {
        CedarAuthorizer {
            entities,
            declared_actions,
            grants: Vec::new(),
            store,
            base: Mutex::new(None),
            tenants: Mutex::new(HashMap::new()),
            ttl: Box::new(|| TENANT_POLICY_TTL),
            models_read: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The same authorizer trusting a tenant's compiled model for what `ttl` answers at
    /// the time (longer while other replicas' policy changes reach this process).
    pub fn with_ttl(mut self, ttl: impl Fn() -> Duration + Send + Sync + 'static) -> Self {
        self.ttl = Box::new(ttl);
        self
    }

    /// The same authorizer with the role grants modules declare (`(role, action)`).
    pub fn with_grants(mut self, grants: Vec<(String, String)>) -> Self {
        self.grants = grants;
        self
    }

    fn base_model(&self, registry: &Arc<EntityRegistry>) -> Compiled {
        let mut base = self.base.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, model)) = base.as_ref()
            && Arc::ptr_eq(seen, registry)
        {
            return model.clone();
        }
        // Declared entities only: runtime ones belong to their tenants' models.
        let model = Model::compile_with_grants(
            &registry.visible_to(None),
            &self.declared_actions,
            &self.grants,
            &[],
        )
        .map(Arc::new);
        if let Err(e) = &model {
            tracing::error!(target: "prefiq::authz", error = %e, "the authorization model does not compile; every request is denied");
        }
        *base = Some((registry.clone(), model.clone()));
        model
    }

    /// The model that applies to `tenant`: the base model, or the base model with the
    /// tenant's own policies.
    pub async fn model(&self, tenant: &str) -> Compiled {
        let registry = self.entities.registry();
        {
            let tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = tenants.get(tenant)
                && entry.read_at.elapsed() < (self.ttl)()
                && Arc::ptr_eq(&entry.registry, &registry)
            {
                return entry.model.clone();
            }
        }
        // A tenant sees the declared entities and its own runtime ones (two tenants may
        // each have an entity of the same name): a tenant with runtime entities or policies
        // of its own gets a model of its own.
        self.models_read
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let own_entities = registry.runtime_of(tenant).next().is_some();
        let model = match self.store.tenant_policies(tenant).await {
            Err(e) => Err(AuthzError::Model(format!(
                "the policies of tenant {tenant} cannot be read: {e}"
            ))),
            Ok(policies) if policies.is_empty() && !own_entities => self.base_model(&registry),
            Ok(policies) => Model::compile_with_grants(
                &registry.visible_to(Some(tenant)),
                &self.declared_actions,
                &self.grants,
                &policies,
            )
            .map(Arc::new),
        };
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        if tenants.len() >= MAX_CACHED_TENANTS {
            tenants.clear();
        }
        tenants.insert(
            tenant.to_owned(),
            TenantEntry {
                read_at: Instant::now(),
                registry,
                model: model.clone(),
            },
        );
        model
    }

    /// The roles that mean something in `tenant`: `System Manager`, every role an entity
    /// it sees names in its permissions block (but `All`, which is everyone; another
    /// tenant's runtime entities are not seen), and every role a module grants an action
    /// to. Any other role grants nothing, so whoever assigns roles refuses it rather than
    /// store a name that only looks like a permission.
    pub fn known_roles(&self, tenant: &str) -> std::collections::BTreeSet<String> {
        let registry = self.entities.registry().visible_to(Some(tenant));
        let mut roles = std::collections::BTreeSet::from([ADMINISTRATOR.to_owned()]);
        for schema in registry.all() {
            roles.extend(
                schema
                    .permissions
                    .keys()
                    .filter(|role| role.as_str() != ALL_ROLE)
                    .cloned(),
            );
        }
        roles.extend(self.grants.iter().map(|(role, _)| role.clone()));
        roles
    }

    /// The model `tenant_policies` would make, compiled but not cached: for checking a
    /// candidate policy set before it is stored.
    pub fn candidate_model(
        &self,
        tenant: &str,
        tenant_policies: &[TenantPolicy],
    ) -> Result<Model, AuthzError> {
        Model::compile_with_grants(
            &self.entities.registry().visible_to(Some(tenant)),
            &self.declared_actions,
            &self.grants,
            tenant_policies,
        )
    }

    /// How many times a tenant's model was not cached and its policies were read (for
    /// benchmarks).
    pub fn models_compiled(&self) -> u64 {
        self.models_read.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forgets every cached model.
    pub fn invalidate_all(&self) {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Forgets the cached model of `tenant`, after its policies changed.
    pub fn invalidate(&self, tenant: &str) {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant);
    }

    /// Decides `action` on `resource` for the principal of `scope`; a scope without a
    /// principal is a system call and is allowed.
    pub async fn decide(
        &self,
        scope: &TenantScope,
        action: &str,
        resource: Resource<'_>,
    ) -> Decision {
        let Some(principal) = scope.principal() else {
            return Decision {
                allowed: true,
                policies: Vec::new(),
                errors: Vec::new(),
            };
        };
        match self.model(scope.tenant()).await {
            Ok(model) => model.decide(principal, scope.tenant(), action, resource),
            Err(e) => Decision {
                allowed: false,
                policies: Vec::new(),
                errors: vec![e.to_string()],
            },
        }
    }
}

/// Whether `model` allows `principal` to do `action` on every record of `entity` in
/// `tenant`, whatever the record holds: the model has no tenant policies (so its only
/// forbid is tenant isolation, which holds when the principal's tenant is `tenant`), and
/// the principal is an administrator or one of its roles (or `All`) is granted the action
/// on the entity without record rules, so a permit applies whatever the row. Asking Cedar
/// would build both entities from the row and evaluate every policy to say the same; the
/// single-record path asks this first. `false` means "ask Cedar", never "refused".
pub fn unconditionally_permitted(
    model: &Model,
    principal: &Principal,
    tenant: &str,
    entity: &EntitySchema,
    action: &str,
) -> bool {
    !model.custom
        && principal.tenant == tenant
        && (principal.roles.iter().any(|r| r == ADMINISTRATOR)
            || entity.permissions.iter().any(|(role, grant)| {
                (role == ALL_ROLE || principal.roles.iter().any(|r| r == role))
                    && grant.when.is_empty()
                    && grant.actions.iter().any(|a| a == action)
            }))
}

/// The sentence a refusal carries: it names the action and the entity.
pub fn refusal(action: &str, entity: &str, decision: &Decision) -> String {
    let by = decision
        .policies
        .iter()
        .filter(|p| p.effect == "forbid")
        .map(|p| p.id.as_str())
        .collect::<Vec<_>>();
    if by.is_empty() {
        format!("`{action}` on {entity} is not permitted for you")
    } else {
        format!("`{action}` on {entity} is forbidden by {}", by.join(", "))
    }
}

#[async_trait]
impl EntityAuthorizer for CedarAuthorizer {
    async fn authorize(
        &self,
        scope: &TenantScope,
        entity: &EntitySchema,
        action: &str,
        doc: Option<&Map<String, Value>>,
    ) -> Result<(), String> {
        let Some(principal) = scope.principal() else {
            return Ok(());
        };
        let decision = match self.model(scope.tenant()).await {
            Ok(model) => {
                if unconditionally_permitted(&model, principal, scope.tenant(), entity, action) {
                    return Ok(());
                }
                let id = doc
                    .and_then(|d| d.get("id"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                model.decide(
                    principal,
                    scope.tenant(),
                    action,
                    Resource::Record {
                        schema: entity,
                        id,
                        doc,
                    },
                )
            }
            Err(e) => Decision {
                allowed: false,
                policies: Vec::new(),
                errors: vec![e.to_string()],
            },
        };
        if decision.allowed {
            Ok(())
        } else {
            if !decision.errors.is_empty() {
                // Policies that could not be evaluated deny; the caller hears only that,
                // the operator hears why.
                tracing::warn!(target: "prefiq::authz", tenant = scope.tenant(), entity = %entity.name, action, errors = ?decision.errors, "policies failed to evaluate");
            }
            Err(refusal(action, &entity.name, &decision))
        }
    }

    async fn row_access(&self, scope: &TenantScope, entity: &EntitySchema) -> RowAccess {
        let Some(principal) = scope.principal() else {
            return RowAccess::All;
        };
        if principal.tenant != scope.tenant() {
            return RowAccess::AnyOf(Vec::new());
        }
        match self.model(scope.tenant()).await {
            Err(_) => RowAccess::AnyOf(Vec::new()),
            Ok(model) if model.custom => RowAccess::EachRow,
            Ok(_) if principal.roles.iter().any(|r| r == ADMINISTRATOR) => RowAccess::All,
            Ok(_) => permission::row_access(entity, principal),
        }
    }

    async fn may_attempt(&self, scope: &TenantScope, entity: &EntitySchema, action: &str) -> bool {
        let Some(principal) = scope.principal() else {
            return true;
        };
        if principal.tenant != scope.tenant() {
            return false;
        }
        match self.model(scope.tenant()).await {
            Err(_) => false,
            // A tenant's own policies may permit what no schema grant does: the row decides.
            Ok(model) if model.custom => true,
            Ok(_) => {
                principal.roles.iter().any(|r| r == ADMINISTRATOR)
                    || permission::may_attempt(entity, principal, action)
            }
        }
    }

    fn field_access(&self, scope: &TenantScope, entity: &EntitySchema) -> FieldAccess {
        match scope.principal() {
            Some(principal) if !principal.roles.iter().any(|r| r == ADMINISTRATOR) => {
                permission::field_access(entity, principal)
            }
            _ => FieldAccess::default(),
        }
    }
}
