-- Foundation: key/value metadata and the append-only, hash-chained audit trail.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    event     TEXT NOT NULL,
    actor     TEXT NOT NULL,
    subject   TEXT,
    data      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
) STRICT;

CREATE INDEX audit_subject ON audit(subject) WHERE subject IS NOT NULL;
CREATE INDEX audit_event_at ON audit(event, at);

-- Append-only: the daemon never updates or deletes a record. Someone with
-- raw access to the file can still drop these triggers; the hash chain is
-- what tells them apart from the daemon.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END;
