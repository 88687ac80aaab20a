//! Field validation and the writable-field check of the pipeline.

use super::*;

impl Repository {
    /// Refuses input that sets a field the principal may not set: on create any value, on
    /// update a value other than the stored one (clients send back what they read).
    pub(super) fn check_writable(
        &self,
        scope: &TenantScope,
        schema: &EntitySchema,
        input: &Map<String, Value>,
        current: Option<&Map<String, Value>>,
    ) -> Result<(), RepoError> {
        let access = self.field_access(scope, schema);
        let action = if current.is_some() {
            "update"
        } else {
            "create"
        };
        refuse_view_writes(schema, action)?;
        for name in &access.read_only {
            let Some(value) = input.get(name) else {
                continue;
            };
            let unchanged = match current {
                Some(current) => current.get(name).unwrap_or(&Value::Null) == value,
                None => value.is_null(),
            };
            if !unchanged {
                return Err(RepoError::Forbidden {
                    action: action.to_owned(),
                    reason: format!(
                        "`{name}` of {} is read-only for you; `{action}` without it",
                        schema.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// Checks a whole document against `schema`. `current` holds stored values for fields the
    /// document does not mention (updates); on create, missing fields take their default.
    pub(super) fn validate(
        &self,
        schema: &EntitySchema,
        doc: &Map<String, Value>,
        current: Option<&Map<String, Value>>,
        prefix: &str,
    ) -> Result<Validated, Vec<FieldError>> {
        let registry = self.entities.registry();
        let mut errors = Vec::new();
        for key in doc.keys() {
            if schema.field(key).is_none() && !SYSTEM_INPUT.contains(&key.as_str()) {
                errors.push(field_error(
                    format!("{prefix}/{key}"),
                    "unknown_field",
                    format!("`{key}` is not a field of `{}`", schema.name),
                ));
            }
        }
        let mut out = Validated::default();
        // A runtime entity links to declared entities and to its own tenant's.
        for field in &schema.fields {
            if let FieldKind::Link { target } = &field.kind
                && let Some(linked) = registry.get_for(schema.owner_tenant(), target)
            {
                out.link_tables
                    .insert(target.clone(), linked.table().to_owned());
            }
        }
        for field in &schema.fields {
            let pointer = format!("{prefix}/{}", field.name);
            let given = doc.get(&field.name);
            if given.is_some()
                && field.read_only
                && current.and_then(|c| c.get(&field.name)) != given
            {
                errors.push(field_error(&pointer, "read_only", "the field is read-only"));
                continue;
            }
            let value = match (given, current) {
                (Some(v), _) => v.clone(),
                (None, Some(current)) => current.get(&field.name).cloned().unwrap_or(Value::Null),
                (None, None) => field.default.clone().unwrap_or(Value::Null),
            };
            if let FieldKind::Table { entity } = &field.kind {
                let Some(child) = registry.get(entity).cloned() else {
                    continue;
                };
                let rows = match &value {
                    Value::Null => Vec::new(),
                    Value::Array(rows) if rows.len() <= MAX_CHILD_ROWS => rows.clone(),
                    Value::Array(_) => {
                        errors.push(field_error(
                            &pointer,
                            "too_many",
                            format!("at most {MAX_CHILD_ROWS} rows"),
                        ));
                        continue;
                    }
                    _ => {
                        errors.push(field_error(
                            &pointer,
                            "wrong_type",
                            "expected an array of rows",
                        ));
                        continue;
                    }
                };
                if field.required && rows.is_empty() {
                    errors.push(field_error(
                        &pointer,
                        "missing_required",
                        "at least one row is required",
                    ));
                }
                let mut validated = Vec::with_capacity(rows.len());
                for (i, row) in rows.iter().enumerate() {
                    let row_pointer = format!("{pointer}/{i}");
                    match row.as_object() {
                        Some(map) => match self.validate(&child, map, None, &row_pointer) {
                            Ok(v) => validated.push(v),
                            Err(e) => errors.extend(e),
                        },
                        None => errors.push(field_error(
                            row_pointer,
                            "wrong_type",
                            "a row is a JSON object",
                        )),
                    }
                }
                out.children.push((field.clone(), child, validated));
                continue;
            }
            match coerce(field, &value) {
                Ok(stored) => {
                    let empty = matches!(&stored, Stored::Null)
                        || matches!(&stored, Stored::Text(t) if t.is_empty());
                    if field.required && empty {
                        errors.push(field_error(
                            &pointer,
                            "missing_required",
                            "the field is required",
                        ));
                    } else {
                        out.columns.push((field.clone(), stored));
                    }
                }
                Err(ValueError { code, message }) => {
                    errors.push(field_error(&pointer, code, message))
                }
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// Field validation plus the tenant's custom fields, with every problem reported.
    pub(super) async fn validate_all(
        &self,
        scope: &TenantScope,
        schema: &EntitySchema,
        doc: &Map<String, Value>,
        current: Option<&Map<String, Value>>,
    ) -> Result<Validated, RepoError> {
        let base = self.validate(schema, doc, current, "");
        let definitions = self.custom_fields(scope, &schema.name).await?;
        let custom = custom::validate(
            &definitions,
            doc.get("custom"),
            current.and_then(|c| c.get("custom")),
            current.is_none(),
        )
        .map_err(|errors| {
            errors
                .into_iter()
                .map(|(pointer, code, message)| field_error(pointer, code, message))
                .collect::<Vec<_>>()
        });
        match (base, custom) {
            (Ok(mut validated), Ok(values)) => {
                validated.custom = Some(values);
                Ok(validated)
            }
            (Err(mut a), Err(b)) => {
                a.extend(b);
                Err(RepoError::Invalid(a))
            }
            (Err(errors), _) | (_, Err(errors)) => Err(RepoError::Invalid(errors)),
        }
    }
}

/// Refuses `action` on an entity stored as a view: its module writes the rows under it.
pub(super) fn refuse_view_writes(schema: &EntitySchema, action: &str) -> Result<(), RepoError> {
    if schema.storage.is_table() {
        return Ok(());
    }
    Err(RepoError::Forbidden {
        action: action.to_owned(),
        reason: format!(
            "{} is a view of rows its module writes; it takes no `{action}`",
            schema.name
        ),
    })
}
