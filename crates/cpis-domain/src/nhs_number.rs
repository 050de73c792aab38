//! The NHS number: ten digits, the last a modulus-11 check digit.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::DomainError;

/// A valid NHS number.
///
/// Held as the integer the ten digits spell (it fits comfortably in a `u64`),
/// so that comparisons, hashing and storage are cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NhsNumber(u64);

impl NhsNumber {
    /// Parses ten digits, allowing single spaces or dashes between groups as
    /// people type them (`943 476 5919`, `943-476-5919`, `9434765919`).
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let trimmed = input.trim();
        let mut digits = [0u8; 10];
        let mut count = 0;
        let mut previous_was_separator = true;
        for byte in trimmed.bytes() {
            match byte {
                b'0'..=b'9' if count < 10 => {
                    digits[count] = byte - b'0';
                    count += 1;
                    previous_was_separator = false;
                }
                b' ' | b'-' if !previous_was_separator => previous_was_separator = true,
                _ => return Err(DomainError::NhsNumberFormat(input.to_owned())),
            }
        }
        if count != 10 || previous_was_separator {
            return Err(DomainError::NhsNumberFormat(input.to_owned()));
        }
        if check_digit(&digits[..9]) != Some(digits[9]) {
            return Err(DomainError::NhsNumberCheckDigit(input.to_owned()));
        }
        Ok(NhsNumber(
            digits
                .iter()
                .fold(0u64, |acc, &digit| acc * 10 + u64::from(digit)),
        ))
    }

    /// Rebuilds a number read back from storage, checking it again so that a
    /// corrupted row cannot become a valid-looking NHS number.
    pub fn from_u64(value: u64) -> Result<Self, DomainError> {
        if value > 9_999_999_999 {
            return Err(DomainError::NhsNumberFormat(value.to_string()));
        }
        Self::parse(&format!("{value:010}"))
    }

    /// Completes nine digits with their check digit, or `None` when the
    /// remainder would need a check digit of 10 (such numbers are never issued).
    /// Used to make synthetic numbers in the test range.
    pub fn with_check_digit(first_nine: u32) -> Option<Self> {
        if first_nine > 999_999_999 {
            return None;
        }
        let mut digits = [0u8; 9];
        let mut rest = first_nine;
        for slot in digits.iter_mut().rev() {
            *slot = (rest % 10) as u8;
            rest /= 10;
        }
        let check = check_digit(&digits)?;
        Some(NhsNumber(u64::from(first_nine) * 10 + u64::from(check)))
    }

    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The ten digits without spaces, as FHIR identifiers carry them.
    pub fn digits(self) -> String {
        format!("{:010}", self.0)
    }
}

/// The modulus-11 check digit of the first nine digits, weighted 10 down to 2.
fn check_digit(first_nine: &[u8]) -> Option<u8> {
    let sum: u32 = first_nine
        .iter()
        .zip((2..=10u32).rev())
        .map(|(&digit, weight)| u32::from(digit) * weight)
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        check => Some(check as u8),
    }
}

impl fmt::Display for NhsNumber {
    /// The NHS's own 3-3-4 grouping: `943 476 5919`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.digits();
        write!(f, "{} {} {}", &digits[..3], &digits[3..6], &digits[6..])
    }
}

impl FromStr for NhsNumber {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for NhsNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.digits())
    }
}

impl<'de> Deserialize<'de> for NhsNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, expected: Option<&str>) {
        let parsed = NhsNumber::parse(input).ok().map(|n| n.to_string());
        assert_eq!(parsed.as_deref(), expected, "input {input:?}");
    }

    #[test]
    fn known_numbers() {
        // Valid: the NHS's published example and numbers from the 999 test range.
        check("9434765919", Some("943 476 5919"));
        check("943 476 5919", Some("943 476 5919"));
        check("943-476-5919", Some("943 476 5919"));
        check(" 943 476 5919 ", Some("943 476 5919"));
        check("9990000018", Some("999 000 0018"));
        check("4010232137", Some("401 023 2137"));
        check("0000000000", Some("000 000 0000"));
        // Wrong check digit.
        check("9434765918", None);
        check("9434765910", None);
        // The remainder asks for a check digit of 10, so no check digit is valid.
        check("9990000000", None);
        check("9990000001", None);
        check("9990000050", Some("999 000 0050"));
        // Not ten digits, or badly separated.
        check("", None);
        check("943476591", None);
        check("94347659190", None);
        check("943  476 5919", None);
        check("943 476 5919-", None);
        check("-943 476 5919", None);
        check("943_476_5919", None);
        check("94347659l9", None);
        check("９４３４７６５９１９", None);
    }

    #[test]
    fn check_digit_ten_is_never_valid() {
        // 999000000: the weighted sum is 243, remainder 1, so the check digit would be 10.
        assert_eq!(NhsNumber::with_check_digit(999_000_000), None);
        for last in 0..=9 {
            assert!(NhsNumber::parse(&format!("999000000{last}")).is_err());
        }
    }

    #[test]
    fn serde_uses_the_ten_digits() {
        let number = NhsNumber::parse("943 476 5919").unwrap();
        assert_eq!(serde_json::to_string(&number).unwrap(), "\"9434765919\"");
    }

    proptest! {
        #[test]
        fn every_completed_number_parses_in_every_spelling(first_nine in 0u32..=999_999_999) {
            if let Some(number) = NhsNumber::with_check_digit(first_nine) {
                let digits = number.digits();
                prop_assert_eq!(NhsNumber::parse(&digits)?, number);
                prop_assert_eq!(NhsNumber::parse(&number.to_string())?, number);
                let dashed = format!("{}-{}-{}", &digits[..3], &digits[3..6], &digits[6..]);
                prop_assert_eq!(NhsNumber::parse(&dashed)?, number);
                prop_assert_eq!(NhsNumber::from_u64(number.as_u64())?, number);
            }
        }

        #[test]
        fn exactly_one_check_digit_is_valid_or_none(first_nine in 0u32..=999_999_999) {
            let valid = (0..=9)
                .filter(|last| NhsNumber::parse(&format!("{first_nine:09}{last}")).is_ok())
                .count();
            let expected = usize::from(NhsNumber::with_check_digit(first_nine).is_some());
            prop_assert_eq!(valid, expected);
        }

        #[test]
        fn changing_one_digit_is_always_caught(first_nine in 0u32..=999_999_999, position in 0usize..10, delta in 1u8..10) {
            if let Some(number) = NhsNumber::with_check_digit(first_nine) {
                let mut digits: Vec<u8> = number.digits().into_bytes();
                digits[position] = b'0' + (digits[position] - b'0' + delta) % 10;
                let mutated = String::from_utf8(digits).unwrap();
                prop_assert!(NhsNumber::parse(&mutated).is_err());
            }
        }

        #[test]
        fn arbitrary_text_never_panics(input in ".{0,20}") {
            let _ = NhsNumber::parse(&input);
        }
    }
}
