//! The streaming reader: one item at a time, every error with its line.

use std::io::BufRead;

use super::*;

/// Why reading stopped: a problem in the text, after which the reader resynchronises, or an
/// I/O failure, after which nothing more can be read.
pub(super) enum Failure {
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

/// Splits `text` at its first `;`: the part before and the trimmed comment after, if any.
///
/// A `;` inside a quoted commodity also starts the comment, because hledger reads it so (it
/// allows no `;` in quoted symbols) and the writer never puts one there.
pub(super) fn split_comment(text: &str) -> (&str, Option<&str>) {
    match text.split_once(';') {
        Some((before, comment)) => (before, Some(comment.trim())),
        None => (text, None),
    }
}

/// Appends a comment line to an optional comment, one line per comment.
pub(super) fn append_comment(comment: &mut Option<String>, text: &str) {
    match comment {
        Some(existing) => {
            existing.push('\n');
            existing.push_str(text);
        }
        None => *comment = Some(text.to_string()),
    }
}

/// Parses a transaction header: `DATE [=EDATE] [*|!] [(CODE)] DESCRIPTION [; comment]`.
pub(super) fn parse_header(text: &str, line: usize) -> Result<Transaction, JournalError> {
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
pub(super) fn account_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    (0..bytes.len())
        .find(|&i| bytes[i] == b'\t' || (bytes[i] == b' ' && bytes.get(i + 1) == Some(&b' ')))
        .unwrap_or(bytes.len())
}

/// Checks an account name as written in a posting or an `account` directive.
pub(super) fn check_account_name(name: &str, line: usize) -> Result<(), JournalError> {
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
pub(super) fn parse_posting_line(
    body: &str,
    line: usize,
    tx: &mut Transaction,
) -> Result<(), JournalError> {
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
pub(super) fn is_unquoted_commodity_char(c: char) -> bool {
    !(c.is_ascii_digit() || c.is_whitespace() || "-+.,;:!?*/^&|=<>{}[]()@\"'~#%".contains(c))
}

/// Takes a commodity symbol from the start of `text`: quoted (`"AAPL 2"`) or a run of
/// unquoted symbol characters. Returns the symbol and the text after it.
pub(super) fn take_commodity(text: &str) -> Result<(String, &str), String> {
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
pub(super) fn check_supported_amount(text: &str) -> Result<(), String> {
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
pub(super) fn parse_amount(text: &str, rule: CommaRule) -> Result<Amount, String> {
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
pub(super) fn parse_account_directive(rest: &str, line: usize) -> Result<String, JournalError> {
    let rest = rest.trim_start();
    let name = rest[..account_end(rest)].trim_end();
    if name.is_empty() {
        return Err(JournalError::at(line, "`account` needs an account name"));
    }
    check_account_name(name, line)?;
    Ok(name.to_string())
}

/// Parses what follows `commodity`: a symbol, or a format sample such as `1,000.00 EUR`.
pub(super) fn parse_commodity_directive(rest: &str, line: usize) -> Result<String, JournalError> {
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
pub(super) fn parse_price_directive(rest: &str, line: usize) -> Result<Item, JournalError> {
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
