//! Reading rows as JSON objects and writing them back, on both backends.

use base64::Engine as _;
use serde_json::{Map, Value, json};
use sqlx::Row as _;

use super::{TableInfo, TransferError, quote};
use crate::entity::sql::Conn;

/// One row: column → value. Text is a string, integers and reals numbers, a boolean a
/// boolean (PostgreSQL), NULL null, a blob `{"$base64": "…"}`.
pub type Row = Map<String, Value>;

/// Most values bound in one PostgreSQL statement (its limit is 65,535).
const MAX_ARGS: usize = 30_000;

fn blob(bytes: &[u8]) -> Value {
    json!({"$base64": base64::engine::general_purpose::STANDARD.encode(bytes)})
}

/// The bytes of a `{"$base64": …}` value.
fn unblob(value: &Value) -> Option<Result<Vec<u8>, base64::DecodeError>> {
    let object = value.as_object()?;
    let text = object.get("$base64")?.as_str()?;
    (object.len() == 1).then(|| base64::engine::general_purpose::STANDARD.decode(text))
}

/// How a PostgreSQL column is selected so that one decoder reads every type.
#[derive(Clone, Copy)]
enum PgRead {
    Int,
    Float,
    Bool,
    Bytes,
    Text,
}

fn pg_read(ty: &str) -> PgRead {
    match ty {
        "int2" | "int4" | "int8" => PgRead::Int,
        "float4" | "float8" => PgRead::Float,
        "bool" => PgRead::Bool,
        "bytea" => PgRead::Bytes,
        _ => PgRead::Text,
    }
}

/// Reads up to `limit` rows of `table` whose `column` is `value`, after skipping
/// `offset` of them, in primary-key order (all columns when it has none), so that chunks
/// read in one [`super::Snapshot`] neither repeat nor miss a row.
pub async fn read_chunk(
    conn: &mut Conn<'_>,
    table: &TableInfo,
    column: &str,
    value: &str,
    offset: usize,
    limit: usize,
) -> Result<Vec<Row>, TransferError> {
    let order: Vec<String> = if table.key.is_empty() {
        table.columns.iter().map(|c| quote(&c.name)).collect()
    } else {
        table.key.iter().map(|c| quote(c)).collect()
    };
    let mut out = Vec::new();
    match conn {
        Conn::Sqlite(c) => {
            let select: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
            let sql = format!(
                "SELECT {} FROM {} WHERE {} = ?1 ORDER BY {} LIMIT ?2 OFFSET ?3",
                select.join(", "),
                quote(&table.name),
                quote(column),
                order.join(", ")
            );
            let mut statement = c.prepare(&sql)?;
            let mut rows =
                statement.query(rusqlite::params![value, limit as i64, offset as i64])?;
            while let Some(row) = rows.next()? {
                let mut object = Row::new();
                for (i, col) in table.columns.iter().enumerate() {
                    use rusqlite::types::ValueRef;
                    let v = match row.get_ref(i)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(n) => json!(n),
                        ValueRef::Real(f) => {
                            serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                        }
                        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
                        ValueRef::Blob(b) => blob(b),
                    };
                    object.insert(col.name.clone(), v);
                }
                out.push(object);
            }
        }
        Conn::Postgres(c) => {
            let reads: Vec<PgRead> = table.columns.iter().map(|c| pg_read(&c.ty)).collect();
            let select: Vec<String> = table
                .columns
                .iter()
                .zip(&reads)
                .map(|(c, read)| {
                    let name = quote(&c.name);
                    match read {
                        PgRead::Int => format!("{name}::int8"),
                        PgRead::Float => format!("{name}::float8"),
                        PgRead::Bool | PgRead::Bytes => name,
                        PgRead::Text => format!("{name}::text"),
                    }
                })
                .collect();
            let sql = format!(
                "SELECT {} FROM {} WHERE {} = $1 ORDER BY {} LIMIT $2 OFFSET $3",
                select.join(", "),
                quote(&table.name),
                quote(column),
                order.join(", ")
            );
            let rows = sqlx::query(&sql)
                .bind(value)
                .bind(limit as i64)
                .bind(offset as i64)
                .fetch_all(&mut **c)
                .await?;
            for row in rows {
                let mut object = Row::new();
                for (i, (col, read)) in table.columns.iter().zip(&reads).enumerate() {
                    let v = match read {
                        PgRead::Int => row.try_get::<Option<i64>, _>(i)?.map(|n| json!(n)),
                        PgRead::Float => row
                            .try_get::<Option<f64>, _>(i)?
                            .and_then(serde_json::Number::from_f64)
                            .map(Value::Number),
                        PgRead::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
                        PgRead::Bytes => row.try_get::<Option<Vec<u8>>, _>(i)?.map(|b| blob(&b)),
                        PgRead::Text => row.try_get::<Option<String>, _>(i)?.map(Value::String),
                    };
                    object.insert(col.name.clone(), v.unwrap_or(Value::Null));
                }
                out.push(object);
            }
        }
    }
    Ok(out)
}

