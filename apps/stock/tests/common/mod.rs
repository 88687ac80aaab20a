//! The harness the stock tests share: the app booted in process on a test database
//! with the stock module, a signed-in clerk, and a company with its books, warehouses
//! and items; reads of the stock balance and the trial balance.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cortex::identity::Identity;
use prefiq::{App, BootMode, BootOptions, ConfigOptions};
use prefiq_data::DatabaseProvider;
use prefiq_data::entity::value::parse_scaled;
use prefiq_data::testing::TestDatabase;
use prefiq_http::HttpProvider;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery";

pub struct Api {
    pub router: axum::Router,
    pub app: prefiq::BootedApp,
}

pub async fn boot(db: &TestDatabase) -> Api {
    let mut vars = vec![("PREFIQ__DATABASE__URL".to_owned(), db.url.clone())];
    if let Ok(tenancy) = std::env::var("PREFIQ_TEST_TENANCY") {
        vars.push(("PREFIQ__DATABASE__TENANCY".into(), tenancy));
    }
    let app = App::new()
        .provider(DatabaseProvider)
        .provider(prefiq_data::audit::AuditProvider::default())
        .provider(HttpProvider)
        .module(cortex::Cortex::new().unwrap())
        .module(accounting::Accounting::new().unwrap())
        .module(trade::Trade::new().unwrap())
        .module(crm::Crm::new().unwrap())
        .module(selling::Selling::new().unwrap())
        .module(buying::Buying::new().unwrap())
        .module(stock::Stock::new().unwrap());
    let mut options = BootOptions::new(BootMode::Serve);
    options.config = ConfigOptions {
        root: Some(db.root()),
        vars: Some(vars),
        ..Default::default()
    };
    let app = app.boot(options).await.unwrap();
    let router = prefiq_http::router(&app, Arc::new(AtomicBool::new(true))).unwrap();
    Api { router, app }
}

impl Api {
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (StatusCode, Vec<u8>) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if !bearer.is_empty() {
            request = request.header("authorization", bearer);
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, bytes) = self.raw(method, path, bearer, body).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn login(&self, tenant: &str, email: &str) -> String {
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/auth/login")
            .header("content-type", "application/json")
            .header("x-tenant", tenant)
            .body(Body::from(
                json!({"email": email, "password": PASSWORD}).to_string(),
            ))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        format!("Bearer {}", body["access_token"].as_str().unwrap())
    }

    /// The tenant `acme` and its clerk (Accounts, Stock and Sales Manager): the clerk's
    /// bearer.
    pub async fn clerk(&self) -> String {
        let identity = self.app.resolver("test").get::<Identity>().unwrap();
        identity
            .create_tenant("acme", "admin@acme.test", PASSWORD)
            .await
            .unwrap();
        self.user(
            "acme",
            "clerk@acme.test",
            &["Accounts Manager", "Stock Manager", "Sales Manager"],
        )
        .await
    }

    pub async fn user(&self, tenant: &str, email: &str, roles: &[&str]) -> String {
        let identity = self.app.resolver("test").get::<Identity>().unwrap();
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        identity
            .create_user(tenant, email, PASSWORD, &roles, &serde_json::Map::new())
            .await
            .unwrap();
        self.login(tenant, email).await
    }

