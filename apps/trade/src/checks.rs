//! The checks of the trade app's master data that its schemas cannot say, as validate
//! hooks: each refusal starts with the JSON pointer of the field at fault, which the API
//! answers as a 422 problem naming it.
//!
//! - A customer's receivable account is a Receivable leaf of its company; a supplier's
//!   payable account a Payable one.
//! - An item's income account is an Income leaf and its expense account an Expense leaf,
//!   of the item's company; its other units each hold more than zero stock units, once.
//! - A tax template's lines each post into a Tax leaf of its company, once, at a rate
//!   from 0 to 100%.
//! - A contact's or an address's party exists.
//! - An item price is in its price list's currency and not negative.

use std::collections::HashSet;
use std::sync::Arc;

use accounting::ledger::{Account, RootType, load_accounts_by_id};
use prefiq::RegisterContext;
use prefiq_data::entity::repo::{EntityEvent, EntityHook, HookInput, TenantScope};
use prefiq_data::entity::sql::{Arg, Cell, Sql, SqlType};
use prefiq_data::entity::value::parse_scaled;
use serde_json::{Map, Value};

use crate::TradeRepository;
use crate::taxes::{RATE_SCALE, TAXES_MAX};

/// A refusal of the field at `pointer`.
fn refuse(pointer: impl std::fmt::Display, message: impl std::fmt::Display) -> String {
    format!("{pointer}: {message}")
}

fn str_field<'a>(doc: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    doc.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// What an account must be for the field that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountRule {
    /// Of this account type (`Receivable`, `Payable`, `Tax`).
    Type(&'static str),
    /// Of this root type.
    Root(RootType),
}

/// Checks `account` (or its absence) for the field at `pointer` of a document of
/// `company`.
pub fn check_account(
    pointer: &str,
    id: &str,
    account: Option<&Account>,
    company: &str,
    rule: AccountRule,
) -> Result<(), String> {
    let Some(account) = account else {
        return Err(refuse(pointer, format!("account `{id}` does not exist")));
    };
    if account.company != company {
        return Err(refuse(
            pointer,
            format!("the account {} belongs to another company", account.path),
        ));
    }
    if account.is_group {
        return Err(refuse(
            pointer,
            format!(
                "the account {} is a group; documents post to leaf accounts",
                account.path
            ),
        ));
    }
    match rule {
        AccountRule::Type(kind) if account.account_type.as_deref() != Some(kind) => Err(refuse(
            pointer,
            format!("the account {} is not a {kind} account", account.path),
        )),
        AccountRule::Root(root) if account.root_type != root => Err(refuse(
            pointer,
            format!(
                "the account {} is not an {} account",
                account.path,
                root.as_str()
            ),
        )),
        _ => Ok(()),
    }
}

/// The accounts of these ids.
async fn accounts(
    repository: &TradeRepository,
    scope: &TenantScope,
    ids: Vec<String>,
) -> Result<std::collections::HashMap<String, Account>, String> {
    let scope_for = scope.clone();
    repository
        .get()?
        .read(
            scope,
            Box::new(move |conn| {
                let (ids, scope) = (ids.clone(), scope_for.clone());
                Box::pin(async move {
                    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                    load_accounts_by_id(conn, &scope, &ids).await
                })
            }),
        )
        .await
        .map_err(|e| e.to_string())
}

/// One live row's `column` of `table` (an entity of this app or accounting), or `None`
/// when there is no such row. `Some(None)`: the row exists and the column is empty.
async fn column_of(
    repository: &TradeRepository,
    scope: &TenantScope,
    table: &'static str,
    column: &'static str,
    id: &str,
) -> Result<Option<Option<String>>, String> {
    let (tenant, id) = (scope.tenant().to_owned(), id.to_owned());
    let rows = repository
        .get()?
        .read(
            scope,
            Box::new(move |conn| {
                let mut sql = Sql::default();
                let t = sql.arg(Arg::Text(Some(tenant.clone())));
                let i = sql.arg(Arg::Text(Some(id.clone())));
                sql.text = format!(
                    "SELECT {column} FROM {table} WHERE tenant_id = {t} AND id = {i} AND deleted_at IS NULL"
                );
                Box::pin(async move { Ok(conn.fetch(&sql, &[SqlType::Text]).await?) })
            }),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows.into_iter().next().map(|row| match row.first() {
        Some(Cell::Text(t)) => Some(t.clone()),
        _ => None,
    }))
}

