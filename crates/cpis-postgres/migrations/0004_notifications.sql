-- Notifications to local authorities: the pull feed, webhooks with retries
-- and parking, and repeat-attendance alerts.

ALTER TABLE local_authority ADD COLUMN repeat_organisations INTEGER NOT NULL DEFAULT 3;
ALTER TABLE local_authority ADD COLUMN repeat_days INTEGER NOT NULL DEFAULT 30;

-- push: the LA had a webhook when the item was written, so the worker
-- delivers it. feed_seq: the item's place in the feeds, given after commit
-- by one sequencer at a time under outbox_sequencer's row lock, because
-- numbers taken inside concurrent transactions would not follow commit
-- order. (A counter row, not a SEQUENCE: see ARCHITECTURE on sharding.)
ALTER TABLE outbox ADD COLUMN push BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE outbox ADD COLUMN failed_at BIGINT;
ALTER TABLE outbox ADD COLUMN feed_seq BIGINT;

CREATE TABLE outbox_sequencer (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last BIGINT NOT NULL
);
INSERT INTO outbox_sequencer (id, last) VALUES (1, 0);

DROP INDEX outbox_pending;
CREATE INDEX outbox_due ON outbox (id) WHERE push AND delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_failed ON outbox (la_code, failed_at) WHERE failed_at IS NOT NULL;
CREATE INDEX outbox_unsequenced ON outbox (id) WHERE feed_seq IS NULL;
CREATE UNIQUE INDEX outbox_feed ON outbox (la_code, feed_seq);
CREATE INDEX outbox_created ON outbox (created_at);

CREATE TABLE la_webhook (
    la_code    TEXT PRIMARY KEY REFERENCES local_authority (code),
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The last repeat-attendance alert per LA and child: one per window.
CREATE TABLE repeat_alert (
    la_code    TEXT NOT NULL,
    nhs_number BIGINT NOT NULL,
    alerted_at BIGINT NOT NULL,
    PRIMARY KEY (la_code, nhs_number)
);