    /// Creates a record, which must succeed: its id.
    pub async fn create(&self, bearer: &str, entity: &str, body: Value) -> String {
        let (status, answer) = self
            .call(
                "POST",
                &format!("/api/v1/resources/{entity}"),
                bearer,
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{entity}: {answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    pub async fn account(&self, bearer: &str, company: &str, path: &str) -> String {
        let filters = json!([["company", "=", company], ["account_path", "=", path]]).to_string();
        let (status, answer) = self
            .call(
                "GET",
                &format!("/api/v1/resources/account?filters={}", encode(&filters)),
                bearer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["data"][0]["id"].as_str().unwrap().to_owned()
    }

    /// The closing balance (debit less credit, minor units) of each leaf account with
    /// one, by path.
    pub async fn balances(&self, bearer: &str, company: &str) -> BTreeMap<String, i64> {
        self.balances_at(bearer, company, "2026-12-31").await
    }

    /// The same at the end of `to`.
    pub async fn balances_at(
        &self,
        bearer: &str,
        company: &str,
        to: &str,
    ) -> BTreeMap<String, i64> {
        let (status, report) = self
            .call(
                "GET",
                &format!("/api/v1/accounting/reports/trial-balance?company={company}&from=2026-01-01&to={to}"),
                bearer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["is_group"] == false)
            .map(|r| {
                let amount = |v: &Value| parse_scaled(v.as_str().unwrap_or("0"), 2).unwrap();
                (
                    r["account_path"].as_str().unwrap().to_owned(),
                    amount(&r["closing_debit"]) - amount(&r["closing_credit"]),
                )
            })
            .filter(|(_, b)| *b != 0)
            .collect()
    }

    /// The stock balance at `as_of`: (item code, warehouse name) → (qty, value).
    pub async fn stock(
        &self,
        bearer: &str,
        company: &str,
        as_of: &str,
    ) -> BTreeMap<(String, String), (String, String)> {
        let (status, report) = self
            .call(
                "GET",
                &format!("/api/v1/stock/reports/stock-balance?company={company}&as_of={as_of}"),
                bearer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap().to_owned();
                (
                    (s("item_code"), s("warehouse_name")),
                    (s("qty"), s("value")),
                )
            })
            .collect()
    }

    /// Creates a stock entry and submits it: the submit's status and answer.
    pub async fn submit(&self, bearer: &str, body: Value) -> (StatusCode, Value, String) {
        let id = self.create(bearer, "stock_entry", body).await;
        let (status, answer) = self
            .call(
                "POST",
                &format!("/api/v1/resources/stock_entry/{id}/submit"),
                bearer,
                None,
            )
            .await;
        (status, answer, id)
    }
}

pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn usd(amount: &str) -> Value {
    json!({"amount": amount, "currency": "USD"})
}

pub struct Books {
    pub company: String,
    pub adjustment: String,
    pub rent: String,
    pub main: String,
    pub store: String,
    pub group: String,
    pub bolt: String,
    pub nut: String,
    pub glue: String,
}

pub async fn books(api: &Api, clerk: &str) -> Books {
    let company = api
        .create(
            clerk,
            "company",
            json!({"company_name": "Acme Ltd", "abbr": "ACME", "currency": "USD"}),
        )
        .await;
    api.create(clerk, "fiscal_year", json!({"year_name": "FY 2026", "company": company, "start_date": "2026-01-01", "end_date": "2026-12-31"}))
        .await;
    let current = api.account(clerk, &company, "assets:current").await;
    let stock_b = api
        .create(clerk, "account", json!({"account_name": "Stock B", "account_path": "assets:current:stock-b", "company": company, "root_type": "Asset", "account_type": "Stock", "parent_account": current}))
        .await;
    let stock_a = api.account(clerk, &company, "assets:current:stock").await;
    let rent = api.account(clerk, &company, "expenses:rent").await;
    let adjustment = api
        .account(clerk, &company, "expenses:cost-of-goods-sold")
        .await;
    let group = api
        .create(
            clerk,
            "warehouse",
            json!({"warehouse_name": "All Warehouses", "company": company, "is_group": true}),
        )
        .await;
    let main = api
        .create(clerk, "warehouse", json!({"warehouse_name": "Main", "company": company, "stock_account": stock_a, "parent_warehouse": group}))
        .await;
    let store = api
        .create(clerk, "warehouse", json!({"warehouse_name": "Store B", "company": company, "stock_account": stock_b, "parent_warehouse": group}))
        .await;
    let nos = api.create(clerk, "uom", json!({"uom_name": "Nos"})).await;
    let items = api
        .create(
            clerk,
            "item_group",
            json!({"item_group_name": "All Items", "is_group": true}),
        )
        .await;
    let item = |code: &str, extra: Value| {
        let mut body = json!({"item_code": code, "item_name": code, "item_group": items, "stock_uom": nos, "company": company});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let bolt = api.create(clerk, "item", item("BOLT", json!({}))).await;
    let nut = api
        .create(
            clerk,
            "item",
            item("NUT", json!({"valuation_method": "Moving Average"})),
        )
        .await;
    let glue = api
        .create(
            clerk,
            "item",
            item("GLUE", json!({"allow_negative_stock": true})),
        )
        .await;
    Books {
        company,
        adjustment,
        rent,
        main,
        store,
        group,
        bolt,
        nut,
        glue,
    }
}

/// A stock entry's body.
pub fn entry(b: &Books, purpose: &str, date: &str, lines: Value) -> Value {
    let mut body =
        json!({"purpose": purpose, "company": b.company, "posting_date": date, "lines": lines});
    if purpose != "Transfer" {
        body["expense_account"] = json!(b.adjustment);
    }
    body
}

/// The stock value per warehouse in the report equals the balance of its stock account.
pub async fn check_books(api: &Api, clerk: &str, b: &Books) {
    check_books_at(api, clerk, b, "2026-12-31").await;
}

/// The same at the end of `date`.
pub async fn check_books_at(api: &Api, clerk: &str, b: &Books, date: &str) {
    let balances = api.balances_at(clerk, &b.company, date).await;
    let stock = api.stock(clerk, &b.company, date).await;
    let value = |warehouse: &str| -> i64 {
        stock
            .iter()
            .filter(|((_, w), _)| w == warehouse)
            .map(|(_, (_, v))| parse_scaled(v, 2).unwrap())
            .sum()
    };
    let account = |path: &str| balances.get(path).copied().unwrap_or(0);
    assert_eq!(
        value("Main"),
        account("assets:current:stock"),
        "{stock:?} {balances:?}"
    );
    assert_eq!(
        value("Store B"),
        account("assets:current:stock-b"),
        "{stock:?} {balances:?}"
    );
}

pub fn row(
    item: &str,
    warehouse: &str,
    qty: &str,
    value: &str,
) -> ((String, String), (String, String)) {
    ((item.into(), warehouse.into()), (qty.into(), value.into()))
}

// The desk browser of cortex's tests, not a copy of it.
#[path = "../../../cortex/tests/common/browser.rs"]
pub mod browser;
