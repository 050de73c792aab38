-- The feed's retention found old items through an index by creation time,
-- and every item a look wrote put an entry at that index's end: one page
-- more rewritten by every commit, 4 KiB in the WAL and again in the
-- database file. An item's id is a UUIDv7 carrying its creation time
-- (OutboxItem::id), so old items are found through the id's own index.
-- Items written before this version have ids from the clock when they were
-- made, within milliseconds of their creation time.
DROP INDEX outbox_created;
