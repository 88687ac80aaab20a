//! Reposting: a movement posted before later movements of its bin (a backdated entry,
//! or the cancel of an entry that has later ones) changes what those later issues cost.
//!
//! The ledger stays append-only: each later issue whose cost changes gets a repost row
//! (`adjusts` = the key of the row it corrects, quantity change zero, value change the
//! correction, and the bin's figures after it), dated like the row it corrects. A row's
//! value is then its own plus its repost rows', which is what replay reads
//! ([`crate::ledger::bin_rows`]), and the stock value at any date stays the sum of the
//! value changes up to it. A transfer's target received what its source gave, so a
//! changed transfer cost is carried to the target's row and its bin reposted in turn, in
//! the same job, until no cost changes.
//!
//! Each voucher whose values changed has its postings redone by a reversing-and-reposting
//! pair: its journal entry is reversed (`accounting::documents::reverse_document`) and a
//! new one posted at the same date with the new values, named after the voucher with a
//! `-R<n>` suffix; the voucher then names the new entry. Nothing is edited.
//!
//! A later issue that the change would leave short is refused at `/posting_date` (code
//! `negative_later`) unless its item allows negative stock: the whole submit or cancel is
//! refused, and nothing is written.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use accounting::documents::{DocumentPosting, post_document, reverse_document};
use prefiq_data::entity::repo::{RepoError, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Conn, Sql, SqlType};
use prefiq_data::entity::value::{civil_now, format_scaled};

use crate::bins;
use crate::entry::{ItemRule, Purpose, invalid, item_rules, line_postings, rows_by_id, shares};
use crate::ledger::{self, LedgerRow, bin_rows, movement_of};
use crate::valuation::{Bin, Method, Outcome, ValuationError};
use crate::voucher;

/// The most bin passes one repost makes: transfers back and forth converge well before.
pub const PASSES_MAX: usize = 10_000;

/// A bin to repost: its item and warehouse, the position (day, key) after which its rows
/// are revalued, and value changes to carry onto rows of it (transfer targets).
pub(crate) struct Work {
    pub(crate) item: String,
    pub(crate) warehouse: String,
    pub(crate) after: (i64, i64),
    pub(crate) carried: HashMap<i64, i64>,
}

fn text(value: &str) -> Arg {
    Arg::Text(Some(value.to_owned()))
}

/// The repost row correcting `row` by `delta`, with the bin's figures after it.
fn repost_row(
    item: &str,
    warehouse: &str,
    row: &ledger::BinRow,
    delta: i64,
    out: &Outcome,
) -> LedgerRow {
    LedgerRow {
        company: row.company.clone(),
        item: item.to_owned(),
        warehouse: warehouse.to_owned(),
        posting_date: row.posting_date.clone(),
        day: row.day,
        voucher_type: row.voucher_type.clone(),
        batch: None,
        voucher_id: row.voucher_id.clone(),
        voucher_line: row.voucher_line,
        is_reversal: false,
        adjusts: Some(row.seq),
        qty_change: 0,
        incoming_rate: 0,
        valuation_rate: out.valuation_rate,
        qty_after: out.qty_after,
        stock_value_after: out.stock_value_after,
        stock_value_change: delta,
    }
}

/// The rows a change of `delta` in the cost of an outgoing row is carried to, with
/// their share: a transfer's row into its target (all of it), or what a manufacture
/// produced (shared by quantity). Each is (key, item, warehouse, day, carried value).
async fn receivers(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    voucher: &str,
    line: i64,
    source: &str,
    delta: i64,
) -> Result<Vec<(i64, String, String, i64, i64)>, RepoError> {
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let v = sql.arg(text(voucher));
    sql.text = format!(
        "SELECT seq, item, warehouse, day, qty_change, voucher_line FROM stock_ledger_entry WHERE tenant_id = {tenant} AND voucher_id = {v} AND qty_change > 0 AND is_reversal = 0 AND adjusts IS NULL ORDER BY seq"
    );
    use SqlType::{Int, Text};
    let rows = conn.fetch(&sql, &[Int, Text, Text, Int, Int, Int]).await?;
    let incoming: Vec<(i64, String, String, i64, i64, i64)> = rows
        .iter()
        .map(|r| {
            let n = |k: usize| r.get(k).and_then(Cell::as_int).unwrap_or(0);
            let t = |k: usize| match r.get(k) {
                Some(Cell::Text(s)) => s.clone(),
                _ => String::new(),
            };
            (n(0), t(1), t(2), n(3), n(4), n(5))
        })
        .collect();
    if let Some(target) = incoming.iter().find(|r| r.5 == line && r.2 != source) {
        return Ok(vec![(
            target.0,
            target.1.clone(),
            target.2.clone(),
            target.3,
            -delta,
        )]);
    }
    let weights: Vec<i64> = incoming.iter().map(|r| r.4).collect();
    Ok(incoming
        .iter()
        .zip(shares(-delta, &weights))
        .map(|(r, share)| (r.0, r.1.clone(), r.2.clone(), r.3, share))
        .collect())
}

