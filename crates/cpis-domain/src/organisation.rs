//! Care settings: the organisations whose staff look a child up.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::DomainError;

/// An Organisation Data Service code (`RJ1`, `RJ121`, `A81001`), upper-case.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OdsCode {
    bytes: [u8; OdsCode::MAX_LEN],
    len: u8,
}

impl OdsCode {
    pub const MAX_LEN: usize = 10;

    /// Accepts 3 to 10 ASCII letters and digits, in either case.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let trimmed = input.trim().as_bytes();
        if !(3..=Self::MAX_LEN).contains(&trimmed.len())
            || !trimmed.iter().all(u8::is_ascii_alphanumeric)
        {
            return Err(DomainError::OdsCode(input.to_owned()));
        }
        let mut bytes = [0u8; Self::MAX_LEN];
        for (slot, byte) in bytes.iter_mut().zip(trimmed) {
            *slot = byte.to_ascii_uppercase();
        }
        Ok(OdsCode {
            bytes,
            len: trimmed.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Every byte was checked to be ASCII in `parse`.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Display for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OdsCode({})", self.as_str())
    }
}

impl Serialize for OdsCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OdsCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The kind of care setting, which decides whether looks from it are
/// unscheduled care (notified to the LA) by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingType {
    EmergencyDepartment,
    UrgentTreatmentCentre,
    MinorInjuryUnit,
    GpOutOfHours,
    #[serde(rename = "nhs_111")]
    Nhs111,
    AmbulanceService,
    PaediatricWard,
    MaternityUnit,
    GeneralPractice,
    Camhs,
    SexualHealth,
    Dentistry,
    SchoolNursing,
}

impl SettingType {
    pub const ALL: [SettingType; 13] = [
        SettingType::EmergencyDepartment,
        SettingType::UrgentTreatmentCentre,
        SettingType::MinorInjuryUnit,
        SettingType::GpOutOfHours,
        SettingType::Nhs111,
        SettingType::AmbulanceService,
        SettingType::PaediatricWard,
        SettingType::MaternityUnit,
        SettingType::GeneralPractice,
        SettingType::Camhs,
        SettingType::SexualHealth,
        SettingType::Dentistry,
        SettingType::SchoolNursing,
    ];

    /// The code used in data files, the API and storage.
    pub fn code(self) -> &'static str {
        match self {
            SettingType::EmergencyDepartment => "emergency_department",
            SettingType::UrgentTreatmentCentre => "urgent_treatment_centre",
            SettingType::MinorInjuryUnit => "minor_injury_unit",
            SettingType::GpOutOfHours => "gp_out_of_hours",
            SettingType::Nhs111 => "nhs_111",
            SettingType::AmbulanceService => "ambulance_service",
            SettingType::PaediatricWard => "paediatric_ward",
            SettingType::MaternityUnit => "maternity_unit",
            SettingType::GeneralPractice => "general_practice",
            SettingType::Camhs => "camhs",
            SettingType::SexualHealth => "sexual_health",
            SettingType::Dentistry => "dentistry",
            SettingType::SchoolNursing => "school_nursing",
        }
    }

    pub fn parse(input: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|setting| setting.code() == input.trim())
            .ok_or_else(|| DomainError::SettingType(input.to_owned()))
    }

    /// What a person reads on a screen.
    pub fn description(self) -> &'static str {
        match self {
            SettingType::EmergencyDepartment => "Emergency department",
            SettingType::UrgentTreatmentCentre => "Urgent treatment centre or walk-in centre",
            SettingType::MinorInjuryUnit => "Minor injury unit",
            SettingType::GpOutOfHours => "GP out of hours",
            SettingType::Nhs111 => "NHS 111",
            SettingType::AmbulanceService => "Ambulance service",
            SettingType::PaediatricWard => "Paediatric ward",
            SettingType::MaternityUnit => "Maternity unit",
            SettingType::GeneralPractice => "General practice",
            SettingType::Camhs => "Child and adolescent mental health services",
            SettingType::SexualHealth => "Sexual health service",
            SettingType::Dentistry => "Dentistry",
            SettingType::SchoolNursing => "School nursing or health visiting",
        }
    }

    /// Unscheduled care settings are the ones CP-IS was built for; looks from
    /// them notify the LA. The rest are scheduled care.
    pub fn is_unscheduled_care(self) -> bool {
        matches!(
            self,
            SettingType::EmergencyDepartment
                | SettingType::UrgentTreatmentCentre
                | SettingType::MinorInjuryUnit
                | SettingType::GpOutOfHours
                | SettingType::Nhs111
                | SettingType::AmbulanceService
                | SettingType::PaediatricWard
                | SettingType::MaternityUnit
        )
    }
}

impl fmt::Display for SettingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A care setting registered with the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    pub code: OdsCode,
    pub name: String,
    pub setting_type: SettingType,
}

impl Organisation {
    pub const MAX_NAME_LEN: usize = 150;

    pub fn new(code: OdsCode, name: &str, setting_type: SettingType) -> Result<Self, DomainError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > Self::MAX_NAME_LEN {
            return Err(DomainError::Text {
                field: "organisation name",
                max: Self::MAX_NAME_LEN,
            });
        }
        Ok(Organisation {
            code,
            name: name.to_owned(),
            setting_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ods_codes() {
        assert_eq!(OdsCode::parse("rj1").unwrap().as_str(), "RJ1");
        assert_eq!(OdsCode::parse(" A81001 ").unwrap().as_str(), "A81001");
        assert_eq!(OdsCode::parse("ABCDEFGHIJ").unwrap().as_str(), "ABCDEFGHIJ");
        for bad in ["", "R1", "ABCDEFGHIJK", "RJ-1", "RJ 1", "RJé"] {
            assert!(OdsCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn setting_types_round_trip_through_their_codes() {
        for setting in SettingType::ALL {
            assert_eq!(SettingType::parse(setting.code()), Ok(setting));
            let json = serde_json::to_string(&setting).unwrap();
            assert_eq!(json, format!("\"{}\"", setting.code()));
        }
        assert!(SettingType::parse("hospital").is_err());
        let unscheduled = SettingType::ALL
            .iter()
            .filter(|s| s.is_unscheduled_care())
            .count();
        assert_eq!(unscheduled, 8);
    }
}
