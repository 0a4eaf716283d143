-- The gate: accounts, intents with their decisions, budgets, idempotency,
-- and the durable hand-off queue to execution.

CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,
    stage         TEXT NOT NULL,
    trusted_mode  TEXT NOT NULL DEFAULT 'NONE',
    domains       TEXT NOT NULL DEFAULT '[]',   -- JSON list
    allowed_hosts TEXT NOT NULL DEFAULT '[]',   -- JSON list
    allowlist     TEXT,                         -- JSON list, or NULL: the tenant's applies
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;
CREATE INDEX accounts_tenant ON accounts(tenant);

CREATE TABLE intents (
    id               TEXT PRIMARY KEY,
    fingerprint      TEXT NOT NULL,
    tenant           TEXT NOT NULL,
    account          TEXT NOT NULL,
    action_type      TEXT NOT NULL,
    domain           TEXT,
    change_type      TEXT,
    diff             TEXT NOT NULL,
    rationale        TEXT NOT NULL,
    confidence       REAL,
    source           TEXT NOT NULL,
    serves           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    decision         TEXT NOT NULL,   -- AUTO_EXECUTE | REQUIRE_APPROVAL | BLOCKED
    reason           TEXT NOT NULL,
    tier             TEXT NOT NULL,
    risk_level       TEXT NOT NULL,
    outcome          TEXT NOT NULL,   -- JSON: the decision with its trace
    status           TEXT NOT NULL,   -- pending | approved | blocked | rejected | expired | ...
    expires_at       TEXT,
    approval_source  TEXT,            -- POLICY | HUMAN, written once
    auto_executed    INTEGER,         -- written once
    decided_by       TEXT,
    decided_at       TEXT,
    decision_note    TEXT,
    updated_at       TEXT NOT NULL
) STRICT;
CREATE INDEX intents_status ON intents(status, created_at);
CREATE INDEX intents_tenant ON intents(tenant, created_at);
CREATE INDEX intents_expiry ON intents(expires_at) WHERE status = 'pending';

CREATE TRIGGER intents_approval_written_once BEFORE UPDATE OF approval_source, auto_executed ON intents
WHEN OLD.approval_source IS NOT NULL
     AND (NEW.approval_source IS NOT OLD.approval_source OR NEW.auto_executed IS NOT OLD.auto_executed)
BEGIN SELECT RAISE(ABORT, 'approval_source and auto_executed are written once'); END;

-- Daily counters, one row per (day, scope, key); scope is tenant, account
-- (key tenant/account) or action_type (key tenant/action_type).
CREATE TABLE budget_usage (
    day   TEXT NOT NULL,
    scope TEXT NOT NULL,
    key   TEXT NOT NULL,
    used  INTEGER NOT NULL,
    PRIMARY KEY (day, scope, key)
) STRICT, WITHOUT ROWID;

-- One row per intent that consumed budget: the primary key is what makes
-- "consumed at most once" a property of the file, not only of the code.
CREATE TABLE budget_consumption (
    intent_id TEXT PRIMARY KEY,
    day       TEXT NOT NULL,
    at        TEXT NOT NULL
) STRICT;

-- The gate's idempotency records (SPEC 3.3 step 5): RESERVED, then PUBLISHED.
CREATE TABLE idempotency (
    intent_id  TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
CREATE INDEX idempotency_age ON idempotency(updated_at);

-- The hand-off to execution: one row per intent, written in the same
-- transaction as the decision or the approval.
CREATE TABLE execution_queue (
    seq             INTEGER PRIMARY KEY,
    intent_id       TEXT NOT NULL UNIQUE,
    approval_source TEXT NOT NULL,
    enqueued_at     TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'queued',
    updated_at      TEXT NOT NULL
) STRICT;
CREATE INDEX execution_queue_state ON execution_queue(state, seq);