/// A party's account: `receivable_account` of a customer, `payable_account` of a supplier.
async fn check_party(
    repository: &TradeRepository,
    input: &HookInput,
    field: &'static str,
    kind: &'static str,
) -> Result<(), String> {
    let (Some(id), Some(company)) = (
        str_field(&input.doc, field),
        str_field(&input.doc, "company"),
    ) else {
        return Ok(());
    };
    let found = accounts(repository, &input.scope, vec![id.to_owned()]).await?;
    check_account(
        &format!("/{field}"),
        id,
        found.get(id),
        company,
        AccountRule::Type(kind),
    )?;
    if let Some(days) = input.doc.get("payment_terms_days").and_then(Value::as_i64)
        && !(0..=3650).contains(&days)
    {
        return Err(refuse(
            "/payment_terms_days",
            format!("payment terms are from 0 to 3650 days, not {days}"),
        ));
    }
    let limit = input.doc.get("credit_limit").filter(|v| !v.is_null());
    if let Some(amount) = limit.and_then(|v| v.get("amount")).and_then(Value::as_str)
        && amount.starts_with('-')
    {
        return Err(refuse(
            "/credit_limit",
            "a credit limit is not negative; leave it empty for none",
        ));
    }
    if let Some(currency) = limit
        .and_then(|v| v.get("currency"))
        .and_then(Value::as_str)
    {
        let base = column_of(repository, &input.scope, "company", "currency", company)
            .await?
            .flatten();
        if let Some(base) = base
            && base != currency
        {
            return Err(refuse(
                "/credit_limit",
                format!("a credit limit is in the company's currency, {base}, not {currency}"),
            ));
        }
    }
    Ok(())
}

/// An item's accounts and units.
async fn check_item(repository: &TradeRepository, input: &HookInput) -> Result<(), String> {
    let doc = &input.doc;
    let accounts_named: Vec<(&str, &str, RootType)> = [
        ("income_account", RootType::Income),
        ("expense_account", RootType::Expense),
    ]
    .into_iter()
    .filter_map(|(field, root)| str_field(doc, field).map(|id| (field, id, root)))
    .collect();
    if !accounts_named.is_empty() {
        let Some(company) = str_field(doc, "company") else {
            return Err(refuse(
                "/company",
                "an item with default accounts names the company they belong to",
            ));
        };
        let found = accounts(
            repository,
            &input.scope,
            accounts_named
                .iter()
                .map(|(_, id, _)| (*id).to_owned())
                .collect(),
        )
        .await?;
        for (field, id, root) in &accounts_named {
            check_account(
                &format!("/{field}"),
                id,
                found.get(*id),
                company,
                AccountRule::Root(*root),
            )?;
        }
    }
    check_units(doc)?;
    if let (Some(template), Some(company)) =
        (str_field(doc, "tax_template"), str_field(doc, "company"))
    {
        let owner = column_of(
            repository,
            &input.scope,
            "tax_template",
            "company",
            template,
        )
        .await?
        .flatten();
        if owner.as_deref().is_some_and(|owner| owner != company) {
            return Err(refuse(
                "/tax_template",
                "the tax template belongs to another company",
            ));
        }
    }
    Ok(())
}

/// An item's other units: each once, not the stock unit, holding more than zero of it.
pub fn check_units(doc: &Map<String, Value>) -> Result<(), String> {
    let stock = str_field(doc, "stock_uom");
    let mut seen = HashSet::new();
    for (i, row) in doc
        .get("uoms")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let uom = row.get("uom").and_then(Value::as_str).unwrap_or_default();
        if Some(uom) == stock {
            return Err(refuse(
                format!("/uoms/{i}/uom"),
                "the stock unit holds one stock unit; list only other units",
            ));
        }
        if !seen.insert(uom) {
            return Err(refuse(
                format!("/uoms/{i}/uom"),
                format!("the unit `{uom}` is listed twice"),
            ));
        }
        let factor = row.get("factor").and_then(Value::as_str).unwrap_or("0");
        if parse_scaled(factor, 6).map_or(true, |f| f <= 0) {
            return Err(refuse(
                format!("/uoms/{i}/factor"),
                format!("a unit holds more than zero stock units, not {factor}"),
            ));
        }
    }
    Ok(())
}

