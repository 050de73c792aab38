-- When a parked item was replayed: its retries run for the retry period
-- from then, not from when it was written. (The feed's counter is already
-- a row that only grows: outbox_sequencer.)
ALTER TABLE outbox ADD COLUMN retry_since BIGINT;
