-- Batches and serial numbers (see tracking.rs): the stock ledger's rows name the batch
-- they move, and `stock_serial` keeps where each serial number of an item is now
-- (warehouse NULL once it has left, by delivery or issue).
ALTER TABLE stock_ledger_entry ADD COLUMN batch TEXT;
CREATE INDEX stock_ledger_entry__batch ON stock_ledger_entry (tenant_id, item, warehouse, batch);
CREATE TABLE stock_serial (
    tenant_id TEXT NOT NULL,
    item TEXT NOT NULL,
    serial_no TEXT NOT NULL,
    warehouse TEXT,
    voucher_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, item, serial_no)
);
