//! The generated form of every entity: its fields, child tables, errors, and the request body a submitted form makes.

use super::*;

/// What a field's input shows.
#[derive(Debug, Clone, Default)]
pub(super) struct Shown {
    value: String,
    currency: String,
    checked: bool,
    link_id: String,
}

pub(super) fn shown_from_record(
    field: &FieldDef,
    value: &Value,
    titles: &HashMap<(String, String), String>,
) -> Shown {
    let mut shown = Shown {
        value: form::input_value(&field.kind, value),
        ..Shown::default()
    };
    match &field.kind {
        FieldKind::Money => {
            shown.currency = value
                .get("currency")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
        }
        FieldKind::Bool => shown.checked = value == &Value::Bool(true),
        FieldKind::Link { target } => {
            if let Some(id) = value.as_str() {
                shown.link_id = id.to_owned();
                shown.value = titles
                    .get(&(target.clone(), id.to_owned()))
                    .cloned()
                    .unwrap_or_else(|| id.to_owned());
            }
        }
        _ => {}
    }
    shown
}

pub(super) fn shown_from_form(field: &FieldDef, form: &FormData, name: &str) -> Shown {
    Shown {
        value: form.get(name).unwrap_or("").to_owned(),
        currency: form
            .get(&format!("{name}.currency"))
            .unwrap_or("")
            .to_owned(),
        checked: form.get(name).is_some() && matches!(field.kind, FieldKind::Bool),
        link_id: if form.get(&format!("{name}.was")) == form.get(name) {
            form.get(&format!("{name}.id")).unwrap_or("").to_owned()
        } else {
            String::new()
        },
    }
}

pub(super) fn field_view(
    field: &FieldDef,
    input: String,
    shown: &Shown,
    error: Option<&String>,
    read_only: bool,
) -> Value {
    let mut view = form::field_view(field, &input, read_only);
    view["value"] = json!(shown.value);
    view["currency"] = json!(shown.currency);
    view["checked"] = json!(shown.checked);
    view["link_id"] = json!(shown.link_id);
    view["error"] = json!(error);
    view
}

/// A form being shown: where its values come from.
pub(super) enum Source<'a> {
    /// A stored record (or, for a new one, its defaults).
    Record(&'a Map<String, Value>),
    /// A submitted form, shown again with its errors.
    Form(&'a FormData, &'a BTreeMap<String, Vec<usize>>),
}

pub(super) struct FormPage<'a> {
    pub(super) entity: &'a str,
    pub(super) schema: &'a EntitySchema,
    pub(super) custom: &'a [FieldDef],
    /// The stored record; `None` for a new one.
    pub(super) record: Option<&'a Map<String, Value>>,
    pub(super) source: Source<'a>,
    pub(super) errors: BTreeMap<String, String>,
    pub(super) problem: Option<String>,
    pub(super) notice: Option<String>,
    pub(super) status: StatusCode,
}

