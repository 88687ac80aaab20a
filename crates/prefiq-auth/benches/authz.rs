//! Authorization decisions and password checks, measured: `cargo bench -p prefiq-auth`.
//!
//! Decisions run against the policy set compiled from real permissions blocks (cortex's
//! `todo` plus an expense-claim entity with owner, limit and department rules, and a
//! tenant forbid policy), for a mix of principals; each decision is timed alone and the
//! p50/p99 reported. Logins per second are bounded by the argon2id check, measured with
//! as many concurrent checks as the machine has cores.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use prefiq::{EntitySource, EntitySources, Principal};
use prefiq_auth::authz::{Model, Resource, TenantPolicy};
use prefiq_data::entity::EntityRegistry;
use serde_json::{Map, Value, json};

const TODO: &str = include_str!("../../../apps/cortex/schema/todo.yaml");

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
    actions: [read, submit]
    when: ["amount <= principal.approval_limit", "department == principal.department"]
    hidden: [salary]
  Auditor: [read, export]
"#;

fn principal(roles: &[&str], attributes: Value) -> Principal {
    Principal {
        tenant: "acme".into(),
        user: "u1".into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        attributes: serde_json::from_value(attributes).unwrap(),
        api_key: None,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.saturating_sub(1).min(sorted.len() - 1)]
}

fn main() {
    let registry = EntityRegistry::load(&EntitySources(vec![
        (
            "cortex".into(),
            EntitySource {
                file: "todo.yaml",
                yaml: TODO,
            },
        ),
        (
            "bench".into(),
            EntitySource {
                file: "claim.yaml",
                yaml: CLAIM,
            },
        ),
    ]))
    .unwrap();
    let forbid = TenantPolicy {
        id: "big-claims".into(),
        text: "forbid (principal, action == Action::\"submit\", resource is claim) when { resource has amount && resource.amount > 1000000 };".into(),
    };
    let started = Instant::now();
    let model = Model::compile(&registry, &["cortex.manage_users".into()], &[forbid]).unwrap();
    println!(
        "compile: {:.2} ms ({} policies)",
        started.elapsed().as_secs_f64() * 1e3,
        model.policies().len()
    );
    let claim = registry.get("claim").unwrap();
    let todo = registry.get("todo").unwrap();
    let row: Map<String, Value> = json!({"id": "c1", "created_by": "u1", "title": "t", "amount": "10.00", "department": "Sales", "salary": 5})
        .as_object()
        .unwrap()
        .clone();
    let todo_row: Map<String, Value> =
        json!({"id": "t1", "description": "d", "status": "Open", "priority": "High"})
            .as_object()
            .unwrap()
            .clone();
    let cases = [
        (principal(&["Clerk"], json!({})), "read", true),
        (
            principal(
                &["Approver"],
                json!({"approval_limit": "100.00", "department": "Sales"}),
            ),
            "submit",
            true,
        ),
        (principal(&["Auditor"], json!({})), "update", false),
        (principal(&["System Manager"], json!({})), "read", false),
    ];
    let rounds = 50_000;
    let mut all = Vec::with_capacity(rounds * cases.len());
    for round in 0..rounds {
        for (who, action, on_claim) in &cases {
            let resource = if *on_claim {
                Resource::Record {
                    schema: claim,
                    id: "c1",
                    doc: Some(&row),
                }
            } else {
                Resource::Record {
                    schema: todo,
                    id: "t1",
                    doc: Some(&todo_row),
                }
            };
            let t = Instant::now();
            let decision = model.decide(who, "acme", action, resource);
            let elapsed = t.elapsed();
            std::hint::black_box(decision);
            if round >= 1000 {
                all.push(elapsed);
            }
        }
    }
    all.sort_unstable();
    println!(
        "decision: n={} p50={:.1} µs p99={:.1} µs max={:.1} µs",
        all.len(),
        percentile(&all, 0.50).as_secs_f64() * 1e6,
        percentile(&all, 0.99).as_secs_f64() * 1e6,
        all[all.len() - 1].as_secs_f64() * 1e6
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let hash = prefiq_auth::hash_password("correct horse battery")
            .await
            .unwrap();
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let window = Duration::from_secs(5);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..workers {
            let hash = hash.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while started.elapsed() < window {
                    assert!(prefiq_auth::verify_password(&hash, "correct horse battery").await);
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        println!(
            "password checks (argon2id m=19 MiB t=2 p=1, {workers} concurrent): {:.1}/s",
            total as f64 / started.elapsed().as_secs_f64()
        );
    });
}
