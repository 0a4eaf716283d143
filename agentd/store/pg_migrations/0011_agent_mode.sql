-- Agent mode (SQLite's 0011_agent_mode.sql, which says what each column is).
ALTER TABLE operations ADD COLUMN task TEXT;
ALTER TABLE operations ADD COLUMN model_calls BIGINT NOT NULL DEFAULT 0;
ALTER TABLE operations ADD COLUMN input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE operations ADD COLUMN output_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE operations ADD COLUMN cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE operations ADD COLUMN pending_step TEXT;
ALTER TABLE operation_steps ADD COLUMN detail TEXT;

CREATE TABLE model_spend (
    day           TEXT PRIMARY KEY,  -- YYYY-MM-DD, UTC
    calls         BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL
);
