//! How both backends write values that have no common SQL type, so that a
//! row means the same in either: instants as Unix microseconds, NHS numbers
//! as the integer their ten digits spell. Read back, each is checked again.

use cpis_domain::NhsNumber;
use time::OffsetDateTime;

use crate::{StoreError, StoreResult};

/// A stored value that does not parse back: a bug or tampering.
pub fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// An instant as Unix microseconds.
pub fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

pub fn from_micros(value: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(value) * 1_000)
        .map_err(|_| corrupt(format!("timestamp {value} is out of range")))
}

/// The width of the time buckets through which a report by user or by
/// organisation finds its subject's looks, as a shift of microseconds: 2^22
/// µs, about 4.2 s. Each store keeps a row per subject and bucket in which
/// the subject looked, written by its first look there, so that no index
/// by user or organisation takes an entry for every look. The stores'
/// migrations that made the buckets (SQLite's 14, PostgreSQL's 18) compute
/// the same with their own literal.
///
/// Wider buckets mean fewer bucket rows to write when many clinicians look
/// at once; narrower ones, fewer other looks for a report to read past.
/// At 4.2 s the thousand clinicians of the query benchmark write a bucket
/// row for under one look in a hundred, and a report at national volumes
/// (a few looks a second) reads a few dozen looks per bucket.
pub const REPORT_BUCKET_SHIFT: u32 = 22;

/// The report bucket of an instant in Unix microseconds.
pub fn report_bucket(at_micros: i64) -> i64 {
    at_micros >> REPORT_BUCKET_SHIFT
}

/// A report page's cursor as both stores' statements bind it, `(at, id)`
/// with the time in microseconds: from the beginning of time on a first
/// page.
pub fn report_cursor(query: &crate::AccessQuery) -> (i64, uuid::Uuid) {
    query
        .after
        .map_or((i64::MIN, uuid::Uuid::nil()), |(at, id)| (micros(at), id))
}

/// The buckets one page of a report by user or organisation walks, in
/// order, and the part of each it reads: buckets split time, so the looks
/// of bucket after bucket, each in `(at, id)` order, are in order across
/// them, and the page ends as soon as it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketWalk {
    /// The first and last bucket the page may hold looks of.
    pub first: i64,
    pub last: i64,
    /// The page's range in microseconds, `[from, to)`, its start moved up
    /// to the cursor's time.
    from: i64,
    to: i64,
}

impl BucketWalk {
    /// The walk for `query`'s page; `None` if the page is empty whatever
    /// the log holds.
    pub fn of(query: &crate::AccessQuery) -> Option<Self> {
        let (from, to) = (micros(query.from), micros(query.to));
        let from = query.after.map_or(from, |(at, _)| from.max(micros(at)));
        (from < to && query.limit > 0).then(|| BucketWalk {
            first: report_bucket(from),
            last: report_bucket(to - 1),
            from,
            to,
        })
    }

    /// The part of `bucket` the page reads, in microseconds: `[begins, ends)`.
    pub fn range(&self, bucket: i64) -> (i64, i64) {
        let begins = bucket.saturating_mul(1 << REPORT_BUCKET_SHIFT);
        let ends = bucket
            .saturating_add(1)
            .saturating_mul(1 << REPORT_BUCKET_SHIFT);
        (begins.max(self.from), ends.min(self.to))
    }
}

/// An NHS number as the integer its ten digits spell.
pub fn nhs(number: NhsNumber) -> i64 {
    i64::try_from(number.as_u64()).unwrap_or(i64::MAX)
}

pub fn nhs_from(value: i64) -> StoreResult<NhsNumber> {
    u64::try_from(value)
        .ok()
        .and_then(|value| NhsNumber::from_u64(value).ok())
        .ok_or_else(|| corrupt(format!("stored NHS number {value} is invalid")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_their_encoding() {
        let at = time::macros::datetime!(2026-11-25 10:00:00.123456 UTC);
        assert_eq!(from_micros(micros(at)).ok(), Some(at));
        let number = NhsNumber::parse("943 476 5919").ok();
        assert_eq!(number.map(nhs).and_then(|n| nhs_from(n).ok()), number);
        assert!(nhs_from(9_434_765_918).is_err());
        assert!(nhs_from(-1).is_err());
    }
}
