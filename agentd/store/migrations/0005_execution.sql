-- Execution and rollback: approved intents carried out by executors, with
-- snapshots, rollback tokens and incidents.

-- One row per attempt to change the world: an approved intent (kind 'change')
-- or the undo of an earlier execution (kind 'rollback').
CREATE TABLE executions (
    id            TEXT PRIMARY KEY,             -- exe_<hex>
    kind          TEXT NOT NULL,                -- change | rollback
    intent_id     TEXT NOT NULL,
    rollback_of   TEXT REFERENCES executions(id),
    rollback_type TEXT,                         -- SOFT_UNDO | HARD_UNDO (kind 'rollback')
    tenant        TEXT NOT NULL,
    account       TEXT NOT NULL,
    action_type   TEXT NOT NULL,
    executor      TEXT NOT NULL,
    risk          TEXT NOT NULL,                -- LOW | MEDIUM | HIGH
    autonomous    INTEGER NOT NULL,             -- 1 when auto-approved by policy
    state         TEXT NOT NULL,
    -- queued | waiting | awaiting_consent | snapshot | running | verifying
    -- | succeeded | failed | refused
    reason        TEXT,                         -- machine-readable cause of the state
    detail        TEXT,                         -- for a person
    retry_at      TEXT,                         -- when a waiting execution looks again
    checks        TEXT NOT NULL DEFAULT '[]',   -- JSON list: the pre-execution checks
    params        TEXT NOT NULL DEFAULT '{}',   -- JSON: what the executor was given
    before        TEXT,                         -- JSON snapshot before the change
    after         TEXT,                         -- JSON snapshot after the change
    diff          TEXT,                         -- JSON: the fields meant to change
    target_state  TEXT,                         -- after a failure: unchanged | partial | applied | unknown
    result        TEXT,                         -- JSON: what the change produced (ids)
    snapshot_op   TEXT,                         -- operation ids (browser runs)
    change_op     TEXT,
    verify_op     TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT
) STRICT;
-- An intent is executed at most once.
CREATE UNIQUE INDEX executions_one_per_intent ON executions(intent_id) WHERE kind = 'change';
CREATE INDEX executions_state ON executions(state, created_at);
CREATE INDEX executions_started ON executions(tenant, started_at);
CREATE INDEX executions_finished ON executions(finished_at);

CREATE TABLE rollback_tokens (
    token        TEXT PRIMARY KEY,              -- rbk_<hex>
    execution_id TEXT NOT NULL UNIQUE REFERENCES executions(id),
    risk         TEXT NOT NULL,
    executed_at  TEXT NOT NULL,
    deadline     TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'available',  -- available | in_progress | used | escalated
    used_at      TEXT,
    used_by      TEXT,
    rollback_execution TEXT,
    extensions   TEXT NOT NULL DEFAULT '[]'     -- JSON list of {from, until, by, reason, at}
) STRICT;

CREATE TABLE incidents (
    id          TEXT PRIMARY KEY,               -- inc_<hex>
    severity    TEXT NOT NULL,                  -- critical | high | medium | low
    status      TEXT NOT NULL DEFAULT 'open',   -- open | resolved
    kind        TEXT NOT NULL,                  -- execution_failed | rollback_escalated | rollback_failed | breaker_tripped | ...
    title       TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    ref         TEXT,                           -- execution id, token, breaker name
    tenant      TEXT,
    account     TEXT,
    autonomous  INTEGER NOT NULL DEFAULT 0,     -- 1 when it came from an autonomous action
    notified    TEXT NOT NULL DEFAULT '[]',     -- JSON list of channels that delivered
    created_at  TEXT NOT NULL,
    resolved_at TEXT,
    resolved_by TEXT,
    resolution  TEXT
) STRICT;
CREATE INDEX incidents_status ON incidents(status, created_at);
CREATE INDEX incidents_created ON incidents(created_at);
