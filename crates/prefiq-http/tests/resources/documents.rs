//! Lists (filters, order, keyset pages) and submittable documents.

use super::*;

pub(crate) async fn lists(api: &Api) {
    // 23 todos with estimates 0..23, every third without an estimate.
    for i in 0..23 {
        let estimate = if i % 3 == 0 { Value::Null } else { json!(i) };
        let priority = ["Low", "Medium", "High"][i % 3];
        let (status, body) = api.post("/api/v1/resources/todo", json!({"description": format!("task {i:02}"), "estimate": estimate, "priority": priority})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let list = |filters: &str| {
        format!(
            "/api/v1/resources/todo?limit=500&filters={}",
            encode(filters)
        )
    };
    let count = |page: &Value| page["data"].as_array().map_or(0, Vec::len);
    for (filters, expected) in [
        (r#"[["priority","=","High"]]"#, 7),
        (r#"[["priority","!=","High"]]"#, 16),
        (r#"[["estimate",">",10]]"#, 8),
        (r#"[["estimate","between",[4,8]]]"#, 4),
        (r#"[["estimate","is","not set"]]"#, 8),
        (
            r#"[["estimate","is","set"],["priority","in",["Medium","High"]]]"#,
            15,
        ),
        (r#"[["description","like","TASK 1%"]]"#, 10),
        (r#"[["description","not like","%1%"]]"#, 11),
        (r#"[["priority","in",[]]]"#, 0),
        (r#"[["priority","not in",["Low"]]]"#, 15),
    ] {
        let (status, page) = api.get(&list(filters)).await;
        assert_eq!(
            (status, count(&page)),
            (StatusCode::OK, expected),
            "{} {filters}: {page}",
            api.url
        );
    }
    // Keyset pages over a nullable column, both directions: every row exactly once, in order.
    for order in [
        "estimate asc",
        "estimate desc",
        "description asc",
        "modified_at desc",
    ] {
        let mut seen: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!(
                "/api/v1/resources/todo?limit=4&order_by={}&fields={}",
                encode(order),
                encode(r#"["estimate","description"]"#)
            );
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = api.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            seen.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 23, "{} {order}", api.url);
        let mut ids: Vec<&str> = seen.iter().map(|r| r["id"].as_str().unwrap()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 23, "a row came twice ({order})");
        assert_eq!(
            seen[0].as_object().unwrap().len(),
            3,
            "fields limits the properties: {}",
            seen[0]
        );
        if order == "estimate asc" {
            let estimates: Vec<Value> = seen.iter().map(|r| r["estimate"].clone()).collect();
            assert_eq!(estimates[0], json!(1));
            assert!(
                estimates[15..].iter().all(Value::is_null),
                "nulls last ascending: {estimates:?}"
            );
        }
        if order == "estimate desc" {
            assert!(
                seen[..8].iter().all(|r| r["estimate"].is_null()),
                "nulls first descending"
            );
            assert_eq!(seen[8]["estimate"], json!(22));
        }
    }
}

pub(crate) async fn documents(api: &Api) {
    let (_, customer) = api
        .post(
            "/api/v1/resources/customer",
            json!({"title": "Globex", "code": "C2"}),
        )
        .await;
    let body = json!({
        "customer": customer["id"],
        "total": {"amount": "1234.5", "currency": "EUR"},
        "rate": "0.125",
        "meta": {"source": "test", "tags": [1, 2]},
        "items": [{"item": "Widget", "qty": 2}, {"item": "Gadget", "qty": 1}]
    });
    let (status, invoice) = api.post("/api/v1/resources/invoice", body).await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");
    let year = &invoice["created_at"].as_str().unwrap()[..4];
    assert_eq!(invoice["name"], format!("INV-{year}-00001"));
    assert_eq!(
        invoice["total"],
        json!({"amount": "1234.50", "currency": "EUR"})
    );
    assert_eq!(invoice["rate"], "0.125");
    assert_eq!(invoice["paid"], false);
    let id = invoice["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/resources/invoice/{id}");
    let (_, read) = api.get(&path).await;
    assert_eq!(read["meta"], json!({"source": "test", "tags": [1, 2]}));
    let items: Vec<(String, i64, i64)> = read["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["item"].as_str().unwrap().to_owned(),
                r["qty"].as_i64().unwrap(),
                r["idx"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        items,
        [("Widget".to_owned(), 2, 1), ("Gadget".to_owned(), 1, 2)]
    );

    // Child rows are replaced with their parent, in one write.
    let (status, updated) = api
        .call(
            "PATCH",
            &path,
            Some("acme"),
            Some(json!({"items": [{"item": "Gizmo", "qty": 5}]})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let (_, read) = api.get(&path).await;
    assert_eq!(read["items"].as_array().unwrap().len(), 1);
    assert_eq!(read["items"][0]["item"], "Gizmo");

    let (status, submitted) = api.post(&format!("{path}/submit"), json!({})).await;
    assert_eq!(
        (status, submitted["docstatus"].as_i64()),
        (StatusCode::OK, Some(1)),
        "{submitted}"
    );
    let (status, problem) = api
        .call(
            "PATCH",
            &path,
            Some("acme"),
            Some(json!({"rate": "1"})),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("document_submitted"))
    );
    assert_eq!(
        api.call("DELETE", &path, Some("acme"), None, None).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (status, cancelled) = api.post(&format!("{path}/cancel"), json!({})).await;
    assert_eq!(
        (status, cancelled["docstatus"].as_i64()),
        (StatusCode::OK, Some(2))
    );
    let (status, amended) = api.post(&format!("{path}/amend"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{amended}");
    assert_eq!(amended["name"], format!("INV-{year}-00001-1"));
    assert_eq!(amended["amended_from"], id.as_str());
    assert_eq!(amended["docstatus"], 0);
    assert_eq!(amended["items"][0]["item"], "Gizmo");
    let (_, second) = api
        .post(
            "/api/v1/resources/invoice",
            json!({"customer": customer["id"]}),
        )
        .await;
    assert_eq!(second["name"], format!("INV-{year}-00002"));
    assert_eq!(
        api.post("/api/v1/resources/todo/x/submit", json!({}))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}
