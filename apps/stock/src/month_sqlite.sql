-- The stock ledger's totals (see reports.rs): per company, month, item and warehouse,
-- the quantity and value its rows moved (stock_ledger_month), and per company, item and
-- warehouse all of it with the latest day (stock_ledger_total). A trigger keeps them in the same
-- statement as every row written, so they can never disagree with the ledger; the stock
-- balance at a date after every row is the totals, and at an earlier date the months
-- before its month added to that month's rows up to the date, instead of reading the
-- whole ledger.
CREATE TABLE stock_ledger_month (
    tenant_id TEXT NOT NULL,
    company TEXT NOT NULL,
    month INTEGER NOT NULL,
    item TEXT NOT NULL,
    warehouse TEXT NOT NULL,
    qty INTEGER NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, company, month, item, warehouse)
) WITHOUT ROWID;
INSERT INTO stock_ledger_month (tenant_id, company, month, item, warehouse, qty, value)
SELECT tenant_id, company, CAST(substr(posting_date, 1, 4) AS INTEGER) * 12 + CAST(substr(posting_date, 6, 2) AS INTEGER) - 1, item, warehouse, SUM(qty_change), SUM(stock_value_change)
FROM stock_ledger_entry GROUP BY 1, 2, 3, 4, 5;
CREATE TABLE stock_ledger_total (
    tenant_id TEXT NOT NULL,
    company TEXT NOT NULL,
    item TEXT NOT NULL,
    warehouse TEXT NOT NULL,
    qty INTEGER NOT NULL,
    value INTEGER NOT NULL,
    last_day INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, company, item, warehouse)
) WITHOUT ROWID;
INSERT INTO stock_ledger_total (tenant_id, company, item, warehouse, qty, value, last_day)
SELECT tenant_id, company, item, warehouse, SUM(qty_change), SUM(stock_value_change), MAX(day)
FROM stock_ledger_entry GROUP BY 1, 2, 3, 4;
CREATE TRIGGER stock_ledger_entry__month AFTER INSERT ON stock_ledger_entry
BEGIN
    INSERT INTO stock_ledger_month (tenant_id, company, month, item, warehouse, qty, value)
    VALUES (NEW.tenant_id, NEW.company, CAST(substr(NEW.posting_date, 1, 4) AS INTEGER) * 12 + CAST(substr(NEW.posting_date, 6, 2) AS INTEGER) - 1, NEW.item, NEW.warehouse, NEW.qty_change, NEW.stock_value_change)
    ON CONFLICT (tenant_id, company, month, item, warehouse)
    DO UPDATE SET qty = qty + excluded.qty, value = value + excluded.value;
    INSERT INTO stock_ledger_total (tenant_id, company, item, warehouse, qty, value, last_day)
    VALUES (NEW.tenant_id, NEW.company, NEW.item, NEW.warehouse, NEW.qty_change, NEW.stock_value_change, NEW.day)
    ON CONFLICT (tenant_id, company, item, warehouse)
    DO UPDATE SET qty = qty + excluded.qty, value = value + excluded.value, last_day = MAX(last_day, excluded.last_day);
END;
DROP INDEX stock_ledger_entry__company;
CREATE INDEX stock_ledger_entry__company ON stock_ledger_entry (tenant_id, company, day, item, warehouse, qty_change, stock_value_change);
-- Only repost rows name the row they correct: indexing just those keeps the planner from
-- taking this index for `adjusts IS NULL` (every other row) over the voucher's or the
-- bin's own index.
DROP INDEX stock_ledger_entry__adjusts;
CREATE INDEX stock_ledger_entry__adjusts ON stock_ledger_entry (tenant_id, adjusts) WHERE adjusts IS NOT NULL;
