//! The plain-text-accounting journal format that both hledger (1.25) and ledger-cli (3.3) read.
//!
//! One concern per file: [`decimal`](self) quantities (`decimal.rs`), calendar dates
//! (`dates.rs`), the [`Reader`] (`reader.rs`), [`balance`] (`balance.rs`), the writer
//! (`writer.rs`) and the generator (`generate.rs`). Together they hold four things:
//! - a streaming [`Reader`] that yields one [`Item`] at a time and keeps only the transaction it
//!   is reading in memory, so journals of millions of postings read in constant space;
//! - [`balance`], which fills in an elided posting amount and checks that a transaction sums to
//!   zero in every commodity;
//! - a writer ([`write_transaction`], [`write_account`], [`write_price`], [`format_amount`]) whose
//!   output both tools accept;
//! - [`generate`], a deterministic generator of valid journals for tests and benchmarks.
//!
//! Amounts are exact decimals ([`Quantity`]): money is never rounded through floating point.
//!
//! The subset accepted is, with the few exceptions noted where they are handled, the one both
//! tools read the same way. Features outside it (posting prices, balance assertions, lots,
//! virtual postings, `include` and most other directives) are refused with an error that names
//! the feature, rather than being misread.

mod balance;
mod dates;
mod decimal;
mod generate;
mod reader;
mod writer;

pub use balance::{Balanced, balance};
pub use decimal::{MAX_SCALE, Quantity};
pub use generate::{Generate, GenerateSummary, generate};
pub use reader::Reader;
pub use writer::{format_amount, minor_unit_scale, write_account, write_price, write_transaction};

#[allow(clippy::wildcard_imports)]
use {dates::*, decimal::*, writer::*};

use std::fmt;

/// An amount: a quantity of one commodity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    /// The commodity symbol, without quotes (`USD`, `$`, `AAPL 2`); empty for a bare number.
    pub commodity: String,
    /// How much of the commodity.
    pub quantity: Quantity,
}

impl Amount {
    /// An amount of `quantity` in `commodity`.
    pub fn new(commodity: impl Into<String>, quantity: Quantity) -> Amount {
        Amount {
            commodity: commodity.into(),
            quantity,
        }
    }
}

impl fmt::Display for Amount {
    /// The journal spelling of the amount, as [`format_amount`] writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format_amount(self))
    }
}

/// One posting as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// The 1-based line the posting is on.
    pub line: usize,
    /// The full account name, e.g. `assets:bank:checking`.
    pub account: String,
    /// The amount, or `None` when it is elided and left for [`balance`] to infer.
    pub amount: Option<Amount>,
    /// The posting's comment: text after `;` on its line and on the indented `;` lines below
    /// it, joined with newlines.
    pub comment: Option<String>,
}

/// One transaction as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The 1-based line of the transaction's header.
    pub line: usize,
    /// The (primary) date, normalised to `YYYY-MM-DD`.
    pub date: String,
    /// The status mark: `'*'` (cleared) or `'!'` (pending).
    pub status: Option<char>,
    /// The code written in parentheses after the status, e.g. a cheque number.
    pub code: Option<String>,
    /// The description (payee and note), trimmed.
    pub description: String,
    /// The transaction's comment: text after `;` on the header and on indented `;` lines
    /// before the first posting, joined with newlines.
    pub comment: Option<String>,
    /// The postings, in the order written.
    pub postings: Vec<Posting>,
}

/// What a journal holds, item by item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A transaction, not yet balanced: see [`balance`].
    Transaction(Transaction),
    /// `account NAME` (with optional `; comment` / indented sub-directives, ignored).
    Account {
        /// The 1-based line of the directive.
        line: usize,
        /// The declared account name.
        name: String,
    },
    /// `commodity SYMBOL` or `commodity 1,000.00 EUR` (format sample): name only.
    Commodity {
        /// The 1-based line of the directive.
        line: usize,
        /// The declared symbol, without quotes; empty for the no-symbol style `commodity 1.00`.
        symbol: String,
    },
    /// `P DATE COMMODITY PRICE` — the price of one unit of `commodity` in `price.commodity`.
    Price {
        /// The 1-based line of the directive.
        line: usize,
        /// The date of the price, normalised to `YYYY-MM-DD`.
        date: String,
        /// The commodity being priced.
        commodity: String,
        /// What one unit of `commodity` is worth.
        price: Amount,
    },
}

/// A problem in a journal, with the 1-based line it is on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct JournalError {
    /// The 1-based line of the problem.
    pub line: usize,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl JournalError {
    fn at(line: usize, message: impl Into<String>) -> JournalError {
        JournalError {
            line,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests;