/// A tax template's lines: how many, their rates, each account once.
pub fn check_tax_lines(doc: &Map<String, Value>) -> Result<Vec<String>, String> {
    let lines = doc
        .get("lines")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if lines.len() > TAXES_MAX {
        return Err(refuse(
            "/lines",
            format!(
                "a tax template holds at most {TAXES_MAX} taxes, not {}",
                lines.len()
            ),
        ));
    }
    let mut accounts = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let rate = line.get("rate").and_then(Value::as_str).unwrap_or("");
        match parse_scaled(rate, 4) {
            Ok(r) if (0..=100 * RATE_SCALE).contains(&r) => {}
            _ => {
                return Err(refuse(
                    format!("/lines/{i}/rate"),
                    format!("a tax rate is a percentage from 0 to 100, not {rate}"),
                ));
            }
        }
        let account = line
            .get("account")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if accounts.contains(&account) {
            return Err(refuse(
                format!("/lines/{i}/account"),
                "each account takes one tax of a template",
            ));
        }
        accounts.push(account);
    }
    Ok(accounts)
}

async fn check_tax_template(repository: &TradeRepository, input: &HookInput) -> Result<(), String> {
    let ids = check_tax_lines(&input.doc)?;
    let Some(company) = str_field(&input.doc, "company") else {
        return Ok(());
    };
    let found = accounts(repository, &input.scope, ids.clone()).await?;
    for (i, id) in ids.iter().enumerate() {
        check_account(
            &format!("/lines/{i}/account"),
            id,
            found.get(id),
            company,
            AccountRule::Type("Tax"),
        )?;
    }
    Ok(())
}

/// A contact's or an address's party exists.
async fn check_party_link(repository: &TradeRepository, input: &HookInput) -> Result<(), String> {
    let (Some(kind), Some(party)) = (
        str_field(&input.doc, "party_type"),
        str_field(&input.doc, "party"),
    ) else {
        return Ok(());
    };
    let table = match kind {
        "Customer" => "customer",
        "Supplier" => "supplier",
        _ => return Ok(()),
    };
    match column_of(repository, &input.scope, table, "id", party).await? {
        Some(_) => Ok(()),
        None => Err(refuse("/party", format!("there is no {table} `{party}`"))),
    }
}

/// An item price is in its price list's currency, and not negative.
async fn check_item_price(repository: &TradeRepository, input: &HookInput) -> Result<(), String> {
    let Some(rate) = input.doc.get("rate") else {
        return Ok(());
    };
    if rate
        .get("amount")
        .and_then(Value::as_str)
        .is_some_and(|a| a.starts_with('-'))
    {
        return Err(refuse("/rate", "a price is not negative"));
    }
    let (Some(list), Some(currency)) = (
        str_field(&input.doc, "price_list"),
        rate.get("currency").and_then(Value::as_str),
    ) else {
        return Ok(());
    };
    if let Some(Some(expected)) =
        column_of(repository, &input.scope, "price_list", "currency", list).await?
        && expected != currency
    {
        return Err(refuse(
            "/rate",
            format!("the price list is in {expected}, so its prices are too, not {currency}"),
        ));
    }
    Ok(())
}

/// Which check a hook runs.
#[derive(Debug, Clone, Copy)]
enum Check {
    Customer,
    Supplier,
    Item,
    TaxTemplate,
    PartyLink,
    ItemPrice,
}

impl Check {
    async fn run(self, repository: &TradeRepository, input: &HookInput) -> Result<(), String> {
        match self {
            Check::Customer => {
                check_party(repository, input, "receivable_account", "Receivable").await
            }
            Check::Supplier => check_party(repository, input, "payable_account", "Payable").await,
            Check::Item => check_item(repository, input).await,
            Check::TaxTemplate => check_tax_template(repository, input).await,
            Check::PartyLink => check_party_link(repository, input).await,
            Check::ItemPrice => check_item_price(repository, input).await,
        }
    }
}

