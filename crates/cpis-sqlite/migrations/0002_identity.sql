-- Identity: short-lived entries (sessions, sign-in states, authorization
-- codes, used client-assertion ids) and the LA systems' registered keys.
-- Kept in step with cpis-postgres's migration of the same number.

CREATE TABLE ephemeral (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX ephemeral_by_expiry ON ephemeral (expires_at);

CREATE TABLE la_client (
    client_id  TEXT PRIMARY KEY,
    la_code    TEXT NOT NULL REFERENCES local_authority (code),
    public_key TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
