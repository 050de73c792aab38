-- The access log had two indexes led by the child's NHS number: its key
-- (nhs_number, id) and access_log_by_nhs_organisation, which every read by
-- child uses. Each look inserted into a random page of both. The key now
-- is that index with the id after it: still child-first, so that a child's
-- history stays on the child's shard (ARCHITECTURE.md, "Scaling out"), and
-- one B-tree entry less a look. Building it reads the whole table once,
-- under a lock that holds the looks meanwhile.
ALTER TABLE access_log
    DROP CONSTRAINT access_log_pkey,
    ADD CONSTRAINT access_log_pkey PRIMARY KEY (nhs_number, unscheduled, at, organisation_code, id);
DROP INDEX access_log_by_nhs_organisation;
