//! journal-guard: a `validate` hook on `journal_entry` that refuses an entry whose total
//! debit is above the tenant's `max_amount` (default 10000) unless it carries a remark,
//! and a `GET /policy` route that tells the desk what the limit is.

#[macro_use]
#[path = "../../sdk/rust/codexion.rs"]
mod codexion;

use codexion::json::{self, Value};
use codexion::{Decimal, Level, Plugin, Request};

/// The limit when the configuration has none (or an unreadable one).
const DEFAULT_MAX_AMOUNT: &str = "10000";

struct JournalGuard;

impl Plugin for JournalGuard {
    fn on_hook(event: &str, entity: &str, doc: &str, _old: &str) -> Result<String, String> {
        if entity != "journal_entry" || event != "validate" {
            return Ok(doc.to_string());
        }
        let entry = json::parse(doc).map_err(|e| format!("journal-guard: {}", e))?;
        if has_remark(&entry) {
            return Ok(doc.to_string());
        }
        let (max_text, max) = max_amount();
        let total = total_debit(&entry)?;
        if total > max {
            let limit = max.with_min_scale(2);
            codexion::log(
                Level::Info,
                &format!(
                    "journal-guard: refused a journal entry with total debit {} above {} and no remark (max_amount {})",
                    total, limit, max_text
                ),
            );
            return Err(format!("journal entries above {} need a remark", limit));
        }
        Ok(doc.to_string())
    }

    fn on_route(request: &str) -> String {
        let request = match Request::parse(request) {
            Ok(request) => request,
            Err(e) => return codexion::error_response(400, &e),
        };
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/policy") => {
                let (max_text, _) = max_amount();
                let body = Value::Object(vec![
                    ("max_amount".to_string(), Value::Number(max_text)),
                    ("plugin".to_string(), Value::Str("journal-guard".to_string())),
                ]);
                codexion::response(200, &body.to_json())
            }
            _ => codexion::not_found(),
        }
    }
}

export_plugin!(JournalGuard);

/// Whether `remark` is present and not blank.
fn has_remark(entry: &Value) -> bool {
    entry
        .get("remark")
        .and_then(Value::as_str)
        .map_or(false, |remark| !remark.trim().is_empty())
}

/// The configured limit, as its JSON text and as a decimal.
fn max_amount() -> (String, Decimal) {
    let config = codexion::config_json();
    if let Some(text) = config.get("max_amount").and_then(Value::as_number) {
        if let Some(max) = Decimal::parse(text) {
            return (text.to_string(), max);
        }
        codexion::log(
            Level::Warn,
            &format!("journal-guard: max_amount {} is unreadable; using {}", text, DEFAULT_MAX_AMOUNT),
        );
    }
    let max = Decimal::parse(DEFAULT_MAX_AMOUNT).unwrap_or(Decimal::ZERO);
    (DEFAULT_MAX_AMOUNT.to_string(), max)
}

/// The entry's total debit: `total_debit` when the document carries it, else the sum of
/// its lines' `debit` (at validate time the total may not be computed yet).
fn total_debit(entry: &Value) -> Result<Decimal, String> {
    if let Some(total) = entry.get("total_debit").and_then(Decimal::from_money) {
        return Ok(total);
    }
    let mut total = Decimal::ZERO;
    for line in entry.get("lines").and_then(Value::as_array).unwrap_or(&[]) {
        let debit = match line.get("debit") {
            None | Some(Value::Null) => continue,
            Some(debit) => debit,
        };
        let amount = Decimal::from_money(debit)
            .ok_or_else(|| format!("journal-guard: unreadable debit {}", debit.to_json()))?;
        total = total
            .checked_add(amount)
            .ok_or_else(|| "journal-guard: the total debit overflows".to_string())?;
    }
    Ok(total)
}
