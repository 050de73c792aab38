-- The privacy officer's reports by user and by organisation read the log
-- through an index on each. A look from one of a thousand clinicians went
-- into its own user's and its own organisation's last page of those indexes,
-- so a commit of a hundred looks rewrote some two hundred pages to the WAL,
-- and the checkpointer copied them again: without the two indexes the query
-- benchmark's looks without HTTP ran at 39,013 to 50,492/s against 28,173 to
-- 30,879/s with them (2026-12-07, three interleaved rounds).
--
-- Now the log is indexed by time, which each look appends to, and a report
-- finds its user's or organisation's looks through the time buckets (2^22
-- microseconds, about 4.2 s: rows::REPORT_BUCKET_SHIFT) in which that user
-- or organisation looked: one small row per subject and bucket, written by
-- the first look in the bucket and only read by the rest. A report reads
-- the index entries of each such bucket, everyone's, and keeps its
-- subject's: the index holds user and organisation so that the others'
-- looks are passed over without reading their rows. The buckets are
-- indexed by time too, so that retention removes old ones without reading
-- them all.
CREATE INDEX access_log_by_at ON access_log (at, id, user_id, organisation_code);
CREATE TABLE access_user_bucket (
    user_id TEXT NOT NULL,
    bucket  INTEGER NOT NULL,
    PRIMARY KEY (user_id, bucket)
) STRICT, WITHOUT ROWID;
CREATE TABLE access_organisation_bucket (
    organisation_code TEXT NOT NULL,
    bucket            INTEGER NOT NULL,
    PRIMARY KEY (organisation_code, bucket)
) STRICT, WITHOUT ROWID;
CREATE INDEX access_user_bucket_by_bucket ON access_user_bucket (bucket);
CREATE INDEX access_organisation_bucket_by_bucket ON access_organisation_bucket (bucket);
INSERT INTO access_user_bucket (user_id, bucket)
    SELECT DISTINCT user_id, at >> 22 FROM access_log;
INSERT INTO access_organisation_bucket (organisation_code, bucket)
    SELECT DISTINCT organisation_code, at >> 22 FROM access_log;
DROP INDEX access_log_by_user;
DROP INDEX access_log_by_organisation;
