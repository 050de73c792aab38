-- The dashboard's newest notifications (Store::latest_notifications) are
-- read in feed order from outbox_feed, newest first, the items the feed has
-- not numbered yet before them. A second index on (la_code, created_at)
-- cost every look's outbox row one more index entry.
DROP INDEX outbox_la_created;
