-- The outbox's rows were kept by rowid, with an index by feed number
-- (outbox_seq) beside the one by id: every item a look wrote went at the
-- end of all three B-trees, so each commit rewrote the last page of each.
-- The writer numbers every item as it inserts it (outbox_counter), and the
-- numbers only grow, so the number is now the rowid itself: the rows are
-- kept in feed order, the feed reads them by rowid, and outbox_seq goes.
-- (Keyed by id WITHOUT ROWID instead, the outbox wrote more, not less:
-- SQLite splits such B-trees in half even when rows arrive in order.)
CREATE TABLE outbox_by_number (
    feed_seq     INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    la_code      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    claimed_by   TEXT,
    lease_until  INTEGER,
    delivered_at INTEGER,
    last_error   TEXT,
    push         INTEGER NOT NULL DEFAULT 0,
    failed_at    INTEGER,
    retry_since  INTEGER
) STRICT;
INSERT INTO outbox_by_number (feed_seq, id, la_code, kind, payload, created_at, available_at,
        attempts, claimed_by, lease_until, delivered_at, last_error, push, failed_at, retry_since)
    SELECT feed_seq, id, la_code, kind, payload, created_at, available_at,
        attempts, claimed_by, lease_until, delivered_at, last_error, push, failed_at, retry_since
    FROM outbox ORDER BY feed_seq;
DROP TABLE outbox;
ALTER TABLE outbox_by_number RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (id) WHERE push = 1 AND delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_failed ON outbox (la_code, failed_at) WHERE failed_at IS NOT NULL;
