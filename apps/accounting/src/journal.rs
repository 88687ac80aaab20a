//! The plain-text-accounting journal format that both hledger (1.25) and ledger-cli (3.3) read.
//!
//! This module holds four things:
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

use std::fmt::{self, Write as _};
use std::io::{self, BufRead};

/// The most decimals a [`Quantity`] parsed from text may have.
pub const MAX_SCALE: u8 = 18;

/// An exact decimal quantity: `mantissa / 10^scale`.
///
/// The scale is kept as written, so `1.50` and `1.5` are different values of this type (they
/// compare unequal) even though they denote the same number; [`Quantity::rescale`] compares
/// across scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quantity {
    /// The digits of the number, sign included, without the decimal point.
    pub mantissa: i128,
    /// How many of the mantissa's digits are decimals.
    pub scale: u8,
}

/// Ten to the power `exponent`, or `None` if that does not fit an `i128`.
fn power_of_ten(exponent: u8) -> Option<i128> {
    10i128.checked_pow(u32::from(exponent))
}

impl Quantity {
    /// Zero, with no decimals.
    pub const ZERO: Quantity = Quantity {
        mantissa: 0,
        scale: 0,
    };

    /// Parses a decimal number such as `1,234.50`, `-3` or `0.005`.
    ///
    /// An optional leading `-` or `+` is allowed, commas may separate groups of three digits
    /// in the integer part, and there may be at most [`MAX_SCALE`] decimals. Surrounding
    /// whitespace is ignored. Returns `None` for anything else, including numbers too large
    /// for an `i128` mantissa.
    pub fn parse(text: &str) -> Option<Quantity> {
        parse_decimal(text.trim(), CommaRule::ThousandsSeparator).ok()
    }

    /// The mantissa this quantity has at `scale` decimals.
    ///
    /// Exact: `None` if digits would be lost (a non-zero decimal would be cut off) or the
    /// result does not fit an `i128`.
    pub fn rescale(self, scale: u8) -> Option<i128> {
        if scale >= self.scale {
            self.mantissa.checked_mul(power_of_ten(scale - self.scale)?)
        } else {
            let divisor = power_of_ten(self.scale - scale)?;
            if self.mantissa % divisor == 0 {
                Some(self.mantissa / divisor)
            } else {
                None
            }
        }
    }

    /// Whether this quantity is zero, whatever its scale.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// The same quantity with the opposite sign, at the same scale.
    ///
    /// Saturates for the one mantissa that has no negation (`i128::MIN`), which neither
    /// [`Quantity::parse`] nor [`Quantity::add`] ever produce.
    // Callers use the method form `q.neg()`; the `Neg` operator is implemented as well.
    #[allow(clippy::should_implement_trait)]
    pub fn neg(self) -> Quantity {
        Quantity {
            mantissa: self.mantissa.saturating_neg(),
            scale: self.scale,
        }
    }

    /// The exact sum, at the larger of the two scales; `None` on overflow.
    // A method, not `Add`: the operator could not report overflow.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, other: Quantity) -> Option<Quantity> {
        let scale = self.scale.max(other.scale);
        let mantissa = self.rescale(scale)?.checked_add(other.rescale(scale)?)?;
        // i128::MIN is refused so that every sum can be negated exactly.
        if mantissa == i128::MIN {
            return None;
        }
        Some(Quantity { mantissa, scale })
    }
}

impl std::ops::Neg for Quantity {
    type Output = Quantity;

    fn neg(self) -> Quantity {
        Quantity::neg(self)
    }
}

impl fmt::Display for Quantity {
    /// Plain digits, `-` for negatives, no thousands separators, every decimal of the scale.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = usize::from(self.scale);
        let mut text = String::with_capacity(digits.len() + scale + 3);
        if self.mantissa < 0 {
            text.push('-');
        }
        if scale == 0 {
            text.push_str(&digits);
        } else if digits.len() > scale {
            let (whole, decimals) = digits.split_at(digits.len() - scale);
            text.push_str(whole);
            text.push('.');
            text.push_str(decimals);
        } else {
            text.push_str("0.");
            text.extend(std::iter::repeat_n('0', scale - digits.len()));
            text.push_str(&digits);
        }
        f.pad(&text)
    }
}

/// How a comma in the integer part of a number is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CommaRule {
    /// Commas separate groups of three digits, always.
    ThousandsSeparator,
    /// As above, but a lone comma without a decimal point (`1,000`) is refused: hledger 1.25
    /// reads it as a decimal comma (one) and ledger 3.3 as a thousands separator (a thousand).
    RefuseAmbiguous,
}

