-- The repeat-attendance check now runs in the writer, inside the look's own
-- transaction (Store::COUNTS_ATTENDANCES_IN_WRITE), so what it costs is paid
-- once for every look on a single thread. Ordered by time, the index made it
-- read every look of the child in the window: a child looked at thousands of
-- times would have slowed every look in the service. Ordered by organisation
-- it answers how many organisations looked within the window in a few seeks
-- per organisation (rows::organisations_seen), however often each looked.
-- The history's newest-first read sorts the child's looks instead, which is
-- that child's own cost and not on the writer.
CREATE INDEX access_log_by_nhs_organisation_at ON access_log (nhs_number, unscheduled, organisation_code, at);
DROP INDEX access_log_by_nhs_organisation;
