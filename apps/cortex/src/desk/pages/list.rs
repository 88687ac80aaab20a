//! The generated list of every entity, and its bulk actions.

use super::*;

/// The fields a list shows: up to five scalar fields.
pub(super) fn list_columns(schema: &EntitySchema) -> Vec<&FieldDef> {
    schema
        .fields
        .iter()
        .filter(|f| !matches!(f.kind, FieldKind::Table { .. } | FieldKind::Json) && !f.pii)
        .take(LIST_COLUMNS)
        .collect()
}

/// `GET /app/e/{entity}`: a page of rows with filters, sort, count and paging.
pub async fn list(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(entity): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    render_list(&state, &desk, &session, &entity, &query, None).await
}

pub(super) async fn render_list(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    entity: &str,
    query: &FormData,
    notice: Option<Value>,
) -> Response {
    let (repository, schema, _) = try_page!(schema_of(state, desk, session, entity).await);
    let columns = list_columns(&schema);
    let title = title_field(&schema);
    // Filters: text fields match a part, the others the whole value.
    let mut filters = Vec::new();
    let mut filter_views = Vec::new();
    let mut kept = Vec::new();
    for field in &columns {
        let value = query.get(&format!("f.{}", field.name)).unwrap_or("").trim();
        if !value.is_empty() {
            kept.push(format!("f.{}={}", field.name, url_encode(value)));
            let condition = match &field.kind {
                FieldKind::Data | FieldKind::Email => {
                    json!([field.name, "like", format!("%{value}%")])
                }
                FieldKind::Bool => json!([field.name, "=", value == "true"]),
                FieldKind::Int => match value.parse::<i64>() {
                    Ok(n) => json!([field.name, "=", n]),
                    Err(_) => json!([field.name, "=", value]),
                },
                _ => json!([field.name, "=", value]),
            };
            filters.push(condition);
        }
        let mut view = json!({
            "name": field.name,
            "input": format!("f.{}", field.name),
            "dom_id": format!("filter-{}", field.name),
            "label": field.label,
            "value": value,
            "kind": match &field.kind {
                FieldKind::Select { .. } => "select",
                FieldKind::Bool => "bool",
                FieldKind::Date => "date",
                _ => "text",
            },
        });
        if let FieldKind::Select { options } = &field.kind {
            view["options"] = json!(options);
        }
        filter_views.push(view);
    }
    let search = query.get("q").unwrap_or("").trim();
    if !search.is_empty() {
        kept.push(format!("q={}", url_encode(search)));
        filters.push(json!([title, "like", format!("%{search}%")]));
    }
    let sort = query
        .get("sort")
        .filter(|s| *s == "name" || *s == "modified_at" || columns.iter().any(|c| c.name == *s))
        .unwrap_or("modified_at");
    let dir = if query.get("dir") == Some("asc") {
        "asc"
    } else {
        "desc"
    };
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<u32>().ok())
        .filter(|l| (1..=500).contains(l))
        .unwrap_or(PAGE_ROWS);
    let mut uri = format!(
        "/api/v1/resources/{entity}?total=true&limit={limit}&order_by={}",
        url_encode(&format!("{sort} {dir}"))
    );
    if !filters.is_empty() {
        uri.push_str(&format!(
            "&filters={}",
            url_encode(&Value::Array(filters).to_string())
        ));
    }
    let cursor = query.get("cursor").filter(|c| !c.is_empty());
    if let Some(cursor) = cursor {
        uri.push_str(&format!("&cursor={}", url_encode(cursor)));
    }
    let answer = session.call(state, Method::GET, &uri, None).await;
    if !answer.ok() {
        return session.message(state, desk, answer.status, "Not shown", &answer.message());
    }
    let rows = answer
        .body
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in &rows {
        for field in &columns {
            if let (FieldKind::Link { target }, Some(id)) =
                (&field.kind, row.get(&field.name).and_then(Value::as_str))
            {
                wanted
                    .entry(target.clone())
                    .or_default()
                    .push(id.to_owned());
            }
        }
    }
    let titles = link_titles(state, session, &repository, wanted).await;
    let row_views: Vec<Value> = rows
        .iter()
        .map(|row| {
            let id = row.get("id").and_then(Value::as_str).unwrap_or("");
            let cells: Vec<Value> = columns
                .iter()
                .map(|field| {
                    let value = row.get(&field.name).unwrap_or(&Value::Null);
                    let text = match (&field.kind, value.as_str()) {
                        (FieldKind::Link { target }, Some(linked)) => titles
                            .get(&(target.clone(), linked.to_owned()))
                            .cloned()
                            .unwrap_or_else(|| linked.to_owned()),
                        // A long text is cut in the list; the form shows all of it.
                        (FieldKind::Text, _) => {
                            let text = form::display(value);
                            match text.char_indices().nth(LIST_TEXT_CHARS) {
                                Some((at, _)) => format!("{}…", &text[..at]),
                                None => text,
                            }
                        }
                        _ => form::display(value),
                    };
                    json!({ "text": text, "numeric": matches!(field.kind, FieldKind::Int | FieldKind::Decimal { .. } | FieldKind::Money) })
                })
                .collect();
            json!({
                "id": id,
                "name": row.get("name").and_then(Value::as_str).unwrap_or(id),
                "href": format!("/app/e/{entity}/{}", url_encode(id)),
                "status": status_label(&schema, row.get("docstatus")),
                "cells": cells,
            })
        })
        .collect();
    let base = kept.join("&");
    let sort_links: Vec<Value> = std::iter::once(("name", "Name".to_owned()))
        .chain(columns.iter().map(|c| (c.name.as_str(), c.label.clone())))
        .map(|(name, label)| {
            let next_dir = if sort == name && dir == "asc" { "desc" } else { "asc" };
            json!({
                "label": label,
                "href": format!("/app/e/{entity}?{base}{}sort={name}&dir={next_dir}", if base.is_empty() { "" } else { "&" }),
                "sorted": (sort == name).then_some(if dir == "asc" { "ascending" } else { "descending" }),
            })
        })
        .collect();
    let next = answer
        .body
        .get("next_cursor")
        .and_then(Value::as_str)
        .map(|c| {
            format!(
                "/app/e/{entity}?{base}{}sort={sort}&dir={dir}&limit={limit}&cursor={}",
                if base.is_empty() { "" } else { "&" },
                url_encode(c)
            )
        });
    let total = answer.body.get("total").and_then(Value::as_u64);
    let can_create = session.may_on(state, &schema, "create", None).await;
    let can_delete = session.may_on(state, &schema, "delete", None).await;
    let can_submit = schema.submittable && session.may_on(state, &schema, "submit", None).await;
    let template = format!("entity/{entity}/list.html");
    let template = if desk.renderer().has_template(&template) {
        template
    } else {
        "list.html".to_owned()
    };
    session.render(
        state,
        desk,
        StatusCode::OK,
        &template,
        json!({
            "title": schema.label,
            "entity": entity,
            "label": schema.label,
            "columns": sort_links,
            "filters": filter_views,
            "search": search,
            "rows": row_views,
            "total": total,
            "total_more": total.is_some_and(|t| t > prefiq_data::entity::repo::MAX_TOTAL),
            "shown": rows.len(),
            "next": next,
            "first": cursor.map(|_| format!("/app/e/{entity}?{base}{}sort={sort}&dir={dir}&limit={limit}", if base.is_empty() { "" } else { "&" })),
            "can_create": can_create,
            "bulk": { "delete": can_delete, "submit": can_submit, "any": can_delete || can_submit },
            "notice": notice,
        }),
    )
}

