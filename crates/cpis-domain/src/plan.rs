//! Plans: one episode of child protection, looked-after status or unborn
//! child protection, owned by one local authority, and the rule that says
//! whether a clinician may see it today.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Date, Duration};

use crate::{DomainError, LaCode, NhsNumber};

/// How many days after its end date a plan stays visible.
pub const ENDED_PLAN_VISIBLE_DAYS: i64 = 365;

/// How many days after the expected delivery date an unborn child's plan stays
/// visible at the latest: by then the baby has its own NHS number.
pub const UNBORN_PLAN_VISIBLE_AFTER_DELIVERY_DAYS: i64 = 28;

/// The three kinds of plan CP-IS shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PlanType {
    /// A child protection plan.
    #[serde(rename = "CPP")]
    ChildProtection,
    /// A looked-after child: full or interim care order, or voluntary agreement.
    #[serde(rename = "LAC")]
    LookedAfter,
    /// An unborn child protection plan, filed under the mother's NHS number.
    #[serde(rename = "UCPP")]
    UnbornChildProtection,
}

impl PlanType {
    pub const ALL: [PlanType; 3] = [
        PlanType::ChildProtection,
        PlanType::LookedAfter,
        PlanType::UnbornChildProtection,
    ];

    /// Accepts the codes upper- or lower-case: `CPP`, `LAC`, `UCPP`.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let trimmed = input.trim();
        Self::ALL
            .into_iter()
            .find(|plan_type| plan_type.code().eq_ignore_ascii_case(trimmed))
            .ok_or_else(|| DomainError::PlanType(input.to_owned()))
    }

    pub fn code(self) -> &'static str {
        match self {
            PlanType::ChildProtection => "CPP",
            PlanType::LookedAfter => "LAC",
            PlanType::UnbornChildProtection => "UCPP",
        }
    }

    /// The SNOMED CT concept from the England-ChildProtectionPlan value set.
    pub fn snomed_code(self) -> &'static str {
        match self {
            PlanType::ChildProtection => "342191000000101",
            PlanType::LookedAfter => "764841000000100",
            PlanType::UnbornChildProtection => "818901000000100",
        }
    }

    /// The SNOMED CT display term.
    pub fn snomed_display(self) -> &'static str {
        match self {
            PlanType::ChildProtection => "Subject to child protection plan",
            PlanType::LookedAfter => "Looked after child",
            PlanType::UnbornChildProtection => "Unborn child subject to child protection plan",
        }
    }

    /// What a person reads on a screen.
    pub fn description(self) -> &'static str {
        match self {
            PlanType::ChildProtection => "Child protection plan",
            PlanType::LookedAfter => "Looked after child",
            PlanType::UnbornChildProtection => "Unborn child protection plan",
        }
    }
}

