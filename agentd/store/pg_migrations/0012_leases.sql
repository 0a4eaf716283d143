-- Leases and claimed task runs (SQLite's 0012_leases.sql, which says what each column is).
ALTER TABLE executions ADD COLUMN lease_owner TEXT;
ALTER TABLE executions ADD COLUMN lease_until TEXT;
ALTER TABLE task_runs ADD COLUMN claimed_by TEXT;
ALTER TABLE task_runs ADD COLUMN claimed_at TEXT;
ALTER TABLE task_runs ADD COLUMN claim_until TEXT;
