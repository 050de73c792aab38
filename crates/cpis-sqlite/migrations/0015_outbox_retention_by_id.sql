-- The feed's retention found old items through an index by creation time,
-- and every item a look wrote put an entry at that index's end: one page
-- more rewritten by every commit, 4 KiB in the WAL and again in the
-- database file. An item's id is a UUIDv7 carrying its creation time
-- (OutboxItem::id), so old items are found through the id's own index.
-- Items written before this version have ids from the clock when the
-- writer made them, at or after their creation time (seconds after it
-- under load), so none goes early; one may stay that much longer.
DROP INDEX outbox_created;
