-- The feed's positions come from a counter that only grows: numbers taken
-- from the rows left would start again once old items are purged, and a
-- reader holding a cursor would skip the new ones.
CREATE TABLE outbox_counter (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
) STRICT;
INSERT INTO outbox_counter (id, last) SELECT 1, coalesce(max(feed_seq), 0) FROM outbox;

-- When a parked item was replayed: its retries run for the retry period
-- from then, not from when it was written.
ALTER TABLE outbox ADD COLUMN retry_since INTEGER;
