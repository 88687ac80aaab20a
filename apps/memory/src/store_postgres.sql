CREATE TABLE memory_meta (
    key BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    tags TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    priority BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    tier TEXT NOT NULL DEFAULT 'warm',
    source_entity TEXT,
    source_id TEXT,
    created_by TEXT,
    model TEXT,
    vector BYTEA,
    tsv tsvector GENERATED ALWAYS AS (
        to_tsvector('english', coalesce(subject, '') || ' ' || text || ' ' || replace(tags, '|', ' '))
    ) STORED,
    UNIQUE (tenant_id, item_id)
);
CREATE INDEX memory_meta_pending ON memory_meta (tenant_id, key) WHERE vector IS NULL AND tier = 'warm';
CREATE INDEX memory_meta_source ON memory_meta (tenant_id, source_entity, source_id);
CREATE INDEX memory_meta_idle ON memory_meta (tenant_id, tier, last_used_at);
CREATE INDEX memory_meta_tsv ON memory_meta USING GIN (tsv);
CREATE TABLE memory_cold (
    key BIGINT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    model TEXT,
    vector BYTEA,
    archived_at BIGINT NOT NULL
);
CREATE TABLE memory_changes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    key BIGINT NOT NULL,
    op TEXT NOT NULL
);
CREATE INDEX memory_changes_by_tenant ON memory_changes (tenant_id, seq);
ALTER TABLE memory_meta ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_meta FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memory_meta USING (tenant_id = NULLIF(current_setting('prefiq.tenant', true), '')) WITH CHECK (tenant_id = NULLIF(current_setting('prefiq.tenant', true), ''));
ALTER TABLE memory_cold ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_cold FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memory_cold USING (tenant_id = NULLIF(current_setting('prefiq.tenant', true), '')) WITH CHECK (tenant_id = NULLIF(current_setting('prefiq.tenant', true), ''));
ALTER TABLE memory_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_changes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memory_changes USING (tenant_id = NULLIF(current_setting('prefiq.tenant', true), '')) WITH CHECK (tenant_id = NULLIF(current_setting('prefiq.tenant', true), ''));
CREATE TABLE memory_idempotency (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, key)
);
ALTER TABLE memory_idempotency ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_idempotency FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memory_idempotency USING (tenant_id = NULLIF(current_setting('prefiq.tenant', true), '')) WITH CHECK (tenant_id = NULLIF(current_setting('prefiq.tenant', true), ''));
