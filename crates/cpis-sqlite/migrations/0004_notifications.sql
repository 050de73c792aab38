-- Notifications to local authorities: the pull feed, webhooks with retries
-- and parking, and repeat-attendance alerts.

ALTER TABLE local_authority ADD COLUMN repeat_organisations INTEGER NOT NULL DEFAULT 3;
ALTER TABLE local_authority ADD COLUMN repeat_days INTEGER NOT NULL DEFAULT 30;

-- push: the LA had a webhook when the item was written, so the worker
-- delivers it. feed_seq: the item's place in its LA's feed, in commit order
-- (the single writer assigns it as it inserts).
ALTER TABLE outbox ADD COLUMN push INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN failed_at INTEGER;
ALTER TABLE outbox ADD COLUMN feed_seq INTEGER;
UPDATE outbox SET feed_seq = rowid;

DROP INDEX outbox_pending;
CREATE INDEX outbox_due ON outbox (id) WHERE push = 1 AND delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_failed ON outbox (la_code, failed_at) WHERE failed_at IS NOT NULL;
CREATE UNIQUE INDEX outbox_feed ON outbox (la_code, feed_seq);
CREATE INDEX outbox_created ON outbox (created_at);

CREATE TABLE la_webhook (
    la_code    TEXT PRIMARY KEY REFERENCES local_authority (code),
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- The last repeat-attendance alert per LA and child: one per window.
CREATE TABLE repeat_alert (
    la_code    TEXT NOT NULL,
    nhs_number INTEGER NOT NULL,
    alerted_at INTEGER NOT NULL,
    PRIMARY KEY (la_code, nhs_number)
) STRICT;
