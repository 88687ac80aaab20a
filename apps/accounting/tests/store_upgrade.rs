//! An installation made before the ledger store had `gl_entry` as a table: the store's
//! migration moves its rows into the store, and the `gl_entry` view reads them back as
//! they were. SQLite always, PostgreSQL when `PREFIQ_TEST_POSTGRES_URL` is set.
#![allow(clippy::unwrap_used)]

use prefiq::Backend;
use prefiq_data::entity::sql::{Cell, Sql, SqlType};
use prefiq_data::testing::databases;

/// The tables of an installation before the store, as far as the migration reads them.
fn old_layout(backend: Backend) -> String {
    let (bool_type, no, yes) = match backend {
        Backend::Sqlite => ("INTEGER", "0", "1"),
        Backend::Postgres => ("BOOLEAN", "false", "true"),
    };
    let script = format!(
        "CREATE TABLE prefiq_entities (name TEXT PRIMARY KEY, module TEXT NOT NULL, schema TEXT NOT NULL);
INSERT INTO prefiq_entities VALUES ('gl_entry', 'accounting', '{{}}'), ('journal_entry_line', 'accounting', '{{}}');
CREATE TABLE journal_entry_line (tenant_id TEXT NOT NULL, id TEXT NOT NULL, parent_id TEXT NOT NULL, parent_field TEXT NOT NULL, idx BIGINT NOT NULL, party_type TEXT, party TEXT, cost_center TEXT, remark TEXT);
INSERT INTO journal_entry_line VALUES ('t1', 'l1', 'je1', 'lines', 0, 'Customer', 'Acme', 'cc1', 'sold'), ('t1', 'l2', 'je1', 'lines', 1, NULL, NULL, NULL, 'cash');
CREATE TABLE gl_entry (tenant_id TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT, modified_at TEXT NOT NULL, modified_by TEXT, company TEXT, account TEXT, posting_date TEXT, period TEXT, journal_entry TEXT, debit BIGINT, debit_currency TEXT, credit BIGINT, credit_currency TEXT, line_debit BIGINT, line_debit_currency TEXT, line_credit BIGINT, line_credit_currency TEXT, party_type TEXT, party TEXT, cost_center TEXT, remark TEXT, is_reversal {bool_type}, is_closing {bool_type}, rate_source TEXT);
INSERT INTO gl_entry (tenant_id, id, name, created_at, created_by, modified_at, company, account, posting_date, period, journal_entry, debit, debit_currency, credit, credit_currency, line_debit, line_debit_currency, line_credit, line_credit_currency, remark, is_reversal, is_closing, rate_source) VALUES
('t1', 'g1', 'g1', '2026-01-05T10:00:00Z', 'u1', '2026-01-05T10:00:00Z', 'c1', 'a1', '2026-01-05', 'p1', 'je1', 0, 'USD', 12000, 'USD', 0, 'EUR', 10000, 'EUR', 'sold', {no}, {no}, 'r1'),
('t1', 'g2', 'g2', '2026-01-05T10:00:00Z', 'u1', '2026-01-05T10:00:00Z', 'c1', 'a2', '2026-01-05', 'p1', 'je1', 11999, 'USD', 0, 'USD', 11999, 'USD', 0, 'USD', 'cash', {no}, {no}, NULL),
('t1', 'g3', 'g3', '2026-01-05T10:00:00Z', 'u1', '2026-01-05T10:00:00Z', 'c1', 'a3', '2026-01-05', 'p1', 'je1', 1, 'USD', 0, 'USD', 0, 'USD', 0, 'USD', 'exchange rounding', {no}, {no}, NULL),
('t1', 'g4', 'g4', '2026-02-01T09:00:00Z', NULL, '2026-02-01T09:00:00Z', 'c1', 'a1', '2026-01-05', 'p1', 'je1', 12000, 'USD', 0, 'USD', 10000, 'EUR', 0, 'EUR', 'sold', {yes}, {no}, NULL),
('t2', 'g5', 'g5', '2026-03-31T23:00:00Z', 'u2', '2026-03-31T23:00:00Z', 'c2', 'a9', '2026-03-31', 'p9', 'je9', 500, 'GBP', 0, 'GBP', 500, 'GBP', 0, 'GBP', NULL, {no}, {yes}, NULL);"
    );
    match backend {
        // Entity tables compare text byte-wise there, as the view's joins expect.
        Backend::Postgres => script.replace(" TEXT", " TEXT COLLATE \"C\""),
        Backend::Sqlite => script,
    }
}

