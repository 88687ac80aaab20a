-- The bin cache (see bins.rs): each item and warehouse's state after all its live
-- stock ledger rows, so a submit values from it instead of replaying the history. It is
-- derived from the ledger and can be dropped: a bin without a row is replayed. Its rows
-- are behind the tenant policy, as the ledger's are.
CREATE TABLE stock_bin (
    tenant_id TEXT COLLATE "C" NOT NULL,
    item TEXT COLLATE "C" NOT NULL,
    warehouse TEXT COLLATE "C" NOT NULL,
    company TEXT COLLATE "C" NOT NULL,
    method TEXT COLLATE "C" NOT NULL,
    last_day INTEGER NOT NULL,
    qty BIGINT NOT NULL,
    value BIGINT NOT NULL,
    rate BIGINT NOT NULL,
    layers TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, item, warehouse)
);
ALTER TABLE stock_bin ENABLE ROW LEVEL SECURITY;
ALTER TABLE stock_bin FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON stock_bin USING (tenant_id = NULLIF(current_setting('prefiq.tenant', true), '')) WITH CHECK (tenant_id = NULLIF(current_setting('prefiq.tenant', true), ''));
