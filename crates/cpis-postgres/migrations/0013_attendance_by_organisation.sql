-- The embedded store's schema version 13 orders its index by child for the
-- repeat-attendance count its writer makes; PostgreSQL counts attendances
-- in the look's reads and keeps access_log_by_nhs_organisation as it is.
-- This empty step keeps the two stores' version numbers the same.
SELECT 1;
