//! Reading the cells of a row that [`prefiq_data::entity::sql::Conn::fetch`] answers.

use prefiq_data::entity::sql::Cell;

/// A row's cells, taken in column order.
pub(crate) struct Cells(std::vec::IntoIter<Cell>);

impl Cells {
    /// The cells of `row`.
    pub(crate) fn of(row: Vec<Cell>) -> Self {
        Cells(row.into_iter())
    }

    /// The next column as text; `None` when NULL.
    pub(crate) fn opt_text(&mut self) -> Option<String> {
        self.0.next().and_then(Cell::into_text)
    }

    /// The next column as text; empty when NULL.
    pub(crate) fn text(&mut self) -> String {
        self.opt_text().unwrap_or_default()
    }

    /// The next column as an integer; `None` when NULL.
    pub(crate) fn opt_int(&mut self) -> Option<i64> {
        self.0.next().as_ref().and_then(Cell::as_int)
    }

    /// The next column as an integer; 0 when NULL.
    pub(crate) fn int(&mut self) -> i64 {
        self.opt_int().unwrap_or(0)
    }
}
