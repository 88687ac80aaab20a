//! The posting rules: a journal entry becomes a balanced voucher, or is refused with why.

use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Arg, Conn, Sql, SqlType};
use prefiq_data::entity::value::currency_scale;
use serde_json::{Map, Value};

use super::*;
use crate::money::{self, RATE_ONE};

/// One line of a journal entry as the API carries it, read for posting.
#[derive(Debug, Clone)]
pub(super) struct DraftLine {
    account: String,
    debit: Option<(i64, String)>,
    credit: Option<(i64, String)>,
    rate: Option<i64>,
    party_type: Option<String>,
    party: Option<String>,
    cost_center: Option<String>,
    remark: Option<String>,
}

pub(super) fn money_of(value: Option<&Value>) -> Option<(i64, String)> {
    let value = value?;
    let amount = value.get("amount")?.as_str()?;
    let currency = value.get("currency")?.as_str()?;
    let minor = prefiq_data::entity::value::parse_scaled(amount, currency_scale(currency)).ok()?;
    Some((minor, currency.to_owned()))
}

pub(super) fn str_of(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub(super) fn draft_lines(doc: &Map<String, Value>) -> Vec<DraftLine> {
    doc.get("lines")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|row| DraftLine {
                    account: str_of(row.get("account")).unwrap_or_default(),
                    debit: money_of(row.get("debit")),
                    credit: money_of(row.get("credit")),
                    rate: row
                        .get("exchange_rate")
                        .and_then(Value::as_str)
                        .and_then(money::parse_rate),
                    party_type: str_of(row.get("party_type")),
                    party: str_of(row.get("party")),
                    cost_center: str_of(row.get("cost_center")),
                    remark: str_of(row.get("remark")),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a journal entry against the posting rules and converts it into its postings:
/// debits equal credits in company currency (exact minor units; a foreign-currency
/// rounding difference of at most one minor unit per converted line goes to the company's
/// rounding account), every account a leaf of the company and not frozen, the posting
/// date in an open period. Every problem is reported, each at its JSON pointer.
pub async fn prepare_voucher(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: &str,
    doc: &Map<String, Value>,
) -> Result<(Company, Voucher), RepoError> {
    let mut errors = Vec::new();
    macro_rules! fail {
        ($pointer:expr, $code:expr, $message:expr $(,)?) => {
            errors.push(FieldError {
                pointer: $pointer,
                code: $code,
                message: $message,
            })
        };
    }
    let company_id = str_of(doc.get("company")).unwrap_or_default();
    let Some(company) = load_company(conn, scope, &company_id).await? else {
        return Err(invalid(
            "/company",
            "unknown_company",
            format!("company `{company_id}` does not exist"),
        ));
    };
    let base = company.base_currency.clone();
    let date = str_of(doc.get("posting_date")).unwrap_or_default();
    let periods = load_periods(conn, scope, &company.id).await?;
    let period = match period_of(&periods, &date) {
        None => {
            fail!(
                "/posting_date".into(),
                "no_period",
                format!("no accounting period of {} holds {date}", company.name),
            );
            None
        }
        Some(p) if !p.open => {
            fail!(
                "/posting_date".into(),
                "period_closed",
                format!(
                    "the accounting period {} ({} to {}) is closed",
                    p.name, p.start, p.end
                ),
            );
            None
        }
        Some(p) => {
            // On PostgreSQL a close may commit between the read above and this commit: a
            // share lock on the period row waits for it, and the re-read sees its status.
            if lock_period(conn, scope, &p.id, "FOR SHARE")
                .await?
                .as_deref()
                == Some("Closed")
            {
                fail!(
                    "/posting_date".into(),
                    "period_closed",
                    format!(
                        "the accounting period {} ({} to {}) is closed",
                        p.name, p.start, p.end
                    ),
                );
            }
            Some(p.id.clone())
        }
    };
    let lines = draft_lines(doc);
    if lines.len() < 2 {
        fail!(
            "/lines".into(),
            "too_few_lines",
            "a journal entry needs at least two lines".into(),
        );
    }
    let ids: Vec<&str> = lines.iter().map(|l| l.account.as_str()).collect();
    let accounts = load_accounts_by_id(conn, scope, &ids).await?;
    let mut postings = Vec::with_capacity(lines.len() + 1);
    let (mut total_debit, mut total_credit, mut converted) = (0i64, 0i64, 0i64);
    for (i, line) in lines.iter().enumerate() {
        let at = |field: &str| format!("/lines/{i}/{field}");
        match accounts.get(&line.account) {
            None => fail!(
                at("account"),
                "unknown_account",
                format!("account `{}` does not exist", line.account),
            ),
            Some(a) if a.company != company.id => fail!(
                at("account"),
                "other_company",
                format!("account {} belongs to another company", a.path),
            ),
            Some(a) if a.is_group => fail!(
                at("account"),
                "group_account",
                format!("account {} is a group; post to one of its leaves", a.path),
            ),
            Some(a) if a.frozen => fail!(
                at("account"),
                "frozen_account",
                format!("account {} is frozen", a.path),
            ),
            Some(_) => {}
        }
        let (side_debit, amount, currency) = match (&line.debit, &line.credit) {
            (Some((d, c)), None) => (true, *d, c.clone()),
            (None, Some((d, c))) => (false, *d, c.clone()),
            (Some((d, c)), Some((0, _))) => (true, *d, c.clone()),
            (Some((0, _)), Some((d, c))) => (false, *d, c.clone()),
            (None, None) => {
                fail!(
                    at("debit"),
                    "no_amount",
                    "a line needs a debit or a credit".into(),
                );
                continue;
            }
            (Some(_), Some(_)) => {
                fail!(
                    at("credit"),
                    "both_sides",
                    "a line has a debit or a credit, not both".into(),
                );
                continue;
            }
        };
        if amount < 0 {
            fail!(
                at(if side_debit { "debit" } else { "credit" }),
                "negative",
                "amounts are not negative: use the other side".into(),
            );
            continue;
        }
        if amount == 0 {
            fail!(
                at(if side_debit { "debit" } else { "credit" }),
                "zero_amount",
                "a line moves an amount: its debit or credit is not zero".into(),
            );
            continue;
        }
        if let Some(a) = accounts.get(&line.account)
            && let Some(account_currency) = &a.currency
            && *account_currency != currency
        {
            fail!(
                at(if side_debit { "debit" } else { "credit" }),
                "wrong_currency",
                format!(
                    "account {} takes {account_currency}, not {currency}",
                    a.path
                ),
            );
        }
        let mut rate_source = None;
        let rate = if currency == base {
            if line.rate.is_some_and(|r| r != RATE_ONE) {
                fail!(
                    at("exchange_rate"),
                    "wrong_rate",
                    format!("a {base} line of a {base} company has the rate 1"),
                );
            }
            RATE_ONE
        } else {
            match line.rate {
                Some(rate) => rate,
                None => match load_rate(conn, scope, &currency, &base, &date).await? {
                    Some((rate, source)) => {
                        rate_source = Some(source);
                        rate
                    }
                    None => {
                        fail!(
                            at("exchange_rate"),
                            "no_rate",
                            format!(
                                "no exchange rate {currency} to {base} on or before {date}; give one"
                            ),
                        );
                        continue;
                    }
                },
            }
        };
        if currency != base {
            converted += 1;
        }
        let Some(base_amount) = money::convert_currency(amount, &currency, rate, &base) else {
            fail!(
                at("exchange_rate"),
                "overflow",
                "the converted amount overflows".into(),
            );
            continue;
        };
        let posting = PostingLine {
            account: line.account.clone(),
            debit: if side_debit { base_amount } else { 0 },
            credit: if side_debit { 0 } else { base_amount },
            currency,
            debit_in_currency: if side_debit { amount } else { 0 },
            credit_in_currency: if side_debit { 0 } else { amount },
            party_type: line.party_type.clone(),
            party: line.party.clone(),
            cost_center: line.cost_center.clone(),
            remark: line.remark.clone(),
            rate: Some(rate),
            rate_source,
            rounding: false,
        };
        total_debit = total_debit.saturating_add(posting.debit);
        total_credit = total_credit.saturating_add(posting.credit);
        postings.push(posting);
    }
    if errors.is_empty() && total_debit == 0 && total_credit == 0 {
        // Lines in a foreign currency can round to nothing in the company's currency.
        fail!(
            "/lines".into(),
            "zero_amount",
            format!("the entry moves nothing in {base}: every amount converts to zero"),
        );
    }
    let difference = total_debit - total_credit;
    if errors.is_empty() && difference != 0 {
        if difference.abs() <= converted {
            match &company.rounding_account {
                Some(account) => postings.push(PostingLine::exchange_rounding(
                    account.clone(),
                    difference,
                    &base,
                    false,
                )),
                None => fail!(
                    "/lines".into(),
                    "no_rounding_account",
                    format!(
                        "a rounding difference of {} {base} needs the company's rounding account",
                        money::format_minor(difference.abs(), &base)
                    ),
                ),
            }
        } else {
            fail!(
                "/lines".into(),
                "unbalanced",
                format!(
                    "debits ({}) and credits ({}) differ by {} {base}",
                    money::format_minor(total_debit, &base),
                    money::format_minor(total_credit, &base),
                    money::format_minor(difference.abs(), &base)
                ),
            );
        }
    }
    if !errors.is_empty() {
        return Err(RepoError::Invalid(errors));
    }
    let voucher = Voucher {
        journal_entry: id.to_owned(),
        posting_date: date,
        period: period.unwrap_or_default(),
        lines: postings,
        is_reversal: false,
        is_closing: false,
    };
    Ok((company, voucher))
}

/// The reversal of a submitted entry's postings, dated as they were; refused when their
/// period is closed.
pub async fn reversal_voucher(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    id: &str,
    doc: &Map<String, Value>,
) -> Result<(Company, Voucher), RepoError> {
    let company_id = str_of(doc.get("company")).unwrap_or_default();
    let Some(company) = load_company(conn, scope, &company_id).await? else {
        return Err(invalid(
            "/company",
            "unknown_company",
            "the company does not exist",
        ));
    };
    // The entry's postings, read from the store in the order they were written (line
    // by line, so a reversal keeps each posting's line index); party, cost center and
    // remark are the lines', which the reversal's postings share.
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let entry = sql.arg(text(id));
    let reversal = sql.arg(Arg::Int(Some(store::kind::REVERSAL)));
    sql.text = format!(
        "SELECT ka.id, p.day, kp.id, p.debit, p.credit, kl.id, p.line_debit, p.line_credit, p.kind FROM ledger_posting p JOIN ledger_key ka ON ka.key = p.account JOIN ledger_key kp ON kp.key = p.period JOIN ledger_key kl ON kl.key = p.currency WHERE p.tenant_id = {tenant} AND p.journal_entry = {entry} AND p.kind & {reversal} = 0 ORDER BY p.seq"
    );
    let types = [
        SqlType::Text,
        SqlType::Int,
        SqlType::Text,
        SqlType::Int,
        SqlType::Int,
        SqlType::Text,
        SqlType::Int,
        SqlType::Int,
        SqlType::Int,
    ];
    let rows = conn.fetch(&sql, &types).await?;
    let periods = load_periods(conn, scope, &company.id).await?;
    let period_id = rows
        .first()
        .and_then(|r| cell_text(r.get(2)))
        .unwrap_or_default();
    let locked = lock_period(conn, scope, &period_id, "FOR SHARE").await?;
    if let Some(p) = periods.iter().find(|p| p.id == period_id)
        && (!p.open || locked.as_deref() == Some("Closed"))
    {
        return Err(invalid(
            "/posting_date",
            "period_closed",
            format!(
                "the accounting period {} is closed; its entries cannot be cancelled",
                p.name
            ),
        ));
    }
    let lines = rows
        .iter()
        .map(|r| PostingLine {
            account: cell_text(r.first()).unwrap_or_default(),
            debit: cell_int(r.get(4)),
            credit: cell_int(r.get(3)),
            currency: cell_text(r.get(5)).unwrap_or_default(),
            debit_in_currency: cell_int(r.get(7)),
            credit_in_currency: cell_int(r.get(6)),
            party_type: None,
            party: None,
            cost_center: None,
            remark: None,
            rate: None,
            rate_source: None,
            rounding: cell_int(r.get(8)) & store::kind::ROUNDING != 0,
        })
        .collect();
    let posting_date = rows
        .first()
        .map(|r| crate::dates::format_day_number(cell_int(r.get(1))))
        .unwrap_or_default();
    Ok((
        company,
        Voucher {
            journal_entry: id.to_owned(),
            posting_date,
            period: period_id,
            lines,
            is_reversal: true,
            is_closing: false,
        },
    ))
}
