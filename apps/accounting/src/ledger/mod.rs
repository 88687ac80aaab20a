//! The ledger's storage, one concern per file: reads of companies, accounts, periods and
//! rates (`reads.rs`), the posting rules that turn a journal entry into a balanced voucher
//! (`rules.rs`), the store postings live in (`store.rs`: a narrow append-only table with
//! integer keys, and `gl_entry` as a view over it), and the set-based writer of postings,
//! per-period balances and ledger-written entries that submit, cancel, period close and
//! bulk import all use (`writer.rs`). Every statement runs on a connection the repository gives
//! (`Repository::in_transaction`, `Repository::read`, or a transaction hook), so tenancy
//! and row-level security hold.

mod bulk;
mod reads;
mod rules;
pub mod store;
mod writer;

pub use reads::*;
pub use rules::*;
pub use writer::*;

use prefiq_data::entity::repo::{FieldError, RepoError};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql};

/// A bound text argument.
pub(crate) fn text(value: &str) -> Arg {
    Arg::Text(Some(value.to_owned()))
}

/// A bound optional text argument.
pub(crate) fn opt_text(value: Option<&str>) -> Arg {
    Arg::Text(value.map(str::to_owned))
}

pub(crate) fn cell_text(cell: Option<&Cell>) -> Option<String> {
    match cell {
        Some(Cell::Text(t)) => Some(t.clone()),
        _ => None,
    }
}

pub(crate) fn cell_int(cell: Option<&Cell>) -> i64 {
    match cell {
        Some(Cell::Int(i)) => *i,
        Some(Cell::Bool(b)) => i64::from(*b),
        _ => 0,
    }
}

pub(crate) fn cell_bool(cell: Option<&Cell>) -> bool {
    match cell {
        Some(Cell::Bool(b)) => *b,
        Some(Cell::Int(i)) => *i != 0,
        _ => false,
    }
}

/// Runs a multi-row statement (see `Conn::execute_bulk`).
pub(crate) async fn run(conn: &mut Conn<'_>, sql: Sql) -> Result<u64, RepoError> {
    Ok(conn.execute_bulk(&sql).await?)
}

/// An invalid-input error with one problem.
pub(crate) fn invalid(pointer: &str, code: &'static str, message: impl Into<String>) -> RepoError {
    RepoError::Invalid(vec![FieldError {
        pointer: pointer.to_owned(),
        code,
        message: message.into(),
    }])
}
