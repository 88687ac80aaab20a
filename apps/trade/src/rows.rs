//! Reads shared by the trade documents' hooks and routes: live rows by id, a tax
//! template's taxes, and the small conversions between JSON and SQL arguments.

use std::collections::HashMap;

use prefiq_data::entity::repo::{FieldError, RepoError, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};
use serde_json::Value;

use crate::taxes::Tax;

/// A refusal of the field at `pointer`: a 422 naming it.
pub fn invalid(
    pointer: impl Into<String>,
    code: &'static str,
    message: impl Into<String>,
) -> RepoError {
    RepoError::Invalid(vec![FieldError {
        pointer: pointer.into(),
        code,
        message: message.into(),
    }])
}

/// A non-empty string value.
pub fn str_of(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A text argument of a statement.
pub fn text_arg(value: &str) -> Arg {
    Arg::Text(Some(value.to_owned()))
}

/// Reads the live rows of `table` with these ids: `columns` of each, as text.
pub async fn rows_by_id(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    table: &str,
    columns: &[&str],
    ids: &[&str],
) -> Result<HashMap<String, Vec<Option<String>>>, RepoError> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    for chunk in ids.chunks(500) {
        let mut sql = Sql::default();
        let tenant = sql.arg(text_arg(scope.tenant()));
        let list: Vec<String> = chunk.iter().map(|id| sql.arg(text_arg(id))).collect();
        let select: Vec<String> = columns
            .iter()
            .map(|c| format!("CAST({c} AS TEXT)"))
            .collect();
        sql.text = format!(
            "SELECT id, {} FROM {table} WHERE tenant_id = {tenant} AND id IN ({}) AND deleted_at IS NULL",
            select.join(", "),
            list.join(", ")
        );
        let types: Vec<SqlType> = std::iter::repeat_n(SqlType::Text, columns.len() + 1).collect();
        for row in conn.fetch(&sql, &types).await? {
            let mut cells = row.into_iter().map(|c| match c {
                Cell::Text(t) => Some(t),
                _ => None,
            });
            if let Some(Some(id)) = cells.next() {
                out.insert(id, cells.collect());
            }
        }
    }
    Ok(out)
}

/// A tax template's taxes and company.
pub async fn template(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: &str,
) -> Result<Option<(String, Vec<Tax>)>, RepoError> {
    let head = rows_by_id(conn, scope, "tax_template", &["company", "disabled"], &[id]).await?;
    let Some(head) = head.get(id) else {
        return Ok(None);
    };
    let mut sql = Sql::default();
    let tenant = sql.arg(text_arg(scope.tenant()));
    let parent = sql.arg(text_arg(id));
    sql.text = format!(
        "SELECT account, CAST(rate AS TEXT), CAST(included_in_price AS TEXT) FROM tax_template_line WHERE tenant_id = {tenant} AND parent_id = {parent} ORDER BY idx"
    );
    let rows = conn
        .fetch(&sql, &[SqlType::Text, SqlType::Text, SqlType::Text])
        .await?;
    let taxes = rows
        .into_iter()
        .map(|r| {
            let cell = |i: usize| match r.get(i) {
                Some(Cell::Text(t)) => t.clone(),
                _ => String::new(),
            };
            Tax {
                account: cell(0),
                // A decimal of scale 4 is stored as its ten-thousandths.
                rate: cell(1).parse::<i64>().unwrap_or_default(),
                included_in_price: matches!(cell(2).as_str(), "1" | "true" | "t"),
            }
        })
        .collect();
    Ok(Some((
        head.first().cloned().flatten().unwrap_or_default(),
        taxes,
    )))
}

/// The text of a cell, when it is text.
pub fn cell_text(row: &[Cell], i: usize) -> Option<String> {
    match row.get(i) {
        Some(Cell::Text(t)) => Some(t.clone()),
        _ => None,
    }
}

/// A stored boolean read as text (`1` on SQLite, `true` or `t` on PostgreSQL).
pub fn truthy(value: Option<&str>) -> bool {
    matches!(value, Some("1" | "true" | "t"))
}
