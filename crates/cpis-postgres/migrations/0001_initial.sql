-- The first schema. Kept in step with cpis-sqlite's migration of the same number.
-- Instants are Unix microseconds (BIGINT), as in the embedded store, so that
-- both stores compare and order them identically.
-- No sequences, triggers, LISTEN/NOTIFY or advisory locks: the schema must
-- also run on PostgreSQL-compatible distributed engines.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE local_authority (
    code                  TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    emergency_duty_number TEXT NOT NULL,
    office_hours_number   TEXT NOT NULL
);

CREATE TABLE organisation (
    code         TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    setting_type TEXT NOT NULL
);

-- The NHS number leads the key: it is the lookup on the hot path and the
-- future shard key.
CREATE TABLE plan (
    nhs_number             BIGINT NOT NULL,
    la_code                TEXT NOT NULL REFERENCES local_authority (code),
    plan_type              TEXT NOT NULL,
    start_date             DATE NOT NULL,
    end_date               DATE,
    delete_date            DATE,
    expected_delivery_date DATE,
    local_reference        TEXT,
    batch_id               UUID NOT NULL,
    updated_at             BIGINT NOT NULL,
    PRIMARY KEY (nhs_number, la_code, plan_type, start_date)
);

CREATE INDEX plan_by_la ON plan (la_code, nhs_number, plan_type, start_date);

-- Append-only: no code path updates or deletes a row.
CREATE TABLE access_log (
    nhs_number        BIGINT NOT NULL,
    id                UUID NOT NULL,
    at                BIGINT NOT NULL,
    user_id           TEXT NOT NULL,
    user_name         TEXT NOT NULL,
    role_code         TEXT NOT NULL,
    role_name         TEXT NOT NULL,
    activity_code     TEXT NOT NULL,
    organisation_code TEXT NOT NULL,
    organisation_name TEXT NOT NULL,
    setting_type      TEXT NOT NULL,
    unscheduled       BOOLEAN NOT NULL,
    returned          JSONB NOT NULL,
    request_id        TEXT NOT NULL,
    PRIMARY KEY (nhs_number, id)
);

CREATE UNIQUE INDEX access_log_id ON access_log (id);
CREATE INDEX access_log_by_nhs ON access_log (nhs_number, unscheduled, at);

CREATE TABLE outbox (
    id           UUID PRIMARY KEY,
    la_code      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payload      JSONB NOT NULL,
    created_at   BIGINT NOT NULL,
    available_at BIGINT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    claimed_by   TEXT,
    lease_until  BIGINT,
    delivered_at BIGINT,
    last_error   TEXT
);

CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at IS NULL;
