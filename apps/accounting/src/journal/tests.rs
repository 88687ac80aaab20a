//! Tests of the reader, the decimals, balancing and the writer.

#![allow(clippy::unwrap_used)]

use std::io;

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
