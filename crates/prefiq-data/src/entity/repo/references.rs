//! What keeps a row from being deleted: the engine's referential rule.
//!
//! A link from a submitted (or cancelled) document, or from a live row of an entity that
//! has no lifecycle (master data, and the ledger's own rows), protects its target. A
//! draft does not: it is checked again when it is submitted. The rule is the engine's,
//! read off the schemas' link fields, so every entity the next apps add is covered
//! without a hook of its own.

use super::*;

/// How many referencing rows a refusal names in all.
pub const MAX_NAMED_REFERENCES: usize = 10;

/// How many it names per link field, so that one busy entity does not hide the others.
const MAX_PER_SITE: usize = 3;

/// A row that links to the row being deleted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reference {
    /// The referencing entity (the parent document for a child row).
    pub entity: String,
    /// Its id.
    pub id: String,
    /// Its human name.
    pub name: String,
    /// The link field that points at the target (`lines.account` for a child table).
    pub field: String,
}

/// One place a link to `target` can be stored.
struct LinkSite {
    /// The entity whose row is named in a refusal.
    owner: Arc<EntitySchema>,
    /// For a child entity, its table and the parent's table field.
    child: Option<(Arc<EntitySchema>, String)>,
    /// The referencing field.
    field: String,
    /// The column holding the reference.
    column: String,
    /// `None` for a link (the column holds the target's id); for a key reference, the
    /// target's field whose value the column holds.
    key: Option<String>,
}

/// Every link field of the entities `tenant` sees that points at `target`, child tables
/// resolved to the documents that hold them.
fn link_sites(registry: &EntityRegistry, target: &str) -> Vec<LinkSite> {
    let mut sites = Vec::new();
    for schema in registry.all() {
        for field in &schema.fields {
            let (column, key) = match (&field.kind, field.key_reference()) {
                (FieldKind::Link { target: linked }, _) if linked == target => {
                    (field.name.clone(), None)
                }
                (FieldKind::Money, Some((entity, key))) if entity == target => {
                    (format!("{}_currency", field.name), Some(key.to_owned()))
                }
                (FieldKind::Data, Some((entity, key))) if entity == target => {
                    (field.name.clone(), Some(key.to_owned()))
                }
                _ => continue,
            };
            if !schema.child {
                sites.push(LinkSite {
                    owner: schema.clone(),
                    child: None,
                    field: field.name.clone(),
                    column,
                    key,
                });
                continue;
            }
            for parent in registry.all() {
                for table in &parent.fields {
                    if let FieldKind::Table { entity } = &table.kind
                        && entity == &schema.name
                    {
                        sites.push(LinkSite {
                            owner: parent.clone(),
                            child: Some((schema.clone(), table.name.clone())),
                            field: field.name.clone(),
                            column: column.clone(),
                            key: key.clone(),
                        });
                    }
                }
            }
        }
    }
    // Documents first: they are what a person recognises and must act on.
    sites.sort_by_key(|site| !site.owner.submittable);
    sites
}

/// The rows that protect `id` of `target` from deletion, at most
/// [`MAX_NAMED_REFERENCES`], and whether there may be more than those named. Runs in the deleting transaction after the target's row is
/// locked, so a document submitted concurrently is either seen here or finds the target
/// gone when it checks its links.
pub(super) async fn protecting_references(
    conn: &mut Conn<'_>,
    registry: &EntityRegistry,
    scope: &TenantScope,
    target: &str,
    record: &Map<String, Value>,
) -> Result<(Vec<Reference>, bool), RepoError> {
    let mut found = Vec::new();
    let mut more = false;
    for site in link_sites(registry, target) {
        let left = (MAX_NAMED_REFERENCES - found.len()).min(MAX_PER_SITE);
        if left == 0 {
            more = true;
            break;
        }
        // What the referencing column holds: the target's id, or its key's value.
        let value = match &site.key {
            None => record.get("id"),
            Some(key) => record.get(key),
        };
        let Some(Value::String(value)) = value else {
            continue;
        };
        let mut sql = Sql::default();
        let tenant = sql.arg(Arg::Text(Some(scope.tenant.clone())));
        let id_arg = sql.arg(Arg::Text(Some(value.clone())));
        // One more than named tells whether there are more.
        let limit = sql.arg(Arg::Int(Some(left as i64 + 1)));
        let owner = &site.owner;
        // Only documents past draft protect what they link to.
        let status = if owner.submittable {
            " AND o.docstatus IN (1, 2)"
        } else {
            ""
        };
        let column = quote(&site.column);
        sql.text = match &site.child {
            None => format!(
                "SELECT o.id, o.name FROM {} o WHERE o.tenant_id = {tenant} AND o.{column} = {id_arg} AND o.deleted_at IS NULL{status} ORDER BY o.id LIMIT {limit}",
                quote(owner.table())
            ),
            Some((child, table_field)) => {
                let field_arg = sql.arg(Arg::Text(Some(table_field.clone())));
                format!(
                    "SELECT DISTINCT o.id, o.name FROM {} c JOIN {} o ON o.tenant_id = c.tenant_id AND o.id = c.parent_id WHERE c.tenant_id = {tenant} AND c.parent_field = {field_arg} AND c.{column} = {id_arg} AND o.deleted_at IS NULL{status} ORDER BY o.id LIMIT {limit}",
                    quote(child.table()),
                    quote(owner.table())
                )
            }
        };
        let field = match &site.child {
            None => site.field.clone(),
            Some((_, table_field)) => format!("{table_field}.{}", site.field),
        };
        let mut rows = conn.fetch(&sql, &[SqlType::Text, SqlType::Text]).await?;
        if rows.len() > left {
            more = true;
            rows.truncate(left);
        }
        let text = |cell: Option<&Cell>| match cell {
            Some(Cell::Text(text)) => text.clone(),
            _ => String::new(),
        };
        for row in rows {
            let id = text(row.first());
            // A row that references the target in several fields is named once.
            if found
                .iter()
                .any(|r: &Reference| r.entity == owner.name && r.id == id)
            {
                continue;
            }
            found.push(Reference {
                entity: owner.name.clone(),
                id,
                name: text(row.get(1)),
                field: field.clone(),
            });
        }
    }
    Ok((found, more))
}

/// The refusal of a delete that `references` protect.
pub(super) fn referenced(
    schema: &EntitySchema,
    id: &str,
    (references, more): (Vec<Reference>, bool),
) -> RepoError {
    RepoError::Referenced {
        entity: schema.name.clone(),
        id: id.to_owned(),
        references,
        more,
    }
}
