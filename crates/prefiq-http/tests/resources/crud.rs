//! Create, read, update and delete, and how invalid input and errors are answered.

use super::*;

pub(crate) async fn crud(api: &Api) {
    let (status, todo) = api.post("/api/v1/resources/todo", json!({"description": "  Write the contract  ", "priority": "High", "date": "2026-12-01"})).await;
    assert_eq!(status, StatusCode::CREATED, "{todo}");
    assert_eq!(
        todo["description"], "Write the contract",
        "the before_validate hook trimmed it"
    );
    assert_eq!(todo["status"], "Open", "defaulted");
    assert_eq!(todo["version"], 1);
    let id = todo["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/resources/todo/{id}");
    let (status, read) = api.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, todo, "what create returns is what get returns");

    // Another tenant sees nothing of it.
    let (status, _) = api.call("GET", &path, Some("globex"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = api
        .call("GET", "/api/v1/resources/todo", Some("globex"), None, None)
        .await;
    assert_eq!(page["data"], json!([]));
    let (status, _) = api.call("GET", &path, None, None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no tenant, no data");

    // PATCH with a stale version fails its precondition; with the current one it applies.
    let (status, problem) = api
        .call(
            "PATCH",
            &path,
            Some("acme"),
            Some(json!({"status": "Closed"})),
            Some("\"7\""),
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{problem}");
    let (status, updated) = api
        .call(
            "PATCH",
            &path,
            Some("acme"),
            Some(json!({"status": "Closed"})),
            Some("\"1\""),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (
            updated["status"].as_str(),
            updated["version"].as_i64(),
            updated["priority"].as_str()
        ),
        (Some("Closed"), Some(2), Some("High"))
    );
    let (_, reread) = api.get(&path).await;
    assert_eq!(reread, updated);
    let (status, problem) = api
        .call(
            "PATCH",
            &path,
            Some("acme"),
            Some(json!({"status": "Done"})),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["pointer"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/status"))
    );

    // A before-hook's refusal reaches the caller and writes nothing.
    check_invalid(
        api,
        "todo",
        json!({"description": "a forbidden thing"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("", "rejected")],
    )
    .await;

    // DELETE is soft: gone from get and list.
    let (status, _) = api.call("DELETE", &path, Some("acme"), None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        api.call("DELETE", &path, Some("acme"), None, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(
        api.journal
            .lock()
            .unwrap()
            .contains(&"todo after_insert acme".to_owned())
    );
    assert_eq!(
        api.get("/api/v1/resources/nothing").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/api/v1/resources/invoice_item").await.0,
        StatusCode::NOT_FOUND,
        "child entities are reached through their parent"
    );
}

/// Error bodies are part of the contract: snapshot them (the same on every backend).
pub(crate) async fn error_bodies(api: &Api) {
    let redact = |mut v: Value| {
        v["trace_id"] = json!("[trace_id]");
        v
    };
    let (_, body) = api
        .post(
            "/api/v1/resources/todo",
            json!({"colour": "red", "status": "Done", "date": "2026-02-30", "estimate": 1.5}),
        )
        .await;
    insta::assert_json_snapshot!("invalid_todo", redact(body));
    let (_, body) = api
        .post(
            "/api/v1/resources/customer",
            json!({"title": "Twin", "code": "C1"}),
        )
        .await;
    insta::assert_json_snapshot!("unique_violation", redact(body));
    let (_, body) = api
        .call("GET", "/api/v1/resources/todo", None, None, None)
        .await;
    insta::assert_json_snapshot!("no_tenant", redact(body));
    let (_, body) = api
        .get("/api/v1/resources/todo/01900000-0000-7000-8000-000000000000")
        .await;
    insta::assert_json_snapshot!("not_found", redact(body));
}

pub(crate) async fn invalid_input(api: &Api) {
    let (_, customer) = api
        .post(
            "/api/v1/resources/customer",
            json!({"title": "Acme", "code": "C1"}),
        )
        .await;
    let customer_id = customer["id"].as_str().unwrap().to_owned();
    check_invalid(
        api,
        "todo",
        json!({"description": "x", "colour": "red"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/colour", "unknown_field")],
    )
    .await;
    check_invalid(
        api,
        "todo",
        json!({"description": 5}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/description", "wrong_type")],
    )
    .await;
    check_invalid(
        api,
        "todo",
        json!({"estimate": "five"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[
            ("/description", "missing_required"),
            ("/estimate", "wrong_type"),
        ],
    )
    .await;
    check_invalid(
        api,
        "customer",
        json!({"title": "x".repeat(21)}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/title", "too_long")],
    )
    .await;
    check_invalid(
        api,
        "todo",
        json!({"description": "x", "status": "Done"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/status", "invalid_option")],
    )
    .await;
    check_invalid(
        api,
        "todo",
        json!({"description": "x", "allocated_to": "nobody"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/allocated_to", "invalid_email")],
    )
    .await;
    check_invalid(
        api,
        "invoice",
        json!({"customer": "01900000-0000-7000-8000-000000000000"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/customer", "dangling_link")],
    )
    .await;
    check_invalid(
        api,
        "customer",
        json!({"title": "Other", "code": "C1"}),
        StatusCode::CONFLICT,
        &[("/code", "unique")],
    )
    .await;
    check_invalid(
        api,
        "invoice",
        json!({"customer": customer_id, "items": [{"item": "ok", "qty": 1}, {"item": "bad", "qty": "two"}]}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/items/1/qty", "wrong_type")],
    )
    .await;
    check_invalid(
        api,
        "invoice",
        json!({"customer": customer_id, "total": {"amount": "1.234", "currency": "EUR"}}),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("/total", "too_precise")],
    )
    .await;
    check_invalid(
        api,
        "todo",
        json!([1, 2]),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[("", "wrong_type")],
    )
    .await;
    let (status, problem) = api
        .call("POST", "/api/v1/resources/todo", Some("acme"), None, None)
        .await;
    assert_eq!(
        (status, problem["errors"][0]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let (status, problem) = api
        .get(&format!(
            "/api/v1/resources/todo?filters={}",
            encode(r#"[["colour","=","red"]]"#)
        ))
        .await;
    assert_eq!(
        (status, problem["errors"][0]["pointer"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/filters/0/0"))
    );
    let (status, problem) = api
        .get(&format!(
            "/api/v1/resources/todo?filters={}",
            encode(r#"[["status","~","Open"]]"#)
        ))
        .await;
    assert_eq!(
        (status, problem["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_operator"))
    );
    assert_eq!(
        api.get("/api/v1/resources/todo?limit=100000").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Regression: an empty `limit=` was taken as no limit (found by schemathesis).
    let (status, problem) = api.get("/api/v1/resources/todo?limit=").await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(problem["errors"][0]["pointer"], "/limit");
    // `total=true` counts the selected rows; anything but true or false is refused.
    let (status, problem) = api.get("/api/v1/resources/todo?total=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["errors"][0]["pointer"], "/total");
    let (status, page) = api.get("/api/v1/resources/todo?total=true&limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page["total"].as_u64().unwrap() >= page["data"].as_array().unwrap().len() as u64);
    let (_, page) = api
        .get(&format!(
            "/api/v1/resources/todo?total=true&filters={}",
            encode(r#"[["description","=","no such row"]]"#)
        ))
        .await;
    assert_eq!(page["total"], 0);
    let (_, page) = api.get("/api/v1/resources/todo").await;
    assert!(page.get("total").is_none(), "counted only when asked");
    assert_eq!(
        api.get("/api/v1/resources/todo?cursor=zz").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Regression: a cursor with non-ASCII characters made the server panic (found by schemathesis).
    assert_eq!(
        api.get("/api/v1/resources/todo?cursor=-%C2%B0%0D").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}