/// Reposts the bins of `work` and those their transfers reach; the vouchers whose values
/// changed, but `skip` (the voucher being submitted or cancelled).
pub(crate) async fn run(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    rules: &HashMap<String, ItemRule>,
    mut work: Vec<Work>,
    skip: &str,
) -> Result<BTreeSet<String>, RepoError> {
    let mut rules = rules.clone();
    let mut changed = BTreeSet::new();
    let mut passes = 0;
    let now = civil_now();
    while let Some(job) = work.pop() {
        passes += 1;
        if passes > PASSES_MAX {
            return Err(invalid(
                "/posting_date",
                "repost_too_deep",
                "reposting the later entries does not settle",
            ));
        }
        let rule = rules.get(&job.item).copied().unwrap_or(ItemRule {
            method: Method::Fifo,
            allow_negative: true,
        });
        let rows = bin_rows(conn, scope, &job.item, &job.warehouse, None).await?;
        let mut bin = Bin::new(rule.method, true);
        let mut reposts = Vec::new();
        for row in &rows {
            let later = (row.day, row.seq) > job.after;
            if later {
                bin.set_allow_negative(rule.allow_negative);
            }
            let carried = job.carried.get(&row.seq).copied().unwrap_or(0);
            let Some(movement) = movement_of(row.qty_change, row.value + carried) else {
                continue;
            };
            let out = bin.apply(movement).map_err(|e| match e {
                ValuationError::NegativeStock { held, wanted } => invalid(
                    "/posting_date",
                    "negative_later",
                    format!(
                        "a later entry ({}) would take {} of the item out of a warehouse holding {} on {}",
                        row.voucher_id,
                        format_scaled(wanted, 3),
                        format_scaled(held, 3),
                        row.posting_date
                    ),
                ),
                other => invalid("/posting_date", "overflow", other.to_string()),
            })?;
            if !later {
                continue;
            }
            let delta = out.value_change - row.value;
            if delta == 0 {
                continue;
            }
            reposts.push(repost_row(&job.item, &job.warehouse, row, delta, &out));
            if row.voucher_id != skip {
                changed.insert(row.voucher_id.clone());
            }
            if row.qty_change < 0 {
                // A transfer's target received what the source gave, and a
                // manufacture's products what it consumed: they follow.
                let carried = receivers(
                    conn,
                    scope,
                    &row.voucher_id,
                    row.voucher_line,
                    &job.warehouse,
                    delta,
                )
                .await?;
                for (seq, item, warehouse, day, share) in carried {
                    if !rules.contains_key(&item) {
                        rules.extend(item_rules(conn, scope, &[item.as_str()]).await?);
                    }
                    work.push(Work {
                        item,
                        warehouse,
                        after: (day, seq - 1),
                        carried: HashMap::from([(seq, share)]),
                    });
                }
            }
        }
        ledger::append(conn, scope, &reposts, &now).await?;
        // The replay went through every live row: the bin's state after them is cached.
        if let Some(last) = rows.last() {
            bins::store(
                conn,
                scope,
                (&job.item, &job.warehouse, &last.company),
                rule.method,
                last.day,
                &bin,
            )
            .await?;
        } else {
            bins::forget(conn, scope, &job.item, &job.warehouse).await?;
        }
    }
    Ok(changed)
}

