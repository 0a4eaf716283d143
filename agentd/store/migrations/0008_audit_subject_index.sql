-- No query looks audit records up by subject (reports filter by event and
-- time, then join the intent), yet every audited decision wrote a page of
-- this index: a subject is mostly an intent id, a content hash, so each new
-- key lands at a random place in it.
DROP INDEX audit_subject;
