//! The first pass: parse and balance every transaction, collect accounts, prices and dates.

use super::*;

/// What the first pass learnt.
#[derive(Debug, Default)]
pub(super) struct Survey {
    pub(super) accounts: BTreeMap<String, std::collections::BTreeSet<String>>,
    pub(super) prices: Vec<(String, String, String, i64, usize)>,
    pub(super) first: Option<String>,
    pub(super) last: Option<String>,
    pub(super) invalid: Vec<JournalError>,
    pub(super) invalid_count: u64,
    pub(super) bad_lines: std::collections::HashSet<usize>,
}

pub(super) fn open(path: &Path) -> Result<std::io::BufReader<std::fs::File>, ImportError> {
    std::fs::File::open(path)
        .map(|f| std::io::BufReader::with_capacity(1 << 16, f))
        .map_err(|e| ImportError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

pub(super) fn note(survey: &mut Survey, error: JournalError, transaction_line: usize) {
    survey.bad_lines.insert(transaction_line);
    survey.invalid_count += 1;
    if survey.invalid.len() < MAX_REPORTED_ERRORS {
        survey.invalid.push(error);
    }
}

pub(super) fn survey(
    path: &Path,
    base: &str,
    progress: &dyn Fn(u64),
) -> Result<Survey, ImportError> {
    let mut survey = Survey::default();
    let mut reader = Reader::new(open(path)?);
    let mut n = 0u64;
    while let Some(item) = reader.next() {
        n += 1;
        if n.is_multiple_of(4096) {
            progress(reader.bytes_read());
        }
        match item {
            Err(e) => {
                let line = e.line;
                note(&mut survey, e, line);
            }
            Ok(Item::Account { name, .. }) => {
                survey.accounts.entry(name).or_default();
            }
            Ok(Item::Commodity { .. }) => {}
            Ok(Item::Price {
                line,
                date,
                commodity,
                price,
            }) => {
                let (Some(from), Some(to)) = (
                    currency_of(&commodity, base),
                    currency_of(&price.commodity, base),
                ) else {
                    note(
                        &mut survey,
                        JournalError {
                            line,
                            message: format!(
                                "price of `{commodity}` in `{}`: only currencies are supported",
                                price.commodity
                            ),
                        },
                        line,
                    );
                    continue;
                };
                let Some(rate) = price
                    .quantity
                    .rescale(RATE_SCALE)
                    .and_then(|r| i64::try_from(r).ok())
                    .filter(|r| *r > 0)
                else {
                    note(
                        &mut survey,
                        JournalError {
                            line,
                            message: "a price is positive with at most 9 decimals".into(),
                        },
                        line,
                    );
                    continue;
                };
                survey.prices.push((from, to, date, rate, line));
            }
            Ok(Item::Transaction(tx)) => {
                let postings = match journal::balance(&tx) {
                    Ok(p) => p,
                    Err(e) => {
                        note(&mut survey, e, tx.line);
                        continue;
                    }
                };
                let mut bad = None;
                for p in &postings {
                    match currency_of(&p.amount.commodity, base) {
                        None => {
                            bad = Some(JournalError {
                                line: p.line,
                                message: format!(
                                    "commodity `{}` is not a currency: use an ISO 4217 code such as EUR (or $ € £ ¥)",
                                    p.amount.commodity
                                ),
                            });
                        }
                        Some(c) if minor(p.amount.quantity, &c).is_none() => {
                            bad = Some(JournalError {
                                line: p.line,
                                message: format!(
                                    "{} has more decimals than {c}'s minor unit",
                                    p.amount
                                ),
                            });
                        }
                        Some(c) => {
                            if crate::books::root_of_path(&p.account).is_none() {
                                bad = Some(JournalError {
                                    line: p.line,
                                    message: format!(
                                        "account {} must start with assets, liabilities, equity, income or expenses",
                                        p.account
                                    ),
                                });
                            } else {
                                survey
                                    .accounts
                                    .entry(p.account.clone())
                                    .or_default()
                                    .insert(c);
                            }
                        }
                    }
                }
                if let Some(e) = bad {
                    note(&mut survey, e, tx.line);
                    continue;
                }
                if survey.first.as_deref().is_none_or(|f| tx.date.as_str() < f) {
                    survey.first = Some(tx.date.clone());
                }
                if survey.last.as_deref().is_none_or(|l| tx.date.as_str() > l) {
                    survey.last = Some(tx.date.clone());
                }
            }
        }
    }
    progress(reader.bytes_read());
    // An account that takes postings cannot also be a group of others.
    let names: Vec<String> = survey.accounts.keys().cloned().collect();
    for pair in names.windows(2) {
        if pair[1].starts_with(&format!("{}:", pair[0])) && !survey.accounts[&pair[0]].is_empty() {
            return Err(ImportError::Other(format!(
                "account {} takes postings and has the sub-account {}: only leaf accounts take postings here",
                pair[0], pair[1]
            )));
        }
    }
    Ok(survey)
}
