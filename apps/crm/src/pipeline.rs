//! The sales pipeline: a company's open and won opportunities (every stage but Lost) by
//! stage and month of expected close, with their count, amount and weighted amount in the
//! company's currency.
//!
//! Amounts are exact minor units. Each opportunity's amount is converted into the
//! company's currency at the stored rate of its expected close date (the latest on or
//! before it, as the ledger converts), rounded half away from zero to the minor unit;
//! its weighted amount is that times its probability, rounded the same way. A row's and
//! the totals' figures are sums of the opportunities', so the rows add up to the totals
//! to the minor unit.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use accounting::ledger::{load_company, load_rate};
use accounting::money::{RATE_ONE, convert_currency, format_minor};
use prefiq_data::entity::repo::{FieldError, RepoError, Repository, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};
use serde_json::{Value, json};

use crate::checks::{CERTAIN, default_probability, stage_order};

/// The stage of the opportunities the pipeline leaves out.
pub const LOST: &str = "Lost";

/// One opportunity as the report reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opportunity {
    /// Its name (`OPP-00001`), to say which one a problem is about.
    pub name: String,
    /// Its stage.
    pub stage: String,
    /// Its probability in hundredths of a percent; the stage's when empty.
    pub probability: Option<i64>,
    /// Its expected close date, `YYYY-MM-DD`.
    pub expected_close_date: String,
    /// Its amount in minor units of `currency`; none is zero.
    pub amount: Option<i64>,
    /// The amount's currency; the company's when empty.
    pub currency: Option<String>,
}

/// The figures of a row, or of the totals, in minor units of the company's currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// How many opportunities.
    pub count: u64,
    /// Their amounts.
    pub amount: i64,
    /// Their amounts, each weighted by its probability.
    pub weighted_amount: i64,
}

impl Figures {
    /// Adds one opportunity's amount and weighted amount; `None` on overflow.
    fn add(&mut self, amount: i64, weighted: i64) -> Option<()> {
        self.count += 1;
        self.amount = self.amount.checked_add(amount)?;
        self.weighted_amount = self.weighted_amount.checked_add(weighted)?;
        Some(())
    }
}

/// The pipeline: its rows by (stage, month) in pipeline order, and the totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pipeline {
    /// `((stage, month), figures)`, by stage in pipeline order, then by month.
    pub rows: Vec<((String, String), Figures)>,
    /// The sums of the rows.
    pub totals: Figures,
}

/// `amount` weighted by `probability` (hundredths of a percent), rounded half away from
/// zero to the minor unit; `None` on overflow.
pub fn weighted(amount: i64, probability: i64) -> Option<i64> {
    let numerator = i128::from(amount).checked_mul(i128::from(probability))?;
    let denominator = i128::from(CERTAIN);
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    let rounded = if remainder.abs() * 2 >= denominator {
        quotient + numerator.signum()
    } else {
        quotient
    };
    i64::try_from(rounded).ok()
}

fn invalid(pointer: &str, code: &'static str, message: impl Into<String>) -> RepoError {
    RepoError::Invalid(vec![FieldError {
        pointer: pointer.to_owned(),
        code,
        message: message.into(),
    }])
}

/// The rate of one unit of `from` in `to` as of `date`, as `rates` hold them.
type Rates = HashMap<(String, String), Option<i64>>;

/// Sums `opportunities` into the pipeline in `base`, each converted at its rate of
/// `rates` (keyed by currency and expected close date; the base needs none).
pub fn tally(
    opportunities: &[Opportunity],
    base: &str,
    rates: &Rates,
) -> Result<Pipeline, RepoError> {
    let mut cells: BTreeMap<(usize, String), (String, Figures)> = BTreeMap::new();
    let mut totals = Figures::default();
    let too_large = || invalid("", "out_of_range", "the pipeline's sums are too large");
    for o in opportunities {
        let Some(order) = stage_order(&o.stage).filter(|_| o.stage != LOST) else {
            continue;
        };
        let currency = o.currency.as_deref().unwrap_or(base);
        let amount = o.amount.unwrap_or(0);
        let rate = if currency == base {
            Some(RATE_ONE)
        } else {
            rates
                .get(&(currency.to_owned(), o.expected_close_date.clone()))
                .copied()
                .flatten()
        };
        let Some(rate) = rate else {
            return Err(invalid(
                "",
                "missing_rate",
                format!(
                    "there is no exchange rate from {currency} to {base} on or before {} for {}: add one (exchange_rate) to see the pipeline in {base}",
                    o.expected_close_date, o.name
                ),
            ));
        };
        let converted = convert_currency(amount, currency, rate, base).ok_or_else(too_large)?;
        let probability = o
            .probability
            .or_else(|| default_probability(&o.stage))
            .unwrap_or(0);
        let weighted = weighted(converted, probability).ok_or_else(too_large)?;
        let month = o
            .expected_close_date
            .get(..7)
            .unwrap_or_default()
            .to_owned();
        let (_, figures) = cells
            .entry((order, month))
            .or_insert_with(|| (o.stage.clone(), Figures::default()));
        figures.add(converted, weighted).ok_or_else(too_large)?;
        totals.add(converted, weighted).ok_or_else(too_large)?;
    }
    Ok(Pipeline {
        rows: cells
            .into_iter()
            .map(|((_, month), (stage, figures))| ((stage, month), figures))
            .collect(),
        totals,
    })
}

