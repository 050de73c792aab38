-- The embedded store's schema version 14 finds a report's looks through
-- time buckets, to spare its commits the pages of two indexes; PostgreSQL
-- keeps access_log_by_user and access_log_by_organisation. This empty step
-- keeps the two stores' version numbers the same.
SELECT 1;
