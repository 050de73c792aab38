//! The access log's records, and the rule that turns them into the access
//! history shown beside a flag.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{NhsNumber, OdsCode, PlanKey, SettingType};

/// How many accesses the history lists.
pub const ACCESS_HISTORY_LIMIT: usize = 25;

/// Within this window after a listed look, the same person's later looks are
/// not listed again.
pub const ACCESS_HISTORY_SAME_PERSON_WINDOW: Duration = Duration::hours(24);

/// One look at one NHS number, written before the answer leaves the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// A UUIDv7 of `at` itself (`cpis_store::log::id_at`), so that ids sort
    /// by time on every node without a sequence, and the stores find the
    /// records of a span of time by id: retention's old ones, PostgreSQL's
    /// reports by user or organisation.
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub nhs_number: NhsNumber,
    pub user_id: String,
    pub user_name: String,
    /// The national RBAC role the user had selected, e.g. `R8000`, and its name.
    pub role_code: String,
    pub role_name: String,
    /// The activity code that allowed the look, e.g. `B0107`.
    pub activity_code: String,
    pub organisation_code: OdsCode,
    pub organisation_name: String,
    pub setting_type: SettingType,
    /// Unscheduled looks are listed in the history and notified to the LA.
    pub unscheduled: bool,
    /// The plans the answer showed (empty when nothing was visible).
    pub returned: Vec<PlanKey>,
    pub request_id: String,
}

/// The access history: the most recent unscheduled looks, listing a person's
/// first look and not their repeats within 24 hours of it.
///
/// `newest_first` must be sorted by time, newest first, as the store returns
/// them; the answer keeps that order. Scheduled looks are ignored here, so a
/// caller may pass a mixed list.
pub fn access_history(newest_first: &[AccessRecord]) -> Vec<&AccessRecord> {
    let mut last_listed: HashMap<&str, OffsetDateTime> = HashMap::new();
    let mut listed: Vec<&AccessRecord> = newest_first
        .iter()
        .rev()
        .filter(|record| record.unscheduled)
        .filter(|record| {
            let repeat = last_listed
                .get(record.user_id.as_str())
                .is_some_and(|&first| record.at - first < ACCESS_HISTORY_SAME_PERSON_WINDOW);
            if !repeat {
                last_listed.insert(record.user_id.as_str(), record.at);
            }
            !repeat
        })
        .collect();
    listed.reverse();
    listed.truncate(ACCESS_HISTORY_LIMIT);
    listed
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn look(user: &str, at: OffsetDateTime, unscheduled: bool) -> AccessRecord {
        AccessRecord {
            id: Uuid::nil(),
            at,
            nhs_number: NhsNumber::parse("9990000018").unwrap(),
            user_id: user.to_owned(),
            user_name: format!("Dr {user}"),
            role_code: "R8000".to_owned(),
            role_name: "Clinical Practitioner Access Role".to_owned(),
            activity_code: "B0107".to_owned(),
            organisation_code: OdsCode::parse("X99ED").unwrap(),
            organisation_name: "Test Emergency Department".to_owned(),
            setting_type: SettingType::EmergencyDepartment,
            unscheduled,
            returned: Vec::new(),
            request_id: "r".to_owned(),
        }
    }

    fn newest_first(mut records: Vec<AccessRecord>) -> Vec<AccessRecord> {
        records.sort_by_key(|r| std::cmp::Reverse(r.at));
        records
    }

    const T0: OffsetDateTime = datetime!(2026-11-01 09:00 UTC);

    #[test]
    fn a_repeat_within_24_hours_is_listed_once_at_the_first_look() {
        let records = newest_first(vec![
            look("a", T0, true),
            look("a", T0 + Duration::hours(23), true),
            look("a", T0 + Duration::hours(24) - Duration::seconds(1), true),
        ]);
        let history = access_history(&records);
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].at, T0);
    }

    #[test]
    fn a_look_24_hours_after_the_listed_one_is_listed_again() {
        let records = newest_first(vec![
            look("a", T0, true),
            look("a", T0 + Duration::hours(12), true),
            look("a", T0 + Duration::hours(24), true),
            look("a", T0 + Duration::hours(30), true),
        ]);
        let listed: Vec<_> = access_history(&records).iter().map(|r| r.at).collect();
        assert_eq!(listed, vec![T0 + Duration::hours(24), T0]);
    }

    #[test]
    fn different_people_are_each_listed() {
        let records = newest_first(vec![
            look("a", T0, true),
            look("b", T0 + Duration::minutes(5), true),
            look("a", T0 + Duration::minutes(10), true),
        ]);
        let listed: Vec<_> = access_history(&records)
            .iter()
            .map(|r| r.user_id.clone())
            .collect();
        assert_eq!(listed, vec!["b", "a"]);
    }

    #[test]
    fn scheduled_looks_are_never_listed_nor_start_a_window() {
        let records = newest_first(vec![
            look("a", T0, false),
            look("a", T0 + Duration::hours(1), true),
        ]);
        let history = access_history(&records);
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].at, T0 + Duration::hours(1));
        assert!(access_history(&[look("b", T0, false)]).is_empty());
    }

    #[test]
    fn only_the_25_most_recent_are_listed() {
        let records = newest_first(
            (0..30)
                .map(|i| look(&format!("user{i}"), T0 + Duration::minutes(i), true))
                .collect(),
        );
        let history = access_history(&records);
        assert_eq!(history.len(), ACCESS_HISTORY_LIMIT);
        assert_eq!(history[0].at, T0 + Duration::minutes(29));
        assert_eq!(history[24].at, T0 + Duration::minutes(5));
    }
}
