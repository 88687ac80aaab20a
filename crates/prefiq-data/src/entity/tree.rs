//! Tree entities: the closure table `{entity}__tree` kept in step with each row's
//! `parent_{entity}` link, inside the write's transaction.
//!
//! Every node has a row (node, node, 0) and one row (ancestor, node, depth) per ancestor.
//! Inserting a node copies its parent's ancestor rows; moving a node re-links its whole
//! subtree; a node with live children cannot be deleted. The invariant, checked by a
//! property test, is that the closure table is always the transitive closure of the parent
//! links.

use prefiq::Backend;

use super::ddl::quote;
use super::repo::{FieldError, RepoError, TenantScope};
use super::schema::EntitySchema;
use super::sql::{Arg, Conn, Sql, SqlType};

fn text(value: &str) -> Arg {
    Arg::Text(Some(value.to_owned()))
}

/// Records a new node `id` under `parent` (a root when `None`).
pub(crate) async fn insert_node(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    schema: &EntitySchema,
    id: &str,
    parent: Option<&str>,
) -> Result<(), RepoError> {
    let Some(tree) = schema.tree_table() else {
        return Ok(());
    };
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let node = sql.arg(text(id));
    let own =
        format!("SELECT CAST({tenant} AS TEXT), CAST({node} AS TEXT), CAST({node} AS TEXT), 0");
    sql.text = match parent {
        None => format!(
            "INSERT INTO {} (tenant_id, ancestor, descendant, depth) {own}",
            quote(&tree)
        ),
        Some(parent) => {
            let parent = sql.arg(text(parent));
            format!(
                "INSERT INTO {tree} (tenant_id, ancestor, descendant, depth) SELECT tenant_id, ancestor, CAST({node} AS TEXT), depth + 1 FROM {tree} WHERE tenant_id = {tenant} AND descendant = {parent} UNION ALL {own}",
                tree = quote(&tree)
            )
        }
    };
    conn.execute(&sql).await?;
    Ok(())
}

/// Moves node `id` (with its subtree) under `parent`, refusing a move under itself or one
/// of its descendants. `pointer` names the parent field for the error.
pub(crate) async fn move_node(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    schema: &EntitySchema,
    id: &str,
    parent: Option<&str>,
    pointer: &str,
) -> Result<(), RepoError> {
    let Some(tree) = schema.tree_table() else {
        return Ok(());
    };
    let tree = quote(&tree);
    if conn.backend() == Backend::Postgres {
        // Two concurrent moves could each pass the cycle check and together make a cycle;
        // moves in one tenant's tree take turns.
        let mut lock = Sql::default();
        let key = lock.arg(text(&format!("{}:{}", scope.tenant(), schema.name)));
        lock.text = format!("SELECT pg_advisory_xact_lock(hashtext({key}))");
        conn.execute(&lock).await?;
    }
    if let Some(parent) = parent {
        let mut sql = Sql::default();
        let tenant = sql.arg(text(scope.tenant()));
        let node = sql.arg(text(id));
        let target = sql.arg(text(parent));
        sql.text = format!(
            "SELECT CAST(1 AS BIGINT) FROM {tree} WHERE tenant_id = {tenant} AND ancestor = {node} AND descendant = {target}"
        );
        if !conn.fetch(&sql, &[SqlType::Int]).await?.is_empty() {
            return Err(RepoError::Invalid(vec![FieldError {
                pointer: pointer.to_owned(),
                code: "tree_cycle",
                message: format!(
                    "a {} cannot be moved under itself or one of its descendants",
                    schema.name
                ),
            }]));
        }
    }
    // Cut the subtree from its old ancestors…
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let node = sql.arg(text(id));
    sql.text = format!(
        "DELETE FROM {tree} WHERE tenant_id = {tenant} AND descendant IN (SELECT descendant FROM {tree} WHERE tenant_id = {tenant} AND ancestor = {node}) AND ancestor NOT IN (SELECT descendant FROM {tree} WHERE tenant_id = {tenant} AND ancestor = {node})"
    );
    conn.execute(&sql).await?;
    // …and hang it under the new parent's.
    if let Some(parent) = parent {
        let mut sql = Sql::default();
        let tenant = sql.arg(text(scope.tenant()));
        let node = sql.arg(text(id));
        let target = sql.arg(text(parent));
        sql.text = format!(
            "INSERT INTO {tree} (tenant_id, ancestor, descendant, depth) SELECT above.tenant_id, above.ancestor, below.descendant, above.depth + below.depth + 1 FROM {tree} above JOIN {tree} below ON below.tenant_id = above.tenant_id WHERE above.tenant_id = {tenant} AND above.descendant = {target} AND below.ancestor = {node}"
        );
        conn.execute(&sql).await?;
    }
    Ok(())
}

/// Whether node `id` has children that are not deleted.
pub(crate) async fn has_live_children(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    schema: &EntitySchema,
    id: &str,
) -> Result<bool, RepoError> {
    let Some(parent) = schema.tree_parent() else {
        return Ok(false);
    };
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let node = sql.arg(text(id));
    sql.text = format!(
        "SELECT CAST(1 AS BIGINT) FROM {} WHERE tenant_id = {tenant} AND {} = {node} AND deleted_at IS NULL LIMIT 1",
        quote(schema.table()),
        quote(&parent)
    );
    Ok(!conn.fetch(&sql, &[SqlType::Int]).await?.is_empty())
}
