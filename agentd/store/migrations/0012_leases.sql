-- Several daemons on one store: an execution is driven by the daemon that
-- holds its lease (``lease_owner``, a daemon's runner id, until
-- ``lease_until``), renewed while it is driven and released when it stops;
-- another daemon takes it over only after the lease has expired. A
-- scheduled task's run is claimed the same way (``claimed_by`` until
-- ``claim_until``, ``claimed_at`` the start of the claimed run), so each
-- interval runs once whichever daemon ticks first. With SQLite one daemon
-- holds every claim.
ALTER TABLE executions ADD COLUMN lease_owner TEXT;
ALTER TABLE executions ADD COLUMN lease_until TEXT;
ALTER TABLE task_runs ADD COLUMN claimed_by TEXT;
ALTER TABLE task_runs ADD COLUMN claimed_at TEXT;
ALTER TABLE task_runs ADD COLUMN claim_until TEXT;