/// A record's `docstatus` (0 draft, 1 submitted, 2 cancelled).
pub(super) fn docstatus(status: Option<&Value>) -> i64 {
    match status {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => match s.as_str() {
            "submitted" | "1" => 1,
            "cancelled" | "2" => 2,
            _ => 0,
        },
        _ => 0,
    }
}

pub(super) fn status_label(schema: &EntitySchema, status: Option<&Value>) -> Option<&'static str> {
    schema.submittable.then(|| match docstatus(status) {
        1 => "Submitted",
        2 => "Cancelled",
        _ => "Draft",
    })
}

/// `POST /app/e/{entity}`: a bulk action (`submit` or `delete`) on the selected rows.
pub async fn bulk(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(entity): Path<String>,
    body: Bytes,
) -> Response {
    let (desk, session, form) = try_page!(request.open_form(&state, &body).await);
    let action = form.get("bulk").unwrap_or("");
    let ids = form.all("ids");
    if ids.is_empty() {
        return render_list(
            &state,
            &desk,
            &session,
            &entity,
            &FormData::default(),
            Some(json!({"kind": "error", "text": "Select at least one row first."})),
        )
        .await;
    }
    if ids.len() > MAX_BULK {
        return render_list(&state, &desk, &session, &entity, &FormData::default(), Some(json!({"kind": "error", "text": format!("Select at most {MAX_BULK} rows at a time.")}))).await;
    }
    let mut done = 0;
    let mut failed = Vec::new();
    for id in &ids {
        let path = format!("/api/v1/resources/{entity}/{}", url_encode(id));
        let answer = match action {
            "delete" => session.call(&state, Method::DELETE, &path, None).await,
            "submit" => {
                session
                    .call(&state, Method::POST, &format!("{path}/submit"), None)
                    .await
            }
            _ => {
                return session.message(
                    &state,
                    &desk,
                    StatusCode::BAD_REQUEST,
                    "Unknown action",
                    "Choose delete or submit.",
                );
            }
        };
        if answer.ok() {
            done += 1;
        } else {
            failed.push(format!("{id}: {}", answer.message()));
        }
    }
    let verb = if action == "delete" {
        "Deleted"
    } else {
        "Submitted"
    };
    let notice = json!({
        "kind": if failed.is_empty() { "ok" } else { "error" },
        "text": format!("{verb} {done} of {}.", ids.len()),
        "details": failed,
    });
    render_list(
        &state,
        &desk,
        &session,
        &entity,
        &FormData::default(),
        Some(notice),
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Forms
