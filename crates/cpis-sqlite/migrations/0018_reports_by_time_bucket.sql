-- PostgreSQL's schema version 18 finds a report's looks through time
-- buckets, as the embedded store has since its version 14. This empty step
-- keeps the two stores' version numbers the same.
SELECT 1;
