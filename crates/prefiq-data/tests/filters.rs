//! Property test of filter translation: for random rows and random filters, the rows the
//! SQL returns are exactly the rows an in-memory evaluation of the same filters selects —
//! on SQLite, and on PostgreSQL when configured.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use prefiq::Context;
use prefiq_data::entity::repo::{ListQuery, Repository, TenantScope};
use prefiq_data::testing::{TestDatabase, databases};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

const TASK: &str = "name: task
fields:
  - {name: title, type: data}
  - {name: priority, type: select, options: [Low, Medium, High]}
  - {name: estimate, type: int}
";

#[derive(Debug, Clone)]
struct Row {
    id: String,
    title: Option<String>,
    priority: Option<String>,
    estimate: Option<i64>,
}

async fn setup(db: &TestDatabase) -> (Repository, TenantScope, Vec<Row>) {
    let repository = prefiq_data::testing::repository(db, "schema/task.yaml", TASK).await;
    let scope = TenantScope::new(&Context::system("en").with_tenant("acme")).unwrap();

    // Deterministic pseudo-random rows, with nulls and empty strings among them.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let titles = ["", "a", "A", "ab", "b", "ba", "aab", "B_a", "a%b"];
    let mut rows = Vec::new();
    for _ in 0..120 {
        let title = (next(6) != 0).then(|| titles[next(titles.len() as u64) as usize].to_owned());
        let priority =
            (next(5) != 0).then(|| ["Low", "Medium", "High"][next(3) as usize].to_owned());
        let estimate = (next(4) != 0).then(|| next(20) as i64 - 3);
        let record = repository
            .create(
                &scope,
                "task",
                json!({"title": title, "priority": priority, "estimate": estimate}),
            )
            .await
            .unwrap();
        rows.push(Row {
            id: record["id"].as_str().unwrap().to_owned(),
            title,
            priority,
            estimate,
        });
    }
    // A second tenant's rows must never show up.
    let other = TenantScope::new(&Context::system("en").with_tenant("globex")).unwrap();
    repository
        .create(&other, "task", json!({"title": "a", "estimate": 1}))
        .await
        .unwrap();
    (repository, scope, rows)
}

/// SQL `LIKE` as both backends evaluate it after `LOWER`: `%` any run, `_` one character.
fn like(text: &str, pattern: &str) -> bool {
    fn go(t: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(&t[i..], rest)),
            Some(('_', rest)) => !t.is_empty() && go(&t[1..], rest),
            Some((c, rest)) => t.first() == Some(c) && go(&t[1..], rest),
        }
    }
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    go(&t, &p)
}

#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum V {
    Int(i64),
    Text(String),
}

fn value_of(row: &Row, field: &str) -> Option<V> {
    match field {
        "title" => row.title.clone().map(V::Text),
        "priority" => row.priority.clone().map(V::Text),
        _ => row.estimate.map(V::Int),
    }
}

fn to_v(value: &Value) -> V {
    match value {
        Value::Number(n) => V::Int(n.as_i64().unwrap()),
        other => V::Text(other.as_str().unwrap().to_owned()),
    }
}

/// The documented semantics of one filter, evaluated in memory.
fn matches(row: &Row, filter: &Value) -> bool {
    let (field, op, arg) = (
        filter[0].as_str().unwrap(),
        filter[1].as_str().unwrap(),
        &filter[2],
    );
    let v = value_of(row, field);
    let text_empty = matches!(&v, Some(V::Text(t)) if t.is_empty());
    match op {
        "=" => v == Some(to_v(arg)),
        "!=" => v != Some(to_v(arg)),
        "<" => v.is_some_and(|x| x < to_v(arg)),
        "<=" => v.is_some_and(|x| x <= to_v(arg)),
        ">" => v.is_some_and(|x| x > to_v(arg)),
        ">=" => v.is_some_and(|x| x >= to_v(arg)),
        "like" => matches!(&v, Some(V::Text(t)) if like(t, arg.as_str().unwrap())),
        "not like" => !matches(row, &json!([field, "like", arg])),
        "in" => v.is_some_and(|x| arg.as_array().unwrap().iter().any(|a| to_v(a) == x)),
        "not in" => !matches(row, &json!([field, "in", arg])),
        "is" if arg == "set" => v.is_some() && !text_empty,
        "is" => v.is_none() || text_empty,
        "between" => v.is_some_and(|x| to_v(&arg[0]) <= x && x <= to_v(&arg[1])),
        _ => unreachable!(),
    }
}

fn value_strategy(field: &'static str) -> BoxedStrategy<Value> {
    match field {
        "estimate" => (-5i64..25).prop_map(|n| json!(n)).boxed(),
        "priority" => prop::sample::select(vec!["Low", "Medium", "High"])
            .prop_map(|s| json!(s))
            .boxed(),
        _ => "[aAb_]{0,3}".prop_map(|s| json!(s)).boxed(),
    }
}

fn filter_strategy() -> impl Strategy<Value = Value> {
    prop::sample::select(vec!["title", "priority", "estimate"]).prop_flat_map(|field| {
        let ops = prop::sample::select(vec![
            "=", "!=", "<", "<=", ">", ">=", "like", "not like", "in", "not in", "is", "between",
        ]);
        (
            ops,
            value_strategy(field),
            value_strategy(field),
            prop::collection::vec(value_strategy(field), 0..4),
            "[aAb%_]{0,4}",
            any::<bool>(),
        )
            .prop_map(move |(op, a, b, list, pattern, set)| {
                // `like` applies to text only (a regression found here: PostgreSQL has no
                // LOWER(bigint)); on the integer field it is checked to be refused below.
                let op = if field == "estimate" && op.contains("like") {
                    "="
                } else {
                    op
                };
                let arg = match op {
                    "like" | "not like" => json!(pattern),
                    "in" | "not in" => json!(list),
                    "is" => json!(if set { "set" } else { "not set" }),
                    "between" => json!([a, b]),
                    _ => a,
                };
                json!([field, op, arg])
            })
    })
}

#[test]
fn sql_filters_select_exactly_what_the_semantics_say_on_backends() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for db in runtime.block_on(databases("prefiq-data filter properties")) {
        let (repository, scope, rows) = runtime.block_on(setup(&db));
        let mut runner = TestRunner::new(Config {
            cases: 300,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&prop::collection::vec(filter_strategy(), 1..3), |filters| {
            let query = ListQuery {
                filters: Some(Value::Array(filters.clone())),
                limit: Some(500),
                ..Default::default()
            };
            let page = runtime
                .block_on(repository.list(&scope, "task", &query))
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            let got: BTreeSet<String> = page
                .data
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect();
            let expected: BTreeSet<String> = rows
                .iter()
                .filter(|r| filters.iter().all(|f| matches(r, f)))
                .map(|r| r.id.clone())
                .collect();
            prop_assert_eq!(
                got,
                expected,
                "{} filters {}",
                db.url,
                Value::Array(filters.clone())
            );
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
        let query = ListQuery {
            filters: Some(json!([["estimate", "like", "1%"]])),
            ..Default::default()
        };
        let refused = runtime
            .block_on(repository.list(&scope, "task", &query))
            .unwrap_err();
        assert_eq!(
            format!("{refused:?}"),
            "Invalid([FieldError { pointer: \"/filters/0/1\", code: \"wrong_type\", message: \"`like` applies to text fields, and `estimate` is not one\" }])"
        );
        runtime.block_on(db.cleanup());
    }
}
