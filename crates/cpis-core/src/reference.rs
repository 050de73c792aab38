//! Reference data shipped with cpis: England's children's services
//! authorities, and a set of synthetic care settings for demonstrations.

use cpis_domain::{LaCode, LocalAuthority, OdsCode, Organisation, PhoneNumber, SettingType};

use crate::CoreError;

/// Every English upper-tier authority with children's services, by real ONS
/// code and name; the telephone numbers are made up, from Ofcom's range kept
/// for drama (01632 960xxx), so they can never ring a real person.
const LOCAL_AUTHORITIES_CSV: &str = include_str!("../../../data/local_authorities.csv");

/// Parses the shipped list of local authorities.
pub fn local_authorities() -> Result<Vec<LocalAuthority>, CoreError> {
    parse_local_authorities(LOCAL_AUTHORITIES_CSV)
}

/// Parses a list in the shipped file's form:
/// `code,name,kind,emergency_duty_number,office_hours_number`.
pub fn parse_local_authorities(text: &str) -> Result<Vec<LocalAuthority>, CoreError> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut authorities = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        let bad = |why: String| CoreError::ReferenceData(format!("line {line}: {why}"));
        let record = record.map_err(|error| bad(error.to_string()))?;
        let field = |i: usize| record.get(i).unwrap_or_default();
        let authority = LocalAuthority::new(
            LaCode::parse(field(0)).map_err(|e| bad(e.to_string()))?,
            field(1),
            PhoneNumber::parse(field(3)).map_err(|e| bad(e.to_string()))?,
            PhoneNumber::parse(field(4)).map_err(|e| bad(e.to_string()))?,
        )
        .map_err(|e| bad(e.to_string()))?;
        authorities.push(authority);
    }
    Ok(authorities)
}

/// Made-up place names for synthetic care settings.
const PLACES: [&str; 40] = [
    "Amberfield",
    "Brackenholt",
    "Corvidge",
    "Dovecombe",
    "Elderwick",
    "Foxmoor",
    "Glenhallow",
    "Hartsworth",
    "Inglebarrow",
    "Juniper Vale",
    "Kestrelbury",
    "Larkspur",
    "Marrowdale",
    "Nettlewick",
    "Oakenshaw Vale",
    "Pennyridge",
    "Quarrington Moor",
    "Ravensholt",
    "Saltmere",
    "Thistlebury",
    "Underwood Cross",
    "Vellingham",
    "Wrenfield",
    "Yarrowby",
    "Ashcombe Magna",
    "Birchwold",
    "Coldharbour Vale",
    "Duncastle",
    "Eastmere",
    "Fallowfield Cross",
    "Goldhythe",
    "Hazelbrook",
    "Ivymoor",
    "Kingsmarsh",
    "Lindenholt",
    "Mistlecombe",
    "Northwold",
    "Orchardleigh",
    "Primrose Hill Vale",
    "Rookwood",
];

/// Settings each synthetic place has, with the name suffix and code letters.
const PLACE_SETTINGS: [(SettingType, &str, &str); 10] = [
    (
        SettingType::EmergencyDepartment,
        "General Hospital Emergency Department",
        "ED",
    ),
    (
        SettingType::PaediatricWard,
        "General Hospital Children's Ward",
        "PW",
    ),
    (
        SettingType::MaternityUnit,
        "General Hospital Maternity Unit",
        "MU",
    ),
    (
        SettingType::UrgentTreatmentCentre,
        "Urgent Treatment Centre",
        "UT",
    ),
    (
        SettingType::MinorInjuryUnit,
        "Community Hospital Minor Injury Unit",
        "MI",
    ),
    (SettingType::GpOutOfHours, "GP Out of Hours Service", "OH"),
    (SettingType::GeneralPractice, "Medical Practice", "GP"),
    (
        SettingType::Camhs,
        "Child and Adolescent Mental Health Service",
        "CM",
    ),
    (SettingType::SexualHealth, "Sexual Health Clinic", "SH"),
    (SettingType::Dentistry, "Dental Practice", "DN"),
];

