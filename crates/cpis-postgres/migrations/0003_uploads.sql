-- Uploads from local authorities, each with its acknowledgement.
-- Kept in step with cpis-sqlite's migration of the same number.

CREATE TABLE upload (
    id              UUID PRIMARY KEY,
    la_code         TEXT NOT NULL REFERENCES local_authority (code),
    received_at     BIGINT NOT NULL,
    mode            TEXT NOT NULL,
    file_code       TEXT NOT NULL,
    accepted        BIGINT NOT NULL,
    rejected        BIGINT NOT NULL,
    withdrawn       BIGINT NOT NULL,
    idempotency_key TEXT,
    records         JSONB NOT NULL
);

CREATE INDEX upload_by_la ON upload (la_code, received_at);
CREATE UNIQUE INDEX upload_idempotency ON upload (la_code, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
