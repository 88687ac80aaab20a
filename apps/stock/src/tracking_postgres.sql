-- Batches and serial numbers (see tracking.rs): the stock ledger's rows name the batch
-- they move, and `stock_serial` keeps where each serial number of an item is now
-- (warehouse NULL once it has left, by delivery or issue). Behind the tenant policy.
ALTER TABLE stock_ledger_entry ADD COLUMN batch TEXT COLLATE "C";
CREATE INDEX stock_ledger_entry__batch ON stock_ledger_entry (tenant_id, item, warehouse, batch);
CREATE TABLE stock_serial (
    tenant_id TEXT COLLATE "C" NOT NULL,
    item TEXT COLLATE "C" NOT NULL,
    serial_no TEXT COLLATE "C" NOT NULL,
    warehouse TEXT COLLATE "C",
    voucher_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, item, serial_no)
);
ALTER TABLE stock_serial ENABLE ROW LEVEL SECURITY;
ALTER TABLE stock_serial FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON stock_serial USING (tenant_id = NULLIF(current_setting('prefiq.tenant', true), '')) WITH CHECK (tenant_id = NULLIF(current_setting('prefiq.tenant', true), ''));
