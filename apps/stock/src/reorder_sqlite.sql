-- The purchase orders the reorder job drafted (see reorder.rs): one row per item and
-- warehouse a drafted order covers, so that a later run skips what is still on order.
CREATE TABLE stock_reorder_draft (
    seq INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    purchase_order TEXT NOT NULL,
    company TEXT NOT NULL,
    supplier TEXT NOT NULL,
    item TEXT NOT NULL,
    warehouse TEXT NOT NULL,
    qty INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX stock_reorder_draft__bin ON stock_reorder_draft (tenant_id, item, warehouse);
CREATE INDEX stock_reorder_draft__order ON stock_reorder_draft (tenant_id, purchase_order);
