-- INSERT OR REPLACE on an existing sequence number deletes the old record
-- and inserts a new one, and the delete fires no trigger (SQLite runs delete
-- triggers for REPLACE only with recursive_triggers on): audit_no_delete did
-- not stop a record being rewritten in place. Refuse any insert onto a
-- sequence number that is already taken; plain appends are unaffected.
CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit
WHEN EXISTS (SELECT 1 FROM audit WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END;
