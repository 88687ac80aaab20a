CREATE TABLE plugins_installed (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    digest TEXT NOT NULL,
    signer TEXT,
    package BYTEA NOT NULL,
    installed_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE plugins_tenant (
    tenant_id TEXT NOT NULL,
    plugin TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    config TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    changed_by TEXT,
    PRIMARY KEY (tenant_id, plugin)
);
-- Bumped by every change to the two tables above: other processes (replicas, a server
-- beside the CLI that installed a plugin) reload when it moves.
CREATE TABLE plugins_generation (
    id INTEGER PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO plugins_generation (id, generation) VALUES (1, 0);
