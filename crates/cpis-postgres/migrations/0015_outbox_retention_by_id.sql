-- The feed's retention found old items through an index by creation time,
-- one more B-tree entry for every item a look wrote. An item's id is a
-- UUIDv7 carrying its creation time (OutboxItem::id), and PostgreSQL
-- orders uuids by their bytes, so old items are found through the id's own
-- index. Items written before this version have ids from the clock when
-- they were made, at or after their creation time, so none goes early;
-- one may stay that much longer.
DROP INDEX outbox_created;
