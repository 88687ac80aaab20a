//! The trade app through the API on both backends: its master data refused with the
//! pointer of the field at fault, and `POST /api/v1/trade/totals`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cortex::identity::Identity;
use prefiq::{App, BootMode, BootOptions, ConfigOptions};
use prefiq_data::DatabaseProvider;
use prefiq_data::testing::{TestDatabase, databases};
use prefiq_http::HttpProvider;
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";

struct Api {
    router: axum::Router,
    app: prefiq::BootedApp,
}

async fn boot(db: &TestDatabase) -> Api {
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
        .module(trade::Trade::new().unwrap());
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
    async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
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
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn login(&self, tenant: &str, email: &str) -> String {
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

    async fn user(&self, tenant: &str, email: &str, roles: &[&str]) -> String {
        let identity = self.app.resolver("test").get::<Identity>().unwrap();
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        identity
            .create_user(tenant, email, PASSWORD, &roles, &serde_json::Map::new())
            .await
            .unwrap();
        self.login(tenant, email).await
    }

    /// Creates a record, which must succeed: its id.
    async fn create(&self, bearer: &str, entity: &str, body: Value) -> String {
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

    /// Creating the record is refused with a 422 naming `pointer`.
    async fn refused(&self, bearer: &str, entity: &str, body: Value, pointer: &str) {
        let (status, answer) = self
            .call(
                "POST",
                &format!("/api/v1/resources/{entity}"),
                bearer,
                Some(body),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{entity}: {answer}"
        );
        assert_eq!(
            answer["errors"][0]["pointer"], pointer,
            "{entity}: {answer}"
        );
    }

    async fn account(&self, bearer: &str, company: &str, path: &str) -> String {
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

    async fn totals(&self, bearer: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", "/api/v1/trade/totals", bearer, Some(body))
            .await
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Books {
    company: String,
    other_company: String,
    receivable: String,
    payable: String,
    output_tax: String,
    sales: String,
    rent: String,
    bank: String,
}

async fn books(api: &Api, bearer: &str) -> Books {
    let company = api
        .create(
            bearer,
            "company",
            json!({"company_name": "Acme Ltd", "abbr": "ACME", "currency": "USD"}),
        )
        .await;
    let other_company = api
        .create(
            bearer,
            "company",
            json!({"company_name": "Other Ltd", "abbr": "OTH", "currency": "EUR"}),
        )
        .await;
    Books {
        receivable: api
            .account(bearer, &company, "assets:current:receivable")
            .await,
        payable: api
            .account(bearer, &company, "liabilities:current:payable")
            .await,
        output_tax: api
            .account(bearer, &company, "liabilities:current:output-tax")
            .await,
        sales: api.account(bearer, &company, "income:sales").await,
        rent: api.account(bearer, &company, "expenses:rent").await,
        bank: api.account(bearer, &company, "assets:current:bank").await,
        company,
        other_company,
    }
}

#[tokio::test]
async fn master_data_is_refused_at_the_field_at_fault() {
    for db in databases("trade_masters").await {
        let api = boot(&db).await;
        let identity = api.app.resolver("test").get::<Identity>().unwrap();
        identity
            .create_tenant("acme", "admin@acme.test", PASSWORD)
            .await
            .unwrap();
        let admin = api.login("acme", "admin@acme.test").await;
        let clerk = api
            .user(
                "acme",
                "clerk@acme.test",
                &["Accounts Manager", "Sales Manager", "Purchase Manager"],
            )
            .await;
        let b = books(&api, &clerk).await;
        let other_receivable = api
            .account(&clerk, &b.other_company, "assets:current:receivable")
            .await;

        // Parties.
        let customer = json!({"customer_name": "Müller GmbH", "company": b.company, "receivable_account": b.receivable, "currency": "EUR", "credit_limit": {"amount": "5000.00", "currency": "USD"}});
        for (field, value, pointer) in [
            ("receivable_account", json!(b.bank), "/receivable_account"),
            (
                "receivable_account",
                json!(other_receivable),
                "/receivable_account",
            ),
            (
                "receivable_account",
                json!("no-such-account"),
                "/receivable_account",
            ),
            ("payment_terms_days", json!(9999), "/payment_terms_days"),
            (
                "credit_limit",
                json!({"amount": "-1.00", "currency": "USD"}),
                "/credit_limit",
            ),
        ] {
            let mut body = customer.clone();
            body[field] = value;
            api.refused(&clerk, "customer", body, pointer).await;
        }
        let customer_id = api.create(&clerk, "customer", customer).await;
        let (_, record) = api
            .call(
                "GET",
                &format!("/api/v1/resources/customer/{customer_id}"),
                &clerk,
                None,
            )
            .await;
        assert_eq!(record["name"], "CUST-00001", "{record}");
        let supplier = json!({"supplier_name": "Parts Inc", "company": b.company, "payable_account": b.payable, "currency": "USD"});
        let mut wrong = supplier.clone();
        wrong["payable_account"] = json!(b.receivable);
        api.refused(&clerk, "supplier", wrong, "/payable_account")
            .await;
        let supplier_id = api.create(&clerk, "supplier", supplier).await;
        api.refused(
            &clerk,
            "contact",
            json!({"first_name": "Ana", "party_type": "Customer", "party": supplier_id}),
            "/party",
        )
        .await;
        api.create(&clerk, "contact", json!({"first_name": "Ana", "email": "ana@mueller.test", "party_type": "Customer", "party": customer_id})).await;
        api.create(&clerk, "address", json!({"line1": "Hauptstr. 1", "city": "Berlin", "country": "DE", "party_type": "Supplier", "party": supplier_id})).await;

        // Items.
        let nos = api
            .create(
                &clerk,
                "uom",
                json!({"uom_name": "Nos", "whole_number": true}),
            )
            .await;
        let boxes = api.create(&clerk, "uom", json!({"uom_name": "Box"})).await;
        let all = api
            .create(
                &clerk,
                "item_group",
                json!({"item_group_name": "All Items", "is_group": true}),
            )
            .await;
        let hardware = api
            .create(
                &clerk,
                "item_group",
                json!({"item_group_name": "Hardware", "parent_item_group": all}),
            )
            .await;
        let item = json!({"item_code": "BOLT-M8", "item_name": "Bolt M8", "item_group": hardware, "stock_uom": nos, "uoms": [{"uom": boxes, "factor": "100"}], "company": b.company, "income_account": b.sales, "expense_account": b.rent});
        for (field, value, pointer) in [
            ("income_account", json!(b.receivable), "/income_account"),
            ("expense_account", json!(b.sales), "/expense_account"),
            (
                "uoms",
                json!([{"uom": boxes, "factor": "0"}]),
                "/uoms/0/factor",
            ),
            ("uoms", json!([{"uom": nos, "factor": "1"}]), "/uoms/0/uom"),
        ] {
            let mut body = item.clone();
            body[field] = value;
            api.refused(&clerk, "item", body, pointer).await;
        }
        let mut without_company = item.clone();
        without_company.as_object_mut().unwrap().remove("company");
        api.refused(&clerk, "item", without_company, "/company")
            .await;
        let item_id = api.create(&clerk, "item", item).await;

        // Tax templates.
        let template = json!({"title": "VAT 19%", "company": b.company, "lines": [{"account": b.output_tax, "rate": "19"}]});
        for (lines, pointer) in [
            (
                json!([{"account": b.sales, "rate": "19"}]),
                "/lines/0/account",
            ),
            (
                json!([{"account": b.output_tax, "rate": "150"}]),
                "/lines/0/rate",
            ),
            (
                json!([{"account": b.output_tax, "rate": "5"}, {"account": b.output_tax, "rate": "7"}]),
                "/lines/1/account",
            ),
        ] {
            let mut body = template.clone();
            body["lines"] = lines;
            api.refused(&clerk, "tax_template", body, pointer).await;
        }
        api.create(&clerk, "tax_template", template).await;

        // Prices are in their list's currency.
        let list = api
            .create(
                &clerk,
                "price_list",
                json!({"price_list_name": "Standard Selling", "currency": "EUR"}),
            )
            .await;
        api.refused(&clerk, "item_price", json!({"item": item_id, "price_list": list, "rate": {"amount": "0.12", "currency": "USD"}}), "/rate").await;
        api.refused(&clerk, "item_price", json!({"item": item_id, "price_list": list, "rate": {"amount": "-0.12", "currency": "EUR"}}), "/rate").await;
        api.create(&clerk, "item_price", json!({"item": item_id, "price_list": list, "rate": {"amount": "0.12", "currency": "EUR"}})).await;

        // The administrator of the tenant reads it all.
        let (status, page) = api
            .call("GET", "/api/v1/resources/item", &admin, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["data"].as_array().unwrap().len(), 1);
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}

#[tokio::test]
async fn totals_follow_the_rule_and_bad_input_names_its_pointer() {
    for db in databases("trade_totals").await {
        let api = boot(&db).await;
        let identity = api.app.resolver("test").get::<Identity>().unwrap();
        identity
            .create_tenant("acme", "admin@acme.test", PASSWORD)
            .await
            .unwrap();
        let clerk = api
            .user(
                "acme",
                "clerk@acme.test",
                &["Accounts Manager", "Sales User"],
            )
            .await;
        let auditor = api.user("acme", "auditor@acme.test", &["Auditor"]).await;
        let b = books(&api, &clerk).await;
        let input_tax = api
            .account(&clerk, &b.company, "assets:current:input-tax")
            .await;
        let vat = api
            .create(
                &clerk,
                "tax_template",
                json!({"title": "VAT 19% incl. + levy 2.5%", "company": b.company, "lines": [
                    {"account": b.output_tax, "rate": "19", "included_in_price": true},
                    {"account": input_tax, "rate": "2.5"},
                ]}),
            )
            .await;

        let (status, answer) = api
            .totals(
                &clerk,
                json!({"currency": "EUR", "tax_template": vat, "lines": [
                    {"qty": "1", "unit_price": "11.90"},
                    {"qty": 3, "unit_price": "0.33"},
                    {"qty": "-1", "unit_price": "11.90"},
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        // 11.90 incl. 19% is 10.00 + 1.90, and 2.5% of 10.00 is 0.25; 3 x 0.33 = 0.99
        // incl. 19% is 0.83 + 0.16, and 2.5% of 0.83 is 0.02; the return gives back the
        // first line exactly.
        assert_eq!(
            answer,
            json!({
                "currency": "EUR",
                "lines": [
                    {"amount": "11.90", "net": "10.00", "taxes": ["1.90", "0.25"], "total": "12.15"},
                    {"amount": "0.99", "net": "0.83", "taxes": ["0.16", "0.02"], "total": "1.01"},
                    {"amount": "-11.90", "net": "-10.00", "taxes": ["-1.90", "-0.25"], "total": "-12.15"},
                ],
                "taxes": [
                    {"account": b.output_tax, "rate": "19.0000", "included_in_price": true, "amount": "0.16"},
                    {"account": input_tax, "rate": "2.5000", "included_in_price": false, "amount": "0.02"},
                ],
                "net_total": "0.83",
                "tax_total": "0.18",
                "grand_total": "1.01",
            })
        );
        // Yen have no minor unit.
        let (_, answer) = api
            .totals(
                &clerk,
                json!({"currency": "JPY", "lines": [{"qty": "1.5", "unit_price": "999"}]}),
            )
            .await;
        assert_eq!(answer["grand_total"], "1499", "{answer}");

        for (body, pointer) in [
            (json!({"lines": []}), "/currency"),
            (json!({"currency": "eur", "lines": []}), "/currency"),
            (json!({"currency": "EUR"}), "/lines"),
            (
                json!({"currency": "EUR", "lines": [{"qty": "1", "unit_price": "1.001"}]}),
                "/lines/0/unit_price",
            ),
            (
                json!({"currency": "EUR", "lines": [{"qty": "1.0001", "unit_price": "1"}]}),
                "/lines/0/qty",
            ),
            (
                json!({"currency": "EUR", "lines": [{"qty": "1"}]}),
                "/lines/0/unit_price",
            ),
            (
                json!({"currency": "EUR", "lines": [{"qty": "1", "unit_price": "1", "discount": "5"}]}),
                "/lines/0/discount",
            ),
            (
                json!({"currency": "EUR", "lines": [{"qty": "9223372036854775", "unit_price": "92233720368547758.07"}]}),
                "/lines/0",
            ),
            (
                json!({"currency": "EUR", "lines": [], "tax_template": "nope"}),
                "/tax_template",
            ),
            (
                json!({"currency": "EUR", "lines": [], "tax_template": 5}),
                "/tax_template",
            ),
            (
                json!({"currency": "EUR", "lines": [], "total": "5"}),
                "/total",
            ),
            (
                json!({"currency": "EUR", "lines": vec![json!({"qty": "1", "unit_price": "1"}); 1001]}),
                "/lines",
            ),
        ] {
            let (status, answer) = api.totals(&clerk, body.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
            assert_eq!(answer["errors"][0]["pointer"], pointer, "{body}: {answer}");
        }
        let (status, _) = api
            .totals("", json!({"currency": "EUR", "lines": []}))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, answer) = api
            .totals(&auditor, json!({"currency": "EUR", "lines": []}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        api.app.shutdown().await.unwrap();
        db.cleanup().await;
    }
}
