//! The engine's referential rule, on SQLite and PostgreSQL: a row that a submitted or
//! cancelled document links to (directly or from a child row), that a live row of an
//! entity without lifecycle links to, or whose key a `references` field names, cannot be
//! deleted; the refusal names the referencing rows. A draft protects nothing, and its
//! submit checks its links again.
#![allow(clippy::unwrap_used)]

use prefiq::Context;
use prefiq_data::entity::repo::{RepoError, Repository, TenantScope};
use prefiq_data::testing::{TestDatabase, databases, repository_of};
use serde_json::{Value, json};

const SCHEMAS: &[(&str, &str)] = &[
    (
        "schema/unit.yaml",
        "name: unit\nfields:\n  - {name: code, type: data, required: true, unique: true}\n",
    ),
    (
        "schema/customer.yaml",
        "name: customer\nfields:\n  - {name: customer_name, type: data, required: true}\n",
    ),
    (
        "schema/item.yaml",
        "name: item\nfields:\n  - {name: item_name, type: data, required: true}\n  - {name: unit, type: data, references: unit.code}\n",
    ),
    (
        "schema/order_line.yaml",
        "name: order_line\nchild: true\nfields:\n  - {name: item, type: link, target: item, required: true}\n  - {name: price, type: money, references: unit.code}\n",
    ),
    (
        "schema/sales_order.yaml",
        "name: sales_order\nnaming: SO-.#####\nsubmittable: true\nfields:\n  - {name: customer, type: link, target: customer, required: true}\n  - {name: lines, type: table, entity: order_line}\n",
    ),
];

async fn setup(db: &TestDatabase) -> Repository {
    repository_of(db, SCHEMAS, |_| None).await
}

fn id(record: &Value) -> String {
    record["id"].as_str().unwrap().to_owned()
}

/// Deletes `entity` `row` and checks the outcome: `Ok` or the referencing `(entity, field)`
/// pairs named, in order.
async fn check(
    repository: &Repository,
    scope: &TenantScope,
    (entity, row): (&str, &str),
    expected: Result<(), Vec<(&str, &str)>>,
) {
    let outcome = repository.delete(scope, entity, row).await;
    match (outcome, expected) {
        (Ok(()), Ok(())) => {}
        (Err(RepoError::Referenced { references, .. }), Err(named)) => {
            let got: Vec<(&str, &str)> = references
                .iter()
                .map(|r| (r.entity.as_str(), r.field.as_str()))
                .collect();
            assert_eq!(got, named, "delete {entity}");
        }
        (outcome, expected) => panic!("delete {entity}: {outcome:?}, expected {expected:?}"),
    }
}

#[tokio::test]
async fn a_row_that_documents_link_to_cannot_be_deleted_on_backends() {
    for db in databases("data_references").await {
        let repository = setup(&db).await;
        let scope = TenantScope::new(&Context::system("en").with_tenant("acme")).unwrap();
        let create = |entity: &'static str, doc: Value| {
            let (repository, scope) = (&repository, &scope);
            async move { repository.create(scope, entity, doc).await.unwrap() }
        };
        create("unit", json!({"code": "EUR"})).await;
        let kg = id(&create("unit", json!({"code": "KG"})).await);
        let spare = id(&create("unit", json!({"code": "BOX"})).await);
        let customer = id(&create("customer", json!({"customer_name": "Ada"})).await);
        let idle_customer = id(&create("customer", json!({"customer_name": "Bob"})).await);
        let item = id(&create("item", json!({"item_name": "Flour", "unit": "KG"})).await);
        let order = create(
            "sales_order",
            json!({"customer": customer, "lines": [{"item": item, "price": {"amount": "2.50", "currency": "EUR"}}]}),
        )
        .await;
        // A draft protects nothing; master data does (the item names KG).
        check(
            &repository,
            &scope,
            ("unit", &kg),
            Err(vec![("item", "unit")]),
        )
        .await;
        check(&repository, &scope, ("unit", &spare), Ok(())).await;
        check(&repository, &scope, ("customer", &idle_customer), Ok(())).await;
        repository
            .submit(&scope, "sales_order", &id(&order))
            .await
            .unwrap();
        // Submitted, the order protects its customer, and through its line the item.
        check(
            &repository,
            &scope,
            ("customer", &customer),
            Err(vec![("sales_order", "customer")]),
        )
        .await;
        check(
            &repository,
            &scope,
            ("item", &item),
            Err(vec![("sales_order", "lines.item")]),
        )
        .await;
        let eur = repository
            .list(
                &scope,
                "unit",
                &prefiq_data::entity::repo::ListQuery {
                    filters: Some(json!([["code", "=", "EUR"]])),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let eur = id(&eur.data[0]);
        check(
            &repository,
            &scope,
            ("unit", &eur),
            Err(vec![("sales_order", "lines.price")]),
        )
        .await;
        // The refusal says who, in words.
        let error = repository
            .delete(&scope, "customer", &customer)
            .await
            .unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "customer `{customer}` is referenced by sales_order SO-00001"
            )),
            "{error}"
        );
        // Cancelled, it still protects: it is history.
        repository
            .cancel(&scope, "sales_order", &id(&order))
            .await
            .unwrap();
        check(
            &repository,
            &scope,
            ("customer", &customer),
            Err(vec![("sales_order", "customer")]),
        )
        .await;
        // Another tenant's rows neither protect nor are protected.
        let other = TenantScope::new(&Context::system("en").with_tenant("globex")).unwrap();
        let theirs = id(&repository
            .create(&other, "customer", json!({"customer_name": "Ada"}))
            .await
            .unwrap());
        check(&repository, &other, ("customer", &theirs), Ok(())).await;
        // A draft whose link was deleted cannot be submitted.
        let gone = id(&create("customer", json!({"customer_name": "Eve"})).await);
        let draft = create("sales_order", json!({"customer": gone, "lines": []})).await;
        check(&repository, &scope, ("customer", &gone), Ok(())).await;
        match repository.submit(&scope, "sales_order", &id(&draft)).await {
            Err(RepoError::Invalid(errors)) => {
                assert_eq!(errors[0].code, "dangling_link", "{errors:?}");
            }
            other => panic!("submit with a deleted customer: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_refusal_names_a_few_rows_per_field_and_says_there_are_more_on_backends() {
    for db in databases("data_references_many").await {
        let repository = setup(&db).await;
        let scope = TenantScope::new(&Context::system("en").with_tenant("acme")).unwrap();
        repository
            .create(&scope, "unit", json!({"code": "KG"}))
            .await
            .unwrap();
        let kg = repository
            .list(&scope, "unit", &Default::default())
            .await
            .unwrap();
        let kg = id(&kg.data[0]);
        for n in 0..5 {
            repository
                .create(
                    &scope,
                    "item",
                    json!({"item_name": format!("I{n}"), "unit": "KG"}),
                )
                .await
                .unwrap();
        }
        match repository.delete(&scope, "unit", &kg).await {
            Err(RepoError::Referenced {
                references, more, ..
            }) => {
                assert_eq!(references.len(), 3, "at most three per field");
                assert!(more);
            }
            other => panic!("{other:?}"),
        }
    }
}
