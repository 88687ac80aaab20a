//! Entities a tenant creates at run time, across replicas and restarts.

use super::*;

/// The migrations recorded for `module`, read straight from the database.
pub(crate) async fn recorded_migrations(url: &str, module: &str) -> Vec<String> {
    let sql = "SELECT id FROM prefiq_migrations WHERE module = $1 ORDER BY id";
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let ids = sqlx::query_scalar(sql)
            .bind(module)
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        ids
    } else {
        let Ok(prefiq_data::DatabaseUrl::Sqlite(path)) =
            prefiq_data::DatabaseUrl::parse(url, std::path::Path::new("/"))
        else {
            panic!("not a SQLite URL: {url}");
        };
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([module], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

pub(crate) const VEHICLE: &str = r#"{"name": "vehicle", "label": "Vehicle", "fields": [
    {"name": "plate", "type": "data", "required": true, "unique": true, "max_length": 12},
    {"name": "owner", "type": "link", "target": "customer"},
    {"name": "seats", "type": "int", "indexed": true}
]}"#;

pub(crate) async fn runtime_entities(api: &Api) {
    let vehicle: Value = serde_json::from_str(VEHICLE).unwrap();
    let (status, created) = api
        .post("/api/v1/customize/entities", vehicle.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{} {created}", api.url);
    assert_eq!(created["resource"], "/api/v1/resources/vehicle");
    assert_eq!(created["schema"]["module"], "tenant:acme");
    let migrations = recorded_migrations(&api.url, "tenant:acme").await;
    assert!(
        migrations.len() == 1 && migrations[0].starts_with("entity_vehicle_"),
        "{migrations:?}"
    );

    // At once a resource with the engine's validation.
    let (status, car) = api
        .post(
            "/api/v1/resources/vehicle",
            json!({"plate": "AB-123", "seats": 4}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{car}");
    check_invalid(
        api,
        "vehicle",
        json!({"plate": "AB-123"}),
        StatusCode::CONFLICT,
        &[("/plate", "unique")],
    )
    .await;
    check_invalid(
        api,
        "vehicle",
        json!({"seats": 2}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/plate", "missing_required")],
    )
    .await;
    check_invalid(
        api,
        "vehicle",
        json!({"plate": "X", "owner": "nobody"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/owner", "dangling_link")],
    )
    .await;
    let (status, page) = api
        .get(&format!(
            "/api/v1/resources/vehicle?filters={}",
            encode(r#"[["seats",">=",4]]"#)
        ))
        .await;
    assert_eq!(
        (status, page["data"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1)),
        "{page}"
    );

    // In this tenant's OpenAPI and JSON Schema; invisible to every other tenant.
    let (_, document) = api.get("/api/v1/openapi.json").await;
    assert!(document["paths"]["/api/v1/resources/vehicle"].is_object());
    let (status, _) = api.get("/api/v1/schema/vehicle").await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/api/v1/resources/vehicle", "/api/v1/schema/vehicle"] {
        let (status, _) = api.call("GET", path, Some("globex"), None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} for another tenant");
    }
    let (status, _) = api
        .call(
            "POST",
            "/api/v1/resources/vehicle",
            Some("globex"),
            Some(json!({"plate": "Z"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, document) = api
        .call("GET", "/api/v1/openapi.json", Some("globex"), None, None)
        .await;
    assert!(document["paths"]["/api/v1/resources/vehicle"].is_null());
    let (_, document) = api
        .call("GET", "/api/v1/openapi.json", None, None, None)
        .await;
    assert!(document["paths"]["/api/v1/resources/vehicle"].is_null());
    let (_, listed) = api.get("/api/v1/customize/entities").await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    let (_, listed) = api
        .call(
            "GET",
            "/api/v1/customize/entities",
            Some("globex"),
            None,
            None,
        )
        .await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(0), "{listed}");

    // Refused definitions name the part that is wrong and create nothing.
    for (definition, status, pointer, code) in [
        (vehicle.clone(), StatusCode::CONFLICT, "/name", "unique"),
        (
            json!({"name": "todo", "fields": [{"name": "x", "type": "int"}]}),
            StatusCode::CONFLICT,
            "/name",
            "unique",
        ),
        (
            json!({"name": "boat", "fields": [{"name": "hull", "type": "steel"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/fields/0",
            "invalid_schema",
        ),
        (
            json!({"name": "boat", "fields": [{"name": "hull", "type": "data"}, {"name": "port", "type": "link", "target": "harbour"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/fields/1",
            "invalid_schema",
        ),
        (
            json!({"name": "Boat", "fields": [{"name": "x", "type": "int"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
            "invalid_schema",
        ),
        (
            json!([1, 2]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
            "invalid_schema",
        ),
    ] {
        let (got, problem) = api
            .post("/api/v1/customize/entities", definition.clone())
            .await;
        assert_eq!(
            (
                got,
                problem["errors"][0]["pointer"].as_str(),
                problem["errors"][0]["code"].as_str()
            ),
            (status, Some(pointer), Some(code)),
            "{definition}: {problem}"
        );
    }
    // Refused definitions recorded nothing. (Another tenant's namespace is its own: see
    // tests/runtime_entities.rs.)
    assert_eq!(recorded_migrations(&api.url, "tenant:acme").await.len(), 1);
    assert!(
        recorded_migrations(&api.url, "tenant:globex")
            .await
            .is_empty()
    );
}

pub(crate) async fn runtime_entities_after_restart(api: &Api) {
    let (status, page) = api.get("/api/v1/resources/vehicle").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"][0]["plate"], "AB-123", "{page}");
    let (status, _) = api
        .call(
            "GET",
            "/api/v1/resources/vehicle",
            Some("globex"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
