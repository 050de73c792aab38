//! The date in England, which decides what "today" means for plan rules.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};

/// The calendar date in the United Kingdom at the instant `now`.
///
/// British Summer Time runs from 01:00 UTC on the last Sunday of March to
/// 01:00 UTC on the last Sunday of October (Summer Time Order 2002). Written
/// out here rather than pulling a time-zone database for one zone.
pub fn uk_date(now: OffsetDateTime) -> Date {
    uk_time(now).date()
}

/// The instant `now` as a clock in the United Kingdom shows it.
pub fn uk_time(now: OffsetDateTime) -> OffsetDateTime {
    let utc = now.to_offset(UtcOffset::UTC);
    let year = utc.year();
    let starts = last_sunday_at_one_utc(year, Month::March);
    let ends = last_sunday_at_one_utc(year, Month::October);
    let in_summer_time = match (starts, ends) {
        (Some(starts), Some(ends)) => utc >= starts && utc < ends,
        _ => false,
    };
    match UtcOffset::from_hms(1, 0, 0) {
        Ok(bst) if in_summer_time => utc.to_offset(bst),
        _ => utc,
    }
}

fn last_sunday_at_one_utc(year: i32, month: Month) -> Option<OffsetDateTime> {
    let last_day = Date::from_calendar_date(year, month, 31).ok()?;
    let back = last_day.weekday().number_days_from_sunday();
    let sunday = last_day - time::Duration::days(i64::from(back));
    debug_assert_eq!(sunday.weekday(), Weekday::Sunday);
    Some(PrimitiveDateTime::new(sunday, Time::from_hms(1, 0, 0).ok()?).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn winter_dates_are_utc_dates() {
        assert_eq!(
            uk_date(datetime!(2026-11-25 23:59 UTC)),
            date!(2026 - 11 - 25)
        );
        assert_eq!(
            uk_date(datetime!(2026-01-01 00:00 UTC)),
            date!(2026 - 01 - 01)
        );
    }

    #[test]
    fn summer_dates_are_an_hour_ahead() {
        assert_eq!(
            uk_date(datetime!(2026-07-01 22:59 UTC)),
            date!(2026 - 07 - 01)
        );
        assert_eq!(
            uk_date(datetime!(2026-07-01 23:00 UTC)),
            date!(2026 - 07 - 02)
        );
    }

    #[test]
    fn the_changes_happen_at_one_utc_on_the_last_sundays() {
        // 2026: BST starts on 29 March and ends on 25 October.
        assert_eq!(
            uk_date(datetime!(2026-03-28 23:30 UTC)),
            date!(2026 - 03 - 28)
        );
        assert_eq!(
            uk_date(datetime!(2026-03-29 00:59 UTC)),
            date!(2026 - 03 - 29)
        );
        assert_eq!(
            uk_date(datetime!(2026-03-29 23:00 UTC)),
            date!(2026 - 03 - 30)
        );
        assert_eq!(
            uk_date(datetime!(2026-10-24 23:00 UTC)),
            date!(2026 - 10 - 25)
        );
        assert_eq!(
            uk_date(datetime!(2026-10-25 23:00 UTC)),
            date!(2026 - 10 - 25)
        );
    }

    #[test]
    fn offsets_of_the_input_do_not_matter() {
        assert_eq!(
            uk_date(datetime!(2026-07-02 01:30 +02:00)),
            date!(2026 - 07 - 02)
        );
    }
}
