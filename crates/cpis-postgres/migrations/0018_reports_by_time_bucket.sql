-- The privacy officer's reports by user and by organisation read the log
-- through access_log_by_user and access_log_by_organisation, and every look
-- inserted into a page of each, among a thousand users' and hundreds of
-- organisations' pages: two random B-tree insertions a look for reports
-- read a few times a day. As on the embedded store (its migration 14), a
-- report now finds its subject's looks through the time buckets (2^22
-- microseconds, about 4.2 s) in which the subject looked: one small row per
-- subject and bucket, written by the subject's first look in the bucket;
-- the rest find it there and write nothing. Within a bucket the looks are
-- found through access_log_id: an access record's id is a UUIDv7 of its own
-- time (cpis_store::log::id_at), so a bucket's looks lie in one range of
-- ids. An index by time would have served too, but PostgreSQL's generic
-- plans then read a child's attendances through it instead of the key.
-- pgbench of the looks' insert alone (1.7 million records, batches of 40,
-- three interleaved rounds): 613 to 733 batches a second with the two
-- indexes, 725 to 821 with the buckets and an index by time instead; the
-- buckets written by the trigger below rather than by the looks' own
-- statement were no slower (540 to 647 against 569 to 595).
--
-- A trigger writes the buckets, once per statement, so that every insert
-- has them, whoever makes it: a node of an older cpis still running while
-- others upgrade, too. Each statement writes its buckets in order, so that
-- two statements that both write new ones take their locks in one order.
-- The log is locked against inserts until this commits, so that no look
-- falls between the filling of the buckets below and the trigger.
LOCK TABLE access_log IN SHARE MODE;
CREATE TABLE access_user_bucket (
    user_id TEXT NOT NULL,
    bucket  BIGINT NOT NULL,
    PRIMARY KEY (user_id, bucket)
);
CREATE TABLE access_organisation_bucket (
    organisation_code TEXT NOT NULL,
    bucket            BIGINT NOT NULL,
    PRIMARY KEY (organisation_code, bucket)
);
-- Retention removes the buckets older than the log by these.
CREATE INDEX access_user_bucket_by_bucket ON access_user_bucket (bucket);
CREATE INDEX access_organisation_bucket_by_bucket ON access_organisation_bucket (bucket);
CREATE FUNCTION access_log_buckets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO access_user_bucket (user_id, bucket)
        SELECT DISTINCT user_id, at >> 22 FROM looks ORDER BY 1, 2
        ON CONFLICT DO NOTHING;
    INSERT INTO access_organisation_bucket (organisation_code, bucket)
        SELECT DISTINCT organisation_code, at >> 22 FROM looks ORDER BY 1, 2
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER access_log_buckets AFTER INSERT ON access_log
    REFERENCING NEW TABLE AS looks
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_buckets();
INSERT INTO access_user_bucket (user_id, bucket)
    SELECT DISTINCT user_id, at >> 22 FROM access_log;
INSERT INTO access_organisation_bucket (organisation_code, bucket)
    SELECT DISTINCT organisation_code, at >> 22 FROM access_log;
DROP INDEX access_log_by_user;
DROP INDEX access_log_by_organisation;