impl fmt::Display for PlanType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for PlanType {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The LA's own identifier for a plan: opaque to us, echoed back.
///
/// Restricted to printable ASCII without spaces so that it cannot carry a
/// name or a sentence about the child.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct LocalReference(String);

impl LocalReference {
    pub const MAX_LEN: usize = 64;

    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let ok = !input.is_empty()
            && input.len() <= Self::MAX_LEN
            && input.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(LocalReference(input.to_owned()))
        } else {
            Err(DomainError::LocalReference(input.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for LocalReference {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A plan's identity: sending the same key again updates the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PlanKey {
    pub la: LaCode,
    pub nhs_number: NhsNumber,
    pub plan_type: PlanType,
    pub start_date: Date,
}

/// The fields of a plan before their rules are checked; see [`Plan::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFields {
    pub key: PlanKey,
    pub end_date: Option<Date>,
    pub delete_date: Option<Date>,
    pub expected_delivery_date: Option<Date>,
    pub local_reference: Option<LocalReference>,
}

/// A plan whose fields agree with each other.
///
/// Whether the start date lies in the future is a rule of the upload (it
/// depends on the day of the upload), not of the plan, and is checked there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    #[serde(flatten)]
    key: PlanKey,
    end_date: Option<Date>,
    delete_date: Option<Date>,
    expected_delivery_date: Option<Date>,
    local_reference: Option<LocalReference>,
}

impl Plan {
    pub fn new(fields: PlanFields) -> Result<Self, DomainError> {
        let PlanFields {
            key,
            end_date,
            delete_date,
            expected_delivery_date,
            local_reference,
        } = fields;
        if let Some(end) = end_date
            && end < key.start_date
        {
            return Err(DomainError::EndBeforeStart {
                start: key.start_date,
                end,
            });
        }
        if expected_delivery_date.is_some() && key.plan_type != PlanType::UnbornChildProtection {
            return Err(DomainError::DeliveryDateOnBornPlan);
        }
        Ok(Plan {
            key,
            end_date,
            delete_date,
            expected_delivery_date,
            local_reference,
        })
    }

    pub fn key(&self) -> &PlanKey {
        &self.key
    }

    /// The plan's fields, to change some and check them again with [`Plan::new`].
    pub fn fields(&self) -> PlanFields {
        PlanFields {
            key: self.key,
            end_date: self.end_date,
            delete_date: self.delete_date,
            expected_delivery_date: self.expected_delivery_date,
            local_reference: self.local_reference.clone(),
        }
    }
    pub fn la(&self) -> LaCode {
        self.key.la
    }
    pub fn nhs_number(&self) -> NhsNumber {
        self.key.nhs_number
    }
    pub fn plan_type(&self) -> PlanType {
        self.key.plan_type
    }
    pub fn start_date(&self) -> Date {
        self.key.start_date
    }
    pub fn end_date(&self) -> Option<Date> {
        self.end_date
    }
    pub fn delete_date(&self) -> Option<Date> {
        self.delete_date
    }
    pub fn expected_delivery_date(&self) -> Option<Date> {
        self.expected_delivery_date
    }
    pub fn local_reference(&self) -> Option<&LocalReference> {
        self.local_reference.as_ref()
    }

    /// Whether the LA has withdrawn the plan by `today`. A delete date in the
    /// future withdraws it on that day.
    pub fn is_withdrawn(&self, today: Date) -> bool {
        self.delete_date.is_some_and(|delete| delete <= today)
    }

    /// Whether a clinician may see this plan on `today` (UK date).
    ///
    /// Visible: not withdrawn, started, and either open or ended within the
    /// last 365 days; an unborn child's plan with an expected delivery date is
    /// in any case hidden from the 29th day after that date.
    pub fn is_visible(&self, today: Date) -> bool {
        if self.is_withdrawn(today) || self.key.start_date > today {
            return false;
        }
        let within_end = self
            .end_date
            .is_none_or(|end| end >= today - Duration::days(ENDED_PLAN_VISIBLE_DAYS));
        let within_delivery = self.expected_delivery_date.is_none_or(|delivery| {
            today <= delivery + Duration::days(UNBORN_PLAN_VISIBLE_AFTER_DELIVERY_DAYS)
        });
        within_end && within_delivery
    }

    /// Whether the plan is still running on `today` (no end date, or one in the future).
    pub fn is_open(&self, today: Date) -> bool {
        self.end_date.is_none_or(|end| end > today)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 25);

    fn plan(
        plan_type: PlanType,
        start: Date,
        end: Option<Date>,
        delete: Option<Date>,
        delivery: Option<Date>,
    ) -> Plan {
        Plan::new(PlanFields {
            key: PlanKey {
                la: LaCode::parse("E09000007").unwrap(),
                nhs_number: NhsNumber::parse("9990000018").unwrap(),
                plan_type,
                start_date: start,
            },
            end_date: end,
            delete_date: delete,
            expected_delivery_date: delivery,
            local_reference: None,
        })
        .unwrap()
    }

    fn cpp(start: Date, end: Option<Date>) -> Plan {
        plan(PlanType::ChildProtection, start, end, None, None)
    }

    #[test]
    fn open_plans_are_visible_from_their_start_date() {
        assert!(cpp(TODAY, None).is_visible(TODAY));
        assert!(cpp(date!(2001 - 01 - 01), None).is_visible(TODAY));
        assert!(!cpp(TODAY + Duration::days(1), None).is_visible(TODAY));
        assert!(cpp(date!(2020 - 01 - 01), Some(TODAY + Duration::days(1))).is_visible(TODAY));
    }

    #[test]
    fn ended_plans_stay_visible_for_365_days() {
        let start = date!(2020 - 01 - 01);
        assert!(cpp(start, Some(TODAY)).is_visible(TODAY));
        assert!(cpp(start, Some(TODAY - Duration::days(364))).is_visible(TODAY));
        assert!(cpp(start, Some(TODAY - Duration::days(365))).is_visible(TODAY));
        assert!(!cpp(start, Some(TODAY - Duration::days(366))).is_visible(TODAY));
    }

    #[test]
    fn open_means_no_end_or_an_end_after_today() {
        let start = date!(2020 - 01 - 01);
        assert!(cpp(start, None).is_open(TODAY));
        assert!(cpp(start, Some(TODAY + Duration::days(1))).is_open(TODAY));
        assert!(!cpp(start, Some(TODAY)).is_open(TODAY));
    }

    #[test]
    fn withdrawn_plans_are_hidden_from_the_delete_date() {
        let start = date!(2020 - 01 - 01);
        let delete_today = plan(PlanType::LookedAfter, start, None, Some(TODAY), None);
        assert!(delete_today.is_withdrawn(TODAY));
        assert!(!delete_today.is_visible(TODAY));
        let delete_tomorrow = plan(
            PlanType::LookedAfter,
            start,
            None,
            Some(TODAY + Duration::days(1)),
            None,
        );
        assert!(!delete_tomorrow.is_withdrawn(TODAY));
        assert!(delete_tomorrow.is_visible(TODAY));
    }

    #[test]
    fn unborn_plans_end_28_days_after_the_expected_delivery_date() {
        let start = date!(2026 - 06 - 01);
        let unborn = |delivery: Date, end: Option<Date>| {
            plan(
                PlanType::UnbornChildProtection,
                start,
                end,
                None,
                Some(delivery),
            )
        };
        assert!(unborn(TODAY, None).is_visible(TODAY));
        assert!(unborn(TODAY - Duration::days(28), None).is_visible(TODAY));
        assert!(!unborn(TODAY - Duration::days(29), None).is_visible(TODAY));
        // Ended or not: an ended plan is hidden by the same date.
        let ended = TODAY - Duration::days(40);
        assert!(!unborn(TODAY - Duration::days(29), Some(ended)).is_visible(TODAY));
        assert!(unborn(TODAY - Duration::days(28), Some(ended)).is_visible(TODAY));
        // Whichever rule hides the plan first wins.
        let long_ago = TODAY - Duration::days(400);
        let old = plan(
            PlanType::UnbornChildProtection,
            date!(2024 - 01 - 01),
            Some(long_ago),
            None,
            Some(TODAY),
        );
        assert!(!old.is_visible(TODAY));
    }

    #[test]
    fn unborn_plans_without_a_delivery_date_follow_the_general_rule() {
        let unborn = plan(
            PlanType::UnbornChildProtection,
            date!(2024 - 01 - 01),
            Some(TODAY - Duration::days(365)),
            None,
            None,
        );
        assert!(unborn.is_visible(TODAY));
        let older = plan(
            PlanType::UnbornChildProtection,
            date!(2024 - 01 - 01),
            Some(TODAY - Duration::days(366)),
            None,
            None,
        );
        assert!(!older.is_visible(TODAY));
    }

    #[test]
    fn fields_must_agree() {
        let key = PlanKey {
            la: LaCode::parse("E09000007").unwrap(),
            nhs_number: NhsNumber::parse("9990000018").unwrap(),
            plan_type: PlanType::ChildProtection,
            start_date: TODAY,
        };
        let fields = |end, delivery| PlanFields {
            key,
            end_date: end,
            delete_date: None,
            expected_delivery_date: delivery,
            local_reference: None,
        };
        assert!(Plan::new(fields(Some(TODAY), None)).is_ok());
        assert!(matches!(
            Plan::new(fields(Some(TODAY - Duration::days(1)), None)),
            Err(DomainError::EndBeforeStart { .. })
        ));
        assert_eq!(
            Plan::new(fields(None, Some(TODAY))),
            Err(DomainError::DeliveryDateOnBornPlan)
        );
    }

    #[test]
    fn plan_types_and_their_snomed_codes() {
        assert_eq!(PlanType::parse("cpp"), Ok(PlanType::ChildProtection));
        assert_eq!(PlanType::parse("LAC"), Ok(PlanType::LookedAfter));
        assert_eq!(PlanType::parse("UCPP"), Ok(PlanType::UnbornChildProtection));
        assert!(PlanType::parse("CP").is_err());
        assert!(PlanType::parse("").is_err());
        assert_eq!(PlanType::ChildProtection.snomed_code(), "342191000000101");
        assert_eq!(PlanType::LookedAfter.snomed_code(), "764841000000100");
        assert_eq!(
            PlanType::UnbornChildProtection.snomed_code(),
            "818901000000100"
        );
    }

    #[test]
    fn local_references_cannot_carry_free_text() {
        assert!(LocalReference::parse("CP-2024/00123").is_ok());
        assert!(LocalReference::parse(&"x".repeat(64)).is_ok());
        assert!(LocalReference::parse(&"x".repeat(65)).is_err());
        assert!(LocalReference::parse("").is_err());
        assert!(LocalReference::parse("Jane Smith").is_err());
        assert!(LocalReference::parse("ref\n").is_err());
        assert!(LocalReference::parse("réf").is_err());
    }
}
