CREATE TABLE webhooks_secret (
    tenant_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    rotated_at INTEGER,
    PRIMARY KEY (tenant_id, webhook_id)
);
CREATE TABLE webhooks_delivery (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    response_code INTEGER,
    duration_ms INTEGER NOT NULL,
    error TEXT,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX webhooks_delivery_by_hook ON webhooks_delivery (tenant_id, webhook_id, id);
