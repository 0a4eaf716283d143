-- Agent mode: an operation may carry a task the model plans step by step
-- (``task``, NULL for a recorded workflow), what its model calls spent, and
-- the step that waits for a person's approval (JSON, NULL when none waits).
-- A step row keeps what the model chose beyond its action and target
-- (``detail``, JSON: the value with secrets as placeholders, the expected
-- text, the result name, the element and the model's stated reason).
-- ``model_spend`` sums every operation's model calls by UTC day, for the
-- daily budgets.
ALTER TABLE operations ADD COLUMN task TEXT;
ALTER TABLE operations ADD COLUMN model_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE operations ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE operations ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE operations ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;
ALTER TABLE operations ADD COLUMN pending_step TEXT;
ALTER TABLE operation_steps ADD COLUMN detail TEXT;

CREATE TABLE model_spend (
    day           TEXT PRIMARY KEY,  -- YYYY-MM-DD, UTC
    calls         INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd      REAL NOT NULL
) STRICT;
