//! The harness the selling tests share: the app booted in process on a test database,
//! a signed-in clerk, and a company with its books, parties, an item and taxes.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cortex::identity::Identity;
use prefiq::{App, BootMode, BootOptions, ConfigOptions};
use prefiq_data::DatabaseProvider;
use prefiq_data::testing::TestDatabase;
use prefiq_http::HttpProvider;
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";

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
        .module(buying::Buying::new().unwrap());
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
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", bearer)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn clerk(&self) -> String {
        let identity = self.app.resolver("test").get::<Identity>().unwrap();
        identity
            .create_tenant("acme", "admin@acme.test", PASSWORD)
            .await
            .unwrap();
        let roles: Vec<String> = ["Accounts Manager", "Sales Manager", "Purchase Manager"]
            .iter()
            .map(|r| (*r).to_owned())
            .collect();
        identity
            .create_user(
                "acme",
                "clerk@acme.test",
                PASSWORD,
                &roles,
                &serde_json::Map::new(),
            )
            .await
            .unwrap();
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/auth/login")
            .header("content-type", "application/json")
            .header("x-tenant", "acme")
            .body(Body::from(
                json!({"email": "clerk@acme.test", "password": PASSWORD}).to_string(),
            ))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        format!("Bearer {}", body["access_token"].as_str().unwrap())
    }

    pub async fn user(&self, email: &str, roles: &[&str]) -> String {
        let identity = self.app.resolver("test").get::<Identity>().unwrap();
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        identity
            .create_user("acme", email, PASSWORD, &roles, &serde_json::Map::new())
            .await
            .unwrap();
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/auth/login")
            .header("content-type", "application/json")
            .header("x-tenant", "acme")
            .body(Body::from(
                json!({"email": email, "password": PASSWORD}).to_string(),
            ))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        format!("Bearer {}", body["access_token"].as_str().unwrap())
    }

    /// Creates a record, which must succeed: its id.
    pub async fn create_id(&self, bearer: &str, entity: &str, body: Value) -> String {
        self.create(bearer, entity, body).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn create(&self, bearer: &str, entity: &str, body: Value) -> Value {
        let (status, answer) = self
            .call(
                "POST",
                &format!("/api/v1/resources/{entity}"),
                bearer,
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{entity}: {answer}");
        answer
    }

    pub async fn account(&self, bearer: &str, company: &str, path: &str) -> String {
        let filters = json!([["company", "=", company], ["account_path", "=", path]]).to_string();
        let encoded: String = filters
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (_, answer) = self
            .call(
                "GET",
                &format!("/api/v1/resources/account?filters={encoded}"),
                bearer,
                None,
            )
            .await;
        answer["data"][0]["id"].as_str().unwrap().to_owned()
    }

    /// Closing balances (debit minus credit, as text) of the company's leaf accounts
    /// that moved, by path.
    pub async fn balances(&self, bearer: &str, company: &str) -> Vec<(String, String, String)> {
        let (status, report) = self
            .call(
                "GET",
                &format!("/api/v1/accounting/reports/trial-balance?company={company}&from=2026-01-01&to=2026-12-31"),
                bearer,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["is_group"] == false
                    && (r["closing_debit"] != "0.00" || r["closing_credit"] != "0.00")
            })
            .map(|r| {
                (
                    r["account_path"].as_str().unwrap().to_owned(),
                    r["closing_debit"].as_str().unwrap().to_owned(),
                    r["closing_credit"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

/// A money value in a currency.
pub fn money(amount: &str, currency: &str) -> Value {
    json!({"amount": amount, "currency": currency})
}

/// What the fixture made: ids of the company and what the documents need.
pub struct Books {
    pub clerk: String,
    pub company: String,
    pub bank: String,
    pub receivable: String,
    pub payable: String,
    pub sales: String,
    pub rent: String,
    pub gain_loss: String,
    pub customer: String,
    pub euro_customer: String,
    pub supplier: String,
    pub item: String,
    pub vat: String,
}

/// A USD company for 2026 with its chart, a customer in USD and one in EUR (the EUR rate
/// stored at 1.10 from 2026-01-01), a supplier, a non-stock item and a 19% VAT template.
pub async fn books(api: &Api) -> Books {
    let clerk = api.clerk().await;
    let company = api
        .create_id(
            &clerk,
            "company",
            json!({"company_name": "Acme Ltd", "abbr": "ACME", "currency": "USD"}),
        )
        .await;
    api.create(&clerk, "fiscal_year", json!({"year_name": "FY 2026", "company": company, "start_date": "2026-01-01", "end_date": "2026-12-31"}))
        .await;
    api.create(
        &clerk,
        "exchange_rate",
        json!({"from_code": "EUR", "to_code": "USD", "date": "2026-01-01", "rate": "1.1"}),
    )
    .await;
    let bank = api.account(&clerk, &company, "assets:current:bank").await;
    let receivable = api
        .account(&clerk, &company, "assets:current:receivable")
        .await;
    let payable = api
        .account(&clerk, &company, "liabilities:current:payable")
        .await;
    let output_tax = api
        .account(&clerk, &company, "liabilities:current:output-tax")
        .await;
    let sales = api.account(&clerk, &company, "income:sales").await;
    let rent = api.account(&clerk, &company, "expenses:rent").await;
    let gain_loss = api
        .account(&clerk, &company, "expenses:exchange-gain-loss")
        .await;
    let customer = api.create_id(&clerk, "customer", json!({"customer_name": "Müller GmbH", "company": company, "receivable_account": receivable, "currency": "USD", "payment_terms_days": 30})).await;
    let euro_customer = api.create_id(&clerk, "customer", json!({"customer_name": "Dupont SA", "company": company, "receivable_account": receivable, "currency": "EUR", "payment_terms_days": 30})).await;
    let supplier = api.create_id(&clerk, "supplier", json!({"supplier_name": "Landlord Inc", "company": company, "payable_account": payable, "currency": "USD"})).await;
    let nos = api
        .create_id(&clerk, "uom", json!({"uom_name": "Nos"}))
        .await;
    let group = api
        .create_id(
            &clerk,
            "item_group",
            json!({"item_group_name": "All Items"}),
        )
        .await;
    let item = api.create_id(&clerk, "item", json!({"item_code": "SVC-1", "item_name": "Consulting hour", "item_group": group, "stock_uom": nos, "is_stock_item": false, "company": company, "income_account": sales, "expense_account": rent})).await;
    let vat = api.create_id(&clerk, "tax_template", json!({"title": "VAT 19%", "company": company, "lines": [{"account": output_tax, "rate": "19"}]})).await;
    Books {
        clerk,
        company,
        bank,
        receivable,
        payable,
        sales,
        rent,
        gain_loss,
        customer,
        euro_customer,
        supplier,
        item,
        vat,
    }
}

impl Api {
    /// `POST` that must answer `status`: the answer.
    pub async fn expect(
        &self,
        bearer: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        let (got, answer) = self.call(method, path, bearer, body).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        answer
    }

    /// Submits a document, which must succeed: the record as stored after.
    pub async fn submit(&self, bearer: &str, entity: &str, id: &str) -> Value {
        self.expect(
            bearer,
            "POST",
            &format!("/api/v1/resources/{entity}/{id}/submit"),
            None,
            StatusCode::OK,
        )
        .await;
        self.get(bearer, entity, id).await
    }

    /// Reads a record.
    pub async fn get(&self, bearer: &str, entity: &str, id: &str) -> Value {
        self.expect(
            bearer,
            "GET",
            &format!("/api/v1/resources/{entity}/{id}"),
            None,
            StatusCode::OK,
        )
        .await
    }

    /// Makes `target` from a submitted document: the draft.
    pub async fn make(
        &self,
        bearer: &str,
        entity: &str,
        id: &str,
        target: &str,
        body: Value,
    ) -> Value {
        self.expect(
            bearer,
            "POST",
            &format!("/api/v1/trade/{entity}/{id}/make/{target}"),
            Some(body),
            StatusCode::CREATED,
        )
        .await
    }
}

// The desk browser of cortex's tests, not a copy of it.
#[path = "../../../cortex/tests/common/browser.rs"]
pub mod browser;
