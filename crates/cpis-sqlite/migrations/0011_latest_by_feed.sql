-- The dashboard's newest notifications (Store::latest_notifications) are
-- read in feed order from outbox_feed, newest first. A second index on
-- (la_code, created_at) sent every look's outbox row to one more page of
-- its LA's, and was 8% of the clinician's query's throughput.
DROP INDEX outbox_la_created;
