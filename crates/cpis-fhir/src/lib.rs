//! FHIR R4 JSON for the few resources cpis serves, shaped like NHS England's
//! CP-IS FHIR API. Written by hand (a generated model crate costs minutes
//! and gigabytes per build on two cores) and checked in the tests by an
//! independent FHIR implementation.

use cpis_domain::{AccessRecord, LocalAuthority, NhsNumber, Plan, format_iso_date};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
pub const SDS_USER_SYSTEM: &str = "https://fhir.nhs.uk/Id/sds-user-id";
pub const SDS_ROLE_SYSTEM: &str = "https://fhir.nhs.uk/Id/sds-role-profile-id";
/// ONS's identifier base for GSS codes, which name local authorities.
pub const ONS_SYSTEM: &str = "http://statistics.data.gov.uk/id/statistical-geography";
pub const SNOMED_SYSTEM: &str = "http://snomed.info/sct";
pub const FHIR_JSON: &str = "application/fhir+json";

fn instant(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The searchset Bundle of CareTeams for an NHS number's visible plans.
pub fn care_team_bundle(
    base_url: &str,
    nhs_number: NhsNumber,
    plans: &[(Plan, LocalAuthority)],
    today: time::Date,
) -> Value {
    let entries: Vec<Value> = plans
        .iter()
        .map(|(plan, la)| {
            let id = care_team_id(plan);
            json!({
                "fullUrl": format!("{base_url}/CareTeam/{id}"),
                "resource": care_team(&id, plan, la, today),
                "search": {"mode": "match"},
            })
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "link": [{
            "relation": "self",
            "url": format!("{base_url}/CareTeam?patient:identifier={NHS_NUMBER_SYSTEM}|{}", nhs_number.digits()),
        }],
        "entry": entries,
    })
}

/// A stable id for a plan: its identity, spelled out.
pub fn care_team_id(plan: &Plan) -> String {
    format!(
        "{}-{}-{}-{}",
        plan.la(),
        plan.nhs_number().digits(),
        plan.plan_type().code(),
        format_iso_date(plan.start_date()).replace('-', "")
    )
}

/// One plan as a CareTeam: the plan type's SNOMED CT code, its period, the
/// responsible LA (contained, with its two numbers told apart), the child.
pub fn care_team(id: &str, plan: &Plan, la: &LocalAuthority, today: time::Date) -> Value {
    let mut period = json!({"start": format_iso_date(plan.start_date())});
    if let Some(end) = plan.end_date() {
        period["end"] = json!(format_iso_date(end));
    }
    let la_ref = format!("la-{}", la.code);
    let mut team = json!({
        "resourceType": "CareTeam",
        "id": id,
        "contained": [local_authority(&la_ref, la)],
        "status": if plan.is_open(today) { "active" } else { "inactive" },
        "category": [{
            "coding": [{
                "system": SNOMED_SYSTEM,
                "code": plan.plan_type().snomed_code(),
                "display": plan.plan_type().snomed_display(),
            }],
            "text": plan.plan_type().description(),
        }],
        "name": la.name,
        "subject": {
            "identifier": {"system": NHS_NUMBER_SYSTEM, "value": plan.nhs_number().digits()},
        },
        "period": period,
        "managingOrganization": [{"reference": format!("#{la_ref}"), "display": la.name}],
        "telecom": [
            {"system": "phone", "value": la.emergency_duty_number.as_str(), "use": "work", "rank": 1},
            {"system": "phone", "value": la.office_hours_number.as_str(), "use": "work", "rank": 2},
        ],
    });
    if let Some(delivery) = plan.expected_delivery_date() {
        team["note"] =
            json!([{"text": format!("Expected delivery date {}", format_iso_date(delivery))}]);
    }
    team
}

/// The LA as a contained Organization whose two contacts say which number is which.
fn local_authority(id: &str, la: &LocalAuthority) -> Value {
    json!({
        "resourceType": "Organization",
        "id": id,
        "identifier": [{"system": ONS_SYSTEM, "value": la.code.as_str()}],
        "name": la.name,
        "contact": [
            {
                "purpose": {"text": "Emergency duty team (out of hours, day and night)"},
                "telecom": [{"system": "phone", "value": la.emergency_duty_number.as_str(), "use": "work"}],
            },
            {
                "purpose": {"text": "Office hours"},
                "telecom": [{"system": "phone", "value": la.office_hours_number.as_str(), "use": "work"}],
            },
        ],
    })
}

/// The searchset Bundle of AuditEvents: who looked at this child, from where.
pub fn audit_event_bundle(
    base_url: &str,
    nhs_number: NhsNumber,
    history: &[&AccessRecord],
) -> Value {
    let entries: Vec<Value> = history
        .iter()
        .map(|record| {
            json!({
                "fullUrl": format!("{base_url}/AuditEvent/{}", record.id),
                "resource": audit_event(record),
                "search": {"mode": "match"},
            })
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "link": [{
            "relation": "self",
            "url": format!("{base_url}/AuditEvent?patient:identifier={NHS_NUMBER_SYSTEM}|{}", nhs_number.digits()),
        }],
        "entry": entries,
    })
}

/// One access as an AuditEvent, with its person and organisation contained.
pub fn audit_event(record: &AccessRecord) -> Value {
    json!({
        "resourceType": "AuditEvent",
        "id": record.id.to_string(),
        "contained": [
            {
                "resourceType": "Practitioner",
                "id": "person",
                "identifier": [{"system": SDS_USER_SYSTEM, "value": record.user_id}],
                "name": [{"text": record.user_name}],
            },
            {
                "resourceType": "Organization",
                "id": "organisation",
                "identifier": [{"system": ODS_SYSTEM, "value": record.organisation_code.as_str()}],
                "name": record.organisation_name,
                "type": [{"text": record.setting_type.description()}],
            },
        ],
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [{
            "system": "http://hl7.org/fhir/restful-interaction",
            "code": "search-type",
            "display": "search-type",
        }],
        "action": "E",
        "recorded": instant(record.at),
        "outcome": "0",
        "agent": [{
            "who": {"reference": "#person", "display": record.user_name},
            "name": record.user_name,
            "requestor": true,
            "role": [{
                "coding": [{"system": SDS_ROLE_SYSTEM, "code": record.role_code, "display": record.role_name}],
                "text": record.role_name,
            }],
        }],
        "source": {
            "site": record.organisation_name,
            "observer": {"reference": "#organisation", "display": record.organisation_name},
        },
        "entity": [{
            "what": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": record.nhs_number.digits()}},
        }],
    })
}

/// What the server supports, and nothing more.
pub fn capability_statement(base_url: &str, version: &str, published: OffsetDateTime) -> Value {
    let search = |documentation: &str| {
        json!([{
            "name": "patient:identifier",
            "type": "token",
            "documentation": documentation,
        }])
    };
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(published),
        "publisher": "cpis",
        "kind": "instance",
        "software": {"name": "cpis", "version": version},
        "implementation": {"description": "Child Protection – Information Sharing", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": false,
                "service": [{"text": "OAuth2 bearer tokens (OpenID Connect; NHS CIS2)"}],
                "description": "Authorization: Bearer <token>. Activity B0107 sees the flag and the LA is notified; B0170 sees it silently. Header IsUnscheduledAccessEvent: false marks a scheduled access.",
            },
            "resource": [
                {
                    "type": "CareTeam",
                    "interaction": [{"code": "search-type"}],
                    "searchParam": search("https://fhir.nhs.uk/Id/nhs-number|{NHS number}: one CareTeam per visible child protection, looked-after or unborn plan"),
                },
                {
                    "type": "AuditEvent",
                    "interaction": [{"code": "search-type"}],
                    "searchParam": search("https://fhir.nhs.uk/Id/nhs-number|{NHS number}: the 25 most recent unscheduled accesses, a person's repeats within 24 hours listed once"),
                },
            ],
        }],
    })
}
