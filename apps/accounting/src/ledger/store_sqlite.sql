-- The ledger store (see ledger/store.rs): per-tenant integer keys, one row per write,
-- one narrow row per posting; `gl_entry` becomes a view over them.
CREATE TABLE ledger_key (
    key INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL
);
CREATE UNIQUE INDEX ledger_key__id ON ledger_key (tenant_id, id);
CREATE TABLE ledger_batch (
    batch INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    at TEXT NOT NULL,
    by_user TEXT
);
CREATE TABLE ledger_posting (
    seq INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    batch INTEGER NOT NULL,
    journal_entry TEXT NOT NULL,
    line INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    company INTEGER NOT NULL,
    account INTEGER NOT NULL,
    period INTEGER NOT NULL,
    day INTEGER NOT NULL,
    base INTEGER NOT NULL,
    currency INTEGER NOT NULL,
    debit INTEGER NOT NULL,
    credit INTEGER NOT NULL,
    line_debit INTEGER NOT NULL,
    line_credit INTEGER NOT NULL,
    rate_source TEXT
);
CREATE INDEX ledger_posting__entry ON ledger_posting (tenant_id, journal_entry);
CREATE INDEX ledger_posting__account ON ledger_posting (tenant_id, account, day);
CREATE INDEX ledger_posting__company ON ledger_posting (tenant_id, company, day);

-- An installation made before the store had `gl_entry` as a table: its rows move into
-- the store (on a new one the table is made empty here, to the same effect).
CREATE TABLE IF NOT EXISTS gl_entry (
    tenant_id TEXT NOT NULL, id TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT,
    company TEXT, account TEXT, posting_date TEXT, period TEXT, journal_entry TEXT,
    debit INTEGER, debit_currency TEXT, credit INTEGER, line_debit INTEGER,
    line_debit_currency TEXT, line_credit INTEGER, remark TEXT, is_reversal INTEGER,
    is_closing INTEGER, rate_source TEXT
);
INSERT INTO ledger_key (tenant_id, id)
SELECT tenant_id, company FROM gl_entry
UNION SELECT tenant_id, account FROM gl_entry
UNION SELECT tenant_id, period FROM gl_entry
UNION SELECT tenant_id, debit_currency FROM gl_entry
UNION SELECT tenant_id, line_debit_currency FROM gl_entry;
INSERT INTO ledger_batch (tenant_id, at, by_user)
SELECT DISTINCT tenant_id, created_at, created_by FROM gl_entry ORDER BY created_at;
INSERT INTO ledger_posting (tenant_id, batch, journal_entry, line, kind, company, account, period, day, base, currency, debit, credit, line_debit, line_credit, rate_source)
SELECT o.tenant_id, b.batch, o.journal_entry, o.line,
    o.flags + CASE WHEN o.remark = 'exchange rounding' AND NOT EXISTS (SELECT 1 FROM journal_entry_line l WHERE l.tenant_id = o.tenant_id AND l.parent_id = o.journal_entry AND l.parent_field = 'lines' AND l.idx = o.line) THEN 4 ELSE 0 END,
    kc.key, ka.key, kp.key, CAST(julianday(o.posting_date) - 2440587.5 AS INTEGER), kb.key, kl.key,
    COALESCE(o.debit, 0), COALESCE(o.credit, 0), COALESCE(o.line_debit, 0), COALESCE(o.line_credit, 0), o.rate_source
FROM (
    SELECT g.*,
        ROW_NUMBER() OVER (PARTITION BY g.tenant_id, g.journal_entry, g.is_reversal ORDER BY g.created_at, g.id) - 1 AS line,
        (CASE WHEN g.is_reversal THEN 1 ELSE 0 END) + (CASE WHEN g.is_closing THEN 2 ELSE 0 END) AS flags
    FROM gl_entry g
) o
JOIN ledger_batch b ON b.tenant_id = o.tenant_id AND b.at = o.created_at AND b.by_user IS o.created_by
JOIN ledger_key kc ON kc.tenant_id = o.tenant_id AND kc.id = o.company
JOIN ledger_key ka ON ka.tenant_id = o.tenant_id AND ka.id = o.account
JOIN ledger_key kp ON kp.tenant_id = o.tenant_id AND kp.id = o.period
JOIN ledger_key kb ON kb.tenant_id = o.tenant_id AND kb.id = o.debit_currency
JOIN ledger_key kl ON kl.tenant_id = o.tenant_id AND kl.id = o.line_debit_currency
ORDER BY o.created_at, o.id;
DROP TABLE gl_entry;
DELETE FROM prefiq_entities WHERE name = 'gl_entry';

-- The GL entry as the API and the desk read it: the columns of an entity table.
CREATE VIEW gl_entry AS
SELECT
    p.tenant_id AS tenant_id,
    printf('%016d', p.seq) AS id,
    printf('%016d', p.seq) AS name,
    b.at AS created_at,
    b.by_user AS created_by,
    b.at AS modified_at,
    b.by_user AS modified_by,
    1 AS version,
    0 AS docstatus,
    NULL AS deleted_at,
    '{}' AS custom,
    NULL AS amended_from,
    kc.id AS company,
    ka.id AS account,
    date(p.day * 86400, 'unixepoch') AS posting_date,
    kp.id AS period,
    p.journal_entry AS journal_entry,
    p.debit AS debit,
    kb.id AS debit_currency,
    p.credit AS credit,
    kb.id AS credit_currency,
    p.line_debit AS line_debit,
    kl.id AS line_debit_currency,
    p.line_credit AS line_credit,
    kl.id AS line_credit_currency,
    l.party_type AS party_type,
    l.party AS party,
    l.cost_center AS cost_center,
    CASE WHEN p.kind & 4 <> 0 THEN 'exchange rounding' ELSE l.remark END AS remark,
    (p.kind & 1) <> 0 AS is_reversal,
    (p.kind & 2) <> 0 AS is_closing,
    p.rate_source AS rate_source
FROM ledger_posting p
JOIN ledger_batch b ON b.batch = p.batch
JOIN ledger_key kc ON kc.key = p.company
JOIN ledger_key ka ON ka.key = p.account
JOIN ledger_key kp ON kp.key = p.period
JOIN ledger_key kb ON kb.key = p.base
JOIN ledger_key kl ON kl.key = p.currency
LEFT JOIN journal_entry_line l ON l.tenant_id = p.tenant_id AND l.parent_id = p.journal_entry AND l.parent_field = 'lines' AND l.idx = p.line AND p.kind & 4 = 0;
