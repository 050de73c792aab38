-- PostgreSQL's schema version 16 folds its access log's key into its index
-- by child; the embedded store's log is keyed by id, and its index by child
-- stays as migration 13 made it. This empty step keeps the two stores'
-- version numbers the same.
SELECT 1;
