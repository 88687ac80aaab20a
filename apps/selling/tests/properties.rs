//! Property tests over random sequences of selling documents through the API, on both
//! backends: invoices, orders invoiced in parts, returns, payments, advances,
//! reconciliation and cancellations (each may be refused; a refusal must write
//! nothing). After every sequence:
//!
//! - each customer's receivable balance in the ledger equals the sum of its submitted
//!   invoices' outstanding amounts (a return's negative) minus its unallocated advances;
//! - the ledger balances: the trial balance's debits equal its credits.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use axum::http::StatusCode;
use common::{Api, Books, books, boot, money};
use prefiq_data::testing::databases;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

/// One step of a sequence. Indexes pick among what exists, modulo its count.
#[derive(Debug, Clone)]
enum Step {
    /// An invoice to customer `0` of `1` units at `2` cents.
    Invoice(usize, u8, u32),
    /// An order of `1` units at `2` cents, then an invoice of `3` of them.
    Order(usize, u8, u32, u8),
    /// A return of `1` units of invoice `0`.
    Return(usize, u8),
    /// A payment of `1` percent of invoice `0`'s outstanding amount.
    Pay(usize, u8),
    /// An advance of `1` cents from customer `0`.
    Advance(usize, u32),
    /// Reconciliation of customer `0`'s advances.
    Reconcile(usize),
    /// Cancelling payment `0`.
    CancelPayment(usize),
    /// Cancelling invoice `0` (refused while paid or returned).
    CancelInvoice(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..2usize, 1..5u8, 100..50_000u32).prop_map(|(c, q, p)| Step::Invoice(c, q, p)),
        2 => (0..2usize, 2..6u8, 100..20_000u32, 1..6u8).prop_map(|(c, q, p, b)| Step::Order(c, q, p, b)),
        1 => (0..8usize, 1..3u8).prop_map(|(i, q)| Step::Return(i, q)),
        3 => (0..8usize, 1..=100u8).prop_map(|(i, f)| Step::Pay(i, f)),
        2 => (0..2usize, 100..80_000u32).prop_map(|(c, a)| Step::Advance(c, a)),
        2 => (0..2usize).prop_map(Step::Reconcile),
        1 => (0..8usize).prop_map(Step::CancelPayment),
        1 => (0..8usize).prop_map(Step::CancelInvoice),
    ]
}

fn cents(amount: u64) -> String {
    format!("{}.{:02}", amount / 100, amount % 100)
}

/// A decimal string of cents as an integer.
fn minor(value: &Value) -> i64 {
    let text = value
        .get("amount")
        .and_then(Value::as_str)
        .or_else(|| value.as_str())
        .unwrap_or("0");
    let negative = text.starts_with('-');
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let n: i64 = digits.parse().unwrap_or(0);
    if negative { -n } else { n }
}

/// What all sequences did, so that the test can show it is not vacuous.
#[derive(Debug, Default)]
struct Tally {
    invoices: AtomicUsize,
    returns: AtomicUsize,
    payments: AtomicUsize,
    reconciled: AtomicUsize,
    refused: AtomicUsize,
    cancelled: AtomicUsize,
}

fn bump(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The state of one sequence: its customers and what it submitted.
struct Run<'a> {
    api: &'a Api,
    b: &'a Books,
    tally: &'a Tally,
    customers: Vec<String>,
    invoices: Vec<String>,
    payments: Vec<String>,
}