/// Registers every check as a validate hook of its entity.
pub fn register(cx: &mut RegisterContext<'_>, repository: &TradeRepository) {
    let checks = [
        ("customer", "receivable_account", Check::Customer),
        ("supplier", "payable_account", Check::Supplier),
        ("item", "accounts_and_units", Check::Item),
        ("tax_template", "lines", Check::TaxTemplate),
        ("contact", "party", Check::PartyLink),
        ("address", "party", Check::PartyLink),
        ("item_price", "currency", Check::ItemPrice),
    ];
    for (entity, name, check) in checks {
        let repository = repository.clone();
        cx.services.contribute(Arc::new(EntityHook {
            module: "trade".into(),
            name: name.into(),
            entity: entity.into(),
            event: EntityEvent::Validate,
            run: Arc::new(move |input: HookInput| {
                let repository = repository.clone();
                Box::pin(async move {
                    check.run(&repository, &input).await?;
                    Ok(input.doc)
                })
            }),
        }));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn account(kind: Option<&str>, root: RootType, is_group: bool) -> Account {
        Account {
            id: "a1".into(),
            name: "Debtors".into(),
            path: "assets:debtors".into(),
            company: "c1".into(),
            root_type: root,
            account_type: kind.map(str::to_owned),
            is_group,
            frozen: false,
            currency: None,
            parent: None,
            number: None,
        }
    }

    fn check(
        account: Option<Account>,
        company: &str,
        rule: AccountRule,
        expected: Result<(), &str>,
    ) {
        assert_eq!(
            check_account("/receivable_account", "a1", account.as_ref(), company, rule),
            expected.map_err(str::to_owned)
        );
    }

    #[test]
    fn accounts_are_leaves_of_the_company_of_the_right_kind() {
        let receivable = AccountRule::Type("Receivable");
        check(
            Some(account(Some("Receivable"), RootType::Asset, false)),
            "c1",
            receivable,
            Ok(()),
        );
        check(
            None,
            "c1",
            receivable,
            Err("/receivable_account: account `a1` does not exist"),
        );
        check(
            Some(account(Some("Receivable"), RootType::Asset, false)),
            "c2",
            receivable,
            Err("/receivable_account: the account assets:debtors belongs to another company"),
        );
        check(
            Some(account(Some("Receivable"), RootType::Asset, true)),
            "c1",
            receivable,
            Err(
                "/receivable_account: the account assets:debtors is a group; documents post to leaf accounts",
            ),
        );
        check(
            Some(account(Some("Bank"), RootType::Asset, false)),
            "c1",
            receivable,
            Err("/receivable_account: the account assets:debtors is not a Receivable account"),
        );
        check(
            Some(account(None, RootType::Asset, false)),
            "c1",
            AccountRule::Root(RootType::Income),
            Err("/receivable_account: the account assets:debtors is not an Income account"),
        );
    }

    #[test]
    fn an_items_other_units_hold_more_than_zero_once() {
        let check = |uoms: Value, expected: Result<(), &str>| {
            let doc = json!({"stock_uom": "nos", "uoms": uoms});
            assert_eq!(
                check_units(doc.as_object().unwrap()),
                expected.map_err(str::to_owned)
            );
        };
        check(json!([]), Ok(()));
        check(json!([{"uom": "box", "factor": "12"}]), Ok(()));
        check(
            json!([{"uom": "nos", "factor": "1"}]),
            Err("/uoms/0/uom: the stock unit holds one stock unit; list only other units"),
        );
        check(
            json!([{"uom": "box", "factor": "12"}, {"uom": "box", "factor": "6"}]),
            Err("/uoms/1/uom: the unit `box` is listed twice"),
        );
        check(
            json!([{"uom": "box", "factor": "0"}]),
            Err("/uoms/0/factor: a unit holds more than zero stock units, not 0"),
        );
        check(
            json!([{"uom": "box", "factor": "-2"}]),
            Err("/uoms/0/factor: a unit holds more than zero stock units, not -2"),
        );
    }

    #[test]
    fn a_templates_rates_are_percentages_and_its_accounts_each_once() {
        let check = |lines: Value, expected: Result<usize, &str>| {
            let doc = json!({"lines": lines});
            assert_eq!(
                check_tax_lines(doc.as_object().unwrap()).map(|a| a.len()),
                expected.map_err(str::to_owned)
            );
        };
        check(json!([]), Ok(0));
        check(
            json!([{"account": "t1", "rate": "19"}, {"account": "t2", "rate": "7.5"}]),
            Ok(2),
        );
        check(json!([{"account": "t1", "rate": "100"}]), Ok(1));
        check(
            json!([{"account": "t1", "rate": "100.0001"}]),
            Err("/lines/0/rate: a tax rate is a percentage from 0 to 100, not 100.0001"),
        );
        check(
            json!([{"account": "t1", "rate": "-1"}]),
            Err("/lines/0/rate: a tax rate is a percentage from 0 to 100, not -1"),
        );
        check(
            json!([{"account": "t1", "rate": "5"}, {"account": "t1", "rate": "7"}]),
            Err("/lines/1/account: each account takes one tax of a template"),
        );
        let many: Vec<Value> = (0..=TAXES_MAX)
            .map(|i| json!({"account": format!("t{i}"), "rate": "1"}))
            .collect();
        check(
            Value::Array(many),
            Err("/lines: a tax template holds at most 20 taxes, not 21"),
        );
    }
}
