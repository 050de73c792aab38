-- Uploads from local authorities, each with its acknowledgement.
-- Kept in step with cpis-postgres's migration of the same number.

CREATE TABLE upload (
    id              TEXT PRIMARY KEY,
    la_code         TEXT NOT NULL REFERENCES local_authority (code),
    received_at     INTEGER NOT NULL,
    mode            TEXT NOT NULL,
    file_code       TEXT NOT NULL,
    accepted        INTEGER NOT NULL,
    rejected        INTEGER NOT NULL,
    withdrawn       INTEGER NOT NULL,
    idempotency_key TEXT,
    records         TEXT NOT NULL
) STRICT;

CREATE INDEX upload_by_la ON upload (la_code, received_at);
CREATE UNIQUE INDEX upload_idempotency ON upload (la_code, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
