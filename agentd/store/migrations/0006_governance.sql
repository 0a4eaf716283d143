-- Governance: circuit-breaker trips, readiness attestations and scope-expansion
-- proposals. The global autonomy state (level, kill switch, paused action types)
-- lives in meta, where the gate reads it.

-- One row per trip; a breaker is tripped while its latest row has no reset.
CREATE TABLE breaker_trips (
    id           TEXT PRIMARY KEY,              -- trp_<hex>
    key          TEXT NOT NULL,                 -- rule, or rule:action_type
    rule         TEXT NOT NULL,
    action_type  TEXT,
    action       TEXT NOT NULL,                 -- revert_to_l3 | pause_command_type | alert_only
    severity     TEXT NOT NULL,
    alert_only   INTEGER NOT NULL,              -- 1: only alerted, nothing was changed
    value        REAL NOT NULL,
    threshold    REAL NOT NULL,
    message      TEXT NOT NULL,
    effects      TEXT NOT NULL DEFAULT '[]',    -- JSON list: what the trip changed
    incident_id  TEXT,
    tripped_at   TEXT NOT NULL,
    reset_at     TEXT,
    reset_by     TEXT,
    reset_reason TEXT
) STRICT;
CREATE UNIQUE INDEX breaker_trips_one_open ON breaker_trips(key) WHERE reset_at IS NULL;
CREATE INDEX breaker_trips_at ON breaker_trips(tripped_at);

-- An operator's statement that a readiness item holds, with evidence; it counts
-- from at until expires_at.
CREATE TABLE attestations (
    id          TEXT PRIMARY KEY,               -- att_<hex>
    item        TEXT NOT NULL,
    by_name     TEXT NOT NULL,                  -- who vouches (--by)
    evidence    TEXT NOT NULL,
    recorded_by TEXT NOT NULL,                  -- the agentctl user
    at          TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) STRICT;
CREATE INDEX attestations_item ON attestations(item, at);

-- A proposal to widen autonomy (allowlist additions, a higher level). It needs
-- required_approvals approvals from distinct users; only then does it change anything.
CREATE TABLE scope_proposals (
    id                 TEXT PRIMARY KEY,        -- scope_<hex>
    status             TEXT NOT NULL,           -- pending | approved | rejected | expired
    source             TEXT NOT NULL,           -- governance | operator
    requested_by       TEXT NOT NULL,
    current_level      TEXT NOT NULL,
    target_level       TEXT NOT NULL,
    action_types       TEXT NOT NULL DEFAULT '[]',  -- JSON list: to add to the allowlist
    rationale          TEXT NOT NULL,
    evidence           TEXT NOT NULL DEFAULT '{}',  -- JSON: metrics and readiness
    report             TEXT,                    -- the weekly report that proposed it
    required_approvals INTEGER NOT NULL,
    approvals          TEXT NOT NULL DEFAULT '[]',  -- JSON list of {by, at, note}
    created_at         TEXT NOT NULL,
    expires_at         TEXT NOT NULL,
    decided_at         TEXT,
    decided_by         TEXT,
    decision_note      TEXT
) STRICT;
-- At most one proposal waits at a time.
CREATE UNIQUE INDEX scope_proposals_one_pending ON scope_proposals(status) WHERE status = 'pending';
CREATE INDEX scope_proposals_created ON scope_proposals(created_at);
