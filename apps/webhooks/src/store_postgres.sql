CREATE TABLE webhooks_secret (
    tenant_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    rotated_at BIGINT,
    PRIMARY KEY (tenant_id, webhook_id)
);
CREATE TABLE webhooks_delivery (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    status TEXT NOT NULL,
    response_code BIGINT,
    duration_ms BIGINT NOT NULL,
    error TEXT,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX webhooks_delivery_by_hook ON webhooks_delivery (tenant_id, webhook_id, id);
ALTER TABLE webhooks_secret ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhooks_secret FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhooks_secret USING (tenant_id = NULLIF(current_setting('prefiq.tenant', true), '')) WITH CHECK (tenant_id = NULLIF(current_setting('prefiq.tenant', true), ''));
ALTER TABLE webhooks_delivery ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhooks_delivery FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhooks_delivery USING (tenant_id = NULLIF(current_setting('prefiq.tenant', true), '')) WITH CHECK (tenant_id = NULLIF(current_setting('prefiq.tenant', true), ''));
