//! Export: a company's submitted entries as a journal.

use super::*;

/// Writes a company's submitted entries in the journal format: account directives, the
/// exchange rates as `P` directives, then one transaction per entry in date order. An
/// entry whose lines balance in each currency is written in those currencies; one that
/// balances only in company currency is written in company currency, with each line's own
/// amount in a comment.
pub async fn export(
    books: &Books,
    scope: &TenantScope,
    company: &str,
    out: &mut (dyn std::io::Write + Send),
) -> Result<u64, ImportError> {
    let company = books.company(scope, company).await?;
    let accounts = books.accounts(scope, &company.id).await?;
    let paths: HashMap<String, String> = accounts
        .iter()
        .map(|a| (a.id.clone(), a.path.clone()))
        .collect();
    let io = |e: std::io::Error| ImportError::Io {
        path: "output".into(),
        message: e.to_string(),
    };
    let mut head = String::new();
    for a in accounts.iter().filter(|a| !a.is_group) {
        let _ = journal::write_account(&mut head, &a.path);
    }
    out.write_all(head.as_bytes()).map_err(io)?;
    let repository = books.repository()?.clone();
    let scope_for = scope.clone();
    let company_id = company.id.clone();
    let base = company.base_currency.clone();
    // Read in pages of entries so memory stays bounded whatever the size of the books.
    let mut after: Option<(String, String)> = None;
    let mut written = 0u64;
    {
        let scope2 = scope_for.clone();
        let base2 = base.clone();
        let rates = repository
            .read(scope, Box::new(move |conn| {
                let scope = scope2.clone();
                let base = base2.clone();
                Box::pin(async move {
                    let mut sql = Sql::default();
                    let tenant = sql.arg(text(scope.tenant()));
                    let to = sql.arg(text(&base));
                    sql.text = format!("SELECT from_code, date, rate FROM exchange_rate WHERE tenant_id = {tenant} AND to_code = {to} AND deleted_at IS NULL ORDER BY date, from_code");
                    conn.fetch(&sql, &[SqlType::Text, SqlType::Text, SqlType::Int]).await.map_err(RepoError::from)
                })
            }))
            .await?;
        let mut text_out = String::new();
        for r in rates {
            let currency = cell_text(r.first()).unwrap_or_default();
            let quantity = journal::Quantity {
                mantissa: i128::from(cell_int(r.get(2))),
                scale: RATE_SCALE,
            };
            let _ = journal::write_price(
                &mut text_out,
                &cell_text(r.get(1)).unwrap_or_default(),
                &currency,
                &journal::Amount::new(base.clone(), quantity),
            );
        }
        out.write_all(text_out.as_bytes()).map_err(io)?;
    }
    loop {
        let scope = scope_for.clone();
        let company_id = company_id.clone();
        let after_for = after.clone();
        let page = repository
            .read(&scope_for, Box::new(move |conn| {
                let scope = scope.clone();
                let company_id = company_id.clone();
                let after = after_for.clone();
                Box::pin(async move {
                    let mut sql = Sql::default();
                    let tenant = sql.arg(text(scope.tenant()));
                    let company = sql.arg(text(&company_id));
                    let cursor = match &after {
                        Some((date, name)) => {
                            let d = sql.arg(text(date));
                            let n = sql.arg(text(name));
                            format!(" AND (j.posting_date > {d} OR (j.posting_date = {d} AND j.name > {n}))")
                        }
                        None => String::new(),
                    };
                    sql.text = format!(
                        "SELECT j.id, j.name, j.posting_date, j.title FROM journal_entry j WHERE j.tenant_id = {tenant} AND j.company = {company} AND j.docstatus = 1 AND j.deleted_at IS NULL{cursor} ORDER BY j.posting_date, j.name LIMIT 2000"
                    );
                    let entries = conn.fetch(&sql, &[SqlType::Text; 4]).await?;
                    let mut out = Vec::with_capacity(entries.len());
                    for e in entries {
                        let id = cell_text(e.first()).unwrap_or_default();
                        let mut sql = Sql::default();
                        let tenant = sql.arg(text(scope.tenant()));
                        let entry = sql.arg(text(&id));
                        sql.text = format!("SELECT account, debit, credit, line_debit_currency, line_debit, line_credit FROM gl_entry WHERE tenant_id = {tenant} AND journal_entry = {entry} AND is_reversal = FALSE ORDER BY created_at, id");
                        let lines = conn.fetch(&sql, &[SqlType::Text, SqlType::Int, SqlType::Int, SqlType::Text, SqlType::Int, SqlType::Int]).await?;
                        out.push((e, lines));
                    }
                    Ok(out)
                })
            }))
            .await?;
        if page.is_empty() {
            break;
        }
        let mut text_out = String::new();
        for (entry, lines) in &page {
            let date = cell_text(entry.get(2)).unwrap_or_default();
            let title = cell_text(entry.get(3))
                .or_else(|| cell_text(entry.get(1)))
                .unwrap_or_default();
            let mut per_currency: HashMap<String, i64> = HashMap::new();
            for l in lines {
                *per_currency
                    .entry(cell_text(l.get(3)).unwrap_or_default())
                    .or_default() += cell_int(l.get(4)) - cell_int(l.get(5));
            }
            let in_currencies = per_currency.values().all(|v| *v == 0);
            let postings: Vec<(String, journal::Amount)> = lines
                .iter()
                .filter(|l| !in_currencies || cell_int(l.get(4)) != 0 || cell_int(l.get(5)) != 0)
                .map(|l| {
                    let account = paths
                        .get(&cell_text(l.first()).unwrap_or_default())
                        .cloned()
                        .unwrap_or_default();
                    let (currency, amount) = if in_currencies {
                        (
                            cell_text(l.get(3)).unwrap_or_default(),
                            cell_int(l.get(4)) - cell_int(l.get(5)),
                        )
                    } else {
                        (base.clone(), cell_int(l.get(1)) - cell_int(l.get(2)))
                    };
                    let quantity = journal::Quantity {
                        mantissa: i128::from(amount),
                        scale: currency_scale(&currency),
                    };
                    (account, journal::Amount::new(currency, quantity))
                })
                .collect();
            let _ = journal::write_transaction(&mut text_out, &date, &title, &postings);
            written += 1;
        }
        out.write_all(text_out.as_bytes()).map_err(io)?;
        after = page.last().map(|(e, _)| {
            (
                cell_text(e.get(2)).unwrap_or_default(),
                cell_text(e.get(1)).unwrap_or_default(),
            )
        });
    }
    Ok(written)
}
