-- An LA's feed was read through an index on (la_code, feed_seq). Each look's
-- item went into its own LA's last page of that index, one of 153 such
-- pages, so a commit of a hundred looks rewrote some seventy pages of it to
-- the WAL, and the checkpointer copied them again: with that index dropped,
-- the query benchmark's looks without HTTP ran at 37,175 and 32,111/s
-- against 29,654 and 27,885/s with it (2026-12-07). Items are now
-- indexed by their number alone (always the index's last page), and copied
-- into the per-LA index in bulk, sorted by LA, once FEED_INDEX_EVERY have
-- gathered, in the transaction that adds the last of them
-- (rows::insert_outbox). A feed read takes the indexed items from
-- outbox_feed_by_la and the newer ones, never more than FEED_INDEX_EVERY,
-- from the items past outbox_counter.indexed.
CREATE INDEX outbox_seq ON outbox (feed_seq);
CREATE TABLE outbox_feed_by_la (
    la_code  TEXT NOT NULL,
    feed_seq INTEGER NOT NULL,
    PRIMARY KEY (la_code, feed_seq)
) STRICT, WITHOUT ROWID;
INSERT INTO outbox_feed_by_la (la_code, feed_seq)
    SELECT la_code, feed_seq FROM outbox WHERE feed_seq IS NOT NULL ORDER BY la_code, feed_seq;
ALTER TABLE outbox_counter ADD COLUMN indexed INTEGER NOT NULL DEFAULT 0;
UPDATE outbox_counter SET indexed = last;
DROP INDEX outbox_feed;
