//! Repeat attendance: a child with a plan seen in unscheduled care at one
//! organisation after another, which the owning LA must be told about.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::{AccessRecord, DomainError};

/// When an LA is alerted: `organisations` or more distinct organisations
/// looking (unscheduled) within `days` days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatRule {
    pub organisations: u32,
    pub days: u32,
}

impl Default for RepeatRule {
    fn default() -> Self {
        RepeatRule {
            organisations: 3,
            days: 30,
        }
    }
}

impl RepeatRule {
    /// The widest window an LA may set; also how far back the query reads.
    pub const MAX_DAYS: u32 = 365;
    pub const MAX_ORGANISATIONS: u32 = 50;

    /// Two organisations at least: one alone is not a pattern.
    pub fn new(organisations: u32, days: u32) -> Result<Self, DomainError> {
        if !(2..=Self::MAX_ORGANISATIONS).contains(&organisations)
            || !(1..=Self::MAX_DAYS).contains(&days)
        {
            return Err(DomainError::RepeatRule {
                max_organisations: Self::MAX_ORGANISATIONS,
                max_days: Self::MAX_DAYS,
            });
        }
        Ok(RepeatRule {
            organisations,
            days,
        })
    }

    pub fn window(self) -> Duration {
        Duration::days(i64::from(self.days))
    }
}

/// One organisation's part in a repeat attendance: its first and last
/// unscheduled look within the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attendance {
    pub organisation_code: String,
    pub organisation_name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    pub looks: u32,
}

/// The organisations that looked at a child (unscheduled) in the window
/// ending at `now`, oldest first, when they reach the rule's count; `None`
/// otherwise. `accesses` may be in any order and may include scheduled
/// looks and looks outside the window, which do not count. A look exactly
/// `days` days old is outside.
pub fn repeat_attendance(
    accesses: &[AccessRecord],
    now: OffsetDateTime,
    rule: RepeatRule,
) -> Option<Vec<Attendance>> {
    let since = now - rule.window();
    let mut seen = Vec::new();
    for access in accesses
        .iter()
        .filter(|access| access.unscheduled && access.at > since && access.at <= now)
    {
        attend(&mut seen, access);
    }
    repeat_attendance_of(seen, rule)
}

/// Counts one look into the organisations seen: its organisation's first and
/// last look and number of looks, or a new organisation.
pub fn attend(seen: &mut Vec<Attendance>, access: &AccessRecord) {
    let code = access.organisation_code.as_str();
    match seen
        .iter_mut()
        .find(|known| known.organisation_code == code)
    {
        Some(known) => {
            known.first_seen = known.first_seen.min(access.at);
            known.last_seen = known.last_seen.max(access.at);
            known.looks += 1;
        }
        None => seen.push(Attendance {
            organisation_code: code.to_owned(),
            organisation_name: access.organisation_name.clone(),
            first_seen: access.at,
            last_seen: access.at,
            looks: 1,
        }),
    }
}

/// The rule applied to the organisations seen in its window (one
/// [`Attendance`] each): all of them, oldest first, when they reach the
/// rule's count; `None` otherwise.
pub fn repeat_attendance_of(
    mut attendances: Vec<Attendance>,
    rule: RepeatRule,
) -> Option<Vec<Attendance>> {
    if attendances.len() < rule.organisations as usize {
        return None;
    }
    attendances.sort_by(|a, b| {
        (a.first_seen, &a.organisation_code).cmp(&(b.first_seen, &b.organisation_code))
    });
    Some(attendances)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NhsNumber, OdsCode, SettingType};
    use time::macros::datetime;
    use uuid::Uuid;

    const NOW: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);

    fn look(organisation: &str, at: OffsetDateTime, unscheduled: bool) -> AccessRecord {
        AccessRecord {
            id: Uuid::nil(),
            at,
            nhs_number: NhsNumber::parse("9990000018").unwrap(),
            user_id: "u".to_owned(),
            user_name: "Dr U".to_owned(),
            role_code: "R8000".to_owned(),
            role_name: "Clinical Practitioner Access Role".to_owned(),
            activity_code: "B0107".to_owned(),
            organisation_code: OdsCode::parse(organisation).unwrap(),
            organisation_name: format!("Setting {organisation}"),
            setting_type: SettingType::EmergencyDepartment,
            unscheduled,
            returned: Vec::new(),
            request_id: "r".to_owned(),
        }
    }

    #[test]
    fn the_rule_is_checked_at_its_boundaries() {
        let rule = RepeatRule::default();
        let two = vec![
            look("ZZA01", NOW - Duration::days(3), true),
            look("ZZA02", NOW, true),
            look("ZZA02", NOW - Duration::hours(1), true),
        ];
        assert_eq!(
            repeat_attendance(&two, NOW, rule),
            None,
            "two organisations"
        );

        let mut three = two.clone();
        three.push(look(
            "ZZA03",
            NOW - Duration::days(30) + Duration::seconds(1),
            true,
        ));
        let found = repeat_attendance(&three, NOW, rule).unwrap();
        let codes: Vec<_> = found.iter().map(|a| a.organisation_code.as_str()).collect();
        assert_eq!(codes, vec!["ZZA03", "ZZA01", "ZZA02"], "oldest first");
        assert_eq!(found[2].looks, 2);
        assert_eq!(found[2].first_seen, NOW - Duration::hours(1));

        let mut old = two.clone();
        old.push(look("ZZA03", NOW - Duration::days(30), true));
        assert_eq!(
            repeat_attendance(&old, NOW, rule),
            None,
            "exactly 30 days is outside"
        );

        let mut scheduled = two.clone();
        scheduled.push(look("ZZA03", NOW, false));
        assert_eq!(
            repeat_attendance(&scheduled, NOW, rule),
            None,
            "scheduled looks do not count"
        );

        let tighter = RepeatRule::new(2, 1).unwrap();
        assert!(
            repeat_attendance(&two, NOW, tighter).is_none(),
            "3 days apart"
        );
        let wider = RepeatRule::new(2, 4).unwrap();
        assert!(repeat_attendance(&two, NOW, wider).is_some());
    }

    #[test]
    fn a_rule_must_be_sensible() {
        assert!(RepeatRule::new(1, 30).is_err());
        assert!(RepeatRule::new(3, 0).is_err());
        assert!(RepeatRule::new(3, 366).is_err());
        assert!(RepeatRule::new(51, 30).is_err());
        assert_eq!(RepeatRule::new(3, 30).unwrap(), RepeatRule::default());
    }
}
