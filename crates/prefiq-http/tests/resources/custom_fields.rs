//! Tenant custom fields, and the schema endpoint that shows them.

use super::*;

/// 500 custom fields on one entity: defined at run time, validated, stored, filtered,
/// sorted, merged on update, and visible only in that tenant's OpenAPI.
pub(crate) async fn custom_fields(api: &Api) {
    let kinds = |i: usize| match i % 4 {
        0 => json!({"name": format!("cf_{i:03}"), "type": "int", "indexed": i == 0}),
        1 => json!({"name": format!("cf_{i:03}"), "type": "data", "max_length": 10}),
        2 => json!({"name": format!("cf_{i:03}"), "type": "select", "options": ["A", "B", "C"]}),
        _ => json!({"name": format!("cf_{i:03}"), "type": "decimal", "scale": 2}),
    };
    for i in 0..500 {
        let (status, body) = api.post("/api/v1/customize/todo/fields", kinds(i)).await;
        assert_eq!(status, StatusCode::CREATED, "{} field {i}: {body}", api.url);
    }
    let (status, problem) = api.post("/api/v1/customize/todo/fields", kinds(7)).await;
    assert_eq!(
        (status, problem["errors"][0]["code"].as_str()),
        (StatusCode::CONFLICT, Some("unique"))
    );
    let (status, problem) = api
        .post(
            "/api/v1/customize/todo/fields",
            json!({"name": "status", "type": "data"}),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_definition"))
    );
    let (status, _) = api
        .post(
            "/api/v1/customize/todo/fields",
            json!({"name": "cf_x", "type": "colour"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, listed) = api.get("/api/v1/customize/todo/fields").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 500);

    let value = |i: usize, n: i64| match i % 4 {
        0 => json!(n * 1000 + i as i64),
        1 => json!(format!("v{i}")),
        2 => json!(["A", "B", "C"][i % 3]),
        _ => json!(format!("{i}.5")),
    };
    let mut ids = Vec::new();
    for n in 0..3 {
        let custom: serde_json::Map<String, Value> = (0..500)
            .map(|i| (format!("cf_{i:03}"), value(i, n)))
            .collect();
        let (status, todo) = api
            .post(
                "/api/v1/resources/todo",
                json!({"description": format!("custom {n}"), "custom": custom}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{todo}");
        assert_eq!(todo["custom"].as_object().unwrap().len(), 500);
        ids.push(todo["id"].as_str().unwrap().to_owned());
    }
    let (_, read) = api.get(&format!("/api/v1/resources/todo/{}", ids[1])).await;
    assert_eq!(read["custom"].as_object().unwrap().len(), 500);
    assert_eq!(
        (
            &read["custom"]["cf_003"],
            &read["custom"]["cf_004"],
            &read["custom"]["cf_001"]
        ),
        (&json!("3.50"), &json!(1004), &json!("v1"))
    );

    // Filter and sort on custom fields.
    let (status, page) = api
        .get(&format!(
            "/api/v1/resources/todo?filters={}",
            encode(r#"[["custom.cf_004", ">=", 1004]]"#)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let (_, page) = api
        .get(&format!(
            "/api/v1/resources/todo?filters={}",
            encode(r#"[["custom.cf_003", "=", "3.5"]]"#)
        ))
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    let (status, page) = api
        .get(&format!(
            "/api/v1/resources/todo?limit=2&order_by={}&filters={}",
            encode("custom.cf_000 desc"),
            encode(r#"[["custom.cf_000", "is", "set"]]"#)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"][0]["id"], ids[2].as_str());
    let (_, next) = api
        .get(&format!(
            "/api/v1/resources/todo?limit=2&order_by={}&filters={}&cursor={}",
            encode("custom.cf_000 desc"),
            encode(r#"[["custom.cf_000", "is", "set"]]"#),
            page["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(next["data"].as_array().unwrap().len(), 1);
    assert_eq!(next["data"][0]["id"], ids[0].as_str());

    // PATCH merges custom values; invalid ones are pointed at.
    let path = format!("/api/v1/resources/todo/{}", ids[0]);
    let (status, updated) = api
        .call(
            "PATCH",
            &path,
            Some("acme"),
            Some(json!({"custom": {"cf_001": "changed"}})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (&updated["custom"]["cf_001"], &updated["custom"]["cf_004"]),
        (&json!("changed"), &json!(4))
    );
    let (status, problem) = api
        .call(
            "PATCH",
            &path,
            Some("acme"),
            Some(json!({"custom": {"cf_001": "far too long", "nope": 1, "cf_002": "Z"}})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["/custom/nope", "/custom/cf_001", "/custom/cf_002"]
    );

    // A required custom field on another entity is enforced on create.
    let (status, _) = api.post("/api/v1/customize/customer/fields", json!({"name": "cf_region", "type": "select", "options": ["EU", "US"], "required": true})).await;
    assert_eq!(status, StatusCode::CREATED);
    check_invalid(
        api,
        "customer",
        json!({"title": "Initech", "code": "C9"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/custom/cf_region", "missing_required")],
    )
    .await;

    // The tenant's OpenAPI shows its custom fields; another tenant's does not.
    let (_, mine) = api.get("/api/v1/openapi.json").await;
    assert_eq!(
        mine["components"]["schemas"]["todo"]["properties"]["custom"]["properties"]
            .as_object()
            .unwrap()
            .len(),
        500
    );
    assert_eq!(
        mine["components"]["schemas"]["customer_create"]["properties"]["custom"]["required"],
        json!(["cf_region"])
    );
    let (_, theirs) = api
        .call("GET", "/api/v1/openapi.json", Some("globex"), None, None)
        .await;
    assert_eq!(
        theirs["components"]["schemas"]["todo"]["properties"]["custom"]["properties"],
        json!({})
    );
    schema_lists_custom_fields(api).await;
    let (_, other) = api
        .call(
            "GET",
            "/api/v1/customize/todo/fields",
            Some("globex"),
            None,
            None,
        )
        .await;
    assert_eq!(other["data"], json!([]));

    // Removing a definition hides its values.
    assert_eq!(
        api.call(
            "DELETE",
            "/api/v1/customize/todo/fields/cf_499",
            Some("acme"),
            None,
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (_, read) = api.get(&path).await;
    assert_eq!(read["custom"].as_object().unwrap().len(), 499);
}

/// A lifecycle action on a document in the wrong state says so in plain English (the
/// regression: "only a draft documents can be submited").
pub(crate) async fn lifecycle_refusals_read_as_sentences(api: &Api) {
    let (_, customer) = api
        .post(
            "/api/v1/resources/customer",
            json!({"title": "Initrode", "code": "C7"}),
        )
        .await;
    let (status, invoice) = api
        .post(
            "/api/v1/resources/invoice",
            json!({"customer": customer["id"], "total": {"amount": "1", "currency": "EUR"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");
    let path = format!(
        "/api/v1/resources/invoice/{}",
        invoice["id"].as_str().unwrap()
    );
    for (action, expected) in [
        ("cancel", "only submitted documents can be cancelled"),
        ("amend", "only cancelled documents can be amended"),
        ("submit", ""),
        ("submit", "only draft documents can be submitted"),
    ] {
        let (status, body) = api.post(&format!("{path}/{action}"), json!({})).await;
        if expected.is_empty() {
            assert_eq!(status, StatusCode::OK, "{action}: {body}");
            continue;
        }
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{action}: {body}");
        assert_eq!(body["detail"], expected, "{action}");
        assert_eq!(body["errors"][0]["code"], "wrong_status", "{action}");
    }
}

/// `/api/v1/schema/{entity}` describes the tenant's custom fields in `custom`, which
/// create and PATCH write, so it is not read-only (the regression: it left them out and
/// marked `custom` read-only).
pub(crate) async fn schema_lists_custom_fields(api: &Api) {
    for mode in ["read", "create", "update"] {
        let (status, schema) = api
            .get(&format!("/api/v1/schema/customer?mode={mode}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{mode}");
        let custom = &schema["properties"]["custom"];
        assert!(custom.get("readOnly").is_none(), "{mode}: {custom}");
        insta::assert_json_snapshot!(format!("schema_custom_fields_{mode}"), custom);
        // A create must send `custom`, as the tenant has a required custom field.
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            required.contains(&json!("custom")),
            mode != "update",
            "{mode}: {required:?}"
        );
    }
    // Another tenant's schema has none of them, and accepts no custom value but null or {}.
    let (_, theirs) = api
        .call(
            "GET",
            "/api/v1/schema/customer?mode=update",
            Some("globex"),
            None,
            None,
        )
        .await;
    assert_eq!(theirs["properties"]["custom"]["properties"], json!({}));
    assert_eq!(
        theirs["properties"]["custom"]["additionalProperties"],
        json!(false)
    );
}
