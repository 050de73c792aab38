-- The embedded store's schema version 17 keeps its outbox's rows by feed
-- number; PostgreSQL's outbox is a heap with its indexes as they are. This
-- empty step keeps the two stores' version numbers the same.
SELECT 1;