const COLUMNS: &str = "tenant_id, created_at, created_by, company, account, posting_date, period, journal_entry, debit, debit_currency, credit, line_debit, line_debit_currency, line_credit, line_credit_currency, party_type, party, cost_center, remark, is_reversal, is_closing, rate_source";

fn cell(c: &Cell) -> String {
    match c {
        Cell::Null => "-".into(),
        Cell::Text(t) => t.clone(),
        Cell::Int(i) => i.to_string(),
        Cell::Bool(b) => b.to_string(),
        Cell::Bytes(b) => format!("{b:?}"),
    }
}

#[tokio::test]
async fn gl_entry_rows_of_an_older_installation_move_into_the_ledger_store() {
    for db in databases("store_upgrade").await {
        let database = db.connect().await;
        let backend = database.backend();
        {
            let mut writing = database.writer().await.unwrap();
            let conn = &mut writing.conn();
            conn.execute_script(&old_layout(backend)).await.unwrap();
            conn.execute_script(accounting::ledger::store::migration().sql(backend))
                .await
                .unwrap();
        }
        let mut types = vec![SqlType::Text; 8];
        types.extend([SqlType::Int, SqlType::Text, SqlType::Int]);
        types.extend([SqlType::Int, SqlType::Text, SqlType::Int, SqlType::Text]);
        types.extend([SqlType::Text; 4]);
        types.extend([SqlType::Bool, SqlType::Bool, SqlType::Text]);
        let mut reading = database.reader().await.unwrap();
        let rows = reading
            .conn()
            .fetch(
                &Sql::new(
                    format!("SELECT {COLUMNS} FROM gl_entry ORDER BY id"),
                    Vec::new(),
                ),
                &types,
            )
            .await
            .unwrap();
        let got: Vec<String> = rows
            .iter()
            .map(|r| r.iter().map(cell).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            got,
            [
                "t1 2026-01-05T10:00:00Z u1 c1 a1 2026-01-05 p1 je1 0 USD 12000 0 EUR 10000 EUR Customer Acme cc1 sold false false r1",
                "t1 2026-01-05T10:00:00Z u1 c1 a2 2026-01-05 p1 je1 11999 USD 0 11999 USD 0 USD - - - cash false false -",
                "t1 2026-01-05T10:00:00Z u1 c1 a3 2026-01-05 p1 je1 1 USD 0 0 USD 0 USD - - - exchange rounding false false -",
                "t1 2026-02-01T09:00:00Z - c1 a1 2026-01-05 p1 je1 12000 USD 0 10000 EUR 0 EUR Customer Acme cc1 sold true false -",
                "t2 2026-03-31T23:00:00Z u2 c2 a9 2026-03-31 p9 je9 500 GBP 0 500 GBP 0 GBP - - - - false true -",
            ],
            "{backend:?}"
        );
        let snapshots = reading
            .conn()
            .fetch(
                &Sql::new(
                    "SELECT name FROM prefiq_entities ORDER BY name".to_owned(),
                    Vec::new(),
                ),
                &[SqlType::Text],
            )
            .await
            .unwrap();
        assert_eq!(
            snapshots.len(),
            1,
            "the table's snapshot is gone: {backend:?}"
        );
        drop(reading);
        database.close().await;
        db.cleanup().await;
    }
}
