//! Cedar authorization compiled from permissions blocks: the permission matrix as data,
//! tenant policies and their validation, explanations, field rules, and the differential
//! test that a list never returns a row a GET would refuse.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use prefiq::{Context, EntitySource, EntitySources, Principal};
use prefiq_auth::authz::{
    CedarAuthorizer, Model, NoTenantPolicies, PolicyStore, Resource, TenantPolicy,
};
use prefiq_data::entity::EntityRegistry;
use prefiq_data::entity::repo::{EntityAuthorizer, ListQuery, RepoError, TenantScope};
use prefiq_data::testing::{databases, repository_with};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const CLAIM: &str = r#"
name: claim
fields:
  - {name: title, type: data}
  - {name: amount, type: decimal, scale: 2}
  - {name: department, type: data}
  - {name: salary, type: int}
permissions:
  Clerk:
    actions: [read, create, update]
    when: [owner]
    read_only: [amount]
  Approver:
    actions: [read, submit, accounting.approve]
    when: ["amount <= principal.approval_limit", "department == principal.department"]
    hidden: [salary]
  Auditor: [read, export]
"#;

const NOTE: &str = r#"
name: note
fields:
  - {name: body, type: text}
permissions:
  All: [read]
  Editor: [read, create, update, delete]
"#;

fn registry() -> EntityRegistry {
    EntityRegistry::load(&EntitySources(vec![
        (
            "m".into(),
            EntitySource {
                file: "claim.yaml",
                yaml: CLAIM,
            },
        ),
        (
            "m".into(),
            EntitySource {
                file: "note.yaml",
                yaml: NOTE,
            },
        ),
    ]))
    .unwrap()
}

fn principal(roles: &[&str], attributes: Value) -> Principal {
    Principal {
        tenant: "acme".into(),
        user: "u1".into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        attributes: serde_json::from_value(attributes).unwrap(),
        api_key: None,
    }
}