/// Parses an optionally signed decimal number, explaining what is wrong when it is not one.
fn parse_decimal(text: &str, rule: CommaRule) -> Result<Quantity, String> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, decimals) = match unsigned.split_once('.') {
        Some((whole, decimals)) => (whole, Some(decimals)),
        None => (unsigned, None),
    };
    if whole.is_empty() {
        return Err(format!("`{text}` needs a digit before the decimal point"));
    }
    if whole.contains(',') {
        let mut groups = whole.split(',');
        let first_ok = groups
            .next()
            .is_some_and(|g| (1..=3).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()));
        let rest_ok = groups.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()));
        if !first_ok || !rest_ok {
            return Err(format!(
                "misplaced comma in `{text}`: commas must separate groups of three digits"
            ));
        }
        if rule == CommaRule::RefuseAmbiguous
            && decimals.is_none()
            && whole.matches(',').count() == 1
        {
            return Err(format!(
                "ambiguous number `{text}`: hledger reads the comma as a decimal mark and ledger \
                 as a thousands separator; write it without the comma or with decimals"
            ));
        }
    } else if !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` is not a number"));
    }
    let decimals = decimals.unwrap_or("");
    if unsigned.contains('.')
        && (decimals.is_empty() || !decimals.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("`{text}` needs digits after the decimal point"));
    }
    let scale = u8::try_from(decimals.len())
        .ok()
        .filter(|s| *s <= MAX_SCALE)
        .ok_or_else(|| format!("`{text}` has more than {MAX_SCALE} decimals"))?;
    let mut mantissa: i128 = 0;
    for digit in whole
        .bytes()
        .chain(decimals.bytes())
        .filter(u8::is_ascii_digit)
    {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(digit - b'0')))
            .ok_or_else(|| format!("`{text}` is too large"))?;
    }
    Ok(Quantity {
        mantissa: if negative { -mantissa } else { mantissa },
        scale,
    })
}

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

/// Why reading stopped: a problem in the text, after which the reader resynchronises, or an
/// I/O failure, after which nothing more can be read.
enum Failure {
    Text(JournalError),
    Io(JournalError),
}

impl From<JournalError> for Failure {
    fn from(error: JournalError) -> Failure {
        Failure::Text(error)
    }
}

/// Reads items one at a time from any BufRead, holding only the current transaction.
///
/// After an error in one transaction or directive the reader skips to the next line that
/// starts in column 0 and carries on, so iterating to the end reports every invalid
/// transaction with its line number. An I/O error is reported once and ends the iteration.
pub struct Reader<R> {
    input: R,
    /// The bytes of the last line read, before they are checked to be UTF-8.
    raw: Vec<u8>,
    /// The last line read, without its line ending.
    current: String,
    /// Whether `current` was read but not yet consumed: the lookahead that ends a transaction.
    pending: bool,
    /// The number of the line in `current`.
    line: usize,
    bytes_read: u64,
    /// Whether indented lines are being skipped after an error.
    skipping: bool,
    finished: bool,
}

impl<R: BufRead> Reader<R> {
    /// A reader of the journal text in `input`.
    pub fn new(input: R) -> Self {
        Reader {
            input,
            raw: Vec::new(),
            current: String::new(),
            pending: false,
            line: 0,
            bytes_read: 0,
            skipping: false,
            finished: false,
        }
    }

    /// How many bytes have been taken from the input so far (including one line of lookahead).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The 1-based number of the last line taken from the input; 0 before the first.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Makes `current` hold the next unconsumed line; `false` at the end of the input.
    fn fill(&mut self) -> Result<bool, Failure> {
        if self.pending {
            return Ok(true);
        }
        self.raw.clear();
        let count = self
            .input
            .read_until(b'\n', &mut self.raw)
            .map_err(|error| {
                Failure::Io(JournalError::at(
                    self.line + 1,
                    format!("read error: {error}"),
                ))
            })?;
        if count == 0 {
            return Ok(false);
        }
        self.bytes_read += count as u64;
        self.line += 1;
        let mut text: &[u8] = &self.raw;
        text = text.strip_suffix(b"\n").unwrap_or(text);
        text = text.strip_suffix(b"\r").unwrap_or(text);
        if self.line == 1 {
            text = text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text);
        }
        let text = std::str::from_utf8(text)
            .map_err(|_| JournalError::at(self.line, "the line is not valid UTF-8"))?;
        self.current.clear();
        self.current.push_str(text);
        self.pending = true;
        Ok(true)
    }

    /// Reads up to the next item, skipping comments and blank lines.
    fn next_item(&mut self) -> Result<Option<Item>, Failure> {
        loop {
            if !self.fill()? {
                return Ok(None);
            }
            let line = self.line;
            let text = self.current.as_str();
            let Some(first) = text.chars().next() else {
                self.pending = false;
                continue;
            };
            if first == ' ' || first == '\t' {
                self.pending = false;
                let body = text.trim_start();
                // hledger accepts indented comment lines between items (ledger does not); they
                // are harmless, so they are accepted too.
                if self.skipping || body.is_empty() || body.starts_with(';') {
                    continue;
                }
                return Err(JournalError::at(line, "indented line outside a transaction").into());
            }
            self.skipping = false;
            match first {
                ';' | '#' | '*' | '%' | '|' => {
                    self.pending = false;
                    continue;
                }
                '0'..='9' => {
                    return self
                        .read_transaction()
                        .map(|tx| Some(Item::Transaction(tx)));
                }
                '~' => {
                    self.pending = false;
                    return Err(JournalError::at(
                        line,
                        "`~` (periodic transaction) is not supported",
                    )
                    .into());
                }
                '=' => {
                    self.pending = false;
                    return Err(JournalError::at(
                        line,
                        "`=` (automated transaction) is not supported",
                    )
                    .into());
                }
                _ => {}
            }
            let word_end = text.find(char::is_whitespace).unwrap_or(text.len());
            let (word, rest) = text.split_at(word_end);
            match word {
                "account" => {
                    let name = parse_account_directive(rest, line);
                    self.pending = false;
                    let name = name?;
                    self.skip_sub_directives()?;
                    return Ok(Some(Item::Account { line, name }));
                }
                "commodity" => {
                    let symbol = parse_commodity_directive(rest, line);
                    self.pending = false;
                    let symbol = symbol?;
                    self.skip_sub_directives()?;
                    return Ok(Some(Item::Commodity { line, symbol }));
                }
                "P" => {
                    let price = parse_price_directive(rest, line);
                    self.pending = false;
                    return Ok(Some(price?));
                }
                "comment" => {
                    self.pending = false;
                    self.skip_comment_block()?;
                }
                _ => {
                    let message = if word.chars().all(|c| c.is_alphanumeric() || c == '-') {
                        format!("`{word}` is not supported")
                    } else {
                        format!("unexpected text at the start of a line: `{word}`")
                    };
                    self.pending = false;
                    return Err(JournalError::at(line, message).into());
                }
            }
        }
    }

    /// Consumes the indented lines under an `account` or `commodity` directive, which carry
    /// sub-directives (`note`, `format`, ...) that this reader has no use for.
    fn skip_sub_directives(&mut self) -> Result<(), Failure> {
        while self.fill()? {
            let text = self.current.as_str();
            if !text.starts_with([' ', '\t']) || text.trim().is_empty() {
                break;
            }
            self.pending = false;
        }
        Ok(())
    }

    /// Consumes a `comment` block up to and including its `end comment` line (or the end of
    /// the input, which both tools also accept).
    fn skip_comment_block(&mut self) -> Result<(), Failure> {
        while self.fill()? {
            self.pending = false;
            if self.current.trim_end() == "end comment" {
                break;
            }
        }
        Ok(())
    }

    /// Reads the transaction whose header is in `current`, up to a blank line, a line in
    /// column 0 (left unconsumed) or the end of the input.
    fn read_transaction(&mut self) -> Result<Transaction, Failure> {
        let header = parse_header(&self.current, self.line);
        self.pending = false;
        let mut tx = header?;
        while self.fill()? {
            let text = self.current.as_str();
            if !text.is_empty() && !text.starts_with([' ', '\t']) {
                break;
            }
            self.pending = false;
            let body = text.trim_start();
            if body.is_empty() {
                break;
            }
            parse_posting_line(body, self.line, &mut tx)?;
        }
        Ok(tx)
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Item, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.next_item() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(Failure::Text(error)) => {
                self.skipping = true;
                Some(Err(error))
            }
            Err(Failure::Io(error)) => {
                self.finished = true;
                Some(Err(error))
            }
        }
    }
}

/// Whether `year` is a leap year of the proleptic Gregorian calendar.
fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// The number of days in `month` (1–12) of `year`.
fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm, exact for all years).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date `days` after 1970-01-01: the inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both fit: the day is 1–31 and the month 1–12 by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// Parses `YYYY-MM-DD`, `YYYY/MM/DD` or `YYYY.MM.DD` (one- or two-digit month and day, one
/// separator throughout) and returns it as `YYYY-MM-DD`, checking it is a real date.
fn parse_date(text: &str) -> Result<String, String> {
    let invalid = || format!("invalid date `{text}`: expected YYYY-MM-DD");
    let separator = text
        .chars()
        .find(|c| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    if !matches!(separator, '-' | '/' | '.') {
        return Err(invalid());
    }
    let parts: Vec<&str> = text.split(separator).collect();
    let [year, month, day] = parts.as_slice() else {
        if parts.len() == 2 && parts.iter().all(|p| (1..=2).contains(&p.len())) {
            return Err(format!(
                "date `{text}` has no year (the `Y` directive is not supported)"
            ));
        }
        return Err(invalid());
    };
    let numeric = |part: &str, lengths: std::ops::RangeInclusive<usize>| {
        lengths.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
    };
    if !numeric(year, 4..=4) || !numeric(month, 1..=2) || !numeric(day, 1..=2) {
        return Err(invalid());
    }
    let (Ok(year), Ok(month), Ok(day)) = (
        year.parse::<i64>(),
        month.parse::<u32>(),
        day.parse::<u32>(),
    ) else {
        return Err(invalid());
    };
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(format!(
            "invalid date `{text}`: no such day in the calendar"
        ));
    }
    Ok(format!("{year:04}-{month:02}-{day:02}"))
}

/// Splits `text` at its first `;`: the part before and the trimmed comment after, if any.
///
/// A `;` inside a quoted commodity also starts the comment, because hledger reads it so (it
/// allows no `;` in quoted symbols) and the writer never puts one there.
fn split_comment(text: &str) -> (&str, Option<&str>) {
    match text.split_once(';') {
        Some((before, comment)) => (before, Some(comment.trim())),
        None => (text, None),
    }
}

/// Appends a comment line to an optional comment, one line per comment.
fn append_comment(comment: &mut Option<String>, text: &str) {
    match comment {
        Some(existing) => {
            existing.push('\n');
            existing.push_str(text);
        }
        None => *comment = Some(text.to_string()),
    }
}

/// Parses a transaction header: `DATE [=EDATE] [*|!] [(CODE)] DESCRIPTION [; comment]`.
fn parse_header(text: &str, line: usize) -> Result<Transaction, JournalError> {
    let fail = |message: String| JournalError::at(line, message);
    let date_end = text
        .find(|c: char| c.is_whitespace() || c == '=' || c == ';')
        .unwrap_or(text.len());
    let date = parse_date(&text[..date_end]).map_err(fail)?;
    let mut rest = &text[date_end..];
    if let Some(after) = rest.strip_prefix('=') {
        // The secondary (effective) date is checked but not kept: nothing here uses it.
        let end = after
            .find(|c: char| c.is_whitespace() || c == ';')
            .unwrap_or(after.len());
        parse_date(&after[..end]).map_err(fail)?;
        rest = &after[end..];
    }
    let (mut rest, comment) = split_comment(rest);
    // hledger starts the comment at any `;`, ledger only at one after two spaces or a tab; the
    // first reading is taken, and the writer never puts a `;` in a description.
    rest = rest.trim_start();
    let mut status = None;
    if let Some(mark @ ('*' | '!')) = rest.chars().next() {
        status = Some(mark);
        rest = rest[1..].trim_start();
    }
    let mut code = None;
    if let Some(after) = rest.strip_prefix('(') {
        let end = after
            .find(')')
            .ok_or_else(|| fail("unclosed `(` in the transaction code".to_string()))?;
        code = Some(after[..end].trim().to_string());
        rest = after[end + 1..].trim_start();
    }
    Ok(Transaction {
        line,
        date,
        status,
        code,
        description: rest.trim_end().to_string(),
        comment: comment.map(str::to_string),
        postings: Vec::new(),
    })
}

/// Where an account name ends: at two consecutive spaces, a tab, or the end of the text.
fn account_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    (0..bytes.len())
        .find(|&i| bytes[i] == b'\t' || (bytes[i] == b' ' && bytes.get(i + 1) == Some(&b' ')))
        .unwrap_or(bytes.len())
}

/// Checks an account name as written in a posting or an `account` directive.
fn check_account_name(name: &str, line: usize) -> Result<(), JournalError> {
    if name.is_empty() {
        return Err(JournalError::at(line, "missing account name"));
    }
    if name.starts_with(['(', '[']) {
        return Err(JournalError::at(
            line,
            "virtual postings (`(account)`, `[account]`) are not supported",
        ));
    }
    // Both tools would take `a ; note` (one space) as an account named "a ; note"; that is
    // almost surely a comment written too close, so it is refused instead of misread.
    if name.contains(';') {
        return Err(JournalError::at(
            line,
            format!("account name `{name}` contains `;`: put two spaces or a tab before a comment"),
        ));
    }
    Ok(())
}

/// Parses one indented line of a transaction (given without its indentation): a comment line
/// or a posting `[*|!] ACCOUNT[  AMOUNT] [; comment]`.
fn parse_posting_line(body: &str, line: usize, tx: &mut Transaction) -> Result<(), JournalError> {
    if let Some(comment) = body.strip_prefix(';') {
        let comment = comment.trim();
        match tx.postings.last_mut() {
            Some(posting) => append_comment(&mut posting.comment, comment),
            None => append_comment(&mut tx.comment, comment),
        }
        return Ok(());
    }
    let mut body = body;
    // A posting's own status mark is accepted but not kept: the transaction's is what counts.
    if let Some(rest) = body.strip_prefix(['*', '!'])
        && rest.starts_with([' ', '\t'])
    {
        body = rest.trim_start();
    }
    let end = account_end(body);
    let account = body[..end].trim_end();
    check_account_name(account, line)?;
    let (amount_text, comment) = split_comment(&body[end..]);
    let amount_text = amount_text.trim();
    let amount = if amount_text.is_empty() {
        None
    } else {
        Some(
            parse_amount(amount_text, CommaRule::RefuseAmbiguous)
                .map_err(|m| JournalError::at(line, m))?,
        )
    };
    tx.postings.push(Posting {
        line,
        account: account.to_string(),
        amount,
        comment: comment.map(str::to_string),
    });
    Ok(())
}

/// Whether `c` may appear in a commodity symbol written without quotes. The excluded
/// characters are those that either tool reserves for numbers, comments or other syntax.
fn is_unquoted_commodity_char(c: char) -> bool {
    !(c.is_ascii_digit() || c.is_whitespace() || "-+.,;:!?*/^&|=<>{}[]()@\"'~#%".contains(c))
}

/// Takes a commodity symbol from the start of `text`: quoted (`"AAPL 2"`) or a run of
/// unquoted symbol characters. Returns the symbol and the text after it.
fn take_commodity(text: &str) -> Result<(String, &str), String> {
    if let Some(rest) = text.strip_prefix('"') {
        let end = rest
            .find('"')
            .ok_or_else(|| format!("unclosed quote in `{text}`"))?;
        if end == 0 {
            return Err("empty quoted commodity `\"\"`".to_string());
        }
        return Ok((rest[..end].to_string(), &rest[end + 1..]));
    }
    let end = text
        .find(|c| !is_unquoted_commodity_char(c))
        .unwrap_or(text.len());
    if end == 0 {
        let unexpected = text.chars().next().unwrap_or(' ');
        return Err(format!("unexpected `{unexpected}` in an amount"));
    }
    Ok((text[..end].to_string(), &text[end..]))
}