impl Run<'_> {
    fn clerk(&self) -> &str {
        &self.b.clerk
    }

    /// Creates and submits; a refusal (4xx) must leave the draft a draft.
    async fn create_and_submit(&self, entity: &str, body: Value) -> Option<String> {
        let (status, draft) = self
            .api
            .call(
                "POST",
                &format!("/api/v1/resources/{entity}"),
                self.clerk(),
                Some(body),
            )
            .await;
        if status != StatusCode::CREATED {
            assert!(status.is_client_error(), "{entity}: {draft}");
            bump(&self.tally.refused);
            return None;
        }
        let id = draft["id"].as_str().unwrap().to_owned();
        self.submit(entity, &id).await.then_some(id)
    }

    async fn submit(&self, entity: &str, id: &str) -> bool {
        let (status, answer) = self
            .api
            .call(
                "POST",
                &format!("/api/v1/resources/{entity}/{id}/submit"),
                self.clerk(),
                None,
            )
            .await;
        if status == StatusCode::OK {
            return true;
        }
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{entity}: {answer}"
        );
        assert_eq!(self.api.get(self.clerk(), entity, id).await["docstatus"], 0);
        bump(&self.tally.refused);
        false
    }

    async fn apply(&mut self, step: &Step) {
        let pick =
            |list: &Vec<String>, i: usize| (!list.is_empty()).then(|| list[i % list.len()].clone());
        let b = self.b;
        match *step {
            Step::Invoice(c, qty, price) => {
                let body = json!({"customer": self.customers[c], "company": b.company, "posting_date": "2026-06-01", "currency": "USD", "tax_template": b.vat, "lines": [
                    {"item": b.item, "qty": qty.to_string(), "unit_price": money(&cents(u64::from(price)), "USD")},
                ]});
                if let Some(id) = self.create_and_submit("sales_invoice", body).await {
                    bump(&self.tally.invoices);
                    self.invoices.push(id);
                }
            }
            Step::Order(c, qty, price, billed) => {
                let body = json!({"customer": self.customers[c], "company": b.company, "posting_date": "2026-06-01", "currency": "USD", "lines": [
                    {"item": b.item, "qty": qty.to_string(), "unit_price": money(&cents(u64::from(price)), "USD")},
                ]});
                let Some(order) = self.create_and_submit("sales_order", body).await else {
                    return;
                };
                let stored = self.api.get(self.clerk(), "sales_order", &order).await;
                let line = stored["lines"][0]["id"].as_str().unwrap();
                let body = json!({"customer": self.customers[c], "company": b.company, "posting_date": "2026-06-02", "currency": "USD", "lines": [
                    {"item": b.item, "qty": billed.to_string(), "unit_price": money(&cents(u64::from(price)), "USD"), "order_line": line},
                ]});
                // Past the order's quantity, the invoice is refused.
                let invoiced = self.create_and_submit("sales_invoice", body).await;
                assert_eq!(invoiced.is_some(), billed <= qty, "{step:?}");
                if let Some(id) = invoiced {
                    bump(&self.tally.invoices);
                    self.invoices.push(id);
                }
            }
            Step::Return(i, qty) => {
                let Some(invoice) = pick(&self.invoices, i) else {
                    return;
                };
                let original = self.api.get(self.clerk(), "sales_invoice", &invoice).await;
                if original["docstatus"] != 1 || !original["return_against"].is_null() {
                    return;
                }
                let line = &original["lines"][0];
                let body = json!({"customer": original["customer"], "company": b.company, "posting_date": "2026-06-03", "currency": "USD", "tax_template": original["tax_template"], "return_against": invoice, "lines": [
                    {"item": b.item, "qty": format!("-{qty}"), "unit_price": line["unit_price"]},
                ]});
                if let Some(id) = self.create_and_submit("sales_invoice", body).await {
                    bump(&self.tally.returns);
                    self.invoices.push(id);
                }
            }
            Step::Pay(i, percent) => {
                let Some(invoice) = pick(&self.invoices, i) else {
                    return;
                };
                let stored = self.api.get(self.clerk(), "sales_invoice", &invoice).await;
                let outstanding = minor(&stored["outstanding_amount"]);
                let amount = (outstanding * i64::from(percent)).div_euclid(100).max(1);
                let body = json!({"payment_type": "Receive", "party_type": "Customer", "party": stored["customer"], "company": b.company, "posting_date": "2026-06-10", "account": b.bank, "currency": "USD", "paid_amount": money(&cents(amount.unsigned_abs()), "USD"), "allocations": [
                    {"invoice_type": "Sales Invoice", "invoice": invoice, "allocated_amount": money(&cents(amount.unsigned_abs()), "USD")},
                ]});
                // More than is outstanding (or a cancelled invoice) is refused.
                let paid = self.create_and_submit("payment_entry", body).await;
                if stored["docstatus"] == 1 && outstanding > 0 {
                    assert!(paid.is_some(), "{step:?}: {stored}");
                }
                if let Some(id) = paid {
                    bump(&self.tally.payments);
                    self.payments.push(id);
                }
            }
            Step::Advance(c, amount) => {
                let body = json!({"payment_type": "Receive", "party_type": "Customer", "party": self.customers[c], "company": b.company, "posting_date": "2026-06-11", "account": b.bank, "currency": "USD", "paid_amount": money(&cents(u64::from(amount)), "USD")});
                if let Some(id) = self.create_and_submit("payment_entry", body).await {
                    bump(&self.tally.payments);
                    self.payments.push(id);
                }
            }
            Step::Reconcile(c) => {
                let suggested = self
                    .api
                    .expect(
                        self.clerk(),
                        "GET",
                        &format!(
                            "/api/v1/trade/reconciliation?company={}&party_type=Customer&party={}",
                            b.company, self.customers[c]
                        ),
                        None,
                        StatusCode::OK,
                    )
                    .await;
                if suggested["suggestions"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty())
                {
                    self.api
                        .expect(
                            self.clerk(),
                            "POST",
                            "/api/v1/trade/reconciliation",
                            Some(json!({"allocations": suggested["suggestions"]})),
                            StatusCode::OK,
                        )
                        .await;
                    bump(&self.tally.reconciled);
                }
            }
            Step::CancelPayment(i) => {
                let Some(payment) = pick(&self.payments, i) else {
                    return;
                };
                let (status, answer) = self
                    .api
                    .call(
                        "POST",
                        &format!("/api/v1/resources/payment_entry/{payment}/cancel"),
                        self.clerk(),
                        None,
                    )
                    .await;
                assert!(
                    status == StatusCode::OK || status.is_client_error(),
                    "{answer}"
                );
                if status == StatusCode::OK {
                    bump(&self.tally.cancelled);
                }
            }
            Step::CancelInvoice(i) => {
                let Some(invoice) = pick(&self.invoices, i) else {
                    return;
                };
                let (status, answer) = self
                    .api
                    .call(
                        "POST",
                        &format!("/api/v1/resources/sales_invoice/{invoice}/cancel"),
                        self.clerk(),
                        None,
                    )
                    .await;
                assert!(
                    status == StatusCode::OK || status.is_client_error(),
                    "{answer}"
                );
                if status == StatusCode::OK {
                    bump(&self.tally.cancelled);
                }
            }
        }
    }

    /// The invariants, checked for each customer.
    async fn check(&self) {
        let b = self.b;
        for customer in &self.customers {
            let ledger = self
                .api
                .expect(self.clerk(), "GET", &format!("/api/v1/accounting/reports/general-ledger?company={}&account={}&party={customer}&from=2026-01-01&to=2026-12-31&limit=10000", b.company, b.receivable), None, StatusCode::OK)
                .await;
            let balance = minor(&ledger["total_debit"]) - minor(&ledger["total_credit"]);
            let mut expected = 0i64;
            for id in &self.invoices {
                let invoice = self.api.get(self.clerk(), "sales_invoice", id).await;
                if invoice["customer"] == customer.as_str() && invoice["docstatus"] == 1 {
                    expected += minor(&invoice["outstanding_amount"]);
                }
            }
            for id in &self.payments {
                let payment = self.api.get(self.clerk(), "payment_entry", id).await;
                if payment["party"] == customer.as_str() && payment["docstatus"] == 1 {
                    expected -= minor(&payment["unallocated_amount"]);
                }
            }
            assert_eq!(balance, expected, "receivable of {customer}: {ledger}");
        }
        let trial = self
            .api
            .expect(self.clerk(), "GET", &format!("/api/v1/accounting/reports/trial-balance?company={}&from=2026-01-01&to=2026-12-31", b.company), None, StatusCode::OK)
            .await;
        assert_eq!(
            trial["totals"]["closing_debit"], trial["totals"]["closing_credit"],
            "{trial}"
        );
    }
}

