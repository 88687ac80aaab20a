-- The bin cache (see bins.rs): each item and warehouse's state after all its live
-- stock ledger rows, so a submit values from it instead of replaying the history. It is
-- derived from the ledger and can be dropped: a bin without a row is replayed.
CREATE TABLE stock_bin (
    tenant_id TEXT NOT NULL,
    item TEXT NOT NULL,
    warehouse TEXT NOT NULL,
    company TEXT NOT NULL,
    method TEXT NOT NULL,
    last_day INTEGER NOT NULL,
    qty INTEGER NOT NULL,
    value INTEGER NOT NULL,
    rate INTEGER NOT NULL,
    layers TEXT NOT NULL,
    PRIMARY KEY (tenant_id, item, warehouse)
);
