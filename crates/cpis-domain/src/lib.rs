//! The value types and rules of CP-IS, free of I/O and of async.
//!
//! Every value with rules is parsed once, at the edge, into a type that cannot
//! hold a bad value (`NhsNumber::parse`, `LaCode::parse`, ...). Code past the
//! edge trusts these types instead of checking again.

mod access;
mod access_control;
mod authority;
mod dates;
mod nhs_number;
mod organisation;
mod plan;
mod repeat;
mod uk_time;

pub use access::{
    ACCESS_HISTORY_LIMIT, ACCESS_HISTORY_SAME_PERSON_WINDOW, AccessRecord, access_history,
};
pub use access_control::{
    ADMINISTRATOR_ROLE, GRANTS, Grant, OrganisationRef, Permission, Principal, PrincipalKind,
};
pub use authority::{LaCode, LocalAuthority, PhoneNumber};
pub use dates::{format_iso_date, parse_iso_date};
pub use nhs_number::NhsNumber;
pub use organisation::{OdsCode, Organisation, SettingType};
pub use plan::{
    ENDED_PLAN_VISIBLE_DAYS, LocalReference, Plan, PlanFields, PlanKey, PlanType,
    UNBORN_PLAN_VISIBLE_AFTER_DELIVERY_DAYS,
};
pub use repeat::{Attendance, RepeatRule, attend, repeat_attendance, repeat_attendance_of};
pub use uk_time::{uk_date, uk_time};

/// Why a value could not be parsed into one of this crate's types.
///
/// Each message is a sentence a person can act on; the HTTP layer shows it as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("the NHS number must have 10 digits (spaces and dashes allowed), got {0:?}")]
    NhsNumberFormat(String),
    #[error("the NHS number {0:?} fails its check digit; check it was typed correctly")]
    NhsNumberCheckDigit(String),
    #[error("{0:?} is not a date in the form YYYY-MM-DD")]
    Date(String),
    #[error("the plan type must be one of CPP, LAC or UCPP, got {0:?}")]
    PlanType(String),
    #[error("the end date {end} is before the start date {start}")]
    EndBeforeStart { start: time::Date, end: time::Date },
    #[error("an expected delivery date is only allowed on an unborn child's plan (UCPP)")]
    DeliveryDateOnBornPlan,
    #[error(
        "the local reference must be 1 to 64 printable ASCII characters without spaces, got {0:?}"
    )]
    LocalReference(String),
    #[error(
        "the local authority code must be an ONS code for an English upper-tier authority, such as E09000007, got {0:?}"
    )]
    LaCode(String),
    #[error("{0:?} is not a UK telephone number (10 or 11 digits starting with 0, or +44)")]
    PhoneNumber(String),
    #[error("the organisation code must be an ODS code of 3 to 10 letters and digits, got {0:?}")]
    OdsCode(String),
    #[error("unknown setting type {0:?}")]
    SettingType(String),
    #[error(
        "the repeat-attendance rule needs 2 to {max_organisations} organisations within 1 to {max_days} days"
    )]
    RepeatRule {
        max_organisations: u32,
        max_days: u32,
    },
    #[error("the {field} must not be empty or longer than {max} characters")]
    Text { field: &'static str, max: usize },
}
