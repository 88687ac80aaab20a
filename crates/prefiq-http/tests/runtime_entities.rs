//! Runtime entities live in a namespace per tenant: two tenants may each create the same
//! name with different fields, each sees only its own, and neither learns of the other.
//! On both backends and in both tenancy modes, and after a restart.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Api, boot, first_error};
use prefiq_data::testing::databases;
use serde_json::{Value, json};

const ENTITIES: &str = "/api/v1/customize/entities";

/// Creates the runtime entity `definition` as `tenant`: the status and the first error's
/// (pointer, code), or `-` when there is none.
async fn create(api: &Api, tenant: &str, definition: &Value) -> (StatusCode, String, String) {
    let (status, answer) = api.call("POST", ENTITIES, tenant, Some(definition)).await;
    first_error(status, &answer)
}

fn created() -> (StatusCode, String, String) {
    (StatusCode::CREATED, "-".into(), "-".into())
}

fn refused(status: StatusCode, pointer: &str, code: &str) -> (StatusCode, String, String) {
    (status, pointer.into(), code.into())
}

/// The fields of `entity` in `tenant`'s OpenAPI document, by name.
async fn documented_fields(api: &Api, tenant: &str, entity: &str) -> Vec<String> {
    let (_, document) = api.call("GET", "/api/v1/openapi.json", tenant, None).await;
    let mut fields: Vec<String> = document["components"]["schemas"][entity]["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    fields.retain(|f| ["plate", "seats", "vin", "colour"].contains(&f.as_str()));
    fields.sort();
    fields
}

fn vehicle_of_acme() -> Value {
    json!({"name": "vehicle", "fields": [
        {"name": "plate", "type": "data", "required": true, "unique": true},
        {"name": "seats", "type": "int", "indexed": true}
    ]})
}

fn vehicle_of_globex() -> Value {
    json!({"name": "vehicle", "fields": [
        {"name": "vin", "type": "data", "required": true},
        {"name": "colour", "type": "select", "options": ["red", "blue"]}
    ]})
}

/// What each tenant has after the set-up: acme's vehicle (plate AB-1), globex's (vin V1).
async fn check_each_sees_its_own(api: &Api) {
    for (tenant, record, fields) in [
        ("acme", "plate", ["plate", "seats"]),
        ("globex", "vin", ["colour", "vin"]),
    ] {
        let (status, page) = api
            .call("GET", "/api/v1/resources/vehicle", tenant, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{} {tenant}: {page}", api.url);
        let rows = page["data"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{tenant}: {page}");
        assert!(rows[0][record].is_string(), "{tenant}: {page}");
        assert_eq!(documented_fields(api, tenant, "vehicle").await, fields);
        let (_, listed) = api.call("GET", ENTITIES, tenant, None).await;
        let names: Vec<&str> = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"vehicle"), "{tenant}: {listed}");
        assert!(
            listed["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["schema"]["module"] == json!(format!("tenant:{tenant}"))),
            "{tenant} lists only its own: {listed}"
        );
    }
    // A tenant without one sees none, and no one's fields.
    let (status, _) = api
        .call("GET", "/api/v1/resources/vehicle", "initech", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        documented_fields(api, "initech", "vehicle")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn runtime_entity_name_is_private_to_its_tenant() {
    for tenancy in ["shared", "database"] {
        for db in databases("prefiq-http runtime entity namespaces").await {
            let vars = [("PREFIQ__DATABASE__TENANCY", tenancy)];
            let api = boot(&db, &vars).await;
            let at = format!("{} ({tenancy})", api.url);
            // Both tenants create `vehicle`, with different fields: each is the first.
            assert_eq!(
                create(&api, "acme", &vehicle_of_acme()).await,
                created(),
                "{at}"
            );
            assert_eq!(
                create(&api, "globex", &vehicle_of_globex()).await,
                created(),
                "{at}"
            );
            // The same answer whether or not another tenant has the name: initech's
            // `vehicle` is as new to it as acme's was.
            let boat = json!({"name": "boat", "fields": [{"name": "hull", "type": "data"}]});
            assert_eq!(create(&api, "initech", &boat).await, created(), "{at}");
            assert_eq!(create(&api, "acme", &boat).await, created(), "{at}");
            // A name the tenant itself has, or a declared entity's, is taken; the answer
            // names only the entity.
            for (definition, name) in [
                (vehicle_of_acme(), "vehicle"),
                (
                    json!({"name": "todo", "fields": [{"name": "x", "type": "int"}]}),
                    "todo",
                ),
            ] {
                let (status, problem) = api.call("POST", ENTITIES, "acme", Some(&definition)).await;
                assert_eq!(
                    first_error(status, &problem),
                    refused(StatusCode::CONFLICT, "/name", "unique"),
                    "{at}"
                );
                assert_eq!(
                    problem["detail"],
                    json!(format!("an entity called `{name}` already exists")),
                    "{at}"
                );
            }
            // Reserved names are refused as invalid, not failed on.
            for name in [
                "sqlite_master",
                "sqlite_sequence",
                "pg_class",
                "prefiq_entities",
                "cortex_users",
            ] {
                let definition = json!({"name": name, "fields": [{"name": "x", "type": "int"}]});
                assert_eq!(
                    create(&api, "acme", &definition).await,
                    refused(StatusCode::UNPROCESSABLE_ENTITY, "", "invalid_schema"),
                    "{at} {name}"
                );
            }
            // Rows: each tenant's vehicle has its own fields and rows.
            let (status, car) = api
                .call(
                    "POST",
                    "/api/v1/resources/vehicle",
                    "acme",
                    Some(&json!({"plate": "AB-1", "seats": 4})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{at} {car}");
            let (status, truck) = api
                .call(
                    "POST",
                    "/api/v1/resources/vehicle",
                    "globex",
                    Some(&json!({"vin": "V1", "colour": "red"})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{at} {truck}");
            let (status, problem) = api
                .call(
                    "POST",
                    "/api/v1/resources/vehicle",
                    "acme",
                    Some(&json!({"plate": "AB-2", "vin": "V2"})),
                )
                .await;
            assert_eq!(
                first_error(status, &problem),
                refused(StatusCode::UNPROCESSABLE_ENTITY, "/vin", "unknown_field"),
                "{at}"
            );
            let (status, problem) = api
                .call(
                    "POST",
                    "/api/v1/resources/vehicle",
                    "acme",
                    Some(&json!({"plate": "AB-1"})),
                )
                .await;
            assert_eq!(
                first_error(status, &problem),
                refused(StatusCode::CONFLICT, "/plate", "unique"),
                "{at}"
            );
            // A link to `vehicle` from acme's entity is a link to acme's vehicle.
            let garage = json!({"name": "garage", "fields": [{"name": "car", "type": "link", "target": "vehicle"}]});
            assert_eq!(create(&api, "acme", &garage).await, created(), "{at}");
            let (status, _) = api
                .call(
                    "POST",
                    "/api/v1/resources/garage",
                    "acme",
                    Some(&json!({"car": car["id"]})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{at}");
            let (status, problem) = api
                .call(
                    "POST",
                    "/api/v1/resources/garage",
                    "acme",
                    Some(&json!({"car": truck["id"]})),
                )
                .await;
            assert_eq!(
                first_error(status, &problem),
                refused(StatusCode::UNPROCESSABLE_ENTITY, "/car", "dangling_link"),
                "{at}"
            );
            check_each_sees_its_own(&api).await;
            // After a restart: the same entities, tables and rows.
            drop(api);
            let api = boot(&db, &vars).await;
            check_each_sees_its_own(&api).await;
            drop(api);
            db.cleanup().await;
        }
    }
}

#[tokio::test]
async fn runtime_entity_names_of_the_longest_length_fit_postgres_identifiers() {
    for db in databases("prefiq-http long runtime entity names").await {
        let api = boot(&db, &[("PREFIQ__DATABASE__TENANCY", "shared")]).await;
        let entity = format!("e{}", "x".repeat(47));
        let unique = format!("u{}", "y".repeat(47));
        let indexed = format!("u{}", "z".repeat(47));
        let definition = json!({"name": entity, "tree": "closure", "fields": [
            {"name": unique, "type": "data", "unique": true},
            {"name": indexed, "type": "int", "indexed": true}
        ]});
        let tenant = "t".repeat(63);
        for tenant in [tenant.as_str(), "acme"] {
            assert_eq!(
                create(&api, tenant, &definition).await,
                created(),
                "{} {tenant}",
                api.url
            );
            let path = format!("/api/v1/resources/{entity}");
            let row = json!({unique.as_str(): "one", indexed.as_str(): 1});
            let (status, root) = api.call("POST", &path, tenant, Some(&row)).await;
            assert_eq!(status, StatusCode::CREATED, "{root}");
            // The unique index is found by its (shortened) name: the error names the field.
            let (status, problem) = api.call("POST", &path, tenant, Some(&row)).await;
            assert_eq!(
                first_error(status, &problem),
                refused(StatusCode::CONFLICT, &format!("/{unique}"), "unique"),
                "{} {tenant}",
                api.url
            );
            let child = json!({unique.as_str(): "two", format!("parent_{entity}"): root["id"]});
            let (status, leaf) = api.call("POST", &path, tenant, Some(&child)).await;
            assert_eq!(status, StatusCode::CREATED, "{leaf}");
            let filter = format!(
                "{path}?filters=%5B%5B%22id%22%2C%22descendants%20of%22%2C%22{}%22%5D%5D",
                root["id"].as_str().unwrap()
            );
            let (status, page) = api.call("GET", &filter, tenant, None).await;
            assert_eq!(
                (status, page["data"].as_array().map(Vec::len)),
                (StatusCode::OK, Some(1)),
                "{page}"
            );
        }
        drop(api);
        db.cleanup().await;
    }
}
