//! Calendar dates on the wire: ISO 8601 `YYYY-MM-DD`, nothing else.

use time::Date;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::DomainError;

const ISO_DATE: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// Parses `YYYY-MM-DD` strictly: four-digit year, two-digit month and day, a real date.
pub fn parse_iso_date(input: &str) -> Result<Date, DomainError> {
    let trimmed = input.trim();
    if trimmed.len() != 10 {
        return Err(DomainError::Date(input.to_owned()));
    }
    Date::parse(trimmed, ISO_DATE).map_err(|_| DomainError::Date(input.to_owned()))
}

/// Formats a date as `YYYY-MM-DD`.
pub fn format_iso_date(date: Date) -> String {
    date.format(ISO_DATE).unwrap_or_else(|_| date.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn iso_dates() {
        assert_eq!(parse_iso_date("2026-11-25"), Ok(date!(2026 - 11 - 25)));
        assert_eq!(parse_iso_date(" 2024-02-29 "), Ok(date!(2024 - 02 - 29)));
        for bad in [
            "2025-02-29",
            "2026-13-01",
            "2026-1-05",
            "26-11-25",
            "25/11/2026",
            "2026-11-25T00:00",
            "",
            "+2026-11-25",
        ] {
            assert!(parse_iso_date(bad).is_err(), "{bad}");
        }
        assert_eq!(format_iso_date(date!(2026 - 01 - 05)), "2026-01-05");
    }
}