#[allow(clippy::too_many_lines)]
pub(super) async fn render_form(
    state: &HttpState,
    desk: &Desk,
    session: &Session,
    repository: &Repository,
    page: FormPage<'_>,
) -> Response {
    let registry = repository.registry().visible_to(Some(session.tenant()));
    let hidden_and_locked = match (
        session.scope(),
        state
            .services
            .get::<prefiq_auth::authz::CedarAuthorizer>("cortex desk"),
    ) {
        (Some(scope), Ok(authorizer)) => authorizer.field_access(&scope, page.schema),
        _ => Default::default(),
    };
    let docstatus = page.record.map_or(0, |r| docstatus(r.get("docstatus")));
    let editable = docstatus == 0
        && match page.record {
            Some(record) => {
                session
                    .may_on(state, page.schema, "update", Some(record))
                    .await
            }
            None => session.may_on(state, page.schema, "create", None).await,
        };
    // Titles of every linked row the record shows, fetched once per target.
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Source::Record(record) = &page.source {
        for field in page.schema.fields.iter().chain(page.custom) {
            match &field.kind {
                FieldKind::Link { target } => {
                    if let Some(id) = record.get(&field.name).and_then(Value::as_str) {
                        wanted
                            .entry(target.clone())
                            .or_default()
                            .push(id.to_owned());
                    }
                }
                FieldKind::Table { entity } => {
                    let Some(child) = registry.get(entity) else {
                        continue;
                    };
                    for row in record
                        .get(&field.name)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        for cf in &child.fields {
                            if let (FieldKind::Link { target }, Some(id)) =
                                (&cf.kind, row.get(&cf.name).and_then(Value::as_str))
                            {
                                wanted
                                    .entry(target.clone())
                                    .or_default()
                                    .push(id.to_owned());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let titles = link_titles(state, session, repository, wanted).await;
    let mut fields = Vec::new();
    let mut tables = Vec::new();
    for field in &page.schema.fields {
        if hidden_and_locked.hidden.contains(&field.name) {
            continue;
        }
        let locked = !editable || hidden_and_locked.read_only.contains(&field.name);
        if let FieldKind::Table { entity } = &field.kind {
            let Some(child) = registry.get(entity) else {
                continue;
            };
            let columns: Vec<&FieldDef> = child
                .fields
                .iter()
                .filter(|f| !matches!(f.kind, FieldKind::Table { .. }))
                .collect();
            let mut rows = Vec::new();
            let make_row = |i: usize, values: &dyn Fn(&FieldDef, &str) -> Shown| -> Value {
                let cells: Vec<Value> = columns
                    .iter()
                    .map(|cf| {
                        let input = format!("t.{}.{i}.{}", field.name, cf.name);
                        let shown = values(cf, &input);
                        let pointer = format!("/{}/{i}/{}", field.name, cf.name);
                        field_view(cf, input, &shown, page.errors.get(&pointer), locked)
                    })
                    .collect();
                json!({ "index": i, "cells": cells, "error": page.errors.get(&format!("/{}/{i}", field.name)) })
            };
            match &page.source {
                Source::Record(record) => {
                    let stored = record
                        .get(&field.name)
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    for (i, row) in stored.iter().enumerate() {
                        rows.push(make_row(i, &|cf, _| {
                            shown_from_record(
                                cf,
                                row.get(&cf.name).unwrap_or(&Value::Null),
                                &titles,
                            )
                        }));
                    }
                    if rows.is_empty() && editable {
                        rows.push(make_row(0, &|cf, _| {
                            shown_from_record(
                                cf,
                                cf.default.as_ref().unwrap_or(&Value::Null),
                                &titles,
                            )
                        }));
                    }
                }
                Source::Form(submitted, row_map) => {
                    for (shown_index, form_index) in
                        row_map.get(&field.name).into_iter().flatten().enumerate()
                    {
                        rows.push(make_row(shown_index, &|cf, _| {
                            shown_from_form(
                                cf,
                                submitted,
                                &format!("t.{}.{form_index}.{}", field.name, cf.name),
                            )
                        }));
                    }
                }
            }
            // Totals of money and decimal columns, as the page's script keeps them.
            let totals: Vec<Value> = columns
                .iter()
                .filter(|cf| matches!(cf.kind, FieldKind::Money))
                .map(|cf| {
                    let sum: f64 = 0.0_f64
                        + rows
                            .iter()
                            .filter_map(|r| {
                                r["cells"]
                                    .as_array()?
                                    .iter()
                                    .find(|c| c["name"] == json!(cf.name))?["value"]
                                    .as_str()?
                                    .trim()
                                    .parse::<f64>()
                                    .ok()
                            })
                            .sum::<f64>();
                    json!({ "name": cf.name, "label": cf.label, "total": format!("{sum:.2}") })
                })
                .collect();
            let template_row = make_row(0, &|cf, _| {
                shown_from_record(cf, cf.default.as_ref().unwrap_or(&Value::Null), &titles)
            });
            tables.push(json!({
                "name": field.name,
                "label": field.label,
                "columns": columns.iter().map(|c| json!({"name": c.name, "label": c.label, "required": c.required, "type": c.kind.type_name()})).collect::<Vec<_>>(),
                "rows": rows,
                "template": template_row,
                "totals": totals,
                "error": page.errors.get(&format!("/{}", field.name)),
                "editable": !locked,
            }));
            continue;
        }
        let input = format!("f.{}", field.name);
        let shown = match &page.source {
            Source::Record(record) => shown_from_record(
                field,
                record.get(&field.name).unwrap_or(&Value::Null),
                &titles,
            ),
            Source::Form(submitted, _) => shown_from_form(field, submitted, &input),
        };
        let error = page.errors.get(&format!("/{}", field.name));
        fields.push(field_view(field, input, &shown, error, locked));
    }
    let mut custom_views = Vec::new();
    for field in page.custom {
        let input = format!("c.{}", field.name);
        let shown = match &page.source {
            Source::Record(record) => shown_from_record(
                field,
                record
                    .get("custom")
                    .and_then(|c| c.get(&field.name))
                    .unwrap_or(&Value::Null),
                &titles,
            ),
            Source::Form(submitted, _) => shown_from_form(field, submitted, &input),
        };
        let error = page.errors.get(&format!("/custom/{}", field.name));
        custom_views.push(field_view(field, input, &shown, error, !editable));
    }
    // Buttons by status and permission: what the API would refuse is not offered.
    let mut actions = Vec::new();
    if let Some(record) = page.record {
        let may = |action: &'static str| async move {
            session
                .may_on(state, page.schema, action, Some(record))
                .await
        };
        if docstatus == 0 && page.schema.submittable && may("submit").await {
            actions.push(json!({ "action": "submit", "label": "Submit", "primary": true }));
        }
        if docstatus == 1 && may("cancel").await {
            actions.push(json!({ "action": "cancel", "label": "Cancel", "danger": true }));
        }
        if docstatus == 2 && may("amend").await {
            actions.push(json!({ "action": "amend", "label": "Amend" }));
        }
        if docstatus != 1 && may("delete").await {
            actions.push(json!({ "action": "delete", "label": "Delete", "danger": true }));
        }
    }
    let id = page
        .record
        .and_then(|r| r.get("id"))
        .and_then(Value::as_str);
    let name = page
        .record
        .and_then(|r| r.get("name"))
        .and_then(Value::as_str);
    let template = format!("entity/{}/form.html", page.entity);
    let template = if desk.renderer().has_template(&template) {
        template
    } else {
        "form.html".to_owned()
    };
    let mut summary: Vec<Value> = page
        .errors
        .iter()
        .map(|(pointer, message)| json!({ "pointer": pointer, "message": message, "dom_id": pointer_dom_id(pointer) }))
        .collect();
    summary.truncate(50);
    session.render(
        state,
        desk,
        page.status,
        &template,
        json!({
            "title": match name { Some(n) => format!("{} {n}", page.schema.label), None => format!("New {}", page.schema.label) },
            "entity": page.entity,
            "label": page.schema.label,
            "id": id,
            "name": name,
            "is_new": page.record.is_none(),
            "action": match id { Some(id) => format!("/app/e/{}/{}", page.entity, url_encode(id)), None => format!("/app/e/{}/new", page.entity) },
            "version": page.record.and_then(|r| r.get("version")).cloned(),
            "status": page.record.and_then(|r| status_label(page.schema, r.get("docstatus"))),
            "editable": editable,
            "fields": fields,
            "custom": custom_views,
            "tables": tables,
            "actions": actions,
            "problem": page.problem,
            "errors": summary,
            "notice": page.notice,
            "amended_from": page.record.and_then(|r| r.get("amended_from")).and_then(Value::as_str),
            "record": page.record,
        }),
    )
}

/// The `id` of the input a pointer names (`/lines/1/account` → `t-lines-1-account`).
pub(super) fn pointer_dom_id(pointer: &str) -> String {
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [field] => form::dom_id(&format!("f.{field}")),
        ["custom", field] => form::dom_id(&format!("c.{field}")),
        [table, row, field] => form::dom_id(&format!("t.{table}.{row}.{field}")),
        _ => String::new(),
    }
}

/// `GET /app/e/{entity}/new`: a blank form with the schema's defaults and any
/// `?field=value` from the link that led here.
pub async fn new_form(
    State(state): State<HttpState>,
    request: DeskRequest,
    Path(entity): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (desk, session) = try_page!(request.open(&state).await);
    let (repository, schema, custom) = try_page!(schema_of(&state, &desk, &session, &entity).await);
    if !session.may_on(&state, &schema, "create", None).await {
        return session.message(
            &state,
            &desk,
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!("You may not create {}.", schema.label),
        );
    }
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let mut defaults = Map::new();
    for field in &schema.fields {
        if let Some(value) = query.get(&field.name) {
            defaults.insert(field.name.clone(), json!(value));
        } else if let Some(value) = &field.default {
            defaults.insert(field.name.clone(), value.clone());
        }
    }
    render_form(
        &state,
        &desk,
        &session,
        &repository,
        FormPage {
            entity: &entity,
            schema: &schema,
            custom: &custom,
            record: None,
            source: Source::Record(&defaults),
            errors: BTreeMap::new(),
            problem: None,
            notice: None,
            status: StatusCode::OK,
        },
    )
    .await
}

/// The rows of each child table a submitted form has (blank ones left out), after an
/// "add row" or "remove row" button.
pub(super) fn submitted_rows(
    schema: &EntitySchema,
    form: &FormData,
) -> Result<BTreeMap<String, Vec<usize>>, String> {
    let mut rows = BTreeMap::new();
    for field in &schema.fields {
        if let FieldKind::Table { .. } = field.kind {
            let mut indexes: Vec<usize> = form::table_rows(form, &field.name)?
                .into_iter()
                .filter(|i| !form::row_is_blank(form, &field.name, *i))
                .collect();
            if form
                .get("_remove_row")
                .and_then(|v| v.rsplit_once('.'))
                .is_some_and(|(t, _)| t == field.name)
            {
                let shown: Option<usize> = form
                    .get("_remove_row")
                    .and_then(|v| v.rsplit_once('.'))
                    .and_then(|(_, i)| i.parse().ok());
                if let Some(i) = shown {
                    indexes.retain(|x| *x != i);
                }
            }
            if form.get("_add_row") == Some(field.name.as_str()) {
                // A fresh index past every submitted one: its inputs are empty.
                indexes.push(usize::MAX / 2);
            }
            rows.insert(field.name.clone(), indexes);
        }
    }
    Ok(rows)
}

#[allow(clippy::too_many_arguments)]
/// The request body a submitted form makes, with the form's own errors (bad numbers,
/// unknown link titles) by pointer.
pub(super) async fn body_from_form(
    state: &HttpState,
    session: &Session,
    repository: &Repository,
    schema: &EntitySchema,
    custom: &[FieldDef],
    form: &FormData,
    rows: &BTreeMap<String, Vec<usize>>,
    creating: bool,
) -> (Map<String, Value>, BTreeMap<String, String>) {
    let registry = repository.registry().visible_to(Some(session.tenant()));
    let fallback = default_currency(state, session, repository, schema, form).await;
    let filled;
    let form = match &fallback {
        Some(currency) => {
            filled = form.with_default_currency(currency);
            &filled
        }
        None => form,
    };
    let mut body = Map::new();
    let mut errors = BTreeMap::new();
    for field in &schema.fields {
        if field.read_only {
            continue;
        }
        if let FieldKind::Table { entity } = &field.kind {
            let Some(child) = registry.get(entity) else {
                continue;
            };
            let Some(indexes) = rows.get(&field.name) else {
                continue;
            };
            let mut out = Vec::new();
            for (shown, index) in indexes.iter().enumerate() {
                let mut row = Map::new();
                for cf in child.fields.iter().filter(|f| !f.read_only) {
                    let name = format!("t.{}.{index}.{}", field.name, cf.name);
                    let pointer = format!("/{}/{shown}/{}", field.name, cf.name);
                    match read_value(state, session, repository, cf, form, &name).await {
                        Ok(Some(Value::Null)) | Ok(None) => {}
                        Ok(Some(value)) => {
                            row.insert(cf.name.clone(), value);
                        }
                        Err(message) => {
                            errors.insert(pointer, message);
                        }
                    }
                }
                out.push(Value::Object(row));
            }
            body.insert(field.name.clone(), Value::Array(out));
            continue;
        }
        let name = format!("f.{}", field.name);
        match read_value(state, session, repository, field, form, &name).await {
            Ok(None) => {}
            Ok(Some(Value::Null)) if creating => {}
            Ok(Some(value)) => {
                body.insert(field.name.clone(), value);
            }
            Err(message) => {
                errors.insert(format!("/{}", field.name), message);
            }
        }
    }
    let mut custom_values = Map::new();
    for field in custom {
        let name = format!("c.{}", field.name);
        match read_value(state, session, repository, field, form, &name).await {
            Ok(None) => {}
            Ok(Some(Value::Null)) if creating => {}
            Ok(Some(value)) => {
                custom_values.insert(field.name.clone(), value);
            }
            Err(message) => {
                errors.insert(format!("/custom/{}", field.name), message);
            }
        }
    }
    if !custom_values.is_empty() {
        body.insert("custom".into(), Value::Object(custom_values));
    }
    (body, errors)
}

/// The currency an amount without one takes: the first currency given anywhere in the
/// form, else the currency of the document's company (an ERP's "company currency").
pub(super) async fn default_currency(
    state: &HttpState,
    session: &Session,
    repository: &Repository,
    schema: &EntitySchema,
    form: &FormData,
) -> Option<String> {
    if let Some(given) = form.currency_given() {
        return Some(given);
    }
    let Some(FieldKind::Link { target }) = schema.field("company").map(|f| &f.kind) else {
        return None;
    };
    let company = read_value(
        state,
        session,
        repository,
        schema.field("company")?,
        form,
        "f.company",
    )
    .await
    .ok()
    .flatten()?;
    let answer = session
        .call(
            state,
            Method::GET,
            &format!(
                "/api/v1/resources/{target}/{}",
                url_encode(company.as_str()?)
            ),
            None,
        )
        .await;
    answer
        .body
        .get("currency")
        .and_then(Value::as_str)
        .filter(|c| c.len() == 3)
        .map(str::to_owned)
}

pub(super) async fn read_value(
    state: &HttpState,
    session: &Session,
    repository: &Repository,
    field: &FieldDef,
    form: &FormData,
    name: &str,
) -> Result<Option<Value>, String> {
    if let FieldKind::Link { target } = &field.kind {
        let Some(text) = form.get(name).map(str::trim) else {
            return Ok(None);
        };
        if text.is_empty() {
            return Ok(Some(Value::Null));
        }
        // Unchanged since the page was shown: the id it was shown with.
        if form.get(&format!("{name}.was")) == Some(text)
            && let Some(id) = form.get(&format!("{name}.id")).filter(|id| !id.is_empty())
        {
            return Ok(Some(json!(id)));
        }
        return resolve_link(state, session, repository, target, text)
            .await
            .map(|id| Some(json!(id)));
    }
    let prefix = name.strip_suffix(field.name.as_str()).unwrap_or("");
    form::read_field(field, form, prefix)
}

/// Whether the form only asked for a row to be added or removed.
pub(super) fn is_row_edit(form: &FormData) -> bool {
    form.get("_add_row").is_some() || form.get("_remove_row").is_some()
}