/// The opportunities of `company` in the pipeline (every stage but Lost) whose expected
/// close date is within `from..=to`.
async fn load_opportunities(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    company: &str,
    (from, to): (Option<&str>, Option<&str>),
) -> Result<Vec<Opportunity>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(Arg::Text(Some(scope.tenant().to_owned())));
    let company = sql.arg(Arg::Text(Some(company.to_owned())));
    let lost = sql.arg(Arg::Text(Some(LOST.to_owned())));
    let mut range = String::new();
    if let Some(from) = from {
        let from = sql.arg(Arg::Text(Some(from.to_owned())));
        range.push_str(&format!(" AND expected_close_date >= {from}"));
    }
    if let Some(to) = to {
        let to = sql.arg(Arg::Text(Some(to.to_owned())));
        range.push_str(&format!(" AND expected_close_date <= {to}"));
    }
    sql.text = format!(
        "SELECT name, stage, probability, expected_close_date, amount, amount_currency, currency FROM opportunity WHERE tenant_id = {tenant} AND company = {company} AND stage <> {lost} AND deleted_at IS NULL{range} ORDER BY expected_close_date, id"
    );
    let types = [
        SqlType::Text,
        SqlType::Text,
        SqlType::Int,
        SqlType::Text,
        SqlType::Int,
        SqlType::Text,
        SqlType::Text,
    ];
    let rows = conn.fetch(&sql, &types).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let text = |i: usize| match row.get(i) {
                Some(Cell::Text(t)) if !t.is_empty() => Some(t.clone()),
                _ => None,
            };
            let int = |i: usize| row.get(i).and_then(Cell::as_int);
            Opportunity {
                name: text(0).unwrap_or_default(),
                stage: text(1).unwrap_or_default(),
                probability: int(2),
                expected_close_date: text(3).unwrap_or_default(),
                amount: int(4),
                // The amount's own currency first; the opportunity's when it has none.
                currency: text(5).or_else(|| text(6)),
            }
        })
        .collect())
}

/// Checks a bound of the report: a date such as `2026-12-31`.
fn check_date(name: &str, value: &str) -> Result<(), RepoError> {
    if value.len() != 10 || accounting::dates::parse(value).is_none() {
        return Err(invalid(
            &format!("/{name}"),
            "wrong_type",
            format!("`{value}` is not a date such as 2026-12-31"),
        ));
    }
    Ok(())
}

/// The pipeline of `company` (its id, name or abbreviation) as the API answers it.
pub async fn report(
    repository: &Repository,
    scope: &TenantScope,
    company: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Value, RepoError> {
    for (name, value) in [("from", from), ("to", to)] {
        if let Some(value) = value {
            check_date(name, value)?;
        }
    }
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(invalid(
            "/from",
            "empty_range",
            format!("`from` ({from}) is after `to` ({to})"),
        ));
    }
    let (company, from, to) = (
        company.to_owned(),
        from.map(str::to_owned),
        to.map(str::to_owned),
    );
    let scope_for = scope.clone();
    repository
        .read(
            scope,
            Box::new(move |conn| {
                let (scope, key, from, to) =
                    (scope_for.clone(), company.clone(), from.clone(), to.clone());
                Box::pin(async move {
                    let Some(company) = load_company(conn, &scope, &key).await? else {
                        return Err(RepoError::NotFound {
                            entity: "company".into(),
                            id: key,
                        });
                    };
                    let base = company.base_currency.clone();
                    let opportunities = load_opportunities(
                        conn,
                        &scope,
                        &company.id,
                        (from.as_deref(), to.as_deref()),
                    )
                    .await?;
                    let mut rates = Rates::new();
                    for o in &opportunities {
                        let Some(currency) = o.currency.as_deref().filter(|c| *c != base) else {
                            continue;
                        };
                        let key = (currency.to_owned(), o.expected_close_date.clone());
                        if let Entry::Vacant(slot) = rates.entry(key) {
                            let date = &o.expected_close_date;
                            let rate = load_rate(conn, &scope, currency, &base, date).await?;
                            slot.insert(rate.map(|(rate, _)| rate));
                        }
                    }
                    let pipeline = tally(&opportunities, &base, &rates)?;
                    Ok(answer(&company, &pipeline, (from, to)))
                })
            }),
        )
        .await
}

