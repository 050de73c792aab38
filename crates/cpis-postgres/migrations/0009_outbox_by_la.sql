-- The LA dashboard's newest notifications (Store::latest_notifications),
-- read without sorting the LA's whole outbox.
CREATE INDEX outbox_la_created ON outbox (la_code, created_at);
