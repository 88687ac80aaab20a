//! The warehouse's check, as a validate hook: its stock account is a Stock leaf of its
//! company (the schema says only that it is an account).

use std::sync::Arc;

use accounting::ledger::load_accounts_by_id;
use prefiq::RegisterContext;
use prefiq_data::entity::repo::{EntityEvent, EntityHook, HookInput};
use serde_json::Value;
use trade::TradeRepository;
use trade::checks::{AccountRule, check_account};

async fn check(repository: &TradeRepository, input: &HookInput) -> Result<(), String> {
    let text = |name: &str| {
        input
            .doc
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let Some(account) = text("stock_account") else {
        return Ok(());
    };
    let company = text("company").unwrap_or_default();
    let repository = repository.get()?;
    let scope = input.scope.clone();
    let id = account.clone();
    let found = repository
        .read(
            &input.scope,
            Box::new(move |conn| {
                let (scope, id) = (scope.clone(), id.clone());
                Box::pin(async move { load_accounts_by_id(conn, &scope, &[id.as_str()]).await })
            }),
        )
        .await
        .map_err(|e| e.to_string())?;
    check_account(
        "/stock_account",
        &account,
        found.get(&account),
        &company,
        AccountRule::Type("Stock"),
    )
}

/// Registers the warehouse's check.
pub fn register(cx: &mut RegisterContext<'_>, repository: &TradeRepository) {
    let repository = repository.clone();
    cx.services.contribute(Arc::new(EntityHook {
        module: "stock".into(),
        name: "stock_account".into(),
        entity: "warehouse".into(),
        event: EntityEvent::Validate,
        run: Arc::new(move |input: HookInput| {
            let repository = repository.clone();
            Box::pin(async move {
                check(&repository, &input).await?;
                Ok(input.doc)
            })
        }),
    }));
}
