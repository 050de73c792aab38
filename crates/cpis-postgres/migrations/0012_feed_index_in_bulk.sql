-- The embedded store's schema version 12 moves its per-LA feed index to a
-- table filled in bulk; PostgreSQL keeps outbox_feed as it is. This empty
-- step keeps the two stores' version numbers the same.
SELECT 1;
