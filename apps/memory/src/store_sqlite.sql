CREATE TABLE memory_meta (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    tags TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    tier TEXT NOT NULL DEFAULT 'warm',
    source_entity TEXT,
    source_id TEXT,
    created_by TEXT,
    model TEXT,
    vector BLOB,
    UNIQUE (tenant_id, item_id)
);
CREATE INDEX memory_meta_pending ON memory_meta (tenant_id, key) WHERE vector IS NULL AND tier = 'warm';
CREATE INDEX memory_meta_source ON memory_meta (tenant_id, source_entity, source_id);
CREATE INDEX memory_meta_idle ON memory_meta (tenant_id, tier, last_used_at);
CREATE VIRTUAL TABLE memory_fts USING fts5(
    text, subject, tags,
    content = 'memory_meta', content_rowid = 'key',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER memory_meta_fts_insert AFTER INSERT ON memory_meta BEGIN
    INSERT INTO memory_fts (rowid, text, subject, tags) VALUES (new.key, new.text, new.subject, new.tags);
END;
CREATE TRIGGER memory_meta_fts_delete AFTER DELETE ON memory_meta BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, text, subject, tags) VALUES ('delete', old.key, old.text, old.subject, old.tags);
END;
CREATE TRIGGER memory_meta_fts_update AFTER UPDATE OF text, subject, tags ON memory_meta BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, text, subject, tags) VALUES ('delete', old.key, old.text, old.subject, old.tags);
    INSERT INTO memory_fts (rowid, text, subject, tags) VALUES (new.key, new.text, new.subject, new.tags);
END;
CREATE TABLE memory_cold (
    key INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    model TEXT,
    vector BLOB,
    archived_at INTEGER NOT NULL
);
CREATE TABLE memory_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    key INTEGER NOT NULL,
    op TEXT NOT NULL
);
CREATE INDEX memory_changes_by_tenant ON memory_changes (tenant_id, seq);
CREATE TABLE memory_idempotency (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id, key)
);
