-- Retention: each removal of old records is kept, and is a leaf of the log.
-- Old access records are found by id: ids are UUIDv7, so they sort by the
-- time of the look, and the primary key serves without another index.
CREATE TABLE retention_log (
    id                     TEXT PRIMARY KEY,
    at                     INTEGER NOT NULL,
    access_before          INTEGER NOT NULL,
    plans_withdrawn_before TEXT NOT NULL,
    plans_ended_before     TEXT NOT NULL,
    removed_access         INTEGER NOT NULL,
    removed_plans          INTEGER NOT NULL
) STRICT;
