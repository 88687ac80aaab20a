//! A record's history, link suggestions and the audit log's status.

use super::*;

/// `GET /app/e/{entity}/{id}/history`: the record's audit records with field diffs.
pub async fn history(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path((entity, id)): Path<(String, String)>,
) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    let (_, schema, _) = try_page!(schema_of(&state, &desk, &session, &entity).await);
    let record = try_page!(fetch_record(&state, &desk, &session, &entity, &id).await);
    let answer = session
        .call(
            &state,
            Method::GET,
            &format!(
                "/api/v1/audit?entity={entity}&id={}&limit={HISTORY_LIMIT}",
                url_encode(&id)
            ),
            None,
        )
        .await;
    let refused = (!answer.ok()).then(|| answer.message());
    let entries: Vec<Value> = answer
        .body
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|entry| {
            let changes: Vec<Value> = entry
                .get("changes")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(field, change)| {
                    let label = schema
                        .field(field)
                        .map_or(field.as_str(), |f| f.label.as_str());
                    json!({
                        "field": label,
                        "before": change.get("before").map(form::display),
                        "after": change.get("after").map(form::display),
                    })
                })
                .collect();
            json!({
                "seq": entry.get("seq"),
                "time": entry.get("time"),
                "actor": entry.get("actor"),
                "action": entry.get("action"),
                "changes": changes,
            })
        })
        .collect();
    let name = record
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(&id)
        .to_owned();
    session.render(
        &state,
        &desk,
        StatusCode::OK,
        "history.html",
        json!({
            "title": format!("History of {name}"),
            "entity": entity,
            "label": schema.label,
            "id": id,
            "name": name,
            "entries": entries,
            "refused": refused,
        }),
    )
}

/// `GET /app/search/{entity}?q=…`: up to 20 rows whose title contains `q`, as JSON
/// `[{"id", "title"}]`, for a link input's suggestions.
pub async fn search(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(entity): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let desk = try_page!(desk(&state));
    let Ok(session) = request.session(&state, &desk).await else {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!([]))).into_response();
    };
    let Ok(repository) = state.services.get::<Repository>("cortex desk") else {
        return axum::Json(json!([])).into_response();
    };
    let registry = repository.registry().visible_to(Some(session.tenant()));
    let Some(schema) = registry.get(&entity) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!([]))).into_response();
    };
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let text: String = query
        .get("q")
        .unwrap_or("")
        .trim()
        .chars()
        .take(140)
        .collect();
    let title = title_field(schema);
    let mut filters = vec![json!([title, "like", format!("%{text}%")])];
    // Suggestions stay in the form's company when the target has one.
    if let Some(company) = query.get("company").filter(|c| !c.is_empty())
        && schema.field("company").is_some()
    {
        filters.push(json!(["company", "=", company]));
    }
    let uri = format!(
        "/api/v1/resources/{entity}?limit=20&order_by={}&fields={}&filters={}",
        url_encode(&format!("{title} asc")),
        url_encode(&json!(["id", title]).to_string()),
        url_encode(&Value::Array(filters).to_string())
    );
    let answer = session.call(&state, Method::GET, &uri, None).await;
    let found: Vec<Value> = answer
        .body
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|row| json!({ "id": row.get("id"), "title": row.get(&title) }))
        .collect();
    let mut response = axum::Json(found).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    session.finish(response)
}

/// `GET /app/audit`: the audit log's verification status and its latest records.
pub async fn audit_status(State(state): State<HttpState>, request: DeskRequest) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    let verify = session
        .call(&state, Method::GET, "/api/v1/audit/verify", None)
        .await;
    if verify.status == StatusCode::FORBIDDEN || verify.status == StatusCode::UNAUTHORIZED {
        return session.message(
            &state,
            &desk,
            verify.status,
            "Not allowed",
            &verify.message(),
        );
    }
    let checkpoint = session
        .call(&state, Method::GET, "/api/v1/audit/checkpoint", None)
        .await;
    let recent = session
        .call(&state, Method::GET, "/api/v1/audit?limit=50", None)
        .await;
    let entries: Vec<Value> = recent
        .body
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            json!({
                "seq": e.get("seq"),
                "time": e.get("time"),
                "actor": e.get("actor"),
                "action": e.get("action"),
                "entity": e.get("entity"),
                "id": e.get("id"),
                "href": match (e.get("entity").and_then(Value::as_str), e.get("id").and_then(Value::as_str)) {
                    (Some(entity), Some(id)) => Some(format!("/app/e/{entity}/{}/history", url_encode(id))),
                    _ => None,
                },
            })
        })
        .collect();
    session.render(
        &state,
        &desk,
        StatusCode::OK,
        "audit.html",
        json!({
            "title": "Audit log",
            "verified": verify.ok(),
            "report": verify.body,
            "problem": (!verify.ok()).then(|| verify.message()),
            "checkpoint": checkpoint.ok().then_some(checkpoint.body),
            "entries": entries,
        }),
    )
}