#[test]
fn receivables_equal_outstanding_less_advances_after_any_sequence() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dbs = runtime.block_on(databases("selling_properties"));
    for db in dbs {
        let api = runtime.block_on(boot(&db));
        let b = runtime.block_on(books(&api));
        let cases = if db.url.starts_with("postgres") {
            16
        } else {
            48
        };
        let mut runner = TestRunner::new(Config {
            cases,
            max_shrink_iters: 32,
            ..Config::default()
        });
        let n = AtomicUsize::new(0);
        let tally = Tally::default();
        runner
            .run(&proptest::collection::vec(step(), 1..14), |steps| {
                let n = n.fetch_add(1, Ordering::Relaxed);
                runtime.block_on(async {
                    // Fresh customers per sequence: sequences do not see each other.
                    let mut customers = Vec::new();
                    for c in 0..2 {
                        customers.push(
                            api.create_id(&b.clerk, "customer", json!({"customer_name": format!("P{n}-{c}"), "company": b.company, "receivable_account": b.receivable, "currency": "USD"}))
                                .await,
                        );
                    }
                    let mut run = Run { api: &api, b: &b, tally: &tally, customers, invoices: Vec::new(), payments: Vec::new() };
                    for step in &steps {
                        run.apply(step).await;
                    }
                    run.check().await;
                });
                Ok(())
            })
            .unwrap();
        // The sequences did submit, pay and get refused: the checks were not vacuous.
        println!("{}: {tally:?}", db.url);
        assert!(tally.invoices.load(Ordering::Relaxed) > 0, "{tally:?}");
        assert!(tally.payments.load(Ordering::Relaxed) > 0, "{tally:?}");
        drop(api);
        runtime.block_on(db.cleanup());
    }
}
