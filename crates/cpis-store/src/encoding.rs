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
