-- An operation's intent_id column never held an intent: it holds the id of
-- the execution (change or rollback) that started the operation, or NULL for
-- one started by hand. Name it for what it holds. No index, view or trigger
-- names the column, and RENAME COLUMN (SQLite 3.25+) keeps the rows in place.
ALTER TABLE operations RENAME COLUMN intent_id TO execution_id;