/// Regional services that are not tied to one place.
const REGIONS: [&str; 7] = [
    "Northern",
    "North Western",
    "Yorkshire",
    "Midlands",
    "Eastern",
    "Southern",
    "South Western",
];

/// A few hundred synthetic care settings across every setting type, the same
/// on every run. Codes start `ZZ` to keep them apart from real ODS codes.
pub fn synthetic_organisations() -> Result<Vec<Organisation>, CoreError> {
    let mut organisations = Vec::new();
    let mut add = |code: String, name: String, setting: SettingType| -> Result<(), CoreError> {
        let code = OdsCode::parse(&code).map_err(|e| CoreError::ReferenceData(e.to_string()))?;
        organisations.push(
            Organisation::new(code, &name, setting)
                .map_err(|e| CoreError::ReferenceData(e.to_string()))?,
        );
        Ok(())
    };
    for (place_index, place) in PLACES.iter().enumerate() {
        for (setting, suffix, letters) in PLACE_SETTINGS {
            // Not every place has every setting; the pattern is fixed so that
            // codes are stable.
            if setting != SettingType::EmergencyDepartment
                && (place_index * 7 + letters.len() * 3 + suffix.len()) % 5 == 0
            {
                continue;
            }
            add(
                format!("ZZ{letters}{place_index:03}"),
                format!("{place} {suffix}"),
                setting,
            )?;
        }
        add(
            format!("ZZSN{place_index:03}"),
            format!("{place} School Nursing and Health Visiting Team"),
            SettingType::SchoolNursing,
        )?;
    }
    for (region_index, region) in REGIONS.iter().enumerate() {
        add(
            format!("ZZAS{region_index:03}"),
            format!("{region} Ambulance Service"),
            SettingType::AmbulanceService,
        )?;
        add(
            format!("ZZ1{region_index:03}"),
            format!("NHS 111 {region}"),
            SettingType::Nhs111,
        )?;
    }
    Ok(organisations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_children_services_authority_is_listed_once() {
        let authorities = local_authorities().unwrap();
        assert_eq!(authorities.len(), 153);
        let codes: HashSet<_> = authorities.iter().map(|la| la.code).collect();
        assert_eq!(codes.len(), authorities.len());
        let numbers: HashSet<_> = authorities
            .iter()
            .flat_map(|la| [&la.emergency_duty_number, &la.office_hours_number])
            .collect();
        assert_eq!(
            numbers.len(),
            authorities.len() * 2,
            "every number is distinct"
        );
        let count = |prefix: &str| {
            authorities
                .iter()
                .filter(|la| la.code.as_str().starts_with(prefix))
                .count()
        };
        assert_eq!(
            (count("E06"), count("E08"), count("E09"), count("E10")),
            (63, 36, 33, 21)
        );
        let camden = authorities
            .iter()
            .find(|la| la.code.as_str() == "E09000007")
            .unwrap();
        assert_eq!(camden.name, "Camden");
        for la in &authorities {
            for number in [&la.emergency_duty_number, &la.office_hours_number] {
                assert!(
                    number.as_str().starts_with("01632 960"),
                    "{number} is not in the drama range"
                );
            }
        }
    }

    #[test]
    fn a_bad_reference_row_is_reported_with_its_line() {
        let text = "code,name,kind,emergency_duty_number,office_hours_number\n\
                    E09000007,Camden,london,01632 960000,01632 960001\n\
                    E09000008,Croydon,london,not a number,01632 960003\n";
        let error = parse_local_authorities(text).unwrap_err().to_string();
        assert!(error.contains("line 3"), "{error}");
    }

    #[test]
    fn synthetic_settings_cover_every_type_with_unique_codes() {
        let organisations = synthetic_organisations().unwrap();
        assert!(
            (250..=500).contains(&organisations.len()),
            "{}",
            organisations.len()
        );
        let codes: HashSet<_> = organisations.iter().map(|o| o.code).collect();
        assert_eq!(codes.len(), organisations.len());
        for setting in SettingType::ALL {
            assert!(
                organisations.iter().any(|o| o.setting_type == setting),
                "{setting:?} is missing"
            );
        }
    }
}