/// Refuses, by name, the amount features outside the supported subset.
fn check_supported_amount(text: &str) -> Result<(), String> {
    let mut quoted = false;
    for c in text.chars() {
        let feature = match c {
            '"' => {
                quoted = !quoted;
                continue;
            }
            _ if quoted => continue,
            '@' => "posting prices (`@`, `@@`)",
            '=' => "balance assertions (`=`)",
            '{' | '}' => "lot prices (`{}`)",
            '[' | ']' => "lot dates (`[]`)",
            '(' | ')' => "value expressions (`(...)`)",
            _ => continue,
        };
        return Err(format!("{feature} are not supported"));
    }
    Ok(())
}

/// Parses an amount such as `$10.00`, `-$10`, `$-10`, `10 EUR`, `EUR 10`, `"AAPL 2" 3` or a
/// bare number (empty commodity). `text` is trimmed and has no comment.
fn parse_amount(text: &str, rule: CommaRule) -> Result<Amount, String> {
    check_supported_amount(text)?;
    let invalid = |why: String| format!("invalid amount `{text}`: {why}");
    let (mut sign, mut rest) = match text.chars().next() {
        Some(c @ ('-' | '+')) => (Some(c), &text[1..]),
        _ => (None, text),
    };
    if rest.starts_with(char::is_whitespace) {
        return Err(invalid("no space is allowed after the sign".to_string()));
    }
    let number_end = |s: &str| {
        s.find(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.'))
            .unwrap_or(s.len())
    };
    let commodity;
    let number;
    if rest.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        let end = number_end(rest);
        number = &rest[..end];
        rest = rest[end..].trim_start();
        if rest.is_empty() {
            commodity = String::new();
        } else {
            let (symbol, after) = take_commodity(rest).map_err(invalid)?;
            commodity = symbol;
            rest = after;
        }
    } else {
        let (symbol, after) = take_commodity(rest).map_err(invalid)?;
        commodity = symbol;
        rest = after.trim_start();
        if let Some(c @ ('-' | '+')) = rest.chars().next() {
            if sign.is_some() {
                return Err(invalid("two signs".to_string()));
            }
            sign = Some(c);
            rest = &rest[1..];
        }
        let end = number_end(rest);
        number = &rest[..end];
        rest = &rest[end..];
        if number.is_empty() {
            return Err(invalid("missing quantity".to_string()));
        }
    }
    if !rest.trim().is_empty() {
        return Err(invalid(format!("unexpected `{}`", rest.trim())));
    }
    let quantity = parse_decimal(number, rule).map_err(invalid)?;
    let quantity = if sign == Some('-') {
        quantity.neg()
    } else {
        quantity
    };
    Ok(Amount {
        commodity,
        quantity,
    })
}

/// Parses what follows `account`: the name, up to two spaces, a tab or the end of the line.
fn parse_account_directive(rest: &str, line: usize) -> Result<String, JournalError> {
    let rest = rest.trim_start();
    let name = rest[..account_end(rest)].trim_end();
    if name.is_empty() {
        return Err(JournalError::at(line, "`account` needs an account name"));
    }
    check_account_name(name, line)?;
    Ok(name.to_string())
}

/// Parses what follows `commodity`: a symbol, or a format sample such as `1,000.00 EUR`.
fn parse_commodity_directive(rest: &str, line: usize) -> Result<String, JournalError> {
    let (text, _comment) = split_comment(rest);
    let text = text.trim();
    if text.is_empty() {
        return Err(JournalError::at(line, "`commodity` needs a symbol"));
    }
    let fail = |message: String| JournalError::at(line, format!("in `commodity`: {message}"));
    let mut quoted = false;
    let has_digit = text.chars().any(|c| {
        if c == '"' {
            quoted = !quoted;
        }
        !quoted && c.is_ascii_digit()
    });
    if has_digit {
        // A format sample: any grouping is fine here, only the symbol is kept.
        return parse_amount(text, CommaRule::ThousandsSeparator)
            .map(|a| a.commodity)
            .map_err(fail);
    }
    let (symbol, after) = take_commodity(text).map_err(fail)?;
    if !after.trim().is_empty() {
        return Err(fail(format!(
            "unexpected `{}` after the symbol",
            after.trim()
        )));
    }
    Ok(symbol)
}

/// Parses what follows `P`: `DATE COMMODITY PRICE`.
fn parse_price_directive(rest: &str, line: usize) -> Result<Item, JournalError> {
    let fail = |message: String| JournalError::at(line, format!("in `P`: {message}"));
    let (text, _comment) = split_comment(rest);
    let text = text.trim();
    let date_end = text.find(char::is_whitespace).unwrap_or(text.len());
    let date = parse_date(&text[..date_end]).map_err(fail)?;
    let text = text[date_end..].trim_start();
    if text.is_empty() {
        return Err(fail("missing commodity and price".to_string()));
    }
    let (commodity, text) = take_commodity(text).map_err(fail)?;
    let text = text.trim();
    if text.is_empty() {
        return Err(fail(format!("missing price of `{commodity}`")));
    }
    let price = parse_amount(text, CommaRule::RefuseAmbiguous).map_err(fail)?;
    Ok(Item::Price {
        line,
        date,
        commodity,
        price,
    })
}

/// A posting with its amount known: the elided amount filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balanced {
    /// The 1-based line of the posting.
    pub line: usize,
    /// The full account name.
    pub account: String,
    /// The amount, written or inferred.
    pub amount: Amount,
    /// The posting's comment, as read.
    pub comment: Option<String>,
}

/// `EUR 1.00` for error messages: commodity first, so that it reads like the sentence it is in.
fn describe(commodity: &str, quantity: Quantity) -> String {
    if commodity.is_empty() {
        quantity.to_string()
    } else {
        format!("{commodity} {quantity}")
    }
}

/// Fills the elided amount and checks the transaction balances per commodity.
///
/// At most one posting may omit its amount. It receives the negation of each commodity's
/// sum; when several commodities are unbalanced it becomes one [`Balanced`] per commodity
/// (same line and account), in the order the commodities first appear, as hledger does. When
/// every commodity already balances, it receives a zero of the first commodity.
///
/// Transactions with fewer than two postings are refused: hledger accepts a lone zero
/// posting, but a one-sided entry in an ERP ledger is almost always a mistake.
pub fn balance(tx: &Transaction) -> Result<Vec<Balanced>, JournalError> {
    if tx.postings.len() < 2 {
        return Err(JournalError::at(
            tx.line,
            format!(
                "a transaction needs at least two postings, this one has {}",
                tx.postings.len()
            ),
        ));
    }
    let mut elided = None;
    // Few commodities per transaction: a vector in first-seen order beats a map here.
    let mut sums: Vec<(&str, Quantity)> = Vec::new();
    for (index, posting) in tx.postings.iter().enumerate() {
        let Some(amount) = &posting.amount else {
            if elided.is_some() {
                return Err(JournalError::at(
                    posting.line,
                    "only one posting of a transaction may omit its amount",
                ));
            }
            elided = Some(index);
            continue;
        };
        let overflow = || {
            JournalError::at(
                posting.line,
                format!("the sum of `{}` overflows", amount.commodity),
            )
        };
        match sums
            .iter_mut()
            .find(|(commodity, _)| *commodity == amount.commodity)
        {
            Some((_, sum)) => *sum = sum.add(amount.quantity).ok_or_else(overflow)?,
            None => {
                // Adding to zero also refuses the one mantissa that cannot be negated.
                let sum = Quantity::ZERO.add(amount.quantity).ok_or_else(overflow)?;
                sums.push((&amount.commodity, sum));
            }
        }
    }
    let unbalanced: Vec<(&str, Quantity)> =
        sums.iter().copied().filter(|(_, q)| !q.is_zero()).collect();
    let balanced = |posting: &Posting, amount: Amount| Balanced {
        line: posting.line,
        account: posting.account.clone(),
        amount,
        comment: posting.comment.clone(),
    };
    let mut result = Vec::with_capacity(tx.postings.len() + unbalanced.len());
    for posting in &tx.postings {
        match &posting.amount {
            Some(amount) => result.push(balanced(posting, amount.clone())),
            None if unbalanced.is_empty() => {
                let (commodity, sum) = sums.first().copied().unwrap_or(("", Quantity::ZERO));
                let zero = Quantity {
                    mantissa: 0,
                    scale: sum.scale,
                };
                result.push(balanced(posting, Amount::new(commodity, zero)));
            }
            None => {
                for (commodity, sum) in &unbalanced {
                    result.push(balanced(posting, Amount::new(*commodity, sum.neg())));
                }
            }
        }
    }
    if elided.is_none() && !unbalanced.is_empty() {
        let left: Vec<String> = unbalanced.iter().map(|(c, q)| describe(c, *q)).collect();
        return Err(JournalError::at(
            tx.line,
            format!(
                "transaction does not balance: {} left over",
                left.join(", ")
            ),
        ));
    }
    Ok(result)
}