/// The report's JSON: amounts as decimal strings of the company's currency.
fn answer(
    company: &accounting::ledger::Company,
    pipeline: &Pipeline,
    (from, to): (Option<String>, Option<String>),
) -> Value {
    let base = company.base_currency.as_str();
    let money = |v: i64| format_minor(v, base);
    json!({
        "company": company.id,
        "company_name": company.name,
        "currency": base,
        "from": from,
        "to": to,
        "rows": pipeline.rows.iter().map(|((stage, month), f)| json!({
            "stage": stage,
            "month": month,
            "count": f.count,
            "amount": money(f.amount),
            "weighted_amount": money(f.weighted_amount),
            "currency": base,
        })).collect::<Vec<_>>(),
        "totals": {
            "count": pipeline.totals.count,
            "amount": money(pipeline.totals.amount),
            "weighted_amount": money(pipeline.totals.weighted_amount),
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn weights_round_half_away_from_zero() {
        for (amount, probability, expected) in [
            (100_000, 5_000, Some(50_000)),
            // 0.05 at 10% is half a cent: away from zero.
            (5, 1_000, Some(1)),
            (-5, 1_000, Some(-1)),
            (4, 1_000, Some(0)),
            // 333.33 at 33.33% is 111.098889.
            (33_333, 3_333, Some(11_110)),
            (12_345, 10_000, Some(12_345)),
            (12_345, 0, Some(0)),
            (i64::MAX, 10_000, Some(i64::MAX)),
        ] {
            assert_eq!(
                weighted(amount, probability),
                expected,
                "{amount} at {probability}"
            );
        }
    }

    fn opportunity(stage: &str, date: &str, amount: i64, currency: &str) -> Opportunity {
        Opportunity {
            name: format!("OPP-{date}"),
            stage: stage.into(),
            probability: None,
            expected_close_date: date.into(),
            amount: Some(amount),
            currency: Some(currency.into()),
        }
    }

    /// A row as (stage, month, count, amount, weighted amount).
    type Row = (String, String, u64, i64, i64);

    fn row(stage: &str, month: &str, count: u64, amount: i64, weighted: i64) -> Row {
        (stage.into(), month.into(), count, amount, weighted)
    }

    /// Tallies `opportunities` in USD: `Ok(rows)` in this order, adding up to the
    /// totals, or `Err(code)` of the refusal.
    fn check(opportunities: &[Opportunity], rates: &Rates, expected: Result<Vec<Row>, &str>) {
        let got = tally(opportunities, "USD", rates).map(|p| {
            let rows: Vec<Row> = p
                .rows
                .iter()
                .map(|((s, m), f)| row(s, m, f.count, f.amount, f.weighted_amount))
                .collect();
            let sum = rows
                .iter()
                .fold((0, 0, 0), |(c, a, w), r| (c + r.2, a + r.3, w + r.4));
            assert_eq!(
                sum,
                (p.totals.count, p.totals.amount, p.totals.weighted_amount)
            );
            rows
        });
        match (got, expected) {
            (Ok(rows), Ok(expected)) => assert_eq!(rows, expected),
            (Err(RepoError::Invalid(items)), Err(code)) => assert_eq!(items[0].code, code),
            (got, expected) => panic!("{got:?} is not {expected:?}"),
        }
    }

    #[test]
    fn the_pipeline_groups_by_stage_and_month_in_the_base_currency() {
        let mut rates = Rates::new();
        rates.insert(("EUR".into(), "2026-12-15".into()), Some(1_100_000_000));
        rates.insert(("EUR".into(), "2027-01-10".into()), None);
        check(&[], &rates, Ok(vec![]));
        check(
            &[
                opportunity("Proposal", "2026-11-30", 100_000, "USD"),
                opportunity("Proposal", "2026-11-01", 33_333, "USD"),
                opportunity("Prospecting", "2026-12-31", 1_005, "USD"),
                // 1,000.01 EUR at 1.1 is 1,100.011 USD: 1,100.01; at 75%, 825.0075: 825.01.
                opportunity("Negotiation", "2026-12-15", 100_001, "EUR"),
                opportunity("Won", "2026-12-01", 250_000, "USD"),
                // Lost ones are not in the pipeline (the query leaves them out already).
                opportunity("Lost", "2026-12-01", 999_999, "USD"),
            ],
            &rates,
            Ok(vec![
                row("Prospecting", "2026-12", 1, 1_005, 101),
                row("Proposal", "2026-11", 2, 133_333, 66_667),
                row("Negotiation", "2026-12", 1, 110_001, 82_501),
                row("Won", "2026-12", 1, 250_000, 250_000),
            ]),
        );
        check(
            &[opportunity("Proposal", "2027-01-10", 100, "EUR")],
            &rates,
            Err("missing_rate"),
        );
        let given = Opportunity {
            probability: Some(3_333),
            ..opportunity("Proposal", "2026-11-30", 33_333, "USD")
        };
        check(
            &[given],
            &rates,
            Ok(vec![row("Proposal", "2026-11", 1, 33_333, 11_110)]),
        );
    }
}
