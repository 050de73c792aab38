-- The privacy officer's reports: accesses by user and by organisation over
-- a date range, and a record of every report run (a leaf of the log).

CREATE INDEX access_log_by_user ON access_log (user_id, at);
CREATE INDEX access_log_by_organisation ON access_log (organisation_code, at);

CREATE TABLE report_log (
    id                TEXT PRIMARY KEY,
    at                INTEGER NOT NULL,
    user_id           TEXT NOT NULL,
    user_name         TEXT NOT NULL,
    role_code         TEXT NOT NULL,
    organisation_code TEXT NOT NULL,
    report            TEXT NOT NULL,
    subject           TEXT NOT NULL,
    from_date         TEXT NOT NULL,
    to_date           TEXT NOT NULL,
    request_id        TEXT NOT NULL
) STRICT;
