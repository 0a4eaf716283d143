-- The records the gate keeps per intent (its budget consumption, its
-- idempotency record, its hand-off row) are keyed by the intent's sequence
-- number, which grows with every new intent, instead of by its id, a content
-- hash. An index on a hash takes each new key at a random place: every
-- decision wrote a page of each such index (the write-ahead log, then the
-- checkpoint, copy whole pages), and the more intents there were, the more
-- distinct pages a batch touched. Keys that grow go at the end of their
-- index: a batch shares its few last pages. The intent id stays in each
-- table, for reading; lookups by id go through the intents table.
--
-- The intents table gets that number as an explicit INTEGER PRIMARY KEY (an
-- implicit rowid may change on VACUUM), last so that column positions stay.

-- Every record must name a stored intent (the daemon writes them in the
-- intent's own transaction); a file where one does not is not migrated.
CREATE TEMP TABLE migration_0007_orphans (
    n INTEGER CONSTRAINT every_gate_record_names_a_stored_intent CHECK (n = 0)
);
INSERT INTO migration_0007_orphans
SELECT (SELECT count(*) FROM budget_consumption c
        WHERE NOT EXISTS (SELECT 1 FROM intents i WHERE i.id = c.intent_id))
     + (SELECT count(*) FROM idempotency d
        WHERE NOT EXISTS (SELECT 1 FROM intents i WHERE i.id = d.intent_id))
     + (SELECT count(*) FROM execution_queue q
        WHERE NOT EXISTS (SELECT 1 FROM intents i WHERE i.id = q.intent_id));
DROP TABLE migration_0007_orphans;

CREATE TABLE intents_0007 (
    id               TEXT NOT NULL UNIQUE,
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
    updated_at       TEXT NOT NULL,
    seq              INTEGER PRIMARY KEY   -- grows with each new intent
) STRICT;
INSERT INTO intents_0007 SELECT *, rowid FROM intents ORDER BY rowid;
DROP TABLE intents;
ALTER TABLE intents_0007 RENAME TO intents;
CREATE INDEX intents_status ON intents(status, created_at);
CREATE INDEX intents_tenant ON intents(tenant, created_at);
CREATE INDEX intents_expiry ON intents(expires_at) WHERE status = 'pending';

CREATE TRIGGER intents_approval_written_once BEFORE UPDATE OF approval_source, auto_executed ON intents
WHEN OLD.approval_source IS NOT NULL
     AND (NEW.approval_source IS NOT OLD.approval_source OR NEW.auto_executed IS NOT OLD.auto_executed)
BEGIN SELECT RAISE(ABORT, 'approval_source and auto_executed are written once'); END;

-- One row per intent that consumed budget: the primary key (one number per
-- intent) is what makes "consumed at most once" a property of the file.
CREATE TABLE budget_consumption_0007 (
    intent_id  TEXT NOT NULL,
    day        TEXT NOT NULL,
    at         TEXT NOT NULL,
    intent_seq INTEGER PRIMARY KEY   -- intents.seq
) STRICT;
INSERT INTO budget_consumption_0007
SELECT c.intent_id, c.day, c.at, i.seq FROM budget_consumption c JOIN intents i ON i.id = c.intent_id;
DROP TABLE budget_consumption;
ALTER TABLE budget_consumption_0007 RENAME TO budget_consumption;

-- The gate's idempotency records (SPEC 3.3 step 5): RESERVED, then PUBLISHED.
CREATE TABLE idempotency_0007 (
    intent_id  TEXT NOT NULL,
    state      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    intent_seq INTEGER PRIMARY KEY   -- intents.seq
) STRICT;
INSERT INTO idempotency_0007
SELECT d.intent_id, d.state, d.updated_at, i.seq FROM idempotency d JOIN intents i ON i.id = d.intent_id;
DROP TABLE idempotency;
ALTER TABLE idempotency_0007 RENAME TO idempotency;
CREATE INDEX idempotency_age ON idempotency(updated_at);

-- The hand-off to execution: one row per intent, written in the same
-- transaction as the decision or the approval.
CREATE TABLE execution_queue_0007 (
    seq             INTEGER PRIMARY KEY,
    intent_id       TEXT NOT NULL,
    approval_source TEXT NOT NULL,
    enqueued_at     TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'queued',
    updated_at      TEXT NOT NULL,
    intent_seq      INTEGER NOT NULL UNIQUE   -- intents.seq
) STRICT;
INSERT INTO execution_queue_0007
SELECT q.seq, q.intent_id, q.approval_source, q.enqueued_at, q.state, q.updated_at, i.seq
FROM execution_queue q JOIN intents i ON i.id = q.intent_id;
DROP TABLE execution_queue;
ALTER TABLE execution_queue_0007 RENAME TO execution_queue;
CREATE INDEX execution_queue_state ON execution_queue(state, seq);
