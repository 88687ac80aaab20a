//! Tree entities: for random sequences of inserts, moves and deletes, the closure table
//! always answers `descendants of` and `ancestors of` exactly as the parent links say, a
//! move under a node's own subtree is refused, and a node with children cannot be deleted
//! — on SQLite, and on PostgreSQL when configured. Each case runs in a tenant of its own.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use prefiq::Context;
use prefiq_data::entity::repo::{ListQuery, RepoError, Repository, TenantScope};
use prefiq_data::testing::{TestDatabase, databases};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

const ACCOUNT: &str = "name: account
tree: closure
fields:
  - {name: account_name, type: data, required: true}
";

async fn setup(db: &TestDatabase) -> Repository {
    prefiq_data::testing::repository(db, "schema/account.yaml", ACCOUNT).await
}

/// One step; node numbers are taken modulo the nodes that exist.
#[derive(Debug, Clone)]
enum Step {
    Insert { parent: Option<usize> },
    Move { node: usize, parent: Option<usize> },
    Delete { node: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => proptest::option::weighted(0.8, 0..64usize).prop_map(|parent| Step::Insert { parent }),
        3 => (0..64usize, proptest::option::weighted(0.8, 0..64usize))
            .prop_map(|(node, parent)| Step::Move { node, parent }),
        1 => (0..64usize).prop_map(|node| Step::Delete { node }),
    ]
}

/// The model: live nodes and their parents.
#[derive(Default)]
struct Model {
    parent: BTreeMap<String, Option<String>>,
    order: Vec<String>,
}

impl Model {
    fn pick(&self, n: usize) -> Option<String> {
        (!self.order.is_empty()).then(|| self.order[n % self.order.len()].clone())
    }

    fn ancestors(&self, node: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut at = self.parent.get(node).cloned().flatten();
        while let Some(p) = at {
            at = self.parent.get(&p).cloned().flatten();
            out.insert(p);
        }
        out
    }

    fn descendants(&self, node: &str) -> BTreeSet<String> {
        self.parent
            .keys()
            .filter(|n| self.ancestors(n).contains(node))
            .cloned()
            .collect()
    }
}

fn code(error: &RepoError) -> &'static str {
    match error {
        RepoError::Invalid(items) => items.first().map_or("", |i| i.code),
        _ => "",
    }
}

async fn ids(
    repository: &Repository,
    scope: &TenantScope,
    op: &str,
    node: &str,
) -> BTreeSet<String> {
    let query = ListQuery {
        filters: Some(json!([["id", op, node]])),
        limit: Some(500),
        ..Default::default()
    };
    repository
        .list(scope, "account", &query)
        .await
        .unwrap()
        .data
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn run_case(
    repository: &Repository,
    scope: &TenantScope,
    steps: &[Step],
) -> Result<(), String> {
    let mut model = Model::default();
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Insert { parent } => {
                let parent = parent.and_then(|p| model.pick(p));
                let row = repository
                    .create(
                        scope,
                        "account",
                        json!({"account_name": format!("a{i}"), "parent_account": parent}),
                    )
                    .await
                    .map_err(|e| format!("insert: {e:?}"))?;
                let id = row["id"].as_str().unwrap().to_owned();
                model.parent.insert(id.clone(), parent);
                model.order.push(id);
            }
            Step::Move { node, parent } => {
                let Some(node) = model.pick(*node) else {
                    continue;
                };
                let parent = parent.and_then(|p| model.pick(p));
                let result = repository
                    .update(
                        scope,
                        "account",
                        &node,
                        json!({"parent_account": parent}),
                        None,
                    )
                    .await;
                let cycle = parent
                    .as_ref()
                    .is_some_and(|p| *p == node || model.descendants(&node).contains(p));
                match (result, cycle) {
                    (Ok(_), false) => {
                        model.parent.insert(node, parent);
                    }
                    (Err(e), true) if code(&e) == "tree_cycle" => {}
                    (other, cycle) => return Err(format!("move (cycle: {cycle}): {other:?}")),
                }
            }
            Step::Delete { node } => {
                let Some(node) = model.pick(*node) else {
                    continue;
                };
                let result = repository.delete(scope, "account", &node).await;
                let has_children = model
                    .parent
                    .values()
                    .any(|p| p.as_deref() == Some(node.as_str()));
                match (result, has_children) {
                    (Ok(()), false) => {
                        model.parent.remove(&node);
                        model.order.retain(|n| *n != node);
                    }
                    (Err(e), true) if code(&e) == "has_children" => {}
                    (other, children) => {
                        return Err(format!("delete (children: {children}): {other:?}"));
                    }
                }
            }
        }
    }
    for node in &model.order {
        let below = ids(repository, scope, "descendants of", node).await;
        if below != model.descendants(node) {
            return Err(format!(
                "descendants of {node}: {below:?}, model {:?}",
                model.descendants(node)
            ));
        }
        let above = ids(repository, scope, "ancestors of", node).await;
        if above != model.ancestors(node) {
            return Err(format!(
                "ancestors of {node}: {above:?}, model {:?}",
                model.ancestors(node)
            ));
        }
        let outside = ids(repository, scope, "not descendants of", node).await;
        let all: BTreeSet<String> = model.parent.keys().cloned().collect();
        let expected: BTreeSet<String> =
            all.difference(&model.descendants(node)).cloned().collect();
        if outside != expected {
            return Err(format!(
                "not descendants of {node}: {outside:?}, expected {expected:?}"
            ));
        }
    }
    Ok(())
}

#[test]
fn closure_table_follows_the_parent_links_on_backends() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for db in runtime.block_on(databases("prefiq-data tree properties")) {
        let repository = runtime.block_on(setup(&db));
        let case = AtomicUsize::new(0);
        let mut runner = TestRunner::new(Config {
            cases: 48,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&prop::collection::vec(step(), 1..24), |steps| {
            let tenant = format!("t{}", case.fetch_add(1, Ordering::Relaxed));
            let scope = TenantScope::new(&Context::system("en").with_tenant(&tenant)).unwrap();
            runtime
                .block_on(run_case(&repository, &scope, &steps))
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", db.url)))
        });
        if let Err(e) = result {
            panic!("{e}");
        }
        runtime.block_on(db.cleanup());
    }
}

#[test]
fn tree_operators_are_refused_where_they_do_not_apply() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = TestDatabase::sqlite().unwrap();
    let repository = runtime.block_on(setup(&db));
    let scope = TenantScope::new(&Context::system("en").with_tenant("acme")).unwrap();
    let check = |filters: Value, expected: &str| {
        let query = ListQuery {
            filters: Some(filters.clone()),
            ..Default::default()
        };
        let error = runtime
            .block_on(repository.list(&scope, "account", &query))
            .unwrap_err();
        assert_eq!(format!("{error:?}"), expected, "{filters}");
    };
    check(
        json!([["account_name", "descendants of", "x"]]),
        "Invalid([FieldError { pointer: \"/filters/0/0\", code: \"wrong_type\", message: \"`descendants of` applies to `id`\" }])",
    );
    check(
        json!([["id", "ancestors of", 3]]),
        "Invalid([FieldError { pointer: \"/filters/0/2\", code: \"wrong_type\", message: \"`ancestors of` takes the id of a row\" }])",
    );
    let dangling = runtime
        .block_on(repository.create(
            &scope,
            "account",
            json!({"account_name": "x", "parent_account": "nope"}),
        ))
        .unwrap_err();
    assert_eq!(code(&dangling), "dangling_link");
}