/// Currency symbols written before the quantity, as in `$10.00`.
const PREFIX_SYMBOLS: &[&str] = &[
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
fn commodity_token(commodity: &str) -> String {
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
fn one_line_text(text: &str) -> String {
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
fn one_line_account(name: &str) -> String {
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
fn write_header(
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
fn write_posting(out: &mut impl fmt::Write, account: &str, amount: Option<&Amount>) -> fmt::Result {
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

/// Options of a generated journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generate {
    /// The exact number of postings to write (any number but 1, which no transaction has).
    pub postings: usize,
    /// The seed of the pseudo-random choices: the same options give the same journal.
    pub seed: u64,
    /// The commodities used, e.g. `["USD", "EUR", "JPY"]`; prices are quoted in the first.
    pub commodities: Vec<String>,
    /// Whether about one transaction in three leaves its last amount for the reader to infer.
    pub elide: bool,
    /// The year of the first transaction.
    pub start_year: i32,
}

impl Default for Generate {
    /// A thousand postings in USD, EUR and JPY from 2020, with elided amounts.
    fn default() -> Generate {
        Generate {
            postings: 1000,
            seed: 1,
            commodities: vec!["USD".to_string(), "EUR".to_string(), "JPY".to_string()],
            elide: true,
            start_year: 2020,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateSummary {
    /// How many transactions.
    pub transactions: usize,
    /// How many postings, equal to the requested number.
    pub postings: usize,
}

/// The chart of accounts of generated journals: names of lowercase letters, digits, `:` and
/// `-`, under the five roots, up to four levels deep.
const CHART: &[&str] = &[
    "assets:bank:checking",
    "assets:bank:savings",
    "assets:cash:wallet",
    "assets:cash:petty",
    "assets:receivables:customers",
    "assets:investments:brokerage",
    "assets:investments:retirement-401k",
    "assets:prepaid:insurance",
    "liabilities:credit-card:visa",
    "liabilities:credit-card:amex",
    "liabilities:loans:mortgage",
    "liabilities:loans:car",
    "liabilities:payables:suppliers",
    "liabilities:taxes:vat",
    "equity:opening-balances",
    "equity:retained-earnings",
    "equity:owner:drawings",
    "income:salary:base",
    "income:salary:bonus",
    "income:interest:savings",
    "income:dividends",
    "income:sales:products",
    "income:sales:services",
    "income:refunds",
    "expenses:food:groceries",
    "expenses:food:restaurants",
    "expenses:housing:rent",
    "expenses:housing:utilities:electricity",
    "expenses:housing:utilities:water",
    "expenses:housing:utilities:internet",
    "expenses:transport:fuel",
    "expenses:transport:public",
    "expenses:transport:car:maintenance",
    "expenses:health:pharmacy",
    "expenses:health:insurance",
    "expenses:leisure:books",
    "expenses:leisure:travel",
    "expenses:office:supplies",
    "expenses:office:software",
    "expenses:taxes:income",
    "expenses:fees:bank",
];

/// Accounts that pay for spending.
const PAYING_ACCOUNTS: &[&str] = &[
    "assets:bank:checking",
    "assets:cash:wallet",
    "assets:cash:petty",
    "liabilities:credit-card:visa",
    "liabilities:credit-card:amex",
];

/// Accounts that receive income.
const RECEIVING_ACCOUNTS: &[&str] = &[
    "assets:bank:checking",
    "assets:bank:savings",
    "assets:receivables:customers",
];

/// Accounts that money is moved to from `assets:bank:checking`.
const TRANSFER_TARGETS: &[&str] = &[
    "assets:bank:savings",
    "assets:investments:brokerage",
    "assets:investments:retirement-401k",
    "assets:prepaid:insurance",
    "liabilities:loans:mortgage",
    "liabilities:loans:car",
    "liabilities:credit-card:visa",
    "liabilities:credit-card:amex",
    "liabilities:payables:suppliers",
    "liabilities:taxes:vat",
];

const SPENDING_PAYEES: &[&str] = &[
    "Corner grocery",
    "City utilities",
    "Fuel station",
    "Bookshop",
    "Pharmacy",
    "Landlord",
    "Internet provider",
    "Office supplies store",
    "Bistro",
    "Train tickets",
    "Software subscription",
    "Bank fees",
    "Tax office",
    "Car garage",
    "Travel agency",
];

const INCOME_PAYEES: &[&str] = &[
    "Payroll",
    "Bonus payout",
    "Savings interest",
    "Dividend",
    "Customer invoice",
    "Refund",
];

const TRANSFER_PAYEES: &[&str] = &[
    "Transfer to savings",
    "Brokerage deposit",
    "Mortgage payment",
    "Card repayment",
    "Retirement contribution",
    "Supplier payment",
];

/// splitmix64: tiny, fast and good enough for test data; deterministic for a seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (0 when `bound` is 0), by multiply-shift rather than modulo.
    fn below(&mut self, bound: usize) -> usize {
        let wide = (u128::from(self.next_u64()) * bound as u128) >> 64;
        usize::try_from(wide).unwrap_or(0)
    }

    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        choices
            .get(self.below(choices.len()))
            .copied()
            .unwrap_or("")
    }
}

/// Sends what was formatted into `buffer` to `out` and empties the buffer.
fn flush(out: &mut impl io::Write, buffer: &mut String) -> io::Result<()> {
    out.write_all(buffer.as_bytes())?;
    buffer.clear();
    Ok(())
}

/// Formatting into a `String` cannot fail; this keeps the `?` chains of the generator typed.
fn formatted(result: fmt::Result) -> io::Result<()> {
    result.map_err(|_| io::Error::other("formatting failed"))
}

fn invalid_input(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_string())
}

/// Writes a valid journal to `out`: `account` directives for every account first, then a
/// `commodity SYMBOL` directive per commodity, then `P`
/// directives (one rate per non-first commodity per month, expressed in the first commodity,
/// with 6 decimals), then transactions in date order spread over the years starting at
/// `start_year` (about 12 months per 100k postings, at least 1 year), each with 2–4 postings,
/// ending exactly at `postings` postings total.
///
/// Each transaction uses one commodity at its minor-unit scale ([`minor_unit_scale`]). With
/// `elide`, about one transaction in three omits its last amount. Output is streamed one
/// transaction at a time; wrap `out` in a `BufWriter`. Fails with `InvalidInput` for no
/// commodities, exactly one posting, or a period outside the years 1–9999.
pub fn generate(out: &mut impl io::Write, options: &Generate) -> io::Result<GenerateSummary> {
    let commodities = &options.commodities;
    let Some(base) = commodities.first() else {
        return Err(invalid_input(
            "a generated journal needs at least one commodity",
        ));
    };
    if options.postings == 1 {
        return Err(invalid_input("no transaction has exactly one posting"));
    }
    let total = options.postings;
    let months = (total as u128 * 12).div_ceil(100_000).max(12);
    let months = i64::try_from(months).map_err(|_| invalid_input("too many postings"))?;
    let start_year = i64::from(options.start_year);
    let last_year = start_year + (months - 1) / 12;
    if start_year < 1 || last_year > 9999 {
        return Err(invalid_input(
            "generated dates must fall in the years 1 to 9999",
        ));
    }
    let first_day = days_from_civil(start_year, 1, 1);
    let end_day = days_from_civil(
        start_year + months / 12,
        1 + u32::try_from(months % 12).unwrap_or(0),
        1,
    );
    let day_count = (end_day - first_day).max(1);

    let mut rng = SplitMix64(options.seed);
    let mut buffer = String::with_capacity(512);

    for account in CHART {
        formatted(write_account(&mut buffer, account))?;
    }
    // Declared by symbol only: ledger 3.3 takes `commodity 1000.00 USD` as a commodity named
    // `1000.00 USD`, and hledger 1.25 refuses a format sample without a decimal mark (JPY).
    // Declaring them lets `hledger check --strict` and `ledger --strict` pass.
    let mut declared: Vec<&str> = Vec::with_capacity(commodities.len());
    for commodity in commodities {
        if !declared.contains(&commodity.as_str()) {
            declared.push(commodity);
            formatted(writeln!(buffer, "commodity {}", commodity_token(commodity)))?;
        }
    }
    buffer.push('\n');
    flush(out, &mut buffer)?;

    // Each rate follows a random walk of at most 2% a month from a plausible start.
    let mut rates: Vec<i128> = commodities
        .iter()
        .map(|c| {
            let start = if minor_unit_scale(c) == 0 {
                5_000
            } else {
                500_000
            };
            start + i128::from(u32::try_from(rng.below(1_000_000)).unwrap_or(0)) * start / 1_000_000
        })
        .collect();
    for month in 0..months {
        let year = start_year + month / 12;
        let date = format!("{year:04}-{:02}-01", month % 12 + 1);
        for (commodity, rate) in commodities.iter().zip(rates.iter_mut()).skip(1) {
            let step = i128::from(u32::try_from(rng.below(401)).unwrap_or(200)) - 200;
            // Clamped so that even a walk of centuries stays a sane, representable rate.
            *rate = (*rate * (10_000 + step) / 10_000).clamp(1, 1_000_000_000_000_000);
            let price = Amount::new(
                base.clone(),
                Quantity {
                    mantissa: *rate,
                    scale: 6,
                },
            );
            formatted(write_price(&mut buffer, &date, commodity, &price))?;
        }
        flush(out, &mut buffer)?;
    }
    buffer.push('\n');

    let expenses: Vec<&str> = CHART
        .iter()
        .copied()
        .filter(|a| a.starts_with("expenses:"))
        .collect();
    let income: Vec<&str> = CHART
        .iter()
        .copied()
        .filter(|a| a.starts_with("income:"))
        .collect();
    let mut written = 0;
    let mut transactions = 0;
    let mut accounts: Vec<&str> = Vec::with_capacity(4);
    while written < total {
        let remaining = total - written;
        let mut count = (2 + rng.below(3)).min(remaining);
        // Never leave a single posting over: it could not form a transaction.
        if remaining - count == 1 {
            count = if count == 4 { 3 } else { count + 1 };
        }
        let offset = (written as u128 * day_count as u128 / total as u128) as i64;
        let (year, month, day) = civil_from_days(first_day + offset);
        let date = format!("{year:04}-{month:02}-{day:02}");

        let commodity = commodities
            .get(rng.below(commodities.len()))
            .unwrap_or(base);
        let scale = minor_unit_scale(commodity);
        let kind = rng.below(20);
        accounts.clear();
        let (payee, settling, sign) = match kind {
            0..=11 => {
                accounts.extend((1..count).map(|_| rng.pick(&expenses)));
                (rng.pick(SPENDING_PAYEES), rng.pick(PAYING_ACCOUNTS), 1)
            }
            12..=16 => {
                accounts.extend((1..count).map(|_| rng.pick(&income)));
                (rng.pick(INCOME_PAYEES), rng.pick(RECEIVING_ACCOUNTS), -1)
            }
            _ => {
                accounts.extend((1..count).map(|_| rng.pick(TRANSFER_TARGETS)));
                (rng.pick(TRANSFER_PAYEES), "assets:bank:checking", 1)
            }
        };
        let status = if rng.below(10) < 8 { Some('*') } else { None };
        let code = if rng.below(10) == 0 {
            Some((10_000 + transactions).to_string())
        } else {
            None
        };
        formatted(write_header(
            &mut buffer,
            &date,
            status,
            code.as_deref(),
            payee,
        ))?;

        // All amounts but the last have the same sign, so the settling amount is never zero.
        let mut sum: i128 = 0;
        for account in &accounts {
            let units = i128::from(u32::try_from(rng.below(499_901)).unwrap_or(0)) + 100;
            let magnitude = match scale {
                0 => units + 9,
                1 => units,
                _ => units * power_of_ten(scale - 2).unwrap_or(1),
            };
            let mantissa = sign * magnitude;
            sum += mantissa;
            let amount = Amount::new(commodity.clone(), Quantity { mantissa, scale });
            formatted(write_posting(&mut buffer, account, Some(&amount)))?;
        }
        let settle = Amount::new(
            commodity.clone(),
            Quantity {
                mantissa: -sum,
                scale,
            },
        );
        let elided = options.elide && rng.below(3) == 0;
        formatted(write_posting(
            &mut buffer,
            settling,
            (!elided).then_some(&settle),
        ))?;
        buffer.push('\n');
        flush(out, &mut buffer)?;

        written += count;
        transactions += 1;
    }
    Ok(GenerateSummary {
        transactions,
        postings: written,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The items and balanced postings of `input`, one per line, errors as `error line N: ...`.
    fn render(input: &str) -> String {
        let mut lines = Vec::new();
        let comment = |c: &Option<String>| match c {
            Some(c) => format!(" ; {}", c.replace('\n', " | ")),
            None => String::new(),
        };
        for item in Reader::new(input.as_bytes()) {
            match item {
                Err(error) => lines.push(format!("error {error}")),
                Ok(Item::Account { line, name }) => lines.push(format!("account {line} {name}")),
                Ok(Item::Commodity { line, symbol }) => {
                    lines.push(format!("commodity {line} {symbol}"));
                }
                Ok(Item::Price {
                    line,
                    date,
                    commodity,
                    price,
                }) => {
                    lines.push(format!("P {line} {date} {commodity} {price}"));
                }
                Ok(Item::Transaction(tx)) => {
                    let mut header = format!("tx {} {}", tx.line, tx.date);
                    if let Some(status) = tx.status {
                        header.push_str(&format!(" {status}"));
                    }
                    if let Some(code) = &tx.code {
                        header.push_str(&format!(" ({code})"));
                    }
                    header.push_str(&format!(" {}{}", tx.description, comment(&tx.comment)));
                    lines.push(header);
                    match balance(&tx) {
                        Ok(postings) => {
                            for p in postings {
                                lines.push(format!(
                                    "  {} {} {}{}",
                                    p.line,
                                    p.account,
                                    p.amount,
                                    comment(&p.comment)
                                ));
                            }
                        }
                        Err(error) => lines.push(format!("  unbalanced {error}")),
                    }
                }
            }
        }
        lines.join("\n")
    }

    /// Compares the rendering of `input` with `expected`, line by line, ignoring indentation
    /// and blank lines of `expected`.
    fn check(input: &str, expected: &str) {
        let got = render(input);
        let got_lines: Vec<&str> = got.lines().map(str::trim).collect();
        let expected_lines: Vec<&str> = expected
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            got_lines, expected_lines,
            "\ninput:\n{input}\ngot:\n{got}\n"
        );
    }

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap()
    }

    #[test]
    fn quantity_parse() {
        assert_eq!(
            q("1,234.50"),
            Quantity {
                mantissa: 123_450,
                scale: 2
            }
        );
        assert_eq!(
            q("-3"),
            Quantity {
                mantissa: -3,
                scale: 0
            }
        );
        assert_eq!(
            q("0.005"),
            Quantity {
                mantissa: 5,
                scale: 3
            }
        );
        assert_eq!(
            q("+7.0"),
            Quantity {
                mantissa: 70,
                scale: 1
            }
        );
        assert_eq!(
            q("1,000"),
            Quantity {
                mantissa: 1000,
                scale: 0
            }
        );
        assert_eq!(
            q("1,000,000.5"),
            Quantity {
                mantissa: 10_000_005,
                scale: 1
            }
        );
        assert_eq!(q("0.123456789012345678").scale, 18);
        for bad in [
            "", "-", ".5", "5.", "1.2.3", "12,34", "1,2345", ",100", "1 000", "abc", "1e5",
        ] {
            assert_eq!(Quantity::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Quantity::parse("0.1234567890123456789"), None);
        assert_eq!(
            Quantity::parse("999999999999999999999999999999999999999999"),
            None
        );
    }

    #[test]
    fn quantity_arithmetic_and_display() {
        assert_eq!(q("1.5").rescale(3), Some(1500));
        assert_eq!(q("1.50").rescale(1), Some(15));
        assert_eq!(q("1.55").rescale(1), None);
        assert_eq!(
            Quantity {
                mantissa: i128::MAX,
                scale: 0
            }
            .rescale(1),
            None
        );
        assert_eq!(q("1.5").add(q("-0.25")), Some(q("1.25")));
        assert_eq!(
            Quantity {
                mantissa: i128::MAX,
                scale: 0
            }
            .add(q("1")),
            None
        );
        assert_eq!(
            Quantity {
                mantissa: -i128::MAX,
                scale: 0
            }
            .add(q("-1")),
            None
        );
        assert!(q("0.00").is_zero());
        assert_eq!(q("2.50").neg(), q("-2.50"));
        assert_eq!(-q("2.50"), q("-2.50"));
        let shown: Vec<String> = ["-1,234.50", "0.005", "-0.05", "12", "0", "0.00", "-3"]
            .iter()
            .map(|t| q(t).to_string())
            .collect();
        assert_eq!(
            shown,
            ["-1234.50", "0.005", "-0.05", "12", "0", "0.00", "-3"]
        );
        assert_eq!(format!("{:>8}|", q("1.5")), "     1.5|");
        assert_eq!(
            Quantity {
                mantissa: i128::MIN,
                scale: 2
            }
            .neg()
            .mantissa,
            i128::MAX
        );
    }

    #[test]
    fn amount_styles() {
        check(
            concat!(
                "2020-01-01 styles\n",
                "    a  $10.00\n",
                "    b  -$10\n",
                "    c  $-10\n",
                "    d  10 EUR\n",
                "    e  EUR 10\n",
                "    f  -10.5 EUR\n",
                "    g  \"AAPL 2\" 3\n",
                "    h  -3 \"AAPL 2\"\n",
                "    i  10EUR\n",
                "    j  EUR-10\n",
                "    k  42\n",
                "    l  €5\n",
                "\t m\t+1,234.50 USD\n",
                "    n  $10.00\n",
                "    o  EUR -9.5\n",
                "    p  -42\n",
                "    q  -€5\n",
                "    r  -1,234.50 USD\n",
            ),
            "tx 1 2020-01-01 styles
               2 a $10.00
               3 b $-10
               4 c $-10
               5 d 10 EUR
               6 e 10 EUR
               7 f -10.5 EUR
               8 g 3 \"AAPL 2\"
               9 h -3 \"AAPL 2\"
               10 i 10 EUR
               11 j -10 EUR
               12 k 42
               13 l €5
               14 m 1234.50 USD
               15 n $10.00
               16 o -9.5 EUR
               17 p -42
               18 q €-5
               19 r -1234.50 USD",
        );
    }

    #[test]
    fn bad_amounts() {
        check(
            concat!(
                "2020-01-01 a\n    a  1,000 EUR\n    b\n",
                "2020-01-02 b\n    a  10,5 EUR\n    b\n",
                "2020-01-03 c\n    a  - 5 EUR\n    b\n",
                "2020-01-04 d\n    a  5 EUR EUR\n    b\n",
                "2020-01-05 e\n    a  -EUR -5\n    b\n",
                "2020-01-06 f\n    a  \"AAPL 5\n    b\n",
                "2020-01-07 g\n    a  EUR\n    b\n",
                "2020-01-08 h\n    a  5.123456789012345678901 EUR\n    b\n",
            ),
            "error line 2: invalid amount `1,000 EUR`: ambiguous number `1,000`: hledger reads the comma as a decimal mark and ledger as a thousands separator; write it without the comma or with decimals
             error line 5: invalid amount `10,5 EUR`: misplaced comma in `10,5`: commas must separate groups of three digits
             error line 8: invalid amount `- 5 EUR`: no space is allowed after the sign
             error line 11: invalid amount `5 EUR EUR`: unexpected `EUR`
             error line 14: invalid amount `-EUR -5`: two signs
             error line 17: invalid amount `\"AAPL 5`: unclosed quote in `\"AAPL 5`
             error line 20: invalid amount `EUR`: missing quantity
             error line 23: invalid amount `5.123456789012345678901 EUR`: `5.123456789012345678901` has more than 18 decimals",
        );
    }

    #[test]
    fn header_forms_and_dates() {
        check(
            concat!(
                "2020-01-01 * (123) Opening ; first\n    a  1\n    b\n",
                "2020/02/29 ! Leap day\n    a  1\n    b\n",
                "2021.3.7=2021-03-09 Effective date ignored\n    a  1\n    b\n",
                "2020-01-02 *Tight(7)\n    a  1\n    b\n",
                "2020-01-03\n    a  1\n    b\n",
                "2020-01-04 (A-1) Code only;no space\n    a  1\n    b\n",
            ),
            "tx 1 2020-01-01 * (123) Opening ; first
               2 a 1
               3 b -1
             tx 4 2020-02-29 ! Leap day
               5 a 1
               6 b -1
             tx 7 2021-03-07 Effective date ignored
               8 a 1
               9 b -1
             tx 10 2020-01-02 * Tight(7)
               11 a 1
               12 b -1
             tx 13 2020-01-03
               14 a 1
               15 b -1
             tx 16 2020-01-04 (A-1) Code only ; no space
               17 a 1
               18 b -1",
        );
    }

    #[test]
    fn bad_dates() {
        check(
            concat!(
                "2021-02-29 not a leap year\n    a  1\n    b\n",
                "2020-13-01 no such month\n    a  1\n    b\n",
                "1900/02/29 century\n    a  1\n    b\n",
                "2020-01/02 mixed\n    a  1\n    b\n",
                "01/02 no year\n    a  1\n    b\n",
                "20-01-02 short year\n",
                "2000-02-29 leap century\n    a  1\n    b\n",
                "2020-01-01=2020-02-30 bad effective date\n",
            ),
            "error line 1: invalid date `2021-02-29`: no such day in the calendar
             error line 4: invalid date `2020-13-01`: no such day in the calendar
             error line 7: invalid date `1900/02/29`: no such day in the calendar
             error line 10: invalid date `2020-01/02`: expected YYYY-MM-DD
             error line 13: date `01/02` has no year (the `Y` directive is not supported)
             error line 16: invalid date `20-01-02`: expected YYYY-MM-DD
             tx 17 2000-02-29 leap century
               18 a 1
               19 b -1
             error line 20: invalid date `2020-02-30`: no such day in the calendar",
        );
    }

    #[test]
    fn accounts_with_spaces_tabs_and_statuses() {
        check(
            concat!(
                "2020-01-01 x\n",
                "    assets:bank checking  $5 ; a comment\n",
                "\tincome:odd name\t$-5\n",
                "    * equity:cleared  0\n",
                "    ! equity:pending\n",
                "    *starred:name  0\n",
            ),
            "tx 1 2020-01-01 x
               2 assets:bank checking $5 ; a comment
               3 income:odd name $-5
               4 equity:cleared 0
               5 equity:pending $0
               6 *starred:name 0",
        );
    }

    #[test]
    fn comments() {
        check(
            concat!(
                "; semicolon\n",
                "# hash\n",
                "* star\n",
                "% percent\n",
                "| bar\n",
                "    ; indented, between items\n",
                "comment\n",
                "2020-01-01 hidden\n",
                "    not a posting\n",
                "end comment\n",
                "2020-01-02 shown ; header\n",
                "    ; more header\n",
                "    a  1 EUR ; posting\n",
                "    ; more posting\n",
                "  ;   and more  \n",
                "    b ; not two spaces? then it is refused\n",
            ),
            "error line 16: account name `b ; not two spaces? then it is refused` contains `;`: put two spaces or a tab before a comment",
        );
        check(
            concat!(
                "2020-01-02 shown ; header\n",
                "    ; more header\n",
                "    a  1 EUR ; posting\n",
                "    ; more posting\n",
                "  ;   and more  \n",
                "    b  ;\n",
                "comment\n",
                "unterminated blocks run to the end\n",
            ),
            "tx 1 2020-01-02 shown ; header | more header
               3 a 1 EUR ; posting | more posting | and more
               6 b -1 EUR ;",
        );
    }

    #[test]
    fn directives() {
        check(
            concat!(
                "account assets:bank checking  ; with a note\n",
                "    note sub-directives are ignored\n",
                "account expenses:food\n",
                "commodity $\n",
                "commodity 1,000.00 EUR\n",
                "    format 1,000.00 EUR\n",
                "commodity \"AAPL 2\"\n",
                "commodity 1.000\n",
                "P 2020-01-01 EUR 1.083412 USD\n",
                "P 2020/01/02 \"AAPL 2\" $150.25 ; quoted\n",
                "P 2020-01-03 JPY 0.006712 $\n",
            ),
            "account 1 assets:bank checking
             account 3 expenses:food
             commodity 4 $
             commodity 5 EUR
             commodity 7 AAPL 2
             commodity 8
             P 9 2020-01-01 EUR 1.083412 USD
             P 10 2020-01-02 AAPL 2 $150.25
             P 11 2020-01-03 JPY $0.006712",
        );
    }

    #[test]
    fn bad_directives() {
        check(
            concat!(
                "account\n",
                "account (virtual)\n",
                "commodity\n",
                "commodity EUR USD\n",
                "P 2020-01-01 EUR\n",
                "P 2020-01-01\n",
                "P 2020-02-30 EUR 1 USD\n",
                "P 2020-01-01 EUR 1 USD @ 2 GBP\n",
                "P 2020-01-01 EUR 1 USD\n",
                "    indented after P\n",
            ),
            "error line 1: `account` needs an account name
             error line 2: virtual postings (`(account)`, `[account]`) are not supported
             error line 3: `commodity` needs a symbol
             error line 4: in `commodity`: unexpected `USD` after the symbol
             error line 5: in `P`: missing price of `EUR`
             error line 6: in `P`: missing commodity and price
             error line 7: in `P`: invalid date `2020-02-30`: no such day in the calendar
             error line 8: in `P`: posting prices (`@`, `@@`) are not supported
             P 9 2020-01-01 EUR 1 USD
             error line 10: indented line outside a transaction",
        );
    }

    #[test]
    fn unsupported_directives_resync() {
        check(
            concat!(
                "include other.journal\n",
                "alias a=b\n",
                "apply account x\n",
                "    indented lines after an error are skipped\n",
                "end apply account\n",
                "Y 2020\n",
                "year 2020\n",
                "D $1,000.00\n",
                "decimal-mark .\n",
                "payee Shop\n",
                "tag t\n",
                "~ monthly\n",
                "    a  $1\n",
                "    b\n",
                "= expenses\n",
                "    (budget)  -1\n",
                "2020-01-01 still read\n",
                "    a  $1\n",
                "    b\n",
                "@weird\n",
            ),
            "error line 1: `include` is not supported
             error line 2: `alias` is not supported
             error line 3: `apply` is not supported
             error line 5: `end` is not supported
             error line 6: `Y` is not supported
             error line 7: `year` is not supported
             error line 8: `D` is not supported
             error line 9: `decimal-mark` is not supported
             error line 10: `payee` is not supported
             error line 11: `tag` is not supported
             error line 12: `~` (periodic transaction) is not supported
             error line 15: `=` (automated transaction) is not supported
             tx 17 2020-01-01 still read
               18 a $1
               19 b $-1
             error line 20: unexpected text at the start of a line: `@weird`",
        );
    }

    #[test]
    fn unsupported_posting_features() {
        check(
            concat!(
                "2020-01-01 a\n    a  10 EUR @ $1.10\n    b\n",
                "2020-01-02 b\n    a  10 EUR @@ $11\n    b\n",
                "2020-01-03 c\n    a  $10 = $100\n    b\n",
                "2020-01-04 d\n    a  = $100\n    b\n",
                "2020-01-05 e\n    a  10 AAPL {$50}\n    b\n",
                "2020-01-06 f\n    a  10 AAPL [2020-01-01]\n    b\n",
                "2020-01-07 g\n    a  ($10 * 2)\n    b\n",
                "2020-01-08 h\n    (virtual)  $10\n    b\n",
                "2020-01-09 i\n    [balanced virtual]  $10\n    b\n",
            ),
            "error line 2: posting prices (`@`, `@@`) are not supported
             error line 5: posting prices (`@`, `@@`) are not supported
             error line 8: balance assertions (`=`) are not supported
             error line 11: balance assertions (`=`) are not supported
             error line 14: lot prices (`{}`) are not supported
             error line 17: lot dates (`[]`) are not supported
             error line 20: value expressions (`(...)`) are not supported
             error line 23: virtual postings (`(account)`, `[account]`) are not supported
             error line 26: virtual postings (`(account)`, `[account]`) are not supported",
        );
    }

    #[test]
    fn elided_amounts() {
        check(
            concat!(
                "2020-01-01 one commodity\n    a  $1.50\n    b  $2\n    c\n",
                "2020-01-02 two commodities\n    a  $-10\n    b  5.00 EUR\n    c  ; filled\n    d  $3\n",
                "2020-01-03 elided first\n    a\n    b  10 JPY\n",
                "2020-01-04 already balanced\n    a  1.0 EUR\n    b  -1 EUR\n    c\n",
                "2020-01-05 two elided\n    a  1 EUR\n    b\n    c\n",
                "2020-01-06 zero postings are fine\n    a  0 EUR\n    b  0.00 EUR\n",
            ),
            "tx 1 2020-01-01 one commodity
               2 a $1.50
               3 b $2
               4 c $-3.50
             tx 5 2020-01-02 two commodities
               6 a $-10
               7 b 5.00 EUR
               8 c $7 ; filled
               8 c -5.00 EUR ; filled
               9 d $3
             tx 10 2020-01-03 elided first
               11 a -10 JPY
               12 b 10 JPY
             tx 13 2020-01-04 already balanced
               14 a 1.0 EUR
               15 b -1 EUR
               16 c 0.0 EUR
             tx 17 2020-01-05 two elided
               unbalanced line 20: only one posting of a transaction may omit its amount
             tx 21 2020-01-06 zero postings are fine
               22 a 0 EUR
               23 b 0.00 EUR",
        );
    }

    #[test]
    fn unbalanced_and_short_transactions() {
        check(
            concat!(
                "2020-01-01 off by one\n    a  10.00 EUR\n    b  -9.00 EUR\n",
                "2020-01-02 two off\n    a  $1\n    b  1 EUR\n",
                "2020-01-03 mixed scales balance\n    a  1.5 EUR\n    b  -1.50 EUR\n",
                "2020-01-04 lonely\n    a  0 EUR\n",
                "2020-01-05 empty\n\n",
            ),
            "tx 1 2020-01-01 off by one
               unbalanced line 1: transaction does not balance: EUR 1.00 left over
             tx 4 2020-01-02 two off
               unbalanced line 4: transaction does not balance: $ 1, EUR 1 left over
             tx 7 2020-01-03 mixed scales balance
               8 a 1.5 EUR
               9 b -1.50 EUR
             tx 10 2020-01-04 lonely
               unbalanced line 10: a transaction needs at least two postings, this one has 1
             tx 12 2020-01-05 empty
               unbalanced line 12: a transaction needs at least two postings, this one has 0",
        );
    }

    #[test]
    fn resync_after_errors() {
        check(
            concat!(
                "2020-01-01 first bad\n",
                "    a  $1\n",
                "    b  $1 @ 2 EUR\n",
                "    c  skipped\n",
                "    ; skipped too\n",
                "2020-01-02 good\n",
                "    a  $1\n",
                "    b\n",
                "\n",
                "2020-02-31 second bad\n",
                "    a  $1\n",
                "    b\n",
                "2020-01-03 good again\n",
                "    (virtual)  $1\n",
                "2020-01-04 last\n",
                "    a  $2\n",
                "    b  $-2\n",
            ),
            "error line 3: posting prices (`@`, `@@`) are not supported
             tx 6 2020-01-02 good
               7 a $1
               8 b $-1
             error line 10: invalid date `2020-02-31`: no such day in the calendar
             error line 14: virtual postings (`(account)`, `[account]`) are not supported
             tx 15 2020-01-04 last
               16 a $2
               17 b $-2",
        );
    }

    #[test]
    fn line_endings_bom_and_blank_lines() {
        check(
            "\u{feff}2020-01-01 crlf\r\n    a  $1\r\n    b\r\n   \t\r\n    c  $1\r\n",
            "tx 1 2020-01-01 crlf
               2 a $1
               3 b $-1
             error line 5: indented line outside a transaction",
        );
    }

    #[test]
    fn balance_reports_overflow() {
        let big = Amount::new(
            "EUR",
            Quantity {
                mantissa: i128::MAX - 1,
                scale: 0,
            },
        );
        let posting = |line, amount: Option<Amount>| Posting {
            line,
            account: "a".to_string(),
            amount,
            comment: None,
        };
        let tx = Transaction {
            line: 1,
            date: "2020-01-01".to_string(),
            status: None,
            code: None,
            description: String::new(),
            comment: None,
            postings: vec![
                posting(2, Some(big.clone())),
                posting(3, Some(big)),
                posting(4, None),
            ],
        };
        assert_eq!(
            balance(&tx),
            Err(JournalError::at(3, "the sum of `EUR` overflows"))
        );
        let odd_scale = Amount::new(
            "EUR",
            Quantity {
                mantissa: 1,
                scale: 200,
            },
        );
        let tx = Transaction {
            postings: vec![posting(2, Some(odd_scale)), posting(3, None)],
            ..tx
        };
        assert!(balance(&tx).is_err());
    }

    #[test]
    fn quoted_commodities_may_hold_what_unquoted_ones_cannot() {
        check(
            concat!(
                "2020-01-01 quoted\n",
                "    a  1.5 \"S&P 500 @ 2\" ; real comment\n",
                "    b  \"S&P 500 @ 2\" -1.5\n",
                "2020-01-02 but no semicolon, as in hledger\n",
                "    a  1.5 \"S&P; 500\"\n",
                "    b\n",
            ),
            "tx 1 2020-01-01 quoted
               2 a 1.5 \"S&P 500 @ 2\" ; real comment
               3 b -1.5 \"S&P 500 @ 2\"
             error line 5: invalid amount `1.5 \"S&P`: unclosed quote in `\"S&P`",
        );
    }

    #[test]
    fn invalid_utf8_is_a_line_error() {
        let input: &[u8] = b"2020-01-01 x\n    a  \xff$1\n    b\n2020-01-02 y\n    a  $1\n    b\n";
        let items: Vec<_> = Reader::new(input).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0],
            Err(JournalError::at(2, "the line is not valid UTF-8"))
        );
        assert!(matches!(&items[1], Ok(Item::Transaction(tx)) if tx.line == 4));
    }

    /// Yields some text, then fails.
    struct FailingInput {
        text: &'static [u8],
    }

    impl io::Read for FailingInput {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.text.is_empty() {
                return Err(io::Error::other("disk on fire"));
            }
            let count = self.text.len().min(buf.len());
            buf[..count].copy_from_slice(&self.text[..count]);
            self.text = &self.text[count..];
            Ok(count)
        }
    }

    #[test]
    fn io_error_is_reported_once_and_ends_iteration() {
        let input = FailingInput {
            text: b"account a\n2020-01-01 x\n    a  1\n",
        };
        let mut reader = Reader::new(io::BufReader::new(input));
        assert_eq!(
            reader.next(),
            Some(Ok(Item::Account {
                line: 1,
                name: "a".to_string()
            }))
        );
        assert_eq!(
            reader.next(),
            Some(Err(JournalError::at(4, "read error: disk on fire")))
        );
        assert_eq!(reader.next(), None);
        assert_eq!(reader.next(), None);
        assert_eq!(reader.line(), 3);
        assert_eq!(reader.bytes_read(), 32);
    }

    #[test]
    fn reader_counts_lines_and_bytes() {
        let text = "account a\n\n2020-01-01 x\n    a  1\n    a  -1\n";
        let mut reader = Reader::new(text.as_bytes());
        assert!(matches!(reader.next(), Some(Ok(Item::Account { .. }))));
        assert!(matches!(reader.next(), Some(Ok(Item::Transaction(_)))));
        assert_eq!(reader.next(), None);
        assert_eq!(reader.line(), 5);
        assert_eq!(reader.bytes_read(), text.len() as u64);
    }

    #[test]
    fn format_amount_styles() {
        let shown: Vec<String> = [
            ("$", "-10.00"),
            ("€", "5"),
            ("EUR", "1,234.50"),
            ("JPY", "-100"),
            ("AAPL 2", "3"),
            ("X1", "1"),
            ("", "0.5"),
            ("a\"b\nc;d", "1"),
        ]
        .iter()
        .map(|(c, t)| format_amount(&Amount::new(*c, q(t))))
        .collect();
        assert_eq!(
            shown,
            [
                "$-10.00",
                "€5",
                "1234.50 EUR",
                "-100 JPY",
                "3 \"AAPL 2\"",
                "1 \"X1\"",
                "0.5",
                "1 \"a'b c,d\""
            ]
        );
    }

    #[test]
    fn writer_round_trip() {
        let postings: Vec<(String, Amount)> = vec![
            (
                "assets:bank checking".to_string(),
                Amount::new("$", q("-10.00")),
            ),
            ("expenses:food".to_string(), Amount::new("$", q("10.00"))),
            ("assets:eur".to_string(), Amount::new("EUR", q("1234.5"))),
            ("assets:shares".to_string(), Amount::new("AAPL 2", q("3"))),
            ("assets:yen".to_string(), Amount::new("JPY", q("-500"))),
            ("assets:euro sign".to_string(), Amount::new("€", q("0.01"))),
            ("assets:bare".to_string(), Amount::new("", q("-7.25"))),
        ];
        let mut text = String::new();
        write_account(&mut text, "assets:bank checking").unwrap();
        write_price(
            &mut text,
            "2020-01-01",
            "AAPL 2",
            &Amount::new("$", q("150.123456")),
        )
        .unwrap();
        write_price(
            &mut text,
            "2020-01-01",
            "EUR",
            &Amount::new("USD", q("1.08")),
        )
        .unwrap();
        write_transaction(
            &mut text,
            "2020-01-02",
            "Multi\nline; with semicolon",
            &postings,
        )
        .unwrap();
        write_transaction(&mut text, "2020-01-03", "", &postings[..2]).unwrap();
        let items: Vec<Item> = Reader::new(text.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(items.len(), 5, "{text}");
        assert_eq!(
            items[0],
            Item::Account {
                line: 1,
                name: "assets:bank checking".to_string()
            }
        );
        assert_eq!(
            items[1],
            Item::Price {
                line: 2,
                date: "2020-01-01".to_string(),
                commodity: "AAPL 2".to_string(),
                price: Amount::new("$", q("150.123456")),
            }
        );
        let Item::Transaction(tx) = &items[3] else {
            panic!("not a transaction: {:?}", items[3])
        };
        assert_eq!(tx.description, "Multi line, with semicolon");
        assert_eq!(tx.comment, None);
        let read: Vec<(String, Amount)> = tx
            .postings
            .iter()
            .map(|p| (p.account.clone(), p.amount.clone().unwrap()))
            .collect();
        assert_eq!(read, postings);
        let Item::Transaction(tx) = &items[4] else {
            panic!("not a transaction")
        };
        assert_eq!(tx.description, "");
        assert_eq!(balance(tx).unwrap().len(), 2);
    }

    #[test]
    fn writer_keeps_account_names_whole() {
        let mut text = String::new();
        let postings = vec![
            ("a  b\tc\nd".to_string(), Amount::new("EUR", q("1"))),
            ("e".to_string(), Amount::new("EUR", q("-1"))),
        ];
        write_transaction(&mut text, "2020-01-01", "x", &postings).unwrap();
        let Some(Ok(Item::Transaction(tx))) = Reader::new(text.as_bytes()).next() else {
            panic!("{text}")
        };
        assert_eq!(tx.postings[0].account, "a b c d");
        assert_eq!(tx.postings[0].amount, Some(Amount::new("EUR", q("1"))));
    }

    fn generated(options: &Generate) -> (String, GenerateSummary) {
        let mut out = Vec::new();
        let summary = generate(&mut out, options).unwrap();
        (String::from_utf8(out).unwrap(), summary)
    }

    /// Reads a generated journal, balancing every transaction, and returns the counts of
    /// transactions, postings (as written), elided postings and prices.
    fn read_generated(text: &str) -> (usize, usize, usize, usize) {
        let (mut transactions, mut postings, mut elided, mut prices) = (0, 0, 0, 0);
        let mut commodities = 0;
        let mut last_date = String::new();
        for item in Reader::new(text.as_bytes()) {
            match item.unwrap() {
                Item::Transaction(tx) => {
                    assert!(
                        tx.date >= last_date,
                        "dates out of order at line {}",
                        tx.line
                    );
                    last_date.clone_from(&tx.date);
                    assert!((2..=4).contains(&tx.postings.len()));
                    let commodities: std::collections::BTreeSet<&str> = tx
                        .postings
                        .iter()
                        .filter_map(|p| p.amount.as_ref().map(|a| a.commodity.as_str()))
                        .collect();
                    assert_eq!(commodities.len(), 1, "one commodity per transaction");
                    let balanced = balance(&tx).unwrap();
                    assert_eq!(balanced.len(), tx.postings.len());
                    for posting in &balanced {
                        assert_eq!(
                            posting.amount.quantity.scale,
                            minor_unit_scale(&posting.amount.commodity)
                        );
                        assert!(!posting.amount.quantity.is_zero());
                    }
                    transactions += 1;
                    postings += tx.postings.len();
                    elided += tx.postings.iter().filter(|p| p.amount.is_none()).count();
                }
                Item::Account { name, .. } => {
                    assert!(
                        name.chars().all(|c| c.is_ascii_lowercase()
                            || c.is_ascii_digit()
                            || c == ':'
                            || c == '-'),
                        "{name}"
                    );
                    assert!(
                        ["assets:", "liabilities:", "equity:", "income:", "expenses:"]
                            .iter()
                            .any(|root| name.starts_with(root))
                    );
                }
                Item::Price { price, .. } => {
                    assert_eq!(price.commodity, "USD");
                    assert!(price.quantity.scale <= 6 && price.quantity.mantissa > 0);
                    prices += 1;
                }
                Item::Commodity { symbol, .. } => {
                    assert!(["USD", "EUR", "JPY"].contains(&symbol.as_str()));
                    commodities += 1;
                }
            }
        }
        assert_eq!(commodities, 3);
        (transactions, postings, elided, prices)
    }

    #[test]
    fn generated_journals_have_exact_counts_and_balance() {
        for count in [0, 2, 3, 4, 5, 6, 7, 11, 1000, 2001] {
            let options = Generate {
                postings: count,
                seed: count as u64,
                ..Generate::default()
            };
            let (text, summary) = generated(&options);
            assert_eq!(summary.postings, count);
            let (transactions, postings, _, prices) = read_generated(&text);
            assert_eq!(
                (transactions, postings),
                (summary.transactions, count),
                "{count}"
            );
            assert_eq!(prices, 12 * 2);
        }
    }

    #[test]
    fn generated_journal_shape() {
        let options = Generate {
            postings: 30_000,
            seed: 7,
            ..Generate::default()
        };
        let (text, summary) = generated(&options);
        let (transactions, postings, elided, _) = read_generated(&text);
        assert_eq!(postings, 30_000);
        assert_eq!(transactions, summary.transactions);
        // About one transaction in three is elided.
        assert!(
            elided * 4 > transactions && elided * 2 < transactions,
            "{elided} of {transactions}"
        );
        let accounts = text.lines().filter(|l| l.starts_with("account ")).count();
        assert!((35..=45).contains(&accounts));
        assert!(text.contains(" JPY\n") && text.contains(" EUR\n") && text.contains(" USD\n"));
        let no_elision = Generate {
            elide: false,
            ..options
        };
        assert_eq!(read_generated(&generated(&no_elision).0).2, 0);
    }

    #[test]
    fn generated_dates_span_months_by_size() {
        let options = Generate {
            postings: 250_000,
            seed: 3,
            start_year: 2001,
            ..Generate::default()
        };
        let (text, _) = generated(&options);
        let prices = text.lines().filter(|l| l.starts_with("P ")).count();
        assert_eq!(prices, 30 * 2);
        let last = text.lines().rev().find(|l| l.starts_with("2003-")).unwrap();
        assert!(last.starts_with("2003-06"), "{last}");
        assert!(text.lines().any(|l| l.starts_with("2001-01-01 ")));
    }

    #[test]
    fn generation_is_deterministic_per_seed() {
        let options = Generate {
            postings: 500,
            seed: 42,
            ..Generate::default()
        };
        let (first, _) = generated(&options);
        let (second, _) = generated(&options);
        assert_eq!(first, second);
        let (other, _) = generated(&Generate {
            seed: 43,
            ..options
        });
        assert_ne!(first, other);
    }

    #[test]
    fn generation_refuses_impossible_options() {
        let mut sink = Vec::new();
        for options in [
            Generate {
                postings: 1,
                ..Generate::default()
            },
            Generate {
                commodities: Vec::new(),
                ..Generate::default()
            },
            Generate {
                start_year: 0,
                ..Generate::default()
            },
            Generate {
                start_year: 9999,
                postings: 200_000,
                ..Generate::default()
            },
        ] {
            let error = generate(&mut sink, &options).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        }
    }
}
