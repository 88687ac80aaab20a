-- The stock ledger (see ledger.rs): append-only, one row per line and warehouse a
-- stock entry moves, with integer figures only (thousandths, minor units).
CREATE TABLE stock_ledger_entry (
    seq INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    company TEXT NOT NULL,
    item TEXT NOT NULL,
    warehouse TEXT NOT NULL,
    posting_date TEXT NOT NULL,
    day INTEGER NOT NULL,
    voucher_type TEXT NOT NULL,
    voucher_id TEXT NOT NULL,
    voucher_line INTEGER NOT NULL,
    is_reversal INTEGER NOT NULL,
    adjusts INTEGER,
    qty_change INTEGER NOT NULL,
    incoming_rate INTEGER NOT NULL,
    valuation_rate INTEGER NOT NULL,
    qty_after INTEGER NOT NULL,
    stock_value_after INTEGER NOT NULL,
    stock_value_change INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX stock_ledger_entry__bin ON stock_ledger_entry (tenant_id, item, warehouse, day, seq);
CREATE INDEX stock_ledger_entry__voucher ON stock_ledger_entry (tenant_id, voucher_id);
CREATE INDEX stock_ledger_entry__adjusts ON stock_ledger_entry (tenant_id, adjusts);
CREATE INDEX stock_ledger_entry__company ON stock_ledger_entry (tenant_id, company, day);