/// Redoes a voucher's postings from its rows as reposts left them: reverses its journal
/// entry and posts a new one, which the voucher then names.
pub(crate) async fn repost_postings(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    voucher: &str,
) -> Result<(), RepoError> {
    let rows = ledger::voucher_rows(conn, scope, voucher).await?;
    let Some(kind) = rows
        .first()
        .and_then(|(_, r)| voucher::by_type(&r.voucher_type))
    else {
        return Ok(());
    };
    let purpose_field = if kind.fixed_purpose().is_some() {
        "company"
    } else {
        "purpose"
    };
    let heads = rows_by_id(
        conn,
        scope,
        kind.entity,
        &[
            "name",
            purpose_field,
            "company",
            "posting_date",
            kind.account_field,
            kind.journal_field,
        ],
        &[voucher],
    )
    .await?;
    let Some(head) = heads.get(voucher) else {
        return Ok(());
    };
    let cell = |k: usize| head.get(k).cloned().flatten().unwrap_or_default();
    let (name, company, posting_date, expense) = (cell(0), cell(2), cell(3), cell(4));
    let Some(purpose) = kind.fixed_purpose().or_else(|| Purpose::of(&cell(1))) else {
        return Ok(());
    };
    let Some(found) = accounting::ledger::load_company(conn, scope, &company).await? else {
        return Ok(());
    };
    let warehouses: Vec<&str> = rows.iter().map(|(_, r)| r.warehouse.as_str()).collect();
    let accounts = rows_by_id(conn, scope, "warehouse", &["stock_account"], &warehouses).await?;
    let account = |w: &str| {
        accounts
            .get(w)
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default()
    };
    // Per line: its source's account and value out, its target's account and value in.
    let mut lines: BTreeMap<i64, (String, String, i64, i64)> = BTreeMap::new();
    for (_, row) in &rows {
        let entry = lines.entry(row.voucher_line).or_default();
        if row.qty_change < 0 {
            entry.0 = account(&row.warehouse);
            entry.2 = row.stock_value_change;
        } else {
            entry.1 = account(&row.warehouse);
            entry.3 = row.stock_value_change;
        }
    }
    let mut postings = Vec::new();
    for (i, (source, target, out, inward)) in &lines {
        let value = match purpose {
            Purpose::Receipt => *inward,
            Purpose::Issue | Purpose::Transfer => -*out,
            Purpose::Manufacture if !source.is_empty() => -*out,
            Purpose::Manufacture => *inward,
        };
        postings.extend(line_postings(
            kind,
            purpose,
            usize::try_from(*i).unwrap_or(0),
            (source, target, &expense),
            value,
            &format!("{name} line {} (reposted)", i + 1),
        ));
    }
    let old = cell(5);
    if !old.is_empty() {
        reverse_document(conn, scope, &old, &company).await?;
    }
    let mut entry = None;
    if !postings.is_empty() {
        let name = kind.journal_name(&name);
        let count = match repost_number(conn, scope, &old, &name).await? {
            Some(number) => number,
            None => {
                // No entry to follow (the voucher's last values posted nothing): count
                // the reposts of its name, a scan, but a rare one.
                let mut sql = Sql::default();
                let tenant = sql.arg(text(scope.tenant()));
                let like = sql.arg(text(&format!("{name}-R%")));
                sql.text = format!(
                    "SELECT CAST(COUNT(*) AS BIGINT) FROM journal_entry WHERE tenant_id = {tenant} AND name LIKE {like}"
                );
                conn.fetch(&sql, &[SqlType::Int])
                    .await?
                    .first()
                    .and_then(|r| r.first().and_then(Cell::as_int))
                    .unwrap_or(0)
            }
        };
        let posting = DocumentPosting {
            entry_type: kind.voucher_type,
            name: format!("{name}-R{}", count + 1),
            company: found.id.clone(),
            posting_date,
            currency: found.base_currency.clone(),
            exchange_rate: None,
            lines: postings,
        };
        entry = Some(post_document(conn, scope, &posting).await?);
    }
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let id = sql.arg(text(voucher));
    let e = sql.arg(Arg::Text(entry));
    sql.text = format!(
        "UPDATE {} SET {} = {e} WHERE tenant_id = {tenant} AND id = {id}",
        kind.entity, kind.journal_field
    );
    conn.execute(&sql).await?;
    Ok(())
}

/// The number of the repost the voucher's current entry is (`NAME` is 0, `NAME-R3` is
/// 3), read from that entry by its key; `None` when it has none.
async fn repost_number(
    conn: &mut Conn<'_>,
    scope: &TenantScope,
    entry: &str,
    name: &str,
) -> Result<Option<i64>, RepoError> {
    if entry.is_empty() {
        return Ok(None);
    }
    let mut sql = Sql::default();
    let tenant = sql.arg(text(scope.tenant()));
    let id = sql.arg(text(entry));
    sql.text = format!("SELECT name FROM journal_entry WHERE tenant_id = {tenant} AND id = {id}");
    let rows = conn.fetch(&sql, &[SqlType::Text]).await?;
    let Some(Some(Cell::Text(current))) = rows.first().map(|r| r.first()) else {
        return Ok(None);
    };
    Ok(Some(
        current
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix("-R"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    ))
}
