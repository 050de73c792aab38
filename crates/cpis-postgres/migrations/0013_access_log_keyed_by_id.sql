-- The access log was keyed by (nhs_number, id): a second index ordered by
-- child beside access_log_by_nhs_organisation, which every read by child
-- uses. Each look put an entry into a random page of both; a random page
-- costs more than an appended one (it is seldom in memory, and the first
-- change after each checkpoint writes the whole page to the WAL). The
-- record's id, unique and already indexed, is the key now.
ALTER TABLE access_log DROP CONSTRAINT access_log_pkey;
ALTER TABLE access_log ADD CONSTRAINT access_log_pkey PRIMARY KEY USING INDEX access_log_id;
