//! Creating, saving, viewing and acting on (submit, cancel, amend, delete) one record.

use super::*;

/// `POST /app/e/{entity}/new`: creates the record through the API.
pub async fn create(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(entity): Path<String>,
    body: Bytes,
) -> Response {
    let (desk, session, submitted) = try_page!(request.open_form(&state, &body).await);
    let (repository, schema, custom) = try_page!(schema_of(&state, &desk, &session, &entity).await);
    save_or_show(
        &state,
        &desk,
        &session,
        &repository,
        &entity,
        &schema,
        &custom,
        None,
        &submitted,
    )
    .await
}

/// `POST /app/e/{entity}/{id}`: saves a draft through the API.
pub async fn save(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path((entity, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (desk, session, submitted) = try_page!(request.open_form(&state, &body).await);
    let (repository, schema, custom) = try_page!(schema_of(&state, &desk, &session, &entity).await);
    let record = try_page!(fetch_record(&state, &desk, &session, &entity, &id).await);
    save_or_show(
        &state,
        &desk,
        &session,
        &repository,
        &entity,
        &schema,
        &custom,
        Some(&record),
        &submitted,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn save_or_show(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    repository: &Repository,
    entity: &str,
    schema: &EntitySchema,
    custom: &[FieldDef],
    record: Option<&Map<String, Value>>,
    submitted: &FormData,
) -> Response {
    let rows = match submitted_rows(schema, submitted) {
        Ok(rows) => rows,
        Err(message) => {
            return session.message(
                state,
                desk,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not saved",
                &message,
            );
        }
    };
    let show_again =
        |errors: BTreeMap<String, String>, problem: Option<String>, status: StatusCode| FormPage {
            entity,
            schema,
            custom,
            record,
            source: Source::Form(submitted, &rows),
            errors,
            problem,
            notice: None,
            status,
        };
    if is_row_edit(submitted) {
        return render_form(
            state,
            desk,
            session,
            repository,
            show_again(BTreeMap::new(), None, StatusCode::OK),
        )
        .await;
    }
    let (body, errors) = body_from_form(
        state,
        session,
        repository,
        schema,
        custom,
        submitted,
        &rows,
        record.is_none(),
    )
    .await;
    if !errors.is_empty() {
        let page = show_again(
            errors,
            Some("Some fields need attention.".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        return render_form(state, desk, session, repository, page).await;
    }
    let answer = match record.and_then(|r| r.get("id")).and_then(Value::as_str) {
        None => {
            session
                .call(
                    state,
                    Method::POST,
                    &format!("/api/v1/resources/{entity}"),
                    Some(&Value::Object(body)),
                )
                .await
        }
        Some(id) => {
            let mut extra = Vec::new();
            if let Some(version) = submitted.get("_version").filter(|v| !v.is_empty()) {
                extra.push(("if-match", format!("\"{version}\"")));
            }
            session
                .call_with(
                    state,
                    Method::PATCH,
                    &format!("/api/v1/resources/{entity}/{}", url_encode(id)),
                    Some(&Value::Object(body)),
                    &extra,
                )
                .await
        }
    };
    if answer.ok() {
        let id = answer.body.get("id").and_then(Value::as_str).unwrap_or("");
        return session.redirect(&format!("/app/e/{entity}/{}?saved=1", url_encode(id)));
    }
    let errors: BTreeMap<String, String> = answer.field_errors().into_iter().collect();
    let page = show_again(errors, Some(answer.message()), answer.status);
    render_form(state, desk, session, repository, page).await
}

/// `GET /app/e/{entity}/{id}`.
pub async fn view(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path((entity, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    let (repository, schema, custom) = try_page!(schema_of(&state, &desk, &session, &entity).await);
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let notice = match query.get("saved").or(query.get("done")) {
        Some("1") => Some("Saved.".to_owned()),
        Some("submit") => Some("Submitted.".to_owned()),
        Some("cancel") => Some("Cancelled.".to_owned()),
        Some("amend") => {
            Some("This is the amended draft; the cancelled original is kept.".to_owned())
        }
        _ => None,
    };
    show_record(
        &state,
        &desk,
        &session,
        &repository,
        &entity,
        &schema,
        &custom,
        &id,
        None,
        BTreeMap::new(),
        notice,
        StatusCode::OK,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn show_record(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    repository: &Repository,
    entity: &str,
    schema: &EntitySchema,
    custom: &[FieldDef],
    id: &str,
    problem: Option<String>,
    errors: BTreeMap<String, String>,
    notice: Option<String>,
    status: StatusCode,
) -> Response {
    let record = try_page!(fetch_record(state, desk, session, entity, id).await);
    render_form(
        state,
        desk,
        session,
        repository,
        FormPage {
            entity,
            schema,
            custom,
            record: Some(&record),
            source: Source::Record(&record),
            errors,
            problem,
            notice,
            status,
        },
    )
    .await
}

/// `POST /app/e/{entity}/{id}/do/{action}`: submit, cancel, amend or delete.
pub async fn act(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path((entity, id, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let (desk, session, _) = try_page!(request.open_form(&state, &body).await);
    let (repository, schema, custom) = try_page!(schema_of(&state, &desk, &session, &entity).await);
    let path = format!("/api/v1/resources/{entity}/{}", url_encode(&id));
    let answer = match action.as_str() {
        "submit" | "cancel" | "amend" => {
            session
                .call(&state, Method::POST, &format!("{path}/{action}"), None)
                .await
        }
        "delete" => session.call(&state, Method::DELETE, &path, None).await,
        _ => {
            return session.message(
                &state,
                &desk,
                StatusCode::NOT_FOUND,
                "Unknown action",
                "Use submit, cancel, amend or delete.",
            );
        }
    };
    if !answer.ok() {
        let status = answer.status;
        let errors = answer.field_errors().into_iter().collect();
        return show_record(
            &state,
            &desk,
            &session,
            &repository,
            &entity,
            &schema,
            &custom,
            &id,
            Some(answer.message()),
            errors,
            None,
            status,
        )
        .await;
    }
    match action.as_str() {
        "delete" => session.redirect(&format!("/app/e/{entity}")),
        "amend" => {
            let new_id = answer.body.get("id").and_then(Value::as_str).unwrap_or(&id);
            session.redirect(&format!(
                "/app/e/{entity}/{}?done=amend",
                url_encode(new_id)
            ))
        }
        other => session.redirect(&format!("/app/e/{entity}/{}?done={other}", url_encode(&id))),
    }
}

// ---------------------------------------------------------------------------------------
// History, search, audit
