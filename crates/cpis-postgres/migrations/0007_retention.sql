-- Retention: each removal of old records is kept, and is a leaf of the log.
-- Old access records are found by id: ids are UUIDv7, so they sort by the
-- time of the look, and the primary key serves without another index.
CREATE TABLE retention_log (
    id                     UUID PRIMARY KEY,
    at                     BIGINT NOT NULL,
    access_before          BIGINT NOT NULL,
    plans_withdrawn_before DATE NOT NULL,
    plans_ended_before     DATE NOT NULL,
    removed_access         BIGINT NOT NULL,
    removed_plans          BIGINT NOT NULL
);
