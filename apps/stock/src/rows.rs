//! Small reads and conversions the stock app's hooks and routes share: trade's (live rows
//! by id, refusals with their pointer, JSON and SQL values), not copies of them.

pub use trade::rows::{invalid, rows_by_id, str_of, text_arg, truthy};
