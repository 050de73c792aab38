//! Local authorities: the councils with children's services that own plans.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{DomainError, RepeatRule};

/// An English upper-tier authority's ONS GSS code, such as `E09000007`.
///
/// Only the entity types with children's services are accepted: unitary
/// authorities (E06), metropolitan districts (E08), London boroughs and the
/// City of London (E09), and county councils (E10). Held inline so that the
/// code is `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LaCode([u8; 9]);

impl LaCode {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let bytes = input.trim().as_bytes();
        let well_formed = bytes.len() == 9
            && bytes[0] == b'E'
            && matches!(&bytes[1..3], b"06" | b"08" | b"09" | b"10")
            && bytes[3..].iter().all(u8::is_ascii_digit);
        match <[u8; 9]>::try_from(bytes) {
            Ok(code) if well_formed => Ok(LaCode(code)),
            _ => Err(DomainError::LaCode(input.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        // Every byte was checked to be ASCII in `parse`.
        std::str::from_utf8(&self.0).unwrap_or("E00000000")
    }
}

impl fmt::Display for LaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for LaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LaCode({})", self.as_str())
    }
}

impl Serialize for LaCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LaCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A UK telephone number, kept as the person wrote it (spacing normalised)
/// because UK numbers have no single grouping that suits every area code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts national (`01632 960123`) and international (`+44 1632 960123`)
    /// forms with spaces, dashes or brackets: 10 or 11 national digits after a
    /// leading 0, not starting 00.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let error = || DomainError::PhoneNumber(input.to_owned());
        let trimmed = input.trim();
        let national_digits = Self::national_digits(trimmed).ok_or_else(error)?;
        let valid = (10..=11).contains(&national_digits.len())
            && national_digits.starts_with('0')
            && !national_digits.starts_with("00");
        if !valid {
            return Err(error());
        }
        let normalised = trimmed.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(PhoneNumber(normalised))
    }

    fn national_digits(text: &str) -> Option<String> {
        let (rest, prefix) = match text.strip_prefix("+44") {
            Some(rest) => (rest.trim_start().trim_start_matches("(0)"), "0"),
            None => (text, ""),
        };
        let mut digits = String::from(prefix);
        for ch in rest.chars() {
            match ch {
                '0'..='9' => digits.push(ch),
                ' ' | '-' | '(' | ')' => {}
                _ => return None,
            }
        }
        Some(digits)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An RFC 3966 `tel:` URI in international form, for links a phone can dial.
    pub fn tel_uri(&self) -> String {
        let digits = Self::national_digits(&self.0).unwrap_or_default();
        format!("tel:+44{}", digits.trim_start_matches('0'))
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A council with children's services, and the numbers a clinician phones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalAuthority {
    pub code: LaCode,
    pub name: String,
    /// The out-of-hours emergency duty team.
    pub emergency_duty_number: PhoneNumber,
    pub office_hours_number: PhoneNumber,
    /// When the LA is alerted to a child seen at one setting after another.
    #[serde(default)]
    pub repeat_attendance: RepeatRule,
}

impl LocalAuthority {
    pub const MAX_NAME_LEN: usize = 100;

    pub fn new(
        code: LaCode,
        name: &str,
        emergency_duty_number: PhoneNumber,
        office_hours_number: PhoneNumber,
    ) -> Result<Self, DomainError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > Self::MAX_NAME_LEN {
            return Err(DomainError::Text {
                field: "local authority name",
                max: Self::MAX_NAME_LEN,
            });
        }
        Ok(LocalAuthority {
            code,
            name: name.to_owned(),
            emergency_duty_number,
            office_hours_number,
            repeat_attendance: RepeatRule::default(),
        })
    }

    pub fn with_repeat_rule(self, repeat_attendance: RepeatRule) -> Self {
        LocalAuthority {
            repeat_attendance,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn la_codes() {
        for good in [
            "E06000053",
            "E08000037",
            "E09000001",
            "E10000034",
            " E09000007 ",
        ] {
            assert!(LaCode::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "E0900000",
            "E090000071",
            "E07000001",
            "W06000001",
            "e09000007",
            "E09A00007",
            "E0900000７",
        ] {
            assert!(LaCode::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(LaCode::parse("E09000007").unwrap().to_string(), "E09000007");
    }

    #[test]
    fn phone_numbers() {
        let check = |input: &str, expected: Option<(&str, &str)>| {
            let parsed = PhoneNumber::parse(input)
                .ok()
                .map(|p| (p.as_str().to_owned(), p.tel_uri()));
            let expected = expected.map(|(a, b)| (a.to_owned(), b.to_owned()));
            assert_eq!(parsed, expected, "{input:?}");
        };
        check("01632 960001", Some(("01632 960001", "tel:+441632960001")));
        check(
            " 020  7946 0123 ",
            Some(("020 7946 0123", "tel:+442079460123")),
        );
        check(
            "+44 (0)1632 960001",
            Some(("+44 (0)1632 960001", "tel:+441632960001")),
        );
        check(
            "+441632960001",
            Some(("+441632960001", "tel:+441632960001")),
        );
        check(
            "0800-123-4567",
            Some(("0800-123-4567", "tel:+448001234567")),
        );
        check("01632 96000", Some(("01632 96000", "tel:+44163296000")));
        check("", None);
        check("1632 960001", None);
        check("00441632960001", None);
        check("01632 9600011", None);
        check("0163", None);
        check("01632 960001 ext 4", None);
        check("+1 202 555 0100", None);
    }
}