/// A value bound to PostgreSQL: text cast to the column's type, or bytes.
enum PgArg {
    Text(Option<String>),
    Bytes(Vec<u8>),
}

/// The text of a scalar JSON value as the column's input would read it.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Inserts `rows` into `table` (the target's table) in the caller's transaction, each
/// value cast to its column's type on PostgreSQL (`$1::"jsonb"`, `$2::"int8"`; a blob
/// bound as bytes) and bound as its own SQLite type on SQLite. `columns` are the columns
/// the rows carry; one the target table lacks is refused, naming it.
pub async fn insert_rows(
    conn: &mut Conn<'_>,
    table: &TableInfo,
    columns: &[String],
    rows: &[Row],
) -> Result<u64, TransferError> {
    if rows.is_empty() || columns.is_empty() {
        return Ok(0);
    }
    let mut types = Vec::with_capacity(columns.len());
    for name in columns {
        let column = table.column(name).ok_or_else(|| TransferError::Table {
            table: table.name.clone(),
            message: format!(
                "the export has column `{name}`, which this installation's table lacks (is it older than the source?)"
            ),
        })?;
        types.push(column.ty.clone());
    }
    let names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let head = format!("INSERT INTO {} ({})", quote(&table.name), names.join(", "));
    let bad = |message: String| TransferError::Table {
        table: table.name.clone(),
        message,
    };
    let mut written = 0;
    match conn {
        Conn::Sqlite(c) => {
            let placeholders = vec!["?"; columns.len()].join(", ");
            let mut statement = c.prepare(&format!("{head} VALUES ({placeholders})"))?;
            for row in rows {
                let mut values = Vec::with_capacity(columns.len());
                for name in columns {
                    use rusqlite::types::Value as V;
                    let value = row.get(name).unwrap_or(&Value::Null);
                    values.push(match value {
                        Value::Null => V::Null,
                        Value::Bool(b) => V::Integer(i64::from(*b)),
                        Value::Number(n) => match n.as_i64() {
                            Some(i) => V::Integer(i),
                            None => V::Real(n.as_f64().unwrap_or_default()),
                        },
                        Value::String(s) => V::Text(s.clone()),
                        other => {
                            match unblob(other) {
                                Some(bytes) => V::Blob(bytes.map_err(|e| {
                                    bad(format!("column `{name}`: bad base64: {e}"))
                                })?),
                                None => V::Text(other.to_string()),
                            }
                        }
                    });
                }
                written += statement.execute(rusqlite::params_from_iter(values))? as u64;
            }
        }
        Conn::Postgres(c) => {
            let per_statement = (MAX_ARGS / columns.len()).max(1);
            let overriding = if table.always_identity {
                " OVERRIDING SYSTEM VALUE"
            } else {
                ""
            };
            for chunk in rows.chunks(per_statement) {
                let mut args = Vec::with_capacity(chunk.len() * columns.len());
                let mut tuples = Vec::with_capacity(chunk.len());
                for row in chunk {
                    let mut tuple = Vec::with_capacity(columns.len());
                    for (name, ty) in columns.iter().zip(&types) {
                        let value = row.get(name).unwrap_or(&Value::Null);
                        let arg =
                            match unblob(value) {
                                Some(bytes) => PgArg::Bytes(bytes.map_err(|e| {
                                    bad(format!("column `{name}`: bad base64: {e}"))
                                })?),
                                None => PgArg::Text(text_of(value)),
                            };
                        args.push(arg);
                        tuple.push(format!("${}::{}", args.len(), quote(ty)));
                    }
                    tuples.push(format!("({})", tuple.join(", ")));
                }
                let sql = format!("{head}{overriding} VALUES {}", tuples.join(", "));
                let mut query = sqlx::query(&sql);
                for arg in args {
                    query = match arg {
                        PgArg::Text(t) => query.bind(t),
                        PgArg::Bytes(b) => query.bind(b),
                    };
                }
                written += query.execute(&mut **c).await?.rows_affected();
            }
        }
    }
    Ok(written)
}
