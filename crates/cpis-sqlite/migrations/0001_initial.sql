-- The first schema. Kept in step with cpis-postgres's migration of the same number.
-- Dates are ISO 8601 text (they sort as dates); instants are Unix microseconds.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE local_authority (
    code                  TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    emergency_duty_number TEXT NOT NULL,
    office_hours_number   TEXT NOT NULL
) STRICT;

CREATE TABLE organisation (
    code         TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    setting_type TEXT NOT NULL
) STRICT;

-- The NHS number leads the key: it is the lookup on the hot path and the
-- future shard key.
CREATE TABLE plan (
    nhs_number             INTEGER NOT NULL,
    la_code                TEXT NOT NULL REFERENCES local_authority (code),
    plan_type              TEXT NOT NULL,
    start_date             TEXT NOT NULL,
    end_date               TEXT,
    delete_date            TEXT,
    expected_delivery_date TEXT,
    local_reference        TEXT,
    batch_id               TEXT NOT NULL,
    updated_at             INTEGER NOT NULL,
    PRIMARY KEY (nhs_number, la_code, plan_type, start_date)
) STRICT, WITHOUT ROWID;

CREATE INDEX plan_by_la ON plan (la_code, nhs_number, plan_type, start_date);

-- Append-only: no code path updates or deletes a row.
CREATE TABLE access_log (
    id                TEXT PRIMARY KEY,
    nhs_number        INTEGER NOT NULL,
    at                INTEGER NOT NULL,
    user_id           TEXT NOT NULL,
    user_name         TEXT NOT NULL,
    role_code         TEXT NOT NULL,
    role_name         TEXT NOT NULL,
    activity_code     TEXT NOT NULL,
    organisation_code TEXT NOT NULL,
    organisation_name TEXT NOT NULL,
    setting_type      TEXT NOT NULL,
    unscheduled       INTEGER NOT NULL,
    returned          TEXT NOT NULL,
    request_id        TEXT NOT NULL
) STRICT;

CREATE INDEX access_log_by_nhs ON access_log (nhs_number, unscheduled, at);

CREATE TABLE outbox (
    id           TEXT PRIMARY KEY,
    la_code      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    claimed_by   TEXT,
    lease_until  INTEGER,
    delivered_at INTEGER,
    last_error   TEXT
) STRICT;

CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at IS NULL;
