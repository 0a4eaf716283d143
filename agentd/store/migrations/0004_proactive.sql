-- The proactive loop: interactions, patterns, goals, task runs, account summaries.

-- Clustered on (account, at, id) so the pattern scan reads every account's
-- history in one ordered pass; ``id`` stays unique on its own for imports.
-- ``kind`` is the compact code of agentd.core.interactions.KindCode and
-- ``at`` epoch seconds (UTC), which is what the scan consumes.
CREATE TABLE interactions (
    account     TEXT NOT NULL,
    at          REAL NOT NULL,
    id          TEXT NOT NULL,
    kind        INTEGER NOT NULL,
    inbound     INTEGER NOT NULL,
    sentiment   REAL,
    summary     TEXT,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (account, at, id)
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX interactions_id ON interactions(id);

-- One row per pattern key: a known key is never raised again.
CREATE TABLE patterns (
    key         TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    severity    TEXT,
    direction   TEXT,
    summary     TEXT NOT NULL,
    rules       TEXT NOT NULL,   -- JSON list of rule names
    evidence    TEXT NOT NULL,   -- JSON list of interaction ids
    detected_at TEXT NOT NULL,
    planned_at  TEXT             -- when proactive_outreach_check turned it into an intent
) STRICT;
CREATE INDEX patterns_detected ON patterns(detected_at);
CREATE INDEX patterns_unplanned ON patterns(detected_at) WHERE planned_at IS NULL;
CREATE INDEX patterns_account ON patterns(account);

CREATE TABLE goals (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    goal_type   TEXT NOT NULL,
    target      REAL NOT NULL,
    start_at    TEXT NOT NULL,
    end_at      TEXT NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,   -- active | completed | missed
    verdict     TEXT,            -- on_track | behind | completed | missed, at progress_at
    current     REAL,
    progress_at TEXT,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
CREATE INDEX goals_status ON goals(status, tenant);

-- Scheduled tasks: the last finished run survives a restart, so a daily
-- task is neither skipped nor doubled.
CREATE TABLE task_runs (
    name             TEXT PRIMARY KEY,
    last_run_at      TEXT,           -- start of the last finished run
    last_finished_at TEXT,
    last_result      TEXT,           -- ok | failed
    last_detail      TEXT,
    runs             INTEGER NOT NULL DEFAULT 0,
    failures         INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE account_summaries (
    account             TEXT PRIMARY KEY,
    summary             TEXT NOT NULL,
    method              TEXT NOT NULL,   -- model | extractive
    interactions        INTEGER NOT NULL,
    last_interaction_at REAL,
    generated_at        TEXT NOT NULL,
    fallback_reason     TEXT
) STRICT;
