-- The repeat-attendance check groups a child's recent unscheduled looks by
-- organisation (Store::attendances): with the organisation in the index it
-- reads no table rows, however often the child has been looked at. The
-- history's reads use the same index's first columns.
CREATE INDEX access_log_by_nhs_organisation ON access_log (nhs_number, unscheduled, at, organisation_code);
DROP INDEX access_log_by_nhs;
