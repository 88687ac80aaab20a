//! Writing the journal format both hledger and ledger-cli read.

use std::fmt;

use super::*;

/// Currency symbols written before the quantity, as in `$10.00`.
pub(super) const PREFIX_SYMBOLS: &[&str] = &[
    "$", "€", "£", "¥", "₹", "₽", "₩", "¢", "₿", "₺", "₪", "₫", "₴", "₦",
];

/// How an amount is written.
///
/// `$10.00` (symbol first) for single-character currency symbols such as `$ € £ ¥`;
/// `10.00 EUR` (quantity, one space, symbol) for symbols made only of letters; `3 "AAPL 2"`
/// (double-quoted) for any other symbol; a bare `10.00` for the empty commodity. Quantities are
/// plain decimals with their scale and no thousands separators. A quoted symbol cannot
/// contain `"` or a line break in either tool, nor `;` in hledger, so those are written as `'`,
/// a space and `,`.
pub fn format_amount(amount: &Amount) -> String {
    let quantity = amount.quantity;
    let commodity = amount.commodity.as_str();
    if commodity.is_empty() {
        quantity.to_string()
    } else if PREFIX_SYMBOLS.contains(&commodity) {
        format!("{commodity}{quantity}")
    } else {
        format!("{quantity} {}", commodity_token(commodity))
    }
}

/// A commodity symbol as it must be written on its own: quoted unless it is plain letters or
/// a prefix currency symbol.
pub(super) fn commodity_token(commodity: &str) -> String {
    if PREFIX_SYMBOLS.contains(&commodity)
        || (!commodity.is_empty() && commodity.chars().all(char::is_alphabetic))
    {
        commodity.to_string()
    } else {
        let inner: String = commodity
            .chars()
            .map(|c| match c {
                '"' => '\'',
                ';' => ',',
                '\n' | '\r' | '\t' => ' ',
                other => other,
            })
            .collect();
        format!("\"{inner}\"")
    }
}

/// Text that stays on one line: line breaks and tabs become spaces, and `;` (which hledger
/// takes as the start of a comment anywhere in a description) becomes `,`.
pub(super) fn one_line_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            ';' => ',',
            other => other,
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// An account name that cannot end early: runs of spaces (which would end it) become one.
pub(super) fn one_line_account(name: &str) -> String {
    let mut result = String::with_capacity(name.len());
    for c in one_line_text(name).chars() {
        if c == ' ' && result.ends_with(' ') {
            continue;
        }
        result.push(c);
    }
    result
}

/// Writes a transaction header line.
pub(super) fn write_header(
    out: &mut impl fmt::Write,
    date: &str,
    status: Option<char>,
    code: Option<&str>,
    description: &str,
) -> fmt::Result {
    out.write_str(date)?;
    if let Some(status) = status {
        write!(out, " {status}")?;
    }
    if let Some(code) = code {
        write!(out, " ({})", one_line_text(code).replace(')', "]"))?;
    }
    let description = one_line_text(description);
    if !description.is_empty() {
        write!(out, " {description}")?;
    }
    out.write_char('\n')
}

/// Writes a posting line; `None` elides the amount.
pub(super) fn write_posting(
    out: &mut impl fmt::Write,
    account: &str,
    amount: Option<&Amount>,
) -> fmt::Result {
    write!(out, "    {}", one_line_account(account))?;
    if let Some(amount) = amount {
        write!(out, "  {}", format_amount(amount))?;
    }
    out.write_char('\n')
}

/// Writes one transaction in the journal format (balanced postings, every amount explicit).
///
/// `date` is written as given and should be `YYYY-MM-DD`. Line breaks in the description
/// become spaces and `;` becomes `,`, so the description cannot turn into a comment or end
/// the header; account names get the same treatment, with runs of spaces collapsed. The
/// transaction is followed by a blank line. The postings are not checked to balance.
pub fn write_transaction(
    out: &mut impl fmt::Write,
    date: &str,
    description: &str,
    postings: &[(String, Amount)],
) -> fmt::Result {
    write_header(out, date, None, None, description)?;
    for (account, amount) in postings {
        write_posting(out, account, Some(amount))?;
    }
    out.write_char('\n')
}

/// Writes an `account NAME` directive.
pub fn write_account(out: &mut impl fmt::Write, name: &str) -> fmt::Result {
    writeln!(out, "account {}", one_line_account(name))
}

/// Writes a `P DATE COMMODITY PRICE` directive: one unit of `commodity` is worth `price`.
pub fn write_price(
    out: &mut impl fmt::Write,
    date: &str,
    commodity: &str,
    price: &Amount,
) -> fmt::Result {
    writeln!(
        out,
        "P {date} {} {}",
        commodity_token(commodity),
        format_amount(price)
    )
}

/// The number of decimals of a currency's minor unit (ISO 4217): 0 for `JPY`, `KRW` and the
/// like, 3 for `BHD`, `KWD` and the like, 2 for everything else.
pub fn minor_unit_scale(commodity: &str) -> u8 {
    match commodity {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" | "¥" | "₩" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}