fn doc(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

/// One case of the matrix: who (roles, attributes), what (action, entity, row), and the
/// expected decision.
fn check(
    model: &Model,
    roles: &[&str],
    attributes: Value,
    action: &str,
    entity: &str,
    row: Value,
    allowed: bool,
) {
    let registry = registry();
    let schema = registry.get(entity).unwrap();
    let row = doc(row);
    let decision = model.decide(
        &principal(roles, attributes),
        "acme",
        action,
        Resource::Record {
            schema,
            id: "r1",
            doc: Some(&row),
        },
    );
    assert_eq!(
        decision.allowed, allowed,
        "{roles:?} {action} {entity} {row:?}: {decision:?}"
    );
}

/// Roles, attributes, action, entity, row, and whether it is allowed.
type Case<'a> = (&'a [&'a str], Value, &'a str, &'a str, &'a Value, bool);

#[test]
fn permission_matrix() {
    let model = Model::compile(&registry(), &[], &[]).unwrap();
    model.check_generated().unwrap();
    let mine = json!({"created_by": "u1", "amount": "10.00", "department": "Sales"});
    let theirs = json!({"created_by": "u2", "amount": "10.00", "department": "Sales"});
    let big = json!({"created_by": "u2", "amount": "5000.00", "department": "Sales"});
    let ops = json!({"created_by": "u2", "amount": "10.00", "department": "Ops"});
    let limit = json!({"approval_limit": "100.00", "department": "Sales"});
    #[rustfmt::skip]
    let cases: &[Case<'_>] = &[
        // Clerk: owner-only read, create, update; nothing else.
        (&["Clerk"], json!({}), "read", "claim", &mine, true),
        (&["Clerk"], json!({}), "read", "claim", &theirs, false),
        (&["Clerk"], json!({}), "update", "claim", &mine, true),
        (&["Clerk"], json!({}), "update", "claim", &theirs, false),
        (&["Clerk"], json!({}), "delete", "claim", &mine, false),
        (&["Clerk"], json!({}), "submit", "claim", &mine, false),
        (&["Clerk"], json!({}), "export", "claim", &mine, false),
        // Approver: amount within the limit and the same department.
        (&["Approver"], limit.clone(), "read", "claim", &theirs, true),
        (&["Approver"], limit.clone(), "submit", "claim", &theirs, true),
        (&["Approver"], limit.clone(), "accounting.approve", "claim", &theirs, true),
        (&["Approver"], limit.clone(), "read", "claim", &big, false),
        (&["Approver"], limit.clone(), "read", "claim", &ops, false),
        (&["Approver"], limit.clone(), "update", "claim", &theirs, false),
        (&["Approver"], json!({"department": "Sales"}), "read", "claim", &theirs, false),
        (&["Approver"], json!({"approval_limit": "100.00"}), "read", "claim", &theirs, false),
        (&["Approver"], json!({"approval_limit": "a lot", "department": "Sales"}), "read", "claim", &theirs, false),
        (&["Approver"], limit.clone(), "read", "claim", &json!({"created_by": "u2"}), false),
        // Auditor: everything readable, exportable, nothing writable.
        (&["Auditor"], json!({}), "read", "claim", &big, true),
        (&["Auditor"], json!({}), "export", "claim", &big, true),
        (&["Auditor"], json!({}), "update", "claim", &big, false),
        (&["Auditor"], json!({}), "create", "claim", &json!({}), false),
        // Two roles: either grant suffices.
        (&["Clerk", "Auditor"], json!({}), "read", "claim", &theirs, true),
        (&["Clerk", "Auditor"], json!({}), "update", "claim", &theirs, false),
        // No role: All grants note reading only.
        (&[], json!({}), "read", "claim", &mine, false),
        (&[], json!({}), "read", "note", &json!({}), true),
        (&[], json!({}), "update", "note", &json!({}), false),
        (&["Editor"], json!({}), "delete", "note", &json!({}), true),
        (&["Clerk"], json!({}), "read", "note", &json!({}), true),
        (&["Clerk"], json!({}), "create", "note", &json!({}), false),
        // System Manager: everything, including actions nobody was granted.
        (&["System Manager"], json!({}), "delete", "claim", &big, true),
        (&["System Manager"], json!({}), "customize", "note", &json!({}), true),
        // Role names are matched exactly.
        (&["clerk"], json!({}), "read", "claim", &mine, false),
        (&["Clerk "], json!({}), "read", "claim", &mine, false),
    ];
    for (roles, attributes, action, entity, row, allowed) in cases {
        check(
            &model,
            roles,
            attributes.clone(),
            action,
            entity,
            (*row).clone(),
            *allowed,
        );
    }
}

#[test]
fn a_principal_of_another_tenant_is_forbidden_whatever_its_roles() {
    let model = Model::compile(&registry(), &[], &[]).unwrap();
    let registry = registry();
    let mut admin = principal(&["System Manager"], json!({}));
    admin.tenant = "globex".into();
    let decision = model.decide(
        &admin,
        "acme",
        "read",
        Resource::Record {
            schema: registry.get("note").unwrap(),
            id: "n1",
            doc: None,
        },
    );
    assert!(!decision.allowed);
    assert_eq!(decision.policies[0].id, "tenant-isolation");
    assert_eq!(decision.policies[0].effect, "forbid");
}

#[test]
fn explain_names_the_deciding_policies() {
    let model = Model::compile(&registry(), &[], &[]).unwrap();
    let registry = registry();
    let row = doc(json!({"created_by": "u1"}));
    let decision = model.decide(
        &principal(&["Clerk", "Auditor"], json!({})),
        "acme",
        "read",
        Resource::Record {
            schema: registry.get("claim").unwrap(),
            id: "c1",
            doc: Some(&row),
        },
    );
    let mut ids: Vec<&str> = decision.policies.iter().map(|p| p.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["claim/Auditor", "claim/Clerk"]);
    assert!(decision.policies[0].text.starts_with("permit"));
}

fn tenant_policy(id: &str, text: &str) -> TenantPolicy {
    TenantPolicy {
        id: id.into(),
        text: text.into(),
    }
}

#[test]
fn tenant_policies_are_validated_against_the_generated_schema() {
    let model = Model::compile(&registry(), &[], &[]).unwrap();
    let check_refused = |policy: TenantPolicy, expected: &str| {
        let error = model.check_policy(&policy).unwrap_err().to_string();
        assert!(error.contains(expected), "{}: {error}", policy.text);
    };
    check_refused(
        tenant_policy(
            "p1",
            "permit (principal, action, resource is claim) when { resource.colour == \"red\" };",
        ),
        "colour",
    );
    check_refused(
        tenant_policy(
            "p1",
            "permit (principal, action == Action::\"fly\", resource);",
        ),
        "fly",
    );
    check_refused(
        tenant_policy(
            "p1",
            "permit (principal, action, resource is claim) when { resource.amount == \"x\" };",
        ),
        "fails validation",
    );
    check_refused(
        tenant_policy("p1", "permit (principal, action"),
        "does not parse",
    );
    check_refused(
        tenant_policy("claim/Clerk", "permit (principal, action, resource);"),
        "policy id",
    );
    check_refused(
        tenant_policy("tenant-isolation", "permit (principal, action, resource);"),
        "exists",
    );
    check_refused(
        tenant_policy(
            "p1",
            "permit (principal, action, resource); permit (principal, action, resource);",
        ),
        "does not parse",
    );
    model
        .check_policy(&tenant_policy(
            "big-claims",
            "forbid (principal, action == Action::\"submit\", resource is claim) when { resource has amount && resource.amount > 100000 };",
        ))
        .unwrap();
}

#[test]
fn a_tenant_forbid_overrides_the_compiled_permits() {
    let forbid = tenant_policy(
        "big-claims",
        "forbid (principal, action == Action::\"submit\", resource is claim) when { resource has amount && resource.amount > 100000 };",
    );
    let model = Model::compile(&registry(), &[], &[forbid]).unwrap();
    let limit = json!({"approval_limit": "99999.00", "department": "Sales"});
    let small = json!({"amount": "10.00", "department": "Sales"});
    let big = json!({"amount": "1500.00", "department": "Sales"});
    check(
        &model,
        &["Approver"],
        limit.clone(),
        "submit",
        "claim",
        small,
        true,
    );
    check(
        &model,
        &["Approver"],
        limit.clone(),
        "submit",
        "claim",
        big.clone(),
        false,
    );
    check(&model, &["Approver"], limit, "read", "claim", big, true);
}

/// Tenant policies kept in memory, for the list tests.
struct Policies(Vec<TenantPolicy>);

#[prefiq::async_trait]
impl PolicyStore for Policies {
    async fn tenant_policies(&self, tenant: &str) -> Result<Vec<TenantPolicy>, String> {
        Ok(if tenant.starts_with("custom") {
            self.0.clone()
        } else {
            Vec::new()
        })
    }
}

fn scope(tenant: &str, principal: Option<Principal>) -> TenantScope {
    let mut context = Context::system("en").with_tenant(tenant);
    if let Some(principal) = principal {
        context = context.with_principal(principal);
    }
    TenantScope::new(&context).unwrap()
}

#[tokio::test]
async fn field_rules_hide_and_protect_fields() {
    for db in databases("field rules").await {
        let repo = repository_with(&db, "claim.yaml", CLAIM, |entities| {
            Some(Arc::new(CedarAuthorizer::new(
                entities,
                vec![],
                Arc::new(NoTenantPolicies),
            )) as Arc<dyn EntityAuthorizer>)
        })
        .await;
        let approver = principal(
            &["Approver"],
            json!({"approval_limit": "100.00", "department": "Sales"}),
        );
        let clerk = principal(&["Clerk"], json!({}));
        let system = scope("acme", None);
        let created = repo
            .create(
                &system,
                "claim",
                json!({"title": "t", "amount": "10.00", "department": "Sales", "salary": 5}),
            )
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap();
        let seen = repo
            .get(&scope("acme", Some(approver.clone())), "claim", id)
            .await
            .unwrap();
        assert_eq!(seen["amount"], "10.00");
        assert!(seen.get("salary").is_none(), "{seen}");
        let page = repo
            .list(
                &scope("acme", Some(approver.clone())),
                "claim",
                &ListQuery::default(),
            )
            .await
            .unwrap();
        assert!(page.data[0].get("salary").is_none());
        let filtered = repo
            .list(
                &scope("acme", Some(approver)),
                "claim",
                &ListQuery {
                    filters: Some(json!([["salary", ">", 1]])),
                    ..ListQuery::default()
                },
            )
            .await;
        assert!(
            matches!(filtered, Err(RepoError::Forbidden { .. })),
            "{filtered:?}"
        );
        // Mass assignment of a read-only field is refused, naming the action.
        let clerk_scope = scope("acme", Some(clerk));
        match repo
            .create(
                &clerk_scope,
                "claim",
                json!({"title": "mine", "amount": "99.00"}),
            )
            .await
        {
            Err(RepoError::Forbidden { action, reason }) => {
                assert_eq!(action, "create");
                assert!(reason.contains("`amount`"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let mine = repo
            .create(&clerk_scope, "claim", json!({"title": "mine"}))
            .await
            .unwrap();
        let mine_id = mine["id"].as_str().unwrap();
        // Sending back the value read is not a change; changing it is refused.
        repo.update(
            &clerk_scope,
            "claim",
            mine_id,
            json!({"title": "x", "amount": null}),
            None,
        )
        .await
        .unwrap();
        assert!(matches!(
            repo.update(
                &clerk_scope,
                "claim",
                mine_id,
                json!({"amount": "1.00"}),
                None
            )
            .await,
            Err(RepoError::Forbidden { .. })
        ));
        // Someone else's claim is out of the clerk's reach for reading and writing.
        assert!(matches!(
            repo.get(&clerk_scope, "claim", id).await,
            Err(RepoError::Forbidden { .. })
        ));
        assert!(matches!(
            repo.update(
                &clerk_scope,
                "claim",
                id,
                json!({"title": "mine now"}),
                None
            )
            .await,
            Err(RepoError::Forbidden { .. })
        ));
        // A principal with no read grant gets a refusal, not an empty list.
        let nobody = scope("acme", Some(principal(&[], json!({}))));
        assert!(matches!(
            repo.list(&nobody, "claim", &ListQuery::default()).await,
            Err(RepoError::Forbidden { .. })
        ));
        db.cleanup().await;
    }
}

/// A row of the differential test.
#[derive(Debug, Clone)]
struct Row {
    owner: usize,
    amount: Option<i64>,
    department: Option<&'static str>,
}

/// A principal of the differential test.
#[derive(Debug, Clone)]
struct Who {
    user: usize,
    roles: Vec<&'static str>,
    limit: Option<Value>,
    department: Option<&'static str>,
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec(
        (
            0..3usize,
            // Amounts on a coarse grid, so that equal amounts and limits (the `<=` boundary)
            // occur often.
            prop::option::of((0..8i64).prop_map(|n| n * 1250)),
            prop::option::of(prop::sample::select(vec!["Sales", "Ops", "sales"])),
        )
            .prop_map(|(owner, amount, department)| Row {
                owner,
                amount,
                department,
            }),
        0..25,
    )
}

fn principals() -> impl Strategy<Value = Vec<Who>> {
    prop::collection::vec(
        (
            0..3usize,
            prop::sample::select(vec![
                vec!["Approver"],
                vec!["Approver"],
                vec!["Approver", "Nobody"],
                vec!["Clerk"],
                vec!["Clerk", "Approver"],
                vec!["Auditor"],
                vec![],
            ]),
            prop::option::weighted(0.9, prop_oneof![
                8 => (0..8i64).prop_map(|n| json!(format!("{}.{:02}", n * 1250 / 100, n * 1250 % 100))),
                1 => Just(json!("lots")),
                1 => Just(json!(null)),
            ]),
            prop::option::weighted(0.9, prop::sample::select(vec!["Sales", "Ops"])),
        )
            .prop_map(|(user, roles, limit, department)| Who {
                user,
                roles,
                limit,
                department,
            }),
        1..5,
    )
}

/// Lists every row `who` may see and reads every row one by one: the two sets agree.
async fn list_agrees_with_get(
    repo: &prefiq_data::entity::repo::Repository,
    tenant: &str,
    who: &Who,
    ids: &[String],
) -> Result<(), TestCaseError> {
    let mut attributes = BTreeMap::new();
    if let Some(limit) = &who.limit {
        attributes.insert("approval_limit".to_owned(), limit.clone());
    }
    if let Some(department) = who.department {
        attributes.insert("department".to_owned(), json!(department));
    }
    let principal = Principal {
        tenant: tenant.into(),
        user: format!("u{}", who.user),
        roles: who.roles.iter().map(|r| (*r).to_owned()).collect(),
        attributes,
        api_key: None,
    };
    let scope = scope(tenant, Some(principal));
    let mut by_get: Vec<String> = Vec::new();
    for id in ids {
        match repo.get(&scope, "claim", id).await {
            Ok(_) => by_get.push(id.clone()),
            Err(RepoError::Forbidden { .. }) => {}
            Err(e) => return Err(TestCaseError::fail(format!("get: {e}"))),
        }
    }
    let mut by_list: Vec<String> = match repo
        .list(
            &scope,
            "claim",
            &ListQuery {
                limit: Some(500),
                ..ListQuery::default()
            },
        )
        .await
    {
        Ok(page) => page
            .data
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
            .collect(),
        Err(RepoError::Forbidden { .. }) => Vec::new(),
        Err(e) => return Err(TestCaseError::fail(format!("list: {e}"))),
    };
    by_get.sort();
    by_list.sort();
    prop_assert_eq!(by_list, by_get, "{:?}", who);
    Ok(())
}

/// The record rules as SQL predicates and as Cedar policies decide alike, on random rows
/// and principals, on every backend; and with a tenant policy, which lists check row by
/// row, too.
#[test]
fn a_list_never_returns_a_row_a_get_would_refuse() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let forbid = tenant_policy(
        "no-big-ops",
        "forbid (principal, action, resource is claim) when { resource has department && resource.department == \"Ops\" && resource has amount && resource.amount > 5000 };",
    );
    let setups = runtime.block_on(async {
        let mut out = Vec::new();
        for db in databases("list differential").await {
            let forbid = forbid.clone();
            let repo = repository_with(&db, "claim.yaml", CLAIM, move |entities| {
                Some(Arc::new(CedarAuthorizer::new(
                    entities,
                    vec![],
                    Arc::new(Policies(vec![forbid])),
                )) as Arc<dyn EntityAuthorizer>)
            })
            .await;
            out.push((db, repo));
        }
        out
    });
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 32,
        ..ProptestConfig::default()
    };
    proptest!(config, |(rows in rows(), whos in principals(), custom in any::<bool>())| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tenant = if custom { format!("custom{n}") } else { format!("plain{n}") };
        runtime.block_on(async {
            for (_, repo) in &setups {
                let mut ids = Vec::new();
                for row in &rows {
                    let context = Context::system("en")
                        .with_tenant(tenant.clone())
                        .with_user(format!("u{}", row.owner));
                    let mut input = Map::new();
                    input.insert("title".into(), json!("r"));
                    if let Some(amount) = row.amount {
                        input.insert("amount".into(), json!(format!("{}.{:02}", amount / 100, amount % 100)));
                    }
                    if let Some(department) = row.department {
                        input.insert("department".into(), json!(department));
                    }
                    let created = repo
                        .create(&TenantScope::new(&context).unwrap(), "claim", Value::Object(input))
                        .await
                        .unwrap();
                    ids.push(created["id"].as_str().unwrap().to_owned());
                }
                for who in &whos {
                    list_agrees_with_get(repo, &tenant, who, &ids).await?;
                }
            }
            Ok::<(), TestCaseError>(())
        })?;
    });
    runtime.block_on(async {
        for (db, _) in setups {
            db.cleanup().await;
        }
    });
}

#[tokio::test]
async fn an_approver_lists_the_rows_up_to_its_limit_in_its_department() {
    for db in databases("approver list").await {
        let repo = repository_with(&db, "claim.yaml", CLAIM, |entities| {
            Some(Arc::new(CedarAuthorizer::new(
                entities,
                vec![],
                Arc::new(NoTenantPolicies),
            )) as Arc<dyn EntityAuthorizer>)
        })
        .await;
        let system = scope("acme", None);
        for (amount, department) in [
            ("10.00", "Sales"),
            ("100.00", "Sales"),
            ("100.01", "Sales"),
            ("10.00", "Ops"),
        ] {
            repo.create(
                &system,
                "claim",
                json!({"title": format!("{amount} {department}"), "amount": amount, "department": department}),
            )
            .await
            .unwrap();
        }
        let approver = principal(
            &["Approver"],
            json!({"approval_limit": "100.00", "department": "Sales"}),
        );
        let page = repo
            .list(
                &scope("acme", Some(approver)),
                "claim",
                &ListQuery {
                    order_by: Some("amount asc".into()),
                    ..ListQuery::default()
                },
            )
            .await
            .unwrap();
        let titles: Vec<&str> = page
            .data
            .iter()
            .map(|r| r["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["10.00 Sales", "100.00 Sales"]);
        db.cleanup().await;
    }
}

/// The single-record path (`EntityAuthorizer::authorize`) answers as Cedar does for every
/// role set, action, entity and row of the matrix: its shortcut (an administrator, or a
/// grant without record rules, in a model without tenant policies) only ever skips an
/// evaluation that would allow; and a tenant's own forbid still refuses an administrator.
#[tokio::test]
async fn the_record_authorizer_agrees_with_cedar() {
    let entities = Arc::new(prefiq_data::entity::Entities::default());
    entities.set(registry());
    let registry = registry();
    let authorizer = CedarAuthorizer::new(entities.clone(), vec![], Arc::new(NoTenantPolicies));
    let model = Model::compile(&registry, &[], &[]).unwrap();
    let rows = [
        json!({"id": "r1", "created_by": "u1", "amount": "10.00", "department": "Sales"}),
        json!({"id": "r1", "created_by": "u2", "amount": "5000.00", "department": "Ops"}),
        json!({"id": "r1"}),
    ];
    let role_sets: &[&[&str]] = &[
        &[],
        &["Clerk"],
        &["Approver"],
        &["Auditor"],
        &["Editor"],
        &["Clerk", "Editor"],
        &["System Manager"],
        &["clerk"],
    ];
    let actions = [
        "read",
        "create",
        "update",
        "delete",
        "submit",
        "export",
        "customize",
    ];
    let mut shortcuts = 0;
    for tenant in ["acme", "globex"] {
        for roles in role_sets {
            let mut who = principal(
                roles,
                json!({"approval_limit": "100.00", "department": "Sales"}),
            );
            who.tenant = tenant.into();
            let scope = scope("acme", Some(who.clone()));
            for entity in ["claim", "note"] {
                let schema = registry.get(entity).unwrap();
                for action in actions {
                    for row in &rows {
                        let row = doc(row.clone());
                        let cedar = model
                            .decide(
                                &who,
                                scope.tenant(),
                                action,
                                Resource::Record {
                                    schema,
                                    id: "r1",
                                    doc: Some(&row),
                                },
                            )
                            .allowed;
                        let shortcut = prefiq_auth::authz::unconditionally_permitted(
                            &model,
                            &who,
                            scope.tenant(),
                            schema,
                            action,
                        );
                        shortcuts += usize::from(shortcut);
                        assert!(
                            !shortcut || cedar,
                            "{tenant} {roles:?} {action} {entity} {row:?}"
                        );
                        let authorized = authorizer
                            .authorize(&scope, schema, action, Some(&row))
                            .await
                            .is_ok();
                        assert_eq!(
                            authorized, cedar,
                            "{tenant} {roles:?} {action} {entity} {row:?}"
                        );
                    }
                }
            }
        }
    }
    assert!(shortcuts > 0, "the matrix exercises the shortcut");

    // A tenant policy has no SQL or shortcut twin: Cedar decides, even for administrators.
    let forbid = tenant_policy(
        "no-deletes",
        "forbid (principal, action == Action::\"delete\", resource is note);",
    );
    let authorizer = CedarAuthorizer::new(entities, vec![], Arc::new(Policies(vec![forbid])));
    let mut admin = principal(&["System Manager"], json!({}));
    admin.tenant = "custom-acme".into();
    let scope = scope("custom-acme", Some(admin));
    let note = registry.get("note").unwrap();
    let row = doc(json!({"id": "n1"}));
    assert!(
        authorizer
            .authorize(&scope, note, "delete", Some(&row))
            .await
            .is_err()
    );
    assert!(
        authorizer
            .authorize(&scope, note, "update", Some(&row))
            .await
            .is_ok()
    );
}
