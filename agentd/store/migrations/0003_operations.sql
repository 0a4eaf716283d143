-- Browser operations: durable runs with their steps, consents and sealed secrets.

CREATE TABLE operations (
    id           TEXT PRIMARY KEY,
    account      TEXT NOT NULL,
    service      TEXT NOT NULL,
    workflow     TEXT NOT NULL,
    params       TEXT NOT NULL DEFAULT '{}',  -- JSON object (never secrets)
    state        TEXT NOT NULL,   -- awaiting_consent | pending | in_progress | completed | failed | cancelled
    step         INTEGER NOT NULL DEFAULT 0,  -- steps completed; step + 1 may have started
    total        INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  TEXT,
    reason       TEXT,            -- machine-readable cause of failed/cancelled
    error        TEXT,            -- for a person
    result       TEXT,            -- JSON object of extracted values
    folder       TEXT,            -- screenshots and trace
    intent_id    TEXT,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT
) STRICT;
CREATE INDEX operations_state ON operations(state, created_at);

CREATE TABLE operation_steps (
    op_id       TEXT NOT NULL REFERENCES operations(id),
    seq         INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    idx         INTEGER NOT NULL,   -- workflow step index (0: the final screenshot)
    intent      TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,      -- unrendered: placeholders, never secret values
    source      TEXT NOT NULL,      -- workflow | planner | agent
    status      TEXT NOT NULL,      -- ok | failed | refused | final
    error       TEXT,
    screenshot  TEXT,
    sha256      TEXT,
    duration_ms REAL NOT NULL DEFAULT 0,
    at          TEXT NOT NULL,
    PRIMARY KEY (op_id, seq)
) STRICT;

CREATE TABLE consents (
    account     TEXT NOT NULL,
    service     TEXT NOT NULL,
    operation   TEXT NOT NULL,      -- a workflow name, or '*' for every workflow
    permissions TEXT NOT NULL DEFAULT '[]',  -- JSON list
    version     INTEGER NOT NULL,
    granted_by  TEXT NOT NULL,
    granted_at  TEXT NOT NULL,
    revoked_by  TEXT,
    revoked_at  TEXT,
    PRIMARY KEY (account, service, operation)
) STRICT;

CREATE TABLE secrets (
    account         TEXT NOT NULL,
    service         TEXT NOT NULL,
    name            TEXT NOT NULL,
    blob            BLOB NOT NULL,  -- AES-256-GCM sealed by agentd.vault
    key_fingerprint TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (account, service, name)
) STRICT;
